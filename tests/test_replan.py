"""Re-planning: rolling horizon, pinned running jobs, warm start, events CSV and CLI."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optisched.cli import EXIT_INPUT, app
from optisched.domain import Job, Problem
from optisched.evaluate import evaluate
from optisched.generate.random_problems import random_problem
from optisched.index import compile_index
from optisched.io import read_bundle
from optisched.plan import Plan, read_plan
from optisched.replan import Replanner, read_events

runner = CliRunner()


def _feasible(problem: Problem, plan: Plan) -> None:
    assert plan.status.has_plan, plan.message
    ev = evaluate(problem, plan)
    assert ev.feasible, [str(v) for v in ev.violations]
    assert plan.objective == pytest.approx(ev.objective, rel=1e-9, abs=1e-9)


def _running(rp: Replanner, now: datetime) -> dict[str, tuple[str, datetime]]:
    """Jobs of the current plan running at ``now``: id -> (node id, absolute start time)."""
    p, plan = rp.problem, rp.plan
    ix = compile_index(p)
    k = round(p.horizon.slot_position(now))
    out = {}
    for j, job in enumerate(p.jobs):
        n = int(plan.node[j])
        if n < 0:
            continue
        s = int(plan.start[j])
        if s < k < s + int(ix.duration(j, n)):
            out[job.job_id] = (ix.node_ids[n], p.horizon.time_of(s))
    return out


def _assert_unmoved(rp: Replanner, before: dict[str, tuple[str, datetime]],
                    out_nodes: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    p, plan = rp.problem, rp.plan
    pos = {j.job_id: i for i, j in enumerate(p.jobs)}
    for jid, (nid, start) in before.items():
        if nid in out_nodes:
            continue
        j = pos[jid]
        assert p.jobs[j].pinned_node == nid and p.jobs[j].pinned_start == start
        assert plan.node_ids[int(plan.node[j])] == nid
        assert p.horizon.time_of(int(plan.start[j])) == start


def _problem() -> Problem:
    return random_problem(4, n_nodes=4, n_jobs=10, slots=12, batteries=True, sleep=True)


def test_replan_sequence_keeps_running_jobs_and_feasibility() -> None:
    p = _problem()
    hz = p.horizon
    rp = Replanner(p, seed=1, time_limit=5.0, iterations=60)
    _feasible(rp.problem, rp.plan)

    # 1. arrivals at slot 2
    now = hz.time_of(2)
    before = _running(rp, now)
    new = [Job(job_id="a1", gpus=1, duration_min=120, power_kw=1.0, release=now,
               deadline=hz.time_of(10), drop_penalty=20.0),
           Job(job_id="a2", gpus=1, duration_min=60, power_kw=0.5, drop_penalty=5.0)]
    plan = rp.update(now, new_jobs=new)
    _feasible(rp.problem, plan)
    assert rp.problem.horizon.start == now and rp.problem.horizon.slots == 10
    assert {"a1", "a2"} <= {j.job_id for j in rp.problem.jobs}
    _assert_unmoved(rp, before)

    # 2. the busiest node goes out at slot 3
    now = hz.time_of(3)
    before = _running(rp, now)
    busy = np.bincount(rp.plan.node[rp.plan.node >= 0], minlength=4)
    out_node = rp.problem.nodes[int(np.argmax(busy))].node_id
    plan = rp.update(now, outages=[out_node])
    _feasible(rp.problem, plan)
    _assert_unmoved(rp, before, {out_node})
    n_out = plan.node_ids.index(out_node)
    assert not (plan.node == n_out).any()
    assert plan.flows is not None and not plan.flows.on[n_out].any()
    for jid, (nid, _) in before.items():  # jobs killed by the outage restart elsewhere
        if nid == out_node:
            job = next(j for j in rp.problem.jobs if j.job_id == jid)
            assert job.pinned_node is None

    # 3. forecast change at slot 4: more PV everywhere, a price spike
    now = hz.time_of(4)
    before = _running(rp, now)
    T2 = hz.slots - 4
    pv = {n.node_id: [3.0] * T2 for n in rp.problem.nodes}
    prices = {"t0": [1.0] * T2}
    plan = rp.update(now, pv=pv, prices=prices, returns=[out_node])
    _feasible(rp.problem, plan)
    _assert_unmoved(rp, before)
    assert rp.problem.node_series["n0"].pv_kw == [3.0] * T2
    assert rp.problem.tariffs["t0"].price == [1.0] * T2
    assert all(rp.problem.node_series[out_node].available or [True])


def test_state_carries_over_and_measured_soc() -> None:
    p = _problem()
    rp = Replanner(p, time_limit=5.0, iterations=30)
    flows = rp.plan.flows
    assert flows is not None
    batt = [i for i, n in enumerate(p.nodes) if n.battery_kwh > 0]
    i0 = batt[0]
    now = p.horizon.time_of(3)
    rp.update(now)
    node = rp.problem.nodes[i0]
    # soc at the end of slot 2 of the old plan becomes the initial soc
    expect = min(max(flows.soc[i0, 2] / node.battery_kwh, node.soc_min), node.soc_max)
    assert node.soc_init == pytest.approx(expect)
    assert node.initially_on == bool(flows.on[i0, 2])
    # a measured soc overrides it (kWh, clipped to the bounds)
    i1 = batt[-1]
    nid = p.nodes[i1].node_id
    E = p.nodes[i1].battery_kwh
    rp.update(p.horizon.time_of(4), soc={nid: 0.0})
    assert rp.problem.nodes[i1].soc_init == pytest.approx(p.nodes[i1].soc_min)
    rp.update(p.horizon.time_of(5), soc={nid: E * p.nodes[i1].soc_max})
    assert rp.problem.nodes[i1].soc_init == pytest.approx(p.nodes[i1].soc_max)
    _feasible(rp.problem, rp.plan)


def test_cancel_and_finish_remove_jobs() -> None:
    p = _problem()
    rp = Replanner(p, time_limit=5.0, iterations=20)
    ids = [j.job_id for j in p.jobs]
    rp.update(p.horizon.start, cancelled=[ids[0]], finished=[ids[1]])
    left = {j.job_id for j in rp.problem.jobs}
    assert ids[0] not in left and ids[1] not in left and ids[2] in left
    _feasible(rp.problem, rp.plan)


def test_update_rejects_bad_input() -> None:
    p = _problem()
    rp = Replanner(p, time_limit=0.0)
    with pytest.raises(ValueError, match="naive"):
        rp.update(datetime(2026, 6, 1, 2))
    with pytest.raises(ValueError, match="horizon end"):
        rp.update(p.horizon.end)
    with pytest.raises(ValueError, match="before the current horizon start"):
        rp.update(p.horizon.time_of(-1))
    with pytest.raises(ValueError, match="unknown node_id"):
        rp.update(p.horizon.start, outages=["nope"])
    with pytest.raises(ValueError, match="slots"):
        rp.update(p.horizon.time_of(2), pv={"n0": [1.0] * 3})


def test_update_is_deterministic() -> None:
    plans = []
    for _ in range(2):
        p = _problem()
        rp = Replanner(p, seed=3, time_limit=30.0, iterations=40)
        rp.update(p.horizon.time_of(2), new_jobs=[Job(job_id="x", gpus=1, duration_min=60,
                                                      power_kw=1.0, drop_penalty=9.0)])
        plans.append(rp.plan)
    assert np.array_equal(plans[0].node, plans[1].node)
    assert np.array_equal(plans[0].start, plans[1].start)
    assert plans[0].objective == plans[1].objective


# ----------------------------------------------------------------- events CSV and CLI

EVENTS = ("time,event,job_id,node_id,tariff,value,at,until,gpus,duration_min,power_kw,deadline,"
          "drop_penalty\n") + """\
2026-06-01T09:00:00+00:00,arrive,j9,,,,,,1,60,0.5,2026-06-01T14:00:00+00:00,3
2026-06-01T09:00:00+00:00,pv,,home1,,2.0,2026-06-01T10:00:00+00:00,2026-06-01T12:00:00+00:00,,,,,
2026-06-01T10:00:00+00:00,outage,,street1,,,,,,,,,
2026-06-01T10:00:00+00:00,price,,,residential,0.5,,,,,,,
2026-06-01T11:00:00+00:00,soc,,home1,,4,,,,,,,
"""


def test_read_events_groups_by_time(tmp_path: Path) -> None:
    f = tmp_path / "events.csv"
    f.write_text(EVENTS)
    steps = read_events(f)
    assert [s.time.hour for s in steps] == [9, 10, 11]
    assert steps[0].new_jobs[0].job_id == "j9"
    assert steps[0].new_jobs[0].release == steps[0].time
    assert steps[0].pv[0][0] == "home1" and steps[0].pv[0][3] == 2.0
    assert steps[1].outages == {"street1": None}
    assert steps[2].soc == {"home1": 4.0}


def test_cli_replan(tiny_dir: Path, tmp_path: Path) -> None:
    p0 = tmp_path / "p0"
    r = runner.invoke(app, ["plan", str(tiny_dir), "--out", str(p0), "-s", "greedy",
                            "--time-limit", "0.2"])
    assert r.exit_code == 0, r.output
    ev = tmp_path / "events.csv"
    ev.write_text(EVENTS)
    out = tmp_path / "out"
    r = runner.invoke(app, ["replan", str(p0), str(tiny_dir), "--events", str(ev), "--out",
                            str(out), "--time-limit", "0.1"])
    assert r.exit_code == 0, r.output
    problem = read_bundle(out / "bundle")
    assert problem.horizon.start.hour == 11 and problem.horizon.slots == 5
    plan = read_plan(problem, out / "plan")
    assert evaluate(problem, plan).feasible
    assert len((out / "steps.csv").read_text().splitlines()) == 4
    # the pv event reached the home1 forecast (slots 10:00 and 11:00; 11:00 is now slot 0)
    assert problem.node_series["home1"].pv_kw is not None
    assert problem.node_series["home1"].pv_kw[0] == 2.0


def test_cli_replan_bad_rows(tiny_dir: Path, tmp_path: Path) -> None:
    p0 = tmp_path / "p0"
    assert runner.invoke(app, ["plan", str(tiny_dir), "--out", str(p0), "-s", "baseline"]
                         ).exit_code == 0
    ev = tmp_path / "bad.csv"
    ev.write_text("time,event,job_id,node_id,value\n"
                  "2026-06-01T09:00:00+00:00,explode,j1,,\n"
                  "yesterday,cancel,j1,,\n"
                  "2026-06-01T09:00:00+00:00,soc,,home1,abc\n"
                  "2026-06-01T09:00:00+00:00,cancel,,,\n")
    r = runner.invoke(app, ["replan", str(p0), str(tiny_dir), "--events", str(ev), "--out",
                            str(tmp_path / "o")])
    assert r.exit_code == EXIT_INPUT
    text = " ".join(r.output.split())
    assert "row 2, column event: value 'explode'" in text
    assert "row 3, column time: value 'yesterday'" in text
    assert "row 4, column value: value 'abc'" in text
    assert "row 5, column job_id" in text
    assert "Traceback" not in r.output


def test_cli_replan_time_off_grid(tiny_dir: Path, tmp_path: Path) -> None:
    p0 = tmp_path / "p0"
    assert runner.invoke(app, ["plan", str(tiny_dir), "--out", str(p0), "-s", "baseline"]
                         ).exit_code == 0
    ev = tmp_path / "ev.csv"
    ev.write_text("time,event,job_id\n2026-06-01T09:30:00+00:00,cancel,j3\n")
    r = runner.invoke(app, ["replan", str(p0), str(tiny_dir), "--events", str(ev), "--out",
                            str(tmp_path / "o")])
    assert r.exit_code == EXIT_INPUT
    assert "slot boundary" in r.output
