"""The ``uncertainty`` suite: two-stage vs deterministic plans judged on held-out actuals.

``optisched bench --suite uncertainty --solvers S --time-limit T --out DIR`` generates,
for every preset of ``--sizes`` (default ``neighborhood,city``), a problem with
``--scenarios`` scenarios and ``--days`` held-out actual days
(:func:`optisched.generate.scenarios.draw_scenarios`), and for each solver plans

* the **deterministic plan** ``x_EV`` on the mean forecast
  (:func:`optisched.scenarios.mean_forecast`), and
* the **two-stage plan** ``x_SP`` on the scenarios, warm-started from ``x_EV``'s first
  stage (and ``x_EV``'s first stage itself when a heuristic returns a plan worse in
  expectation on the scenarios than that: a two-stage optimizer never should),

prices both on every actual day by the re-optimized recourse
(:func:`optisched.actuals.realized`), plans every day with perfect foresight, and
reports (``docs/algorithms/scenarios.md``, "Value of the stochastic solution"):

* ``RP`` = mean realized cost of ``x_SP``, ``EEV`` = that of ``x_EV``,
* ``WS`` = mean cost of the perfect-foresight plans (the cheapest of the day's own
  plan and the realized ``x_SP`` and ``x_EV``: every one is a plan of that day),
* days on which a plan's first stage has no feasible recourse (a node without grid that
  the mean forecast's PV would have carried) are counted, and the means are over the
  other days;
* ``VSS = EEV − RP`` with the standard deviation and a 95 % confidence half-width
  (normal approximation) of the per-day differences, and ``EVPI = RP − WS``.

Runs are in-process and sequential (no worker isolation, unlike the other suites):
the suite measures plan quality on actuals, not solver timings.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optisched.actuals import realized
from optisched.dispatch import dispatch
from optisched.domain import Problem
from optisched.evaluate import evaluate
from optisched.generate import generate
from optisched.generate.scenarios import draw_scenarios
from optisched.index import compile_index
from optisched.io import write_bundle
from optisched.plan import Plan
from optisched.scenarios import mean_forecast
from optisched.solvers import solve

__all__ = ["DEFAULT_SIZES", "UncertaintyRow", "run_uncertainty", "uncertainty_metrics"]

log = logging.getLogger(__name__)

DEFAULT_SIZES = ("neighborhood", "city")
"""Presets of the suite (:data:`optisched.generate.PRESETS`)."""


@dataclass
class UncertaintyRow:
    """One (instance, solver) of the suite; costs [money], times [s].

    Attributes
    ----------
    instance, solver : str
        Names.
    scenarios, days : int
        Scenarios planned on, actual days the means are over (both plans have feasible
        flows there).
    rp_infeasible_days, eev_infeasible_days : int
        Days on which the two-stage or the deterministic plan has no feasible flows
        (left out of the means).
    sp_objective, ev_objective : float
        Objective of the two-stage plan (on the scenarios) and of the deterministic plan
        (on the mean forecast).
    sp_expected_of_ev : float
        Expected cost of the deterministic plan's first stage on the scenarios (its
        recourse re-optimized per scenario): the in-sample EEV.
    rp, eev, ws, vss, evpi : float
        Means over the days (module docstring).
    vss_std, vss_ci95 : float
        Spread of the per-day ``EEV_d − RP_d``.
    vss_positive_days : int
        Days on which the two-stage plan cost less.
    sp_seconds, ev_seconds : float
        Wall time of the two plans.
    per_day : list of dict
        ``rp``, ``eev``, ``ws`` of every day.
    """

    instance: str
    solver: str
    scenarios: int
    days: int
    rp_infeasible_days: int
    eev_infeasible_days: int
    sp_objective: float
    ev_objective: float
    sp_expected_of_ev: float
    rp: float
    eev: float
    ws: float
    vss: float
    evpi: float
    vss_std: float
    vss_ci95: float
    vss_positive_days: int
    sp_seconds: float
    ev_seconds: float
    per_day: list[dict[str, float]] = field(default_factory=list)


def _solve(problem: Problem, solver: str, time_limit: float, seed: int,
           options: dict[str, Any] | None, warm_start: Plan | None = None
           ) -> tuple[Plan, float]:
    t0 = time.perf_counter()
    plan = solve(problem, solver, time_limit=time_limit, seed=seed, options=options,
                 warm_start=warm_start)
    if not plan.status.has_plan or plan.flows is None:
        raise RuntimeError(f"{solver} found no plan: {plan.message}")
    return plan, time.perf_counter() - t0


def uncertainty_metrics(problem: Problem, days: list[Problem], solver: str, time_limit: float,
                        seed: int = 0, options: dict[str, Any] | None = None,
                        instance: str = "") -> UncertaintyRow:
    """RP, EEV, WS, VSS and EVPI of ``solver`` on ``problem`` (with scenarios), judged on
    the actual ``days`` (the module docstring).

    Raises
    ------
    RuntimeError
        A solver found no plan.
    """
    ev_problem = mean_forecast(problem)
    ev, ev_s = _solve(ev_problem, solver, time_limit, seed, options)
    # the deterministic first stage on the scenarios, its recourse re-optimized per
    # scenario (the in-sample EEV); the two-stage solve starts from it
    ix = compile_index(problem)
    assert ev.flows is not None
    res = dispatch(ix, ev.node, ev.start, ev.flows.on)
    in_sample, as_sp = math.inf, None
    if res.feasible and res.flows is not None:
        as_sp = Plan(solver=ev.solver, status=ev.status, job_ids=ev.job_ids,
                     node_ids=ev.node_ids, node=ev.node, start=ev.start, flows=res.flows)
        in_sample = float(evaluate(problem, as_sp, ix).objective)
    sp, sp_s = _solve(problem, solver, time_limit, seed, options, warm_start=as_sp)
    if as_sp is not None and float(sp.objective or math.inf) > in_sample:
        log.info("%s %s: the two-stage plan (%.6g) is worse in-sample than the deterministic "
                 "first stage (%.6g): that is the two-stage plan", instance, solver,
                 sp.objective, in_sample)
        sp = as_sp
    per_day = []
    for d, day in enumerate(days):
        dix = compile_index(day)
        rp_d = realized(day, sp, dix).cost
        eev_d = realized(day, ev, dix).cost
        own, _ = _solve(day, solver, time_limit, seed, options)
        ws_d = min(float(own.objective if own.objective is not None else math.inf), rp_d, eev_d)
        per_day.append({"day": d, "rp": rp_d, "eev": eev_d, "ws": ws_d})
        log.info("%s %s day %d: RP %.4f EEV %.4f WS %.4f", instance, solver, d, rp_d, eev_d,
                 ws_d)
    rp_all = np.array([r["rp"] for r in per_day])
    eev_all = np.array([r["eev"] for r in per_day])
    # a day on which a plan's first stage has no feasible recourse is counted apart; the
    # means are over the days on which both plans have one
    both = np.isfinite(rp_all) & np.isfinite(eev_all)
    rp, eev = rp_all[both], eev_all[both]
    ws = np.array([r["ws"] for r in per_day])[both]
    diff = eev - rp
    n = int(both.sum())
    std = float(diff.std(ddof=1)) if n > 1 else 0.0
    return UncertaintyRow(
        instance=instance, solver=solver, scenarios=max(1, len(problem.scenarios)), days=n,
        rp_infeasible_days=int((~np.isfinite(rp_all)).sum()),
        eev_infeasible_days=int((~np.isfinite(eev_all)).sum()),
        sp_objective=float(sp.objective or math.nan), ev_objective=float(ev.objective or math.nan),
        sp_expected_of_ev=in_sample, rp=float(rp.mean()) if n else math.nan,
        eev=float(eev.mean()) if n else math.nan, ws=float(ws.mean()) if n else math.nan,
        vss=float(diff.mean()) if n else math.nan, evpi=float((rp - ws).mean()) if n else math.nan,
        vss_std=std, vss_ci95=1.96 * std / math.sqrt(n) if n > 1 else 0.0,
        vss_positive_days=int((diff > 1e-9).sum()), sp_seconds=sp_s, ev_seconds=ev_s,
        per_day=per_day)


def _markdown(rows: list[UncertaintyRow], header: str) -> str:
    lines = [header, "",
             "| instance | solver | S | days | infeasible days (SP / EV) | RP | EEV | WS | "
             "VSS (± 95 %) | VSS std | days SP < EV | EVPI | in-sample E[EV plan] | "
             "SP objective | plan s (SP / EV) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r.instance} | {r.solver} | {r.scenarios} | {r.days} | "
            f"{r.rp_infeasible_days} / {r.eev_infeasible_days} | {r.rp:.3f} | "
            f"{r.eev:.3f} | {r.ws:.3f} | {r.vss:.4f} ± {r.vss_ci95:.4f} | {r.vss_std:.4f} | "
            f"{r.vss_positive_days}/{r.days} | {r.evpi:.3f} | {r.sp_expected_of_ev:.3f} | "
            f"{r.sp_objective:.3f} | {r.sp_seconds:.1f} / {r.ev_seconds:.1f} |")
    return "\n".join(lines) + "\n"


def run_uncertainty(out: str | os.PathLike[str], solvers: list[str], time_limit: float,
                    sizes: list[str] | None = None, scenarios: int = 10, days: int = 20,
                    seed: int = 0, options: dict[str, Any] | None = None,
                    command: str | None = None) -> str:
    """Run the suite; write ``DIR/instances/<preset>/`` (bundle and ``actuals/``),
    ``results.json`` and ``results.md``.

    Returns
    -------
    str
        The Markdown table.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[UncertaintyRow] = []
    for size in sizes or list(DEFAULT_SIZES):
        base = generate(size, seed=seed)
        problem, actual = draw_scenarios(base, scenarios, seed=seed, actuals=days)
        inst = out / "instances" / size
        shutil.rmtree(inst, ignore_errors=True)
        write_bundle(problem, inst)
        for d, day in enumerate(actual):
            write_bundle(day, inst / "actuals" / f"day-{d:03d}")
        for solver in solvers:
            rows.append(uncertainty_metrics(problem, actual, solver, time_limit, seed, options,
                                            instance=size))
    load = [f"{v:.2f}" for v in os.getloadavg()]
    header = (f"uncertainty suite, {scenarios} scenarios, {days} actual days, time limit "
              f"{time_limit:g} s per plan, seed {seed}; load average at the end "
              f"{' '.join(load)}" + (f"; command: `{command}`" if command else ""))
    md = _markdown(rows, header)
    (out / "results.md").write_text(md, encoding="utf-8")
    (out / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=1,
                                                 default=float), encoding="utf-8")
    return md
