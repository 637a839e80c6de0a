"""``lns`` adaptation: kinds drawn by their estimated gain per second, and the kind
``local`` (greedy's local search from the incumbent) on linear instances."""

from __future__ import annotations

import pytest

from optisched.evaluate import evaluate
from optisched.generate.random_problems import random_problem
from optisched.generate.tight import tight_problem
from optisched.solvers import solve
from optisched.solvers.lns.search import (
    RATE_PRIOR,
    _BoundSlot,
    _draw_weights,
    _Stats,
    improve_start_bound,
)


def test_a_kinds_rate_is_its_decayed_gain_per_decayed_second() -> None:
    s = _Stats(dgain=2e-4, dsecs=1.0)  # a prior of 2e-4
    s.record(2.0, 0.0)  # a fruitless try of 2 s
    assert s.dgain == pytest.approx(1.8e-4)
    assert s.dsecs == pytest.approx(2.9)
    assert s.rate == pytest.approx(1.8e-4 / 2.9)
    s.record(1.0, 1e-3)  # 0.1 % gained in 1 s
    assert s.dgain == pytest.approx(0.9 * 1.8e-4 + 1e-3)
    assert s.dsecs == pytest.approx(0.9 * 2.9 + 1.0)
    assert s.rate == pytest.approx(1.162e-3 / 3.61)


def test_kinds_are_drawn_by_rate_with_a_floor_of_a_quarter_of_the_best_shared() -> None:
    stats = [_Stats(dgain=1e-4), _Stats(dgain=0.0), _Stats(dgain=1e-4, dsecs=2.0)]
    assert _draw_weights(stats).tolist() == pytest.approx([1e-4, 0.25e-4 / 3, 5e-5])
    # nothing gained anywhere: every kind alike
    assert _draw_weights([_Stats(dgain=0.0), _Stats(dgain=0.0)]).tolist() == [1.0, 1.0]
    assert RATE_PRIOR > 0  # an untried kind is drawn before its rate is known


def test_local_kind_improves_a_construction_and_keeps_it_verified() -> None:
    problem, _ = tight_problem(30, 3, n_resources=1, slots=48, seed=0)
    start = solve(problem, "greedy", seed=0, improve=False)  # construction only
    assert start.status.has_plan, start.message
    plan = solve(problem, "lns", seed=0, time_limit=6, warm_start=start, kinds=("local",),
                 lp_bound=False)
    ev = evaluate(problem, plan)
    assert ev.feasible, ev.violations[:3]
    assert plan.objective == pytest.approx(ev.objective, rel=1e-9)
    local = plan.info["kinds"]["local"]
    assert local["tried"] >= 1 and local["improved"] >= 1
    assert plan.objective < start.objective - 1e-6 * abs(start.objective)


@pytest.mark.parametrize("linear", [True, False])
def test_local_kind_only_on_linear_instances_and_never_in_reproducible_runs(
        linear: bool) -> None:
    problem = (tight_problem(30, 3, n_resources=1, slots=48, seed=1)[0] if linear
               else random_problem(3, n_nodes=3, n_jobs=7, slots=10, feeders=True, sleep=True))
    start = solve(problem, "greedy", seed=0, improve=False)
    # reproducible (max_iterations): never drawn; with it the only kind, nothing is tried
    plan = solve(problem, "lns", seed=0, time_limit=30, warm_start=start, kinds=("local",),
                 max_iterations=3, lp_bound=False)
    assert plan.info["kinds"]["local"]["tried"] == 0
    assert plan.objective == pytest.approx(evaluate(problem, start).objective, rel=1e-9)
    plan = solve(problem, "lns", seed=0, time_limit=3, warm_start=start,
                 kinds=("local", "machine"), lp_bound=False)
    assert evaluate(problem, plan).feasible
    assert (plan.info["kinds"]["local"]["tried"] > 0) is linear


def test_start_bound_not_improved_when_the_child_computes_the_aggregated_lp() -> None:
    child_first = _BoundSlot(True, 300.0, "lp", aggregate_first=True)
    agg = _BoundSlot(True, 300.0, "aggregate")
    plain_lp = _BoundSlot(True, 300.0, "lp", aggregate_first=False)
    no_child = _BoundSlot(False, 300.0, "aggregate", aggregate_first=True)
    # the aggregated LP comes from the child: skip the start's rounds
    assert not improve_start_bound(child_first, linear=True, deterministic=False)
    assert not improve_start_bound(agg, linear=True, deterministic=False)
    # no aggregated LP (non-linear nodes, a plain LP, no child) or reproducible: improve
    assert improve_start_bound(child_first, linear=False, deterministic=False)
    assert improve_start_bound(plain_lp, linear=True, deterministic=False)
    assert improve_start_bound(no_child, linear=True, deterministic=False)
    assert improve_start_bound(agg, linear=True, deterministic=True)
