"""Re-planning sessions: a :class:`~optisched.replan.Replanner` per session, persisted.

A session holds the current (rolled) problem and plan of one scheduler. Its
updates use the events vocabulary of ``optisched replan --events``
(:mod:`optisched.events`, ``docs/events.md``): the events arrive as JSON records
with the columns of the events CSV, or as an events CSV, are read and checked by
the same code (:func:`~optisched.events.read_events`,
:func:`~optisched.events.check_events`) and applied with
:meth:`Events.apply <optisched.events.Events.apply>`, one
:meth:`~optisched.replan.Replanner.update` per distinct time.

Persistence (:mod:`optisched.service.store`): after creation and after every
update, in one transaction, the session's problem JSON, its plan (arrays bit for
bit), the re-planner's settings and its state beyond problem and plan are written
with the event-log row, before the answer is sent. That state is
:meth:`Replanner.snapshot_state <optisched.replan.Replanner.snapshot_state>`
(everything the re-planner keeps except ``problem``, ``plan`` and its compiled
index: the slots rolled so far, its store of data, its ledger …), pickled, so that
whatever the re-planner keeps survives a restart without code here knowing it; a
JSON summary (``offset``) is kept beside it and used when the pickle cannot be
loaded or is the state of another version of the re-planner. A restarted server
rebuilds ``Replanner(problem, plan=plan, …)`` from the newest snapshot on the
session's first use and restores that state; an update that fails leaves the
session as it was (the in-memory state is dropped and rebuilt from the store).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import pickle
import tempfile
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from optisched.domain import Problem
from optisched.errors import BundleError, InputError
from optisched.events import Events, check_events, read_events, step_error
from optisched.io import cell_text
from optisched.jsondoc import problem_from_json
from optisched.plan import Flows, Plan, Status
from optisched.replan import Replanner
from optisched.service.store import Snapshot, Store

__all__ = ["EVENT_COLUMNS", "Session", "SessionManager", "SessionSettings", "Update",
           "plan_changes", "read_event_records"]

log = logging.getLogger(__name__)

EVENT_COLUMNS = ("time", "event", "job_id", "node_id", "tariff", "value", "at", "until", "kind",
                 "release", "deadline", "region", "gpus", "duration_min", "power_kw",
                 "tardiness_per_hour", "drop_penalty", "latency_slo_ms", "latency_per_ms",
                 "min_gpu_mem_gb", "min_trust")
"""Keys of an event record (the columns of the events CSV, ``docs/events.md``)."""

_FLOWS = ("on", "load", "pv_used", "grid_import", "grid_export", "charge", "discharge", "soc")


@dataclass(frozen=True)
class SessionSettings:
    """How a session re-plans (the arguments of :class:`~optisched.replan.Replanner`).

    Attributes
    ----------
    solver : str
        ``greedy`` warm-starts from the current plan; any other solver re-solves.
    time_limit : float
        Seconds of search per update (0: repair only).
    seed : int
        Random seed.
    iterations : int or None
        Cap on local-search moves per update (reproducible updates).
    """

    solver: str = "greedy"
    time_limit: float = 0.2
    seed: int = 0
    iterations: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"solver": self.solver, "time_limit": self.time_limit, "seed": self.seed,
                "iterations": self.iterations}


@dataclass
class Session:
    """One live session."""

    id: str
    settings: SessionSettings
    replanner: Replanner
    version: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    stale: bool = False
    """True once an update failed half-way: the store holds the state to use."""


@dataclass
class Update:
    """What one ``POST /v1/sessions/{id}/events`` did."""

    session: Session
    updates: int
    changes: list[dict[str, Any]]


# ----------------------------------------------------------------------------- events


def _records_csv(records: Sequence[Mapping[str, Any]]) -> tuple[str, list[InputError]]:
    """Event records as events-CSV text; records that are not objects or that have unknown
    keys are errors (``events``, row = position)."""
    errors: list[InputError] = []
    keys: list[str] = []
    for k, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            errors.append(InputError("events", k, None, None, "an event must be a JSON object"))
            continue
        for key in rec:
            if key not in EVENT_COLUMNS and not str(key).startswith("x_"):
                errors.append(InputError("events", k, str(key), cell_text(rec[key]),
                                         "unknown key; valid: " + ", ".join(EVENT_COLUMNS)))
            elif key not in keys:
                keys.append(str(key))
    for c in ("event", "time"):
        if c not in keys:
            keys.insert(0, c)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    for rec in records:
        if isinstance(rec, Mapping):
            w.writerow([cell_text(rec.get(c)) for c in keys])
    return buf.getvalue(), errors


def _relocated(exc: BundleError, path: str, name: str, json_rows: bool) -> BundleError:
    """Errors of the temporary events file as errors of the request's events."""
    out = []
    for e in exc.errors:
        row = e.row
        if json_rows and row is not None:
            row = row - 2  # CSV row (header = 1) -> position in the list
        msg = e.message.replace(path, name)
        out.append(InputError(name if e.file in (path, name) else e.file, row, e.column,
                              e.value, msg))
    return BundleError(out, exc.total)


def read_event_records(body: Sequence[Mapping[str, Any]] | str, problem: Problem,
                       tmp_dir: Path) -> tuple[list[Events], list[dict[str, str]]]:
    """Read and check events given as JSON records or as events-CSV text.

    Parameters
    ----------
    body : list of mapping, or str
        Records with the keys of :data:`EVENT_COLUMNS` (numbers may be JSON numbers),
        or the text of an events CSV.
    problem : Problem
        The session's current problem (ids, horizon, batteries).
    tmp_dir : Path
        Where the events are written for the CSV reader.

    Returns
    -------
    events : list of Events
        One per distinct time, ascending.
    rows : list of dict
        The events as read (cells as text), for the event log.

    Raises
    ------
    BundleError
        Every error: ``events`` (JSON; row = 0-based position) or ``events.csv`` (CSV;
        row with header = 1), the column, the value and what is valid.
    """
    json_rows = not isinstance(body, str)
    name = "events" if json_rows else "events.csv"
    if json_rows:
        if not body:
            raise BundleError([InputError("events", None, None, None,
                                          "no events: give at least one")])
        text, errors = _records_csv(body)  # type: ignore[arg-type]
        if errors:
            raise BundleError(errors)
    else:
        text = str(body)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_dir) as d:
        path = Path(d) / "events.csv"
        path.write_text(text, encoding="utf-8")
        try:
            steps = read_events(path)
            check_events(steps, problem, str(path))
        except BundleError as exc:
            raise _relocated(exc, str(path), name, json_rows) from None
    rows = list(csv.DictReader(io.StringIO(text)))
    return steps, [{k: v for k, v in r.items() if v} for r in rows]


# ----------------------------------------------------------------------------- changes


def _placements(problem: Problem, plan: Plan) -> dict[str, tuple[str | None, str | None]]:
    hz = problem.horizon
    out: dict[str, tuple[str | None, str | None]] = {}
    for j, job in enumerate(problem.jobs):
        n = int(plan.node[j]) if plan.status.has_plan else -1
        out[job.job_id] = ((plan.node_ids[n], hz.time_of(int(plan.start[j])).isoformat())
                           if n >= 0 else (None, None))
    return out


def plan_changes(before: tuple[Problem, Plan], after: tuple[Problem, Plan],
                 steps: Sequence[Events]) -> list[dict[str, Any]]:
    """What changed between two plans of a session, job by job (starts as timestamps).

    The records have the keys of the re-planner's own change set (``job_id``, ``kind``,
    ``reason``, ``node_before``, ``start_before``, ``node_after``, ``start_after``);
    ``kind`` is ``added`` (a new job with a place), ``moved`` (another node or start,
    or a place after being dropped), ``dropped`` (no place now: a droppable job left
    out, or a new one that got none), ``cancelled``, ``finished`` (by an event) or
    ``ended`` (its run was over by the new horizon start). Unchanged jobs are not
    listed. Used when the re-planner keeps no change set of its own
    (``Replanner.last_changes``).
    """
    old, new = _placements(*before), _placements(*after)
    cancelled = {j for s in steps for j in s.cancelled}
    finished = {j for s in steps for j in s.finished}
    out: list[dict[str, Any]] = []

    def rec(jid: str, kind: str, reason: str, a: tuple[str | None, str | None] | None,
            b: tuple[str | None, str | None] | None) -> None:
        out.append({"job_id": jid, "kind": kind, "reason": reason,
                    "node_before": a[0] if a else None, "start_before": a[1] if a else None,
                    "node_after": b[0] if b else None, "start_after": b[1] if b else None})

    for jid, b in new.items():
        a = old.get(jid)
        if a is None:
            if b[0] is None:
                rec(jid, "dropped", "arrived; no place found (its drop penalty is paid)",
                    None, b)
            else:
                rec(jid, "added", "arrived", None, b)
        elif a != b:
            if b[0] is None:
                rec(jid, "dropped", "left out of the new plan", a, b)
            else:
                rec(jid, "moved", "placed after being dropped" if a[0] is None else
                    "another node or start in the new plan", a, b)
    for jid, a in old.items():
        if jid not in new:
            if jid in cancelled:
                rec(jid, "cancelled", "cancel event", a, None)
            elif jid in finished:
                rec(jid, "finished", "finish event", a, None)
            else:
                rec(jid, "ended", "its run was over by the new horizon start", a, None)
    return out


def _own_changes(rp: Replanner, time: str) -> list[dict[str, Any]] | None:
    """The re-planner's change set of its last update (None when it keeps none)."""
    lc = getattr(rp, "last_changes", None)
    if lc is None:
        return None
    records = lc.to_list() if hasattr(lc, "to_list") else [dict(r) for r in lc]
    return [{**r, "time": time} for r in records]


# ----------------------------------------------------------------------------- snapshots


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _snapshot(session: Session) -> Snapshot:
    rp = session.replanner
    plan = rp.plan
    meta = {"solver": plan.solver, "status": plan.status.value, "objective": plan.objective,
            "bound": plan.bound, "costs": plan.costs, "timings": plan.timings,
            "message": plan.message, "info": json.loads(json.dumps(plan.info, default=_plain)),
            "flows": plan.flows is not None}
    arrays: dict[str, np.ndarray] = {"node": plan.node, "start": plan.start}
    if plan.flows is not None:
        arrays.update({k: getattr(plan.flows, k) for k in _FLOWS})
    return Snapshot(session.version, rp.problem.model_dump_json(), meta, arrays,
                    _replanner_summary(rp), _replanner_pickle(rp))


def _replanner_pickle(rp: Replanner) -> bytes:
    """The re-planner's state beyond problem, plan and the compiled index, pickled."""
    return pickle.dumps(rp.snapshot_state(), protocol=pickle.HIGHEST_PROTOCOL)


def _replanner_summary(rp: Replanner) -> dict[str, Any]:
    """The readable part of the state (the fallback of :func:`_replanner_pickle`): the
    slots rolled and the first problem's availability per node."""
    avail: dict[str, list[bool]] = getattr(rp, "_avail0", {})
    return {"offset": rp.offset,
            "original_availability": {n: "".join("1" if a else "0" for a in av)
                                      for n, av in avail.items()}}


def _restore(problem: Problem, snap: Snapshot, settings: SessionSettings) -> Replanner:
    m, arr = snap.plan_meta, snap.plan_arrays
    plan = Plan(solver=str(m["solver"]), status=Status(m["status"]),
                job_ids=[j.job_id for j in problem.jobs],
                node_ids=[n.node_id for n in problem.nodes],
                node=arr["node"], start=arr["start"],
                flows=Flows(**{k: arr[k] for k in _FLOWS}) if m["flows"] else None,
                objective=m["objective"], bound=m["bound"], costs=dict(m["costs"]),
                timings=dict(m["timings"]), message=str(m["message"]), info=dict(m["info"]))
    rp = Replanner(problem, solver=settings.solver, seed=settings.seed,
                   time_limit=settings.time_limit, plan=plan, iterations=settings.iterations)
    if snap.replanner is not None:
        try:
            state = pickle.loads(snap.replanner)  # our own state file (see the module doc)
            rp.restore_state(state)
        except Exception as exc:  # a snapshot of another version of the re-planner
            log.warning("session snapshot: re-planner state not loaded (%s); using its "
                        "summary", type(exc).__name__)
        else:
            return rp
    rp.offset = int(snap.state["offset"])
    if hasattr(rp, "_avail0"):
        rp._avail0 = {n: [c == "1" for c in s]
                      for n, s in snap.state["original_availability"].items()}
    return rp


class SessionManager:
    """Sessions in memory, backed by the store.

    Parameters
    ----------
    store : Store
        The SQLite state.
    tmp_dir : Path
        For the events files of :func:`read_event_records`.
    """

    def __init__(self, store: Store, tmp_dir: Path) -> None:
        self.store = store
        self.tmp_dir = tmp_dir
        self._lock = threading.Lock()
        self._live: dict[str, Session] = {}

    def create(self, problem: Problem, plan: Plan, settings: SessionSettings) -> Session:
        """A new session from a problem and its current plan (persisted as version 0)."""
        rp = Replanner(problem, solver=settings.solver, seed=settings.seed,
                       time_limit=settings.time_limit, plan=plan, iterations=settings.iterations)
        session = Session(uuid.uuid4().hex, settings, rp, 0)
        self.store.add_session(session.id, settings.to_dict(), _snapshot(session))
        with self._lock:
            self._live[session.id] = session
        return session

    def get(self, session_id: str) -> Session | None:
        """A session (rebuilt from its newest snapshot when not in memory), or None."""
        with self._lock:
            s = self._live.get(session_id)
        if s is not None:
            return s
        row = self.store.session(session_id)
        snap = None if row is None else self.store.latest_snapshot(session_id)
        if row is None or snap is None:
            return None
        settings = SessionSettings(**row.settings)
        problem = problem_from_json(snap.problem, name="snapshot")
        session = Session(session_id, settings, _restore(problem, snap, settings), snap.version)
        with self._lock:
            s = self._live.setdefault(session_id, session)
        if s is session:
            log.info("session %s resumed at version %d", session_id, snap.version)
        return s

    def ids(self) -> list[str]:
        """Every session id."""
        return self.store.session_ids()

    def apply(self, session_id: str, body: Sequence[Mapping[str, Any]] | str) -> Update | None:
        """Apply events to a session (under its lock), persist, return the change set.

        Returns
        -------
        Update or None
            None when the session does not exist.

        Raises
        ------
        BundleError
            Events that cannot be read or applied (the session is left unchanged).
        """
        while True:
            session = self.get(session_id)
            if session is None:
                return None
            with session.lock:
                if session.stale:  # an update failed half-way meanwhile: rebuild
                    continue
                return self._apply(session, body)

    def _apply(self, session: Session, body: Sequence[Mapping[str, Any]] | str) -> Update:
        rp = session.replanner
        steps, rows = read_event_records(body, rp.problem, self.tmp_dir)
        before = (rp.problem, rp.plan)
        name = "events" if not isinstance(body, str) else "events.csv"
        try:
            own: list[dict[str, Any]] | None = None
            for step in steps:
                try:
                    step.apply(rp)
                except ValueError as exc:
                    err = step_error(step, name, exc)
                    if not isinstance(body, str) and err.row is not None:
                        err = replace(err, row=err.row - 2)
                    raise BundleError([err]) from None
                mine = _own_changes(rp, step.time.isoformat())
                if mine is not None:
                    own = [*(own or []), *mine]
            changes = own if own is not None else plan_changes(before, (rp.problem, rp.plan),
                                                               steps)
            session.version += 1
            self.store.add_update(session.id, _snapshot(session), rows,
                                  rp.plan.status.value, changes)
        except BaseException:
            session.stale = True
            self._forget(session)
            raise
        return Update(session, len(steps), changes)

    def _forget(self, session: Session) -> None:
        """Drop the in-memory state (the next use rebuilds it from the store)."""
        with self._lock:
            if self._live.get(session.id) is session:
                del self._live[session.id]

    def delete(self, session_id: str) -> bool:
        """Remove a session; False when unknown."""
        with self._lock:
            self._live.pop(session_id, None)
        return self.store.delete_session(session_id)
