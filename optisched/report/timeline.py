"""The report's timeline (GPUs in use, busy share per node) and node view (power,
battery, jobs on GPU lanes of one node, chosen in the page)."""

from __future__ import annotations

from typing import Any

import numpy as np

from optisched import viz
from optisched.report.data import KIND_COLOURS, MAX_LANES, Context, job_lanes
from optisched.report.figures import layout, time_axis
from optisched.report.format import clean, esc, fmt_number, stepped

__all__ = ["nodeview_section", "timeline_section"]


def timeline_section(ctx: Context, figs: dict[str, Any]) -> str:
    """GPUs in use by node kind or feeder, and each node's busy share per slot."""
    figs["fig-busy"] = _busy_figure(ctx)
    heat, idle = _heat_figure(ctx)
    if heat is not None:
        figs["fig-heat"] = heat
    note = f" {idle} node(s) without jobs are left out." if idle else ""
    return ('<p class="note">Aggregate views that stay readable at thousands of jobs: GPUs in '
            "use stacked by node kind or by feeder (buttons), and each node's busy share per "
            f"slot. Drag to zoom, double-click to reset.{esc(note)} The job lanes of one node "
            "are in "
            '<a href="#nodeview">Node view</a>.</p><div class="fig" id="fig-busy"></div>'
            + ('<div class="fig" id="fig-heat"></div>' if heat is not None else ""))


def _busy_figure(ctx: Context) -> dict[str, Any]:
    """GPUs in use, stacked by node kind or by feeder (buttons)."""
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
        # most GPU-hours first, ties by name (set order would follow PYTHONHASHSEED)
        names = sorted(set(keys), key=lambda g: (-float(sum(ctx.gpu_h[k] for k in range(idx.N)
                                                             if keys[k] == g)), g))
        for g in names:
            sel = [k for k in range(idx.N) if keys[k] == g]
            v = used[sel].sum(axis=0)
            if not np.any(v > viz.DISPLAY_TOL):
                continue
            colour = ctx.kind_colour.get(g) if gname == "kind" else None
            t: dict[str, Any] = {"type": "scatter", "x": x, "y": stepped(v), "mode": "lines",
                                 "stackgroup": gname, "name": g, "visible": gname == "kind",
                                 "line": {"width": 0.5, "shape": "hv"},
                                 "hovertemplate": f"{esc(g)}: " + "%{y:,.4g} GPUs<extra></extra>"}
            if colour:
                t["line"]["color"] = colour
                t["fillcolor"] = colour
            traces.append(t)
        spans[gname] = (first, len(traces))
    for gname in groupings:
        a, b = spans[gname]
        vis[gname] = [a <= i < b for i in range(len(traces))]
    capacity = float(idx.capacity[:, 0].sum())
    return {
        "data": traces,
        "layout": layout(f"GPUs in use (fleet capacity {fmt_number(capacity)} GPUs) · local time "
                         f"{ctx.clock.label}", 340,
                         xaxis=time_axis(ctx), yaxis={"title": {"text": "GPUs in use"},
                                                      "gridcolor": "#eeeeee"},
                         updatemenus=[{"type": "buttons", "direction": "right", "x": 1.0,
                                       "xanchor": "right", "y": 1.15, "showactive": True,
                                       "buttons": [{"label": f"by {g}", "method": "update",
                                                    "args": [{"visible": vis[g]}]}
                                                   for g in groupings]}]),
    }


def _heat_figure(ctx: Context) -> tuple[dict[str, Any] | None, int]:
    """The share of GPUs busy per node and slot (nodes with jobs, the kind doing most of
    the work on top), or None when no node has a job; and the nodes left out."""
    idx = ctx.index
    x = ctx.clock.axis(idx.T)
    used = ctx.used
    # heat map: share of GPUs busy per node and slot, nodes with jobs, grouped by kind
    rows = [k for k in range(idx.N) if ctx.nc.jobs[k] > 0]
    kind_work: dict[str, float] = {}
    for k in rows:
        kind_work[ctx.kinds[k]] = kind_work.get(ctx.kinds[k], 0.0) + float(ctx.gpu_h[k])
    # the kind doing most of the work on top, then each node by its GPU-hours
    rows.sort(key=lambda k: (-kind_work[ctx.kinds[k]], ctx.kinds[k], -float(ctx.gpu_h[k]),
                             idx.node_ids[k]))
    idle = idx.N - len(rows)
    if not rows:
        return None, idle
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
    return {
        "data": [{"type": "heatmap", "x": x[:-1], "y": labels,
                  "z": [clean(100.0 * r, 4) for r in share],
                  "customdata": running.tolist(),
                  "colorscale": [[0, "#f7fbff"], [0.001, "#deebf7"], [0.5, "#6baed6"],
                                 [1, "#08306b"]], "zmin": 0, "zmax": 100,
                  "colorbar": {"title": {"text": "GPUs busy [%]"}, "len": 0.9},
                  "xgap": 0, "ygap": 1,
                  "hovertemplate": "%{y}<br>%{x}: %{z:.0f} % of GPUs busy, "
                                   "%{customdata} job(s)<extra></extra>"}],
        "layout": layout("share of GPUs busy per node (grey: unavailable) · local time "
                         f"{ctx.clock.label}",
                         int(min(1400, 110 + 16 * len(rows))), hovermode="closest",
                         xaxis=time_axis(ctx), plot_bgcolor="#bbbbbb",
                         yaxis={"autorange": "reversed", "automargin": True,
                                "tickfont": {"size": 10 if len(rows) <= 60 else 8}},
                         margin={"l": 160, "r": 20, "t": 40, "b": 45}),
    }, idle


def nodeview_section(ctx: Context, data: dict[str, Any]) -> str:
    """The node view: its data for the page's script, the node picks and selector."""
    p, idx = ctx.problem, ctx.index
    f = ctx.plan.flows
    assert f is not None
    lanes = job_lanes(ctx)
    nodes = []
    for k, node in enumerate(p.nodes):
        nodes.append({
            "id": node.node_id, "kind": ctx.kinds[k], "gpus": float(idx.capacity[k, 0]),
            "battery": float(idx.battery_kwh[k]), "soc_min": float(idx.soc_min[k]),
            "soc_max": float(idx.soc_max[k]), "soc0": float(idx.soc_init[k]),
            "pv": stepped(f.pv_used[k]), "dis": stepped(f.discharge[k]),
            "imp": stepped(f.grid_import[k]), "chg": stepped(-f.charge[k]),
            "exp": stepped(-f.grid_export[k]), "load": stepped(f.load[k]),
            "head": stepped(idx.headroom[k]) if np.all(np.isfinite(idx.headroom[k])) else None,
            "soc": clean(np.concatenate([[idx.soc_init[k]], f.soc[k]])),
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
    data["jobKinds"] = {k: KIND_COLOURS[i % len(KIND_COLOURS)] for i, k in enumerate(job_kinds)}
    busiest = ctx.highlights["busiest"]
    first = busiest[0] if busiest else 0
    data["first"] = first
    chips = []
    for key, title in viz.HIGHLIGHTS:
        picks = ctx.highlights.get(key, [])
        btns = " ".join(f'<button class="pick" data-node="{k}">{esc(idx.node_ids[k])}</button>'
                        for k in picks) or '<span class="note">none</span>'
        chips.append(f'<div class="chip" id="pick-{key}"><b>{esc(title)}:</b> {btns}</div>')
    by_kind: dict[str, list[int]] = {}
    for k in range(idx.N):
        by_kind.setdefault(ctx.kinds[k], []).append(k)
    opts = "".join(
        f'<optgroup label="{esc(kind)}">' + "".join(
            f'<option value="{k}"{" selected" if k == first else ""}>{esc(idx.node_ids[k])} '
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
