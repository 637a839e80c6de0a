"""Solves of the service: persisted in SQLite, run in the worker pool, watched over SSE.

A solve is ``queued`` (persisted with its problem), ``running`` (a worker has it),
then one of the plan statuses ``optimal``, ``feasible``, ``infeasible``,
``no_solution``, ``error`` (the solve failed, its worker died or was killed at the
hard limit), or ``cancelled``. A solve still queued or running when the server
stops is queued again, in its original order, when the server starts on the same
``--state`` (a running one starts over).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from optisched.service.config import ServiceConfig
from optisched.service.pool import Outcome, Task, WorkerPool
from optisched.service.store import ACTIVE, SolveRow, Store, iso_time

__all__ = ["TERMINAL", "SolveManager", "SolveState"]

log = logging.getLogger(__name__)

TERMINAL = ("optimal", "feasible", "infeasible", "no_solution", "error", "cancelled")
"""Statuses of a finished solve."""


@dataclass
class SolveState:
    """What the service knows about one solve (the plan itself stays in the store)."""

    id: str
    seq: int
    status: str
    request: dict[str, Any]
    created: float
    started: float | None = None
    finished: float | None = None
    progress: dict[str, Any] | None = None
    message: str = ""
    worker_pid: int | None = None
    subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = field(
        default_factory=list)

    @property
    def done(self) -> bool:
        """True once the solve has a final status."""
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``GET /v1/solves/{id}`` without the plan."""
        req = self.request
        out: dict[str, Any] = {
            "id": self.id, "status": self.status, "done": self.done, "solver": req["solver"],
            "time_limit": req["time_limit"], "time_limit_capped": req.get("time_limit_capped",
                                                                          False),
            "created": iso_time(self.created), "started": iso_time(self.started),
            "finished": iso_time(self.finished), "progress": self.progress, "message": self.message,
        }
        if self.status == "running":
            out["worker_pid"] = self.worker_pid
        return out

    @classmethod
    def of_row(cls, row: SolveRow) -> SolveState:
        return cls(row.id, row.seq, row.status, row.request, row.created, row.started,
                   row.finished, row.progress, row.message)


class SolveManager:
    """Queues solves in the pool and keeps their state in memory and in the store.

    Parameters
    ----------
    store : Store
        The SQLite state.
    pool : WorkerPool
        Where solves run.
    config : ServiceConfig
        Hard-limit factors.
    """

    def __init__(self, store: Store, pool: WorkerPool, config: ServiceConfig) -> None:
        self.store = store
        self.pool = pool
        self.config = config
        self._lock = threading.Lock()
        self._active: dict[str, SolveState] = {}

    def resume(self) -> int:
        """Queue again every solve the store holds as queued or running; returns how many."""
        rows = self.store.solves(ACTIVE, limit=1_000_000)
        for row in rows:
            if row.status == "running":
                self.store.update_solve(row.id, status="queued", started=None)
            state = SolveState.of_row(row)
            state.status, state.started = "queued", None
            self._enqueue(state, self.store.solve_problem(row.id) or "")
        if rows:
            log.info("resumed %d queued solve(s) from the state file", len(rows))
        return len(rows)

    def submit(self, problem_json: str, request: dict[str, Any]) -> SolveState:
        """Persist and queue a new solve."""
        row = self.store.add_solve(uuid.uuid4().hex, request, problem_json)
        state = SolveState.of_row(row)
        self._enqueue(state, problem_json)
        return state

    def _enqueue(self, state: SolveState, problem_json: str) -> None:
        req = state.request
        payload = {"problem": problem_json, "solver": req["solver"],
                   "time_limit": req["time_limit"], "seed": req.get("seed", 0),
                   "mip_gap": req.get("mip_gap"), "threads": req.get("threads"),
                   "options": req.get("options") or None}
        hard = self.config.kill_factor * float(req["time_limit"]) + self.config.kill_slack
        with self._lock:
            self._active[state.id] = state
        self.pool.submit(Task(state.id, payload, hard, self._started, self._progress,
                              self._finished))

    def get(self, solve_id: str) -> SolveState | None:
        """The state of a solve (memory first, then the store)."""
        with self._lock:
            state = self._active.get(solve_id)
        if state is not None:
            return state
        row = self.store.solve(solve_id)
        return None if row is None else SolveState.of_row(row)

    def plan(self, solve_id: str) -> str | None:
        """The plan document (JSON text) of a finished solve."""
        return self.store.solve_plan(solve_id)

    def list(self, limit: int = 1000) -> list[SolveState]:
        """Every solve, oldest first (at most ``limit``)."""
        with self._lock:
            active = dict(self._active)
        return [active.get(r.id) or SolveState.of_row(r) for r in self.store.solves(limit=limit)]

    def cancel(self, solve_id: str) -> SolveState | None:
        """Cancel a queued or running solve (a finished one stays as it is)."""
        state = self.get(solve_id)
        if state is None or state.done:
            return state
        if self.pool.cancel(solve_id) is None:  # between the queue and a worker: retry once
            time.sleep(0.05)
            self.pool.cancel(solve_id)
        return self.get(solve_id)

    def subscribe(self, solve_id: str, loop: asyncio.AbstractEventLoop
                  ) -> tuple[SolveState | None, asyncio.Queue[dict[str, Any]] | None]:
        """A queue of this solve's events (None when it is finished or unknown)."""
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        with self._lock:
            state = self._active.get(solve_id)
            if state is None:
                return self.get(solve_id), None
            state.subscribers.append((loop, q))
        return state, q

    def unsubscribe(self, solve_id: str, q: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop sending events to ``q``."""
        with self._lock:
            state = self._active.get(solve_id)
            if state is not None:
                state.subscribers = [(lp, x) for lp, x in state.subscribers if x is not q]

    # ------------------------------------------------------------------ pool callbacks
    def _notify(self, state: SolveState, event: dict[str, Any]) -> None:
        for loop, q in list(state.subscribers):
            try:
                loop.call_soon_threadsafe(q.put_nowait, event)
            except RuntimeError:  # the event loop is closed
                pass

    def _started(self, task: Task, pid: int) -> None:
        state = self._active[task.id]
        state.status, state.started, state.worker_pid = "running", time.time(), pid
        self.store.update_solve(task.id, status="running", started=state.started)
        self._notify(state, {"event": "status", "data": state.to_dict()})

    def _progress(self, task: Task, report: dict[str, Any]) -> None:
        state = self._active[task.id]
        state.progress = report
        self._notify(state, {"event": "progress", "data": report})

    def _finished(self, task: Task, outcome: Outcome) -> None:
        state = self._active[task.id]
        plan_json: str | None = None
        if outcome.kind == "shutdown":  # queued again on the next start
            self.store.update_solve(task.id, status="queued", started=None)
            return
        if outcome.kind == "done" and outcome.result is not None:
            res = outcome.result
            state.status = str(res["status"])
            plan_json = str(res["plan"])
            state.progress = {**(state.progress or {}), "elapsed": res.get("elapsed"),
                              "objective": res.get("objective"), "bound": res.get("bound"),
                              "gap": res.get("gap")}
            state.message = ""
        else:
            state.status = "cancelled" if outcome.kind == "cancelled" else "error"
            state.message = outcome.message
        state.finished = time.time()
        self.store.update_solve(task.id, status=state.status, finished=state.finished,
                                progress=state.progress, plan=plan_json, message=state.message)
        log.info("solve %s: %s", task.id, state.status)
        self._notify(state, {"event": "done", "data": state.to_dict()})
        with self._lock:
            self._active.pop(task.id, None)
