"""The executed past of a re-planner: :class:`History`.

Every update records the slots it rolled past and the jobs that left the problem
in the :class:`~optisched.ledger.Ledger`, and keeps what :meth:`History.executed`
needs to rebuild the whole horizon so far as one problem and plan: the first
problem, every job run (the job as given, its node, absolute start and slots run)
and the jobs dropped for good.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

import numpy as np

from optisched.domain import Job, Problem
from optisched.evaluate import cost_terms, objective_of
from optisched.index import Index, compile_index
from optisched.ledger import Ledger, job_terms, runs_by_slot
from optisched.plan import Flows, Plan
from optisched.replan.step import Change, Roll
from optisched.rolling.store import SeriesStore

__all__ = ["History"]


class History:
    """The ledger of a re-planner and the job runs of its executed past.

    Parameters
    ----------
    first : Problem
        The problem the re-planner started from (its start is absolute slot 0).

    Attributes
    ----------
    first : Problem
        As given.
    ledger : Ledger
        Executed slots and the jobs that left the problem.
    runs : list of (Job, int, int, int)
        Job runs of the executed past: (job as given, node position, absolute
        start, slots).
    dropped : list of Job
        Droppable jobs whose window closed while dropped (their penalty is realized).
    """

    def __init__(self, first: Problem) -> None:
        self.first = first
        self.ledger = Ledger([n.node_id for n in first.nodes],
                             np.array([n.demand_charge_per_kw for n in first.nodes], float))
        self.runs: list[tuple[Job, int, int, int]] = []
        self.dropped: list[Job] = []

    def reject(self, at: datetime, rejected: dict[str, str]) -> None:
        """Record the jobs ``rejected`` (id -> reason) at time ``at``."""
        for jid, why in rejected.items():
            self.ledger.record_job(at, jid, "rejected", None, None, None, reason=why)

    def commit(self, change: Change, store: SeriesStore, roll: Roll, problem: Problem,
               plan: Plan, index: Index, a0: int) -> None:
        """Record the slots an update executed and the jobs that left the problem.

        Parameters
        ----------
        change : Change
            The update.
        store : SeriesStore
            Its data (slot times).
        roll : Roll
            Slots rolled (``roll.k``), jobs that left, rejections.
        problem, plan, index : Problem, Plan, Index
            The problem, plan and index in force before the update.
        a0 : int
            Absolute slot of ``problem``'s start.
        """
        k = roll.k
        if k > 0 and plan.flows is not None:
            times = [store.time_of(a0 + t) for t in range(k)]
            running = runs_by_slot(index, plan.node, plan.start, k)
            self.ledger.record_slots(index, plan.flows, times, a0, running, change.soc)
        now = change.now
        hz = problem.horizon
        pos = index.job_pos
        for job, status, n, s, e, why in roll.events:
            first = _origin_job(job)
            if status == "dropped":
                pen = float(job.drop_penalty or 0.0)
                self.ledger.record_job(now, job.job_id, "dropped", None, None, None, drop=pen,
                                       reason=why)
                self.dropped.append(first)
                continue
            if n < 0 or e <= s:
                self.ledger.record_job(now, job.job_id, status, None, None, None, reason=why)
                continue
            lat, tard = job_terms(index, pos[job.job_id], n, e)
            self.ledger.record_job(now, job.job_id, status, index.node_ids[n],
                                   hz.time_of(s), hz.time_of(e), latency=lat, tardiness=tard,
                                   reason=why)
            self.runs.append((first, n, a0 + s, e - s))
        self.reject(now, roll.rejected)

    def executed(self, store: SeriesStore, problem: Problem, plan: Plan, offset: int
                 ) -> tuple[Problem, Plan]:
        """The whole horizon so far as one problem and plan (see
        :meth:`optisched.replan.Replanner.executed`).

        Parameters
        ----------
        store : SeriesStore
            Every series so far.
        problem, plan : Problem, Plan
            The current problem and plan.
        offset : int
            Absolute slot of ``problem``'s start.

        Raises
        ------
        ValueError
            The ledger does not reach back to the first problem's start.
        """
        end = offset + problem.horizon.slots
        if self.ledger.executed_slots != offset:
            raise ValueError("the executed past is not known: this re-planner was rebuilt from "
                             "a rolled problem (its first slots have no ledger)")
        first = self.first
        hz0 = first.horizon
        series, tariffs, feeders = store.problem_parts(first, 0, end)
        jobs, node, start = self._jobs(store, problem, plan, offset)
        scenario = first.scenario.model_copy(update={"horizon": hz0.model_copy(
            update={"slots": end})})
        whole_problem = Problem(scenario=scenario, nodes=first.nodes, jobs=jobs,
                                node_series=series, tariffs=tariffs, feeders=feeders,
                                latency_ms=first.latency_ms, regions=first.regions)
        parts = [*self.ledger.flows]
        if plan.flows is not None:
            parts.append(plan.flows)
        flows = Flows(**{f.name: np.concatenate([getattr(p, f.name) for p in parts], axis=1)
                         for f in fields(Flows) if f.init})  # not the scenarios (Flows.more)
        whole = Plan(solver=plan.solver, status=plan.status, job_ids=[j.job_id for j in jobs],
                     node_ids=[n.node_id for n in first.nodes],
                     node=np.array(node, dtype=np.int64), start=np.array(start, dtype=np.int64),
                     flows=flows)
        index = compile_index(whole_problem)
        whole.costs = cost_terms(index, whole)
        whole.objective = objective_of(whole.costs)
        return whole_problem, whole

    def _jobs(self, store: SeriesStore, problem: Problem, plan: Plan, offset: int
              ) -> tuple[list[Job], list[int], list[int]]:
        """Every job of the whole horizon with its node position and absolute start.

        The runs (pinned where they ran; a job's later runs as ``job_id#n``), the jobs
        dropped for good (node -1; ``job_id#n`` when the job had run before), then the
        current jobs with the current plan's places.
        """
        first = self.first
        node_pos = {n.node_id: i for i, n in enumerate(first.nodes)}
        jobs: list[Job] = []
        node: list[int] = []
        start: list[int] = []
        used: dict[str, int] = {}
        for job, n, a, slots in self.runs:
            c = used.get(job.job_id, 0)
            used[job.job_id] = c + 1
            nid = first.nodes[n].node_id
            spd = first.nodes[n].speed
            upd: dict[str, Any] = {"pinned_node": nid, "pinned_start": store.time_of(a),
                                   "duration_min": slots * first.horizon.slot_minutes * spd}
            if c:
                upd["job_id"] = f"{job.job_id}#{c}"
            jobs.append(job.model_copy(update=upd))
            node.append(n)
            start.append(a)
        for job in self.dropped:  # after a run cut short, the dropped rest is job_id#n
            c = used.get(job.job_id, 0)
            used[job.job_id] = c + 1
            jobs.append(job.model_copy(update={"job_id": f"{job.job_id}#{c}"}) if c else job)
            node.append(-1)
            start.append(0)
        for j, job in enumerate(problem.jobs):
            c = used.get(job.job_id, 0)
            if c:
                job = job.model_copy(update={"job_id": f"{job.job_id}#{c}"})
            jobs.append(job)
            n = int(plan.node[j])
            node.append(node_pos[plan.node_ids[n]] if n >= 0 else -1)
            start.append(int(plan.start[j]) + offset if n >= 0 else 0)
        return jobs, node, start


def _origin_job(job: Job) -> Job:
    """``job`` without the pin the re-planner gave it while it ran."""
    if job.pinned_node is not None and job.pinned_start is not None:
        return job.model_copy(update={"pinned_node": None, "pinned_start": None})
    return job
