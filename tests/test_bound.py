"""Lower bounds: the weak-duality bound from any multipliers (``dual_value``), the LP
bound without crossover, and the bound child process (``BoundProcess``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from optisched.bounds import BoundProcess, dual_value, implied_upper_bounds, lp_bound_result
from optisched.formulations.milp import build_milp
from optisched.generate.random_problems import random_problem
from optisched.index import compile_index
from optisched.solvers import solve
from optisched.solvers.highs import highs_from_model
from optisched.solvers.options import HighsOptions

REL = 1e-6
"""Relative tolerance between an LP value and its dual bound."""


def _lp(seed: int, **kw: bool) -> tuple[float, np.ndarray, object, object]:
    p = random_problem(seed, n_nodes=3, n_jobs=6, slots=10, **kw)  # type: ignore[arg-type]
    idx = compile_index(p)
    model = build_milp(idx)
    h = highs_from_model(model, relax=True)
    h.setOptionValue("solver", "simplex")
    h.run()
    return (float(h.getInfo().objective_function_value), np.asarray(h.getSolution().row_dual),
            model, idx)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dual_value_at_optimal_duals_equals_the_lp(seed: int) -> None:
    value, y, model, idx = _lp(seed, sleep=True, feeders=True)
    for keep in (True, False):
        assert dual_value(model, idx, y, keep) == pytest.approx(value, rel=REL, abs=REL)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [0, 3])
def test_dual_value_of_any_multipliers_is_below_the_optimum(seed: int) -> None:
    value, y, model, idx = _lp(seed, sleep=True, demand_charge=True)
    opt = solve(random_problem(seed, n_nodes=3, n_jobs=6, slots=10, sleep=True,
                               demand_charge=True), "highs", time_limit=30).objective
    rng = np.random.default_rng(seed)
    for scale in (0.0, 0.5, 2.0):
        noisy = y * scale + rng.normal(0, 0.05, y.size)
        for keep in (True, False):
            b = dual_value(model, idx, noisy, keep)  # type: ignore[arg-type]
            assert b <= value + REL * max(1.0, abs(value))
            assert opt is not None and b <= opt + 1e-9


def test_implied_upper_bounds_are_finite_and_hold_for_the_optimum() -> None:
    p = random_problem(4, n_nodes=3, n_jobs=6, slots=10)
    idx = compile_index(p)
    model = build_milp(idx)
    ub = implied_upper_bounds(model, idx)
    assert np.isfinite(ub).all()
    plan = solve(p, "highs", time_limit=30)
    assert plan.flows is not None
    assert (plan.flows.grid_import <= ub[model.grid_import] + 1e-9).all()


def test_lp_bound_without_crossover_equals_with_crossover() -> None:
    p = random_problem(5, n_nodes=3, n_jobs=8, slots=12, sleep=True, feeders=True)
    a = lp_bound_result(p, crossover=False)
    b = lp_bound_result(p, crossover=True)
    assert a.bound == pytest.approx(b.bound, rel=REL, abs=REL)
    assert a.bound <= b.bound + REL * max(1.0, abs(b.bound))


def test_bound_process_returns_the_lp_bound() -> None:
    p = random_problem(6, n_nodes=3, n_jobs=6, slots=10)
    proc = BoundProcess(p, time_limit=30.0)
    got = proc.poll(wait=60.0)
    assert proc.done
    assert got == pytest.approx(lp_bound_result(p).bound, rel=REL, abs=REL)
    proc.stop()


def test_bound_process_stop_terminates_the_child() -> None:
    p = random_problem(6, n_nodes=3, n_jobs=6, slots=10)
    proc = BoundProcess(p, time_limit=30.0)
    proc.stop()
    assert proc.done and proc.proc.poll() is not None
    assert not Path(proc.dir.name).exists()


def test_script_without_main_guard_runs_lns_with_its_bound(tmp_path: Path) -> None:
    """A user script with no ``if __name__ == "__main__"`` guard: the bound child must
    not re-run it (multiprocessing's spawn would)."""
    script = tmp_path / "plan.py"
    script.write_text(textwrap.dedent("""
        from optisched.generate.random_problems import random_problem
        from optisched.solvers import solve
        p = random_problem(7, n_nodes=3, n_jobs=8, slots=12)
        plan = solve(p, "lns", time_limit=6, lp_bound=True, max_iterations=2)
        print("RAN", plan.status.value, plan.bound is not None)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("RAN") == 1
    assert "True" in out.stdout


def test_restricted_model_keeps_only_allowed_columns_and_stays_a_restriction() -> None:
    p = random_problem(8, n_nodes=3, n_jobs=6, slots=10, droppable=False)
    idx = compile_index(p)
    full = solve(p, "highs", time_limit=30)
    assert full.objective is not None
    # allow only the optimum's columns plus each job's earliest start on every option
    o_opt = np.array([idx.find_option(j, int(full.node[j])) for j in range(idx.J)])
    s_opt = full.start.astype(np.int64)
    o_more = np.arange(idx.opt_job.size)
    s_more = idx.opt_earliest.astype(np.int64)
    allowed = (np.concatenate([o_opt, o_more]), np.concatenate([s_opt, s_more]))
    model = build_milp(idx, allowed=allowed)
    pairs = set(zip(model.sets.x_opt.tolist(), model.sets.x_start.tolist(), strict=True))
    assert pairs <= set(zip(allowed[0].tolist(), allowed[1].tolist(), strict=True))
    assert len(pairs) < build_milp(idx).sets.x_opt.size
    from optisched.solvers.base import SolveOptions
    from optisched.solvers.highs import run_highs

    restricted = run_highs(p, idx, SolveOptions(time_limit=30), model=model)
    assert restricted.objective == pytest.approx(full.objective, rel=1e-6)
    only_early = build_milp(idx, allowed=(o_more, s_more))
    r2 = run_highs(p, idx, SolveOptions(time_limit=30, params=HighsOptions(explain=False)),
                   model=only_early)
    assert not r2.status.has_plan or (r2.objective or 0.0) >= full.objective - 1e-6


def test_bound_process_restricted_master_improves_a_poor_incumbent() -> None:
    from optisched.dispatch import dispatch
    from optisched.evaluate import evaluate
    from optisched.plan import Plan, Status

    p = random_problem(9, n_nodes=3, n_jobs=8, slots=12, droppable=False)
    idx = compile_index(p)
    poor = solve(p, "baseline")
    assert poor.objective is not None
    from optisched.solvers.lns.restricted import RestrictedMasterProcess

    proc = RestrictedMasterProcess(p, time_limit=20.0)
    proc.share_incumbent(poor.node, poor.start)
    best = None
    for _ in range(200):
        proc.poll(wait=0.1)
        got = proc.restricted_solution()
        if got is not None:
            best = got
        if proc.done:
            break
    got = proc.restricted_solution()
    best = got if got is not None else best
    proc.stop()
    assert best is not None
    node, start = best
    res = dispatch(idx, node, start)
    plan = Plan(solver="lns", status=Status.FEASIBLE, job_ids=list(idx.job_ids),
                node_ids=list(idx.node_ids), node=node, start=start, flows=res.flows)
    ev = evaluate(p, plan, idx)
    assert ev.feasible
    assert ev.objective <= poor.objective + 1e-9


def test_bound_process_colgen_method_reaches_the_lp_bound() -> None:
    p = random_problem(10, n_nodes=3, n_jobs=8, slots=12, sleep=True)
    proc = BoundProcess(p, time_limit=30.0, method="colgen")
    got = proc.poll(wait=90.0)
    proc.stop()
    lp = lp_bound_result(p).bound
    assert got is not None
    assert got <= lp + REL * max(1.0, abs(lp))
    assert got == pytest.approx(lp, rel=1e-5, abs=1e-5)


def test_restricted_master_switches_to_the_full_milp_when_the_lp_gap_is_large(
        tmp_path: Path) -> None:
    """Incumbent far above the LP: the child solves the full MILP and proves a bound."""
    from optisched.bounds import read_placement
    from optisched.bounds.files import save_npz as _save_npz
    from optisched.solvers.lns.restricted import restricted_master

    p = random_problem(12, n_nodes=3, n_jobs=8, slots=12, sleep=True, droppable=False)
    poor = solve(p, "baseline")
    assert poor.objective is not None
    place = tmp_path / "placement.npz"
    lp = lp_bound_result(p, placement_path=str(place)).bound
    placement = read_placement(str(place))
    assert placement is not None
    _save_npz(tmp_path / "incumbent.npz", node=poor.node, start=poor.start)
    opt = solve(p, "highs", time_limit=30)
    assert opt.objective is not None
    found: list[tuple[np.ndarray, np.ndarray]] = []
    proven: list[float] = []
    low_lp = opt.objective * 0.5  # pretend the LP is weak: gap far above FULL_MILP_GAP
    restricted_master(p, placement, tmp_path / "incumbent.npz", 20.0,
                      lambda n, s: found.append((n, s)), lp_value=low_lp,
                      proven=proven.append)
    assert proven and lp - 1e-6 <= proven[0] <= opt.objective + 1e-6
    assert found
