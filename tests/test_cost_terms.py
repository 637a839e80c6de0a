"""Every cost term of SPEC §3 computed directly (issue 15): hand-computed values with a price
at its limit, where a carbon term taken as a difference of large numbers would drift."""

from __future__ import annotations

import numpy as np
import pytest

from optisched.domain import Horizon, Job, Node, NodeSeries, Problem, Scenario, Tariff
from optisched.evaluate import cost_terms, evaluate, price_plan
from optisched.index import MAX_SLOTS, compile_index, slots_needed
from optisched.limits import limit
from optisched.plan import Flows, Plan, Status
from optisched.precheck import precheck

PRICE_LIMIT = limit("prices.csv", "price").hi
assert PRICE_LIMIT is not None


def _problem(carbon_price: float, carbon: list[float]) -> Problem:
    """One node, two 1-hour slots; slot 0 imports at the price limit, slot 1 exports PV."""
    node = Node(node_id="n", gpus=1, idle_kw=1.0, export_kw=1.0, tariff="t",
                demand_charge_per_kw=3.0)
    return Problem(
        scenario=Scenario(horizon=Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60,
                                          slots=2),
                          objective={"carbon_price_per_tonne": carbon_price}),
        nodes=[node],
        jobs=[Job(job_id="j", gpus=1, duration_min=60, power_kw=1.0, drop_penalty=1e9)],
        node_series={"n": NodeSeries(pv_kw=[0.0, 1.5])},
        tariffs={"t": Tariff(price=[PRICE_LIMIT, 0.1], export_price=[-PRICE_LIMIT, 0.05],
                             carbon_g_per_kwh=carbon)},
    )


def _plan(problem: Problem) -> Plan:
    plan = Plan.empty(problem, "hand", Status.FEASIBLE)
    plan.node[:] = -1  # the job is dropped
    f = Flows.zeros(1, 2)
    f.on[:] = True
    f.load[:] = 1.0
    f.grid_import[0] = [1.0, 0.0]
    f.pv_used[0] = [0.0, 1.5]
    f.grid_export[0] = [0.0, 0.5]
    plan.flows = f
    return plan


def test_every_term_by_hand_with_a_price_at_the_limit() -> None:
    p = _problem(carbon_price=1e5, carbon=[1e5, 100.0])
    plan = _plan(p)
    ev = evaluate(p, plan)
    assert ev.feasible, [str(v) for v in ev.violations]
    hand = {
        "energy": 1e4 * 1.0 + 0.1 * 0.0,                   # Δ · price · import
        "export_revenue": -1e4 * 0.0 + 0.05 * 0.5,         # Δ · export_price · export
        "carbon": 1e5 * (1e5 * 1.0 + 100.0 * 0.0) / 1e6,   # per tonne · Δ · g/kWh · import
        "degradation": 0.0,
        "demand": 3.0 * 1.0,                               # per kW of the peak import
        "switching": 0.0,
        "latency": 0.0,
        "tardiness": 0.0,
        "drop": 1e9,
    }
    assert ev.costs == pytest.approx(hand, rel=1e-15, abs=0.0)
    assert ev.objective == pytest.approx(1e4 - 0.025 + 1e4 + 3.0 + 1e9, rel=1e-15)
    priced = price_plan(p, _plan(p))
    assert priced.costs == ev.costs and priced.objective == ev.objective


def test_small_carbon_term_beside_a_large_price_is_exact() -> None:
    # carbon cost 3e-7 per kWh next to a price of 1e4 per kWh: taken as
    # (price + carbon cost) - price it would be off by ~1e-12 / 3e-7, about 6e-6 relative
    p = _problem(carbon_price=1.0, carbon=[0.3, 0.0])
    ev = evaluate(p, _plan(p))
    assert ev.costs["carbon"] == pytest.approx(1.0 * 0.3 * 1.0 / 1e6, rel=1e-15, abs=0.0)
    # the index carries the carbon price, so the index-only path (the re-planner's) is as
    # exact: no term is (price + carbon cost) - price, which would be off by ~6e-6 relative
    index = compile_index(p)
    drift = abs(cost_terms(index, _plan(p))["carbon"] - 3e-7) / 3e-7
    assert drift <= 1e-15


def test_durations_never_overflow() -> None:
    d = slots_needed(np.array([1e7, 1e7, 60.0]), 1, np.array([1e-300, 5e-324, 1.0]))
    assert d.tolist() == [int(MAX_SLOTS), int(MAX_SLOTS), 60]
    p = Problem(scenario=Scenario(horizon=Horizon(start="2026-06-01T00:00:00+00:00",
                                                  slot_minutes=60, slots=4)),
                nodes=[Node(node_id="slow", gpus=1, speed=1e-300)],
                jobs=[Job(job_id="j", gpus=1, duration_min=1e7, power_kw=1.0)])
    index = compile_index(p)
    assert int(index.duration(0, 0)) == int(MAX_SLOTS)
    why = precheck(p, index)
    assert why is not None and f"its {int(MAX_SLOTS)} slots do not fit" in why
