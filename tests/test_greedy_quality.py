"""Quality of the ``greedy`` plan against the optimum proven by ``highs`` (issue 16, item 5).

Each test builds a tiny instance of one weakness of the greedy before its ruin-and-recreate
moves, wake move and largest-energy-first start (``docs/algorithms/greedy.md``): the
construction plus the old eight moves (``MOVES``) stay well above the optimum, and the
greedy now ends within 3 % of it. Every run ends by its move cap or by running out of
improving moves (``iterations``), so the plans do not depend on the machine's speed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from optisched.domain import Feeder, Horizon, Job, Node, NodeSeries, Problem, Scenario, Tariff
from optisched.evaluate import evaluate
from optisched.index import compile_index
from optisched.io import read_bundle
from optisched.plan import Status
from optisched.solvers import solve
from optisched.solvers.greedy import GreedySearch, job_order
from optisched.solvers.greedy.moves import MOVES
from optisched.solvers.greedy.search import improve

START = "2026-06-01T00:00:00+00:00"
TINY = Path(__file__).resolve().parents[1] / "datasets" / "tiny"
WITHIN = 0.03
"""The issue's target: at most 3 % above the proven optimum."""


def _problem(T: int, nodes: list[Node], jobs: list[Job], price: list[float],
             series: dict[str, NodeSeries] | None = None, **kw: object) -> Problem:
    hz = Horizon(start=START, slot_minutes=60, slots=T)
    tariffs = {"default": Tariff(price=price, export_price=[0.0] * T,
                                 carbon_g_per_kwh=[0.0] * T)}
    return Problem(scenario=Scenario(horizon=hz), nodes=nodes, jobs=jobs, tariffs=tariffs,
                   node_series=series or {}, **kw)  # type: ignore[arg-type]


def _at(h: int) -> datetime:
    return datetime.fromisoformat(START) + timedelta(hours=h)


def _optimum(p: Problem) -> float:
    plan = solve(p, "highs", time_limit=60)
    assert plan.status is Status.OPTIMAL
    return float(plan.objective)


def _greedy(p: Problem) -> float:
    plan = solve(p, "greedy", iterations=3000, seed=0)
    assert plan.status is Status.FEASIBLE
    report = evaluate(p, plan)
    assert report.feasible, report.violations
    assert plan.objective == pytest.approx(report.objective, abs=1e-6)
    return float(plan.objective)


def _old_neighbourhood(p: Problem) -> float:
    """Construction (least slack first) and the eight single-job and node moves only."""
    ix = compile_index(p)
    run = GreedySearch(p, ix)
    assert run.construct(job_order(ix)) is None
    assert run.state.evaluate_all()[0]
    improve(run.state, run.scorer, np.random.default_rng(0), float("inf"), 3000,
            moves=MOVES)
    return run.objective


def _fixed(p: Problem, optimum: float, old: float) -> None:
    """Optimum and old neighbourhood as computed by hand; greedy within 3 % of the optimum."""
    opt = _optimum(p)
    assert opt == pytest.approx(optimum)
    assert _old_neighbourhood(p) == pytest.approx(old)
    assert _greedy(p) <= opt * (1 + WITHIN)


def test_feeder_headroom_taken_by_the_first_job() -> None:
    # Two nodes on one feeder of 2 kW: one 2-kW job per slot. Price 0.1, 0.12, 1.0.
    # Job x (window slots 0-1) goes first (less slack) and takes the cheap slot 0;
    # job y may run on node b only (trust), which is out in slot 1, so it is left slot 2
    # at 1.0: 2 · 0.1 + 2 · 1.0 = 2.2. Optimum: y at 0, x at 1: 2 · 0.1 + 2 · 0.12 = 0.44.
    # No single move helps: x alone to slot 1 costs 0.04 more, y cannot join slot 0.
    T = 3
    nodes = [Node(node_id="a", gpus=1, feeder="f"),
             Node(node_id="b", gpus=1, feeder="f", trust=1.0)]
    jobs = [Job(job_id="x", gpus=1, duration_min=60, power_kw=2.0, deadline=_at(2)),
            Job(job_id="y", gpus=1, duration_min=60, power_kw=2.0, min_trust=0.5)]
    p = _problem(T, nodes, jobs, price=[0.1, 0.12, 1.0],
                 series={"b": NodeSeries(available=[True, False, True])},
                 feeders={"f": Feeder(headroom_kw=[2.0] * T)})
    _fixed(p, 0.44, 2.2)


def test_long_job_kept_off_its_cheap_node_by_a_short_one() -> None:
    # The small-sleep-s1 pattern of the features suite: a short must-run job (from slot 2
    # on) goes first and takes the cheap slot 2 of node "pod" (1 GPU); the long droppable
    # job (fixed to slots 2-5) then has only node "dc", which sleeps and draws 5 kW
    # idle: 4 · (5 + 1) · 0.1 + start-up 1.0 = 3.4 on top of the short job's 0.1.
    # Optimum: long job on pod in slots 2-5, short job in slot 6 at 0.2: 0.2 + 0.4 = 0.6.
    # The short job cannot run on dc (GPU memory), so no swap helps either.
    T = 8
    pod = Node(node_id="pod", gpus=1, can_sleep=True, initially_on=True)
    dc = Node(node_id="dc", gpus=1, idle_kw=5.0, can_sleep=True, initially_on=False,
              startup_cost=1.0, gpu_mem_gb=8.0)
    jobs = [Job(job_id="short", gpus=1, duration_min=60, power_kw=1.0, min_gpu_mem_gb=16.0,
                release=_at(2)),
            Job(job_id="long", gpus=1, duration_min=240, power_kw=1.0, release=_at(2),
                deadline=_at(6), drop_penalty=10.0)]
    price = [0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2]
    p = _problem(T, [pod, dc], jobs, price=price)
    _fixed(p, 0.6, 3.5)


def test_sleeping_node_with_pv_woken_for_several_jobs() -> None:
    # Node "s" sleeps (off at the start, start-up 0.5, 0.5 kW idle) and has 3 kW of PV
    # it cannot export; node "a" buys at 0.3. One 1-kW job alone on s pays 0.5 for the
    # start-up against 0.3 on a, so no single move wakes s: all three on a cost 0.9.
    # Optimum: s on in slots 0-1 with the three jobs (PV covers 0.5 + 2 kW and
    # 0.5 + 1 kW): the start-up alone, 0.5.
    T = 4
    a = Node(node_id="a", gpus=3)
    s = Node(node_id="s", gpus=3, idle_kw=0.5, can_sleep=True, initially_on=False,
             startup_cost=0.5)
    jobs = [Job(job_id=f"j{k}", gpus=1, duration_min=60, power_kw=1.0) for k in range(3)]
    p = _problem(T, [a, s], jobs, price=[0.3] * T,
                 series={"s": NodeSeries(pv_kw=[3.0] * T)})
    _fixed(p, 0.5, 0.9)


def test_every_feature_bundle_within_three_percent() -> None:
    # datasets/tiny uses every SPEC feature (battery, PV, export, feeder, sleeping node,
    # demand charge, latency, carbon, a pinned job). Before: 2.9308 against the optimum
    # 2.7418 (6.9 % above); the old neighbourhood stays there.
    p = read_bundle(TINY)
    opt = _optimum(p)
    assert _old_neighbourhood(p) > opt * (1 + WITHIN)
    assert _greedy(p) <= opt * (1 + WITHIN)
