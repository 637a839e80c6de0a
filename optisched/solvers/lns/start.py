"""Start plans of ``lns``: the warm start, greedy, baseline, packings, the penalty problem.

:func:`start_plan` returns the first incumbent and where it came from: the given
``warm_start``, else the ``greedy`` plan, else ``baseline``'s, else a packing
(:mod:`optisched.solvers.lns.packing`: CP-SAT's packing model or list scheduling), else
CP-SAT's interval model. When none is found, the search runs on
:func:`penalty_problem` (must-run jobs droppable at a large penalty).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from optisched.bounds.aggregate import linear_nodes
from optisched.dispatch import dispatch
from optisched.domain import Problem
from optisched.evaluate import evaluate
from optisched.index import Index
from optisched.plan import Plan, Status
from optisched.solvers.base import Progress, SolveOptions, dispatched_plan
from optisched.solvers.baseline import solve_baseline
from optisched.solvers.greedy import run_greedy
from optisched.solvers.options import CpsatOptions, GreedyOptions, LnsOptions

__all__ = ["GREEDY_MOVES", "penalty_problem", "start_plan", "with_flows"]

GREEDY_MOVES = 300
"""Local-search moves of the greedy start when ``max_iterations`` is set (so the start,
too, does not depend on machine speed)."""


def with_flows(problem: Problem, index: Index, plan: Plan) -> Plan | None:
    """``plan`` with exact flows when it has none; None when they do not exist."""
    if plan.flows is not None:
        return plan
    return dispatched_plan(index, "lns", plan.node, plan.start)


MIN_START = 0.05
"""Fewest seconds left of the budget for which a packing start is still tried [s]."""

REPAIR_SHARE = 0.5
"""Share of the ``lns`` budget the greedy start's feasibility engine may use when
construction leaves must-run jobs out (ICON sample03 at 3 s: no plan with 0.2 s, a plan
after 1.75 s of greedy; BENCHMARKS.md, time-limit benchmark; tight 5,000 × 100 × 288 × 4
seed 0 at 30 s: greedy's own 1.5 s left the engine no time and the packing start then took
220 s, docs/algorithms/lns.md §1)."""


LINEAR_GREEDY_SHARE = 0.4
"""Share of the ``lns`` budget greedy's local search may use for the start when every node
is linear (the ICON class; greedy stops earlier on its own when no move improves). There
its moves are cheap and beat the interval sub-solves per second: tight 200 × 10 seed 0 at
60 s, 17,409.3 with the general ``min(10, 0.05·budget)`` s start, 16,973.6 with 24 s
(greedy alone stops at 11.6 s with 17,323.3), docs/algorithms/lns.md §1. Capped at
:data:`LINEAR_GREEDY_CAP`."""
LINEAR_GREEDY_CAP = (24.0, 0.1)
"""``(s, share)``: on linear instances the greedy start takes at most
``max(s, share·budget)`` [s]. Beyond it greedy goes on inside the search as the kind
``local``, drawn by its rate against the sub-solves (tight 200 × 10 seed 7 at 300 s: 12,747.7
with a 30 s start against 12,831.7 with 120 s; ICON sample07: 3,828.5 against 3,856.6;
paired runs, 2026-12-03, BENCHMARKS.md)."""


def start_plan(problem: Problem, index: Index, options: SolveOptions,
                budget: float, t0: float | None = None) -> tuple[Plan, str]:
    """The start plan and where it came from (status infeasible when none).

    ``t0`` (``time.perf_counter()`` at which ``lns`` started, default now): the greedy
    start's progress reports reach ``options.callback`` with times from it, so a caller
    sees greedy's first plan while its local search goes on.
    """
    ends = time.perf_counter() + budget  # the start heuristics never take more than this
    origin = time.perf_counter() if t0 is None else t0
    given = options.warm_start
    params = options.params_as(LnsOptions)
    if given is not None:
        if not isinstance(given, Plan):
            raise TypeError("the warm_start must be a Plan")
        plan = with_flows(problem, index, given)
        if plan is None:
            raise ValueError("the start plan has no feasible dispatch")
        ev = evaluate(problem, plan, index)
        if not ev.feasible:
            raise ValueError("the start plan fails the evaluator: "
                             + "; ".join(str(v) for v in ev.violations[:3]))
        return plan, "given"
    if params.greedy_time_limit is not None:
        tl = params.greedy_time_limit
    elif index.N and linear_nodes(index).all():
        cap_s, cap_share = LINEAR_GREEDY_CAP
        tl = max(0.2, min(LINEAR_GREEDY_SHARE * budget, max(cap_s, cap_share * budget)))
    else:
        tl = min(10.0, max(0.2, 0.05 * budget))
    # A start is worth most of the budget: without one the search has nothing to improve.
    # The feasibility engine runs only when construction leaves must-run work out.
    gparams = GreedyOptions(repair_time_limit=max(tl, REPAIR_SHARE * budget))
    if params.max_iterations is not None:  # reproducible: end by moves
        gparams = GreedyOptions(iterations=GREEDY_MOVES)
        tl = max(tl, 3600.0)
    gopts = SolveOptions(time_limit=tl, seed=options.seed, threads=options.threads,
                         params=gparams, callback=_relayed(options, origin))
    plan = run_greedy(problem, index, gopts)
    if plan.status.has_plan and evaluate(problem, plan, index).feasible:
        return plan, "greedy"
    plan = solve_baseline(problem, index, SolveOptions(seed=options.seed))
    if plan.status.has_plan and plan.flows is not None:
        res = dispatch(index, plan.node, plan.start, plan.flows.on)
        if res.feasible and res.flows is not None:
            plan.flows = res.flows
        return plan, "baseline"
    if time.perf_counter() >= ends - MIN_START:
        return plan, "none"
    packed = _packing_start(problem, index, options, budget, ends)
    if packed is not None and packed.status.has_plan:
        return packed, "packing"
    partial = packed
    if partial is not None:  # CP-SAT's packing model failed: its full model would too
        return partial, "none"
    if time.perf_counter() >= ends - MIN_START:
        return plan, "none"
    packed = _cpsat_packing_start(problem, index, options, budget, ends)
    if packed is not None:
        return packed, "cpsat-intervals"
    return plan, "none"


def _relayed(options: SolveOptions, t0: float) -> Callable[[Progress], None] | None:
    """A callback passing the greedy start's reports with an objective on to
    ``options.callback``, timed from ``t0`` and marked as the start's."""
    callback = options.callback
    if callback is None:
        return None

    def relay(p: Progress) -> None:
        if p.objective is not None:
            callback(Progress(time.perf_counter() - t0, p.objective, None,
                              f"start (greedy): {p.message}"))

    return relay


def _packing_start(problem: Problem, index: Index, options: SolveOptions,
                   budget: float, ends: float) -> Plan | None:
    """A start from :func:`optisched.solvers.lns.packing.pack` (placement and resources only).

    CP-SAT's packing model, else list scheduling and window repair, within
    ``packing_time_limit`` (default ``0.4·budget``) [s]; the surrogate energy objective
    for at most ``min(30, budget/10)`` s after a CP-SAT packing. The cheapest packing by
    exact dispatch and evaluation is kept. When no packing is complete, the best partial
    one (status ``no_solution``, ``info["partial"]``) is returned for the penalty phase;
    None when ortools is missing, nothing is found, or the dispatch is infeasible (power
    limits the packing model leaves out).
    """
    try:  # ortools is optional here: the registry lists lns as needing highspy only
        from optisched.solvers.lns.packing import pack
    except ImportError:  # pragma: no cover - ortools is a dependency
        return None
    given = options.params_as(LnsOptions).packing_time_limit
    limit = given if given is not None else max(1.0, 0.4 * budget)
    limit = min(limit, ends - time.perf_counter())  # never past the start's budget
    improve = min(30.0, max(0.5, budget / 10.0), max(0.0, ends - time.perf_counter() - limit))
    packed = pack(index, limit, options.seed, improve_limit=improve)
    best: Plan | None = None
    best_objective = math.inf
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
        if ev.feasible and (best is None or ev.objective < best_objective):
            plan.objective, best = ev.objective, plan
            best_objective = ev.objective
    return best


def _cpsat_packing_start(problem: Problem, index: Index, options: SolveOptions,
                         budget: float, ends: float) -> Plan | None:
    """A start from CP-SAT's full interval model when the packing model fails.

    Uses at most a third of the budget; None when ortools is missing or it finds
    nothing.
    """
    try:  # ortools is optional here: the registry lists lns as needing highspy only
        from optisched.solvers.cpsat import solve_cpsat
    except ImportError:  # pragma: no cover - ortools is a dependency
        return None
    opts = SolveOptions(time_limit=min(max(1.0, budget / 3.0), ends - time.perf_counter()),
                        seed=options.seed,
                        params=CpsatOptions(variant="intervals", hint=False))
    plan = solve_cpsat(problem, index, opts)
    if plan.status.has_plan and evaluate(problem, plan, index).feasible:
        return plan
    return None


def penalty_problem(problem: Problem, index: Index) -> tuple[Problem, float]:
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
