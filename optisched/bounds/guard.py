"""Child processes that die with their parent and leave no temporary directory behind.

The child side of :class:`~optisched.bounds.process.ChildProcess` (and of the benchmark
worker). A child of optisched must not outlive the process that started it, however
that process ends (a return, an exception, Ctrl-C, ``SIGTERM`` or ``SIGKILL``), and
must not leave its temporary directory behind. :func:`guard` installs three watches,
any one of which ends the child:

1. **Parent-death signal** (Linux): ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` through
   :mod:`ctypes`; the kernel sends ``SIGTERM`` when the parent (the thread that
   started the child) exits.
2. **Pipe watch** (every POSIX system): the parent holds the write end of a pipe whose
   read end the child watches; the kernel closes it when the parent dies in any way
   (``SIGKILL`` too), and the child reads end-of-file. The parent closes it on purpose
   to stop the child.
3. **Re-parenting**: ``os.getppid()`` is no longer the parent's pid (polled).

``SIGTERM``, ``SIGINT`` and ``SIGHUP`` are blocked in every thread of the child and
taken by the watcher thread (``signal.sigtimedwait``), so they are acted on even while
the main thread is inside a long HiGHS call (HiGHS releases the GIL while it runs; a
Python signal handler would wait for the call to return). On any of these events the
watcher removes the child's directory and ends the process at once (``os._exit``).

:data:`BOOTSTRAP` starts a child as ``python -c BOOTSTRAP GUARD PARENT FD DIR MODULE
ARGS…``: it loads this file by its path (it imports only the standard library, and not
the optisched package, whose import takes 2-3 s on a loaded machine), installs the
guard within milliseconds of the exec, and then runs ``MODULE`` as ``__main__`` with
``ARGS``. When the module's ``main`` returns, the child writes :data:`DONE_FILE` in its
directory and waits for the parent to close the pipe (or to die): then it removes the
directory and exits. So the directory goes with the child in every order of events; a
directory whose owner died before the child started is removed by the next run
(:func:`optisched.bounds.process.remove_stale_dirs`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import runpy
import select
import shutil
import signal
import sys
import threading
import traceback
from collections.abc import Callable

__all__ = ["BOOTSTRAP", "DONE_FILE", "GUARD_SIGNALS", "POLL_SECONDS", "bootstrap", "guard",
           "set_parent_death_signal"]

POLL_SECONDS = 0.1
"""How often the watcher looks at the parent's pid and the blocked signals [s]."""
DONE_FILE = "done"
"""Written into the child's directory when its module's ``main`` has returned (its
content is the exit code); the parent reads results only then."""
GUARD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP")
                      if hasattr(signal, name))
"""Signals the watcher takes: each ends the child after removing its directory."""
_PR_SET_PDEATHSIG = 1
"""``<linux/prctl.h>``."""

BOOTSTRAP = ("import importlib.util as u,sys;"
             "s=u.spec_from_file_location('optisched_child_guard',sys.argv[1]);"
             "m=u.module_from_spec(s);s.loader.exec_module(m);m.bootstrap(sys.argv[2:])")
"""``python -c BOOTSTRAP`` code: load this file by path, call :func:`bootstrap`."""


def set_parent_death_signal(sig: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)`` on Linux; False elsewhere or when it fails."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _remove(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def guard(parent: int, pipe_fd: int | None = None, cleanup: str | None = None, *,
          take_signals: bool = True,
          on_exit: Callable[[], None] | None = None) -> threading.Thread:
    """Make this process end when its parent does (see the module docstring).

    Parameters
    ----------
    parent : int
        The parent's pid (``os.getpid()`` of the parent, passed down: checked once at
        once, which closes the race of a parent that died before the guard was set).
    pipe_fd : int, optional
        Read end of the parent's pipe; end-of-file ends the child.
    cleanup : str, optional
        Directory removed before the child ends.
    take_signals : bool
        Block :data:`GUARD_SIGNALS` in this thread (and so in every thread started
        after it) and let the watcher take them. Call :func:`guard` from the main thread
        before other threads start.
    on_exit : callable, optional
        Called before the directory is removed (tests).

    Returns
    -------
    threading.Thread
        The watcher (a daemon thread).
    """
    sigs = set(GUARD_SIGNALS) if take_signals and hasattr(signal, "sigtimedwait") else set()
    if sigs:
        signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
        set_parent_death_signal(signal.SIGTERM)
    else:
        set_parent_death_signal(signal.SIGKILL)

    def end(code: int) -> None:
        if on_exit is not None:
            with contextlib.suppress(Exception):
                on_exit()
        _remove(cleanup)
        os._exit(code)

    def orphaned() -> bool:
        return os.getppid() != parent

    def watch() -> None:
        while True:
            if orphaned():
                end(1)
            if sigs and signal.sigtimedwait(sigs, 0) is not None:
                end(1)
            if pipe_fd is None:
                threading.Event().wait(POLL_SECONDS)
                continue
            try:
                ready, _, _ = select.select([pipe_fd], [], [], POLL_SECONDS)
                if ready and not os.read(pipe_fd, 4096):
                    end(1)  # end-of-file: the parent closed the pipe or died
            except OSError:
                end(1)

    if orphaned():
        end(1)
    t = threading.Thread(target=watch, name="optisched-child-guard", daemon=True)
    t.start()
    return t


def bootstrap(argv: list[str]) -> None:
    """``PARENT FD DIR MODULE ARGS…``: guard, run ``MODULE`` as ``__main__``, linger.

    ``FD`` is ``-`` without a pipe, ``DIR`` ``-`` without a directory. After the module
    ends (any way), :data:`DONE_FILE` gets its exit code and the child waits for the
    watcher to end it (the parent closes the pipe in
    :meth:`~optisched.bounds.process.ChildProcess.stop`); without a pipe it exits at once.
    """
    parent, fd, directory, module, *args = argv
    pipe_fd = None if fd == "-" else int(fd)
    cleanup = None if directory == "-" else directory
    guard(int(parent), pipe_fd, cleanup)
    sys.argv = [module, *args]
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # a failed child means no result, never an error of the caller
        traceback.print_exc()
        code = 1
    if cleanup is not None:
        done = os.path.join(cleanup, DONE_FILE)
        with contextlib.suppress(OSError):
            with open(done + ".tmp", "w", encoding="ascii") as fh:
                fh.write(str(code))
            os.replace(done + ".tmp", done)
    if pipe_fd is None:
        os._exit(code)
    threading.Event().wait()  # until the watcher ends the process
