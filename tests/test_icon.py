"""ICON 2014 importer: the evaluator's objective equals the ICON cost formula; malformed input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optisched.cli import app
from optisched.evaluate import evaluate
from optisched.icon import IconFormatError, read_icon
from optisched.io import read_bundle
from optisched.plan import Flows, Plan, Status

ICON = Path(__file__).resolve().parents[1] / "datasets" / "icon"


def _parse(text: str) -> tuple[int, list[tuple[int, float, float, float, list[float]]],
                                list[tuple[int, int, int, int, float, list[float]]]]:
    """Independent reader of instance.txt (token stream, no optisched code)."""
    tok = text.split()
    pos = 0

    def nx() -> str:
        nonlocal pos
        pos += 1
        return tok[pos - 1]

    q, R, M = int(nx()), int(nx()), int(nx())
    machines = []
    for _ in range(M):
        mid, idle, up, down = int(nx()), float(nx()), float(nx()), float(nx())
        machines.append((mid, idle, up, down, [float(nx()) for _ in range(R)]))
    tasks = []
    for _ in range(int(nx())):
        tid, d, e, le, pw = int(nx()), int(nx()), int(nx()), int(nx()), float(nx())
        tasks.append((tid, d, e, le, pw, [float(nx()) for _ in range(R)]))
    return q, machines, tasks


def _sub_instance(sample: str, k: int, dst: Path) -> Path:
    """The sample with only its first ``k`` tasks (lines: q, R, M, 2 per machine, J, 2 per task)."""
    lines = (ICON / sample / "instance.txt").read_text().splitlines()
    M = int(lines[2])
    head = lines[: 3 + 2 * M]
    tasks = lines[4 + 2 * M: 4 + 2 * M + 2 * k]
    dst.mkdir(parents=True)
    (dst / "instance.txt").write_text("\n".join([*head, str(k), *tasks]) + "\n")
    shutil.copy(ICON / sample / "forecast.txt", dst / "forecast.txt")
    return dst


def _earliest_deadline_plan(q: int, machines: list, tasks: list,
                            T: int) -> dict[int, tuple[int, int]]:
    """Tasks by latest_end, each at its earliest start on the first machine where it fits."""
    R = len(machines[0][4])
    use = np.zeros((len(machines), T, R))
    place = {}
    for k in sorted(range(len(tasks)), key=lambda k: (tasks[k][3], tasks[k][2])):
        _tid, d, e, le, _pw, u = tasks[k]
        found = None
        for s in range(e, le - d + 1):
            for m in range(len(machines)):
                if (use[m, s:s + d] + np.array(u) <= np.array(machines[m][4]) + 1e-9).all():
                    found = (m, s)
                    break
            if found:
                break
        assert found is not None, "the rule found no plan for this sub-instance"
        use[found[0], found[1]:found[1] + tasks[k][1]] += u
        place[k] = found
    return place


@pytest.mark.parametrize(("sample", "k"), [("sample01", 12), ("sample04", 30)])
def test_objective_equals_icon_cost(tmp_path: Path, sample: str, k: int) -> None:
    d = _sub_instance(sample, k, tmp_path / "inst")
    text = (d / "instance.txt").read_text()
    q, machines, tasks = _parse(text)
    price_lines = (d / "forecast.txt").read_text().split("\n")
    price = [float(line.split()[1]) for line in price_lines[1:] if line.strip()]
    T = 1440 // q
    assert len(price) == T
    place = _earliest_deadline_plan(q, machines, tasks, T)

    # machine on from the start of its first task to the end of its last (gaps stay on)
    M = len(machines)
    on = np.zeros((M, T), dtype=bool)
    for m in range(M):
        runs = [(s, s + tasks[k_][1]) for k_, (mm, s) in place.items() if mm == m]
        if runs:
            on[m, min(a for a, _ in runs): max(b for _, b in runs)] = True

    # ICON cost (note, eqs. 12-16), computed from the raw text
    task_cost = sum(tasks[k_][4] * q / 60 * sum(price[s:s + tasks[k_][1]])
                    for k_, (_m, s) in place.items())
    idle_cost = sum(machines[m][1] * price[t] * q / 60 for m in range(M) for t in range(T)
                    if on[m, t])
    switch = 0.0
    for m in range(M):
        prev = False  # off before slot 0
        for t in range(T):
            if on[m, t] and not prev:
                switch += machines[m][2]
            if prev and not on[m, t]:
                switch += machines[m][3]
            prev = bool(on[m, t])
        if prev:  # must be off after the last slot
            switch += machines[m][3]
    icon_cost = task_cost + idle_cost + switch

    problem = read_icon(d)
    assert [n.node_id for n in problem.nodes] == [f"m{mc[0]}" for mc in machines]
    assert [j.job_id for j in problem.jobs] == [f"t{t[0]}" for t in tasks]
    node = np.array([place[k_][0] for k_ in range(len(tasks))], dtype=np.int64)
    start = np.array([place[k_][1] for k_ in range(len(tasks))], dtype=np.int64)
    load = on * np.array([mc[1] for mc in machines])[:, None]
    for k_, (m, s) in place.items():
        load[m, s:s + tasks[k_][1]] += tasks[k_][4]
    z = np.zeros((M, T))
    flows = Flows(on=on, load=load, pv_used=z.copy(), grid_import=load.copy(),
                  grid_export=z.copy(), charge=z.copy(), discharge=z.copy(), soc=z.copy())
    plan = Plan(solver="test", status=Status.FEASIBLE, job_ids=[j.job_id for j in problem.jobs],
                node_ids=[n.node_id for n in problem.nodes], node=node, start=start, flows=flows)
    ev = evaluate(problem, plan)
    assert ev.feasible, ev.violations[:5]
    assert ev.objective == pytest.approx(icon_cost, rel=1e-9)
    assert ev.costs["switching"] == pytest.approx(switch, rel=1e-12)
    assert switch > 0 and idle_cost > 0

    # a task moved one slot before its earliest start is a violation
    early = start.copy()
    k0 = next(k_ for k_ in range(len(tasks)) if tasks[k_][2] > 0)
    early[k0] = tasks[k0][2] - 1
    bad = Plan(solver="test", status=Status.FEASIBLE, job_ids=plan.job_ids,
               node_ids=plan.node_ids, node=node, start=early, flows=flows)
    assert not evaluate(problem, bad).feasible


def test_mapping_fields() -> None:
    problem = read_icon(ICON / "sample01")
    q, machines, tasks = _parse((ICON / "sample01" / "instance.txt").read_text())
    assert problem.horizon.slot_minutes == q == 5 and problem.horizon.slots == 288
    m0 = problem.nodes[0]
    assert (m0.gpus, m0.resources) == (machines[0][4][0], {"r1": machines[0][4][1],
                                                          "r2": machines[0][4][2]})
    assert m0.can_sleep and not m0.initially_on and m0.end_off
    assert (m0.idle_kw, m0.startup_cost, m0.shutdown_cost) == machines[0][1:4]
    t0 = problem.jobs[0]
    assert t0.must_run and t0.tardiness_per_hour is None
    assert t0.duration_min == tasks[0][1] * 5 and t0.power_kw == tasks[0][4]
    assert problem.horizon.slot_position(t0.release) == tasks[0][2]
    assert problem.horizon.slot_position(t0.deadline) == tasks[0][3]


def test_cli_import_round_trip(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["import-icon", str(ICON / "sample02"), "--out",
                                   str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    back = read_bundle(tmp_path / "b")
    assert back.model_dump() == read_icon(ICON / "sample02").model_dump()


def _broken(tmp_path: Path, line_no: int, old: str, new: str) -> Path:
    d = tmp_path / "bad"
    shutil.copytree(ICON / "sample01", d)
    lines = (d / "instance.txt").read_text().splitlines()
    assert old in lines[line_no - 1].split()
    lines[line_no - 1] = " ".join(new if t == old else t for t in lines[line_no - 1].split())
    (d / "instance.txt").write_text("\n".join(lines) + "\n")
    return d


@pytest.mark.parametrize(("line", "old", "new", "needles"), [
    (4, "120", "abc", ["instance.txt:4", "machine idle", "'abc'"]),
    (9, "171", "x1", ["instance.txt:9", "task 0 duration", "'x1'"]),
    (9, "277", "1", ["instance.txt:9", "no feasible start"]),
    (2, "3", "-1", ["instance.txt:2", "number of resources", "-1"]),
])
def test_malformed_instance(tmp_path: Path, line: int, old: str, new: str,
                            needles: list[str]) -> None:
    d = _broken(tmp_path, line, old, new)
    with pytest.raises(IconFormatError) as exc:
        read_icon(d)
    for n in needles:
        assert n in str(exc.value)
    res = CliRunner().invoke(app, ["import-icon", str(d), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert "instance.txt" in res.output


def test_truncated_and_bad_prices(tmp_path: Path) -> None:
    d = tmp_path / "trunc"
    shutil.copytree(ICON / "sample01", d)
    lines = (d / "instance.txt").read_text().splitlines()
    (d / "instance.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(IconFormatError, match="unexpected end of file"):
        read_icon(d)
    d2 = tmp_path / "price"
    shutil.copytree(ICON / "sample01", d2)
    p = (d2 / "forecast.txt").read_text().splitlines()
    p[10] = "9 cheap"
    (d2 / "forecast.txt").write_text("\n".join(p) + "\n")
    with pytest.raises(IconFormatError) as exc:
        read_icon(d2)
    assert "forecast.txt:11" in str(exc.value) and "'cheap'" in str(exc.value)
    with pytest.raises(IconFormatError, match=r"actual\.txt"):
        read_icon(ICON / "sample01", prices="actual")
