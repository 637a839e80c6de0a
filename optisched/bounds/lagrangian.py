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
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from optisched.arrays import FloatArray, IntArray
from optisched.backends import highs as hs
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


_JobsMin = tuple[float, FloatArray, FloatArray]
"""What :func:`_jobs_min` returns: the jobs' summed minimum [money], their load (N, T)
[kW] and resource use (N, T, R)."""


def improved_bound(index: Index, load: FloatArray, rounds: int = 3,
                   deadline: float = math.inf, upper: float | None = None,
                   capacity_iterations: int = 30) -> float | None:
    """The best Lagrangian bound over ``load`` and points towards relaxed loads [money].

    Each round takes the duals ``π`` at the current reference load, the load of the
    relaxed solution at ``π`` (every job at its cheapest placement or dropped,
    sleeping nodes on where ``π < 0`` or a job runs) and tries the midpoint of the
    two as the next reference; the bound is valid at every reference load, so the
    maximum is a bound. When ``upper`` (a feasible plan's objective) is given, the
    resource capacities are dualized at every reference's ``π`` too
    (:func:`capacity_bound`, ``capacity_iterations`` steps shared by the passes) and the
    relaxed load is taken at those prices (:func:`bound_parts`). Stops at ``deadline``
    (``time.perf_counter()``): a pass or step starts only when the last one's time still
    fits before it; None when the first pass's dispatch LPs are not done by then.
    """
    parts = bound_parts(index, load, rounds, deadline, upper, capacity_iterations)
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
                capacity_iterations: int = 30, soft_deadline: float | None = None
                ) -> LagrangianParts | None:
    """:func:`improved_bound` with its terms (:class:`LagrangianParts`; with scenarios, of
    the expected cost, before :func:`improved_bound`'s risk scaling).

    Passes alternate with capacity prices: at every reference load the dispatch duals
    ``π`` (:func:`load_duals`), then (with ``upper``) ``ceil(capacity_iterations /
    (rounds + 1))`` subgradient steps of the capacity prices ``μ`` at that ``π``
    (:func:`capacity_bound`, from ``μ = 0``, then from the last pass's best prices), then
    the next reference load halfway to the
    relaxed load at ``(π, μ)`` (every job at its cheapest placement at those prices, so
    jobs crowding a node-slot spread out); a load that cannot be dispatched (above a
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
        Capacity-price steps [steps].
    soft_deadline : float, optional
        ``time.perf_counter()`` after which nothing starts but the first pass (which
        stops only at ``deadline``).

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
    warm: FloatArray | None = None
    pass_s = 0.0  # time of the last pass [s]
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
            cp, n = _capacity_search(index, pi, const, upper if upper is not None else value,
                                     per_pass, soft, jm, warm)
            steps += n
            if cp.mu is not None:  # better at capacity prices: the relaxed load there too
                point = (cp.value, cp.const, pi, cp.mu, const)
                relaxed = _relaxed_load(index, pi, cp.kw)
                warm = cp.mu
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
    """More capacity steps at fixed duals ``π`` (N, T) from prices ``start`` (N, T, R)
    (from ``μ = 0`` without them): the best point of :func:`capacity_bound`'s search as
    :class:`LagrangianParts`; None when not even its first evaluation fits before
    ``deadline`` (each is expected to take the last one's time, at first
    ``step_seconds`` [s]).

    Parameters
    ----------
    index : Index
        Compiled problem.
    pi : (N, T) float
        Energy duals of a pass [money/kW per slot].
    base : float
        That pass's job-free part [money] (``LagrangianParts.base``).
    upper : float
        A feasible plan's objective [money] (target of the steps).
    iterations : int
        Steps [steps].
    deadline : float
        ``time.perf_counter()`` after which no step starts.
    start : (N, T, R) float, optional
        Prices of the second evaluation (e.g. ``LagrangianParts.mu``).
    """
    cp, steps = _capacity_search(index, pi, base, upper, iterations, deadline, None, start,
                                 from_zero=start is None, step_seconds=step_seconds)
    if not steps:
        return None
    job_best = job_minima(index, pi, cp.mu, idle_share(index, pi))[0]
    return LagrangianParts(cp.value, cp.const, job_best, 0, steps, pi, cp.mu, base)


def _bound_at(index: Index, load: FloatArray, deadline: float = math.inf
              ) -> tuple[float, FloatArray, FloatArray, float, _JobsMin] | None:
    """Bound at reference ``load``, the duals ``π`` (N, T), the relaxed solution's load,
    the part of the bound that does not depend on jobs and the jobs' minimum
    (:func:`_jobs_min`) (None: a dispatch LP not solved, or ``deadline`` passed before the
    last)."""
    got = load_duals(index, load, deadline)
    if got is None:
        return None
    pi, const = got
    jm = _jobs_min(index, pi, idle_share=idle_share(index, pi))
    return const + jm[0], pi, _relaxed_load(index, pi, jm[1]), const, jm


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
    ``const + Σ_j min(drop_j, min_(n,s) [π-cost + Σ_{t,r} μ_ntr·use_jr + latency +
    tardiness]) − Σ_{n,t,r} μ_ntr · capacity_nr`` (capacity relaxed into the objective:
    for a plan within capacity the added term is ≤ 0). ``μ`` follows projected
    subgradient steps of Polyak size ``θ (upper − LB) / ‖g‖²``, ``g = use − capacity``,
    with ``θ`` starting at 0.2 (measured better than 1, 0.05, 0.01 on the medium instance)
    and halved after 3 steps without a better bound; the best bound is returned.

    Parameters
    ----------
    index : Index
        Compiled problem.
    pi : (N, T) float
        Energy duals of :func:`_bound_at`.
    const : float
        The part of the bound that does not depend on jobs [money].
    upper : float
        Objective of a feasible plan [money] (target of the step size).
    iterations : int
        Subgradient steps.
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


def _capacity_search(index: Index, pi: FloatArray, const: float, upper: float,
                     iterations: int, deadline: float, first: _JobsMin | None = None,
                     start: FloatArray | None = None, from_zero: bool = True,
                     step_seconds: float = 0.0) -> tuple[_CapacityPoint, int]:
    """The subgradient search of :func:`capacity_bound`: its best point and the steps run.

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
            total, kw, used = first
        else:
            if time.perf_counter() + took >= deadline:
                break
            t_eval = time.perf_counter()
            total, kw, used = _jobs_min(index, pi, mu, share)
            took = time.perf_counter() - t_eval
        held = float(np.sum(np.where(mu > 0, mu * cap, 0.0)))
        value = const + total - held
        if k or not zero:
            steps += 1
        if math.isfinite(top.value):
            better = value > top.value + 1e-9 * max(1.0, abs(top.value))
        else:  # the first value (a tolerance around -inf would be nan)
            better = value > top.value
        if better:
            top = _CapacityPoint(value, const - held, None if (k == 0 and zero) else mu, kw)
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
        nxt = subgradient_step(mu, used, cap, theta, upper, value)
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
    R = len(index.resources)
    if share is not None:  # per-GPU price of waking a node, added to the GPU's price
        mu = share[:, :, None] * (np.arange(R) == 0)[None, None, :] + (
            0.0 if mu is None else mu)
    oc, os_ = _option_costs(index, pi, mu, opts)
    best = np.full(index.J, np.inf)
    arg = np.full(index.J, -1, dtype=np.int64)
    start = np.zeros(index.J, dtype=np.int64)
    if opts.size:
        jobs = index.opt_job[opts]
        order = np.lexsort((oc, jobs))  # per job, cheapest option first
        first = np.ones(opts.size, dtype=bool)
        first[1:] = jobs[order][1:] != jobs[order][:-1]
        lead = order[first]
        best[jobs[lead]] = oc[lead]
        arg[jobs[lead]] = opts[lead]
        start[jobs[lead]] = os_[lead]
    return best, arg, start


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
    P = np.zeros((index.N, T + 1))
    P[:, 1:] = np.cumsum(pi, axis=1)
    Q = None
    if mu is not None:
        Q = np.zeros((index.N, T + 1, R))
        Q[:, 1:, :] = np.cumsum(mu, axis=1)
    oc = np.full(opts.size, np.inf)  # best cost per option
    os_ = np.zeros(opts.size, dtype=np.int64)  # its start
    pin = index.pinned[index.opt_job[opts]]
    if pin.any():  # pinned options: their one start (may lie outside 0..T)
        po = opts[pin]
        pj, pn, pd = index.opt_job[po], index.opt_node[po], index.opt_dur[po]
        s = index.pinned_start[pj]
        lo_, hi_ = np.clip(s, 0, T), np.clip(s + pd, 0, T)
        c_pin = (index.opt_power[po] * (P[pn, hi_] - P[pn, lo_])
                 + index.opt_latency_cost[po] + index.tardiness_cost(pj, s + pd))
        if Q is not None:
            c_pin += np.einsum("kr,kr->k", index.usage[pj], Q[pn, hi_] - Q[pn, lo_])
        oc[pin] = c_pin
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


def _jobs_min(index: Index, pi: FloatArray, mu: FloatArray | None = None,
              idle_share: FloatArray | None = None
              ) -> tuple[float, FloatArray, FloatArray]:
    """Σ over jobs of the cheapest placement at energy prices ``π`` (N, T) [money/kW] and
    resource prices ``μ`` (N, T, R) [money per unit and slot] (or the drop penalty), the
    load (N, T) [kW] and the resource use (N, T, R) of those placements."""
    T = index.T
    R = len(index.resources)
    best, arg, os_ = job_minima(index, pi, mu, idle_share)
    pinned = index.pinned
    drop = np.where(np.isnan(index.drop_penalty), np.inf, index.drop_penalty)
    drop[pinned] = np.inf
    per_job = np.minimum(best, drop)
    job_kw = np.zeros((index.N, T + 1))
    use = np.zeros((index.N, T + 1, R))
    runs = np.nonzero(np.isfinite(best) & (best <= drop))[0]
    if runs.size:
        o = arg[runs]
        n, s, d = index.opt_node[o], os_[runs], index.opt_dur[o]
        s_lo, s_hi = np.clip(s, 0, T), np.clip(s + d, 0, T)
        np.add.at(job_kw, (n, s_lo), index.opt_power[o])
        np.add.at(job_kw, (n, s_hi), -index.opt_power[o])
        np.add.at(use, (n, s_lo), index.usage[runs])
        np.add.at(use, (n, s_hi), -index.usage[runs])
    kw = np.cumsum(job_kw, axis=1)[:, :T]
    used = np.cumsum(use, axis=1)[:, :T, :]
    if not np.isfinite(per_job).all():
        return math.inf, kw, used  # a must-run job without placement: infeasible problem
    return float(per_job.sum()), kw, used
