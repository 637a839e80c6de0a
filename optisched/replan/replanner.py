"""The re-planner: :class:`Replanner`, a thin coordinator over the update's steps.

Each :meth:`Replanner.update` runs, in order: the inputs
(:func:`optisched.replan.inputs.prepare_change`), the roll
(:func:`optisched.replan.roll.roll_problem`, :func:`~optisched.replan.roll.next_index`),
the isolation of what cannot be planned (:func:`optisched.replan.arrivals.pre_reject`),
the solve and verify step (:class:`optisched.replan.solve.UpdateSolver`), the change
set (:func:`optisched.replan.changes.change_set`) and the ledger bookkeeping
(:class:`optisched.replan.history.History`). Only when every step succeeded does the
re-planner take the new state: an update that raises leaves it as it was.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from optisched.domain import Job, Problem
from optisched.index import Index, compile_index
from optisched.ledger import ChangeSet
from optisched.plan import Plan
from optisched.replan.arrivals import pre_reject
from optisched.replan.changes import change_set
from optisched.replan.history import History
from optisched.replan.inputs import prepare_change
from optisched.replan.roll import next_index, roll_problem
from optisched.replan.settings import ReplanSettings
from optisched.replan.solve import UpdateSolver
from optisched.replan.step import Roll
from optisched.rolling.inputs import SeriesInput
from optisched.rolling.store import SeriesStore

__all__ = ["Replanner"]

STATE_VERSION = 2
"""Version of :meth:`Replanner.snapshot_state` (1: the attributes before the split)."""


class _Setting:
    """An attribute of :class:`Replanner` that reads and sets one of its settings.

    Setting it changes the next updates, as the plain attribute did before the
    settings were gathered in :class:`~optisched.replan.settings.ReplanSettings`
    (the value is taken as given, not checked again).
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Replanner | None, owner: type | None = None) -> Any:
        return self if obj is None else getattr(obj.settings, self.name)

    def __set__(self, obj: Replanner, value: Any) -> None:
        obj._solver.configure(**{self.name: value})


class Replanner:
    """Holds the current plan of a problem and re-plans it as things change, all day.

    Parameters
    ----------
    problem : Problem
        The problem at the start; its start is the *origin* of absolute slots.
    solver : str
        Registered solver; ``greedy`` (default) warm-starts from the current plan,
        any other solver re-solves from scratch (greedy takes over when it fails).
    seed : int
        Random seed of the local search.
    time_limit : float
        Local-search budget of each update [s] (0 = repair only).
    plan : Plan, optional
        The current plan (e.g. read from a plan directory); solved when omitted or
        when it has no flows.
    iterations : int, optional
        Cap on local-search moves per update (makes updates reproducible).
    window_slots : int, optional
        Rolling window: every update plans the ``window_slots`` slots from the slot
        containing ``now`` (from the first update on; the first plan covers
        ``problem``'s horizon). Default: the horizon ends where the data ends.
    fill : str or mapping kind -> str, optional
        How to fill slots that are in the new horizon but have no data yet:
        ``"repeat_day"`` (the value 24 h earlier) or ``"last"`` (the last known
        value), for every series kind or per kind (``pv``, ``headroom``,
        ``available``, ``price``, ``export_price``, ``carbon``,
        ``feeder_headroom``). Default: such a slot is an error naming the series
        and the slot.
    redispatch : {"changed", "all"}
        After a roll, dispatch again only the nodes whose data, load or state
        changed (``changed``, default: a battery node kept carries the remaining
        flows of the plan in force, its final state of charge shifted to the new
        terminal target; nodes with a demand charge or a negative price are always
        dispatched again), or every node (``all``: exact dispatch, slower).
    refresh : int
        With ``redispatch="changed"``: the carried nodes dispatched exactly again at
        each roll, the longest-carried first: a guard that bounds how far carried
        dispatch could drift from the exact one (default 0: measured without drift,
        ``docs/replan.md``).
    verify : bool
        Check every new plan with :func:`optisched.evaluate.evaluate` (default);
        a plan that fails is re-made with a full dispatch.

    Attributes
    ----------
    problem : Problem
        The current (rolled) problem.
    plan : Plan
        The current plan for it.
    offset : int
        Absolute slot of the current horizon's start (slots rolled since ``problem``).
    last_changes : ChangeSet
        What the last update (or the first plan) did to each job.
    timings : dict str -> float
        Seconds of the last update by phase (``roll``, ``index``, ``solve``,
        ``verify``, ``record``, ``total``).
    settings : ReplanSettings
        The constructor's settings, checked (also readable and settable one by one:
        ``solver``, ``seed``, ``time_limit``, ``iterations``, ``window_slots``,
        ``fill``, ``redispatch``, ``refresh``, ``verify``).
    """

    solver = _Setting()
    seed = _Setting()
    time_limit = _Setting()
    iterations = _Setting()
    window_slots = _Setting()
    fill = _Setting()
    redispatch = _Setting()
    refresh = _Setting()
    verify = _Setting()

    def __init__(self, problem: Problem, solver: str = "greedy", seed: int = 0,
                 time_limit: float = 0.05, plan: Plan | None = None,
                 iterations: int | None = None, *, window_slots: int | None = None,
                 fill: str | Mapping[str, str] | None = None, redispatch: str = "changed",
                 refresh: int = 0, verify: bool = True) -> None:
        settings = ReplanSettings.of(solver=solver, seed=seed, time_limit=time_limit,
                                     iterations=iterations, window_slots=window_slots,
                                     fill=fill, redispatch=redispatch, refresh=refresh,
                                     verify=verify)
        self._solver = UpdateSolver.of(settings, len(problem.nodes))
        self.problem = problem
        self._offset = 0
        self._store = SeriesStore.from_problem(problem)
        self._history = History(problem)
        self.last_changes = ChangeSet()
        self._index: Index | None = None
        self.timings: dict[str, float] = {}
        if plan is not None and plan.status.has_plan and plan.flows is not None:
            self.plan = plan
        else:
            roll = Roll(problem=problem, k=0, hints={}, new_ids=set())
            first, index = pre_reject(problem, compile_index(problem), roll,
                                      {j.job_id for j in problem.jobs})
            self.plan, self._index = self._solver.solve(first, index, roll, None)
            self.problem = roll.problem
            self.last_changes = change_set(problem, None, None, roll, self.plan,
                                           self._store.time_of, 0)
            self._history.reject(problem.horizon.start, roll.rejected)

    @property
    def settings(self) -> ReplanSettings:
        """The re-planner's settings (the constructor's arguments, checked)."""
        return self._solver.settings

    @property
    def offset(self) -> int:
        """Absolute slot of the current horizon's start (slots rolled since the first problem)."""
        return self._offset

    @offset.setter
    def offset(self, value: int) -> None:
        """Declare that :attr:`problem` starts ``value`` slots after the origin.

        For a re-planner rebuilt from a rolled problem and its plan (e.g. a saved
        session): the origin moves back by ``value`` slots; the slots before the
        current start have no data (and no ledger).
        """
        value = int(value)
        if value != self._offset:
            self._store.rebase(value - self._offset)
            self._offset = value

    # ------------------------------------------------------------------ what it recorded
    @property
    def ledger(self) -> pd.DataFrame:
        """The executed past, one row per slot and node (:data:`optisched.ledger.SLOT_COLUMNS`):
        time, node, on/off, flows of the plan in force, measured state of charge, the
        data it was priced on, the cost terms of the slot and the jobs running."""
        return self._history.ledger.slots

    @property
    def job_ledger(self) -> pd.DataFrame:
        """Jobs that left the problem (:data:`optisched.ledger.JOB_COLUMNS`): done, finished,
        cancelled, restarted (the part run), dropped (window closed), rejected; with the job
        cost (latency, tardiness, drop penalty)."""
        return self._history.ledger.jobs

    @property
    def realized_costs(self) -> dict[str, float]:
        """Cost of the executed past by SPEC §3 term [money] (demand on the peaks so far)."""
        return self._history.ledger.costs()

    @property
    def realized_cost(self) -> float:
        """Cost of the executed past [money]: :attr:`ledger` and :attr:`job_ledger`, plus
        the demand charge on each node's peak import so far."""
        return self._history.ledger.cost

    @property
    def remaining_cost(self) -> float:
        """What the current plan adds to :attr:`realized_cost` [money].

        The plan's objective, except that its demand charge counts only the peak
        import above the peak already realized; ``realized_cost + remaining_cost``
        is the cost of the whole executed and planned horizon (:meth:`executed`).
        """
        obj = float(self.plan.objective or 0.0)
        if self.plan.flows is None:
            return obj
        index = self._index if self._index is not None else compile_index(self.problem)
        return obj + self._history.ledger.demand_adjustment(index, self.plan.flows)

    def write_ledger(self, path: str | Path) -> tuple[Path, Path]:
        """Write :attr:`ledger` to ``path`` (CSV) and :attr:`job_ledger` beside it.

        The job ledger goes to ``<stem>_jobs.csv``; both are written atomically
        (:func:`optisched.atomic.write_file_atomically`).

        Returns
        -------
        (Path, Path)
            The two files.
        """
        return self._history.ledger.write(path)

    def executed(self) -> tuple[Problem, Plan]:
        """The whole horizon so far as one problem and plan: the executed past and the plan.

        The problem runs from the first problem's start to the current end with the
        data each slot had when it was planned or executed, the first problem's
        node state, every job that ran (pinned where it ran; a run cut short by a
        cancel, finish or restart appears with the slots it ran, as ``job_id#n``
        after its first run), the jobs dropped for good and the current jobs. The
        plan is the ledger's flows followed by the current plan's. Its cost by
        :func:`~optisched.evaluate.evaluate` is ``realized_cost + remaining_cost``.
        (Measured states of charge make the battery dynamics jump where they were
        measured; the evaluator reports those slots.)
        """
        return self._history.executed(self._store, self.problem, self.plan, self.offset)

    # ------------------------------------------------------------------ update
    def update(
        self,
        now: datetime | pd.Timestamp | str,
        *,
        new_jobs: Iterable[Job] = (),
        cancelled: Iterable[str] = (),
        finished: Iterable[str] = (),
        soc: Mapping[str, float] | None = None,
        pv: SeriesInput | None = None,
        prices: SeriesInput | None = None,
        headroom: SeriesInput | None = None,
        outages: Mapping[str, datetime | None] | Iterable[str] = (),
        returns: Iterable[str] = (),
        available: SeriesInput | None = None,
        export_prices: SeriesInput | None = None,
        carbon: SeriesInput | None = None,
        feeder_headroom: SeriesInput | None = None,
    ) -> Plan:
        """Roll the horizon to ``now``, apply what changed and return the new plan.

        Parameters
        ----------
        now : datetime, pandas Timestamp or ISO string
            Timezone-aware; at or after the current horizon's start, within it or at
            its end when new data extends it. Off the slot grid it means "during the
            slot that contains it" (see the module docstring).
        new_jobs : iterable of Job
            Jobs that arrived (release defaults to ``now``).
        cancelled, finished : iterable of str
            Job ids to remove (a finished job frees its node from ``now`` on).
        soc : mapping node_id -> float, optional
            Measured battery state of charge [kWh] at ``now``, clipped to
            [soc_min, soc_max].
        pv, headroom, available : mapping node_id -> series, or DataFrame, optional
            New PV forecast [kW], import headroom [kW, inf = unlimited] and
            availability (true/false) per node.
        prices, export_prices, carbon : mapping tariff -> series, or DataFrame, optional
            New import and export prices [money/kWh] and carbon intensity [g/kWh].
        feeder_headroom : mapping feeder -> series, or DataFrame, optional
            New feeder headroom [kW, inf = none].
        outages : mapping node_id -> datetime or None, or iterable of node_id
            Nodes out from ``now`` until the given time (None or a plain id: until
            they return).
        returns : iterable of node_id
            Nodes back in service from ``now`` (undo an outage).

        A series is a list of values for the slots from ``now`` on (at least to the
        current end; more extend the horizon), or values keyed by time: a pandas
        Series with a timezone-aware DatetimeIndex, or a mapping datetime -> value
        (times on the slot grid; times before ``now`` are ignored). A DataFrame has
        one column per id. None / NaN keeps the current value. The same values as
        a list or keyed by time give the same plan.

        Returns
        -------
        Plan
            The new plan (also :attr:`plan`); :attr:`problem` is the new problem,
            :attr:`last_changes` what happened to each job, :attr:`ledger` the
            executed slots.

        Raises
        ------
        ValueError
            ``now`` naive, before the horizon or past its end (without data reaching
            further), unknown ids, too few values, values out of range, or a series
            without data for a slot of the new horizon (no ``fill`` policy). The
            re-planner is unchanged.
        ReplanError
            No plan keeps every running and pinned job where it is (e.g. the headroom
            of a node fell below what its running jobs draw). The re-planner is
            unchanged.
        """
        t0 = time.perf_counter()
        s = self.settings
        change, store = prepare_change(
            self._store, self.problem, self.offset, now, new_jobs=new_jobs,
            cancelled=cancelled, finished=finished, soc=soc,
            series={"pv": pv, "headroom": headroom, "available": available, "price": prices,
                    "export_price": export_prices, "carbon": carbon,
                    "feeder_headroom": feeder_headroom},
            outages=outages, returns=returns, window_slots=s.window_slots, fill=s.fill)
        old_index = self._current_index()
        roll = roll_problem(self.problem, self.plan, old_index, self.offset, change, store)
        t1 = time.perf_counter()
        index = next_index(roll, change, old_index)
        problem, index = pre_reject(roll.problem, index, roll, roll.new_ids)
        roll.problem = problem
        t2 = time.perf_counter()
        plan, index = self._solver.solve(problem, index, roll, (old_index, self.plan))
        problem = roll.problem
        t3 = time.perf_counter()
        changes = change_set(self.problem, self.plan, change, roll, plan, self._store.time_of,
                             self.offset)
        self._history.commit(change, store, roll, self.problem, self.plan, old_index,
                             self.offset)
        self._store = store
        self._solver.carry.note(index, plan, roll.k > 0 or problem.horizon.slots != old_index.T)
        self.problem, self.plan, self._index = problem, plan, index
        self._offset = change.a_now
        self.last_changes = changes
        t4 = time.perf_counter()
        self.timings = {"roll": t1 - t0, "index": t2 - t1, "solve": t3 - t2 - plan.timings.get(
            "verify", 0.0), "verify": plan.timings.get("verify", 0.0), "record": t4 - t3,
            "total": t4 - t0}
        plan.timings["total"] = t4 - t0
        return plan

    def _current_index(self) -> Index:
        """The index of :attr:`problem` (compiled when the plan came from outside)."""
        if self._index is None:
            self._index = compile_index(self.problem)
        return self._index

    # ------------------------------------------------------------------ snapshots
    def snapshot_state(self) -> dict[str, Any]:
        """Everything the re-planner keeps beyond :attr:`problem`, :attr:`plan` and its
        compiled index, as a picklable dict (for a saved session).

        The settings, the offset, the data store, the history (ledger, job runs),
        the carried dispatch, :attr:`last_changes` and :attr:`timings`, under a
        version number. A re-planner rebuilt as ``Replanner(problem, plan=plan, ...)``
        and given this dict by :meth:`restore_state` continues exactly as this one.
        """
        return {"version": STATE_VERSION, "offset": self._offset, "store": self._store,
                "history": self._history, "solver": self._solver,
                "last_changes": self.last_changes, "timings": self.timings}

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Take the state of :meth:`snapshot_state` (of a re-planner with this
        :attr:`problem` and :attr:`plan`).

        Raises
        ------
        ValueError
            ``state`` is not a snapshot of this version of the re-planner (the
            re-planner is left unchanged).
        """
        keys = ("offset", "store", "history", "solver", "last_changes", "timings")
        if (not isinstance(state, Mapping) or state.get("version") != STATE_VERSION
                or any(k not in state for k in keys)):
            raise ValueError(f"not a state of this re-planner (version {STATE_VERSION})")
        self._offset = int(state["offset"])
        self._store = state["store"]
        self._history = state["history"]
        self._solver = state["solver"]
        self.last_changes = state["last_changes"]
        self.timings = dict(state["timings"])
