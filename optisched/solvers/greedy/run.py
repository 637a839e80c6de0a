"""The ``greedy`` solver's entry points: :func:`solve_greedy` and :func:`run_greedy`.

:func:`run_greedy` proves what infeasibility it can (:func:`optisched.precheck.precheck`,
:func:`~optisched.solvers.greedy.feasibility.prove_infeasible`), constructs, repairs a
construction that leaves must-run jobs out with the feasibility engine
(:func:`~optisched.solvers.greedy.feasibility.repair_placement`), dispatches exactly
(repairing groups the battery cannot carry), tries the other starts on small instances,
runs the local search and returns the plan.
"""

from __future__ import annotations

import time

import numpy as np

from optisched.arrays import IntArray
from optisched.domain import Problem
from optisched.index import Index
from optisched.plan import Flows, Plan, Status
from optisched.precheck import precheck
from optisched.solvers.base import SolveOptions, plan_from_placement
from optisched.solvers.baseline import solve_baseline
from optisched.solvers.greedy.construct import energy_order, job_order, repair
from optisched.solvers.greedy.feasibility import RepairResult, prove_infeasible, repair_placement
from optisched.solvers.greedy.scan import default_candidates
from optisched.solvers.greedy.search import GreedySearch
from optisched.solvers.options import GreedyOptions

__all__ = ["DEFAULT_REPAIR_TIME_LIMIT", "DEFAULT_TIME_LIMIT", "REPRODUCIBLE_REPAIR_STEPS",
           "run_greedy", "solve_greedy"]

DEFAULT_TIME_LIMIT = 1.0
"""Local-search budget when ``time_limit`` is not given [s]."""
DEFAULT_REPAIR_TIME_LIMIT = 10.0
"""Budget of the feasibility engine when neither ``time_limit`` nor ``repair_time_limit`` is
given [s]. ICON 2014 samples 01-08 need 0.1-0.6 s of it, sample09 (2,000 jobs at 82 % use)
3-8 s (loaded 2-core machine)."""
REPRODUCIBLE_REPAIR_STEPS = 100_000
"""The engine's step cap when ``iterations`` is given and ``repair_steps`` is not [steps]:
runs that cap the local search end the repair by work too (ICON sample09 needs about 30k)."""
_SECOND_START_MAX_OPTIONS = 20_000
"""Most options for the multi-start (:func:`_other_starts`)."""
_BASELINE_START_MAX_OPTIONS = 20_000
"""Most options for the baseline's placement as a third start."""


def solve_greedy(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    """Construction, exact dispatch and local search (see :mod:`optisched.solvers.greedy`).

    A ``warm_start`` plan of the options is the construction's hint: its placements are
    tried first, job by job.
    """
    hint = None
    ws = options.warm_start
    if ws is not None and ws.status.has_plan:
        hint = {j: (int(ws.node[j]), int(ws.start[j])) for j in range(index.J)
                if ws.node[j] >= 0 and not index.pinned[j]}
    return run_greedy(problem, index, options, hint=hint)


def run_greedy(problem: Problem, index: Index, options: SolveOptions,
               hint: dict[int, tuple[int, int]] | None = None,
               search: GreedySearch | None = None, trusted: bool = False,
               prev_flows: Flows | None = None,
               checked: dict[int, tuple[int, int]] | None = None) -> Plan:
    """The greedy solver, optionally warm-started from ``hint`` (``job -> (node, start)``).

    ``trusted``, ``prev_flows`` and ``checked`` are the fast path of the re-planner and of
    the distributed solver's repair re-solve (see
    :func:`~optisched.solvers.greedy.construct.construct` and
    :meth:`~optisched.solvers.greedy.state.GreedyState.evaluate_all`).

    Returns
    -------
    Plan
        Status ``feasible`` with exact flows; ``no_solution`` when the feasibility engine's
        budget is spent with must-run jobs left out (the message names them and why each
        finds no place); ``infeasible`` only with a proof (no eligible node, pinned jobs in
        conflict, a job's power or compulsory parts over a limit, or the exact packing model).
        ``plan.info["feasibility"]`` says what the engine did when it ran.
    """
    t0 = time.perf_counter()
    params = options.params_as(GreedyOptions)
    cands = params.candidates or default_candidates(index)
    proven = _proven_infeasibility(problem, index)
    if proven is not None:
        return Plan.empty(problem, "greedy", Status.INFEASIBLE, proven)
    run = search or GreedySearch(problem, index, cands)
    order = job_order(index)
    failed: list[int] = []
    why = run.construct(order, hint, trusted, failed=failed if params.repair else None,
                        checked=checked)
    info: dict[str, object] = {}
    t_construct = time.perf_counter() - t0
    if why is not None and params.repair:
        res = _repair(run, options, params, t0, t_construct)
        info["feasibility"] = _repair_info(res, len(failed))
        if not res.complete:
            status = Status.INFEASIBLE if res.proof is not None else Status.NO_SOLUTION
            plan = Plan.empty(problem, "greedy", status, res.message(index.job_ids))
            plan.info = info
            return plan
        why = None
    if why is not None:
        return Plan.empty(problem, "greedy", Status.NO_SOLUTION, why)
    t_build = time.perf_counter() - t0
    ok, msg = run.state.evaluate_all(prev_flows)
    if not ok:
        ok, msg = repair(run.state, run.scorer)
        if not ok:
            return Plan.empty(problem, "greedy", Status.NO_SOLUTION, msg)
    if hint is None and index.opt_job.size <= _SECOND_START_MAX_OPTIONS and params.second_start:
        run = _other_starts(problem, index, options, run, order, cands,
                            energy="feasibility" not in info)
    options.report(t0, run.objective, None, "construction")
    info["construction_objective"] = run.objective
    if params.improve:
        rng = np.random.default_rng(options.seed)
        deadline = options.deadline(t0, DEFAULT_TIME_LIMIT)
        if options.time_limit is None and "feasibility" in info:  # the repair took the default
            deadline = time.perf_counter() + DEFAULT_TIME_LIMIT
        iters = params.iterations

        def report(obj: float, kind: str) -> None:
            options.report(t0, obj, None, f"local search: {kind}")

        info["moves_tried"] = run.improve(rng, deadline, None if iters is None else int(iters),
                                          report)
    state = run.state
    plan = plan_from_placement(problem, index, "greedy", Status.FEASIBLE, state.node,
                               state.start, state.final_flows())
    plan.objective = state.objective
    plan.info = info
    plan.timings = {"build": t_build, "solve": time.perf_counter() - t0 - t_build}
    return plan


def _other_starts(problem: Problem, index: Index, options: SolveOptions, run: GreedySearch,
                  order: IntArray, cands: int, energy: bool = True) -> GreedySearch:
    """Multi-start: construction by earliest start, largest energy first, the baseline's placement.

    Earliest start packs the runs of sleeping nodes; largest energy first
    (:func:`~optisched.solvers.greedy.construct.energy_order`) keeps a long droppable
    job from finding its cheap node taken by a short must-run one; the baseline's
    placement makes the greedy never worse than the ``baseline`` solver. The cheapest
    start wins. ``energy=False`` skips the largest-energy start (when the first
    construction needed the feasibility engine, a second order would rarely place every
    must-run job and only delays the first plan).
    """
    other = GreedySearch(problem, index, cands)
    other.scorer.earliest = True
    if other.construct(order) is None and other.state.evaluate_all()[0] and (
            other.objective < run.objective - 1e-9):
        run = other
    big = GreedySearch(problem, index, cands) if energy else None
    if big is not None and big.construct(energy_order(index)) is None and (
            big.state.evaluate_all()[0] and big.objective < run.objective - 1e-9):
        run = big
    if index.opt_job.size <= _BASELINE_START_MAX_OPTIONS:
        base = solve_baseline(problem, index, SolveOptions(seed=options.seed))
        if base.status.has_plan:
            third = GreedySearch(problem, index, cands)
            hint = {j: (int(base.node[j]), int(base.start[j])) for j in range(index.J)
                    if base.node[j] >= 0 and not index.pinned[j]}
            if (third.construct(order, hint, trusted=True) is None
                    and third.state.evaluate_all()[0] and third.objective < run.objective - 1e-9):
                run = third
    run.scorer.earliest = False
    return run


def _repair(run: GreedySearch, options: SolveOptions, params: GreedyOptions, t0: float,
            t_construct: float) -> RepairResult:
    """The feasibility engine on a construction that left must-run jobs out.

    Budget: ``repair_time_limit`` [s] from now, else what is left of ``time_limit``, else
    :data:`DEFAULT_REPAIR_TIME_LIMIT`; step cap ``repair_steps``, else
    :data:`REPRODUCIBLE_REPAIR_STEPS` when ``iterations`` is given.
    """
    now = time.perf_counter()
    if params.repair_time_limit is not None:
        deadline = now + params.repair_time_limit
    elif options.time_limit is not None:
        deadline = options.deadline(t0, DEFAULT_TIME_LIMIT)
    else:
        deadline = now + DEFAULT_REPAIR_TIME_LIMIT
    steps = params.repair_steps
    if steps is None and params.iterations is not None:
        steps = REPRODUCIBLE_REPAIR_STEPS
    res = repair_placement(run.state, run.scorer, deadline=deadline, seed=options.seed,
                           max_steps=steps, construct_time=t_construct)
    if res.complete:
        options.report(t0, None, None, f"feasibility engine: every must-run job placed in "
                                       f"{res.elapsed:.2f} s")
    return res


def _repair_info(res: RepairResult, failed: int) -> dict[str, object]:
    """What the feasibility engine did, for ``plan.info["feasibility"]``."""
    return {"left_out_by_construction": failed, "complete": res.complete,
            "left_out": int(res.left_out.size), "stopped": res.stopped, "seconds": res.elapsed,
            "steps": res.steps, "repair_rounds": res.rounds, "repaired": res.repaired,
            "overload_iterations": res.conflict_iterations, "restarts": res.restarts,
            "exact": res.exact, "proof": res.proof}


def _proven_infeasibility(problem: Problem, index: Index) -> str | None:
    """Infeasibility that holds for every plan, or None.

    :func:`optisched.precheck.precheck` (no eligible node, pinned jobs in conflict), then
    the feasibility engine's cheap proofs
    (:func:`~optisched.solvers.greedy.feasibility.prove_infeasible`: a job's power alone,
    compulsory parts of single-node jobs).
    """
    return precheck(problem, index) or prove_infeasible(index)
