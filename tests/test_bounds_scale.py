"""Bounds that scale past the full LP: implicit pricing, the implicit column generation and
the class-aggregated LP; checked against the built model, the LP and the MILP optimum."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optisched.bounds import lp_bound
from optisched.bounds.aggregate import aggregate_bound, linear_nodes, node_classes
from optisched.bounds.child import compute_bound
from optisched.bounds.files import read_bound, read_value, write_value
from optisched.bounds.implicit import implicit_colgen_bound
from optisched.bounds.pricing import Duals, StartPricer, start_column_count
from optisched.bounds.process import BoundRequest
from optisched.domain import Problem
from optisched.formulations.milp import build_milp, model_sets
from optisched.generate.tight import tight_problem
from optisched.index import Index, compile_index
from optisched.solvers import solve

TOL = 1e-6


def _tiny(seed: int, jobs: int = 8, nodes: int = 2, resources: int = 2) -> Problem:
    """A tight ICON-class instance of 24 one-hour slots (every node linear, every job must
    run, idle power and start-up/shut-down costs)."""
    problem, _ = tight_problem(jobs, nodes, n_resources=resources, slots=24, seed=seed)
    return problem


def _awake(problem: Problem) -> Problem:
    """``problem`` with nodes that cannot sleep (no ``on_link`` rows, ``on`` fixed)."""
    nodes = [n.model_copy(update={"can_sleep": False, "initially_on": True, "end_off": False})
             for n in problem.nodes]
    return problem.model_copy(update={"nodes": nodes})


def _optimum(problem: Problem) -> float:
    plan = solve(problem, "highs", time_limit=60, mip_gap=1e-9, greedy_start=False)
    assert plan.status.value == "optimal", plan.message
    return float(plan.objective)


# --------------------------------------------------------------------------- pricing


def _model_duals(index: Index, seed: int) -> tuple[object, np.ndarray, Duals]:
    """The full model, random row multipliers of the signs its rows allow, and the
    pricer's view of them."""
    model = build_milp(index)
    rng = np.random.default_rng(seed)
    y = rng.normal(size=model.n_rows) * 10.0
    y = np.where(np.isneginf(model.row_lo), np.minimum(y, 0.0), y)
    y = np.where(np.isposinf(model.row_hi), np.maximum(y, 0.0), y)
    N, T, R = index.N, index.T, len(index.resources)
    bal = np.zeros((N, T))
    mu = np.zeros((N, T, R))
    link: dict[int, np.ndarray] = {}
    for blk in model.blocks:
        rows = np.arange(blk.start, blk.start + blk.size)
        if blk.family == "power_balance":
            bal[blk.node, blk.slot] = y[rows]
        elif blk.family == "capacity":
            mu[blk.node, blk.slot, blk.resource] = -y[rows]
        elif blk.family == "on_link":
            for r, j, n, t in zip(rows, blk.job, blk.node, blk.slot, strict=True):
                o = index.find_option(int(j), int(n))
                link.setdefault(o, np.zeros(T))[t] = -y[r]
    return model, y, Duals(bal, mu, link)


@pytest.mark.parametrize("seed", [0, 3])
def test_pricer_reduced_costs_equal_c_minus_ATy_of_the_built_model(seed: int) -> None:
    problem = _tiny(seed)
    index = compile_index(problem)
    model, y, duals = _model_duals(index, seed)
    sets = model.sets  # type: ignore[attr-defined]
    free = ~sets.x_fixed
    cols = model.x[free]  # type: ignore[attr-defined]
    d = model.cost[cols] - model.A.tocsc()[:, cols].T @ y  # type: ignore[attr-defined]
    # the pricer leaves the assignment row out: add it back
    arow = np.full(index.J, -1)
    for blk in model.blocks:  # type: ignore[attr-defined]
        if blk.family == "assignment":
            arow[blk.job] = np.arange(blk.start, blk.start + blk.size)
    d = d + y[arow[sets.x_job[free]]]
    pricer = StartPricer(index)
    got = pricer.reduced_costs(duals, sets.x_opt[free], sets.x_start[free])
    assert np.abs(got - d).max() < 1e-8 * max(1.0, np.abs(d).max())
    # the cheapest start per option and job is the minimum over the model's columns
    priced = pricer.price(duals)
    want = np.full(index.opt_job.size, np.inf)
    np.minimum.at(want, sets.x_opt[free], d)
    assert np.allclose(priced.opt_best, want, rtol=0, atol=1e-8 * max(1.0, np.abs(d).max()))
    k = np.isfinite(want)
    rc = pricer.reduced_costs(duals, np.nonzero(k)[0], priced.opt_start[k])
    assert np.allclose(rc, want[k], atol=1e-8 * max(1.0, np.abs(d).max()))
    job_want = np.full(index.J, np.inf)
    np.minimum.at(job_want, sets.x_job[free], d)
    assert np.allclose(priced.job_best[~index.pinned], job_want[~index.pinned])
    assert start_column_count(index) >= int(free.sum())


def test_restricted_columns_are_the_allowed_subset_of_the_full_grid() -> None:
    index = compile_index(_tiny(1))
    full = model_sets(index)
    rng = np.random.default_rng(0)
    pick = rng.random(full.x_opt.size) < 0.3
    # a few pairs that are no columns (outside the windows, unknown options) are ignored
    opt = np.concatenate([full.x_opt[pick], [0, index.opt_job.size + 3, 1]])
    start = np.concatenate([full.x_start[pick], [index.T + 5, 0, -7]])
    sub = model_sets(index, allowed=(opt, start))
    want = set(zip(full.x_opt[pick | full.x_fixed].tolist(),
                   full.x_start[pick | full.x_fixed].tolist(), strict=True))
    assert set(zip(sub.x_opt.tolist(), sub.x_start.tolist(), strict=True)) == want
    assert sub.x_opt.size == len(want)


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scalable_bounds_lie_below_the_lp_and_the_optimum(seed: int) -> None:
    problem = _tiny(seed)
    index = compile_index(problem)
    assert linear_nodes(index).all()
    opt = _optimum(problem)
    lp = lp_bound(problem, index)
    imp = implicit_colgen_bound(index)
    agg = aggregate_bound(index)
    by_columns = aggregate_bound(index, whole=False)  # column generation, not the whole LP
    assert imp.converged and agg.converged and by_columns.converged
    assert agg.iterations == 1 and agg.columns >= by_columns.columns
    assert by_columns.bound == pytest.approx(agg.bound, rel=1e-6)
    # the implicit master drops the on-link rows: a relaxation of the LP
    assert imp.bound <= lp + TOL * abs(lp)
    assert lp <= opt + TOL * abs(opt)
    assert agg.bound <= opt + TOL * abs(opt)
    # converged: Farley's bound meets the master value
    assert imp.lp_value is not None and imp.bound == pytest.approx(imp.lp_value, rel=1e-5)
    assert agg.lp_value is not None and agg.bound == pytest.approx(agg.lp_value, rel=1e-5)
    # stopped after one master: still a bound, and no better than the converged one
    one = implicit_colgen_bound(index, max_iterations=1)
    assert one.bound <= imp.bound + TOL * abs(imp.bound)
    first = aggregate_bound(index, max_iterations=1)
    assert first.bound <= agg.bound + TOL * abs(agg.bound)


@pytest.mark.parametrize("seed", [0, 2])
def test_implicit_bound_equals_the_lp_where_no_node_sleeps(seed: int) -> None:
    problem = _awake(_tiny(seed))
    index = compile_index(problem)
    assert not index.can_sleep.any()  # no on-link rows: the implicit master's LP is the LP
    lp = lp_bound(problem, index)
    imp = implicit_colgen_bound(index, initial_columns=1, columns_per_job=2)
    assert imp.converged and imp.iterations > 1
    assert imp.bound == pytest.approx(lp, rel=1e-6)
    assert lp <= _optimum(problem) + TOL * abs(lp)


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("seed", [0, 4])
def test_aggregate_bound_equals_the_lp_on_one_awake_node(seed: int, whole: bool) -> None:
    problem = _awake(_tiny(seed, jobs=6, nodes=1))
    index = compile_index(problem)
    agg = aggregate_bound(index, whole=whole)
    assert agg.converged and agg.classes == 1
    assert agg.bound == pytest.approx(lp_bound(problem, index), rel=1e-6)


def test_node_classes_merge_equal_nodes_only() -> None:
    problem = _tiny(0, jobs=10, nodes=3)
    index = compile_index(problem)
    cls = node_classes(index)
    assert cls.tolist() == [0, 0, 0]  # one tariff, availability, speed: one class
    nodes = list(problem.nodes)
    nodes[2] = nodes[2].model_copy(update={"speed": 2.0})
    cls2 = node_classes(compile_index(problem.model_copy(update={"nodes": nodes})))
    assert cls2[0] == cls2[1] != cls2[2]
    agg3 = aggregate_bound(index)
    assert agg3.classes == 1 and agg3.bound <= _optimum(problem) + TOL * abs(agg3.bound)


def test_aggregate_bound_refuses_nonlinear_nodes() -> None:
    from optisched.generate import generate

    problem = generate("small", seed=0)
    index = compile_index(problem)
    if linear_nodes(index).all():
        pytest.skip("the small preset has only linear nodes")
    got = aggregate_bound(index)
    assert got.bound == -np.inf and "linear" in got.status


# --------------------------------------------------------------------------- the child


def test_bound_file_carries_its_source(tmp_path: Path) -> None:
    path = tmp_path / "bound.txt"
    assert np.isnan(read_value(path)) and read_bound(path)[1] is None
    write_value(path, 12.5)
    assert read_bound(path) == (12.5, None)
    write_value(path, -3.25, "aggregate")
    assert read_bound(path) == (-3.25, "aggregate") and read_value(path) == -3.25


@pytest.mark.parametrize("method", ["colgen", "lp"])
def test_child_bound_stops_at_the_converged_aggregated_lp_instead_of_the_full_model(
        method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optisched.bounds.child as child_mod

    problem = _tiny(1)
    monkeypatch.setattr(child_mod, "colgen_bound", lambda *a, **k: pytest.fail("colgen ran"))
    monkeypatch.setattr(child_mod, "lp_bound_result", lambda *a, **k: pytest.fail("lp ran"))
    monkeypatch.setattr(child_mod, "LP_AFTER_AGGREGATE_MAX_COLUMNS", 0)  # "a large model"
    out = tmp_path / "bound.txt"
    value = compute_bound(BoundRequest(problem, 60.0, method, aggregate_first=True), out)
    agg = aggregate_bound(compile_index(problem))
    assert agg.converged and value == pytest.approx(agg.bound, rel=1e-9)
    assert read_bound(out) == (pytest.approx(agg.bound, rel=1e-9), "aggregate")
    assert value <= _optimum(problem) + TOL * abs(value)


def test_child_bound_runs_a_small_lp_after_the_aggregated_one(tmp_path: Path) -> None:
    problem = _tiny(1)
    out = tmp_path / "bound.txt"
    value = compute_bound(BoundRequest(problem, 60.0, "lp", aggregate_first=True), out)
    lp = lp_bound(problem, compile_index(problem))
    assert value == pytest.approx(lp, rel=1e-6)  # the LP ran: its value is returned
    assert read_bound(out)[0] == pytest.approx(max(lp, aggregate_bound(
        compile_index(problem)).bound), rel=1e-9)


def test_child_bound_runs_the_aggregated_lp_first_and_keeps_the_larger(tmp_path: Path) -> None:
    problem = _tiny(1)
    index = compile_index(problem)
    out = tmp_path / "bound.txt"
    value = compute_bound(BoundRequest(problem, 60.0, "implicit", aggregate_first=True), out)
    imp = implicit_colgen_bound(index).bound
    agg = aggregate_bound(index).bound
    assert value == pytest.approx(imp, rel=1e-6)
    written, source = read_bound(out)
    assert written == pytest.approx(max(imp, agg), rel=1e-9)
    assert source == ("aggregate" if agg > imp else "implicit")
    assert written <= _optimum(problem) + TOL * abs(written)
