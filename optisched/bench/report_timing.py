"""How long ``optisched report`` takes: ``python -m optisched.bench.report_timing``.

Generates a preset (default ``large``: 1,000 jobs x 100 nodes x 96 slots, seed 0),
plans it once with a solver (default ``greedy``, the plan is not timed), then runs
the command a user runs, ``optisched report BUNDLE PLAN --out FILE`` (default: the
baseline comparison computed on the fly), ``--repeat`` times as a fresh process
each, and prints a Markdown table: wall time of the whole command (interpreter
start-up and imports included), and, from one in-process run, the time of each
step (reading, the baseline plan, every step of :func:`optisched.report.render_report`,
writing) and the page size. ``--no-compare`` and ``--static`` variants are timed
too. Target (issue 18): the default command on ``large`` within 5 s.

Example::

    python -m optisched.bench.report_timing --preset large --repeat 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rich.console import Console

from optisched.generate import generate
from optisched.io import read_bundle, write_bundle
from optisched.plan import read_plan, write_plan
from optisched.report import Comparison, write_report
from optisched.shutdown import exit_on_signals
from optisched.solvers import solve

__all__ = ["main", "time_command", "time_steps"]

TARGET_S = 5.0
"""Wall time target of ``optisched report`` on ``large`` [s] (issue 18)."""


def time_command(args: list[str], repeat: int) -> list[float]:
    """Wall times [s] of ``python -m optisched.cli ARGS``, each a fresh process."""
    cmd = [sys.executable, "-m", "optisched.cli", *args]
    out = []
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out


def time_steps(bundle: Path, plan_dir: Path, html: Path) -> list[tuple[str, float]]:
    """Seconds of each step of one in-process report with the baseline comparison."""
    marks: list[tuple[str, float]] = []

    def step(name: str) -> None:
        marks.append((name, time.perf_counter()))

    step("read bundle and plan")
    problem = read_bundle(bundle)
    plan = read_plan(problem, plan_dir)
    step("baseline plan")
    base = solve(problem, "baseline")
    write_report(problem, plan, html, compare=Comparison(base, "baseline"), progress=step)
    step("end")
    return [(name, marks[k + 1][1] - t) for k, (name, t) in enumerate(marks[:-1])]


def _versions() -> str:
    names = ("optisched", "numpy", "plotly", "matplotlib", "highspy")
    parts = []
    for n in names:
        try:
            parts.append(f"{n} {version(n)}")
        except PackageNotFoundError:
            continue
    return f"Python {platform.python_version()}, " + ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns 1 when the default command misses the target."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="large")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--solver", default="greedy", help="solver of the reported plan")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="report-timing-") as tmp:
        d = Path(tmp)
        bundle, plan_dir, html = d / "bundle", d / "plan", d / "report.html"
        problem = generate(args.preset, seed=args.seed)
        write_bundle(problem, bundle)
        write_plan(problem, solve(problem, args.solver, seed=0), plan_dir)
        base = [str(bundle), str(plan_dir), "--out", str(html), "-q"]
        variants = {
            "optisched report (baseline comparison)": base,
            "optisched report --no-compare": [*base, "--no-compare"],
            "optisched report --static (PNG figures)": [*base, "--static", "--no-compare"],
        }
        walls = {name: time_command(["report", *a], args.repeat) for name, a in variants.items()}
        size = html.stat().st_size  # the last variant's page
        steps = time_steps(bundle, plan_dir, html)
        interactive_size = html.stat().st_size
    cpu = os.cpu_count()
    lines = [
        f"`{args.preset}` (seed {args.seed}: {len(problem.jobs)} jobs x {len(problem.nodes)} "
        f"nodes x {problem.horizon.slots} slots), plan by `{args.solver}`; {platform.node()}, "
        f"{platform.machine()}, {cpu} cores; {_versions()}; "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "| command | median wall [s] | min [s] | max [s] | runs |",
        "|---|---|---|---|---|",
    ]
    for name, w in walls.items():
        lines.append(f"| `{name}` | {statistics.median(w):.2f} | {min(w):.2f} | {max(w):.2f} | "
                     f"{len(w)} |")
    lines += ["", "| step (in-process, one run) | seconds |", "|---|---|"]
    lines += [f"| {name} | {sec:.3f} |" for name, sec in steps]
    lines += [f"| total | {sum(s for _, s in steps):.3f} |", "",
              f"Page size: {interactive_size / 1e6:.1f} MB interactive (plotly.js ~4.8 MB of it), "
              f"{size / 1e6:.1f} MB static."]
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
    main_wall = statistics.median(walls["optisched report (baseline comparison)"])
    return 0 if args.preset != "large" or main_wall <= TARGET_S else 1


if __name__ == "__main__":  # pragma: no cover
    exit_on_signals()  # SIGTERM/SIGHUP: children and temporary files go as for Ctrl-C
    sys.exit(main())
