"""Domain model: a problem in code, defaults and validation."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from optisched.domain import Horizon, Job, Node, Problem, Scenario, Tariff


def test_build_in_code_with_defaults() -> None:
    hz = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=4)
    p = Problem(scenario=Scenario(horizon=hz), nodes=[Node(node_id="n", gpus=1, battery_kwh=10)],
                jobs=[Job(job_id="j", gpus=1, duration_min=60, power_kw=0.5)],
                tariffs={"default": Tariff.constant(4, price=0.2)})
    n = p.nodes[0]
    assert n.charge_limit_kw == 5.0 and n.discharge_limit_kw == 5.0
    assert math.isinf(n.grid_kw) and n.soc_init == 0.5 and n.eff_charge == 0.95
    assert p.horizon.dt_hours == 1.0
    assert p.scenario.battery.terminal == "initial"
    assert p.jobs[0].must_run and not p.jobs[0].pinned


def test_horizon_rules() -> None:
    with pytest.raises(ValidationError, match="divide 1440"):
        Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=7)
    with pytest.raises(ValidationError, match="UTC offset"):
        Horizon(start="2026-06-01T00:00:00")


def test_node_battery_rules() -> None:
    with pytest.raises(ValidationError, match="soc_min"):
        Node(node_id="n", gpus=1, soc_min=0.8, soc_max=0.5)
    with pytest.raises(ValidationError, match="soc_init"):
        Node(node_id="n", gpus=1, soc_min=0.6, soc_init=0.5)


def test_job_rules() -> None:
    with pytest.raises(ValidationError, match="together"):
        Job(job_id="j", gpus=1, duration_min=60, power_kw=1, pinned_node="n")
    with pytest.raises(ValidationError, match="after release"):
        Job(job_id="j", gpus=1, duration_min=60, power_kw=1,
            release="2026-06-01T02:00:00+00:00", deadline="2026-06-01T01:00:00+00:00")
    with pytest.raises(ValidationError, match="needs a region"):
        Job(job_id="j", gpus=1, duration_min=60, power_kw=1, latency_slo_ms=5)


def test_problem_cross_references() -> None:
    hz = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=4)
    with pytest.raises(ValidationError, match="duplicate node_id"):
        Problem(scenario=Scenario(horizon=hz),
                nodes=[Node(node_id="n", gpus=1), Node(node_id="n", gpus=1)], jobs=[])
    with pytest.raises(ValidationError, match="unknown tariff"):
        Problem(scenario=Scenario(horizon=hz), nodes=[Node(node_id="n", gpus=1, tariff="x")],
                jobs=[], tariffs={"default": Tariff.constant(4, 0.1)})
    with pytest.raises(ValidationError, match="one value per slot"):
        Problem(scenario=Scenario(horizon=hz), nodes=[Node(node_id="n", gpus=1)], jobs=[],
                tariffs={"default": Tariff.constant(3, 0.1)})
