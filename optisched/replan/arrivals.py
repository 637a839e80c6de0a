"""Isolation of what cannot be planned: an arrival or a job no plan can hold is taken out.

An update never fails because of one job: an arrival whose ``job_id`` is used or
that names unknown data is rejected when it enters the problem
(:func:`accept_arrivals`); a must-run job without any eligible (node, start) is
rejected and a droppable one whose hard deadline has passed leaves as dropped
before solving (:func:`pre_reject`); a job the solve could not place is rejected
and the problem solved again without it (:func:`culprit`,
:func:`first_pinned_arrival`, used by :mod:`optisched.replan.solve`). Each
rejection is recorded with its reason in :attr:`Roll.rejected
<optisched.replan.step.Roll.rejected>`.
"""

from __future__ import annotations

import numpy as np

from optisched.domain import Job, Node, Problem, Scenario
from optisched.index import Index, compile_index, explain_job
from optisched.replan.step import Roll
from optisched.rolling.incremental import drop_jobs
from optisched.solvers.greedy import GreedySearch, job_order

__all__ = ["accept_arrivals", "culprit", "first_pinned_arrival", "job_issues", "pre_reject",
           "without"]


def job_issues(scenario: Scenario, nodes: list[Node], job: Job) -> list[str]:
    """Cross-reference problems of one job, as :meth:`Problem.issues` names them."""
    probe = Problem.model_construct(scenario=scenario, nodes=nodes, jobs=[job], node_series={},
                                    tariffs={}, feeders={}, latency_ms={}, regions={})
    return [f"{i.column}={i.value!r}: {i.message}" for i in probe.issues()
            if i.table == "jobs.csv"]


def accept_arrivals(jobs: list[Job], new_jobs: list[Job], scenario: Scenario,
                    nodes: list[Node], known: set[str], roll: Roll) -> list[Job]:
    """``jobs`` followed by the arrivals that can enter the problem.

    An arrival whose ``job_id`` is already used, or that refers to unknown data
    (a pinned node that does not exist, more of a resource than any node has), is
    rejected (``roll.rejected``) instead.
    """
    out = list(jobs)
    seen = set(known)
    for nj in new_jobs:
        if nj.job_id in seen:
            roll.rejected[nj.job_id] = f"job_id {nj.job_id!r} is already used"
            continue
        bad = job_issues(scenario, nodes, nj)
        if bad:
            roll.rejected[nj.job_id] = "; ".join(bad)
            continue
        seen.add(nj.job_id)
        roll.new_ids.add(nj.job_id)
        out.append(nj)
    return out


def pre_reject(problem: Problem, index: Index, roll: Roll, new_ids: set[str]
               ) -> tuple[Problem, Index]:
    """Take out the jobs no plan can hold, before solving.

    A must-run job (not pinned) without any eligible (node, start) is rejected with
    :func:`~optisched.index.explain_job`'s reason; a droppable one whose hard
    deadline has passed leaves as dropped for good (its penalty realized); a
    droppable arrival without a place stays, dropped.
    """
    counts = np.diff(index.opt_job_ptr)
    none = np.nonzero((counts == 0) & ~index.pinned)[0]
    if none.size == 0:
        return problem, index
    gone: set[str] = set()
    now = problem.horizon.start
    for j in none.tolist():
        job = problem.jobs[j]
        if index.must_run[j]:
            roll.rejected[job.job_id] = explain_job(problem, index, j) + " (it must run)"
            gone.add(job.job_id)
        elif (job.tardiness_per_hour is None and job.deadline is not None
              and job.deadline <= now and job.job_id not in new_ids):
            roll.events.append((job, "dropped", -1, 0, 0,
                                f"its deadline {job.deadline.isoformat()} has passed"))
            gone.add(job.job_id)
    return without(problem, index, gone)


def without(problem: Problem, index: Index, gone: set[str]) -> tuple[Problem, Index]:
    """``problem`` and ``index`` without the jobs ``gone``."""
    if not gone:
        return problem, index
    jobs = [j for j in problem.jobs if j.job_id not in gone]
    new = Problem.model_construct(**{**dict(problem), "jobs": jobs})
    keep = np.array([jid not in gone for jid in index.job_ids], dtype=bool)
    ix = drop_jobs(index, keep, new)
    return new, ix if ix is not None else compile_index(new)


def culprit(index: Index, search: GreedySearch, roll: Roll) -> int | None:
    """The job a failed greedy run could not place: the first unplaced must-run job in
    placement order (not pinned), preferring an arrival; None when there is none."""
    st = search.state
    cands = [int(j) for j in job_order(index)
             if index.must_run[j] and not index.pinned[j] and st.opt[j] < 0]
    new = [j for j in cands if index.job_ids[j] in roll.new_ids]
    pick = new or cands
    return pick[0] if pick else None


def first_pinned_arrival(problem: Problem, roll: Roll) -> int | None:
    """The first arrival that is pinned (the job to reject when pinned jobs clash), or None."""
    pinned_new = [j for j, job in enumerate(problem.jobs)
                  if job.job_id in roll.new_ids and job.pinned]
    return pinned_new[0] if pinned_new else None
