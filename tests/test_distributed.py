"""The decomposed solver ``distributed``: partitions, coarse assignment, rounds, bound, engines."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from optisched.bounds import lagrangian
from optisched.bounds.lagrangian import lagrangian_bound
from optisched.domain import Feeder, Horizon, Job, Node, Problem, Scenario, Tariff
from optisched.evaluate import evaluate
from optisched.generate import generate
from optisched.index import compile_index
from optisched.plan import Plan
from optisched.solvers import solve
from optisched.solvers.distributed import search as dsearch
from optisched.solvers.distributed.backends import ray_available
from optisched.solvers.distributed.coarse import Assignment
from optisched.solvers.distributed.partition import (
    Partitioning,
    job_work,
    node_capacity,
    partition_nodes,
    restrict_index,
    sub_problem,
)
from optisched.solvers.distributed.worker import PartitionWorker, SolveResult, SolveTask

T = 8
ROOT = Path(__file__).resolve().parents[1]


def _zone_problem(price_b: float = 0.30, jobs_b: int = 3, free_job: bool = False) -> Problem:
    """Two feeders ``fa`` and ``fb`` of two battery nodes each; a resource ``zone_a`` /
    ``zone_b`` keeps each job on its feeder (independent partitions), ``free_job`` adds one
    job that fits both."""
    hz = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=T)
    nodes = []
    for f, tariff in (("a", "ta"), ("b", "tb")):
        for k in range(2):
            nodes.append(Node(node_id=f"{f}{k}", gpus=1, resources={f"zone_{f}": 1.0,
                                                                   "any": 1.0},
                              idle_kw=0.05, can_sleep=True, initially_on=False,
                              startup_cost=0.02, grid_kw=3.0, battery_kwh=2.0,
                              feeder=f"f{f}", tariff=tariff))
    jobs = []
    for f, n in (("a", 3), ("b", jobs_b)):
        for k in range(n):
            jobs.append(Job(job_id=f"j{f}{k}", gpus=1, resources={f"zone_{f}": 1.0},
                            duration_min=60 * (1 + k % 2), power_kw=1.0 + 0.3 * k,
                            drop_penalty=5.0))
    if free_job:
        jobs.append(Job(job_id="free", gpus=1, resources={"any": 1.0}, duration_min=120,
                        power_kw=2.0, drop_penalty=50.0))
    prices_a = [0.20, 0.25, 0.30, 0.35, 0.30, 0.25, 0.20, 0.22]
    return Problem(
        scenario=Scenario(horizon=hz), nodes=nodes, jobs=jobs,
        tariffs={"ta": Tariff(price=prices_a, export_price=[0.0] * T,
                              carbon_g_per_kwh=[0.0] * T),
                 "tb": Tariff.constant(T, price=price_b)},
        feeders={"fa": Feeder(headroom_kw=[4.0] * T), "fb": Feeder(headroom_kw=[4.0] * T)})


def test_partitions_keep_feeders_whole_and_regions_together() -> None:
    p = generate("large", seed=0)
    ix = compile_index(p)
    parts = partition_nodes(ix, 4)
    assert parts.count == 4
    assert sorted(np.concatenate(parts.nodes).tolist()) == list(range(ix.N))
    for f in range(len(ix.feeder_ids)):
        members = np.nonzero(ix.feeder_of == f)[0]
        assert np.unique(parts.part_of[members]).size <= 1, "a feeder spans partitions"
    # never more partitions than dispatch groups
    assert partition_nodes(compile_index(_zone_problem()), 5).count == 2


def test_restricted_index_equals_the_compiled_sub_problem() -> None:
    p = generate("city", seed=4)
    ix = compile_index(p)
    rng = np.random.default_rng(1)
    for nodes in partition_nodes(ix, 3).nodes:
        jobs = np.sort(rng.choice(ix.J, ix.J // 2, replace=False))
        a = restrict_index(ix, nodes, jobs)
        b = compile_index(sub_problem(p, nodes, jobs))
        for name in a.__dataclass_fields__:
            x, y = getattr(a, name), getattr(b, name)
            if name == "scenarios":  # one scenario: the index's own arrays, axis in front
                for f in x.__dataclass_fields__:
                    if f != "views":
                        xf, yf = getattr(x, f), getattr(y, f)
                        assert (np.array_equal(xf, yf, equal_nan=True)
                                if isinstance(xf, np.ndarray) else xf == yf), f"scenarios.{f}"
            elif isinstance(x, np.ndarray):
                assert np.array_equal(x, y, equal_nan=True), name
            else:
                assert x == y, name


def test_independent_partitions_give_the_single_process_optimum() -> None:
    p = _zone_problem()
    exact = solve(p, "highs", time_limit=60, mip_gap=1e-9, seed=0)
    assert exact.status.value == "optimal"
    plan = solve(p, "distributed", time_limit=60, seed=0, partitions=2, workers=1, rounds=1)
    assert plan.status.has_plan, plan.message
    assert plan.info["partitions"] == 2 and plan.info["mobile_jobs"] == 0
    assert plan.objective == pytest.approx(exact.objective, rel=1e-6, abs=1e-9)
    assert plan.bound is not None and plan.bound <= exact.objective + 1e-6


def test_a_job_cheaper_in_another_partition_is_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    """The coarse model is made to put every job on partition 0 (feeder ``fa``); the job
    that fits both feeders is cheaper on ``fb`` (flat 0.05) and the rounds move it."""
    p = _zone_problem(price_b=0.05, jobs_b=0, free_job=True)
    ix = compile_index(p)

    def all_on_first(index, part_of, best, option, time_limit=0.0):  # type: ignore[no-untyped-def]
        return Assignment(np.where(np.diff(index.opt_job_ptr) > 0, 0, -1).astype(np.int64),
                          np.full(index.J, np.nan))

    monkeypatch.setattr(dsearch, "assign_jobs", all_on_first)
    first = solve(p, "distributed", time_limit=60, seed=0, partitions=2, workers=1,
                  rounds=0, sub_solver="greedy")
    moved = solve(p, "distributed", time_limit=60, seed=0, partitions=2, workers=1,
                  rounds=2, sub_solver="greedy")
    free = ix.job_pos["free"]
    assert ix.node_ids[int(first.node[free])].startswith("a")
    assert ix.node_ids[int(moved.node[free])].startswith("b")
    assert moved.info["jobs_moved"] >= 1 and moved.info["pairs_accepted"] >= 1
    assert moved.objective < first.objective - 1e-6
    assert evaluate(p, moved).feasible


def _four_droppable_jobs_on(monkeypatch: pytest.MonkeyPatch, part: int) -> Problem:
    """``_zone_problem`` with four droppable 6-hour jobs that fit either feeder instead of
    its jobs, and the coarse model made to put all of them on partition ``part``."""
    p = _zone_problem(jobs_b=0)
    jobs = [Job(job_id=f"m{k}", gpus=1, resources={"any": 1.0}, duration_min=360,
                power_kw=1.0, drop_penalty=20.0) for k in range(4)]

    def all_on(index, part_of, best, option, time_limit=0.0):  # type: ignore[no-untyped-def]
        return Assignment(np.full(index.J, part, dtype=np.int64), np.full(index.J, np.nan))

    monkeypatch.setattr(dsearch, "assign_jobs", all_on)
    return p.model_copy(update={"jobs": jobs})


def test_jobs_a_first_solve_drops_are_placed_by_a_later_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The coarse model is made to put four droppable 6-hour jobs that fit either feeder
    on feeder ``fa``'s two one-GPU nodes: its first solve places two and drops two, and
    those two are passed on to feeder ``fb``'s first solve, which places them; without the
    passing on (a single first solve of ``fa`` and no rounds) two are dropped."""
    p = _four_droppable_jobs_on(monkeypatch, 0)
    plan = solve(p, "distributed", time_limit=60, seed=0, partitions=2, workers=1, rounds=0,
                 sub_solver="greedy")
    assert plan.status.has_plan, plan.message
    assert plan.info["passed_on"] == 2
    assert (plan.node >= 0).all(), "a job passed on was dropped"
    ix = compile_index(p)
    feeders = {ix.node_ids[int(n)][0] for n in plan.node}
    assert feeders == {"a", "b"}
    ev = evaluate(p, plan)
    assert ev.feasible and ev.costs["drop"] == pytest.approx(0.0)
    assert plan.objective == pytest.approx(ev.objective, rel=1e-9, abs=1e-9)
    monkeypatch.setattr(dsearch, "PASS_FILL", 0.0)  # no capacity to pass on to
    kept = solve(p, "distributed", time_limit=60, seed=0, partitions=2, workers=1, rounds=0,
                 sub_solver="greedy", repair_waves=0)
    assert kept.info["passed_on"] == 0 and int((kept.node < 0).sum()) == 2
    ev_kept = evaluate(p, kept)
    assert kept.objective == pytest.approx(ev_kept.objective, rel=1e-9)
    assert ev_kept.costs["drop"] == pytest.approx(40.0)  # the two drop penalties
    assert kept.objective > plan.objective


def test_rounds_move_dropped_jobs_to_a_partition_with_room(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The coarse model is made to put the four droppable 6-hour jobs on feeder ``fb``,
    and nothing is passed on (``PASS_FILL = 0``): it drops two; the rounds place them (on
    ``fa``, which has room)."""
    p = _four_droppable_jobs_on(monkeypatch, 1)
    monkeypatch.setattr(dsearch, "PASS_FILL", 0.0)
    kw = dict(time_limit=60, seed=0, partitions=2, workers=1, sub_solver="greedy",
              repair_waves=0)
    first = solve(p, "distributed", rounds=0, **kw)  # type: ignore[arg-type]
    assert first.info["passed_on"] == 0 and int((first.node < 0).sum()) == 2
    moved = solve(p, "distributed", rounds=2, **kw)  # type: ignore[arg-type]
    assert (moved.node >= 0).all() and moved.info["pairs_accepted"] >= 1
    assert evaluate(p, moved).feasible and moved.objective < first.objective - 30.0


def test_a_dropped_job_is_priced_only_where_its_gpu_slots_fit() -> None:
    """``_only_where_room``: partition 0 (4 nodes of 1 GPU × 8 slots: 32 GPU-slots, 27.2
    at ``PASS_FILL``) holds 24 GPU-slots of placed jobs, partition 1 none; a dropped
    6-slot job keeps its price on partition 1 only, a dropped 2-slot job on both."""
    from types import SimpleNamespace

    hz = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=T)
    nodes = [Node(node_id=f"n{k}", gpus=1) for k in range(8)]
    jobs = [Job(job_id="big", gpus=1, duration_min=360, power_kw=1.0, drop_penalty=9.0),
            Job(job_id="small", gpus=1, duration_min=120, power_kw=1.0, drop_penalty=9.0)]
    jobs += [Job(job_id=f"p{k}", gpus=1, duration_min=360, power_kw=1.0,
                 drop_penalty=9.0)
             for k in range(4)]
    p = Problem(scenario=Scenario(horizon=hz), nodes=nodes, jobs=jobs,
                tariffs={"default": Tariff.constant(T, price=0.2)})
    ix = compile_index(p)
    parts = SimpleNamespace(count=2, capacity=np.array([32.0, 32.0]))
    node = np.array([-1, -1, 0, 1, 2, 3])  # big and small dropped; 4 × 6 slots placed
    run = SimpleNamespace(index=ix, mobile=np.arange(6), node=node,
                          part_of_job=np.array([0, 0, 0, 0, 0, 0]), parts=parts,
                          work=job_work(ix))
    best = np.ones((2, 6))
    dsearch._Run._only_where_room(run, best)  # type: ignore[arg-type]
    assert best[:, 0].tolist() == [math.inf, 1.0]  # 27.2 − 24 < 6: no room on 0
    assert best[:, 1].tolist() == [1.0, 1.0]  # 2 ≤ 3.2
    assert (best[:, 2:] == 1.0).all()  # placed jobs: unchanged


def test_a_partition_without_a_plan_is_merged(monkeypatch: pytest.MonkeyPatch) -> None:
    """The coarse model is made to put four must-run 8-hour jobs on feeder ``fa``'s two
    one-GPU nodes: that partition has no plan, is merged with ``fb``'s, and the merged
    partition (four nodes) runs all four."""
    p = _zone_problem(jobs_b=0)
    jobs = [Job(job_id=f"m{k}", gpus=1, resources={"any": 1.0}, duration_min=60 * T,
                power_kw=1.0) for k in range(4)]
    p = p.model_copy(update={"jobs": jobs})

    def all_on_first(index, part_of, best, option, time_limit=0.0):  # type: ignore[no-untyped-def]
        return Assignment(np.zeros(index.J, dtype=np.int64), np.full(index.J, np.nan))

    monkeypatch.setattr(dsearch, "assign_jobs", all_on_first)
    plan = solve(p, "distributed", time_limit=60, seed=0, partitions=2, workers=1, rounds=0,
                 sub_solver="greedy")
    assert plan.status.has_plan, plan.message
    assert plan.info["merges"] == 1 and plan.info["partitions"] == 1
    assert (plan.node >= 0).all() and evaluate(p, plan).feasible


def test_an_assembled_plan_passes_the_evaluator() -> None:
    p = generate("medium", seed=2)
    plan = solve(p, "distributed", time_limit=60, seed=0, partitions=3, workers=1, rounds=1,
                 sub_solver="greedy", greedy_moves=50)
    assert plan.status.has_plan, plan.message
    assert plan.info["partitions"] == 3
    ev = evaluate(p, plan)
    assert ev.feasible, ev.violations[:3]
    assert plan.objective == pytest.approx(ev.objective)
    assert plan.bound is not None and plan.bound <= plan.objective


def test_the_bound_is_below_the_optimum_and_its_shares_add_up() -> None:
    """With one pass and no capacity steps the partitions' shares add up to exactly the
    whole problem's Lagrangian bound at the plan's load (the bound decomposes by
    partition); capacity prices per partition lift it; the default shares (midpoint
    passes too) stay below HiGHS's proven optimum and every plan found. (The midpoint
    passes need not lift the global bound: each partition keeps its own best share, and
    with the probe load's duals the plain pass is already 209.34 against the optimum
    212.68, the default shares 209.33.)"""
    p = generate("small", seed=1)
    exact = solve(p, "highs", time_limit=120, mip_gap=1e-9, seed=0)
    assert exact.status.value == "optimal"
    kw = {"partitions": 3, "workers": 1, "rounds": 0, "sub_solver": "greedy"}
    plain = solve(p, "distributed", time_limit=60, seed=0, bound_iterations=0, bound_rounds=0,
                  **kw)
    priced = solve(p, "distributed", time_limit=60, seed=0, bound_rounds=0, **kw)
    default = solve(p, "distributed", time_limit=60, seed=0, **kw)
    assert plain.bound is not None and priced.bound is not None
    assert default.bound is not None and default.bound <= exact.objective + 1e-6
    assert plain.info["bound_shares"] == 3 and plain.info["bound_passes"] == 3
    assert plain.info["bound_iterations"] == 0 and priced.info["bound_iterations"] >= 1
    whole = lagrangian_bound(compile_index(p), plain.flows.load)
    assert whole is not None and plain.bound == pytest.approx(whole, rel=1e-9, abs=1e-9)
    assert priced.bound > plain.bound + 1e-6
    for plan in (plain, priced):
        assert plan.bound <= exact.objective + 1e-6
        assert plan.bound <= plan.objective
        assert plan.objective >= exact.objective - 1e-6
    moved = solve(p, "distributed", time_limit=60, seed=0, rounds=2, workers=1, partitions=3,
                  sub_solver="greedy")
    assert moved.bound is not None and moved.bound <= exact.objective + 1e-6


def _count_dispatch_lps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the bound's dispatch LPs (``optisched.bounds.lagrangian._group_lp``)."""
    calls = [0]
    real = lagrangian._group_lp

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(lagrangian, "_group_lp", counted)
    return calls


def test_a_past_bound_deadline_returns_the_plan_without_bound_lps(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """When the bound's deadline has passed before the first pass, no dispatch LP of the
    bound runs, the verified plan is returned and the bound is None; with the deadline of
    the time limit the same solve runs them and reports a bound (inline engine, so the
    count sees every call)."""
    p = generate("small", seed=1)
    kw = {"partitions": 3, "workers": 1, "rounds": 0, "sub_solver": "greedy", "seed": 0}
    calls = _count_dispatch_lps(monkeypatch)
    timed = solve(p, "distributed", time_limit=60, **kw)
    assert timed.bound is not None and calls[0] > 0
    calls[0] = 0
    monkeypatch.setattr(dsearch._Run, "_bound_until", lambda self: time.time() - 1.0)
    late = solve(p, "distributed", time_limit=60, **kw)
    assert calls[0] == 0
    assert late.status.has_plan and late.bound is None
    assert late.info["bound_shares"] == 0 and late.info["bound_passes"] == 0
    ev = evaluate(p, late)
    assert ev.feasible and late.objective == pytest.approx(ev.objective)
    assert np.array_equal(late.node, timed.node)  # the plan does not wait for the bound


def test_a_partition_without_a_share_gets_one_after_the_first_solves(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A first solve that returns no bound share (as a late wave's does) gets its share
    after the first solves, at its plan's load: with one pass and no capacity steps the
    global bound is the same as when every first solve had its share, the plan is the
    same; without that step there is no global bound."""
    p = generate("small", seed=1)
    kw = {"partitions": 3, "workers": 1, "rounds": 0, "sub_solver": "greedy", "seed": 0,
          "bound_iterations": 0, "bound_rounds": 0}
    full = solve(p, "distributed", time_limit=60, **kw)
    real = PartitionWorker.solve

    def no_share(self: PartitionWorker, task: SolveTask) -> SolveResult:
        return real(self, replace(task, bound=None) if task.part == 1 else task)

    monkeypatch.setattr(PartitionWorker, "solve", no_share)
    late = solve(p, "distributed", time_limit=60, **kw)
    assert full.bound is not None and late.bound is not None
    assert late.bound == pytest.approx(full.bound, rel=1e-9, abs=1e-9)
    assert late.info["bound_shares"] == 3 and late.info["bound_passes"] == 3
    assert late.info["late_shares"] == 1 and full.info["late_shares"] == 0
    assert np.array_equal(late.node, full.node)
    monkeypatch.setattr(dsearch._Run, "_missing_shares", lambda self, share=0.0: None)
    none = solve(p, "distributed", time_limit=60, **kw)
    assert none.bound is None and none.info["bound_shares"] == 2
    assert np.array_equal(none.node, full.node)


def test_bound_parts_stop_at_their_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    """``bound_parts``: a past deadline runs no dispatch LP and gives None; a past soft
    deadline still runs the first pass (its LPs) and nothing after it; the parts add up
    to the value."""
    p = generate("small", seed=1)
    ix = compile_index(p)
    plan = solve(p, "greedy", time_limit=30, seed=0)
    load = np.asarray(plan.flows.load)
    calls = _count_dispatch_lps(monkeypatch)
    assert lagrangian.bound_parts(ix, load, 3, time.perf_counter() - 1.0, plan.objective,
                                  30) is None
    assert calls[0] == 0
    one = lagrangian.bound_parts(ix, load, 3, math.inf, plan.objective, 30,
                                 soft_deadline=time.perf_counter() - 1.0)
    assert one is not None and one.passes == 1 and one.steps == 0 and calls[0] > 0
    first = lagrangian.lagrangian_bound(ix, load)
    assert first is not None and one.value == pytest.approx(first, rel=1e-12)
    full = lagrangian.bound_parts(ix, load, 3, math.inf, plan.objective, 30)
    assert full is not None and full.passes >= 2 and full.steps >= 1
    drop = np.where(np.isnan(ix.drop_penalty), np.inf, ix.drop_penalty)
    drop[ix.pinned] = np.inf
    assert full.value == pytest.approx(full.const + float(np.minimum(drop, full.best).sum()))
    assert first <= full.value <= plan.objective
    # more steps from the best point (the leftover wave of distributed) never lose it
    more = lagrangian.capacity_parts(ix, full.pi, full.base, plan.objective, 10,
                                     start=full.mu)
    assert more is not None and more.steps >= 1
    assert full.value - 1e-9 <= more.value <= plan.objective
    assert more.value == pytest.approx(more.const + float(np.minimum(drop, more.best).sum()))
    assert lagrangian.capacity_parts(ix, full.pi, full.base, plan.objective, 10,
                                     time.perf_counter() - 1.0, full.mu) is None


def test_capacity_bound_starts_from_the_plain_bound() -> None:
    """``capacity_bound`` with no step is the plain Lagrangian bound (it returned -inf
    before: a tolerance around -inf is nan), and its steps never lower it."""
    p = generate("small", seed=1)
    ix = compile_index(p)
    plan = solve(p, "greedy", time_limit=30, seed=0)
    pi, const = lagrangian.load_duals(ix, plan.flows.load) or (None, 0.0)
    assert pi is not None
    plain = lagrangian.lagrangian_bound(ix, plan.flows.load)
    assert plain is not None
    assert lagrangian.capacity_bound(ix, pi, const, plan.objective, 0) == pytest.approx(plain)
    assert lagrangian.capacity_bound(ix, pi, const, plan.objective, 20) >= plain - 1e-9


def test_the_process_pool_gives_the_inline_plan() -> None:
    p = generate("medium", seed=5)
    kw = {"partitions": 3, "rounds": 2, "sub_solver": "greedy", "greedy_moves": 60}
    inline = solve(p, "distributed", time_limit=120, seed=3, workers=1, **kw)
    pool = solve(p, "distributed", time_limit=120, seed=3, workers=2, backend="processes",
                 **kw)
    assert pool.info["backend"] == "processes" and inline.info["backend"] == "inline"
    assert np.array_equal(pool.node, inline.node) and np.array_equal(pool.start, inline.start)
    assert pool.objective == inline.objective


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module (about 9-15 s to start on a loaded 2-core machine)."""
    if not ray_available():
        pytest.skip("ray is not installed (pip install 'optisched[ray]')")
    import ray

    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"a local Ray cannot start here: {exc}")
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_and_the_process_pool_give_the_same_plan(local_ray: None) -> None:
    p = generate("medium", seed=6)
    kw = {"partitions": 3, "rounds": 2, "sub_solver": "greedy", "greedy_moves": 60}
    on_ray = solve(p, "distributed", time_limit=120, seed=1, backend="ray", **kw)
    pool = solve(p, "distributed", time_limit=120, seed=1, backend="processes", workers=2,
                 **kw)
    assert on_ray.status.has_plan, on_ray.message
    assert on_ray.info["backend"] == "ray" and pool.info["backend"] == "processes"
    assert np.array_equal(on_ray.node, pool.node) and np.array_equal(on_ray.start, pool.start)
    assert on_ray.objective == pool.objective
    import ray

    assert ray.is_initialized(), "a Ray the caller started must stay up"


def test_metro_preset_small() -> None:
    p = generate("metro", n_nodes=300, n_jobs=600, seed=1)
    q = generate("metro", n_nodes=300, n_jobs=600, seed=1)
    assert p == q
    kinds = {n.kind for n in p.nodes}
    assert kinds == {"home", "streetlight", "ev_site_pod", "vehicle", "regional_dc"}
    homes = [n for n in p.nodes if n.kind == "home"]
    assert all(n.feeder for n in homes) and len(p.feeders) == -(-len(homes) // 50)
    ix = compile_index(p)
    assert ix.J == 600 and (np.diff(ix.opt_job_ptr) > 0).mean() > 0.8
    # locality: a latency-bound job is eligible on few nodes
    inf = [j for j, job in enumerate(p.jobs) if job.kind == "inference"]
    assert np.diff(ix.opt_job_ptr)[inf].mean() < 0.3 * ix.N


def test_a_problem_with_scenarios_is_refused_by_name() -> None:
    from optisched.io import read_bundle

    p = read_bundle(ROOT / "datasets" / "tiny-scenarios")
    plan = solve(p, "distributed", time_limit=30, seed=0)
    assert plan.status.value == "error"
    assert "without scenarios" in plan.message and str(len(p.scenarios)) in plan.message


def test_job_minima_equal_a_scan_of_every_start() -> None:
    """``job_minima`` (window-width chunks) equals a plain loop over every option and
    every start of its window at random energy and capacity prices."""
    p = generate("small", seed=3)
    ix = compile_index(p)
    rng = np.random.default_rng(0)
    pi = rng.normal(0.05, 0.05, (ix.N, ix.T))
    mu = np.abs(rng.normal(0.0, 0.01, (ix.N, ix.T, len(ix.resources))))
    best, option, start = lagrangian.job_minima(ix, pi, mu)
    want = np.full(ix.J, np.inf)
    for o in range(ix.opt_job.size):
        j, n, d = int(ix.opt_job[o]), int(ix.opt_node[o]), int(ix.opt_dur[o])
        for s in range(max(0, int(ix.opt_earliest[o])), min(int(ix.opt_latest[o]), ix.T - 1) + 1):
            if ix.avail_run[n, s] < d:
                continue
            e = min(s + d, ix.T)
            c = (ix.opt_power[o] * pi[n, s:e].sum() + ix.opt_latency_cost[o]
                 + float(ix.tardiness_cost(np.array([j]), np.array([s + d]))[0])
                 + float(np.sum(ix.usage[j][None, :] * mu[n, s:e])))
            want[j] = min(want[j], c)
    assert np.isfinite(want).any()
    assert np.array_equal(np.isfinite(best), np.isfinite(want))
    fin = np.isfinite(want)
    assert np.allclose(best[fin], want[fin], rtol=1e-9, atol=1e-12)
    o = option[fin]
    assert np.array_equal(ix.opt_job[o], np.nonzero(fin)[0])  # the option is the job's
    assert np.all((start[fin] >= np.maximum(ix.opt_earliest[o], 0))
                  & (start[fin] <= ix.opt_latest[o]))


def test_the_first_slot_is_split_between_the_sub_solve_and_the_bound() -> None:
    # 20 tasks on 2 workers until 40 s: 10 waves of 4 s; before any measurement the bound
    # gets its share 0.2 of the slot (0.8 s), the sub-solve the rest (3.2 s)
    limit, bound = dsearch.plan_slot(0.0, 40.0, 20, 2, None, 0.0, 0.2)
    assert limit == pytest.approx(3.2) and bound == pytest.approx(0.8)
    # measured: 1.5 s after a plan, 0.5 s past a slot: (40 - 0.5) / 10 = 3.95 s
    limit, bound = dsearch.plan_slot(0.0, 40.0, 20, 2, 1.5, 0.5, 0.2)
    assert limit == pytest.approx(2.45) and bound == pytest.approx(0.79)
    # the last wave gets what is left; past the end only the least limit, no bound time
    assert dsearch.plan_slot(37.0, 40.0, 2, 2, None, 0.0, 0.0) == (pytest.approx(3.0), 0.0)
    assert dsearch.plan_slot(41.0, 40.0, 3, 2, 1.0, 0.0, 0.2) == (dsearch.SLOT_MIN, 0.0)


def _simulate(plan: bool, fixed: float, bound_pass: float, tasks: int = 20,
              workers: int = 2, end: float = 40.0) -> float:
    """When the last of ``tasks`` first solves ends [s]: each runs ``max(limit, fixed)``
    (its construction and exact dispatch are not stopped by the limit) and then its bound
    for ``max(bound seconds, bound_pass)`` (the first pass always runs); ``plan``: the
    slots of :func:`plan_slot` from the measured times, else today's fixed share of 10 s
    each."""
    free = [0.0] * workers
    after: list[float] = []
    over: list[float] = []
    for k in range(tasks):
        w = int(np.argmin(free))
        now = free[w]
        if plan:
            limit, bound = dsearch.plan_slot(now, end, tasks - k, workers,
                                             float(np.mean(after)) if after else None,
                                             float(np.mean(over)) if over else 0.0, 0.2)
        else:
            limit, bound = 10.0, 1.0
        sub, tail = max(limit, fixed), max(bound, bound_pass)
        after.append(tail)
        over.append(max(0.0, sub + tail - limit - bound))
        free[w] = now + sub + tail
    return max(free)


def test_planned_waves_end_by_the_end_of_the_first_solves() -> None:
    # metro-10k's shape: 20 partitions on 2 workers, each task's plan 2 s at least and its
    # bound's first pass 1.5 s: 35 s of work that no limit stops, in a 40 s window
    assert _simulate(False, 2.0, 1.5) == pytest.approx(115.0)  # a fixed 10 s + 1.5 s
    assert 35.0 <= _simulate(True, 2.0, 1.5) <= 40.0
    assert _simulate(True, 0.5, 0.2) <= 40.0
    # more such work than the window: the first wave's slot (3.2 s + 1.8 s, unmeasured),
    # then nine waves of that work alone (2.5 + 1.8 s)
    assert _simulate(True, 2.5, 1.8) == pytest.approx(5.0 + 9 * 4.3)


def test_a_lazy_map_plans_each_task_when_a_worker_is_free() -> None:
    from optisched.solvers.distributed.backends import InlineEngine, ProcessEngine
    from optisched.solvers.distributed.worker import CostTask

    p = generate("metro", n_nodes=120, n_jobs=240, seed=2)
    ix = compile_index(p)
    parts = partition_nodes(ix, 4)
    pi = np.full((ix.N, ix.T), 0.1)
    tasks = [CostTask(k, parts.nodes[k], pi[parts.nodes[k]]) for k in range(4)]
    want = InlineEngine(p, ix).map("costs", tasks)
    with ProcessEngine(p, ix, 2) as engine:
        made: list[int] = []
        seen: list[int] = []

        def make(k: int) -> CostTask:
            made.append(k)
            assert len(made) - len(seen) <= 2, "more tasks running than workers"
            return tasks[k]

        got = engine.map_lazy("costs", 4, make, lambda k, r: seen.append(k))
    assert made == [0, 1, 2, 3] and sorted(seen) == [0, 1, 2, 3]
    for a, b in zip(got, want, strict=True):
        assert a.part == b.part and np.array_equal(a.best, b.best)


def test_a_tiny_time_limit_on_a_small_city_gives_a_verified_plan() -> None:
    p = generate("metro", n_nodes=300, n_jobs=600, seed=4)
    plan = solve(p, "distributed", time_limit=2.0, seed=0, partitions=4, workers=2,
                 backend="processes", sub_solver="greedy")
    assert plan.status.has_plan, plan.message
    assert plan.info["partitions"] == 4
    ev = evaluate(p, plan)
    assert ev.feasible, ev.violations[:3]
    assert ev.objective == pytest.approx(plan.objective, rel=1e-6, abs=1e-6)


# ---------------------------------------------------------------- drops with room (issue 20)


def _big_host_problem() -> Problem:
    """Feeder ``fa``: one 80 GB host ``a0`` (resource ``big``) and three plain one-GPU
    nodes, cheap power; feeder ``fb``: one 80 GB host ``b0`` and one plain node, dear
    power. Two droppable 6-hour jobs need a ``big`` host: partition ``fa`` holds 32
    GPU-slots (room for both in the pooled capacity) but its one big host holds one."""
    hz = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=T)
    nodes = []
    for f, tariff, plain in (("a", "ta", 3), ("b", "tb", 1)):
        nodes.append(Node(node_id=f"{f}0", gpus=1, resources={"big": 1.0}, idle_kw=0.05,
                          grid_kw=5.0, feeder=f"f{f}", tariff=tariff))
        for k in range(plain):
            nodes.append(Node(node_id=f"{f}{k + 1}", gpus=1, idle_kw=0.05, grid_kw=5.0,
                              feeder=f"f{f}", tariff=tariff))
    jobs = [Job(job_id=f"g{k}", gpus=1, resources={"big": 1.0}, duration_min=360,
                power_kw=1.0, drop_penalty=20.0) for k in range(2)]
    return Problem(
        scenario=Scenario(horizon=hz), nodes=nodes, jobs=jobs,
        tariffs={"ta": Tariff.constant(T, price=0.10), "tb": Tariff.constant(T, price=0.40)},
        feeders={"fa": Feeder(headroom_kw=[6.0] * T), "fb": Feeder(headroom_kw=[6.0] * T)})


def test_the_coarse_model_sees_the_capacity_a_job_may_use(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Both big-host jobs are cheaper on ``fa``. With the eligibility-class rows the coarse
    model sends one to ``fb`` and both run (no passing on, no repair, no rounds); with the
    pooled capacity alone (``CLASSES = 0``, the model before) it sends both to ``fa``,
    whose first solve drops one (penalty 20)."""
    from optisched.solvers.distributed import coarse

    p = _big_host_problem()
    ix = compile_index(p)
    seen: list[np.ndarray] = []

    def recording(*args, **kw):  # type: ignore[no-untyped-def]
        got = coarse.assign_jobs(*args, **kw)
        seen.append(got.part.copy())
        return got

    monkeypatch.setattr(dsearch, "assign_jobs", recording)
    monkeypatch.setattr(dsearch, "PASS_FILL", 0.0)
    kw = dict(time_limit=60, seed=0, partitions=2, workers=1, rounds=0, sub_solver="greedy",
              repair_waves=0)
    plan = solve(p, "distributed", **kw)  # type: ignore[arg-type]
    assert sorted(seen[-1].tolist()) == [0, 1]
    assert (plan.node >= 0).all()
    assert sorted(ix.node_ids[int(n)] for n in plan.node) == ["a0", "b0"]
    assert evaluate(p, plan).feasible
    monkeypatch.setattr(coarse, "CLASSES", 0)  # the pooled capacity row only
    old = solve(p, "distributed", **kw)  # type: ignore[arg-type]
    assert seen[-1].tolist() == [0, 0]
    assert int((old.node < 0).sum()) == 1
    assert old.objective == pytest.approx(evaluate(p, old).objective)
    assert old.objective > plan.objective + 10.0


def test_the_class_rows_charge_a_job_only_where_its_nodes_lie() -> None:
    """``_transport_lp`` on ``_big_host_problem``: one class row per partition (its big
    host), charged with both jobs' columns on that partition, capacity 1 GPU-slot per
    block; the pooled rows hold 4 and 2 GPU-slots per block."""
    from optisched.solvers.distributed import coarse

    p = _big_host_problem()
    ix = compile_index(p)
    parts = partition_nodes(ix, 2)
    best = np.ones((2, ix.J))
    option = np.array([[ix.find_option(j, n) for j in range(ix.J)]
                       for n in (ix.node_pos["a0"], ix.node_pos["b0"])])
    lp = coarse._transport_lp(ix, parts.part_of, best, option, np.arange(ix.J), 1.0)
    assert lp.classes == 2 and lp.blocks == (4, T)
    hi = lp.model.row_hi[:4 * T].reshape(4, T)
    assert hi[:2].tolist() == [[4.0] * T, [2.0] * T]
    assert hi[2:].tolist() == [[1.0] * T, [1.0] * T]
    A = lp.model.A.tocsr()
    for g in (2, 3):  # each class row: both jobs' columns on its partition
        cols = A[g * T:(g + 1) * T].nonzero()[1]
        assert sorted(set(lp.part[np.unique(cols)].tolist())) == [g - 2]
        assert sorted(set(lp.job[np.unique(cols)].tolist())) == [0, 1]
    plain = coarse._transport_lp(ix, parts.part_of, best, option, np.arange(ix.J), 1.0,
                                 classes=False)
    assert plain.classes == 0 and plain.blocks == (2, T)


def _room_problem(eight_penalty: float) -> Problem:
    """Two nodes of one GPU over 8 slots, a must-run 6-slot job and four droppable ones."""
    hz = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=T)
    nodes = [Node(node_id=f"n{k}", gpus=1) for k in range(2)]
    jobs = [Job(job_id="placed", gpus=1, duration_min=360, power_kw=1.0),
            Job(job_id="four", gpus=1, duration_min=240, power_kw=1.0, drop_penalty=8.0),
            Job(job_id="two", gpus=1, duration_min=120, power_kw=1.0, drop_penalty=5.0),
            Job(job_id="four2", gpus=1, duration_min=240, power_kw=1.0, drop_penalty=8.0),
            Job(job_id="eight", gpus=1, duration_min=480, power_kw=1.0,
                drop_penalty=eight_penalty)]
    return Problem(scenario=Scenario(horizon=hz), nodes=nodes, jobs=jobs,
                   tariffs={"default": Tariff.constant(T, price=0.2)})


def test_find_room_reserves_free_places_that_never_overlap() -> None:
    """The must-run job runs on ``n0`` in slots 0-5; the four droppable jobs are dropped.
    Jobs are taken densest first (penalty per GPU-slot), each at its first free place:
    with "eight" at penalty 90 it takes all of ``n1``, "two" ``n0``'s slots 6-7 and the
    4-slot jobs find nothing; with "eight" at 0.5 (last) "two" takes ``n0`` 6-7 and the
    two 4-slot jobs ``n1``'s slots 0-3 and 4-7 (no place reserved twice); with "two" kept
    off partition 0 (``n0``) it takes ``n1`` 0-1 and leaves room for one 4-slot job."""
    from optisched.solvers.distributed.repair import find_room, free_resources

    node = np.array([0, -1, -1, -1, -1])
    start = np.zeros(5, dtype=np.int64)
    ix = compile_index(_room_problem(90.0))
    free = free_resources(ix, node, start)
    assert free[0, :, 0].tolist() == [0.0] * 6 + [1.0] * 2
    assert free[1, :, 0].tolist() == [1.0] * 8
    room = find_room(ix, node, start, job_work(ix))
    assert room.dropped.tolist() == [1, 2, 3, 4]
    assert room.jobs.tolist() == [4, 2]
    assert room.node.tolist() == [1, 0] and room.start.tolist() == [0, 6]
    ix = compile_index(_room_problem(0.5))
    room = find_room(ix, node, start, job_work(ix))
    assert room.jobs.tolist() == [2, 1, 3]
    assert room.node.tolist() == [0, 1, 1] and room.start.tolist() == [6, 0, 4]
    room = find_room(ix, node, start, job_work(ix), part_of=np.array([0, 1]),
                     banned={2: {0}})
    assert room.jobs.tolist() == [2, 1]
    assert room.node.tolist() == [1, 1] and room.start.tolist() == [0, 2]


def test_the_repair_wave_places_dropped_jobs_that_have_room(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The coarse model is made to put four droppable 6-hour jobs on feeder ``fb``, and
    nothing is passed on (``PASS_FILL = 0``): it drops two (no round). The repair wave finds
    room for both on ``fa`` and re-solves it with them: all four run, every job the first
    plan ran still runs, the plan passes the evaluator and is cheaper by about their two
    penalties; with ``repair_waves=0`` two stay dropped."""
    p = _four_droppable_jobs_on(monkeypatch, 1)
    monkeypatch.setattr(dsearch, "PASS_FILL", 0.0)
    kw = dict(time_limit=60, seed=0, partitions=2, workers=1, sub_solver="greedy", rounds=0)
    first = solve(p, "distributed", repair_waves=0, **kw)  # type: ignore[arg-type]
    assert int((first.node < 0).sum()) == 2 and first.info["dropped"] == 2
    plan = _repaired_plan(p, kw, first, repaired=2, gain=30.0)
    assert (plan.node[first.node >= 0] >= 0).all(), "the repair lost a job"
    pool = solve(p, "distributed", **{**kw, "workers": 2,  # type: ignore[arg-type]
                                      "backend": "processes"})
    assert pool.info["backend"] == "processes"
    assert np.array_equal(pool.node, plan.node) and np.array_equal(pool.start, plan.start)
    assert pool.objective == plan.objective


def _headroom_repair_problem(monkeypatch: pytest.MonkeyPatch) -> Problem:
    """Partition 0: feeder ``fa`` (2.5 kW headroom, price 0.10) with ``a0``, the only node of
    job ``x`` (1 kW, slots 0-3, penalty 5), and ``a1``; feeder ``fc`` (price 0.20) with
    ``c0``. Partition 1: feeder ``fb`` (price 0.40) with ``b0``. Two 2 kW jobs ``m1``, ``m2``
    (slots 0-3, penalty 20, any node) are made to go to partition 1 (coarse model), where
    ``b0`` runs one; nothing is passed on (``PASS_FILL = 0``)."""
    hz = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=T)
    spec = [("a0", "fa", "ta", {"zone_x": 1.0}), ("a1", "fa", "ta", {}),
            ("c0", "fc", "tc", {}), ("b0", "fb", "tb", {})]
    nodes = [Node(node_id=n, gpus=1, resources={"any": 1.0, **extra}, idle_kw=0.05,
                  grid_kw=5.0, feeder=f, tariff=t) for n, f, t, extra in spec]
    four = "2026-06-01T04:00:00+00:00"
    jobs = [Job(job_id="x", gpus=1, resources={"zone_x": 1.0}, duration_min=240,
                power_kw=1.0, drop_penalty=5.0, deadline=four)]
    jobs += [Job(job_id=f"m{k}", gpus=1, resources={"any": 1.0}, duration_min=240,
                 power_kw=2.0, drop_penalty=20.0, deadline=four) for k in (1, 2)]
    part_of = np.array([0, 0, 0, 1], dtype=np.int64)

    def parts(index, count):  # type: ignore[no-untyped-def]
        cap = node_capacity(index)
        nodes = [np.nonzero(part_of == q)[0].astype(np.int64) for q in (0, 1)]
        return Partitioning(part_of, nodes, np.array([float(cap[n].sum()) for n in nodes]))

    def coarse(index, part_of, best, option, time_limit=0.0):  # type: ignore[no-untyped-def]
        return Assignment(np.array([0, 1, 1], dtype=np.int64), np.full(index.J, np.nan))

    monkeypatch.setattr(dsearch, "partition_nodes", parts)
    monkeypatch.setattr(dsearch, "assign_jobs", coarse)
    monkeypatch.setattr(dsearch, "PASS_FILL", 0.0)
    return Problem(
        scenario=Scenario(horizon=hz), nodes=nodes, jobs=jobs,
        tariffs={"ta": Tariff.constant(T, price=0.10), "tc": Tariff.constant(T, price=0.20),
                 "tb": Tariff.constant(T, price=0.40)},
        feeders={f: Feeder(headroom_kw=[h] * T)
                 for f, h in (("fa", 2.5), ("fc", 5.0), ("fb", 5.0))})


def _repaired_plan(p: Problem, kw: dict[str, object], first: Plan, repaired: int,
                  gain: float) -> Plan:
    """The plan with the repair waves (``kw`` as ``first``'s, which had none): every job
    placed, ``repaired`` of them by one kept re-solve, verified, no drop cost, at least
    ``gain`` [money] cheaper than ``first``."""
    plan = solve(p, "distributed", **kw)  # type: ignore[arg-type]
    assert plan.status.has_plan, plan.message
    assert (plan.node >= 0).all(), "a job with room is still dropped"
    assert plan.info["repair_kept"] == 1 and plan.info["repaired"] == repaired
    assert plan.info["dropped"] == 0
    ev = evaluate(p, plan)
    assert ev.feasible and ev.costs["drop"] == pytest.approx(0.0)
    assert plan.objective == pytest.approx(ev.objective, rel=1e-9, abs=1e-9)
    assert plan.objective < first.objective - gain
    return plan


def test_a_repair_keeps_its_plan_and_places_the_added_job_where_it_fits(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The first solves run ``x`` on ``a0`` and ``m1`` on ``b0`` and drop ``m2``; the free
    place for ``m2`` is ``a1`` (the cheapest GPU free in slots 0-3; headroom is not looked
    at), on ``fa``, whose 2.5 kW do not hold ``x`` and ``m2`` together (3.1 kW with the idle
    draws). The repair re-solve of partition 0 places its plan at once (``x`` on ``a0``),
    finds that ``m2`` does not fit ``a1`` and inserts it on ``c0`` (feeder ``fc``): all
    three run and the plan is cheaper by about the penalty 20. Before (every hint tried in
    greedy's order: ``m2`` first, the same slack as ``x`` and more energy) ``m2`` took
    ``a1``, ``x`` found no place, the re-solve was not kept and ``m2`` stayed dropped."""
    p = _headroom_repair_problem(monkeypatch)
    ix = compile_index(p)
    kw = dict(time_limit=60, seed=0, partitions=2, workers=1, sub_solver="greedy", rounds=0)
    first = solve(p, "distributed", repair_waves=0, **kw)  # type: ignore[arg-type]
    assert first.status.has_plan, first.message
    assert [ix.node_ids[int(n)] if n >= 0 else None for n in first.node] == ["a0", "b0", None]
    plan = _repaired_plan(p, kw, first, repaired=1, gain=15.0)
    assert [ix.node_ids[int(n)] for n in plan.node] == ["a0", "b0", "c0"]


def test_a_repair_that_drops_a_job_its_plan_ran_is_not_kept() -> None:
    """``_keep_repairs``: partition 0 ran jobs 0 and 1 and dropped job 2 (penalty 10, cost
    15); a re-solve that runs 2 but drops 1 (cost 12, cheaper) is not kept, and job 2 is
    not tried there again; one that runs all three (cost 14) is kept."""
    from types import SimpleNamespace

    from optisched.solvers.distributed.worker import SolveResult, SolveTask

    ix = SimpleNamespace(drop_penalty=np.array([np.nan, 10.0, 10.0]), J=3)
    jobs = np.arange(3)

    def result(node: list[int], cost: float) -> SolveResult:
        return SolveResult(0, jobs, True, "", np.array(node), np.zeros(3, dtype=np.int64),
                           None, cost, 0.0)

    task = SolveTask(0, np.arange(2), jobs, np.array([0, 1, 0]), np.zeros(3, dtype=np.int64),
                     0, "greedy", 0, 0, 1.0)
    for new, keep in (([0, -1, 1], False), ([0, 1, 1], True)):
        run = SimpleNamespace(index=ix, results=[result([0, 1, -1], 15.0)],
                              part_of_job=np.zeros(3, dtype=np.int64),
                              node=np.array([0, 1, -1]), stats=dsearch._Stats())
        run._without_passed = lambda r, run=run: dsearch._Run._without_passed(run, r)
        banned: dict[int, set[int]] = {}
        res = result(new, 12.0 if not keep else 14.0)
        dsearch._Run._keep_repairs(run, [0], [task], [res], banned)  # type: ignore[arg-type]
        assert (run.results[0] is res) == keep
        assert run.stats.repair_kept == int(keep)
        assert run.stats.repaired == int(keep)
        if not keep:
            assert run.results[0].objective == 15.0


def test_the_fullest_partition_is_solved_first_and_its_drops_passed_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The coarse model is made to put the four droppable 6-hour jobs on feeder ``fb``
    (partition 1): it is the fuller partition, so its first solve runs first and the two
    jobs it drops are passed on to ``fa``'s, which places them (by partition number, ``fb``
    came last and two stayed dropped: ``test_rounds_move_dropped_jobs_...`` before)."""
    p = _four_droppable_jobs_on(monkeypatch, 1)
    plan = solve(p, "distributed", time_limit=60, seed=0, partitions=2, workers=1, rounds=0,
                 sub_solver="greedy", repair_waves=0)
    assert plan.info["passed_on"] == 2 and (plan.node >= 0).all()
    assert evaluate(p, plan).feasible


# ---------------------------------------------------------------- within the time limit


def test_a_late_wave_ends_the_bound_shares_then_the_search() -> None:
    """``choose_path``: 20 first solves on 2 workers, 36 s left before the end of the
    first solves. Measured 2 s of work no limit stops and 1.5 s of bound per task: 10
    waves of 3.5 s fit, the path stays whole. 2.5 s and 1.5 s: 40 s do not fit, the bound
    shares end (task 3); 25 s left for 7 waves of 3.5 s + the least search (0.5 s): the
    cheap path too (task 5); neither switches back when time is left again."""
    whole = dsearch.FirstPath(True)
    path = dsearch.choose_path(whole, 0, 0.0, 36.0, 20, 2, [], [])
    assert path == whole  # nothing measured yet
    path = dsearch.choose_path(whole, 2, 0.0, 36.0, 20, 2, [2.0, 2.0], [1.5, 1.5])
    assert path == whole
    path = dsearch.choose_path(whole, 3, 0.0, 36.0, 20, 2, [2.5], [1.5])
    assert path == dsearch.FirstPath(False, False, 3, None)
    path = dsearch.choose_path(path, 5, 11.0, 36.0, 14, 2, [3.5, 3.5], [0.0, 0.0])
    assert path == dsearch.FirstPath(False, True, 3, 5)
    assert dsearch.choose_path(path, 6, 0.0, 1e9, 10, 2, [0.1], [0.0]) == path
    # without a bound asked for, only the search can end
    path = dsearch.choose_path(dsearch.FirstPath(False), 1, 0.0, 10.0, 4, 2, [5.0], [0.0])
    assert path == dsearch.FirstPath(False, True, None, 1)



def test_a_late_wave_keeps_a_first_pass_share_when_that_fits() -> None:
    """``choose_path`` with the first passes measured: 9 waves of 2.5 s work and 1.5 s
    after the plan (36 s) do not fit 34 s, but 9 waves of 2.5 s and a first pass of
    1.0 s (31.5 s) do: the later shares are the first pass only (task 3), the bound
    stays; when even that does not fit (7 waves of 3.5 s + 1.0 s in 25 s) the shares end
    (task 5), and with the least search neither (the cheap path)."""
    whole = dsearch.FirstPath(True)
    path = dsearch.choose_path(whole, 3, 0.0, 34.0, 18, 2, [2.5], [1.5], first=[1.0])
    assert path == dsearch.FirstPath(True, False, None, None, True, 3)
    assert dsearch.choose_path(whole, 3, 0.0, 34.0, 18, 2, [2.5], [1.5]) == \
        dsearch.FirstPath(False, False, 3, None)  # nothing measured: no share
    path = dsearch.choose_path(path, 5, 11.0, 36.0, 14, 2, [3.5], [0.0], first=[1.0])
    assert path == dsearch.FirstPath(False, True, 5, 5, True, 3)


def test_bound_shares_may_run_until_the_final_reserve_when_they_fit_there() -> None:
    """``choose_path(bound_stop=…)``: 9 waves of 2.5 s + 1.5 s (36 s) do not fit the 36 s
    before the first solves' end less the repair share (34 s) but fit 40 s before the
    final reserve: the shares go on; with 30 s before the reserve they end."""
    whole = dsearch.FirstPath(True)
    assert dsearch.choose_path(whole, 3, 0.0, 34.0, 17, 2, [2.5], [1.5]) == \
        dsearch.FirstPath(False, False, 3, None)
    assert dsearch.choose_path(whole, 3, 0.0, 34.0, 17, 2, [2.5], [1.5],
                               bound_stop=40.0) == whole
    assert dsearch.choose_path(whole, 3, 0.0, 34.0, 17, 2, [2.5], [1.5],
                               bound_stop=30.0) == dsearch.FirstPath(False, False, 3, None)


def _simulate_paths(fixed: float, bound_pass: float, tasks: int = 20, workers: int = 2,
                    end: float = 40.0) -> tuple[float, dsearch.FirstPath]:
    """As ``_simulate`` with the slots of ``plan_slot`` and the paths of ``choose_path``:
    a task without bound share has no bound time; the end of the last task and the last
    path."""
    free = [0.0] * workers
    after: list[float] = []
    over: list[float] = []
    ends: list[float] = []  # when each task ended: its times are measured from then on
    path = dsearch.FirstPath(True)
    for k in range(tasks):
        w = int(np.argmin(free))
        now = free[w]
        done = [fixed for e in ends if e <= now]
        tails = [a for a, e in zip(after, ends, strict=True) if e <= now]
        path = dsearch.choose_path(path, k, now, end, tasks - k, workers, done, tails)
        limit, bound = dsearch.plan_slot(
            now, end, tasks - k, workers, (float(np.mean(after)) if after else None)
            if path.bound else None, float(np.mean(over)) if over else 0.0,
            0.2 if path.bound else 0.0)
        sub = max(0.0 if path.cheap else limit, fixed)
        tail = max(bound, bound_pass) if path.bound else 0.0
        after.append(tail)
        over.append(max(0.0, sub + tail - limit - bound))
        free[w] = now + sub + tail
        ends.append(free[w])
    return max(free), path


def test_late_first_solves_end_by_the_end_of_their_share() -> None:
    # 2.5 s of plan and 1.8 s of bound per task do not fit 40 s (43.7 s without paths,
    # test_planned_waves_end_by_...): from the second wave on no bound share, by 40 s
    last, path = _simulate_paths(2.5, 1.8)
    assert last <= 40.0 and path.no_bound_from == 2 and path.cheap_from is None
    # 4.2 s of plan alone: more work than the window; the cheap path from the second
    # wave on holds the tasks to the work itself, never a slot on top: the first wave
    # (unmeasured: 4.2 s + its bound's 1.8 s) and nine waves of 4.2 s
    last, path = _simulate_paths(4.2, 1.8)
    assert path.no_bound_from == 2 and path.cheap_from == 2
    assert last == pytest.approx(6.0 + 9 * 4.2)
    # room enough: the whole path throughout
    last, path = _simulate_paths(1.0, 0.5)
    assert last <= 40.0 and path == dsearch.FirstPath(True)


def test_a_late_first_solve_takes_the_cheap_path_and_the_repair_wave_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The repair-wave problem (``test_the_repair_wave_places_...``) with every first
    solve's construction measured 45 s longer than it was (a fake clock for the work no
    limit stops, 60 s limit, one worker): after the first (partition ``fb``, which drops
    two jobs), the second cannot have its 45 s and a search within the first solves'
    share less the repair waves': it is solved on the cheap path (no local search), with
    its bound share (which fits before the final reserve), and the repair wave still fits
    (one re-solve of 1.2 × 45 s in the 58 s left) and places both jobs; the bound is
    reported. Measured 1 s longer: the whole path, with a bound."""
    from optisched.solvers.distributed.worker import PartitionWorker

    real = PartitionWorker.solve
    seen: list[dsearch.SolveTask] = []

    def slow(extra: float):  # type: ignore[no-untyped-def]
        def solve_task(self, task):  # type: ignore[no-untyped-def]
            seen.append(task)
            res = real(self, task)
            res.info["timing"]["build"] += extra
            return res
        return solve_task

    p = _four_droppable_jobs_on(monkeypatch, 1)
    monkeypatch.setattr(dsearch, "PASS_FILL", 0.0)
    kw = dict(time_limit=60, seed=0, partitions=2, workers=1, sub_solver="greedy", rounds=None)
    monkeypatch.setattr(PartitionWorker, "solve", slow(45.0))
    plan = solve(p, "distributed", **kw)  # type: ignore[arg-type]
    assert plan.status.has_plan, plan.message
    first = seen[:2]
    assert first[0].bound is not None and first[0].greedy_moves == 50
    assert first[1].bound is not None and first[1].greedy_moves == 0
    assert plan.info["first_no_bound_from"] is None and plan.info["first_cheap_from"] == 1
    assert plan.bound is not None
    assert plan.info["repair_waves"] == 1 and plan.info["repaired"] == 2
    assert (plan.node >= 0).all() and evaluate(p, plan).feasible
    seen.clear()
    monkeypatch.setattr(PartitionWorker, "solve", slow(1.0))
    plan = solve(p, "distributed", **kw)  # type: ignore[arg-type]
    assert all(t.bound is not None and t.greedy_moves == 50 for t in seen[:2])
    assert plan.info["first_no_bound_from"] is None and plan.info["first_cheap_from"] is None
    assert plan.bound is not None and plan.info["repaired"] == 2


def test_find_room_in_batches_equals_one_job_after_the_other(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``find_room`` searches the options of batches of jobs at once and again only where
    a place was reserved since; on a small city whose jobs are all dropped (they compete
    for the same cheap places) its places equal those of a scan of every option and
    start, one job after the other, densest drop penalty first (ties: cost, option,
    start), with and without partitions kept out, for batches of 1, 3 and 256 jobs."""
    from optisched.solvers.distributed import repair

    p = generate("metro", n_nodes=60, n_jobs=300, seed=3)
    ix = compile_index(p)
    rng = np.random.default_rng(0)
    pi = rng.random((ix.N, ix.T))
    work = job_work(ix)
    node = np.full(ix.J, -1, dtype=np.int64)
    start = np.zeros(ix.J, dtype=np.int64)
    part_of = partition_nodes(ix, 3).part_of
    banned = {int(j): {int(rng.integers(3))} for j in rng.choice(ix.J, 100, replace=False)}

    def scan(ban: dict[int, set[int]]) -> list[tuple[int, int, int]]:
        free = repair.free_resources(ix, node, start)
        cum = np.zeros((ix.N, ix.T + 1))
        cum[:, 1:] = np.cumsum(pi, axis=1)
        drop = np.nonzero(~np.isnan(ix.drop_penalty) & ~ix.pinned
                          & (np.diff(ix.opt_job_ptr) > 0))[0]
        dens = ix.drop_penalty[drop] / np.maximum(work[drop], 1e-9)
        out = []
        for j in drop[np.lexsort((drop, -dens))]:
            best = None
            for o in range(ix.opt_job_ptr[j], ix.opt_job_ptr[j + 1]):
                n, d = int(ix.opt_node[o]), int(ix.opt_dur[o])
                if part_of[n] in ban.get(int(j), set()):
                    continue
                for s in range(max(0, int(ix.opt_earliest[o])),
                               min(int(ix.opt_latest[o]), ix.T - d) + 1):
                    if ix.avail_run[n, s] < d or (free[n, s:s + d] < ix.usage[j] - 1e-9).any():
                        continue
                    c = float(ix.opt_power[o] * (cum[n, s + d] - cum[n, s])
                              + ix.opt_latency_cost[o] + ix.tardiness_cost(j, s + d))
                    if best is None or (c, o, s) < best[:3]:
                        best = (c, o, s, n, d)
            if best is not None:
                free[best[3], best[2]:best[2] + best[4]] -= ix.usage[j]
                out.append((int(j), best[3], best[2]))
        return out

    for ban in ({}, banned):
        want = scan(ban)
        assert 50 < len(want) < ix.J  # some jobs find room, not all
        for size in (1, 3, 256):
            monkeypatch.setattr(repair, "BATCH_JOBS", size)
            room = repair.find_room(ix, node, start, work, pi, part_of, ban)
            got = list(zip(room.jobs.tolist(), room.node.tolist(), room.start.tolist(),
                           strict=True))
            assert got == want, size


def test_make_room_moves_a_flexible_job_off_the_host_a_dropped_job_needs() -> None:
    """An 80 GB host ``big`` (two GPUs) runs two must-run 8-slot jobs that may also run on
    the one-GPU homes ``h1`` and ``h2``; a droppable 8-slot job needs ``big`` and is dropped,
    with no free place (``find_room``). ``make_room`` lifts both flexible jobs, moves
    ``f1`` to ``h1`` and ``f2`` to ``h2``, places the dropped job on ``big`` at slot 0, and
    sends ``f2`` back (its old GPU is still free): one move is kept. With the homes in
    another partition nothing moves (every move stays within its partition)."""
    from optisched.solvers.distributed.repair import find_room, free_resources, make_room

    hz = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=T)
    nodes = [Node(node_id="big", gpus=2, resources={"big": 2.0}),
             Node(node_id="h1", gpus=1), Node(node_id="h2", gpus=1)]
    jobs = [Job(job_id="f1", gpus=1, duration_min=480, power_kw=1.0),
            Job(job_id="f2", gpus=1, duration_min=480, power_kw=1.0),
            Job(job_id="needs", gpus=1, resources={"big": 1.0}, duration_min=480,
                power_kw=1.0, drop_penalty=9.0)]
    ix = compile_index(Problem(scenario=Scenario(horizon=hz), nodes=nodes, jobs=jobs,
                               tariffs={"default": Tariff.constant(T, price=0.2)}))
    node = np.array([0, 0, -1])
    start = np.zeros(3, dtype=np.int64)
    work = job_work(ix)
    room = find_room(ix, node, start, work)
    assert room.dropped.tolist() == [2] and room.jobs.size == 0
    out, moves = make_room(ix, node, start, work, room, np.array([0, 0, 0]))
    assert out.jobs.tolist() == [2] and out.node.tolist() == [0]
    assert out.start.tolist() == [0]
    assert moves.jobs.tolist() == [0] and moves.node.tolist() == [1]
    assert moves.start.tolist() == [0]
    # the moved plan fits: every GPU used at most once
    n, s = node.copy(), start.copy()
    n[out.jobs], s[out.jobs] = out.node, out.start
    n[moves.jobs], s[moves.jobs] = moves.node, moves.start
    assert n.tolist() == [1, 0, 0]
    assert (free_resources(ix, n, s) >= 0).all()
    out, moves = make_room(ix, node, start, work, room, np.array([0, 1, 1]))
    assert out.jobs.size == 0 and moves.jobs.size == 0
