"""The ``cpsat`` solver: status table, scaling error bound, agreement with an
independent brute force (and with ``highs`` when registered), infeasibility
explanations, hints and determinism. Tiny instances, one worker, fixed seeds."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog

pytest.importorskip("ortools")

from ortools.sat.python import cp_model

import optisched
from optisched.domain import Horizon, Job, Node, Problem, Scenario
from optisched.evaluate import evaluate
from optisched.generate.random_problems import random_problem
from optisched.index import Index, compile_index
from optisched.plan import Status
from optisched.solvers import REGISTRY, OptionError, solve
from optisched.solvers.cpsat import STATUS_TABLE, map_status

START = "2026-06-01T00:00:00+00:00"
FAST = dict(time_limit=20.0, seed=1, workers=2, hint_time=0.2)


# --------------------------------------------------------------------------- brute force


def _dispatch_lp(index: Index, load: np.ndarray) -> float:
    """Min energy cost of SPEC §2.5-2.7 for a fixed load, by scipy's linprog [money].

    Variables per node and slot: pv_used, import, export, charge, discharge, soc;
    plus a peak per node. Complementarity of charge/discharge is not imposed: with
    non-negative import costs simultaneous charge and discharge never pays, so the
    LP optimum equals the SPEC optimum on the instances used here.
    """
    N, T, dt = index.N, index.T, index.dt
    nv = 6 * N * T + N

    def v(k: int, n: int, t: int) -> int:
        return (n * T + t) * 6 + k

    PV, IM, EX, CH, DI, SO = range(6)
    c = np.zeros(nv)
    lb, ub = np.zeros(nv), np.zeros(nv)
    A_eq, b_eq, A_ub, b_ub = [], [], [], []
    for n in range(N):
        pk = 6 * N * T + n
        c[pk] = index.demand_charge[n]
        ub[pk] = np.inf
        for t in range(T):
            c[v(IM, n, t)] = dt * index.import_cost[n, t]
            c[v(EX, n, t)] = -dt * index.export_price[n, t]
            c[v(DI, n, t)] = dt * index.degradation[n]
            ub[v(PV, n, t)] = index.pv[n, t]
            ub[v(IM, n, t)] = index.headroom[n, t]
            ub[v(EX, n, t)] = index.export_kw[n]
            ub[v(CH, n, t)] = index.charge_kw[n]
            ub[v(DI, n, t)] = index.discharge_kw[n]
            lb[v(SO, n, t)], ub[v(SO, n, t)] = index.soc_min[n], index.soc_max[n]
            row = np.zeros(nv)
            row[[v(PV, n, t), v(IM, n, t), v(DI, n, t)]] = 1.0
            row[[v(CH, n, t), v(EX, n, t)]] = -1.0
            A_eq.append(row)
            b_eq.append(load[n, t])
            row = np.zeros(nv)
            row[v(SO, n, t)] = 1.0
            row[v(CH, n, t)] = -dt * index.eff_charge[n]
            row[v(DI, n, t)] = dt / index.eff_discharge[n]
            if t:
                row[v(SO, n, t - 1)] = -1.0
            A_eq.append(row)
            b_eq.append(index.soc_init[n] if t == 0 else 0.0)
            row = np.zeros(nv)
            row[v(IM, n, t)], row[pk] = 1.0, -1.0
            A_ub.append(row)
            b_ub.append(0.0)
        if index.terminal_initial:
            row = np.zeros(nv)
            row[v(SO, n, T - 1)] = -1.0
            A_ub.append(row)
            b_ub.append(-index.soc_init[n])
    for f in range(len(index.feeder_ids)):
        for t in range(T):
            if np.isfinite(index.feeder_headroom[f, t]):
                row = np.zeros(nv)
                for n in np.nonzero(index.feeder_of == f)[0]:
                    row[v(IM, n, t)], row[v(EX, n, t)] = 1.0, -1.0
                A_ub.append(row)
                b_ub.append(index.feeder_headroom[f, t])
    res = linprog(c, A_ub=np.array(A_ub), b_ub=np.array(b_ub), A_eq=np.array(A_eq),
                  b_eq=np.array(b_eq), bounds=list(zip(lb, ub, strict=True)), method="highs")
    return float(res.fun) if res.status == 0 else math.inf


def brute_force(index: Index) -> float:
    """Optimum by enumerating every placement (nodes never sleep) [money]."""
    assert not index.can_sleep.any()
    choices = []
    for j in range(index.J):
        cj: list[tuple[int, int, float]] = []
        if not index.must_run[j]:
            cj.append((-1, 0, float(index.drop_penalty[j])))
        for o in index.options_of(j):
            for s in index.feasible_starts(int(o)):
                cj.append((int(o), int(s), float(index.opt_latency_cost[o])))
        choices.append(cj)
    best = math.inf
    on = index.available
    for combo in itertools.product(*choices):
        use = np.zeros((index.N, index.T, len(index.resources)))
        load = on * index.idle_kw[:, None]
        disc = 0.0
        for j, (o, s, cost) in enumerate(combo):
            disc += cost
            if o < 0:
                continue
            n, d = int(index.opt_node[o]), int(index.opt_dur[o])
            use[n, s:s + d] += index.usage[j]
            load[n, s:s + d] += index.opt_power[o]
            disc += float(index.tardiness_cost(j, s + d))
        if (use > index.capacity[:, None, :] + 1e-9).any():
            continue
        best = min(best, disc + _dispatch_lp(index, load))
    return best


TINY = [
    dict(seed=3, feeders=True, demand_charge=True),
    dict(seed=5, feeders=False, demand_charge=True, degradation=True),
    dict(seed=8, feeders=True, demand_charge=False, carbon=True),
]


def _tiny(seed: int, **kw: bool) -> Problem:
    return random_problem(seed, n_nodes=2, n_jobs=3, slots=5, batteries=True, **kw)


# --------------------------------------------------------------------------- status table


def test_status_table_is_the_documented_mapping() -> None:
    expected = {
        cp_model.OPTIMAL: Status.OPTIMAL,
        cp_model.FEASIBLE: Status.FEASIBLE,
        cp_model.INFEASIBLE: Status.INFEASIBLE,
        cp_model.MODEL_INVALID: Status.ERROR,
        cp_model.UNKNOWN: Status.NO_SOLUTION,
    }
    assert expected == STATUS_TABLE
    for code, status in expected.items():
        assert map_status(code) is status
    assert map_status(12345) is Status.ERROR


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("case", TINY, ids=lambda c: f"seed{c['seed']}")
def test_agrees_with_brute_force_within_rounding_bound(case: dict) -> None:
    kw = dict(case)
    problem = _tiny(kw.pop("seed"), **kw)
    index = compile_index(problem)
    opt = brute_force(index)
    assert math.isfinite(opt)
    plan = solve(problem, "cpsat", **FAST)
    assert plan.status is Status.OPTIMAL, plan.message
    eps = plan.info["rounding_bound"]
    assert 0 < eps < 0.01 * max(1.0, abs(opt))
    # the plan is exact (evaluator), so it cannot beat the optimum ...
    assert plan.objective >= opt - 1e-6
    # ... and CP-SAT's optimum of the scaled model is within ε of it
    assert plan.objective <= opt + eps
    # the reported bound is a valid lower bound of the true optimum
    assert plan.bound is not None and plan.bound <= opt + 1e-9
    assert plan.bound >= opt - 2 * eps


@pytest.mark.parametrize("case", TINY, ids=lambda c: f"seed{c['seed']}")
def test_scaled_objective_within_rounding_bound_of_evaluator(case: dict) -> None:
    kw = dict(case)
    problem = _tiny(kw.pop("seed"), sleep=True, negative_prices=True, **kw)
    plan = solve(problem, "cpsat", **FAST)
    assert plan.status is Status.OPTIMAL, plan.message
    eps = plan.info["rounding_bound"]
    scaled = plan.info["cpsat_objective"]
    # proven direction: scaled optimum ≤ true optimum + ε ≤ evaluator objective + ε
    assert scaled <= plan.objective + eps
    # measured direction (docs/formulations/cpsat.md): the dispatched plan is within ε too
    assert plan.objective <= scaled + eps
    assert plan.bound <= plan.objective + 1e-9


def test_agrees_with_highs_when_registered() -> None:
    if "highs" not in REGISTRY or not REGISTRY["highs"].available():
        pytest.skip("highs solver not registered yet")
    compared = 0
    for case in TINY:
        kw = dict(case)
        problem = _tiny(kw.pop("seed"), sleep=True, **kw)
        a = solve(problem, "cpsat", **FAST)
        b = solve(problem, "highs", time_limit=20.0, seed=1, threads=1, mip_gap=1e-9)
        if a.status is Status.OPTIMAL and b.status is Status.OPTIMAL:
            assert abs(a.objective - b.objective) <= a.info["rounding_bound"] + 1e-6
            # each proven bound is below the other's plan
            assert a.bound <= b.objective + 1e-6
            compared += 1
    assert compared >= 2


# --------------------------------------------------------------------------- infeasible


def _problem(nodes: list[Node], jobs: list[Job], slots: int = 2) -> Problem:
    return Problem(scenario=Scenario(horizon=Horizon(start=START, slot_minutes=60, slots=slots)),
                   nodes=nodes, jobs=jobs)


def test_infeasible_power_names_job_and_node() -> None:
    # node a can import 1 kW, has no pv and no battery; job big draws 2 kW and must run
    p = _problem([Node(node_id="a", gpus=2, grid_kw=1.0)],
                 [Job(job_id="big", gpus=1, duration_min=60, power_kw=2.0),
                  Job(job_id="ok", gpus=1, duration_min=60, power_kw=0.5, drop_penalty=1.0)])
    plan = solve(p, "cpsat", **FAST)
    assert plan.status is Status.INFEASIBLE
    assert "job big" in plan.message
    assert "node a power" in plan.message
    assert "job big may run on node a (start slots 0..1)" in plan.message
    conflict = plan.message.split(". ")[0]  # the core, before the per-job details
    assert "job ok" not in conflict  # droppable: not part of the minimal conflict
    assert "capacity" not in conflict


def test_infeasible_capacity_names_jobs_and_node() -> None:
    # one slot, node b has 2 gpus, two must-run jobs need 2 gpus each
    p = _problem([Node(node_id="b", gpus=2)],
                 [Job(job_id="x", gpus=2, duration_min=60, power_kw=0.1),
                  Job(job_id="y", gpus=2, duration_min=60, power_kw=0.1)], slots=1)
    plan = solve(p, "cpsat", **FAST)
    assert plan.status is Status.INFEASIBLE
    for name in ("job x", "job y", "node b resource capacity"):
        assert name in plan.message


# --------------------------------------------------------------------------- hint, determinism


def test_hint_is_accepted_and_consistent() -> None:
    problem = random_problem(11, n_nodes=3, n_jobs=6, slots=8, feeders=True)
    hint = solve(problem, "baseline")
    assert hint.status.has_plan
    # fixing every hinted variable to its hint must leave the hint's placement feasible
    plan = solve(problem, "cpsat", warm_start=hint, time_limit=20.0, seed=1, workers=1,
                 cpsat_params={"fix_variables_to_their_hinted_value": True})
    assert plan.info["hinted_vars"] > 0
    assert plan.info["hint_solver"] == "baseline"
    assert plan.status.has_plan, plan.message
    np.testing.assert_array_equal(plan.node, hint.node)
    run = hint.node >= 0
    np.testing.assert_array_equal(plan.start[run], hint.start[run])
    # exact re-dispatch of the same placement is no worse than the idle-battery baseline
    assert plan.objective <= hint.objective + 1e-6


def test_deterministic_with_seed_and_one_worker() -> None:
    problem = random_problem(4, n_nodes=3, n_jobs=6, slots=8, sleep=True, demand_charge=True)
    hint = solve(problem, "baseline")  # deterministic (greedy is time-bounded)
    a = solve(problem, "cpsat", time_limit=20.0, seed=7, workers=1, warm_start=hint)
    b = solve(problem, "cpsat", time_limit=20.0, seed=7, workers=1, warm_start=hint)
    assert a.status.has_plan
    np.testing.assert_array_equal(a.node, b.node)
    np.testing.assert_array_equal(a.start, b.start)
    assert a.objective == b.objective
    assert a.info["cpsat_objective"] == b.info["cpsat_objective"]


def test_variants_agree_and_options_pass_through() -> None:
    problem = _tiny(3, feeders=True, demand_charge=True)
    a = solve(problem, "cpsat", variant="starts", **FAST)
    b = solve(problem, "cpsat", variant="intervals", **FAST)
    assert a.status is Status.OPTIMAL and b.status is Status.OPTIMAL
    assert abs(a.objective - b.objective) <= a.info["rounding_bound"] + 1e-9
    assert a.info["workers"] == 2
    # a mistyped option is an error naming the solver, the key and the valid keys (it used
    # to be a plan with status error)
    with pytest.raises(OptionError, match=r"'cpsat'.*'variant'.*valid options: variant"):
        solve(problem, "cpsat", variant="nope", **FAST)


def test_no_cpsat_solution_returns_the_hint_as_feasible() -> None:
    problem = random_problem(11, n_nodes=3, n_jobs=6, slots=8, feeders=True)
    hint = solve(problem, "baseline")
    seen = []
    plan = solve(problem, "cpsat", warm_start=hint, time_limit=20.0, seed=1, workers=1,
                 callback=seen.append, cpsat_params={"stop_after_presolve": True})
    assert plan.info["cpsat_status"] == "UNKNOWN"
    assert plan.status is Status.FEASIBLE and plan.info["fallback"] == "baseline"
    np.testing.assert_array_equal(plan.node, hint.node)
    assert plan.objective == pytest.approx(hint.objective, rel=1e-9)
    assert seen and seen[0].message.startswith("hint")


def test_tiny_bundle_every_feature(tiny_dir: Path) -> None:

    problem = optisched.read_bundle(tiny_dir)
    base = solve(problem, "baseline")
    plan = solve(problem, "cpsat", **FAST)
    assert plan.status is Status.OPTIMAL, plan.message
    assert evaluate(problem, plan).feasible
    assert plan.objective <= base.objective + 1e-9
    assert plan.bound is not None and plan.bound <= plan.objective
    # the proven gap is within the documented rounding bound (twice: both directions)
    assert plan.objective - plan.bound <= 2 * plan.info["rounding_bound"] + 1e-9
    # pinned jobs stay where they are pinned
    index = compile_index(problem)
    pinned = index.pinned
    np.testing.assert_array_equal(plan.node[pinned], index.pinned_node[pinned])
    np.testing.assert_array_equal(plan.start[pinned], index.pinned_start[pinned])
