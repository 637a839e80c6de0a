"""A cheap global lower bound for ``lns``: Lagrangian relaxation of the node loads.

``docs/algorithms/lns.md`` has the proof. In short: for every dispatch group ``g``
(a coupled feeder, or a single node) let ``V_g(L)`` be the optimal value of the
*LP* dispatch (SPEC §2 constraints 5-7 without "never charge and discharge in one
slot") for a load ``L`` of its nodes [money]: the LP of
:func:`~optisched.formulations.dispatch_lp.build_dispatch_lp`, the one the exact
dispatch solves. ``V_g`` is convex in ``L`` (the
value function of an LP in its right-hand side), so for any reference load
``L*`` and a dual ``π`` of the balance rows at ``L*`` (a subgradient, [money/kW]):

    V_g(L) ≥ V_g(L*) + Σ_{n,t} π_nt (L_nt − L*_nt)      for every L.

Every plan's energy cost is at least ``Σ_g V_g(L)`` of its load; its load is
``on · idle_kw + Σ_jobs power``, and its other terms (switching, latency,
tardiness, drop) are separable per node or job. Minimising the right-hand side
over on/off states (each slot alone) and over each job's placement alone
(capacity and every coupling between jobs ignored) gives a lower bound on the
optimum::

    LB = Σ_g [V_g(L*) − π·L*] + Σ_{n cannot sleep} Σ_{t available} π_nt idle_n
         + Σ_{n can sleep} Σ_{t available} min(0, π_nt idle_n) + switching of nodes that
         cannot sleep
         + Σ_{j pinned} (π-cost + latency + tardiness of its fixed place)
         + Σ_{j free} min(drop_j, min_{(n, s) feasible} p_jn Σ_{t=s}^{s+d−1} π_nt
                                                + latency_jn + tardiness_j(s + d))

The bound is tightest when ``L*`` is close to an optimal load; ``lns`` evaluates
it at its start plan and at its best plan and keeps the larger value.

**Capacity kept** (:func:`capacity_bound`): for fixed ``π`` the best capacity prices
``μ ≥ 0`` (dualized capacity rows, every job's placement cost raised by ``μ·use``) are the
duals of the *job LP* — the job part of this relaxation with the capacity rows kept —
whose optimum is ``max_μ LB(π, μ)``; it is solved by column generation, its Farley value
a bound at every iteration. **Every pass's cut in one master** (:class:`_JobLp`): the
energy of each dispatch group is priced by the maximum of the tangents of all reference
loads tried (Kelley's cutting planes on the convex ``V_g``), the cut rows' duals weighing
their prices (``docs/algorithms/lns.md`` §5 item 8).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.backends import highs as hs
from optisched.bounds.aggregate import CONVERGED_GAP, REDUCED_COST_TOL
from optisched.bounds.column_set import ColumnSet
from optisched.dispatch import dispatch_groups
from optisched.formulations.dispatch_lp import build_dispatch_lp
from optisched.index import Index

__all__ = ["LagrangianParts", "bound_parts", "capacity_bound", "capacity_parts", "idle_share",
           "improved_bound", "job_minima", "lagrangian_bound", "load_duals", "probe_load",
           "subgradient_step"]

log = logging.getLogger(__name__)

_BLOCK = 16
"""Standalone nodes per block-diagonal LP."""
_CELLS = 2_000_000
"""(option, start) cells per vectorized chunk of the job minimum."""
PROBE_KW = 1e-3
"""Load added before the dispatch LPs of a cut to every node-slot at its least possible
load that has room for it [kW] (:func:`probe_load`): the duals there are the cost of
*more* load."""


def _group_lp(index: Index, nodes: IntArray, load: FloatArray,
              feeders: list[int]) -> tuple[float, FloatArray, FloatArray] | None:
    """LP dispatch of ``nodes`` at ``load``: optimal value [money], balance duals (K, T)
    and every node's part of the value (K,) [money] (:meth:`DispatchLp.node_values`; each
    node's own value when ``feeders`` is empty).

    The LP of :func:`~optisched.formulations.dispatch_lp.build_dispatch_lp` (the exact
    dispatch's), solved by a fresh HiGHS without presolve (as the exact dispatch solves
    its LPs; measured 1.0 s against 1.7 s with presolve for the LPs of 589 metro nodes,
    any optimal dual is a subgradient). Returns None when the LP is not solved to
    optimality.
    """
    lp = build_dispatch_lp(index, nodes, load, feeders)
    h = hs.load(lp.model)
    hs.configure(h, presolve=False)
    ran = hs.run(h)
    if not ran.optimal:
        log.debug("bound LP for %d nodes: %s", nodes.size, ran.text)
        return None
    sol = hs.solution(h)
    return (hs.info(h).objective, lp.balance_duals(sol.row_duals()),
            lp.node_values(sol.primal()))


def _scenario_group_lp(index: Index, nodes: IntArray, load: FloatArray,
                       feeders: list[int]) -> tuple[float, FloatArray, FloatArray] | None:
    """:func:`_group_lp`; with several scenarios (beyond SPEC v1) the expectation of every
    scenario's LP value, duals and node parts, ``Σ_σ w_σ V_σ``: convex in the load as a
    weighted sum of convex functions, with the weighted duals as its subgradient."""
    if index.S == 1:
        return _group_lp(index, nodes, load, feeders)
    value, duals, parts = 0.0, np.zeros((nodes.size, index.T)), np.zeros(nodes.size)
    for s, w in enumerate(index.scenarios.weight):
        res = _group_lp(index.scenario(s), nodes, load, feeders)
        if res is None:
            return None
        value += float(w) * res[0]
        duals += float(w) * res[1]
        parts += float(w) * res[2]
    return value, duals, parts


def _risk_scaled(index: Index, bound: float | None) -> float | None:
    """A bound on ``E + λ·CVaR_α`` from one on the expected cost ``E``: ``(1 + λ)·bound``,
    valid as ``CVaR_α ≥ E`` (``λ = 0``: the bound itself)."""
    lam = index.scenarios.cvar_weight
    return bound if bound is None or lam == 0 else (1.0 + lam) * bound


def lagrangian_bound(index: Index, load: FloatArray) -> float | None:
    """Lower bound on the optimum of the whole problem [money] (see module docstring).

    Parameters
    ----------
    index : Index
        Compiled problem.
    load : (N, T) float
        Reference load ``L*`` [kW], e.g. the load of a feasible plan.

    Returns
    -------
    float or None
        The bound; None when a dispatch LP at ``L*`` could not be solved.
    """
    res = _bound_at(index, load)
    return None if res is None else _risk_scaled(index, res[0])


def improved_bound(index: Index, load: FloatArray, rounds: int = 3,
                   deadline: float = math.inf, upper: float | None = None,
                   capacity_iterations: int = 30,
                   placement: tuple[IntArray, IntArray] | None = None) -> float | None:
    """The best Lagrangian bound over ``load`` and points towards relaxed loads [money].

    Each round takes the duals ``π`` at the current reference load, the load of the
    relaxed solution at ``π`` (every job at its cheapest placement or dropped,
    sleeping nodes on where ``π < 0`` or a job runs) and tries the midpoint of the
    two as the next reference; the bound is valid at every reference load, so the
    maximum is a bound. When ``upper`` (a feasible plan's objective) is given, the
    resource capacities are priced at every reference's ``π`` too (:func:`capacity_bound`,
    the job LP's column generation, ``capacity_iterations`` evaluations shared by the
    passes; ``placement``, the plan's node and start per job, seeds its master) and the
    next reference is taken towards the job LP's load (:func:`bound_parts`). Stops at ``deadline``
    (``time.perf_counter()``): a pass or step starts only when the last one's time still
    fits before it; None when the first pass's dispatch LPs are not done by then.
    """
    parts = bound_parts(index, load, rounds, deadline, upper, capacity_iterations,
                        placement=placement)
    return None if parts is None else _risk_scaled(index, parts.value)


@dataclass
class LagrangianParts:
    """The terms of the best Lagrangian bound of :func:`bound_parts`.

    The bound is ``const + Σ_j min(drop_j, best_j)``; every term of ``const`` belongs to
    one dispatch group or node, every ``best_j`` to one job, so the parts of bounds on
    disjoint sets of whole dispatch groups, at their own duals and prices, add up to a
    bound of the whole problem with each job at its cheapest part
    (``optisched.solvers.distributed`` does, one part per partition).

    Attributes
    ----------
    value : float
        The bound [money] (``inf`` when a must-run job has no placement).
    const : float
        Its job-free part at the best point [money]: ``Σ_g [V_g(L*) − π·L*]``, the idle
        and switching terms of :func:`load_duals` and ``−Σ μ·capacity``.
    best : (J,) float
        Every job's cheapest placement at the best point's ``π`` and ``μ`` with the idle
        share of sleeping nodes [money] (``inf`` without an option).
    passes : int
        Dispatch passes run (one per reference load).
    steps : int
        Capacity-price steps run.
    pi : (N, T) float
        The best point's energy duals [money/kW per slot].
    mu : (N, T, R) float or None
        Its capacity prices (None: 0) [money per unit and slot].
    base : float
        Its job-free part without the capacity term [money] (``const`` at ``μ = 0``).
    share : (N, T) float
        Its idle share of sleeping nodes [money/(slot·GPU)] (:func:`idle_share` at ``pi``
        for one cut; the weighed shares of a combination of cuts, at least that).
    first_seconds : float
        Time of the first pass [s] (its dispatch LPs and job minima; 0: none run here).
    """

    value: float
    const: float
    best: FloatArray
    passes: int
    steps: int
    pi: FloatArray
    mu: FloatArray | None
    base: float
    share: FloatArray
    first_seconds: float = 0.0


def bound_parts(index: Index, load: FloatArray, rounds: int = 3,
                deadline: float = math.inf, upper: float | None = None,
                capacity_iterations: int = 30, soft_deadline: float | None = None,
                placement: tuple[IntArray, IntArray] | None = None
                ) -> LagrangianParts | None:
    """:func:`improved_bound` with its terms (:class:`LagrangianParts`; with scenarios, of
    the expected cost, before :func:`improved_bound`'s risk scaling).

    Passes alternate with capacity prices: at every reference load its cut
    (:func:`load_cut`: the dispatch duals ``π`` and the groups' job-free parts), then
    (with ``upper``) up to ``ceil(capacity_iterations / (rounds + 1))`` evaluations of the
    column generation of one job LP master that keeps every pass's cut
    (:func:`_capacity_lp`, :class:`_JobLp`: the groups' energy at the best of the cuts,
    capacity kept; seeded with ``placement``'s starts and each pass's cheapest starts at
    ``μ = 0``), then the next reference load halfway to the master's solution load
    (within capacity; the relaxed load at the best point's prices when the master still
    has artificial columns in use); a load that cannot be dispatched (above a feeder's
    headroom) is replaced by a point half as far. Every point (cut weights, ``μ ≥ 0``)
    gives a valid bound, so the best one is returned.

    Parameters
    ----------
    index : Index
        Compiled problem.
    load : (N, T) float
        First reference load ``L*`` [kW], e.g. the load of a feasible plan.
    rounds : int
        Midpoint passes after the first [passes].
    deadline : float
        ``time.perf_counter()`` at which to stop: no dispatch LP and no capacity step
        starts after it, and the best bound so far is returned.
    upper : float, optional
        A feasible plan's objective [money]: the target of the capacity steps (none
        without it).
    capacity_iterations : int
        Evaluations at capacity prices over all passes [evaluations].
    soft_deadline : float, optional
        ``time.perf_counter()`` after which nothing starts but the first pass (which
        stops only at ``deadline``).
    placement : (node, start) arrays, optional
        The placement of the plan whose load is ``load`` (node -1: dropped): its starts
        seed the job LP's master (:func:`placement_columns`).

    Returns
    -------
    LagrangianParts or None
        None when the first pass's dispatch LPs are not solved (or not before
        ``deadline``).
    """
    soft = deadline if soft_deadline is None else min(deadline, soft_deadline)
    ref = np.asarray(load, dtype=float)
    per_pass = math.ceil(capacity_iterations / (rounds + 1)) if upper is not None else 0
    top: _CapacityPoint | None = None
    passes = steps = 0
    step, last = 0.5, ref
    # the job LP's first columns: the plan's; its master keeps every pass's cut
    cols = None if placement is None else placement_columns(index, *placement)
    master: _JobLp | None = None
    pass_s = 0.0  # time of the last pass [s]
    first_s = 0.0  # time of the first pass with its job minima [s]
    needs: BoolArray | None = None  # the job LP's overloadable chains, once per index
    for _ in range(rounds + 1):
        tr = time.perf_counter()
        if passes and tr + pass_s >= soft:  # a pass starts only when the last one's fits
            break
        cut = load_cut(index, ref, soft if passes else deadline)
        pass_s = time.perf_counter() - tr
        if cut is None:
            if not passes or step < 0.1:
                break
            # the midpoint load is not dispatchable (e.g. above a feeder's headroom):
            # half as far from the last reference
            ref, step = 0.5 * (ref + last), 0.5 * step
            continue
        jm = _jobs_min(index, cut.pi, idle_share=cut.share)
        if not passes:
            first_s = time.perf_counter() - tr
        passes += 1
        point = _CapacityPoint(cut.total + jm.total, cut.total, None, jm.kw, cut.pi,
                               cut.share, cut.total)
        if per_pass > 0 and math.isfinite(point.value) and time.perf_counter() < soft:
            if needs is None:
                needs = _overloadable_chains(index)
            cp, n, master = _capacity_search(index, cut, upper if upper is not None
                                             else point.value, per_pass, soft, jm,
                                             columns=cols, needs=needs, master=master)
            steps += n
            if not cp.value < point.value:  # the relaxed load there too
                point = cp
        relaxed = _relaxed_load(index, point.pi, point.kw)
        if top is None or point.value > top.value:
            top = point
        last = ref
        ref = (1.0 - step) * ref + step * relaxed
    if top is None:
        return None
    job_best = job_minima(index, top.pi, top.mu, top.share)[0]
    return LagrangianParts(top.value, top.const, job_best, passes, steps, top.pi, top.mu,
                           top.base, top.share, first_s)


def capacity_parts(index: Index, pi: FloatArray, base: float, upper: float, iterations: int,
                   deadline: float = math.inf, start: FloatArray | None = None,
                   step_seconds: float = 0.0, share: FloatArray | None = None
                   ) -> LagrangianParts | None:
    """More of the capacity search at fixed duals ``π`` (N, T) from prices ``start``
    (N, T, R) (from ``μ = 0`` without them): the job LP's column generation seeded with
    the cheapest starts at ``start`` (:func:`capacity_bound`), its best point as
    :class:`LagrangianParts`; None when not even its first evaluation fits before
    ``deadline`` (each evaluation or iteration is expected to take the last one's time,
    at first ``step_seconds`` [s]).

    Parameters
    ----------
    index : Index
        Compiled problem.
    pi : (N, T) float
        Energy duals of a pass [money/kW per slot].
    base : float
        That pass's job-free part [money] (``LagrangianParts.base``).
    upper : float
        A feasible plan's objective [money] (target of the fallback subgradient steps).
    iterations : int
        Evaluations at capacity prices [evaluations].
    deadline : float
        ``time.perf_counter()`` after which no evaluation or master solve starts.
    start : (N, T, R) float, optional
        Prices of the first evaluation (e.g. ``LagrangianParts.mu``).
    share : (N, T) float, optional
        The pass's idle share (``LagrangianParts.share``; :func:`idle_share` at ``pi``
        when None).
    """
    cut = _flat_cut(index, pi, base, share)
    cp, steps, _ = _capacity_search(index, cut, upper, iterations, deadline, None, start,
                                    from_zero=start is None, step_seconds=step_seconds)
    if not steps:
        return None
    job_best = job_minima(index, pi, cp.mu, cut.share)[0]
    return LagrangianParts(cp.value, cp.const, job_best, 0, steps, pi, cp.mu, base, cut.share)


def _bound_at(index: Index, load: FloatArray, deadline: float = math.inf
              ) -> tuple[float, FloatArray, FloatArray, float, _Minima] | None:
    """Bound at reference ``load``, the duals ``π`` (N, T), the relaxed solution's load,
    the part of the bound that does not depend on jobs and the jobs' minimum
    (:func:`_jobs_min`) (None: a dispatch LP not solved, or ``deadline`` passed before the
    last)."""
    got = load_duals(index, load, deadline)
    if got is None:
        return None
    pi, const = got
    jm = _jobs_min(index, pi, idle_share=idle_share(index, pi))
    return const + jm.total, pi, _relaxed_load(index, pi, jm.kw), const, jm


def _relaxed_load(index: Index, pi: FloatArray, job_kw: FloatArray) -> FloatArray:
    """Load (N, T) [kW] of a relaxed solution with jobs' load ``job_kw``: a sleeping node
    on where a job runs or its dual is negative."""
    on = index.available & ((~index.can_sleep)[:, None] | (pi < 0) | (job_kw > 0))
    return np.asarray(on * index.idle_kw[:, None] + job_kw)


@dataclass
class _Cut:
    """A supporting hyperplane of the energy cost at a reference load ``L*``, split by
    cut group (:func:`cut_groups`): for every plan's load ``L`` and on/off states,

        energy + idle + switching of nodes that cannot sleep of group ``g``
            ≥ const_g + Σ_{n∈g, t} [π_nt p_jn (jobs running) + share_nt gpus_j (jobs
              running on sleepers)],

    ``const_g = V_g(L*) − π·L*`` plus the idle draw at ``π`` of the nodes that cannot
    sleep (and their switching), and the negative part ``min(0, π idle)`` of sleepers
    (module docstring). Any convex combination of cuts per group, ``w_gk ≥ 0``,
    ``Σ_k w_gk = 1``, is a cut too (:meth:`_JobLp.combine`).

    Attributes
    ----------
    pi : (N, T) float
        Energy duals [money/kW per slot].
    share : (N, T) float
        :func:`idle_share` at ``pi`` [money/(slot·GPU)].
    const : (G,) float
        Every cut group's job-free part [money].
    """

    pi: FloatArray
    share: FloatArray
    const: FloatArray
    extra: float = 0.0
    """A job-free part [money] of no group (:func:`_flat_cut`; a master's first cut only)."""

    @property
    def total(self) -> float:
        """The job-free part of the bound [money]."""
        return float(self.const.sum()) + self.extra


def _flat_cut(index: Index, pi: FloatArray, const: float,
              share: FloatArray | None = None) -> _Cut:
    """The cut at duals ``pi`` with the job-free part ``const`` [money] as a whole (a
    master of this cut alone is the job LP at ``pi``); ``share`` defaults to
    :func:`idle_share` at ``pi`` (a combination of cuts brings its own, at least it)."""
    return _Cut(pi, idle_share(index, pi) if share is None else share,
                np.zeros(cut_groups(index)[1]), const)


def cut_groups(index: Index) -> tuple[IntArray, int]:
    """(N,) cut group of every node and the number of groups: one per dispatch group
    (:func:`~optisched.dispatch.dispatch_groups`: a feeder with a finite headroom, or a
    single node), whose energy cost is a convex function of its own load."""
    return _group_of(index, dispatch_groups(index)[0])


def _group_of(index: Index, groups: list[IntArray]) -> tuple[IntArray, int]:
    """:func:`cut_groups` of the dispatch groups ``groups``."""
    of = np.zeros(index.N, dtype=np.int64)
    for g, nodes in enumerate(groups):
        of[nodes] = g
    return of, len(groups)


def load_duals(index: Index, load: FloatArray, deadline: float = math.inf
               ) -> tuple[FloatArray, float] | None:
    """The energy duals ``π`` (N, T) [money/kW] at reference ``load`` and the part of the
    Lagrangian bound that does not depend on jobs [money] (:func:`load_cut`, summed).

    That part is ``Σ_g [V_g(L*) − π·L*]`` over the dispatch groups, the idle draw at ``π``
    (every available slot of a node that cannot sleep, the negative ones of a sleeper) and
    the switching of nodes that cannot sleep (module docstring). Every term belongs to one
    dispatch group or node, so the part of a set of whole dispatch groups can be computed on
    an index restricted to them (``optisched.solvers.distributed`` does, per partition).

    ``deadline`` (``time.perf_counter()``): no dispatch LP starts after it.

    Returns
    -------
    (pi, const) or None
        None when a dispatch LP at ``load`` could not be solved, or ``deadline`` came
        before the last one.
    """
    cut = load_cut(index, load, deadline)
    return None if cut is None else (cut.pi, cut.total)


def probe_load(index: Index, load: FloatArray, kw: float = PROBE_KW) -> FloatArray:
    """``load`` plus ``kw`` in every node-slot at its least possible load (0, or the idle
    draw of an available node that cannot sleep) whose import limit leaves room for it in
    every scenario [kW].

    **Why.** Where a node imports nothing at the reference load (a sleeping node, a node
    without PV) the balance row's dual is degenerate: any value from minus infinity up to
    the import cost is optimal, and HiGHS may return 0, which prices every job on that
    node as free (measured on metro-10k: the EV pods' duals were 0, so the 1,746 jobs that
    must run on a regional site or a pod cost nothing in the bound, −19,448 against
    −14,563 with the probe). At the probe the import is positive there, so the dual is the
    import cost, the price of a job's extra load. At the least possible load a plan's load
    can only be higher, so the dual of more load (the right derivative) is the best one
    there; where the reference carries jobs, a plan may have less load, so the dual is
    left as the LP gives it (probing every slot lowered `large`'s bound, 3,300 against
    3,791). Any reference load gives a valid cut (module docstring), so the probe changes
    only how tight it is.
    """
    load = np.asarray(load, dtype=float)
    cap = index.headroom if index.S == 1 else index.scenarios.headroom.min(axis=0)
    at_floor = load <= index.idle_floor_kw + 1e-9
    return np.where(index.available & at_floor & (cap - load > 2.0 * kw), load + kw, load)


def load_cut(index: Index, load: FloatArray, deadline: float = math.inf) -> _Cut | None:
    """The cut (:class:`_Cut`) at reference ``load`` (N, T) [kW]: its duals and every cut
    group's job-free part; None as :func:`load_duals`.

    Each dispatch LP is solved at :func:`probe_load` of ``load`` (the duals of more load
    where the reference's are degenerate), and at ``load`` itself for a group whose probe
    cannot be dispatched (e.g. a feeder at its headroom)."""
    N, T = index.N, index.T
    ref = np.asarray(load, dtype=float)
    load = probe_load(index, ref)
    groups, _ = dispatch_groups(index)
    group_of, G = _group_of(index, groups)
    pi = np.zeros((N, T))
    part = np.zeros(N)  # every node's job-free part (a coupled group's on its first node)

    def coupled(g: IntArray) -> bool:
        f = int(index.feeder_of[g[0]])
        return f >= 0 and bool(np.isfinite(index.feeder_headroom[f]).any())

    singles = [int(g[0]) for g in groups if not coupled(g)]
    blocks = [np.array(singles[b:b + _BLOCK], dtype=np.int64)
              for b in range(0, len(singles), _BLOCK)]
    multi = [g for g in groups if coupled(g)]
    for i, nodes in enumerate([*multi, *blocks]):
        if time.perf_counter() >= deadline:
            log.debug("load duals: deadline before the dispatch LPs of %d nodes", nodes.size)
            return None
        feeders = sorted({int(f) for f in index.feeder_of[nodes] if f >= 0
                          and np.isfinite(index.feeder_headroom[f]).any()})
        res = _scenario_group_lp(index, nodes, load, feeders)
        if res is None and np.any(load[nodes] != ref[nodes]):
            load[nodes] = ref[nodes]
            res = _scenario_group_lp(index, nodes, load, feeders)
        if res is None:
            return None
        value, duals, parts = res
        pi[nodes] = duals
        if i < len(multi):  # a coupled group: one value
            part[nodes[0]] += value - float(np.sum(duals * load[nodes]))
        else:  # independent nodes: each its own value
            part[nodes] += parts - np.sum(duals * load[nodes], axis=1)
    # on/off: fixed for nodes that cannot sleep; each slot alone for sleepers
    avail = index.available
    idle_pi = pi * index.idle_kw[:, None] * avail
    fixed = ~index.can_sleep
    part += np.where(fixed, idle_pi.sum(axis=1), np.minimum(idle_pi, 0.0).sum(axis=1))
    on = avail & fixed[:, None]
    prev = np.concatenate([index.initially_on[:, None], on[:, :-1]], axis=1)
    ups = (on & ~prev).sum(axis=1)
    downs = (~on & prev).sum(axis=1) + (index.end_off & on[:, -1])
    part += np.where(fixed, ups * index.startup_cost + downs * index.shutdown_cost, 0.0)
    const = np.zeros(G)
    np.add.at(const, group_of, part)
    return _Cut(pi, idle_share(index, pi), const)


def capacity_bound(index: Index, pi: FloatArray, const: float, upper: float,
                   iterations: int = 30, deadline: float = math.inf) -> float:
    """Lagrangian bound with the resource capacities dualized too [money].

    With energy duals ``π`` fixed, every ``μ ≥ 0`` (N, T, R) gives the bound

        LB(π, μ) = const − Σ_{n,t,r} μ_ntr cap_ntr + Σ_j min(drop_j, best_j(π, μ)),
        best_j(π, μ) = min_{(o, s)} [c_jos(π) + Σ_{t ∈ [s, s+d), r} μ_ntr u_jr]

    (capacity relaxed into the objective: for a plan within capacity the added term is
    ≤ 0; ``c_jos(π)`` the π-cost, idle share of sleeping nodes, latency and tardiness of
    job ``j`` at option ``o`` (node ``n``) and start ``s``, as :func:`job_minima`).

    **The best prices for this π are the duals of an LP.** ``LB(π, μ)`` is exactly Farley's
    (weak-duality) value, at the capacity duals ``μ``, of the *job LP*::

        min  Σ_{j,o,s} c_jos(π) x_jos + Σ_j drop_j y_j
        s.t. Σ_{o,s} x_jos + y_j = 1                    every job (y_j = 0: must run, pinned)
             Σ_{j,o,s: n_o = n, t ∈ [s, s+d)} u_jr x_jos ≤ cap_nr    every node, slot, resource
             0 ≤ x, y ≤ 1

    (its dual is ``max Σ_j σ_j − Σ μ·cap`` with ``σ_j ≤ drop_j`` and ``σ_j ≤ c_jos +
    μ·u_jos``; for given ``μ ≥ 0`` the best ``σ_j`` is ``min(drop_j, best_j(π, μ))``), so
    ``max_μ LB(π, μ)`` is the job LP's optimum (LP duality) and a plan's objective is at
    least it (a plan is an integer point of the job LP whose costs are at least
    ``c_jos(π)``, ``docs/algorithms/lns.md`` §5). It is solved by **column generation**
    (:func:`_capacity_lp`): a restricted master with a few cheapest starts per job,
    priced over every start at the master's duals by :func:`job_minima`; every
    evaluation's value is a bound (any ``μ ≥ 0``), the best is returned. When HiGHS fails
    on the master, the remaining iterations are projected subgradient steps of Polyak size
    ``θ (upper − LB) / ‖g‖²``, ``g = use − capacity``, ``θ`` from 0.2, halved after 3
    steps without a better bound (:func:`_subgradient_search`).

    Parameters
    ----------
    index : Index
        Compiled problem.
    pi : (N, T) float
        Energy duals of :func:`_bound_at`.
    const : float
        The part of the bound that does not depend on jobs [money].
    upper : float
        Objective of a feasible plan [money] (target of the subgradient steps).
    iterations : int
        Evaluations at capacity prices (column-generation iterations and their damped
        points, or subgradient steps).
    deadline : float
        ``time.perf_counter()`` at which to stop.
    """
    return _capacity_search(index, _flat_cut(index, pi, const), upper, iterations,
                            deadline)[0].value


@dataclass
class _CapacityPoint:
    """A point of the capacity search: its bound, job-free part (with ``−μ·capacity``)
    [money], prices ``μ`` (None: 0), the relaxed jobs' load there (N, T) [kW], its energy
    duals ``π`` and idle share (N, T), its job-free part without the capacity term
    [money] and its cut weights (K, G) in the master (None: the newest cut alone)."""

    value: float
    const: float
    mu: FloatArray | None
    kw: FloatArray
    pi: FloatArray
    share: FloatArray
    base: float
    w: FloatArray | None = None


_Columns = tuple[IntArray, IntArray]
"""Start columns of a job LP: options and their starts."""

CAPACITY_SEEDS = 3
"""Options per job whose cheapest start (at ``μ = 0``, or at the start prices) enters the
first master of the job LP."""
CAPACITY_DAMPING = 0.5
"""Smoothing ``θ`` of the pricing point (Wentges): each iteration evaluates the bound and
prices at ``μ̂ + θ (μ − μ̂)``, ``μ̂`` the best prices so far and ``μ`` the master's (the
master's own only when nothing prices out there)."""


def _better(value: float, top: float) -> bool:
    """Whether bound ``value`` improves on ``top`` (a tolerance around ``-inf`` would be
    nan)."""
    if math.isfinite(top):
        return value > top + 1e-9 * max(1.0, abs(top))
    return value > top


def _capacity_search(index: Index, cut: _Cut, upper: float, iterations: int,
                     deadline: float, first: _Minima | None = None,
                     start: FloatArray | None = None, from_zero: bool = True,
                     step_seconds: float = 0.0, columns: _Columns | None = None,
                     needs: BoolArray | None = None, master: _JobLp | None = None
                     ) -> tuple[_CapacityPoint, int, _JobLp | None]:
    """The capacity search of :func:`capacity_bound`: its best point, the evaluations run
    at capacity prices and the job LP's master (to take the next cut).

    Column generation (:func:`_capacity_lp`, on ``master`` with ``cut`` added, or a new
    master) first; the subgradient steps (:func:`_subgradient_search`, at the best
    point's prices) only for the iterations it leaves when HiGHS fails on its master. The
    first evaluation is at ``μ = 0`` (``first``: its :func:`_jobs_min`, when known; left out
    when not ``from_zero``), the next at ``start`` when given. An evaluation or iteration
    starts only when the time the last one took (at first ``step_seconds``) ends before
    ``deadline``. ``needs``: the index's :func:`_overloadable_chains` when the caller has
    them (computed here without).
    """
    top, steps, ok, took, lp = _capacity_lp(index, cut, iterations, deadline, first, start,
                                            from_zero, step_seconds, columns, needs, master)
    if ok or steps >= iterations or not math.isfinite(top.value):
        return top, steps, lp
    log.debug("capacity LP failed after %d evaluations: subgradient steps", steps)
    sub, more = _subgradient_search(index, top.pi, top.base, upper, iterations - steps,
                                    deadline, None, top.mu, from_zero=top.mu is None,
                                    step_seconds=took, share=top.share)
    sub.w = top.w
    return (sub if sub.value > top.value else top), steps + more, lp


def _overloadable(index: Index) -> BoolArray:
    """(N·T·R,) capacity rows of the job LP some placements could overload: the summed use
    of every job with an option on the node whose window covers the slot exceeds the
    capacity (each job adds at most its use to a row, so the others can never bind)."""
    o = np.arange(index.opt_job.size)
    j, d = index.opt_job[o], index.opt_dur[o]
    pin = index.pinned[j]
    lo = np.where(pin, index.pinned_start[j], np.maximum(index.opt_earliest[o], 0))
    hi = np.where(pin, index.pinned_start[j] + d, index.opt_latest[o] + d)
    used = _load_of(index, o, lo, np.ones(o.size), ends=hi)[1]
    cap = index.capacity[:, None, :] * index.available[:, :, None]
    return np.asarray((used > cap + 1e-9 * np.maximum(1.0, cap)).reshape(-1))


def _overloadable_chains(index: Index) -> BoolArray:
    """(N·R,) (node, resource) chains of the job LP (row ``n·R + r``) with an
    :func:`_overloadable` slot: the only ones whose flow rows :class:`_JobLp` builds. It
    depends on the index only, so a caller that builds several masters of one index
    (:func:`bound_parts`) computes it once and passes it down."""
    T, R = index.T, len(index.resources)
    over = _overloadable(index).reshape(index.N, T, R)
    return np.asarray(np.moveaxis(over, 2, 1).reshape(index.N * R, T).any(axis=1))


class _JobLp:
    """The restricted master of the job LP of :func:`capacity_bound` with the energy cost
    as the maximum of cuts, one HiGHS model that columns, rows and cuts are appended to
    and re-solved.

    Each master is solved by interior point without crossover (by simplex when that ends
    without optimality): measured on generate large seed 0 (1,000 jobs, 16 k starts in
    the master), 1.1 s per master against 3.3 s by warm dual simplex and 9.5 s by warm
    primal simplex (the master is degenerate), and its central duals price better.

    **Energy by cuts.** Every cut group ``g`` (:func:`cut_groups`) has a column ``e_g``
    (cost 1; bounded below only by what its first cut implies, :meth:`_add_energy_columns`)
    and every cut ``k`` (:class:`_Cut`, one per dispatch pass) a row per
    group, ``e_g − Σ_{starts on g} a_k(x) ≥ const_gk`` with ``a_k`` the start's energy at
    ``π^k`` and idle share ``share^k`` (:func:`_energy_costs`); the start columns cost
    their latency and tardiness only. With one cut this is the job LP at that cut's ``π``;
    with several the energy of a group is priced by the best of them (Kelley's cutting
    planes on the convex dispatch value ``V_g``), and the cut rows' duals ``w_gk ≥ 0``
    (``Σ_k w_gk = 1``: the reduced cost of ``e_g``) weigh the cuts into the prices a
    start is priced at (:meth:`combine`).

    The capacity rows are written in *flow form* (as :mod:`optisched.bounds.aggregate`
    writes its class capacities): for a node ``n`` and resource ``r`` a running-use column
    ``0 ≤ L_ntr ≤ cap_nr`` per slot (0 where the node is unavailable) and a row per slot
    ``L_nt − L_n,t−1 − Σ_{starts at t} u x + Σ_{ends at t} u x = 0``, so a start column has
    two entries per resource instead of one per slot it runs (the LP is the same: ``L_nt``
    is the use in slot ``t``). The capacity prices are ``μ_nt = ψ_nt − ψ_n,t+1`` of the
    flow rows' duals ``ψ`` (``ψ_nT = 0``): the reduced cost of a start is then
    ``c_jos + Σ_k w_gk a_k + Σ_{t ∈ [s, s+d)} μ_nt u_jr − σ_j`` and that of ``L_nt`` is
    ``−μ_nt``.

    Columns: ``y_j`` of every job (cost ``drop_j``; ``big_m`` where it must run or is
    pinned: an artificial column, so the master is always feasible), the ``e_g``, then the
    start columns and the ``L`` columns of every (node, resource) chain, appended with the
    first start column that touches a chain (only chains with an :func:`_overloadable`
    slot; a chain no column touches has no price). Rows: the assignment row of every job,
    then the chains' flow rows and the cuts' rows as they come. The first cut's ``extra``
    (a job-free part of no group, :func:`_flat_cut`) is added to the master's value; the
    chains that get flow rows come from ``needs`` (:func:`_overloadable_chains`).
    """

    def __init__(self, index: Index, big_m: float, needs: BoolArray) -> None:
        ix = self.index = index
        J, T, R = ix.J, ix.T, len(ix.resources)
        cap = ix.capacity[:, None, :] * ix.available[:, :, None]
        self.cap = np.moveaxis(cap, 2, 1).reshape(ix.N * R, T)  # (n·R + r, t)
        self.needs = needs  # the chains with an overloadable slot (:func:`_overloadable_chains`)
        self.chain = np.full(ix.N * R, -1, dtype=np.int64)  # first flow row of a chain
        self.chains = np.zeros(0, dtype=np.int64)
        self.group_of, self.G = cut_groups(ix)
        self.offset = 0.0  # the first cut's ``extra`` [money]
        drop = _drops(ix)
        self.artificial = ~np.isfinite(drop)
        y_cost = np.where(self.artificial, big_m, drop)
        eye = sp.identity(J, format="csc")
        self.h = hs.load(hs.LinearModel(A=eye, cost=y_cost, col_lb=np.zeros(J),
                                        col_ub=np.ones(J), row_lo=np.ones(J),
                                        row_hi=np.ones(J)))
        hs.configure(self.h, solver="ipm", presolve=False, crossover=False)
        self.e0 = -1  # first e column (with the first cut)
        self.n_rows, self.n_cols = J, J
        self.cuts: list[_Cut] = []
        self.cut_prefix: list[tuple[FloatArray, FloatArray | None]] = []
        self.cut_row: list[int] = []  # first row of every cut
        self.opt = np.zeros(0, dtype=np.int64)
        self.start = np.zeros(0, dtype=np.int64)
        self.pos = np.zeros(0, dtype=np.int64)  # master column of every start column
        self.seen = ColumnSet()  # the (option, start) pairs in the master

    def add_cut(self, cut: _Cut) -> None:
        """Append the rows of ``cut`` with the entries of every start column so far."""
        ix, G = self.index, self.G
        if self.e0 < 0:
            self._add_energy_columns(cut)
            self.offset = cut.extra
        prefix = _prefix(ix, cut.pi, _with_share(ix, None, cut.share))
        a = _energy_costs(ix, *prefix, self.opt, self.start)
        rows = np.concatenate([np.arange(G), self.group_of[ix.opt_node[self.opt]]])
        cols = np.concatenate([self.e0 + np.arange(G), self.pos])
        A = sp.csr_matrix((np.concatenate([np.ones(G), -a]), (rows, cols)),
                          shape=(G, self.n_cols))
        hs.add_rows(self.h, cut.const, np.full(G, np.inf), A)
        self.cut_row.append(self.n_rows)
        self.n_rows += G
        self.cuts.append(cut)
        self.cut_prefix.append(prefix)

    def _add_energy_columns(self, cut: _Cut) -> None:
        """The ``e_g`` columns, bounded below by what the first cut allows: its constant
        and the negative duals at every option's power on the group's nodes (interior
        point stalled on free columns; the bound's values are Farley's at the master's
        duals, valid whatever the master's bounds)."""
        ix, G = self.index, self.G
        most = np.bincount(ix.opt_node, weights=ix.opt_power, minlength=ix.N)  # [kW]
        low = np.zeros(G)
        np.add.at(low, self.group_of, np.minimum(cut.pi, 0.0).sum(axis=1) * most)
        lb = cut.const + low - 1.0 - 1e-3 * np.abs(cut.const + low)
        self.e0 = self.n_cols
        hs.add_cols(self.h, np.ones(G), lb, np.full(G, np.inf),
                    sp.csc_matrix((self.n_rows, G)))
        self.n_cols += G

    def combine(self, w: FloatArray) -> tuple[FloatArray, FloatArray, float]:
        """The prices of the cuts weighed by ``w`` (K, G) (per group a convex
        combination): ``π`` (N, T), the idle share (N, T) and the job-free part with
        :attr:`offset` [money] (a valid cut: every cut bounds the group's cost)."""
        wn = w[:, self.group_of]  # (K, N)
        pi = np.einsum("kn,knt->nt", wn, np.stack([c.pi for c in self.cuts]))
        share = np.einsum("kn,knt->nt", wn, np.stack([c.share for c in self.cuts]))
        const = self.offset + float(sum(np.dot(w[k], c.const) for k, c in enumerate(self.cuts)))
        return np.asarray(pi), np.asarray(share), const

    def _add_chains(self, chains: IntArray) -> None:
        """The flow rows and ``L`` columns of new (node, resource) chains."""
        T = self.index.T
        k = chains.size
        first = self.n_rows + T * np.arange(k)
        self.chain[chains] = first
        self.chains = np.concatenate([self.chains, chains])
        hs.add_rows(self.h, np.zeros(k * T), np.zeros(k * T))
        self.n_rows += k * T
        col = np.arange(k * T)
        row = np.repeat(first, T) + np.tile(np.arange(T), k)
        nxt = np.tile(np.arange(T), k) < T - 1
        A = sp.csc_matrix((np.concatenate([np.ones(k * T), -np.ones(int(nxt.sum()))]),
                           (np.concatenate([row, row[nxt] + 1]),
                            np.concatenate([col, col[nxt]]))), shape=(self.n_rows, k * T))
        hs.add_cols(self.h, np.zeros(k * T), np.zeros(k * T), self.cap[chains].reshape(-1), A)
        self.n_cols += k * T

    def add(self, opts: IntArray, starts: IntArray) -> int:
        """Append the start columns ``(opts, starts)`` not in the master yet (and the
        chains they are the first to touch); returns how many entered."""
        ix = self.index
        T, R = ix.T, len(ix.resources)
        fresh = self.seen.add_new(opts, starts)
        if not fresh.size:
            return 0
        o, s = opts[fresh], starts[fresh]
        j, n, d = ix.opt_job[o], ix.opt_node[o], ix.opt_dur[o]
        a, e = np.clip(s, 0, T), np.clip(s + d, 0, T)
        runs = e > a
        rows, cols, vals = [j], [np.arange(o.size)], [np.ones(o.size)]
        for r in range(R):
            u = ix.usage[j, r]
            c = n * R + r
            m = (u > 0) & runs & self.needs[c]
            new = np.unique(c[m][self.chain[c[m]] < 0])
            if new.size:
                self._add_chains(new)
            head = self.chain[c]
            for at, sign in ((a, -1.0), (e, 1.0)):
                mm = m & (at < T)
                rows.append(head[mm] + at[mm])
                cols.append(np.nonzero(mm)[0])
                vals.append(sign * u[mm])
        g = self.group_of[n]
        for first, prefix in zip(self.cut_row, self.cut_prefix, strict=True):
            rows.append(first + g)
            cols.append(np.arange(o.size))
            vals.append(-_energy_costs(ix, *prefix, o, s))
        A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(self.n_rows, o.size))
        hs.add_cols(self.h, _fixed_costs(ix, o, s), np.zeros(o.size), np.ones(o.size), A)
        self.pos = np.concatenate([self.pos, self.n_cols + np.arange(o.size)])
        self.n_cols += o.size
        self.opt = np.concatenate([self.opt, o])
        self.start = np.concatenate([self.start, s])
        return int(o.size)

    def solve(self, deadline: float) -> _Master | None:
        """Solve the master (:class:`_Master`); None when not solved to optimality before
        ``deadline``."""
        ix, h = self.index, self.h
        T, R = ix.T, len(ix.resources)
        ran = None
        for solver in ("ipm", "simplex"):  # simplex when interior point ends Unknown
            left = deadline - time.perf_counter()
            if ran is not None and left <= 0:
                break
            # HiGHS's time limit counts the run time of every solve of the instance
            hs.configure(h, solver=solver, time_limit=h.getRunTime() + max(0.05, left))
            ran = hs.run(h, deadline=deadline)
            if ran.optimal:
                break
            log.debug("capacity LP master (%s): %s", solver, ran.text)
        hs.configure(h, solver="ipm")
        sol = hs.solution(h)
        if ran is None or not ran.optimal or not sol.dual_valid:
            return None
        y, x = sol.row_duals(), sol.primal()
        mu = np.zeros((ix.N * R, T))
        if self.chains.size:
            rows = self.chain[self.chains][:, None] + np.arange(T)[None, :]
            psi = y[rows]
            nxt = np.concatenate([psi[:, 1:], np.zeros((self.chains.size, 1))], axis=1)
            mu[self.chains] = np.maximum(0.0, psi - nxt)
        art = float(x[:ix.J][self.artificial].sum())
        mu3 = np.moveaxis(mu.reshape(ix.N, R, T), 1, 2)
        w = np.stack([np.maximum(y[r:r + self.G], 0.0) for r in self.cut_row])
        return _Master(hs.info(h).objective + self.offset, np.ascontiguousarray(mu3),
                       y[:ix.J], x[self.pos], art, _convex(w))


def _convex(w: FloatArray) -> FloatArray:
    """Cut weights (K, G) made a convex combination per group (a group without weight:
    all on the last cut); the master's are up to its tolerance."""
    tot = w.sum(axis=0)
    out = np.where(tot > 0, w / np.where(tot > 0, tot, 1.0), 0.0)
    out[-1, tot <= 0] = 1.0
    return np.asarray(out)


@dataclass
class _Master:
    """A solved master of :class:`_JobLp`: its value with the offset [money], the
    capacity prices ``μ ≥ 0`` (N, T, R) of the flow rows' duals, the assignment duals
    ``σ`` (J,), the start columns' values, the artificial columns' sum and the cut
    weights ``w`` (K, G)."""

    value: float
    mu: FloatArray
    sigma: FloatArray
    x: FloatArray
    art: float
    w: FloatArray


def placement_columns(index: Index, node: IntArray, start: IntArray) -> _Columns:
    """The start columns of a placement (node (-1: dropped) and start slot of every job):
    seeds of the job LP's master that keep it within capacity from its first solve
    (:func:`capacity_bound`). Pairs without an option are left out."""
    node, start = np.asarray(node, dtype=np.int64), np.asarray(start, dtype=np.int64)
    runs = np.nonzero(node >= 0)[0]
    key = index.opt_job.astype(np.int64) * index.N + index.opt_node
    order = np.argsort(key, kind="stable")
    want = runs * index.N + node[runs]
    at = np.minimum(np.searchsorted(key[order], want), max(key.size - 1, 0))
    hit = (key[order][at] == want) if key.size else np.zeros(runs.size, dtype=bool)
    return order[at[hit]].astype(np.int64), start[runs[hit]]


def _seeds(index: Index, m: _Minima) -> _Columns:
    """The cheapest start of the :data:`CAPACITY_SEEDS` cheapest options of every job at
    the prices of ``m``."""
    ok = np.nonzero(np.isfinite(m.oc))[0]
    pick = ok[_cheapest_per_job(index.opt_job[ok], m.oc[ok], CAPACITY_SEEDS)]
    return pick.astype(np.int64), m.os_[pick].astype(np.int64)


def _priced(index: Index, m: _Minima, prefix: tuple[FloatArray, FloatArray | None],
            sigma: FloatArray, tol: float) -> _Columns:
    """The starts of :func:`_seeds` at the prices of ``m`` whose reduced cost at the
    master's duals (prefix sums ``prefix`` of ``π`` and ``μ``, assignment duals ``sigma``)
    is below ``−tol``."""
    o, s = _seeds(index, m)
    red = _start_costs(index, *prefix, o, s) - sigma[index.opt_job[o]]
    return o[red < -tol], s[red < -tol]


def _capacity_lp(index: Index, cut: _Cut, iterations: int, deadline: float,
                 first: _Minima | None = None, start: FloatArray | None = None,
                 from_zero: bool = True, step_seconds: float = 0.0,
                 columns: _Columns | None = None, needs: BoolArray | None = None,
                 master: _JobLp | None = None
                 ) -> tuple[_CapacityPoint, int, bool, float, _JobLp | None]:
    """Column generation on the job LP of :func:`capacity_bound` with ``cut`` added to
    ``master``'s cuts (a new master of ``cut`` alone when None: the job LP at ``cut.pi``).

    The evaluations at ``cut``'s prices alone with ``μ = 0`` (``first`` when given; when
    ``from_zero``) and at ``start`` seed the master (:func:`_seeds`) with ``columns``
    (e.g. a plan's starts; a new master only). Each iteration solves the master
    (:class:`_JobLp`; its flow rows on the chains ``needs``, the index's
    :func:`_overloadable_chains`, computed here when None), evaluates the bound by
    :func:`_jobs_min` at the smoothed duals ``d̂ + θ (d − d̂)`` (:data:`CAPACITY_DAMPING`;
    ``d`` the master's cut weights and capacity prices, ``d̂`` the best point's) — every
    job's cheapest start over *all* its starts at the cuts' combination there
    (:meth:`_JobLp.combine`) — and appends the cheapest start of each job's
    :data:`CAPACITY_SEEDS` cheapest options at that point whose reduced cost at the
    master's duals ``c_jos + Σ_k w_gk a_k + μ·u_jos − σ_j`` is below ``−tol``
    (:data:`~optisched.bounds.aggregate.REDUCED_COST_TOL`, relative to the master's value
    per job); when none is, the same at the master's own duals (one more evaluation).
    It stops when nothing prices out at the master's duals or the best bound reaches the
    master's value (converged: the optimum of the job LP with these cuts), after
    ``iterations`` evaluations at the master's prices, or when the next iteration would
    not end before ``deadline`` (each is expected to take the last one's time, at first
    ``step_seconds``; HiGHS is also stopped at ``deadline``).

    Every evaluated point (cut weights per group summing to 1, ``μ ≥ 0``) gives a valid
    bound whatever the master's accuracy (Farley's bound: the master only proposes prices
    and columns), so the best point is a bound at every iteration.

    Returns
    -------
    (point, steps, ok, took, master)
        The best point, the evaluations at capacity prices, False when HiGHS failed on a
        master (not at its deadline), the last evaluation's time [s] and the master (None
        without one).
    """
    cap = index.capacity[:, None, :] * index.available[:, :, None]
    K = 1 if master is None else len(master.cuts) + 1  # cuts with this one
    here = np.zeros((K, 1))
    here[-1] = 1.0  # the newest cut alone (broadcast over the groups)
    top = _CapacityPoint(-math.inf, cut.total, None, np.zeros((index.N, index.T)), cut.pi,
                         cut.share, cut.total, None)
    took, steps = step_seconds, 0
    seeds: list[_Columns] = [] if columns is None or master is not None else [columns]

    def fits(seconds: float) -> bool:
        return time.perf_counter() + seconds < deadline

    def point(m: _Minima, mu: FloatArray | None, pi: FloatArray, share: FloatArray,
              const: float, w: FloatArray | None) -> float:
        nonlocal top
        held = 0.0 if mu is None else float(np.sum(mu * cap))
        value = const + m.total - held
        if _better(value, top.value):
            top = _CapacityPoint(value, const - held, mu, m.kw, pi, share, const, w)
        return value

    def evaluate(mu: FloatArray | None, w: FloatArray | None = None) -> _Minima:
        nonlocal took
        t = time.perf_counter()
        if w is None or lp is None:
            pi, share, const = cut.pi, cut.share, cut.total
        else:
            pi, share, const = lp.combine(w)
        m = _jobs_min(index, pi, mu, share)
        took = time.perf_counter() - t
        point(m, mu, pi, share, const, w)
        return m

    lp = master
    if from_zero or start is None:
        if first is None:
            if not fits(took):
                return top, 0, True, took, lp
            first = evaluate(None)
        else:
            point(first, None, cut.pi, cut.share, cut.total, None)
        seeds.append(_seeds(index, first))
    if start is not None and top.value != math.inf:  # (inf: a must-run job cannot run)
        if not fits(took):
            return top, steps, True, took, lp
        m0 = evaluate(np.asarray(np.maximum(start, 0.0), dtype=float))
        steps += 1
        seeds.append(_seeds(index, m0))
    if not math.isfinite(top.value) or steps >= iterations or not seeds or not fits(took):
        return top, steps, True, took, lp
    J = index.J
    so = np.concatenate([c[0] for c in seeds])
    ss = np.concatenate([c[1] for c in seeds])
    t_it = time.perf_counter()
    if lp is None:
        drop = _drops(index)
        at_cut = _prefix(index, cut.pi, _with_share(index, None, cut.share))
        big_m = 10.0 * max(1.0, float(np.max(np.abs(drop[np.isfinite(drop)]), initial=0.0)),
                          float(np.max(np.abs(_start_costs(index, *at_cut, so, ss)),
                                       initial=0.0)))
        lp = _JobLp(index, big_m, _overloadable_chains(index) if needs is None else needs)
    lp.add_cut(cut)
    lp.add(so, ss)
    ok, converged = True, False
    last_kw: FloatArray | None = None
    while steps < iterations:
        if steps and not fits(took):
            break
        got = lp.solve(deadline)
        if got is None:
            ok = time.perf_counter() >= deadline  # cut at its deadline: no fallback
            break
        value = got.value  # ≥ the bound of the job LP with these cuts
        log.debug("capacity LP it %d: master %.6f (artificial %.3g), bound %.6f, %d starts, "
                  "%d cuts", steps, value, got.art, top.value, lp.opt.size, len(lp.cuts))
        last_kw = _load_of(index, lp.opt, lp.start, got.x)[0] if got.art <= 1e-6 else None
        if got.art <= 1e-6 and top.value >= value - CONVERGED_GAP * max(1.0, abs(value)):
            converged = True
            break
        tol = REDUCED_COST_TOL * max(1.0, abs(value) / max(1, J))
        pi_m, share_m, _ = lp.combine(got.w)
        at_master = _prefix(index, pi_m, _with_share(index, got.mu, share_m))
        # Wentges smoothing: the duals halfway from the best point towards the master's
        base_mu = np.zeros_like(got.mu) if top.mu is None else top.mu
        base_w = _padded(here if top.w is None else top.w, len(lp.cuts))
        m = evaluate(np.asarray(base_mu + CAPACITY_DAMPING * (got.mu - base_mu)),
                     np.asarray(base_w + CAPACITY_DAMPING * (got.w - base_w)))
        steps += 1
        entered = lp.add(*_priced(index, m, at_master, got.sigma, tol))
        if not entered and steps < iterations and fits(took):  # mispriced: the master's own
            m = evaluate(got.mu, got.w)
            steps += 1
            entered = lp.add(*_priced(index, m, at_master, got.sigma, tol))
            if not entered:
                converged = got.art <= 1e-6  # nothing prices out: the master's optimum
                break
        if not entered:
            break
        took = time.perf_counter() - t_it
        t_it = time.perf_counter()
    if last_kw is not None and (top.mu is not None or top.w is not None):  # the LP's load
        top.kw = last_kw
    log.debug("capacity LP: bound %.6g after %d evaluations, %d starts, %d rows, %d cuts%s",
              top.value, steps, lp.opt.size, lp.n_rows - J, len(lp.cuts),
              " (converged)" if converged else "")
    return top, steps, ok, took, lp


def _padded(w: FloatArray, k: int) -> FloatArray:
    """Cut weights (K', G) or (K', 1) with zero rows for the cuts ``K'..k − 1`` added
    since."""
    return np.asarray(np.vstack([w, np.zeros((k - w.shape[0], w.shape[1]))]))


def _subgradient_search(index: Index, pi: FloatArray, const: float, upper: float,
                        iterations: int, deadline: float, first: _Minima | None = None,
                        start: FloatArray | None = None, from_zero: bool = True,
                        step_seconds: float = 0.0, share: FloatArray | None = None
                        ) -> tuple[_CapacityPoint, int]:
    """Projected subgradient steps of the capacity prices (:func:`capacity_bound`'s
    fallback): the best point and the steps run.

    The first evaluation is at ``μ = 0`` (the bound without capacity prices; ``first``:
    its :func:`_jobs_min`, when known; left out when not ``from_zero``), the next at
    ``start`` when given (N, T, R), then subgradient steps. An evaluation starts only
    when the time it is expected to take (the last one's, at first ``step_seconds``) ends
    before ``deadline``. ``share``: the idle share the jobs carry (:func:`idle_share` at
    ``pi`` when None).
    """
    cap = index.capacity[:, None, :] * index.available[:, :, None]
    share = idle_share(index, pi) if share is None else share
    mu = np.zeros(cap.shape)
    zero = from_zero or start is None
    if not zero:
        assert start is not None
        mu = np.asarray(np.maximum(start, 0.0), dtype=float)
    top = _CapacityPoint(-math.inf, const, None, np.zeros((index.N, index.T)), pi, share,
                         const)
    theta, stall, steps, took = 0.2, 0, 0, step_seconds
    for k in range(iterations + 1):
        if k == 0 and zero and first is not None:
            m = first
        else:
            if time.perf_counter() + took >= deadline:
                break
            t_eval = time.perf_counter()
            m = _jobs_min(index, pi, mu, share)
            took = time.perf_counter() - t_eval
        held = float(np.sum(np.where(mu > 0, mu * cap, 0.0)))
        value = const + m.total - held
        if k or not zero:
            steps += 1
        if _better(value, top.value):
            top = _CapacityPoint(value, const - held, None if (k == 0 and zero) else mu, m.kw,
                                 pi, share, const)
            stall = 0
        else:
            stall += 1
            if stall >= 3:
                theta, stall = theta / 2.0, 0
        if k == iterations or not math.isfinite(value):
            break
        if k == 0 and zero and start is not None:  # warm start after the value at μ = 0
            mu = np.asarray(np.maximum(start, 0.0), dtype=float)
            continue
        nxt = subgradient_step(mu, m.used, cap, theta, upper, value)
        if nxt is None:
            break
        mu = nxt
    return top, steps


def subgradient_step(mu: FloatArray, used: FloatArray, cap: FloatArray, theta: float,
                     upper: float, value: float) -> FloatArray | None:
    """One projected subgradient step of capacity prices ``μ ≥ 0`` (:func:`capacity_bound`).

    The direction is ``g = used − cap`` with the components that would push a zero price
    below zero removed; the Polyak size ``θ (upper − value) / ‖g‖²``.

    Parameters
    ----------
    mu, used, cap : (N, T, R) float
        Prices [money per unit and slot], the relaxed solution's resource use and the
        capacities [units].
    theta : float
        Step factor [-].
    upper, value : float
        A feasible plan's objective and the bound at ``mu`` [money].

    Returns
    -------
    (N, T, R) float or None
        The next prices; None when ``g`` vanishes (no better prices along it).
    """
    g = used - cap
    g = np.where((mu <= 0) & (g < 0), 0.0, g)  # projected direction
    norm = float(np.sum(g * g))
    if norm <= 1e-12:
        return None
    size = theta * max(upper - value, 1e-9 * max(1.0, abs(upper))) / norm
    return np.asarray(np.maximum(0.0, mu + size * g))


def idle_share(index: Index, pi: FloatArray) -> FloatArray:
    """Idle cost of sleeping nodes a job must carry per slot and GPU [money/(slot·GPU)].

    ``c_nt = max(0, π_nt idle_n)`` for an available slot of a node that can sleep is paid
    whenever a job runs there; the jobs running in the slot use at most the node's
    ``capacity`` of GPUs, so charging each ``c_nt · gpus_j / capacity_n`` charges at most
    ``c_nt`` in total (0 where the node has no GPU capacity).
    """
    cap = index.capacity[:, 0]
    c = np.maximum(0.0, pi * index.idle_kw[:, None]) * index.available
    c = np.where(index.can_sleep[:, None] & (cap[:, None] > 0), c, 0.0)
    return np.asarray(c / np.where(cap > 0, cap, 1.0)[:, None])


def job_minima(index: Index, pi: FloatArray, mu: FloatArray | None = None,
               share: FloatArray | None = None, options: IntArray | None = None
               ) -> tuple[FloatArray, IntArray, IntArray]:
    """Each job's cheapest option at energy prices ``π`` (N, T) [money/kW] and resource
    prices ``μ`` (N, T, R) (``share``: :func:`idle_share`, added to the GPU's price).

    Parameters
    ----------
    index : Index
        Compiled problem.
    pi, mu, share : array
        Prices; only the rows of the nodes of ``options`` are read.
    options : (K,) int, optional
        The options to consider (positions, sorted); default all. A job without one of
        them gets ``inf``.

    Returns
    -------
    best : (J,) float
        Cost of the cheapest placement among ``options``: ``p Σ_{t} π_nt`` over its slots
        plus its ``μ`` charges, latency and tardiness [money]; ``inf`` without one.
    option, start : (J,) int
        That option (-1 without one) and its start slot.
    """
    opts = np.arange(index.opt_job.size) if options is None else np.asarray(options,
                                                                            dtype=np.int64)
    oc, os_ = _option_costs(index, pi, _with_share(index, mu, share), opts)
    return _job_best(index, opts, oc, os_)


def _with_share(index: Index, mu: FloatArray | None, share: FloatArray | None
                ) -> FloatArray | None:
    """Resource prices (N, T, R) with the per-GPU price of waking a node (``share``,
    :func:`idle_share`) added to the GPU's (resource 0); ``mu`` itself without it."""
    if share is None:
        return mu
    R = len(index.resources)
    return np.asarray(share[:, :, None] * (np.arange(R) == 0)[None, None, :]
                      + (0.0 if mu is None else mu))


def _cheapest_per_job(jobs: IntArray, cost: FloatArray, k: int) -> IntArray:
    """Positions of the ``k`` cheapest entries of every job (``jobs[i]`` the job of entry
    ``i``), by job and then cost (ties: the first)."""
    if not jobs.size:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((cost, jobs))
    g = jobs[order]
    first = np.ones(g.size, dtype=bool)
    first[1:] = g[1:] != g[:-1]
    rank = np.arange(g.size) - np.maximum.accumulate(np.where(first, np.arange(g.size), 0))
    return np.asarray(order[rank < k], dtype=np.int64)


def _job_best(index: Index, opts: IntArray, oc: FloatArray, os_: IntArray
              ) -> tuple[FloatArray, IntArray, IntArray]:
    """:func:`job_minima` of the options ``opts`` with costs ``oc`` and starts ``os_``."""
    best = np.full(index.J, np.inf)
    arg = np.full(index.J, -1, dtype=np.int64)
    start = np.zeros(index.J, dtype=np.int64)
    if opts.size:
        lead = _cheapest_per_job(index.opt_job[opts], oc, 1)
        jobs = index.opt_job[opts[lead]]
        best[jobs] = oc[lead]
        arg[jobs] = opts[lead]
        start[jobs] = os_[lead]
    return best, arg, start


def _prefix(index: Index, pi: FloatArray, mu: FloatArray | None
            ) -> tuple[FloatArray, FloatArray | None]:
    """Prefix sums over the slots of ``π`` (N, T + 1) and of ``μ`` (N, T + 1, R)."""
    P = np.zeros((index.N, index.T + 1))
    P[:, 1:] = np.cumsum(pi, axis=1)
    if mu is None:
        return P, None
    Q = np.zeros((index.N, index.T + 1, len(index.resources)))
    Q[:, 1:, :] = np.cumsum(mu, axis=1)
    return P, Q


def _start_costs(index: Index, P: FloatArray, Q: FloatArray | None, opts: IntArray,
                 starts: IntArray) -> FloatArray:
    """Cost [money] of every option of ``opts`` at its start of ``starts`` (which may lie
    outside 0..T for a pinned job) at the prices of the prefix sums ``P`` and ``Q``
    (:func:`_prefix`): energy, resource charges (:func:`_energy_costs`), latency and
    tardiness (:func:`_fixed_costs`)."""
    return np.asarray(_energy_costs(index, P, Q, opts, starts)
                      + _fixed_costs(index, opts, starts), dtype=float)


def _energy_costs(index: Index, P: FloatArray, Q: FloatArray | None, opts: IntArray,
                  starts: IntArray) -> FloatArray:
    """The priced part of :func:`_start_costs` [money]: energy at the prefix sums ``P``
    of ``π`` and resource charges at those ``Q`` of ``μ`` (with the idle share)."""
    T = index.T
    j, n, d = index.opt_job[opts], index.opt_node[opts], index.opt_dur[opts]
    lo, hi = np.clip(starts, 0, T), np.clip(starts + d, 0, T)
    c = index.opt_power[opts] * (P[n, hi] - P[n, lo])
    if Q is not None:
        c = c + np.einsum("kr,kr->k", index.usage[j], Q[n, hi] - Q[n, lo])
    return np.asarray(c, dtype=float)


def _fixed_costs(index: Index, opts: IntArray, starts: IntArray) -> FloatArray:
    """The price-free part of :func:`_start_costs` [money]: latency and tardiness."""
    j, d = index.opt_job[opts], index.opt_dur[opts]
    return np.asarray(index.opt_latency_cost[opts] + index.tardiness_cost(j, starts + d),
                      dtype=float)


def _option_costs(index: Index, pi: FloatArray, mu: FloatArray | None, opts: IntArray
                  ) -> tuple[FloatArray, IntArray]:
    """Cheapest start of every option of ``opts`` at prices ``π`` and ``μ``: its cost
    [money] (``inf`` without a feasible start) and the start (the earliest of the
    cheapest).

    Pinned options are priced at their one start (which may lie outside 0..T); the others
    over the starts of their window within the horizon only, in chunks of options of
    similar window width (:data:`_CELLS` (option, start) cells at once), so the work is the
    number of start columns, not options × slots.
    """
    T = index.T
    R = len(index.resources)
    P, Q = _prefix(index, pi, mu)
    oc = np.full(opts.size, np.inf)  # best cost per option
    os_ = np.zeros(opts.size, dtype=np.int64)  # its start
    pin = index.pinned[index.opt_job[opts]]
    if pin.any():  # pinned options: their one start (may lie outside 0..T)
        po = opts[pin]
        s = index.pinned_start[index.opt_job[po]]
        oc[pin] = _start_costs(index, P, Q, po, s)
        os_[pin] = s
    free = np.nonzero(~pin)[0]
    if not free.size or T == 0:
        return oc, os_
    fo_all = opts[free]
    lo = np.maximum(index.opt_earliest[fo_all], 0).astype(np.int64)
    width = np.maximum(0, np.minimum(index.opt_latest[fo_all], T - 1) - lo + 1)
    order = np.argsort(-width, kind="stable")
    a = 0
    while a < order.size:
        w = int(width[order[a]])
        if w <= 0:
            break  # the rest have no start within the horizon
        ch = order[a:a + max(1, _CELLS // w)]
        a += ch.size
        fo = fo_all[ch]
        fj, fn, fd = index.opt_job[fo], index.opt_node[fo], index.opt_dur[fo]
        S = lo[ch][:, None] + np.arange(w)[None, :]
        ok = np.arange(w)[None, :] < width[ch][:, None]
        S = np.minimum(S, T - 1)
        ok &= index.avail_run[fn[:, None], S] >= fd[:, None]
        end = np.minimum(S + fd[:, None], T)
        c = (index.opt_power[fo][:, None] * (P[fn[:, None], end] - P[fn[:, None], S])
             + index.opt_latency_cost[fo][:, None]
             + index.tardiness_cost(fj[:, None], S + fd[:, None]))
        if Q is not None:
            for r in range(R):
                u = index.usage[fj, r]
                if u.any():
                    c = c + u[:, None] * (Q[fn[:, None], end, r] - Q[fn[:, None], S, r])
        c = np.where(ok, c, np.inf)
        k = np.argmin(c, axis=1)
        rows = np.arange(fo.size)
        oc[free[ch]] = c[rows, k]
        os_[free[ch]] = S[rows, k]
    return oc, os_


@dataclass
class _Minima:
    """Every job at its cheapest placement at some prices (:func:`_jobs_min`).

    Attributes
    ----------
    total : float
        Σ over jobs of the cheaper of that placement and the drop penalty [money] (``inf``
        when a must-run job has no placement).
    kw, used : (N, T), (N, T, R) float
        Load [kW] and resource use [units] of the placements that are not dropped.
    best, option, start : (J,) arrays
        Every job's cheapest placement (:func:`job_minima`).
    oc, os_ : (O,) arrays
        Every option's cheapest start and its cost [money] (:func:`_option_costs`).
    """

    total: float
    kw: FloatArray
    used: FloatArray
    best: FloatArray
    option: IntArray
    start: IntArray
    oc: FloatArray
    os_: IntArray


def _drops(index: Index) -> FloatArray:
    """(J,) drop penalty of every job, ``inf`` where it must run or is pinned [money]."""
    drop = np.where(np.isnan(index.drop_penalty), np.inf, index.drop_penalty)
    drop[index.pinned] = np.inf
    return np.asarray(drop, dtype=float)


def _load_of(index: Index, opts: IntArray, starts: IntArray, weight: FloatArray,
             ends: IntArray | None = None) -> tuple[FloatArray, FloatArray]:
    """Load (N, T) [kW] and resource use (N, T, R) of the options ``opts`` running from
    ``starts`` to ``ends`` (default: for their duration), each counted ``weight`` times."""
    T, R = index.T, len(index.resources)
    job_kw = np.zeros((index.N, T + 1))
    use = np.zeros((index.N, T + 1, R))
    if opts.size:
        j, n = index.opt_job[opts], index.opt_node[opts]
        end = starts + index.opt_dur[opts] if ends is None else ends
        s_lo, s_hi = np.clip(starts, 0, T), np.clip(np.maximum(end, starts), 0, T)
        p = index.opt_power[opts] * weight
        u = index.usage[j] * weight[:, None]
        np.add.at(job_kw, (n, s_lo), p)
        np.add.at(job_kw, (n, s_hi), -p)
        np.add.at(use, (n, s_lo), u)
        np.add.at(use, (n, s_hi), -u)
    return np.cumsum(job_kw, axis=1)[:, :T], np.cumsum(use, axis=1)[:, :T, :]


def _jobs_min(index: Index, pi: FloatArray, mu: FloatArray | None = None,
              idle_share: FloatArray | None = None) -> _Minima:
    """Σ over jobs of the cheapest placement at energy prices ``π`` (N, T) [money/kW] and
    resource prices ``μ`` (N, T, R) [money per unit and slot] (or the drop penalty), the
    load (N, T) and the resource use (N, T, R) of those placements (:class:`_Minima`)."""
    opts = np.arange(index.opt_job.size)
    oc, os_ = _option_costs(index, pi, _with_share(index, mu, idle_share), opts)
    best, arg, start = _job_best(index, opts, oc, os_)
    drop = _drops(index)
    per_job = np.minimum(best, drop)
    runs = np.nonzero(np.isfinite(best) & (best <= drop))[0]
    kw, used = _load_of(index, arg[runs], start[runs], np.ones(runs.size))
    # a must-run job without placement: infeasible problem
    total = float(per_job.sum()) if np.isfinite(per_job).all() else math.inf
    return _Minima(total, kw, used, best, arg, start, oc, os_)
