"""Bounds computed in a child Python process beside the caller.

:class:`ChildProcess` is the generic plumbing: ``python -m MODULE REQUEST OUT`` (a
plain subprocess, not ``multiprocessing``) in a temporary directory, the request
handed over as a pickle file, results written back as files in that directory
(atomically, :mod:`optisched.bounds.files`), a non-blocking wait, and a stop that
terminates the child and removes the directory. The child never re-imports the
caller's main module, so a script without an ``if __name__ == "__main__"`` guard
works, HiGHS's process-global settings are not shared, and the caller keeps its
core. A failed child means no result, never an error.

:class:`BoundProcess` runs :mod:`optisched.bounds.child` (the LP or
column-generation bound) and reads the best bound it has written so far.
"""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optisched.bounds.files import read_bound
from optisched.bounds.lp import read_placement
from optisched.domain import Problem

__all__ = ["PLACEMENT_FILE", "BoundProcess", "BoundRequest", "ChildProcess", "read_request"]

REQUEST_FILE = "in.pickle"
"""The pickled request in the child's directory."""
RESULT_FILE = "bound.txt"
"""The child's result (a number, rewritten whenever it improves)."""
PLACEMENT_FILE = "placement.npz"
"""The LP's start columns (``lp_bound_result(placement_path=…)``)."""


class ChildProcess:
    """``python -m module REQUEST OUT`` in a fresh temporary directory.

    Parameters
    ----------
    module : str
        The child's module (its ``__main__`` reads the request with
        :func:`read_request`).
    request : object
        Pickled to ``REQUEST`` for the child.
    prefix : str
        Prefix of the temporary directory.

    Attributes
    ----------
    dir : tempfile.TemporaryDirectory
        The directory of the exchanged files.
    out : pathlib.Path
        The child's result file (:data:`RESULT_FILE`).
    proc : subprocess.Popen
        The child.
    done : bool
        The child has ended (or was stopped).
    """

    def __init__(self, module: str, request: object, prefix: str = "optisched-bound-") -> None:
        self.dir = tempfile.TemporaryDirectory(prefix=prefix)
        d = Path(self.dir.name)
        self.out = d / RESULT_FILE
        with open(d / REQUEST_FILE, "wb") as fh:
            pickle.dump(request, fh, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, str(d / REQUEST_FILE), str(self.out)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.done = False

    def path(self, name: str) -> Path:
        """A file of the child's directory."""
        return self.out.with_name(name)

    def wait(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the child to end."""
        end = time.perf_counter() + max(0.0, seconds)
        while self.proc.poll() is None and time.perf_counter() < end:
            time.sleep(min(0.05, max(0.0, end - time.perf_counter())))

    def ended(self) -> bool:
        """Whether the child process has exited."""
        return self.proc.poll() is not None

    def stop(self) -> None:
        """Terminate the child if it still runs, and remove its files."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2.0)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.done = True
        self.dir.cleanup()


def read_request(argv: list[str]) -> tuple[Any, Path]:
    """The child's side of :class:`ChildProcess`: ``REQUEST OUT`` → (request, out path)."""
    src, dst = argv
    with open(src, "rb") as fh:
        request = pickle.load(fh)
    return request, Path(dst)


@dataclass(frozen=True)
class BoundRequest:
    """What a bound child computes.

    Attributes
    ----------
    problem : Problem
        The problem.
    time_limit : float
        Seconds for the child's solve.
    method : {"lp", "colgen", "aggregate", "implicit"}
        :func:`~optisched.bounds.lp.lp_bound_result`, the column-generation bound
        of :mod:`optisched.bounds.colgen` (for models too large for the LP), the
        class-aggregated LP of :mod:`optisched.bounds.aggregate` (every node linear), or
        the implicit column generation of :mod:`optisched.bounds.implicit` (models whose
        full LP does not fit in memory).
    aggregate_first : bool
        When every node is linear, compute the class-aggregated LP first (seconds where
        the LP takes minutes), then ``method``; the larger value is kept.
    """

    problem: Problem
    time_limit: float
    method: str = "lp"
    aggregate_first: bool = False


class BoundProcess(ChildProcess):
    """A lower bound computed in a child process (``python -m optisched.bounds.child``).

    Parameters
    ----------
    problem : Problem
        The problem.
    time_limit : float
        Seconds for the child's solve.
    method : {"lp", "colgen", "aggregate", "implicit"}
        See :class:`BoundRequest`.
    aggregate_first : bool
        See :class:`BoundRequest`.
    """

    child_module = "optisched.bounds.child"
    """The child's module."""

    def __init__(self, problem: Problem, time_limit: float, method: str = "lp",
                 aggregate_first: bool = False) -> None:
        super().__init__(self.child_module, self._request(
            BoundRequest(problem, float(time_limit), method, aggregate_first)))
        self.value: float | None = None
        self.source: str | None = None
        """The method that computed :attr:`value` (the child's word for it)."""
        self.placement: tuple[np.ndarray, ...] | None = None
        """The LP's start columns ``(job, node, start, value)`` once it has ended
        (method ``"lp"`` and an optimal LP only)."""

    def _request(self, request: BoundRequest) -> BoundRequest:
        """The request the child gets (subclasses extend it)."""
        return request

    def poll(self, wait: float = 0.0) -> float | None:
        """The best bound the child has written so far, None before the first.

        Waits up to ``wait`` [s] for the child to end (:attr:`done`); a child that
        improves its bound over time (``colgen``) rewrites the file, and every read
        keeps the largest value.
        """
        if self.done:
            return self.value
        self.wait(wait)
        v, source = read_bound(self.out)
        if math.isfinite(v) and (self.value is None or v > self.value):
            self.value, self.source = v, source
        if self.placement is None:
            self.placement = read_placement(str(self.path(PLACEMENT_FILE)))
        if self.ended():
            self.done = True
        return self.value
