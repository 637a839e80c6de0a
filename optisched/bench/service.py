"""Benchmark of the HTTP service (issue 17): ``python -m optisched.bench.service``.

Against a real ``optisched serve`` (uvicorn, 127.0.0.1, ``--workers 2``) started here:

1. ``POST /v1/validate`` of the 1,000-job bundle (``optisched generate --preset large
   --seed 0``) as a problem document, ``--clients`` concurrent clients (default 20):
   p50 / p95 latency;
2. session arrival events on the same bundle: one session per client, each client
   sends ``--events`` arrivals (one per slot, the horizon rolls each time): p50 / p95
   with ``--clients`` concurrent clients and with one client alone, beside the
   in-process ``Replanner.update`` of the same arrivals with the same settings
   (target: a session event within 2× of it);
3. ``--solves`` (default 100) concurrent solves of ``datasets/tiny`` queued on the
   2 workers, the server killed (SIGKILL) when about half are done and started
   again on the same ``--state``: every solve must complete and its plan pass the
   evaluator; none lost.

Prints a Markdown report (and writes ``--out`` JSON). The clients run in this
process's threads (standard-library client), on the same machine as the server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import optisched
from optisched.client import Client
from optisched.domain import Job, Problem
from optisched.generate import generate
from optisched.plan import Plan
from optisched.replan import Replanner
from optisched.service.launch import ServerProcess, wait_gone
from optisched.shutdown import exit_on_signals

__all__ = ["main"]

TINY = Path(__file__).resolve().parents[2] / "datasets" / "tiny"


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _stats(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50_ms": 1000 * statistics.median(xs), "p95_ms": 1000 * _pct(xs, 0.95),
            "max_ms": 1000 * max(xs), "mean_ms": 1000 * statistics.fmean(xs)}


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_validate(c: Client, problem_json: str, clients: int, per_client: int
                   ) -> dict[str, Any]:
    """Latency of ``POST /v1/validate`` with ``clients`` concurrent clients."""
    c.validate(problem_json)  # warm up
    def one(_: int) -> float:
        return _timed(lambda: c.validate(problem_json))

    alone = [one(k) for k in range(per_client)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex:
        times = list(ex.map(one, range(clients * per_client)))
    wall = time.perf_counter() - t0
    return {**_stats(times), "per_s": len(times) / wall, "alone": _stats(alone)}


def _arrival(problem: Problem, k: int, who: int) -> dict[str, Any]:
    return {"time": problem.horizon.time_of(k).isoformat(), "event": "arrive",
            "job_id": f"bench-{who}-{k}", "gpus": 1, "duration_min": 60, "power_kw": 0.4,
            "drop_penalty": 100}


def bench_sessions(c: Client, problem: Problem, plan_json: str, clients: int, events: int,
                   settings: dict[str, Any]) -> dict[str, Any]:
    """Arrival events: ``clients`` concurrent sessions, then one session alone."""
    def create(_: int) -> str:
        return str(c.create_session(problem, plan_json, detail="none", **settings)["id"])

    def send(sid: str, k: int, who: int, detail: str = "full") -> float:
        return _timed(lambda: c.send_events(sid, [_arrival(problem, k, who)], detail=detail))

    with ThreadPoolExecutor(min(clients, 4)) as ex:
        ids = list(ex.map(create, range(clients)))
    barrier = threading.Barrier(clients)

    def run(who: int) -> list[float]:
        barrier.wait()
        return [send(ids[who], k, who) for k in range(1, events + 1)]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex:
        concurrent = [t for ts in ex.map(run, range(clients)) for t in ts]
    wall = time.perf_counter() - t0
    alone_id, light_id = create(0), create(1)
    alone = [send(alone_id, k, 999) for k in range(1, events + 1)]
    alone_light = [send(light_id, k, 998, "none") for k in range(1, events + 1)]
    return {"concurrent": {**_stats(concurrent), "per_s": len(concurrent) / wall},
            "alone": _stats(alone), "alone_no_plan": _stats(alone_light)}


def bench_in_process(problem: Problem, plan: Plan, events: int, settings: dict[str, Any]
                     ) -> dict[str, float]:
    """``Replanner.update`` of the same arrivals, in this process."""
    rp = Replanner(problem, solver=settings["solver"], seed=settings["seed"],
                   time_limit=settings["time_limit"], plan=plan,
                   iterations=settings["iterations"])
    times = []
    for k in range(1, events + 1):
        ev = _arrival(problem, k, 997)
        now = problem.horizon.time_of(k)
        job = Job(job_id=ev["job_id"], gpus=1, duration_min=60, power_kw=0.4, release=now,
                  drop_penalty=100)
        t0 = time.perf_counter()
        rp.update(now, new_jobs=[job])
        times.append(time.perf_counter() - t0)
    return _stats(times)


def bench_solves(server: ServerProcess, n: int, time_limit: float) -> dict[str, Any]:
    """``n`` concurrent solves of datasets/tiny, a SIGKILL of the server half-way."""
    tiny = optisched.read_bundle(TINY)
    body = tiny.model_dump_json()
    c = server.client()
    t0 = time.perf_counter()
    def submit(_: int) -> str:
        return str(c.solve(body, solver="greedy", time_limit=time_limit)["id"])

    with ThreadPoolExecutor(20) as ex:
        ids = list(ex.map(submit, range(n)))
    submitted = time.perf_counter() - t0
    while sum(s["done"] for s in c.solves()) < n // 2:
        time.sleep(0.1)
    done_before = sum(s["done"] for s in c.solves())
    pids = server.stop(signal.SIGKILL)
    orphans = wait_gone(pids)
    t_restart = time.perf_counter()
    server.start()
    restart = time.perf_counter() - t_restart
    c = server.client()
    while not all(s["done"] for s in c.solves()):
        time.sleep(0.2)
    total = time.perf_counter() - t0
    ok = lost = bad = 0
    for sid in ids:
        try:
            st = c.get_solve(sid)
        except Exception:
            lost += 1
            continue
        if st["status"] in ("feasible", "optimal") and optisched.evaluate(
                tiny, Plan.from_json(tiny, st["plan"])).feasible:
            ok += 1
        else:
            bad += 1
    return {"solves": n, "submitted_s": submitted, "done_before_kill": done_before,
            "orphan_workers": len(orphans), "restart_s": restart, "total_s": total,
            "verified": ok, "failed": bad, "lost": lost}


def _markdown(r: dict[str, Any]) -> str:
    v, s, ip, sv = r["validate"], r["sessions"], r["in_process"], r["solves"]

    def row(name: str, x: dict[str, Any]) -> str:
        per_s = f"{x['per_s']:.1f}" if "per_s" in x else ""
        return (f"| {name} | {x['n']} | {x['p50_ms']:.0f} | {x['p95_ms']:.0f} | "
                f"{x['max_ms']:.0f} | {per_s} |")

    ratio = s["alone"]["p50_ms"] / ip["p50_ms"]
    ratio_light = s["alone_no_plan"]["p50_ms"] / ip["p50_ms"]
    lines = [
        f"Command: `{r['command']}`; {r['date']}; {r['machine']}; {r['versions']}.",
        f"Load: {r['load']}.",
        "",
        "| what (1,000-job bundle: 100 nodes, 96 slots) | requests | p50 [ms] | p95 [ms] | "
        "max [ms] | requests/s |",
        "|---|---|---|---|---|---|",
        row(f"`POST /v1/validate` (problem JSON, {r['clients']} concurrent clients)", v),
        row("`POST /v1/validate`, one client alone", v["alone"]),
        row(f"session arrival event, {r['clients']} concurrent sessions", s["concurrent"]),
        row("session arrival event, one client alone (answer with the full plan)", s["alone"]),
        row("session arrival event, one client alone (`?plan=none`)", s["alone_no_plan"]),
        row("in-process `Replanner.update` of the same arrivals", ip),
        "",
        f"Session event ÷ in-process update (p50, one client): {ratio:.2f}× with the full "
        f"plan in the answer, {ratio_light:.2f}× with `?plan=none` (target ≤ 2×). Settings: "
        f"{r['settings']}.",
        "",
        f"{sv['solves']} concurrent solves of `datasets/tiny` (greedy, {r['solve_time_limit']} s) "
        f"on 2 workers, server killed (SIGKILL) after {sv['done_before_kill']} were done and "
        f"restarted on the same `--state` (restart {sv['restart_s']:.1f} s): "
        f"**{sv['verified']} completed and verified by the evaluator, {sv['failed']} failed, "
        f"{sv['lost']} lost**; {sv['orphan_workers']} worker processes outlived the killed "
        f"server; all done {sv['total_s']:.1f} s after the first submission.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints Markdown."""
    ap = argparse.ArgumentParser(prog="python -m optisched.bench.service",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=5, help="validate requests per client")
    ap.add_argument("--events", type=int, default=5, help="arrival events per session")
    ap.add_argument("--solves", type=int, default=100)
    ap.add_argument("--solve-time-limit", type=float, default=0.5)
    ap.add_argument("--time-limit", type=float, default=0.1,
                    help="session update search time [s]")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args(argv)
    problem = generate("large", seed=0)
    problem_json = problem.model_dump_json()
    settings = {"solver": "greedy", "time_limit": args.time_limit, "seed": 0,
                "iterations": None}
    plan = optisched.solve(problem, "greedy", time_limit=2.0)
    plan_json = plan.to_json(problem)
    with open("/proc/loadavg") as fh:
        load_before = fh.read().split()[:3]
    with tempfile.TemporaryDirectory() as d:
        server = ServerProcess(Path(d) / "state", Path(d) / "server.log",
                               ["--workers", "2", "--no-auth", "--max-body", str(64 << 20)])
        server.start()
        try:
            c = server.client()
            result: dict[str, Any] = {
                "validate": bench_validate(c, problem_json, args.clients, args.requests)}
            result["sessions"] = bench_sessions(c, problem, plan_json, args.clients,
                                                args.events, settings)
            result["in_process"] = bench_in_process(problem, plan, args.events, settings)
            result["solves"] = bench_solves(server, args.solves, args.solve_time_limit)
        finally:
            server.stop()
    with open("/proc/loadavg") as fh:
        load_after = fh.read().split()[:3]
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("fastapi", "uvicorn",
                                                                 "pydantic", "numpy"))
    result.update({
        "command": "python -m optisched.bench.service " + " ".join(argv or sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {_cores()} cores, Python "
                   f"{platform.python_version()}",
        "versions": versions,
        "load": f"load average {' '.join(load_before)} before, {' '.join(load_after)} after "
                "(a shared machine: other sessions' jobs ran beside it)",
        "clients": args.clients, "settings": settings,
        "solve_time_limit": args.solve_time_limit})
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    sys.stdout.write(_markdown(result) + "\n")
    return 0 if result["solves"]["lost"] == 0 and result["solves"]["failed"] == 0 else 1


def _cores() -> int:
    return os.cpu_count() or 1


if __name__ == "__main__":  # pragma: no cover
    exit_on_signals()  # SIGTERM/SIGHUP: children and temporary files go as for Ctrl-C
    raise SystemExit(main())
