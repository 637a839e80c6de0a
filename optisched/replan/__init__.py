"""Real-time re-planning: a :class:`Replanner` holds the current plan and updates it all day.

A scheduler calls :meth:`Replanner.update` whenever something changes; each call
returns the new :class:`~optisched.plan.Plan` and

1. **rolls the horizon** to ``now``. The new problem starts at the slot that
   contains ``now`` (a ``now`` off the slot grid means "during that slot": the
   slot is re-planned from its start, jobs planned to start in it count as
   started, and arrivals are released at ``now``, i.e. from the next slot). The
   slots before it are *executed*: they go to the ledger. The horizon ends where
   the data ends: new data (lists from ``now``, or values keyed by time) may
   reach past the current end and the horizon extends; with
   ``Replanner(problem, window_slots=T)`` it always covers ``T`` slots from
   ``now``. A series without data for a new slot is an error naming it, unless a
   fill policy is chosen (``fill="repeat_day"`` or ``"last"``);
2. carries the **state** over exactly: each node's on/off state before ``now``
   and battery state of charge come from the plan in force (or from a measured
   ``soc``); a job running at ``now`` is pinned to its node and start and never
   moves (restarted from scratch only when its node goes out); jobs that ended,
   finished or were cancelled leave the problem;
3. applies arrivals, forecasts (PV, prices, headroom, availability), outages
   and returns. An arrival that cannot be placed (no eligible node, window too
   short, no capacity, ...) and must run is **rejected** with its reason and
   left out of the problem; the rest of the plan is returned intact;
4. **warm-starts** the greedy solver: jobs not yet started keep their place,
   checked only on the nodes whose data changed; the others are inserted by
   marginal cost; only the nodes whose data or load changed are dispatched
   again; then a short local search (``time_limit``, ``iterations``);
5. records the executed past (:attr:`Replanner.ledger`,
   :attr:`Replanner.realized_cost`) and what changed per job
   (:attr:`Replanner.last_changes`). Every returned plan passes
   :func:`optisched.evaluate.evaluate` (checked when ``verify``).

``docs/replan.md`` describes the re-planner, the ledger, the change set and the
file formats. ``optisched replan PLAN_DIR BUNDLE --events events.csv --out DIR`` applies an
events CSV (format: ``docs/events.md``, :func:`optisched.events.read_events`) and
writes the final plan, bundle, ledger and changes.

The package, by role (each module a step of :meth:`Replanner.update`):

:mod:`~optisched.replan.replanner`
    :class:`Replanner`, the coordinator: its state, the order of the steps, the
    records it exposes, and its snapshot (:meth:`Replanner.snapshot_state`).
:mod:`~optisched.replan.settings`
    :class:`~optisched.replan.settings.ReplanSettings`, the constructor's settings checked.
:mod:`~optisched.replan.inputs`
    The update's inputs normalized and checked, new data written into a copy of
    the store (:func:`~optisched.replan.inputs.prepare_change`).
:mod:`~optisched.replan.roll`
    The roll: state carried, running jobs pinned, the warm start, the next index.
:mod:`~optisched.replan.arrivals`
    Isolation: arrivals and jobs that cannot be planned are rejected, not fatal.
:mod:`~optisched.replan.warm` and :mod:`~optisched.replan.solve`
    The warm-started greedy with the carried dispatch; the solve and verify step.
:mod:`~optisched.replan.changes` and :mod:`~optisched.replan.history`
    The change set of an update; the ledger and job runs of the executed past.
:mod:`~optisched.replan.step`
    The records passed between the steps (:class:`~optisched.replan.step.Change`,
    :class:`~optisched.replan.step.Roll`).

The data by absolute slot and the array-level pieces of the roll live in
:mod:`optisched.rolling`; the ledger and change-set types in :mod:`optisched.ledger`.
"""

from optisched.events import EVENT_KINDS, Events, check_event_times, read_events
from optisched.ledger import ChangeSet, JobChange
from optisched.replan.replanner import Replanner
from optisched.replan.solve import ReplanError

__all__ = ["EVENT_KINDS", "ChangeSet", "Events", "JobChange", "ReplanError", "Replanner",
           "check_event_times", "read_events"]
