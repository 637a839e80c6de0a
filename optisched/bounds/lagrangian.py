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
a bound at every iteration.
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
           "improved_bound", "job_minima", "lagrangian_bound", "load_duals", "subgradient_step"]

log = logging.getLogger(__name__)

_BLOCK = 16
"""Standalone nodes per block-diagonal LP."""
_CELLS = 2_000_000
"""(option, start) cells per vectorized chunk of the job minimum."""


def _group_lp(index: Index, nodes: IntArray, load: FloatArray,
              feeders: list[int]) -> tuple[float, FloatArray] | None:
    """LP dispatch of ``nodes`` at ``load``: optimal value [money] and balance duals (K, T).

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
    return hs.info(h).objective, lp.balance_duals(hs.solution(h).row_duals())


def _scenario_group_lp(index: Index, nodes: IntArray, load: FloatArray,
                       feeders: list[int]) -> tuple[float, FloatArray] | None:
    """:func:`_group_lp`; with several scenarios (beyond SPEC v1) the expectation of every
    scenario's LP value and duals, ``Σ_σ w_σ V_σ``: convex in the load as a weighted sum of
    convex functions, with the weighted duals as its subgradient."""
    if index.S == 1:
        return _group_lp(index, nodes, load, feeders)
    value, duals = 0.0, np.zeros((nodes.size, index.T))
    for s, w in enumerate(index.scenarios.weight):
        res = _group_lp(index.scenario(s), nodes, load, feeders)
        if res is None:
            return None
        value += float(w) * res[0]
        duals += float(w) * res[1]
    return value, duals


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
    """

    value: float
    const: float
    best: FloatArray
    passes: int
    steps: int
    pi: FloatArray
    mu: FloatArray | None
    base: float


def bound_parts(index: Index, load: FloatArray, rounds: int = 3,
                deadline: float = math.inf, upper: float | None = None,
                capacity_iterations: int = 30, soft_deadline: float | None = None,
                placement: tuple[IntArray, IntArray] | None = None
                ) -> LagrangianParts | None:
    """:func:`improved_bound` with its terms (:class:`LagrangianParts`; with scenarios, of
    the expected cost, before :func:`improved_bound`'s risk scaling).

    Passes alternate with capacity prices: at every reference load the dispatch duals
    ``π`` (:func:`load_duals`), then (with ``upper``) up to ``ceil(capacity_iterations /
    (rounds + 1))`` evaluations of the job LP's column generation at that ``π``
    (:func:`capacity_bound`: the best capacity prices ``μ`` for that ``π``; its master
    seeded with ``placement``'s starts, the cheapest starts at ``μ = 0`` and the last
    pass's master columns), then the next reference load halfway to the job LP's
    solution load (within capacity; the relaxed load at ``(π, μ)`` when the master
    still has artificial columns in use); a load that cannot be dispatched (above a
    feeder's headroom) is replaced by a point half as far. Every ``(π, μ ≥ 0)`` gives a
    valid bound, so the best one is returned.

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
    top: tuple[float, float, FloatArray, FloatArray | None, float] | None = None  # + base
    passes = steps = 0
    step, last = 0.5, ref
    # the job LP's columns: the plan's first, then the last pass's master
    cols = None if placement is None else placement_columns(index, *placement)
    pass_s = 0.0  # time of the last pass [s]
    needs: BoolArray | None = None  # the job LP's overloadable chains, once per index
    for _ in range(rounds + 1):
        tr = time.perf_counter()
        if passes and tr + pass_s >= soft:  # a pass starts only when the last one's fits
            break
        got = _bound_at(index, ref, soft if passes else deadline)
        pass_s = time.perf_counter() - tr
        if got is None:
            if not passes or step < 0.1:
                break
            # the midpoint load is not dispatchable (e.g. above a feeder's headroom):
            # half as far from the last reference
            ref, step = 0.5 * (ref + last), 0.5 * step
            continue
        value, pi, relaxed, const, jm = got
        passes += 1
        point: tuple[float, float, FloatArray, FloatArray | None, float] = (
            value, const, pi, None, const)
        if per_pass > 0 and math.isfinite(value) and time.perf_counter() < soft:
            if needs is None:
                needs = _overloadable_chains(index)
            cp, n, cols = _capacity_search(index, pi, const,
                                           upper if upper is not None else value, per_pass,
                                           soft, jm, columns=cols, needs=needs)
            steps += n
            if cp.mu is not None:  # better at capacity prices: the relaxed load there too
                point = (cp.value, cp.const, pi, cp.mu, const)
                relaxed = _relaxed_load(index, pi, cp.kw)
        if top is None or point[0] > top[0]:
            top = point
        last = ref
        ref = (1.0 - step) * ref + step * relaxed
    if top is None:
        return None
    value, const, pi, mu, base = top
    job_best = job_minima(index, pi, mu, idle_share(index, pi))[0]
    return LagrangianParts(value, const, job_best, passes, steps, pi, mu, base)


def capacity_parts(index: Index, pi: FloatArray, base: float, upper: float, iterations: int,
                   deadline: float = math.inf, start: FloatArray | None = None,
                   step_seconds: float = 0.0) -> LagrangianParts | None:
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
    """
    cp, steps, _ = _capacity_search(index, pi, base, upper, iterations, deadline, None, start,
                                    from_zero=start is None, step_seconds=step_seconds)
    if not steps:
        return None
    job_best = job_minima(index, pi, cp.mu, idle_share(index, pi))[0]
    return LagrangianParts(cp.value, cp.const, job_best, 0, steps, pi, cp.mu, base)


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


def load_duals(index: Index, load: FloatArray, deadline: float = math.inf
               ) -> tuple[FloatArray, float] | None:
    """The energy duals ``π`` (N, T) [money/kW] at reference ``load`` and the part of the
    Lagrangian bound that does not depend on jobs [money].

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
    N, T = index.N, index.T
    load = np.asarray(load, dtype=float)
    groups, _ = dispatch_groups(index)
    pi = np.zeros((N, T))
    const = 0.0

    def coupled(g: IntArray) -> bool:
        f = int(index.feeder_of[g[0]])
        return f >= 0 and bool(np.isfinite(index.feeder_headroom[f]).any())

    singles = [int(g[0]) for g in groups if not coupled(g)]
    blocks = [np.array(singles[b:b + _BLOCK], dtype=np.int64)
              for b in range(0, len(singles), _BLOCK)]
    for nodes in [*(g for g in groups if coupled(g)), *blocks]:
        if time.perf_counter() >= deadline:
            log.debug("load duals: deadline before the dispatch LPs of %d nodes", nodes.size)
            return None
        feeders = sorted({int(f) for f in index.feeder_of[nodes] if f >= 0
                          and np.isfinite(index.feeder_headroom[f]).any()})
        res = _scenario_group_lp(index, nodes, load, feeders)
        if res is None:
            return None
        value, duals = res
        pi[nodes] = duals
        const += value - float(np.sum(duals * load[nodes]))
    # on/off: fixed for nodes that cannot sleep; each slot alone for sleepers
    avail = index.available
    idle_pi = pi * index.idle_kw[:, None] * avail
    fixed = ~index.can_sleep
    const += float(idle_pi[fixed].sum()) + float(np.minimum(idle_pi[~fixed], 0.0).sum())
    on = avail & fixed[:, None]
    prev = np.concatenate([index.initially_on[:, None], on[:, :-1]], axis=1)
    ups = (on & ~prev).sum(axis=1)
    downs = (~on & prev).sum(axis=1) + (index.end_off & on[:, -1])
    const += float(np.sum((ups * index.startup_cost + downs * index.shutdown_cost)[fixed]))
    return pi, const


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
    return _capacity_search(index, pi, const, upper, iterations, deadline)[0].value


@dataclass
class _CapacityPoint:
    """A point of the capacity search: its bound, job-free part (with ``−μ·capacity``)
    [money], prices ``μ`` (None: 0) and the relaxed jobs' load there (N, T) [kW]."""

    value: float
    const: float
    mu: FloatArray | None
    kw: FloatArray


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


def _capacity_search(index: Index, pi: FloatArray, const: float, upper: float,
                     iterations: int, deadline: float, first: _Minima | None = None,
                     start: FloatArray | None = None, from_zero: bool = True,
                     step_seconds: float = 0.0, columns: _Columns | None = None,
                     needs: BoolArray | None = None
                     ) -> tuple[_CapacityPoint, int, _Columns | None]:
    """The capacity search of :func:`capacity_bound`: its best point, the evaluations run
    at capacity prices and the job LP's start columns (to seed the next search).

    Column generation (:func:`_capacity_lp`) first; the subgradient steps
    (:func:`_subgradient_search`) only for the iterations it leaves when HiGHS fails on
    its master. The first evaluation is at ``μ = 0`` (``first``: its :func:`_jobs_min`,
    when known; left out when not ``from_zero``), the next at ``start`` when given. An
    evaluation or iteration starts only when the time the last one took (at first
    ``step_seconds``) ends before ``deadline``. ``needs``: the index's
    :func:`_overloadable_chains` when the caller has them (computed here without).
    """
    top, steps, ok, took, cols = _capacity_lp(index, pi, const, iterations, deadline, first,
                                              start, from_zero, step_seconds, columns, needs)
    if ok or steps >= iterations or not math.isfinite(top.value):
        return top, steps, cols
    log.debug("capacity LP failed after %d evaluations: subgradient steps", steps)
    sub, more = _subgradient_search(index, pi, const, upper, iterations - steps, deadline,
                                    None, top.mu, from_zero=top.mu is None, step_seconds=took)
    return (sub if sub.value > top.value else top), steps + more, cols


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
    """The restricted master of the job LP of :func:`capacity_bound`, one HiGHS model that
    columns (and the rows they touch) are appended to and re-solved.

    Each master is solved by interior point without crossover (by simplex when that ends
    without optimality): measured on generate large seed 0 (1,000 jobs, 16 k starts in
    the master), 1.1 s per master against 3.3 s by warm dual simplex and 9.5 s by warm
    primal simplex (the master is degenerate), and its central duals price better.

    The capacity rows are written in *flow form* (as :mod:`optisched.bounds.aggregate`
    writes its class capacities): for a node ``n`` and resource ``r`` a running-use column
    ``0 ≤ L_ntr ≤ cap_nr`` per slot (0 where the node is unavailable) and a row per slot
    ``L_nt − L_n,t−1 − Σ_{starts at t} u x + Σ_{ends at t} u x = 0``, so a start column has
    two entries per resource instead of one per slot it runs (the LP is the same: ``L_nt``
    is the use in slot ``t``). The capacity prices are ``μ_nt = ψ_nt − ψ_n,t+1`` of the
    flow rows' duals ``ψ`` (``ψ_nT = 0``): the reduced cost of a start is then
    ``c_jos + Σ_{t ∈ [s, s+d)} μ_nt u_jr − σ_j`` and that of ``L_nt`` is ``−μ_nt``.

    Columns: ``y_j`` of every job (cost ``drop_j``; ``big_m`` where it must run or is
    pinned: an artificial column, so the master is always feasible), then the start
    columns and the ``L`` columns of every (node, resource) chain, appended with the
    first start column that touches a chain (only chains with an :func:`_overloadable`
    slot; a chain no column touches has no price). Rows: the assignment row of every job,
    then the chains' flow rows. The start columns' costs are read from ``prefix``, the
    prefix sums (:func:`_prefix`) of ``π`` and of the idle share at ``μ = 0`` (the caller
    builds them once), the chains that get flow rows from ``needs``
    (:func:`_overloadable_chains`).
    """

    def __init__(self, index: Index, prefix: tuple[FloatArray, FloatArray | None],
                 big_m: float, needs: BoolArray) -> None:
        ix = self.index = index
        J, T, R = ix.J, ix.T, len(ix.resources)
        cap = ix.capacity[:, None, :] * ix.available[:, :, None]
        self.cap = np.moveaxis(cap, 2, 1).reshape(ix.N * R, T)  # (n·R + r, t)
        self.needs = needs  # the chains with an overloadable slot (:func:`_overloadable_chains`)
        self.chain = np.full(ix.N * R, -1, dtype=np.int64)  # first flow row of a chain
        self.chains = np.zeros(0, dtype=np.int64)
        self.P, self.Q = prefix  # of π with the idle share (:func:`_prefix`), μ = 0
        drop = _drops(ix)
        self.artificial = ~np.isfinite(drop)
        y_cost = np.where(self.artificial, big_m, drop)
        eye = sp.identity(J, format="csc")
        self.h = hs.load(hs.LinearModel(A=eye, cost=y_cost, col_lb=np.zeros(J),
                                        col_ub=np.ones(J), row_lo=np.ones(J),
                                        row_hi=np.ones(J)))
        hs.configure(self.h, solver="ipm", presolve=False, crossover=False)
        self.n_rows = self.n_cols = J
        self.opt = np.zeros(0, dtype=np.int64)
        self.start = np.zeros(0, dtype=np.int64)
        self.pos = np.zeros(0, dtype=np.int64)  # master column of every start column
        self.seen = ColumnSet()  # the (option, start) pairs in the master

    def costs(self, opts: IntArray, starts: IntArray) -> FloatArray:
        """``c_jos(π)`` of the start columns (energy at π, idle share, latency, tardiness)."""
        return _start_costs(self.index, self.P, self.Q, opts, starts)

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
        A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(self.n_rows, o.size))
        hs.add_cols(self.h, self.costs(o, s), np.zeros(o.size), np.ones(o.size), A)
        self.pos = np.concatenate([self.pos, self.n_cols + np.arange(o.size)])
        self.n_cols += o.size
        self.opt = np.concatenate([self.opt, o])
        self.start = np.concatenate([self.start, s])
        return int(o.size)

    def solve(self, deadline: float
              ) -> tuple[float, FloatArray, FloatArray, FloatArray, float] | None:
        """Solve the master: its value [money], the capacity prices ``μ ≥ 0``
        (N, T, R) of the flow rows' duals, the assignment duals ``σ`` (J,), the start
        columns' values and the artificial columns' sum; None when not solved to
        optimality before ``deadline``."""
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
            psi = y[ix.J:].reshape(self.chains.size, T)
            nxt = np.concatenate([psi[:, 1:], np.zeros((self.chains.size, 1))], axis=1)
            mu[self.chains] = np.maximum(0.0, psi - nxt)
        art = float(x[:ix.J][self.artificial].sum())
        mu3 = np.moveaxis(mu.reshape(ix.N, R, T), 1, 2)
        return hs.info(h).objective, np.ascontiguousarray(mu3), y[:ix.J], x[self.pos], art


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


def _capacity_lp(index: Index, pi: FloatArray, const: float, iterations: int,
                 deadline: float, first: _Minima | None = None,
                 start: FloatArray | None = None, from_zero: bool = True,
                 step_seconds: float = 0.0, columns: _Columns | None = None,
                 needs: BoolArray | None = None
                 ) -> tuple[_CapacityPoint, int, bool, float, _Columns | None]:
    """Column generation on the job LP of :func:`capacity_bound` at duals ``π``.

    The evaluations at ``μ = 0`` (``first`` when given; when ``from_zero``) and at
    ``start`` seed the master (:func:`_seeds`) with ``columns`` (e.g. a plan's starts, the
    last pass's master). Each iteration solves the master (:class:`_JobLp`; its flow rows
    on the chains ``needs``, the index's :func:`_overloadable_chains`, computed here when
    None), evaluates
    the bound by :func:`_jobs_min` at the smoothed prices ``μ̂ + θ (μ − μ̂)``
    (:data:`CAPACITY_DAMPING`; ``μ`` the master's, ``μ̂`` the best so far) — every job's
    cheapest start over *all* its starts there — and appends the cheapest start of each
    job's :data:`CAPACITY_SEEDS` cheapest options at that point whose reduced cost at the
    master's duals ``c_jos + μ·u_jos − σ_j`` is below ``−tol``
    (:data:`~optisched.bounds.aggregate.REDUCED_COST_TOL`, relative to the master's value
    per job); when none is, the same at the master's own ``μ`` (one more evaluation).
    It stops when nothing prices out at ``μ`` or the best bound reaches the master's
    value (converged: the job LP's optimum), after ``iterations`` evaluations at nonzero
    prices, or when the next iteration would not end before ``deadline`` (each is
    expected to take the last one's time, at first ``step_seconds``; HiGHS is also
    stopped at ``deadline``).

    Every evaluated ``μ ≥ 0`` gives a valid bound whatever the master's accuracy
    (Farley's bound: the master only proposes prices and columns), so the best point is
    a bound at every iteration.

    Returns
    -------
    (point, steps, ok, took, columns)
        The best point, the evaluations at capacity prices, False when HiGHS failed on a
        master (not at its deadline), the last evaluation's time [s] and the master's
        start columns (None without a master).
    """
    share = idle_share(index, pi)
    cap = index.capacity[:, None, :] * index.available[:, :, None]
    top = _CapacityPoint(-math.inf, const, None, np.zeros((index.N, index.T)))
    took, steps = step_seconds, 0
    seeds: list[_Columns] = [] if columns is None else [columns]

    def fits(seconds: float) -> bool:
        return time.perf_counter() + seconds < deadline

    def evaluate(mu: FloatArray | None) -> tuple[_Minima, float]:
        nonlocal top, took
        t = time.perf_counter()
        m = _jobs_min(index, pi, mu, share)
        took = time.perf_counter() - t
        held = 0.0 if mu is None else float(np.sum(mu * cap))
        value = const + m.total - held
        if _better(value, top.value):
            top = _CapacityPoint(value, const - held, mu, m.kw)
        return m, value

    if from_zero or start is None:
        if first is None:
            if not fits(took):
                return top, 0, True, took, columns
            first = evaluate(None)[0]
        elif _better(const + first.total, top.value):
            top = _CapacityPoint(const + first.total, const, None, first.kw)
        seeds.append(_seeds(index, first))
    if start is not None and top.value != math.inf:  # (inf: a must-run job cannot run)
        if not fits(took):
            return top, steps, True, took, columns
        m0, _ = evaluate(np.asarray(np.maximum(start, 0.0), dtype=float))
        steps += 1
        seeds.append(_seeds(index, m0))
    if not math.isfinite(top.value) or steps >= iterations or not seeds:
        return top, steps, True, took, columns
    J = index.J
    so = np.concatenate([c[0] for c in seeds])
    ss = np.concatenate([c[1] for c in seeds])
    if not fits(took):
        return top, steps, True, took, (so, ss)
    t_it = time.perf_counter()
    drop = _drops(index)
    at_pi = _prefix(index, pi, _with_share(index, None, share))  # the start costs at μ = 0
    big_m = 10.0 * max(1.0, float(np.max(np.abs(drop[np.isfinite(drop)]), initial=0.0)),
                      float(np.max(np.abs(_start_costs(index, *at_pi, so, ss)), initial=0.0)))
    lp = _JobLp(index, at_pi, big_m, _overloadable_chains(index) if needs is None else needs)
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
        value, mu, sigma, x, art = got
        value += const  # the master's value plus the job-free part: ≥ the job LP's bound
        log.debug("capacity LP it %d: master %.6f (artificial %.3g), bound %.6f, %d starts",
                  steps, value, art, top.value, lp.opt.size)
        last_kw = _load_of(index, lp.opt, lp.start, x)[0] if art <= 1e-6 else None
        if art <= 1e-6 and top.value >= value - CONVERGED_GAP * max(1.0, abs(value)):
            converged = True
            break
        tol = REDUCED_COST_TOL * max(1.0, abs(value) / max(1, J))
        at_master = _prefix(index, pi, _with_share(index, mu, share))
        # Wentges smoothing: the prices halfway from the best point towards the master's
        base = np.zeros_like(mu) if top.mu is None else top.mu
        m, _ = evaluate(np.asarray(base + CAPACITY_DAMPING * (mu - base)))
        steps += 1
        entered = lp.add(*_priced(index, m, at_master, sigma, tol))
        if not entered and steps < iterations and fits(took):  # mispriced: the master's own
            m, _ = evaluate(mu)
            steps += 1
            entered = lp.add(*_priced(index, m, at_master, sigma, tol))
            if not entered:
                converged = art <= 1e-6  # nothing prices out: the master is the LP optimum
                break
        if not entered:
            break
        took = time.perf_counter() - t_it
        t_it = time.perf_counter()
    if last_kw is not None and top.mu is not None:  # the LP's load: within capacity
        top = _CapacityPoint(top.value, top.const, top.mu, last_kw)
    log.debug("capacity LP: bound %.6g after %d evaluations, %d starts, %d rows%s", top.value,
              steps, lp.opt.size, lp.n_rows - J, " (converged)" if converged else "")
    return top, steps, ok, took, (lp.opt, lp.start)


def _subgradient_search(index: Index, pi: FloatArray, const: float, upper: float,
                        iterations: int, deadline: float, first: _Minima | None = None,
                        start: FloatArray | None = None, from_zero: bool = True,
                        step_seconds: float = 0.0) -> tuple[_CapacityPoint, int]:
    """Projected subgradient steps of the capacity prices (:func:`capacity_bound`'s
    fallback): the best point and the steps run.

    The first evaluation is at ``μ = 0`` (the bound without capacity prices; ``first``:
    its :func:`_jobs_min`, when known; left out when not ``from_zero``), the next at
    ``start`` when given (N, T, R), then subgradient steps. An evaluation starts only
    when the time it is expected to take (the last one's, at first ``step_seconds``) ends
    before ``deadline``.
    """
    cap = index.capacity[:, None, :] * index.available[:, :, None]
    share = idle_share(index, pi)
    mu = np.zeros(cap.shape)
    zero = from_zero or start is None
    if not zero:
        assert start is not None
        mu = np.asarray(np.maximum(start, 0.0), dtype=float)
    top = _CapacityPoint(-math.inf, const, None, np.zeros((index.N, index.T)))
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
            top = _CapacityPoint(value, const - held, None if (k == 0 and zero) else mu, m.kw)
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
    (:func:`_prefix`): energy, resource charges, latency and tardiness."""
    T = index.T
    j, n, d = index.opt_job[opts], index.opt_node[opts], index.opt_dur[opts]
    lo, hi = np.clip(starts, 0, T), np.clip(starts + d, 0, T)
    c = (index.opt_power[opts] * (P[n, hi] - P[n, lo]) + index.opt_latency_cost[opts]
         + index.tardiness_cost(j, starts + d))
    if Q is not None:
        c = c + np.einsum("kr,kr->k", index.usage[j], Q[n, hi] - Q[n, lo])
    return np.asarray(c, dtype=float)


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
