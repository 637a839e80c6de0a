"""The ``greedy`` solver: each marginal-cost term by hand, feasibility, diagnosis, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from optisched.domain import Horizon, Job, Node, NodeSeries, Problem, Scenario, Tariff
from optisched.evaluate import evaluate
from optisched.generate.random_problems import random_problem
from optisched.index import compile_index
from optisched.plan import Status
from optisched.solvers import solve
from optisched.solvers.base import SolveOptions
from optisched.solvers.greedy import GreedyState, Scorer, job_order, solve_greedy
from optisched.solvers.greedy.construct import construct

START = "2026-06-01T00:00:00+00:00"


def _problem(T: int, nodes: list[Node], jobs: list[Job], price: list[float] | None = None,
             pv: dict[str, list[float]] | None = None, **kw: object) -> Problem:
    hz = Horizon(start=START, slot_minutes=60, slots=T)
    tariffs = {"default": Tariff(price=price or [0.1] * T, export_price=[0.0] * T,
                                 carbon_g_per_kwh=[0.0] * T)}
    series = {n: NodeSeries(pv_kw=v) for n, v in (pv or {}).items()}
    return Problem(scenario=Scenario(horizon=hz), nodes=nodes, jobs=jobs, tariffs=tariffs,
                   node_series=series, **kw)  # type: ignore[arg-type]


def _cost_at(p: Problem, j: int, node: str, s: int) -> float:
    """Marginal cost the construction assigns to job j at (node, s) in an empty plan."""
    ix = compile_index(p)
    g = Scorer(GreedyState(p, ix))
    o = ix.find_option(j, ix.node_pos[node])
    best = g.scan(j, np.array([o]), only_start=s)
    assert best is not None
    return best.cost


def _best(p: Problem, j: int = 0) -> tuple[str, int, float]:
    ix = compile_index(p)
    g = Scorer(GreedyState(p, ix))
    best = g.best_insertion(j)
    assert best is not None
    return ix.node_ids[int(ix.opt_node[best.option])], best.start, best.cost


def _job(**kw: object) -> Job:
    base: dict[str, object] = {"job_id": "j", "gpus": 1, "duration_min": 60, "power_kw": 1.0}
    base.update(kw)
    return Job(**base)  # type: ignore[arg-type]


# ----------------------------------------------------------------- marginal-cost terms


def test_pv_makes_a_slot_cheaper() -> None:
    # price 0.2 money/kWh in both 1-h slots; 1 kW of PV in slot 1 covers the 1 kW job
    p = _problem(2, [Node(node_id="n", gpus=1)], [_job()], price=[0.2, 0.2],
                 pv={"n": [0.0, 1.0]})
    assert _cost_at(p, 0, "n", 0) == pytest.approx(0.2)  # 1 kW · 1 h · 0.2
    assert _cost_at(p, 0, "n", 1) == pytest.approx(0.0)
    assert _best(p)[:2] == ("n", 1)


def test_tariff_picks_the_cheap_slot() -> None:
    p = _problem(2, [Node(node_id="n", gpus=1)], [_job(power_kw=2.0)], price=[0.3, 0.1])
    assert _cost_at(p, 0, "n", 0) == pytest.approx(0.6)  # 2 kW · 1 h · 0.3
    assert _cost_at(p, 0, "n", 1) == pytest.approx(0.2)
    assert _best(p)[:2] == ("n", 1)


def test_switching_cost_of_waking_a_sleeping_node() -> None:
    asleep = Node(node_id="s", gpus=1, idle_kw=0.4, can_sleep=True, initially_on=False,
                  startup_cost=1.0, shutdown_cost=0.5)
    awake = Node(node_id="a", gpus=1, idle_kw=0.4)
    p = _problem(3, [asleep, awake], [_job()], price=[0.1] * 3)
    # sleeping node, slot 0: (1 + 0.4 idle) kW · 0.1 + start-up 1.0 + shut-down after 0.5
    assert _cost_at(p, 0, "s", 0) == pytest.approx(0.14 + 1.0 + 0.5)
    # last slot: the node stays on after the horizon (end_off false) -> no shut-down
    assert _cost_at(p, 0, "s", 2) == pytest.approx(0.14 + 1.0)
    # the awake node pays only the job's energy
    assert _cost_at(p, 0, "a", 0) == pytest.approx(0.1)
    assert _best(p)[0] == "a"
    # the estimate equals the evaluator's cost difference (switching + energy)
    ix = compile_index(p)
    g = GreedyState(p, ix)
    g.place(0, ix.find_option(0, ix.node_pos["s"]), 0)
    g.evaluate_all()
    idle_awake = 0.4 * 0.1 * 3  # the awake node's idle draw over 3 slots
    assert g.objective == pytest.approx(idle_awake + 0.14 + 1.5)


def test_latency_cost_over_the_slo() -> None:
    nodes = [Node(node_id="n0", gpus=1), Node(node_id="n1", gpus=1)]
    job = _job(region="r", latency_slo_ms=10.0, latency_per_ms=0.5)
    p = _problem(1, nodes, [job], latency_ms={"n0": {"r": 14.0}, "n1": {"r": 12.0}})
    assert _cost_at(p, 0, "n0", 0) == pytest.approx(0.1 + 0.5 * 4)
    assert _cost_at(p, 0, "n1", 0) == pytest.approx(0.1 + 0.5 * 2)
    assert _best(p)[0] == "n1"


def test_tardiness_cost_after_the_deadline() -> None:
    # soft deadline at the end of slot 0, 2 money/h late; import free from slot 1 on
    job = _job(deadline="2026-06-01T01:00:00+00:00", tardiness_per_hour=2.0)
    p = _problem(3, [Node(node_id="n", gpus=1)], [job], price=[1.0, 0.0, 0.0])
    assert _cost_at(p, 0, "n", 0) == pytest.approx(1.0)
    assert _cost_at(p, 0, "n", 1) == pytest.approx(2.0)  # 1 h late
    assert _cost_at(p, 0, "n", 2) == pytest.approx(4.0)  # 2 h late
    assert _best(p)[1] == 0


@pytest.mark.parametrize(("penalty", "placed"), [(0.5, False), (2.0, True)])
def test_drop_versus_place(penalty: float, placed: bool) -> None:
    # placing costs 1 kW · 1 h · 1.0 = 1.0: dropped at penalty 0.5, placed at 2.0
    p = _problem(1, [Node(node_id="n", gpus=1)], [_job(drop_penalty=penalty)], price=[1.0])
    plan = solve(p, "greedy", time_limit=1.0, iterations=50)
    assert plan.status is Status.FEASIBLE
    assert bool(plan.node[0] >= 0) is placed
    assert plan.objective == pytest.approx(1.0 if placed else 0.5)


def test_capacity_and_headroom_exclude_windows() -> None:
    # two 1-GPU jobs on a 1-GPU node must not overlap; headroom 1.5 kW forbids 2 kW
    nodes = [Node(node_id="n", gpus=1, grid_kw=1.5)]
    jobs = [_job(job_id="a"), _job(job_id="b"), _job(job_id="c", power_kw=2.0,
                                                     drop_penalty=100.0)]
    p = _problem(2, nodes, jobs)
    plan = solve(p, "greedy", time_limit=1.0, iterations=50)
    assert plan.status is Status.FEASIBLE
    assert sorted(plan.start[:2].tolist()) == [0, 1]
    assert plan.node[2] == -1


def test_job_order_rule() -> None:
    jobs = [
        _job(job_id="wide_small", power_kw=0.5, drop_penalty=1.0),
        _job(job_id="wide_big", power_kw=2.0, drop_penalty=1.0),
        _job(job_id="tight", deadline="2026-06-01T01:00:00+00:00", drop_penalty=1.0),
        _job(job_id="must", power_kw=0.1),
        _job(job_id="wide_big_pen", power_kw=2.0, drop_penalty=5.0),
    ]
    p = _problem(4, [Node(node_id="n", gpus=8)], jobs)
    order = [p.jobs[j].job_id for j in job_order(compile_index(p))]
    assert order == ["must", "tight", "wide_big_pen", "wide_big", "wide_small"]


# ----------------------------------------------------------------- diagnosis


def _greedy(p: Problem):  # type: ignore[no-untyped-def]
    return solve_greedy(p, compile_index(p), SolveOptions(time_limit=0.1))


def test_infeasible_no_eligible_node_names_job() -> None:
    p = _problem(2, [Node(node_id="n", gpus=1, trust=0)], [_job(job_id="secret", min_trust=3)])
    plan = _greedy(p)
    assert plan.status is Status.INFEASIBLE
    assert "secret" in plan.message and "trust" in plan.message


def test_infeasible_window_too_short_names_job() -> None:
    job = _job(job_id="long", duration_min=180, deadline="2026-06-01T02:00:00+00:00")
    plan = _greedy(_problem(4, [Node(node_id="n", gpus=1)], [job]))
    assert plan.status is Status.INFEASIBLE
    assert "long" in plan.message and "do not fit" in plan.message


def test_capacity_failure_names_job() -> None:
    # a heuristic failing to pack proves nothing: without the feasibility engine's proofs
    # and repair the construction's failure is no_solution, with the job and the reason
    dl = "2026-06-01T01:00:00+00:00"
    jobs = [_job(job_id="first", deadline=dl), _job(job_id="second", deadline=dl)]
    p = _problem(2, [Node(node_id="n", gpus=1)], jobs)
    ix = compile_index(p)
    state = GreedyState(p, ix)
    why = construct(state, Scorer(state), job_order(ix))
    assert why is not None and "capacity" in why
    assert ("first" in why) != ("second" in why)
    # with them: both must run in slot 0 of the only node, which has one GPU: proven
    plan = _greedy(p)
    assert plan.status is Status.INFEASIBLE
    assert "capacity" in plan.message and "slot 0" in plan.message
    assert "first" in plan.message and "second" in plan.message


def test_headroom_failure_names_job() -> None:
    # 2 kW on a node with 1 kW of headroom, no PV, no battery: proven infeasible
    plan = _greedy(_problem(2, [Node(node_id="n", gpus=1, grid_kw=1.0)],
                            [_job(job_id="hungry", power_kw=2.0)]))
    assert plan.status is Status.INFEASIBLE
    assert "hungry" in plan.message and "headroom" in plan.message


def test_battery_lets_a_job_exceed_headroom() -> None:
    # 2 kW job, 1 kW headroom: only a battery (5 kWh, 2 kW discharge) makes it feasible
    node = Node(node_id="n", gpus=1, grid_kw=1.0, battery_kwh=5.0, soc_init=0.8,
                discharge_kw=2.0, charge_kw=2.0)
    p = _problem(4, [node], [_job(power_kw=2.0)])
    p.scenario.battery.terminal = "free"
    plan = solve(p, "greedy", time_limit=1.0, iterations=20)
    assert plan.status is Status.FEASIBLE, plan.message
    assert evaluate(p, plan).feasible


# ----------------------------------------------------------------- random cases


CASES = [
    dict(n_nodes=4, n_jobs=10, slots=10, feeders=True, sleep=True),
    dict(n_nodes=5, n_jobs=12, slots=12, demand_charge=True, negative_prices=True),
    dict(n_nodes=4, n_jobs=10, slots=10, sleep=True, droppable=False),
    dict(n_nodes=3, n_jobs=8, slots=8, carbon=True, degradation=True, terminal="free"),
]


@pytest.mark.parametrize("seed", range(6))
def test_random_plans_pass_evaluator_and_beat_baseline(seed: int) -> None:
    p = random_problem(seed, **CASES[seed % len(CASES)])  # type: ignore[arg-type]
    base = solve(p, "baseline")
    plan = solve(p, "greedy", time_limit=5.0, iterations=150, seed=seed)
    if base.status.has_plan:
        assert plan.status is Status.FEASIBLE, plan.message
    if plan.status.has_plan:
        ev = evaluate(p, plan)
        assert ev.feasible, [str(v) for v in ev.violations]
        assert plan.objective == pytest.approx(ev.objective, rel=1e-9, abs=1e-9)
    if base.status.has_plan:
        assert plan.objective is not None and base.objective is not None
        assert plan.objective <= base.objective + 1e-6 * max(1.0, abs(base.objective))


def test_local_search_never_worsens_construction() -> None:
    p = random_problem(11, n_nodes=5, n_jobs=14, slots=12, sleep=True)
    plan = solve(p, "greedy", time_limit=5.0, iterations=200)
    assert plan.objective is not None
    assert plan.objective <= plan.info["construction_objective"] + 1e-9


def test_progress_reports() -> None:
    seen: list[float] = []
    p = random_problem(2, n_nodes=4, n_jobs=10, slots=10)
    plan = solve(p, "greedy", time_limit=5.0, iterations=100,
                 callback=lambda pr: seen.append(pr.objective))
    assert seen and seen[-1] == pytest.approx(plan.objective)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(seen))


def test_deterministic_for_a_seed() -> None:
    p = random_problem(5, n_nodes=5, n_jobs=14, slots=12, sleep=True, feeders=True)
    a = solve(p, "greedy", time_limit=30.0, iterations=200, seed=7)
    b = solve(p, "greedy", time_limit=30.0, iterations=200, seed=7)
    assert a.status is b.status
    assert np.array_equal(a.node, b.node) and np.array_equal(a.start, b.start)
    assert a.objective == b.objective
    assert a.flows is not None and b.flows is not None
    assert np.array_equal(a.flows.on, b.flows.on)


def test_bridge_keeps_a_sleeping_node_on_across_a_gap() -> None:
    # jobs forced into slots 0 and 2; start-up = shut-down = 1, idle 0.1 kW at 0.1 money/kWh.
    # Off in slots 1 and 3: 2 start-ups + 2 shut-downs = 4. On in slots 0..3 (end_off false):
    # 1 start-up + idle 0.1·4·0.1 = 0.04, plus the jobs' 2 · 1 kW · 1 h · 0.1 = 0.2 -> 1.24.
    node = Node(node_id="s", gpus=1, idle_kw=0.1, can_sleep=True, initially_on=False,
                startup_cost=1.0, shutdown_cost=1.0)
    jobs = [_job(job_id="a", deadline="2026-06-01T01:00:00+00:00"),
            _job(job_id="b", release="2026-06-01T02:00:00+00:00",
                 deadline="2026-06-01T03:00:00+00:00")]
    p = _problem(4, [node], jobs, price=[0.1] * 4)
    plan = solve(p, "greedy", time_limit=30.0, iterations=200)
    assert plan.status is Status.FEASIBLE
    assert plan.flows is not None and plan.flows.on[0].all()
    assert plan.objective == pytest.approx(1.24)
    assert evaluate(p, plan).objective == pytest.approx(1.24)
