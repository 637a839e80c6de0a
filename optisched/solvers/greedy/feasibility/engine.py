"""The feasibility engine's driver: :func:`repair_placement`.

Hard phase first: the engine minimises the must-run work left out, and only then does
the caller's local search minimise cost. :func:`repair_placement` repeats cycles of
the following until every must-run job is placed, the budget is spent or a proof of
infeasibility is found:

1. **A round of repair steps.** Every unplaced must-run job, hardest first
   (:func:`~optisched.solvers.greedy.feasibility.orders.difficulty`, ``mixed``), gets
   one repair step (:meth:`~optisched.solvers.greedy.feasibility.eject.EjectionChain.place`:
   plain insertion at the cheapest place, else an ejection chain). Such a step never
   loses a placed job. The first cycle uses the cheapest effort of :data:`LEVELS` and at
   most :data:`FIRST_ROUND_SHARE` of the budget; each later cycle the next level (deeper
   chains, more windows, noise on the rankings).
2. **Exact packing first where it is small** (models of at most
   :data:`EXACT_FIRST_STARTS` (option, start) pairs): CP-SAT's packing model
   (:mod:`optisched.formulations.packing`: assignment, windows and resources; power
   left out) gets :data:`EXACT_SHARE` of the budget left. A packing it finds is applied
   through the construction's checks; a model it proves infeasible is a proof (the
   packing model is a relaxation of the problem, :mod:`.proof`).
3. **The overload search.** What is left out goes into a min-conflicts search that
   places every job and removes overload
   (:class:`~optisched.solvers.greedy.feasibility.conflicts.ConflictSearch`; resources,
   and the import limit as a resource). Its best placement replaces the state when it
   leaves fewer must-run jobs out (it is written back through the construction's
   checks, so jobs that the feeder headroom refuses stay out for the next round). In the
   first cycle it may use :data:`CONFLICT_SHARE` of the budget left when the exact
   model is still to come, else all of it.
4. **Exact packing** on models of at most :data:`EXACT_MAX_STARTS` pairs, once, if step
   2 did not run.
5. **Restart** (when the budget left holds two constructions): the placement is emptied
   and constructed again in a difficulty order (:data:`RESTART_ORDERS` in turn, with
   random noise from the second cycle of orders on), the jobs left out last time first.

The best placement seen (fewest must-run jobs left out, then least left-out weight)
is the one returned. The state is always a valid partial placement: every placed job
passed the construction's checks (capacity, availability, node and feeder headroom
with the battery idle), so it has feasible flows.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from optisched.arrays import IntArray
from optisched.index import explain_job
from optisched.solvers.greedy.construct import construct
from optisched.solvers.greedy.feasibility.conflicts import ConflictSearch
from optisched.solvers.greedy.feasibility.eject import EjectionChain, StepLimits
from optisched.solvers.greedy.feasibility.orders import difficulty, difficulty_order
from optisched.solvers.greedy.feasibility.proof import exact_packing, start_pairs
from optisched.solvers.greedy.scan import Scorer
from optisched.solvers.greedy.state import GreedyState, Placement

__all__ = ["CONFLICT_SHARE", "EXACT_FIRST_STARTS", "EXACT_MAX_STARTS", "EXACT_SHARE",
           "FIRST_ROUND_SHARE", "LEVELS", "RESTART_ORDERS", "RepairResult", "repair_placement"]

log = logging.getLogger(__name__)

LEVELS = (
    StepLimits(depth=1, breadth=4, deep_breadth=2, shortlist=8, work=40),
    StepLimits(depth=2, breadth=6, deep_breadth=3, shortlist=12, work=150),
    StepLimits(depth=3, breadth=8, deep_breadth=3, shortlist=16, work=300, noise=0.3),
    StepLimits(depth=3, breadth=10, deep_breadth=4, shortlist=24, work=400, noise=0.6),
)
"""Effort of the repair rounds, cycle by cycle (the last one repeats)."""
FIRST_ROUND_SHARE = 0.15
"""Share of the budget left that the first round of repair steps may use before the overload
search takes over [-] (ICON sample09: 89 jobs left out, 60 ms per step)."""
CONFLICT_SHARE = 0.5
"""Share of the budget left that the first overload search may use when the exact packing
model may follow [-]."""
EXACT_MAX_STARTS = 200_000
"""Most (option, start) pairs for the exact CP-SAT packing model. Measured (one worker,
loaded 2-core machine): ICON samples 04-06 (58k-152k pairs) pack in 0.15 / 3.4 / 17.6 s,
tight 200 × 10 instances (212k-219k) in 1.5-2.2 s."""
EXACT_FIRST_STARTS = 50_000
"""Up to this many (option, start) pairs the exact model runs before the overload search:
tight 30 × 2 and 40 × 3 instances (4.5k-11.5k pairs) pack in 0.02-0.36 s where the overload
search did not finish in 50k iterations for some seeds."""
EXACT_SHARE = 0.5
"""Share of the budget left that the exact packing model may use [-]."""
EXACT_MAX_LIMIT = 60.0
"""Most seconds the exact packing model gets [s]."""
EXACT_DEFAULT_LIMIT = 10.0
"""The exact packing model's limit in step-capped runs: CP-SAT's deterministic time
(``max_deterministic_time``, about seconds of one core), so the answer does not depend on
the machine's speed [-]."""
RESTART_ORDERS = ("slack", "mixed", "area", "eligible")
"""Difficulty orders of the restarts, in turn (the greedy's own, least slack first, packs
ICON-class instances best: samples 01-09 leave 3-89 jobs out in the greedy's order,
3-305 in the area order)."""
_DIAGNOSED = 10
"""Left-out jobs whose reason is diagnosed for the message."""


@dataclass
class RepairResult:
    """What :func:`repair_placement` did.

    Attributes
    ----------
    complete : bool
        Every must-run job (with an option) is placed.
    left_out : (k,) int
        Must-run jobs still unplaced (positions), hardest first.
    reasons : dict of int to str
        Why each of the first left-out jobs finds no place now (the scorer's diagnosis).
    proof : str or None
        A proof that no plan exists (then the problem is infeasible), else None.
    stopped : str
        ``"complete"``, ``"deadline"`` (the budget is spent), ``"steps"`` (the step cap
        is reached) or ``"proof"``.
    steps : int
        Work done [steps]: repair steps, overload-search iterations, jobs constructed by
        restarts.
    repaired, rounds, restarts : int
        Repair steps that placed their job, rounds of repair steps, restarts of the
        construction.
    conflict_iterations : int
        Iterations of the overload search.
    exact : str
        What the exact packing model did: ``""`` (not run), ``"packed"``, ``"infeasible"``,
        ``"unknown"`` (no answer in its budget).
    elapsed : float
        Seconds spent [s].
    """

    complete: bool
    left_out: IntArray
    reasons: dict[int, str] = field(default_factory=dict)
    proof: str | None = None
    stopped: str = "complete"
    steps: int = 0
    repaired: int = 0
    rounds: int = 0
    restarts: int = 0
    conflict_iterations: int = 0
    exact: str = ""
    elapsed: float = 0.0

    def message(self, job_ids: list[str]) -> str:
        """What was left out and why, in user terms (empty when complete)."""
        if self.complete:
            return ""
        if self.proof is not None:
            return self.proof
        why = {"deadline": "the time limit is spent", "steps": "the repair-step cap is reached"}
        parts = [f"job {job_ids[j]} ({self.reasons[int(j)]})" if int(j) in self.reasons
                 else f"job {job_ids[j]}" for j in self.left_out[:_DIAGNOSED]]
        more = self.left_out.size - min(self.left_out.size, _DIAGNOSED)
        tail = f" and {more} more" if more > 0 else ""
        return (f"{self.left_out.size} must-run job(s) left out after {self.elapsed:.1f} s of "
                f"repair ({self.rounds} rounds of repair steps, {self.conflict_iterations} "
                f"overload-search iterations, {self.restarts} restarts; "
                f"{why.get(self.stopped, self.stopped)}): " + ", ".join(parts) + tail
                + "; no proof of infeasibility was found")


def _left_out(state: GreedyState, jobs: IntArray | None) -> IntArray:
    ix = state.index
    has = np.diff(ix.opt_job_ptr) > 0
    mask = (state.opt < 0) & ix.must_run & has
    if jobs is not None:
        keep = np.zeros(ix.J, dtype=bool)
        keep[jobs] = True
        mask &= keep
    return np.nonzero(mask)[0].astype(np.int64)


def repair_placement(state: GreedyState, scorer: Scorer, *, deadline: float, seed: int = 0,
                     jobs: IntArray | None = None, max_steps: int | None = None,
                     restarts: bool = True, exact: bool = True,
                     construct_time: float | None = None) -> RepairResult:
    """Place the must-run jobs that ``state`` leaves out, moving others out of their way.

    Parameters
    ----------
    state : GreedyState
        A partial placement (every placed job passed the construction's checks);
        changed in place. On return it holds the best placement found (fewest must-run
        jobs left out); its exact objective is not computed (call
        :meth:`~GreedyState.evaluate_all`).
    scorer : Scorer
        Scores insertions into ``state``.
    deadline : float
        ``time.perf_counter()`` value at which to stop [s] (``math.inf``: none; then
        give ``max_steps``).
    seed : int
        Seed of every random choice (noise of the rankings, the overload search,
        CP-SAT, restarts).
    jobs : (k,) int, optional
        Only these unplaced must-run jobs are to be placed (default: all). The overload
        search, the exact model and restarts, which may move any job, are off when
        given: only repair steps run.
    max_steps : int, optional
        Cap on work [steps]: a repair step, an iteration of the overload search and each
        job a restart constructs count one. With a cap and no deadline the result is
        reproducible for a seed (the exact model then runs to CP-SAT's deterministic
        time limit, :data:`EXACT_DEFAULT_LIMIT`).
    restarts : bool
        Allow restarts of the construction in difficulty orders.
    exact : bool
        Allow the exact CP-SAT packing model on small instances (it also proves
        infeasibility).
    construct_time : float, optional
        What one construction took [s] (a restart needs twice that left); default:
        measured at the first restart.

    Returns
    -------
    RepairResult
        Whether every must-run job is placed, what was left out and why, or a proof.

    Raises
    ------
    ValueError
        Neither a finite ``deadline`` nor ``max_steps`` is given (the search could run
        for ever on an infeasible problem).
    """
    if not math.isfinite(deadline) and max_steps is None:
        raise ValueError("repair_placement needs a finite deadline or max_steps")
    t0 = time.perf_counter()
    ix = state.index
    stuck = np.nonzero(ix.must_run & ~ix.pinned & (np.diff(ix.opt_job_ptr) == 0)
                       & (state.opt < 0))[0]
    if jobs is not None:
        stuck = stuck[np.isin(stuck, jobs)]
    if stuck.size:  # no eligible (node, start) at all: a proof, nothing to search
        j = int(stuck[0])
        return RepairResult(complete=False, left_out=stuck.astype(np.int64),
                            proof=explain_job(state.problem, ix, j) + " (it must run)",
                            stopped="proof", elapsed=time.perf_counter() - t0)
    repair = _Repair(state, scorer, deadline=deadline, seed=seed, jobs=jobs,
                     max_steps=max_steps, restarts=restarts, exact=exact,
                     construct_time=construct_time)
    repair.run()
    res = repair.finish()
    res.elapsed = time.perf_counter() - t0
    return res


class _Repair:
    """The state of one :func:`repair_placement` call and its steps (the numbered steps
    of the module docstring, one method each).

    Attributes
    ----------
    res : RepairResult
        Filled in as the steps run.
    chain : EjectionChain
        The repair steps' chain, made again whenever the state is replaced.
    pending : (k,) int
        Must-run jobs left out now.
    best, best_key
        The best placement seen (None: the current state) and its :func:`_key`.
    exact_left : bool
        The exact packing model may still run (it runs once).
    cycle : int
        Cycles of repair rounds done.
    failed_last : list of int
        Jobs left out by the last restarts, most recent first (placed first next time).
    """

    def __init__(self, state: GreedyState, scorer: Scorer, *, deadline: float, seed: int,
                 jobs: IntArray | None, max_steps: int | None, restarts: bool, exact: bool,
                 construct_time: float | None) -> None:
        self.state, self.scorer, self.deadline, self.seed = state, scorer, deadline, seed
        self.jobs, self.max_steps, self.restarts = jobs, max_steps, restarts
        self.construct_time = construct_time
        ix = state.index
        self.rng = np.random.default_rng(seed)
        self.hard = difficulty(ix, "mixed")
        self.chain = EjectionChain(state, scorer, self.rng)
        self.pending = _left_out(state, jobs)
        self.res = RepairResult(complete=self.pending.size == 0, left_out=self.pending)
        self.local_only = jobs is not None
        self.best_key = _key(self.pending, self.chain)
        self.best: Placement | None = None  # None: the current state is the best seen
        self.pairs = start_pairs(ix)
        self.exact_left = exact and not self.local_only and self.pairs <= EXACT_MAX_STARTS
        self.failed_last: list[int] = [int(j) for j in self.pending]
        self.cycle = 0

    # ------------------------------------------------------------------ budget and bookkeeping
    def budget_out(self) -> str | None:
        """Why the budget is spent (``"deadline"``, ``"steps"``), or None."""
        if time.perf_counter() >= self.deadline:
            return "deadline"
        if self.max_steps is not None and self.res.steps >= self.max_steps:
            return "steps"
        return None

    def steps_left(self) -> int | None:
        """Steps left under the cap (None: no cap)."""
        return None if self.max_steps is None else max(0, self.max_steps - self.res.steps)

    def settle(self) -> None:
        """Recount the jobs left out; the current state is the best when it leaves fewer."""
        self.pending = _left_out(self.state, self.jobs)
        k = _key(self.pending, self.chain)
        if k < self.best_key:
            self.best_key, self.best = k, None

    def _use_best(self) -> None:
        """Go back to the best placement seen, if the current state is not it."""
        if self.best is not None:
            self.state.restore(self.best)
            self.best = None

    # ------------------------------------------------------------------ the cycle
    def run(self) -> None:
        """Cycles of the steps until no must-run job is left out, the budget is spent or
        a proof is found."""
        while self.pending.size:
            stop = self.budget_out()
            if stop is not None:
                self.res.stopped = stop
                break
            if self._cycle():
                break

    def _cycle(self) -> bool:
        """One cycle of steps 1-5; True when a proof ends the search."""
        self.repair_round()
        if not self.pending.size or self.budget_out() is not None:
            return False
        if self.local_only:
            return False
        # 2. the exact packing model first where it is small
        if self.exact_left and self.pairs <= EXACT_FIRST_STARTS:
            self.exact_left = False
            if self.run_exact():
                return True
            if not self.pending.size or self.budget_out() is not None:
                return False
        self.overload_search()
        if not self.pending.size or self.budget_out() is not None:
            return False
        # 4. the exact packing model (once; small instances)
        if self.exact_left:
            self.exact_left = False
            if self.run_exact():
                return True
            if not self.pending.size:
                return False
        self.restart()
        return False

    def repair_round(self) -> None:
        """Step 1: one repair step for every job left out, hardest first (with noise from
        the third level on); the first round stops at :data:`FIRST_ROUND_SHARE` of the
        budget left."""
        res, deadline = self.res, self.deadline
        lim = LEVELS[min(self.cycle, len(LEVELS) - 1)]
        key = self.hard[self.pending]
        if lim.noise > 0:
            key = key * np.exp(lim.noise * self.rng.standard_normal(self.pending.size))
        round_end = deadline
        if self.cycle == 0 and not self.local_only and math.isfinite(deadline):
            round_end = time.perf_counter() + FIRST_ROUND_SHARE * (deadline - time.perf_counter())
        for j in self.pending[np.argsort(-key, kind="stable")].tolist():
            if self.budget_out() is not None or time.perf_counter() >= round_end:
                break
            res.steps += 1
            if self.chain.place(j, lim):
                res.repaired += 1
        res.rounds += 1
        self.settle()
        self.cycle += 1

    def run_exact(self) -> bool:
        """Steps 2 and 4: the exact packing model on the best placement; True when it
        proves infeasibility."""
        self._use_best()
        left = self.deadline - time.perf_counter()
        limit = EXACT_SHARE * left if math.isfinite(left) else EXACT_DEFAULT_LIMIT
        verdict = exact_packing(self.state, self.scorer, time_limit=min(limit, EXACT_MAX_LIMIT),
                                seed=self.seed, max_starts=EXACT_MAX_STARTS,
                                deterministic=self.max_steps is not None)
        self.res.exact = verdict.status
        self.chain = EjectionChain(self.state, self.scorer, self.rng)
        self.settle()
        if verdict.proof is not None:
            self.res.proof, self.res.stopped = verdict.proof, "proof"
            return True
        return False

    def overload_search(self) -> None:
        """Step 3: the min-conflicts search from the best placement; its placement is kept
        when it leaves no more must-run jobs out (by :func:`_key`)."""
        state, scorer, res = self.state, self.scorer, self.res
        if self.best is not None:
            self._use_best()
            self.settle()
        left = self.deadline - time.perf_counter()
        until, cap = self.deadline, self.steps_left()
        if self.exact_left and self.cycle == 1:
            if math.isfinite(left):
                until = time.perf_counter() + CONFLICT_SHARE * left
            if cap is not None:
                cap = int(CONFLICT_SHARE * cap)
        search = ConflictSearch(state, self.rng, self.pending)
        done = search.run(until, cap)
        res.steps += search.iterations
        res.conflict_iterations += search.iterations
        log.info("overload search: %s after %d iterations, overload %.4g",
                 "no overload" if done else "stopped", search.iterations, search.best_overload)
        before = state.snapshot()
        search.apply(scorer)
        self.chain = EjectionChain(state, scorer, self.rng)
        after = _left_out(state, self.jobs)
        if _key(after, self.chain) > self.best_key:
            state.restore(before)
            self.chain = EjectionChain(state, scorer, self.rng)
        self.settle()

    def restart(self) -> None:
        """Step 5: construct again in the next difficulty order (the jobs left out last
        time first), when the budget left holds two constructions."""
        state, ix = self.state, self.state.index
        left = self.deadline - time.perf_counter()
        if not self.restarts or (self.construct_time is not None
                                 and left < 2.0 * self.construct_time):
            return
        if self.best is None:
            self.best = state.snapshot()
        now_out = set(self.pending.tolist())
        self.failed_last = [int(j) for j in self.pending] + [j for j in self.failed_last
                                                             if j not in now_out]
        kind = RESTART_ORDERS[self.res.restarts % len(RESTART_ORDERS)]
        noisy = self.res.restarts >= len(RESTART_ORDERS)
        order = difficulty_order(ix, kind, self.rng, noise=0.3 if noisy else 0.0,
                                 first=self.failed_last[:max(1, ix.J // 20)])
        tc = time.perf_counter()
        state.reset()
        failed: list[int] = []
        construct(state, self.scorer, order, failed=failed)
        self.construct_time = time.perf_counter() - tc
        self.res.restarts += 1
        self.res.steps += ix.J
        log.info("feasibility restart %d (%s order): %d must-run jobs left out, %.2f s",
                 self.res.restarts, kind, len(failed), self.construct_time)
        self.chain = EjectionChain(state, self.scorer, self.rng)
        self.settle()

    # ------------------------------------------------------------------ the result
    def finish(self) -> RepairResult:
        """The best placement seen back in the state, and what is left out, and why."""
        state, res = self.state, self.res
        pending = _left_out(state, self.jobs)
        if self.best is not None and _key(pending, self.chain) > self.best_key:
            state.restore(self.best)
            pending = _left_out(state, self.jobs)
        res.left_out = pending[np.argsort(-self.hard[pending], kind="stable")]
        res.complete = pending.size == 0
        if res.complete:
            res.stopped = "complete"
        elif res.proof is None:
            for j in res.left_out[:_DIAGNOSED].tolist():
                reason: list[str] = []
                self.scorer.best_insertion(j, diagnose=reason, full=True)
                res.reasons[j] = reason[0] if reason else "no feasible window"
        return res


def _key(pending: IntArray, chain: EjectionChain) -> tuple[int, float]:
    """Ranking of a placement: must-run jobs left out, then their total weight."""
    w = chain.weight[pending]
    return int(pending.size), float(np.where(np.isfinite(w), w, 0.0).sum())
