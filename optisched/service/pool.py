"""A pool of solver processes in which a crash, a hang or a cancel costs one task only.

Each of the ``workers`` slots owns one long-lived process
(:func:`optisched.service.worker.worker_main`, started with ``spawn``) and one
thread of the server that feeds it tasks from a shared queue, passes its progress
on and watches it. A slot whose process dies (killed, out of memory, a crash in a
native solver) reports its task as ``crashed`` and starts a new process; a task
that is cancelled, or runs past its hard wall-clock limit, has its process killed
(the only way to stop a native solver at once) and replaced. The other slots keep
working all the while. :meth:`WorkerPool.close` kills every process.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from optisched.service.worker import worker_main

__all__ = ["Outcome", "Task", "WorkerPool"]

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """How a task ended.

    Attributes
    ----------
    kind : str
        ``done`` (``result`` holds the worker's answer), ``failed`` (the solve raised),
        ``crashed`` (the process died), ``cancelled``, ``timeout`` (killed at its hard
        limit) or ``shutdown`` (the pool closed while it ran).
    result : dict or None
        The worker's answer for ``done``.
    message : str
        What happened, for the others.
    """

    kind: str
    result: dict[str, Any] | None = None
    message: str = ""


@dataclass
class Task:
    """One unit of work for a worker.

    Attributes
    ----------
    id : str
        Id (a solve id).
    payload : dict
        What the worker gets (:func:`optisched.service.worker.run_task`).
    hard_limit : float
        Seconds after which the process is killed.
    on_start : callable
        ``on_start(task, pid)`` when a process takes it.
    on_progress : callable
        ``on_progress(task, report)`` for every progress message.
    on_done : callable
        ``on_done(task, outcome)`` exactly once (also for a task cancelled while queued).
    """

    id: str
    payload: dict[str, Any]
    hard_limit: float
    on_start: Callable[[Task, int], None]
    on_progress: Callable[[Task, dict[str, Any]], None]
    on_done: Callable[[Task, Outcome], None]
    cancelled: threading.Event = field(default_factory=threading.Event)


class _Worker:
    """One process and its pipe."""

    def __init__(self, ctx: Any, quiet: bool) -> None:
        parent, child = ctx.Pipe()
        self.conn: Connection = parent
        self.proc: BaseProcess = ctx.Process(target=worker_main, args=(child, os.getpid(), quiet),
                                             daemon=True, name="optisched-worker")
        self.proc.start()
        child.close()

    @property
    def pid(self) -> int:
        return int(self.proc.pid or 0)

    def kill(self, close: bool = True) -> None:
        """Kill the process (SIGKILL) and wait for it; ``close``: also close the pipe
        (only the slot's own thread does, the one that reads it)."""
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        if close:
            try:
                self.conn.close()
            except OSError:  # pragma: no cover - already closed
                pass


class WorkerPool:
    """``workers`` solver processes fed from one queue.

    Parameters
    ----------
    workers : int
        Number of processes (and feeding threads).
    quiet : bool
        Silence the workers' logging and output (the server's default: no data in logs).
    """

    def __init__(self, workers: int, quiet: bool = True) -> None:
        self.size = workers
        self.quiet = quiet
        self._ctx = multiprocessing.get_context("spawn")
        self._queue: collections.deque[Task] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._threads: list[threading.Thread] = []
        self._workers: dict[int, _Worker] = {}
        self._running: dict[str, Task] = {}

    # ------------------------------------------------------------------ public
    def start(self) -> None:
        """Start the processes and their threads (the threads start them, so that each
        process's parent-death signal is bound to a thread that lives as long as the pool)."""
        for slot in range(self.size):
            t = threading.Thread(target=self._slot, args=(slot,), daemon=True,
                                 name=f"optisched-slot-{slot}")
            t.start()
            self._threads.append(t)

    def submit(self, task: Task) -> None:
        """Queue a task (first in, first out)."""
        with self._cond:
            if self._closing:
                raise RuntimeError("the worker pool is closed")
            self._queue.append(task)
            self._cond.notify()

    def cancel(self, task_id: str) -> str | None:
        """Cancel a task: ``queued`` (removed, its ``on_done`` called here), ``running``
        (its process is killed by its thread, which calls ``on_done``) or None (unknown)."""
        with self._cond:
            for t in self._queue:
                if t.id == task_id:
                    self._queue.remove(t)
                    break
            else:
                t = self._running.get(task_id)  # type: ignore[assignment]
                if t is None:
                    return None
                t.cancelled.set()
                return "running"
        t.on_done(t, Outcome("cancelled", message="cancelled while queued"))
        return "queued"

    def counts(self) -> dict[str, int]:
        """Tasks queued and running."""
        with self._cond:
            return {"queued": len(self._queue), "running": len(self._running)}

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [w.pid for w in list(self._workers.values()) if w.proc.is_alive()]

    def close(self, timeout: float = 10.0) -> None:
        """Stop: no new task, every process killed, the threads joined."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for w in list(self._workers.values()):
            try:
                w.kill(close=False)
            except OSError:  # pragma: no cover - already gone
                pass
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ slots
    def _next(self) -> Task | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if self._closing:
                return None
            task = self._queue.popleft()
            self._running[task.id] = task
            return task

    def _spawn(self, slot: int) -> _Worker | None:
        with self._cond:
            if self._closing:
                return None
            w = _Worker(self._ctx, self.quiet)
            self._workers[slot] = w
        log.info("worker slot %d: process %d started", slot, w.pid)
        return w

    def _slot(self, slot: int) -> None:
        worker = self._spawn(slot)
        while worker is not None:
            task = self._next()
            if task is None:
                break
            try:
                outcome, broken = self._run(worker, task)
            except Exception as exc:  # pragma: no cover - a bug here must not stop the slot
                log.error("worker slot %d: %s", slot, type(exc).__name__)
                outcome, broken = Outcome("crashed", message="internal error in the pool"), True
            with self._cond:
                self._running.pop(task.id, None)
            try:
                task.on_done(task, outcome)
            except Exception as exc:  # pragma: no cover
                log.error("on_done of a task failed: %s", type(exc).__name__)
            if broken:
                worker.kill()
                worker = self._spawn(slot)
        if worker is not None:
            worker.kill()

    def _run(self, w: _Worker, task: Task) -> tuple[Outcome, bool]:
        """Run one task on ``w``; returns the outcome and whether ``w`` must be replaced."""
        try:
            w.conn.send(("solve", task.payload))
        except (OSError, ValueError):
            return Outcome("crashed", message=_died(w)), True
        task.on_start(task, w.pid)
        deadline = time.monotonic() + task.hard_limit
        while True:
            if self._closing:
                return Outcome("shutdown", message="the server stopped"), True
            if task.cancelled.is_set():
                return Outcome("cancelled", message="cancelled while running"), True
            if time.monotonic() > deadline:
                return Outcome("timeout", message=f"killed after {task.hard_limit:.0f} s "
                               "(its hard wall-clock limit)"), True
            try:
                if not w.conn.poll(0.05):
                    if not w.proc.is_alive():
                        return Outcome("crashed", message=_died(w)), True
                    continue
                kind, body = w.conn.recv()
            except (EOFError, OSError):
                return Outcome("crashed", message=_died(w)), True
            if kind == "progress":
                task.on_progress(task, body)
            elif kind == "done":
                return Outcome("done", result=body), False
            else:
                return Outcome("failed", message=str(body)), False


def _died(w: _Worker) -> str:
    w.proc.join(2)
    code = w.proc.exitcode
    how = (f"killed by signal {-code}" if code is not None and code < 0
           else f"exit code {code}")
    return f"the worker process died ({how})"
