"""Column generation bound (optisched.bounds.colgen): valid at every iteration, exact at the end."""

from __future__ import annotations

import math

import pytest

from optisched.bounds import colgen_bound, lp_bound
from optisched.domain import Problem
from optisched.formulations.milp import build_milp
from optisched.generate.random_problems import random_problem
from optisched.index import compile_index

CASES = [
    dict(seed=1, n_nodes=4, n_jobs=10, slots=12, sleep=True, feeders=True),
    dict(seed=2, n_nodes=3, n_jobs=8, slots=10, sleep=True, demand_charge=True,
         negative_prices=True),
    dict(seed=5, n_nodes=4, n_jobs=9, slots=12, sleep=True, feeders=True, droppable=False),
]


def _problem(case: dict[str, object]) -> Problem:
    kw = dict(case)
    seed = int(kw.pop("seed"))  # type: ignore[call-overload]
    return random_problem(seed, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("solver", ["ipm", "simplex"])
@pytest.mark.parametrize("case", CASES)
def test_converged_value_is_the_lp_bound(case: dict[str, object], solver: str) -> None:
    p = _problem(case)
    ix = compile_index(p)
    lp = lp_bound(p, ix)
    seen: list[float] = []
    r = colgen_bound(p, ix, progress=lambda b, _t: seen.append(b), lp_solver=solver,
                     initial_columns=1, columns_per_job=1)
    assert r.converged
    assert r.lp_value is not None
    assert r.lp_value == pytest.approx(lp, rel=1e-6, abs=1e-6)
    assert r.bound <= lp + 1e-6
    assert r.bound == pytest.approx(lp, rel=1e-6, abs=1e-6)
    assert seen and all(b <= lp + 1e-6 for b in seen)
    assert all(h[1] <= lp + 1e-6 for h in r.history)
    assert r.columns <= build_milp(ix).x.size


def test_iteration_limited_run_gives_a_valid_bound() -> None:
    p = random_problem(3, n_nodes=4, n_jobs=12, slots=12, sleep=True, feeders=True)
    ix = compile_index(p)
    lp = lp_bound(p, ix)
    for its in (1, 2):
        r = colgen_bound(p, ix, max_iterations=its, initial_columns=1, columns_per_job=1,
                         smoothing=0.0)
        assert r.iterations == its
        assert r.bound <= lp + 1e-6
        if not r.converged:
            assert r.lp_value is None or r.lp_value >= lp - 1e-6


def test_time_limited_run_gives_a_valid_bound() -> None:
    p = random_problem(4, n_nodes=5, n_jobs=30, slots=16, sleep=True, feeders=True)
    ix = compile_index(p)
    lp = lp_bound(p, ix)
    model = build_milp(ix)
    full = colgen_bound(p, ix, model=model, initial_columns=1, columns_per_job=1)
    assert full.converged and full.iterations > 3
    r = colgen_bound(p, ix, time_limit=full.seconds / 3, model=model, initial_columns=1,
                     columns_per_job=1)
    assert r.bound <= lp + 1e-6
    assert r.iterations <= full.iterations


def test_must_run_job_without_eligible_node_gives_inf() -> None:
    p = random_problem(6, n_nodes=2, n_jobs=3, slots=8, droppable=False)
    gpus = max(n.gpus for n in p.nodes)
    jobs = [p.jobs[0].model_copy(update={"gpus": gpus + 1.0}), *p.jobs[1:]]
    p = p.model_copy(update={"jobs": jobs})
    r = colgen_bound(p)
    assert r.bound == math.inf
    assert r.converged


def test_must_run_jobs_that_cannot_all_run_give_inf() -> None:
    # one node, one slot, one GPU: two must-run one-GPU jobs of one slot cannot both run
    p = random_problem(7, n_nodes=1, n_jobs=2, slots=1, droppable=False, batteries=False)
    node = p.nodes[0].model_copy(update={"gpus": 1.0})
    p = p.model_copy(update={"nodes": [node]})
    ix = compile_index(p)
    assert lp_bound(p, ix) == math.inf
    r = colgen_bound(p, ix)
    assert r.bound == math.inf
    assert r.converged


def test_infeasible_whatever_the_placement_gives_inf() -> None:
    # idle load far above headroom on a node that cannot sleep: a Farkas ray of the
    # restricted master, checked on the full model
    p = random_problem(8, n_nodes=2, n_jobs=3, slots=6, batteries=False, tight_headroom=True)
    p = p.model_copy(update={"nodes": [p.nodes[0].model_copy(update={"idle_kw": 100.0}),
                                       *p.nodes[1:]]})
    ix = compile_index(p)
    assert lp_bound(p, ix) == math.inf
    for solver in ("ipm", "simplex"):
        r = colgen_bound(p, ix, lp_solver=solver)
        assert r.bound == math.inf
        assert r.converged
