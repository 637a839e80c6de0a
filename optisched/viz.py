"""Figures of a plan: plain matplotlib, for notebooks, PNG files and the HTML report.

Every public figure function takes ``(problem, plan, index=None, ...)`` and
returns a :class:`matplotlib.figure.Figure` drawn on the Agg canvas; nothing is
shown and pyplot's global state is never touched, so the functions are safe in
scripts, servers and notebooks (a notebook displays a returned figure). Pass
``ax=`` to draw into an existing axes instead (the axes' figure is returned).

The time axis of every figure is in hours from the horizon start [h] (data
coordinates), labelled in clock time at the horizon start's UTC offset; a slot ``t``
covers ``[t·Δ, (t+1)·Δ)``. Power is [kW], energy [kWh], state of charge [kWh],
money in the scenario's currency.

Per-node functions take ``node``: a node id, a node position, or None for the
fleet aggregate (flows summed over all nodes). :func:`node_costs` attributes the
cost terms of SPEC §3 to nodes, and :func:`top_nodes` ranks nodes by it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from optisched.arrays import FloatArray
from optisched.domain import Problem
from optisched.evaluate import evaluate, resource_usage
from optisched.index import Index, compile_index, explain_job
from optisched.plan import COST_TERMS, Flows, Plan

__all__ = [
    "HIGHLIGHTS",
    "NODE_TERMS",
    "JobCosts",
    "JobOutcome",
    "NodeCosts",
    "battery_soc",
    "cost_breakdown",
    "energy_stack",
    "feeder_load",
    "gantt",
    "highlight_nodes",
    "import_headroom",
    "job_costs",
    "job_outcomes",
    "new_figure",
    "node_costs",
    "per_node_figure",
    "price_carbon",
    "slo_summary",
    "top_nodes",
]

NodeRef = str | int | None

NODE_TERMS = ("energy", "export_revenue", "carbon", "degradation", "demand", "switching",
              "latency", "tardiness")
"""Cost terms that :func:`node_costs` attributes to a node (``drop`` is fleet-only)."""

# colour-blind-safe palette (Okabe & Ito, 2008, "Color Universal Design")
_C = {
    "pv": "#E69F00", "discharge": "#009E73", "import": "#0072B2", "charge": "#56B4E9",
    "export": "#CC79A7", "load": "#000000", "headroom": "#D55E00", "soc": "#009E73",
    "price": "#0072B2", "carbon": "#999999", "latency": "#56B4E9", "tardiness": "#E69F00",
    "drop": "#D55E00", "off": "#EEEEEE", "unavail": "#BBBBBB",
}
_TERM_COLOURS = {
    "energy": "#0072B2", "export_revenue": "#CC79A7", "carbon": "#999999",
    "degradation": "#009E73", "demand": "#D55E00", "switching": "#F0E442",
    "latency": "#56B4E9", "tardiness": "#E69F00", "drop": "#000000",
}


# --------------------------------------------------------------------------- helpers


def new_figure(width: float = 9.0, height: float = 3.0) -> Figure:
    """A figure on the Agg canvas, outside pyplot (never shown) [inches]."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _axes(ax: Axes | None, width: float = 10.0, height: float = 3.0) -> tuple[Figure, Axes]:
    if ax is not None:
        fig = ax.figure
        assert isinstance(fig, Figure)
        return fig, ax
    fig = new_figure(width, height)
    return fig, fig.add_subplot()


def _flows(plan: Plan) -> Flows:
    if plan.flows is None:
        raise ValueError(f"plan has no flows to draw (status {plan.status.value}"
                         f"{': ' + plan.message if plan.message else ''})")
    return plan.flows


def _edges(index: Index) -> FloatArray:
    """Slot edges in hours from the horizon start [h], ``(T+1,)``."""
    return np.arange(index.T + 1, dtype=np.float64) * index.dt


def _node_pos(index: Index, node: NodeRef) -> int | None:
    if node is None:
        return None
    if isinstance(node, (int, np.integer)):
        if not 0 <= int(node) < index.N:
            raise ValueError(f"node position {node} out of range 0..{index.N - 1}")
        return int(node)
    if node not in index.node_pos:
        raise ValueError(f"unknown node {node!r}")
    return index.node_pos[node]


def _label(index: Index, node: NodeRef) -> str:
    n = _node_pos(index, node)
    return f"fleet ({index.N} nodes)" if n is None else index.node_ids[n]


def _pick(arr: FloatArray, n: int | None) -> FloatArray:
    """Row ``n`` of an ``(N, T)`` array, or the sum over nodes when ``n`` is None."""
    return np.asarray(arr[n] if n is not None else arr.sum(axis=0), dtype=float)


def _xlabel(ax: Axes, problem: Problem) -> None:
    """Clock-time ticks (the horizon start's UTC offset) on an axis in hours from the start."""
    hz = problem.horizon
    span = hz.slots * hz.dt_hours
    step = next((h for h in (1, 2, 3, 4, 6, 12, 24, 48, 72, 168) if span / h <= 9), 168)
    ticks = np.arange(0.0, span + 1e-9, step)
    start = hz.start
    labels = []
    for h in ticks:
        t = start + timedelta(hours=float(h))
        one_day = span <= 24 and (t.date() == start.date() or h == span)
        labels.append(t.strftime("%H:%M") if one_day else t.strftime("%d %b %H:%M"))
    ax.set_xticks(ticks, labels)
    off = start.strftime("%z")
    ax.set_xlabel(f"local time (UTC{off[:3]}:{off[3:]}), {start:%a %d %b %Y}, slots of "
                  f"{hz.slot_minutes} min")


def _power_axes(ax: Axes, edges: npt.NDArray[np.float64], title: str) -> None:
    """Common finish of a power-over-time axes: zero line, x range, kW label, title, legend."""
    ax.axhline(0.0, color="#333333", linewidth=0.6)
    ax.set_xlim(0, edges[-1])
    ax.set_ylabel("power [kW]")
    ax.set_title(title)
    _legend(ax)


def _legend(ax: Axes) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, framealpha=0.8)


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_yticks([])  # x may be shared with other rows: leave its ticks alone


# --------------------------------------------------------------------------- costs


@dataclass
class NodeCosts:
    """Cost terms of SPEC §3 attributed to nodes.

    Attributes
    ----------
    node_ids : list of str
        Nodes in problem order.
    terms : dict of str to (N,) float
        Every term of :data:`NODE_TERMS` per node [money]: the node's energy,
        export revenue (positive, subtracted in ``total``), carbon, degradation,
        demand and switching, plus latency and tardiness of the jobs running there.
    drop : float
        Drop penalties, not attributable to a node [money].
    energy_kwh, import_kwh, pv_kwh, peak_import_kw : (N,) float
        Load energy, grid import, PV used [kWh] and peak import [kW] per node.
    jobs : (N,) int
        Jobs running on each node.
    """

    node_ids: list[str]
    terms: dict[str, FloatArray]
    drop: float
    energy_kwh: FloatArray
    import_kwh: FloatArray
    pv_kwh: FloatArray
    peak_import_kw: FloatArray
    jobs: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def total(self) -> FloatArray:
        """Net cost per node [money]; ``total.sum() + drop`` is the plan's objective."""
        out = np.zeros(len(self.node_ids))
        for k in NODE_TERMS:
            out += -self.terms[k] if k == "export_revenue" else self.terms[k]
        return out


def node_costs(problem: Problem, plan: Plan, index: Index | None = None) -> NodeCosts:
    """Attribute every cost term of SPEC §3 to nodes, by the same formulas as the evaluator.

    Parameters
    ----------
    problem : Problem
        The problem.
    plan : Plan
        A plan with flows.
    index : Index, optional
        The compiled problem.

    Returns
    -------
    NodeCosts
        Per-node terms [money]; their net sum plus ``drop`` equals the
        evaluator's objective.
    """
    index = index or compile_index(problem)
    f = _flows(plan)
    dt = index.dt
    imp = f.grid_import
    on = f.on.astype(bool)
    prev = np.concatenate([index.initially_on[:, None], on[:, :-1]], axis=1)
    ups = (on & ~prev).sum(axis=1)
    downs = (~on & prev).sum(axis=1) + (index.end_off & on[:, -1])
    lat = np.zeros(index.N)
    tard = np.zeros(index.N)
    jobs = np.zeros(index.N, dtype=np.int64)
    runs = np.nonzero(plan.node >= 0)[0]
    if runs.size:
        nr = plan.node[runs]
        over = index.latency_ms[runs, nr] - index.latency_slo[runs]
        lc = np.where(np.isfinite(over) & (over > 0),
                      index.latency_rate[runs] * np.nan_to_num(over), 0.0)
        tc = index.tardiness_cost(runs, plan.start[runs] + index.duration(runs, nr))
        np.add.at(lat, nr, lc)
        np.add.at(tard, nr, tc)
        np.add.at(jobs, nr, 1)
    terms = {
        "energy": (dt * index.price * imp).sum(axis=1),
        "export_revenue": (dt * index.export_price * f.grid_export).sum(axis=1),
        "carbon": (dt * (index.import_cost - index.price) * imp).sum(axis=1),
        "degradation": dt * index.degradation * f.discharge.sum(axis=1),
        "demand": index.demand_charge * imp.max(axis=1, initial=0.0),
        "switching": ups * index.startup_cost + downs * index.shutdown_cost,
        "latency": lat,
        "tardiness": tard,
    }
    drop = float(np.nansum(index.drop_penalty[plan.node < 0]))
    return NodeCosts(
        node_ids=list(index.node_ids), terms={k: np.asarray(v, dtype=float)
                                              for k, v in terms.items()},
        drop=drop, energy_kwh=dt * f.load.sum(axis=1), import_kwh=dt * imp.sum(axis=1),
        pv_kwh=dt * f.pv_used.sum(axis=1), peak_import_kw=imp.max(axis=1, initial=0.0),
        jobs=jobs,
    )


def top_nodes(problem: Problem, plan: Plan, n: int = 5, index: Index | None = None) -> list[int]:
    """Positions of the ``n`` nodes with the highest attributed net cost (ties by id).

    Parameters
    ----------
    problem, plan : Problem, Plan
        The problem and a plan with flows.
    n : int
        How many nodes (all when ``n`` ≥ the number of nodes).
    index : Index, optional
        The compiled problem.
    """
    index = index or compile_index(problem)
    total = node_costs(problem, plan, index).total
    order = sorted(range(index.N), key=lambda k: (-total[k], index.node_ids[k]))
    return order[: max(0, n)]


HIGHLIGHTS: tuple[tuple[str, str], ...] = (
    ("busiest", "busiest (GPU-hours of jobs)"),
    ("energy", "most energy (load [kWh])"),
    ("battery", "battery users (discharged [kWh])"),
    ("expensive", "most expensive (attributed cost)"),
)
"""Categories of :func:`highlight_nodes`: key and what ranks the nodes."""

DISPLAY_TOL = 1e-6
"""Values of smaller magnitude are rounding noise of the solvers and count as zero."""


def gpu_hours(index: Index, plan: Plan) -> FloatArray:
    """GPU-hours of the jobs each node runs within the horizon [GPU·h], ``(N,)``."""
    return np.asarray(resource_usage(index, plan.node, plan.start,
                                     index.usage[:, 0]).sum(axis=1) * index.dt, dtype=float)


def highlight_nodes(problem: Problem, plan: Plan, index: Index | None = None,
                    k: int = 3) -> dict[str, list[int]]:
    """The nodes worth a look, by what matters (:data:`HIGHLIGHTS`).

    Parameters
    ----------
    problem, plan : Problem, Plan
        The problem and a plan with flows.
    index : Index, optional
        The compiled problem.
    k : int
        Nodes per category, at most.

    Returns
    -------
    dict of str to list of int
        Node positions per category, best first (ties by id); only nodes whose
        value is above :data:`DISPLAY_TOL` (a node without jobs is not "busy", one
        without battery throughput not a "battery user").
    """
    index = index or compile_index(problem)
    f = _flows(plan)
    nc = node_costs(problem, plan, index)
    values = {
        "busiest": gpu_hours(index, plan),
        "energy": index.dt * f.load.sum(axis=1),
        "battery": index.dt * f.discharge.sum(axis=1),
        "expensive": nc.total,
    }
    out: dict[str, list[int]] = {}
    for key, v in values.items():
        order = sorted((n for n in range(index.N) if v[n] > DISPLAY_TOL),
                       key=lambda n, v=v: (-float(v[n]), index.node_ids[n]))  # type: ignore[misc]
        out[key] = order[: max(0, k)]
    return out


@dataclass
class JobCosts:
    """Energy and cost of each job, and the node overheads that belong to no job.

    Attribution: a node's gross energy cost (import energy + carbon + battery
    degradation) is shared over the energy its load draws (idle draw included),
    at the node's average rate ``rate [money/kWh]``; a job pays its own draw
    (``power_kw · power_factor`` over its slots in the horizon) at that rate, plus
    its latency and tardiness cost, or its drop penalty. What remains with the
    node — the idle draw's share, the demand charge, switching, minus export
    revenue — is its ``overhead``. ``total.sum() + overhead.sum()`` equals the
    objective.

    Attributes
    ----------
    energy_kwh, energy_cost, latency, tardiness, drop : (J,) float
        Per job [kWh] and [money].
    rate : (N,) float
        Average gross energy cost of a node's load [money/kWh].
    overhead : (N,) float
        Node costs not attributed to jobs [money].
    """

    energy_kwh: FloatArray
    energy_cost: FloatArray
    latency: FloatArray
    tardiness: FloatArray
    drop: FloatArray
    rate: FloatArray
    overhead: FloatArray

    @property
    def total(self) -> FloatArray:
        """Cost attributed to each job [money]."""
        return self.energy_cost + self.latency + self.tardiness + self.drop


def job_costs(problem: Problem, plan: Plan, index: Index | None = None,
              costs: NodeCosts | None = None) -> JobCosts:
    """Attribute energy and cost to jobs (see :class:`JobCosts` for the rule)."""
    index = index or compile_index(problem)
    f = _flows(plan)
    nc = costs or node_costs(problem, plan, index)
    J = index.J
    energy = np.zeros(J)
    lat = np.zeros(J)
    tard = np.zeros(J)
    runs = np.nonzero(plan.node >= 0)[0]
    load_kwh = index.dt * f.load.sum(axis=1)
    gross = nc.terms["energy"] + nc.terms["carbon"] + nc.terms["degradation"]
    rate = np.divide(gross, load_kwh, out=np.zeros(index.N), where=load_kwh > DISPLAY_TOL)
    if runs.size:
        nr = plan.node[runs]
        s = plan.start[runs]
        e = s + index.duration(runs, nr)
        slots = np.clip(e, 0, index.T) - np.clip(s, 0, index.T)
        energy[runs] = index.job_power[runs] * index.power_factor[nr] * slots * index.dt
        over = index.latency_ms[runs, nr] - index.latency_slo[runs]
        lat[runs] = np.where(np.isfinite(over) & (over > 0),
                             index.latency_rate[runs] * np.nan_to_num(over), 0.0)
        tard[runs] = index.tardiness_cost(runs, e)
    node = np.maximum(plan.node, 0)
    ecost = np.where(plan.node >= 0, energy * rate[node], 0.0)
    drop = np.where(plan.node < 0, np.nan_to_num(index.drop_penalty), 0.0)
    attributed = np.zeros(index.N)
    if runs.size:
        np.add.at(attributed, plan.node[runs], ecost[runs])
    overhead = (gross - attributed + nc.terms["demand"] + nc.terms["switching"]
                - nc.terms["export_revenue"])
    return JobCosts(energy_kwh=energy, energy_cost=ecost, latency=lat, tardiness=tard,
                    drop=drop, rate=rate, overhead=overhead)


def cost_breakdown(problem: Problem, plan: Plan, index: Index | None = None,
                   ax: Axes | None = None) -> Figure:
    """Bar chart of every cost term of SPEC §3 for the fleet [money].

    Terms come from :func:`optisched.evaluate.evaluate` (not from the plan's
    summary); export revenue is drawn below zero because it is subtracted. The
    title carries the objective.
    """
    index = index or compile_index(problem)
    ev = evaluate(problem, plan, index)
    if not ev.costs:
        raise ValueError("plan has no flows to price")
    fig, ax = _axes(ax, 9.0, 3.2)
    vals = [-ev.costs[k] if k == "export_revenue" else ev.costs[k] for k in COST_TERMS]
    labels = ["−export_revenue" if k == "export_revenue" else k for k in COST_TERMS]
    bars = ax.bar(labels, vals, color=[_TERM_COLOURS[k] for k in COST_TERMS],
                  edgecolor="#333333", linewidth=0.5)
    ax.bar_label(bars, labels=[f"{v:.4g}" for v in vals], fontsize=8, padding=2)
    ax.axhline(0.0, color="#333333", linewidth=0.8)
    ax.set_ylabel("cost [money]")
    ax.tick_params(axis="x", labelrotation=30)
    state = "" if ev.feasible else " — INFEASIBLE plan"
    ax.set_title(f"cost breakdown: objective {ev.objective:.6g}{state}")
    ax.margins(y=0.15)
    return fig


# --------------------------------------------------------------------------- timeline


def gantt(problem: Problem, plan: Plan, index: Index | None = None,
          nodes: Sequence[str | int] | None = None, ax: Axes | None = None,
          max_rows: int = 40) -> Figure:
    """Per-node timeline of jobs (Gantt chart).

    One row per node: a bar per job from its start to its end [h] (clipped to
    the horizon; pinned jobs hatched), off slots light grey, unavailable slots
    dark grey.

    Parameters
    ----------
    nodes : sequence of node ids or positions, optional
        Rows to draw; default every node, or when there are more than
        ``max_rows``, the ``max_rows`` nodes running most jobs (then by cost).
    max_rows : int
        Cap on rows when ``nodes`` is None.
    """
    index = index or compile_index(problem)
    f = _flows(plan)
    title = "jobs per node (grey: off, hatched grey: unavailable, hatched bar: pinned)"
    if nodes is None and index.N > max_rows:
        nc = node_costs(problem, plan, index)
        total = nc.total
        rows = sorted(range(index.N), key=lambda k: (-int(nc.jobs[k]), -total[k],
                                                     index.node_ids[k]))[:max_rows]
        title += f"\n{max_rows} of {index.N} nodes: most jobs first, then cost"
    elif nodes is None:
        rows = list(range(index.N))
    else:
        rows = [p for p in (_node_pos(index, k) for k in nodes) if p is not None]
    fig, ax = _axes(ax, 9.0, 1.0 + 0.45 * max(1, len(rows)))
    if not rows:
        _empty(ax, "no nodes")
        return fig
    dt = index.dt
    row_of = {n: r for r, n in enumerate(rows)}
    cmap = _job_colours(index.J)
    for r, n in enumerate(rows):
        off = [(t * dt, dt) for t in range(index.T) if not f.on[n, t] and index.available[n, t]]
        un = [(t * dt, dt) for t in range(index.T) if not index.available[n, t]]
        if off:
            ax.broken_barh(off, (r - 0.4, 0.8), facecolors=_C["off"], edgecolor="none")
        if un:
            ax.broken_barh(un, (r - 0.4, 0.8), facecolors=_C["unavail"], edgecolor="none",
                           hatch="//")
    for n, bars in _lanes(index, plan, set(rows)).items():
        r = row_of[n]
        lanes = 1 + max(lane for _, _, _, lane in bars)
        h = 0.7 / lanes
        for j, a, b, lane in bars:
            y0 = r - 0.35 + lane * h
            ax.broken_barh([(a * dt, (b - a) * dt)], (y0, h), facecolors=cmap[j],
                           edgecolor="#333333", linewidth=0.5,
                           hatch="xx" if index.pinned[j] else None, alpha=0.85)
            if (b - a) >= 0.03 * index.T:  # label only bars wide enough to hold it
                ax.text((a + b) / 2 * dt, y0 + h / 2, index.job_ids[j], ha="center",
                        va="center", fontsize=7 if lanes < 4 else 5, clip_on=True)
    ax.set_yticks(range(len(rows)), [index.node_ids[n] for n in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, index.T * dt)
    _xlabel(ax, problem)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _lanes(index: Index, plan: Plan,
           rows: set[int]) -> dict[int, list[tuple[int, int, int, int]]]:
    """Jobs per node as (job, first slot, end slot, lane): overlapping jobs get separate lanes."""
    per: dict[int, list[tuple[int, int, int]]] = {}
    for j in np.nonzero(plan.node >= 0)[0]:
        n = int(plan.node[j])
        if n not in rows:
            continue
        s = int(plan.start[j])
        a, b = max(0, s), min(index.T, s + int(index.duration(int(j), n)))
        if b > a:
            per.setdefault(n, []).append((int(j), a, b))
    out: dict[int, list[tuple[int, int, int, int]]] = {}
    for n, items in per.items():
        ends: list[int] = []  # end slot of the last job in each lane
        placed: list[tuple[int, int, int, int]] = []
        for jj, aa, bb in sorted(items, key=lambda x: (x[1], x[2], x[0])):
            lane = next((k for k, e in enumerate(ends) if e <= aa), len(ends))
            if lane == len(ends):
                ends.append(bb)
            else:
                ends[lane] = bb
            placed.append((jj, aa, bb, lane))
        out[n] = placed
    return out


def _job_colours(J: int) -> list[str]:
    base = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
            "#999999"]
    return [base[k % len(base)] for k in range(J)]


# --------------------------------------------------------------------------- energy


def energy_stack(problem: Problem, plan: Plan, index: Index | None = None,
                 node: NodeRef = None, ax: Axes | None = None) -> Figure:
    """Energy stack of one node or the fleet: supply above zero, sinks below [kW].

    Above zero, stacked: PV used, battery discharge, grid import; below zero:
    battery charge and grid export. The black line is the load (idle + jobs).
    By the power balance of SPEC §2, the stack above zero equals load + charge
    + export in every slot.
    """
    index = index or compile_index(problem)
    f = _flows(plan)
    n = _node_pos(index, node)
    fig, ax = _axes(ax)
    e = _edges(index)
    base = np.zeros(index.T)
    for key, arr, label in (("pv", f.pv_used, "PV used"), ("discharge", f.discharge,
                                                           "battery discharge"),
                            ("import", f.grid_import, "grid import")):
        v = _pick(arr, n)
        if np.any(v > 0):
            ax.stairs(base + v, e, baseline=base.copy(), fill=True, color=_C[key], label=label,
                      alpha=0.85)
        base = base + v
    neg = np.zeros(index.T)
    for key, arr, label in (("charge", f.charge, "battery charge"),
                            ("export", f.grid_export, "grid export")):
        v = _pick(arr, n)
        if np.any(v > 0):
            ax.stairs(neg - v, e, baseline=neg.copy(), fill=True, color=_C[key], label=label,
                      alpha=0.85)
        neg = neg - v
    ax.stairs(_pick(f.load, n), e, baseline=None, color=_C["load"], linewidth=1.5,
              label="load")
    _power_axes(ax, e, f"energy: {_label(index, node)}")
    _xlabel(ax, problem)
    return fig


def battery_soc(problem: Problem, plan: Plan, index: Index | None = None,
                node: NodeRef = None, ax: Axes | None = None) -> Figure:
    """Battery state of charge of one node or the fleet [kWh], with reserve and maximum.

    The line starts at the initial state at hour 0 and gives the state at the
    end of every slot. Dashed: the reserve ``soc_min·battery_kwh`` (red) and the
    maximum ``soc_max·battery_kwh`` (grey); dotted: the initial state (the
    terminal rule ``initial`` asks the end to reach it). Fleet: sums over nodes.
    """
    index = index or compile_index(problem)
    f = _flows(plan)
    n = _node_pos(index, node)
    fig, ax = _axes(ax)
    sel = np.arange(index.N) if n is None else np.array([n])
    if index.battery_kwh[sel].sum() <= 0:
        _empty(ax, f"{_label(index, node)}: no battery")
        ax.set_title(f"battery: {_label(index, node)}")
        return fig
    soc0 = float(index.soc_init[sel].sum())
    soc = np.concatenate([[soc0], f.soc[sel].sum(axis=0)])
    e = _edges(index)
    ax.plot(e, soc, color=_C["soc"], linewidth=1.6, marker="o", markersize=2.5,
            label="state of charge")
    ax.axhline(float(index.soc_min[sel].sum()), color=_C["headroom"], linestyle="--",
               linewidth=1.0, label="reserve (soc_min)")
    ax.axhline(float(index.soc_max[sel].sum()), color="#666666", linestyle="--", linewidth=1.0,
               label="max (soc_max)")
    ax.axhline(soc0, color="#666666", linestyle=":", linewidth=0.8, label="initial")
    ax.set_ylim(0, float(index.battery_kwh[sel].sum()) * 1.05)
    ax.set_xlim(0, e[-1])
    ax.set_ylabel("state of charge [kWh]")
    _xlabel(ax, problem)
    ax.set_title(f"battery: {_label(index, node)} ({index.battery_kwh[sel].sum():g} kWh)")
    _legend(ax)
    return fig


def import_headroom(problem: Problem, plan: Plan, index: Index | None = None,
                    node: NodeRef = None, ax: Axes | None = None) -> Figure:
    """Grid import against the import limit (headroom) of one node or the fleet [kW].

    Export is drawn below zero. An unlimited headroom (``inf``) is not drawn and
    noted in the legend; the fleet headroom is the sum over nodes (shown only
    when every node's is finite).
    """
    index = index or compile_index(problem)
    f = _flows(plan)
    n = _node_pos(index, node)
    fig, ax = _axes(ax)
    e = _edges(index)
    imp = _pick(f.grid_import, n)
    ax.stairs(imp, e, fill=True, color=_C["import"], alpha=0.6, label="grid import")
    exp = _pick(f.grid_export, n)
    if np.any(exp > 0):
        ax.stairs(-exp, e, fill=True, color=_C["export"], alpha=0.6, label="grid export")
    head = _pick(index.headroom, n)
    if np.all(np.isfinite(head)):
        ax.stairs(head, e, baseline=None, color=_C["headroom"], linewidth=1.5, linestyle="--",
                  label="headroom (import limit)")
    else:
        ax.plot([], [], color=_C["headroom"], linestyle="--", label="headroom: unlimited")
    _power_axes(ax, e, f"grid: {_label(index, node)}")
    _xlabel(ax, problem)
    return fig


def price_carbon(problem: Problem, plan: Plan, index: Index | None = None,
                 node: NodeRef = None, ax: Axes | None = None, max_tariffs: int = 6) -> Figure:
    """Import and export price [money/kWh] with the carbon intensity [g/kWh] overlaid.

    Left axis: import price (solid) and export price (dashed) of the node's
    tariff, or of every tariff (at most ``max_tariffs``) for the fleet; right
    axis: carbon intensity of import (dotted). The grey fill is the grid import
    of the node or fleet scaled to the price axis' height (its shape only), to
    see whether import falls in cheap and clean slots.
    """
    index = index or compile_index(problem)
    f = _flows(plan)
    n = _node_pos(index, node)
    fig, ax = _axes(ax)
    e = _edges(index)
    if not problem.tariffs:
        _empty(ax, "no prices.csv: energy is free")
        ax.set_title("prices and carbon")
        return fig
    names = ([problem.nodes[n].tariff] if n is not None
             else sorted({nd.tariff for nd in problem.nodes})[:max_tariffs])
    names = [t for t in names if t in problem.tariffs]
    ax2 = ax.twinx()
    hi = 0.0
    lo = 0.0
    for k, name in enumerate(names):
        t = problem.tariffs[name]
        colour = _job_colours(len(names))[k]
        p = np.asarray(t.price, dtype=float)
        x = np.asarray(t.export_price, dtype=float)
        ax.stairs(p, e, baseline=None, color=colour, linewidth=1.5, label=f"{name} price")
        if np.any(x != 0):
            ax.stairs(x, e, baseline=None, color=colour, linewidth=1.0, linestyle="--",
                      label=f"{name} export price")
        ax2.stairs(np.asarray(t.carbon_g_per_kwh, dtype=float), e, baseline=None, color=colour,
                   linewidth=1.0, linestyle=":", label=f"{name} carbon")
        hi = max(hi, float(p.max()), float(x.max()))
        lo = min(lo, float(p.min()), float(x.min()))
    imp = _pick(f.grid_import, n)
    if imp.max() > 0 and hi > 0:
        ax.stairs(imp / imp.max() * hi, e, fill=True, color=_C["carbon"], alpha=0.2,
                  label="grid import (shape)")
    ax.set_xlim(0, e[-1])
    ax.set_ylim(min(lo, 0.0) * 1.1, (hi or 1.0) * 1.15)
    ax2.set_ylim(bottom=0)
    ax.set_ylabel("price [money/kWh]")
    ax2.set_ylabel("carbon [gCO2/kWh]")
    _xlabel(ax, problem)
    ax.set_title(f"prices and carbon: {_label(index, node)}")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", bbox_to_anchor=(1.09, 1.0), fontsize=7,
              framealpha=0.8)
    return fig


def feeder_load(problem: Problem, plan: Plan, index: Index | None = None,
                feeders: Sequence[str] | None = None, max_feeders: int = 6) -> Figure:
    """Net import of each feeder's nodes against the feeder headroom [kW].

    One axes per feeder: ``Σ_{n∈f}(import − export)`` (SPEC §2 constraint 7)
    as a filled step, the headroom as a dashed step, any excess in red. Without
    feeders the figure holds one axes saying so.

    Parameters
    ----------
    feeders : sequence of str, optional
        Feeders to draw; default the first ``max_feeders`` by peak net load.
    """
    index = index or compile_index(problem)
    f = _flows(plan)
    F = len(index.feeder_ids)
    if F == 0:
        fig, ax = _axes(None, 9.0, 1.5)
        _empty(ax, "no feeders in this bundle")
        ax.set_title("feeders")
        return fig
    net = np.zeros((F, index.T))
    has = index.feeder_of >= 0
    np.add.at(net, index.feeder_of[has], (f.grid_import - f.grid_export)[has])
    if feeders is None:
        order = sorted(range(F), key=lambda k: (-float(net[k].max()), index.feeder_ids[k]))
        chosen = order[:max_feeders]
    else:
        pos = {fid: k for k, fid in enumerate(index.feeder_ids)}
        unknown = [x for x in feeders if x not in pos]
        if unknown:
            raise ValueError(f"unknown feeder(s): {', '.join(unknown)}")
        chosen = [pos[x] for x in feeders]
    fig = new_figure(10.0, 0.6 + 2.2 * len(chosen))
    axs = fig.subplots(len(chosen), 1, sharex=True, squeeze=False)[:, 0]
    e = _edges(index)
    for ax, k in zip(axs, chosen, strict=True):
        members = int((index.feeder_of == k).sum())
        ax.stairs(net[k], e, fill=True, color=_C["import"], alpha=0.6, label="net import")
        lim = index.feeder_headroom[k]
        if np.all(np.isfinite(lim)):
            ax.stairs(lim, e, baseline=None, color=_C["headroom"], linestyle="--", linewidth=1.5,
                      label="feeder headroom")
            over = np.maximum(0.0, net[k] - lim)
            if np.any(over > 1e-6):
                ax.stairs(net[k], e, baseline=lim, fill=True, color="red", label="excess")
        _power_axes(ax, e, f"feeder {index.feeder_ids[k]} ({members} nodes)")
    _xlabel(axs[-1], problem)
    return fig


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class JobOutcome:
    """What a job paid in a plan, and why a dropped job was left out.

    Attributes
    ----------
    job_id, status : str
        Id and ``scheduled`` | ``pinned`` | ``dropped``.
    node_id : str or None
        Where it runs.
    start_slot, end_slot : int or None
        Slots (end exclusive).
    latency_ms, slo_ms : float or None
        Round-trip time to its region there and its SLO [ms].
    latency_cost, tardiness_cost, drop_cost : float
        What it paid [money].
    late_hours : float
        Hours it ends after its deadline [h].
    run_estimate : float or None
        Dropped jobs: the cheapest grid-priced cost of running it at a start
        with free capacity in this plan [money] (see :func:`job_outcomes`).
    reason : str
        In words: what it paid or why dropping was cheaper.
    """

    job_id: str
    status: str
    node_id: str | None
    start_slot: int | None
    end_slot: int | None
    latency_ms: float | None
    slo_ms: float | None
    latency_cost: float
    tardiness_cost: float
    late_hours: float
    drop_cost: float
    run_estimate: float | None
    reason: str

    @property
    def paid(self) -> float:
        """Latency + tardiness + drop cost [money]."""
        return self.latency_cost + self.tardiness_cost + self.drop_cost


def _insert_estimate(index: Index, plan: Plan, f: Flows, j: int,
                     free: FloatArray) -> tuple[float, int, int] | None:
    """Cheapest grid-priced cost of inserting job ``j`` where capacity is free.

    Returns (cost [money], node, start) or None when no eligible start fits.
    """
    best: tuple[float, int, int] | None = None
    need = index.usage[j]
    for o in index.options_of(j):
        n, d = int(index.opt_node[o]), int(index.opt_dur[o])
        starts = index.feasible_starts(int(o))
        if starts.size == 0:
            continue
        fits = (free[n] >= need[None, :] - 1e-9).all(axis=1) & index.available[n]
        bad = np.concatenate([[0], np.cumsum(~fits)])
        ok = starts[(bad[starts + d] - bad[starts]) == 0]
        if ok.size == 0:
            continue
        # job energy at the import cost (price + carbon), idle draw where the node is off
        rate = index.import_cost[n] * (float(index.opt_power[o])
                                       + index.idle_kw[n] * ~f.on[n].astype(bool))
        cum = np.concatenate([[0.0], np.cumsum(rate * index.dt)])
        cost = (cum[ok + d] - cum[ok] + float(index.opt_latency_cost[o])
                + index.tardiness_cost(j, ok + d))
        k = int(np.argmin(cost))
        if best is None or cost[k] < best[0]:
            best = (float(cost[k]), n, int(ok[k]))
    return best


def job_outcomes(problem: Problem, plan: Plan, index: Index | None = None) -> list[JobOutcome]:
    """Latency, tardiness and drop cost of every job, with a reason for each drop.

    For a dropped job the reason compares its drop penalty with a *grid-priced
    insertion estimate*: the cheapest, over its eligible (node, start) pairs
    whose slots have enough free resources in this plan, of job energy (plus
    idle draw in slots where the node is off) at the node's import price
    including carbon, plus its latency and tardiness cost there. The estimate
    ignores PV, the battery, headroom and feeder limits, demand charge and
    switching, so it is neither a bound nor the solver's reasoning: it says
    whether dropping was plausibly cheaper, and when it was not, that a limit
    the estimate ignores (or the solver) kept the job out.
    """
    index = index or compile_index(problem)
    f = _flows(plan)
    out: list[JobOutcome] = []
    free: FloatArray | None = None
    for j, job in enumerate(problem.jobs):
        n = int(plan.node[j])
        slo = job.latency_slo_ms
        if n >= 0:
            s = int(plan.start[j])
            e = s + int(index.duration(j, n))
            lat = float(index.latency_ms[j, n])
            lat_v = None if math.isnan(lat) else lat
            lc = 0.0
            if lat_v is not None and slo is not None and lat_v > slo:
                lc = float(index.latency_rate[j]) * (lat_v - slo)
            tc = float(index.tardiness_cost(j, e))
            late = (max(0.0, e - float(index.deadline[j])) * index.dt
                    if math.isfinite(index.deadline[j]) else 0.0)
            parts = []
            if lc > 0 and lat_v is not None and slo is not None:
                parts.append(f"latency {lat_v:.3g} ms over SLO {slo:g} ms: {lc:.4g}")
            if tc > 0:
                parts.append(f"ends {late:.3g} h after its deadline: {tc:.4g}")
            out.append(JobOutcome(job.job_id, "pinned" if job.pinned else "scheduled",
                                  index.node_ids[n], s, e, lat_v, slo, lc, tc, late, 0.0, None,
                                  "; ".join(parts) if parts else "on time, within SLO"))
            continue
        penalty = float(index.drop_penalty[j]) if job.drop_penalty is not None else 0.0
        if index.opt_job_ptr[j + 1] == index.opt_job_ptr[j]:
            est = None
            reason = "no eligible (node, start): " + explain_job(problem, index, j)
        else:
            if free is None:
                free = index.capacity[:, None, :] - resource_usage(index, plan.node, plan.start,
                                                                   index.usage)
            hit = _insert_estimate(index, plan, f, j, free)
            if hit is None:
                est = None
                reason = ("no eligible (node, start) has free resources in this plan; "
                          f"dropping costs the penalty {penalty:.4g}")
            else:
                est, hn, hs = hit
                where = f"{index.node_ids[hn]} at slot {hs}"
                if est > penalty:
                    reason = (f"cheaper to drop: penalty {penalty:.4g} < grid-priced estimate "
                              f"{est:.4g} on {where}")
                else:
                    reason = (f"penalty {penalty:.4g} ≥ grid-priced estimate {est:.4g} on "
                              f"{where}: a limit the estimate ignores (headroom, feeder, "
                              f"battery) or the solver kept it out")
        out.append(JobOutcome(job.job_id, "dropped", None, None, None, None, slo, 0.0, 0.0,
                              0.0, penalty, est, reason))
    return out


def slo_summary(problem: Problem, plan: Plan, index: Index | None = None,
                ax: Axes | None = None, max_jobs: int = 25) -> Figure:
    """What jobs paid: latency, tardiness and drop cost per job [money], stacked bars.

    Only jobs that paid something are drawn, most expensive first (at most
    ``max_jobs``); :func:`job_outcomes` has the numbers and reasons.
    """
    index = index or compile_index(problem)
    rows = [o for o in job_outcomes(problem, plan, index) if o.paid > 0]
    rows.sort(key=lambda o: (-o.paid, o.job_id))
    rows = rows[:max_jobs]
    fig, ax = _axes(ax, 9.0, 1.2 + 0.3 * max(1, len(rows)))
    if not rows:
        _empty(ax, "no job paid latency, tardiness or a drop penalty")
        ax.set_title("SLO and deadlines")
        return fig
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    for key, label in (("latency", "latency"), ("tardiness", "tardiness"), ("drop", "drop")):
        v = np.array([getattr(o, f"{key}_cost") for o in rows])
        if np.any(v > 0):
            ax.barh(y, v, left=left, color=_C[key], label=label, edgecolor="#333333",
                    linewidth=0.5)
        left = left + v
    ax.set_yticks(y, [f"{o.job_id} ({o.status})" for o in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("cost [money]")
    ax.set_title("SLO, deadline and drop costs per job")
    ax.legend(loc="lower right", fontsize=7)
    return fig


# --------------------------------------------------------------------------- grids

_PER_NODE = {
    "energy": energy_stack,
    "battery": battery_soc,
    "grid": import_headroom,
    "prices": price_carbon,
}


def per_node_figure(kind: str, problem: Problem, plan: Plan, index: Index | None = None,
                    nodes: Sequence[NodeRef] = (None,), height: float = 2.4) -> Figure:
    """One figure of ``kind`` with a row per node (None = fleet aggregate), shared time axis.

    Parameters
    ----------
    kind : {"energy", "battery", "grid", "prices"}
        :func:`energy_stack`, :func:`battery_soc`, :func:`import_headroom` or
        :func:`price_carbon`.
    nodes : sequence of node id, position or None
        Rows, top to bottom.
    height : float
        Height of one row [inches].
    """
    if kind not in _PER_NODE:
        raise ValueError(f"unknown figure kind {kind!r}; one of {', '.join(_PER_NODE)}")
    index = index or compile_index(problem)
    draw = _PER_NODE[kind]
    fig = new_figure(10.0, 0.4 + height * max(1, len(nodes)))
    axs = fig.subplots(max(1, len(nodes)), 1, sharex=True, squeeze=False)[:, 0]
    for ax, nd in zip(axs, nodes, strict=False):
        draw(problem, plan, index, nd, ax)
    for ax in axs[:-1]:
        ax.set_xlabel("")
    return fig

