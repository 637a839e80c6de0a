"""Benchmark runner: every (instance, solver, repeat) in its own process.

:func:`run_bench` builds the suite's instances in this process and writes each
once as a bundle to ``OUT/instances/<name>/``; then it runs every (instance,
solver, repeat) as a child process ``python -m optisched.bench.worker`` and
measures it from here:

* wall time [s] of the child (process start to exit, interpreter start and
  imports included; the solver's own time is ``solver_total_s``),
* CPU time [s] (user + system) and peak resident memory [MiB] of that child,
  from ``os.wait4`` (the child's own ``rusage``, so parallel runs do not mix),
* a hard wall-clock kill of the child's process group at
  ``time_limit × kill_factor + kill_slack`` [s] (status ``timeout``):
  ``SIGTERM``, then ``SIGKILL`` :data:`~optisched.shutdown.STOP_GRACE` s later
  (:func:`~optisched.shutdown.stop_groups`).

A benchmark that ends early (an exception, Ctrl-C, ``SIGTERM`` turned into
:class:`SystemExit` by :func:`~optisched.shutdown.exit_on_signals`) stops the process
groups of its running children the same way before it returns; a benchmark killed by
``SIGKILL`` takes its children with it through their guard
(:func:`optisched.bounds.guard.guard`, given the runner's pid).

A child that exits without a result file is recorded as ``crash`` (with its
exit code and the tail of its stderr). A solver name that is not registered, or
whose packages are missing, gives one ``unavailable`` row per instance.

Every finished run is appended to ``OUT/runs.csv`` and flushed before the next
result is processed, so a crash later in the benchmark never loses it. At the
end :mod:`optisched.bench.report` adds the columns that need every run of an
instance (best bound, gap to it, objective ratio) and writes ``results.csv``,
``results.md``, the plots and ``meta.json``.

Independent runs may share a local pool of ``jobs`` worker threads, each
waiting on its own child process; the default 1 runs one child at a time so
timings are not disturbed by a neighbour (the machine has 2 cores).
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from optisched.bench.report import finish as write_report
from optisched.bench.results import LP_BOUND, RUN_COLUMNS, BenchResult, machine_line
from optisched.bench.suites import Instance, load_suite
from optisched.io import write_bundle
from optisched.plan import relative_gap
from optisched.shutdown import stop_groups
from optisched.solvers import REGISTRY
from optisched.solvers.base import usable_cores

__all__ = [
    "VERSION_PACKAGES",
    "BenchConfig",
    "machine_description",
    "package_versions",
    "run_bench",
]

log = logging.getLogger(__name__)

VERSION_PACKAGES = ("optisched", "highspy", "ortools", "pyomo", "numpy", "scipy", "pandas")
"""Packages whose versions every record carries."""

@dataclass
class BenchConfig:
    """What to run.

    Attributes
    ----------
    suite : str
        Registered suite name.
    solvers : list of str
        Registry names (``lp-bound`` adds the LP relaxation bound).
    time_limit : float
        Budget per run handed to the solver [s].
    repeat : int
        Runs per (instance, solver), seeds ``seed, seed+1, …``.
    jobs : int
        Children running at the same time (default 1: honest timings).
    sizes : list of str or None
        Size rungs for the ``scale`` suite.
    instances : list of str or None
        Keep only instances whose name matches one of these shell patterns
        (``fnmatch``, e.g. ``icon-sample0[1-4]``).
    seed : int
        Base seed (instances and solvers).
    threads : int or None
        Threads handed to the solvers (None: each solver's default).
    kill_factor, kill_slack : float
        Hard kill at ``time_limit × kill_factor + kill_slack`` [s].
    lp_bound : bool
        Also compute the LP relaxation bound of every instance (one child each).
    lp_time_limit : float or None
        Budget of the LP bound [s]; None = ``max(60, time_limit)`` (the LP of a
        medium instance can take longer than a short solver budget).
    keep_plans : bool
        Write every verified plan to ``OUT/plans/<run>/``.
    plots : bool
        Draw the PNG plots.
    show_progress : bool
        Rich progress bar on stderr.
    command : str or None
        The command line recorded in the report; None = the equivalent
        ``optisched bench`` command built from these fields.
    """

    suite: str
    solvers: list[str]
    time_limit: float
    repeat: int = 1
    jobs: int = 1
    sizes: list[str] | None = None
    instances: list[str] | None = None
    seed: int = 0
    threads: int | None = None
    kill_factor: float = 2.0
    kill_slack: float = 30.0
    lp_bound: bool = False
    lp_time_limit: float | None = None
    keep_plans: bool = False
    plots: bool = True
    show_progress: bool = True
    command: str | None = None

    def command_line(self) -> str:
        """The command as recorded in the report."""
        if self.command:
            return self.command
        parts = ["optisched bench", f"--suite {self.suite}", f"--solvers {','.join(self.solvers)}",
                 f"--time-limit {self.time_limit:g}"]
        if self.sizes:
            parts.append(f"--sizes {','.join(self.sizes)}")
        if self.instances:
            parts.append(f"--instances '{','.join(self.instances)}'")
        if self.repeat != 1:
            parts.append(f"--repeat {self.repeat}")
        if self.jobs != 1:
            parts.append(f"--jobs {self.jobs}")
        if self.seed:
            parts.append(f"--seed {self.seed}")
        if self.threads is not None:
            parts.append(f"--threads {self.threads}")
        if self.lp_bound:
            parts.append("--lp-bound")
            if self.lp_time_limit:
                parts.append(f"--lp-time-limit {self.lp_time_limit:g}")
        return " ".join(parts)

    def limit_of(self, solver: str) -> float:
        """Budget handed to ``solver`` [s]."""
        if solver == LP_BOUND:
            return self.lp_time_limit if self.lp_time_limit else max(60.0, self.time_limit)
        return self.time_limit

    def kill_after(self, solver: str) -> float:
        """Hard wall-clock limit of one child running ``solver`` [s]."""
        return self.limit_of(solver) * self.kill_factor + self.kill_slack


@dataclass(frozen=True)
class _Task:
    instance: str
    size: str
    dims: tuple[int, int, int]
    bundle: Path
    solver: str
    repeat: int
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.instance}__{self.solver}__r{self.repeat}"


# --------------------------------------------------------------------------- environment


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`VERSION_PACKAGES` and Python ("-" when absent)."""
    out = {"python": platform.python_version()}
    for p in VERSION_PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "-"
    return out


def machine_description() -> dict[str, Any]:
    """CPU model, logical cores, usable cores, RAM [GiB] and OS, from ``/proc`` where present."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                ram = round(int(line.split()[1]) / 1024**2, 1)
                break
    except (OSError, ValueError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable_cores(), "ram_gib": ram,
            "os": platform.platform()}


# --------------------------------------------------------------------------- one run


class _Children:
    """Process groups of running children, so an aborted benchmark can end them.

    After :meth:`stop_all` the benchmark is over: a child that a worker thread starts
    later (it was past its ``Popen`` already) is stopped as soon as it is added.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pids: set[int] = set()
        self._closed = False

    def add(self, pid: int) -> None:
        with self._lock:
            self._pids.add(pid)
            closed = self._closed
        if closed:
            stop_groups([pid])

    def discard(self, pid: int) -> None:
        with self._lock:
            self._pids.discard(pid)

    def stop_all(self) -> None:
        with self._lock:
            self._closed = True
            pids = list(self._pids)
        stop_groups(pids)


def _spec_json(solver: str) -> str | None:
    spec = REGISTRY.get(solver)
    if spec is None:
        return None
    fields = dataclasses.asdict(spec)
    fields["options"] = f"{spec.options.__module__}:{spec.options.__qualname__}"
    return json.dumps(fields)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [p for p in sys.path if p and Path(p).exists()]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _execute(task: _Task, cfg: BenchConfig, out: Path, children: _Children) -> dict[str, Any]:
    """Run one child and return its record (without suite-wide columns)."""
    rid = task.run_id
    progress = out / "progress" / f"{rid}.jsonl"
    result = out / "runs" / f"{rid}.json"
    errlog = out / "logs" / f"{rid}.stderr"
    for p in (progress, result, errlog):
        p.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "optisched.bench.worker", "--parent", str(os.getpid()),
           "--bundle", str(task.bundle), "--solver", task.solver,
           "--time-limit", repr(cfg.limit_of(task.solver)),
           "--seed", str(task.seed), "--progress", str(progress), "--result", str(result)]
    if cfg.threads is not None:
        cmd += ["--threads", str(cfg.threads)]
    spec = _spec_json(task.solver) if task.solver != LP_BOUND else None
    if spec is not None:
        cmd += ["--spec", spec]
    if cfg.keep_plans and task.solver != LP_BOUND:
        cmd += ["--plan-out", str(out / "plans" / rid)]
    rec: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                           "time_limit": cfg.limit_of(task.solver), "load_avg": _load()}
    killed = threading.Event()
    with open(errlog, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                env=_child_env(), start_new_session=True)
        children.add(proc.pid)

        def _timeout() -> None:
            killed.set()
            stop_groups([proc.pid])

        kill_after = cfg.kill_after(task.solver)
        timer = threading.Timer(kill_after, _timeout)
        timer.daemon = True
        timer.start()
        try:
            # Wait for the exit but leave the zombie: its pid (= process group id) stays
            # reserved until it is off the list of children a kill may target.
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        except BaseException:
            stop_groups([proc.pid])  # not reaped yet, so the group id is still this child's
            raise
        finally:
            wall = time.perf_counter() - t0
            timer.cancel()
            children.discard(proc.pid)
            _, wstatus, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(wstatus)
    rec.update(wall_s=wall, cpu_s=ru.ru_utime + ru.ru_stime, peak_mem_mb=ru.ru_maxrss / 1024.0,
               returncode=proc.returncode, killed=killed.is_set())
    n_progress = 0
    if progress.is_file():
        with open(progress, encoding="utf-8") as fh:
            n_progress = sum(1 for line in fh if line.strip())
    data: dict[str, Any] | None = None
    if result.is_file():
        try:
            data = json.loads(result.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            data = None
    if data is not None and not killed.is_set():
        rss0 = data.pop("rss_before_solve_kb", None)
        data.pop("read_s", None)
        rec.update(data)
        rec["rss_before_solve_mb"] = None if rss0 is None else rss0 / 1024.0
        rec["gap_own"] = _gap(rec.get("objective"), rec.get("bound"))
    else:
        tail = _tail(errlog)
        if killed.is_set():
            rec.update(status="timeout", message=f"killed after {kill_after:g} s "
                       f"(time limit {cfg.limit_of(task.solver):g} s × {cfg.kill_factor:g} + "
                       f"{cfg.kill_slack:g} s)")
        else:
            rec.update(status="crash", message=f"worker exited with code {proc.returncode} "
                       f"and no result: {tail}")
        rec.update(verified=False, progress_reports=n_progress)
    return rec


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not available
        return None


def _tail(path: Path, n: int = 300) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return (" | ".join(lines[-3:]))[-n:]


def _gap(objective: float | None, bound: float | None) -> float | None:
    return relative_gap(objective, bound)


# --------------------------------------------------------------------------- the benchmark


class _CsvJournal:
    """``runs.csv``: one row appended, flushed and fsynced per finished run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "w", newline="", encoding="utf-8")
        self._w = csv.DictWriter(self._fh, fieldnames=list(RUN_COLUMNS), extrasaction="ignore")
        self._w.writeheader()
        self._sync()

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append(self, row: dict[str, Any]) -> None:
        self._w.writerow({k: _cell(row.get(k)) for k in RUN_COLUMNS})
        self._sync()

    def close(self) -> None:
        self._fh.close()


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return v


def _prepare(cfg: BenchConfig, out: Path, notes: list[str]
             ) -> tuple[list[_Task], list[dict[str, Any]], list[str]]:
    """Write the instances; return the runs to do, the ``unavailable`` rows, the instances."""
    instances, suite_notes = load_suite(cfg.suite, cfg.sizes, cfg.seed)
    notes.extend(suite_notes)
    if cfg.instances:
        pats = cfg.instances
        instances = [i for i in instances if any(fnmatch.fnmatchcase(i.name, p) for p in pats)]
        if not instances:
            notes.append(f"no instance of suite {cfg.suite} matches {', '.join(pats)}")
    built: list[tuple[Instance, Path, tuple[int, int, int]]] = []
    for inst in instances:
        try:
            problem = inst.build()
            path = write_bundle(problem, out / "instances" / inst.name)
        except Exception as exc:  # a missing generator/importer or invalid bundle
            notes.append(f"instance {inst.name} not produced: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        built.append((inst, path, (len(problem.jobs), len(problem.nodes),
                                   problem.horizon.slots)))
    tasks: list[_Task] = []
    skipped: list[dict[str, Any]] = []
    solvers = list(dict.fromkeys(cfg.solvers))
    if cfg.lp_bound and LP_BOUND not in solvers:
        solvers.insert(0, LP_BOUND)
    for s in solvers:
        if s == LP_BOUND:
            continue
        if s not in REGISTRY:
            notes.append(f"solver {s} is not registered (registered: {', '.join(REGISTRY)})")
        elif not REGISTRY[s].available():
            notes.append(f"solver {s} is unavailable: needs {', '.join(REGISTRY[s].requires)}")
    for inst, path, dims in built:
        for s in solvers:
            usable = s == LP_BOUND or (s in REGISTRY and REGISTRY[s].available())
            if not usable:
                skipped.append({"instance": inst.name, "size": inst.size, "solver": s,
                                "repeat": 0, "seed": cfg.seed, "status": "unavailable",
                                "verified": False, "n_jobs": dims[0], "n_nodes": dims[1],
                                "n_slots": dims[2],
                                "message": "not registered" if s not in REGISTRY else
                                f"needs {', '.join(REGISTRY[s].requires)}"})
                continue
            reps = 1 if s == LP_BOUND else max(1, cfg.repeat)
            for k in range(reps):
                tasks.append(_Task(inst.name, inst.size, dims, path, s, k, cfg.seed + k))
    return tasks, skipped, [inst.name for inst, _, _ in built]


def run_bench(cfg: BenchConfig, out: str | os.PathLike[str],
              on_run: Callable[[dict[str, Any]], None] | None = None) -> BenchResult:
    """Run a benchmark and write every output.

    Parameters
    ----------
    cfg : BenchConfig
        Suite, solvers, limits.
    out : path
        Output directory (created; a previous benchmark's files in it are
        replaced): ``instances/``, ``runs.csv`` (journal, appended per run),
        ``progress/<run>.jsonl``, ``runs/<run>.json``, ``logs/<run>.stderr``,
        ``results.csv``, ``results.md``, ``meta.json`` and the PNG plots.
    on_run : callable, optional
        Called with each finished record after it is in ``runs.csv``.

    Returns
    -------
    BenchResult
    """
    if cfg.time_limit <= 0:
        raise ValueError("--time-limit must be > 0")
    if cfg.jobs < 1:
        raise ValueError("--jobs must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("progress", "runs", "logs", "plans"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for sub in ("progress", "runs", "logs"):
        (out / sub).mkdir()
    notes: list[str] = []
    versions = package_versions()
    machine = machine_description()
    common = {"suite": cfg.suite, "time_limit": cfg.time_limit, "threads": cfg.threads,
              "versions": ";".join(f"{k}={v}" for k, v in versions.items()),
              "machine": machine_line(machine)}
    t_start = datetime.now(UTC)
    tasks, skipped, names = _prepare(cfg, out, notes)
    journal = _CsvJournal(out / "runs.csv")
    rows: list[dict[str, Any]] = []

    def finish(rec: dict[str, Any]) -> None:
        row = {**dict.fromkeys(RUN_COLUMNS), **common, **rec}
        journal.append(row)
        rows.append(row)
        if on_run is not None:
            on_run(row)

    children = _Children()
    bar = _ProgressBar(len(tasks) + len(skipped), cfg.show_progress)
    try:
        for rec in skipped:
            finish(rec)
            bar.advance(rec)
        with ThreadPoolExecutor(max_workers=cfg.jobs) as pool:
            pending: dict[Future[dict[str, Any]], _Task] = {}
            queue = list(tasks)
            try:
                while queue or pending:
                    while queue and len(pending) < cfg.jobs:
                        task = queue.pop(0)
                        bar.start(task)
                        pending[pool.submit(_execute, task, cfg, out, children)] = task
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        task = pending.pop(fut)
                        rec = fut.result()
                        rec.update(instance=task.instance, size=task.size, solver=task.solver,
                                   repeat=task.repeat, seed=task.seed, n_jobs=task.dims[0],
                                   n_nodes=task.dims[1], n_slots=task.dims[2])
                        finish(rec)
                        bar.advance(rec)
            except BaseException:
                queue.clear()
                children.stop_all()
                raise
    finally:
        journal.close()
        bar.close()
    meta = {"suite": cfg.suite, "config": dataclasses.asdict(cfg),
            "command": cfg.command or f"{cfg.command_line()} --out {out}",
            "started": t_start.isoformat(timespec="seconds"),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": versions, "machine": machine, "instances": names, "notes": notes}
    return write_report(out, rows, notes, meta, plots=cfg.plots)


class _ProgressBar:
    """Rich progress on stderr (nothing when disabled)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._p: Any = None
        if not enabled or total == 0:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), console=Console(stderr=True), transient=False)
        self._p.start()
        self._id = self._p.add_task("bench", total=total)

    def start(self, task: _Task) -> None:
        if self._p is not None:
            self._p.update(self._id, description=f"{task.instance} · {task.solver} "
                           f"· r{task.repeat}")

    def advance(self, rec: dict[str, Any]) -> None:
        if self._p is None:
            return
        obj = rec.get("objective")
        self._p.console.print(
            f"{rec.get('instance')} {rec.get('solver')} r{rec.get('repeat')}: "
            f"{rec.get('status')}"
            + (f" {obj:.6g}" if isinstance(obj, float) else "")
            + (f" ({rec['wall_s']:.1f} s)" if isinstance(rec.get("wall_s"), float) else ""),
            markup=False, highlight=False)
        self._p.advance(self._id)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
