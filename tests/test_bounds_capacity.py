"""The job LP of the Lagrangian bound (capacity kept, energy at fixed duals ``π``) by
column generation: ``optisched.bounds.lagrangian.capacity_bound`` / ``_capacity_lp``."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from optisched.arrays import FloatArray
from optisched.bounds import lagrangian
from optisched.domain import Horizon, Job, Node, NodeSeries, Problem, Scenario, Tariff
from optisched.generate import random_problem
from optisched.index import Index, compile_index
from optisched.plan import Status
from optisched.solvers import REGISTRY, solve

needs_highs = pytest.mark.skipif("highs" not in REGISTRY, reason="highs not registered")


def _two_jobs_one_free_slot() -> Problem:
    """One node with one GPU (no PV, battery or idle draw), prices 0 and 0.5 per kWh in its
    two 1-hour slots; two 1-GPU jobs of 1 kW and one slot, drop penalty 10. The optimum
    runs one job in the free slot and the other in slot 1: 1 kWh · 0.5 = 0.5."""
    hz = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=2)
    return Problem(
        scenario=Scenario(horizon=hz),
        nodes=[Node(node_id="n", gpus=1, idle_kw=0.0, can_sleep=False)],
        jobs=[Job(job_id=f"j{k}", gpus=1, duration_min=60, power_kw=1.0, drop_penalty=10.0)
              for k in range(2)],
        tariffs={"default": Tariff(price=[0.0, 0.5], export_price=[0.0, 0.0],
                                   carbon_g_per_kwh=[0.0, 0.0])})


def _duals(ix: Index, load: FloatArray) -> tuple[FloatArray, float]:
    got = lagrangian.load_duals(ix, load)
    assert got is not None
    return got


def test_two_jobs_on_one_free_slot_get_the_known_value_above_the_subgradient() -> None:
    ix = compile_index(_two_jobs_one_free_slot())
    load = np.array([[1.0, 1.0]])  # the optimal plan's load
    pi, const = _duals(ix, load)
    assert pi[0] == pytest.approx([0.0, 0.5])
    # capacity relaxed: both jobs in the free slot, bound 0
    assert lagrangian.lagrangian_bound(ix, load) == pytest.approx(0.0, abs=1e-12)
    # the job LP: x_a0 + x_b0 ≤ 1, so one job pays 0.5 (its optimum, reached exactly)
    new = lagrangian.capacity_bound(ix, pi, const, upper=0.5, iterations=10)
    assert new == pytest.approx(0.5, abs=1e-9)
    # the projected subgradient steps approach 0.5 from below and never reach it
    # (μ_{k+1} = μ_k + 0.2 (0.5 − μ_k) on the free slot)
    old, steps = lagrangian._subgradient_search(ix, pi, const, 0.5, 10, math.inf)
    assert steps == 10
    assert old.value < 0.5 - 1e-3
    assert new > old.value
    # the whole bound (passes and capacity LP) and the MILP agree
    parts = lagrangian.bound_parts(ix, load, rounds=1, upper=0.5, capacity_iterations=10,
                                   placement=(np.array([0, 0]), np.array([0, 1])))
    assert parts is not None and parts.value == pytest.approx(0.5, abs=1e-9)
    # its optimal prices: the free slot 0.5 dearer than slot 1 (both may carry a price,
    # at most the drop penalty: −μ_0 − μ_1 + 2 min(μ_0, 0.5 + μ_1) = 0.5)
    assert parts.mu is not None
    assert parts.mu[0, 0, 0] - parts.mu[0, 1, 0] == pytest.approx(0.5, abs=1e-6)
    if "highs" in REGISTRY:
        exact = solve(_two_jobs_one_free_slot(), "highs", time_limit=20, mip_gap=1e-9)
        assert exact.objective == pytest.approx(0.5, abs=1e-9)


def _job_lp_value(ix: Index, pi: FloatArray, const: float) -> float:
    """The job LP of ``capacity_bound`` at ``π`` with every (option, start), built here
    from the problem's arrays in row form and solved by scipy (an independent check)."""
    T, R, N, J = ix.T, len(ix.resources), ix.N, ix.J
    share = lagrangian.idle_share(ix, pi)
    cost: list[float] = []
    a_rows: list[int] = []
    u_rows: list[int] = []
    u_cols: list[int] = []
    u_vals: list[float] = []
    for o in range(ix.opt_job.size):
        j, n, d = int(ix.opt_job[o]), int(ix.opt_node[o]), int(ix.opt_dur[o])
        for s in ix.feasible_starts(o).tolist():
            a, e = max(s, 0), min(s + d, T)
            k = len(cost)
            cost.append(float(ix.opt_power[o] * pi[n, a:e].sum() + ix.opt_latency_cost[o]
                              + ix.tardiness_cost(j, s + d)
                              + ix.usage[j, 0] * share[n, a:e].sum()))
            a_rows.append(j)
            for t in range(a, e):
                for r in range(R):
                    if ix.usage[j, r] > 0:
                        u_rows.append((n * T + t) * R + r)
                        u_cols.append(k)
                        u_vals.append(float(ix.usage[j, r]))
    K = len(cost)
    drop = np.where(np.isnan(ix.drop_penalty), np.inf, ix.drop_penalty)
    dj = np.nonzero(np.isfinite(drop) & ~ix.pinned)[0]
    c = np.array(cost + drop[dj].tolist())
    A_eq = sp.csr_matrix((np.ones(K + dj.size), (a_rows + dj.tolist(), np.arange(K + dj.size))),
                         shape=(J, K + dj.size))
    A_ub = sp.csr_matrix((u_vals, (u_rows, u_cols)), shape=(N * T * R, K + dj.size))
    b_ub = (ix.capacity[:, None, :] * ix.available[:, :, None]).reshape(-1)
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=np.ones(J), bounds=(0, 1),
                  method="highs")
    assert res.status == 0, res.message
    return const + float(res.fun)


CASES = [
    (3, {"sleep": True}),
    (5, {"feeders": True, "degradation": True}),
    (8, {"demand_charge": True, "sleep": True}),
]


@pytest.mark.parametrize(("seed", "features"), CASES)
def test_converged_value_is_the_job_lp_built_directly(seed: int,
                                                      features: dict[str, bool]) -> None:
    p = random_problem(seed, n_nodes=2, n_jobs=9, slots=8, **features)  # type: ignore[arg-type]
    ix = compile_index(p)
    plan = solve(p, "baseline")
    assert plan.flows is not None
    pi, const = _duals(ix, np.asarray(plan.flows.load))
    cut = lagrangian._flat_cut(ix, pi, const)
    top, steps, ok, _, cols = lagrangian._capacity_lp(ix, cut, 200, math.inf)
    assert ok and steps < 200 and cols is not None  # converged before the cap
    direct = _job_lp_value(ix, pi, const)
    assert top.value == pytest.approx(direct, rel=1e-7, abs=1e-7)
    # not below the plain bound at μ = 0, nor the subgradient search's
    plain = const + lagrangian._jobs_min(ix, pi, None, lagrangian.idle_share(ix, pi)).total
    sub, _ = lagrangian._subgradient_search(ix, pi, const, float(plan.objective), 30,
                                            math.inf)
    assert top.value >= max(plain, sub.value) - 1e-7


@needs_highs
@pytest.mark.parametrize(("seed", "features"), CASES)
def test_bound_with_the_job_lp_is_below_the_milp_optimum(seed: int,
                                                         features: dict[str, bool]) -> None:
    """PV and a battery on every node; 9 jobs on 2 nodes, so capacity binds."""
    p = random_problem(seed, n_nodes=2, n_jobs=9, slots=8, battery_share=1.0,
                       **features)  # type: ignore[arg-type]
    ix = compile_index(p)
    assert (ix.pv > 0).any() and (ix.battery_kwh > 0).any()
    exact = solve(p, "highs", time_limit=30, mip_gap=1e-9, greedy_start=False)
    assert exact.status is Status.OPTIMAL and exact.flows is not None
    assert exact.objective is not None
    base = solve(p, "baseline")
    assert base.flows is not None
    tol = 1e-6 * max(1.0, abs(exact.objective))
    for plan in (exact, base):
        assert plan.flows is not None
        load = np.asarray(plan.flows.load)
        plain = lagrangian.lagrangian_bound(ix, load)
        parts = lagrangian.bound_parts(ix, load, rounds=3, upper=float(base.objective),
                                       capacity_iterations=80,
                                       placement=(plan.node, plan.start))
        assert plain is not None and parts is not None
        assert plain - tol <= parts.value <= exact.objective + tol
        drop = lagrangian._drops(ix)
        assert parts.value == pytest.approx(parts.const + float(np.minimum(drop,
                                                                           parts.best).sum()))


def test_no_iteration_starts_past_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each master solve starts only when the last iteration's time still fits before the
    deadline; a past deadline or a first evaluation too long for the time left runs
    nothing."""
    p = random_problem(3, n_nodes=2, n_jobs=9, slots=8, sleep=True)
    ix = compile_index(p)
    plan = solve(p, "baseline")
    assert plan.flows is not None
    pi, const = _duals(ix, np.asarray(plan.flows.load))
    calls: list[str] = []
    real_min, real_solve = lagrangian._jobs_min, lagrangian._JobLp.solve

    def slow_min(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append("min")
        time.sleep(0.05)
        return real_min(*args, **kwargs)

    starts: list[float] = []

    def timed_solve(self, deadline):  # type: ignore[no-untyped-def]
        starts.append(time.perf_counter())
        return real_solve(self, deadline)

    monkeypatch.setattr(lagrangian, "_jobs_min", slow_min)
    monkeypatch.setattr(lagrangian._JobLp, "solve", timed_solve)
    # past deadline: nothing at all
    top, steps, ok, _, cols = lagrangian._capacity_lp(ix, lagrangian._flat_cut(ix, pi, const), 50,
                                                   time.perf_counter() - 1.0)
    assert ok and steps == 0 and cols is None
    assert not calls and not starts and top.value == -math.inf
    # the first evaluation is expected to take longer than the time left: nothing
    assert lagrangian.capacity_parts(ix, pi, const, 1.0, 50, time.perf_counter() + 0.5,
                                     step_seconds=10.0) is None
    assert not calls and not starts
    # a short deadline: every solve starts before it, with the last iteration's time left
    deadline = time.perf_counter() + 0.4
    top, steps, _, _, _ = lagrangian._capacity_lp(ix, lagrangian._flat_cut(ix, pi, const), 200,
                                                  deadline)
    assert starts and steps < 200
    assert starts[0] < deadline
    # solve i started only when it and the last iteration's time (≈ the gap between the
    # last two starts) still ended before the deadline
    for i in range(1, len(starts)):
        assert starts[i] + (starts[i] - starts[i - 1]) < deadline + 0.01
    assert math.isfinite(top.value)


def test_bound_parts_finds_the_overloadable_chains_once_for_its_master(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The chains with an overloadable slot depend on the index only: one computation for
    the master that takes every pass's cut, the same chains as the master computing its
    own, and the same bound."""
    p = random_problem(3, n_nodes=2, n_jobs=9, slots=8, sleep=True)
    ix = compile_index(p)
    plan = solve(p, "baseline")
    assert plan.flows is not None
    load = np.asarray(plan.flows.load)
    kw = {"rounds": 3, "upper": float(plan.objective), "capacity_iterations": 80}
    alone = lagrangian.bound_parts(ix, load, **kw)  # type: ignore[arg-type]
    found: list[np.ndarray] = []
    masters: list[lagrangian._JobLp] = []
    real_chains, real_init = lagrangian._overloadable_chains, lagrangian._JobLp.__init__

    def counted(index: Index) -> np.ndarray:
        found.append(real_chains(index))
        return found[-1]

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        real_init(self, *args, **kwargs)
        masters.append(self)

    monkeypatch.setattr(lagrangian, "_overloadable_chains", counted)
    monkeypatch.setattr(lagrangian._JobLp, "__init__", init)
    parts = lagrangian.bound_parts(ix, load, **kw)  # type: ignore[arg-type]
    assert parts is not None and alone is not None
    # one master for all passes, a cut from each
    assert parts.passes > 1 and len(masters) == 1 and len(masters[0].cuts) == parts.passes
    assert len(found) == 1 and found[0].any()
    # by the definition: a chain (node n, resource r) has a slot where the summed use of
    # the jobs that could run there exceeds the capacity
    R = len(ix.resources)
    over = lagrangian._overloadable(ix).reshape(ix.N, ix.T, R)
    assert [bool(over[c // R, :, c % R].any()) for c in range(ix.N * R)] == found[0].tolist()
    assert masters[0].needs is found[0]
    assert parts.value == alone.value and parts.steps == alone.steps


def _pv_kink() -> Problem:
    """One node with two GPUs and 1 kW of PV in each of its two 1-hour slots, import 1 per
    kWh, export 0 (no battery or idle draw); two 1-GPU jobs of 1 kW and one slot (drop
    penalty 10). The energy cost of a load ``L`` is ``max(0, L_0 − 1) + max(0, L_1 − 1)``;
    the optimum runs one job in each slot: 0."""
    hz = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=2)
    return Problem(
        scenario=Scenario(horizon=hz),
        nodes=[Node(node_id="n", gpus=2, idle_kw=0.0, can_sleep=False)],
        node_series={"n": NodeSeries(pv_kw=[1.0, 1.0])},
        jobs=[Job(job_id=f"j{k}", gpus=1, duration_min=60, power_kw=1.0, drop_penalty=10.0)
              for k in range(2)],
        tariffs={"default": Tariff(price=[1.0, 1.0], export_price=[0.0, 0.0],
                                   carbon_g_per_kwh=[0.0, 0.0])})


def test_two_cuts_price_the_kink_that_each_alone_misses() -> None:
    """Hand-computed: the cut at the load (2, 0) is ``V ≥ L_0 − 1`` (duals 1 and 0), the one
    at (0, 2) ``V ≥ L_1 − 1``. Alone, each lets both jobs run where its dual is 0: bound
    −1. Together the master takes the maximum of the two: with ``L_0 + L_1 = 2`` at least
    0, the optimum; its cut weights are a convex combination (½, ½)."""
    ix = compile_index(_pv_kink())
    c1 = lagrangian.load_cut(ix, np.array([[2.0, 0.0]]))
    c2 = lagrangian.load_cut(ix, np.array([[0.0, 2.0]]))
    assert c1 is not None and c2 is not None
    np.testing.assert_allclose(c1.pi, [[1.0, 0.0]], atol=1e-9)
    np.testing.assert_allclose(c2.pi, [[0.0, 1.0]], atol=1e-9)
    assert c1.total == pytest.approx(-1.0) and c2.total == pytest.approx(-1.0)  # 1 − 2
    for cut in (c1, c2):
        alone = lagrangian._capacity_lp(ix, cut, 50, math.inf)[0]
        assert alone.value == pytest.approx(-1.0, abs=1e-7)
    first, _, _, _, master = lagrangian._capacity_lp(ix, c1, 50, math.inf)
    assert master is not None
    both, _, _, _, master = lagrangian._capacity_lp(ix, c2, 50, math.inf, master=master)
    assert master is not None and len(master.cuts) == 2
    assert first.value == pytest.approx(-1.0, abs=1e-7)
    assert both.value == pytest.approx(0.0, abs=1e-6)
    assert both.w is not None
    np.testing.assert_allclose(both.w.sum(axis=0), 1.0)
    np.testing.assert_allclose(both.pi, [[0.5, 0.5]], atol=1e-6)


@needs_highs
@pytest.mark.parametrize(("seed", "features"), CASES)
def test_the_master_of_all_cuts_bounds_at_least_each_cut_alone(
        seed: int, features: dict[str, bool], monkeypatch: pytest.MonkeyPatch) -> None:
    """Batteries and PV make the dispatch value curved: the master that keeps every pass's
    cut is a restriction of the job LP of each cut alone, so its converged bound is at
    least every one of those (each solved to convergence here), and still below HiGHS's
    proven optimum."""
    p = random_problem(seed, n_nodes=2, n_jobs=9, slots=8, battery_share=1.0,
                       **features)  # type: ignore[arg-type]
    ix = compile_index(p)
    exact = solve(p, "highs", time_limit=30, mip_gap=1e-9, greedy_start=False)
    assert exact.status is Status.OPTIMAL and exact.objective is not None
    base = solve(p, "baseline")
    assert base.flows is not None
    masters: list[lagrangian._JobLp] = []
    real_init = lagrangian._JobLp.__init__

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        real_init(self, *args, **kwargs)
        masters.append(self)

    monkeypatch.setattr(lagrangian._JobLp, "__init__", init)
    parts = lagrangian.bound_parts(ix, np.asarray(base.flows.load), rounds=3,
                                   upper=float(base.objective), capacity_iterations=800,
                                   placement=(base.node, base.start))
    assert parts is not None and len(masters) == 1
    cuts = list(masters[0].cuts)
    assert len(cuts) == parts.passes > 1
    monkeypatch.undo()
    alone = [lagrangian._capacity_lp(ix, lagrangian._flat_cut(ix, c.pi, c.total), 400,
                                     math.inf)[0].value for c in cuts]
    tol = 1e-6 * max(1.0, abs(exact.objective))
    assert max(alone) - tol <= parts.value <= exact.objective + tol
    drop = lagrangian._drops(ix)
    assert parts.value == pytest.approx(parts.const + float(np.minimum(drop, parts.best).sum()))
