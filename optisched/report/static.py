"""The static report's figures: the matplotlib PNGs of :mod:`optisched.viz`
(:func:`build_figures`), and where a static page shows them."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

from matplotlib.figure import Figure

from optisched import viz
from optisched.domain import Problem
from optisched.index import Index, compile_index
from optisched.plan import Plan

__all__ = ["FIGURES", "PNG_DPI", "STATIC_NODEVIEW", "STATIC_SECTION", "build_figures",
           "png_bytes", "strip_figs"]


FIGURES: tuple[str, ...] = ("costs", "gantt", "energy", "battery", "grid", "prices", "feeders",
                            "jobs")
"""Matplotlib figures (:func:`build_figures`), written as ``<name>.png`` with ``--png``."""


PNG_DPI = 80
"""Resolution of the embedded and written PNG images [dots per inch]."""


STATIC_SECTION = {"costs": "costs", "gantt": "timeline", "energy": "nodeview",
                  "battery": "nodeview", "grid": "fleet", "prices": "prices",
                  "feeders": "feeders", "jobs": "slo"}
"""Section of each PNG figure in a static (``interactive=False``) page."""


STATIC_NODEVIEW = ('<p class="note">The fleet and up to {top} nodes chosen by what matters '
                   "(busiest, most energy, battery user, most expensive): energy [kW], "
                   "battery state of charge [kWh]. The interactive report has a selector "
                   "for any node.</p>")


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


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG bytes at :data:`PNG_DPI`."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI)
    return buf.getvalue()


def strip_figs(content: str) -> str:
    """A static page has no plotly containers."""
    return re.sub(r'<div class="fig" id="[^"]+"></div>', "", content)
