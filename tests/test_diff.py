"""Plan diff: exactly the moved jobs and the cost deltas, from files or the evaluator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optisched.cli import EXIT_INPUT, EXIT_OK, app
from optisched.diff import JobChange, Placement, PlanRecord, diff_plans, read_record
from optisched.plan import COST_TERMS

runner = CliRunner()


def _costs(**kw: float) -> dict[str, float]:
    return {k: kw.get(k, 0.0) for k in COST_TERMS}


A = PlanRecord(
    name="A", solver="s", status="feasible", objective=12.0,
    costs=_costs(energy=10.0, export_revenue=1.0, drop=3.0),
    placements={"j1": Placement("n1", 0), "j2": Placement("n1", 2), "j3": Placement("n2", 1),
                "j4": Placement(None, None), "j5": Placement("n2", 3),
                "j7": Placement("n1", 5)},
)
B = PlanRecord(
    name="B", solver="s", status="feasible", objective=10.0,
    costs=_costs(energy=7.5, export_revenue=1.5, drop=4.0),
    placements={"j1": Placement("n1", 0), "j2": Placement("n2", 2), "j3": Placement("n2", 4),
                "j4": Placement("n1", 0), "j5": Placement(None, None),
                "j6": Placement("n2", 0)},
)


def test_diff_reports_exactly_the_moved_jobs_and_deltas() -> None:
    d = diff_plans(A, B)
    assert d.changes == [
        JobChange("j2", "moved", "n1", 2, "n2", 2),
        JobChange("j3", "retimed", "n2", 1, "n2", 4),
        JobChange("j4", "scheduled", None, None, "n1", 0),
        JobChange("j5", "dropped", "n2", 3, None, None),
        JobChange("j6", "only_b", None, None, "n2", 0),
        JobChange("j7", "only_a", "n1", 5, None, None),
    ]
    assert d.unchanged == 1  # j1
    assert d.changes[1].shift == 3 and d.changes[0].shift == 0 and d.changes[3].shift is None
    # B − A, by hand: energy 7.5 − 10, export revenue 1.5 − 1, drop 4 − 3
    assert d.delta["energy"] == pytest.approx(-2.5)
    assert d.delta["export_revenue"] == pytest.approx(0.5)
    assert d.delta["drop"] == pytest.approx(1.0)
    assert all(d.delta[k] == 0.0 for k in COST_TERMS if k not in ("energy", "export_revenue",
                                                                  "drop"))
    assert d.objective_delta == pytest.approx(-2.0)
    assert d.counts() == {"moved": 1, "retimed": 1, "scheduled": 1, "dropped": 1, "only_b": 1,
                          "only_a": 1}
    same = diff_plans(A, A)
    assert same.changes == [] and same.unchanged == len(A.placements)
    assert all(v == 0.0 for v in same.delta.values())


def test_missing_cost_term_gives_no_delta() -> None:
    a = PlanRecord("a", "s", "infeasible", None, {}, {})
    d = diff_plans(a, B)
    assert d.delta["energy"] is None and d.objective_delta is None
    assert d.costs_b["energy"] == 7.5


def _write_plan_dir(path: Path, rec: PlanRecord) -> Path:
    path.mkdir(parents=True)
    lines = ["job_id,status,node_id,start_slot,end_slot,start,end"]
    for jid, p in rec.placements.items():
        if p.dropped:
            lines.append(f"{jid},dropped,,,,,")
        else:
            lines.append(f"{jid},scheduled,{p.node_id},{p.start_slot},{(p.start_slot or 0) + 1},,")
    (path / "assignments.csv").write_text("\n".join(lines) + "\n")
    (path / "summary.json").write_text(json.dumps(
        {"solver": rec.solver, "status": rec.status, "objective": rec.objective,
         "costs": rec.costs}))
    return path


def test_read_record_and_cli_json(tmp_path: Path) -> None:
    pa = _write_plan_dir(tmp_path / "A", A)
    pb = _write_plan_dir(tmp_path / "B", B)
    ra = read_record(pa)
    assert ra.placements == A.placements and ra.costs == A.costs and ra.objective == 12.0
    r = runner.invoke(app, ["diff", str(pa), str(pb), "--json"])
    assert r.exit_code == EXIT_OK, r.output
    data = json.loads(r.stdout)
    assert data["source"] == "summary.json"
    assert [c["job_id"] for c in data["changes"]] == ["j2", "j3", "j4", "j5", "j6", "j7"]
    assert data["delta"]["energy"] == pytest.approx(-2.5)
    assert data["objective_delta"] == pytest.approx(-2.0)
    r = runner.invoke(app, ["diff", str(pa), str(pb)])
    assert r.exit_code == EXIT_OK
    assert "6 job(s) changed, 1 unchanged" in r.output and "retimed" in r.output


def test_cli_diff_with_bundle_recomputes_costs(tiny_dir: Path, tmp_path: Path) -> None:
    pa = tmp_path / "A"
    r = runner.invoke(app, ["plan", str(tiny_dir), "--out", str(pa), "-s", "baseline", "-q"])
    assert r.exit_code == EXIT_OK, r.output
    summary = json.loads((pa / "summary.json").read_text())
    # B: the same files, j1 moved one slot later in assignments.csv and a wrong objective in
    # summary.json; with --bundle the costs come from the evaluator, not the summary
    pb = tmp_path / "B"
    pb.mkdir()
    (pb / "node_series.csv").write_text((pa / "node_series.csv").read_text())
    rows = (pa / "assignments.csv").read_text().splitlines()
    j1 = next(i for i, line in enumerate(rows) if line.startswith("j1,"))
    cells = rows[j1].split(",")
    assert cells[3] == "0"
    cells[3] = "1"
    rows[j1] = ",".join(cells)
    (pb / "assignments.csv").write_text("\n".join(rows) + "\n")
    (pb / "summary.json").write_text(json.dumps({**summary, "objective": 999.0}))
    r = runner.invoke(app, ["diff", str(pa), str(pb), "--bundle", str(tiny_dir), "--json"])
    assert r.exit_code == EXIT_OK, r.output
    data = json.loads(r.stdout)
    assert data["source"] == "evaluator"
    assert data["changes"] == [{"job_id": "j1", "change": "retimed", "node_a": "home1",
                                "start_a": 0, "node_b": "home1", "start_b": 1}]
    assert data["objective_a"] == pytest.approx(summary["objective"], rel=1e-9)
    assert data["objective_delta"] == pytest.approx(0.0, abs=1e-9)  # same flows, no tardiness
    r = runner.invoke(app, ["diff", str(pa), str(pb), "--json"])
    assert json.loads(r.stdout)["objective_b"] == 999.0  # without --bundle: summary.json


def test_cli_diff_missing_files(tmp_path: Path) -> None:
    (tmp_path / "A").mkdir()
    r = runner.invoke(app, ["diff", str(tmp_path / "A"), str(tmp_path / "A")])
    assert r.exit_code == EXIT_INPUT
    assert "summary.json" in r.output and "Traceback" not in r.output
