"""datasets/tiny solved by the baseline: placement and cost computed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

import optisched
from optisched.plan import Status


def test_tiny_baseline_placement_and_cost(tiny_dir: Path) -> None:
    problem = optisched.read_bundle(tiny_dir)
    plan = optisched.solve(problem, "baseline")
    assert plan.status is Status.FEASIBLE
    placed = {problem.jobs[j].job_id: (plan.node_ids[n], int(plan.start[j]))
              for j, n in enumerate(plan.node)}
    # j5 pinned at 07:00 on regional1 (240 min at speed 2 = 2 slots: -1, 0);
    # j1 needs trust 1 and 20 GB/GPU: home1 and regional1 start at 0, node order picks home1;
    # j4 (hard SLO 20 ms to south): regional1 at slot 0 is earliest (home1 busy, street1 short
    # of PV until slot 3); j2 (release 1) regional1 at 1; j3 (4 GPUs) only regional1, slot 2.
    assert placed == {"j1": ("home1", 0), "j2": ("regional1", 1), "j3": ("regional1", 2),
                      "j4": ("regional1", 0), "j5": ("regional1", -1)}
    # regional1 (pf 1.3, idle 1 kW, on in slots 0-2, no PV):
    #   slot 0: 1 + 1.3*(1.0 + 0.3) = 2.69 kW; slot 1: 1 + 1.3*0.15 = 1.195; slot 2: 1 + 1.3*2 = 3.6
    # home1 (idle 0.1, j1 0.6 kW in slots 0-2): import only in slot 0: 0.7 - 0.5 = 0.2 kW
    energy = 2.69 * 0.20 + 1.195 * 0.18 + 3.6 * 0.15 + 0.2 * 0.30
    carbon_g = 2.69 * 340 + 1.195 * 310 + 3.6 * 270 + 0.2 * 350
    carbon = 50.0 * carbon_g / 1e6
    # home1 exports its PV surplus (export_kw 2, paid 0.08): 0.5+1.3+2+2+2+1.5+0.7 = 10 kWh
    export_revenue = 0.08 * 10.0
    demand = 0.5 * 3.6
    switching = 0.5  # regional1 on -> off at slot 3 (initially on, no end_off)
    latency = 0.01 * (25.0 - 10.0)  # j2 on regional1: 25 ms vs its soft 10 ms SLO
    expected = energy - export_revenue + carbon + demand + switching + latency
    assert plan.costs["energy"] == pytest.approx(energy, rel=1e-9)
    assert plan.costs["carbon"] == pytest.approx(carbon, rel=1e-9)
    assert plan.costs["export_revenue"] == pytest.approx(export_revenue, rel=1e-9)
    assert plan.costs["demand"] == pytest.approx(demand)
    assert plan.costs["switching"] == pytest.approx(switching)
    assert plan.costs["latency"] == pytest.approx(latency)
    assert plan.costs["tardiness"] == 0.0 and plan.costs["drop"] == 0.0
    assert plan.objective == pytest.approx(expected, rel=1e-9)
    assert optisched.evaluate(problem, plan).feasible
