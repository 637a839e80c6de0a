"""The service's state in one SQLite file: solves (queued ones too) and re-planning sessions.

Tables (``state.sqlite`` under ``--state``, WAL journal, every write one transaction):

``solves``
    One row per solve: the request, the problem JSON, status, progress, the plan
    document when done. A solve still ``queued`` or ``running`` when the server
    stopped is queued again on the next start, in the order it arrived.
``sessions``
    One row per session: its settings (solver, time limit, seed, iterations) and
    its current version (number of updates applied).
``snapshots``
    The session's problem JSON, plan (metadata JSON and arrays in a NumPy ``.npz``
    blob, bit for bit) and re-planner state (a JSON summary, and a pickle of the
    re-planner's own attributes beside problem and plan) after version 0 (creation)
    and after the newest update; the ones in between are dropped when a newer one
    is written. The state directory must be private to the server (pickles are
    only ever read from it).
``session_events``
    The event log: every update as received (normalized events-CSV rows), its
    status and its change set.

A restarted server rebuilds a session from its newest snapshot
(:mod:`optisched.service.sessions`); nothing is replayed.
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SessionRow", "Snapshot", "SolveRow", "Store", "arrays_blob", "blob_arrays",
           "iso_time"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS solves (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, status TEXT NOT NULL, request TEXT NOT NULL,
    problem TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL,
    progress TEXT, plan TEXT, message TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS solves_status ON solves (status, seq);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, created REAL NOT NULL, settings TEXT NOT NULL,
    version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (
    session_id TEXT NOT NULL, version INTEGER NOT NULL, problem TEXT NOT NULL,
    plan_meta TEXT NOT NULL, plan_arrays BLOB NOT NULL, state TEXT NOT NULL,
    replanner BLOB, PRIMARY KEY (session_id, version));
CREATE TABLE IF NOT EXISTS session_events (
    session_id TEXT NOT NULL, version INTEGER NOT NULL, received REAL NOT NULL,
    events TEXT NOT NULL, status TEXT NOT NULL, changes TEXT NOT NULL,
    PRIMARY KEY (session_id, version));
"""

ACTIVE = ("queued", "running")
"""Solve statuses that are resumed after a restart."""


def iso_time(t: float | None) -> str | None:
    """A POSIX time as an ISO 8601 UTC timestamp with milliseconds (None stays None)."""
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def arrays_blob(arrays: dict[str, np.ndarray]) -> bytes:
    """NumPy arrays as one uncompressed ``.npz`` blob (exact)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def blob_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """The arrays of :func:`arrays_blob`."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@dataclass
class SolveRow:
    """One row of ``solves``."""

    id: str
    seq: int
    status: str
    request: dict[str, Any]
    created: float
    started: float | None
    finished: float | None
    progress: dict[str, Any] | None
    message: str


@dataclass
class SessionRow:
    """One row of ``sessions``."""

    id: str
    created: float
    settings: dict[str, Any]
    version: int


@dataclass
class Snapshot:
    """A session's state after one version."""

    version: int
    problem: str
    plan_meta: dict[str, Any]
    plan_arrays: dict[str, np.ndarray]
    state: dict[str, Any]
    replanner: bytes | None = None


class Store:
    """The SQLite state file (thread-safe: one connection, one lock).

    Parameters
    ----------
    path : Path
        The database file (created with its tables when missing).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # ------------------------------------------------------------------ solves
    def add_solve(self, solve_id: str, request: dict[str, Any], problem: str) -> SolveRow:
        """Persist a new queued solve; returns its row."""
        now = time.time()
        with self._tx() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM solves").fetchone()[0]
            db.execute("INSERT INTO solves (id, seq, status, request, problem, created) "
                       "VALUES (?, ?, 'queued', ?, ?, ?)",
                       (solve_id, seq, json.dumps(request), problem, now))
        return SolveRow(solve_id, seq, "queued", request, now, None, None, None, "")

    def update_solve(self, solve_id: str, **fields: Any) -> None:
        """Set columns of a solve (``progress`` as a dict, the rest as they are)."""
        if "progress" in fields and fields["progress"] is not None:
            fields["progress"] = json.dumps(fields["progress"])
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE solves SET {cols} WHERE id = ?", (*fields.values(), solve_id))

    def solve(self, solve_id: str) -> SolveRow | None:
        """A solve's row (without problem and plan), or None."""
        row = self._one("SELECT id, seq, status, request, created, started, finished, progress, "
                        "message FROM solves WHERE id = ?", (solve_id,))
        return None if row is None else _solve_row(row)

    def solve_problem(self, solve_id: str) -> str | None:
        """A solve's problem JSON."""
        row = self._one("SELECT problem FROM solves WHERE id = ?", (solve_id,))
        return None if row is None else str(row[0])

    def solve_plan(self, solve_id: str) -> str | None:
        """A finished solve's plan document (JSON text), or None."""
        row = self._one("SELECT plan FROM solves WHERE id = ?", (solve_id,))
        return None if row is None or row[0] is None else str(row[0])

    def solves(self, statuses: tuple[str, ...] | None = None, limit: int = 1000
               ) -> list[SolveRow]:
        """Solves in arrival order, optionally only those with one of ``statuses``."""
        where = ""
        args: tuple[Any, ...] = ()
        if statuses:
            where = f"WHERE status IN ({', '.join('?' for _ in statuses)})"
            args = statuses
        rows = self._all("SELECT id, seq, status, request, created, started, finished, progress, "
                         f"message FROM solves {where} ORDER BY seq LIMIT ?", (*args, limit))
        return [_solve_row(r) for r in rows]

    # ------------------------------------------------------------------ sessions
    def add_session(self, session_id: str, settings: dict[str, Any], snap: Snapshot) -> None:
        """Persist a new session with its version-0 snapshot."""
        with self._tx() as db:
            db.execute("INSERT INTO sessions (id, created, settings, version) VALUES (?, ?, ?, 0)",
                       (session_id, time.time(), json.dumps(settings)))
            _put_snapshot(db, session_id, snap)

    def add_update(self, session_id: str, snap: Snapshot, events: list[dict[str, Any]],
                   status: str, changes: Any) -> None:
        """Persist one applied update: the event log row, the new snapshot, the version;
        snapshots between version 0 and this one are dropped."""
        with self._tx() as db:
            db.execute("INSERT INTO session_events (session_id, version, received, events, "
                       "status, changes) VALUES (?, ?, ?, ?, ?, ?)",
                       (session_id, snap.version, time.time(), json.dumps(events), status,
                        json.dumps(changes)))
            _put_snapshot(db, session_id, snap)
            db.execute("DELETE FROM snapshots WHERE session_id = ? AND version > 0 AND "
                       "version < ?", (session_id, snap.version))
            db.execute("UPDATE sessions SET version = ? WHERE id = ?", (snap.version, session_id))

    def session(self, session_id: str) -> SessionRow | None:
        """A session's row, or None."""
        row = self._one("SELECT id, created, settings, version FROM sessions WHERE id = ?",
                        (session_id,))
        if row is None:
            return None
        return SessionRow(str(row[0]), float(row[1]), json.loads(row[2]), int(row[3]))

    def session_ids(self) -> list[str]:
        """Every session id, oldest first."""
        return [str(r[0]) for r in self._all("SELECT id FROM sessions ORDER BY created")]

    def latest_snapshot(self, session_id: str) -> Snapshot | None:
        """The newest snapshot of a session."""
        row = self._one("SELECT version, problem, plan_meta, plan_arrays, state, replanner "
                        "FROM snapshots WHERE session_id = ? ORDER BY version DESC LIMIT 1",
                        (session_id,))
        if row is None:
            return None
        return Snapshot(int(row[0]), str(row[1]), json.loads(row[2]), blob_arrays(row[3]),
                        json.loads(row[4]), None if row[5] is None else bytes(row[5]))

    def session_events(self, session_id: str) -> list[dict[str, Any]]:
        """The event log of a session, oldest first."""
        rows = self._all("SELECT version, received, events, status, changes FROM session_events "
                         "WHERE session_id = ? ORDER BY version", (session_id,))
        return [{"version": int(v), "received": iso_time(float(t)), "events": json.loads(e),
                 "status": s, "changes": json.loads(c)} for v, t, e, s, c in rows]

    def delete_session(self, session_id: str) -> bool:
        """Remove a session with its snapshots and log; False when unknown."""
        with self._tx() as db:
            n = db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount
            db.execute("DELETE FROM snapshots WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM session_events WHERE session_id = ?", (session_id,))
        return bool(n)


def _solve_row(row: tuple[Any, ...]) -> SolveRow:
    return SolveRow(str(row[0]), int(row[1]), str(row[2]), json.loads(row[3]), float(row[4]),
                    row[5], row[6], json.loads(row[7]) if row[7] else None, str(row[8] or ""))


def _put_snapshot(db: sqlite3.Connection, session_id: str, snap: Snapshot) -> None:
    db.execute("INSERT OR REPLACE INTO snapshots (session_id, version, problem, plan_meta, "
               "plan_arrays, state, replanner) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (session_id, snap.version, snap.problem, json.dumps(snap.plan_meta),
                arrays_blob(snap.plan_arrays), json.dumps(snap.state), snap.replanner))
