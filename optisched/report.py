"""A self-contained HTML report of a plan (``optisched report``).

:func:`render_report` draws the figures of :mod:`optisched.viz`, encodes them
as base64 PNG and returns one HTML page with no external assets: a summary, the
fleet cost breakdown, a sortable and filterable table of nodes, the job
timeline, per-node energy, battery, grid and price figures for the fleet
aggregate and the top-N nodes by attributed cost, feeder loads, and what every
job paid. Every section has a stable ``id`` (:data:`SECTIONS`).
:func:`write_report` writes the page atomically and, optionally, the same
figures as PNG files.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from optisched import viz
from optisched.atomic import write_file_atomically
from optisched.domain import Problem
from optisched.evaluate import Evaluation, evaluate
from optisched.index import Index, compile_index
from optisched.plan import COST_TERMS, Plan

__all__ = ["FIGURES", "SECTIONS", "Report", "build_figures", "render_report", "write_report"]

log = logging.getLogger(__name__)

SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("costs", "Cost breakdown"),
    ("nodes", "Nodes"),
    ("gantt", "Job timeline"),
    ("energy", "Energy per node"),
    ("battery", "Battery state of charge"),
    ("grid", "Grid import and headroom"),
    ("prices", "Prices and carbon"),
    ("feeders", "Feeders"),
    ("jobs", "SLO, deadlines and drops"),
)
"""Section ids (stable, for links and tests) and titles, in page order."""

FIGURES: tuple[str, ...] = ("costs", "gantt", "energy", "battery", "grid", "prices", "feeders",
                            "jobs")
"""Figure names; each sits in the section of the same id and is ``<name>.png`` with ``--png``."""


PNG_DPI = 80
"""Resolution of the embedded and written PNG images [dots per inch]."""


@dataclass
class Report:
    """A rendered report.

    Attributes
    ----------
    html : str
        The self-contained page.
    images : dict of str to bytes
        PNG bytes of every figure by name (:data:`FIGURES`).
    """

    html: str
    images: dict[str, bytes]


def build_figures(problem: Problem, plan: Plan, index: Index | None = None,
                  top: int = 5) -> dict[str, Figure]:
    """Every figure of the report by name (:data:`FIGURES`).

    Per-node figures show the fleet aggregate and the ``top`` nodes by
    attributed cost (:func:`optisched.viz.top_nodes`).
    """
    index = index or compile_index(problem)
    rows: list[viz.NodeRef] = [None, *viz.top_nodes(problem, plan, top, index)]
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


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _num(v: float | None, digits: int = 6) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:.{digits}g}"


def _table(table_id: str, header: list[str], rows: list[list[object]],
           numeric: set[int]) -> str:
    head = "".join(f'<th data-col="{k}" title="click to sort">{_e(h)}</th>'
                   for k, h in enumerate(header))
    body = []
    for r in rows:
        cells = []
        for k, v in enumerate(r):
            if k in numeric and isinstance(v, (int, float)):
                cells.append(f'<td class="n" data-v="{float(v)!r}">{_e(_num(float(v)))}</td>')
            elif k in numeric:  # no value: sorts below every number
                cells.append('<td class="n" data-v="-1e308"></td>')
            else:
                cells.append(f"<td>{_e('' if v is None else v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:1em;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
nav a{margin-right:.8em}img{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em}th{background:#f4f4f4;cursor:pointer}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b00020;font-weight:bold}.ok{color:#1b7f3b}.note{color:#555;font-size:.9em}
input.filter{margin:.3em 0;padding:.25em;width:20em}
"""

# vanilla JS: click a header to sort (numbers by data-v), type to filter rows
_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th){
    th.addEventListener('click',function(){
      var col=+th.dataset.col, asc=th.dataset.dir!=='asc';
      t.querySelectorAll('th').forEach(function(h){delete h.dataset.dir});
      th.dataset.dir=asc?'asc':'desc';
      var body=t.tBodies[0], rows=Array.from(body.rows);
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
    var q=inp.value.toLowerCase(), t=document.getElementById(inp.dataset.table);
    Array.from(t.tBodies[0].rows).forEach(function(r){
      r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?'':'none';});
  });
});
"""


def _summary_section(problem: Problem, plan: Plan, ev: Evaluation, top: int) -> str:
    hz = problem.horizon
    counts = plan.job_counts(problem)
    state = ('<span class="ok">feasible</span>' if ev.feasible
             else '<span class="bad">INFEASIBLE</span>')
    claimed = plan.objective
    agrees = (claimed is not None and math.isfinite(ev.objective)
              and abs(claimed - ev.objective) <= 1e-6 * max(1.0, abs(ev.objective)))
    rows = [
        ("solver", _e(plan.solver)), ("status", _e(plan.status.value)),
        ("evaluator", state),
        ("objective (evaluator)", _e(_num(ev.objective))),
        ("objective (summary.json)", _e(_num(claimed)) + (
            "" if agrees else ' <span class="bad">differs from the evaluator</span>')),
        ("bound", _e(_num(plan.bound))),
        ("gap", "–" if plan.gap is None else _e(f"{100 * plan.gap:.3f} %")),
        ("horizon", _e(f"{hz.start.isoformat()}, {hz.slots} slots of {hz.slot_minutes} min")),
        ("nodes / jobs", _e(f"{len(problem.nodes)} / {len(problem.jobs)}")),
        ("jobs", _e(", ".join(f"{k} {v}" for k, v in counts.items()))),
        ("solve time", _e(f"{plan.timings['total']:.3f} s") if "total" in plan.timings else "–"),
    ]
    parts = ["<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
             + "</table>"]
    if plan.message:
        parts.append(f'<p class="note">{_e(plan.message)}</p>')
    if ev.violations:
        items = "".join(f"<li>{_e(v)}</li>" for v in ev.violations[:30])
        parts.append(f'<p class="bad">violations ({sum(ev.counts.values())}):</p><ul>{items}'
                     "</ul>")
    parts.append(f'<p class="note">Per-node figures show the fleet aggregate and the top {top} '
                 "nodes by attributed cost (energy − export revenue + carbon + degradation + "
                 "demand + switching of the node, plus latency and tardiness of its jobs).</p>")
    return "".join(parts)


def _nodes_section(problem: Problem, plan: Plan, index: Index) -> str:
    nc = viz.node_costs(problem, plan, index)
    total = nc.total
    header = ["node", "kind", "tariff", "feeder", "jobs", "load [kWh]", "import [kWh]",
              "PV used [kWh]", "peak import [kW]", *viz.NODE_TERMS, "total [money]"]
    rows: list[list[object]] = []
    for k, node in enumerate(problem.nodes):
        rows.append([node.node_id, node.kind, node.tariff, node.feeder or "", int(nc.jobs[k]),
                     float(nc.energy_kwh[k]), float(nc.import_kwh[k]), float(nc.pv_kwh[k]),
                     float(nc.peak_import_kw[k]),
                     *(float(nc.terms[t][k]) for t in viz.NODE_TERMS), float(total[k])])
    rows.sort(key=lambda r: -float(r[-1]))  # type: ignore[arg-type]
    numeric = set(range(4, len(header)))
    return (
        '<p class="note">Costs [money] attributed to each node; export_revenue is subtracted '
        f"in the total. Drop penalties ({_e(_num(nc.drop))}) belong to no node. Click a header "
        "to sort; type to filter.</p>"
        '<input class="filter" data-table="node-table" placeholder="filter nodes…">'
        + _table("node-table", header, rows, numeric)
    )


def _jobs_table(problem: Problem, plan: Plan, index: Index) -> str:
    outcomes = viz.job_outcomes(problem, plan, index)
    header = ["job", "status", "node", "start slot", "end slot", "latency [ms]", "SLO [ms]",
              "latency cost", "late [h]", "tardiness cost", "drop penalty",
              "insertion estimate", "why"]
    rows: list[list[object]] = [
        [o.job_id, o.status, o.node_id or "", o.start_slot, o.end_slot, o.latency_ms, o.slo_ms,
         o.latency_cost, o.late_hours, o.tardiness_cost, o.drop_cost, o.run_estimate, o.reason]
        for o in outcomes
    ]
    rows.sort(key=lambda r: (-(float(r[7]) + float(r[9]) + float(r[10])),  # type: ignore[arg-type]
                             str(r[0])))
    numeric = set(range(3, 12))
    return (
        '<p class="note">Costs [money]. For a dropped job, the insertion estimate is the '
        "cheapest grid-priced cost of running it where its resources are free in this plan: "
        "job energy (plus idle draw where the node is off) at the import price incl. carbon, "
        "plus latency and tardiness. It ignores PV, battery, headroom, feeder, demand and "
        "switching, so it is an estimate, not a bound.</p>"
        '<input class="filter" data-table="job-table" placeholder="filter jobs…">'
        + _table("job-table", header, rows, numeric)
    )


def render_report(problem: Problem, plan: Plan, top: int = 5, title: str | None = None,
                  index: Index | None = None) -> Report:
    """Render the HTML report of a plan.

    Parameters
    ----------
    problem : Problem
        The problem.
    plan : Plan
        A plan with flows (status optimal or feasible, or read from a plan directory).
    top : int
        Nodes shown individually in the per-node figures (plus the fleet aggregate).
    title : str, optional
        Page title.
    index : Index, optional
        The compiled problem.

    Returns
    -------
    Report
        The page and the PNG bytes of every figure.

    Raises
    ------
    ValueError
        The plan has no flows (no solution).
    """
    if plan.flows is None:
        raise ValueError(f"plan has no solution to report (status {plan.status.value}"
                         f"{': ' + plan.message if plan.message else ''})")
    index = index or compile_index(problem)
    ev = evaluate(problem, plan, index)
    figs = build_figures(problem, plan, index, top)
    images: dict[str, bytes] = {}
    for name, fig in figs.items():
        images[name] = _png(fig)
    title = title or f"optisched plan report ({plan.solver}, {plan.status.value})"
    body: dict[str, str] = {
        "summary": _summary_section(problem, plan, ev, top),
        "costs": _cost_table(ev),
        "nodes": _nodes_section(problem, plan, index),
        "jobs": _jobs_table(problem, plan, index),
    }
    notes = {
        "gantt": "Time axes: hours from the horizon start [h].",
        "energy": "Supply above zero (PV used, battery discharge, grid import), sinks below "
                  "(battery charge, grid export); black line: load [kW].",
        "battery": "State of charge at the end of each slot [kWh]; dashed: reserve (soc_min) "
                   "and maximum (soc_max).",
        "grid": "Grid import against the import limit (headroom) [kW].",
        "prices": "Import and export price [money/kWh], carbon intensity [gCO2/kWh], and the "
                  "shape of grid import.",
        "feeders": "Net import of each feeder's nodes against its headroom [kW].",
    }
    nav = " ".join(f'<a href="#{sid}">{_e(t)}</a>' for sid, t in SECTIONS)
    sections = []
    for sid, stitle in SECTIONS:
        parts = [f'<section id="{sid}"><h2>{_e(stitle)}</h2>']
        if sid in notes:
            parts.append(f'<p class="note">{_e(notes[sid])}</p>')
        if sid in images:
            b64 = base64.b64encode(images[sid]).decode("ascii")
            parts.append(f'<img id="fig-{sid}" alt="{_e(stitle)}" '
                         f'src="data:image/png;base64,{b64}">')
        parts.append(body.get(sid, ""))
        parts.append("</section>")
        sections.append("".join(parts))
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><nav>{nav}</nav>{''.join(sections)}"
        f"<script>{_JS}</script></body></html>\n"
    )
    return Report(page, images)


def _cost_table(ev: Evaluation) -> str:
    rows = "".join(
        f'<tr><td>{_e(k)}</td><td class="n">'
        f"{_e(_num(-ev.costs[k] if k == 'export_revenue' else ev.costs[k]))}</td></tr>"
        for k in COST_TERMS)
    return ('<table id="cost-table"><thead><tr><th>term (SPEC §3)</th><th>signed cost '
            f'[money]</th></tr></thead><tbody>{rows}<tr><th>objective</th><td class="n">'
            f"{_e(_num(ev.objective))}</td></tr></tbody></table>")


def write_report(problem: Problem, plan: Plan, out: str | os.PathLike[str],
                 png_dir: str | os.PathLike[str] | None = None, top: int = 5,
                 title: str | None = None) -> Report:
    """Render the report and write it atomically (temporary file, then rename).

    Parameters
    ----------
    out : path
        HTML file to write.
    png_dir : path, optional
        Directory for the figures as ``<name>.png`` (:data:`FIGURES`), each written
        atomically.
    top : int
        Nodes shown individually in the per-node figures.
    """
    rep = render_report(problem, plan, top=top, title=title)
    if png_dir is not None:
        d = Path(png_dir)
        d.mkdir(parents=True, exist_ok=True)
        for name, data in rep.images.items():
            write_file_atomically(d / f"{name}.png", data)
    write_file_atomically(out, rep.html)
    log.info("report written to %s (%d bytes)", out, len(rep.html))
    return rep
