"""The report's tables: sortable, filterable HTML tables and the sections made of them
(summary, nodes, jobs)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from optisched import viz
from optisched.report.data import Context
from optisched.report.format import esc, fmt_number, snap

__all__ = ["Col", "data_table", "jobs_section", "kv_table", "nodes_section", "summary_section"]


@dataclass
class Col:
    """A table column: its header, right-aligned numbers, a wide text column."""

    header: str
    numeric: bool = False
    wide: bool = False


def _cell(v: object, col: Col) -> str:
    if col.numeric:
        if isinstance(v, tuple):  # (display text, sort value)
            text, key = v
            return f'<td class="n" data-v="{float(key)!r}">{esc(text)}</td>'
        if isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v)):
            x = snap(float(v))
            text = f"{int(x):,}" if x.is_integer() and abs(x) < 1e15 else fmt_number(x)
            return f'<td class="n" data-v="{x!r}">{esc(text)}</td>'
        return '<td class="n" data-v="-1e308">–</td>'
    cls = ' class="w"' if col.wide else ""
    return f"<td{cls}>{esc('' if v is None else v)}</td>"


def data_table(table_id: str, cols: Sequence[Col], rows: Sequence[Sequence[object]],
               placeholder: str = "", height: bool | str = True) -> str:
    """A sortable table (a filter box above it when ``placeholder`` is given)."""
    head = "".join(f'<th data-col="{k}" title="click to sort">{esc(c.header)}</th>'
                   for k, c in enumerate(cols))
    body = "".join("<tr>" + "".join(_cell(v, c) for v, c in zip(r, cols, strict=True))
                   + "</tr>" for r in rows)
    filt = (f'<input class="filter" data-table="{table_id}" placeholder="{esc(placeholder)}"> '
            f'<span class="count" id="{table_id}-count">{len(rows)} rows</span>'
            if placeholder else "")
    wrap = ("tablewrap " + (height if isinstance(height, str) else "tall")) if height else (
        "tablewrap")
    return (f'{filt}<div class="{wrap}"><table id="{table_id}" class="sortable">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def kv_table(rows: Sequence[tuple[str, str]], table_id: str = "") -> str:
    """A two-column table of names and (HTML) values."""
    tid = f' id="{table_id}"' if table_id else ""
    return (f'<table class="kv"{tid}>' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>"
                                                  for k, v in rows) + "</table>")


def summary_section(ctx: Context) -> str:
    """The summary: solver, status, evaluator, objective, horizon, where the work runs."""
    p, plan, ev = ctx.problem, ctx.plan, ctx.ev
    hz = p.horizon
    counts = plan.job_counts(p)
    state = ('<span class="ok">feasible</span>' if ev.feasible
             else '<span class="bad">INFEASIBLE</span>')
    claimed = plan.objective
    agrees = (claimed is not None and math.isfinite(ev.objective)
              and abs(claimed - ev.objective) <= 1e-6 * max(1.0, abs(ev.objective)))
    end = ctx.clock.at(hz.slots)
    rows = [
        ("solver", esc(plan.solver)), ("status", esc(plan.status.value)),
        ("evaluator", state),
        ("objective (evaluator) [money]", esc(fmt_number(ev.objective, 6))),
        ("objective (summary.json) [money]", esc(fmt_number(claimed, 6)) + (
            "" if agrees else ' <span class="bad">differs from the evaluator</span>')),
        ("bound [money]", esc(fmt_number(plan.bound, 6))),
        ("gap", "–" if plan.gap is None else esc(f"{100 * plan.gap:.3f} %")),
        ("horizon", esc(f"{ctx.clock.at(0):%a %d %b %Y %H:%M} – {end:%a %d %b %H:%M}, "
                        f"{hz.slots} slots of {hz.slot_minutes} min, {ctx.clock.label}")),
        ("nodes / jobs", esc(f"{len(p.nodes)} / {len(p.jobs)}")),
        ("jobs", esc(", ".join(f"{k} {v}" for k, v in counts.items()))),
        ("solve time", esc(f"{plan.timings['total']:.3f} s") if "total" in plan.timings else "–"),
    ]
    parts = ['<div class="row"><div>', kv_table(rows, "summary-table"), "</div><div>",
             "<h3>Where the work runs</h3>", _kind_table(ctx), "</div></div>"]
    if plan.message:
        parts.append(f'<p class="note">{esc(plan.message)}</p>')
    if ev.violations:
        items = "".join(f"<li>{esc(v)}</li>" for v in ev.violations[:30])
        parts.append(f'<p class="bad">violations ({sum(ev.counts.values())}):</p><ul>{items}'
                     "</ul>")
    return "".join(parts)


def _kind_table(ctx: Context) -> str:
    f = ctx.plan.flows
    assert f is not None
    idx = ctx.index
    kinds = sorted(set(ctx.kinds))
    load = idx.dt * f.load.sum(axis=1)
    rows: list[list[object]] = []
    for k in kinds:
        sel = np.array([i for i, kk in enumerate(ctx.kinds) if kk == k])
        rows.append([k, len(sel), int((ctx.nc.jobs[sel] > 0).sum()), int(ctx.nc.jobs[sel].sum()),
                     float(ctx.gpu_h[sel].sum()), float(load[sel].sum()),
                     float(ctx.nc.total[sel].sum())])
    rows.sort(key=lambda r: -float(r[4]))  # type: ignore[arg-type]
    cols = [Col("node kind"), Col("nodes", True), Col("nodes with jobs", True),
            Col("jobs", True), Col("GPU-hours [h]", True), Col("energy [kWh]", True),
            Col("cost [money]", True)]
    return data_table("kind-table", cols, rows, height=False)


def nodes_section(ctx: Context) -> str:
    """One row per node, busiest first: work, energy and the cost attributed to it."""
    p, idx = ctx.problem, ctx.index
    f = ctx.plan.flows
    assert f is not None
    nc = ctx.nc
    dt = idx.dt
    cap = idx.capacity[:, 0] * idx.T * dt
    head = idx.headroom
    with np.errstate(divide="ignore", invalid="ignore"):
        use = np.where(np.isfinite(head) & (head > viz.DISPLAY_TOL), f.grid_import / head, 0.0)
    peak_use = use.max(axis=1, initial=0.0)
    cols = [Col("node"), Col("kind"), Col("feeder"), Col("GPUs", True), Col("jobs", True),
            Col("GPU-h [h]", True), Col("busy [%]", True), Col("load [kWh]", True),
            Col("PV used [kWh]", True), Col("battery out [kWh]", True),
            Col("import [kWh]", True), Col("export [kWh]", True),
            Col("peak import [kW]", True), Col("peak headroom use [%]", True),
            Col("energy + carbon [money]", True), Col("export revenue [money]", True),
            Col("battery wear [money]", True), Col("demand [money]", True),
            Col("switching [money]", True), Col("latency + tardiness [money]", True),
            Col("total [money]", True)]
    rows: list[list[object]] = []
    for k, node in enumerate(p.nodes):
        t = nc.terms
        rows.append([node.node_id, ctx.kinds[k], node.feeder or "", float(idx.capacity[k, 0]),
                     int(nc.jobs[k]), float(ctx.gpu_h[k]),
                     100.0 * float(ctx.gpu_h[k]) / float(cap[k]) if cap[k] > 0 else 0.0,
                     float(nc.energy_kwh[k]), float(nc.pv_kwh[k]),
                     float(dt * f.discharge[k].sum()), float(nc.import_kwh[k]),
                     float(dt * f.grid_export[k].sum()), float(nc.peak_import_kw[k]),
                     100.0 * float(peak_use[k]),
                     float(t["energy"][k] + t["carbon"][k]), float(t["export_revenue"][k]),
                     float(t["degradation"][k]), float(t["demand"][k]),
                     float(t["switching"][k]), float(t["latency"][k] + t["tardiness"][k]),
                     float(nc.total[k])])
    rows.sort(key=lambda r: (-float(r[5]), -float(r[-1])))  # type: ignore[arg-type]
    return (
        '<p class="note">One row per node, busiest first. Costs [money] attributed to the '
        "node (SPEC §3 terms; export revenue is subtracted in the total; latency and "
        "tardiness of the jobs running there). Busy: GPU-hours of jobs over GPU-hours of the "
        "horizon. Peak headroom use: the largest import / import limit over the slots. Drop "
        f"penalties ({esc(fmt_number(nc.drop))}) belong to no node. Click a header to sort; "
        "type to filter.</p>"
        + data_table("node-table", cols, rows, placeholder="filter nodes (id, kind, feeder)…")
    )


def jobs_section(ctx: Context) -> str:
    """Every job, most expensive first, with how its cost is attributed."""
    p, idx, plan, jc = ctx.problem, ctx.index, ctx.plan, ctx.jc
    outcomes = viz.job_outcomes(p, plan, idx)
    clock = ctx.clock
    rows: list[list[object]] = []
    for j, o in enumerate(outcomes):
        n = int(plan.node[j])
        rows.append([
            o.job_id, p.jobs[j].kind, o.status, o.node_id or "",
            ctx.kinds[n] if n >= 0 else "", float(idx.usage[j, 0]),
            (clock.text(o.start_slot), o.start_slot if o.start_slot is not None else -1e9),
            (clock.text(o.end_slot), o.end_slot if o.end_slot is not None else -1e9),
            float(jc.energy_kwh[j]), float(jc.energy_cost[j]),
            o.latency_ms, o.slo_ms, o.latency_cost, o.tardiness_cost, o.drop_cost,
            float(jc.total[j]), o.reason])
    rows.sort(key=lambda r: (-float(r[15]), str(r[0])))  # type: ignore[arg-type]
    cols = [Col("job"), Col("kind"), Col("status"), Col("node"), Col("node kind"),
            Col("GPUs", True), Col("start", True), Col("end", True),
            Col("energy [kWh]", True), Col("energy cost [money]", True),
            Col("latency [ms]", True), Col("SLO [ms]", True),
            Col("latency cost [money]", True), Col("tardiness cost [money]", True),
            Col("drop penalty [money]", True), Col("total [money]", True),
            Col("note", wide=True)]
    over = float(jc.overhead.sum())
    return (
        f'<p class="note">Every job, most expensive first; start and end in local time '
        f"({esc(clock.label)}), end exclusive. <b>How cost is attributed:</b> a job's energy is "
        "its own draw (power × power factor of the node over its slots in the horizon); it "
        "pays that energy at its node's average gross energy cost per kWh of load "
        "(import energy + carbon + battery wear of the node over the horizon, divided by "
        "everything the node drew, idle draw included), plus its latency and tardiness cost, "
        "or its drop penalty. What stays with the nodes — the idle draw's share, demand "
        "charges, switching, minus export revenue — is "
        f"{esc(fmt_number(over))} [money]; jobs ({esc(fmt_number(float(jc.total.sum())))}) plus "
        f"nodes add up to the objective ({esc(fmt_number(ctx.ev.objective, 6))}). For a "
        "dropped job the note compares its penalty with a grid-priced insertion estimate (job "
        "energy plus idle draw where the node is off, at the import price incl. carbon, plus "
        "latency and tardiness; it ignores PV, battery, headroom, feeder, demand and "
        "switching, so it is an estimate, not a bound).</p>"
        + data_table("job-table", cols, rows, placeholder="filter jobs (id, kind, node, status)…")
    )
