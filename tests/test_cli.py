"""CLI: the README's main job, exit codes, no tracebacks for user errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from optisched.cli import EXIT_INFEASIBLE, EXIT_INPUT, app

runner = CliRunner()


def test_plan_then_evaluate_agree(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "P"
    r = runner.invoke(app, ["plan", str(tiny_dir), "--out", str(out), "--solver", "baseline"])
    assert r.exit_code == 0, r.output
    for f in ("assignments.csv", "node_series.csv", "summary.json"):
        assert (out / f).is_file()
    summary = json.loads((out / "summary.json").read_text())
    r = runner.invoke(app, ["evaluate", str(tiny_dir), str(out), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["feasible"] and result["objective_matches_summary"]
    assert abs(result["objective"] - summary["objective"]) <= 1e-6 * abs(summary["objective"])


def test_plan_json(tiny_dir: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["plan", str(tiny_dir), "--out", str(tmp_path / "P"), "-s",
                            "baseline", "--json"])
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["status"] == "feasible" and set(data["jobs"]) == {"scheduled", "dropped",
                                                                   "pinned"}


def test_bad_input_exit_1_with_location(tiny_copy: Path, tmp_path: Path) -> None:
    f = tiny_copy / "jobs.csv"
    f.write_text(f.read_text().replace(",0.6,", ",-0.6,"))
    r = runner.invoke(app, ["validate", str(tiny_copy)])
    assert r.exit_code == EXIT_INPUT
    assert "jobs.csv, row 2, column power_kw" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["plan", str(tiny_copy), "--out", str(tmp_path / "P")])
    assert r.exit_code == EXIT_INPUT and not (tmp_path / "P").exists()


def test_missing_bundle_and_unknown_solver(tiny_dir: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["validate", str(tmp_path / "nope")])
    assert r.exit_code == EXIT_INPUT and "not found" in r.output
    r = runner.invoke(app, ["plan", str(tiny_dir), "--out", str(tmp_path / "P"), "-s", "magic"])
    assert r.exit_code == EXIT_INPUT and "unknown solver" in r.output


def test_infeasible_exit_2_names_job(tiny_copy: Path, tmp_path: Path) -> None:
    f = tiny_copy / "jobs.csv"
    # j4 must finish by 08:30 but needs at least one 60-minute slot from 08:00
    f.write_text(f.read_text().replace(",2026-06-01T15:00:00+00:00,,,south",
                                       ",2026-06-01T08:30:00+00:00,,,south"))
    r = runner.invoke(app, ["plan", str(tiny_copy), "--out", str(tmp_path / "P"), "-s",
                            "baseline"])
    assert r.exit_code == EXIT_INFEASIBLE
    assert "job j4" in r.output and "deadline" in r.output
    summary = json.loads((tmp_path / "P" / "summary.json").read_text())
    assert summary["status"] == "infeasible" and "j4" in summary["message"]


def test_evaluate_detects_tampering(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "P"
    assert runner.invoke(app, ["plan", str(tiny_dir), "--out", str(out), "-s",
                               "baseline"]).exit_code == 0
    s = out / "node_series.csv"
    lines = s.read_text().splitlines()
    cells = lines[1].split(",")
    cells[6] = str(float(cells[6]) + 1.0)  # import_kw of home1 slot 0
    lines[1] = ",".join(cells)
    s.write_text("\n".join(lines) + "\n")
    r = runner.invoke(app, ["evaluate", str(tiny_dir), str(out)])
    assert r.exit_code == EXIT_INFEASIBLE and "power_balance" in r.output


def test_solvers_lists_baseline() -> None:
    r = runner.invoke(app, ["solvers"])
    assert r.exit_code == 0 and "baseline" in r.output


def test_heuristic_failure_is_no_solution_not_infeasible(tmp_path: Path) -> None:
    # two must-run one-hour jobs, one GPU, both due by 01:00: the baseline cannot place the
    # second; it proves nothing, so the plan says no_solution and the CLI suggests what to try
    from optisched import Horizon, Job, Node, Problem, Scenario, write_bundle

    dl = "2026-06-01T01:00:00+00:00"
    p = Problem(scenario=Scenario(horizon=Horizon(start="2026-06-01T00:00:00+00:00",
                                                  slot_minutes=60, slots=2)),
                nodes=[Node(node_id="n", gpus=1)],
                jobs=[Job(job_id=f"j{k}", gpus=1, duration_min=60, power_kw=1, deadline=dl)
                      for k in range(2)])
    write_bundle(p, tmp_path / "b")
    r = runner.invoke(app, ["plan", str(tmp_path / "b"), "--out", str(tmp_path / "P"), "-s",
                            "baseline"])
    assert r.exit_code == EXIT_INFEASIBLE
    assert "no_solution" in r.output and "does not prove" in r.output
    r = runner.invoke(app, ["plan", str(tmp_path / "b"), "--out", str(tmp_path / "Q"), "-s",
                            "highs", "--quiet"])
    assert r.exit_code == EXIT_INFEASIBLE and "infeasible" in r.output
