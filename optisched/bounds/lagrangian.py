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

import numpy as np

from optisched.arrays import FloatArray, IntArray
from optisched.backends import highs as hs
from optisched.dispatch import dispatch_groups
from optisched.formulations.dispatch_lp import build_dispatch_lp
from optisched.index import Index

__all__ = ["capacity_bound", "idle_share", "improved_bound", "job_minima", "lagrangian_bound",
           "load_duals", "subgradient_step"]

log = logging.getLogger(__name__)

_BLOCK = 16
"""Standalone nodes per block-diagonal LP."""
_CHUNK = 20000
"""Options per vectorized chunk of the job minimum."""


def _group_lp(index: Index, nodes: IntArray, load: FloatArray,
              feeders: list[int]) -> tuple[float, FloatArray] | None:
    """LP dispatch of ``nodes`` at ``load``: optimal value [money] and balance duals (K, T).

    The LP of :func:`~optisched.formulations.dispatch_lp.build_dispatch_lp` (the exact
    dispatch's), solved by a fresh HiGHS with its default options. Returns None when the
    LP is not solved to optimality.
    """
    lp = build_dispatch_lp(index, nodes, load, feeders)
    h = hs.load(lp.model)
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
                   capacity_iterations: int = 30) -> float | None:
    """The best Lagrangian bound over ``load`` and points towards relaxed loads [money].

    Each round takes the duals ``π`` at the current reference load, the load of the
    relaxed solution at ``π`` (every job at its cheapest placement or dropped,
    sleeping nodes on where ``π < 0`` or a job runs) and tries the midpoint of the
    two as the next reference; the bound is valid at every reference load, so the
    maximum is a bound. Then, when ``upper`` (a feasible plan's objective) is given,
    the resource capacities are dualized at the best reference's ``π``
    (:func:`capacity_bound`). Stops at ``deadline`` (``time.perf_counter()``): a round
    starts only when the last evaluation's time still fits before it.
    """
    tr = time.perf_counter()
    first = _bound_at(index, load)
    if first is None:
        return None
    round_s = time.perf_counter() - tr
    best, pi, relaxed, const = first
    best_pi, best_const = pi, const
    ref = np.asarray(load, dtype=float)
    for _ in range(rounds):
        tr = time.perf_counter()
        if tr + round_s >= deadline:
            break
        trial = 0.5 * (ref + relaxed)
        res = _bound_at(index, trial)
        round_s = time.perf_counter() - tr
        if res is None:
            break
        if res[0] > best:
            best, ref, best_pi, best_const = res[0], trial, res[1], res[3]
        relaxed = res[2]
    if upper is not None and capacity_iterations > 0 and time.perf_counter() < deadline:
        best = max(best, capacity_bound(index, best_pi, best_const, upper,
                                        capacity_iterations, deadline))
    return _risk_scaled(index, best)


def _bound_at(index: Index, load: FloatArray
              ) -> tuple[float, FloatArray, FloatArray, float] | None:
    """Bound at reference ``load``, the duals ``π`` (N, T), the relaxed solution's load and
    the part of the bound that does not depend on jobs."""
    got = load_duals(index, load)
    if got is None:
        return None
    pi, const = got
    total, job_kw, _ = _jobs_min(index, pi, idle_share=idle_share(index, pi))
    avail = index.available
    on_relaxed = avail & ((~index.can_sleep)[:, None] | (pi < 0) | (job_kw > 0))
    relaxed = on_relaxed * index.idle_kw[:, None] + job_kw
    return const + total, pi, relaxed, const


def load_duals(index: Index, load: FloatArray) -> tuple[FloatArray, float] | None:
    """The energy duals ``π`` (N, T) [money/kW] at reference ``load`` and the part of the
    Lagrangian bound that does not depend on jobs [money].

    That part is ``Σ_g [V_g(L*) − π·L*]`` over the dispatch groups, the idle draw at ``π``
    (every available slot of a node that cannot sleep, the negative ones of a sleeper) and
    the switching of nodes that cannot sleep (module docstring). Every term belongs to one
    dispatch group or node, so the part of a set of whole dispatch groups can be computed on
    an index restricted to them (``optisched.solvers.distributed`` does, per partition).

    Returns
    -------
    (pi, const) or None
        None when a dispatch LP at ``load`` could not be solved.
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
    cap = index.capacity[:, None, :] * index.available[:, :, None]
    share = idle_share(index, pi)
    mu = np.zeros(cap.shape)
    best = -math.inf
    theta, stall = 0.2, 0
    for _ in range(iterations + 1):
        total, _, used = _jobs_min(index, pi, mu, share)
        value = const + total - float(np.sum(mu * cap))
        if value > best + 1e-9 * max(1.0, abs(best)):
            best, stall = value, 0
        else:
            stall += 1
            if stall >= 3:
                theta, stall = theta / 2.0, 0
        if time.perf_counter() >= deadline or not math.isfinite(value):
            break
        nxt = subgradient_step(mu, used, cap, theta, upper, value)
        if nxt is None:
            break
        mu = nxt
    return best


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
    [money] (``inf`` without a feasible start) and the start."""
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
    pinned = index.pinned
    s_grid = np.arange(T)
    for a in range(0, opts.size, _CHUNK):
        sl = slice(a, min(opts.size, a + _CHUNK))
        o = opts[sl]
        j, n = index.opt_job[o], index.opt_node[o]
        pin = pinned[j]
        if pin.any():  # pinned options: their one start (may lie outside 0..T)
            po = o[pin]
            pj, pn, pd = index.opt_job[po], index.opt_node[po], index.opt_dur[po]
            s = index.pinned_start[pj]
            lo_, hi_ = np.clip(s, 0, T), np.clip(s + pd, 0, T)
            c_pin = (index.opt_power[po] * (P[pn, hi_] - P[pn, lo_])
                     + index.opt_latency_cost[po] + index.tardiness_cost(pj, s + pd))
            if Q is not None:
                c_pin += np.einsum("kr,kr->k", index.usage[pj], Q[pn, hi_] - Q[pn, lo_])
            oc[sl][pin] = c_pin
            os_[sl][pin] = s
        f = ~pin
        if not f.any():
            continue
        fo, fj, fn, fd = o[f], j[f], n[f], index.opt_dur[o[f]]
        S = s_grid[None, :]
        ok = (S >= index.opt_earliest[fo][:, None]) & (S <= index.opt_latest[fo][:, None])
        ok &= index.avail_run[fn][:, :T] >= fd[:, None]
        end = np.minimum(S + fd[:, None], T)
        energy = P[fn[:, None], end] - P[fn[:, None], S]
        c = (index.opt_power[fo][:, None] * energy + index.opt_latency_cost[fo][:, None]
             + index.tardiness_cost(fj[:, None], S + fd[:, None]))
        if Q is not None:
            for r in range(R):
                u = index.usage[fj, r]
                if u.any():
                    c = c + u[:, None] * (Q[fn[:, None], end, r] - Q[fn[:, None], S, r])
        c = np.where(ok, c, np.inf)
        k = np.argmin(c, axis=1)
        oc[sl][f] = c[np.arange(fo.size), k]
        os_[sl][f] = k
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
