"""Solver comparison benchmarks: suites of instances, an isolated runner, reports.

``optisched bench --suite NAME --solvers a,b --time-limit S --out DIR`` runs every
(instance, solver, repeat) of a suite in its own worker process
(:mod:`optisched.bench.worker`), measures wall time, CPU time and peak memory of
that process, checks every plan with the evaluator, and writes a tidy CSV, a
Markdown table and PNG plots (:mod:`optisched.bench.report`).

Modules
-------
suites
    The registered suites (``scale``, ``datasets``, ``icon``, ``features``,
    ``micro``) and :func:`~optisched.bench.suites.load_suite`.
runner
    :func:`~optisched.bench.runner.run_bench`: the process pool, the records.
worker
    The child process: read a bundle, solve, verify, write a result file.
report
    CSV post-processing (gap to the best bound), Markdown, plots,
    ``BENCHMARKS.md`` section replacement.
results
    What runner and report share: the ``runs.csv`` columns, the
    :class:`~optisched.bench.results.BenchResult` type, the machine line.

Per-solver benchmark scripts (moved here from ``optisched/solvers/``), each run
as ``python -m optisched.bench.NAME`` and printing its own table:

greedy
    ``greedy`` construction and the re-planner's ``update`` (``--small``, ``--trace``).
milp
    ``highs`` vs Pyomo model build, small solves, LP bound (``--medium``, ``--seeds``).
lns
    ``lns`` on medium, large and ICON instances (``--sizes``, ``--seeds``, ``--limit``, ...).
cpsat
    ``cpsat`` incumbents over time (``--sizes``, ``--limits``, ``--variants``, ...).
"""

from __future__ import annotations

__all__ = ["BenchConfig", "BenchResult", "load_suite", "run_bench"]

from optisched.bench.results import BenchResult
from optisched.bench.runner import BenchConfig, run_bench
from optisched.bench.suites import load_suite
