"""Benchmark of the ``cpsat`` solver: ``python -m optisched.bench.cpsat``.

For each generated instance (``small`` = 20 jobs × 5 nodes × 48 slots of 30 min,
``medium`` = 100 jobs × 20 nodes × 96 slots of 15 min) it runs one CP-SAT solve
with the longest time limit and records every incumbent through the progress
callback, then prints: model build time, time to the first solution, the best
(scaled, converted) objective after each checkpoint (10 s, 60 s), the final
objective re-evaluated in floating point, the valid lower bound
(``cpsat_bound − ε``), ε, and the hint's objective.

Instances come from ``optisched.generate.generate(size, n_nodes, n_jobs,
n_slots, seed)`` (the ``small``/``medium`` presets at these sizes), else (should
the preset fail) from :func:`optisched.generate.random_problem`
(batteries, feeders, demand charges, sleeping nodes).

Options: ``--sizes small,medium``, ``--seeds 0``, ``--limits 10,60``,
``--variants starts``, ``--workers 2``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from optisched.domain import Problem
from optisched.generate import generate, random_problem
from optisched.solvers import Progress, solve

SIZES: dict[str, tuple[int, int, int, int]] = {
    "small": (20, 5, 48, 30),
    "medium": (100, 20, 96, 15),
}
"""name → (jobs, nodes, slots, slot_minutes)."""


def make_instance(size: str, seed: int) -> tuple[Problem, str]:
    """A generated instance and the generator's name."""
    J, N, T, slot_min = SIZES[size]
    try:
        return generate(size, N, J, T, seed), f"optisched.generate ({size!r} preset)"
    except (ImportError, AttributeError, TypeError, ValueError, KeyError):
        pass
    p = random_problem(seed, n_nodes=N, n_jobs=J, slots=T, slot_minutes=slot_min,
                       feeders=True, demand_charge=True, sleep=True, negative_prices=False)
    return p, "optisched.generate.random_problem"


def run(problem: Problem, limit: float, checkpoints: list[float], variant: str,
        workers: int, seed: int) -> dict[str, Any]:
    """One solve; returns the row of the table."""
    trace: list[Progress] = []
    t0 = time.perf_counter()
    plan = solve(problem, "cpsat", time_limit=limit, seed=seed, callback=trace.append,
                 workers=workers, variant=variant)
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {
        "status": plan.status.value, "wall": wall,
        "build": plan.timings.get("build"), "first": plan.info.get("time_to_first_solution"),
        "objective": plan.objective, "bound": plan.bound,
        "cpsat_objective": plan.info.get("cpsat_objective"),
        "eps": plan.info.get("rounding_bound"), "hint": plan.info.get("hint_solver"),
        "hint_obj": plan.info.get("hint_objective"),
    }
    for c in checkpoints:
        seen = [p.objective for p in trace if p.elapsed <= c and p.objective is not None
                and p.message.startswith("cpsat")]
        row[f"obj@{c:g}s"] = min(seen) if seen else None
    return row


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the table to stdout."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="small,medium")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--limits", default="10,60")
    ap.add_argument("--variants", default="starts")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    checkpoints = [float(x) for x in a.limits.split(",")]
    out = sys.stdout
    cols = ["size", "seed", "variant", "status", "build", "first",
            *[f"obj@{c:g}s" for c in checkpoints], "objective", "bound", "eps", "hint",
            "hint_obj", "baseline"]
    out.write("\t".join(cols) + "\n")
    for size in a.sizes.split(","):
        for seed in (int(s) for s in a.seeds.split(",")):
            problem, gen = make_instance(size, seed)
            base = solve(problem, "baseline").objective
            for variant in a.variants.split(","):
                row = run(problem, max(checkpoints), checkpoints, variant, a.workers, seed)
                row.update(size=size, seed=seed, variant=variant, baseline=base)
                out.write("\t".join(_fmt(row.get(c)) for c in cols) + "\n")
                out.flush()
    out.write(f"# instances: {gen}; objective = evaluator on the exactly dispatched plan; "
              "obj@Xs = best CP-SAT incumbent by then (scaled, converted to money); "
              "bound = cpsat_bound − eps\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
