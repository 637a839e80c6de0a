"""The child side of the worker pool: one process that solves one problem at a time.

A worker is started by :class:`optisched.service.pool.WorkerPool` (``spawn``) and
talks to it over one pipe: it receives ``("solve", task)`` and answers with
``("progress", report)`` messages (at most every :data:`PROGRESS_EVERY` seconds)
and then ``("done", result)`` or ``("failed", message)``. It dies with the server:
on Linux the kernel kills it when its parent goes (``PR_SET_PDEATHSIG``), and it
also leaves when its parent's pid changes. Its logging is off and its standard
output and error go to ``/dev/null``, so no problem data reaches a log.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import signal
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from optisched.jsondoc import problem_from_json
from optisched.progress import ProgressState
from optisched.solvers import Progress, solve

__all__ = ["PROGRESS_EVERY", "run_task", "worker_main"]

PROGRESS_EVERY = 0.25
"""Seconds between two progress messages of one solve (the last report is always sent)."""


def _die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent exits (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def _silence() -> None:
    """No logging, standard output and error to /dev/null (no data in any log)."""
    logging.disable(logging.CRITICAL)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def run_task(task: dict[str, Any], send: Any) -> dict[str, Any]:
    """Solve one task: ``problem`` (JSON text), ``solver``, ``time_limit``, ``seed``,
    ``mip_gap``, ``threads``, ``options``; progress goes to ``send(("progress", …))``.

    Returns
    -------
    dict
        ``status``, ``objective``, ``plan`` (the plan document as JSON text).
    """
    problem = problem_from_json(task["problem"])
    state = ProgressState()
    last = [0.0]

    def report(p: Progress) -> None:
        state.update(p)
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            send(("progress", {"elapsed": state.elapsed, "objective": _finite(state.objective),
                               "bound": _finite(state.bound), "gap": _finite(state.gap),
                               "message": state.message, "reports": state.reports}))

    plan = solve(problem, task["solver"], time_limit=task.get("time_limit"),
                 mip_gap=task.get("mip_gap"), seed=int(task.get("seed", 0)),
                 threads=task.get("threads"), callback=report, options=task.get("options"))
    return {"status": plan.status.value, "objective": _finite(plan.objective),
            "bound": _finite(plan.bound), "gap": _finite(plan.gap),
            "elapsed": plan.timings.get("total"), "plan": plan.to_json(problem)}


def worker_main(conn: Connection, parent: int, quiet: bool = True) -> None:
    """The worker's loop (the target of the pool's ``Process``)."""
    _die_with_parent()
    if quiet:
        _silence()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the server, which stops us
    while True:
        if not conn.poll(1.0):
            if os.getppid() != parent:
                return
            continue
        try:
            kind, task = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "stop":
            return
        try:
            result = run_task(task, conn.send)
        except Exception as exc:
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
            continue
        conn.send(("done", result))
