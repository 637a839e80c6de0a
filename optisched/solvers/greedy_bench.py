"""Benchmark of ``greedy`` and the re-planner: ``python -m optisched.solvers.greedy_bench``.

Cases (issue 3 targets in brackets):

* ``1000x100x96``: 1,000 jobs, 100 nodes, 96 slots of 15 min, construction +
  exact dispatch, no local search [≤ 1 s];
* ``10000x1000x96``: the same at 10,000 x 1,000, with the process's peak
  resident set (``resource.getrusage``; ``--trace`` adds a second, slower run
  under ``tracemalloc``) [≤ 10 s, ≤ 4 GiB];
* ``update``: one job arriving into a 1,000-job plan, :meth:`Replanner.update`
  at the same ``now`` [≤ 50 ms].

Instances come from :func:`bench_problem` (seeded, in code; no files). Prints a
table; :func:`run` returns the rows for the benchmark report.
"""

from __future__ import annotations

import argparse
import math
import resource
import time
import tracemalloc
from datetime import timedelta
from typing import Any

import numpy as np

from optisched.domain import Horizon, Job, Node, NodeSeries, Problem, Scenario, Tariff
from optisched.index import compile_index
from optisched.solvers.base import SolveOptions
from optisched.solvers.options import GreedyOptions

__all__ = ["bench_problem", "run"]

START = "2026-06-01T00:00:00+00:00"


def bench_problem(n_jobs: int, n_nodes: int, slots: int = 96, seed: int = 0,
                  slot_minutes: int = 15) -> Problem:
    """A random problem of the benchmark's shape.

    Nodes: 1-8 GPUs, idle 0.05-1 kW, a third can sleep (start-up/shut-down
    0-0.5 money), 60 % with a battery of 5-20 kWh, PV as a midday bell of peak
    0-6 kW, headroom 1.5x the node's largest load, 4 tariffs with a day/night
    price pattern 0.1-0.45 money/kWh. Jobs: 1-2 GPUs, 15-240 min, 0.2-2.5 kW,
    releases over the first 3/4 of the horizon, deadlines 2-12 h later (hard for
    60 %, else tardiness 0.1-1 money/h), 70 % droppable at 1-20 money.

    Returns
    -------
    Problem
        Consistent; the same seed gives the same problem.
    """
    rng = np.random.default_rng(seed)
    T = slots
    hz = Horizon(start=START, slot_minutes=slot_minutes, slots=T)
    hours = (np.arange(T) * slot_minutes / 60.0) % 24
    bell = np.clip(np.sin((hours - 6) / 12 * math.pi), 0.0, None)
    tariffs = {}
    for k in range(4):
        base = rng.uniform(0.1, 0.2)
        peak = np.where((hours >= 17) & (hours < 21), rng.uniform(0.15, 0.25), 0.0)
        day = np.where((hours >= 7) & (hours < 17), rng.uniform(0.02, 0.08), 0.0)
        tariffs[f"t{k}"] = Tariff(price=[float(v) for v in base + peak + day],
                                  export_price=[0.05] * T, carbon_g_per_kwh=[0.0] * T)
    nodes, series = [], {}
    for n in range(n_nodes):
        gpus = float(rng.integers(1, 9))
        idle = float(rng.uniform(0.05, 1.0))
        sleep = bool(rng.random() < 1 / 3)
        batt = rng.random() < 0.6
        E = float(rng.uniform(5, 20)) if batt else 0.0
        nodes.append(Node(
            node_id=f"n{n}", gpus=gpus, idle_kw=idle, tariff=f"t{n % 4}", can_sleep=sleep,
            initially_on=not sleep, startup_cost=float(rng.uniform(0, 0.5)) if sleep else 0.0,
            shutdown_cost=float(rng.uniform(0, 0.5)) if sleep else 0.0,
            export_kw=float(rng.uniform(0, 3)), battery_kwh=E,
            soc_init=0.5, soc_min=0.1 if batt else 0.0,
        ))
        pv = bell * rng.uniform(0.0, 6.0)
        head = idle + gpus * 2.5 * 1.5
        series[f"n{n}"] = NodeSeries(pv_kw=[float(v) for v in pv], headroom_kw=[head] * T)
    jobs = []
    for j in range(n_jobs):
        dur = float(rng.integers(1, 17) * 15)
        rel = int(rng.integers(0, max(1, 3 * T // 4)))
        slack_h = float(rng.uniform(2, 12))
        dl = hz.time_of(rel) + timedelta(minutes=dur) + timedelta(hours=slack_h)
        dl = min(dl, hz.end)
        hard = rng.random() < 0.6
        jobs.append(Job(
            job_id=f"j{j}", gpus=float(rng.integers(1, 3)), duration_min=dur,
            power_kw=float(rng.uniform(0.2, 2.5)), release=hz.time_of(rel), deadline=dl,
            tardiness_per_hour=None if hard else float(rng.uniform(0.1, 1.0)),
            drop_penalty=float(rng.uniform(1, 20)) if rng.random() < 0.7 else 1000.0,
        ))
    return Problem(scenario=Scenario(horizon=hz), nodes=nodes, jobs=jobs, node_series=series,
                   tariffs=tariffs)


def _construct(problem: Problem, improve: bool = False) -> dict[str, Any]:
    from optisched.evaluate import evaluate
    from optisched.solvers.greedy import run_greedy

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
    from optisched.replan import Replanner

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
    p = bench_problem(1000, 100, seed=2)
    rp = Replanner(p, seed=0, time_limit=0.0)
    hz = p.horizon
    new = Job(job_id="new1", gpus=1, duration_min=60, power_kw=1.0, release=hz.time_of(10),
              deadline=hz.time_of(60), drop_penalty=50.0)
    times = []
    for k in range(5):
        job = new.model_copy(update={"job_id": f"new{k}"})
        t0 = time.perf_counter()
        plan = rp.update(hz.start, new_jobs=[job])
        times.append(time.perf_counter() - t0)
    rows.append({"case": "update (1 arrival, 1000 jobs)", "update_s_median": float(
        np.median(times)), "update_s_max": max(times), "status": plan.status.value})
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
