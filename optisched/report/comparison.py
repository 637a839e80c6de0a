"""The report's comparison with a second plan (cost terms side by side, changed jobs,
energy difference per node, from :mod:`optisched.diff`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optisched.diff import PlanDiff, diff_plans, node_energy_delta, record_of
from optisched.plan import Plan
from optisched.report.data import Context
from optisched.report.figures import layout
from optisched.report.format import clean, esc, fmt_number
from optisched.report.tables import Col, data_table

__all__ = ["Comparison", "compare_section"]


@dataclass
class Comparison:
    """A second plan to compare the reported plan with.

    Attributes
    ----------
    plan : Plan
        The other plan (with flows for the energy difference per node).
    name : str
        Its label (a plan directory, or ``baseline``).
    """

    plan: Plan
    name: str


def compare_section(ctx: Context, cmp: Comparison | None, figs: dict[str, Any]) -> str:
    """The comparison with ``cmp`` (a note when there is none)."""
    if cmp is None:
        return '<p class="note">No comparison (turned off).</p>'
    p = ctx.problem
    a = record_of(p, cmp.plan, cmp.name)
    b = record_of(p, ctx.plan, "this plan")
    d: PlanDiff = diff_plans(a, b)
    rows = "".join(
        f'<tr><td>{esc(k)}{" (subtracted)" if k == "export_revenue" else ""}</td>'
        f'<td class="n">{esc(fmt_number(d.costs_a[k], 6))}</td>'
        f'<td class="n">{esc(fmt_number(d.costs_b[k], 6))}</td>'
        f'<td class="n">{esc(fmt_number(d.delta[k], 6))}</td></tr>' for k in d.costs_a)
    obj = (f'<tr><th>objective</th><td class="n">{esc(fmt_number(d.objective_a, 6))}</td>'
           f'<td class="n">{esc(fmt_number(d.objective_b, 6))}</td>'
           f'<td class="n">{esc(fmt_number(d.objective_delta, 6))}</td></tr>')
    costs = (f'<table id="compare-costs"><thead><tr><th>term [money]</th><th>{esc(cmp.name)} '
             f"({esc(cmp.plan.solver)})</th><th>this plan ({esc(ctx.plan.solver)})</th>"
             f"<th>this − {esc(cmp.name)}</th></tr></thead><tbody>{rows}{obj}</tbody></table>")
    counts = d.counts()
    said = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"
    clock = ctx.clock
    moved_rows: list[list[object]] = [
        [c.job_id, c.change, c.node_a or "–",
         (clock.text(c.start_a), -1e9 if c.start_a is None else c.start_a),
         c.node_b or "–", (clock.text(c.start_b), -1e9 if c.start_b is None else c.start_b)]
        for c in d.changes]
    moved = data_table("compare-table", [Col("job"), Col("change"), Col(f"node ({cmp.name})"),
                                         Col(f"start ({cmp.name})", True), Col("node (this)"),
                                         Col("start (this)", True)],
                       moved_rows, placeholder="filter changed jobs…",
                       height="short") if d.changes else ""
    delta = node_energy_delta(p, cmp.plan, ctx.plan, ctx.index)
    nz = [k for k in range(ctx.index.N) if abs(delta.energy_delta[k]) > 1e-3
          or delta.jobs_a[k] != delta.jobs_b[k]]
    nz.sort(key=lambda k: -abs(float(delta.energy_delta[k])))
    if nz:
        nz = nz[:40]
        figs["fig-compare"] = {
            "data": [{"type": "bar", "orientation": "h",
                      "y": [ctx.index.node_ids[k] for k in nz],
                      "x": clean(delta.energy_delta[nz]),
                      "marker": {"color": ["#0072B2" if delta.energy_delta[k] >= 0
                                           else "#D55E00" for k in nz]},
                      "customdata": [[int(delta.jobs_a[k]), int(delta.jobs_b[k]),
                                      fmt_number(float(delta.energy_a[k])),
                                      fmt_number(float(delta.energy_b[k]))] for k in nz],
                      "hovertemplate": "%{y}: %{x:,.4g} kWh<br>jobs %{customdata[0]} → "
                                       "%{customdata[1]}<br>energy %{customdata[2]} → "
                                       "%{customdata[3]} kWh<extra></extra>"}],
            "layout": layout(f"energy per node: this plan − {cmp.name} [kWh]",
                             max(220, 60 + 18 * len(nz)), hovermode="closest",
                             yaxis={"autorange": "reversed", "automargin": True},
                             xaxis={"title": {"text": "energy difference [kWh]"},
                                    "zeroline": True, "gridcolor": "#eeeeee"},
                             margin={"l": 120, "r": 20, "t": 40, "b": 45}),
        }
    fig = '<div class="fig" id="fig-compare"></div>' if nz else (
        '<p class="note">No node\'s energy changed.</p>')
    return (f'<p class="note">Compared with <b>{esc(cmp.name)}</b> (solver {esc(cmp.plan.solver)},'
            f" status {esc(cmp.plan.status.value)}); costs recomputed by the evaluator "
            "(optisched.diff). Changed jobs: "
            f"{esc(said)}; {d.unchanged} placed identically.</p>"
            f'<div class="row"><div>{costs}</div><div class="grow">{fig}</div></div>{moved}')
