"""The report page: :func:`render_report` assembles the sections in page order
(:data:`SECTIONS`), :func:`write_report` writes it atomically."""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optisched.atomic import write_file_atomically
from optisched.domain import Problem
from optisched.evaluate import evaluate
from optisched.index import Index, compile_index
from optisched.plan import Plan
from optisched.report.assets import CSS, JS, plotly_js
from optisched.report.comparison import Comparison, compare_section
from optisched.report.data import Context, context_of
from optisched.report.figures import (
    costs_section,
    feeders_section,
    fleet_section,
    prices_section,
    slo_section,
)
from optisched.report.format import esc
from optisched.report.map import map_section
from optisched.report.static import (
    STATIC_NODEVIEW,
    STATIC_SECTION,
    build_figures,
    png_bytes,
    strip_figs,
)
from optisched.report.tables import jobs_section, nodes_section, summary_section
from optisched.report.timeline import nodeview_section, timeline_section

__all__ = ["REPORT_STEPS", "SECTIONS", "Report", "render_report", "write_report"]

log = logging.getLogger("optisched.report")


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


REPORT_STEPS: tuple[str, ...] = ("evaluate", "attribute costs", "compare", "series",
                                 "timeline", "map", "tables", "figures", "page")
"""Steps :func:`render_report` reports to its ``progress`` callback, in order."""


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
    ctx = context_of(problem, plan, index, ev, step)
    figs: dict[str, Any] = {}
    data: dict[str, Any] = {"x": ctx.clock.axis(index.T), "zone": ctx.clock.label,
                            "days": ctx.clock.days, "figs": figs}
    body = _sections(ctx, compare, figs, data, step)
    step("figures")
    images: dict[str, bytes] = {}
    if png or not interactive:
        for name, fig in build_figures(problem, plan, index, top).items():
            images[name] = png_bytes(fig)
    step("page")
    title = title or f"optisched plan report ({plan.solver}, {plan.status.value})"
    return Report(_page(title, body, images, data, interactive, top), images)


def _sections(ctx: Context, compare: Comparison | None, figs: dict[str, Any],
              data: dict[str, Any], step: Callable[[str], None]) -> dict[str, str]:
    """The HTML of every section by id; their figures go to ``figs``, the node view's
    data to ``data`` (steps ``compare`` to ``tables``)."""
    body: dict[str, str] = {}
    step("compare")
    body["compare"] = compare_section(ctx, compare, figs)
    step("series")
    body["summary"] = summary_section(ctx)
    body["costs"] = costs_section(ctx, figs)
    body["fleet"] = fleet_section(ctx, figs)
    body["feeders"] = feeders_section(ctx, figs)
    body["prices"] = prices_section(ctx, figs)
    step("timeline")
    body["timeline"] = timeline_section(ctx, figs)
    body["nodeview"] = nodeview_section(ctx, data)
    step("map")
    body["map"] = map_section(ctx, figs)
    step("tables")
    body["nodes"] = nodes_section(ctx)
    body["jobs"] = jobs_section(ctx)
    body["slo"] = slo_section(ctx, figs)
    return body


def _page(title: str, body: dict[str, str], images: dict[str, bytes], data: dict[str, Any],
          interactive: bool, top: int) -> str:
    """The page: the sections in :data:`SECTIONS` order (a static page with the PNGs in
    place of the plotly figures) and the scripts."""
    nav = " ".join(f'<a href="#{sid}">{esc(t)}</a>' for sid, t in SECTIONS)
    sections = []
    for sid, stitle in SECTIONS:
        content = body.get(sid, "")
        if not interactive:
            content = (STATIC_NODEVIEW.format(top=top) if sid == "nodeview"
                       else strip_figs(content))
            for name, sec in STATIC_SECTION.items():
                if sec == sid and name in images:
                    b64 = base64.b64encode(images[name]).decode("ascii")
                    content += (f'<img id="fig-{name}" alt="{esc(name)}" '
                                f'src="data:image/png;base64,{b64}">')
        sections.append(f'<section id="{sid}"><h2>{esc(stitle)}</h2>{content}</section>')
    if interactive:
        payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
        scripts = (f"<script>{plotly_js()}</script>"
                   f'<script type="application/json" id="report-data">{payload}</script>'
                   f"<script>{JS}</script>")
    else:
        payload = json.dumps({"figs": {}, "x": [], "nodes": [], "first": 0}).replace("</", "<\\/")
        scripts = (f'<script type="application/json" id="report-data">{payload}</script>'
                   f"<script>{JS}</script>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><nav>{nav}</nav>{''.join(sections)}"
        f"{scripts}</body></html>\n"
    )


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
