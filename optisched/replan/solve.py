"""The solve and verify step of an update: :class:`UpdateSolver`.

It plans the rolled problem (the warm-started greedy, :mod:`optisched.replan.warm`,
or another registered solver with the greedy taking over when it fails), rejects a
must-run job that finds no place and solves again without it
(:mod:`optisched.replan.arrivals`), prices the plan exactly and checks it with
:func:`optisched.evaluate.evaluate`; a plan that fails is re-made with a full
dispatch. :class:`ReplanError` when no plan keeps the running and pinned jobs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from optisched.domain import Problem
from optisched.evaluate import cost_terms, evaluate, objective_of
from optisched.index import Index
from optisched.plan import Plan, Status
from optisched.precheck import precheck
from optisched.replan.arrivals import culprit, first_pinned_arrival, without
from optisched.replan.settings import ReplanSettings
from optisched.replan.step import Roll
from optisched.replan.warm import CarriedDispatch, warm_greedy
from optisched.solvers import solve
from optisched.solvers.base import SolveOptions
from optisched.solvers.greedy import GreedySearch
from optisched.solvers.options import GreedyOptions

__all__ = ["ReplanError", "UpdateSolver"]

log = logging.getLogger(__name__)


class ReplanError(ValueError):
    """No plan exists that keeps every running and pinned job where it is.

    The re-planner is left as it was before the update (the plan in force stays).
    """


@dataclass
class UpdateSolver:
    """Plans each rolled problem: solve, reject what cannot be placed, verify.

    Attributes
    ----------
    settings : ReplanSettings
        Solver, seed, time limit, iterations, verification, dispatch policy.
    carry : CarriedDispatch
        The dispatch carried across rolls (and how long each node's was).
    """

    settings: ReplanSettings
    carry: CarriedDispatch

    @classmethod
    def of(cls, settings: ReplanSettings, n_nodes: int) -> UpdateSolver:
        """A solver for a problem of ``n_nodes`` nodes (no dispatch carried yet)."""
        return cls(settings, CarriedDispatch(settings.redispatch, settings.refresh,
                                             np.zeros(n_nodes, dtype=np.int64)))

    def configure(self, **changes: Any) -> None:
        """Change some settings (names of :class:`ReplanSettings` fields; values as given)."""
        self.settings = replace(self.settings, **changes)
        self.carry.redispatch = self.settings.redispatch
        self.carry.refresh = self.settings.refresh

    def solve(self, problem: Problem, index: Index, roll: Roll,
              prev: tuple[Index, Plan] | None) -> tuple[Plan, Index]:
        """Plan ``problem``, rejecting must-run jobs that find no place, until a plan exists.

        Parameters
        ----------
        problem, index : Problem, Index
            The rolled problem and its index.
        roll : Roll
            Its warm start; receives the rejections (and ``roll.problem``, the
            problem the plan is for).
        prev : (Index, Plan) or None
            The index and plan in force (None: first plan).

        Returns
        -------
        (Plan, Index)
            A plan that passes the evaluator (when ``settings.verify``), with exact
            cost terms, and the index of the (possibly smaller) problem it is for.

        Raises
        ------
        ReplanError
            No plan exists without moving a running or pinned job.
        """
        for _attempt in range(len(problem.jobs) + 1):
            plan, bad = self._attempt(problem, index, roll, prev)
            if plan.status.has_plan:
                if roll.rejected:
                    plan.message = "; ".join(
                        [*([plan.message] if plan.message else []),
                         *(f"rejected job {j}: {why}" for j, why in roll.rejected.items())])
                roll.problem = problem
                return plan, index
            if bad is None:
                raise ReplanError(f"no plan keeps the running and pinned jobs in place: "
                                  f"{plan.message}")
            roll.rejected[problem.jobs[bad].job_id] = plan.message
            problem, index = without(problem, index, {problem.jobs[bad].job_id})
        raise ReplanError("no plan found")  # pragma: no cover - every attempt removes a job

    def _attempt(self, problem: Problem, index: Index, roll: Roll,
                 prev: tuple[Index, Plan] | None) -> tuple[Plan, int | None]:
        """One solve: the plan, or no plan and the job to reject (None: none can be).

        Pinned jobs that break availability or capacity (:func:`~optisched.precheck.precheck`)
        reject an arrival that is pinned, if any.
        """
        s = self.settings
        if s.solver != "greedy":
            why = precheck(problem, index)
            if why is not None:
                return (Plan.empty(problem, s.solver, Status.INFEASIBLE, why),
                        first_pinned_arrival(problem, roll))
            plan = solve(problem, s.solver, time_limit=s.time_limit, seed=s.seed)
            if plan.status.has_plan and plan.flows is not None:
                ok = self._checked(problem, index, plan)
                if ok is not None:
                    return ok, None
            log.info("solver %s found no plan (%s); greedy takes over", s.solver,
                     plan.message)
        t0 = time.perf_counter()
        plan, search, checked = self._greedy(problem, index, roll, prev)
        if plan.status is Status.INFEASIBLE:  # proven by precheck: pinned jobs clash
            return plan, first_pinned_arrival(problem, roll)
        if not plan.status.has_plan:
            return plan, culprit(index, search, roll)
        ok = self._checked(problem, index, plan)
        if ok is None:
            log.warning("re-planned plan failed verification; re-made with a full dispatch")
            plan, search, _ = self._greedy(problem, index, roll, None)
            if not plan.status.has_plan:
                return plan, culprit(index, search, roll)
            ok = self._checked(problem, index, plan)
            if ok is None:
                raise ReplanError("the re-planned plan fails the evaluator: "
                                  + "; ".join(plan.info.get("violations", [])))
        ok.info["checked_jobs"] = sorted(checked)
        ok.timings["solve"] = time.perf_counter() - t0
        return ok, None

    def _greedy(self, problem: Problem, index: Index, roll: Roll,
                prev: tuple[Index, Plan] | None) -> tuple[Plan, GreedySearch, set[str]]:
        """:func:`~optisched.replan.warm.warm_greedy` with the settings' budget."""
        s = self.settings
        options = SolveOptions(time_limit=s.time_limit, seed=s.seed,
                               params=GreedyOptions(iterations=s.iterations))
        return warm_greedy(problem, index, roll, prev, options, self.carry)

    def _checked(self, problem: Problem, index: Index, plan: Plan) -> Plan | None:
        """``plan`` priced exactly, or None when ``settings.verify`` and the evaluator
        rejects it."""
        plan.costs = cost_terms(index, plan)
        plan.objective = objective_of(plan.costs)
        if not self.settings.verify:
            return plan
        t0 = time.perf_counter()
        ev = evaluate(problem, plan, index)
        plan.timings["verify"] = time.perf_counter() - t0
        if not ev.feasible:
            plan.info["violations"] = [str(v) for v in ev.violations[:5]]
            log.warning("plan fails the evaluator: %s", plan.info["violations"])
            return None
        return plan
