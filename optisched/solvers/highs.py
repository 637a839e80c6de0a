"""``highs``: the exact MILP (:mod:`optisched.formulations.milp`) solved by HiGHS.

The matrix is built with numpy/scipy.sparse and handed to HiGHS in one
``passModel`` call (:mod:`optisched.backends.highs`). The solver warm-starts from
``options.warm_start`` (else the ``greedy`` plan, else ``baseline``'s), reports
incumbents and bounds through HiGHS's MIP callback, and turns the solution into a
Plan: placement and on/off states from the MILP, flows from the exact dispatch
(:func:`optisched.dispatch.dispatch`), which never costs more than the MILP's own
flows and always satisfies charge/discharge complementarity.

Options: :class:`~optisched.solvers.options.HighsOptions` (``greedy_start``,
``log``, ``presolve_rule_off``, ``explain``). :func:`run_highs` also takes an
``on_solution`` callable receiving the column vector of every improving MIP
solution (the restricted master's use).
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from optisched.arrays import FloatArray, IntArray
from optisched.backends import highs as hs
from optisched.backends.highs import STATUS_MAP
from optisched.bounds.files import load_npz
from optisched.bounds.process import ChildProcess
from optisched.dispatch import dispatch
from optisched.domain import Problem
from optisched.evaluate import job_load
from optisched.formulations.milp import MilpModel, build_milp, recourse_flows, recourse_start
from optisched.index import Index
from optisched.plan import Flows, Plan, Status
from optisched.solvers.base import (
    HIGHS_NODES_PER_SECOND,
    SolveOptions,
    deterministic_params,
    plan_from_placement,
)
from optisched.solvers.fallback import fallback_plan
from optisched.solvers.options import GreedyOptions, HighsOptions
from optisched.solvers.registry import REGISTRY

__all__ = [
    "BIG_MODEL_COLS",
    "ISOLATE_INTEGERS",
    "STATUS_MAP",
    "IsolatedRequest",
    "MilpRun",
    "explain_infeasibility",
    "feasibility_jump_fits",
    "highs_from_model",
    "isolated_run",
    "milp_nonzeros_estimate",
    "milp_run",
    "model_solution_from_plan",
    "placement_from_solution",
    "presolve_rules_off",
    "run_highs",
    "solve_highs",
]

log = logging.getLogger(__name__)

BIG_MODEL_COLS = 50_000
"""Above this many columns presolve gets ``presolve_rule_off`` (SOLVER-NOTES)."""
PRESOLVE_RULE_OFF = 1040384
SLOW_PRESOLVE_NONZEROS_PER_SECOND = 10_000
"""Nonzeros per second of the budget above which the slow presolve rules are off
(:data:`PRESOLVE_RULE_OFF`: parallel rows and columns, sparsify, probing, enumeration …).
They do not look at the clock: on ``datasets/city`` (42k columns, 829k nonzeros, loaded
2-core machine) probing ran 24 s with ``time_limit`` 3 s, and without probing another of
them ran 24 s with ``time_limit`` 10 s; with the mask presolve took 3 s with the same
reductions (rows −1376, columns −11410)."""
BUILD_NONZEROS_PER_SECOND = 2_000_000
"""Model build rate assumed when deciding whether the MILP fits the time left (measured
2.1 M/s at ICON sample04's 11.2 M nonzeros, 4.9 M/s at city's 0.8 M)."""
FEASIBILITY_JUMP_NONZEROS_PER_SECOND = 250_000
"""HiGHS's feasibility-jump heuristic runs at the root without looking at the clock:
5-6.5 s on ICON sample01 (1.7 M nonzeros, loaded 2-core machine; ``time_limit`` 1 s ended
after 6.6-8 s with it, 1.5-2 s without it). It is switched off when ``nonzeros /`` this
rate exceeds half the budget (and sample02 at 10 s overran by 2.7 s, sample01 by 1.5 s
with it on)."""
STALL_NONZEROS_PER_SECOND = 200_000
"""Other stretches of HiGHS that neither look at the clock nor call back: the MIP set-up
(0.5-1 s on ICON sample01-03, 1.7-5 M nonzeros) and the root node before its first LP
iteration, presolve on or off (ICON sample02, 2.9 M nonzeros: 4.7 s, and 18 s once, with
``time_limit`` 6-9 s, on the 2-core machine at load 5-9). HiGHS's time limit is shortened
by ``nonzeros / STALL_NONZEROS_PER_SECOND`` so that a stretch started just before the limit
still ends by the deadline; models too dense for their budget are not run (sample02 needs
at least 15 s; with 800 000 it overran a 10 s limit by 2.7-4.9 s in 2 of 6 runs)."""
MIN_RUN = 0.05
"""Smallest time limit [s] for which HiGHS is started at all."""
DEFAULT_TIME_LIMIT = 60.0
DEFAULT_GAP = 1e-6
ASSIGNMENT_SLACK_WEIGHT = 1000.0
"""Elastic penalty of leaving a must-run job out, vs 1 per kW/kWh/resource unit."""
TERMINAL_SLACK_WEIGHT = 0.1
"""Elastic penalty per kWh the battery ends below its initial state of charge: the
terminal rule is a policy, so a shortfall the battery could cover if it did not have to
end full is blamed on the rule, not on the power balance of the slots it would serve."""

def highs_from_model(model: MilpModel, *, relax: bool = False, log_output: bool = False
                     ) -> hs.Highs:
    """A silent Highs instance holding ``model`` (integrality dropped when ``relax``)."""
    return hs.load(model, None if relax else model.integer, log_output=log_output)


def _set_common(h: hs.Highs, model: MilpModel, options: SolveOptions,
                params: HighsOptions, time_limit: float) -> None:
    """Presolve rules, seed, threads and the limits: wall-clock ``time_limit`` [s], or
    (deterministic) a node budget of :data:`HIGHS_NODES_PER_SECOND` per second of it."""
    rule_off = params.presolve_rule_off
    if rule_off is None:
        rule_off = presolve_rules_off(model, time_limit)
    if options.deterministic:
        hs.configure(h, threads=1, seed=int(options.seed), presolve_rule_off=rule_off,
                     mip_max_nodes=max(1, round(HIGHS_NODES_PER_SECOND * time_limit)))
    else:
        hs.configure(h, time_limit=max(time_limit, 0.01), threads=options.threads,
                     seed=int(options.seed), presolve_rule_off=rule_off,
                     feasibility_jump=None if feasibility_jump_fits(model.A.nnz, time_limit)
                     else False)


def feasibility_jump_fits(nonzeros: int, seconds: float) -> bool:
    """Whether HiGHS's feasibility jump (which ignores the clock) fits half of ``seconds``
    on a model of ``nonzeros`` (:data:`FEASIBILITY_JUMP_NONZEROS_PER_SECOND`)."""
    return nonzeros / FEASIBILITY_JUMP_NONZEROS_PER_SECOND <= 0.5 * max(seconds, 0.0)


def presolve_rules_off(model: MilpModel, seconds: float) -> int | None:
    """The ``presolve_rule_off`` mask for ``model`` given ``seconds`` to solve it.

    :data:`PRESOLVE_RULE_OFF` above :data:`BIG_MODEL_COLS` columns (SOLVER-NOTES) or above
    :data:`SLOW_PRESOLVE_NONZEROS_PER_SECOND` nonzeros per second of the budget; else
    None (HiGHS's default).
    """
    if model.n_cols > BIG_MODEL_COLS:
        return PRESOLVE_RULE_OFF
    if model.A.nnz > SLOW_PRESOLVE_NONZEROS_PER_SECOND * max(seconds, 0.0):
        return PRESOLVE_RULE_OFF
    return None


def milp_nonzeros_estimate(index: Index) -> int:
    """About how many nonzeros :func:`~optisched.formulations.milp.build_milp` will have.

    Every (start column, covered slot) pair has a coefficient in the capacity rows of
    each resource, the on-link and the power balance of every scenario:
    ``Σ_o starts_o · dur_o · (R + 1 + S)``, and each scenario beyond the first brings
    about 10 nonzeros of flows per node and slot (``datasets/city``: 864k estimated, 829k
    built; ICON sample04 11.1 M, 11.2 M; ``medium`` with 10 scenarios 3.13 M, 3.06 M;
    ``small`` with 4 scenarios 32k, 31k).
    """
    width = np.maximum(0, index.opt_latest - index.opt_earliest + 1)
    cover = int((width * np.minimum(index.opt_dur, index.T)).sum())
    return (cover * (len(index.resources) + 1 + index.S)
            + 10 * index.N * index.T * (index.S - 1))


def placement_from_solution(index: Index, model: MilpModel, x: FloatArray
                            ) -> tuple[IntArray, IntArray, npt.NDArray[np.bool_]]:
    """Node, start per job and on/off states from a column vector (rounded)."""
    node = np.full(index.J, -1, dtype=np.int64)
    start = np.zeros(index.J, dtype=np.int64)
    sel = np.nonzero(x[model.x] > 0.5)[0]
    node[model.sets.x_job[sel]] = model.sets.x_node[sel]
    start[model.sets.x_job[sel]] = model.sets.x_start[sel]
    on = x[model.on] > 0.5
    return node, start, np.asarray(on)


def model_solution_from_plan(index: Index, model: MilpModel, plan: Plan) -> FloatArray | None:
    """A full column vector for ``plan`` (placement, on/off, flows), or None if it does
    not fit the model (a start outside the model's columns)."""
    if plan.flows is None:
        return None
    f = plan.flows
    v = np.zeros(model.n_cols)
    sets = model.sets
    key = {(int(j), int(n), int(s)): k for k, (j, n, s) in
           enumerate(zip(sets.x_job, sets.x_node, sets.x_start, strict=True))}
    for j in range(index.J):
        n = int(plan.node[j])
        if n < 0:
            if model.drop[j] < 0:
                return None
            v[model.drop[j]] = 1.0
            continue
        k = key.get((j, n, int(plan.start[j])))
        if k is None:
            return None
        v[model.x[k]] = 1.0
    on = f.on.astype(bool)
    v[model.on] = on
    prev = np.concatenate([index.initially_on[:, None], on[:, :-1]], axis=1)
    v[model.up] = on & ~prev
    v[model.down] = ~on & prev
    e = model.down_end >= 0
    v[model.down_end[e]] = on[e, -1]
    if not recourse_start(model, index, f, v):  # every scenario's flows (and CVaR columns)
        return None
    return np.clip(v, model.col_lb, model.col_ub)


def _warm_start_plan(problem: Problem, index: Index, options: SolveOptions,
                     params: HighsOptions, seconds: float,
                     repair_seconds: float | None = None) -> Plan | None:
    """``options.warm_start``, else greedy's plan (baseline's when greedy finds none)
    computed within ``seconds`` (deterministic: by moves), else None.

    ``repair_seconds`` [s]: what greedy's feasibility engine may use when its
    construction leaves must-run jobs out (on tightly packed instances the MILP rarely
    finds a plan the engine does not, and the warm start is then the answer).
    """
    if options.warm_start is not None:
        return options.warm_start
    if not params.greedy_start:
        return None
    for name in ("greedy", "baseline"):
        spec = REGISTRY.get(name)
        if spec is None or not spec.available():
            continue
        sub = SolveOptions(time_limit=seconds, seed=options.seed, threads=options.threads,
                           started=time.perf_counter())
        if options.deterministic and name == "greedy":
            sub.params, sub.time_limit = deterministic_params(GreedyOptions(), seconds)
            sub.deterministic = True
        elif name == "greedy" and repair_seconds is not None:
            sub.params = GreedyOptions(repair_time_limit=max(seconds, repair_seconds))
        try:
            plan = spec.load()(problem, index, sub)
        except Exception:  # a failing warm start is not fatal
            log.debug("warm start %s failed", name, exc_info=True)
            continue
        if plan.status.has_plan and plan.flows is not None:
            plan.solver = name
            return plan
    return None


ISOLATE_INTEGERS = 5_000
"""Integer columns from which a timed run (``HighsOptions.isolate`` None) goes to a child
process that is stopped at the deadline. HiGHS's root node runs *central rounding*
(``HighsPrimalHeuristics::linesearchRounding``: points between the analytic centre and the
root LP solution, each rounded by fixing the integer columns one at a time with a domain
propagation after every fix) without looking at the clock or calling back: on the
mean-forecast ``medium`` problem (17,729 integer columns, 718k nonzeros) it ran from the
end of the root LP (~20 s) past 120 s of a 55 s limit (124.5 s and 167 s wall,
2026-12-01, load 1.5-2.5), and no HiGHS option turns it off. Below this size the root
heuristics take well under a second and the run stays in-process."""
ISOLATED_PREFIX = "optisched-highs-"
"""Prefix of the isolated run's temporary directory."""
ISOLATED_INCUMBENT = "incumbent.npz"
"""The isolated run's best solution so far (``x``, ``objective``, ``bound``)."""
ISOLATED_RESULT = "run.pickle"
"""The isolated run's :class:`MilpRun`, written when HiGHS returns."""


@dataclass
class MilpRun:
    """What one HiGHS run of the MILP gave (in-process or isolated).

    Attributes
    ----------
    text : str
        HiGHS's model status (or ``stopped at the deadline``).
    status : Status
        Mapped status (:data:`STATUS_MAP`; without a verdict: feasible when a solution
        exists, else no solution).
    objective, mip_bound, mip_gap : float
        Figures of the run [money, money, -].
    mip_nodes : int
        Branch-and-bound nodes.
    x : (n_cols,) float or None
        The solution's columns, None without one.
    scheduler_reset : bool
        HiGHS's thread pool was reset for the run.
    stopped : bool
        An isolated run stopped at the deadline (its best solution reported so far).
    """

    text: str
    status: Status
    objective: float
    mip_bound: float
    mip_gap: float
    mip_nodes: int
    x: FloatArray | None
    scheduler_reset: bool = False
    stopped: bool = False


def milp_run(model: MilpModel, options: SolveOptions, params: HighsOptions, remaining: float,
             gap: float, warm_x: FloatArray | None, deadline: float | None,
             improving: Callable[[hs.MipEvent], None] | None = None) -> MilpRun:
    """Run HiGHS on ``model`` in this process.

    Parameters
    ----------
    model : MilpModel
        The MILP.
    options, params : SolveOptions, HighsOptions
        Seed, threads, determinism; presolve rules, log.
    remaining : float
        HiGHS's ``time_limit`` [s] (deterministic: its node budget).
    gap : float
        Relative MIP gap.
    warm_x : (n_cols,) float or None
        MIP start.
    deadline : float or None
        ``time.perf_counter()`` of the watchdog's interrupt.
    improving : callable, optional
        Called with every improving solution.
    """
    h = highs_from_model(model, log_output=params.log)
    _set_common(h, model, options, params, remaining)
    hs.configure(h, mip_rel_gap=gap, mip_abs_gap=1e-9)
    if warm_x is not None:
        hs.set_solution(h, warm_x)
    if improving is not None:
        hs.subscribe_improving(h, improving)
    ran = hs.run(h, pool_threads=1 if options.deterministic else options.threads,
                 deadline=deadline)
    hinfo = hs.info(h)
    has_sol = hinfo.has_primal or (ran.optimal and model.n_cols > 0)
    mapped = ran.status
    if mapped is None:
        mapped = Status.FEASIBLE if has_sol else Status.NO_SOLUTION
    x = (hs.solution(h).primal()
         if mapped is Status.OPTIMAL or (mapped is Status.FEASIBLE and has_sol) else None)
    return MilpRun(ran.text, mapped, hinfo.objective, hinfo.mip_bound, hinfo.mip_gap,
                   hinfo.mip_nodes, x, ran.scheduler_reset)


@dataclass(frozen=True)
class IsolatedRequest:
    """What the child of :func:`isolated_run` solves (:mod:`optisched.solvers.highs_child`).

    Attributes
    ----------
    model : MilpModel
        The MILP.
    seed : int
        HiGHS's seed.
    threads : int or None
        HiGHS's threads.
    params : HighsOptions
        Presolve rules, log.
    remaining : float
        HiGHS's time limit as sent [s].
    gap : float
        Relative MIP gap.
    warm_x : (n_cols,) float or None
        MIP start.
    sent, deadline : float
        ``time.time()`` when sent and of the watchdog's interrupt [s since the epoch].
    """

    model: MilpModel
    seed: int
    threads: int | None
    params: HighsOptions
    remaining: float
    gap: float
    warm_x: FloatArray | None
    sent: float
    deadline: float


def isolated_run(model: MilpModel, options: SolveOptions, params: HighsOptions,
                 remaining: float, gap: float, warm_x: FloatArray | None, deadline: float,
                 report: Callable[[float, float], None] | None = None) -> MilpRun:
    """:func:`milp_run` in a guarded child process (:mod:`optisched.solvers.highs_child`),
    stopped at ``deadline`` (``time.perf_counter()``) whatever HiGHS is doing.

    The child writes every improving solution to :data:`ISOLATED_INCUMBENT`; ``report``
    gets ``(objective, bound)`` of each one read. A child still running at the deadline
    is stopped and its best solution so far is the result (``stopped``; no solution:
    ``no_solution``, and the caller keeps its warm start).
    """
    now = time.time()
    left = deadline - time.perf_counter()
    req = IsolatedRequest(model, int(options.seed), options.threads, params,
                          float(remaining), float(gap), warm_x, now, now + left)
    child = ChildProcess("optisched.solvers.highs_child", req, prefix=ISOLATED_PREFIX)
    best: tuple[np.ndarray, ...] | None = None
    result: MilpRun | None = None
    try:
        while True:
            ended = child.ended()
            inc = load_npz(child.path(ISOLATED_INCUMBENT), ("x", "objective", "bound"))
            if inc is not None and (best is None or float(inc[1]) < float(best[1])):
                best = inc
                if report is not None:
                    report(float(inc[1]), float(inc[2]))
            if ended:
                try:
                    with open(child.path(ISOLATED_RESULT), "rb") as fh:
                        result = pickle.load(fh)
                except (OSError, EOFError, pickle.UnpicklingError):
                    result = None
                break
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            child.wait(min(0.1, left))
    finally:
        child.stop()
    if result is not None:
        return result
    if best is None:
        log.info("isolated HiGHS run stopped at its deadline without a solution")
        return MilpRun("stopped at the deadline", Status.NO_SOLUTION, math.nan, -math.inf,
                       math.nan, 0, None, stopped=True)
    log.info("isolated HiGHS run stopped at its deadline; its best solution %.6g is kept",
             float(best[1]))
    obj, bound = float(best[1]), float(best[2])
    return MilpRun("stopped at the deadline", Status.FEASIBLE, obj, bound,
                   abs(obj - bound) / max(1e-9, abs(obj)), 0, np.asarray(best[0], dtype=float),
                   stopped=True)


def final_flows(index: Index, model: MilpModel, x: FloatArray, node: IntArray,
                start: IntArray, on: npt.NDArray[np.bool_]) -> tuple[Flows, bool]:
    """Flows for the placement: exact dispatch; the MILP's own flows when dispatch fails.

    Returns
    -------
    (Flows, bool)
        The flows and whether they came from the dispatch.
    """
    res = dispatch(index, node, start, on)
    if res.feasible and res.flows is not None:
        return res.flows, True
    load = on * index.idle_kw[:, None] + job_load(index, node, start)
    return recourse_flows(model, x, on, load), False


def _reserve(limit: float) -> float:
    """Seconds kept after the HiGHS run for the plan's flows and checks."""
    return min(2.0, max(0.1, 0.03 * limit))


def _warm_plan_result(problem: Problem, index: Index, name: str, warm: Plan | None,
                      why: str, info: dict[str, Any], options: SolveOptions,
                      seconds: float) -> Plan:
    """The plan when HiGHS does not run: the warm start, else greedy on the ``seconds``
    left (:func:`~optisched.solvers.fallback.fallback_plan`), else no plan."""
    info["highs_status"] = "not run"
    if warm is None or warm.flows is None:
        return _fallback(problem, index, name, why, info, options, seconds)
    plan = plan_from_placement(problem, index, name, Status.FEASIBLE, warm.node, warm.start,
                               warm.flows, message=f"{why}; plan of {warm.solver} (the warm "
                                                   "start)")
    plan.objective = warm.objective
    return plan


def _fallback(problem: Problem, index: Index, name: str, why: str, info: dict[str, Any],
              options: SolveOptions, seconds: float) -> Plan:
    """Greedy's plan when HiGHS gives none (unless ``greedy_start`` is off)."""
    if not options.params_as(HighsOptions).greedy_start:
        return Plan.empty(problem, name, Status.NO_SOLUTION, why + "; no warm start plan")
    plan = fallback_plan(problem, index, options, name=name, why=why, seconds=seconds)
    info.update(plan.info)
    return plan


def run_highs(problem: Problem, index: Index, options: SolveOptions, *, name: str = "highs",
              model: MilpModel | None = None,
              on_solution: Callable[[FloatArray], None] | None = None) -> Plan:
    """Build (unless given) and solve the MILP; see :func:`solve_highs`.

    ``on_solution`` receives the column vector of every improving MIP solution.
    The time limit counts from ``options.started`` (else from this call) and covers the
    warm start (at most min(10 s, 0.1·limit)), the build and HiGHS (its ``time_limit``
    and a watchdog on its interrupt callbacks); a model that cannot be built in the
    time left (:func:`milp_nonzeros_estimate`) is not built.
    """
    t0 = time.perf_counter()
    params = options.params_as(HighsOptions)
    time_limit = options.time_limit if options.time_limit is not None else DEFAULT_TIME_LIMIT
    deadline = options.deadline(t0, DEFAULT_TIME_LIMIT)
    det = options.deterministic
    reserve = _reserve(time_limit)
    info: dict[str, Any] = {}
    ws_budget = min(10.0, 0.1 * time_limit)
    repair_budget = None
    est = milp_nonzeros_estimate(index) if model is None else 0
    # built only when it can also run: the build, HiGHS's clock-blind stretches and a
    # minimal run must fit; when they cannot, the warm start (greedy's feasibility engine
    # on a tightly packed batch) may use all the time, for it is then the answer
    need = est / BUILD_NONZEROS_PER_SECOND + est / STALL_NONZEROS_PER_SECOND + MIN_RUN
    if not det:
        total = max(0.0, deadline - t0 - reserve)
        repair_budget = 0.5 * total if need <= 0.5 * total else total
        ws_budget = min(ws_budget, 0.5 * total)
    warm = _warm_start_plan(problem, index, options, params, ws_budget, repair_budget)
    if model is None:
        left = deadline - time.perf_counter() - reserve
        if not det and need > left:
            plan = _warm_plan_result(problem, index, name, warm, f"time limit: the MILP (about "
                                     f"{est:,} nonzeros) cannot be built and run in the "
                                     f"{max(left, 0):.2g} s left", info, options, left)
            plan.info, plan.timings = info, {"build": 0.0, "solve": time.perf_counter() - t0}
            return plan
        model = build_milp(index)
    t_build = time.perf_counter() - t0
    info.update({"columns": model.n_cols, "rows": model.n_rows, "nonzeros": int(model.A.nnz),
                 "integers": int(model.integer.sum())})
    isolate = params.isolate
    if isolate is None:
        isolate = on_solution is None and int(model.integer.sum()) >= ISOLATE_INTEGERS
    isolate = bool(isolate) and not det and on_solution is None
    # a run in-process must end its clock-blind stretches before the deadline; an isolated
    # one is stopped there, so HiGHS may use the time up to it
    stall = 0.0 if isolate else model.A.nnz / STALL_NONZEROS_PER_SECOND
    remaining = time_limit if det else deadline - time.perf_counter() - reserve - stall
    if not det and remaining < MIN_RUN:
        plan = _warm_plan_result(problem, index, name, warm, "time limit: too little time left "
                                 f"for HiGHS on a MILP of {model.A.nnz:,} nonzeros", info,
                                 options, deadline - time.perf_counter() - reserve)
        plan.info, plan.timings = info, {"build": t_build, "solve": 0.0}
        return plan
    gap = DEFAULT_GAP if options.mip_gap is None else float(options.mip_gap)
    warm_x = None
    if warm is not None:
        warm_x = model_solution_from_plan(index, model, warm)
        if warm_x is not None:
            info["warm_start"] = warm.solver
            info["warm_start_objective"] = warm.objective

    def improving(e: hs.MipEvent) -> None:
        if options.callback is not None:
            options.report(t0, e.objective, e.bound, "highs incumbent")
        if on_solution is not None:
            on_solution(e.solution())

    wanted = options.callback is not None or on_solution is not None
    if isolate:
        ran = isolated_run(model, options, params, remaining, gap, warm_x,
                           deadline - 0.5 * reserve,
                           (lambda o, b: options.report(t0, o, b, "highs incumbent"))
                           if options.callback is not None else None)
        info["isolated"] = True
    else:
        ran = milp_run(model, options, params, remaining, gap, warm_x,
                       None if det else deadline - 0.5 * reserve,
                       improving if wanted else None)
    if ran.scheduler_reset:
        log.debug("HiGHS's thread pool was reset for this run")
    mapped = ran.status
    info["highs_status"] = ran.text
    t_solve = time.perf_counter() - t0 - t_build
    if mapped is Status.INFEASIBLE:
        msg = "the MILP is infeasible"
        if params.explain:
            left = time_limit if det else deadline - time.perf_counter() - reserve
            msg = explain_infeasibility(index, time_limit=left, deterministic=det) \
                if left >= MIN_RUN else msg + " (no time left to explain why)"
        plan = Plan.empty(problem, name, Status.INFEASIBLE, msg)
    elif ran.x is not None:
        x = ran.x
        node, start, on = placement_from_solution(index, model, x)
        flows, dispatched = final_flows(index, model, x, node, start, on)
        plan = plan_from_placement(problem, index, name, mapped, node, start, flows)
        plan.objective = ran.objective
        info["milp_objective"] = plan.objective
        info["redispatched"] = dispatched
        if model.integer.any():
            plan.bound = ran.mip_bound
            info["mip_gap"] = ran.mip_gap
            info["mip_nodes"] = ran.mip_nodes
        else:
            plan.bound = plan.objective
    else:
        why = f"HiGHS ended with {info['highs_status']} and no plan"
        if mapped is not Status.NO_SOLUTION:
            plan = Plan.empty(problem, name, mapped, why)
        elif warm is not None and warm.flows is not None:
            plan = plan_from_placement(problem, index, name, Status.FEASIBLE, warm.node,
                                       warm.start, warm.flows,
                                       message=f"{why}; plan of {warm.solver} (the warm start)")
            plan.objective = warm.objective
        else:
            plan = _fallback(problem, index, name, why, info, options,
                             deadline - time.perf_counter() - reserve)
        if model.integer.any() and math.isfinite(ran.mip_bound):
            plan.bound = ran.mip_bound
    options.report(t0, plan.objective, plan.bound, f"highs {info['highs_status']}")
    plan.info = info
    plan.timings = {"build": t_build, "solve": t_solve}
    return plan


def solve_highs(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    """The exact MILP solved by HiGHS (see the module docstring)."""
    return run_highs(problem, index, options)


_FAMILY_TEXT: dict[str, Callable[[Index, Any, float], str]] = {
    "assignment": lambda ix, b, v: (f"job {ix.job_ids[b[0]]} (must run) cannot be placed on any "
                                    "eligible node and start"),
    "capacity": lambda ix, b, v: (f"node {ix.node_ids[b[1]]} slot {b[2]}: "
                                  f"{ix.resources[b[3]]} needed exceeds capacity by {v:.4g}"),
    "power_balance": lambda ix, b, v: (f"node {ix.node_ids[b[1]]} slot {b[2]}: load exceeds PV "
                                       f"+ grid headroom + battery by {v:.4g} kW"),
    "battery_terminal": lambda ix, b, v: (f"node {ix.node_ids[b[1]]}: under the terminal rule "
                                          "'initial' the battery cannot end at its initial state "
                                          f"of charge (short {v:.4g} kWh)"),
    "feeder": lambda ix, b, v: (f"feeder {ix.feeder_ids[b[3]]} slot {b[2]}: net import exceeds "
                                f"the feeder headroom by {v:.4g} kW"),
}


def explain_infeasibility(index: Index, time_limit: float = 10.0, max_items: int = 8,
                          deterministic: bool = False) -> str:
    """Why the MILP is infeasible, in user terms, from an elastic relaxation.

    Slack columns are added to the rows of the families ``assignment`` (a must-run
    job left unplaced), ``capacity``, ``power_balance`` (unserved load: PV +
    headroom + battery short), ``battery_terminal`` and ``feeder``; the total
    slack is minimized and every row with positive slack is reported with its
    job, node, slot or feeder. ``time_limit`` [s] bounds the relaxation's solve
    (``deterministic``: :data:`HIGHS_NODES_PER_SECOND` nodes per second of it, one
    thread, no clock).
    """
    model = build_milp(index, elastic=True)
    assign = [b for b in model.blocks if b.family == "assignment"]
    for b in assign:  # leaving a must-run job out is the last resort
        rows = np.arange(b.start, b.start + b.size)
        model.cost[model.slack[rows][model.slack[rows] >= 0]] = ASSIGNMENT_SLACK_WEIGHT
    for b in (b for b in model.blocks if b.family == "battery_terminal"):
        rows = np.arange(b.start, b.start + b.size)  # a policy, blamed before unserved load
        model.cost[model.slack[rows][model.slack[rows] >= 0]] = TERMINAL_SLACK_WEIGHT
    h = highs_from_model(model)
    if deterministic:
        hs.configure(h, threads=1, seed=0, mip_rel_gap=1e-4,
                     mip_max_nodes=max(1, round(HIGHS_NODES_PER_SECOND * time_limit)))
        hs.run(h, pool_threads=1)
    else:
        hs.configure(h, time_limit=max(0.01, float(time_limit)), mip_rel_gap=1e-4,
                     presolve_rule_off=presolve_rules_off(model, time_limit),
                     feasibility_jump=None if feasibility_jump_fits(model.A.nnz, time_limit)
                     else False)
        hs.run(h, deadline=time.perf_counter() + float(time_limit))
    if not hs.info(h).has_primal:
        return "the MILP is infeasible (the elastic relaxation found no explanation in time)"
    x = hs.solution(h).primal()
    rows = np.nonzero(model.slack >= 0)[0]
    val = x[model.slack[rows]]
    pos = rows[val > 1e-6]
    if not pos.size:
        return "the MILP is infeasible (no single constraint family explains it)"
    node, start, _ = placement_from_solution(index, model, x)
    by_fam: dict[str, list[str]] = {}
    for r in pos[np.argsort(-x[model.slack[pos]])]:
        blk = model.block_of(int(r))
        i = int(r) - blk.start
        key = (int(blk.job[i]), int(blk.node[i]), int(blk.slot[i]), int(blk.resource[i]))
        text = _FAMILY_TEXT[blk.family](index, key, float(x[model.slack[r]]))
        if blk.family in ("capacity", "power_balance"):
            n, t = key[1], key[2]
            d = index.duration(np.arange(index.J), np.maximum(node, 0))
            there = [index.job_ids[j] for j in range(index.J)
                     if node[j] == n and start[j] <= t < start[j] + d[j]]
            if there:
                text += f" (jobs there: {', '.join(there)})"
        by_fam.setdefault(blk.family, []).append(text)
    parts = []
    for fam, msgs in by_fam.items():
        more = f" (and {len(msgs) - max_items} more)" if len(msgs) > max_items else ""
        parts.append(f"[{fam}] " + "; ".join(msgs[:max_items]) + more)
    return "infeasible: " + " | ".join(parts)
