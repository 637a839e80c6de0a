"""Bounds computed in a child Python process beside the caller.

:class:`ChildProcess` is the generic plumbing: ``MODULE REQUEST OUT`` run as ``__main__`` (a
plain subprocess, not ``multiprocessing``) in a temporary directory, the request
handed over as a pickle file, results written back as files in that directory
(atomically, :mod:`optisched.bounds.files`), a non-blocking wait, and a stop that
ends the child and removes the directory. The child never re-imports the
caller's main module, so a script without an ``if __name__ == "__main__"`` guard
works, HiGHS's process-global settings are not shared, and the caller keeps its
core. A failed child means no result, never an error.

The child dies with its caller and takes its directory with it, however the caller
ends (``SIGKILL`` too): it is started through :data:`optisched.bounds.guard.BOOTSTRAP`
(parent-death signal, a pipe the caller holds open, re-parenting watch), so the guard
is in place before the child imports anything. The directory is named
``optisched-bound-<caller pid>-…``; a directory whose caller is dead is removed when the
next child starts (:func:`remove_stale_dirs`).

:class:`BoundProcess` runs :mod:`optisched.bounds.child` (the LP or
column-generation bound) and reads the best bound it has written so far.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optisched.bounds import guard
from optisched.bounds.files import read_bound
from optisched.bounds.lp import read_placement
from optisched.domain import Problem

__all__ = [
    "DIR_PREFIX",
    "PLACEMENT_FILE",
    "BoundProcess",
    "BoundRequest",
    "ChildProcess",
    "read_request",
    "remove_stale_dirs",
]

log = logging.getLogger(__name__)

REQUEST_FILE = "in.pickle"
"""The pickled request in the child's directory."""
RESULT_FILE = "bound.txt"
"""The child's result (a number, rewritten whenever it improves)."""
PLACEMENT_FILE = "placement.npz"
"""The LP's start columns (``lp_bound_result(placement_path=…)``)."""
DIR_PREFIX = "optisched-bound-"
"""Prefix of a child's temporary directory (then the caller's pid and ``-``)."""
STOP_GRACE = 2.0
"""Seconds :meth:`ChildProcess.stop` waits for the child after closing its pipe, and
again after ``SIGTERM``, before ``SIGKILL``."""
STALE_AGE = 24 * 3600.0
"""Age [s] after which a directory without an owner pid in its name (an earlier
version's) counts as stale."""
_OWNED = re.compile(re.escape(DIR_PREFIX) + r"(\d+)-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_dirs(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the child directories left by callers that died (and by earlier versions).

    A directory ``optisched-bound-<pid>-…`` of this user in ``root`` (default: the
    temporary directory) is stale when no process ``pid`` exists; one without a pid
    when it is older than :data:`STALE_AGE`. A live owner's directory is never touched.

    Returns
    -------
    list of pathlib.Path
        The directories removed.
    """
    base = Path(root if root is not None else tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(base.glob(DIR_PREFIX + "*"))
    except OSError:
        return removed
    now = time.time()
    for d in entries:
        try:
            st = d.lstat()
        except OSError:
            continue
        if not d.is_dir() or d.is_symlink() or st.st_uid != os.getuid():
            continue
        m = _OWNED.match(d.name)
        stale = (not _alive(int(m.group(1)))) if m else now - st.st_mtime > STALE_AGE
        if stale:
            shutil.rmtree(d, ignore_errors=True)
            if not d.exists():
                removed.append(d)
    if removed:
        log.info("removed %d stale child directories in %s", len(removed), base)
    return removed


class ChildProcess:
    """``MODULE REQUEST OUT`` run as ``__main__`` of a guarded child process (see the
    module docstring), in a fresh temporary directory.

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

    def __init__(self, module: str, request: object, prefix: str = DIR_PREFIX) -> None:
        remove_stale_dirs()
        self.dir = tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-",
                                               ignore_cleanup_errors=True)
        d = Path(self.dir.name)
        self.out = d / RESULT_FILE
        self.done = False
        self._stopped = False
        self._pipe: int | None = None
        with open(d / REQUEST_FILE, "wb") as fh:
            pickle.dump(request, fh, protocol=pickle.HIGHEST_PROTOCOL)
        read_end, self._pipe = os.pipe()  # the child watches read_end; closing ours ends it
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", guard.BOOTSTRAP, str(Path(guard.__file__).resolve()),
                 str(os.getpid()), str(read_end), str(d), module, str(d / REQUEST_FILE),
                 str(self.out)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(read_end,))
        except BaseException:
            self._close_pipe()
            self.dir.cleanup()
            raise
        finally:
            os.close(read_end)

    def path(self, name: str) -> Path:
        """A file of the child's directory."""
        return self.out.with_name(name)

    def wait(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the child to end."""
        end = time.perf_counter() + max(0.0, seconds)
        while not self.ended() and time.perf_counter() < end:
            time.sleep(min(0.05, max(0.0, end - time.perf_counter())))

    def ended(self) -> bool:
        """Whether the child's work has ended: it has written
        :data:`~optisched.bounds.guard.DONE_FILE` (and waits for :meth:`stop`) or exited."""
        return self.path(guard.DONE_FILE).exists() or self.proc.poll() is not None

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.close(self._pipe)
            self._pipe = None

    def stop(self) -> None:
        """End the child and remove its files.

        Closing the pipe ends it (it removes its directory itself); one that has not
        exited within :data:`STOP_GRACE` gets ``SIGTERM``, then ``SIGKILL``.
        """
        self._stopped = True
        self._close_pipe()
        for end in (self.proc.terminate, self.proc.kill, None):
            try:
                self.proc.wait(timeout=STOP_GRACE)
                break
            except subprocess.TimeoutExpired:
                if end is None:
                    log.warning("child %d did not end after SIGKILL", self.proc.pid)
                    break
                with contextlib.suppress(OSError):
                    end()
        self.done = True
        self.dir.cleanup()

    def __del__(self) -> None:  # a caller that forgot stop(): the child must not linger
        with contextlib.suppress(Exception):
            if not getattr(self, "_stopped", True):
                self.stop()


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
        finished = self.ended()  # before reading: a finished child has written everything
        v, source = read_bound(self.out)
        if math.isfinite(v) and (self.value is None or v > self.value):
            self.value, self.source = v, source
        if self.placement is None:
            self.placement = read_placement(str(self.path(PLACEMENT_FILE)))
        if finished:
            self.done = True
        return self.value
