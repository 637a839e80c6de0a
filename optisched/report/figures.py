"""The report's plotly figures: layouts and time axes, power traces, and the sections
drawn as figures (costs, fleet power, feeders, prices, SLO)."""

from __future__ import annotations

from typing import Any

import numpy as np

from optisched import viz
from optisched.arrays import FloatArray, IntArray
from optisched.plan import COST_TERMS
from optisched.report.data import FLOW, KIND_COLOURS, Context
from optisched.report.format import clean, esc, fmt_number, stepped
from optisched.report.tables import Col, data_table

__all__ = ["costs_section", "feeders_section", "fleet_section", "layout", "prices_section",
           "slo_section", "time_axis"]


def layout(title: str, height: int, **kw: Any) -> dict[str, Any]:
    """A plotly layout with the report's title, margins, legend and fonts."""
    lay: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 14}, "x": 0.01, "xanchor": "left"},
        "height": height, "margin": {"l": 60, "r": 20, "t": 40, "b": 45},
        "legend": {"orientation": "h", "y": -0.12, "yanchor": "top", "font": {"size": 11}},
        "hovermode": "x unified", "font": {"size": 11},
        "plot_bgcolor": "#ffffff", "paper_bgcolor": "#ffffff",
    }
    lay.update(kw)
    return lay


def time_axis(ctx: Context, **kw: Any) -> dict[str, Any]:
    """A plotly date axis over the horizon, in local time."""
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
        traces.append({"type": "scatter", "x": x, "y": stepped(imp), "mode": "lines",
                       "line": {"width": 0, "shape": "hv"}, "showlegend": False,
                       "hoverinfo": "skip", "name": "import"})
        traces.append({"type": "scatter", "x": x, "y": stepped(head), "mode": "lines",
                       "fill": "tonexty", "fillcolor": "rgba(213,94,0,0.10)",
                       "line": {"width": 1, "dash": "dot", "color": "#D55E00", "shape": "hv"},
                       "name": "import limit (headroom); band = spare"})
    for key, arr in (("pv", f.pv_used), ("discharge", f.discharge), ("import", f.grid_import)):
        v = pick(arr)
        sup = sup + v
        if np.any(v > viz.DISPLAY_TOL):
            name, colour = FLOW[key]
            traces.append({"type": "scatter", "x": x, "y": stepped(v), "mode": "lines",
                           "stackgroup": "supply", "line": {"width": 0.5, "shape": "hv",
                                                            "color": colour},
                           "fillcolor": colour, "name": f"{name} [kW]"})
    for key, arr in (("charge", f.charge), ("export", f.grid_export)):
        v = pick(arr)
        sink = sink + v
        if np.any(v > viz.DISPLAY_TOL):
            name, colour = FLOW[key]
            traces.append({"type": "scatter", "x": x, "y": stepped(-v), "mode": "lines",
                           "stackgroup": "sink", "line": {"width": 0.5, "shape": "hv",
                                                          "color": colour},
                           "fillcolor": colour, "name": f"{name} [kW]"})
    traces.append({"type": "scatter", "x": x, "y": stepped(load), "mode": "lines",
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


def costs_section(ctx: Context, figs: dict[str, Any]) -> str:
    """The cost terms as a bar chart and a table."""
    ev = ctx.ev
    vals = [-ev.costs[k] if k == "export_revenue" else ev.costs[k] for k in COST_TERMS]
    labels = ["−export revenue" if k == "export_revenue" else k for k in COST_TERMS]
    figs["fig-costs"] = {
        "data": [{"type": "bar", "x": labels, "y": clean(vals),
                  "marker": {"color": [viz._TERM_COLOURS[k] for k in COST_TERMS]},
                  "text": [fmt_number(v) for v in vals], "textposition": "outside",
                  "hovertemplate": "%{x}: %{y:,.4g}<extra></extra>"}],
        "layout": layout(f"cost terms [money]; objective {fmt_number(ev.objective, 6)}", 300,
                         hovermode="closest", yaxis={"title": {"text": "cost [money]"},
                                                     "gridcolor": "#eeeeee"}),
    }
    rows = "".join(
        f'<tr><td>{esc(k)}</td><td class="n">{esc(fmt_number(v, 6))}</td></tr>'
        for k, v in zip(COST_TERMS, vals, strict=True))
    table = ('<table id="cost-table"><thead><tr><th>term (SPEC §3)</th><th>signed cost '
             f'[money]</th></tr></thead><tbody>{rows}<tr><th>objective</th><td class="n">'
             f"{esc(fmt_number(ev.objective, 6))}</td></tr></tbody></table>")
    return ('<div class="row"><div class="grow"><div class="fig" id="fig-costs"></div></div>'
            f"<div>{table}</div></div>")


def fleet_section(ctx: Context, figs: dict[str, Any]) -> str:
    """The fleet's power: supply, sinks, load and the spare import headroom."""
    f = ctx.plan.flows
    assert f is not None
    idx = ctx.index
    x = ctx.clock.axis(idx.T)
    head = idx.headroom.sum(axis=0) if np.all(np.isfinite(idx.headroom)) else None
    traces, lo, hi = _power_traces(x, f, None, head)
    figs["fig-fleet"] = {"data": traces,
                         "layout": layout(f"fleet power, {idx.N} nodes [kW] · local time "
                                          f"{ctx.clock.label}", 380,
                                          xaxis=time_axis(ctx),
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
            f"off the top when the limit is far above).{esc(note)}</p>"
            '<div class="fig" id="fig-fleet"></div>')


def feeders_section(ctx: Context, figs: dict[str, Any]) -> str:
    """Each feeder's net import against its headroom, a figure and a table."""
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
        traces.append({"type": "scatter", "x": x, "y": stepped(use), "mode": "lines",
                       "line": {"shape": "hv", "width": 1.2}, "name": fid,
                       "hovertemplate": f"{esc(fid)}: " + "%{y:.1f} %<extra></extra>"})
        fin = use[np.isfinite(use)]
        rows.append([fid, members, float(net[k].max()), float(np.nanmin(np.where(
            np.isfinite(lim), lim, np.nan))) if np.any(np.isfinite(lim)) else None,
            float(fin.max()) if fin.size else None,
            int((net[k] - lim > 1e-6).sum())])
    traces.append({"type": "scatter", "x": [x[0], x[-1]], "y": [100, 100], "mode": "lines",
                   "line": {"color": "#D55E00", "dash": "dash"}, "name": "limit (100 %)",
                   "hoverinfo": "skip"})
    figs["fig-feeders"] = {"data": traces,
                           "layout": layout("feeder net import as a share of its headroom [%] · "
                                            "local time "
                                            f"{ctx.clock.label}",
                                            320, xaxis=time_axis(ctx),
                                            yaxis={"title": {"text": "use of headroom [%]"},
                                                   "gridcolor": "#eeeeee"})}
    cols = [Col("feeder"), Col("nodes", True), Col("peak net import [kW]", True),
            Col("lowest headroom [kW]", True), Col("peak use [%]", True),
            Col("slots over", True)]
    return ('<p class="note">Net import (import − export) of each feeder\'s nodes against the '
            "feeder's headroom (SPEC §2 constraint 7).</p>"
            '<div class="fig" id="fig-feeders"></div>'
            + data_table("feeder-table", cols, rows, height=False))


def prices_section(ctx: Context, figs: dict[str, Any]) -> str:
    """Import and export prices and the carbon intensity of import."""
    p = ctx.problem
    if not p.tariffs:
        return '<p class="note">No prices.csv: energy is free.</p>'
    x = ctx.clock.axis(ctx.index.T)
    traces = []
    for i, (name, t) in enumerate(sorted(p.tariffs.items())[:8]):
        colour = KIND_COLOURS[i % len(KIND_COLOURS)]
        traces.append({"type": "scatter", "x": x, "y": stepped(t.price), "mode": "lines",
                       "line": {"shape": "hv", "color": colour, "width": 1.6},
                       "name": f"{name} price [money/kWh]"})
        if any(v != 0 for v in t.export_price):
            traces.append({"type": "scatter", "x": x, "y": stepped(t.export_price),
                           "mode": "lines", "line": {"shape": "hv", "color": colour,
                                                     "dash": "dash", "width": 1},
                           "name": f"{name} export [money/kWh]"})
    carbon = max(p.tariffs.values(), key=lambda t: sum(t.carbon_g_per_kwh)).carbon_g_per_kwh
    if any(v > 0 for v in carbon):
        traces.append({"type": "scatter", "x": x, "y": stepped(carbon), "mode": "lines",
                       "yaxis": "y2", "line": {"shape": "hv", "color": "#999999",
                                               "dash": "dot", "width": 1.5},
                       "name": "carbon intensity [gCO2/kWh]"})
    figs["fig-prices"] = {
        "data": traces,
        "layout": layout(f"import and export prices; carbon intensity of import · local time "
                         f"{ctx.clock.label}", 330, margin={"l": 60, "r": 70, "t": 40, "b": 45},
                         xaxis=time_axis(ctx),
                         yaxis={"title": {"text": "price [money/kWh]"}, "gridcolor": "#eeeeee"},
                         yaxis2={"title": {"text": "carbon [gCO2/kWh]"}, "overlaying": "y",
                                 "side": "right", "rangemode": "tozero"}),
    }
    return '<div class="fig" id="fig-prices"></div>'


def slo_section(ctx: Context, figs: dict[str, Any]) -> str:
    """What jobs paid beyond energy (latency, tardiness, drop), most first."""
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
            traces.append({"type": "bar", "orientation": "h", "y": names, "x": clean(v),
                           "name": f"{key} [money]", "marker": {"color": colour},
                           "customdata": [o.reason for o in top],
                           "hovertemplate": "%{y}: %{x:,.4g}<br>%{customdata}<extra></extra>"})
    n_lat = sum(o.latency_cost > 0 for o in outcomes)
    n_tard = sum(o.tardiness_cost > 0 for o in outcomes)
    n_drop = sum(o.drop_cost > 0 for o in outcomes)
    figs["fig-slo"] = {"data": traces,
                       "layout": layout("what jobs paid beyond energy [money]",
                                        max(220, 80 + 20 * len(top)), barmode="stack",
                                        hovermode="closest",
                                        yaxis={"autorange": "reversed", "automargin": True},
                                        xaxis={"title": {"text": "cost [money]"},
                                               "gridcolor": "#eeeeee"})}
    more = f" (the {len(top)} most expensive drawn)" if len(outcomes) > len(top) else ""
    return (f'<p class="note">{n_lat} job(s) over their latency SLO, {n_tard} late, '
            f"{n_drop} dropped{more}; the reasons are in the job table.</p>"
            '<div class="fig" id="fig-slo"></div>')
