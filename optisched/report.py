"""A self-contained HTML report of a plan (``optisched report``).

:func:`render_report` returns one HTML page with no external assets. By default
it is interactive: plotly figures (plotly.js inlined once, so the file works
offline) for the node map, fleet power, timelines, a per-node view with a node
selector, feeders, prices, costs and what jobs paid; sortable and filterable
tables of nodes and jobs with clock times in the scenario's time zone; and,
when given a second plan, a comparison (cost terms side by side, moved jobs,
energy difference per node, from :mod:`optisched.diff`). With
``interactive=False`` the figures are the matplotlib PNGs of
:mod:`optisched.viz`, embedded as base64 (a small page without JavaScript
figures, for mail or print). Every section has a stable ``id``
(:data:`SECTIONS`). :func:`write_report` writes the page atomically and,
optionally, the PNG figures (:data:`FIGURES`).
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from optisched import viz
from optisched.arrays import FloatArray, IntArray
from optisched.atomic import write_file_atomically
from optisched.diff import PlanDiff, diff_plans, node_energy_delta, record_of
from optisched.domain import Problem
from optisched.evaluate import Evaluation, evaluate, resource_usage
from optisched.index import Index, compile_index
from optisched.plan import COST_TERMS, Plan

__all__ = [
    "FIGURES",
    "REPORT_STEPS",
    "SECTIONS",
    "Comparison",
    "Report",
    "build_figures",
    "fmt_number",
    "render_report",
    "report_timezone",
    "write_report",
]

log = logging.getLogger(__name__)

SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("map", "Node map"),
    ("fleet", "Fleet power"),
    ("timeline", "Timeline"),
    ("nodeview", "Node view"),
    ("nodes", "Nodes"),
    ("costs", "Cost breakdown"),
    ("compare", "Comparison"),
    ("feeders", "Feeders"),
    ("prices", "Prices and carbon"),
    ("jobs", "Jobs"),
    ("slo", "SLO, deadlines and drops"),
)
"""Section ids (stable, for links and tests) and titles, in page order."""

FIGURES: tuple[str, ...] = ("costs", "gantt", "energy", "battery", "grid", "prices", "feeders",
                            "jobs")
"""Matplotlib figures (:func:`build_figures`), written as ``<name>.png`` with ``--png``."""

_STATIC_SECTION = {"costs": "costs", "gantt": "timeline", "energy": "nodeview",
                   "battery": "nodeview", "grid": "fleet", "prices": "prices",
                   "feeders": "feeders", "jobs": "slo"}
"""Section of each PNG figure in a static (``interactive=False``) page."""

_STATIC_NODEVIEW = ('<p class="note">The fleet and up to {top} nodes chosen by what matters '
                    "(busiest, most energy, battery user, most expensive): energy [kW], "
                    "battery state of charge [kWh]. The interactive report has a selector "
                    "for any node.</p>")

REPORT_STEPS: tuple[str, ...] = ("evaluate", "attribute costs", "compare", "series",
                                 "timeline", "map", "tables", "figures", "page")
"""Steps :func:`render_report` reports to its ``progress`` callback, in order."""

PNG_DPI = 80
"""Resolution of the embedded and written PNG images [dots per inch]."""

MAX_LANES = 64
"""GPU lanes drawn per node in the node view; wider nodes are drawn in GPU units."""


@dataclass
class Report:
    """A rendered report.

    Attributes
    ----------
    html : str
        The self-contained page.
    images : dict of str to bytes
        PNG bytes of every figure by name (:data:`FIGURES`); empty for an
        interactive page rendered without ``png=True``.
    """

    html: str
    images: dict[str, bytes] = field(default_factory=dict)


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


# --------------------------------------------------------------------------- formatting


def fmt_number(v: float | None, digits: int = 3) -> str:
    """A number for people: thousands separators, no exponent, noise shown as 0.

    Magnitudes below :data:`optisched.viz.DISPLAY_TOL` print as ``0``; from
    1,000 up no decimals; below that ``digits`` significant digits (at most two
    decimals from 1 up). None, NaN and inf print as ``–``.
    """
    if v is None or not math.isfinite(v):
        return "–"
    a = abs(v)
    if a < viz.DISPLAY_TOL:
        return "0"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 1:
        dec = max(0, min(2, digits - 1 - math.floor(math.log10(a))))
        return f"{v:.{dec}f}"
    dec = digits - 1 - math.floor(math.log10(a))
    return f"{v:.{min(dec, 8)}f}".rstrip("0")


def _snap(v: float) -> float:
    return 0.0 if abs(v) < viz.DISPLAY_TOL else v


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def report_timezone(problem: Problem) -> tzinfo:
    """The scenario's time zone: its zone name when it has one, else the horizon's UTC offset."""
    for owner in (problem.scenario, problem.horizon):
        name = getattr(owner, "timezone", None)
        if isinstance(name, str) and name:
            return ZoneInfo(name)
    tz = problem.horizon.start.tzinfo
    assert tz is not None  # Horizon requires an offset
    return tz


def _zone_label(problem: Problem, tz: tzinfo) -> str:
    off = problem.horizon.start.astimezone(tz).utcoffset() or timedelta(0)
    mins = int(off.total_seconds() // 60)
    sign = "+" if mins >= 0 else "−"
    offset = f"UTC{sign}{abs(mins) // 60:02d}:{abs(mins) % 60:02d}"
    return f"{tz} ({offset})" if isinstance(tz, ZoneInfo) else offset


class _Clock:
    """Slot numbers to local clock times of the scenario."""

    def __init__(self, problem: Problem) -> None:
        self.tz = report_timezone(problem)
        self.start = problem.horizon.start.astimezone(self.tz)
        self.step = timedelta(minutes=problem.horizon.slot_minutes)
        self.label = _zone_label(problem, self.tz)
        self.days = len({(self.start + k * self.step).date()
                         for k in range(problem.horizon.slots)})

    def at(self, slot: int) -> datetime:
        return (self.start + slot * self.step).astimezone(self.tz)

    def axis(self, slots: int) -> list[str]:
        """Local wall-clock strings of slot edges ``0..slots`` for a plotly date axis."""
        return [self.at(k).strftime("%Y-%m-%d %H:%M") for k in range(slots + 1)]

    def text(self, slot: int | None) -> str:
        if slot is None:
            return ""
        t = self.at(slot)
        same_day = self.days == 1 and t.date() == self.start.date()
        return t.strftime("%H:%M") if same_day else t.strftime("%d %b %H:%M")


# --------------------------------------------------------------------------- tables


@dataclass
class _Col:
    header: str
    numeric: bool = False
    wide: bool = False


def _cell(v: object, col: _Col) -> str:
    if col.numeric:
        if isinstance(v, tuple):  # (display text, sort value)
            text, key = v
            return f'<td class="n" data-v="{float(key)!r}">{_e(text)}</td>'
        if isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v)):
            x = _snap(float(v))
            text = f"{int(x):,}" if x.is_integer() and abs(x) < 1e15 else fmt_number(x)
            return f'<td class="n" data-v="{x!r}">{_e(text)}</td>'
        return '<td class="n" data-v="-1e308">–</td>'
    cls = ' class="w"' if col.wide else ""
    return f"<td{cls}>{_e('' if v is None else v)}</td>"


def _table(table_id: str, cols: Sequence[_Col], rows: Sequence[Sequence[object]],
           placeholder: str = "", height: bool | str = True) -> str:
    head = "".join(f'<th data-col="{k}" title="click to sort">{_e(c.header)}</th>'
                   for k, c in enumerate(cols))
    body = "".join("<tr>" + "".join(_cell(v, c) for v, c in zip(r, cols, strict=True))
                   + "</tr>" for r in rows)
    filt = (f'<input class="filter" data-table="{table_id}" placeholder="{_e(placeholder)}"> '
            f'<span class="count" id="{table_id}-count">{len(rows)} rows</span>'
            if placeholder else "")
    wrap = ("tablewrap " + (height if isinstance(height, str) else "tall")) if height else (
        "tablewrap")
    return (f'{filt}<div class="{wrap}"><table id="{table_id}" class="sortable">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _kv_table(rows: Sequence[tuple[str, str]], table_id: str = "") -> str:
    tid = f' id="{table_id}"' if table_id else ""
    return (f'<table class="kv"{tid}>' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>"
                                                  for k, v in rows) + "</table>")


# --------------------------------------------------------------------------- data


def _clean(a: npt.ArrayLike, digits: int = 5) -> list[float | None]:
    """A float array as a JSON-safe list: rounding noise 0, non-finite None, ~digits kept."""
    x = np.asarray(a, dtype=float)
    x = np.where(np.abs(x) < viz.DISPLAY_TOL, 0.0, x)
    out: list[float | None] = []
    for v in x.tolist():
        out.append(float(f"{v:.{digits}g}") if math.isfinite(v) else None)
    return out


def _step(a: npt.ArrayLike) -> list[float | None]:
    """Per-slot values with the last one repeated, for ``hv`` steps over slot edges."""
    x = np.asarray(a, dtype=float)
    return _clean(np.concatenate([x, x[-1:]]) if x.size else x)


_KIND_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
                 "#999999", "#332288", "#882255"]
_FLOW = {"pv": ("PV used", "#E69F00"), "discharge": ("battery discharge", "#009E73"),
         "import": ("grid import", "#0072B2"), "charge": ("battery charge", "#56B4E9"),
         "export": ("grid export", "#CC79A7")}


@dataclass
class _Ctx:
    problem: Problem
    plan: Plan
    index: Index
    ev: Evaluation
    nc: viz.NodeCosts
    jc: viz.JobCosts
    clock: _Clock
    kinds: list[str]
    kind_colour: dict[str, str]
    gpu_h: FloatArray
    used: FloatArray  # (N, T) GPUs in use
    highlights: dict[str, list[int]]


def _context(problem: Problem, plan: Plan, index: Index, ev: Evaluation,
             step: Callable[[str], None]) -> _Ctx:
    step("attribute costs")
    nc = viz.node_costs(problem, plan, index)
    jc = viz.job_costs(problem, plan, index, nc)
    kinds = [n.kind or "(no kind)" for n in problem.nodes]
    order = sorted(set(kinds))
    return _Ctx(problem=problem, plan=plan, index=index, ev=ev, nc=nc, jc=jc,
                clock=_Clock(problem), kinds=kinds,
                kind_colour={k: _KIND_COLOURS[i % len(_KIND_COLOURS)]
                             for i, k in enumerate(order)},
                gpu_h=viz.gpu_hours(index, plan),
                used=resource_usage(index, plan.node, plan.start, index.usage[:, 0]),
                highlights=viz.highlight_nodes(problem, plan, index))


def _layout(title: str, height: int, **kw: Any) -> dict[str, Any]:
    lay: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 14}, "x": 0.01, "xanchor": "left"},
        "height": height, "margin": {"l": 60, "r": 20, "t": 40, "b": 45},
        "legend": {"orientation": "h", "y": -0.12, "yanchor": "top", "font": {"size": 11}},
        "hovermode": "x unified", "font": {"size": 11},
        "plot_bgcolor": "#ffffff", "paper_bgcolor": "#ffffff",
    }
    lay.update(kw)
    return lay


def _time_axis(ctx: _Ctx, **kw: Any) -> dict[str, Any]:
    x0, x1 = ctx.clock.axis(0)[0], ctx.clock.axis(ctx.index.T)[-1]
    ax: dict[str, Any] = {"type": "date", "gridcolor": "#eeeeee", "range": [x0, x1],
                          "tickformat": "%H:%M\n%a %d %b" if ctx.clock.days > 1 else "%H:%M"}
    ax.update(kw)
    return ax


def _power_traces(x: list[str], f: Any, sel: IntArray | None,
                  head: FloatArray | None) -> tuple[list[dict[str, Any]], float,
                                                                  float]:
    """Stacked supply/sink areas, the load line and a headroom band; (traces, y min, y max)."""

    def pick(a: FloatArray) -> FloatArray:
        return np.asarray(a.sum(axis=0) if sel is None else a[sel].sum(axis=0), dtype=float)

    traces: list[dict[str, Any]] = []
    imp = pick(f.grid_import)
    load = pick(f.load)
    sup = np.zeros_like(imp)
    sink = np.zeros_like(imp)
    if head is not None and np.any(np.isfinite(head)):
        traces.append({"type": "scatter", "x": x, "y": _step(imp), "mode": "lines",
                       "line": {"width": 0, "shape": "hv"}, "showlegend": False,
                       "hoverinfo": "skip", "name": "import"})
        traces.append({"type": "scatter", "x": x, "y": _step(head), "mode": "lines",
                       "fill": "tonexty", "fillcolor": "rgba(213,94,0,0.10)",
                       "line": {"width": 1, "dash": "dot", "color": "#D55E00", "shape": "hv"},
                       "name": "import limit (headroom); band = spare"})
    for key, arr in (("pv", f.pv_used), ("discharge", f.discharge), ("import", f.grid_import)):
        v = pick(arr)
        sup = sup + v
        if np.any(v > viz.DISPLAY_TOL):
            name, colour = _FLOW[key]
            traces.append({"type": "scatter", "x": x, "y": _step(v), "mode": "lines",
                           "stackgroup": "supply", "line": {"width": 0.5, "shape": "hv",
                                                            "color": colour},
                           "fillcolor": colour, "name": f"{name} [kW]"})
    for key, arr in (("charge", f.charge), ("export", f.grid_export)):
        v = pick(arr)
        sink = sink + v
        if np.any(v > viz.DISPLAY_TOL):
            name, colour = _FLOW[key]
            traces.append({"type": "scatter", "x": x, "y": _step(-v), "mode": "lines",
                           "stackgroup": "sink", "line": {"width": 0.5, "shape": "hv",
                                                          "color": colour},
                           "fillcolor": colour, "name": f"{name} [kW]"})
    traces.append({"type": "scatter", "x": x, "y": _step(load), "mode": "lines",
                   "line": {"color": "#000000", "width": 1.5, "shape": "hv"},
                   "name": "load [kW]"})
    top = float(max(sup.max(initial=0.0), load.max(initial=0.0)))
    return traces, -float(sink.max(initial=0.0)), top


def _yrange(lo: float, hi: float, head: FloatArray | None) -> list[float]:
    """Scale to what flows; show the limit too when it is within 3x of the flows."""
    top = hi if hi > 0 else 1.0
    if head is not None:
        fin = head[np.isfinite(head)]
        if fin.size and float(fin.min()) <= 3.0 * top:
            top = max(top, float(fin.max()) if float(fin.max()) <= 3.0 * top else top)
    return [lo * 1.1 if lo < 0 else 0.0, top * 1.15]


# --------------------------------------------------------------------------- sections


def _summary(ctx: _Ctx) -> str:
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
        ("solver", _e(plan.solver)), ("status", _e(plan.status.value)),
        ("evaluator", state),
        ("objective (evaluator) [money]", _e(fmt_number(ev.objective, 6))),
        ("objective (summary.json) [money]", _e(fmt_number(claimed, 6)) + (
            "" if agrees else ' <span class="bad">differs from the evaluator</span>')),
        ("bound [money]", _e(fmt_number(plan.bound, 6))),
        ("gap", "–" if plan.gap is None else _e(f"{100 * plan.gap:.3f} %")),
        ("horizon", _e(f"{ctx.clock.at(0):%a %d %b %Y %H:%M} – {end:%a %d %b %H:%M}, "
                       f"{hz.slots} slots of {hz.slot_minutes} min, {ctx.clock.label}")),
        ("nodes / jobs", _e(f"{len(p.nodes)} / {len(p.jobs)}")),
        ("jobs", _e(", ".join(f"{k} {v}" for k, v in counts.items()))),
        ("solve time", _e(f"{plan.timings['total']:.3f} s") if "total" in plan.timings else "–"),
    ]
    parts = ['<div class="row"><div>', _kv_table(rows, "summary-table"), "</div><div>",
             "<h3>Where the work runs</h3>", _kind_table(ctx), "</div></div>"]
    if plan.message:
        parts.append(f'<p class="note">{_e(plan.message)}</p>')
    if ev.violations:
        items = "".join(f"<li>{_e(v)}</li>" for v in ev.violations[:30])
        parts.append(f'<p class="bad">violations ({sum(ev.counts.values())}):</p><ul>{items}'
                     "</ul>")
    return "".join(parts)


def _kind_table(ctx: _Ctx) -> str:
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
    cols = [_Col("node kind"), _Col("nodes", True), _Col("nodes with jobs", True),
            _Col("jobs", True), _Col("GPU-hours [h]", True), _Col("energy [kWh]", True),
            _Col("cost [money]", True)]
    return _table("kind-table", cols, rows, height=False)


def _costs(ctx: _Ctx, figs: dict[str, Any]) -> str:
    ev = ctx.ev
    vals = [-ev.costs[k] if k == "export_revenue" else ev.costs[k] for k in COST_TERMS]
    labels = ["−export revenue" if k == "export_revenue" else k for k in COST_TERMS]
    figs["fig-costs"] = {
        "data": [{"type": "bar", "x": labels, "y": _clean(vals),
                  "marker": {"color": [viz._TERM_COLOURS[k] for k in COST_TERMS]},
                  "text": [fmt_number(v) for v in vals], "textposition": "outside",
                  "hovertemplate": "%{x}: %{y:,.4g}<extra></extra>"}],
        "layout": _layout(f"cost terms [money]; objective {fmt_number(ev.objective, 6)}", 300,
                          hovermode="closest", yaxis={"title": {"text": "cost [money]"},
                                                      "gridcolor": "#eeeeee"}),
    }
    rows = "".join(
        f'<tr><td>{_e(k)}</td><td class="n">{_e(fmt_number(v, 6))}</td></tr>'
        for k, v in zip(COST_TERMS, vals, strict=True))
    table = ('<table id="cost-table"><thead><tr><th>term (SPEC §3)</th><th>signed cost '
             f'[money]</th></tr></thead><tbody>{rows}<tr><th>objective</th><td class="n">'
             f"{_e(fmt_number(ev.objective, 6))}</td></tr></tbody></table>")
    return ('<div class="row"><div class="grow"><div class="fig" id="fig-costs"></div></div>'
            f"<div>{table}</div></div>")


def _compare(ctx: _Ctx, cmp: Comparison | None, figs: dict[str, Any]) -> str:
    if cmp is None:
        return '<p class="note">No comparison (turned off).</p>'
    p = ctx.problem
    a = record_of(p, cmp.plan, cmp.name)
    b = record_of(p, ctx.plan, "this plan")
    d: PlanDiff = diff_plans(a, b)
    rows = "".join(
        f'<tr><td>{_e(k)}{" (subtracted)" if k == "export_revenue" else ""}</td>'
        f'<td class="n">{_e(fmt_number(d.costs_a[k], 6))}</td>'
        f'<td class="n">{_e(fmt_number(d.costs_b[k], 6))}</td>'
        f'<td class="n">{_e(fmt_number(d.delta[k], 6))}</td></tr>' for k in d.costs_a)
    obj = (f'<tr><th>objective</th><td class="n">{_e(fmt_number(d.objective_a, 6))}</td>'
           f'<td class="n">{_e(fmt_number(d.objective_b, 6))}</td>'
           f'<td class="n">{_e(fmt_number(d.objective_delta, 6))}</td></tr>')
    costs = (f'<table id="compare-costs"><thead><tr><th>term [money]</th><th>{_e(cmp.name)} '
             f"({_e(cmp.plan.solver)})</th><th>this plan ({_e(ctx.plan.solver)})</th>"
             f"<th>this − {_e(cmp.name)}</th></tr></thead><tbody>{rows}{obj}</tbody></table>")
    counts = d.counts()
    said = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"
    clock = ctx.clock
    moved_rows: list[list[object]] = [
        [c.job_id, c.change, c.node_a or "–",
         (clock.text(c.start_a), -1e9 if c.start_a is None else c.start_a),
         c.node_b or "–", (clock.text(c.start_b), -1e9 if c.start_b is None else c.start_b)]
        for c in d.changes]
    moved = _table("compare-table", [_Col("job"), _Col("change"), _Col(f"node ({cmp.name})"),
                                     _Col(f"start ({cmp.name})", True), _Col("node (this)"),
                                     _Col("start (this)", True)],
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
                      "x": _clean(delta.energy_delta[nz]),
                      "marker": {"color": ["#0072B2" if delta.energy_delta[k] >= 0
                                           else "#D55E00" for k in nz]},
                      "customdata": [[int(delta.jobs_a[k]), int(delta.jobs_b[k]),
                                      fmt_number(float(delta.energy_a[k])),
                                      fmt_number(float(delta.energy_b[k]))] for k in nz],
                      "hovertemplate": "%{y}: %{x:,.4g} kWh<br>jobs %{customdata[0]} → "
                                       "%{customdata[1]}<br>energy %{customdata[2]} → "
                                       "%{customdata[3]} kWh<extra></extra>"}],
            "layout": _layout(f"energy per node: this plan − {cmp.name} [kWh]",
                              max(220, 60 + 18 * len(nz)), hovermode="closest",
                              yaxis={"autorange": "reversed", "automargin": True},
                              xaxis={"title": {"text": "energy difference [kWh]"},
                                     "zeroline": True, "gridcolor": "#eeeeee"},
                              margin={"l": 120, "r": 20, "t": 40, "b": 45}),
        }
    fig = '<div class="fig" id="fig-compare"></div>' if nz else (
        '<p class="note">No node\'s energy changed.</p>')
    return (f'<p class="note">Compared with <b>{_e(cmp.name)}</b> (solver {_e(cmp.plan.solver)},'
            f" status {_e(cmp.plan.status.value)}); costs recomputed by the evaluator "
            "(optisched.diff). Changed jobs: "
            f"{_e(said)}; {d.unchanged} placed identically.</p>"
            f'<div class="row"><div>{costs}</div><div class="grow">{fig}</div></div>{moved}')


def _log_colour(v: FloatArray) -> tuple[list[float | None], list[float], list[str]]:
    """Signed log colour values ``sign·log10(1+|v|)`` with ticks labelled in the real unit."""
    c = np.sign(v) * np.log10(1.0 + np.abs(v))
    hi = float(np.nanmax(np.abs(c), initial=0.0))
    vals: list[float] = [0.0]
    text: list[str] = ["0"]
    for dec in range(0, math.ceil(hi) + 1):
        pos = math.log10(1.0 + 10.0**dec)
        if pos > hi + 0.05:
            break
        vals.append(pos)
        text.append(f"{10**dec:,}")
        if np.any(v < 0) and pos <= float(np.nanmax(-c, initial=0.0)) + 0.05:
            vals.append(-pos)
            text.append(f"−{10**dec:,}")
    return _clean(c), vals, text


def _map(ctx: _Ctx, figs: dict[str, Any]) -> str:
    p = ctx.problem
    f = ctx.plan.flows
    assert f is not None
    have = [k for k, n in enumerate(p.nodes) if n.lat is not None and n.lon is not None]
    if not have:
        return '<p class="note">No node has coordinates (lat, lon in nodes.csv).</p>'
    lat = np.array([p.nodes[k].lat for k in have], dtype=float)
    lon = np.array([p.nodes[k].lon for k in have], dtype=float)
    lat0, lon0 = float(np.median(lat)), float(np.median(lon))
    kx = 111.32 * math.cos(math.radians(lat0))
    X = (lon - lon0) * kx
    Y = (lat - lat0) * 110.57
    dist = np.hypot(X, Y)
    # the dense core: nodes within 2.5x the median distance from the median node
    radius = max(5.0, 2.5 * float(np.median(dist)))
    core = [k for k, d in zip(have, dist, strict=True) if d <= radius]
    panels = [("fig-map", have, f"all {len(have)} nodes")]
    if 3 <= len(core) < len(have):
        panels.append(("fig-map-core", core, f"core: {len(core)} nodes within "
                                              f"{fmt_number(radius)} km"))
    for fig_id, members, title in panels:
        # the whole-area panel labels regions only when there is no core panel to do it
        labels = fig_id != "fig-map" or len(panels) == 1
        figs[fig_id] = _map_figure(ctx, members, lat0, lon0, kx, title, labels)
    missing = len(p.nodes) - len(have)
    note = f" {missing} node(s) without coordinates are not drawn." if missing else ""
    divs = "".join(f'<div class="grow"><div class="fig" id="{fid}"></div></div>'
                   for fid, _, _ in panels)
    return ('<p class="note">Plain projection (equirectangular, km from the median node; no '
            "map tiles): marker size grows with GPUs, colour shows the metric chosen with the "
            "buttons (log scale), symbol the node kind. Grey lines join the nodes of a feeder "
            "to its centre; crosses are user regions. Drag to zoom, double-click to reset."
            f"{_e(note)}</p><div class=\"row\">{divs}</div>")


def _map_figure(ctx: _Ctx, members: list[int], lat0: float, lon0: float, kx: float,
                title: str, labels: bool = True) -> dict[str, Any]:
    p, idx = ctx.problem, ctx.index
    f = ctx.plan.flows
    assert f is not None

    def xy(la: float, lo: float) -> tuple[float, float]:
        return round((lo - lon0) * kx, 3), round((la - lat0) * 110.57, 3)

    def node_xy(k: int) -> tuple[float, float]:
        return xy(float(p.nodes[k].lat or 0.0), float(p.nodes[k].lon or 0.0))

    energy = idx.dt * f.load.sum(axis=1)
    metrics = {"energy [kWh]": energy, "jobs": ctx.nc.jobs.astype(float),
               "cost [money]": ctx.nc.total}
    traces: list[dict[str, Any]] = []
    groups: dict[str, list[int]] = {}
    for k in members:
        if p.nodes[k].feeder:
            groups.setdefault(str(p.nodes[k].feeder), []).append(k)
    if groups:
        lx: list[float | None] = []
        ly: list[float | None] = []
        cx, cy, ct = [], [], []
        for name, mem in sorted(groups.items()):
            pts = [node_xy(k) for k in mem]
            mx = sum(q[0] for q in pts) / len(pts)
            my = sum(q[1] for q in pts) / len(pts)
            for q in pts:
                lx += [mx, q[0], None]
                ly += [my, q[1], None]
            cx.append(mx)
            cy.append(my)
            ct.append(f"{name} ({len(mem)})")
        traces.append({"type": "scatter", "x": lx, "y": ly, "mode": "lines",
                       "line": {"color": "#bbbbbb", "width": 1}, "hoverinfo": "skip",
                       "name": "feeder members", "legendgroup": "feeder"})
        traces.append({"type": "scatter", "x": cx, "y": cy,
                       "mode": "markers+text" if labels else "markers",
                       "text": ct, "textposition": "top center",
                       "textfont": {"size": 9, "color": "#777777"},
                       "marker": {"symbol": "square-open", "size": 8, "color": "#777777"},
                       "name": "feeder", "legendgroup": "feeder", "hoverinfo": "text"})
    xs = [node_xy(k) for k in members]
    x_lo, x_hi = min(q[0] for q in xs), max(q[0] for q in xs)
    y_lo, y_hi = min(q[1] for q in xs), max(q[1] for q in xs)
    if p.regions:
        rx, ry, rt = [], [], []
        for name, r in p.regions.items():
            q = xy(r.lat, r.lon)
            if x_lo - 5 <= q[0] <= x_hi + 5 and y_lo - 5 <= q[1] <= y_hi + 5:
                rx.append(q[0])
                ry.append(q[1])
                rt.append(name)
        if rx:
            traces.append({"type": "scatter", "x": rx, "y": ry,
                           "mode": "markers+text" if labels else "markers",
                           "text": rt, "textposition": "bottom center",
                           "textfont": {"size": 9, "color": "#999999"},
                           "marker": {"symbol": "x-thin-open", "size": 7, "color": "#999999",
                                      "line": {"width": 1}},
                           "name": "user region", "hoverinfo": "text"})
    symbols = ["circle", "square", "diamond", "triangle-up", "star", "hexagon", "cross",
               "pentagon"]
    all_kinds = sorted(set(ctx.kinds))
    kinds = [k for k in all_kinds if any(ctx.kinds[m] == k for m in members)]
    colours = {name: _log_colour(v) if name != "jobs" else (_clean(v), [], [])
               for name, v in metrics.items()}
    kind_traces: list[int] = []
    for kind in kinds:
        mem = [k for k in members if ctx.kinds[k] == kind]
        pts = [node_xy(k) for k in mem]
        c0 = colours["energy [kWh]"][0]
        kind_traces.append(len(traces))
        traces.append({
            "type": "scatter", "mode": "markers", "name": kind,
            "x": [q[0] for q in pts], "y": [q[1] for q in pts],
            "marker": {"symbol": symbols[all_kinds.index(kind) % len(symbols)],
                       "size": [float(8 + 2.5 * math.log2(max(1.0, idx.capacity[k, 0])))
                                for k in mem],
                       "color": [c0[k] for k in mem], "coloraxis": "coloraxis",
                       "line": {"color": "#333333", "width": 0.8}},
            "customdata": [[p.nodes[k].node_id, int(ctx.nc.jobs[k]), fmt_number(energy[k]),
                            fmt_number(float(ctx.nc.total[k])), p.nodes[k].feeder or "–",
                            p.nodes[k].region or "–", fmt_number(float(idx.capacity[k, 0]))]
                           for k in mem],
            "hovertemplate": "<b>%{customdata[0]}</b> (" + _e(kind) + ", %{customdata[6]} "
                             "GPUs)<br>jobs %{customdata[1]}, energy %{customdata[2]} kWh, "
                             "cost %{customdata[3]}<br>feeder %{customdata[4]}, region "
                             "%{customdata[5]}<extra></extra>",
        })
    buttons = []
    for name, (col, tv, tt) in colours.items():
        per = [[col[k] for k in members if ctx.kinds[k] == kind] for kind in kinds]
        bar: dict[str, Any] = {"coloraxis.colorbar.title.text": name}
        bar["coloraxis.colorbar.tickvals"] = tv or None
        bar["coloraxis.colorbar.ticktext"] = tt or None
        buttons.append({"label": name, "method": "update",
                        "args": [{"marker.color": per}, bar, kind_traces]})
    _, tv0, tt0 = colours["energy [kWh]"]
    return {
        "data": traces,
        "layout": _layout(title, 520, hovermode="closest",
                          xaxis={"title": {"text": f"km east of {lat0:.2f}°N {lon0:.2f}°E"},
                                 "zeroline": False, "gridcolor": "#f0f0f0"},
                          yaxis={"title": {"text": "km north"}, "scaleanchor": "x",
                                 "scaleratio": 1, "zeroline": False, "gridcolor": "#f0f0f0"},
                          coloraxis={"colorscale": [[0, "#f7f7f7"], [0.2, "#c6dbef"],
                                                    [0.6, "#4292c6"], [1, "#08306b"]],
                                     "colorbar": {"title": {"text": "energy [kWh]"},
                                                  "len": 0.75, "tickvals": tv0,
                                                  "ticktext": tt0, "thickness": 14}},
                          legend={"orientation": "h", "y": -0.15, "yanchor": "top"},
                          updatemenus=[{"type": "buttons", "direction": "right", "x": 1.0,
                                        "y": 1.12, "xanchor": "right", "showactive": True,
                                        "font": {"size": 10}, "buttons": buttons}],
                          margin={"l": 55, "r": 10, "t": 70, "b": 45}),
    }


def _nodes(ctx: _Ctx) -> str:
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
    cols = [_Col("node"), _Col("kind"), _Col("feeder"), _Col("GPUs", True), _Col("jobs", True),
            _Col("GPU-h [h]", True), _Col("busy [%]", True), _Col("load [kWh]", True),
            _Col("PV used [kWh]", True), _Col("battery out [kWh]", True),
            _Col("import [kWh]", True), _Col("export [kWh]", True),
            _Col("peak import [kW]", True), _Col("peak headroom use [%]", True),
            _Col("energy + carbon [money]", True), _Col("export revenue [money]", True),
            _Col("battery wear [money]", True), _Col("demand [money]", True),
            _Col("switching [money]", True), _Col("latency + tardiness [money]", True),
            _Col("total [money]", True)]
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
        f"penalties ({_e(fmt_number(nc.drop))}) belong to no node. Click a header to sort; "
        "type to filter.</p>"
        + _table("node-table", cols, rows, placeholder="filter nodes (id, kind, feeder)…")
    )


def _fleet(ctx: _Ctx, figs: dict[str, Any]) -> str:
    f = ctx.plan.flows
    assert f is not None
    idx = ctx.index
    x = ctx.clock.axis(idx.T)
    head = idx.headroom.sum(axis=0) if np.all(np.isfinite(idx.headroom)) else None
    traces, lo, hi = _power_traces(x, f, None, head)
    figs["fig-fleet"] = {"data": traces,
                         "layout": _layout(f"fleet power, {idx.N} nodes [kW] · local time "
                                           f"{ctx.clock.label}", 380,
                                           xaxis=_time_axis(ctx),
                                           yaxis={"title": {"text": "power [kW]"},
                                                  "range": _yrange(lo, hi, head),
                                                  "gridcolor": "#eeeeee"})}
    note = ""
    if head is not None:
        spare = head - f.grid_import.sum(axis=0)
        note = (f" Fleet import limit {fmt_number(float(head.min()))}–"
                f"{fmt_number(float(head.max()))} kW; spare at the tightest slot "
                f"{fmt_number(float(spare.min()))} kW.")
    return ('<p class="note">Supply above zero (PV used, battery discharge, grid import), '
            "sinks below (battery charge, export); black: load. The axis is scaled to what "
            "flows; the shaded band is the spare import headroom above the import (it runs "
            f"off the top when the limit is far above).{_e(note)}</p>"
            '<div class="fig" id="fig-fleet"></div>')


def _timeline(ctx: _Ctx, figs: dict[str, Any]) -> str:
    p, idx = ctx.problem, ctx.index
    x = ctx.clock.axis(idx.T)
    used = ctx.used
    # GPUs busy per node kind / per feeder, stacked
    groupings = {"kind": ctx.kinds,
                 "feeder": [n.feeder or f"({k}, no feeder)" for n, k in zip(p.nodes, ctx.kinds,
                                                                            strict=True)]}
    traces: list[dict[str, Any]] = []
    vis: dict[str, list[bool]] = {}
    spans: dict[str, tuple[int, int]] = {}
    for gname, keys in groupings.items():
        first = len(traces)
        names = sorted(set(keys), key=lambda g: -float(sum(ctx.gpu_h[k] for k in range(idx.N)
                                                            if keys[k] == g)))
        for g in names:
            sel = [k for k in range(idx.N) if keys[k] == g]
            v = used[sel].sum(axis=0)
            if not np.any(v > viz.DISPLAY_TOL):
                continue
            colour = ctx.kind_colour.get(g) if gname == "kind" else None
            t: dict[str, Any] = {"type": "scatter", "x": x, "y": _step(v), "mode": "lines",
                                 "stackgroup": gname, "name": g, "visible": gname == "kind",
                                 "line": {"width": 0.5, "shape": "hv"},
                                 "hovertemplate": f"{_e(g)}: " + "%{y:,.4g} GPUs<extra></extra>"}
            if colour:
                t["line"]["color"] = colour
                t["fillcolor"] = colour
            traces.append(t)
        spans[gname] = (first, len(traces))
    for gname in groupings:
        a, b = spans[gname]
        vis[gname] = [a <= i < b for i in range(len(traces))]
    capacity = float(idx.capacity[:, 0].sum())
    figs["fig-busy"] = {
        "data": traces,
        "layout": _layout(f"GPUs in use (fleet capacity {fmt_number(capacity)} GPUs) · local time "
                          f"{ctx.clock.label}", 340,
                          xaxis=_time_axis(ctx), yaxis={"title": {"text": "GPUs in use"},
                                                        "gridcolor": "#eeeeee"},
                          updatemenus=[{"type": "buttons", "direction": "right", "x": 1.0,
                                        "xanchor": "right", "y": 1.15, "showactive": True,
                                        "buttons": [{"label": f"by {g}", "method": "update",
                                                     "args": [{"visible": vis[g]}]}
                                                    for g in groupings]}]),
    }
    # heat map: share of GPUs busy per node and slot, nodes with jobs, grouped by kind
    rows = [k for k in range(idx.N) if ctx.nc.jobs[k] > 0]
    kind_work: dict[str, float] = {}
    for k in rows:
        kind_work[ctx.kinds[k]] = kind_work.get(ctx.kinds[k], 0.0) + float(ctx.gpu_h[k])
    # the kind doing most of the work on top, then each node by its GPU-hours
    rows.sort(key=lambda k: (-kind_work[ctx.kinds[k]], ctx.kinds[k], -float(ctx.gpu_h[k]),
                             idx.node_ids[k]))
    idle = idx.N - len(rows)
    if rows:
        cap = idx.capacity[rows, 0][:, None]
        share = np.where(cap > 0, used[rows] / np.where(cap > 0, cap, 1.0), 0.0)
        share = np.where(idx.available[rows], share, np.nan)
        running = np.zeros((len(rows), idx.T), dtype=np.int64)
        pos = {n: r for r, n in enumerate(rows)}
        for j in np.nonzero(ctx.plan.node >= 0)[0]:
            n = int(ctx.plan.node[j])
            if n in pos:
                s = int(ctx.plan.start[j])
                e = s + int(idx.duration(int(j), n))
                running[pos[n], max(0, s):max(0, min(idx.T, e))] += 1
        labels = [f"{idx.node_ids[k]} ({ctx.kinds[k]})" for k in rows]
        figs["fig-heat"] = {
            "data": [{"type": "heatmap", "x": x[:-1], "y": labels,
                      "z": [_clean(100.0 * r, 4) for r in share],
                      "customdata": running.tolist(),
                      "colorscale": [[0, "#f7fbff"], [0.001, "#deebf7"], [0.5, "#6baed6"],
                                     [1, "#08306b"]], "zmin": 0, "zmax": 100,
                      "colorbar": {"title": {"text": "GPUs busy [%]"}, "len": 0.9},
                      "xgap": 0, "ygap": 1,
                      "hovertemplate": "%{y}<br>%{x}: %{z:.0f} % of GPUs busy, "
                                       "%{customdata} job(s)<extra></extra>"}],
            "layout": _layout("share of GPUs busy per node (grey: unavailable) · local time "
                              f"{ctx.clock.label}",
                              int(min(1400, 110 + 16 * len(rows))), hovermode="closest",
                              xaxis=_time_axis(ctx), plot_bgcolor="#bbbbbb",
                              yaxis={"autorange": "reversed", "automargin": True,
                                     "tickfont": {"size": 10 if len(rows) <= 60 else 8}},
                              margin={"l": 160, "r": 20, "t": 40, "b": 45}),
        }
    note = f" {idle} node(s) without jobs are left out." if idle else ""
    return ('<p class="note">Aggregate views that stay readable at thousands of jobs: GPUs in '
            "use stacked by node kind or by feeder (buttons), and each node's busy share per "
            f"slot. Drag to zoom, double-click to reset.{_e(note)} The job lanes of one node "
            "are in "
            '<a href="#nodeview">Node view</a>.</p><div class="fig" id="fig-busy"></div>'
            + ('<div class="fig" id="fig-heat"></div>' if rows else ""))


def _lanes(ctx: _Ctx) -> dict[int, list[list[float]]]:
    """Per node: [job, first slot, end slot, first lane, lanes] with jobs packed on GPU lanes."""
    idx, plan = ctx.index, ctx.plan
    per: dict[int, list[tuple[int, int, int]]] = {}
    for jj in np.nonzero(plan.node >= 0)[0].tolist():
        n = int(plan.node[jj])
        s = int(plan.start[jj])
        lo, hi = max(0, s), min(idx.T, s + int(idx.duration(jj, n)))
        if hi > lo:
            per.setdefault(n, []).append((jj, lo, hi))
    out: dict[int, list[list[float]]] = {}
    for n, items in per.items():
        cap = float(idx.capacity[n, 0])
        unit = 1.0 if cap <= MAX_LANES else cap / MAX_LANES  # GPUs per drawn lane
        L = max(1, math.ceil(cap / unit))
        free_at = np.zeros(L + 64, dtype=np.int64)  # end slot of the lane's last job
        placed: list[list[float]] = []
        for j, a, b in sorted(items, key=lambda x: (x[1], -float(idx.usage[x[0], 0]), x[0])):
            need = max(1, math.ceil(float(idx.usage[j, 0]) / unit - 1e-9))
            ok = free_at <= a
            lane: int = -1
            run = 0
            for q in range(len(ok)):
                run = run + 1 if ok[q] else 0
                if run >= need:
                    lane = q - need + 1
                    break
            if lane < 0:  # fractional overlaps: stack above
                lane = len(free_at)
                free_at = np.concatenate([free_at, np.zeros(need, dtype=np.int64)])
            free_at[lane:lane + need] = b
            placed.append([float(j), float(a), float(b), lane * unit, need * unit])
        out[n] = placed
    return out


def _nodeview(ctx: _Ctx, data: dict[str, Any]) -> str:
    p, idx = ctx.problem, ctx.index
    f = ctx.plan.flows
    assert f is not None
    lanes = _lanes(ctx)
    nodes = []
    for k, node in enumerate(p.nodes):
        nodes.append({
            "id": node.node_id, "kind": ctx.kinds[k], "gpus": float(idx.capacity[k, 0]),
            "battery": float(idx.battery_kwh[k]), "soc_min": float(idx.soc_min[k]),
            "soc_max": float(idx.soc_max[k]), "soc0": float(idx.soc_init[k]),
            "pv": _step(f.pv_used[k]), "dis": _step(f.discharge[k]),
            "imp": _step(f.grid_import[k]), "chg": _step(-f.charge[k]),
            "exp": _step(-f.grid_export[k]), "load": _step(f.load[k]),
            "head": _step(idx.headroom[k]) if np.all(np.isfinite(idx.headroom[k])) else None,
            "soc": _clean(np.concatenate([[idx.soc_init[k]], f.soc[k]])),
            "lanes": lanes.get(k, []),
            "stats": [int(ctx.nc.jobs[k]), fmt_number(float(ctx.gpu_h[k])),
                      fmt_number(float(ctx.nc.energy_kwh[k])),
                      fmt_number(float(ctx.nc.pv_kwh[k])),
                      fmt_number(float(idx.dt * f.discharge[k].sum())),
                      fmt_number(float(ctx.nc.import_kwh[k])),
                      fmt_number(float(ctx.nc.total[k])), node.feeder or "–",
                      node.region or "–"],
        })
    jobs = [{"id": p.jobs[j].job_id, "kind": p.jobs[j].kind or "job",
             "gpus": float(idx.usage[j, 0]), "e": fmt_number(float(ctx.jc.energy_kwh[j])),
             "c": fmt_number(float(ctx.jc.total[j]))} for j in range(idx.J)]
    job_kinds = sorted({str(jb["kind"]) for jb in jobs})
    data["nodes"] = nodes
    data["jobs"] = jobs
    data["jobKinds"] = {k: _KIND_COLOURS[i % len(_KIND_COLOURS)] for i, k in enumerate(job_kinds)}
    busiest = ctx.highlights["busiest"]
    first = busiest[0] if busiest else 0
    data["first"] = first
    chips = []
    for key, title in viz.HIGHLIGHTS:
        picks = ctx.highlights.get(key, [])
        btns = " ".join(f'<button class="pick" data-node="{k}">{_e(idx.node_ids[k])}</button>'
                        for k in picks) or '<span class="note">none</span>'
        chips.append(f'<div class="chip" id="pick-{key}"><b>{_e(title)}:</b> {btns}</div>')
    by_kind: dict[str, list[int]] = {}
    for k in range(idx.N):
        by_kind.setdefault(ctx.kinds[k], []).append(k)
    opts = "".join(
        f'<optgroup label="{_e(kind)}">' + "".join(
            f'<option value="{k}"{" selected" if k == first else ""}>{_e(idx.node_ids[k])} '
            f"({int(ctx.nc.jobs[k])} jobs)</option>" for k in mem) + "</optgroup>"
        for kind, mem in sorted(by_kind.items()))
    return ('<div class="picks">' + "".join(chips) + "</div>"
            '<p><label for="node-select"><b>Node:</b></label> '
            f'<select id="node-select">{opts}</select> <span id="nv-stats" class="note"></span>'
            "</p>"
            '<p class="note">Power of the node [kW] with its import limit as a band, battery '
            "state of charge [kWh] with reserve and maximum, and its jobs on GPU lanes (a job "
            "takes as many lanes as GPUs; nodes wider than "
            f"{MAX_LANES} GPUs are drawn in lanes of several GPUs). Drag to zoom.</p>"
            '<div class="fig" id="nv-power"></div><div class="fig" id="nv-battery"></div>'
            '<div class="fig" id="nv-jobs"></div>')


def _feeders(ctx: _Ctx, figs: dict[str, Any]) -> str:
    idx = ctx.index
    f = ctx.plan.flows
    assert f is not None
    F = len(idx.feeder_ids)
    if F == 0:
        return '<p class="note">No feeders in this bundle.</p>'
    net = np.zeros((F, idx.T))
    has = idx.feeder_of >= 0
    np.add.at(net, idx.feeder_of[has], (f.grid_import - f.grid_export)[has])
    x = ctx.clock.axis(idx.T)
    traces = []
    rows: list[list[object]] = []
    for k, fid in enumerate(idx.feeder_ids):
        lim = idx.feeder_headroom[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            use = np.where(np.isfinite(lim) & (lim > viz.DISPLAY_TOL), 100.0 * net[k] / lim,
                           np.nan)
        members = int((idx.feeder_of == k).sum())
        traces.append({"type": "scatter", "x": x, "y": _step(use), "mode": "lines",
                       "line": {"shape": "hv", "width": 1.2}, "name": fid,
                       "hovertemplate": f"{_e(fid)}: " + "%{y:.1f} %<extra></extra>"})
        fin = use[np.isfinite(use)]
        rows.append([fid, members, float(net[k].max()), float(np.nanmin(np.where(
            np.isfinite(lim), lim, np.nan))) if np.any(np.isfinite(lim)) else None,
            float(fin.max()) if fin.size else None,
            int((net[k] - lim > 1e-6).sum())])
    traces.append({"type": "scatter", "x": [x[0], x[-1]], "y": [100, 100], "mode": "lines",
                   "line": {"color": "#D55E00", "dash": "dash"}, "name": "limit (100 %)",
                   "hoverinfo": "skip"})
    figs["fig-feeders"] = {"data": traces,
                           "layout": _layout("feeder net import as a share of its headroom [%] · "
                                             "local time "
                                             f"{ctx.clock.label}",
                                             320, xaxis=_time_axis(ctx),
                                             yaxis={"title": {"text": "use of headroom [%]"},
                                                    "gridcolor": "#eeeeee"})}
    cols = [_Col("feeder"), _Col("nodes", True), _Col("peak net import [kW]", True),
            _Col("lowest headroom [kW]", True), _Col("peak use [%]", True),
            _Col("slots over", True)]
    return ('<p class="note">Net import (import − export) of each feeder\'s nodes against the '
            "feeder's headroom (SPEC §2 constraint 7).</p>"
            '<div class="fig" id="fig-feeders"></div>'
            + _table("feeder-table", cols, rows, height=False))


def _prices(ctx: _Ctx, figs: dict[str, Any]) -> str:
    p = ctx.problem
    if not p.tariffs:
        return '<p class="note">No prices.csv: energy is free.</p>'
    x = ctx.clock.axis(ctx.index.T)
    traces = []
    for i, (name, t) in enumerate(sorted(p.tariffs.items())[:8]):
        colour = _KIND_COLOURS[i % len(_KIND_COLOURS)]
        traces.append({"type": "scatter", "x": x, "y": _step(t.price), "mode": "lines",
                       "line": {"shape": "hv", "color": colour, "width": 1.6},
                       "name": f"{name} price [money/kWh]"})
        if any(v != 0 for v in t.export_price):
            traces.append({"type": "scatter", "x": x, "y": _step(t.export_price),
                           "mode": "lines", "line": {"shape": "hv", "color": colour,
                                                     "dash": "dash", "width": 1},
                           "name": f"{name} export [money/kWh]"})
    carbon = max(p.tariffs.values(), key=lambda t: sum(t.carbon_g_per_kwh)).carbon_g_per_kwh
    if any(v > 0 for v in carbon):
        traces.append({"type": "scatter", "x": x, "y": _step(carbon), "mode": "lines",
                       "yaxis": "y2", "line": {"shape": "hv", "color": "#999999",
                                               "dash": "dot", "width": 1.5},
                       "name": "carbon intensity [gCO2/kWh]"})
    figs["fig-prices"] = {
        "data": traces,
        "layout": _layout(f"import and export prices; carbon intensity of import · local time "
                          f"{ctx.clock.label}", 330, margin={"l": 60, "r": 70, "t": 40, "b": 45},
                          xaxis=_time_axis(ctx),
                          yaxis={"title": {"text": "price [money/kWh]"}, "gridcolor": "#eeeeee"},
                          yaxis2={"title": {"text": "carbon [gCO2/kWh]"}, "overlaying": "y",
                                  "side": "right", "rangemode": "tozero"}),
    }
    return '<div class="fig" id="fig-prices"></div>'


def _jobs(ctx: _Ctx) -> str:
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
    cols = [_Col("job"), _Col("kind"), _Col("status"), _Col("node"), _Col("node kind"),
            _Col("GPUs", True), _Col("start", True), _Col("end", True),
            _Col("energy [kWh]", True), _Col("energy cost [money]", True),
            _Col("latency [ms]", True), _Col("SLO [ms]", True),
            _Col("latency cost [money]", True), _Col("tardiness cost [money]", True),
            _Col("drop penalty [money]", True), _Col("total [money]", True),
            _Col("note", wide=True)]
    over = float(jc.overhead.sum())
    return (
        f'<p class="note">Every job, most expensive first; start and end in local time '
        f"({_e(clock.label)}), end exclusive. <b>How cost is attributed:</b> a job's energy is "
        "its own draw (power × power factor of the node over its slots in the horizon); it "
        "pays that energy at its node's average gross energy cost per kWh of load "
        "(import energy + carbon + battery wear of the node over the horizon, divided by "
        "everything the node drew, idle draw included), plus its latency and tardiness cost, "
        "or its drop penalty. What stays with the nodes — the idle draw's share, demand "
        "charges, switching, minus export revenue — is "
        f"{_e(fmt_number(over))} [money]; jobs ({_e(fmt_number(float(jc.total.sum())))}) plus "
        f"nodes add up to the objective ({_e(fmt_number(ctx.ev.objective, 6))}). For a "
        "dropped job the note compares its penalty with a grid-priced insertion estimate (job "
        "energy plus idle draw where the node is off, at the import price incl. carbon, plus "
        "latency and tardiness; it ignores PV, battery, headroom, feeder, demand and "
        "switching, so it is an estimate, not a bound).</p>"
        + _table("job-table", cols, rows, placeholder="filter jobs (id, kind, node, status)…")
    )


def _slo(ctx: _Ctx, figs: dict[str, Any]) -> str:
    outcomes = [o for o in viz.job_outcomes(ctx.problem, ctx.plan, ctx.index)
                if o.paid > viz.DISPLAY_TOL]
    if not outcomes:
        return ('<p class="ok" id="slo-none">No violations: every job ran within its latency '
                "SLO and by its deadline, and none was dropped.</p>")
    outcomes.sort(key=lambda o: (-o.paid, o.job_id))
    top = outcomes[:30]
    names = [f"{o.job_id} ({o.status})" for o in top]
    traces = []
    for key, colour in (("latency", "#56B4E9"), ("tardiness", "#E69F00"), ("drop", "#D55E00")):
        v = [getattr(o, f"{key}_cost") for o in top]
        if any(x > 0 for x in v):
            traces.append({"type": "bar", "orientation": "h", "y": names, "x": _clean(v),
                           "name": f"{key} [money]", "marker": {"color": colour},
                           "customdata": [o.reason for o in top],
                           "hovertemplate": "%{y}: %{x:,.4g}<br>%{customdata}<extra></extra>"})
    n_lat = sum(o.latency_cost > 0 for o in outcomes)
    n_tard = sum(o.tardiness_cost > 0 for o in outcomes)
    n_drop = sum(o.drop_cost > 0 for o in outcomes)
    figs["fig-slo"] = {"data": traces,
                       "layout": _layout("what jobs paid beyond energy [money]",
                                         max(220, 80 + 20 * len(top)), barmode="stack",
                                         hovermode="closest",
                                         yaxis={"autorange": "reversed", "automargin": True},
                                         xaxis={"title": {"text": "cost [money]"},
                                                "gridcolor": "#eeeeee"})}
    more = f" (the {len(top)} most expensive drawn)" if len(outcomes) > len(top) else ""
    return (f'<p class="note">{n_lat} job(s) over their latency SLO, {n_tard} late, '
            f"{n_drop} dropped{more}; the reasons are in the job table.</p>"
            '<div class="fig" id="fig-slo"></div>')


# --------------------------------------------------------------------------- page

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1360px;padding:0 16px 2em;color:#222;box-sizing:border-box}
h1{font-size:1.45em;margin:.6em 0 .3em}h3{font-size:1em;margin:.2em 0 .4em}
h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.4em;font-size:1.2em}
nav{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #eee;z-index:5;
font-size:.9em}nav a{margin-right:.9em;white-space:nowrap}
img{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:12px;margin:.3em 0}
th,td{border:1px solid #ddd;padding:2px 5px;vertical-align:top}
th{background:#f4f4f4;cursor:pointer;font-weight:600;text-align:left}
table.sortable th{white-space:normal;max-width:7.5em;line-height:1.15}
table.sortable th[data-dir=asc]::after{content:" ▲"}
table.sortable th[data-dir=desc]::after{content:" ▼"}
thead th{position:sticky;top:0;z-index:1}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.w{min-width:16em;max-width:30em;white-space:normal}
.tablewrap{max-width:100%;overflow:auto;border:1px solid #e4e4e4}
.tablewrap.tall{max-height:34em}.tablewrap.short{max-height:18em}
.tablewrap table{margin:0}
table.kv th{cursor:default;white-space:nowrap}
.bad{color:#b00020;font-weight:bold}.ok{color:#1b7f3b}.note{color:#555;font-size:.9em}
input.filter{margin:.3em 0;padding:.25em;width:22em}.count{color:#777;font-size:.85em}
.row{display:flex;gap:1.5em;flex-wrap:wrap;align-items:flex-start}.row>div{min-width:0}
.grow{flex:1 1 500px}.fig{width:100%;min-height:200px}
.picks{display:flex;flex-wrap:wrap;gap:.4em 1.4em;font-size:.9em;margin:.3em 0}
button.pick{font-size:.85em;margin:1px;cursor:pointer}
select{font-size:1em;padding:.15em}
"""

# vanilla JS: sortable/filterable tables, plotly figures, the node view
_JS = r"""
function rowsOf(t){return Array.from(t.tBodies[0].rows);}
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th){
    th.addEventListener('click',function(){
      var col=+th.dataset.col, asc=th.dataset.dir!=='asc';
      t.querySelectorAll('th').forEach(function(h){delete h.dataset.dir});
      th.dataset.dir=asc?'asc':'desc';
      var body=t.tBodies[0], rows=rowsOf(t);
      rows.sort(function(a,b){
        var x=a.cells[col], y=b.cells[col];
        var u=x.dataset.v!==undefined?parseFloat(x.dataset.v):x.textContent;
        var v=y.dataset.v!==undefined?parseFloat(y.dataset.v):y.textContent;
        var r=(typeof u==='number'&&typeof v==='number')?u-v:String(u).localeCompare(String(v));
        return asc?r:-r;});
      rows.forEach(function(r){body.appendChild(r)});
    });
  });
});
document.querySelectorAll('input.filter').forEach(function(inp){
  inp.addEventListener('input',function(){
    var q=inp.value.toLowerCase(), t=document.getElementById(inp.dataset.table), n=0;
    rowsOf(t).forEach(function(r){
      var show=r.textContent.toLowerCase().indexOf(q)>=0; r.style.display=show?'':'none';
      if(show)n++;});
    var c=document.getElementById(inp.dataset.table+'-count'); if(c)c.textContent=n+' rows';
  });
});
var D=JSON.parse(document.getElementById('report-data').textContent);
var CFG={responsive:true,displaylogo:false,scrollZoom:false};
if(window.Plotly){
  Object.keys(D.figs).forEach(function(id){
    var el=document.getElementById(id), f=D.figs[id];
    if(el)Plotly.newPlot(el,f.data,f.layout,CFG);
  });
}
function base(title,h){return {title:{text:title,font:{size:14},x:0.01,xanchor:'left'},
  height:h,margin:{l:60,r:20,t:40,b:45},legend:{orientation:'h',y:-0.12,yanchor:'top',
  font:{size:11}},
  hovermode:'x unified',font:{size:11},plot_bgcolor:'#fff'};}
function xaxis(){return {type:'date',gridcolor:'#eee',range:[D.x[0],D.x[D.x.length-1]],
  tickformat:D.days>1?'%H:%M\n%a %d %b':'%H:%M'};}
function area(name,y,colour,group){return {type:'scatter',x:D.x,y:y,mode:'lines',stackgroup:group,
  name:name,line:{width:0.5,shape:'hv',color:colour},fillcolor:colour};}
function nz(a){return a.some(function(v){return v!==null&&Math.abs(v)>1e-6;});}
function showNode(k){
  var n=D.nodes[k]; if(!n||!window.Plotly)return;
  document.getElementById('node-select').value=String(k);
  var s=n.stats;
  document.getElementById('nv-stats').textContent=n.kind+', '+n.gpus+' GPUs; '+s[0]+' jobs, '+
    s[1]+' GPU-h, load '+s[2]+' kWh (PV '+s[3]+', battery '+s[4]+', grid '+s[5]+'), cost '+s[6]+
    '; feeder '+s[7]+', region '+s[8];
  var tr=[], top=0, lo=0;
  if(n.head){tr.push({type:'scatter',x:D.x,y:n.imp,mode:'lines',line:{width:0,shape:'hv'},
      showlegend:false,hoverinfo:'skip'});
    tr.push({type:'scatter',x:D.x,y:n.head,mode:'lines',fill:'tonexty',
      fillcolor:'rgba(213,94,0,0.10)',line:{width:1,dash:'dot',color:'#D55E00',shape:'hv'},
      name:'import limit (headroom); band = spare'});}
  var sup=[['PV used [kW]',n.pv,'#E69F00'],['battery discharge [kW]',n.dis,'#009E73'],
           ['grid import [kW]',n.imp,'#0072B2']];
  var sink=[['battery charge [kW]',n.chg,'#56B4E9'],['grid export [kW]',n.exp,'#CC79A7']];
  var tot=n.load.map(function(){return 0;}), neg=tot.slice();
  sup.forEach(function(q){if(nz(q[1])){tr.push(area(q[0],q[1],q[2],'s'));
    q[1].forEach(function(v,i){tot[i]+=v||0;});}});
  sink.forEach(function(q){if(nz(q[1])){tr.push(area(q[0],q[1],q[2],'k'));
    q[1].forEach(function(v,i){neg[i]+=v||0;});}});
  tr.push({type:'scatter',x:D.x,y:n.load,mode:'lines',name:'load [kW]',
    line:{color:'#000',width:1.5,shape:'hv'}});
  top=Math.max.apply(null,tot.concat(n.load.map(function(v){return v||0;})));
  lo=Math.min.apply(null,neg);
  if(n.head){var hm=Math.min.apply(null,n.head.filter(function(v){return v!==null;}));
    var hx=Math.max.apply(null,n.head.filter(function(v){return v!==null;}));
    if(hm<=3*Math.max(top,1e-9))top=Math.max(top,hx<=3*Math.max(top,1e-9)?hx:top);}
  if(top<=0)top=1;
  var lp=base('power: '+n.id+' [kW] · local time '+D.zone,330); lp.xaxis=xaxis();
  lp.yaxis={title:{text:'power [kW]'},range:[lo<0?lo*1.1:0,top*1.15],gridcolor:'#eee'};
  Plotly.react('nv-power',tr,lp,CFG);
  var lb=base('battery: '+n.id+(n.battery>0?' ('+n.battery+' kWh)':' — no battery'),
              n.battery>0?260:120);
  lb.xaxis=xaxis();
  if(n.battery>0){
    var e=n.battery;
    var bt=[{type:'scatter',x:D.x,y:n.soc,mode:'lines+markers',marker:{size:3},
        line:{color:'#009E73'},name:'state of charge [kWh]'},
      {type:'scatter',x:[D.x[0],D.x[D.x.length-1]],y:[n.soc_min,n.soc_min],mode:'lines',
        line:{color:'#D55E00',dash:'dash'},name:'reserve (soc_min)'},
      {type:'scatter',x:[D.x[0],D.x[D.x.length-1]],y:[n.soc_max,n.soc_max],mode:'lines',
        line:{color:'#666',dash:'dash'},name:'max (soc_max)'}];
    lb.yaxis={title:{text:'state of charge [kWh]'},range:[0,e*1.05],gridcolor:'#eee'};
    Plotly.react('nv-battery',bt,lb,CFG);
  } else {
    lb.yaxis={visible:false}; lb.annotations=[{text:'no battery',showarrow:false,
      xref:'paper',yref:'paper',x:0.5,y:0.5}];
    Plotly.react('nv-battery',[],lb,CFG);
  }
  var groups={};
  n.lanes.forEach(function(q){var jb=D.jobs[q[0]];var g=groups[jb.kind]||(groups[jb.kind]=
    {type:'bar',orientation:'h',name:jb.kind,base:[],x:[],y:[],width:[],customdata:[],
     marker:{color:D.jobKinds[jb.kind],line:{color:'#333',width:0.5}},
     hovertemplate:'%{customdata}<extra></extra>'});
    var t0=Date.parse(D.x[q[1]].replace(' ','T')), t1=Date.parse(D.x[q[2]].replace(' ','T'));
    g.base.push(D.x[q[1]]); g.x.push(t1-t0); g.y.push(q[3]+q[4]/2); g.width.push(q[4]*0.92);
    g.customdata.push('<b>'+jb.id+'</b> ('+jb.kind+', '+jb.gpus+' GPUs)<br>'+D.x[q[1]].slice(11)+
      ' – '+D.x[q[2]].slice(11)+'<br>energy '+jb.e+' kWh, cost '+jb.c);});
  var jt=Object.keys(groups).sort().map(function(k){return groups[k];});
  var lj=base('jobs on '+n.id+' ('+n.lanes.length+' jobs, one lane per GPU'+
    (n.gpus>64?' group':'')+')',Math.min(700,Math.max(200,110+14*Math.min(n.gpus,64))));
  lj.xaxis=xaxis(); lj.xaxis.range=[D.x[0],D.x[D.x.length-1]]; lj.hovermode='closest';
  lj.barmode='overlay';
  lj.yaxis={title:{text:'GPU lane'},range:[-0.5,n.gpus+0.5],gridcolor:'#f3f3f3',zeroline:false};
  if(!jt.length)lj.annotations=[{text:'no jobs on this node',showarrow:false,xref:'paper',
    yref:'paper',x:0.5,y:0.5}];
  Plotly.react('nv-jobs',jt,lj,CFG);
}
var sel=document.getElementById('node-select');
if(sel){sel.addEventListener('change',function(){showNode(+sel.value);});
  document.querySelectorAll('button.pick').forEach(function(b){
    b.addEventListener('click',function(){showNode(+b.dataset.node);});});
  showNode(D.first);}
"""


def build_figures(problem: Problem, plan: Plan, index: Index | None = None,
                  top: int = 5) -> dict[str, Figure]:
    """Every matplotlib figure of the report by name (:data:`FIGURES`).

    Per-node figures show the fleet aggregate and up to ``top`` nodes chosen by
    what matters (:func:`optisched.viz.highlight_nodes`: busiest first, then the
    most energy, the biggest battery user and the most expensive).
    """
    index = index or compile_index(problem)
    picks = viz.highlight_nodes(problem, plan, index, k=max(1, top))
    chosen: list[int] = []
    for key in ("busiest", "energy", "battery", "expensive", "busiest"):
        for n in picks.get(key, []):
            if n not in chosen:
                chosen.append(n)
                break
    for n in picks.get("busiest", []):  # fill up with the next busiest
        if len(chosen) >= top:
            break
        if n not in chosen:
            chosen.append(n)
    rows: list[viz.NodeRef] = [None, *chosen[: max(0, top)]]
    makers: dict[str, Callable[[], Figure]] = {
        "costs": lambda: viz.cost_breakdown(problem, plan, index),
        "gantt": lambda: viz.gantt(problem, plan, index),
        "energy": lambda: viz.per_node_figure("energy", problem, plan, index, rows),
        "battery": lambda: viz.per_node_figure("battery", problem, plan, index, rows),
        "grid": lambda: viz.per_node_figure("grid", problem, plan, index, rows),
        "prices": lambda: viz.per_node_figure("prices", problem, plan, index, rows[:2]),
        "feeders": lambda: viz.feeder_load(problem, plan, index),
        "jobs": lambda: viz.slo_summary(problem, plan, index),
    }
    return {name: makers[name]() for name in FIGURES}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI)
    return buf.getvalue()


def _plotly_js() -> str:
    # plotly is a dependency; imported here because reading its 4.8 MB bundle is only
    # needed for an interactive page (a static page or --png alone never loads it)
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def render_report(problem: Problem, plan: Plan, top: int = 5, title: str | None = None,
                  index: Index | None = None, compare: Comparison | None = None,
                  interactive: bool = True, png: bool = False,
                  progress: Callable[[str], None] | None = None) -> Report:
    """Render the HTML report of a plan.

    Parameters
    ----------
    problem : Problem
        The problem.
    plan : Plan
        A plan with flows (status optimal or feasible, or read from a plan directory).
    top : int
        Nodes shown individually in the static per-node figures (plus the fleet).
    title : str, optional
        Page title.
    index : Index, optional
        The compiled problem.
    compare : Comparison, optional
        A second plan for the comparison section (none: the section says so).
    interactive : bool
        Plotly figures with plotly.js inlined (default); False: embedded PNGs.
    png : bool
        Also draw the matplotlib PNGs for an interactive page (``Report.images``).
    progress : callable, optional
        Called with each step's name (:data:`REPORT_STEPS`) as it starts.

    Returns
    -------
    Report
        The page and the PNG bytes of every figure drawn.

    Raises
    ------
    ValueError
        The plan has no flows (no solution).
    """
    if plan.flows is None:
        raise ValueError(f"plan has no solution to report (status {plan.status.value}"
                         f"{': ' + plan.message if plan.message else ''})")

    def step(name: str) -> None:
        log.debug("report: %s", name)
        if progress is not None:
            progress(name)

    index = index or compile_index(problem)
    step("evaluate")
    ev = evaluate(problem, plan, index)
    ctx = _context(problem, plan, index, ev, step)
    figs: dict[str, Any] = {}
    data: dict[str, Any] = {"x": ctx.clock.axis(index.T), "zone": ctx.clock.label,
                            "days": ctx.clock.days, "figs": figs}
    body: dict[str, str] = {}
    step("compare")
    body["compare"] = _compare(ctx, compare, figs)
    step("series")
    body["summary"] = _summary(ctx)
    body["costs"] = _costs(ctx, figs)
    body["fleet"] = _fleet(ctx, figs)
    body["feeders"] = _feeders(ctx, figs)
    body["prices"] = _prices(ctx, figs)
    step("timeline")
    body["timeline"] = _timeline(ctx, figs)
    body["nodeview"] = _nodeview(ctx, data)
    step("map")
    body["map"] = _map(ctx, figs)
    step("tables")
    body["nodes"] = _nodes(ctx)
    body["jobs"] = _jobs(ctx)
    body["slo"] = _slo(ctx, figs)
    step("figures")
    images: dict[str, bytes] = {}
    if png or not interactive:
        for name, fig in build_figures(problem, plan, index, top).items():
            images[name] = _png(fig)
    step("page")
    title = title or f"optisched plan report ({plan.solver}, {plan.status.value})"
    nav = " ".join(f'<a href="#{sid}">{_e(t)}</a>' for sid, t in SECTIONS)
    sections = []
    for sid, stitle in SECTIONS:
        content = body.get(sid, "")
        if not interactive:
            content = (_STATIC_NODEVIEW.format(top=top) if sid == "nodeview"
                       else _strip_figs(content))
            for name, sec in _STATIC_SECTION.items():
                if sec == sid and name in images:
                    b64 = base64.b64encode(images[name]).decode("ascii")
                    content += (f'<img id="fig-{name}" alt="{_e(name)}" '
                                f'src="data:image/png;base64,{b64}">')
        sections.append(f'<section id="{sid}"><h2>{_e(stitle)}</h2>{content}</section>')
    if interactive:
        payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
        scripts = (f"<script>{_plotly_js()}</script>"
                   f'<script type="application/json" id="report-data">{payload}</script>'
                   f"<script>{_JS}</script>")
    else:
        payload = json.dumps({"figs": {}, "x": [], "nodes": [], "first": 0}).replace("</", "<\\/")
        scripts = (f'<script type="application/json" id="report-data">{payload}</script>'
                   f"<script>{_JS}</script>")
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><nav>{nav}</nav>{''.join(sections)}"
        f"{scripts}</body></html>\n"
    )
    return Report(page, images)


def _strip_figs(content: str) -> str:
    """A static page has no plotly containers."""
    return re.sub(r'<div class="fig" id="[^"]+"></div>', "", content)


def write_report(problem: Problem, plan: Plan, out: str | os.PathLike[str],
                 png_dir: str | os.PathLike[str] | None = None, top: int = 5,
                 title: str | None = None, compare: Comparison | None = None,
                 interactive: bool = True,
                 progress: Callable[[str], None] | None = None) -> Report:
    """Render the report and write it atomically (temporary file, then rename).

    Parameters
    ----------
    out : path
        HTML file to write.
    png_dir : path, optional
        Directory for the matplotlib figures as ``<name>.png`` (:data:`FIGURES`),
        each written atomically.
    top : int
        Nodes shown individually in the static per-node figures.
    compare, interactive, progress
        As for :func:`render_report`.
    """
    rep = render_report(problem, plan, top=top, title=title, compare=compare,
                        interactive=interactive, png=png_dir is not None, progress=progress)
    if png_dir is not None:
        d = Path(png_dir)
        d.mkdir(parents=True, exist_ok=True)
        for name, data in rep.images.items():
            write_file_atomically(d / f"{name}.png", data)
    write_file_atomically(out, rep.html)
    log.info("report written to %s (%d bytes)", out, len(rep.html))
    return rep
