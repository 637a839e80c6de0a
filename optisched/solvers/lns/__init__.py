"""``lns``: adaptive large-neighbourhood search around exact sub-MILPs.

The algorithm (``formulations/lns.md`` has the full statement):

1. **Start.** ``options.warm_start`` when given (a :class:`Plan` of
   this problem), else the ``greedy`` plan (``baseline`` when greedy is missing or
   fails). A start without flows gets the exact dispatch. When neither heuristic
   finds a plan, the search runs on the *penalty problem* (must-run jobs droppable at
   a large penalty ``M``) until every must-run job is placed (else ``no_solution``).
2. **Bound.** The Lagrangian bound of :mod:`optisched.bounds.lagrangian` (at the start
   plan's load and, at the end, at the best plan's load, each improved by midpoint
   rounds and capacity subgradient steps), and the LP relaxation
   (:func:`optisched.bounds.lp_bound`) in a child process when the model is small
   enough for the budget. The best is kept.
3. **Loop** until the time limit, ``max_iterations`` or a proof of optimality: pick
   a neighbourhood kind by roulette over adaptive weights, build a neighbourhood
   (nodes ``S``, freed jobs ``F``) of the current size, build it as a sub-problem
   (:mod:`optisched.solvers.lns_sub`: other jobs on ``S`` pinned, feeder headroom
   reduced by the incumbent net import of the feeder's nodes outside ``S``), solve it
   with the sub-solver (``highs``, warm-started from the incumbent; ``cpsat`` or
   ``greedy`` when asked or when ``highs`` is not registered) within a time limit
   that never exceeds the remaining budget, splice its placement and flows of ``S``
   back, price the whole plan with :func:`optisched.evaluate.evaluate` and accept it
   when it is feasible and strictly cheaper (then ``S`` and its coupled feeders are
   re-dispatched exactly by :func:`optisched.dispatch.dispatch_load` and the cheaper
   verified version kept).
4. **Adaptation.** A kind's weight moves towards its reward (relative improvement
   per second, or per iteration when ``max_iterations`` is set so runs are
   reproducible); the neighbourhood size grows after a sub-solve proven optimal
   and shrinks after one cut by its time limit.

Options: :class:`~optisched.solvers.options.LnsOptions`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from optisched.bounds import BoundProcess, improved_bound, lagrangian_bound
from optisched.dispatch import dispatch, dispatch_load
from optisched.domain import Problem
from optisched.evaluate import Evaluation, evaluate
from optisched.index import Index, compile_index
from optisched.plan import Plan, Status
from optisched.solvers.base import SolveOptions, dispatched_plan
from optisched.solvers.lns.restricted import RestrictedMasterProcess
from optisched.solvers.lns_sub import SubProblem, build_subproblem
from optisched.solvers.options import LNS_KINDS, CpsatOptions, GreedyOptions, LnsOptions

__all__ = ["DEFAULT_TIME_LIMIT", "KINDS", "solve_lns"]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_TIME_LIMIT = 60.0
"""Budget when ``time_limit`` is not given [s]."""
KINDS = LNS_KINDS
"""Neighbourhood kinds (see ``docs/algorithms/lns.md``)."""
MIN_SIZE = 3
"""Smallest neighbourhood [freed jobs]."""
LP_DISAGREE = 0.05
"""Jobs whose incumbent placement has LP value ≤ ``1 −`` this are candidates of kind ``lp``."""
INITIAL_SIZE = 8
"""First neighbourhood size [freed jobs] (option ``size``)."""
SUB_LIMIT_MIN, SUB_LIMIT_MAX = 1.0, 3.0
"""Default sub-solve limit: ``budget / 20`` clipped to these [s]. Measured on 100 × 20 × 96
instances: sub-MILPs of 4-8 freed jobs close at HiGHS's root in 0.05-0.7 s, those of 12
freed jobs on 12 nodes stay in the root cut loop for more than 4 s without improving the
warm start, so short limits and the size adaptation pay more than long limits."""
GROW, SHRINK = 1.3, 0.7
"""Size factors after a sub-solve proven optimal / cut by its time limit."""
ALPHA = 0.3
"""Weight of the newest reward in a kind's weight."""
WEIGHT_FLOOR = 0.05
"""Smallest weight of a kind, so every kind keeps being tried."""
GREEDY_MOVES = 300
"""Local-search moves of the greedy start when ``max_iterations`` is set (so the start,
too, does not depend on machine speed)."""
CAPACITY_ITERATIONS = 10
"""Subgradient steps of :func:`~optisched.bounds.lagrangian.capacity_bound`."""
BOUND_ROUNDS = 4
"""Rounds of :func:`~optisched.bounds.lagrangian.improved_bound` at the start and the end."""
_REL = 1e-9
"""Relative improvement below which a plan does not count as better."""
_SUB_GAP = 1e-6
"""Relative MIP gap of the sub-solves."""
BOUND_MAX_COLUMNS = 2_000_000
"""Start columns above which ``lp_bound="auto"`` starts no bound process (the Lagrangian
bound only): column generation builds the full model, 2.6 GB at 741 k start columns
(generate large); ICON sample09 (5.2 M) took the machine to 23 GB."""
LP_BOUND_MAX_COLUMNS = 300_000
"""Start columns ``Σ options' start windows`` up to which ``lp_bound="auto"`` runs the LP
(measured: ``tests/_problems`` 100 jobs × 20 nodes × 96 slots, an LP of 88k columns in all,
15-26 s with HiGHS dual simplex; ``generate("medium")`` has 16k start columns, ``"large"``
747k)."""
LP_EARLY_COLUMNS = 5_000
"""Start columns from which the bound process starts before the first iteration (smaller
problems wait for it: the first sub-solve often proves them optimal)."""
LP_BOUND_MIN_BUDGET = 10.0
"""Smallest time limit [s] at which ``lp_bound="auto"`` starts the LP process (spawning it
and importing optisched costs about 1-2 s)."""


@dataclass
class _Stats:
    tried: int = 0
    improved: int = 0
    gain: float = 0.0
    seconds: float = 0.0
    weight: float = 1.0


@dataclass
class _Hood:
    kind: str
    nodes: IntArray
    free: IntArray


@dataclass
class _State:
    best: Plan
    objective: float
    bound: float | None
    size: float
    stats: dict[str, _Stats] = field(default_factory=dict)
    seen: set[tuple[bytes, bytes]] = field(default_factory=set)
    restricted: int = 0
    """Restricted-master plans taken as the incumbent."""


# --------------------------------------------------------------------------- start


def _with_flows(problem: Problem, index: Index, plan: Plan) -> Plan | None:
    """``plan`` with exact flows when it has none; None when they do not exist."""
    if plan.flows is not None:
        return plan
    return dispatched_plan(index, "lns", plan.node, plan.start)


def _start_plan(problem: Problem, index: Index, options: SolveOptions,
                budget: float) -> tuple[Plan, str]:
    """The start plan and where it came from (status infeasible when none)."""
    given = options.warm_start
    params = options.params_as(LnsOptions)
    if given is not None:
        if not isinstance(given, Plan):
            raise TypeError("the warm_start must be a Plan")
        plan = _with_flows(problem, index, given)
        if plan is None:
            raise ValueError("the start plan has no feasible dispatch")
        ev = evaluate(problem, plan, index)
        if not ev.feasible:
            raise ValueError("the start plan fails the evaluator: "
                             + "; ".join(str(v) for v in ev.violations[:3]))
        return plan, "given"
    tl = (params.greedy_time_limit if params.greedy_time_limit is not None
          else min(10.0, max(0.2, 0.05 * budget)))
    try:
        from optisched.solvers.greedy import run_greedy
    except ImportError:  # pragma: no cover - greedy ships with the package
        run_greedy = None  # type: ignore[assignment]
    if run_greedy is not None:
        gparams = GreedyOptions()
        if params.max_iterations is not None:  # reproducible: end by moves
            gparams = GreedyOptions(iterations=GREEDY_MOVES)
            tl = max(tl, 3600.0)
        gopts = SolveOptions(time_limit=tl, seed=options.seed, threads=options.threads,
                             params=gparams)
        plan = run_greedy(problem, index, gopts)
        if plan.status.has_plan and evaluate(problem, plan, index).feasible:
            return plan, "greedy"
    from optisched.solvers.baseline import solve_baseline

    plan = solve_baseline(problem, index, SolveOptions(seed=options.seed))
    if plan.status.has_plan and plan.flows is not None:
        res = dispatch(index, plan.node, plan.start, plan.flows.on)
        if res.feasible and res.flows is not None:
            plan.flows = res.flows
        return plan, "baseline"
    packed = _packing_start(problem, index, options, budget)
    if packed is not None and packed.status.has_plan:
        return packed, "packing"
    partial = packed
    if partial is not None:  # CP-SAT's packing model failed: its full model would too
        return partial, "none"
    packed = _cpsat_packing_start(problem, index, options, budget)
    if packed is not None:
        return packed, "cpsat-intervals"
    return plan, "none"


def _packing_start(problem: Problem, index: Index, options: SolveOptions,
                   budget: float) -> Plan | None:
    """A start from :func:`optisched.solvers.packing.pack` (placement and resources only).

    CP-SAT's packing model, else list scheduling and window repair, within
    ``packing_time_limit`` (default ``0.4·budget``) [s]; the surrogate energy objective
    for at most ``min(30, budget/10)`` s after a CP-SAT packing. The cheapest packing by
    exact dispatch and evaluation is kept. When no packing is complete, the best partial
    one (status ``no_solution``, ``info["partial"]``) is returned for the penalty phase;
    None when ortools is missing, nothing is found, or the dispatch is infeasible (power
    limits the packing model leaves out).
    """
    try:
        from optisched.solvers.packing import pack
    except ImportError:  # pragma: no cover - ortools is a dependency
        return None
    given = options.params_as(LnsOptions).packing_time_limit
    limit = given if given is not None else max(1.0, 0.4 * budget)
    packed = pack(index, limit, options.seed, improve_limit=min(30.0, max(0.5, budget / 10.0)))
    best: Plan | None = None
    if packed.partial is not None:  # the penalty phase may start from it
        partial = dispatched_plan(index, "lns", *packed.partial, status=Status.NO_SOLUTION)
        if partial is not None:
            partial.info["partial"] = True
        return partial
    for node, start in packed.found:
        plan = dispatched_plan(index, "lns", node, start)
        if plan is None:
            continue
        ev = evaluate(problem, plan, index)
        if ev.feasible and (best is None or ev.objective < _objective(best)):
            plan.objective, best = ev.objective, plan
    return best


def _cpsat_packing_start(problem: Problem, index: Index, options: SolveOptions,
                         budget: float) -> Plan | None:
    """A start from CP-SAT's full interval model when the packing model fails.

    Uses at most a third of the budget; None when ortools is missing or it finds
    nothing.
    """
    try:
        from optisched.solvers.cpsat import solve_cpsat
    except ImportError:  # pragma: no cover - ortools is a dependency
        return None
    opts = SolveOptions(time_limit=max(1.0, budget / 3.0), seed=options.seed,
                        params=CpsatOptions(variant="intervals", hint=False))
    plan = solve_cpsat(problem, index, opts)
    if plan.status.has_plan and evaluate(problem, plan, index).feasible:
        return plan
    return None


def _penalty_problem(problem: Problem, index: Index) -> tuple[Problem, float]:
    """``problem`` with every must-run job droppable at a large penalty ``M`` [money].

    ``M = 10 · R`` where ``R`` over-estimates the cost of any plan's other terms: import at
    the highest |import cost| of the idle draw and of every job at its most energy-hungry
    option, demand charges on all of it, every switch in every slot, every finite drop
    penalty, the largest latency cost and tardiness over the whole horizon.
    """
    dt, T = index.dt, index.T
    energy = np.zeros(index.J)
    if index.opt_job.size:
        np.maximum.at(energy, index.opt_job, index.opt_power * index.opt_dur * dt)
    peak = np.zeros(index.J)
    if index.opt_job.size:
        np.maximum.at(peak, index.opt_job, index.opt_power)
    lat = np.zeros(index.J)
    if index.opt_job.size:
        np.maximum.at(lat, index.opt_job, index.opt_latency_cost)
    top = float(np.abs(index.import_cost).max(initial=0.0))
    R = (top * (float(index.idle_kw.sum()) * T * dt + float(energy.sum()))
         + float(np.sum(index.demand_charge * (index.idle_kw + peak.sum())))
         + T * float(np.sum(index.startup_cost + index.shutdown_cost))
         + float(np.nansum(index.drop_penalty)) + float(lat.sum())
         + float(index.tardiness_rate.sum()) * T + 1.0)
    M = 10.0 * R
    jobs = [j.model_copy(update={"drop_penalty": M}) if j.must_run and not j.pinned else j
            for j in problem.jobs]
    return problem.model_copy(update={"jobs": jobs}), M


# --------------------------------------------------------------------------- bound


def _start_columns(index: Index) -> int:
    """Number of (option, feasible start) pairs, the size of the time-indexed model."""
    width = np.maximum(0, index.opt_latest - index.opt_earliest + 1)
    return int(width.sum())


class _LpSlot:
    """Where the bound process lives once started (it starts after the first iteration,
    so problems the search proves optimal at once never pay for starting it)."""

    def __init__(self, wanted: bool, time_limit: float, method: str = "lp",
                 restricted: bool = False) -> None:
        self.wanted = wanted
        self.time_limit = time_limit
        self.method = method
        self.restricted = restricted
        self.job: BoundProcess | None = None

    def start(self, problem: Problem) -> None:
        """Start the bound process for ``problem`` (once)."""
        if self.wanted and self.job is None:
            if self.restricted:
                self.job = RestrictedMasterProcess(problem, self.time_limit, self.method)
            else:
                self.job = BoundProcess(problem, self.time_limit, self.method)

    def share_incumbent(self, plan: Plan) -> None:
        """Give the restricted master (if any) the search's best placement."""
        if isinstance(self.job, RestrictedMasterProcess):
            self.job.share_incumbent(plan.node, plan.start)

    def restricted_solution(self) -> tuple[IntArray, IntArray] | None:
        """The restricted master's newest placement not yet read (None without one)."""
        if isinstance(self.job, RestrictedMasterProcess):
            return self.job.restricted_solution()
        return None

    def stop(self) -> None:
        """Terminate the process if it runs."""
        if self.job is not None:
            self.job.stop()


def _max_bound(a: float | None, b: float | None) -> float | None:
    vals = [v for v in (a, b) if v is not None and math.isfinite(v)]
    return max(vals) if vals else None


# --------------------------------------------------------------------------- neighbourhoods


class _Builder:
    """Builds neighbourhoods of the incumbent."""

    def __init__(self, problem: Problem, index: Index, rng: np.random.Generator) -> None:
        self.problem = problem
        self.index = index
        self.rng = rng
        ix = index
        self.movable = ~ix.pinned
        # eligible nodes per job
        self.elig = np.zeros((ix.J, ix.N), dtype=bool)
        self.elig[ix.opt_job, ix.opt_node] = True
        # static per-option score: mean import cost over the window times energy + latency
        pref = np.zeros((ix.N, ix.T + 1))
        pref[:, 1:] = np.cumsum(ix.import_cost, axis=1)
        a = np.clip(ix.opt_earliest, 0, ix.T)
        b = np.clip(ix.opt_latest + ix.opt_dur, 0, ix.T)
        mean = (pref[ix.opt_node, b] - pref[ix.opt_node, a]) / np.maximum(b - a, 1)
        self.opt_score = ix.opt_power * ix.opt_dur * ix.dt * mean + ix.opt_latency_cost
        regions = [n.region for n in problem.nodes]
        self.regions: dict[str, IntArray] = {}
        for r in sorted(set(regions)):
            self.regions[r] = np.array([k for k, x in enumerate(regions) if x == r],
                                       dtype=np.int64)
        self.feeders = [np.nonzero(ix.feeder_of == f)[0].astype(np.int64)
                        for f in range(len(ix.feeder_ids))]
        self.feeders = [m for m in self.feeders if m.size]
        self.lp: tuple[IntArray, ...] | None = None
        self.lp_off: FloatArray | None = None

    # incumbent statistics ---------------------------------------------------------
    def refresh(self, plan: Plan) -> None:
        """Per-node and per-job costs of the incumbent."""
        ix = self.index
        f = plan.flows
        assert f is not None
        dt = ix.dt
        self.plan = plan
        self.node_cost = (dt * np.sum(ix.import_cost * f.grid_import
                                      - ix.export_price * f.grid_export
                                      + ix.degradation[:, None] * f.discharge, axis=1)
                          + ix.demand_charge * f.grid_import.max(axis=1, initial=0.0))
        self.node_kwh = dt * f.load.sum(axis=1)
        # marginal price of load per node and slot: the import cost where the grid
        # supplies, the export price given up where PV is exported, else 0
        lam = np.where(f.grid_import > 1e-9, ix.import_cost,
                       np.where(f.grid_export > 1e-9, ix.export_price, 0.0))
        pref = np.zeros((ix.N, ix.T + 1))
        pref[:, 1:] = np.cumsum(lam * dt, axis=1)
        jc = np.zeros(ix.J)
        self.penalty = np.zeros(ix.J)
        runs = np.nonzero(plan.node >= 0)[0]
        if runs.size:
            n = plan.node[runs]
            d = ix.duration(runs, n)
            a = np.clip(plan.start[runs], 0, ix.T)
            b = np.clip(plan.start[runs] + d, 0, ix.T)
            power = ix.job_power[runs] * ix.power_factor[n]
            over = ix.latency_ms[runs, n] - ix.latency_slo[runs]
            lat = np.where(np.isfinite(over) & (over > 0),
                           ix.latency_rate[runs] * np.nan_to_num(over), 0.0)
            tard = ix.tardiness_cost(runs, plan.start[runs] + d)
            jc[runs] = power * (pref[n, b] - pref[n, a]) + lat + tard
            self.penalty[runs] = lat + tard
        dropped = np.nonzero((plan.node < 0) & ~np.isnan(ix.drop_penalty))[0]
        jc[dropped] = ix.drop_penalty[dropped]
        self.penalty[dropped] = ix.drop_penalty[dropped]
        self.job_cost = jc
        self._lp_disagreement()

    def set_lp(self, placement: tuple[IntArray, ...]) -> None:
        """The LP relaxation's start columns ``(job, node, start, value)``."""
        self.lp = placement
        self._lp_disagreement()

    def _lp_disagreement(self) -> None:
        """``1 −`` the LP value of each job's incumbent placement (dropped: of dropping)."""
        if self.lp is None:
            return
        job, node, start, value = self.lp
        plan = self.plan
        same = (node == plan.node[job]) & (start == plan.start[job])
        here = np.bincount(job[same], weights=value[same], minlength=self.index.J)
        placed = np.bincount(job, weights=value, minlength=self.index.J)
        self.lp_off = np.where(plan.node >= 0, 1.0 - here, placed)
        self.lp_off[~self.movable] = 0.0

    # helpers ---------------------------------------------------------------------
    def _jobs_on(self, nodes: IntArray) -> IntArray:
        plan = self.plan
        on = (plan.node >= 0) & np.isin(plan.node, nodes) & self.movable
        return np.nonzero(on)[0].astype(np.int64)

    def _dropped_for(self, nodes: IntArray) -> IntArray:
        plan = self.plan
        d = (plan.node < 0) & self.movable & self.elig[:, nodes].any(axis=1)
        return np.nonzero(d)[0].astype(np.int64)

    def _pick(self, items: IntArray, k: int, weights: npt.ArrayLike | None = None) -> IntArray:
        if items.size <= k:
            return np.sort(items)
        p = None
        if weights is not None:
            w = np.maximum(np.asarray(weights, dtype=float), 0.0) + 1e-12
            p = w / w.sum()
        return np.sort(self.rng.choice(items, size=k, replace=False, p=p)).astype(np.int64)

    def _node_cap(self, size: int) -> int:
        return max(2, math.ceil(size / 2))

    def _grow(self, seed_nodes: IntArray, size: int) -> IntArray:
        """``seed_nodes`` plus random others until ``size`` jobs live there or the node cap."""
        nodes = np.unique(np.asarray(seed_nodes, dtype=np.int64))
        cap = self._node_cap(size)
        for n in self.rng.permutation(self.index.N):
            have = self._jobs_on(nodes).size + self._dropped_for(nodes).size
            if have >= size or (nodes.size >= cap and have > 0):
                break
            if n not in nodes:
                nodes = np.sort(np.append(nodes, n)).astype(np.int64)
        return nodes

    def _node_hood(self, kind: str, nodes: IntArray, size: int) -> _Hood:
        jobs = np.concatenate([self._jobs_on(nodes), self._dropped_for(nodes)])
        return _Hood(kind, nodes, self._pick(jobs, size))

    def _job_hood(self, kind: str, jobs: IntArray) -> _Hood:
        """Free ``jobs``: their nodes plus one or two eligible alternatives each."""
        ix = self.index
        plan = self.plan
        nodes = set(int(n) for n in plan.node[jobs] if n >= 0)
        cap = self._node_cap(jobs.size) + len(nodes)
        for j in jobs:
            opts = ix.options_of(int(j))
            if not opts.size:
                continue
            sc = self.opt_score[opts]
            w = np.exp(-(sc - sc.min()) / max(1e-9, float(np.ptp(sc)) or 1.0))
            k = min(2, opts.size)
            for o in self._pick(opts, k, w):
                if len(nodes) < cap:
                    nodes.add(int(ix.opt_node[o]))
        arr = np.array(sorted(nodes), dtype=np.int64)
        # a freed job must have an eligible node in S, unless it may stay dropped
        ok = self.elig[jobs][:, arr].any(axis=1) | ~ix.must_run[jobs] | (plan.node[jobs] >= 0)
        return _Hood(kind, arr, jobs[ok])

    def _lp_hood(self, size: int) -> _Hood | None:
        """Jobs placed where the LP relaxation puts little weight, with the LP's nodes.

        Draws ``size`` jobs with weight ``1 − x_LP`` of their incumbent placement
        (RINS-like: where incumbent and relaxation agree nothing is freed); ``S`` is
        their nodes plus, per job, the node of its largest LP weight.
        """
        if self.lp is None or self.lp_off is None:
            return None
        cand = np.nonzero(self.lp_off > LP_DISAGREE)[0]
        if not cand.size:
            return None
        jobs = self._pick(cand, size, self.lp_off[cand])
        job, node, _, value = self.lp
        nodes = set(int(n) for n in self.plan.node[jobs] if n >= 0)
        cap = self._node_cap(jobs.size) + len(nodes)
        for j in jobs:
            mine = job == j
            if mine.any() and len(nodes) < cap:
                mass = np.bincount(node[mine], weights=value[mine], minlength=self.index.N)
                nodes.add(int(np.argmax(mass)))
        arr = np.array(sorted(nodes), dtype=np.int64)
        ix, plan = self.index, self.plan
        ok = self.elig[jobs][:, arr].any(axis=1) | ~ix.must_run[jobs] | (plan.node[jobs] >= 0)
        return _Hood("lp", arr, jobs[ok])

    # kinds -----------------------------------------------------------------------
    def available(self, kind: str) -> bool:
        """Whether ``kind`` can be drawn now (``lp`` needs the LP relaxation's solution)."""
        return kind != "lp" or self.lp is not None

    def build(self, kind: str, size: int) -> _Hood | None:
        ix = self.index
        rng = self.rng
        plan = self.plan
        if kind == "window":
            cap = self._node_cap(size)
            if ix.N <= cap:
                nodes = np.arange(ix.N, dtype=np.int64)
            else:
                nodes = np.sort(rng.choice(ix.N, size=cap, replace=False)).astype(np.int64)
            on_s = self._jobs_on(nodes)
            drop = self._dropped_for(nodes)
            total = max(1, on_s.size + drop.size)
            w = int(np.clip(round(ix.T * size / total), 2, ix.T))
            a = int(rng.integers(0, max(1, ix.T - w + 1)))
            b = a + w
            d = ix.duration(on_s, plan.node[on_s]) if on_s.size else np.zeros(0, dtype=np.int64)
            hit = on_s[(plan.start[on_s] < b) & (plan.start[on_s] + d > a)]
            dl = np.where(np.isfinite(ix.deadline[drop]), ix.deadline[drop], ix.T)
            hit_d = drop[(ix.release[drop] < b) & (dl > a)]
            return _Hood(kind, nodes, self._pick(np.concatenate([hit, hit_d]), size))
        if kind == "feeder":
            coupled = [m for m in self.feeders if np.isfinite(
                ix.feeder_headroom[ix.feeder_of[m[0]]]).any()]
            if not coupled:
                return None
            m = coupled[int(rng.integers(len(coupled)))]
            return self._node_hood(kind, self._pick(m, self._node_cap(size)), size)
        if kind == "region":
            if len(self.regions) < 2:
                return None
            keys = sorted(self.regions)
            members = self.regions[keys[int(rng.integers(len(keys)))]]
            seed = self._pick(members, min(members.size, self._node_cap(size)))
            return self._node_hood(kind, self._grow(seed, size), size)
        if kind == "worst_nodes":
            per_kwh = self.node_cost / np.maximum(self.node_kwh, 1e-9)
            busy = np.nonzero(self.node_kwh > 0)[0]
            if not busy.size:
                return None
            rank = np.argsort(np.argsort(-per_kwh[busy]))
            seed = self._pick(busy, 1, 1.0 / (1.0 + rank))
            return self._node_hood(kind, self._grow(seed, size), size)
        if kind == "random_nodes":
            return self._node_hood(kind, self._grow(np.array([int(rng.integers(ix.N))]), size),
                                   size)
        if kind == "expensive":
            cand = np.nonzero(self.movable & (self.job_cost > 0))[0]
            if not cand.size:
                return None
            return self._job_hood(kind, self._pick(cand, size, self.job_cost[cand]))
        if kind == "penalty":
            cand = np.nonzero(self.movable & (self.penalty > 0))[0]
            if not cand.size:
                return None
            return self._job_hood(kind, self._pick(cand, size, self.penalty[cand]))
        if kind == "random_jobs":
            cand = np.nonzero(self.movable)[0]
            if not cand.size:
                return None
            return self._job_hood(kind, self._pick(cand, size))
        if kind == "lp":
            return self._lp_hood(size)
        raise ValueError(f"unknown neighbourhood kind {kind!r}; known: {', '.join(KINDS)}")


# --------------------------------------------------------------------------- sub-solve


def _sub_solver(options: SolveOptions) -> str:
    from optisched.solvers import REGISTRY

    want = options.params_as(LnsOptions).sub_solver
    if want is not None:
        if want not in REGISTRY or not REGISTRY[want].available():
            raise ValueError(f"sub_solver {want!r} is not registered or not installed")
        return str(want)
    for name in ("highs", "cpsat", "greedy"):
        if name in REGISTRY and REGISTRY[name].available():
            return name
    return "greedy"


def _solve_sub(name: str, sub: SubProblem, time_limit: float, seed: int,
               threads: int | None) -> Plan:
    """Solve a sub-problem with the registered solver ``name`` (``greedy`` also unregistered)."""
    from optisched.solvers import REGISTRY, solve

    if name not in REGISTRY:
        from optisched.solvers.greedy import run_greedy

        return run_greedy(sub.problem, compile_index(sub.problem),
                          SolveOptions(time_limit=time_limit, seed=seed))
    warm = sub.warm if name in ("highs", "cpsat") else None
    return solve(sub.problem, name, time_limit=time_limit, mip_gap=_SUB_GAP, seed=seed,
                 threads=threads, warm_start=warm)


def _splice(problem: Problem, index: Index, best: Plan, sub: SubProblem,
            result: Plan) -> tuple[Plan | None, Evaluation | None]:
    """The full plan with the sub-problem's result in place, and its evaluation.

    The sub-problem's flows of ``S`` (exact dispatch within the reduced feeder
    headroom) with the incumbent flows elsewhere form a feasible plan. When it is
    better than the incumbent, the nodes of ``S`` (with their whole coupled feeders)
    are re-dispatched exactly, which never costs more, and the cheaper feasible
    version is returned. None when the spliced plan fails the evaluator.
    """
    assert best.flows is not None and result.flows is not None
    node, start = best.node.copy(), best.start.copy()
    sn = result.node
    node[sub.jobs] = np.where(sn >= 0, sub.nodes[np.maximum(sn, 0)], -1)
    start[sub.jobs] = result.start
    flows = best.flows.copy()
    flows.set_rows(sub.nodes, result.flows)
    cand = Plan(solver="lns", status=Status.FEASIBLE, job_ids=list(index.job_ids),
                node_ids=list(index.node_ids), node=node, start=start, flows=flows)
    ev = evaluate(problem, cand, index)
    if not ev.feasible:
        log.debug("spliced plan fails the evaluator: %s", ev.violations[:2])
        return None, None
    if ev.objective >= _objective(best) - _REL * max(1.0, abs(_objective(best))):
        return cand, ev
    res = dispatch_load(index, flows.load, nodes=sub.nodes)
    if res.feasible:
        flows2 = flows.copy()
        res.write_into(flows2)
        cand2 = Plan(solver="lns", status=Status.FEASIBLE, job_ids=list(index.job_ids),
                     node_ids=list(index.node_ids), node=node.copy(), start=start.copy(),
                     flows=flows2)
        ev2 = evaluate(problem, cand2, index)
        if ev2.feasible and ev2.objective <= ev.objective:
            return cand2, ev2
    return cand, ev


def _take_restricted(problem: Problem, index: Index, lp: _LpSlot, state: _State) -> bool:
    """Take the bound process's newest restricted-master plan when it is cheaper.

    Its placement gets the exact dispatch and the evaluator; True when it became the
    incumbent.
    """
    got = lp.restricted_solution()
    if got is None:
        return False
    plan = dispatched_plan(index, "lns", *got)
    if plan is None:
        return False
    ev = evaluate(problem, plan, index)
    if not ev.feasible or ev.objective >= state.objective - _REL * max(1.0, abs(state.objective)):
        return False
    plan.objective = ev.objective
    state.best, state.objective = plan, ev.objective
    state.restricted += 1
    return True


def _objective(plan: Plan) -> float:
    return math.inf if plan.objective is None else plan.objective


# --------------------------------------------------------------------------- main


def solve_lns(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    """Adaptive large-neighbourhood search (see the module docstring)."""
    t0 = time.perf_counter()
    params = options.params_as(LnsOptions)
    deadline = options.deadline(t0, DEFAULT_TIME_LIMIT)
    budget = deadline - t0
    use_lp = params.lp_bound
    columns = _start_columns(index)
    wanted = use_lp is True or (use_lp == "auto" and budget >= LP_BOUND_MIN_BUDGET
                                and columns <= BOUND_MAX_COLUMNS)
    method = "lp" if columns <= LP_BOUND_MAX_COLUMNS else "colgen"
    method = params.bound_method or method
    restricted = (method == "lp" and params.max_iterations is None
                  and params.restricted_master)
    lp = _LpSlot(bool(wanted), budget if math.isfinite(budget) else 3600.0, method, restricted)
    try:
        return _search(problem, index, options, t0, deadline, lp)
    finally:
        lp.stop()


def _penalty_phase(problem: Problem, index: Index, options: SolveOptions, t0: float,
                   deadline: float, lp: _LpSlot, why: str, partial: Plan | None = None
                   ) -> Plan:
    """Search on the penalty problem (:func:`_penalty_problem`) when no heuristic start exists.

    Greedy and baseline found no plan (e.g. tight capacity); on the penalty problem they
    do (unplaceable must-run jobs are dropped at ``M``) and the search then places the
    dropped must-run jobs through its sub-MILPs. A plan of the penalty problem that runs
    every must-run job is a plan of ``problem`` with the same cost; the penalty
    problem relaxes ``problem``, so its bounds are valid for ``problem`` too.
    """
    relaxed, M = _penalty_problem(problem, index)
    rindex = compile_index(relaxed)
    warm = None
    if partial is not None:  # list scheduling's best pass: a plan of the penalty problem
        warm = Plan(solver="lns", status=Status.FEASIBLE, job_ids=partial.job_ids,
                    node_ids=partial.node_ids, node=partial.node,
                    start=partial.start, flows=partial.flows)
    ropts = SolveOptions(time_limit=options.time_limit, mip_gap=options.mip_gap,
                         seed=options.seed, threads=options.threads, callback=None,
                         warm_start=warm, params=options.params)
    plan = _search(relaxed, rindex, ropts, t0, deadline, lp, penalty_phase=True)
    missing = [index.job_ids[j] for j in np.nonzero(index.must_run & (plan.node < 0))[0]]
    if not plan.status.has_plan or missing:
        out = Plan.empty(problem, "lns", Status.NO_SOLUTION,
                         f"no plan found: greedy and baseline failed ({why}); the search with "
                         f"must-run jobs droppable at {M:.3g} still leaves "
                         f"{', '.join(missing[:10])}{' …' if len(missing) > 10 else ''} out")
        out.info = plan.info
        return out
    plan.info["start"] = "penalty phase (" + str(plan.info.get("start")) + ")"
    plan.info["penalty"] = M
    ev = evaluate(problem, plan, index)
    plan.objective = ev.objective
    if plan.bound is not None:
        plan.bound = min(plan.bound, ev.objective)
    options.report(t0, plan.objective, plan.bound, "done")
    return plan


def _search(problem: Problem, index: Index, options: SolveOptions, t0: float, deadline: float,
            lp: _LpSlot, penalty_phase: bool = False) -> Plan:
    """The search of :func:`solve_lns` (the LP bound, if any, already running);
    ``penalty_phase``: ``problem`` is already the penalty problem."""
    params = options.params_as(LnsOptions)
    budget = deadline - t0
    max_iter = params.max_iterations
    deterministic = max_iter is not None
    rng = np.random.default_rng(options.seed)
    if _start_columns(index) >= LP_EARLY_COLUMNS:
        lp.start(problem)  # beside the start heuristics: the bound and LP guidance come sooner
    start, origin = _start_plan(problem, index, options, budget if math.isfinite(budget) else 60.0)
    if not start.status.has_plan or start.flows is None:
        if penalty_phase or not index.must_run.any():
            start.solver = "lns"
            return start
        partial = start if start.info.get("partial") else None
        return _penalty_phase(problem, index, options, t0, deadline, lp, start.message, partial)
    ev = evaluate(problem, start, index)
    best = Plan(solver="lns", status=Status.FEASIBLE, job_ids=list(index.job_ids),
                node_ids=list(index.node_ids), node=start.node.copy(), start=start.start.copy(),
                flows=start.flows.copy())
    objective = ev.objective
    best.objective = objective
    lp.share_incumbent(best)
    t_start = time.perf_counter() - t0
    options.report(t0, objective, None, f"start ({origin})")

    tb = time.perf_counter()
    bound = lagrangian_bound(index, best.flows.load) if best.flows is not None else None
    t_lag = time.perf_counter() - tb  # one evaluation of the Lagrangian bound [s]
    if bound is not None and best.flows is not None:
        more = improved_bound(index, best.flows.load, rounds=BOUND_ROUNDS,
                              deadline=min(deadline, time.perf_counter() + 0.05 * budget),
                              upper=objective, capacity_iterations=CAPACITY_ITERATIONS)
        bound = _max_bound(bound, more)
    bound_source = "lagrangian" if bound is not None else None
    options.report(t0, objective, bound, "bound")

    name = _sub_solver(options)
    kinds = list(params.kinds)
    state = _State(best=best, objective=objective, bound=bound,
                   size=(params.size if params.size is not None
                         else float(min(INITIAL_SIZE, max(index.J, 1)))))
    state.stats = {k: _Stats() for k in kinds}
    builder = _Builder(problem, index, rng)
    builder.refresh(best)
    default_sub = (max(SUB_LIMIT_MIN, min(SUB_LIMIT_MAX, budget / 20.0))
                   if math.isfinite(budget) else SUB_LIMIT_MAX)
    sub_limit = params.sub_time_limit if params.sub_time_limit is not None else default_sub
    n_movable = int((~index.pinned).sum())
    iterations = 0
    proven = False

    def optimal_now() -> bool:
        b = state.bound
        return b is not None and state.objective - b <= 1e-6 * max(1.0, abs(state.objective))

    while n_movable and not optimal_now() and not proven:
        if max_iter is not None and iterations >= max_iter:
            break
        remaining = deadline - time.perf_counter()
        if remaining < max(0.2, 2.0 * t_lag):
            break
        if iterations == 1:
            lp.start(problem)
        lp_job = lp.job
        if lp_job is not None and not deterministic and not lp_job.done:
            lpb = lp_job.poll()
            if lp_job.placement is not None and builder.lp is None:
                builder.set_lp(lp_job.placement)
                if "lp" in state.stats:  # informed: start it at the best weight
                    state.stats["lp"].weight = max(v.weight for v in state.stats.values())
            if lpb is not None and (state.bound is None or lpb > state.bound):
                state.bound, bound_source = lpb, lp.method
                options.report(t0, state.objective, state.bound, "LP bound")
                if optimal_now():
                    break
        if lp_job is not None and _take_restricted(problem, index, lp, state):
            builder.refresh(state.best)
            state.seen.clear()
            lp.share_incumbent(state.best)
            options.report(t0, state.objective, state.bound, "restricted master")
        iterations += 1
        weights = np.array([state.stats[k].weight if builder.available(k) else 0.0
                            for k in kinds])
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        st = state.stats[kind]
        size = int(min(n_movable, max(MIN_SIZE, round(state.size))))
        hood = builder.build(kind, size)
        if hood is None or not hood.free.size:
            st.weight = max(WEIGHT_FLOOR, (1 - ALPHA) * st.weight)
            continue
        key = (hood.nodes.tobytes(), np.sort(hood.free).tobytes())
        whole = hood.nodes.size == index.N and hood.free.size == n_movable
        if key in state.seen:
            st.weight = max(WEIGHT_FLOOR, (1 - ALPHA) * st.weight)
            state.size = min(n_movable, state.size * GROW)
            continue
        ts = time.perf_counter()
        sub = build_subproblem(problem, index, state.best, hood.nodes, hood.free)
        limit = min(sub_limit, max(0.1, deadline - time.perf_counter() - 0.05))
        result = _solve_sub(name, sub, limit, int(rng.integers(2**31 - 1)), options.threads)
        st.tried += 1
        solved_optimal = result.status is Status.OPTIMAL
        improved = False
        gain = 0.0
        if result.status.has_plan and result.flows is not None:
            cand, cev = _splice(problem, index, state.best, sub, result)
            if cand is not None and cev is not None:
                if cev.objective < state.objective - _REL * max(1.0, abs(state.objective)):
                    gain = state.objective - cev.objective
                    state.best, state.objective = cand, cev.objective
                    cand.objective = cev.objective
                    builder.refresh(cand)
                    lp.share_incumbent(cand)
                    state.seen.clear()
                    improved = True
                    options.report(t0, state.objective, state.bound,
                                   f"iteration {iterations}: {kind} ({hood.free.size} jobs, "
                                   f"{hood.nodes.size} nodes)")
            if whole and solved_optimal:
                proven = True
                if result.bound is not None:
                    state.bound = _max_bound(state.bound, result.bound)
                    bound_source = "sub-solve of the whole problem"
        if solved_optimal and not improved:
            state.seen.add(key)
        secs = time.perf_counter() - ts
        log.debug("it %d %s: %d jobs %d nodes -> %s in %.2fs (sub limit %.2f, %s), %s",
                  iterations, kind, hood.free.size, hood.nodes.size, result.status.value, secs,
                  limit, {k: result.info.get(k) for k in ("columns", "integers", "mip_nodes")},
                  "improved" if improved else "kept")
        st.seconds += secs
        cost = 1.0 if deterministic else max(secs, 1e-3)
        rel = gain / max(1.0, abs(state.objective))
        reward = (1.0 + min(10.0, 1e3 * rel)) / cost if improved else 0.0
        st.weight = max(WEIGHT_FLOOR, (1 - ALPHA) * st.weight + ALPHA * reward)
        if improved:
            st.improved += 1
            st.gain += gain
        if solved_optimal:
            state.size = min(n_movable, state.size * GROW)
        elif result.status.has_plan or result.status is Status.NO_SOLUTION:
            state.size = max(MIN_SIZE, state.size * SHRINK)

    # final bounds: Lagrangian at the best plan's load, the LP when it arrives in time
    if state.best.flows is not None and not optimal_now() and not proven:
        lb = improved_bound(index, state.best.flows.load, rounds=BOUND_ROUNDS,
                            deadline=math.inf if deterministic else deadline,
                            upper=state.objective, capacity_iterations=CAPACITY_ITERATIONS)
        if lb is not None and (state.bound is None or lb > state.bound):
            state.bound, bound_source = lb, "lagrangian"
    lp_job = lp.job
    if lp_job is not None and not optimal_now() and not proven:
        wait = math.inf if deterministic else deadline - time.perf_counter()
        lpb = lp_job.poll(wait=min(wait, 3600.0))
        if lpb is not None and (state.bound is None or lpb > state.bound):
            state.bound, bound_source = lpb, lp.method
    if lp_job is not None:
        _take_restricted(problem, index, lp, state)
    plan = state.best
    plan.objective = state.objective
    plan.bound = None if state.bound is None else min(state.bound, state.objective)
    plan.status = Status.OPTIMAL if (optimal_now() or proven) else Status.FEASIBLE
    if plan.status is Status.OPTIMAL and plan.bound is None:
        plan.bound = state.objective
    plan.info = {
        "start": origin,
        "start_objective": float(ev.objective),
        "iterations": iterations,
        "sub_solver": name,
        "bound_source": bound_source,
        "restricted_master": state.restricted,
        "final_size": state.size,
        "kinds": {k: {"tried": s.tried, "improved": s.improved, "gain": s.gain,
                      "seconds": s.seconds, "weight": s.weight} for k, s in state.stats.items()},
    }
    total = time.perf_counter() - t0
    plan.timings = {"build": t_start, "solve": total - t_start}
    options.report(t0, plan.objective, plan.bound, "done")
    return plan
