"""Time-limit benchmark: does every solver return within its time limit?

``python -m optisched.bench.time_limits`` runs every (dataset, solver, limit) in its own
process (``--one``, so HiGHS's process-global state and one run's memory never reach
the next) and measures the wall time of the :func:`optisched.solvers.solve` call there
(the index, the precheck, the solve and the evaluator's check of the plan; reading the
bundle and importing the packages are not in it). A run keeps its limit when

    wall ≤ time_limit + max(ALLOWED_ABS, ALLOWED_REL · time_limit)

(:data:`ALLOWED_ABS` = 1 s, :data:`ALLOWED_REL` = 5 %). The table has one row per run
(wall time, overrun, status, objective, the machine's 1-minute load average when the
run started) and a summary per solver; ``--csv`` writes the rows. A run that does not end
within ``3·limit + 60`` s is killed (status ``killed``). A benchmark stopped by
``SIGTERM``, ``SIGHUP`` or Ctrl-C stops its running child's process group and removes
its ``optisched-tl-*`` directory before it exits (code 143, 129, 130).

Datasets: bundle directories (``datasets/tiny``, ``datasets/neighborhood``,
``datasets/city``) and ICON instances (``icon:datasets/icon/sample01``, read with
:func:`optisched.icon.read_icon` as ``optisched import-icon`` does).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from optisched.bench.runner import machine_description
from optisched.bounds.guard import guard
from optisched.domain import Problem
from optisched.shutdown import exit_on_signals, stop_groups

__all__ = [
    "ALLOWED_ABS",
    "ALLOWED_REL",
    "DEFAULT_DATASETS",
    "DEFAULT_LIMITS",
    "DEFAULT_SOLVERS",
    "Run",
    "allowed_overrun",
    "main",
    "run_one",
]

log = logging.getLogger(__name__)

ALLOWED_ABS = 1.0
"""Overrun every run may have [s]."""
ALLOWED_REL = 0.05
"""Overrun every run may have, as a fraction of its limit."""
DEFAULT_DATASETS = ("datasets/tiny", "datasets/neighborhood", "datasets/city",
                    "icon:datasets/icon/sample01", "icon:datasets/icon/sample02",
                    "icon:datasets/icon/sample03", "icon:datasets/icon/sample04")
DEFAULT_SOLVERS = ("baseline", "greedy", "highs", "pyomo", "cpsat", "lns")
DEFAULT_LIMITS = (1.0, 3.0, 10.0)


def allowed_overrun(limit: float) -> float:
    """``max(ALLOWED_ABS, ALLOWED_REL · limit)`` [s]."""
    return max(ALLOWED_ABS, ALLOWED_REL * limit)


@dataclass
class Run:
    """One (dataset, solver, limit) run.

    Attributes
    ----------
    dataset, solver : str
        What ran.
    limit : float
        ``time_limit`` [s].
    wall : float or None
        Wall time of the ``solve()`` call [s] (None: killed or crashed).
    process_wall : float
        Wall time of the whole process [s] (interpreter start, imports, reading).
    status : str
        The plan's status, or ``killed`` / ``crash``.
    objective : float or None
        The plan's objective [money].
    load_avg : float or None
        1-minute load average when the run started.
    message : str
        The plan's message (shortened), or what went wrong.
    """

    dataset: str
    solver: str
    limit: float
    wall: float | None
    process_wall: float
    status: str
    objective: float | None
    load_avg: float | None
    message: str = ""

    @property
    def overrun(self) -> float | None:
        """``wall − limit`` [s]."""
        return None if self.wall is None else self.wall - self.limit

    @property
    def kept(self) -> bool:
        """The run ended within its limit plus :func:`allowed_overrun`."""
        return self.wall is not None and self.wall <= self.limit + allowed_overrun(self.limit)


def load_dataset(name: str) -> Problem:
    """A bundle directory, or ``icon:DIR`` for an ICON instance."""
    if name.startswith("icon:"):
        from optisched.icon import read_icon  # only for ICON datasets

        return read_icon(name.removeprefix("icon:"))
    from optisched.io import read_bundle

    return read_bundle(name)


def run_one(dataset: str, solver: str, limit: float, seed: int = 0) -> dict[str, Any]:
    """Solve ``dataset`` with ``solver`` in this process: wall time of ``solve()`` and more."""
    from optisched.solvers import REGISTRY, solve  # after the guard: a slow import

    problem = load_dataset(dataset)
    REGISTRY[solver].load()  # import the backend before the clock starts
    t0 = time.perf_counter()
    plan = solve(problem, solver, time_limit=limit, seed=seed)
    wall = time.perf_counter() - t0
    return {"wall": wall, "status": plan.status.value, "objective": plan.objective,
            "message": plan.message[:200], "timings": plan.timings}


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not available
        return None


def _measure(dataset: str, solver: str, limit: float, seed: int) -> Run:
    """One run in a child process of its own, killed after ``3·limit + 60`` s.

    The child runs in a session of its own; when the run ends in any other way than its
    exit (the timeout, an exception, Ctrl-C, ``SIGTERM`` turned into :class:`SystemExit`
    by :func:`~optisched.shutdown.exit_on_signals`) its process group is stopped
    (:func:`~optisched.shutdown.stop_groups`) before the temporary directory goes.
    """
    load = _load()
    with tempfile.TemporaryDirectory(prefix="optisched-tl-") as d:
        result = Path(d) / "result.json"
        cmd = [sys.executable, "-m", "optisched.bench.time_limits", "--parent",
               str(os.getpid()), "--one", dataset, solver, repr(limit), str(seed), str(result)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=3 * limit + 60)
        except subprocess.TimeoutExpired:
            stop_groups([proc.pid])
            proc.communicate()
            return Run(dataset, solver, limit, None, time.perf_counter() - t0, "killed", None,
                       load, f"no result within {3 * limit + 60:g} s")
        except BaseException:
            stop_groups([proc.pid])  # not reaped yet, so the group id is still the child's
            proc.communicate()
            raise
        process_wall = time.perf_counter() - t0
        if not result.is_file():
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            return Run(dataset, solver, limit, None, process_wall, "crash", None, load,
                       f"exit {proc.returncode}: {tail[0][:200]}")
        rec = json.loads(result.read_text())
    return Run(dataset, solver, limit, float(rec["wall"]), process_wall, rec["status"],
               rec["objective"], load, rec["message"])


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def table(runs: list[Run]) -> str:
    """The runs as a Markdown table, then a summary per solver."""
    lines = ["| dataset | solver | limit [s] | wall [s] | overrun [s] | allowed [s] | kept | "
             "status | objective | load |",
             "|---|---|---:|---:|---:|---:|:-:|---|---:|---:|"]
    for r in runs:
        lines.append(f"| {r.dataset.removeprefix('icon:').removeprefix('datasets/')} | "
                     f"{r.solver} | {r.limit:g} | {_fmt(r.wall)} | {_fmt(r.overrun)} | "
                     f"{allowed_overrun(r.limit):g} | {'yes' if r.kept else '**no**'} | "
                     f"{r.status} | {_fmt(r.objective, 4)} | {_fmt(r.load_avg)} |")
    lines += ["", "| solver | runs | kept | worst overrun [s] | worst overrun / limit |",
              "|---|---:|---:|---:|---:|"]
    for s in dict.fromkeys(r.solver for r in runs):
        mine = [r for r in runs if r.solver == s]
        over = [r for r in mine if r.overrun is not None]
        worst = max(over, key=lambda r: r.overrun or 0.0, default=None)
        lines.append(f"| {s} | {len(mine)} | {sum(r.kept for r in mine)} | "
                     f"{_fmt(worst.overrun if worst else None)} | "
                     f"{_fmt((worst.overrun or 0.0) / worst.limit if worst else None)} |")
    return "\n".join(lines)


def describe() -> str:
    """Date, machine, versions and load average, one line each (for BENCHMARKS.md)."""
    m = machine_description()
    vers = []
    for pkg in ("highspy", "ortools", "pyomo", "numpy", "scipy"):
        try:
            vers.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            vers.append(f"{pkg} -")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return "\n".join([
        f"date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"machine: {m['cpu']}, {m['cores']} logical cores ({m['usable_cores']} usable), "
        f"{m['ram_gib']} GiB RAM, {m['os']}",
        f"python {platform.python_version()}, " + ", ".join(vers),
        f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    ])


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring); exit 1 when a run overran."""
    ap = argparse.ArgumentParser(prog="python -m optisched.bench.time_limits",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--datasets", default=",".join(DEFAULT_DATASETS),
                    help="comma-separated bundle directories or icon:DIR")
    ap.add_argument("--solvers", default=",".join(DEFAULT_SOLVERS))
    ap.add_argument("--limits", default=",".join(f"{v:g}" for v in DEFAULT_LIMITS),
                    help="comma-separated time limits [s]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--csv", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--one", nargs=5, metavar=("DATASET", "SOLVER", "LIMIT", "SEED", "RESULT"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--parent", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.one:
        # End with the benchmark; its pid from the command line, as one that died during
        # this process's imports has left os.getppid() to the reaper.
        guard(os.getppid() if args.parent is None else args.parent, take_signals=False)
        dataset, solver, limit, seed, result = args.one
        rec = run_one(dataset, solver, float(limit), int(seed))
        Path(result).write_text(json.dumps(rec))
        return 0
    runs: list[Run] = []
    datasets = [d for d in args.datasets.split(",") if d]
    solvers = [s for s in args.solvers.split(",") if s]
    limits = [float(v) for v in args.limits.split(",") if v]
    for dataset in datasets:
        for solver in solvers:
            for limit in limits:
                r = _measure(dataset, solver, limit, args.seed)
                log.warning("%s %s %g: %s s %s", dataset, solver, limit, _fmt(r.wall),
                            r.status)
                runs.append(r)
                if args.csv is not None:
                    _write_csv(args.csv, runs)
    print(table(runs))  # noqa: T201
    print()  # noqa: T201
    print(describe())  # noqa: T201
    return 0 if all(r.kept for r in runs) else 1


def _write_csv(path: Path, runs: list[Run]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=[*asdict(runs[0]).keys(), "overrun", "kept"])
        w.writeheader()
        for r in runs:
            w.writerow({**asdict(r), "overrun": r.overrun, "kept": r.kept})


if __name__ == "__main__":
    exit_on_signals()
    sys.exit(main())
