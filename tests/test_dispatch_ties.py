"""Dispatch and baseline cases found by the re-planner's 48-hour loop (issue 16 benchmark)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from optisched import solve
from optisched.dispatch import dispatch_load
from optisched.domain import Horizon, Job, Node, NodeSeries, Problem, Scenario, Tariff
from optisched.index import compile_index

START = "2026-06-16T00:00:00+02:00"
# the streetlight's PV of that day [kW], 96 quarter-hours
PV = [0.017, 0.0165, 0.0146, 0.0123, 0.0094, 0.0069, 0.0045, 0.0021, 0.0006] + [0.0] * 31 + [
    0.0007, 0.0024, 0.0047, 0.0072, 0.0104, 0.0177, 0.0271, 0.0401, 0.0508, 0.063, 0.0753,
    0.0918, 0.1075, 0.1201, 0.1371, 0.1505, 0.161, 0.1676, 0.1789, 0.1818, 0.1842, 0.1955,
    0.211, 0.2236, 0.2419, 0.2351, 0.2221, 0.2252, 0.2277, 0.2227, 0.2266, 0.2325, 0.233,
    0.2351, 0.244, 0.2274, 0.2219, 0.2034, 0.2056, 0.1916, 0.1903, 0.1737, 0.1643, 0.1485,
    0.1367, 0.1199, 0.1003, 0.0922, 0.0806, 0.0682, 0.0549, 0.0437, 0.0309, 0.0229, 0.0209,
    0.019]


def _streetlight(jobs: list[Job]) -> Problem:
    node = Node(node_id="lamp", gpus=1, idle_kw=0.015, can_sleep=True, initially_on=False,
                grid_kw=0.0, export_kw=0.0, battery_kwh=2.0, soc_init=1.0, soc_min=0.2,
                charge_kw=0.5, discharge_kw=0.5, eff_charge=0.96, eff_discharge=0.96)
    return Problem(scenario=Scenario(horizon=Horizon(start=START, slot_minutes=15, slots=96)),
                   nodes=[node], jobs=jobs, tariffs={"default": Tariff.constant(96, price=0.3)},
                   node_series={"lamp": NodeSeries(pv_kw=PV)})


def test_a_full_battery_with_free_pv_and_nothing_to_pay_dispatches() -> None:
    # every flow costs nothing: the LP's ties moved a charge/discharge overlap one slot per
    # MILP round, past the round limit ("no complementary dispatch found in 50 MILP rounds")
    p = _streetlight([])
    ix = compile_index(p)
    res = dispatch_load(ix, np.zeros((1, 96)))
    assert res.feasible, res.message
    assert not ((res.charge > 1e-9) & (res.discharge > 1e-9)).any()
    assert res.soc[0, -1] >= ix.soc_init[0] - 1e-9


def test_baseline_never_drops_a_pinned_job() -> None:
    # a running job (pinned before the horizon) with a drop penalty on an off-grid node: the
    # baseline keeps the battery idle, so it cannot supply it; dropping it is not allowed
    pinned = Job(job_id="run", gpus=1, duration_min=210, power_kw=0.3, drop_penalty=7.0,
                 pinned_node="lamp",
                 pinned_start=Horizon(start=START, slot_minutes=15, slots=96).start
                 - timedelta(minutes=135))
    p = _streetlight([pinned])
    base = solve(p, "baseline")
    assert base.status.value == "no_solution" and "pinned job run" in base.message
    good = solve(p, "greedy", time_limit=2)
    assert good.status.has_plan and good.node[0] == 0  # the battery carries it
