"""The search loop of ``lns``: start, bounds, neighbourhoods, sub-solves, adaptation.

:func:`solve_lns` decides which bound process to run beside the search
(:class:`_BoundSlot`) and runs :class:`_Search` on the problem, or on the penalty
problem (:func:`_penalty_phase`) when no heuristic finds a start plan. The package
docstring (:mod:`optisched.solvers.lns`) states the algorithm.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from optisched.arrays import FloatArray, IntArray
from optisched.bounds import BoundProcess, improved_bound, lagrangian_bound
from optisched.bounds.aggregate import linear_nodes
from optisched.bounds.pricing import start_column_count
from optisched.domain import Problem
from optisched.evaluate import evaluate
from optisched.index import Index, compile_index
from optisched.plan import Plan, Status
from optisched.scenarios import forward_selection, scenario_distances
from optisched.solvers.base import (
    SolveOptions,
    dispatched_plan,
    plan_from_placement,
    usable_cores,
)
from optisched.solvers.greedy import GreedySearch, run_greedy
from optisched.solvers.greedy.scan import default_candidates
from optisched.solvers.lns.neighbourhoods import Neighbourhood, NeighbourhoodBuilder
from optisched.solvers.lns.restricted import RestrictedMasterProcess
from optisched.solvers.lns.start import penalty_problem, start_plan
from optisched.solvers.lns.subproblem import (
    PACK_SOLVER,
    REL_TOL,
    SubProblem,
    build_subproblem,
    solve_subproblem,
    splice,
    sub_solver_name,
)
from optisched.solvers.options import GreedyOptions, LnsOptions

__all__ = ["DEFAULT_TIME_LIMIT", "MIN_SUB_LIMIT", "SUB_SCENARIOS", "improve_start_bound",
           "solve_lns", "sub_scenario_selection", "sub_solve_limit"]

log = logging.getLogger(__name__)

DEFAULT_TIME_LIMIT = 60.0
"""Budget when ``time_limit`` is not given [s]."""
MIN_SIZE = 3
"""Smallest neighbourhood [freed jobs]."""
INITIAL_SIZE = 8
"""First neighbourhood size [freed jobs] (option ``size``)."""
PACK_WORKERS = 2
"""At most this many CP-SAT workers per interval sub-solve (when no bound child takes a core
and ``threads`` is not given; ``docs/algorithms/lns.md`` §2)."""
SUB_LIMIT_MIN, SUB_LIMIT_MAX = 1.0, 3.0
"""Default sub-solve limit: ``budget / 20`` clipped to these [s]. Measured on 100 × 20 × 96
instances: sub-MILPs of 4-8 freed jobs close at HiGHS's root in 0.05-0.7 s, those of 12
freed jobs on 12 nodes stay in the root cut loop for more than 4 s without improving the
warm start, so short limits and the size adaptation pay more than long limits."""
SUB_SCENARIOS = 3
"""Scenarios a sub-problem keeps by default (option ``sub_scenarios``)."""
MIN_SUB_LIMIT = 0.1
"""Shortest sub-solve limit worth an iteration [s]."""
GROW, SHRINK = 1.3, 0.7
"""Size factors after a sub-solve proven optimal / cut by its time limit."""
ALPHA = 0.3
"""Weight of the newest measurement in the moving average of an iteration's overhead."""
LOCAL = "local"
"""The kind that runs greedy's local search on the whole problem from the incumbent."""
RATE_PRIOR = 2e-5
"""Relative gain per second an untried kind is credited with (one second's worth), so
every kind is tried early and a fruitless one falls below the others after one or two
tries. Measured improving rates on tight 200 × 10 × 288 and ICON sample07 are about
1e-5-1e-4 per second."""
RATE_DECAY = 0.9
"""Factor on a kind's past gain and seconds at each of its tries (a memory of about ten
tries)."""
RATE_FLOOR = 0.25
"""Smallest draw weight of a kind: this share of the best kind's, divided by the number of
kinds (the kinds at the floor together are drawn at most a quarter as often as the best),
so every kind keeps being tried."""
EMPTY_COST = 0.5
"""Cost a kind is charged when it offers no neighbourhood or one already solved [s]."""
CAPACITY_ITERATIONS = 10
"""Evaluations at capacity prices of :func:`~optisched.bounds.lagrangian.capacity_bound`
(its column generation), shared by the passes."""
BOUND_ROUNDS = 4
"""Rounds of :func:`~optisched.bounds.lagrangian.improved_bound` at the start and the end."""
BOUND_MAX_COLUMNS = 2_000_000
"""Start columns above which the bound child does not build the full model (``colgen``
builds it: 2.6 GB at 741 k start columns, generate large; ICON sample09, 5.2 M, took the
machine to 23 GB): it computes the class-aggregated LP when every node is linear, else
the implicit column generation (neither holds the full model)."""
LAG_CELLS_PER_SECOND = 1_400_000
"""Start columns one Lagrangian evaluation prices per second (measured: tight 1,000 × 50 ×
288, 5.5 M start columns, 4.0 s at load 9 on 2 cores)."""
LAG_SHARE = 0.1
"""Largest share of the budget one Lagrangian evaluation may be expected to take."""
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
    dgain: float = 0.0
    """Decayed relative gain of its tries (``RATE_DECAY`` per try; starts at the prior)."""
    dsecs: float = 1.0
    """Decayed cost of its tries [s, or iterations when deterministic]."""

    def add(self, secs: float, gain: float | None, cost: float, rel_gain: float) -> None:
        """One more try of ``secs`` seconds that gained ``gain`` (None: nothing), counted
        and recorded in the rate at ``cost`` and ``rel_gain`` (:meth:`record`)."""
        self.tried += 1
        self.seconds += secs
        if gain is not None:
            self.improved += 1
            self.gain += gain
        self.record(cost, rel_gain)

    def record(self, cost: float, rel_gain: float) -> None:
        """One more try of ``cost`` that gained ``rel_gain`` (relative to the objective)."""
        self.dgain = RATE_DECAY * self.dgain + rel_gain
        self.dsecs = RATE_DECAY * self.dsecs + cost

    @property
    def rate(self) -> float:
        """Estimated relative gain per second (per iteration when deterministic)."""
        return self.dgain / max(self.dsecs, 1e-9)


def _draw_weights(stats: list[_Stats]) -> FloatArray:
    """Roulette weights of ``stats``: each one's :attr:`_Stats.rate`, at least
    :data:`RATE_FLOOR` times the best (so every one keeps being tried)."""
    rates = np.array([s.rate for s in stats])
    top = float(rates.max(initial=0.0))
    if top <= 0.0:
        return np.ones(len(stats))
    return np.maximum(rates, RATE_FLOOR * top / len(stats))


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


# --------------------------------------------------------------------------- bound


class _BoundSlot:
    """Where the bound process lives once started (it starts after the first iteration,
    so problems the search proves optimal at once never pay for starting it)."""

    def __init__(self, wanted: bool, time_limit: float, method: str = "lp",
                 restricted: bool = False, aggregate_first: bool = False) -> None:
        self.wanted = wanted
        self.time_limit = time_limit
        self.method = method
        self.restricted = restricted
        self.aggregate_first = aggregate_first
        self.job: BoundProcess | None = None

    def start(self, problem: Problem) -> None:
        """Start the bound process for ``problem`` (once)."""
        if self.wanted and self.job is None:
            kind = RestrictedMasterProcess if self.restricted else BoundProcess
            self.job = kind(problem, self.time_limit, self.method, self.aggregate_first)

    @property
    def source(self) -> str:
        """The method of the bound process's best bound so far (its own method before it
        has written one)."""
        got = self.job.source if self.job is not None else None
        return got or self.method

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


def _take_restricted(problem: Problem, index: Index, lp: _BoundSlot, state: _State) -> bool:
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
    if not ev.feasible or ev.objective >= state.objective - REL_TOL * max(1.0,
                                                                          abs(state.objective)):
        return False
    plan.objective = ev.objective
    state.best, state.objective = plan, ev.objective
    state.restricted += 1
    return True


def bound_method(index: Index) -> str | None:
    """The bound child's method for ``index`` (``docs/algorithms/lns.md`` §5): ``lp`` up to
    :data:`LP_BOUND_MAX_COLUMNS` start columns, ``colgen`` up to :data:`BOUND_MAX_COLUMNS`
    (both build the full model); beyond, ``aggregate`` when every node is linear
    (:func:`~optisched.bounds.aggregate.linear_nodes`), else ``implicit``, and None (no
    bound child) with several scenarios."""
    columns = start_column_count(index)
    if columns <= LP_BOUND_MAX_COLUMNS:
        return "lp"
    if columns <= BOUND_MAX_COLUMNS:
        return "colgen"
    if linear_nodes(index).all():
        return "aggregate"
    # the implicit master prices one scenario: with several, no child beyond the full model
    return "implicit" if index.S == 1 else None


def sub_scenario_selection(problem: Problem, index: Index, k: int | None
                           ) -> tuple[list[int], FloatArray] | None:
    """The scenarios the sub-problems keep, and their weights (option ``sub_scenarios``).

    None (every scenario) when the problem has at most ``k`` (default
    :data:`SUB_SCENARIOS`); else fast forward selection of ``k``
    (:func:`optisched.scenarios.forward_selection` on
    :func:`optisched.scenarios.scenario_distances`), the dropped scenarios' weights moved
    to their nearest kept one. A sub-problem on them is solved ``S/k`` times smaller; the
    spliced plan is priced on every scenario, so only true improvements are taken.
    """
    keep = SUB_SCENARIOS if k is None else int(k)
    if index.S <= keep:
        return None
    weights = np.array([sc.weight for sc in problem.scenarios.values()], dtype=float)
    kept, new = forward_selection(scenario_distances(problem), weights, keep)
    log.debug("sub-problems keep scenarios %s of %d", kept, index.S)
    return kept, np.asarray(new / new.sum(), dtype=float)


def improve_start_bound(lp: _BoundSlot, linear: bool, deterministic: bool) -> bool:
    """Whether the start's Lagrangian bound is improved (:func:`improved_bound`, up to 5 %
    of the budget) before the first iteration.

    Not when the bound child computes the class-aggregated LP (``linear``: every node is
    linear, and the child's method is ``aggregate`` or it runs the aggregated LP first):
    that LP is the larger bound there and comes from the child, so the rounds only delay
    the first iteration (tight 200 × 10 × 288 seed 7 at 300 s: about 15 s, an improved
    Lagrangian value of 10,430 against the aggregated LP's 10,789;
    ``docs/algorithms/lns.md`` §5). Reproducible runs improve it always (they do not
    read the child); the improved bound at the end is kept.
    """
    aggregated = lp.method == "aggregate" or lp.aggregate_first
    return deterministic or not (lp.wanted and linear and aggregated)


def sub_solve_limit(sub_limit: float, left: float, overhead: float, t_lag: float
                    ) -> float | None:
    """The time limit of the next sub-solve [s], None when no iteration fits.

    An iteration takes its sub-solve's limit plus ``overhead`` (its measured time beyond
    the limit), and the final Lagrangian bound takes ``t_lag`` (one evaluation): the
    sub-solve gets ``min(sub_limit, left − overhead − t_lag − 0.05)``, and no iteration
    starts when that is below :data:`MIN_SUB_LIMIT`.

    Parameters
    ----------
    sub_limit : float
        The configured sub-solve limit [s].
    left : float
        Time to the deadline [s].
    overhead, t_lag : float
        Measured seconds (see above).
    """
    limit = min(sub_limit, left - overhead - t_lag - 0.05)
    return limit if limit >= MIN_SUB_LIMIT else None


# --------------------------------------------------------------------------- main


def solve_lns(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    """Adaptive large-neighbourhood search (see :mod:`optisched.solvers.lns`)."""
    t0 = time.perf_counter()
    params = options.params_as(LnsOptions)
    deadline = options.deadline(t0, DEFAULT_TIME_LIMIT)
    budget = deadline - t0
    use_lp = params.lp_bound
    wanted = use_lp is True or (use_lp == "auto" and budget >= LP_BOUND_MIN_BUDGET)
    method = params.bound_method or bound_method(index)
    wanted = wanted and method is not None
    restricted = (method == "lp" and params.max_iterations is None
                  and params.restricted_master)
    lp = _BoundSlot(bool(wanted), budget if math.isfinite(budget) else 3600.0, method or "lp",
                    restricted, aggregate_first=params.bound_method is None)
    try:
        return _search(problem, index, options, t0, deadline, lp)
    finally:
        lp.stop()


def _penalty_phase(problem: Problem, index: Index, options: SolveOptions, t0: float,
                   deadline: float, lp: _BoundSlot, why: str, partial: Plan | None = None
                   ) -> Plan:
    """Search on the penalty problem (:func:`~optisched.solvers.lns.start.penalty_problem`)
    when no heuristic start exists.

    Greedy and baseline found no plan (e.g. tight capacity); on the penalty problem they
    do (unplaceable must-run jobs are dropped at ``M``) and the search then places the
    dropped must-run jobs through its sub-MILPs. A plan of the penalty problem that runs
    every must-run job is a plan of ``problem`` with the same cost; the penalty
    problem relaxes ``problem``, so its bounds are valid for ``problem`` too.
    """
    relaxed, M = penalty_problem(problem, index)
    rindex = compile_index(relaxed)
    warm = None
    if partial is not None:  # list scheduling's best pass: a plan of the penalty problem
        assert partial.flows is not None  # a dispatched packing (start._packing_start)
        warm = plan_from_placement(relaxed, rindex, "lns", Status.FEASIBLE, partial.node,
                                   partial.start, partial.flows)
    ropts = dataclasses.replace(options, callback=None, warm_start=warm)
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
            lp: _BoundSlot, penalty_phase: bool = False) -> Plan:
    """The search of :func:`solve_lns` (the LP bound, if any, already running);
    ``penalty_phase``: ``problem`` is already the penalty problem."""
    budget = deadline - time.perf_counter()  # the penalty phase starts late: what is left
    if start_column_count(index) >= LP_EARLY_COLUMNS:
        lp.start(problem)  # beside the start heuristics: the bound and LP guidance come sooner
    start, origin = start_plan(problem, index, options,
                               budget if math.isfinite(budget) else 60.0, t0)
    if not start.status.has_plan or start.flows is None:
        if penalty_phase or not index.must_run.any():
            start.solver = "lns"
            return start
        partial = start if start.info.get("partial") else None
        return _penalty_phase(problem, index, options, t0, deadline, lp, start.message, partial)
    search = _Search(problem, index, options, t0, deadline, lp, start, origin)
    search.run()
    return search.result()


class _Search:
    """One search from a start plan: the loop, its bounds and its result.

    Parameters
    ----------
    problem, index : Problem, Index
        The problem searched (the penalty problem in the penalty phase).
    options : SolveOptions
        The options of :func:`solve_lns`.
    t0, deadline : float
        ``time.perf_counter()`` at the start of the solve and at its end.
    lp : _BoundSlot
        The bound process beside the search.
    start : Plan
        The start plan (with flows); ``origin`` says where it came from.
    """

    def __init__(self, problem: Problem, index: Index, options: SolveOptions, t0: float,
                 deadline: float, lp: _BoundSlot, start: Plan, origin: str) -> None:
        assert start.flows is not None
        self.problem, self.index, self.options = problem, index, options
        self.t0, self.deadline, self.lp, self.origin = t0, deadline, lp, origin
        self.params = options.params_as(LnsOptions)
        self.budget = deadline - t0
        self.deterministic = self.params.max_iterations is not None
        self.rng = np.random.default_rng(options.seed)
        self.start_objective = evaluate(problem, start, index).objective
        best = plan_from_placement(problem, index, "lns", Status.FEASIBLE, start.node,
                                   start.start, start.flows.copy())
        best.objective = self.start_objective
        lp.share_incumbent(best)
        self.t_start = time.perf_counter() - t0
        options.report(t0, best.objective, None, f"start ({origin})")
        self.linear = linear_nodes(index)
        bound = self._start_bound(best)
        self.bound_source = "lagrangian" if bound is not None else None
        options.report(t0, best.objective, bound, "bound")
        self.sub_solver = sub_solver_name(options)
        self.auto_sub = (self.params.sub_solver is None
                         and importlib.util.find_spec("ortools") is not None)
        self.sub_stats: dict[str, _Stats] = {}
        self.kinds = list(self.params.kinds)
        size = (self.params.size if self.params.size is not None
                else float(min(INITIAL_SIZE, max(index.J, 1))))
        self.state = _State(best=best, objective=best.objective, bound=bound, size=size)
        self.state.stats = {k: _Stats(dgain=RATE_PRIOR) for k in self.kinds}
        self.builder = NeighbourhoodBuilder(problem, index, self.rng)
        self.builder.refresh(best)
        default_sub = (max(SUB_LIMIT_MIN, min(SUB_LIMIT_MAX, self.budget / 20.0))
                       if math.isfinite(self.budget) else SUB_LIMIT_MAX)
        self.sub_limit = (self.params.sub_time_limit if self.params.sub_time_limit is not None
                          else default_sub)
        self.n_movable = int((~index.pinned).sum())
        self.keep = sub_scenario_selection(problem, index, self.params.sub_scenarios)
        self.overhead = 0.0
        """Time of an iteration beyond its sub-solve's limit [s]: the latest, or a moving
        average when that is larger."""
        self.iterations = 0
        self.proven = False
        self.local_ok = (LOCAL in self.kinds and not self.deterministic
                         and bool(self.linear.all()))
        """Kind ``local`` may be drawn (every node linear, not reproducible)."""
        self.greedy: GreedySearch | None = None
        """The last local search's state, and the incumbent's objective it left
        (:attr:`greedy_at`): while the incumbent stays that, the next local search goes on
        from it instead of constructing the incumbent again."""
        self.greedy_at = math.nan

    def _start_bound(self, best: Plan) -> float | None:
        """The Lagrangian bound at the start plan's load, improved within 5 % of the
        budget; sets :attr:`t_lag`, the time of one evaluation [s]."""
        tb = time.perf_counter()
        self.t_lag = 0.0
        # one evaluation prices every start column: skipped where that would take more than
        # LAG_SHARE of the budget (the bound child's bound then stands alone)
        self.use_lag = self.deterministic or (
            start_column_count(self.index) <= LAG_CELLS_PER_SECOND * LAG_SHARE * self.budget)
        load = best.flows.load if best.flows is not None and self.use_lag else None
        bound = lagrangian_bound(self.index, load) if load is not None else None
        self.t_lag = time.perf_counter() - tb
        if (bound is not None and load is not None and self.params.improved_bound
                and improve_start_bound(self.lp, bool(self.linear.all()), self.deterministic)):
            more = improved_bound(self.index, load, rounds=BOUND_ROUNDS,
                                  deadline=min(self.deadline,
                                               time.perf_counter() + 0.05 * self.budget),
                                  upper=best.objective, capacity_iterations=CAPACITY_ITERATIONS,
                                  placement=(best.node, best.start))
            bound = _max_bound(bound, more)
        return bound

    def optimal_now(self) -> bool:
        """Whether the bound proves the incumbent optimal."""
        b, obj = self.state.bound, self.state.objective
        return b is not None and obj - b <= 1e-6 * max(1.0, abs(obj))

    def report(self, message: str) -> None:
        """A progress report of the incumbent and bound."""
        self.options.report(self.t0, self.state.objective, self.state.bound, message)

    def run(self) -> None:
        """Neighbourhoods until the limits, a proof of optimality or a whole-problem
        sub-solve proven optimal; then the final bounds."""
        max_iter = self.params.max_iterations
        while self.n_movable and not self.optimal_now() and not self.proven:
            if max_iter is not None and self.iterations >= max_iter:
                break
            if sub_solve_limit(self.sub_limit, self.deadline - time.perf_counter(),
                               self.overhead, self.t_lag) is None:
                break
            if self.iterations == 1:
                self.lp.start(self.problem)
            if self._follow_bound_process():
                break
            self.iterations += 1
            self._iterate()
        self._final_bounds()

    def _follow_bound_process(self) -> bool:
        """Read the bound process's bound, LP placement and restricted-master plan;
        True when its bound proves the incumbent optimal."""
        state, lp_job = self.state, self.lp.job
        if lp_job is not None and not self.deterministic and not lp_job.done:
            lpb = lp_job.poll()
            if lp_job.placement is not None and self.builder.lp is None:
                self.builder.set_lp(lp_job.placement)
                if "lp" in state.stats:  # informed: start it at the best rate
                    best = max(state.stats.values(), key=lambda v: v.rate)
                    state.stats["lp"].dgain, state.stats["lp"].dsecs = best.dgain, best.dsecs
            if lpb is not None and (state.bound is None or lpb > state.bound):
                state.bound, self.bound_source = lpb, self.lp.source
                self.report("LP bound")
                if self.optimal_now():
                    return True
        if lp_job is not None and _take_restricted(self.problem, self.index, self.lp, state):
            self.builder.refresh(state.best)
            state.seen.clear()
            self.lp.share_incumbent(state.best)
            self.report("restricted master")
        return False

    def _iterate(self) -> None:
        """One neighbourhood: draw its kind and build it, solve, accept, adapt."""
        state, kinds = self.state, self.kinds
        weights = _draw_weights([state.stats[k] for k in kinds])
        weights = weights * np.array([self._available(k) for k in kinds])
        if not weights.sum() > 0:  # e.g. only ``lp`` asked for, before the LP's solution
            time.sleep(min(0.1, max(0.0, self.deadline - time.perf_counter())))
            return
        kind = kinds[int(self.rng.choice(len(kinds), p=weights / weights.sum()))]
        st = state.stats[kind]
        if kind == LOCAL:
            self._local_search(st)
            return
        size = int(min(self.n_movable, max(MIN_SIZE, round(state.size))))
        hood = self.builder.build(kind, size)
        if hood is None or not hood.free.size or not hood.nodes.size:
            # nothing to re-decide: no job freed, or no node to place it on (a freed job
            # with no eligible node stays dropped)
            st.record(EMPTY_COST, 0.0)
            return
        key = (hood.nodes.tobytes(), np.sort(hood.free).tobytes())
        whole = hood.nodes.size == self.index.N and hood.free.size == self.n_movable
        if key in state.seen:
            st.record(EMPTY_COST, 0.0)
            state.size = min(self.n_movable, state.size * GROW)
            return
        ts = time.perf_counter()
        sub = build_subproblem(self.problem, self.index, state.best, hood.nodes, hood.free,
                               hood.window, self.keep)
        limit = sub_solve_limit(self.sub_limit, self.deadline - time.perf_counter(),
                                self.overhead, self.t_lag)
        if limit is None:  # building the neighbourhood took the time left
            return
        name = self._sub_solver_for(hood)
        sw = self.sub_stats.setdefault(name, _Stats())
        result = solve_subproblem(name, sub, limit, int(self.rng.integers(2**31 - 1)),
                                  self.options.threads, self.options.deterministic,
                                  self._pack_workers())
        solved_optimal = result.status is Status.OPTIMAL
        gain = self._accept(hood, sub, result, whole and solved_optimal and not sub.reduced)
        improved = gain is not None
        if solved_optimal and not improved:
            state.seen.add(key)
        secs = time.perf_counter() - ts
        self._note_overhead(secs, limit)
        self._tally(sw, secs, gain)
        log.debug("it %d %s/%s: %d jobs %d nodes -> %s in %.2fs (sub limit %.2f, %s), %s",
                  self.iterations, kind, name, hood.free.size, hood.nodes.size,
                  result.status.value, secs, limit,
                  {k: result.info.get(k) for k in ("columns", "integers", "mip_nodes")},
                  "improved" if improved else "kept")
        self._adapt(st, secs, gain, solved_optimal, result.status)

    def _available(self, kind: str) -> bool:
        """Whether ``kind`` can be drawn now: ``lp`` once the LP's solution has arrived,
        ``local`` when every node is linear and the run is not reproducible."""
        if kind == LOCAL:
            return self.local_ok
        return self.builder.available(kind)

    def _local_search(self, st: _Stats) -> None:
        """Kind ``local``: greedy's local search on the whole problem from the incumbent
        (construction hinted with its placement, exact dispatch, moves) for one sub-solve
        limit; its plan is taken when cheaper."""
        state = self.state
        limit = sub_solve_limit(self.sub_limit, self.deadline - time.perf_counter(),
                                self.overhead, self.t_lag)
        if limit is None:
            return
        ts = time.perf_counter()
        seed = int(self.rng.integers(2**31 - 1))
        if self.greedy is not None and self.greedy_at == state.objective:
            # the incumbent is still what the last local search left: go on from its state
            run = self.greedy
            run.improve(np.random.default_rng(seed), ts + limit, None)
            plan = plan_from_placement(self.problem, self.index, "lns", Status.FEASIBLE,
                                       run.state.node, run.state.start,
                                       run.state.final_flows())
        else:
            best = state.best
            hint = {j: (int(best.node[j]), int(best.start[j])) for j in range(self.index.J)
                    if best.node[j] >= 0 and not self.index.pinned[j]}
            gopts = SolveOptions(time_limit=limit, seed=seed,
                                 params=GreedyOptions(second_start=False, repair=False))
            run = GreedySearch(self.problem, self.index, default_candidates(self.index))
            plan = run_greedy(self.problem, self.index, gopts, hint=hint, search=run)
        self.greedy = run if plan.status.has_plan else None
        gain = None
        if plan.status.has_plan and plan.flows is not None:
            ev = evaluate(self.problem, plan, self.index)
            if ev.feasible and self._cheaper(ev.objective):
                cand = plan_from_placement(self.problem, self.index, "lns", Status.FEASIBLE,
                                           plan.node, plan.start, plan.flows)
                gain = self._take(cand, ev.objective, "local search")
        self.greedy_at = state.objective
        secs = time.perf_counter() - ts
        self._note_overhead(secs, limit)
        log.debug("it %d local: %s in %.2fs", self.iterations,
                  "improved" if gain is not None else "kept", secs)
        self._tally(st, secs, gain)

    def _pack_workers(self) -> int:
        """CP-SAT workers of an interval sub-solve: ``threads`` when given, else every usable
        core (at most :data:`PACK_WORKERS`) but the one a running bound child takes; one when
        deterministic."""
        if self.deterministic:
            return 1
        cores = usable_cores()
        if self.options.threads:
            return max(1, min(int(self.options.threads), cores))
        job = self.lp.job
        busy = self.lp.wanted and (job is None or not job.done)
        return max(1, min(PACK_WORKERS, cores - int(busy)))

    def _sub_solver_for(self, hood: Neighbourhood) -> str:
        """The CP-SAT interval sub-model when the sub-solver is automatic and every node of
        the neighbourhood is linear (``docs/algorithms/lns.md`` §2: it beat HiGHS on such
        neighbourhoods), else the configured sub-solver."""
        if self.auto_sub and bool(self.linear[hood.nodes].all()):
            return PACK_SOLVER
        return self.sub_solver

    def _accept(self, hood: Neighbourhood, sub: SubProblem, result: Plan,
                proves_whole: bool) -> float | None:
        """Splice the sub-solve's plan in and take it when cheaper: the gain [money], None
        when the incumbent stays. ``proves_whole``: a sub-solve of the whole problem
        proven optimal, which ends the search."""
        state = self.state
        gain = None
        if not (result.status.has_plan and result.flows is not None):
            return gain
        cand, cev = splice(self.problem, self.index, state.best, state.objective, sub, result)
        if cand is not None and cev is not None and self._cheaper(cev.objective):
            gain = self._take(cand, cev.objective, f"{hood.kind} ({hood.free.size} jobs, "
                              f"{hood.nodes.size} nodes)")
        if proves_whole:
            self.proven = True
            if result.bound is not None:
                state.bound = _max_bound(state.bound, result.bound)
                self.bound_source = "sub-solve of the whole problem"
        return gain

    def _cheaper(self, objective: float) -> bool:
        """Whether ``objective`` is below the incumbent's by more than :data:`REL_TOL`."""
        best = self.state.objective
        return objective < best - REL_TOL * max(1.0, abs(best))

    def _take(self, cand: Plan, objective: float, what: str) -> float:
        """Make ``cand`` (of ``objective``) the incumbent, shared with the neighbourhood
        builder and the bound child, and report it as ``what``: the gain [money]."""
        state = self.state
        gain = state.objective - objective
        cand.objective = objective
        state.best, state.objective = cand, objective
        self.builder.refresh(cand)
        self.lp.share_incumbent(cand)
        state.seen.clear()
        self.report(f"iteration {self.iterations}: {what}")
        return gain

    def _note_overhead(self, secs: float, limit: float) -> None:
        """Fold an iteration's time beyond its sub-solve's ``limit`` (the sub-problem's
        build, the sub-solver's own set-up and flows, the splice priced on every scenario)
        into :attr:`overhead` (a moving average, at least the latest)."""
        self.overhead = max(secs - limit, (1 - ALPHA) * self.overhead + ALPHA * (secs - limit))

    def _tally(self, st: _Stats, secs: float, gain: float | None) -> None:
        """Count a try of ``secs`` seconds that gained ``gain`` in ``st`` and its rate."""
        st.add(secs, gain, self._cost(secs), self._rel(gain))

    def _cost(self, secs: float) -> float:
        """What a try of ``secs`` seconds costs a kind: its seconds, one when
        deterministic (so a run with ``max_iterations`` is reproducible)."""
        return 1.0 if self.deterministic else max(secs, 1e-3)

    def _rel(self, gain: float | None) -> float:
        """``gain`` relative to the incumbent's objective (0 without a gain)."""
        return (gain or 0.0) / max(1.0, abs(self.state.objective))

    def _adapt(self, st: _Stats, secs: float, gain: float | None, solved_optimal: bool,
               status: Status) -> None:
        """Record the try in the kind's rate and adapt the neighbourhood size."""
        state = self.state
        self._tally(st, secs, gain)
        if solved_optimal:
            state.size = min(self.n_movable, state.size * GROW)
        elif status.has_plan or status is Status.NO_SOLUTION:
            state.size = max(MIN_SIZE, state.size * SHRINK)

    def _final_bounds(self) -> None:
        """Lagrangian bound at the best plan's load, the bound process's when it arrives
        in time, and its last restricted-master plan."""
        state = self.state
        if (state.best.flows is not None and self.use_lag and self.params.improved_bound
                and not self.optimal_now()
                and not self.proven and (self.deterministic or time.perf_counter()
                                         + self.t_lag <= self.deadline)):
            lb = improved_bound(self.index, state.best.flows.load, rounds=BOUND_ROUNDS,
                                deadline=math.inf if self.deterministic else self.deadline,
                                upper=state.objective, capacity_iterations=CAPACITY_ITERATIONS,
                                placement=(state.best.node, state.best.start))
            if lb is not None and (state.bound is None or lb > state.bound):
                state.bound, self.bound_source = lb, "lagrangian"
        lp_job = self.lp.job
        if lp_job is not None and not self.optimal_now() and not self.proven:
            wait = math.inf if self.deterministic else self.deadline - time.perf_counter()
            lpb = lp_job.poll(wait=min(wait, 3600.0))
            if lpb is not None and (state.bound is None or lpb > state.bound):
                state.bound, self.bound_source = lpb, self.lp.source
        if lp_job is not None:
            _take_restricted(self.problem, self.index, self.lp, state)

    def result(self) -> Plan:
        """The best plan with its bound, status, statistics and timings."""
        state = self.state
        plan = state.best
        plan.objective = state.objective
        plan.bound = None if state.bound is None else min(state.bound, state.objective)
        plan.status = Status.OPTIMAL if (self.optimal_now() or self.proven) else Status.FEASIBLE
        if plan.status is Status.OPTIMAL and plan.bound is None:
            plan.bound = state.objective
        plan.info = {
            "start": self.origin,
            "start_objective": float(self.start_objective),
            "iterations": self.iterations,
            "sub_solver": self.sub_solver,
            "bound_source": self.bound_source,
            "restricted_master": state.restricted,
            "final_size": state.size,
            "kinds": {k: {"tried": s.tried, "improved": s.improved, "gain": s.gain,
                          "seconds": s.seconds, "rate": s.rate}
                      for k, s in state.stats.items()},
            "sub_solvers": {k: {"tried": s.tried, "improved": s.improved, "gain": s.gain,
                                "seconds": s.seconds} for k, s in self.sub_stats.items()},
        }
        total = time.perf_counter() - self.t0
        plan.timings = {"build": self.t_start, "solve": total - self.t_start}
        if self.options.deterministic:  # clock readings differ between identical runs
            for k, st in state.stats.items():
                del plan.info["kinds"][k]["seconds"]
                plan.timings[f"kind_{k}"] = st.seconds
            for k, st in self.sub_stats.items():
                del plan.info["sub_solvers"][k]["seconds"]
                plan.timings[f"sub_solver_{k}"] = st.seconds
        self.options.report(self.t0, plan.objective, plan.bound, "done")
        return plan
