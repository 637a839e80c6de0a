"""The evaluator: every cost term by hand, every constraint family satisfied and violated."""

from __future__ import annotations

import numpy as np
import pytest

from optisched.domain import (
    Feeder,
    Horizon,
    Job,
    Node,
    NodeSeries,
    Problem,
    Scenario,
    Tariff,
)
from optisched.evaluate import evaluate
from optisched.plan import Flows, Plan, Status

START = "2026-06-01T00:00:00+00:00"


def make_problem(feeder_head: float = 1.0, avail_a0: bool = False) -> Problem:
    """Two nodes, four 1-hour slots, every cost term active."""
    a = Node(node_id="A", gpus=2, idle_kw=0.5, can_sleep=True, initially_on=False, end_off=True,
             startup_cost=1.0, shutdown_cost=2.0, battery_kwh=4.0, soc_init=0.5, soc_min=0.25,
             charge_kw=2.0, discharge_kw=2.0, eff_charge=0.9, eff_discharge=0.9,
             degradation_per_kwh=0.1, demand_charge_per_kw=3.0, grid_kw=5.0, export_kw=1.0,
             tariff="t", feeder="F")
    b = Node(node_id="B", gpus=1, idle_kw=0.2, export_kw=1.0, tariff="t", feeder="F")
    jobs = [
        Job(job_id="j1", gpus=2, duration_min=120, power_kw=1.0,
            deadline="2026-06-01T02:00:00+00:00", tardiness_per_hour=2.0),
        Job(job_id="j2", gpus=1, duration_min=60, power_kw=0.5, region="r", latency_slo_ms=5.0,
            latency_per_ms=0.5),
        Job(job_id="j3", gpus=1, duration_min=60, power_kw=0.1, drop_penalty=7.0),
    ]
    return Problem(
        scenario=Scenario(horizon=Horizon(start=START, slot_minutes=60, slots=4),
                          objective={"carbon_price_per_tonne": 100.0}),
        nodes=[a, b], jobs=jobs,
        node_series={"B": NodeSeries(pv_kw=[0.0, 0.0, 0.5, 0.0]),
                     "A": NodeSeries(available=[avail_a0, True, True, True])},
        tariffs={"t": Tariff(price=[0.1, 0.2, 0.3, -0.05], export_price=[0.05] * 4,
                             carbon_g_per_kwh=[100, 200, 300, 400])},
        feeders={"F": Feeder(headroom_kw=[10.0, 10.0, feeder_head, 10.0])},
        latency_ms={"B": {"r": 9.0}},
    )


def make_plan() -> Plan:
    """j1 on A at slot 1 (1 h late), j2 on B at slot 0, j3 dropped; A uses its battery."""
    c3 = 1.0 / 0.9  # recharge 1 kWh of SoC at 90 % efficiency
    f = Flows(
        on=np.array([[0, 1, 1, 0], [1, 1, 1, 1]], dtype=bool),
        load=np.array([[0, 1.5, 1.5, 0], [0.7, 0.2, 0.2, 0.2]]),
        pv_used=np.array([[0, 0, 0, 0], [0, 0, 0.5, 0]]),
        grid_import=np.array([[0, 1.5, 0.6, c3], [0.7, 0.2, 0.0, 0.2]]),
        grid_export=np.array([[0, 0, 0, 0], [0, 0, 0.3, 0]]),
        charge=np.array([[0, 0, 0, c3], [0, 0, 0, 0]]),
        discharge=np.array([[0, 0, 0.9, 0], [0, 0, 0, 0]]),
        soc=np.array([[2.0, 2.0, 1.0, 2.0], [0, 0, 0, 0]]),
    )
    return Plan(solver="hand", status=Status.FEASIBLE, job_ids=["j1", "j2", "j3"],
                node_ids=["A", "B"], node=np.array([0, 1, -1]), start=np.array([1, 0, 0]),
                flows=f)


def test_every_cost_term_by_hand() -> None:
    ev = evaluate(make_problem(), make_plan())
    assert ev.feasible, ev.violations
    c3 = 1 / 0.9
    energy = (0.2 * 1.5 + 0.3 * 0.6 - 0.05 * c3) + (0.1 * 0.7 + 0.2 * 0.2 - 0.05 * 0.2)
    grams = (200 * 1.5 + 300 * 0.6 + 400 * c3) + (100 * 0.7 + 200 * 0.2 + 400 * 0.2)
    carbon = 100.0 * grams / 1e6
    expected = {
        "energy": energy, "export_revenue": 0.05 * 0.3, "carbon": carbon,
        "degradation": 0.1 * 0.9, "demand": 3.0 * 1.5,
        "switching": 1.0 + 2.0,  # A starts at slot 1, shuts down at slot 3
        "latency": 0.5 * (9.0 - 5.0), "tardiness": 2.0 * 1.0, "drop": 7.0,
    }
    for k, v in expected.items():
        assert ev.costs[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k
    total = sum(v for k, v in expected.items() if k != "export_revenue") - 0.015
    assert ev.objective == pytest.approx(total, rel=1e-12)
    assert ev.objective == pytest.approx(19.21088888888889, rel=1e-12)


def _families(problem: Problem, plan: Plan) -> set[str]:
    ev = evaluate(problem, plan)
    return {v.constraint for v in ev.violations}


def test_assignment_must_run_dropped() -> None:
    plan = make_plan()
    plan.node[0] = -1
    assert "assignment" in _families(make_problem(), plan)


def test_eligibility_unknown_latency_and_window() -> None:
    plan = make_plan()
    plan.node[1] = 0  # j2 on A: no latency known to region r -> ineligible
    ev = evaluate(make_problem(), plan)
    assert any(v.constraint == "eligibility" and "latency" in v.message and v.job == "j2"
               for v in ev.violations)
    plan = make_plan()
    plan.start[0] = 3  # would end at slot 5 > T
    assert "eligibility" in _families(make_problem(), plan)


def test_capacity() -> None:
    plan = make_plan()
    plan.node[2], plan.start[2] = 0, 1  # j3 beside j1 on A: 3 GPUs > 2
    ev = evaluate(make_problem(), plan)
    assert any(v.constraint == "capacity" and v.node == "A" and v.slot == 1
               for v in ev.violations)


def test_on_off() -> None:
    plan = make_plan()
    assert plan.flows is not None
    plan.flows.on[0, 1] = False  # j1 runs on an off node
    assert "on_off" in _families(make_problem(), plan)
    plan = make_plan()
    assert plan.flows is not None
    plan.flows.on[1, 3] = False  # B cannot sleep
    ev = evaluate(make_problem(), plan)
    assert any("cannot sleep" in v.message for v in ev.violations)
    # A unavailable in slot 0 (the default problem) and on there
    plan = make_plan()
    assert plan.flows is not None
    plan.flows.on[0, 0] = True
    ev = evaluate(make_problem(), plan)
    assert any("unavailable slot 0" in v.message for v in ev.violations)
    ok = evaluate(make_problem(avail_a0=True), plan)
    assert not any("unavailable" in v.message for v in ok.violations)


def test_power_balance_and_limits() -> None:
    plan = make_plan()
    assert plan.flows is not None
    plan.flows.grid_import[0, 1] = 1.0
    ev = evaluate(make_problem(), plan)
    assert any(v.constraint == "power_balance" and v.node == "A" and v.slot == 1
               for v in ev.violations)
    plan = make_plan()
    assert plan.flows is not None
    plan.flows.grid_export[1, 2] = 0.3 + 1.0  # export over export_kw
    plan.flows.pv_used[1, 2] = 1.5  # over pv too
    msgs = [v.message for v in evaluate(make_problem(), plan).violations]
    assert any("export_kw exceeds" in m for m in msgs)
    assert any("pv_used_kw exceeds" in m for m in msgs)


def test_battery_families() -> None:
    plan = make_plan()
    assert plan.flows is not None
    plan.flows.soc[0, 2] = 1.5  # dynamics broken
    assert "battery" in _families(make_problem(), plan)
    plan = make_plan()
    assert plan.flows is not None
    plan.flows.charge[0, 2] = 0.5  # simultaneous with discharge 0.9
    plan.flows.grid_import[0, 2] += 0.5
    msgs = [v.message for v in evaluate(make_problem(), plan).violations]
    assert any("same slot" in m for m in msgs)
    plan = make_plan()
    assert plan.flows is not None
    f = plan.flows
    f.charge[0, 3] = 0.0  # no recharge: final soc 1.0 < initial 2.0
    f.grid_import[0, 3] = 0.0
    f.soc[0, 3] = 1.0
    msgs = [v.message for v in evaluate(make_problem(), plan).violations]
    assert any("terminal" in m for m in msgs)


def test_feeder() -> None:
    # net import of A and B in slot 2: 0.6 - 0.3 = 0.3 kW
    assert "feeder" not in _families(make_problem(feeder_head=0.3), make_plan())
    ev = evaluate(make_problem(feeder_head=0.2), make_plan())
    assert any(v.constraint == "feeder" and v.slot == 2 for v in ev.violations)


def test_no_plan_is_not_feasible() -> None:
    p = make_problem()
    ev = evaluate(p, Plan.empty(p, "x", Status.INFEASIBLE, "why"))
    assert not ev.feasible and ev.violations[0].constraint == "plan"
