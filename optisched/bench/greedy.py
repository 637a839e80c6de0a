"""Benchmark of ``greedy``: ``python -m optisched.bench.greedy``.

Cases (issue 3 targets in brackets):

* ``1000x100x96``: 1,000 jobs, 100 nodes, 96 slots of 15 min, construction +
  exact dispatch, no local search [≤ 1 s];
* ``10000x1000x96``: the same at 10,000 x 1,000, with the process's peak
  resident set (``resource.getrusage``; ``--trace`` adds a second, slower run
  under ``tracemalloc``) [≤ 10 s, ≤ 4 GiB].

The re-planner's updates (one job arriving into a 1,000-job plan, and every other
kind of update) moved to ``python -m optisched.bench.replan``.

Instances come from :func:`optisched.generate.bench_problem` (seeded, in
code; no files). Prints a table; :func:`run` returns the rows for the benchmark
report.

It times the solver's internals, not :func:`optisched.solvers.solve`: the index
compile and :func:`~optisched.solvers.greedy.run_greedy` separately.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from typing import Any

from optisched.domain import Problem
from optisched.evaluate import evaluate
from optisched.generate import bench_problem
from optisched.index import compile_index
from optisched.solvers.base import SolveOptions
from optisched.solvers.greedy import run_greedy
from optisched.solvers.options import GreedyOptions

__all__ = ["run"]


def _construct(problem: Problem, improve: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    index = compile_index(problem)
    t1 = time.perf_counter()
    plan = run_greedy(problem, index, SolveOptions(time_limit=0.0, params=GreedyOptions(
        improve=improve, second_start=False)))
    t2 = time.perf_counter()
    ev = evaluate(problem, plan, index)
    return {"index_s": t1 - t0, "greedy_s": t2 - t1, "feasible": ev.feasible,
            "objective": ev.objective, "status": plan.status.value,
            "scheduled": int((plan.node >= 0).sum())}


def run(big: bool = True, trace: bool = False) -> list[dict[str, Any]]:
    """Run the cases; ``big=False`` skips 10,000 x 1,000, ``trace`` adds a tracemalloc run."""
    rows: list[dict[str, Any]] = []
    p = bench_problem(1000, 100)
    r = _construct(p)
    rows.append({"case": "1000x100x96", **r})
    if big:
        p = bench_problem(10000, 1000, seed=1)
        r = _construct(p)  # timed without tracemalloc: it slows numpy allocations a lot
        r["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if trace:
            tracemalloc.start()
            _construct(p)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            r["peak_tracemalloc_mib"] = peak / 2**20
        rows.append({"case": "10000x1000x96", **r})
    return rows


def main() -> None:  # pragma: no cover - script
    """Print the benchmark table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="skip the 10,000 x 1,000 case")
    ap.add_argument("--trace", action="store_true",
                    help="also measure peak Python allocations (tracemalloc; slow)")
    args = ap.parse_args()
    for row in run(big=not args.small, trace=args.trace):
        print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"  # noqa: T201
                         for k, v in row.items()))


if __name__ == "__main__":  # pragma: no cover
    main()
