"""Benchmark worker: one (instance, solver, repeat) in its own process.

Run as ``python -m optisched.bench.worker --bundle DIR --solver NAME --result FILE
--progress FILE [...]`` by :mod:`optisched.bench.runner`. It reads the bundle,
solves it through :func:`optisched.solvers.solve` with a progress callback that
appends one JSON line per report to ``--progress`` (flushed at once, so a killed
run keeps what it reported), checks the returned plan with the evaluator
*here*, independently of the registry's own check, and writes one JSON result
file atomically. A plan the evaluator rejects, or whose objective differs from
the evaluator's, is recorded with status ``error`` and ``verified = false``:
it is a failure, never a result.

The pseudo-solver ``lp-bound`` computes the LP relaxation bound
(:func:`optisched.bounds.lp_bound_result`) instead of a plan.

The parent measures wall time, CPU time and peak memory of this process; the
worker adds ``rss_before_solve_kb`` (peak resident memory after reading the
bundle and importing the solver packages, before the solve) so the solve's own
memory can be told from the interpreter's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from optisched.atomic import write_file_atomically
from optisched.bench.results import LP_BOUND
from optisched.bounds.guard import guard
from optisched.evaluate import evaluate
from optisched.io import read_bundle
from optisched.plan import Status, write_plan
from optisched.shutdown import exit_on_signals
from optisched.solvers import REGISTRY, Progress, SolverOptions, SolverSpec, register, solve

__all__ = ["LP_BOUND", "main", "run_one"]

log = logging.getLogger(__name__)


def _num(v: float | None) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _maxrss_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_one(bundle: Path, solver: str, time_limit: float | None, seed: int,
            threads: int | None, progress_file: Path, spec: dict[str, Any] | None = None,
            plan_out: Path | None = None) -> dict[str, Any]:
    """Solve one bundle and verify the plan.

    Parameters
    ----------
    bundle : pathlib.Path
        Input bundle directory.
    solver : str
        Registry name, or :data:`LP_BOUND`.
    time_limit : float or None
        Budget [s] handed to the solver.
    seed : int
        Solver seed.
    threads : int or None
        Threads handed to the solver.
    progress_file : pathlib.Path
        JSON Lines file; one ``{"elapsed", "objective", "bound", "message"}``
        per progress report (elapsed [s] from the solver's start).
    spec : dict, optional
        ``SolverSpec`` fields of the parent's registry entry; registered here
        so solvers registered at run time in the parent (tests) exist here too.
    plan_out : pathlib.Path, optional
        Write the plan directory (SPEC §4) there.

    Returns
    -------
    dict
        The result record (see :data:`optisched.bench.results.RUN_COLUMNS` for the
        fields).
    """
    t_read = time.perf_counter()
    problem = read_bundle(bundle)
    read_s = time.perf_counter() - t_read
    rec: dict[str, Any] = {"read_s": read_s}
    if solver == LP_BOUND:
        from optisched.bounds import lp_bound_result

        rss0 = _maxrss_kb()
        t0 = time.perf_counter()
        res = lp_bound_result(problem, time_limit=time_limit, threads=threads)
        b = res.bound
        status = "infeasible" if b == math.inf else ("bound" if math.isfinite(b) else
                                                     "no_solution")
        rec.update(status=status, verified=False, objective=None, bound=_num(b),
                   build_s=None, solve_s=res.seconds, solver_total_s=time.perf_counter() - t0,
                   rss_before_solve_kb=rss0, message=f"LP {res.status}, {res.columns} "
                   f"columns, {res.rows} rows", first_feasible_s=None, progress_reports=0)
        return rec

    if spec is not None:
        mod, _, qual = str(spec.get("options", "")).partition(":")
        opts = (getattr(importlib.import_module(mod), qual) if mod and qual
                else SolverOptions)
        s = SolverSpec(spec["name"], spec["module"], spec["function"],
                       spec.get("description", ""), tuple(spec.get("requires", ())),
                       bool(spec.get("exact", False)), opts)
        if REGISTRY.get(solver) != s:
            register(s)
    if solver in REGISTRY:
        REGISTRY[solver].load()  # import the backend before measuring the solve's memory
    rss0 = _maxrss_kb()
    first: list[float] = []
    n_reports = [0]
    fh = open(progress_file, "a", encoding="utf-8")  # closed below

    def callback(p: Progress) -> None:
        n_reports[0] += 1
        obj = _num(p.objective)
        if obj is not None and not first:
            first.append(float(p.elapsed))
        fh.write(json.dumps({"elapsed": float(p.elapsed), "objective": obj,
                             "bound": _num(p.bound), "message": str(p.message)}) + "\n")
        fh.flush()

    t0 = time.perf_counter()
    try:
        plan = solve(problem, solver, time_limit=time_limit, seed=seed, threads=threads,
                     callback=callback)
    finally:
        fh.close()
    total = float(plan.timings.get("total", time.perf_counter() - t0))
    verified = False
    message = plan.message
    status = plan.status.value
    objective = plan.objective
    if plan.status.has_plan:
        ev = evaluate(problem, plan)
        agrees = (objective is not None and math.isfinite(ev.objective)
                  and abs(objective - ev.objective) <= 1e-6 * max(1.0, abs(ev.objective)))
        verified = bool(ev.feasible and agrees)
        if not verified:
            why = "; ".join(str(v) for v in ev.violations[:3]) if not ev.feasible else \
                f"objective {objective} differs from the evaluator's {ev.objective}"
            status = Status.ERROR.value
            message = f"plan rejected by the evaluator: {why}"
            objective = None
        elif plan_out is not None:
            write_plan(problem, plan, plan_out)
    if not verified:
        objective = None  # a plan that is not verified is never a result
    rec.update(
        status=status, verified=verified, objective=_num(objective),
        bound=_num(plan.bound) if status != Status.ERROR.value else None,
        build_s=_num(plan.timings.get("build")), solve_s=_num(plan.timings.get("solve")),
        solver_total_s=total, rss_before_solve_kb=rss0,
        message=message[:500],
        # Only a run that ends with a verified plan has a time to its first plan.
        first_feasible_s=(first[0] if first else total) if verified else None,
        first_feasible_from=("progress" if first else "total") if verified else None,
        progress_reports=n_reports[0],
        scheduled=int((plan.node >= 0).sum()) if verified else None,
        dropped=int((plan.node < 0).sum()) if verified else None,
    )
    return rec


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the worker process (exit code 0 when a result was written)."""
    ap = argparse.ArgumentParser(prog="python -m optisched.bench.worker")
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--solver", required=True)
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--progress", required=True, type=Path)
    ap.add_argument("--result", required=True, type=Path)
    ap.add_argument("--spec", default=None, help="JSON of the parent's SolverSpec")
    ap.add_argument("--plan-out", type=Path, default=None)
    ap.add_argument("--parent", type=int, default=None,
                    help="the runner's pid (default: the parent's pid when the guard starts)")
    args = ap.parse_args(argv)
    # End with the runner, even when it is SIGKILLed; its pid from the command line, as
    # one that died during this process's imports has left os.getppid() to the reaper.
    guard(os.getppid() if args.parent is None else args.parent, take_signals=False)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    rec = run_one(args.bundle, args.solver, args.time_limit, args.seed, args.threads,
                  args.progress, json.loads(args.spec) if args.spec else None, args.plan_out)
    write_file_atomically(args.result, json.dumps(rec))
    return 0


if __name__ == "__main__":
    exit_on_signals()  # SIGTERM from the runner's stop: the atomic writes clean up
    sys.exit(main())
