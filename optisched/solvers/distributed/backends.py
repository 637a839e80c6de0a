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
* :class:`ProcessEngine`: :class:`concurrent.futures.ProcessPoolExecutor` with the
  ``spawn`` start method; the problem and index are the initializer's arguments (pickled
  once per process).
* :class:`InlineEngine`: one worker in this process (one partition, or one worker).

:meth:`close` ends every process the engine started (``with`` blocks do it).
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from types import TracebackType
from typing import Any

from optisched.domain import Problem
from optisched.index import Index
from optisched.solvers.distributed.worker import PartitionWorker

__all__ = ["Engine", "InlineEngine", "ProcessEngine", "RayEngine", "make_engine",
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
                 done: Callable[[int, Any], None] | None = None) -> list[Any]:
        """``count`` tasks, task ``k`` built by ``make(k)`` when a worker is free for it (in
        the order ``k = 0, 1, …``, at most :attr:`workers` running), so that it can be
        planned from the answers so far; ``done(k, answer)`` is called as each answer
        arrives. The answers in task order."""
        results: list[Any] = []
        for k in range(count):
            results.append(self.map(method, [make(k)])[0])
            if done is not None:
                done(k, results[-1])
        return results

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


_WORKER: PartitionWorker | None = None


def _init_process(problem: Problem, index: Index) -> None:
    global _WORKER
    _WORKER = PartitionWorker(problem, index)


def _call(method: str, task: Any) -> Any:
    assert _WORKER is not None, "pool process without its problem"
    return getattr(_WORKER, method)(task)


class ProcessEngine(Engine):
    """A local pool of ``workers`` spawned processes."""

    name = "processes"

    def __init__(self, problem: Problem, index: Index, workers: int) -> None:
        self.workers = max(1, int(workers))
        ctx = multiprocessing.get_context("spawn")
        self.pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=_init_process,
            initargs=(problem, index))

    def map(self, method: str, tasks: Sequence[Any]) -> list[Any]:
        assert self.pool is not None, "engine closed"
        futures = [self.pool.submit(_call, method, t) for t in tasks]
        return [f.result() for f in futures]

    def map_lazy(self, method: str, count: int, make: Callable[[int], Any],
                 done: Callable[[int, Any], None] | None = None) -> list[Any]:
        assert self.pool is not None, "engine closed"
        results: list[Any] = [None] * count
        pending: dict[Future[Any], int] = {}
        k = 0
        while k < count or pending:
            while k < count and len(pending) < self.workers:
                pending[self.pool.submit(_call, method, make(k))] = k
                k += 1
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for f in sorted(finished, key=pending.__getitem__):
                i = pending.pop(f)
                results[i] = f.result()
                if done is not None:
                    done(i, results[i])
        return results

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


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
                 done: Callable[[int, Any], None] | None = None) -> list[Any]:
        ray = self._ray
        results: list[Any] = [None] * count
        idle = list(self.actors)
        pending: dict[Any, tuple[int, Any]] = {}
        k = 0
        while k < count or pending:
            while k < count and idle:
                actor = idle.pop(0)
                pending[getattr(actor, method).remote(make(k))] = (k, actor)
                k += 1
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                i, actor = pending.pop(ref)
                results[i] = ray.get(ref)
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
