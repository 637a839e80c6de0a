"""Build a small problem in code, plan it, check it and write the plan files.

Run: ``python examples/plan_in_code.py [OUT_DIR]``.

Two home nodes share one feeder; one has a battery and rooftop PV, the other is
on a flat tariff. Three jobs: a must-run fine-tune with a deadline, a droppable
batch job and a latency-bound inference job.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import optisched
from optisched import Feeder, Horizon, Job, Node, NodeSeries, Problem, Scenario, Tariff

log = logging.getLogger("example")

T = 8  # eight one-hour slots from 08:00
START = "2026-06-01T08:00:00+00:00"


def build() -> Problem:
    """The example problem (prices [money/kWh], power [kW], energy [kWh])."""
    pv = [0.4, 1.0, 1.8, 2.4, 2.6, 2.2, 1.4, 0.6]  # rooftop PV forecast of home_a [kW]
    return Problem(
        scenario=Scenario(horizon=Horizon(start=START, slot_minutes=60, slots=T)),
        nodes=[
            Node(node_id="home_a", gpus=2, idle_kw=0.08, battery_kwh=13.5, soc_min=0.2,
                 charge_kw=5.0, discharge_kw=5.0, grid_kw=3.0, feeder="street"),
            Node(node_id="home_b", gpus=1, idle_kw=0.06, can_sleep=True, startup_cost=0.02,
                 grid_kw=3.0, feeder="street"),
        ],
        jobs=[
            Job(job_id="finetune", gpus=2, duration_min=180, power_kw=0.9,
                deadline="2026-06-01T15:00:00+00:00"),
            Job(job_id="batch", gpus=1, duration_min=120, power_kw=0.4, drop_penalty=0.5),
            Job(job_id="chat", gpus=1, duration_min=60, power_kw=0.3,
                release="2026-06-01T10:00:00+00:00"),
        ],
        node_series={"home_a": NodeSeries(pv_kw=pv)},
        tariffs={"default": Tariff(price=[0.32, 0.30, 0.28, 0.25, 0.25, 0.28, 0.40, 0.45],
                                   export_price=[0.08] * T, carbon_g_per_kwh=[300.0] * T)},
        feeders={"street": Feeder(headroom_kw=[4.0] * T)},
    )


def main(out: Path) -> optisched.Plan:
    """Plan the example with the best installed solver and write the plan."""
    problem = build()
    plan = optisched.solve(problem, time_limit=5, seed=0)
    check = optisched.evaluate(problem, plan)
    log.info("%s: %s, objective %.4f, feasible %s", plan.solver, plan.status.value,
             plan.objective or float("nan"), check.feasible)
    optisched.write_plan(problem, plan, out)
    return plan


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("example-plan"))
