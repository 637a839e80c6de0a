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

The package, by role:

:mod:`~optisched.report.data`
    The plan evaluated and its cost attributed to nodes and jobs (the
    :class:`~optisched.report.data.Context` every section reads), jobs on GPU lanes.
:mod:`~optisched.report.format`
    Numbers for people, escaped text, the scenario's clock, JSON-safe series.
:mod:`~optisched.report.tables`
    Sortable tables; the summary, nodes and jobs sections.
:mod:`~optisched.report.figures`, :mod:`~optisched.report.timeline`, :mod:`~optisched.report.map`
    Plotly figures: costs, fleet power, feeders, prices, SLO; the timeline and
    node view; the node map.
:mod:`~optisched.report.comparison`
    The comparison with a second plan.
:mod:`~optisched.report.static`
    The matplotlib PNGs of a static page (:func:`build_figures`).
:mod:`~optisched.report.assets`, :mod:`~optisched.report.page`
    The page's style sheet and script; the page assembled and written.
"""

from optisched.report.comparison import Comparison
from optisched.report.data import MAX_LANES as MAX_LANES
from optisched.report.format import fmt_number, report_timezone
from optisched.report.page import REPORT_STEPS, SECTIONS, Report, render_report, write_report
from optisched.report.static import FIGURES, build_figures
from optisched.report.static import PNG_DPI as PNG_DPI

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
