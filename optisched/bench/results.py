"""What the benchmark runner records and the report reads: one home for both.

:mod:`optisched.bench.runner` writes the records and :mod:`optisched.bench.report`
derives, tabulates and plots them; both import the names they share from here,
so neither imports the other's internals (the runner imports the report, never
the reverse).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LP_BOUND", "RUN_COLUMNS", "BenchResult", "machine_line"]

LP_BOUND = "lp-bound"
"""Pseudo-solver name: the LP relaxation bound instead of a plan."""

RUN_COLUMNS = (
    "suite", "instance", "size", "n_jobs", "n_nodes", "n_slots", "solver", "repeat", "seed",
    "time_limit", "threads", "status", "verified", "objective", "bound", "gap_own",
    "first_feasible_s", "first_feasible_from", "build_s", "solve_s", "solver_total_s",
    "wall_s", "cpu_s", "peak_mem_mb", "rss_before_solve_mb", "returncode", "killed",
    "progress_reports", "scheduled", "dropped", "message", "started_at", "load_avg", "versions",
    "machine",
)
"""Columns of ``runs.csv``, one row per run, in this order.

``status`` is one of the plan statuses (optimal, feasible, infeasible,
no_solution, error), ``bound`` (lp-bound pseudo-solver), or the runner's own
``crash`` (no result), ``timeout`` (killed) and ``unavailable`` (solver not
registered or not installed). ``verified`` is true only for a plan the
evaluator accepted in the worker; only verified runs carry an objective.
``gap_own`` is the run's gap to its own bound. Times are seconds, memory MiB.
``load_avg`` is the machine's 1-minute load average when the run started (CPU
time well below wall time on a loaded machine means the run waited for a core).
"""


@dataclass
class BenchResult:
    """What :func:`~optisched.bench.runner.run_bench` produced.

    Attributes
    ----------
    out : pathlib.Path
        Output directory.
    rows : list of dict
        Final records (``results.csv``), sorted by instance, solver, repeat.
    notes : list of str
        Instances not produced, unavailable solvers, inconsistent bounds.
    files : dict of str to pathlib.Path
        ``runs_csv``, ``results_csv``, ``markdown``, ``meta`` and each plot.
    markdown : str
        The Markdown report (also in ``results.md``).
    """

    out: Path
    rows: list[dict[str, Any]]
    notes: list[str]
    files: dict[str, Path] = field(default_factory=dict)
    markdown: str = ""


def machine_line(m: dict[str, Any]) -> str:
    """One line: ``CPU, N cores (U usable), R GiB RAM, OS``.

    Parameters
    ----------
    m : dict
        :func:`optisched.bench.runner.machine_description` (also ``meta.json``'s
        ``machine``).
    """
    return (f"{m['cpu']}, {m['cores']} logical cores ({m['usable_cores']} usable), "
            f"{m['ram_gib']} GiB RAM, {m['os']}")
