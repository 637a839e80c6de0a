"""``--json``: one JSON document on standard output, on success and on failure alike, with the
exit codes of the README; no re-wrapped messages when the output is not a terminal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optisched.cli import app

runner = CliRunner()


def _doc(args: list[str], code: int) -> dict[str, object]:
    r = runner.invoke(app, args)
    assert r.exit_code == code, r.output
    doc = json.loads(r.stdout)  # exactly one document, nothing else on stdout
    assert isinstance(doc, dict)
    return doc


def _broken(tiny_copy: Path) -> Path:
    nodes = tiny_copy / "nodes.csv"
    lines = nodes.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("trust")] = "lots"
    nodes.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    return tiny_copy


def test_validate_json_on_success_and_failure(tiny_dir: Path, tiny_copy: Path) -> None:
    ok = _doc(["validate", str(tiny_dir), "--json"], 0)
    assert ok["ok"] is True and ok["valid"] is True and ok["jobs"] == 5
    bad = _doc(["validate", str(_broken(tiny_copy)), "--json"], 1)
    assert bad["ok"] is False and bad["valid"] is False and bad["error"] == "invalid_input"
    assert bad["errors"] == [{"file": "nodes.csv", "row": 2, "column": "trust",
                              "value": "lots", "message": bad["errors"][0]["message"]}]  # type: ignore[index]


def test_plan_json_has_the_assignments(tiny_dir: Path, tmp_path: Path) -> None:
    doc = _doc(["plan", str(tiny_dir), "--out", str(tmp_path / "P"), "--solver", "baseline",
                "--json"], 0)
    assert doc["ok"] is True and doc["status"] == "feasible"
    rows = doc["assignments"]
    assert isinstance(rows, list) and [r["job_id"] for r in rows] == ["j1", "j2", "j3", "j4",
                                                                      "j5"]
    assert set(rows[0]) == {"job_id", "status", "node_id", "start_slot", "end_slot", "start",
                            "end"}
    summary = json.loads((tmp_path / "P" / "summary.json").read_text())
    assert doc["objective"] == summary["objective"]


def test_plan_json_failures(tiny_copy: Path, tmp_path: Path) -> None:
    bad = _doc(["plan", str(_broken(tiny_copy)), "--out", str(tmp_path / "P"), "--json"], 1)
    assert bad["error"] == "invalid_input" and bad["errors"][0]["column"] == "trust"  # type: ignore[index]
    usage = _doc(["plan", str(tiny_copy), "--out", str(tmp_path / "P"), "--time-limit", "-1",
                  "--json"], 1)
    assert usage["error"] == "usage" and usage["errors"][0]["column"] == "--time-limit"  # type: ignore[index]
    unknown = _doc(["plan", str(tiny_copy), "--json", "--bogus"], 1)
    assert unknown["error"] == "usage" and "--bogus" in str(unknown["message"])
    solver = _doc(["plan", str(tiny_copy), "--out", str(tmp_path / "P"), "--solver", "nope",
                   "--json"], 1)
    assert solver["error"] == "error" and "unknown solver" in str(solver["message"])


def test_evaluate_and_bound_json(tiny_dir: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["plan", str(tiny_dir), "--out", str(tmp_path / "P"),
                               "--solver", "baseline", "--quiet"]).exit_code == 0
    ev = _doc(["evaluate", str(tiny_dir), str(tmp_path / "P"), "--json"], 0)
    assert ev["ok"] is True and ev["feasible"] is True
    missing = _doc(["evaluate", str(tiny_dir), str(tmp_path / "nothing"), "--json"], 1)
    assert missing["errors"][0]["message"] == "plan directory not found"  # type: ignore[index]
    b = _doc(["bound", str(tiny_dir), "--json"], 0)
    assert b["ok"] is True and isinstance(b["bound"], float)


def test_messages_are_not_wrapped_when_piped(tiny_copy: Path) -> None:
    exe = shutil.which("optisched") or ""
    cmd = [exe] if exe else [sys.executable, "-m", "optisched.cli"]
    env = {**os.environ, "COLUMNS": "40"}
    r = subprocess.run([*cmd, "validate", str(_broken(tiny_copy))], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 1
    line = next(x for x in r.stderr.splitlines() if "nodes.csv" in x)
    assert line.strip() == ("nodes.csv, row 2, column trust: value 'lots': not a number; "
                            "expected a number >= -1e9 and <= 1e9")
    out = tiny_copy.parent / ("a-long-directory-name-" * 4) / "bundle"
    r = subprocess.run([*cmd, "generate", "--preset", "tiny", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0
    (line,) = r.stdout.splitlines()  # one line, however narrow COLUMNS is
    assert line.startswith(f"wrote {out}: ") and line.endswith(" min")


@pytest.mark.parametrize("command", [["solvers", "--json"]])
def test_list_commands_print_json(command: list[str]) -> None:
    r = runner.invoke(app, command)
    assert r.exit_code == 0
    assert isinstance(json.loads(r.stdout), list)
