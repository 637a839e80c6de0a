"""Benchmark of the re-planner: ``python -m optisched.bench.replan``.

**Latency** (issue 16 targets in brackets): p50 / p95 / max wall time, and p50 /
p95 of the process's CPU time (less sensitive to a shared machine), over
``--updates`` updates (default 50) of each kind on the benchmark shape 1,000 jobs × 100 nodes ×
96 quarter-hours (:func:`optisched.generate.bench_problem`, seed 2), with
``time_limit=0`` (repair only, no local search) and the evaluator's check of every
plan (``verify``) on:

* ``arrival``: one job arriving at the same ``now`` [≤ 50 ms];
* ``pv``: a new PV forecast for 10 nodes [≤ 100 ms];
* ``price``: a new import price for one tariff (25 nodes) [≤ 100 ms];
* ``headroom``: a new headroom for 10 nodes [≤ 100 ms];
* ``outage``: a node (a car) leaving for two hours, the next one returning [≤ 100 ms];
* ``roll``: the horizon rolled by one slot, nothing else [≤ 50 ms] (shrinking horizon);
* ``roll-window``: the same in window mode (96 slots ahead, the new slot filled by
  ``repeat_day``).

Each row also gives the mean time per phase (``Replanner.timings``: roll = the
problem rolled and the data written, index, solve = greedy repair and dispatch,
verify = :func:`optisched.evaluate.evaluate`, record = ledger and change set).
``--profile KIND`` prints the cProfile of that kind.

**Quality** (``--quality``): a 48-hour loop with hourly updates on the generator's
``medium`` preset (100 jobs × 20 nodes × 96 slots, its jobs known at the start):
the next day's jobs (the preset with the next seed, moved by a day) arrive in the
hour of their release, one small job more every hour, a PV forecast change every
6 h, the 96-slot window rolled with ``repeat_day`` data; after each
update a fresh ``lns`` plan (``--lns-time`` s, default 10) of the same state
(:attr:`Replanner.problem`) is made and the re-planned plan's cost compared with
it. Prints one row per update and the summary (mean, max, updates within 3 %).

This replaces the ``update`` case ``python -m optisched.bench.greedy`` measured
before (one arrival at the same ``now``): it is the ``arrival`` row here.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import platform
import pstats
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from optisched.domain import Job, Problem
from optisched.generate import bench_problem, generate
from optisched.plan import Plan
from optisched.replan import Replanner
from optisched.solvers import solve

__all__ = ["KINDS", "latency", "quality"]

log = logging.getLogger(__name__)

KINDS = ("arrival", "pv", "price", "headroom", "outage", "roll", "roll-window")
"""Update kinds of the latency benchmark."""
TARGETS_MS = {"arrival": 50.0, "pv": 100.0, "price": 100.0, "headroom": 100.0,
              "outage": 100.0, "roll": 50.0, "roll-window": 50.0}
"""Issue 16 targets (p95) [ms]."""


def _replanner(problem: Problem, kind: str) -> Replanner:
    window = {"window_slots": problem.horizon.slots, "fill": "repeat_day"} if (
        kind == "roll-window") else {}
    return Replanner(problem, seed=0, time_limit=0.0, **window)  # type: ignore[arg-type]


def _steps(kind: str, problem: Problem, n: int) -> list[dict[str, Any]]:
    """``n`` updates of one kind: what changes, applied by :func:`_apply`."""
    hz = problem.horizon
    ids = [nd.node_id for nd in problem.nodes]
    rng = np.random.default_rng(1)
    steps: list[dict[str, Any]] = []
    for i in range(n):
        if kind == "arrival":
            steps.append({"job": Job(job_id=f"new{i}", gpus=1, duration_min=60, power_kw=1.0,
                                     release=hz.time_of(10), deadline=hz.time_of(60),
                                     drop_penalty=50.0)})
        elif kind in ("pv", "headroom"):
            steps.append({"nodes": [ids[(10 * i + k) % len(ids)] for k in range(10)],
                          "scale": float(rng.uniform(0.6, 1.2))})
        elif kind == "price":
            steps.append({"tariff": f"t{i % 4}", "scale": float(rng.uniform(0.8, 1.2))})
        elif kind == "outage":
            steps.append({"node": ids[(i // 2) % len(ids)], "out": i % 2 == 0})
        else:  # roll, roll-window: one slot on
            steps.append({})
    return steps


def _apply(rp: Replanner, kind: str, step: dict[str, Any]) -> Plan:
    """One update of ``kind`` (see :func:`_steps`)."""
    p = rp.problem
    now = p.horizon.start
    if kind == "arrival":
        return rp.update(now, new_jobs=[step["job"]])
    if kind == "pv":
        return rp.update(now, pv={nid: [v * step["scale"] for v in (
            p.node_series[nid].pv_kw or [])] for nid in step["nodes"]})
    if kind == "headroom":
        scale = max(step["scale"], 1.0)
        return rp.update(now, headroom={nid: [None if v is None else v * scale for v in (
            p.node_series[nid].headroom_kw or [])] for nid in step["nodes"]})
    if kind == "price":
        t = step["tariff"]
        return rp.update(now, prices={t: [v * step["scale"] for v in p.tariffs[t].price]})
    if kind == "outage":
        if step["out"]:
            return rp.update(now, outages={step["node"]: now + timedelta(hours=2)})
        return rp.update(now, returns=[step["node"]])
    return rp.update(p.horizon.time_of(1))


def latency(updates: int = 50, kinds: tuple[str, ...] = KINDS, profile: str | None = None,
            jobs: int = 1000, nodes: int = 100) -> list[dict[str, Any]]:
    """Time ``updates`` updates of each kind; one row per kind (times in ms)."""
    rows = []
    for kind in kinds:
        problem = bench_problem(jobs, nodes, seed=2)
        rp = _replanner(problem, kind)
        if kind == "outage":
            updates_k = updates + updates % 2
        else:
            updates_k = updates
        steps = _steps(kind, problem, updates_k)
        times: list[float] = []
        cpu: list[float] = []
        phases: dict[str, list[float]] = {}
        prof = cProfile.Profile() if profile == kind else None
        for step in steps:
            if prof is not None:
                prof.enable()
            t0, c0 = time.perf_counter(), time.process_time()
            plan = _apply(rp, kind, step)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if prof is not None:
                prof.disable()
            assert plan.status.has_plan, plan.message
            for k, v in rp.timings.items():
                phases.setdefault(k, []).append(v)
        ms = np.array(times) * 1000
        row: dict[str, Any] = {
            "kind": kind, "updates": len(times), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()),
            "target_p95_ms": TARGETS_MS[kind],
            "cpu_p50_ms": float(np.percentile(cpu, 50)) * 1000,
            "cpu_p95_ms": float(np.percentile(cpu, 95)) * 1000,
        }
        row.update({f"{k}_ms": 1000 * float(np.mean(v)) for k, v in phases.items()
                    if k != "total"})
        rows.append(row)
        if prof is not None:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
    return rows


def quality(hours: int = 48, lns_time: float = 10.0, preset: str = "medium", seed: int = 0,
            report: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """The 48-hour loop: each re-planned plan against a fresh ``lns`` plan of the same state.

    Returns
    -------
    list of dict
        One row per update: time, jobs, re-planned cost, lns cost, gap
        ``(replanned − lns) / |lns|``, update latency.
    """
    problem = generate(preset, seed=seed)
    hz = problem.horizon
    # the next days' jobs: the generator's jobs of other seeds, moved to day 2, 3, ...
    later: list[Job] = []
    for d in range(1, (hours + 23) // 24 + 1):
        other = generate(preset, seed=seed + d)
        shift = hz.start + timedelta(days=d) - other.horizon.start
        later += [j.model_copy(update={
            "job_id": f"d{d + 1}-{j.job_id}",
            "release": None if j.release is None else j.release + shift,
            "deadline": None if j.deadline is None else j.deadline + shift})
            for j in other.jobs]
    rp = Replanner(problem, seed=seed, time_limit=0.2, window_slots=hz.slots,
                   fill="repeat_day")
    rng = np.random.default_rng(seed)
    rows = []
    pv_nodes = [nid for nid, s in problem.node_series.items() if s.pv_kw is not None]
    for h in range(1, hours + 1):
        now = hz.start + timedelta(hours=h)
        # jobs released in the last hour arrive, one small extra job every hour
        arrived = [j for j in later if (j.release or now) <= now]
        later = [j for j in later if j not in arrived]
        kw: dict[str, Any] = {"new_jobs": [*arrived, Job(
            job_id=f"h{h}", gpus=1.0, duration_min=float(rng.integers(1, 9)) * 15,
            power_kw=float(rng.uniform(0.2, 2.0)), deadline=now + timedelta(hours=6),
            drop_penalty=float(rng.uniform(1, 20)))]}
        if h % 6 == 0 and pv_nodes:  # a forecast change: PV of a few nodes for the next 6 h
            picked = rng.choice(pv_nodes, size=min(3, len(pv_nodes)), replace=False)
            idx = [now + timedelta(minutes=hz.slot_minutes * t) for t in range(24)]
            kw["pv"] = {str(nid): dict(zip(idx, (np.asarray(
                rp.problem.node_series[str(nid)].pv_kw or [0.0] * hz.slots)[:24]
                * float(rng.uniform(0.5, 1.2))).tolist(), strict=True)) for nid in picked}
        t0 = time.perf_counter()
        plan = rp.update(now, **kw)
        dt = time.perf_counter() - t0
        ref = solve(rp.problem, "lns", time_limit=lns_time, seed=seed)
        if not ref.status.has_plan:  # lns failed on this state: once more, another seed
            log.warning("lns at %s: %s %s; retried", now.isoformat(), ref.status.value,
                        ref.message[:200])
            ref = solve(rp.problem, "lns", time_limit=lns_time, seed=seed + 1)
        ours = float(plan.objective or 0.0)
        theirs = float(ref.objective) if ref.objective is not None else float("nan")
        row = {"time": now.isoformat(), "jobs": len(rp.problem.jobs), "replanned": ours,
               "lns": theirs, "gap": (ours - theirs) / max(abs(theirs), 1e-9),
               "update_ms": 1000 * dt, "lns_status": ref.status.value,
               "lns_message": "" if ref.status.has_plan else ref.message[:200]}
        rows.append(row)
        if report is not None:
            report(row)
    return rows


def _machine() -> str:
    """Date, machine, load average and versions, for BENCHMARKS.md."""
    load = os.getloadavg()
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
            f"{os.cpu_count()} cores, load average {load[0]:.2f} / {load[1]:.2f} / "
            f"{load[2]:.2f}, Python {platform.python_version()}, numpy {np.__version__}, "
            f"pandas {pd.__version__}")


def main() -> None:  # pragma: no cover - script
    """Print the latency table (and the quality loop with ``--quality``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=50, help="updates per kind (default 50)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds")
    ap.add_argument("--profile", default=None, help="print the cProfile of this kind")
    ap.add_argument("--quality", action="store_true", help="run the 48-hour quality loop")
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--lns-time", type=float, default=10.0)
    ap.add_argument("--preset", default="medium")
    args = ap.parse_args()
    print(_machine())  # noqa: T201
    if args.quality:
        def show(r: dict[str, Any]) -> None:
            print(f"{r['time']}  jobs={r['jobs']:4d}  replanned={r['replanned']:10.3f}  "  # noqa: T201
                  f"lns={r['lns']:10.3f}  gap={100 * r['gap']:+7.2f} %  "
                  f"update={r['update_ms']:7.1f} ms")
        rows = quality(args.hours, args.lns_time, args.preset, report=show)
        gaps = np.array([r["gap"] for r in rows if r["lns_status"] in ("feasible", "optimal")])
        failed = [r for r in rows if r["lns_status"] not in ("feasible", "optimal")]
        print(f"gap to lns ({args.lns_time:g} s): mean {100 * gaps.mean():+.2f} %, "  # noqa: T201
              f"median {100 * np.median(gaps):+.2f} %, max {100 * gaps.max():+.2f} %, "
              f"{int((gaps <= 0.03).sum())} of {gaps.size} updates within 3 %; lns found no "
              f"plan in {len(failed)} states" + (f" ({failed[0]['lns_message']})" if failed
                                                 else ""))
        return
    rows = latency(args.updates, tuple(args.kinds.split(",")), args.profile)
    cols = ["kind", "updates", "p50_ms", "p95_ms", "max_ms", "target_p95_ms", "cpu_p50_ms",
            "cpu_p95_ms", "roll_ms", "index_ms", "solve_ms", "verify_ms", "record_ms"]
    print(" | ".join(cols))  # noqa: T201
    for r in rows:
        print(" | ".join(f"{r.get(c, 0.0):.1f}" if isinstance(r.get(c), float)  # noqa: T201
                         else str(r.get(c, "")) for c in cols))


if __name__ == "__main__":  # pragma: no cover
    main()
