"""The ``lns`` solver: optimum on small instances, never worse than its start, anytime,
deterministic for a seed; its sub-problems and its Lagrangian bound."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from optisched.bounds import improved_bound, lagrangian, lagrangian_bound
from optisched.bounds.lagrangian import PROBE_KW, load_duals, probe_load
from optisched.domain import Feeder, Horizon, Job, Node, Problem, Scenario, Tariff
from optisched.evaluate import evaluate
from optisched.generate.random_problems import random_problem
from optisched.index import compile_index
from optisched.plan import Plan, Status
from optisched.solvers import REGISTRY, Progress, default_solver, solve
from optisched.solvers.lns.subproblem import build_subproblem

needs_highs = pytest.mark.skipif("highs" not in REGISTRY, reason="highs not registered")

SMALL: list[tuple[int, dict[str, bool]]] = [
    (3, {"feeders": True, "sleep": True}),
    (1, {"demand_charge": True}),
    (2, {"feeders": True, "negative_prices": True}),
]


def _small(seed: int, **kw: bool) -> Problem:
    return random_problem(seed, n_nodes=3, n_jobs=7, slots=10, **kw)  # type: ignore[arg-type]


def test_lns_is_registered_and_default() -> None:
    assert "lns" in REGISTRY
    assert default_solver() == "lns"


@needs_highs
@pytest.mark.parametrize(("seed", "features"), SMALL)
def test_lns_reaches_the_milp_optimum(seed: int, features: dict[str, bool]) -> None:
    p = _small(seed, **features)
    exact = solve(p, "highs", time_limit=20, mip_gap=1e-9, greedy_start=False)
    assert exact.status is Status.OPTIMAL and exact.objective is not None
    # a work cap, not a clock: the third neighbourhood frees all 7 jobs and its sub-solve
    # proves the optimum (the first two do not reach it on seeds 1 and 2), so 10 leaves a
    # margin; the sub-solve's and the run's limits are safety nets only (the sub-solve
    # takes 0.05-1.5 s on a loaded machine, past the 1 s it had within 3 s in all)
    plan = solve(p, "lns", time_limit=120, seed=0, max_iterations=10, sub_time_limit=30,
                 lp_bound=False)
    assert plan.status.has_plan
    assert evaluate(p, plan).feasible
    assert plan.objective == pytest.approx(exact.objective, rel=1e-6, abs=1e-6)
    # its bound is a valid lower bound on the proven optimum
    assert plan.bound is not None
    assert plan.bound <= exact.objective + 1e-6 * max(1.0, abs(exact.objective))


@needs_highs
def test_lns_never_worse_than_a_given_start() -> None:
    p = random_problem(4, n_nodes=4, n_jobs=12, slots=12, feeders=True, sleep=True)
    base = solve(p, "baseline")
    assert base.status.has_plan and base.objective is not None
    plan = solve(p, "lns", time_limit=3, seed=0, warm_start=base, max_iterations=3, size=3,
                 lp_bound=False)
    assert plan.info["start"] == "given"
    assert plan.info["start_objective"] == pytest.approx(base.objective)
    assert evaluate(p, plan).feasible
    assert plan.objective is not None
    assert plan.objective <= base.objective + 1e-9


@needs_highs
def test_lns_keeps_an_optimal_start() -> None:
    p = _small(3, feeders=True, sleep=True)
    exact = solve(p, "highs", time_limit=20, mip_gap=1e-9, greedy_start=False)
    plan = solve(p, "lns", time_limit=3, warm_start=exact, max_iterations=4, size=3, lp_bound=False)
    assert evaluate(p, plan).feasible
    assert plan.objective is not None and exact.objective is not None
    assert plan.objective <= exact.objective + 1e-9 * max(1.0, abs(exact.objective))


@needs_highs
def test_lns_interrupted_by_its_time_limit_returns_a_verified_plan() -> None:
    p = random_problem(5, n_nodes=8, n_jobs=40, slots=24, feeders=True, sleep=True,
                       demand_charge=True)
    reports: list[Progress] = []
    plan = solve(p, "lns", time_limit=1.0, seed=0, callback=reports.append)
    assert plan.status in (Status.FEASIBLE, Status.OPTIMAL)
    ev = evaluate(p, plan)
    assert ev.feasible, ev.violations[:3]
    assert plan.objective == pytest.approx(ev.objective)
    assert plan.objective is not None
    assert plan.bound is not None and plan.bound <= plan.objective + 1e-9
    assert reports and reports[-1].objective == pytest.approx(plan.objective)
    objs = [r.objective for r in reports if r.objective is not None]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(objs))  # never worse


@needs_highs
def test_lns_is_deterministic_for_a_seed() -> None:
    p = random_problem(6, n_nodes=3, n_jobs=10, slots=10, feeders=True, sleep=True)
    # start from the baseline plan so the three iterations have something to improve
    kw = dict(time_limit=60, max_iterations=3, size=3, lp_bound=False,
              warm_start=solve(p, "baseline"))
    a = solve(p, "lns", seed=7, **kw)  # type: ignore[arg-type]
    b = solve(p, "lns", seed=7, **kw)  # type: ignore[arg-type]
    assert a.info["iterations"] == b.info["iterations"] == 3
    assert a.objective is not None and a.objective < a.info["start_objective"]  # it searched
    np.testing.assert_array_equal(a.node, b.node)
    np.testing.assert_array_equal(a.start, b.start)
    assert a.objective == b.objective


def test_invalid_start_is_rejected() -> None:
    p = _small(0, feeders=True, sleep=True)
    plan = solve(p, "lns", time_limit=1, warm_start="not a plan")  # type: ignore[arg-type]
    assert plan.status is Status.ERROR
    assert "Plan" in plan.message


# --------------------------------------------------------------------------- sub-problems


def test_subproblem_reduces_feeder_headroom_by_the_outside_nodes() -> None:
    p = random_problem(0, n_nodes=5, n_jobs=8, slots=8, feeders=True)
    ix = compile_index(p)
    plan = solve(p, "baseline")
    assert plan.flows is not None
    f = next(k for k in range(len(ix.feeder_ids))
             if (ix.feeder_of == k).sum() >= 2 and np.isfinite(ix.feeder_headroom[k]).any())
    members = np.nonzero(ix.feeder_of == f)[0]
    keep, out = members[:1], members[1:]
    sub = build_subproblem(p, ix, plan, keep, np.zeros(0, dtype=np.int64))
    got = np.array(sub.problem.feeders[ix.feeder_ids[f]].headroom_kw)
    net_out = (plan.flows.grid_import - plan.flows.grid_export)[out].sum(axis=0)
    lim = ix.feeder_headroom[f]
    fin = np.isfinite(lim)
    np.testing.assert_allclose(got[fin], lim[fin] - net_out[fin], atol=1e-8)
    assert np.isinf(got[~fin]).all()


def test_subproblem_warm_start_is_feasible_and_jobs_outside_are_pinned() -> None:
    p = random_problem(3, n_nodes=4, n_jobs=10, slots=10, feeders=True, sleep=True)
    ix = compile_index(p)
    plan = solve(p, "baseline")
    nodes = np.array([0, 2], dtype=np.int64)
    on_s = np.nonzero(np.isin(plan.node, nodes))[0]
    free = on_s[:2]
    sub = build_subproblem(p, ix, plan, nodes, free)
    # jobs of the sub-problem: those running on the nodes (and nothing else)
    assert set(sub.jobs.tolist()) == set(on_s.tolist())
    for k, j in enumerate(sub.jobs):
        job = sub.problem.jobs[k]
        assert job.pinned == (j not in free)
        if job.pinned:
            assert job.pinned_node == ix.node_ids[plan.node[j]]
            assert job.pinned_start == p.horizon.time_of(int(plan.start[j]))
    ev = evaluate(sub.problem, sub.warm)
    assert ev.feasible, ev.violations[:3]


# --------------------------------------------------------------------------- bound


def test_lagrangian_bound_is_exact_for_one_job_on_one_node() -> None:
    # one node without PV or battery, prices 0.3, 0.1, 0.2 per kWh, Δ = 1 h; a 2 kW job
    # of one slot: the optimum runs it in slot 1 at 2 kWh · 0.1 = 0.2, the idle draw
    # 0.5 kW costs 0.5 · (0.3 + 0.1 + 0.2) = 0.3; at the optimal load the duals are
    # the prices, so the bound equals 0.5.
    hz = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=3)
    p = Problem(scenario=Scenario(horizon=hz),
                nodes=[Node(node_id="n", gpus=1, idle_kw=0.5)],
                jobs=[Job(job_id="j", gpus=1, duration_min=60, power_kw=2.0)],
                tariffs={"default": Tariff(price=[0.3, 0.1, 0.2], export_price=[0.0] * 3,
                                           carbon_g_per_kwh=[0.0] * 3)})
    ix = compile_index(p)
    load = np.array([[0.5, 2.5, 0.5]])
    assert lagrangian_bound(ix, load) == pytest.approx(0.5)
    # at another reference load (job in slot 0) the bound stays valid
    assert lagrangian_bound(ix, np.array([[2.5, 0.5, 0.5]])) <= 0.5 + 1e-9  # type: ignore[operator]


def _sleeper(headroom: list[float] | None = None, can_sleep: bool = True) -> Problem:
    """One node (off at the start, idle 0.5 kW, no PV or battery), prices 0.3, 0.1, 0.2
    per kWh, Δ = 1 h, one 2 kW job of one slot; with ``headroom`` on a feeder of those
    limits."""
    hz = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=3)
    feeders = {"f": Feeder(headroom_kw=headroom)} if headroom else {}
    return Problem(scenario=Scenario(horizon=hz), feeders=feeders,
                   nodes=[Node(node_id="n", gpus=1, idle_kw=0.5, can_sleep=can_sleep,
                               initially_on=False, feeder="f" if headroom else None)],
                   jobs=[Job(job_id="j", gpus=1, duration_min=60, power_kw=2.0)],
                   tariffs={"default": Tariff(price=[0.3, 0.1, 0.2], export_price=[0.0] * 3,
                                              carbon_g_per_kwh=[0.0] * 3)})


def test_lagrangian_bound_prices_extra_load_on_a_node_that_imports_nothing() -> None:
    # At the zero load of a sleeping node the balance dual is degenerate (any value up to
    # the price is optimal; HiGHS returned 0, a bound of 0). The probe load makes the
    # duals the prices: the job costs 2 kWh · 0.1 = 0.2 in slot 1 and its on slot
    # 0.5 kWh · 0.1 = 0.05 (the idle share), so the bound is the optimum 0.25.
    p = _sleeper()
    ix = compile_index(p)
    zero = np.zeros((1, 3))
    pi, _ = load_duals(ix, zero)  # type: ignore[misc]
    np.testing.assert_allclose(pi, [[0.3, 0.1, 0.2]])
    assert lagrangian_bound(ix, zero) == pytest.approx(0.25)
    assert solve(p, "highs", time_limit=30).objective == pytest.approx(0.25)
    np.testing.assert_allclose(probe_load(ix, zero), np.full((1, 3), PROBE_KW))


def test_probe_load_only_at_the_least_load_and_where_there_is_room() -> None:
    ix = compile_index(_sleeper())
    zero = np.zeros((1, 3))
    # above the least load (the job in slot 1, the sleeper on) a plan may have less load:
    # no probe
    np.testing.assert_allclose(probe_load(ix, np.array([[0.0, 2.5, 0.0]])) - [[0, 2.5, 0]],
                               [[PROBE_KW, 0.0, PROBE_KW]])
    # a node that cannot sleep is probed at its idle draw, its least load
    fixed = compile_index(_sleeper(can_sleep=False))
    idle = np.full((1, 3), 0.5)
    np.testing.assert_allclose(probe_load(fixed, idle) - idle, np.full((1, 3), PROBE_KW))
    assert lagrangian_bound(fixed, idle) == pytest.approx(0.5 * 0.6 + 0.2)  # idle + job
    # the node's own import limit 0 in slot 1: no probe there
    own = compile_index(_sleeper())
    own.headroom[0, 1] = 0.0
    np.testing.assert_allclose(probe_load(own, zero), [[PROBE_KW, 0.0, PROBE_KW]])


def test_a_probe_above_a_feeder_limit_falls_back_to_the_reference_load() -> None:
    # the feeder allows nothing in slot 1: the probe's LP is infeasible, so the LP is solved
    # at the reference load itself and the bound stays valid (the optimum runs the job in
    # slot 2: 2 kWh · 0.2 + 0.5 kWh · 0.2 idle = 0.5)
    p = _sleeper(headroom=[5.0, 0.0, 5.0])
    ix = compile_index(p)
    zero = np.zeros((1, 3))
    assert lagrangian._scenario_group_lp(ix, np.array([0]), probe_load(ix, zero), [0]) is None
    opt = solve(p, "highs", time_limit=30).objective
    assert opt == pytest.approx(0.5)
    got = lagrangian_bound(ix, zero)
    assert got is not None and got <= opt + 1e-9


BOUND_CASES: list[tuple[int, dict[str, bool]]] = [
    (3, {"feeders": True, "sleep": True, "degradation": True}),
    (4, {"demand_charge": True, "sleep": True, "degradation": True}),
    (2, {"feeders": True, "negative_prices": True, "degradation": True}),
    (9, {"demand_charge": True, "sleep": True, "degradation": True}),
]


@needs_highs
@pytest.mark.parametrize(("seed", "features"), BOUND_CASES)
def test_lagrangian_bound_is_below_the_milp_optimum(seed: int,
                                                    features: dict[str, bool]) -> None:
    p = random_problem(seed, n_nodes=3, n_jobs=6, slots=8, **features)  # type: ignore[arg-type]
    exact = solve(p, "highs", time_limit=20, mip_gap=1e-9, greedy_start=False)
    assert exact.status is Status.OPTIMAL and exact.flows is not None
    assert exact.objective is not None
    ix = compile_index(p)
    base = solve(p, "baseline")
    assert base.flows is not None
    tol = 1e-6 * max(1.0, abs(exact.objective))
    for load in (exact.flows.load, base.flows.load):
        lb = lagrangian_bound(ix, load)
        assert lb is not None
        assert lb <= exact.objective + tol
        # midpoint rounds and dualized capacities: still below the optimum, never below
        # the plain bound at the same reference load
        better = improved_bound(ix, load, rounds=3, upper=base.objective,
                                capacity_iterations=5)
        assert better is not None
        assert lb - tol <= better <= exact.objective + tol


@needs_highs
def test_penalty_phase_finds_a_plan_when_the_heuristics_fail(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # make greedy and baseline "fail" on the problem itself: the search must then run on
    # the penalty problem (must-run jobs droppable at M) and hand back a plan that runs
    # every must-run job and passes the evaluator of the original problem
    import optisched.solvers.lns.search as lns_mod

    real = lns_mod.start_plan

    def failing(problem, index, options, budget, *rest):  # type: ignore[no-untyped-def]
        if index.must_run.any():  # not yet the penalty problem (every job droppable)
            return Plan.empty(problem, "greedy", Status.INFEASIBLE, "forced"), "none"
        return real(problem, index, options, budget, *rest)

    monkeypatch.setattr(lns_mod, "start_plan", failing)
    p = random_problem(2, n_nodes=3, n_jobs=6, slots=10, droppable=False)
    plan = solve(p, "lns", time_limit=3, seed=0, max_iterations=2, lp_bound=False)
    assert plan.status.has_plan, plan.message
    assert (plan.node >= 0).all()
    ev = evaluate(p, plan)
    assert ev.feasible and plan.objective == pytest.approx(ev.objective)
    assert str(plan.info["start"]).startswith("penalty phase")


@pytest.mark.parametrize("sample", ["sample01", "sample03"])
def test_lns_finds_icon_samples_via_the_packing_start(sample: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """ICON samples (80-90 % resource use) defeat greedy's construction; the packing starts them.

    Greedy's feasibility engine now finds these samples itself (``tests/test_feasibility.py``),
    so lns's greedy start runs here without it, as greedy was before; the packing budget is
    generous (CP-SAT returns at its first packing, 0.02-0.6 s on these samples), so that a
    loaded machine does not decide the outcome.
    """
    from pathlib import Path

    import optisched.solvers.lns.start as lns_start
    from optisched.icon import read_icon
    from optisched.solvers.options import GreedyOptions

    problem = read_icon(Path(__file__).resolve().parents[1] / "datasets" / "icon" / sample)
    no_repair = GreedyOptions(repair=False)
    assert not solve(problem, "greedy", time_limit=2, seed=0, options=no_repair).status.has_plan
    plain = lns_start.run_greedy

    def run_without_repair(problem, index, options, *args, **kw):  # type: ignore[no-untyped-def]
        params = options.params_as(GreedyOptions)
        options.params = GreedyOptions(iterations=params.iterations, repair=False)
        return plain(problem, index, options, *args, **kw)

    monkeypatch.setattr(lns_start, "run_greedy", run_without_repair)
    plan = solve(problem, "lns", time_limit=6, seed=0, max_iterations=2, lp_bound=False,
                 packing_time_limit=60.0)
    assert plan.status.has_plan, plan.message
    assert plan.info["start"] == "packing"
    ev = evaluate(problem, plan)
    assert ev.feasible and plan.objective == pytest.approx(ev.objective)
    assert (plan.node >= 0).all()


def test_lp_kind_frees_only_jobs_the_lp_places_elsewhere() -> None:
    from optisched.solvers.lns.neighbourhoods import NeighbourhoodBuilder

    p = random_problem(11, n_nodes=3, n_jobs=8, slots=12, droppable=False)
    idx = compile_index(p)
    plan = solve(p, "greedy", time_limit=2, seed=0)
    assert plan.status.has_plan
    b = NeighbourhoodBuilder(p, idx, np.random.default_rng(0))
    b.refresh(plan)
    assert not b.available("lp") and b.build("lp", 4) is None
    # the LP agrees with the plan on every job but job 2, which it puts 1 slot later
    job = np.arange(idx.J)
    node = plan.node.copy()
    start = plan.start.copy()
    start[2] += 1
    b.set_lp((job, node, start, np.ones(idx.J)))
    assert b.available("lp")
    hood = b.build("lp", 4)
    assert hood is not None and hood.free.tolist() == [2]
    assert int(plan.node[2]) in hood.nodes.tolist()


def test_no_full_model_above_the_column_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Models too large for the full LP or column generation get a bound child that never
    builds the full model: the class-aggregated LP when every node is linear, else the
    implicit column generation."""
    import optisched.solvers.lns.search as lns_mod
    from optisched.bounds.aggregate import linear_nodes

    started: list[str] = []

    class Spy:
        placement = None
        source = None
        done = True

        def __init__(self, problem: Problem, time_limit: float, method: str = "lp",
                     aggregate_first: bool = False) -> None:
            started.append(method)

        def poll(self, wait: float = 0.0) -> None:
            return None

        def stop(self) -> None:
            pass

    monkeypatch.setattr(lns_mod, "BoundProcess", Spy)
    monkeypatch.setattr(lns_mod, "LP_BOUND_MAX_COLUMNS", 0)
    monkeypatch.setattr(lns_mod, "BOUND_MAX_COLUMNS", 0)
    p = random_problem(13, n_nodes=3, n_jobs=8, slots=12)
    assert not linear_nodes(compile_index(p)).all()
    plan = solve(p, "lns", time_limit=15, seed=0, max_iterations=2, restricted_master=False)
    assert plan.status.has_plan and started == ["implicit"]
    assert plan.info["bound_source"] in ("lagrangian", "sub-solve of the whole problem", None)


@pytest.mark.parametrize("linear", [True, False])
def test_greedy_start_gets_a_share_of_the_budget_on_linear_instances(
        linear: bool, spy: Callable[[object, str], list[Any]]) -> None:
    """On linear (ICON-class) instances greedy's local search may use 0.4 of the budget
    for the start, at most max(24 s, 0.1 of it); elsewhere min(10 s, 0.05 of it)."""
    from optisched.bounds.aggregate import linear_nodes
    from optisched.generate import generate
    from optisched.generate.tight import tight_problem
    from optisched.solvers.base import SolveOptions
    from optisched.solvers.lns import start as start_mod

    problem = (tight_problem(8, 2, slots=24, seed=0)[0] if linear
               else generate("small", seed=0))
    index = compile_index(problem)
    assert bool(linear_nodes(index).all()) is linear
    calls = spy(start_mod, "run_greedy")
    for budget in (50.0, 300.0):
        plan, origin = start_mod.start_plan(problem, index, SolveOptions(seed=0), budget)
        assert origin == "greedy" and plan.status.has_plan
    expect = [20.0, 30.0] if linear else [2.5, 10.0]
    assert [args[2].time_limit for args, _ in calls] == pytest.approx(expect)


def test_lns_reports_the_greedy_starts_plans_while_its_local_search_runs() -> None:
    from optisched.generate.tight import tight_problem

    problem = tight_problem(8, 2, slots=24, seed=0)[0]  # linear: a long greedy start
    reports: list[Progress] = []
    plan = solve(problem, "lns", time_limit=3.0, seed=0, callback=reports.append,
                 options={"lp_bound": False})
    assert plan.status.has_plan
    starts = [r for r in reports if r.message.startswith("start (greedy): ")]
    assert starts and starts[0].message == "start (greedy): construction"
    done = next(r for r in reports if r.message == "start (greedy)")
    # the construction's plan comes first, before lns reports its start; times never fall
    assert reports.index(starts[0]) < reports.index(done)
    assert starts[0].elapsed <= done.elapsed
    assert all(a.elapsed <= b.elapsed for a, b in itertools.pairwise(reports))
    assert min(r.objective for r in starts if r.objective is not None) == pytest.approx(
        done.objective)
