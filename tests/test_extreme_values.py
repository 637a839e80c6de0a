"""Extreme values (issue 15): every solver on values at the documented limits.

Each case puts one column (or a few) of a small problem at its limit in
``optisched/limits.py`` (``docs/limits.md``). Every solver must return a plan
(``optimal`` or ``feasible``: every case is feasible), no exception and no
``RuntimeWarning``, a plan the evaluator accepts, no plan cheaper than the proven
optimum of ``highs``, and ``optimal`` only with a small proven gap (it used to be
``optimal`` with gap 1.0 on huge prices, or ``cpsat`` "optimal" with a bound 1000 below
an objective of 0.7). One step past each limit is rejected by validation
(``tests/test_limits.py`` covers every column; here the same values, once more, so the
solver side never sees them).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from optisched import Feeder, Horizon, Job, Node, NodeSeries, Problem, Scenario, Tariff
from optisched.domain import ObjectiveOptions
from optisched.evaluate import evaluate
from optisched.limits import limit
from optisched.plan import Status
from optisched.solvers import REGISTRY, solve

T = 8
HZ = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=T)
PRICE = [0.2, 0.3, 0.25, 0.1, 0.15, 0.3, 0.4, 0.2]
SOLVERS = [s for s in REGISTRY if REGISTRY[s].available()]
OPTIMAL_GAP = 0.01
"""Largest relative gap of a plan reported ``optimal`` (cpsat: its rounding bound)."""

KW = limit("jobs.csv", "power_kw").hi
GRID = limit("nodes.csv", "grid_kw").hi
KWH = limit("nodes.csv", "battery_kwh").hi
P = limit("prices.csv", "price").hi
MONEY = limit("nodes.csv", "startup_cost").hi
DEMAND = limit("nodes.csv", "demand_charge_per_kw").hi
CARBON = limit("prices.csv", "carbon_g_per_kwh").hi
CARBON_PRICE = limit("scenario.toml", "objective.carbon_price_per_tonne").hi


def _problem(node: dict[str, Any] | None = None, job: dict[str, Any] | None = None,
             tariff: dict[str, list[float]] | None = None,
             series: dict[str, NodeSeries] | None = None, carbon_price: float = 0.0,
             feeders: dict[str, Feeder] | None = None) -> Problem:
    a = dict(node_id="a", gpus=2, idle_kw=0.1, grid_kw=5, battery_kwh=10, charge_kw=3,
             discharge_kw=3, can_sleep=True)
    a.update(node or {})
    j = dict(gpus=1, duration_min=120, power_kw=0.5)
    j.update(job or {})
    tar = tariff or dict(price=PRICE, export_price=[0.05] * T, carbon_g_per_kwh=[300.0] * T)
    return Problem(
        scenario=Scenario(horizon=HZ, objective=ObjectiveOptions(
            carbon_price_per_tonne=carbon_price)),
        nodes=[Node(**a), Node(node_id="b", gpus=1, idle_kw=0.05, grid_kw=3, can_sleep=True)],
        jobs=[Job(job_id=f"j{k}", **j) for k in range(3)],
        tariffs={"default": Tariff(**tar)}, node_series=series or {}, feeders=feeders or {})


def _flat(price: list[float], export: float = 0.0) -> dict[str, list[float]]:
    return dict(price=price, export_price=[export] * T, carbon_g_per_kwh=[300.0] * T)


CASES: dict[str, Callable[[], Problem]] = {
    "power_kw": lambda: _problem(node=dict(grid_kw=GRID), job=dict(power_kw=KW)),
    "idle_kw": lambda: _problem(node=dict(grid_kw=GRID, idle_kw=KW)),
    "battery_kwh": lambda: _problem(node=dict(battery_kwh=KWH, charge_kw=GRID,
                                              discharge_kw=GRID, grid_kw=GRID)),
    "price +": lambda: _problem(tariff=_flat([P] * T)),
    "price -": lambda: _problem(tariff=_flat([-P] * T)),
    "price ±": lambda: _problem(tariff=_flat([P, -P, 0.2, P, 0.1, -P, 0.4, P])),
    "price one slot": lambda: _problem(tariff=_flat([*PRICE[:3], P, *PRICE[4:]], 0.05)),
    "export_price": lambda: _problem(node=dict(export_kw=GRID),
                                     series={"a": NodeSeries(pv_kw=[GRID] * T)},
                                     tariff=dict(price=PRICE, export_price=[P] * T,
                                                 carbon_g_per_kwh=[300.0] * T)),
    "demand_charge": lambda: _problem(node=dict(demand_charge_per_kw=DEMAND)),
    "startup_cost": lambda: _problem(node=dict(startup_cost=MONEY, shutdown_cost=MONEY,
                                               initially_on=False)),
    "drop_penalty": lambda: _problem(job=dict(drop_penalty=MONEY, tardiness_per_hour=MONEY,
                                              deadline="2026-06-01T04:00:00+00:00")),
    "degradation": lambda: _problem(node=dict(degradation_per_kwh=P)),
    "carbon": lambda: _problem(carbon_price=CARBON_PRICE,
                               tariff=dict(price=PRICE, export_price=[0.0] * T,
                                           carbon_g_per_kwh=[CARBON] * T)),
    "pv_kw": lambda: _problem(series={"a": NodeSeries(pv_kw=[GRID] * T),
                                      "b": NodeSeries(pv_kw=[GRID] * T)}),
    "feeder": lambda: _problem(node=dict(feeder="f", grid_kw=GRID), job=dict(power_kw=KW),
                               feeders={"f": Feeder(headroom_kw=[GRID] * T)}),
    "tiny beside huge": lambda: _problem(node=dict(grid_kw=GRID, battery_kwh=KWH,
                                                   charge_kw=GRID, discharge_kw=GRID),
                                         job=dict(power_kw=1e-3)),
}

_OPTIMUM: dict[str, float] = {}


def _optimum(case: str, problem: Problem) -> float:
    if case not in _OPTIMUM:
        ref = solve(problem, "highs", time_limit=30, seed=0)
        assert ref.status is Status.OPTIMAL and ref.objective is not None, ref.message
        _OPTIMUM[case] = ref.objective
    return _OPTIMUM[case]


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_solver_plans_values_at_the_limits(case: str, solver: str) -> None:
    problem = CASES[case]()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # nothing may leak to the terminal
        plan = solve(problem, solver, time_limit=3, seed=0)
        ev = evaluate(problem, plan) if plan.status.has_plan else None
    assert plan.status in (Status.OPTIMAL, Status.FEASIBLE), f"{plan.status}: {plan.message}"
    assert ev is not None and ev.feasible, ev.violations[:3] if ev else None
    assert plan.objective is not None and plan.objective == pytest.approx(ev.objective,
                                                                          rel=1e-9, abs=1e-9)
    best = _optimum(case, problem)
    tol = 1e-6 * max(1.0, abs(best))
    assert plan.objective >= best - tol, f"{solver} beats the proven optimum {best}"
    if plan.bound is not None:
        assert plan.bound <= best + tol, f"{solver}'s bound {plan.bound} above the optimum"
    if plan.status is Status.OPTIMAL:
        assert plan.gap is not None and plan.gap <= OPTIMAL_GAP, (plan.gap, plan.message)
        assert plan.objective <= best + OPTIMAL_GAP * max(1.0, abs(best))
    if solver in ("highs", "pyomo"):
        assert plan.status is Status.OPTIMAL
        assert plan.objective == pytest.approx(best, rel=1e-6, abs=1e-6)


STEP_PAST: list[tuple[str, Callable[[], object]]] = [
    ("power_kw", lambda: Job(job_id="j", gpus=1, duration_min=60, power_kw=KW * 10)),
    ("idle_kw", lambda: Node(node_id="n", gpus=1, idle_kw=KW * 10)),
    ("battery_kwh", lambda: Node(node_id="n", gpus=1, battery_kwh=KWH * 10)),
    ("grid_kw", lambda: Node(node_id="n", gpus=1, grid_kw=GRID * 10)),
    ("startup_cost", lambda: Node(node_id="n", gpus=1, startup_cost=MONEY * 10)),
    ("demand_charge_per_kw", lambda: Node(node_id="n", gpus=1, demand_charge_per_kw=DEMAND * 10)),
    ("drop_penalty", lambda: Job(job_id="j", gpus=1, duration_min=60, power_kw=1,
                                 drop_penalty=MONEY * 10)),
    ("price", lambda: Tariff(price=[P * 10] * T, export_price=[0.0] * T,
                             carbon_g_per_kwh=[0.0] * T)),
    ("price", lambda: Tariff(price=[-P * 10] * T, export_price=[0.0] * T,
                             carbon_g_per_kwh=[0.0] * T)),
]


@pytest.mark.parametrize(("column", "make"), STEP_PAST, ids=[c for c, _ in STEP_PAST])
def test_one_step_past_a_limit_never_reaches_a_solver(column: str,
                                                      make: Callable[[], object]) -> None:
    with pytest.raises(ValidationError, match=r"limit|out of range"):
        make()
