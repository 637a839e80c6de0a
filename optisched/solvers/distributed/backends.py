"""Engines that run the workers' tasks: Ray, a local process pool, or inline.

Every engine holds ``workers`` :class:`~optisched.solvers.distributed.worker.PartitionWorker`
instances, each with the whole problem and index received **once**, and answers
:meth:`Engine.map` (a method name and a list of tasks) and :meth:`Engine.map_lazy` (tasks
built one at a time when a worker is free, from the answers so far) with the answers **in
task order**, whichever worker ran which task; so the decomposition's results do not depend on the
engine (module :mod:`optisched.solvers.distributed`, "Determinism").

* :class:`RayEngine`: ``ray.put`` of the problem and the index once (numpy arrays are
  read from Ray's shared-memory object store without a copy), one Ray actor per worker
  built from those references, tasks as actor method calls kept busy with ``ray.wait``.
  Without an address (option ``ray_address``, else ``RAY_ADDRESS``) it starts a local
  Ray (``num_cpus`` = the cores, no dashboard, quiet logs) and shuts it down in
  :meth:`close`; with one it joins that cluster and leaves it running. A Ray already
  initialized in this process is used as it is.
* :class:`ProcessEngine`: ``workers`` processes started with ``spawn``, one pipe each (as
  :mod:`optisched.service.pool`). The problem and index are pickled once to a file in a
  private temporary directory that every process loads itself: only the file's path goes
  through ``spawn``'s start pipe, so the parent never blocks writing start data to a
  process that died before reading it (which it did when they were a
  :class:`concurrent.futures.ProcessPoolExecutor`'s initializer arguments). A process that
  dies, before or during a task, ends its pipe: :class:`WorkerDied` names its exit code or
  signal (the executor's ``BrokenProcessPool`` said neither, and its result queue, shared
  by every process, could wait for ever on a message cut by a death).
* :class:`InlineEngine`: one worker in this process (one partition, or one worker).

:meth:`close` ends every process the engine started (``with`` blocks do it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import multiprocessing
import os
import pickle
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as mp_wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any

from optisched.atomic import remove_stale_temporaries
from optisched.bounds.guard import set_parent_death_signal
from optisched.domain import Problem
from optisched.index import Index
from optisched.shutdown import STOP_GRACE
from optisched.solvers.distributed.worker import PartitionWorker

__all__ = ["Engine", "InlineEngine", "ProcessEngine", "RayEngine", "WorkerDied", "make_engine",
           "ray_available"]

log = logging.getLogger(__name__)


def ray_available() -> bool:
    """Whether the ``ray`` package is installed (``pip install "optisched[ray]"``)."""
    return importlib.util.find_spec("ray") is not None


class Engine:
    """Runs worker tasks; results in task order. Base of the three engines."""

    name = "engine"
    workers = 1

    def map(self, method: str, tasks: Sequence[Any]) -> list[Any]:
        """``[getattr(worker, method)(t) for t in tasks]`` on some workers, in task order."""
        raise NotImplementedError

    def map_lazy(self, method: str, count: int, make: Callable[[int], Any],
                 done: Callable[[int, Any], None] | None = None,
                 lag: int | None = None) -> list[Any]:
        """``count`` tasks, task ``k`` built by ``make(k)`` when a worker is free for it (in
        the order ``k = 0, 1, …``, at most :attr:`workers` running), so that it can be
        planned from the answers so far; ``done(k, answer)`` is called as each answer
        arrives. With ``lag``, task ``k`` is built only once tasks ``0 … k − lag`` are
        answered (and their ``done`` called), so that what ``make(k)`` takes from them
        does not depend on which worker was faster. The answers in task order."""
        results: list[Any] = []
        for k in range(count):
            results.append(self.map(method, [make(k)])[0])
            if done is not None:
                done(k, results[-1])
        return results

    @staticmethod
    def _ready(k: int, answered: list[bool], lag: int | None) -> bool:
        """Whether task ``k`` may be built: every task up to ``k − lag`` is answered."""
        return lag is None or all(answered[:max(0, k - lag + 1)])

    def close(self) -> None:
        """End what the engine started."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class InlineEngine(Engine):
    """One worker in this process."""

    name = "inline"

    def __init__(self, problem: Problem, index: Index) -> None:
        self.worker = PartitionWorker(problem, index)
        self.workers = 1

    def map(self, method: str, tasks: Sequence[Any]) -> list[Any]:
        fn = getattr(self.worker, method)
        return [fn(t) for t in tasks]


START_FILE = "start.pickle"
"""The pickled ``(problem, index)`` that every pool process loads itself."""
TMP_NAME = "optisched-pool"
"""Name of the process pool's private temporary directory: ``.optisched-pool.tmp-<pid>-…``
in :func:`tempfile.gettempdir` (``TMPDIR``), the naming of :mod:`optisched.atomic`, so a
directory left by a killed run is removed by the next one
(:func:`~optisched.atomic.remove_stale_temporaries`)."""
_READY, _DONE, _FAILED = "ready", "done", "failed"
"""A pool process's messages: it has loaded the problem; an answer; its task raised."""


class WorkerDied(RuntimeError):
    """A process of :class:`ProcessEngine` ended without its answer (killed by a signal,
    out of memory, a crash).

    Parameters
    ----------
    pid : int
        The process.
    exitcode : int or None
        Its exit code (negative: ``-signal``, as :attr:`multiprocessing.Process.exitcode`);
        None when it closed its pipe and has not ended.
    loaded : bool
        Whether it had loaded the problem (its start data).
    method : str or None
        The worker method of the task it ran (None: no task).
    task : int or None
        That task's position in its map.
    """

    def __init__(self, pid: int, exitcode: int | None, loaded: bool, method: str | None,
                 task: int | None) -> None:
        self.pid, self.exitcode, self.loaded = pid, exitcode, loaded
        self.method, self.task = method, task
        if exitcode is None:
            how = "it closed its pipe, its exit status is unknown"
        elif exitcode < 0:
            try:
                name = signal.Signals(-exitcode).name
            except ValueError:
                name = f"signal {-exitcode}"
            how = f"killed by {name}"
        else:
            how = f"exit code {exitcode}"
        if not loaded:
            when = "before it had loaded the problem"
        elif method is not None:
            when = f"during task {task} of its map {method!r}"
        else:
            when = "between tasks"
        super().__init__(
            f"a worker process of the process pool (pid {pid}) died {when} ({how}); "
            "if it ran out of memory (the kernel's out-of-memory killer sends SIGKILL; see "
            "dmesg), try fewer workers (option workers=1 solves in this process), "
            "backend=ray, or more memory")


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a pool process (its ``__cause__``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _serve(conn: Connection, path: str, parent: int) -> None:
    """A pool process: load ``(problem, index)`` from ``path``, say :data:`_READY`, then
    answer ``(method, task)`` messages until ``None`` or the end of the pipe.

    ``SIGINT`` is ignored (Ctrl-C is the parent's, which stops the pool); the process gets
    ``SIGTERM`` when its parent dies (Linux), so it never outlives the solve.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the signal was set
        return
    with open(path, "rb") as fh:
        problem, index = pickle.load(fh)
    worker = PartitionWorker(problem, index)
    del problem, index
    try:
        conn.send((_READY, None))
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                return
            if msg is None:
                return
            method, task = msg
            try:
                data = _dumps((_DONE, getattr(worker, method)(task)))
            except Exception as exc:  # the parent raises it (one it cannot load, as text)
                text = "".join(traceback.format_exception(exc))
                try:
                    data = _dumps((_FAILED, (exc, text)))
                    pickle.loads(data)
                except Exception:
                    data = _dumps((_FAILED, (None, text)))
            conn.send_bytes(data)
    except OSError:  # BrokenPipeError, ConnectionResetError: the parent has gone
        return


def _dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


@dataclass
class _Proc:
    """A pool process, the parent's end of its pipe, and what the parent knows of it."""

    process: BaseProcess
    conn: Connection
    loaded: bool = False
    method: str | None = None
    task: int | None = None


class ProcessEngine(Engine):
    """A local pool of ``workers`` spawned processes, one pipe each.

    The problem and index are pickled once to :data:`START_FILE` in a private temporary
    directory (:data:`TMP_NAME`) and every process loads that file itself; only the path
    goes through ``spawn``'s start pipe, so the parent never blocks writing start data to
    a process that died before reading it. The file is removed as soon as every process
    has loaded it, the directory at the latest in :meth:`close`. A process that dies
    (before or during a task) makes :meth:`map` and :meth:`map_lazy` raise
    :class:`WorkerDied`: the end of its pipe is seen at once, as nobody else holds it.

    Parameters
    ----------
    problem : Problem
        The whole problem.
    index : Index
        Its compiled index.
    workers : int
        Processes.
    """

    name = "processes"

    def __init__(self, problem: Problem, index: Index, workers: int) -> None:
        self.workers = max(1, int(workers))
        self.procs: list[_Proc] = []
        self.broken: str | None = None
        """Why the pool cannot be used any more (an error during a map), or None."""
        target = Path(tempfile.gettempdir()) / TMP_NAME
        remove_stale_temporaries(target, {START_FILE})
        self.dir: Path | None = Path(tempfile.mkdtemp(
            prefix=f".{TMP_NAME}.tmp-{os.getpid()}-", dir=target.parent))
        try:
            path = self.dir / START_FILE
            with open(path, "wb") as fh:
                pickle.dump((problem, index), fh, protocol=pickle.HIGHEST_PROTOCOL)
            ctx = multiprocessing.get_context("spawn")
            for i in range(self.workers):
                here, there = ctx.Pipe()
                try:
                    p = ctx.Process(target=_serve, args=(there, str(path), os.getpid()),
                                    name=f"optisched-partition-worker-{i}", daemon=True)
                    p.start()
                except BaseException:
                    here.close()
                    raise
                finally:
                    there.close()
                self.procs.append(_Proc(p, here))
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        """Process ids of the pool's processes (tests)."""
        return [int(w.process.pid or 0) for w in self.procs]

    def map(self, method: str, tasks: Sequence[Any]) -> list[Any]:
        return self.map_lazy(method, len(tasks), tasks.__getitem__)

    def map_lazy(self, method: str, count: int, make: Callable[[int], Any],
                 done: Callable[[int, Any], None] | None = None,
                 lag: int | None = None) -> list[Any]:
        if self.broken is not None:
            raise RuntimeError(f"the process pool cannot be used after {self.broken}")
        if not self.procs:
            raise RuntimeError("engine closed")
        try:
            return self._map_lazy(method, count, make, done, lag)
        except BaseException as exc:  # tasks may still run: their answers are not read
            self.broken = f"{type(exc).__name__}: {exc}"
            raise

    def _map_lazy(self, method: str, count: int, make: Callable[[int], Any],
                  done: Callable[[int, Any], None] | None, lag: int | None
                  ) -> list[Any]:
        results: list[Any] = [None] * count
        answered = [False] * count
        idle = list(self.procs)
        busy: dict[Any, _Proc] = {}
        k = 0
        while k < count or busy:
            while k < count and idle and self._ready(k, answered, lag):
                w = idle.pop(0)
                w.method, w.task = method, k
                busy[w.conn] = w
                self._send(w, (method, make(k)))
                k += 1
            ready = [busy[c] for c in mp_wait(list(busy))]
            for w in sorted(ready, key=lambda w: int(w.task or 0)):
                kind, body = self._receive(w)
                if kind == _READY:
                    continue
                i, w.method, w.task = int(w.task or 0), None, None
                del busy[w.conn]
                idle.append(w)
                if kind == _FAILED:
                    exc, text = body
                    raise (exc or RuntimeError(f"a task of the process pool failed:\n{text}")
                           ) from _RemoteTraceback(text)
                results[i] = body
                answered[i] = True
                if done is not None:
                    done(i, body)
        return results

    def _send(self, w: _Proc, msg: Any) -> None:
        try:
            w.conn.send(msg)
        except OSError as exc:  # BrokenPipeError, ConnectionResetError: it has died
            raise self._died(w) from exc

    def _receive(self, w: _Proc) -> tuple[str, Any]:
        try:
            data = w.conn.recv_bytes()
        except (EOFError, OSError) as exc:  # its end of the pipe closed: it has died
            raise self._died(w) from exc
        kind, body = pickle.loads(data)
        if kind == _READY:
            w.loaded = True
            if all(p.loaded for p in self.procs):
                self._remove_dir()
        return kind, body

    def _died(self, w: _Proc) -> WorkerDied:
        w.process.join(STOP_GRACE)  # its pipe is closed: it is ending, if not ended
        return WorkerDied(int(w.process.pid or 0), w.process.exitcode, w.loaded, w.method,
                          w.task)

    def _remove_dir(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def close(self) -> None:
        """End every process and remove the temporary directory.

        An idle process ends at the end of its pipe; one that runs a task or still loads
        the problem gets ``SIGTERM``, and one still there after
        :data:`~optisched.shutdown.STOP_GRACE` ``SIGKILL``.
        """
        procs, self.procs = self.procs, []
        try:
            for w in procs:
                with contextlib.suppress(OSError):
                    w.conn.close()
                if (w.task is not None or not w.loaded) and w.process.is_alive():
                    w.process.terminate()
            end = time.monotonic() + STOP_GRACE
            for w in procs:
                w.process.join(max(0.0, end - time.monotonic()))
                if w.process.is_alive():
                    log.warning("pool process %s did not end after SIGTERM: SIGKILL",
                                w.process.pid)
                    w.process.kill()
                    w.process.join(STOP_GRACE)
        finally:
            self._remove_dir()


class RayEngine(Engine):
    """``workers`` Ray actors on a local Ray or a cluster (see the module docstring)."""

    name = "ray"

    def __init__(self, problem: Problem, index: Index, workers: int | None,
                 address: str | None) -> None:
        import ray  # optional dependency (the "ray" extra): imported only for this engine

        self._ray = ray
        self.started = False
        address = address or os.environ.get("RAY_ADDRESS") or None
        if not ray.is_initialized():
            if address:
                log.info("joining the Ray cluster at %s", address)
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            else:
                cpus = workers or os.cpu_count() or 1
                ray.init(address="local", num_cpus=int(cpus), include_dashboard=False,
                         log_to_driver=False, logging_level=logging.WARNING)
                self.started = True
        cluster = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, int(workers or cluster))
        problem_ref = ray.put(problem)
        index_ref = ray.put(index)
        actor = ray.remote(num_cpus=1, max_restarts=0)(PartitionWorker)
        self.actors = [actor.remote(problem_ref, index_ref) for _ in range(self.workers)]
        ray.get([a.ping.remote() for a in self.actors])  # type: ignore[attr-defined]

    def map(self, method: str, tasks: Sequence[Any]) -> list[Any]:
        return self.map_lazy(method, len(tasks), tasks.__getitem__)

    def map_lazy(self, method: str, count: int, make: Callable[[int], Any],
                 done: Callable[[int, Any], None] | None = None,
                 lag: int | None = None) -> list[Any]:
        ray = self._ray
        results: list[Any] = [None] * count
        answered = [False] * count
        idle = list(self.actors)
        pending: dict[Any, tuple[int, Any]] = {}
        k = 0
        while k < count or pending:
            while k < count and idle and self._ready(k, answered, lag):
                actor = idle.pop(0)
                pending[getattr(actor, method).remote(make(k))] = (k, actor)
                k += 1
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                i, actor = pending.pop(ref)
                results[i] = ray.get(ref)
                answered[i] = True
                idle.append(actor)
                if done is not None:
                    done(i, results[i])
        return results

    def close(self) -> None:
        ray = self._ray
        for a in getattr(self, "actors", []):
            try:
                ray.kill(a)
            except Exception:  # an actor already gone
                log.debug("ray actor already gone", exc_info=True)
        self.actors = []
        if self.started and ray.is_initialized():
            ray.shutdown()
            self.started = False


def make_engine(problem: Problem, index: Index, backend: str, workers: int | None,
                address: str | None, partitions: int) -> Engine:
    """The engine for option ``backend`` (``ray``, ``processes`` or ``auto``).

    ``auto``: Ray when installed and a cluster address is given (option or ``RAY_ADDRESS``)
    or the problem has at least :data:`RAY_MIN_JOBS` jobs, else the process pool; one
    partition or one worker runs inline.
    """
    cores = os.cpu_count() or 1
    address = address or os.environ.get("RAY_ADDRESS") or None
    if backend == "auto":
        big = index.J >= RAY_MIN_JOBS
        backend = "ray" if ray_available() and (address or big) else "processes"
    if backend == "ray":
        if not ray_available():
            raise RuntimeError('backend "ray" needs the ray package: pip install "optisched[ray]"')
        return RayEngine(problem, index, workers, address)
    n = min(workers or cores, partitions)
    if partitions <= 1 or n <= 1:
        return InlineEngine(problem, index)
    return ProcessEngine(problem, index, n)


RAY_MIN_JOBS = 20_000
"""Jobs from which ``backend="auto"`` takes Ray (when installed): starting a local Ray
costs about 9 s on a loaded 2-core machine (``../shared/SOLVER-NOTES.md``), the process
pool about 2 s."""
