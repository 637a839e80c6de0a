"""ICON solution files: export-icon writes them, read_icon_solution reads them back, and the ICON
cost recomputed from the raw instance, forecast and solution text equals the evaluator's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optisched.cli import app
from optisched.evaluate import evaluate
from optisched.generate.tight import tight_problem
from optisched.icon import (
    IconFormatError,
    IconSolution,
    check_icon_shape,
    read_icon,
    read_icon_solution,
    write_icon,
)
from optisched.io import read_bundle
from optisched.plan import Plan, read_plan, write_plan
from optisched.solvers import solve

ICON = Path(__file__).resolve().parents[1] / "datasets" / "icon"


def _icon_check(instance: Path, forecast: Path, sol: IconSolution) -> float:
    """The ICON cost of a solution (challenge note, eqs. 12-16), from the raw text, after
    checking it as the challenge does: every task once in its window, capacities, tasks only
    on running machines, machines off before the first and after the last period."""
    tok = instance.read_text().split()
    pos = 0

    def nx() -> str:
        nonlocal pos
        pos += 1
        return tok[pos - 1]

    q, R, M = int(nx()), int(nx()), int(nx())
    mach = {}
    for _ in range(M):
        mid, idle, up, down = int(nx()), float(nx()), float(nx()), float(nx())
        mach[mid] = (idle, up, down, np.array([float(nx()) for _ in range(R)]))
    tasks = {}
    for _ in range(int(nx())):
        tid, d, e, le, pw = int(nx()), int(nx()), int(nx()), int(nx()), float(nx())
        tasks[tid] = (d, e, le, pw, np.array([float(nx()) for _ in range(R)]))
    lines = forecast.read_text().split("\n")
    T = int(lines[0])
    price = np.array([float(x.split()[1]) for x in lines[1:] if x.strip()])
    assert T == 1440 // q == price.size
    assert set(sol.tasks) == set(tasks) and set(sol.machines) == set(mach)
    on = {m: sol.on(m, T) for m in mach}
    use = {m: np.zeros((T, R)) for m in mach}
    task_cost = 0.0
    for tid, (m, s) in sol.tasks.items():
        d, e, le, pw, u = tasks[tid]
        assert e <= s and s + d <= le, f"task {tid} outside its window"
        assert on[m][s:s + d].all(), f"task {tid} runs on machine {m} while it is off"
        use[m][s:s + d] += u
        task_cost += pw * q / 60 * price[s:s + d].sum()
    for m, (_idle, _up, _down, cap) in mach.items():
        assert (use[m] <= cap + 1e-9).all(), f"machine {m} over capacity"
    idle_cost = sum(mach[m][0] * q / 60 * price[on[m]].sum() for m in mach)
    switching = 0.0
    for m, (_idle, up, down, _cap) in mach.items():
        acts = [a for a, _t in sol.machines[m]]
        switching += up * acts.count(1) + down * acts.count(0)
    return task_cost + idle_cost + switching


def _export(tmp_path: Path, bundle: Path, plan_dir: Path) -> IconSolution:
    out = tmp_path / "solution.txt"
    res = CliRunner().invoke(app, ["export-icon", str(bundle), str(plan_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return read_icon_solution(out)


def _round_trip(tmp_path: Path, instance: Path, plan: Plan) -> None:
    """Import ``instance`` with the CLI, write ``plan`` for it, export, read back, recompute."""
    res = CliRunner().invoke(app, ["import-icon", str(instance), "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    problem = read_bundle(tmp_path / "b")
    write_plan(problem, plan, tmp_path / "plan")
    ev = evaluate(problem, read_plan(problem, tmp_path / "plan"))
    assert ev.feasible, ev.violations[:5]
    sol = _export(tmp_path, tmp_path / "b", tmp_path / "plan")
    # ids map back to ICON's: t<k> -> k, m<k> -> k, in the instance's order
    assert list(sol.tasks) == [int(j.job_id[1:]) for j in problem.jobs]
    assert list(sol.machines) == [int(n.node_id[1:]) for n in problem.nodes]
    for j, tid in enumerate(sol.tasks):
        assert sol.tasks[tid] == (int(problem.nodes[plan.node[j]].node_id[1:]),
                                  int(plan.start[j]))
    assert plan.flows is not None
    for k, mid in enumerate(sol.machines):
        assert (sol.on(mid, problem.horizon.slots) == plan.flows.on[k]).all()
    cost = _icon_check(instance / "instance.txt", instance / "forecast.txt", sol)
    assert cost == pytest.approx(ev.objective, rel=1e-6, abs=1e-6)


def test_round_trip_icon_sample01(tmp_path: Path) -> None:
    problem = read_icon(ICON / "sample01")
    # greedy and baseline find no plan on sample01; the packing start of lns does in seconds
    plan = solve(problem, "lns", time_limit=6, seed=0, max_iterations=2, lp_bound=False,
                 packing_time_limit=1.0)
    assert plan.status.has_plan, plan.message
    _round_trip(tmp_path, ICON / "sample01", plan)


@pytest.mark.parametrize(("resources", "seed"), [(1, 0), (3, 4)])
def test_round_trip_tight_instance(tmp_path: Path, resources: int, seed: int) -> None:
    problem, hidden = tight_problem(60, 4, n_resources=resources, seed=seed)
    write_icon(problem, tmp_path / "inst")
    # the instance files read back to the same problem (ids, windows, prices, everything)
    assert read_icon(tmp_path / "inst").model_dump() == problem.model_dump()
    _round_trip(tmp_path, tmp_path / "inst", hidden)


def test_tight_bundle_exports_directly(tmp_path: Path) -> None:
    problem, hidden = tight_problem(30, 3, n_resources=2, seed=8)
    res = CliRunner().invoke(app, ["generate", "--preset", "tight", "--jobs", "30", "--nodes",
                                   "3", "--resources", "2", "--seed", "8", "--out",
                                   str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    write_plan(problem, hidden, tmp_path / "plan")
    out = tmp_path / "sol.txt"
    res = CliRunner().invoke(app, ["export-icon", str(tmp_path / "b"), str(tmp_path / "plan"),
                                   "--out", str(out), "--instance", str(tmp_path / "inst")])
    assert res.exit_code == 0, res.output
    cost = _icon_check(tmp_path / "inst" / "instance.txt", tmp_path / "inst" / "forecast.txt",
                       read_icon_solution(out))
    assert cost == pytest.approx(hidden.objective, rel=1e-6)
    # the file as the note's example lays it out: machines, then per machine id, count, events
    lines = out.read_text().splitlines()
    assert lines[0] == "3" and lines[1] == "0" and lines[2] == "2"
    assert lines[3].startswith("1 ") and lines[4].startswith("0 ")


@pytest.mark.parametrize(("bundle", "needles"), [
    ("tiny", ["tiny/scenario.toml", "not one day"]),
    ("city", ["city/nodes.csv", "is not an ICON machine", "m<integer>"]),
])
def test_not_icon_shaped_is_refused(tmp_path: Path, bundle: str, needles: list[str]) -> None:
    path = Path(__file__).resolve().parents[1] / "datasets" / bundle
    res = CliRunner().invoke(app, ["export-icon", str(path), str(tmp_path / "none"), "--out",
                                   str(tmp_path / "s.txt")])
    assert res.exit_code == 1
    text = " ".join(res.output.split())
    for n in needles:
        assert n in text
    assert not (tmp_path / "s.txt").exists()


@pytest.mark.parametrize(("change", "needles"), [
    (("node", {"node_id": "m07"}), ["nodes.csv", "'m07'", "m<integer>"]),
    (("node", {"battery_kwh": 5.0}), ["nodes.csv", "'m0'", "battery"]),
    (("node", {"initially_on": True}), ["nodes.csv", "starts on"]),
    (("node", {"resources": {"r2": 9.0}}), ["nodes.csv", "resources"]),
    (("job", {"drop_penalty": 3.0}), ["jobs.csv", "'t0'", "drop_penalty"]),
    (("job", {"tardiness_per_hour": 1.0}), ["jobs.csv", "soft deadline"]),
])
def test_shape_check_names_what_is_not_icon(change: tuple[str, dict[str, object]],
                                            needles: list[str]) -> None:
    problem, _ = tight_problem(10, 2, n_resources=2, seed=0)
    what, upd = change
    if what == "node":
        nodes = [problem.nodes[0].model_copy(update=upd), *problem.nodes[1:]]
        jobs = problem.jobs
    else:
        nodes = problem.nodes
        jobs = [problem.jobs[0].model_copy(update=upd), *problem.jobs[1:]]
    bad = problem.model_copy(update={"nodes": nodes, "jobs": jobs})
    with pytest.raises(IconFormatError) as exc:
        check_icon_shape(bad, "bundle")
    for n in needles:
        assert n in str(exc.value)
    assert check_icon_shape(problem) == ([0, 1], list(range(10)))


def test_dropped_job_is_refused(tmp_path: Path) -> None:
    problem, hidden = tight_problem(20, 2, seed=1)
    res = CliRunner().invoke(app, ["generate", "--preset", "tight", "--jobs", "20", "--nodes",
                                   "2", "--seed", "1", "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    hidden.node[3] = -1
    write_plan(problem, hidden, tmp_path / "plan")
    res = CliRunner().invoke(app, ["export-icon", str(tmp_path / "b"), str(tmp_path / "plan"),
                                   "--out", str(tmp_path / "s.txt")])
    assert res.exit_code == 1
    text = " ".join(res.output.split())
    assert "plan/assignments.csv" in text and "'t3' is dropped" in text


def test_infeasible_plan_is_refused(tmp_path: Path) -> None:
    problem, hidden = tight_problem(20, 2, seed=1)
    res = CliRunner().invoke(app, ["generate", "--preset", "tight", "--jobs", "20", "--nodes",
                                   "2", "--seed", "1", "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    j = next(k for k, job in enumerate(problem.jobs)
             if job.release is not None and problem.horizon.slot_position(job.release) > 0)
    hidden.start[j] = int(problem.horizon.slot_position(problem.jobs[j].release)) - 1
    write_plan(problem, hidden, tmp_path / "plan")
    res = CliRunner().invoke(app, ["export-icon", str(tmp_path / "b"), str(tmp_path / "plan"),
                                   "--out", str(tmp_path / "s.txt")])
    assert res.exit_code == 2
    assert "not feasible" in " ".join(res.output.split()) and not (tmp_path / "s.txt").exists()


@pytest.mark.parametrize(("text", "needles"), [
    ("1\n0\n2\n1 0\n2 287\n0\n", ["solution.txt:5", "event action", "2"]),
    ("1\n0\n1\n1 x\n0\n", ["solution.txt:4", "'x'"]),
    ("1\n0\n0\n2\n0 0 5\n", ["unexpected end of file", "task id"]),
    ("0\n1\n3 0 1\n7\n", ["solution.txt:4", "extra value"]),
])
def test_malformed_solution(tmp_path: Path, text: str, needles: list[str]) -> None:
    f = tmp_path / "solution.txt"
    f.write_text(text)
    with pytest.raises(IconFormatError) as exc:
        read_icon_solution(f)
    for n in needles:
        assert n in str(exc.value)


def test_on_state_of_events() -> None:
    sol = IconSolution(machines={0: [(1, 2), (0, 4), (1, 7), (0, 7)], 1: [(0, 3)], 2: [(1, 1)]})
    assert sol.on(0, 9).tolist() == [False, False, True, True, True, False, False, True, False]
    with pytest.raises(ValueError, match="alternate"):
        sol.on(1, 9)
    with pytest.raises(ValueError, match="end off"):
        sol.on(2, 9)
