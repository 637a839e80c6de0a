"""Exact dispatch: cost-optimal energy flows for fixed job placements and on/off states.

Given the load of every node and slot (idle draw of on nodes plus the power of
the jobs running there), :func:`dispatch_load` decides ``pv_used``, ``import``,
``export``, ``charge``, ``discharge`` and ``soc`` so that SPEC §2 constraints
5-7 hold and ``energy − export_revenue + carbon + degradation + demand``
(SPEC §3) is minimal. :func:`dispatch` is the same for a placement ``(node,
start)``.

The problem decomposes into independent *groups*: a feeder with a finite
headroom in some slot couples its nodes (one LP per such feeder); every other
node is on its own. Per group the LP is the one of
:mod:`optisched.formulations.dispatch_lp` (built by
:func:`~optisched.formulations.dispatch_lp.build_dispatch_lp`, which also states it).

Three paths, all exact:

* **Closed form** for a node without battery, demand charge or binding feeder:
  every slot is a separate two-source LP. The sources are PV (cost 0, up to
  ``pv``) and the grid (cost ``import_cost``, up to ``headroom``); the cheaper
  one serves the load first (PV first unless ``import_cost < 0``), and more is
  drawn to export while a source's cost is below ``export_price`` (so PV surplus
  is exported when paid and curtailed otherwise). Infeasible when
  ``load > pv + headroom``. Vectorized over all such nodes.
* **LP** (HiGHS through :mod:`optisched.backends.highs`, matrices passed in bulk)
  per group; standalone nodes are batched into block-diagonal LPs of ``_BATCH``
  nodes.
* **No simultaneous charge and discharge** (SPEC §2.6). The LP may return
  ``charge > 0`` and ``discharge > 0`` in one slot, either as a tie or because
  burning energy pays (a negative import price now or later: the battery
  dumps energy to make room). Such a slot is first *netted*: charge falls by ``x`` and discharge by
  ``eff_c·eff_d·x`` (the state of charge is unchanged), and the surplus
  ``(1 − eff_c·eff_d)·x`` is absorbed by the cheapest of curtailing PV, importing
  less or exporting more. If that does not raise the cost (beyond 1e-9 relative)
  the netted flows are still LP-optimal, hence optimal. Otherwise the group is
  re-solved as a MILP with a binary ``b`` for every offending slot
  (``charge ≤ charge_kw·b``, ``discharge ≤ discharge_kw·(1 − b)``), repeating
  with the union of offending slots until none remain. A MILP with binaries on
  a subset of the slots relaxes the one with binaries on all slots, so its
  complementary optimum is optimal for the full problem. Burning energy only
  pays when energy has a negative value, i.e. importing earns money in some slot
  (PV can always be curtailed), so a battery node with a negative import cost
  gets binaries on all its slots at once: measured, one MILP round instead of up
  to five (exactness does not rely on this; it only picks the first binaries).

Afterwards flows are cleaned: values below 1e-9 become 0, flows are clipped to
their bounds, the power balance is restored to rounding error by PV, import or
export, and ``soc`` is recomputed from the dynamics, so the evaluator accepts
the flows.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.backends import highs as hs
from optisched.evaluate import job_load, resource_usage
from optisched.formulations.dispatch_lp import CHARGE as _C
from optisched.formulations.dispatch_lp import DISCHARGE as _D
from optisched.formulations.dispatch_lp import EXPORT as _E
from optisched.formulations.dispatch_lp import IMPORT as _I
from optisched.formulations.dispatch_lp import PV_USED as _P
from optisched.formulations.dispatch_lp import DispatchLp, build_dispatch_lp
from optisched.index import Index
from optisched.plan import FlowArrays, Flows

__all__ = [
    "DispatchResult",
    "NodeDispatch",
    "default_on",
    "dispatch",
    "dispatch_groups",
    "dispatch_load",
    "stacked",
]

log = logging.getLogger(__name__)

_ZERO = 1e-9
"""Flows below this [kW] are set to 0; charge and discharge both above it overlap."""
_FEAS_TOL = 1e-6
"""Tolerance of the infeasibility pre-checks [kW]."""
_BATCH = 4
"""Standalone LP nodes per block-diagonal LP. Measured (100 battery nodes x 96 slots, HiGHS
1.14, presolve off): 2-4 nodes per LP 0.12 s, 8-16 nodes 0.15 s, one node per LP 0.15 s,
64 nodes 0.3 s (simplex work grows faster than linearly with the block)."""
_MAX_MILP_ROUNDS = 50

_local = threading.local()


def _highs() -> hs.Highs:
    """A per-thread reusable, silent HiGHS instance."""
    h = getattr(_local, "highs", None)
    if h is None:
        h = hs.new_highs()
        _local.highs = h
    return h


@dataclass
class DispatchResult:
    """Result of :func:`dispatch`.

    Attributes
    ----------
    feasible : bool
        Whether flows exist that satisfy SPEC §2 constraints 5-7 for the given load.
    flows : Flows or None
        The optimal flows (``on`` as given), None when infeasible.
    cost : float
        ``energy − export_revenue + carbon + degradation + demand`` of the flows [money]
        (``inf`` when infeasible).
    message : str
        Why infeasible (node or feeder, slot, what is short).
    """

    feasible: bool
    flows: Flows | None
    cost: float
    message: str = ""
    scenario_cost: FloatArray | None = None
    """Beyond SPEC v1, with several scenarios: the cost of each scenario's flows ``(S,)``;
    :attr:`cost` is then their expectation."""


@dataclass(kw_only=True)
class NodeDispatch(FlowArrays):
    """Optimal flows of a subset of nodes (result of :func:`dispatch_load`).

    Attributes
    ----------
    pv_used, grid_import, grid_export, charge, discharge, soc : (K, T) float
        Flows of those nodes [kW] and state of charge at the end of each slot [kWh]
        (:class:`~optisched.plan.FlowArrays`). Rows of infeasible groups are zero
        (soc: ``soc_init``).
    feasible : bool
        Whether every dispatched group has feasible flows.
    nodes : (K,) int
        Node positions dispatched (sorted); whole feeder groups when a node of a
        coupled feeder was asked for.
    cost : (K,) float
        Energy cost of each node ``Σ Δ·(import_cost·import − export_price·export +
        degradation·discharge) + demand_charge·max import`` [money]; ``inf`` for the
        nodes of an infeasible group. Within a coupled feeder only the group's sum
        is optimal; per-node values still add up to it.
    message : str
        Why infeasible (first infeasible group), else empty.
    more : list of FlowArrays
        Beyond SPEC v1, with several scenarios: the flows of scenarios 2 … S (the arrays
        above are the first scenario's).
    scenario_cost : (S, K) float or None
        With several scenarios: each scenario's cost of each node; :attr:`cost` is then the
        expectation ``Σ_s w_s · scenario_cost[s]``.
    """

    feasible: bool
    nodes: IntArray
    cost: FloatArray
    message: str = ""
    more: list[FlowArrays] = field(default_factory=list)
    scenario_cost: FloatArray | None = None

    @property
    def total_cost(self) -> float:
        """Sum of :attr:`cost` [money] (``inf`` when infeasible); the expected cost with
        several scenarios."""
        return float(np.sum(self.cost)) if self.feasible else math.inf

    def scenario_flows(self) -> list[FlowArrays]:
        """The flows of every scenario: these arrays, then :attr:`more`."""
        return [self, *self.more]

    def write_into(self, flows: Flows) -> None:
        """Copy these nodes' rows into full ``(N, T)`` flows (``on``/``load`` untouched)."""
        flows.set_flows(self.nodes, self)


def default_on(index: Index, node: IntArray, start: IntArray) -> BoolArray:
    """On where available and the node cannot sleep, or where a job runs, ``(N, T)``."""
    busy = resource_usage(index, node, start, np.ones(index.J)) > 0.5
    return np.asarray(index.always_on | busy)


def dispatch(
    index: Index,
    node: npt.NDArray[np.int64],
    start: npt.NDArray[np.int64],
    on: npt.NDArray[np.bool_] | None = None,
) -> DispatchResult:
    """Cost-optimal battery/grid/export/curtailment flows for fixed placements.

    Parameters
    ----------
    index : Index
        Compiled problem.
    node, start : (J,) int
        Placement per job (node -1 = dropped).
    on : (N, T) bool, optional
        On/off states; default: on where available and the node cannot sleep,
        or where a job runs.

    Returns
    -------
    DispatchResult
        Exact LP optimum of SPEC §2-3 for the fixed placement (never charging and
        discharging in one slot; see the module docstring for how that is kept
        exact: netting, then a MILP with binaries on the offending slots only).
    """
    node = np.asarray(node, dtype=np.int64)
    start = np.asarray(start, dtype=np.int64)
    on_arr = default_on(index, node, start) if on is None else np.asarray(on, dtype=bool)
    load = on_arr * index.idle_kw[:, None] + job_load(index, node, start)
    res = dispatch_load(index, load)
    if not res.feasible:
        return DispatchResult(False, None, math.inf, res.message)
    flows = Flows.of(on_arr.copy(), load, res)
    per = None if res.scenario_cost is None else res.scenario_cost.sum(axis=1)
    return DispatchResult(True, flows, res.total_cost, "", per)


@dataclass(frozen=True)
class _Structure:
    """How an index's nodes split into dispatch groups (cached per index)."""

    feeder_groups: list[IntArray]  # nodes of each coupled feeder
    group_of: IntArray  # (N,) position in feeder_groups, -1 for standalone nodes
    closed: BoolArray  # (N,) standalone, no battery, no demand charge
    lp_single: BoolArray  # (N,) standalone needing an LP


_structures: weakref.WeakKeyDictionary[Index, _Structure] = weakref.WeakKeyDictionary()


def _structure(index: Index) -> _Structure:
    st = _structures.get(index)
    if st is None:
        N = index.N
        group_of = np.full(N, -1, dtype=np.int64)
        feeder_groups: list[IntArray] = []
        for f in range(len(index.feeder_ids)):
            if not np.isfinite(index.feeder_headroom[f]).any():
                continue  # no finite headroom: no coupling row
            members = np.nonzero(index.feeder_of == f)[0].astype(np.int64)
            if members.size:
                group_of[members] = len(feeder_groups)
                feeder_groups.append(members)
        has_batt = (index.charge_kw > 0) | (index.discharge_kw > 0)
        standalone = group_of < 0
        closed = standalone & ~has_batt & ~(index.demand_charge > 0)
        st = _Structure(feeder_groups, group_of, closed, standalone & ~closed)
        _structures[index] = st
    return st


def dispatch_groups(index: Index) -> tuple[list[IntArray], BoolArray]:
    """Groups of nodes that must be dispatched together.

    Returns
    -------
    groups : list of (k,) int
        One group per feeder with a finite headroom in some slot (its nodes);
        every other node forms its own group.
    closed_form : (N,) bool
        Nodes dispatched in closed form (standalone, no battery, no demand charge).
    """
    st = _structure(index)
    singles = [np.array([n], dtype=np.int64) for n in np.nonzero(st.group_of < 0)[0]]
    return [*st.feeder_groups, *singles], st.closed.copy()


def dispatch_load(index: Index, load: FloatArray,
                  nodes: npt.ArrayLike | None = None) -> NodeDispatch:
    """Optimal flows for a given load, for all nodes or only some.

    Parameters
    ----------
    index : Index
        Compiled problem.
    load : (N, T) float
        Load of every node and slot [kW] (``on·idle_kw`` + job power).
    nodes : array of int, optional
        Node positions to dispatch (default: all). Nodes of a coupled feeder pull
        in their whole feeder group. Use it to re-dispatch only changed nodes.

    Returns
    -------
    NodeDispatch
        Flows and per-node costs of the dispatched nodes.

    Notes
    -----
    Standalone nodes needing an LP are solved in block-diagonal batches of
    ``_BATCH`` nodes (one HiGHS call per batch); when a batch is infeasible its
    nodes are re-solved one by one to name the culprit. The grouping is cached
    per index, so re-dispatching one node costs one small LP.

    Measured (2-core machine, HiGHS 1.14, 96 slots, random loads from
    ``tests/_problems.py``): 100 battery nodes 0.16 s (0.21 s with demand
    charges; 0.32 s with two coupled feeders of about 42 nodes; 0.58 s with
    negative prices, where complementarity MILPs are needed); 1000 battery nodes
    1.6 s; 1000 nodes without battery (closed form) 0.01 s. Re-dispatching one
    battery node: about 2 ms; one 42-node feeder group: about 0.14 s.
    """
    N, T = index.N, index.T
    load = np.asarray(load, dtype=float)
    st = _structure(index)
    if nodes is None:
        want = np.ones(N, dtype=bool)
    else:
        want = np.zeros(N, dtype=bool)
        want[np.asarray(nodes, dtype=np.int64)] = True
    chosen = [st.feeder_groups[g] for g in np.unique(st.group_of[want & (st.group_of >= 0)])]
    sel = np.nonzero(want & (st.group_of < 0))[0].astype(np.int64)
    if chosen:
        sel = np.sort(np.concatenate([sel, *chosen]))
    if index.S > 1:
        return _dispatch_scenarios(index, load, sel)
    pos = np.full(N, -1, dtype=np.int64)
    pos[sel] = np.arange(sel.size)
    K = sel.size
    out = NodeDispatch(
        pv_used=np.zeros((K, T)), grid_import=np.zeros((K, T)), grid_export=np.zeros((K, T)),
        charge=np.zeros((K, T)), discharge=np.zeros((K, T)),
        soc=np.tile(index.soc_init[sel][:, None], (1, T)), feasible=True, nodes=sel,
        cost=np.zeros(K))
    messages: list[str] = []

    # closed form, vectorized over all standalone plain nodes
    cf = sel[st.closed[sel]]
    if cf.size:
        ok_rows, msg = _closed_form(index, load, cf, out, pos[cf])
        if msg:
            messages.append(msg)
        out.cost[pos[cf[~ok_rows]]] = math.inf

    # LP groups: each coupled feeder alone, standalone battery/demand nodes in batches
    for g in chosen:
        _solve_group(index, load, g, None, out, pos, messages)
    singles = sel[st.lp_single[sel]]
    for b in range(0, len(singles), _BATCH):
        batch = singles[b:b + _BATCH]
        if not _solve_block(index, load, batch, out, pos, messages):
            for n in batch:  # find the culprit(s)
                _solve_group(index, load, np.array([n], dtype=np.int64), None, out, pos,
                             messages)
    out.feasible = not messages
    out.message = messages[0] if messages else ""
    return out


# --------------------------------------------------------------------------------------
# scenarios: one more axis, laid along the nodes
# --------------------------------------------------------------------------------------

_NODE_VECTORS = ("idle_kw", "export_kw", "can_sleep", "initially_on", "end_off", "startup_cost",
                 "shutdown_cost", "battery_kwh", "soc_init", "soc_min", "soc_max", "charge_kw",
                 "discharge_kw", "eff_charge", "eff_discharge", "degradation", "demand_charge",
                 "speed", "power_factor")
"""Index fields with one value per node."""
_stacks: weakref.WeakKeyDictionary[Index, Index] = weakref.WeakKeyDictionary()


def stacked(index: Index) -> Index:
    """The scenarios of ``index`` side by side as one index of ``S·N`` nodes (cached).

    Row ``s·N + n`` is node ``n`` in scenario ``s``: its own PV, headroom and prices,
    the node's battery and limits; feeder ``f`` of scenario ``s`` is feeder ``s·F + f``
    (named ``"<feeder> (scenario <id>)"``, as the rows are in messages). Given the
    first stage (the load) the scenarios' dispatch problems share nothing, so the
    dispatch of the stacked index is every scenario's dispatch at once: the closed form
    vectorized over all rows, the LPs batched over (node, scenario) blocks.
    """
    got = _stacks.get(index)
    if got is not None:
        return got
    S, N, T = index.S, index.N, index.T
    sc = index.scenarios
    F = len(index.feeder_ids)
    ids = sc.ids
    got = index.replace(
        node_ids=[f"{n} (scenario {sid})" for sid in ids for n in index.node_ids],
        node_pos={f"{n} (scenario {sid})": s * N + k for s, sid in enumerate(ids)
                  for k, n in enumerate(index.node_ids)},
        **{f: getattr(sc, f).reshape(S * N, T) for f in ("pv", "headroom", "price",
                                                        "export_price", "carbon",
                                                        "import_cost")},
        **{f: np.tile(getattr(index, f), S) for f in _NODE_VECTORS},
        available=np.tile(index.available, (S, 1)), avail_run=np.tile(index.avail_run, (S, 1)),
        capacity=np.tile(index.capacity, (S, 1)), latency_ms=np.tile(index.latency_ms, (1, S)),
        feeder_ids=[f"{f} (scenario {sid})" for sid in ids for f in index.feeder_ids],
        feeder_of=np.concatenate([np.where(index.feeder_of >= 0, index.feeder_of + s * F, -1)
                                  for s in range(S)]).astype(np.int64),
        feeder_headroom=sc.feeder_headroom.reshape(S * F, T),
    )
    _stacks[index] = got
    return got


def _dispatch_scenarios(index: Index, load: FloatArray, sel: IntArray) -> NodeDispatch:
    """:func:`dispatch_load` of nodes ``sel`` (whole feeder groups) in every scenario.

    Why each scenario may be dispatched on its own: given the first stage (placement and
    on/off, hence the load) the scenarios' flows share no constraint, so the cheapest
    flows of the two-stage problem are each scenario's cheapest flows; and the objective
    ``E + λ·CVaR_α`` is non-decreasing in every scenario's cost, so no other choice of
    flows can make it lower (``docs/algorithms/scenarios.md``).
    """
    S, N, K = index.S, index.N, sel.size
    stk = stacked(index)
    rows = (np.arange(S)[:, None] * N + sel[None, :]).reshape(-1)
    res = dispatch_load(stk, np.tile(load, (S, 1)), rows)
    assert res.nodes.size == S * K  # the feeder groups of sel are those of every scenario

    def split(a: FloatArray) -> FloatArray:
        return a.reshape(S, K, *a.shape[1:])

    parts = {name: split(getattr(res, name)) for name in ("pv_used", "grid_import",
                                                          "grid_export", "charge",
                                                          "discharge", "soc")}
    per = split(res.cost)
    w = index.scenarios.weight
    cost = np.asarray(np.tensordot(w, per, axes=1))  # inf where some scenario is infeasible
    scen = [FlowArrays(**{name: a[s] for name, a in parts.items()}) for s in range(S)]
    return NodeDispatch(pv_used=scen[0].pv_used, grid_import=scen[0].grid_import,
                        grid_export=scen[0].grid_export, charge=scen[0].charge,
                        discharge=scen[0].discharge, soc=scen[0].soc, feasible=res.feasible,
                        nodes=sel, cost=cost, message=res.message, more=scen[1:],
                        scenario_cost=per)


# --------------------------------------------------------------------------------------
# closed form
# --------------------------------------------------------------------------------------


def _closed_form(index: Index, load: FloatArray, nodes: IntArray, out: NodeDispatch,
                 rows: IntArray) -> tuple[BoolArray, str]:
    """Per-slot merit-order dispatch of nodes without battery/demand charge/feeder."""
    L = load[nodes]
    pv = index.pv[nodes]
    H = index.headroom[nodes]
    X = np.broadcast_to(index.export_kw[nodes][:, None], L.shape)
    ic = index.import_cost[nodes]
    ep = index.export_price[nodes]
    grid_first = ic < 0
    lo_cap = np.where(grid_first, H, pv)
    hi_cap = np.where(grid_first, pv, H)
    lo_cost = np.where(grid_first, ic, 0.0)
    hi_cost = np.where(grid_first, 0.0, ic)
    ul = np.minimum(L, lo_cap)
    uh = L - ul
    short = uh - hi_cap
    bad = short > _FEAS_TOL + 1e-9 * np.abs(L)
    uh = np.minimum(uh, hi_cap)
    with np.errstate(invalid="ignore"):
        e1 = np.where(lo_cost < ep, np.minimum(X, lo_cap - ul), 0.0)
        e2 = np.where(hi_cost < ep, np.minimum(X - e1, hi_cap - uh), 0.0)
    e1 = np.maximum(np.nan_to_num(e1), 0.0)
    e2 = np.maximum(np.nan_to_num(e2), 0.0)
    ul = ul + e1
    uh = uh + e2
    pv_used = np.where(grid_first, uh, ul)
    imp = np.where(grid_first, ul, uh)
    exp = e1 + e2
    ok_rows: BoolArray = np.asarray(~bad.any(axis=1), dtype=bool)
    out.pv_used[rows] = np.where(ok_rows[:, None], pv_used, 0.0)
    out.grid_import[rows] = np.where(ok_rows[:, None], imp, 0.0)
    out.grid_export[rows] = np.where(ok_rows[:, None], exp, 0.0)
    out.cost[rows] = index.dt * np.sum(ic * out.grid_import[rows] - ep * out.grid_export[rows],
                                       axis=1)
    msg = ""
    if bad.any():
        k, t = np.argwhere(bad)[0]
        n = int(nodes[k])
        msg = (f"node {index.node_ids[n]} slot {t}: load {L[k, t]:.6g} kW exceeds pv "
               f"{pv[k, t]:.6g} kW + headroom {H[k, t]:.6g} kW (no battery)")
    return ok_rows, msg


# --------------------------------------------------------------------------------------
# LP / MILP
# --------------------------------------------------------------------------------------

def _run(lp: DispatchLp) -> tuple[str, FloatArray | None]:
    """Solve with the reusable HiGHS; status ``optimal``, ``infeasible`` or ``error: …``.

    LPs run without presolve (measured about 35 % faster on these small LPs); MILPs
    with presolve and gaps of 1e-9 so their optimum is exact.
    """
    h = _highs()
    mip = lp.integer is not None
    if not hs.pass_model(h, lp.model, lp.integer):
        return "error: HiGHS rejected the model", None
    gap = 1e-9 if mip else None
    hs.configure(h, presolve=mip, primal_feasibility_tolerance=1e-9,
                 dual_feasibility_tolerance=1e-9, mip_rel_gap=gap, mip_abs_gap=gap,
                 mip_feasibility_tolerance=gap)
    ran = hs.run(h)
    if ran.optimal:
        return "optimal", hs.solution(h).primal()
    # every variable here is bounded or has a cost ≥ 0 (peaks), so "unbounded or
    # infeasible" can only be infeasible
    if ran.infeasible:
        return "infeasible", None
    return f"error: HiGHS status {ran.text}", None


def _solve_block(index: Index, load: FloatArray, nodes: IntArray, out: NodeDispatch,
                 pos: IntArray, messages: list[str]) -> bool:
    """Block-diagonal LP of independent standalone nodes; False when infeasible."""
    if not _precheck_ok(index, load, nodes):
        return False
    lp = build_dispatch_lp(index, nodes, load, [])
    status, x = _run(lp)
    if status != "optimal" or x is None:
        return False
    vals = lp.flow_values(x)
    overlap = _net(index, nodes, vals)
    _store(index, load, nodes, vals, out, pos)
    for k in np.nonzero(overlap.any(axis=1))[0]:  # complementarity per node, exactly
        _solve_group(index, load, nodes[k:k + 1], overlap[k:k + 1], out, pos, messages)
    return True


def _solve_group(index: Index, load: FloatArray, nodes: IntArray, binaries: BoolArray | None,
                 out: NodeDispatch, pos: IntArray, messages: list[str]) -> None:
    """One group (feeder or single node), with the MILP loop for complementarity."""
    feeders = sorted({int(f) for f in index.feeder_of[nodes] if f >= 0})
    feeders = [f for f in feeders if np.isfinite(index.feeder_headroom[f]).any()]
    msg = _precheck_message(index, load, nodes, feeders)
    if msg:
        _fail(index, nodes, out, pos, messages, msg)
        return
    batt = (index.charge_kw[nodes] > 0) & (index.discharge_kw[nodes] > 0)
    earns: BoolArray = np.asarray((index.import_cost[nodes] < 0).any(axis=1) & batt)
    burn: BoolArray = np.repeat(earns[:, None], index.T, axis=1)
    bins: BoolArray | None = None
    if binaries is not None:
        bins = np.asarray(binaries | burn, dtype=bool)
    for _ in range(_MAX_MILP_ROUNDS):
        if bins is not None:
            log.debug("%s: MILP with %d complementarity binaries",
                      _group_name(index, nodes, feeders), int(bins.sum()))
        lp = build_dispatch_lp(index, nodes, load, feeders, bins)
        status, x = _run(lp)
        if status == "infeasible":
            _fail(index, nodes, out, pos, messages, _energy_message(index, load, nodes, feeders))
            return
        if status != "optimal" or x is None:
            _fail(index, nodes, out, pos, messages,
                  f"{_group_name(index, nodes, feeders)}: dispatch failed ({status})")
            return
        vals = lp.flow_values(x)
        if bins is not None:  # a binary within tolerance: zero the switched-off side
            bk, bt = lp.binary_k, lp.binary_t
            on_c = lp.binary_values(x) > 0.5
            vals[bk[on_c], _D, bt[on_c]] = 0.0
            vals[bk[~on_c], _C, bt[~on_c]] = 0.0
        overlap = _net(index, nodes, vals)
        if not overlap.any():
            _store(index, load, nodes, vals, out, pos)
            return
        # burning energy can only pay where importing more earns money: put binaries on
        # all such slots of the group at once instead of discovering them round by round
        if bins is None:
            bins = np.asarray(overlap | burn, dtype=bool)
        else:
            # a MILP round that still overlaps elsewhere: ties (e.g. a full battery with
            # free PV and nothing to pay) can move the overlap one slot per round, so the
            # nodes that overlap get binaries on every slot (then they cannot overlap)
            rows = np.asarray(overlap.any(axis=1), dtype=bool)
            bins = np.asarray(bins | burn | rows[:, None], dtype=bool)
    _fail(index, nodes, out, pos, messages,
          f"{_group_name(index, nodes, feeders)}: no complementary dispatch found in "
          f"{_MAX_MILP_ROUNDS} MILP rounds")


def _net(index: Index, nodes: IntArray, vals: FloatArray) -> BoolArray:
    """Net simultaneous charge/discharge where that costs nothing (in place).

    Returns the ``(K, T)`` mask of slots that still overlap (netting would raise
    the cost), which need binaries.
    """
    c, d = vals[:, _C], vals[:, _D]
    m = (c > _ZERO) & (d > _ZERO)
    if not m.any():
        return m
    k, t = np.nonzero(m)
    n = nodes[k]
    eta = index.eff_charge[n] * index.eff_discharge[n]
    x = np.minimum(c[k, t], d[k, t] / eta)
    y = eta * x
    surplus = x - y
    p, i, e = vals[k, _P, t], vals[k, _I, t], vals[k, _E, t]
    ic, ep = index.import_cost[n, t], index.export_price[n, t]
    room_e = np.maximum(index.export_kw[n] - e, 0.0)
    # absorbers: curtail pv (cost 0), import less (cost −ic), export more (cost −ep)
    caps = np.stack([p, i, room_e])
    unit = np.stack([np.zeros_like(ic), -ic, -ep])
    order = np.argsort(unit, axis=0, kind="stable")
    left = surplus.copy()
    take = np.zeros_like(caps)
    cols = np.arange(k.size)
    for r in range(3):
        which = order[r]
        a = np.minimum(left, caps[which, cols])
        take[which, cols] = a
        left -= a
    delta = np.sum(unit * take, axis=0) - index.degradation[n] * y
    # group scale for the relative tolerance
    scale = 1.0 + np.abs(ic) * (i + d[k, t]) + np.abs(ep) * e
    ok = (left <= 1e-12) & (delta <= 1e-9 * scale)
    kk, tt = k[ok], t[ok]
    vals[kk, _C, tt] -= x[ok]
    vals[kk, _D, tt] -= y[ok]
    vals[kk, _P, tt] -= take[0, ok]
    vals[kk, _I, tt] -= take[1, ok]
    vals[kk, _E, tt] += take[2, ok]
    still = np.zeros_like(m)
    still[k[~ok], t[~ok]] = True
    return still


def _store(index: Index, load: FloatArray, nodes: IntArray, vals: FloatArray, out: NodeDispatch,
           pos: IntArray) -> None:
    """Clean the flows of ``nodes`` and write them with their costs."""
    dt = index.dt
    v = np.where(np.abs(vals) < _ZERO, 0.0, vals)
    pv, H = index.pv[nodes], index.headroom[nodes]
    X = index.export_kw[nodes][:, None]
    p = np.clip(v[:, _P], 0.0, pv)
    i = np.clip(v[:, _I], 0.0, H)
    e = np.clip(v[:, _E], 0.0, X)
    c = np.clip(v[:, _C], 0.0, index.charge_kw[nodes][:, None])
    d = np.clip(v[:, _D], 0.0, index.discharge_kw[nodes][:, None])
    both = (c > 0) & (d > 0)  # cannot happen after _net/MILP; keep the larger
    c = np.where(both & (c <= d), 0.0, c)
    d = np.where(both & (d < c), 0.0, d)
    L = load[nodes]
    r = p + i + d - c - e - L  # > 0: surplus supply
    # surplus: curtail pv, import less, export more; deficit: more pv, more import, export less
    for arr, sign, cap in ((p, -1.0, None), (i, -1.0, None), (e, 1.0, X)):
        pos_r = np.maximum(r, 0.0)
        if cap is None:
            a = np.minimum(pos_r, arr)
        else:
            a = np.minimum(pos_r, np.maximum(cap - arr, 0.0))
        arr += sign * a
        r = r - a
    for arr, sign, cap in ((p, 1.0, pv), (i, 1.0, H), (e, -1.0, None)):
        neg_r = np.maximum(-r, 0.0)
        if cap is None:
            a = np.minimum(neg_r, arr)
        else:
            a = np.minimum(neg_r, np.maximum(cap - arr, 0.0))
        arr += sign * a
        r = r + a
    soc = index.soc_init[nodes][:, None] + np.cumsum(
        dt * (index.eff_charge[nodes][:, None] * c - d / index.eff_discharge[nodes][:, None]),
        axis=1)
    rows = pos[nodes]
    out.pv_used[rows] = p
    out.grid_import[rows] = i
    out.grid_export[rows] = e
    out.charge[rows] = c
    out.discharge[rows] = d
    out.soc[rows] = soc
    out.cost[rows] = (dt * np.sum(index.import_cost[nodes] * i - index.export_price[nodes] * e
                                  + index.degradation[nodes][:, None] * d, axis=1)
                      + index.demand_charge[nodes] * i.max(axis=1, initial=0.0))


def _fail(index: Index, nodes: IntArray, out: NodeDispatch, pos: IntArray, messages: list[str],
          msg: str) -> None:
    rows = pos[nodes]
    for arr in (out.pv_used, out.grid_import, out.grid_export, out.charge, out.discharge):
        arr[rows] = 0.0
    out.soc[rows] = index.soc_init[nodes][:, None]
    out.cost[rows] = math.inf
    messages.append(msg)


# --------------------------------------------------------------------------------------
# infeasibility messages
# --------------------------------------------------------------------------------------


def _node_shortfall(index: Index, load: FloatArray, nodes: IntArray) -> FloatArray:
    """``load − pv − headroom − discharge_kw`` per node and slot [kW]."""
    return np.asarray(load[nodes] - index.pv[nodes] - index.headroom[nodes]
                      - index.discharge_kw[nodes][:, None])


def _precheck_ok(index: Index, load: FloatArray, nodes: IntArray) -> bool:
    short = _node_shortfall(index, load, nodes)
    return not bool((short > _FEAS_TOL).any())


def _precheck_message(index: Index, load: FloatArray, nodes: IntArray,
                      feeders: list[int]) -> str:
    """A necessary per-slot condition that fails, in user terms, or ``""``."""
    short = _node_shortfall(index, load, nodes)
    if (short > _FEAS_TOL).any():
        k, t = np.argwhere(short > _FEAS_TOL)[0]
        n = int(nodes[k])
        return (f"node {index.node_ids[n]} slot {t}: load {load[n, t]:.6g} kW exceeds pv "
                f"{index.pv[n, t]:.6g} kW + headroom {index.headroom[n, t]:.6g} kW + battery "
                f"discharge {index.discharge_kw[n]:.6g} kW")
    for f in feeders:
        members = nodes[index.feeder_of[nodes] == f]
        # least net import of a node: load − pv − discharge, but not below −export_kw
        least = np.maximum(load[members] - index.pv[members]
                           - index.discharge_kw[members][:, None],
                           -index.export_kw[members][:, None]).sum(axis=0)
        lim = index.feeder_headroom[f]
        over = np.where(np.isfinite(lim), least - lim, -np.inf)
        if (over > _FEAS_TOL).any():
            t = int(np.argmax(over > _FEAS_TOL))
            return (f"feeder {index.feeder_ids[f]} slot {t}: its nodes need a net import of at "
                    f"least {least[t]:.6g} kW (load {load[members, t].sum():.6g} kW − pv "
                    f"{index.pv[members, t].sum():.6g} kW − battery discharge "
                    f"{index.discharge_kw[members].sum():.6g} kW, export at most "
                    f"{index.export_kw[members].sum():.6g} kW) but the feeder headroom is "
                    f"{lim[t]:.6g} kW")
    return ""


def _group_name(index: Index, nodes: IntArray, feeders: list[int]) -> str:
    if feeders:
        return "feeder " + ", ".join(index.feeder_ids[f] for f in feeders)
    return "node " + ", ".join(index.node_ids[int(n)] for n in nodes)


def _energy_message(index: Index, load: FloatArray, nodes: IntArray, feeders: list[int]) -> str:
    """Message when every slot passes the per-slot checks but the LP is infeasible.

    The figures agree with each other and with the terminal rule: what the batteries
    must give beyond pv + headroom, what they hold above ``soc_min`` at the start, and
    what they can at most store from the pv and headroom the load leaves over (up to
    ``charge_kw``, after the charge efficiency). Under ``terminal = "initial"`` the
    batteries must end at or above their initial state of charge, so the energy they
    give must all be stored back within the horizon.
    """
    batt = nodes[index.battery_kwh[nodes] > 0]
    need = np.maximum(load[nodes] - index.pv[nodes] - index.headroom[nodes], 0.0)
    k_slots = np.nonzero(need.sum(axis=0) > _FEAS_TOL)[0]
    name = _group_name(index, nodes, feeders)
    have = float(np.sum(index.soc_init[batt] - index.soc_min[batt]))
    left = np.maximum(index.pv[batt] + index.headroom[batt] - load[batt], 0.0)
    store = float(np.sum(index.dt * index.eff_charge[batt][:, None]
                         * np.minimum(index.charge_kw[batt][:, None], left)))
    rule = ("the terminal rule 'initial' makes them end at or above their initial state of "
            "charge, so all of it must be stored back within the horizon, and they can store at "
            f"most {store:.6g} kWh from the pv and headroom the load leaves over (up to "
            "charge_kw, after charge losses)" if index.terminal_initial else
            f"they hold {have:.6g} kWh above soc_min at the start and can store at most "
            f"{store:.6g} kWh more from the pv and headroom the load leaves over (up to "
            "charge_kw, after charge losses), not enough in time")
    if k_slots.size:
        slots = ", ".join(str(int(t)) for t in k_slots[:8]) + (" …" if k_slots.size > 8 else "")
        out = float(np.sum(need[index.battery_kwh[nodes] > 0].sum(axis=1) * index.dt
                           / index.eff_discharge[batt])) if batt.size else 0.0
        return (f"{name}: load exceeds pv + headroom in slots {slots}, needing "
                f"{float(need.sum()) * index.dt:.6g} kWh from batteries ({out:.6g} kWh out of "
                f"them after discharge losses); {rule}")
    return (f"{name}: no flows satisfy the feeder headroom in every slot: the batteries cannot "
            f"shift enough energy; {rule}")
