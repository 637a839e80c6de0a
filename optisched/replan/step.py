"""The two records of one re-planner update: :class:`Change` and :class:`Roll`.

:class:`Change` is what the update's arguments say, normalized and checked
(:func:`optisched.replan.inputs.prepare_change`); :class:`Roll` is the rolled
problem before solving and what the solve and the records need
(:func:`optisched.replan.roll.roll_problem`), filled in as the update goes on
(rejections, jobs that left, restarts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from optisched.arrays import FloatArray, IntArray
from optisched.domain import Job, Problem

__all__ = ["Change", "Roll"]


@dataclass(frozen=True)
class Change:
    """What one :meth:`~optisched.replan.Replanner.update` changes (its arguments, checked).

    Attributes
    ----------
    now : datetime
        When the update happens (timezone-aware).
    a_now : int
        Absolute slot containing ``now`` (slots since the first problem's start).
    on_grid : bool
        ``now`` is the start of slot ``a_now``.
    end : int
        Absolute end slot of the new horizon.
    new_jobs : list of Job
        Jobs that arrived (release set to ``now`` when not given).
    cancelled, finished : set of str
        Job ids that leave the problem.
    soc : dict node_id -> float
        Measured battery state of charge [kWh].
    data : dict kind -> dict id -> (slots, values)
        New series values by absolute slot (:func:`optisched.rolling.parse_series`).
    outages : dict node_id -> datetime or None
        Nodes out from ``now`` until the given time (None: until they return).
    returns : set of str
        Nodes back in service from ``now``.
    """

    now: datetime
    a_now: int
    on_grid: bool
    end: int
    new_jobs: list[Job]
    cancelled: set[str]
    finished: set[str]
    soc: dict[str, float]
    data: dict[str, dict[str, tuple[IntArray, FloatArray]]]
    outages: dict[str, datetime | None]
    returns: set[str]

    @property
    def availability_changed(self) -> bool:
        """True when availability may differ from the plan's (outages, returns, data)."""
        return bool(self.outages or self.returns or self.data.get("available"))


@dataclass
class Roll:
    """The rolled problem before solving, and what the solve and the records need.

    Attributes
    ----------
    problem : Problem
        The new problem (unvalidated parts, each checked when it was made).
    k : int
        Slots of the previous horizon executed by this update.
    hints : dict job_id -> (node_id, start slot)
        Placements of jobs not yet started, in the new horizon's slots.
    new_ids : set of str
        Ids of the arrivals in the problem.
    rejected : dict job_id -> str
        Jobs taken out, with the reason.
    events : list of tuple
        ``(job, status, node position, start, end, reason)`` of the jobs that left
        (positions and slots of the previous plan; ``end`` exclusive).
    restarted : dict job_id -> str
        Running jobs restarted from scratch, with the reason.
    started : set of str
        Jobs that began since the last update.
    """

    problem: Problem
    k: int
    hints: dict[str, tuple[str, int]]
    new_ids: set[str]
    rejected: dict[str, str] = field(default_factory=dict)
    events: list[tuple[Job, str, int, int, int, str]] = field(default_factory=list)
    restarted: dict[str, str] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)
