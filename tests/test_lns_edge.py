"""lns on problems with jobs that can never run (found by the re-planner's 48-hour loop)."""

from __future__ import annotations

import pytest

from optisched import evaluate, solve
from optisched.domain import Job, Problem
from optisched.generate.random_problems import random_problem
from optisched.index import Index
from optisched.plan import Plan
from optisched.solvers import REGISTRY, highs
from optisched.solvers.base import SolveOptions
from optisched.solvers.lns import start
from optisched.solvers.options import GreedyOptions


def test_lns_with_a_droppable_job_that_fits_no_node() -> None:
    # a droppable job eligible nowhere gave neighbourhoods without nodes: the evaluator's
    # messages reduced an empty array and splice indexed it (ValueError/IndexError)
    for seed in (1, 2, 3):
        p = random_problem(seed, n_nodes=4, n_jobs=10, slots=12, sleep=True, feeders=True)
        nofit = Job(job_id="nofit", gpus=1000, duration_min=60, power_kw=1.0, drop_penalty=5.0)
        q = p.model_copy(update={"jobs": [*p.jobs, nofit]})
        plan = solve(q, "lns", time_limit=30, seed=seed, max_iterations=15, lp_bound=False)
        assert plan.status.has_plan, plan.message
        assert plan.node[-1] == -1 and evaluate(q, plan).feasible


def test_lns_gives_the_greedy_starts_feasibility_engine_most_of_its_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # ICON sample03 at a 3 s limit: lns gave greedy 0.2 s, its engine stopped before it had
    # placed every must-run job, and lns returned no plan where greedy alone finds one
    seen: list[SolveOptions] = []

    def spy(problem: Problem, index: Index, options: SolveOptions) -> Plan:
        seen.append(options)
        return real(problem, index, options)

    real = start.run_greedy
    monkeypatch.setattr(start, "run_greedy", spy)
    p = random_problem(0, n_nodes=3, n_jobs=6, slots=8)
    plan = solve(p, "lns", time_limit=10, seed=0, lp_bound=False)
    assert plan.status.has_plan
    params = seen[0].params_as(GreedyOptions)
    assert params.repair_time_limit is not None
    assert params.repair_time_limit >= start.REPAIR_SHARE * 9.0  # of what is left of 10 s
    assert seen[0].time_limit is not None and seen[0].time_limit < 1.0  # search stays short


def test_highs_lets_the_warm_starts_feasibility_engine_use_half_the_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[SolveOptions] = []
    spec = REGISTRY["greedy"]
    real = spec.load()

    def spy(problem: Problem, index: Index, options: SolveOptions) -> Plan:
        seen.append(options)
        return real(problem, index, options)

    class Spy:
        def available(self) -> bool:
            return True

        def load(self) -> object:
            return spy

    monkeypatch.setattr(highs, "REGISTRY", {**REGISTRY, "greedy": Spy()})
    p = random_problem(0, n_nodes=3, n_jobs=6, slots=8)
    plan = solve(p, "highs", time_limit=20, seed=0)
    assert plan.status.has_plan
    params = seen[0].params_as(GreedyOptions)
    assert params.repair_time_limit is not None and params.repair_time_limit >= 8.0
    assert seen[0].time_limit is not None and seen[0].time_limit <= 2.0
