"""How a run of optisched ends when it is told to: signals, and its children's groups.

The parent's side of the rule "no child process or temporary file outlives a killed
run" (the child's side is :mod:`optisched.bounds.guard`, whose children take their
signals in a watcher thread).

* :func:`exit_on_signals` turns ``SIGTERM`` and ``SIGHUP`` into :class:`Terminated`
  (a :class:`SystemExit` with the shell's code ``128 + signal number``: 143 for
  ``SIGTERM``, 129 for ``SIGHUP``) raised in the main thread. Python's default for both
  is to die at once, skipping every ``finally:`` block and context-manager exit (a
  :class:`tempfile.TemporaryDirectory`, an atomic write's temporary directory, a
  driver's kill of its children); with the handler they run, as they do for Ctrl-C's
  :class:`KeyboardInterrupt`. Every command-line entry point calls it.
* :func:`stop_groups` ends process groups (children started with
  ``start_new_session=True``): ``SIGTERM`` to each group, a grace of
  :data:`STOP_GRACE` for every member to end (so guarded grandchildren remove their
  directories), then ``SIGKILL`` to what is left.

A Python signal handler runs when the main thread next executes Python code: inside a
long native call that does not call back (a HiGHS presolve, a CP-SAT solve) the exit
waits for the call to return. A driver that stops a child therefore does not wait for
the child's handler longer than :data:`STOP_GRACE` before ``SIGKILL``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import FrameType

__all__ = ["EXIT_SIGNALS", "STOP_GRACE", "Terminated", "exit_on_signals", "stop_groups"]

EXIT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                     if hasattr(signal, name))
"""Signals :func:`exit_on_signals` turns into :class:`Terminated` (``SIGINT`` is
Python's own :class:`KeyboardInterrupt`)."""
STOP_GRACE = 5.0
"""Seconds :func:`stop_groups` waits after ``SIGTERM`` before ``SIGKILL`` [s]."""
_POLL = 0.05
"""How often :func:`stop_groups` looks whether a group has ended [s]."""


class Terminated(SystemExit):
    """Raised by the handler of :func:`exit_on_signals`.

    Parameters
    ----------
    signum : int
        The signal; the exit code is ``128 + signum``.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"terminated by {signal.Signals(self.signum).name}"


def _raise(signum: int, frame: FrameType | None) -> None:
    # A second signal of the same kind ends the process at once (the default action):
    # the first one's clean-up is running, and a user who insists gets what they ask for.
    signal.signal(signum, signal.SIG_DFL)
    raise Terminated(signum)


def exit_on_signals() -> tuple[int, ...]:
    """Make ``SIGTERM`` and ``SIGHUP`` raise :class:`Terminated` in the main thread.

    Idempotent. Only a signal whose handler is still the default is taken (a ``SIGHUP``
    ignored by ``nohup``, or a handler the application installed, stays); called from
    another thread than the main one (where Python cannot install handlers) it does
    nothing. The first signal raises; it resets its own handler, so a second one of the
    same kind during the clean-up ends the process at once.

    Returns
    -------
    tuple of int
        The signals handled by :class:`Terminated` now.
    """
    if threading.current_thread() is not threading.main_thread():
        return ()
    taken = []
    for sig in EXIT_SIGNALS:
        current = signal.getsignal(sig)
        if current is signal.SIG_DFL:
            signal.signal(sig, _raise)
            current = _raise
        if current is _raise:
            taken.append(sig)
    return tuple(taken)


def _send(pgid: int, sig: int) -> bool:
    """``killpg``; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # not ours any more (the id was reused)
        return False
    return True


def _group_running(pgid: int) -> bool:
    """Whether a member of process group ``pgid`` runs (zombies do not count)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return _send(pgid, 0)
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def stop_groups(pgids: Iterable[int], grace: float = STOP_GRACE) -> None:
    """End process groups: ``SIGTERM``, up to ``grace`` [s] for them to end, ``SIGKILL``.

    Parameters
    ----------
    pgids : iterable of int
        Process group ids (the pid of a child started with ``start_new_session=True``;
        keep such a child unreaped while its group is signalled, so the id is not reused).
    grace : float
        Seconds every member of every group gets to end after ``SIGTERM`` [s].
    """
    live = [g for g in dict.fromkeys(pgids) if _send(g, signal.SIGTERM)]
    end = time.monotonic() + max(0.0, grace)
    while live:
        live = [g for g in live if _group_running(g)]
        if not live or time.monotonic() >= end:
            break
        time.sleep(_POLL)
    for g in live:
        _send(g, signal.SIGKILL)
