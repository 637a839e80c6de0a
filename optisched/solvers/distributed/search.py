"""The decomposed solve: partition, coarse assignment, parallel sub-solves, rounds, bound.

:func:`solve_distributed` is the registry entry of ``distributed``; the package docstring
(:mod:`optisched.solvers.distributed`) states the algorithm.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field, replace

import numpy as np

from optisched.arrays import FloatArray, IntArray
from optisched.domain import Problem
from optisched.index import Index
from optisched.plan import Flows, Plan, Status
from optisched.solvers.base import SolveOptions, plan_from_placement
from optisched.solvers.distributed.backends import Engine, WorkerDied, make_engine
from optisched.solvers.distributed.coarse import assign_jobs, price_proxy
from optisched.solvers.distributed.coordinate import (
    Move,
    current_costs,
    mobile_jobs,
    propose_moves,
    select_pairs,
)
from optisched.solvers.distributed.partition import (
    Partitioning,
    default_partitions,
    job_work,
    node_capacity,
    partition_nodes,
)
from optisched.solvers.distributed.repair import find_room, make_room
from optisched.solvers.distributed.worker import (
    BoundShare,
    BoundSpec,
    CostTask,
    PlanShareTask,
    ShareTask,
    SolveResult,
    SolveTask,
)
from optisched.solvers.options import DistributedOptions

__all__ = ["DEFAULT_TIME_LIMIT", "FirstPath", "choose_path", "plan_slot", "solve_distributed"]

log = logging.getLogger(__name__)

DEFAULT_TIME_LIMIT = 60.0
"""Budget when ``time_limit`` is not given [s]."""
REL_TOL = 1e-9
"""Relative improvement below which a re-solve does not count as better."""
STRICT_ROUNDS = 3
"""Coordination rounds of ``solve(deterministic=True)`` when ``rounds`` is not given."""
FIRST_SOLVE_FLOOR = 10.0
"""Least time limit of a first solve [s]: a plan is needed even when the coarse phase used
the budget (greedy's feasibility engine gets its time limit to place must-run jobs)."""
FIRST_SOLVE_SHARE = 0.4
"""Share of the time left after the coarse phase [-] that the first solves are planned in
when not ``deterministic`` (the LNS runs to its limit; the rest is the rounds'); without a
clock, every first solve's budget is this share over the waves."""
FIRST_SOLVE_WINDOW = 0.9
"""Share of the time left after the coarse phase [-] that the first solves are planned in
when ``deterministic`` (their limits are the safety net behind the work caps; when the caps
end them early the rounds get the rest): the rest is for the last wave's work past its
slot, the bound's last steps and the assembly (0.8 gave the same time on metro-10k and
fewer local-search moves, 1.0 cut the last wave's bound shares)."""
SLOT_MIN = 0.5
"""Least time limit of a planned first solve [s] (its construction and exact dispatch run
past it; the local search does not)."""
LNS_MAX_NODES = 150
"""Largest partition [nodes] that ``sub_solver="auto"`` solves with ``lns``."""
BOUND_SHARE = 0.5
"""Time of a partition's bound passes and capacity steps after its first pass, as a share
of its first solve's budget [-] (the first pass itself may run until :data:`FINAL_RESERVE`
before the deadline)."""
PASS_FILL = 0.85
"""Share of a partition's reference GPU-slots [-] that its own jobs and the dropped jobs
passed on to its first solve may fill (as the coarse model's ``FILL``)."""
REPAIR_SHARE = 0.2
"""Share of the first solves' window [-] kept for the repair waves when the drops of
mobile jobs are all of the first solves' cost (in proportion below that; ``deterministic``
runs with ``repair_waves``)."""
REPAIR_WORK = 0.5
"""A repair re-solve's planned time before any repair wave is measured, as a share of a
first solve's work that no limit stops [-] (its plan's jobs are placed at once, without
checks, and only the dispatch groups whose load changed are dispatched again: at
metro-100k 0.1-1.1 s against 2.3-2.9 s for a construction from hints)."""
REPAIR_FIND = 0.25
"""Share of the time left [-] for the search of free places of a repair wave (the jobs
are looked at densest drop penalty first; the rest wait for the next wave)."""
ROUND_MARGIN = 1.2
"""Factor [-] on the measured time of a sub-solve and of the pricing of the moves when a
round is planned to fit the time left (a round takes the heaviest pairs that fit)."""
MORE_STEPS_MIN = 2.0
"""Least time [s] left before the bound's deadline after the rounds for a wave of more
capacity steps of every share."""
MISSING_SHARES = 0.75
"""Share of the time left before the final reserve [-] that the shares missing after the
first solves may take (their first passes, in parallel): without every partition's share
there is no global bound (0.5 left metro-10k on a loaded machine without a bound whose
shares needed 8.1 s of 13.2 s; the repair and one round took the time)."""
FIXED_PARTS = ("setup", "build", "check")
"""The parts of a first solve's time (``SolveResult.info["timing"]``) that no limit stops."""
FINAL_RESERVE = 0.02
"""Share of the time limit [-] (at least 1 s) kept after every bound computation for the
assembly of the plan and its check by the evaluator."""
CHECK_MARGIN = 1.5
"""Factor [-] on the first solves' evaluator checks, summed, for the time kept for the
check of the whole plan (at least :data:`FINAL_RESERVE`)."""


def plan_slot(now: float, end: float, tasks_left: int, workers: int,
              after: float | None, over: float, bound_share: float) -> tuple[float, float]:
    """The time of the next first solve: its sub-solve's limit and its bound's time [s].

    The ``tasks_left`` tasks not started yet (the next one with them) run ``workers`` at a
    time until ``end`` less ``over`` (the measured mean time by which a task ran past its
    slot: its construction and exact dispatch, which no limit stops): the next task's
    slot is that time over the waves still to run, ``(end − over − now) /
    ceil(tasks_left / workers)``, so a wave that ran longer than its slot shortens the
    later ones and the last ends by ``end``. The bound share after the plan takes the
    measured time of the tasks so far after their plans (``after``; None before any:
    ``bound_share`` of the slot), at most half the slot; the sub-solve gets the rest.

    Parameters
    ----------
    now, end : float
        The present and the end of the first solves [s].
    tasks_left : int
        First solves not started, the next one included [tasks].
    workers : int
        Tasks that run at a time [tasks].
    after : float or None
        Measured time of a task after its plan (its bound share), mean so far [s].
    over : float
        Measured time by which a task ran past its slot, mean so far [s].
    bound_share : float
        Share of the slot [-] of the bound before any task is measured (0: no bound).

    Returns
    -------
    limit, bound_seconds : float
        The sub-solve's time limit (at least :data:`SLOT_MIN`; its local search stops
        there) and the bound's time after its first pass [s].
    """
    waves = math.ceil(max(tasks_left, 1) / max(workers, 1))
    slot = max(0.0, end - max(0.0, over) - now) / waves
    if bound_share <= 0:
        return max(SLOT_MIN, slot), 0.0
    est = bound_share * slot if after is None else min(after, 0.5 * slot)
    return max(SLOT_MIN, slot - est), max(0.0, min(est, bound_share * slot))


@dataclass(frozen=True)
class FirstPath:
    """What the next first solve runs (:func:`choose_path`).

    Attributes
    ----------
    bound : bool
        Its partition's bound share after its plan.
    cheap : bool
        Greedy's construction and exact dispatch only: no local search, no LNS.
    no_bound_from, cheap_from : int or None
        The first task [position in the order of the first solves] without a bound share,
        and the first on the cheap path.
    light : bool
        Its bound share is the first pass only (no further passes, no capacity steps).
    light_from : int or None
        The first task with a first-pass-only share.
    """

    bound: bool = True
    cheap: bool = False
    no_bound_from: int | None = None
    cheap_from: int | None = None
    light: bool = False
    light_from: int | None = None


def choose_path(path: FirstPath, k: int, now: float, stop: float, tasks_left: int, workers: int,
                fixed: list[float], after: list[float],
                bound_stop: float | None = None, first: list[float] | None = None
                ) -> FirstPath:
    """The path of first solve ``k`` (``tasks_left`` with it) from the measured times of
    the tasks answered so far, so that the first solves end by ``stop``.

    The ``ceil(tasks_left / workers)`` waves still to run each take at least the mean
    work that no limit stops (``fixed``: the setup, greedy's construction with its exact
    dispatch, the evaluator's check) and, with the bound, the mean time after a plan
    (``after``: the bound share). When that does not fit before ``stop``, the later
    shares are the first pass only (``light``) when the mean measured first pass
    (``first``) fits instead, else the bound shares end from this task on (a partition
    without a share means no global bound, so the shares of the later ones would be lost
    work); when the work alone and
    :data:`SLOT_MIN` of search do not fit, this task and the later ones take the cheap
    path. Both only switch on, never off again; before any task is answered, ``path``.

    Parameters
    ----------
    path : FirstPath
        The previous task's path.
    k : int
        The task's position in the order of the first solves.
    now, stop : float
        The present and the end of the first solves [s].
    tasks_left : int
        First solves not started, this one included [tasks].
    workers : int
        Tasks that run at a time [tasks].
    fixed, after : list of float
        Per task answered: the work no limit stops and the time after its plan [s].
    bound_stop : float or None
        The latest end of the first solves with their bound shares [s] (the bound is
        worth the time of the later phases: the issue asks for it beside every plan);
        None: ``stop``.
    first : list of float, optional
        Per task answered with a share: the time of its first pass [s] (None or empty:
        no first-pass-only path).

    Returns
    -------
    FirstPath
        This task's path.
    """
    if not fixed:
        return path
    waves = math.ceil(max(tasks_left, 1) / max(workers, 1))
    per = float(np.mean(fixed))
    left = stop - now
    bound_left = (stop if bound_stop is None else max(stop, bound_stop)) - now
    if (path.bound and not path.light
            and waves * (per + (float(np.mean(after)) if after else 0.0)) > bound_left):
        if first:
            path = replace(path, light=True, light_from=k)
        else:
            path = replace(path, bound=False, no_bound_from=k)
    if path.bound and path.light and waves * (per + float(np.mean(first or [0.0]))
                                              ) > bound_left:
        path = replace(path, bound=False, no_bound_from=k)
    if not path.cheap and waves * (per + SLOT_MIN) > left:
        path = replace(path, cheap=True, cheap_from=k)
    return path


def _seed(seed: int, round_: int, part: int) -> int:
    """Seed of partition ``part``'s sub-solve in round ``round_`` (0: the first solve)."""
    return int(np.random.SeedSequence([seed, round_, part]).generate_state(1)[0] & 0x7FFFFFFF)


def solve_distributed(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    """Decomposed solve on Ray or a process pool (see :mod:`optisched.solvers.distributed`)."""
    t0 = time.perf_counter()
    if index.scenarios is not None and index.scenarios.S > 1:
        return Plan.empty(problem, "distributed", Status.ERROR,
                          f"distributed solves problems without scenarios; this one has "
                          f"{index.scenarios.S} (use lns, greedy or highs)")
    params = options.params_as(DistributedOptions)
    deadline = options.deadline(t0, DEFAULT_TIME_LIMIT)
    cores = os.cpu_count() or 1
    count = params.partitions or default_partitions(index, params.workers or cores)
    parts = partition_nodes(index, count)
    t_part = time.perf_counter() - t0
    engine = make_engine(problem, index, params.backend, params.workers, params.ray_address,
                         parts.count)
    t_engine = time.perf_counter() - t0 - t_part
    try:
        run = _Run(problem, index, options, params, parts, engine, t0, deadline)
        run.timings["partition"] = t_part
        run.timings["engine"] = t_engine
        return run.solve()
    except WorkerDied as exc:  # a pool process killed (out of memory?): say so, no traceback
        return Plan.empty(problem, "distributed", Status.ERROR, str(exc))
    finally:
        engine.close()


@dataclass
class _Stats:
    rounds: int = 0
    pairs_tried: int = 0
    pairs_accepted: int = 0
    jobs_moved: int = 0
    polished: int = 0
    polish_improved: int = 0
    merges: int = 0
    repair_waves: int = 0
    repair_tried: int = 0
    repair_kept: int = 0
    repaired: int = 0
    gains: list[float] = field(default_factory=list)


class _Run:
    """One decomposed solve (the state between its phases)."""

    def __init__(self, problem: Problem, index: Index, options: SolveOptions,
                 params: DistributedOptions, parts: Partitioning, engine: Engine, t0: float,
                 deadline: float) -> None:
        self.problem, self.index, self.options, self.params = problem, index, options, params
        self.parts, self.engine, self.t0, self.deadline = parts, engine, t0, deadline
        self.strict = options.deterministic
        if self.strict:  # solve(deterministic=True): work limits only, no clock
            self.deadline = math.inf
        self.timings: dict[str, float] = {}
        self.stats = _Stats()
        self.results: list[SolveResult] = []
        self.part_of_job = np.full(index.J, -1, dtype=np.int64)
        self.lam = np.full(index.J, np.nan)
        self.shares: list[BoundShare] = []
        self.task_seconds = 0.0  # measured wall time of a sub-solve's plan [s]
        self.coarse_best: FloatArray | None = None  # (P, J) the coarse phase's job costs
        self.passed = 0  # dropped jobs passed on to a later first solve [jobs]
        self.work = job_work(index)  # [reference GPU-slots]
        self.cost_seconds = 0.0  # measured wall time of pricing every mobile job [s]
        self.fixed_seconds = 0.0  # measured work of a first solve that no limit stops [s]
        self.check_seconds = 0.0  # the first solves' evaluator checks, summed [s]
        self.path = FirstPath(params.bound)  # the last first solve's path
        self.late_shares = 0  # bound shares computed after the first solves [shares]

    # ------------------------------------------------------------------ phases

    def solve(self) -> Plan:
        tc = time.perf_counter()
        self._coarse()
        self.timings["coarse"] = time.perf_counter() - tc
        tc = time.perf_counter()
        failed = self._first_solves()
        self.timings["first_solves"] = time.perf_counter() - tc
        if failed is not None:
            return Plan.empty(self.problem, "distributed", Status.NO_SOLUTION, failed)
        self.options.report(self.t0, self.objective, None,
                            f"first plan ({self.parts.count} partitions)")
        tc = time.perf_counter()
        self._missing_shares()
        self.timings["missing_shares"] = time.perf_counter() - tc
        tc = time.perf_counter()
        self._repair()
        self.timings["repair"] = time.perf_counter() - tc
        tc = time.perf_counter()
        self._rounds()
        self.timings["rounds"] = time.perf_counter() - tc
        tc = time.perf_counter()
        self._missing_shares(1.0)  # what the first try had no time for, if it fits now
        self.timings["missing_shares"] += time.perf_counter() - tc
        tc = time.perf_counter()
        self._more_steps()
        self.timings["more_bound_steps"] = time.perf_counter() - tc
        return self._plan(self._bound() if self.params.bound else None)

    @property
    def objective(self) -> float:
        """Cost of the assembled plan [money]: the partitions' plus the unassigned drops."""
        left = self.part_of_job < 0
        drop = float(np.nansum(self.index.drop_penalty[left]))
        return float(sum(r.objective for r in self.results)) + drop

    def _coarse(self) -> None:
        """Every job's partition from the coarse LP (:mod:`.coarse`)."""
        ix, parts = self.index, self.parts
        has = np.diff(ix.opt_job_ptr) > 0
        self.mobile = mobile_jobs(ix, parts.part_of) if parts.count > 1 else np.zeros(
            0, dtype=np.int64)
        # a job with options on one partition only goes there; the LP sees the mobile ones
        first = parts.part_of[ix.opt_node[np.minimum(ix.opt_job_ptr[:-1], ix.opt_node.size - 1)]
                              ] if ix.opt_node.size else np.zeros(ix.J, dtype=np.int64)
        self.part_of_job = np.where(has, first, -1).astype(np.int64)
        if self.mobile.size:
            pi0 = price_proxy(ix)
            tasks = [CostTask(p, parts.nodes[p], pi0[parts.nodes[p]], self.mobile)
                     for p in range(parts.count)]
            tc = time.perf_counter()
            costs = self.engine.map("costs", tasks)
            self.cost_seconds = time.perf_counter() - tc
            best = np.stack([c.best for c in costs])
            option = np.stack([c.option for c in costs])
            self.coarse_best = best
            left = self._time_left()
            limit = 0.1 * left if math.isfinite(left) else 60.0
            got = assign_jobs(ix, parts.part_of, best, option, time_limit=max(1.0, limit))
            self.part_of_job[self.mobile] = got.part[self.mobile]
            # every mobile job's price for leaving a partition in the bound (docs §5): the
            # coarse LP's price under congestion, at least its cheapest placement at the
            # idle load's marginal prices, at most its drop penalty
            idle = best[:, self.mobile].min(axis=0)
            price = got.price[self.mobile]
            lam = np.where(np.isfinite(price), np.maximum(price, idle), idle)
            self.lam[self.mobile] = np.fmin(lam, ix.drop_penalty[self.mobile])

    def _jobs_of(self, p: int) -> IntArray:
        return np.nonzero(self.part_of_job == p)[0].astype(np.int64)

    def _task(self, p: int, jobs: IntArray, round_: int, hints: bool,
              budget: float | None = None, floor: float = 0.5,
              slot: tuple[float, float] | None = None) -> SolveTask:
        """A sub-solve of partition ``p`` with ``jobs``; hints: their current placement;
        ``budget``: its time [s] when not deterministic (a safety limit of twice that when
        deterministic), never less than ``floor`` [s]; ``slot``: instead, the sub-solve's
        limit and the bound's time [s] (:func:`plan_slot`), with ``floor`` [s] for
        greedy's feasibility engine."""
        hn = np.full(jobs.size, -1, dtype=np.int64)
        hs_ = np.zeros(jobs.size, dtype=np.int64)
        if hints and self.results:
            node, start = self.node, self.start
            here = self.parts.part_of[np.maximum(node[jobs], 0)] == p
            keep = (node[jobs] >= 0) & here
            hn[keep] = node[jobs][keep]
            hs_[keep] = start[jobs][keep]
        left = max(1.0, self.deadline - time.perf_counter())
        limit = left if math.isfinite(left) else 3600.0
        repair = None
        if slot is not None:
            limit, repair = slot[0], floor
        elif budget is not None:  # deterministic: a safety net behind the work caps
            limit = max(floor, min(limit, budget if not self.params.deterministic
                                   else 2.0 * budget))
        sub = self._sub_solver(p)
        bound = None
        if round_ == 0 and self.params.bound:  # first solves: the partition's bound share
            seconds = slot[1] if slot is not None else BOUND_SHARE * (
                limit if budget is None else budget)
            bound = BoundSpec(self.lam, math.inf if self.strict else seconds,
                              self._bound_until(), self.params.bound_rounds,
                              self.params.bound_iterations)
        return SolveTask(p, self.parts.nodes[p], jobs, hn, hs_,
                         _seed(self.options.seed, round_, p), sub,
                         self.params.greedy_moves, self.params.sub_iterations, limit,
                         self.params.deterministic or self.strict, self.strict, bound,
                         repair)

    def _sub_solver(self, p: int) -> str:
        """The solver of partition ``p`` (option ``sub_solver``; ``auto`` by its size)."""
        sub = self.params.sub_solver
        if sub == "auto":
            sub = "lns" if self.parts.nodes[p].size <= LNS_MAX_NODES else "greedy"
        return sub

    def _bound_until(self) -> float:
        """Wall-clock time (``time.time()``) at which every bound computation stops: the
        deadline less :data:`FINAL_RESERVE` of the time limit (at least 1 s) for the
        assembly and the evaluator's check [s]; ``inf`` without a deadline."""
        if not math.isfinite(self.deadline):
            return math.inf
        return time.time() + (self.deadline - self._final_reserve() - time.perf_counter())

    def _wave_budget(self, tasks: int, share: float) -> float:
        """Time of one sub-solve when ``tasks`` of them share ``share`` of the time left
        before the bound reserve, ``workers`` at a time [s]."""
        waves = math.ceil(max(tasks, 1) / max(self.engine.workers, 1))
        left = self._time_left()
        if not math.isfinite(left):
            left = DEFAULT_TIME_LIMIT
        return max(0.5, share * left / waves)

    def _first_solves(self) -> str | None:
        """Solve every partition; a partition without a plan is merged with the partition
        its jobs have most options on (its jobs and nodes together) and only that merged
        partition is solved again (the other partitions' plans stay)."""
        self.results = self._first_wave()
        self._keep_shares([r.bound for r in self.results])
        while True:
            bad = [r.part for r in self.results if not r.ok]
            if not bad:
                self._assemble()
                return None
            if self.parts.count == 1:
                return self.results[0].message
            log.info("partition %d has no plan (%s); merging it", bad[0],
                     self.results[bad[0]].message)
            keep, gone = self._merge(bad[0])
            results = []
            for r in self.results:
                if r.part in (keep, gone):
                    continue
                if r.part > gone:
                    r.part -= 1
                results.append(r)
            budget = self._wave_budget(1, FIRST_SOLVE_SHARE)
            task = self._task(keep, self._jobs_of(keep), 0, False, budget, FIRST_SOLVE_FLOOR)
            if not self.path.bound:  # the first solves ended the shares: no bound
                task.bound = None
            results.insert(keep, self.engine.map("solve", [task])[0])
            self._keep_shares([results[keep].bound])
            self.results = results

    def _first_wave(self) -> list[SolveResult]:
        """The first solves of every partition, each task planned when a worker is free
        for it (:func:`plan_slot`): the time until the end of the first solves' share of
        the time left, over the waves still to run, less the bound's measured time per
        task. The ``lns`` partitions (the small ones, whose search gains most per second)
        start first, in the widest slots, then the fullest partitions (their drops have the
        most partitions left to be passed on to); a task that ends early leaves its time to the
        later ones. Without a clock (``solve(deterministic=True)``) every task gets the
        same budget."""
        P = self.parts.count
        if not math.isfinite(self.deadline):
            budget = self._wave_budget(P, FIRST_SOLVE_SHARE)
            return self.engine.map("solve", [
                self._task(p, self._jobs_of(p), 0, False, budget, FIRST_SOLVE_FLOOR)
                for p in range(P)])
        now = time.perf_counter()
        det = self.params.deterministic
        # deterministic: the caps end the tasks (then the rounds follow) and the limits are
        # a safety net; else the LNS runs to its limit and the rounds get the rest
        share = FIRST_SOLVE_WINDOW if det else FIRST_SOLVE_SHARE
        factor = 2.0 if det else 1.0  # the sub-solve's part of the slot per bound part
        last = self.deadline - self._final_reserve()  # the latest end of a bound share
        end = min(now + share * self._time_left(), last)
        # time kept for the repair waves, up to REPAIR_SHARE of the window, as the drops of
        # mobile jobs weigh in the cost of the first solves answered so far
        keep = REPAIR_SHARE * (end - now) if det and self.params.repair_waves > 0 else 0.0
        costs = [0.0, 0.0]  # |cost| of the first solves answered, their mobile drops' [money]
        first_share = BOUND_SHARE / (factor + BOUND_SHARE) if self.params.bound else 0.0
        begun: dict[int, tuple[float, float]] = {}
        after: list[float] = []  # a task's time after its plan (its bound share) [s]
        over: list[float] = []  # a task's time past its slot [s]
        plans: list[float] = []  # a task's time to its plan [s]
        firsts: list[float] = []  # a share's first pass [s]
        fixed: list[float] = []  # a task's work that no limit stops, its bound aside [s]
        path = FirstPath(self.params.bound)  # what the next task runs
        # the lns partitions first, then the fullest (by their jobs' GPU-slots): the jobs
        # their first solves drop have the most partitions left to be passed on to
        held = np.bincount(self.part_of_job[self.part_of_job >= 0],
                           weights=self.work[self.part_of_job >= 0], minlength=P)
        fill = np.round(held / np.maximum(self.parts.capacity, 1e-9), 6)
        order = sorted(range(P), key=lambda p: (self._sub_solver(p) != "lns", -fill[p], p))

        dropped: dict[int, int] = {}  # dropped mobile job -> the task that dropped it
        later = set(range(P))  # partitions whose first solve has not started
        # task k takes the drops of tasks up to k − lag only, and is built once they are
        # answered: the same whichever worker was faster
        lag = self.engine.workers

        def make(k: int) -> SolveTask:
            nonlocal path
            p = order[k]
            later.discard(p)
            self._pass_on(p, {j: t for j, t in dropped.items() if t <= k - lag}, later)
            for j in [j for j in dropped if self.part_of_job[j] == p]:
                del dropped[j]
            t = time.perf_counter()
            weight = min(1.0, costs[1] / costs[0]) if costs[0] > 0 else 0.0
            held = keep * weight  # the repair waves' share is not the first solves'
            if costs[1] > 0 and fixed:  # drops to repair: at least one repair re-solve
                held = max(held, min(keep, ROUND_MARGIN * float(np.mean(fixed))))
            stop = end - held
            # the shares may run until the final reserve (the rounds' and repairs' time)
            # when they fit there; later than that, no bound
            path = choose_path(path, k, t, stop, P - k, self.engine.workers, fixed, after,
                               bound_stop=last, first=firsts)
            bound = path.bound
            est = (float(np.mean(firsts)) if path.light else
                   float(np.mean(after)) if after else None) if bound else None
            slot = plan_slot(t, stop, P - k, self.engine.workers, est,
                             float(np.mean(over)) if over else 0.0,
                             first_share if bound else 0.0)
            if path.light:  # the first pass only: it runs past the slot's bound part
                slot = (slot[0], 0.0)
            begun[p] = (t, slot[0] + slot[1])
            log.debug("first solve of partition %d: limit %.2f s, bound %.2f s%s", p, *slot,
                      ", cheap" if path.cheap else "")
            # (a share's passes end at the bound's deadline, ``_bound_until``: ``last``)
            task = self._task(p, self._jobs_of(p), 0, False, None, FIRST_SOLVE_FLOOR, slot)
            if not bound:
                task.bound = None
            if path.cheap:  # greedy's construction and exact dispatch only
                task.sub_solver, task.greedy_moves = "greedy", 0
            return task

        def done(k: int, r: SolveResult) -> None:
            t, planned = begun[r.part]
            total = time.perf_counter() - t
            after.append(max(0.0, total - r.seconds))
            over.append(max(0.0, total - planned))
            plans.append(total - after[-1])
            if r.bound is not None and r.bound.first_seconds > 0:
                firsts.append(r.bound.first_seconds)
            timing = r.info.get("timing")
            if isinstance(timing, dict):  # the worker's own split (else all of it)
                fixed.append(sum(float(timing.get(part, 0.0)) for part in FIXED_PARTS))
                self.check_seconds += float(timing.get("check", 0.0))
            else:
                fixed.append(plans[-1])
            if r.ok:
                lost = r.jobs[(r.node < 0) & np.isin(r.jobs, self.mobile)]
                costs[0] += abs(r.objective)
                costs[1] += float(np.nansum(self.index.drop_penalty[lost]))
            if r.ok and self.coarse_best is not None:  # a later first solve may place
                for j in r.jobs[r.node < 0]:  # the jobs it dropped
                    if self.part_of_job[j] == r.part:
                        dropped[int(j)] = k
            log.debug("first solve of partition %d: %.2f s (%.2f s after its plan, %.2f s "
                      "past its slot), objective %.6g, %s", r.part, total, after[-1],
                      over[-1], r.objective, r.info)

        out = self.engine.map_lazy("solve", P, make, done, lag=lag)
        self.task_seconds = float(np.mean(plans)) if plans else 0.0
        self.fixed_seconds = float(np.mean(fixed)) if fixed else 0.0
        self.path = path
        return [self._without_passed(r) for r in sorted(out, key=lambda r: r.part)]

    def _pass_on(self, p: int, dropped: dict[int, int], later: set[int]) -> None:
        """Give partition ``p`` (whose first solve starts now) the jobs that earlier first
        solves dropped and that are cheapest on ``p`` among the partitions not started
        yet whose GPU-slots left hold them (by the coarse phase's costs; before
        2026-12-03 among all not started: a job cheapest on a full later partition was
        never passed on), as many as ``p``'s capacity left after its own jobs holds
        (reference GPU-slots, :data:`PASS_FILL` of it), the highest drop penalty per
        GPU-slot first. A job it drops again goes on to a later one."""
        best = self.coarse_best
        if best is None or not dropped:
            return
        jobs = np.fromiter(dropped, dtype=np.int64)
        cost = best[:, jobs]
        here = np.isfinite(cost[p])
        work = self.work
        rest = sorted(later)
        if rest:  # the cheapest among the later partitions whose GPU-slots left hold it
            held = np.bincount(self.part_of_job[self.part_of_job >= 0],
                               weights=work[self.part_of_job >= 0],
                               minlength=self.parts.count)
            left = PASS_FILL * self.parts.capacity[rest] - held[rest]
            fits = left[:, None] >= work[jobs][None, :]
            here &= cost[p] <= np.where(fits, cost[rest], np.inf).min(axis=0)
        cand = jobs[here]
        if not cand.size:
            return
        mine = self._jobs_of(p)
        spare = PASS_FILL * float(self.parts.capacity[p]) - float(work[mine].sum())
        if spare <= 0:
            return
        density = self.index.drop_penalty[cand] / np.maximum(work[cand], 1e-9)
        cand = cand[np.lexsort((cand, -density))]
        take = cand[np.cumsum(work[cand]) <= spare]
        self.part_of_job[take] = p
        self.passed += int(take.size)
        log.debug("first solve of partition %d: %d jobs dropped before passed on", p,
                  take.size)

    def _without_passed(self, r: SolveResult) -> SolveResult:
        """``r`` without the jobs that were passed on to another partition after it
        dropped them (its cost less their drop penalties; its plan is unchanged)."""
        gone = self.part_of_job[r.jobs] != r.part
        if not gone.any():
            return r
        keep = ~gone
        assert (r.node[gone] < 0).all(), "a job passed on was placed"
        pen = float(np.nansum(self.index.drop_penalty[r.jobs[gone]]))
        return replace(r, jobs=r.jobs[keep], node=r.node[keep], start=r.start[keep],
                       objective=r.objective - pen)

    def _merge(self, p: int) -> tuple[int, int]:
        """Merge partition ``p`` into the partition where its jobs have most options; the
        merged partition's number (the lower) and the number that is gone (the higher;
        the partitions after it move down by one)."""
        ix, parts = self.index, self.parts
        jobs = self._jobs_of(p)
        mask = np.zeros(ix.J, dtype=bool)
        mask[jobs] = True
        other = parts.part_of[ix.opt_node[mask[ix.opt_job]]]
        other = other[other != p]
        q = int(np.bincount(other, minlength=parts.count).argmax()) if other.size else (
            (p + 1) % parts.count)
        keep = min(p, q)
        part_of = np.where(parts.part_of == max(p, q), keep, parts.part_of)
        part_of = np.where(part_of > max(p, q), part_of - 1, part_of)
        job_part = np.where(self.part_of_job == max(p, q), keep, self.part_of_job)
        job_part = np.where(job_part > max(p, q), job_part - 1, job_part)
        nodes = [np.nonzero(part_of == k)[0].astype(np.int64) for k in range(parts.count - 1)]
        node_cap = node_capacity(ix)
        cap = np.array([float(node_cap[n].sum()) for n in nodes])
        self.parts = Partitioning(part_of=part_of.astype(np.int64), nodes=nodes, capacity=cap)
        self.part_of_job = job_part.astype(np.int64)
        self.mobile = mobile_jobs(ix, self.parts.part_of) if self.parts.count > 1 else \
            np.zeros(0, dtype=np.int64)
        self.stats.merges += 1
        return keep, max(p, q)

    def _assemble(self) -> None:
        """The global placement and flows from the partitions' plans."""
        ix = self.index
        self.node = np.full(ix.J, -1, dtype=np.int64)
        self.start = np.zeros(ix.J, dtype=np.int64)
        self.flows = Flows.zeros(ix.N, ix.T)
        for r in self.results:
            self.node[r.jobs] = r.node
            self.start[r.jobs] = r.start
            assert r.flows is not None
            self.flows.set_rows(self.parts.nodes[r.part], r.flows)
        pinned = ix.pinned
        self.start[pinned & (self.part_of_job < 0)] = ix.pinned_start[pinned & (
            self.part_of_job < 0)]

    # ------------------------------------------------------------------ repair

    def _repair(self) -> None:
        """Repair waves (``docs/algorithms/distributed.md`` §3): the dropped droppable jobs
        that fit the resources the assembled plan leaves free on a node they may use
        (:func:`~optisched.solvers.distributed.repair.find_room`, one place reserved per
        job, none overlapping) are added to the partitions of those places, hinted there,
        and those partitions are solved again from their plans (greedy without local
        search: the plan placed at once, ``SolveTask.trusted``; then each added job at its
        place when that still fits, else at its cheapest place; only the dispatch groups
        whose load changed dispatched again, ``SolveTask.prev_flows``), the dearest
        drops first, as many as fit the time left
        (:meth:`_round_fit`). A re-solve is kept when it is cheaper than its plan with the
        added jobs dropped and runs every job its plan ran; a job it does not place is not
        tried there again. One map per wave, answers in partition order: the same plan on
        every engine."""
        waves = self.params.repair_waves
        if waves <= 0:
            return
        ix, parts = self.index, self.parts
        banned: dict[int, set[int]] = {}
        for wave in range(waves):
            fit = self._round_fit(parts.count, pricing=False, task=self._repair_seconds()) \
                if self.params.rounds is None else parts.count
            if fit == 0:
                log.info("no repair wave: %.1f s left, a sub-solve takes %.1f s",
                         self._time_left() - self._final_reserve(), self.task_seconds)
                break
            assert self.flows is not None
            tc = time.perf_counter()
            pi = price_proxy(ix, grid_import=self.flows.grid_import,
                             grid_export=self.flows.grid_export)
            # the search for places gets a share of the time left (the densest jobs first)
            until = tc + REPAIR_FIND * max(0.0, self._time_left() - self._final_reserve())
            room = find_room(ix, self.node, self.start, self.work, pi, parts.part_of, banned,
                             until)
            moves = None
            if self.params.make_room:
                room, moves = make_room(ix, self.node, self.start, self.work, room,
                                        parts.part_of, pi, banned, until)
            if not room.jobs.size:
                break
            if self.params.rounds is None:  # the search took some of the time
                fit = min(fit, self._round_fit(parts.count, pricing=False,
                                               task=self._repair_seconds()))
                if fit == 0:
                    break
            dest = parts.part_of[room.node]
            pen = ix.drop_penalty[room.jobs]
            worth = np.bincount(dest, weights=pen, minlength=parts.count)
            chosen = [int(p) for p in np.lexsort((np.arange(parts.count), -worth))
                      if worth[p] > 0][:fit]
            chosen.sort()
            added = {p: dest == p for p in chosen}
            moving = np.zeros(ix.J, dtype=np.int64) - 1  # job -> partition it is added to
            for p in chosen:
                moving[room.jobs[added[p]]] = p
            tasks = []
            budget = self._wave_budget(len(chosen), 0.3)
            for p in chosen:
                mine = self._jobs_of(p)
                gone = (moving[mine] >= 0) & (moving[mine] != p)
                jobs = np.union1d(mine[~gone], room.jobs[added[p]]).astype(np.int64)
                task = self._task(p, jobs, 0, True, budget)
                # the plan's placements are trusted (placed at once), the rest checked
                task.trusted = task.hint_node >= 0
                task.prev_flows = self.results[p].flows
                at = np.searchsorted(jobs, room.jobs[added[p]])
                task.hint_node[at] = room.node[added[p]]
                task.hint_start[at] = room.start[added[p]]
                if moves is not None and moves.jobs.size:  # moved jobs: at their new places
                    mv = np.isin(moves.jobs, jobs)
                    at = np.searchsorted(jobs, moves.jobs[mv])
                    task.hint_node[at], task.hint_start[at] = moves.node[mv], moves.start[mv]
                    task.trusted[at] = False
                task.seed = _seed(self.options.seed, 1000 + wave, p)
                task.sub_solver = "greedy"  # insertion from the hints, no search
                task.greedy_moves = 0
                task.bound = None
                tasks.append(task)
            log.info("repair wave %d: %d dropped jobs with room (of %d dropped) into %d "
                     "partitions (%.1f s to find)", wave + 1, room.jobs.size,
                     room.dropped.size, len(chosen), time.perf_counter() - tc)
            ts = time.perf_counter()
            kept_before = self.stats.repair_kept
            out = self.engine.map("solve", tasks)
            n_waves = math.ceil(len(tasks) / max(1, self.engine.workers))
            self.task_seconds = (time.perf_counter() - ts) / n_waves
            self.stats.repair_waves += 1
            self._keep_repairs(chosen, tasks, out, banned)
            self._assemble()
            log.info("repair wave %d: %d of %d re-solves kept, %d jobs dropped now (%.1f s "
                     "per wave of re-solves)", wave + 1, self.stats.repair_kept - kept_before,
                     len(tasks), int(np.sum(self.node < 0)), self.task_seconds)
            self.options.report(self.t0, self.objective, None, f"repair wave {wave + 1}")

    def _keep_repairs(self, chosen: list[int], tasks: list[SolveTask],
                      out: list[SolveResult], banned: dict[int, set[int]]) -> None:
        """Keep every repair re-solve that is cheaper than its plan with the added jobs
        dropped and runs every job its plan ran (``_repair``); a job it leaves dropped is
        not tried on its partition again, nor are the added jobs of one not kept."""
        pen = np.where(np.isnan(self.index.drop_penalty), 0.0, self.index.drop_penalty)
        kept: dict[int, SolveResult] = {}
        gone: dict[int, IntArray] = {}
        for p, task, res in zip(chosen, tasks, out, strict=True):
            self.stats.repair_tried += 1
            old = self.results[p]
            new_in = task.jobs[self.part_of_job[task.jobs] != p]
            out_p = np.setdiff1d(old.jobs, task.jobs)  # its dropped jobs added elsewhere
            ref = old.objective - float(pen[out_p].sum()) + float(pen[new_in].sum())
            placed = res.jobs[res.node >= 0] if res.ok else np.zeros(0, dtype=np.int64)
            if (res.ok and np.isin(old.jobs[old.node >= 0], placed).all()
                    and res.objective < ref - REL_TOL * max(1.0, abs(ref))):
                kept[p], gone[p] = res, out_p
                was_dropped = task.jobs[self.node[task.jobs] < 0]
                self.stats.repaired += int(np.isin(was_dropped, placed).sum())
                for j in res.jobs[res.node < 0]:
                    banned.setdefault(int(j), set()).add(p)
            else:
                for j in new_in:
                    banned.setdefault(int(j), set()).add(p)
        # a kept re-solve's jobs are its partition's; a job it gave to a re-solve that was
        # not kept belongs to no partition (dropped, its penalty in the objective)
        for p in kept:
            self.part_of_job[gone[p]] = -1
        for p, res in kept.items():
            self.part_of_job[res.jobs] = p
            self.results[p] = res
            self.stats.repair_kept += 1
        self.results = [r if r.part in kept else self._without_passed(r)
                        for r in self.results]

    # ------------------------------------------------------------------ rounds

    def _time_left(self) -> float:
        return self.deadline - time.perf_counter()

    def _rounds(self) -> None:
        """Coordination rounds until ``rounds``, convergence or the time limit."""
        P = self.parts.count
        if P == 1 and self.params.rounds is None:
            return
        stale: set[int] = set()
        tabu: set[tuple[int, int]] = set()
        r = 0
        rounds = self.params.rounds
        if rounds is None and self.strict:
            rounds = STRICT_ROUNDS
        while rounds is None or r < rounds:
            fit = self._round_fit(P) if rounds is None else None
            if fit == 0:
                break
            tr = time.perf_counter()
            pairs = self._pairs(tabu, None if fit is None else fit // 2) if P > 1 else []
            touched = {m.a for m in pairs} | {m.b for m in pairs}
            polish = [p for p in range(P) if p not in touched and p not in stale]
            if fit is not None:  # the dearest partitions first, as many as fit
                polish = sorted(sorted(polish, key=lambda p: -self.results[p].objective)[
                    :max(0, fit - 2 * len(pairs))])
            if not pairs and not polish:
                break
            r += 1
            tasks_n = 2 * len(pairs) + len(polish)
            budget = self._wave_budget(tasks_n, 0.3)
            ts = time.perf_counter()
            tasks: list[SolveTask] = []
            for m in pairs:
                tasks += self._pair_tasks(m, r, budget)
            tasks += [self._task(p, self._jobs_of(p), r, True, budget) for p in polish]
            out = self.engine.map("solve", tasks)
            waves = math.ceil(tasks_n / max(1, self.engine.workers))
            self.task_seconds = (time.perf_counter() - ts) / waves
            self._accept(pairs, out[:2 * len(pairs)], tabu, stale)
            for p, res in zip(polish, out[2 * len(pairs):], strict=True):
                self.stats.polished += 1
                old = self.results[p].objective
                if res.ok and res.objective < old - REL_TOL * max(1.0, abs(old)):
                    self.results[p] = res
                    self.stats.polish_improved += 1
                    self.stats.gains.append(old - res.objective)
                    stale.discard(p)
                else:
                    stale.add(p)
            self._assemble()
            self.stats.rounds = r
            last = time.perf_counter() - tr
            self.options.report(self.t0, self.objective, None, f"round {r}: {len(pairs)} pairs")
            log.info("round %d: %d pairs, %d polished, objective %.6g (%.1f s)", r,
                     len(pairs), len(polish), self.objective, last)

    def _round_fit(self, P: int, pricing: bool = True, task: float | None = None) -> int:
        """Sub-solves [tasks] the next round can run before the final reserve: the time
        left less the pricing of the moves (``pricing``), over the measured time of a
        sub-solve (``task``, else the last round's or repair wave's per wave, else the
        first solves' mean), both times :data:`ROUND_MARGIN`, ``workers`` at a time; at
        most ``P``."""
        left = self._time_left() - self._final_reserve()
        if not math.isfinite(left):
            return P
        task = ROUND_MARGIN * (self.task_seconds if task is None else task)
        left -= ROUND_MARGIN * self.cost_seconds if P > 1 and pricing else 0.0
        if left <= 0 or task <= 0:
            return 0 if left <= 0 else P
        return int(min(P, max(0, math.floor(left / task)) * max(1, self.engine.workers)))

    def _final_reserve(self) -> float:
        """Time kept after the rounds for the assembly and the evaluator's check [s]:
        :data:`FINAL_RESERVE` of the time limit, at least 1 s, and at least
        :data:`CHECK_MARGIN` times the first solves' evaluator checks summed (measured
        under the present load: the evaluator's check of the whole plan does their
        work in one process)."""
        if not math.isfinite(self.deadline):
            return 0.0
        return max(1.0, FINAL_RESERVE * (self.deadline - self.t0),
                   CHECK_MARGIN * self.check_seconds)

    def _repair_seconds(self) -> float | None:
        """Planned time of a repair re-solve [s] before any repair wave:
        :data:`REPAIR_WORK` of a first solve's measured work that no limit stops (a repair
        places its plan's jobs at once and dispatches only the groups whose load changed);
        None after a wave (the last wave's measured time per wave) or when not measured."""
        if self.stats.repair_waves or self.fixed_seconds <= 0:
            return None
        return REPAIR_WORK * self.fixed_seconds

    def _pairs(self, tabu: set[tuple[int, int]], limit: int | None = None) -> list[Move]:
        """The round's disjoint partition pairs with their movers (the ``limit``
        heaviest; default: as many as are disjoint)."""
        ix, parts = self.index, self.parts
        most = parts.count // 2 if limit is None else min(limit, parts.count // 2)
        if not self.mobile.size or most <= 0:
            return []
        assert self.flows is not None
        pi = price_proxy(ix, grid_import=self.flows.grid_import,
                         grid_export=self.flows.grid_export)
        cur = current_costs(ix, pi, self.node, self.start)
        tasks = [CostTask(p, parts.nodes[p], pi[parts.nodes[p]], self.mobile)
                 for p in range(parts.count)]
        tc = time.perf_counter()
        best = np.stack([c.best for c in self.engine.map("costs", tasks)])
        self.cost_seconds = time.perf_counter() - tc
        self._only_where_room(best)
        moves = propose_moves(self.part_of_job, cur, best, self.mobile, tabu,
                              self.params.moves_per_pair)
        return select_pairs(moves, most)

    def _only_where_room(self, best: FloatArray) -> None:
        """A dropped job moves only to a partition whose reference GPU-slots left
        (:data:`PASS_FILL` of its capacity less its placed jobs') hold it: ``best`` is
        ``inf`` elsewhere (its energy price alone sends it where it is dropped again)."""
        drop = self.mobile[self.node[self.mobile] < 0]
        if not drop.size:
            return
        work = self.work
        placed = np.nonzero(self.node >= 0)[0]
        used = np.bincount(self.part_of_job[placed], weights=work[placed],
                           minlength=self.parts.count)
        spare = PASS_FILL * self.parts.capacity - used
        full = spare[:, None] < work[drop][None, :]
        best[:, drop] = np.where(full, np.inf, best[:, drop])

    def _pair_tasks(self, m: Move, r: int, budget: float) -> list[SolveTask]:
        """Sub-solves of both partitions of a pair with its movers exchanged."""
        ja, jb = self._jobs_of(m.a), self._jobs_of(m.b)
        new_a = np.union1d(np.setdiff1d(ja, m.to_b), m.to_a).astype(np.int64)
        new_b = np.union1d(np.setdiff1d(jb, m.to_a), m.to_b).astype(np.int64)
        return [self._task(m.a, new_a, r, True, budget), self._task(m.b, new_b, r, True, budget)]

    def _accept(self, pairs: list[Move], out: list[SolveResult],
                tabu: set[tuple[int, int]], stale: set[int]) -> None:
        """Keep every pair whose two re-solves cost less together than before."""
        for k, m in enumerate(pairs):
            ra, rb = out[2 * k], out[2 * k + 1]
            self.stats.pairs_tried += 1
            old = self.results[m.a].objective + self.results[m.b].objective
            new = ra.objective + rb.objective
            if ra.ok and rb.ok and new < old - REL_TOL * max(1.0, abs(old)):
                self.results[m.a], self.results[m.b] = ra, rb
                self.part_of_job[m.to_b] = m.b
                self.part_of_job[m.to_a] = m.a
                self.stats.pairs_accepted += 1
                self.stats.jobs_moved += int(m.to_a.size + m.to_b.size)
                self.stats.gains.append(old - new)
                stale.discard(m.a)
                stale.discard(m.b)
                for key in [t for t in tabu if t[1] in (m.a, m.b)]:
                    tabu.discard(key)
            else:
                tabu.update((int(j), m.b) for j in m.to_b)
                tabu.update((int(j), m.a) for j in m.to_a)

    # ------------------------------------------------------------------ bound and plan

    def _drop(self) -> FloatArray:
        """Every job's drop penalty in the bound [money] (``inf``: must run, or pinned)."""
        ix = self.index
        drop = np.where(np.isnan(ix.drop_penalty), np.inf, ix.drop_penalty)
        drop[ix.pinned] = np.inf
        return np.asarray(drop)

    def _coverage(self) -> IntArray:
        """The number of bound shares each node is in."""
        covered = np.zeros(self.index.N, dtype=np.int64)
        for sh in self.shares:
            covered[sh.nodes] += 1
        return covered

    def _covered(self) -> bool:
        """Whether every node is in exactly one bound share (else there is no bound)."""
        return bool(self.shares) and bool(np.all(self._coverage() == 1))

    def _bound(self) -> float | None:
        """The global bound from the partitions' shares (``docs/algorithms/distributed.md``
        §5): ``Σ_p const_p + Σ_j min(drop_j, min_p best_jp)``; None unless every node is
        in a share. Only arithmetic: the shares were computed in the first solves."""
        ix = self.index
        if not self._covered():
            log.info("bound: %d of %d nodes in a partition's share",
                     int((self._coverage() > 0).sum()), ix.N)
            return None
        cheapest = np.full(ix.J, np.inf)
        for sh in self.shares:
            np.minimum.at(cheapest, sh.jobs, sh.best)
        per_job = np.minimum(cheapest, self._drop())
        if not np.isfinite(per_job).all():
            return None  # a must-run job without a feasible placement
        self.timings["bound"] = float(sum(sh.seconds for sh in self.shares))
        return float(sum(sh.const for sh in self.shares)) + float(per_job.sum())

    def _more_steps(self) -> None:
        """The time the rounds leave before the bound's deadline (at least
        :data:`MORE_STEPS_MIN`): more capacity steps of every share from its best point,
        in parallel, each a wave's part of that time (none without a clock)."""
        if (not self.params.bound or not self.shares or self.strict
                or self.params.bound_iterations == 0 or not math.isfinite(self.deadline)
                or not self._covered()):
            return
        until = self._bound_until()
        left = until - time.time()
        if left < MORE_STEPS_MIN:
            return
        waves = math.ceil(len(self.shares) / max(1, self.engine.workers))
        spec = BoundSpec(self.lam, left / waves, until, 0, self.params.bound_iterations)
        self.shares = self.engine.map("improve_share", [ShareTask(sh, spec)
                                                        for sh in self.shares])

    def _missing_shares(self, share: float = MISSING_SHARES) -> None:
        """The bound shares of the partitions whose first solve had none (a late wave's,
        ``FirstPath.no_bound_from``): their first passes at the load of their plans, in
        parallel, before the repair and the rounds, within ``share`` (default
        :data:`MISSING_SHARES`) of the time left before the final reserve (again after
        the rounds with all of it; ``docs/algorithms/distributed.md`` §5), and
        not at all when the measured first passes (their time per node, ``workers`` at a
        time, times :data:`ROUND_MARGIN`) say they would not all fit there: one missing
        share means no bound, and the repair gets the time. Their capacity steps come
        with :meth:`_more_steps` when the rounds leave time."""
        if not self.params.bound:
            return
        covered = self._coverage() > 0
        todo = [r for r in self.results if r.ok and r.flows is not None
                and not covered[self.parts.nodes[r.part]].all()]
        if not todo:
            return
        left = self._time_left() - self._final_reserve()
        if math.isfinite(left) and left <= 0:
            log.info("bound: no time for the %d missing shares", len(todo))
            return
        if math.isfinite(left) and self.shares:
            # a first pass takes about the measured passes' time per node (the time of
            # the shares the first solves computed), the missing ones ``workers`` at a time
            rate = sum(sh.first_seconds for sh in self.shares) / max(
                1, sum(sh.nodes.size for sh in self.shares))
            size = sum(self.parts.nodes[r.part].size for r in todo)
            need = ROUND_MARGIN * rate * size / max(1, self.engine.workers)
            if need > share * left:
                log.info("bound: no time for the %d missing shares (%.1f s needed, %.1f s "
                         "left)", len(todo), need, left)
                return
        until = time.time() + share * left if math.isfinite(left) else math.inf
        until = min(until, self._bound_until())
        spec = BoundSpec(self.lam, 0.0, until, 0, 0)  # the first pass only
        pos = np.full(self.index.N, -1, dtype=np.int64)
        tasks = []
        for r in todo:
            nodes = self.parts.nodes[r.part]
            pos[nodes] = np.arange(nodes.size)
            task = self._task(r.part, r.jobs, 0, False)
            task.bound = spec
            assert r.flows is not None
            node = np.where(r.node >= 0, pos[np.maximum(r.node, 0)], -1).astype(np.int64)
            tasks.append(PlanShareTask(task, np.asarray(r.flows.load, dtype=float),
                                       r.objective, node, r.start))
        tc = time.perf_counter()
        shares = self.engine.map("plan_share", tasks)
        self._keep_shares(shares)
        done = sum(sh is not None for sh in shares)
        self.late_shares += done
        log.info("bound: %d of %d missing shares computed after the first solves (%.1f s)",
                 done, len(todo), time.perf_counter() - tc)

    def _keep_shares(self, shares: list[BoundShare | None]) -> None:
        """Keep bound shares (None: none computed); a share replaces the shares of its
        nodes (a merged partition's replaces its two parts' shares)."""
        for sh in shares:
            if sh is None:
                continue
            mine = np.zeros(self.index.N, dtype=bool)
            mine[sh.nodes] = True
            self.shares = [o for o in self.shares if not mine[o.nodes].any()] + [sh]

    def _plan(self, bound: float | None) -> Plan:
        ix = self.index
        assert self.flows is not None
        plan = plan_from_placement(self.problem, ix, "distributed", Status.FEASIBLE,
                                   self.node, self.start, self.flows)
        plan.objective = self.objective
        plan.bound = None if bound is None else min(bound, plan.objective)
        st = self.stats
        sizes = [int((self.part_of_job == p).sum()) for p in range(self.parts.count)]
        plan.info = {
            "backend": self.engine.name, "workers": self.engine.workers,
            "partitions": self.parts.count,
            "partition_nodes": [int(n.size) for n in self.parts.nodes],
            "partition_jobs": sizes, "mobile_jobs": int(self.mobile.size),
            "rounds": st.rounds, "pairs_tried": st.pairs_tried,
            "pairs_accepted": st.pairs_accepted, "jobs_moved": st.jobs_moved,
            "polished": st.polished, "polish_improved": st.polish_improved,
            "merges": st.merges, "passed_on": self.passed,
            "repair_waves": st.repair_waves, "repair_tried": st.repair_tried,
            "repair_kept": st.repair_kept, "repaired": st.repaired,
            "dropped": int(np.sum(self.node < 0)),
            "first_no_bound_from": self.path.no_bound_from,
            "first_cheap_from": self.path.cheap_from,
            "first_light_from": self.path.light_from,
            "sub_solver": self.params.sub_solver,
            "bound_source": None if bound is None else "lagrangian (per partition)",
            "bound_iterations": sum(sh.steps for sh in self.shares),
            "bound_passes": sum(sh.passes for sh in self.shares),
            "bound_shares": len(self.shares), "late_shares": self.late_shares,
        }
        total = time.perf_counter() - self.t0
        log.info("plan assembled %.1f s after the start (%.1f s before the deadline; first "
                 "solves: first-pass share from task %s, no bound share from task %s, cheap "
                 "from task %s)", total, self.deadline - time.perf_counter(),
                 self.path.light_from, self.path.no_bound_from, self.path.cheap_from)
        build = self.timings.get("partition", 0.0) + self.timings.get("engine", 0.0)
        plan.timings = {"build": build, "solve": total - build,
                        **{f"phase_{k}": v for k, v in self.timings.items()}}
        self.options.report(self.t0, plan.objective, plan.bound, "done")
        return plan
