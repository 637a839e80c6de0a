"""How the solvers keep their time limits (issue 15), tested without timing anything.

The limit itself is measured by ``python -m optisched.bench.time_limits`` (BENCHMARKS.md);
here: the deadline counts from the ``solve()`` call, models that cannot be built or run
in the time left are skipped (with the warm start or hint returned and a message saying
so), the slow presolve rules go off for big models on short budgets, the estimates the
decisions rest on are close, and the HiGHS watchdog interrupts a run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from optisched import evaluate
from optisched.backends import highs as hs
from optisched.domain import Problem
from optisched.formulations.milp import build_milp
from optisched.index import compile_index
from optisched.io import read_bundle
from optisched.plan import Status
from optisched.solvers import REGISTRY, solve
from optisched.solvers import cpsat as cpsat_solver
from optisched.solvers import highs as highs_solver
from optisched.solvers.base import SolveOptions
from optisched.solvers.cpsat import build_seconds_estimate
from optisched.solvers.fallback import fallback_plan
from optisched.solvers.highs import (
    BIG_MODEL_COLS,
    ISOLATED_PREFIX,
    PRESOLVE_RULE_OFF,
    isolated_run,
    milp_nonzeros_estimate,
    presolve_rules_off,
)
from optisched.solvers.lns.search import MIN_SUB_LIMIT, sub_solve_limit
from optisched.solvers.options import HighsOptions

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def city() -> Problem:
    return read_bundle(ROOT / "datasets" / "city")


def test_the_deadline_counts_from_the_solve_call() -> None:
    opts = SolveOptions(time_limit=5.0, started=100.0)
    assert opts.deadline(103.0, 60.0) == 105.0  # the solver started 3 s after the call
    assert SolveOptions(time_limit=5.0).deadline(103.0, 60.0) == 108.0
    assert SolveOptions().deadline(10.0, 60.0) == 70.0
    assert SolveOptions(time_limit=math.inf).deadline(10.0, 60.0) == math.inf
    assert SolveOptions(time_limit=1.0, started=time.perf_counter() - 2.0).remaining(
        time.perf_counter(), 60.0) < 0


def test_milp_nonzeros_estimate_is_close(city: Problem) -> None:
    index = compile_index(city)
    est, built = milp_nonzeros_estimate(index), build_milp(index).A.nnz
    assert 0.9 * built <= est <= 1.2 * built


def test_slow_presolve_rules_go_off_for_big_models_on_short_budgets(city: Problem) -> None:
    model = build_milp(compile_index(city))  # 42k columns, 829k nonzeros
    assert model.n_cols < BIG_MODEL_COLS
    assert presolve_rules_off(model, 3.0) == PRESOLVE_RULE_OFF
    assert presolve_rules_off(model, 1000.0) is None
    tiny = build_milp(compile_index(read_bundle(ROOT / "datasets" / "tiny")))
    assert presolve_rules_off(tiny, 1.0) is None


def test_highs_returns_its_warm_start_when_the_milp_does_not_fit(city: Problem) -> None:
    # building city's MILP takes about 0.4 s at the assumed rate; 0.3 s cannot hold it
    plan = solve(city, "highs", time_limit=0.3, seed=0)
    assert plan.status is Status.FEASIBLE, plan.message
    assert plan.info["highs_status"] == "not run"
    assert "time limit" in plan.message and "warm start" in plan.message


def test_cpsat_returns_its_hint_when_the_model_does_not_fit(city: Problem) -> None:
    assert build_seconds_estimate(compile_index(city)) > 1.0
    plan = solve(city, "cpsat", time_limit=0.5, seed=0)
    assert plan.info["cpsat_status"] == "not run"
    assert plan.status in (Status.FEASIBLE, Status.NO_SOLUTION)
    assert "time limit" in plan.message


@pytest.mark.skipif(not REGISTRY["pyomo"].available(), reason="pyomo not installed")
def test_pyomo_refuses_a_model_it_cannot_build_in_time(city: Problem) -> None:
    # the model is not built; the batch still gets greedy's plan, saying why
    REGISTRY["pyomo"].load()  # importing Pyomo (seconds on a loaded machine) is not the point
    plan = solve(city, "pyomo", time_limit=5.0, seed=0)  # its model needs about 20 s
    assert plan.status is Status.FEASIBLE, plan.message
    assert "--solver highs" in plan.message and plan.info["termination"] == "not run"
    assert plan.info["fallback"] == "greedy" and plan.solver == "pyomo"
    assert evaluate(city, plan).feasible


def test_highs_without_a_warm_start_falls_back_to_greedy(
        city: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    # the MILP is too big for the budget by its size estimate, not by the clock: the same
    # decision on a loaded machine as on a quiet one, and greedy gets seconds to run
    monkeypatch.setattr(highs_solver, "_warm_start_plan", lambda *a, **k: None)
    monkeypatch.setattr(highs_solver, "milp_nonzeros_estimate", lambda index: 10**12)
    plan = solve(city, "highs", time_limit=10.0, seed=0)
    assert plan.status is Status.FEASIBLE, plan.message
    assert plan.info["highs_status"] == "not run" and plan.info["fallback"] == "greedy"
    assert "plan of greedy (the fallback" in plan.message
    assert "cannot be built and run" in plan.message
    assert evaluate(city, plan).feasible
    off = solve(city, "highs", time_limit=10.0, seed=0, greedy_start=False)
    assert off.status is Status.NO_SOLUTION  # a pure MILP run asked for: no substitute


def test_cpsat_gives_greedy_the_whole_budget_when_its_model_cannot_be_built(
        city: Problem, monkeypatch: pytest.MonkeyPatch,
        spy: Callable[[object, str], list[Any]]) -> None:
    # the model would take longer than the whole limit: no short hint first, one greedy
    # run with the time left
    import optisched.solvers.fallback as fallback_mod

    monkeypatch.setattr(cpsat_solver, "build_seconds_estimate", lambda index: 1e6)
    monkeypatch.setattr(cpsat_solver, "_hint_plan", lambda *a, **k: pytest.fail("hinted"))
    calls = spy(fallback_mod, "run_greedy")
    plan = solve(city, "cpsat", time_limit=8.0, seed=0)
    assert plan.info["cpsat_status"] == "not run" and plan.info["fallback"] == "greedy"
    limits = [args[2].time_limit for args, _ in calls]
    assert len(limits) == 1 and limits[0] is not None and 5.0 < limits[0] <= 8.0
    assert plan.status is Status.FEASIBLE and evaluate(city, plan).feasible


def test_cpsat_without_a_hint_falls_back_to_greedy(
        city: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpsat_solver, "_hint_plan", lambda *a, **k: None)
    plan = solve(city, "cpsat", time_limit=0.5, seed=0)
    assert plan.status is Status.FEASIBLE, plan.message
    assert plan.info["cpsat_status"] == "not run" and plan.info["fallback"] == "greedy"
    assert evaluate(city, plan).feasible


def test_the_fallback_says_when_no_time_is_left(city: Problem) -> None:
    plan = fallback_plan(city, compile_index(city), SolveOptions(), name="highs",
                         why="the MILP did not run", seconds=0.0)
    assert plan.status is Status.NO_SOLUTION and plan.solver == "highs"
    assert plan.message == "the MILP did not run; no time left for greedy"


def test_the_highs_watchdog_interrupts_a_run() -> None:
    model = build_milp(compile_index(read_bundle(ROOT / "datasets" / "neighborhood")))
    h = hs.load(model, model.integer)
    hs.configure(h, time_limit=1000.0, presolve=False)
    ran = hs.run(h, deadline=time.perf_counter() - 1.0)  # already past: first callback stops
    assert ran.text == "Interrupted by user", ran.text
    assert ran.status is None  # feasible with an incumbent, else no_solution


def test_milp_nonzeros_estimate_counts_every_scenario() -> None:
    from optisched.generate import generate
    from optisched.generate.scenarios import draw_scenarios

    p, _ = draw_scenarios(generate("small", seed=0), 4, seed=0)
    index = compile_index(p)
    est, built = milp_nonzeros_estimate(index), build_milp(index).A.nnz
    # each job column enters the power balance of all four scenarios
    assert 0.85 * built <= est <= 1.2 * built


def _own_child_dirs() -> list[Path]:
    import os
    import tempfile

    return list(Path(tempfile.gettempdir()).glob(f"{ISOLATED_PREFIX}{os.getpid()}-*"))


def test_isolated_highs_gives_the_in_process_plan() -> None:
    p = read_bundle(ROOT / "datasets" / "tiny")
    inside = solve(p, "highs", time_limit=60, seed=0, options={"isolate": False})
    child = solve(p, "highs", time_limit=60, seed=0, options={"isolate": True})
    assert child.info.get("isolated") is True and "isolated" not in inside.info
    assert child.status is inside.status is Status.OPTIMAL
    assert child.objective == pytest.approx(inside.objective, rel=1e-9)
    assert evaluate(p, child).objective == pytest.approx(child.objective, rel=1e-9)
    assert _own_child_dirs() == []  # the child's directory went with it


def test_isolated_highs_is_stopped_at_the_deadline_whatever_highs_does() -> None:
    # HiGHS gets 1000 s, the deadline is already past: the caller does not wait for the
    # child (a root heuristic of HiGHS may not look at the clock for minutes), it stops it
    # and has no solution, so run_highs keeps its warm start
    model = build_milp(compile_index(read_bundle(ROOT / "datasets" / "neighborhood")))
    run = isolated_run(model, SolveOptions(seed=0), HighsOptions(), 1000.0, 1e-6, None,
                       time.perf_counter() - 1.0)
    assert run.stopped and run.x is None and run.status is Status.NO_SOLUTION
    assert _own_child_dirs() == []


def test_lns_sub_solve_limit_leaves_room_for_the_iteration_and_the_final_bound() -> None:
    # 10 s left: the configured 3 s; 2 s left, 0.5 s overhead, 0.2 s final bound:
    # 2 − 0.5 − 0.2 − 0.05 = 1.25 s; 0.8 s left: 0.05 s < MIN_SUB_LIMIT, no iteration
    assert sub_solve_limit(3.0, 10.0, 0.5, 0.2) == 3.0
    assert sub_solve_limit(3.0, 2.0, 0.5, 0.2) == pytest.approx(1.25)
    assert sub_solve_limit(3.0, 0.8, 0.5, 0.2) is None
    assert sub_solve_limit(3.0, 0.5, 0.1, 0.2) == pytest.approx(0.15)  # just above MIN
    assert sub_solve_limit(3.0, 0.44, 0.1, 0.2) is None  # 0.09 s < MIN_SUB_LIMIT = 0.1 s
    assert MIN_SUB_LIMIT == 0.1
    assert sub_solve_limit(3.0, math.inf, 5.0, 5.0) == 3.0  # no deadline
