"""Benchmark of the ``lns`` solver: ``python -m optisched.bench.lns``.

For each instance it runs ``lns`` with the given time limit and prints the start
(greedy) objective, the final objective, the bound, its source, the gap
``(objective − bound) / |objective|``, iterations and seconds. Optionally it also
computes the LP relaxation (:func:`optisched.bounds.lp_bound`) separately, so the
``lns`` objective can be compared with the LP bound even when ``lns`` itself used
the Lagrangian bound.

Instances: ``medium`` = 100 jobs × 20 nodes × 96 slots, ``large`` = 1000 × 100 × 96,
from ``optisched.generate.generate(preset, seed=s)``, else (should the preset
fail) from :func:`optisched.generate.random_problem` (batteries, feeders,
demand charges, sleeping nodes, 15-minute slots); ``icon`` = the ICON 2014 samples in
``../shared/icon/samples`` through ``optisched.icon.read_icon`` (forecast prices).

Options: ``--sizes medium,large,icon``, ``--seeds 0,1``, ``--limit 60`` (medium),
``--large-limit 300``, ``--icon-limit 300``, ``--icon-samples sample01,sample02``,
``--lp`` (also the separate LP bound).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optisched.bounds import lp_bound_result
from optisched.domain import Problem
from optisched.generate import generate, random_problem
from optisched.icon import read_icon
from optisched.solvers import solve

SIZES: dict[str, tuple[int, int, int, int]] = {
    "medium": (100, 20, 96, 15),
    "large": (1000, 100, 96, 15),
}
"""name → (jobs, nodes, slots, slot_minutes)."""

ICON_DIR = Path(__file__).resolve().parents[3] / "shared" / "icon" / "samples"


def make_instance(size: str, seed: int) -> tuple[Problem, str]:
    """A generated instance of ``size`` and the generator's name."""
    J, N, T, slot_min = SIZES[size]
    try:
        return generate(size, seed=seed), "optisched.generate"
    except (ImportError, AttributeError, TypeError, ValueError, KeyError):
        pass
    p = random_problem(seed, n_nodes=N, n_jobs=J, slots=T, slot_minutes=slot_min,
                       feeders=True, demand_charge=True, sleep=True, negative_prices=False)
    return p, "optisched.generate.random_problem"


def icon_instances(names: list[str] | None = None) -> Iterator[tuple[str, Problem]]:
    """The ICON samples (all, or those named) through ``optisched.icon.read_icon``."""
    for path in sorted(ICON_DIR.glob("*")):
        if names and path.name not in names:
            continue
        try:
            yield path.name, read_icon(path)
        except Exception as exc:  # an importer gap must not stop the benchmark
            logging.getLogger(__name__).warning("icon %s: %s", path.name, exc)


def run(problem: Problem, limit: float, seed: int, lp: bool) -> dict[str, Any]:
    """One ``lns`` solve; returns the row of the table."""
    t0 = time.perf_counter()
    plan = solve(problem, "lns", time_limit=limit, seed=seed)
    secs = time.perf_counter() - t0
    row: dict[str, Any] = {
        "status": plan.status.value, "start": plan.info.get("start_objective"),
        "objective": plan.objective, "bound": plan.bound, "source": plan.info.get("bound_source"),
        "gap": plan.gap, "iters": plan.info.get("iterations"), "seconds": secs,
    }
    if lp:
        res = lp_bound_result(problem, time_limit=max(limit, 60.0))
        row["lp"] = res.bound
        row["lp_s"] = res.seconds
        obj = plan.objective
        row["lp_gap"] = ((obj - res.bound) / max(abs(obj), 1e-9)
                         if obj is not None and abs(res.bound) != float("inf") else None)
    return row


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per instance."""
    ap = argparse.ArgumentParser(prog="python -m optisched.bench.lns")
    ap.add_argument("--sizes", default="medium")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--limit", type=float, default=60.0)
    ap.add_argument("--large-limit", type=float, default=300.0)
    ap.add_argument("--icon-limit", type=float, default=300.0)
    ap.add_argument("--icon-samples", default="", help="e.g. sample01,sample02 (default all)")
    ap.add_argument("--lp", action="store_true")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    cols = ["instance", "generator", "status", "start", "objective", "bound", "source", "gap",
            "iters", "seconds", "lp", "lp_gap"]
    out = sys.stdout
    out.write(" | ".join(cols) + "\n")
    for size in args.sizes.split(","):
        if size == "icon":
            wanted = [x for x in args.icon_samples.split(",") if x]
            for name, p in icon_instances(wanted or None):
                row = run(p, args.icon_limit, 0, args.lp)
                out.write(" | ".join([name, "optisched.icon"]
                                     + [_fmt(row.get(c)) for c in cols[2:]]) + "\n")
                out.flush()
            continue
        for s in seeds:
            p, gen = make_instance(size, s)
            limit = args.large_limit if size == "large" else args.limit
            row = run(p, limit, s, args.lp)
            out.write(" | ".join([f"{size}/{s}", gen] + [_fmt(row.get(c)) for c in cols[2:]])
                      + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
