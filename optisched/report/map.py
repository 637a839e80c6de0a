"""The report's node map: a plain projection of the nodes (km from the median node),
their feeders and user regions, coloured by a metric chosen in the page."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from optisched.arrays import FloatArray
from optisched.report.data import Context
from optisched.report.figures import layout
from optisched.report.format import clean, esc, fmt_number

__all__ = ["map_section"]


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
    return clean(c), vals, text


def map_section(ctx: Context, figs: dict[str, Any]) -> str:
    """The node map: every node and, when it is dense, its core."""
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
            f"{esc(note)}</p><div class=\"row\">{divs}</div>")


_XY = Callable[[int], tuple[float, float]]
"""A node position's plane coordinates [km east, km north of the median node]."""

_SYMBOLS = ["circle", "square", "diamond", "triangle-up", "star", "hexagon", "cross",
            "pentagon"]
"""Marker symbol of each node kind, in the kinds' sorted order."""


def _map_figure(ctx: Context, members: list[int], lat0: float, lon0: float, kx: float,
                title: str, labels: bool = True) -> dict[str, Any]:
    """One map panel: the nodes ``members``, their feeders and the user regions near them,
    coloured by energy, jobs or cost (buttons; log scale but for jobs)."""
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
    traces = _feeder_traces(ctx, members, node_xy, labels)
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
    all_kinds = sorted(set(ctx.kinds))
    kinds = [k for k in all_kinds if any(ctx.kinds[m] == k for m in members)]
    colours = {name: _log_colour(v) if name != "jobs" else (clean(v), [], [])
               for name, v in metrics.items()}
    kind_traces: list[int] = []
    for kind in kinds:
        kind_traces.append(len(traces))
        traces.append(_kind_trace(ctx, kind, members, node_xy, energy,
                                  colours["energy [kWh]"][0], all_kinds))
    buttons = []
    for name, (col, tv, tt) in colours.items():
        per = [[col[k] for k in members if ctx.kinds[k] == kind] for kind in kinds]
        bar: dict[str, Any] = {"coloraxis.colorbar.title.text": name}
        bar["coloraxis.colorbar.tickvals"] = tv or None
        bar["coloraxis.colorbar.ticktext"] = tt or None
        buttons.append({"label": name, "method": "update",
                        "args": [{"marker.color": per}, bar, kind_traces]})
    _, tv0, tt0 = colours["energy [kWh]"]
    return {"data": traces, "layout": _map_layout(title, lat0, lon0, tv0, tt0, buttons)}


def _feeder_traces(ctx: Context, members: list[int], node_xy: _XY, labels: bool
                   ) -> list[dict[str, Any]]:
    """Grey lines from each feeder's centre to its nodes, and the centres (none when no
    member is on a feeder)."""
    p = ctx.problem
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
    return traces


def _kind_trace(ctx: Context, kind: str, members: list[int], node_xy: _XY,
                energy: FloatArray, colour: list[float | None], all_kinds: list[str]
                ) -> dict[str, Any]:
    """The markers of the ``members`` of one node kind: size by GPUs, ``colour`` (per
    node position), a hover text with its work and cost."""
    p, idx = ctx.problem, ctx.index
    mem = [k for k in members if ctx.kinds[k] == kind]
    pts = [node_xy(k) for k in mem]
    return {
        "type": "scatter", "mode": "markers", "name": kind,
        "x": [q[0] for q in pts], "y": [q[1] for q in pts],
        "marker": {"symbol": _SYMBOLS[all_kinds.index(kind) % len(_SYMBOLS)],
                   "size": [float(8 + 2.5 * math.log2(max(1.0, idx.capacity[k, 0])))
                            for k in mem],
                   "color": [colour[k] for k in mem], "coloraxis": "coloraxis",
                   "line": {"color": "#333333", "width": 0.8}},
        "customdata": [[p.nodes[k].node_id, int(ctx.nc.jobs[k]), fmt_number(energy[k]),
                        fmt_number(float(ctx.nc.total[k])), p.nodes[k].feeder or "–",
                        p.nodes[k].region or "–", fmt_number(float(idx.capacity[k, 0]))]
                       for k in mem],
        "hovertemplate": "<b>%{customdata[0]}</b> (" + esc(kind) + ", %{customdata[6]} "
                         "GPUs)<br>jobs %{customdata[1]}, energy %{customdata[2]} kWh, "
                         "cost %{customdata[3]}<br>feeder %{customdata[4]}, region "
                         "%{customdata[5]}<extra></extra>",
    }


def _map_layout(title: str, lat0: float, lon0: float, tickvals: list[float],
                ticktext: list[str], buttons: list[dict[str, Any]]) -> dict[str, Any]:
    """The map panel's layout: equal scales in km, the colour bar, the metric buttons."""
    return layout(title, 520, hovermode="closest",
                  xaxis={"title": {"text": f"km east of {lat0:.2f}°N {lon0:.2f}°E"},
                         "zeroline": False, "gridcolor": "#f0f0f0"},
                  yaxis={"title": {"text": "km north"}, "scaleanchor": "x",
                         "scaleratio": 1, "zeroline": False, "gridcolor": "#f0f0f0"},
                  coloraxis={"colorscale": [[0, "#f7f7f7"], [0.2, "#c6dbef"],
                                            [0.6, "#4292c6"], [1, "#08306b"]],
                             "colorbar": {"title": {"text": "energy [kWh]"},
                                          "len": 0.75, "tickvals": tickvals,
                                          "ticktext": ticktext, "thickness": 14}},
                  legend={"orientation": "h", "y": -0.15, "yanchor": "top"},
                  updatemenus=[{"type": "buttons", "direction": "right", "x": 1.0,
                                "y": 1.12, "xanchor": "right", "showactive": True,
                                "font": {"size": 10}, "buttons": buttons}],
                  margin={"l": 55, "r": 10, "t": 70, "b": 45})
