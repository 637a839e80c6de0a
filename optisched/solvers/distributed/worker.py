"""What runs in a worker: sub-solves (with their partition's share of the bound), coarse
costs and move costs.

A :class:`PartitionWorker` holds the whole problem and its index, received once (from
Ray's object store, or as the initializer arguments of a pool process), and answers
tasks about one partition at a time. Every task is a small dataclass of positions and
numbers; the answers are dataclasses of arrays. Nothing here depends on the engine that
runs it (:mod:`optisched.solvers.distributed.backends`), so a task gives the same answer
inline, in a pool process or in a Ray actor.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.bounds.lagrangian import LagrangianParts, bound_parts, capacity_parts, job_minima
from optisched.domain import Problem
from optisched.evaluate import evaluate
from optisched.index import Index
from optisched.plan import Flows, Plan, Status
from optisched.solvers.base import Progress, SolveOptions, deterministic_params
from optisched.solvers.distributed.partition import restrict_index, sub_problem
from optisched.solvers.greedy import run_greedy, solve_greedy
from optisched.solvers.lns import solve_lns
from optisched.solvers.options import GreedyOptions, LnsOptions, SolverOptions

__all__ = ["BoundShare", "BoundSpec", "CostTask", "Costs", "PartitionWorker", "PlanShareTask",
           "ShareTask", "SolveResult", "SolveTask"]

log = logging.getLogger(__name__)


@dataclass
class BoundSpec:
    """The partition's share of the global bound, computed after its sub-solve
    (``docs/algorithms/distributed.md`` §5).

    Attributes
    ----------
    lam : (J,) float
        Multiplier ``λ_j`` of the partition-assignment row of every mobile job [money]
        (its price for leaving the partition: its drop penalty in the partition's bound
        problem); ``nan`` for a job with options on one partition only.
    seconds : float
        Time for the passes and capacity steps after the first pass [s].
    until : float
        Wall-clock time (``time.time()``, comparable across processes) at which every
        dispatch LP and capacity step stops, the first pass's too [s].
    rounds : int
        Midpoint passes after the first [passes].
    capacity_iterations : int
        Capacity-price steps over all passes [steps].
    """

    lam: FloatArray
    seconds: float
    until: float
    rounds: int
    capacity_iterations: int


@dataclass
class BoundShare:
    """A partition's share of the global bound: ``const`` plus, for every job with an
    option there, its cheapest placement ``best`` at the partition's prices.

    Attributes
    ----------
    part : int
        Partition.
    nodes : (K,) int
        Its nodes.
    jobs : (M,) int
        The jobs with an option on them (global positions).
    best : (M,) float
        Their cheapest placement at the partition's duals ``π`` and capacity prices ``μ``,
        with the idle share of sleeping nodes [money] (``inf``: none feasible).
    const : float
        The job-free part [money]: ``Σ_g [V_g(L*) − π·L*]`` of its dispatch groups, the
        idle and switching terms and ``−Σ μ·capacity`` of its nodes.
    value : float
        The bound of the partition's own problem (the mobile jobs at drop penalty
        ``λ_j``) [money].
    passes, steps : int
        Dispatch passes and capacity steps run.
    seconds : float
        Time of the bound [s].
    upper : float or None
        The upper bound of the partition's problem its capacity steps aim at [money].
    pi, mu, base, share
        The best point's duals (K, T), capacity prices (K, T, R) or None, job-free part
        without the capacity term [money] and idle share (K, T) (``LagrangianParts``), to
        resume its capacity steps from (:class:`ShareTask`).
    first_seconds : float
        Time of its first pass [s] (what a share at another load would take at least).
    """

    part: int
    nodes: IntArray
    jobs: IntArray
    best: FloatArray
    const: float
    value: float
    passes: int
    steps: int
    seconds: float
    upper: float | None = None
    pi: FloatArray | None = None
    mu: FloatArray | None = None
    base: float = 0.0
    share: FloatArray | None = None
    first_seconds: float = 0.0


@dataclass
class ShareTask:
    """More capacity steps of a partition's bound share, from its best point.

    Attributes
    ----------
    share : BoundShare
        The share so far.
    spec : BoundSpec
        Its multipliers ``λ``; ``seconds`` and ``until`` limit the steps,
        ``capacity_iterations`` counts them.
    """

    share: BoundShare
    spec: BoundSpec


@dataclass
class PlanShareTask:
    """A partition's bound share at the load of a plan it has, computed after the first
    solves for a partition whose first solve had no time for it
    (``docs/algorithms/distributed.md`` §5, "A share for every partition").

    Attributes
    ----------
    task : SolveTask
        The partition (``part``, ``nodes``, ``jobs``) and its ``bound`` spec.
    load : (K, T) float
        The plan's load of the partition's nodes [kW] (the reference of the first pass).
    objective : float
        The plan's cost on the partition's problem [money].
    node, start : (M,) int
        The plan's node (partition positions, -1: dropped) and start of every job of
        ``task.jobs`` (the job LP's first columns).
    """

    task: SolveTask
    load: FloatArray
    objective: float
    node: IntArray
    start: IntArray


@dataclass
class SolveTask:
    """Solve partition ``part`` with jobs ``jobs``.

    Attributes
    ----------
    part : int
        Partition.
    nodes, jobs : (K,), (M,) int
        Its nodes and the jobs assigned to it (sorted global positions).
    hint_node, hint_start : (M,) int
        Warm start per job: a global node (-1: none, the job is inserted by the greedy
        construction) and a start slot.
    seed : int
        Seed of the sub-solve.
    sub_solver : str
        ``lns`` or ``greedy``.
    greedy_moves, lns_iterations : int
        Work caps of the greedy local search [moves] and the LNS [iterations].
    time_limit : float
        Limit of the sub-solve [s]: a safety limit when ``deterministic`` (the caps end it
        first in a normal run), else the LNS's budget.
    deterministic : bool
        End by the work caps (else the LNS runs until ``time_limit``).
    strict : bool
        ``solve(deterministic=True)``: the sub-solves run in the deterministic mode of
        :func:`optisched.solvers.base.deterministic_params` (work limits, no clock).
    bound : BoundSpec or None
        Compute the partition's share of the bound after the plan.
    repair_time_limit : float or None
        Budget of greedy's feasibility engine when its construction leaves must-run jobs
        out [s] (None: what is left of ``time_limit``), so that a short ``time_limit``
        (which ends the local search) does not cost the plan.
    trusted : (M,) bool or None
        A repair re-solve (``docs/algorithms/distributed.md`` §3): the hints of these jobs
        are the partition's plan, which fit together, and are placed at once without
        checks; then, in greedy's order, every other job at its hint when that still
        fits, else at its cheapest feasible place, else it is dropped. None: every hint is
        tried with its checks, in greedy's order.
    prev_flows : Flows or None
        With ``trusted``: the flows of the partition's plan ``(K, T)``; the dispatch groups
        whose load and on-state the re-solve leaves unchanged keep them (not dispatched
        again).
    """

    part: int
    nodes: IntArray
    jobs: IntArray
    hint_node: IntArray
    hint_start: IntArray
    seed: int
    sub_solver: str
    greedy_moves: int
    lns_iterations: int
    time_limit: float
    deterministic: bool = True
    strict: bool = False
    bound: BoundSpec | None = None
    repair_time_limit: float | None = None
    trusted: BoolArray | None = None
    prev_flows: Flows | None = None


@dataclass
class SolveResult:
    """The plan of one partition.

    Attributes
    ----------
    part : int
        Partition.
    jobs : (M,) int
        Its jobs (global positions, as in the task).
    ok : bool
        A plan that passes the evaluator on the partition's problem.
    message : str
        Why not, when not ``ok``.
    node, start : (M,) int
        Global node (-1: dropped) and start of every job.
    flows : Flows or None
        Flows of the partition's nodes ``(K, T)``.
    objective : float
        The partition's cost [money] (the evaluator's, on the partition's problem).
    seconds : float
        Time of the sub-solve [s].
    info : dict
        Counts of the sub-solve (LNS iterations, moves).
    bound : BoundShare or None
        The partition's share of the bound (when asked for, and done in time).
    """

    part: int
    jobs: IntArray
    ok: bool
    message: str
    node: IntArray
    start: IntArray
    flows: Flows | None
    objective: float
    seconds: float
    info: dict[str, object] = field(default_factory=dict)
    bound: BoundShare | None = None


@dataclass
class CostTask:
    """Cheapest placement of jobs on the nodes of one partition at prices ``pi``.

    Attributes
    ----------
    part : int
        Partition.
    nodes : (K,) int
        Its nodes.
    pi : (K, T) float
        Marginal energy price of those nodes [money/kW per slot].
    jobs : (M,) int or None
        The jobs to price (default: all).
    """

    part: int
    nodes: IntArray
    pi: FloatArray
    jobs: IntArray | None = None


@dataclass
class Costs:
    """Answer to a :class:`CostTask`: per job (all ``J``), the cheapest cost on the
    partition [money] (``inf`` when none of its options is there), that option (-1) and
    its start."""

    part: int
    best: FloatArray
    option: IntArray
    start: IntArray


class PartitionWorker:
    """The problem and index of a worker, and the tasks it answers.

    Parameters
    ----------
    problem : Problem
        The whole problem.
    index : Index
        Its compiled index (arrays read only).
    """

    def __init__(self, problem: Problem, index: Index) -> None:
        self.problem = problem
        self.index = index

    def ping(self) -> int:
        """A no-op (the engine's start-up check)."""
        return 0

    def _options_on(self, nodes: IntArray, jobs: IntArray | None = None) -> IntArray:
        ix = self.index
        on = np.zeros(ix.N, dtype=bool)
        on[nodes] = True
        keep = on[ix.opt_node]
        if jobs is not None:
            want = np.zeros(ix.J, dtype=bool)
            want[jobs] = True
            keep &= want[ix.opt_job]
        return np.nonzero(keep)[0].astype(np.int64)

    def costs(self, task: CostTask) -> Costs:
        """Each job's cheapest option on the partition at the task's prices."""
        ix = self.index
        pi = np.zeros((ix.N, ix.T))
        pi[task.nodes] = task.pi
        best, option, start = job_minima(ix, pi, options=self._options_on(task.nodes,
                                                                           task.jobs))
        return Costs(task.part, best, option, start)

    def solve(self, task: SolveTask) -> SolveResult:
        """Solve the partition: greedy from the hints (inserting unhinted jobs), then the
        LNS from that plan (``sub_solver="lns"``), each within its work cap."""
        t0 = time.perf_counter()
        ix = restrict_index(self.index, task.nodes, task.jobs)
        prob = sub_problem(self.problem, task.nodes, task.jobs)
        t_setup = time.perf_counter() - t0
        built: list[float] = []  # when greedy's construction and exact dispatch ended

        def mark(progress: Progress) -> None:
            if progress.message == "construction" and not built:
                built.append(time.perf_counter())
        pos = np.full(self.index.N, -1, dtype=np.int64)
        pos[task.nodes] = np.arange(task.nodes.size)
        hinted = task.hint_node >= 0
        sub_node = np.where(hinted, pos[np.maximum(task.hint_node, 0)], -1)
        warm = None
        if hinted.any() and task.trusted is None:
            warm = Plan(solver="distributed", status=Status.FEASIBLE, job_ids=ix.job_ids,
                        node_ids=ix.node_ids, node=sub_node.astype(np.int64),
                        start=np.asarray(task.hint_start, dtype=np.int64))
        deadline = t0 + task.time_limit
        gparams: SolverOptions = GreedyOptions(iterations=task.greedy_moves,
                                               second_start=False,
                                               repair_time_limit=task.repair_time_limit)
        glimit: float | None = task.time_limit
        if task.strict:
            gparams, glimit = deterministic_params(gparams, task.time_limit)
        gopts = SolveOptions(time_limit=glimit, seed=task.seed, warm_start=warm,
                             params=gparams, deterministic=task.strict, callback=mark)
        tg = time.perf_counter()
        if task.trusted is not None:  # a repair: the plan's placements at once, the rest inserted
            ok = hinted & ~ix.pinned
            hint, checked = ({int(j): (int(sub_node[j]), int(task.hint_start[j]))
                              for j in np.nonzero(ok & m)[0]}
                             for m in (task.trusted, ~task.trusted))
            plan = run_greedy(prob, ix, gopts, hint=hint, trusted=True,
                              prev_flows=task.prev_flows, checked=checked)
        else:
            plan = solve_greedy(prob, ix, gopts)
        tl = time.perf_counter()
        t_build = (built[0] if built else tl) - tg
        info: dict[str, object] = {"greedy": plan.status.value,
                                   "greedy_moves": plan.info.get("moves_tried", 0),
                                   "construction": plan.info.get("construction_objective")}
        iters = task.lns_iterations if task.deterministic else None
        if plan.status.has_plan and task.sub_solver == "lns" and (iters is None or iters > 0):
            left = max(0.5, deadline - time.perf_counter())
            lparams: SolverOptions = LnsOptions(max_iterations=iters, lp_bound=False,
                                                restricted_master=False, improved_bound=False)
            llimit: float | None = left
            if task.strict:
                lparams, llimit = deterministic_params(lparams, task.time_limit)
            # one thread: the partitions' tasks share the cores
            lopts = SolveOptions(time_limit=llimit, seed=task.seed, warm_start=plan,
                                 params=lparams, deterministic=task.strict, threads=1)
            better = solve_lns(prob, ix, lopts)
            if better.status.has_plan:
                info["lns_iterations"] = better.info.get("iterations")
                plan = better
        # the work no time limit stops (the setup, greedy's construction with its exact
        # dispatch, the evaluator's check) and the search the limit stops [s]
        timing = {"setup": t_setup, "build": t_build,
                  "search": time.perf_counter() - tg - t_build,
                  "construct": float(plan.timings.get("build", 0.0))}  # within build
        info["timing"] = timing
        jobs = task.jobs
        if not plan.status.has_plan or plan.flows is None:
            return SolveResult(task.part, jobs, False, plan.message or plan.status.value,
                               np.full(jobs.size, -1, dtype=np.int64),
                               np.zeros(jobs.size, dtype=np.int64), None, math.inf,
                               time.perf_counter() - t0, info)
        te = time.perf_counter()
        ev = evaluate(prob, plan, ix)
        timing["check"] = time.perf_counter() - te
        node = np.where(plan.node >= 0, task.nodes[np.maximum(plan.node, 0)], -1)
        if not ev.feasible:
            msg = "; ".join(str(v) for v in ev.violations[:3])
            return SolveResult(task.part, jobs, False, msg, node.astype(np.int64),
                               plan.start.copy(), None, math.inf,
                               time.perf_counter() - t0, info)
        seconds = time.perf_counter() - t0
        share = None
        if task.bound is not None:
            tb = time.perf_counter()
            share = self.bound_share(task, np.asarray(plan.flows.load, dtype=float),
                                     float(ev.objective), (plan.node, plan.start))
            timing["bound"] = time.perf_counter() - tb
        return SolveResult(task.part, jobs, True, "", node.astype(np.int64), plan.start.copy(),
                           plan.flows, float(ev.objective), seconds, info, share)

    def bound_share(self, task: SolveTask, load: FloatArray, objective: float,
                    placement: tuple[IntArray, IntArray] | None = None) -> BoundShare | None:
        """The partition's share of the global bound at the reference load ``load``
        (K, T) [kW] of its plan (cost ``objective`` [money]; ``placement``: its node
        (partition positions, -1: dropped) and start per job of ``task.jobs``, the seed of
        the job LP): the bound of its own problem (every job with an option on its nodes; a
        mobile job may leave at its multiplier ``λ_j``) by
        :func:`optisched.bounds.lagrangian.bound_parts`, within the task's times. None
        when its first pass is not done by ``until``."""
        spec = task.bound
        assert spec is not None
        t0 = time.perf_counter()
        now = time.time()
        hard = t0 + (spec.until - now) if math.isfinite(spec.until) else math.inf
        soft = min(hard, t0 + spec.seconds)
        jobs, sub, drop = self._bound_index(task.nodes, spec.lam)
        # a plan of the partition's problem: the partition's, the others dropped
        away = ~np.isin(jobs, task.jobs)
        upper: float | None = objective + float(np.sum(drop[away]))
        if not (upper is not None and math.isfinite(upper)):
            upper = None
        seed = None
        if placement is not None:  # the plan's jobs among the bound problem's
            at = np.searchsorted(jobs, task.jobs)
            node = np.full(jobs.size, -1, dtype=np.int64)
            start = np.zeros(jobs.size, dtype=np.int64)
            node[at], start[at] = placement
            seed = (node, start)
        parts = bound_parts(sub, load, spec.rounds, hard, upper, spec.capacity_iterations,
                            soft_deadline=soft, placement=seed)
        if parts is None:
            log.info("partition %d: no bound share before the deadline", task.part)
            return None
        return _share(task.part, task.nodes, jobs, parts, time.perf_counter() - t0, upper)

    def plan_share(self, task: PlanShareTask) -> BoundShare | None:
        """The partition's share of the global bound at its plan's load
        (:meth:`bound_share` within ``task.task.bound``'s times); None when its first
        pass is not done by then."""
        return self.bound_share(task.task, task.load, task.objective, (task.node, task.start))

    def _bound_index(self, nodes: IntArray, lam: FloatArray
                     ) -> tuple[IntArray, Index, FloatArray]:
        """The jobs with an option on ``nodes``, the index of the partition's bound problem
        (a mobile job's drop penalty is its ``λ_j``) and those drop penalties."""
        ix = self.index
        jobs = np.unique(ix.opt_job[self._options_on(nodes)]).astype(np.int64)
        sub = restrict_index(ix, nodes, jobs)
        mine = lam[jobs]
        drop = np.asarray(np.where(np.isfinite(mine), mine, sub.drop_penalty), dtype=float)
        return jobs, sub.replace(drop_penalty=drop), drop

    def improve_share(self, task: ShareTask) -> BoundShare:
        """More capacity steps of a share at its duals from its prices
        (:func:`optisched.bounds.lagrangian.capacity_parts`), until ``spec.seconds`` or
        ``spec.until``; the better of the two shares (by the partition's own bound)."""
        old, spec = task.share, task.spec
        if old.pi is None or old.upper is None:
            return old
        t0 = time.perf_counter()
        hard = t0 + (spec.until - time.time()) if math.isfinite(spec.until) else math.inf
        deadline = min(hard, t0 + spec.seconds)
        if time.perf_counter() >= deadline:
            return old
        # each evaluation is expected to take at most the share's time per pass or step
        # so far (a pass costs more than a step)
        per = old.seconds / (old.passes + old.steps + 1)
        if time.perf_counter() + per >= deadline:
            return old
        jobs, sub, _ = self._bound_index(old.nodes, spec.lam)
        parts = capacity_parts(sub, old.pi, old.base, old.upper, spec.capacity_iterations,
                               deadline, old.mu, step_seconds=per, share=old.share)
        if parts is None or not parts.value > old.value:
            return old
        return _share(old.part, old.nodes, jobs, parts,
                      old.seconds + time.perf_counter() - t0, old.upper,
                      passes=old.passes, steps=old.steps + parts.steps,
                      first_seconds=old.first_seconds)


def _share(part: int, nodes: IntArray, jobs: IntArray, parts: LagrangianParts,
           seconds: float, upper: float | None, passes: int | None = None,
           steps: int | None = None, first_seconds: float | None = None) -> BoundShare:
    """A :class:`BoundShare` of ``parts`` (of the partition's bound problem)."""
    return BoundShare(part, nodes, jobs, parts.best, parts.const, parts.value,
                      parts.passes if passes is None else passes,
                      parts.steps if steps is None else steps, seconds, upper, parts.pi,
                      parts.mu, parts.base, parts.share,
                      parts.first_seconds if first_seconds is None else first_seconds)

