"""Events files of ``optisched replan --events`` (format: ``docs/events.md``).

:func:`read_events` reads an events CSV into :class:`Events`, one per distinct
time (one :meth:`Replanner.update <optisched.replan.Replanner.update>` call
each), ascending; :func:`check_events` checks them against the problem the plan
is for (ids, the slot grid, the horizon, battery capacities). Every error names
the file, the row (header = row 1), the column, the value as written and what is
valid; all errors are collected and raised as one
:class:`~optisched.errors.BundleError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pandas as pd
from pydantic import ValidationError

from optisched.cells import (
    TIMESTAMP_EXAMPLE,
    ErrorList,
    check_columns,
    parse_timestamp,
    read_csv_frame,
)
from optisched.domain import Horizon, Job, Problem, job_rule_breaks
from optisched.errors import InputError
from optisched.limits import Limit, limit

__all__ = ["EVENT_KINDS", "EventRow", "Events", "Replanning", "check_event_times",
           "check_events", "read_events", "step_error"]

EVENT_KINDS = ("arrive", "cancel", "finish", "soc", "outage", "return", "pv", "price",
               "headroom")
"""Event names of the events CSV."""

_JOB_FLOATS = ("gpus", "duration_min", "power_kw", "tardiness_per_hour", "drop_penalty",
               "latency_slo_ms", "latency_per_ms", "min_gpu_mem_gb", "min_trust")
_COLUMNS = ("time", "event", "job_id", "node_id", "tariff", "value", "at", "until", "kind",
            "release", "deadline", "region", *_JOB_FLOATS)
_NEEDS: dict[str, tuple[str, ...]] = {
    "arrive": ("job_id", "gpus", "duration_min", "power_kw"),
    "cancel": ("job_id",), "finish": ("job_id",),
    "soc": ("node_id", "value"), "outage": ("node_id",), "return": ("node_id",),
    "pv": ("node_id", "value"), "headroom": ("node_id", "value"),
    "price": ("tariff", "value"),
}
_KEY = {"arrive": "job_id", "cancel": "job_id", "finish": "job_id", "price": "tariff"}
_VALUE_LIMITS: dict[str, Limit] = {
    "soc": limit("nodes.csv", "battery_kwh"),
    "pv": limit("node_series.csv", "pv_kw"),
    "headroom": limit("node_series.csv", "headroom_kw"),
    "price": limit("prices.csv", "price"),
}
"""What ``value`` may be per event kind (soc is also checked against the battery)."""


_Result = TypeVar("_Result", covariant=True)


class Replanning(Protocol[_Result]):
    """What :meth:`Events.apply` needs: :class:`optisched.replan.Replanner` (whose
    ``update`` returns a :class:`~optisched.plan.Plan`)."""

    problem: Problem

    def update(
        self,
        now: datetime,
        *,
        new_jobs: Iterable[Job] = (),
        cancelled: Iterable[str] = (),
        finished: Iterable[str] = (),
        soc: Mapping[str, float] | None = None,
        pv: Mapping[str, Sequence[float | None]] | None = None,
        prices: Mapping[str, Sequence[float | None]] | None = None,
        headroom: Mapping[str, Sequence[float | None]] | None = None,
        outages: Mapping[str, datetime | None] | Iterable[str] = (),
        returns: Iterable[str] = (),
    ) -> _Result:
        """Roll to ``now`` and apply the changes."""
        ...


_R = TypeVar("_R")


@dataclass(frozen=True)
class EventRow:
    """One row of an events file, kept for messages.

    Attributes
    ----------
    row : int
        Row in the file (header = 1).
    kind : str
        The ``event`` cell.
    key : str
        The job, node or tariff id the event is about.
    cells : dict of str to str
        Every cell as written.
    """

    row: int
    kind: str
    key: str
    cells: dict[str, str]


@dataclass
class Events:
    """What changed at one time (one :meth:`Replanner.update` call), in events-CSV terms."""

    time: datetime
    new_jobs: list[Job] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    soc: dict[str, float] = field(default_factory=dict)
    outages: dict[str, datetime | None] = field(default_factory=dict)
    returns: list[str] = field(default_factory=list)
    pv: list[tuple[str, datetime, datetime | None, float]] = field(default_factory=list)
    prices: list[tuple[str, datetime, datetime | None, float]] = field(default_factory=list)
    headroom: list[tuple[str, datetime, datetime | None, float]] = field(default_factory=list)
    rows: list[EventRow] = field(default_factory=list)
    """The rows of the file these events come from."""

    def apply(self, replanner: Replanning[_R]) -> _R:
        """Call :meth:`Replanner.update` with these events."""
        hz = replanner.problem.horizon
        T2 = hz.slots - round(hz.slot_position(self.time))

        def series(rows: list[tuple[str, datetime, datetime | None, float]]
                   ) -> dict[str, list[float | None]]:
            out: dict[str, list[float | None]] = {}
            for key, at, until, value in rows:
                seq = out.setdefault(key, [None] * T2)
                a = round((at - self.time).total_seconds() / 60 / hz.slot_minutes)
                b = a + 1 if until is None else round(
                    (until - self.time).total_seconds() / 60 / hz.slot_minutes)
                for t in range(max(0, a), min(T2, b)):
                    seq[t] = value
            return out

        return replanner.update(self.time, new_jobs=self.new_jobs, cancelled=self.cancelled,
                                finished=self.finished, soc=self.soc, pv=series(self.pv),
                                prices=series(self.prices), headroom=series(self.headroom),
                                outages=self.outages, returns=self.returns)


# ----------------------------------------------------------------------------- read


@dataclass
class _Reading:
    """State of one :func:`read_events` call."""

    name: str
    errs: ErrorList
    groups: dict[datetime, Events] = field(default_factory=dict)

    def error(self, row: int, column: str | None, value: str | None, msg: str) -> None:
        self.errs.add(self.name, row, column, value, msg)

    def time(self, row: int, column: str, cells: dict[str, str]) -> datetime | None:
        """A timestamp cell (None and an error when bad)."""
        try:
            return parse_timestamp(cells[column])
        except ValueError as exc:
            self.error(row, column, cells[column], str(exc))
            return None

    def number(self, row: int, column: str, cells: dict[str, str], lim: Limit,
               what: str = "") -> float | None:
        """A numeric cell within ``lim`` (None and an error when bad)."""
        raw = cells[column]
        try:
            x = float(raw)
        except ValueError:
            self.error(row, column, raw, f"not a number; expected {what}{lim.describe()}")
            return None
        why = lim.problem(x)
        if why is not None:
            self.error(row, column, raw, what + why)
            return None
        return x


def read_events(path: str | Path) -> list[Events]:
    """Read an events CSV into updates grouped by time (ascending); see ``docs/events.md``.

    Columns (header row required; empty cell = not given; ``x_`` columns ignored):

    ============ =============================================================
    ``time``     ISO 8601 with offset, a slot boundary: when the event is known
                 (each distinct time is one update, ``now = time``)
    ``event``    arrive | cancel | finish | soc | outage | return | pv | price |
                 headroom
    ``job_id``   arrive, cancel, finish
    ``node_id``  soc, outage, return, pv, headroom
    ``tariff``   price
    ``value``    soc [kWh], pv [kW], headroom [kW, ``inf`` = unlimited],
                 price [money/kWh]
    ``at``       pv/price/headroom: first slot the value applies to (default ``time``)
    ``until``    pv/price/headroom: end (exclusive; default one slot after ``at``);
                 outage: when the node comes back (default: end of horizon)
    job columns  arrive: ``gpus``, ``duration_min``, ``power_kw`` (required),
                 ``kind``, ``release`` (default ``time``), ``deadline``,
                 ``tardiness_per_hour``, ``drop_penalty``, ``region``,
                 ``latency_slo_ms``, ``latency_per_ms``, ``min_gpu_mem_gb``,
                 ``min_trust`` as in jobs.csv
    ============ =============================================================

    Raises
    ------
    BundleError
        Every bad cell, named by file, row (header = 1), column and value.
    """
    path = Path(path)
    rd = _Reading(str(path), ErrorList())
    df = _table(path, rd)
    if df is not None:
        for row, values in zip(df.index, df.itertuples(index=False), strict=True):
            cells = {c: str(v) for c, v in zip(df.columns, values, strict=True)}
            _read_row(rd, int(row), {c: cells.get(c, "") for c in _COLUMNS})
    rd.errs.raise_if_any()
    return [rd.groups[t] for t in sorted(rd.groups)]


def _table(path: Path, rd: _Reading) -> pd.DataFrame | None:
    """The events table with known columns and at least one row."""
    if not path.exists():
        rd.errs.add(rd.name, None, None, None, "events file not found")
        return None
    df = read_csv_frame(path, rd.name, rd.errs, required=True)
    if df is None or not check_columns(df, rd.name, _COLUMNS, ("time", "event"), rd.errs):
        return None
    if len(df) == 0:
        rd.errs.add(rd.name, None, None, None, "no events: the file has a header but no rows")
        return None
    return df


def _read_row(rd: _Reading, row: int, cells: dict[str, str]) -> None:
    kind = cells["event"]
    if kind not in EVENT_KINDS:
        rd.error(row, "event", kind, "must be one of " + " | ".join(EVENT_KINDS))
        return
    t = rd.time(row, "time", cells) if cells["time"] else None
    if not cells["time"]:
        rd.error(row, "time", "", f"a timestamp is required, e.g. {TIMESTAMP_EXAMPLE}")
    missing = [c for c in _NEEDS[kind] if not cells[c]]
    for c in missing:
        rd.error(row, c, "", f"required for event {kind}")
    if t is None or missing:
        return
    g = rd.groups.setdefault(t, Events(time=t))
    before = rd.errs.total
    _READERS[kind](rd, g, row, cells)
    if rd.errs.total == before:
        g.rows.append(EventRow(row, kind, cells[_KEY.get(kind, "node_id")], cells))


def _arrive(rd: _Reading, g: Events, row: int, cells: dict[str, str]) -> None:
    kw: dict[str, Any] = {"job_id": cells["job_id"], "release": g.time}
    ok = True
    for c in _JOB_FLOATS:
        if cells[c]:
            x = rd.number(row, c, cells, limit("jobs.csv", c))
            ok &= x is not None
            kw[c] = x
    for c in ("release", "deadline"):
        if cells[c]:
            t = rd.time(row, c, cells)
            ok &= t is not None
            kw[c] = t
    for c in ("region", "kind"):
        if cells[c]:
            kw[c] = cells[c]
    if not ok:
        return
    for br in job_rule_breaks(kw):
        shown = ", ".join(f"{c} {cells[c]!r}" if cells.get(c) else
                          f"{c} empty (default: time {cells['time']})" if c == "release" else
                          f"{c} empty" for c in br.related)
        rd.error(row, br.column, cells.get(br.column, ""),
                 br.message + (f" ({shown})" if shown else ""))
        ok = False
    if not ok:
        return
    try:
        g.new_jobs.append(Job(**kw))
    except ValidationError as exc:
        for e in exc.errors():
            column = str(e["loc"][0]) if e["loc"] else "job_id"
            rd.error(row, column, cells.get(column, ""),
                     "invalid job: " + str(e["msg"]).removeprefix("Value error, "))


def _cancel(rd: _Reading, g: Events, row: int, cells: dict[str, str]) -> None:
    g.cancelled.append(cells["job_id"])


def _finish(rd: _Reading, g: Events, row: int, cells: dict[str, str]) -> None:
    g.finished.append(cells["job_id"])


def _soc(rd: _Reading, g: Events, row: int, cells: dict[str, str]) -> None:
    x = rd.number(row, "value", cells, _VALUE_LIMITS["soc"], "for a soc event (kWh): ")
    if x is not None:
        g.soc[cells["node_id"]] = x


def _outage(rd: _Reading, g: Events, row: int, cells: dict[str, str]) -> None:
    until = rd.time(row, "until", cells) if cells["until"] else None
    if cells["until"] and until is None:
        return
    if until is not None and until <= g.time:
        rd.error(row, "until", cells["until"], f"the outage ends before it starts: until must "
                 f"lie after time ({cells['time']}); leave it empty for 'to the end of the "
                 "horizon'")
        return
    g.outages[cells["node_id"]] = until


def _return(rd: _Reading, g: Events, row: int, cells: dict[str, str]) -> None:
    g.returns.append(cells["node_id"])


def _series(rd: _Reading, g: Events, row: int, cells: dict[str, str]) -> None:
    kind = cells["event"]
    x = rd.number(row, "value", cells, _VALUE_LIMITS[kind], f"for a {kind} event: ")
    at = rd.time(row, "at", cells) if cells["at"] else g.time
    until = rd.time(row, "until", cells) if cells["until"] else None
    if x is None or at is None or (cells["until"] and until is None):
        return
    if at < g.time:
        rd.error(row, "at", cells["at"], f"must not lie before time ({cells['time']})")
        return
    if until is not None and until <= at:
        rd.error(row, "until", cells["until"],
                 f"must lie after at ({cells['at'] or cells['time']})")
        return
    target = {"pv": g.pv, "price": g.prices, "headroom": g.headroom}[kind]
    target.append((cells[_KEY.get(kind, "node_id")], at, until, x))


_READERS: dict[str, Callable[[_Reading, Events, int, dict[str, str]], None]] = {
    "arrive": _arrive, "cancel": _cancel, "finish": _finish, "soc": _soc, "outage": _outage,
    "return": _return, "pv": _series, "price": _series, "headroom": _series,
}


# ----------------------------------------------------------------------------- check


@dataclass
class _Checking:
    """State of one :func:`check_events` call: which jobs exist at each step."""

    problem: Problem
    name: str
    errs: ErrorList
    jobs: dict[str, str] = field(default_factory=dict)
    """Job id -> where it comes from ("jobs.csv" or "row N")."""
    gone: dict[str, int] = field(default_factory=dict)
    """Job id -> row of the cancel/finish that removed it."""

    def error(self, r: EventRow, column: str, msg: str) -> None:
        self.errs.add(self.name, r.row, column, r.cells.get(column, ""), msg)


def check_events(events: list[Events], problem: Problem, file: str) -> None:
    """Check events read by :func:`read_events` against the problem the plan is for.

    Times must be slot boundaries inside the horizon; jobs cancelled or finished
    must exist at that time (in jobs.csv or arrived earlier, not yet removed);
    arrivals need a new job id and must fit some node; nodes and tariffs must
    exist; a measured soc needs a battery and must not exceed its capacity.

    Raises
    ------
    BundleError
        Every problem, named by file, row, column, value and what is valid.
    """
    ck = _Checking(problem, file, ErrorList(), {j.job_id: "jobs.csv" for j in problem.jobs})
    for ev in events:
        if not _time_ok(ck, ev):
            continue
        arrived: dict[str, str] = {}
        for r in ev.rows:
            _CHECKS[r.kind](ck, ev, r, arrived)
        ck.jobs.update(arrived)
    ck.errs.raise_if_any()


check_event_times = check_events
"""The former name of :func:`check_events` (it checks more than times now)."""


def _time_ok(ck: _Checking, ev: Events) -> bool:
    hz = ck.problem.horizon
    pos = hz.slot_position(ev.time)
    if abs(pos - round(pos)) <= 1e-9 and 0 <= round(pos) < hz.slots:
        return _series_times_ok(ck, ev, hz)
    first, rest = ev.rows[0], ev.rows[1:]
    also = ""
    if rest:
        listed = ", ".join(str(r.row) for r in rest[:5]) + (" …" if len(rest) > 5 else "")
        also = (f"; row {listed} has" if len(rest) == 1 else f"; rows {listed} have") + (
            " the same time")
    ck.error(first, "time", f"must be a slot boundary ({hz.slot_minutes}-minute slots from "
             f"{hz.start.isoformat()}) in [{hz.start.isoformat()}, {hz.end.isoformat()}), "
             f"the horizon of the plan{also}")
    return False


def _series_times_ok(ck: _Checking, ev: Events, hz: Horizon) -> bool:
    """``at``/``until`` of pv/price/headroom rows on the grid, ``at`` inside the horizon."""
    ok = True
    for r in ev.rows:
        if r.kind not in ("pv", "price", "headroom"):
            continue
        for column in ("at", "until"):
            if not r.cells[column]:
                continue
            pos = hz.slot_position(parse_timestamp(r.cells[column]))
            if abs(pos - round(pos)) > 1e-9:
                ck.error(r, column, f"must be a slot boundary ({hz.slot_minutes}-minute slots "
                         f"from {hz.start.isoformat()})")
                ok = False
            elif column == "at" and pos >= hz.slots:
                ck.error(r, column, f"lies at or after the end of the horizon "
                         f"({hz.end.isoformat()}): the value would apply to no slot")
                ok = False
    return ok


def _known_job(ck: _Checking, r: EventRow) -> None:
    jid = r.key
    if jid in ck.gone:
        ck.error(r, "job_id", f"job {jid} was already removed by row {ck.gone[jid]}")
    elif jid not in ck.jobs:
        ck.error(r, "job_id", "unknown job_id: valid are the jobs of jobs.csv and those that "
                 "arrived at an earlier time (an arrival counts from the next time on)")
    else:
        ck.gone[jid] = r.row


def _check_cancel(ck: _Checking, ev: Events, r: EventRow, arrived: dict[str, str]) -> None:
    _known_job(ck, r)


def _check_arrive(ck: _Checking, ev: Events, r: EventRow, arrived: dict[str, str]) -> None:
    jid = r.key
    used = arrived.get(jid) or ck.jobs.get(jid)
    if used is not None and jid in ck.gone:
        used += f", removed by row {ck.gone[jid]}"
    if used is not None:
        ck.error(r, "job_id", f"job_id already used ({used}); an arriving job needs a new id")
        return
    arrived[jid] = f"row {r.row}"
    job = next(j for j in ev.new_jobs if j.job_id == jid)
    issues = Problem.model_construct(
        scenario=ck.problem.scenario, nodes=ck.problem.nodes, jobs=[job], node_series={},
        tariffs={}, feeders={}, latency_ms={}, regions={}).issues()
    for i in issues:
        if i.table == "jobs.csv":
            ck.error(r, i.column, i.message)


def _check_node(ck: _Checking, r: EventRow) -> bool:
    if r.key in {n.node_id for n in ck.problem.nodes}:
        return True
    ids = sorted(n.node_id for n in ck.problem.nodes)
    shown = ", ".join(ids[:8]) + (" …" if len(ids) > 8 else "")
    ck.error(r, "node_id", f"unknown node_id (nodes.csv has {shown})")
    return False


def _check_node_event(ck: _Checking, ev: Events, r: EventRow, arrived: dict[str, str]) -> None:
    _check_node(ck, r)


def _check_soc(ck: _Checking, ev: Events, r: EventRow, arrived: dict[str, str]) -> None:
    if not _check_node(ck, r):
        return
    node = next(n for n in ck.problem.nodes if n.node_id == r.key)
    kwh = float(r.cells["value"])
    if node.battery_kwh <= 0:
        ck.error(r, "node_id", f"node {r.key} has no battery (battery_kwh is 0 in nodes.csv): "
                 "a soc event needs one")
    elif kwh > node.battery_kwh * (1 + 1e-9):
        ck.error(r, "value", f"above the capacity of node {r.key}'s battery "
                 f"({node.battery_kwh:g} kWh, battery_kwh in nodes.csv); expected a soc in "
                 f"[0, {node.battery_kwh:g}] kWh")


def _check_price(ck: _Checking, ev: Events, r: EventRow, arrived: dict[str, str]) -> None:
    if r.key in ck.problem.tariffs:
        return
    names = sorted(ck.problem.tariffs)
    ck.error(r, "tariff", "unknown tariff (prices.csv has "
             + (", ".join(names[:8]) if names else "none") + ")")


_CHECKS: dict[str, Callable[[_Checking, Events, EventRow, dict[str, str]], None]] = {
    "arrive": _check_arrive, "cancel": _check_cancel, "finish": _check_cancel,
    "soc": _check_soc, "outage": _check_node_event, "return": _check_node_event,
    "pv": _check_node_event, "headroom": _check_node_event, "price": _check_price,
}


def step_error(ev: Events, file: str, exc: Exception) -> InputError:
    """A located error for an update the re-planner refused (what only the rolled problem
    shows, e.g. a job cancelled after it ended and left the plan)."""
    msg = str(exc)
    quoted = re.findall(r"'([^']+)'", msg)
    row = next((r for r in ev.rows if quoted and r.key == quoted[0]), None)
    hint = (" (a job that ended before this time has left the plan)"
            if "unknown job_id" in msg else "")
    if row is not None:
        column = _KEY.get(row.kind, "node_id")
        return InputError(file, row.row, column, row.key, f"cannot be applied at "
                          f"{ev.time.isoformat()}: {msg}{hint}")
    rows = [r.row for r in ev.rows]
    where = ("row " if len(rows) == 1 else "rows ") + ", ".join(map(str, rows[:8]))
    return InputError(file, rows[0] if rows else None, "time", ev.time.isoformat(),
                      f"the update at this time ({where}) cannot be applied: {msg}{hint}")
