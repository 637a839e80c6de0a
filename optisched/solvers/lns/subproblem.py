"""Sub-problems of ``lns``: a neighbourhood as a smaller :class:`~optisched.domain.Problem`.

:func:`build_subproblem` builds it, :func:`solve_subproblem` solves it with the
sub-solver (:func:`sub_solver_name`), :func:`splice` puts the result back into the
full plan.

A neighbourhood is a set of nodes ``S`` and a set of freed jobs ``F``. The
sub-problem keeps the nodes ``S`` with their series and tariffs; a feeder of ``S``
keeps its headroom minus the incumbent net import of its nodes outside ``S``
(those keep their flows); its jobs are ``F`` (free, with their own eligibility restricted to
``S``) and every other job the incumbent runs on ``S``, pinned at its incumbent
(node, start). Everything outside ``S`` keeps its incumbent placement and flows, so
the full objective is the sub-problem's objective plus a constant: solving the
sub-problem exactly solves the neighbourhood exactly.

Measured (2-core machine, neighbourhoods of 12 freed jobs from ``optisched.generate``
instances): building the sub-problem takes 0.4 ms at 100 jobs × 20 nodes × 96 slots and
2.3 ms at 1000 × 100 × 96 (pydantic ``model_copy`` and ``model_construct``, no
re-validation), compiling its index 1-2.5 ms and building its MILP 4-6 ms, small beside
sub-MILPs of 0.05-3 s; so the domain model is the interface, not a restricted model
built by hand.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from optisched.arrays import FloatArray, IntArray
from optisched.bounds.aggregate import linear_nodes
from optisched.dispatch import dispatch, dispatch_load
from optisched.domain import Feeder, Horizon, Job, Problem, ScenarioData
from optisched.evaluate import Evaluation, evaluate
from optisched.index import Index, compile_index
from optisched.plan import Flows, Plan, Status
from optisched.solvers import REGISTRY, solve
from optisched.solvers.base import SolveOptions, plan_from_placement
from optisched.solvers.greedy import run_greedy
from optisched.solvers.options import LnsOptions

__all__ = [
    "PACK_SOLVER",
    "REL_TOL",
    "SubProblem",
    "build_subproblem",
    "feeder_closure",
    "solve_packing",
    "solve_subproblem",
    "splice",
    "sub_solver_name",
]

log = logging.getLogger(__name__)

PACK_SOLVER = "cpsat-pack"
"""Name of the CP-SAT interval sub-model as a sub-solver (:func:`solve_packing`)."""
REL_TOL = 1e-9
"""Relative improvement below which a plan does not count as better."""
SUB_GAP = 1e-6
"""Relative MIP gap of the sub-solves."""

_SLACK = 1e-9
"""Added to a reduced feeder headroom [kW] so the incumbent stays feasible after rounding."""


@dataclass
class SubProblem:
    """A neighbourhood as a problem of its own.

    Attributes
    ----------
    problem : Problem
        The sub-problem.
    nodes : (K,) int
        Global node position of each sub-problem node.
    jobs : (M,) int
        Global job position of each sub-problem job.
    free : (M,) bool
        Whether the sub-problem job is free (else pinned at its incumbent place or
        pinned in the original problem).
    warm : Plan
        The incumbent restricted to the sub-problem (a feasible plan of it).
    index : Index
        The sub-problem's compiled index.
    reduced : bool
        The sub-problem keeps only some of the scenarios (:func:`build_subproblem`'s
        ``keep``): its flows are not those of the full problem's scenarios.
    """

    problem: Problem
    nodes: IntArray
    jobs: IntArray
    free: npt.NDArray[np.bool_]
    warm: Plan
    index: Index
    reduced: bool = False


def feeder_closure(index: Index, nodes: IntArray) -> IntArray:
    """``nodes`` plus every node sharing a feeder with a finite headroom with one of them."""
    nodes = np.unique(np.asarray(nodes, dtype=np.int64))
    fs = {int(f) for f in index.feeder_of[nodes] if f >= 0
          and np.isfinite(index.feeder_headroom[f]).any()}
    if not fs:
        return nodes
    extra = np.nonzero(np.isin(index.feeder_of, list(fs)))[0]
    return np.unique(np.concatenate([nodes, extra])).astype(np.int64)


def _feeders(problem: Problem, index: Index, flows: Flows, nodes: IntArray,
             in_s: npt.NDArray[np.bool_]) -> dict[str, Feeder]:
    """Feeders of ``nodes``, their headroom reduced by the incumbent net import of the others.

    ``H'_t = H_t − Σ_{n ∈ f, n ∉ S} (import − export)_nt``: the nodes outside ``S`` keep
    their incumbent flows, so any flows of ``S`` within ``H'`` keep the whole feeder
    within ``H``; the incumbent's own flows of ``S`` satisfy it. With scenarios: of one
    scenario (its problem, index and flows).
    """
    net = flows.grid_import - flows.grid_export
    out: dict[str, Feeder] = {}
    for f in sorted({int(x) for x in index.feeder_of[nodes] if x >= 0}):
        name = index.feeder_ids[f]
        others = (index.feeder_of == f) & ~in_s
        lim = index.feeder_headroom[f]
        if others.any() and np.isfinite(lim).any():
            lim = np.where(np.isfinite(lim), lim - net[others].sum(axis=0) + _SLACK, lim)
            out[name] = Feeder.model_construct(headroom_kw=[float(v) for v in lim])
        else:
            out[name] = problem.feeders[name]
    return out


def build_subproblem(problem: Problem, index: Index, plan: Plan, nodes: IntArray,
                     free: IntArray, window: tuple[int, int] | None = None,
                     keep: tuple[list[int], FloatArray] | None = None) -> SubProblem:
    """Build the sub-problem of neighbourhood (``nodes``, ``free``) around ``plan``.

    Parameters
    ----------
    problem, index : Problem, Index
        The full problem.
    plan : Plan
        The incumbent (with flows).
    nodes : (K,) int
        Node positions.
    free : array of int
        Jobs to free: not pinned in ``problem``, and each either dropped in the
        incumbent or running on one of ``nodes``.
    window : (int, int), optional
        Slots ``[a, b)``: the freed jobs get release ``max(release, a)`` and, when their
        deadline is hard, deadline ``min(deadline, b)`` (a restriction: the sub-problem's
        plans are plans of the problem); the incumbent placement of every freed job must
        lie inside.
    keep : (list of int, (k,) float), optional
        Scenario positions to keep and their weights (summing to 1): the sub-problem has
        only these scenarios (``reduced``).

    Returns
    -------
    SubProblem
        The sub-problem, its maps back to the full problem and the warm start.
    """
    assert plan.flows is not None
    nodes = np.sort(np.asarray(nodes, dtype=np.int64))
    hz = problem.horizon
    in_s = np.zeros(index.N, dtype=bool)
    in_s[nodes] = True
    is_free = np.zeros(index.J, dtype=bool)
    is_free[np.asarray(free, dtype=np.int64)] = True
    on_s = (plan.node >= 0) & in_s[np.maximum(plan.node, 0)]
    jobs = np.nonzero(is_free | on_s)[0].astype(np.int64)
    sub_jobs = []
    for j in jobs:
        job = problem.jobs[int(j)]
        if not is_free[j] and not job.pinned:
            job = job.model_copy(update={
                "pinned_node": index.node_ids[int(plan.node[j])],
                "pinned_start": hz.time_of(int(plan.start[j])),
            })
        elif window is not None and is_free[j]:
            job = _in_window(job, hz, window)
        sub_jobs.append(job)
    sub_nodes = [problem.nodes[int(n)] for n in nodes]
    ids = {n.node_id for n in sub_nodes}
    tariffs = ({n.tariff: problem.tariffs[n.tariff] for n in sub_nodes}
               if problem.tariffs else {})
    feeders = {} if problem.scenarios else _feeders(problem, index, plan.flows, nodes, in_s)
    sub = Problem.model_construct(
        scenario=problem.scenario, nodes=sub_nodes, jobs=sub_jobs,
        node_series={k: v for k, v in problem.node_series.items() if k in ids},
        tariffs=tariffs, feeders=feeders,
        latency_ms={k: v for k, v in problem.latency_ms.items() if k in ids},
        regions=problem.regions,
        scenarios=_sub_scenarios(problem, index, plan, nodes, in_s, keep),
    )
    pos = np.full(index.N, -1, dtype=np.int64)
    pos[nodes] = np.arange(nodes.size)
    wn = np.where(plan.node[jobs] >= 0, pos[np.maximum(plan.node[jobs], 0)], -1)
    sub_index = compile_index(sub)
    flows = plan.flows.take_rows(nodes)
    if keep is not None:
        flows = flows.take_scenarios(keep[0])
    warm = plan_from_placement(sub, sub_index, "lns", Status.FEASIBLE, wn, plan.start[jobs],
                               flows)
    return SubProblem(sub, nodes, jobs, is_free[jobs], warm, sub_index, keep is not None)


def _in_window(job: Job, hz: Horizon, window: tuple[int, int]) -> Job:
    """``job`` with its window narrowed to slots ``[a, b)`` (soft deadlines kept)."""
    a, b = window
    update: dict[str, object] = {}
    ta, tb = hz.time_of(int(a)), hz.time_of(int(b))
    if job.release is None or job.release < ta:
        update["release"] = ta
    if job.tardiness_per_hour is None and (job.deadline is None or job.deadline > tb):
        update["deadline"] = tb
    return job.model_copy(update=update) if update else job


def _sub_scenarios(problem: Problem, index: Index, plan: Plan, nodes: IntArray,
                   in_s: npt.NDArray[np.bool_], keep: tuple[list[int], FloatArray] | None = None
                   ) -> dict[str, ScenarioData]:
    """The scenarios of the sub-problem (those of ``keep`` with its weights, else all):
    each restricted to ``nodes``, its feeders reduced by the incumbent's flows of that
    scenario outside ``nodes`` (:func:`_feeders`)."""
    if not problem.scenarios:
        return {}
    assert plan.flows is not None
    ids = {index.node_ids[int(n)] for n in nodes}
    items = list(problem.scenarios.items())
    chosen = (list(enumerate(float(sc.weight) for _, sc in items)) if keep is None
              else list(zip(keep[0], (float(w) for w in keep[1]), strict=True)))
    out = {}
    for s, weight in chosen:
        sid, sc = items[s]
        view = problem.scenario_problem(sid)
        out[sid] = ScenarioData.model_construct(
            weight=weight,
            node_series=None if sc.node_series is None else {
                k: v for k, v in sc.node_series.items() if k in ids},
            tariffs=None if sc.tariffs is None else {
                t: v for t, v in sc.tariffs.items() if t in {view.nodes[int(n)].tariff
                                                              for n in nodes}},
            feeders=_feeders(view, index.scenario(s), plan.flows.scenario(s), nodes, in_s))
    return out


def sub_solver_name(options: SolveOptions) -> str:
    """The sub-solver: ``sub_solver`` when given (``cpsat-pack``: the CP-SAT interval model,
    :func:`solve_packing`), else ``highs``, ``cpsat`` or ``greedy``.

    Raises
    ------
    ValueError
        The given ``sub_solver`` is not registered or not installed.
    """
    want = options.params_as(LnsOptions).sub_solver
    if want == PACK_SOLVER:
        if importlib.util.find_spec("ortools") is None:
            raise ValueError(f"sub_solver {want!r} needs ortools, which is not installed")
        return PACK_SOLVER
    if want is not None:
        if want not in REGISTRY or not REGISTRY[want].available():
            raise ValueError(f"sub_solver {want!r} is not registered or not installed")
        return str(want)
    for name in ("highs", "cpsat", "greedy"):
        if name in REGISTRY and REGISTRY[name].available():
            return name
    return "greedy"


def solve_subproblem(name: str, sub: SubProblem, time_limit: float, seed: int,
                     threads: int | None, deterministic: bool = False,
                     pack_workers: int = 1) -> Plan:
    """Solve a sub-problem with the registered solver ``name`` (``greedy`` also unregistered),
    or with the CP-SAT interval sub-model (``name = "cpsat-pack"``, :func:`solve_packing`,
    with ``pack_workers`` CP-SAT workers).

    ``highs``, ``cpsat`` and ``cpsat-pack`` start from the incumbent
    (:attr:`SubProblem.warm`). ``deterministic``: ``time_limit`` is a work budget
    (``solve(..., deterministic=True)``; CP-SAT's deterministic time for ``cpsat-pack``).
    """
    if name == PACK_SOLVER:
        return solve_packing(sub, time_limit, seed, deterministic, pack_workers)
    if name not in REGISTRY:
        return run_greedy(sub.problem, sub.index, SolveOptions(time_limit=time_limit, seed=seed))
    warm = sub.warm if name in ("highs", "cpsat") else None
    return solve(sub.problem, name, time_limit=time_limit, mip_gap=SUB_GAP, seed=seed,
                 threads=threads, warm_start=warm, deterministic=deterministic)


def solve_packing(sub: SubProblem, time_limit: float, seed: int,
                  deterministic: bool = False, workers: int = 1) -> Plan:
    """The CP-SAT interval sub-model of the sub-problem (placement, resources, on/off).

    :func:`~optisched.formulations.packing.build_packing_model` with ``on_off=True`` on the
    sub-problem's index: optional intervals per option (start domains = feasible starts),
    a ``cumulative`` per node and resource with the pinned jobs as fixed intervals, each
    start's energy, latency and tardiness precomputed as a table, the on/off states with
    idle draw and switching; hinted with the incumbent, ``workers`` CP-SAT workers (one when
    ``deterministic``: then ``time_limit`` is CP-SAT's deterministic time), ``seed``. Its flows
    come from the exact dispatch of its placement and on/off states. Status ``optimal``
    only when CP-SAT proves its model optimal and every node is linear
    (:func:`~optisched.bounds.aggregate.linear_nodes`: then the model's objective is the
    sub-problem's cost up to its integer rounding); else ``feasible``.
    """
    from ortools.sat.python import cp_model  # optional at import: lns needs highspy only

    from optisched.formulations.packing import (
        build_packing_model,
        extract_on,
        extract_packing,
        hint_packing,
    )

    ix = sub.index
    pm = build_packing_model(ix, objective=True, on_off=True)
    warm = sub.warm
    assert warm.flows is not None
    hint_packing(pm, warm.node, warm.start, warm.flows.on)
    solver = cp_model.CpSolver()
    if deterministic:  # a work budget: CP-SAT's deterministic time, no clock
        solver.parameters.max_deterministic_time = max(0.05, float(time_limit))
    else:
        solver.parameters.max_time_in_seconds = max(0.05, float(time_limit))
    solver.parameters.random_seed = int(seed) % (2**31 - 1)
    solver.parameters.num_workers = 1 if deterministic else max(1, int(workers))
    # measured on one-machine neighbourhoods of tight 200 × 10 × 288 (23 jobs, 10 s): presolve
    # took 1.7-2.8 s of it and found nothing; without presolve and LP 1209 vs 1330 (hinted 1608)
    solver.parameters.cp_model_presolve = False
    solver.parameters.linearization_level = 0
    code = solver.solve(pm.model)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return Plan.empty(sub.problem, PACK_SOLVER, Status.NO_SOLUTION,
                          f"CP-SAT: {solver.status_name(code)}")
    node, start = extract_packing(pm, solver)
    on = extract_on(pm, solver)
    res = dispatch(ix, node, start, on)
    if not res.feasible or res.flows is None:
        return Plan.empty(sub.problem, PACK_SOLVER, Status.NO_SOLUTION, res.message)
    exact = code == cp_model.OPTIMAL and bool(linear_nodes(ix).all())
    plan = plan_from_placement(sub.problem, ix, PACK_SOLVER,
                               Status.OPTIMAL if exact else Status.FEASIBLE, node, start,
                               res.flows)
    plan.info = {"columns": len(pm.present), "objective_units": solver.objective_value,
                 "cpsat_status": solver.status_name(code)}
    return plan


def splice(problem: Problem, index: Index, best: Plan, objective: float, sub: SubProblem,
           result: Plan) -> tuple[Plan | None, Evaluation | None]:
    """The full plan with the sub-problem's result in place, and its evaluation.

    The sub-problem's flows of ``S`` (exact dispatch within the reduced feeder
    headroom) with the incumbent ``best`` (of ``objective`` [money]) elsewhere form a
    feasible plan. When it is better than the incumbent, the nodes of ``S`` (with their
    whole coupled feeders) are re-dispatched exactly, which never costs more, and the
    cheaper feasible version is returned. None when the spliced plan fails the evaluator.
    """
    assert best.flows is not None and result.flows is not None
    node, start = best.node.copy(), best.start.copy()
    sn = result.node
    node[sub.jobs] = np.where(sn >= 0, sub.nodes[np.maximum(sn, 0)], -1)
    start[sub.jobs] = result.start
    flows = best.flows.copy()
    if sub.reduced:
        # the sub-problem's flows are of its kept scenarios only: the new on/off and load
        # of S, re-dispatched exactly in every scenario
        flows.on[sub.nodes] = result.flows.on
        flows.load[sub.nodes] = result.flows.load
        res = dispatch_load(index, flows.load, nodes=sub.nodes)
        if not res.feasible:
            log.debug("spliced placement has no feasible flows in every scenario")
            return None, None
        res.write_into(flows)
        cand = plan_from_placement(problem, index, "lns", Status.FEASIBLE, node, start, flows)
        ev = evaluate(problem, cand, index)
        return (cand, ev) if ev.feasible else (None, None)
    flows.set_rows(sub.nodes, result.flows)
    cand = plan_from_placement(problem, index, "lns", Status.FEASIBLE, node, start, flows)
    ev = evaluate(problem, cand, index)
    if not ev.feasible:
        log.debug("spliced plan fails the evaluator: %s", ev.violations[:2])
        return None, None
    if ev.objective >= objective - REL_TOL * max(1.0, abs(objective)):
        return cand, ev
    res = dispatch_load(index, flows.load, nodes=sub.nodes)
    if res.feasible:
        flows2 = flows.copy()
        res.write_into(flows2)
        cand2 = plan_from_placement(problem, index, "lns", Status.FEASIBLE, node, start, flows2)
        ev2 = evaluate(problem, cand2, index)
        if ev2.feasible and ev2.objective <= ev.objective:
            return cand2, ev2
    return cand, ev
