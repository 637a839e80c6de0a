"""Compiled index: eligibility rules one at a time, durations, windows, latency."""

from __future__ import annotations

import numpy as np
import pytest

from optisched.domain import Horizon, Job, Node, NodeSeries, Problem, Region, Scenario
from optisched.index import compile_index, explain_job, great_circle_km

START = "2026-06-01T00:00:00+00:00"


def problem(nodes: list[Node], jobs: list[Job], **kw: object) -> Problem:
    return Problem(scenario=Scenario(horizon=Horizon(start=START, slot_minutes=60, slots=6)),
                   nodes=nodes, jobs=jobs, **kw)  # type: ignore[arg-type]


def eligible(p: Problem) -> set[tuple[str, str]]:
    ix = compile_index(p)
    return {(ix.job_ids[j], ix.node_ids[n]) for j, n in zip(ix.opt_job, ix.opt_node, strict=True)}


@pytest.mark.parametrize(("node_kw", "job_kw", "ok"), [
    ({"gpus": 2}, {"gpus": 2}, True),
    ({"gpus": 1}, {"gpus": 2}, False),
    ({"gpus": 2, "resources": {"mem": 8}}, {"gpus": 1, "resources": {"mem": 16}}, False),
    ({"gpus": 1, "gpu_mem_gb": 24}, {"gpus": 1, "min_gpu_mem_gb": 24}, True),
    ({"gpus": 1, "gpu_mem_gb": 16}, {"gpus": 1, "min_gpu_mem_gb": 24}, False),
    ({"gpus": 1, "trust": 1}, {"gpus": 1, "min_trust": 2}, False),
    ({"gpus": 1, "trust": 2}, {"gpus": 1, "min_trust": 2}, True),
])
def test_eligibility_rules(node_kw: dict, job_kw: dict, ok: bool) -> None:
    big = Node(node_id="big", gpus=8, resources={"mem": 64})
    p = problem([Node(node_id="n", **node_kw), big],
                [Job(job_id="j", duration_min=60, power_kw=1, **job_kw)])
    assert (("j", "n") in eligible(p)) is ok


def test_hard_and_soft_latency_slo() -> None:
    nodes = [Node(node_id="near", gpus=1), Node(node_id="far", gpus=1),
             Node(node_id="unknown", gpus=1)]
    lat = {"near": {"r": 4.0}, "far": {"r": 40.0}}
    hard = Job(job_id="h", gpus=1, duration_min=60, power_kw=1, region="r", latency_slo_ms=10)
    soft = Job(job_id="s", gpus=1, duration_min=60, power_kw=1, region="r", latency_slo_ms=10,
               latency_per_ms=0.1)
    p = problem(nodes, [hard, soft], latency_ms=lat)
    el = eligible(p)
    assert ("h", "near") in el and ("h", "far") not in el and ("h", "unknown") not in el
    assert ("s", "far") in el and ("s", "unknown") not in el
    ix = compile_index(p)
    o = ix.find_option(1, 1)
    assert ix.opt_latency_cost[o] == pytest.approx(0.1 * 30.0)


def test_latency_by_distance() -> None:
    # Berlin (52.52 N, 13.405 E) to Munich (48.137 N, 11.575 E): about 504 km
    km = float(great_circle_km(np.array(52.52), np.array(13.405), np.array(48.137),
                               np.array(11.575)))
    assert km == pytest.approx(504.0, abs=3.0)
    node = Node(node_id="n", gpus=1, lat=52.52, lon=13.405)
    job = Job(job_id="j", gpus=1, duration_min=60, power_kw=1, region="muc", latency_slo_ms=5,
              latency_per_ms=1.0)
    p = problem([node], [job], regions={"muc": Region(lat=48.137, lon=11.575)})
    ix = compile_index(p)
    assert ix.latency_ms[0, 0] == pytest.approx(2.0 + 0.015 * km)


def test_durations_speed_and_windows() -> None:
    fast = Node(node_id="fast", gpus=1, speed=2.0)
    slow = Node(node_id="slow", gpus=1, speed=0.5)
    job = Job(job_id="j", gpus=1, duration_min=90, power_kw=1,
              release="2026-06-01T01:30:00+00:00", deadline="2026-06-01T05:00:00+00:00")
    ix = compile_index(problem([fast, slow], [job]))
    # 90 min at speed 2 = 45 min -> 1 slot; at speed 0.5 = 180 min -> 3 slots
    assert ix.duration(0, 0) == 1 and ix.duration(0, 1) == 3
    # release 01:30 rounds up to slot 2; hard deadline slot 5
    assert list(ix.feasible_starts(ix.find_option(0, 0))) == [2, 3, 4]
    assert list(ix.feasible_starts(ix.find_option(0, 1))) == [2]


def test_availability_gap() -> None:
    node = Node(node_id="n", gpus=1)
    job = Job(job_id="j", gpus=1, duration_min=120, power_kw=1)
    p = problem([node], [job],
                node_series={"n": NodeSeries(available=[True, False, True, True, False, True])})
    ix = compile_index(p)
    assert list(ix.feasible_starts(0)) == [2]
    p2 = problem([node], [job],
                 node_series={"n": NodeSeries(available=[True, False, True, False, True, False])})
    ix2 = compile_index(p2)
    assert ix2.opt_job.size == 0
    assert "not available for 2 consecutive slots" in explain_job(p2, ix2, 0)


def test_always_on_and_the_idle_floor() -> None:
    """A node that cannot sleep is on (and draws its idle power) wherever it is available;
    a sleeper's floor is 0."""
    awake = Node(node_id="a", gpus=1, idle_kw=0.5, can_sleep=False)
    sleeper = Node(node_id="s", gpus=1, idle_kw=0.3, can_sleep=True)
    gap = NodeSeries(available=[True, False, True, True, False, True])
    p = problem([awake, sleeper], [], node_series={"a": gap})
    ix = compile_index(p)
    a, s = ix.node_ids.index("a"), ix.node_ids.index("s")
    assert ix.always_on[a].tolist() == gap.available
    assert not ix.always_on[s].any()
    assert ix.idle_floor_kw[a].tolist() == [0.5, 0.0, 0.5, 0.5, 0.0, 0.5]
    assert ix.idle_floor_kw[s].tolist() == [0.0] * 6


def test_explain_counts_reasons() -> None:
    nodes = [Node(node_id=f"n{k}", gpus=1) for k in range(3)] + [Node(node_id="m", gpus=4,
                                                                       trust=0)]
    job = Job(job_id="j", gpus=2, duration_min=60, power_kw=1, min_trust=1)
    p = problem(nodes, [job], )
    text = explain_job(p, compile_index(p), 0)
    assert "3 nodes: lacks gpus (needs 2, has 1)" in text
    assert "1 node: trust 0 is below the job's 1" in text


def test_pinned_before_horizon() -> None:
    node = Node(node_id="n", gpus=1)
    job = Job(job_id="j", gpus=1, duration_min=180, power_kw=1, pinned_node="n",
              pinned_start="2026-06-01T00:00:00+00:00")
    p = problem([node], [job])
    ix = compile_index(p)
    assert ix.pinned_node[0] == 0 and ix.pinned_start[0] == 0
    job2 = Job(job_id="j", gpus=1, duration_min=180, power_kw=1, pinned_node="n",
               pinned_start="2026-05-31T23:00:00+00:00")
    ix2 = compile_index(problem([node], [job2]))
    assert ix2.pinned_start[0] == -1 and ix2.occupied(0, -1) == (0, 2)


def test_latency_table_indexes_like_the_dense_matrix() -> None:
    from optisched.generate import generate

    p = generate("city", seed=2)
    ix = compile_index(p)
    dense = np.asarray(ix.latency_ms)
    assert dense.shape == ix.latency_ms.shape == (ix.J, ix.N)
    j = np.array([0, 3, 5, 5])
    n = np.array([1, 0, 2, 7])
    np.testing.assert_array_equal(ix.latency_ms[j, n], dense[j, n])
    np.testing.assert_array_equal(ix.latency_ms[4], dense[4])
    np.testing.assert_array_equal(ix.latency_ms[2:6, 3], dense[2:6, 3])
    assert ix.latency_ms[1, 2] == dense[1, 2] or np.isnan(dense[1, 2])
