"""Baseline reference solver: never returns a plan the evaluator rejects."""

from __future__ import annotations

import pytest

import optisched
from optisched.generate.random_problems import random_problem
from optisched.plan import Status


@pytest.mark.parametrize("seed", range(12))
def test_baseline_plans_pass_the_evaluator(seed: int) -> None:
    # seed 16 of this family once broke a feeder limit (export ignored in the feeder check)
    p = random_problem(seed + 10, n_nodes=4, n_jobs=6, slots=10, feeders=True,
                       negative_prices=True, demand_charge=True, carbon=True, degradation=True)
    plan = optisched.solve(p, "baseline")
    assert plan.status in (Status.FEASIBLE, Status.INFEASIBLE), plan.message
    if plan.status is Status.FEASIBLE:
        assert optisched.evaluate(p, plan).feasible
    else:
        assert plan.message
