"""Benchmark of the ``distributed`` solver: ``python -m optisched.bench.distributed``.

For every case it generates the instance (time and peak memory of the generation), then
runs ``optisched.solve`` (index compile, the solver, the evaluator's check) and prints
one row per run: time to the verified plan, peak memory summed over the whole process
tree (this process, pool processes, Ray's raylet, object store and workers: the resident
set of every process, sampled every 0.5 s by ``psutil``), objective, the solver's bound
and the gap to it, partitions, rounds and the phase times.

Cases (``--cases``, comma-separated):

- ``metro-10k``, ``metro-30k``, ``metro-100k``: ``generate("metro", n_jobs=...)`` on the
  10,000-node city (cost growth with size);
- ``large``, ``xl``: the scale ladder (1,000 × 100 × 96, 10,000 × 1,000 × 96).

``--solvers distributed,lns,greedy`` runs the single-process solvers on the same
instances and budget for comparison; ``--backends ray,processes`` runs ``distributed``
on each engine (side by side); ``--limit`` (seconds, per case ``CASE=SECONDS`` allowed),
``--seed``, ``--option KEY=VALUE`` (``distributed`` options); ``--room`` also counts the
dropped jobs that fit the resources the plan leaves free on a node they may use (after
the measurement: the index is compiled again); ``--bundle DIR`` also writes
every generated case as a bundle ``DIR/CASE`` (``node_series`` and ``jobs`` as Parquet,
the rest CSV) and reads it back, and prints the time, peak memory and size of both.
Run nothing else heavy beside it: memory and time are the machine's.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from optisched.domain import Problem
from optisched.generate import generate
from optisched.index import compile_index
from optisched.io import PARQUET_TABLES, read_bundle, write_bundle
from optisched.shutdown import exit_on_signals
from optisched.solvers import solve
from optisched.solvers.distributed.partition import job_work
from optisched.solvers.distributed.repair import find_room
from optisched.solvers.options import parse_assignments

__all__ = ["CASES", "MemorySampler", "main", "run_case"]

CASES: dict[str, tuple[str, dict[str, int]]] = {
    "metro-10k": ("metro", {"n_jobs": 10_000}),
    "metro-30k": ("metro", {"n_jobs": 30_000}),
    "metro-100k": ("metro", {"n_jobs": 100_000}),
    "large": ("large", {}),
    "xl": ("xl", {}),
}


class MemorySampler:
    """Peak of the summed resident set of this process and all its descendants [bytes],
    sampled every ``period`` seconds in a thread (``psutil``)."""

    def __init__(self, period: float = 0.5) -> None:
        import psutil  # the benchmark's own dependency (the "ray" extra installs it)

        self._psutil = psutil
        self.period = period
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        """The summed resident set now [bytes]."""
        ps = self._psutil
        me = ps.Process(os.getpid())
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except (ps.NoSuchProcess, ps.AccessDenied):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self.period)

    def __enter__(self) -> MemorySampler:
        self.peak = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.sample())


@dataclass
class Row:
    """One benchmark run."""

    case: str
    size: str
    solver: str
    backend: str
    status: str
    objective: float | None
    bound: float | None
    seconds: float
    peak_gib: float
    partitions: int | None
    rounds: int | None
    phases: dict[str, float]
    gen_seconds: float
    gen_gib: float
    dropped: int | None = None
    with_room: int | None = None


def _problem(case: str, seed: int) -> tuple[Problem, float, float]:
    preset, kw = CASES[case]
    with MemorySampler() as mem:
        t = time.perf_counter()
        problem = generate(preset, seed=seed, **kw)
        secs = time.perf_counter() - t
    return problem, secs, mem.peak / 2**30


def bundle_round_trip(problem: Problem, path: str) -> str:
    """Write ``problem`` as a bundle at ``path`` (the :data:`~optisched.io.PARQUET_TABLES`
    as Parquet) and read it back; one line with the time [s], peak memory [GiB] and size
    [MiB] of each, and whether the read problem equals the written one."""
    with MemorySampler() as wmem:
        t = time.perf_counter()
        write_bundle(problem, path, parquet=PARQUET_TABLES)
        wsecs = time.perf_counter() - t
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    with MemorySampler() as rmem:
        t = time.perf_counter()
        back = read_bundle(path)
        rsecs = time.perf_counter() - t
    files = ", ".join(sorted(os.listdir(path)))
    return (f"bundle {path}: write {wsecs:.1f} s / {wmem.peak / 2**30:.2f} GiB, "
            f"{size / 2**20:.1f} MiB ({files}); read {rsecs:.1f} s / "
            f"{rmem.peak / 2**30:.2f} GiB; equal {back == problem}")


def run_case(case: str, problem: Problem, solver: str, backend: str | None, limit: float,
             seed: int, options: dict[str, Any], gen: tuple[float, float],
             room: bool = False) -> Row:
    """Solve one case with one solver (and backend) and measure it; ``room``: also count
    the dropped jobs that fit the resources the plan leaves free on a node they may use
    (:func:`optisched.solvers.distributed.repair.find_room`, after the measurement)."""
    opts = dict(options) if solver == "distributed" else {}
    if solver == "distributed" and backend:
        opts["backend"] = backend
    with MemorySampler() as mem:
        t = time.perf_counter()
        plan = solve(problem, solver, time_limit=limit, seed=seed, options=opts)
        secs = time.perf_counter() - t
    info = plan.info
    size = f"{len(problem.jobs)}×{len(problem.nodes)}×{problem.horizon.slots}"
    dropped = with_room = None
    if plan.status.has_plan:
        dropped = int((plan.node < 0).sum())
        if room:
            ix = compile_index(problem)
            with_room = int(find_room(ix, plan.node, plan.start, job_work(ix)).jobs.size)
    return Row(case, size, solver, str(info.get("backend", "-")), plan.status.value,
               plan.objective, plan.bound, secs, mem.peak / 2**30, info.get("partitions"),
               info.get("rounds"), {k[len("phase_"):]: v for k, v in plan.timings.items()
                                    if k.startswith("phase_")}, gen[0], gen[1], dropped,
               with_room)


def _gap(row: Row) -> str:
    if row.objective is None or row.bound is None:
        return "–"
    return f"{100.0 * (row.objective - row.bound) / max(abs(row.objective), 1e-9):.2f} %"


def _dropped(row: Row) -> str:
    if row.dropped is None:
        return "–"
    return f"{row.dropped}" + ("" if row.with_room is None else f" ({row.with_room})")


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.6g}"


def table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    head = ("| case | J×N×T | solver | backend | status | objective | bound | gap | "
            "time to verified plan [s] | peak mem, all processes [GiB] | partitions | rounds "
            "| dropped (with room) | phases [s] | generate [s / GiB] |")
    out = [head, "|" + "---|" * 15]
    for r in rows:
        phases = ", ".join(f"{k} {v:.1f}" for k, v in r.phases.items())
        out.append(f"| {r.case} | {r.size} | {r.solver} | {r.backend} | {r.status} | "
                   f"{_fmt(r.objective)} | {_fmt(r.bound)} | {_gap(r)} | {r.seconds:.1f} | "
                   f"{r.peak_gib:.2f} | {r.partitions or '–'} | "
                   f"{'–' if r.rounds is None else r.rounds} | {_dropped(r)} | "
                   f"{phases or '–'} | "
                   f"{r.gen_seconds:.1f} / {r.gen_gib:.2f} |")
    return "\n".join(out)


def _limits(text: str, cases: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    default = 60.0
    for item in text.split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            out[k.strip()] = float(v)
        elif item.strip():
            default = float(item)
    return {c: out.get(c, default) for c in cases}


def _commit() -> str:
    """The git commit of the working tree (``+dirty`` with uncommitted changes), or ``?``."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--", ".."],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return rev + ("+dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m optisched.bench.distributed",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="metro-10k,metro-30k,metro-100k")
    ap.add_argument("--solvers", default="distributed")
    ap.add_argument("--backends", default="", help="ray,processes (default: auto)")
    ap.add_argument("--limit", default="300", help="seconds, or CASE=SECONDS,...")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--option", action="append", default=[], help="distributed KEY=VALUE")
    ap.add_argument("--bundle", default=None, help="write each case as a bundle DIR/CASE")
    ap.add_argument("--room", action="store_true",
                    help="count the dropped jobs that fit the free resources (after timing)")
    args = ap.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    bad = [c for c in cases if c not in CASES]
    if bad:
        ap.error(f"unknown cases {bad}; valid: {', '.join(CASES)}")
    limits = _limits(args.limit, cases)
    options: dict[str, Any] = dict(parse_assignments(args.option))
    backends = [b for b in args.backends.split(",") if b] or [None]
    rows: list[Row] = []
    load = os.getloadavg()
    out = sys.stdout
    out.write(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, "
              f"{os.cpu_count()} cores, python {platform.python_version()}, commit {_commit()}, "
              f"load average "
              f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n")
    out.flush()
    for case in cases:
        problem, gsecs, ggib = _problem(case, args.seed)
        out.write(f"# {case}: generated in {gsecs:.1f} s, peak {ggib:.2f} GiB\n")
        if args.bundle:
            out.write("# " + bundle_round_trip(problem, os.path.join(args.bundle, case)) + "\n")
        out.flush()
        for solver in [s for s in args.solvers.split(",") if s]:
            for backend in (backends if solver == "distributed" else [None]):
                row = run_case(case, problem, solver, backend, limits[case], args.seed,
                               options, (gsecs, ggib), args.room)
                rows.append(row)
                out.write(table([row]).splitlines()[-1] + "\n")
                out.flush()
        del problem
    out.write("\n" + table(rows) + "\n")
    load = os.getloadavg()
    out.write(f"# load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n")
    return 0


if __name__ == "__main__":
    exit_on_signals()  # SIGTERM/SIGHUP: children and temporary files go as for Ctrl-C
    sys.exit(main())
