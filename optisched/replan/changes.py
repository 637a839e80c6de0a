"""What an update did to each job: :func:`change_set` (kinds: ``CHANGE_KINDS``).

The records (:class:`~optisched.ledger.JobChange`) compare each job's node and
absolute start before and after the update, and say why in user terms: started,
restarted (its node went out), added (an arrival placed), moved (a checked place
that no longer fits, an outage, a cheaper place), dropped, rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np

from optisched.domain import Job, Problem
from optisched.ledger import ChangeSet, JobChange
from optisched.plan import Plan
from optisched.replan.step import Change, Roll

__all__ = ["change_set", "drop_reason"]

_Place = tuple[str, datetime]
"""A job's node id and absolute start time."""


def change_set(old: Problem, old_plan: Plan | None, change: Change | None, roll: Roll,
               plan: Plan, time_of: Callable[[int], datetime], a_old: int) -> ChangeSet:
    """One :class:`~optisched.ledger.JobChange` per job the update touched.

    Parameters
    ----------
    old, old_plan : Problem, Plan or None
        The problem and plan before the update (``old_plan`` None: the first plan).
    change : Change or None
        The update (None: the first plan; then only the jobs left out are listed,
        dropped or rejected).
    roll : Roll
        The rolled problem (``roll.problem``, the one ``plan`` is for) and what
        left, started, restarted or was rejected.
    plan : Plan
        The new plan.
    time_of : callable
        Start of an absolute slot.
    a_old : int
        Absolute slot of ``old``'s start.
    """
    new = roll.problem
    where = _Places(old, old_plan, plan, time_of, a_old,
                    change.a_now if change is not None else 0)
    look = where.moved(new)
    before = {jid: b for jid in {*roll.started, *roll.restarted, *roll.rejected}
              if (b := where.before(jid)) is not None}
    after = {new.jobs[j].job_id: where.after(j) for j in look}
    new_pos = {jb.job_id: j for j, jb in enumerate(new.jobs)}
    for jid in roll.restarted:
        if jid in new_pos and jid not in after:
            after[jid] = where.after(new_pos[jid])
    for j in look:
        jid = new.jobs[j].job_id
        b = where.before(jid)
        if b is not None:
            before[jid] = b
    records = [*_started(roll, before), *_restarted(roll, before, after),
               *_placed(new, look, before, after, change, roll,
                        set(plan.info.get("checked_jobs", []))),
               *_rejected(roll, before)]
    order = {j.job_id: i for i, j in enumerate([*old.jobs, *new.jobs])}
    records.sort(key=lambda r: order.get(r.job_id, len(order)))
    return ChangeSet(records)


def drop_reason(job: Job, when: str) -> str:
    """Why ``job`` is dropped (``when``: on arrival, in the first plan, ...)."""
    pen = job.drop_penalty
    return (f"dropped ({when}): no place found costs less than its drop penalty "
            f"{pen:g}" if pen is not None else f"dropped ({when})")


class _Places:
    """Each job's (node, absolute start) before and after the update."""

    def __init__(self, old: Problem, old_plan: Plan | None, plan: Plan,
                 time_of: Callable[[int], datetime], a_old: int, a_new: int) -> None:
        self.old_pos = {j.job_id: i for i, j in enumerate(old.jobs)}
        has_old = old_plan is not None and old_plan.status.has_plan
        self.o_node = (old_plan.node if has_old and old_plan is not None
                       else np.full(len(old.jobs), -1))
        self.o_abs = (old_plan.start + a_old) if has_old and old_plan is not None else np.zeros(
            len(old.jobs), dtype=np.int64)
        self.plan = plan
        self.time_of = time_of
        self.a_new = a_new

    def before(self, jid: str) -> _Place | None:
        """Where job ``jid`` was (None: not in the old problem, or dropped)."""
        i = self.old_pos.get(jid)
        if i is None or self.o_node[i] < 0:
            return None
        return self.plan.node_ids[int(self.o_node[i])], self.time_of(int(self.o_abs[i]))

    def after(self, j: int) -> _Place | None:
        """Where job ``j`` of the new problem is (None: dropped)."""
        n = int(self.plan.node[j])
        return ((self.plan.node_ids[n], self.time_of(int(self.plan.start[j]) + self.a_new))
                if n >= 0 else None)

    def moved(self, new: Problem) -> set[int]:
        """Jobs of the new problem whose (node, absolute start) differ from the plan in force."""
        plan = self.plan
        idx = np.array([self.old_pos.get(j.job_id, -1) for j in new.jobs], dtype=np.int64)
        known = idx >= 0
        oi = np.maximum(idx, 0)
        n_abs = plan.start + self.a_new
        moved = ~known | (self.o_node[oi] != plan.node) | (
            (plan.node >= 0) & (self.o_abs[oi] != n_abs))
        return set(np.nonzero(moved)[0].tolist())


def _started(roll: Roll, before: dict[str, _Place]) -> list[JobChange]:
    """The jobs that began since the last update."""
    done = {ev[0].job_id for ev in roll.events if ev[1] == "done"}
    out = []
    for jid in sorted(roll.started):
        b = before.get(jid)
        tail = " and ended before now" if jid in done else ""
        why = f"started on {b[0]} at {b[1].isoformat()}{tail}" if b else "started"
        out.append(JobChange(jid, "started", why, b[0] if b else None, b[1] if b else None,
                             b[0] if b else None, b[1] if b else None))
    return out


def _restarted(roll: Roll, before: dict[str, _Place], after: dict[str, _Place | None]
               ) -> list[JobChange]:
    """The running jobs restarted from scratch (their node went out)."""
    out = []
    for jid, why in roll.restarted.items():
        b, a = before.get(jid), after.get(jid)
        where = f"; now on {a[0]} at {a[1].isoformat()}" if a else "; now dropped"
        out.append(JobChange(jid, "restarted", why + where, b[0] if b else None,
                             b[1] if b else None, a[0] if a else None, a[1] if a else None))
    return out


def _placed(new: Problem, look: set[int], before: dict[str, _Place],
            after: dict[str, _Place | None], change: Change | None, roll: Roll,
            checked: set[str]) -> list[JobChange]:
    """Jobs not pinned whose place changed: added, moved or dropped, with the reason."""
    out = []
    for j in sorted(look):
        job = new.jobs[j]
        jid = job.job_id
        if job.pinned or jid in roll.restarted:
            continue
        a, b = after[jid], before.get(jid)
        if change is None or jid in roll.new_ids:
            if a is None:
                out.append(JobChange(jid, "dropped", drop_reason(
                    job, "on arrival" if change is not None else "in the first plan")))
            elif change is not None:
                out.append(JobChange(jid, "added", f"placed on {a[0]} at "
                                     f"{a[1].isoformat()}", None, None, a[0], a[1]))
            continue
        if a == b:
            continue
        if a is None:
            assert b is not None
            out.append(JobChange(jid, "dropped", drop_reason(
                job, "its place no longer fits" if jid in checked else "re-optimized"),
                b[0], b[1]))
        elif b is None:
            out.append(JobChange(jid, "moved", f"placed on {a[0]} at "
                                 f"{a[1].isoformat()} (it was dropped)", None, None,
                                 a[0], a[1]))
        else:
            if b[0] in change.outages:
                why = f"its node {b[0]} is out from {change.now.isoformat()}"
            elif jid in checked:
                why = (f"its place on {b[0]} at {b[1].isoformat()} was checked against the "
                       "new data: it no longer fits, or a cheaper place was found")
            else:
                why = "the local search found a cheaper place"
            out.append(JobChange(jid, "moved", why, b[0], b[1], a[0], a[1]))
    return out


def _rejected(roll: Roll, before: dict[str, _Place]) -> list[JobChange]:
    """The jobs taken out of the problem, with the reason."""
    out = []
    for jid, why in roll.rejected.items():
        b = before.get(jid)
        out.append(JobChange(jid, "rejected", why, b[0] if b else None, b[1] if b else None))
    return out
