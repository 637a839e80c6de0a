"""``lns`` at ICON scale: the one-machine and time-band neighbourhoods, the CP-SAT interval
sub-model with on/off states, and the bound the search reports (method and value)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from optisched.bounds.aggregate import aggregate_bound
from optisched.domain import Problem
from optisched.evaluate import evaluate
from optisched.generate.random_problems import random_problem
from optisched.generate.tight import tight_problem
from optisched.index import compile_index
from optisched.plan import Status
from optisched.solvers import solve
from optisched.solvers.base import usable_cores
from optisched.solvers.lns import subproblem as lns_subproblem
from optisched.solvers.lns.neighbourhoods import MACHINE_JOBS, NeighbourhoodBuilder
from optisched.solvers.lns.search import (
    BOUND_MAX_COLUMNS,
    LP_BOUND_MAX_COLUMNS,
    bound_method,
)
from optisched.solvers.lns.subproblem import PACK_SOLVER, build_subproblem, solve_subproblem

pytest.importorskip("ortools")


def _tight(seed: int, jobs: int = 40, nodes: int = 4, resources: int = 2,
           slots: int = 96) -> Problem:
    problem, _ = tight_problem(jobs, nodes, n_resources=resources, slots=slots, seed=seed)
    return problem


def _greedy(problem: Problem) -> object:
    plan = solve(problem, "greedy", seed=0, iterations=200, repair_steps=2000)
    assert plan.status.has_plan, plan.message
    return plan


@pytest.mark.parametrize("seed", [0, 1])
def test_machine_and_band_neighbourhoods_free_what_they_say(seed: int) -> None:
    problem = _tight(seed)
    index = compile_index(problem)
    plan = _greedy(problem)
    b = NeighbourhoodBuilder(problem, index, np.random.default_rng(seed))
    b.refresh(plan)  # type: ignore[arg-type]
    node, start = plan.node, plan.start  # type: ignore[attr-defined]
    for _ in range(10):
        hood = b.build("machine", 8)
        assert hood is not None and hood.nodes.size == 1 and hood.window is None
        n = int(hood.nodes[0])
        on_n = np.nonzero(node == n)[0]
        assert np.isin(hood.free, on_n).all()
        assert hood.free.size == min(on_n.size, max(MACHINE_JOBS, 16))
        hood = b.build("time_band", 8)
        if hood is None:
            continue
        a, e = hood.window  # type: ignore[misc]
        assert 2 <= hood.nodes.size <= 4 and 0 <= a < e <= index.T
        d = index.duration(hood.free, node[hood.free])
        assert np.isin(node[hood.free], hood.nodes).all()
        assert ((start[hood.free] >= a) & (start[hood.free] + d <= e)).all()
        # the sub-problem narrows the freed jobs' windows to the band; the incumbent fits
        sub = build_subproblem(problem, index, plan, hood.nodes, hood.free,  # type: ignore[arg-type]
                               hood.window)
        sx = sub.index
        freed = sub.jobs[sub.free]
        assert np.array_equal(np.sort(freed), np.sort(hood.free))
        local = np.nonzero(sub.free)[0]
        assert (sx.release[local] >= a).all()
        assert (sx.deadline[local] <= e + 1e-9).all()
        assert evaluate(sub.problem, sub.warm).feasible


@pytest.mark.parametrize("seed", [0, 3])
def test_cpsat_interval_model_with_on_off_is_the_exact_icon_cost(seed: int) -> None:
    # every node linear: the interval model's objective is the cost, so its proven optimum
    # over the whole problem is the MILP's
    problem, _ = tight_problem(8, 2, n_resources=2, slots=24, seed=seed)
    index = compile_index(problem)
    exact = solve(problem, "highs", time_limit=60, mip_gap=1e-9, greedy_start=False)
    assert exact.status is Status.OPTIMAL
    start = _greedy(problem)
    sub = build_subproblem(problem, index, start, np.arange(index.N),  # type: ignore[arg-type]
                           np.arange(index.J))
    got = solve_subproblem(PACK_SOLVER, sub, 60.0, seed, None)
    assert got.status is Status.OPTIMAL, got.message
    ev = evaluate(sub.problem, got)
    assert ev.feasible
    assert ev.objective == pytest.approx(exact.objective, rel=1e-5)
    assert got.info["cpsat_status"] == "OPTIMAL"


@pytest.mark.parametrize("kind", ["machine", "time_band"])
@pytest.mark.parametrize("sub_solver", [None, "highs"])
def test_lns_with_the_new_kinds_keeps_every_plan_verified(kind: str,
                                                          sub_solver: str | None) -> None:
    problem = _tight(2, jobs=30, nodes=3, resources=1)
    start = _greedy(problem)
    kw = {} if sub_solver is None else {"sub_solver": sub_solver}
    plan = solve(problem, "lns", seed=1, time_limit=60, warm_start=start, kinds=(kind,),
                 max_iterations=6, lp_bound=False, sub_time_limit=2.0, **kw)
    assert plan.status.has_plan
    ev = evaluate(problem, plan)
    assert ev.feasible, ev.violations[:3]
    assert plan.objective == pytest.approx(ev.objective, rel=1e-9)
    assert plan.objective <= start.objective + 1e-9 * abs(start.objective)  # type: ignore[attr-defined]
    stats = plan.info["kinds"][kind]
    assert stats["tried"] > 0
    used = set(plan.info["sub_solvers"])
    assert used == ({PACK_SOLVER} if sub_solver is None else {"highs"})
    assert plan.bound is not None and plan.bound <= plan.objective


@pytest.mark.parametrize(("kw", "expect"), [
    ({"time_limit": 4}, min(2, usable_cores())),   # no bound child: the free core too
    ({"time_limit": 4, "threads": 1}, 1),          # threads caps the workers
    ({"time_limit": 60, "max_iterations": 3}, 1),  # reproducible runs: one worker
])
def test_interval_sub_solves_use_the_cores_no_bound_child_takes(
        spy: Callable[[object, str], list[Any]], kw: dict[str, Any], expect: int) -> None:
    problem = _tight(2, jobs=30, nodes=3, resources=1)
    calls = spy(lns_subproblem, "solve_packing")
    plan = solve(problem, "lns", seed=1, warm_start=_greedy(problem), lp_bound=False,
                 kinds=("machine",), sub_time_limit=1.0, **kw)
    assert evaluate(problem, plan).feasible
    assert calls, "no interval sub-solve ran"
    assert {c[0][4] for c in calls} == {expect}  # solve_packing(sub, limit, seed, det, workers)


def test_interval_sub_solve_with_two_workers_keeps_the_plan_exact() -> None:
    problem, _ = tight_problem(8, 2, n_resources=2, slots=24, seed=0)
    index = compile_index(problem)
    exact = solve(problem, "highs", time_limit=60, mip_gap=1e-9, greedy_start=False)
    sub = build_subproblem(problem, index, _greedy(problem), np.arange(index.N),  # type: ignore[arg-type]
                           np.arange(index.J))
    got = solve_subproblem(PACK_SOLVER, sub, 60.0, 0, None, pack_workers=2)
    assert got.status is Status.OPTIMAL, got.message
    assert evaluate(sub.problem, got).objective == pytest.approx(exact.objective, rel=1e-5)


def test_lns_keeps_highs_on_nodes_that_are_not_linear() -> None:
    problem = random_problem(3, n_nodes=3, n_jobs=7, slots=10, feeders=True, sleep=True)
    plan = solve(problem, "lns", seed=0, time_limit=30, max_iterations=4, lp_bound=False,
                 kinds=("random_nodes",))
    assert evaluate(problem, plan).feasible
    assert PACK_SOLVER not in plan.info["sub_solvers"]


def test_bound_method_by_size_and_linearity() -> None:
    small = compile_index(_tight(0, jobs=10, nodes=2, slots=24))
    assert bound_method(small) == "lp"
    # the method only depends on the start-column count and the nodes' linearity
    big = compile_index(_tight(0, jobs=400, nodes=40, resources=1, slots=288))
    from optisched.bounds.pricing import start_column_count

    cols = start_column_count(big)
    want = ("lp" if cols <= LP_BOUND_MAX_COLUMNS else
            "colgen" if cols <= BOUND_MAX_COLUMNS else "aggregate")
    assert bound_method(big) == want


@pytest.mark.slow
def test_lns_reports_the_aggregated_bound_with_its_source() -> None:
    problem = _tight(1, jobs=40, nodes=4, resources=2)
    index = compile_index(problem)
    plan = solve(problem, "lns", seed=0, time_limit=15, lp_bound=True,
                 bound_method="aggregate")
    assert plan.status.has_plan and plan.bound is not None
    agg = aggregate_bound(index)
    assert agg.converged
    assert plan.info["bound_source"] in ("aggregate", "lagrangian",
                                         "sub-solve of the whole problem")
    if plan.info["bound_source"] == "aggregate":
        assert plan.bound == pytest.approx(min(agg.bound, plan.objective), rel=1e-6)
    assert plan.bound >= agg.bound - 1e-6 * abs(agg.bound) or plan.bound == plan.objective
    assert plan.bound <= plan.objective
