"""Benchmark runner: isolated runs, verified results, every output, crash safety.

The solvers below are registered only for the duration of a test (the worker
processes import them from this module through the spec the runner hands over):
``bench_liar`` returns a plan with the grid switched off and claims it feasible
and free, ``bench_exit`` kills its worker process, ``bench_raise`` raises,
``bench_hang`` never returns, ``bench_reporter`` reports two incumbents before
returning the baseline plan.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optisched.bench import BenchConfig, run_bench
from optisched.bench.report import (
    DERIVED_COLUMNS,
    derive,
    markdown_table,
    performance_profile,
    rebuild,
    update_benchmarks,
)
from optisched.bench.results import RUN_COLUMNS
from optisched.bench.suites import (
    FEATURES,
    SUITES,
    Instance,
    Suite,
    feature_variants,
    load_suite,
    micro_problems,
    strip_features,
)
from optisched.bench.worker import run_one
from optisched.domain import Problem
from optisched.evaluate import evaluate
from optisched.index import Index
from optisched.plan import Plan, Status
from optisched.solvers import REGISTRY, SolverSpec, solve
from optisched.solvers.base import SolveOptions
from optisched.solvers.baseline import solve_baseline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- test solvers


def solve_liar(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    """Baseline placement, but no grid import at all: power balance fails where load > PV."""
    plan = solve_baseline(problem, index, options)
    assert plan.flows is not None
    plan.flows.grid_import[:] = 0.0
    plan.objective = 0.0
    plan.status = Status.FEASIBLE
    return plan


def solve_exit(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    """Ends the worker process abruptly (as a segfaulting backend would)."""
    os._exit(3)


def solve_raise(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    raise RuntimeError("deliberate solver bug")


def solve_hang(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    time.sleep(120)
    raise AssertionError("not reached")


def solve_reporter(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    t0 = time.perf_counter()
    options.report(t0, None, None, "no incumbent yet")
    time.sleep(0.05)
    options.report(t0, 1e6, None, "first incumbent")
    options.report(t0, 5e5, None, "second incumbent")
    return solve_baseline(problem, index, options)


TEST_SOLVERS = {
    "bench_liar": "solve_liar",
    "bench_exit": "solve_exit",
    "bench_raise": "solve_raise",
    "bench_hang": "solve_hang",
    "bench_reporter": "solve_reporter",
}


def _micro_one(opts: Any) -> tuple[list[Instance], list[str]]:
    return [Instance("micro-b", lambda: micro_problems()["micro-b"], size="micro")], []


def _not_there(opts: Any) -> tuple[list[Instance], list[str]]:
    def fail() -> Problem:
        raise ModuleNotFoundError("No module named 'optisched.nothing'")

    return [Instance("gone", fail), *_micro_one(opts)[0]], ["one instance is known missing"]


@pytest.fixture(scope="module")
def test_solvers() -> Iterator[None]:
    """The test solvers, and a one-instance suite ``micro1`` (micro-b) for slow failure modes."""
    with pytest.MonkeyPatch.context() as mp:
        for name, fn in TEST_SOLVERS.items():
            mp.setitem(REGISTRY, name, SolverSpec(name, __name__, fn, "test solver"))
        mp.setitem(SUITES, "micro1", Suite("micro1", "micro-b only (tests)", _micro_one))
        mp.setitem(SUITES, "partial", Suite("partial", "one instance cannot be built", _not_there))
        yield


def _csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        r = csv.DictReader(fh)
        return list(r.fieldnames or []), list(r)


def _valid_png(path: Path) -> None:
    import matplotlib.image

    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


# --------------------------------------------------------------------------- the micro suite


SOLVERS = ["baseline", "bench_reporter", "bench_liar", "bench_exit", "nope"]


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory: pytest.TempPathFactory, test_solvers: None) -> Any:
    out = tmp_path_factory.mktemp("bench") / "micro"
    cfg = BenchConfig("micro", SOLVERS, time_limit=1.0, jobs=2, lp_bound=True,
                      show_progress=False)
    return run_bench(cfg, out)


def test_one_row_per_run_with_every_column(micro_run: Any) -> None:
    out = micro_run.out
    cols, rows = _csv(out / "runs.csv")
    assert cols == list(RUN_COLUMNS)
    # 2 instances × (5 solvers + lp-bound), one repeat each ("nope" = one unavailable row).
    assert len(rows) == 2 * 6
    keys = {(r["instance"], r["solver"], r["repeat"]) for r in rows}
    assert len(keys) == len(rows)
    rcols, rrows = _csv(out / "results.csv")
    assert rcols == [*RUN_COLUMNS, *DERIVED_COLUMNS]
    assert len(rrows) == len(rows)
    for r in rrows:
        assert r["versions"].startswith("python=") and "highspy=" in r["versions"]
        assert "cores" in r["machine"] and "GiB RAM" in r["machine"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["machine"]["cores"] >= 1 and meta["versions"]["ortools"] != ""
    # Every instance was written once as a bundle the workers read.
    assert sorted(p.name for p in (out / "instances").iterdir()) == ["micro-a", "micro-b"]


def _by(micro_run: Any, solver: str) -> list[dict[str, Any]]:
    return [r for r in micro_run.rows if r["solver"] == solver]


def test_verified_plans_and_measurements(micro_run: Any) -> None:
    probs = micro_problems()
    for r in _by(micro_run, "baseline"):
        assert r["status"] == "feasible" and r["verified"] is True
        # The objective is the evaluator's objective of the baseline plan on that instance.
        p = probs[r["instance"]]
        ev = evaluate(p, solve(p, "baseline"))
        assert ev.feasible and math.isclose(r["objective"], ev.objective, rel_tol=1e-9)
        assert r["wall_s"] > 0 and r["cpu_s"] > 0 and r["peak_mem_mb"] > 10
        assert r["rss_before_solve_mb"] <= r["peak_mem_mb"]
        assert r["solver_total_s"] <= r["wall_s"]
        # No progress reports: time to first plan is the solver's total time.
        assert r["first_feasible_from"] == "total"
        assert r["first_feasible_s"] == r["solver_total_s"]


def test_failing_plan_is_a_failure_never_a_result(micro_run: Any) -> None:
    for r in _by(micro_run, "bench_liar"):
        assert r["status"] == "error" and r["verified"] is False
        assert r["objective"] is None and r["gap_best_bound"] is None
        assert r["obj_ratio"] == math.inf
        assert "evaluator" in r["message"]
        assert r["best_objective"] != 0.0  # its claimed 0 never counts as the best plan


def test_crashing_solvers(micro_run: Any, test_solvers: None, tmp_path: Path) -> None:
    for r in _by(micro_run, "bench_exit"):
        assert r["status"] == "crash" and r["returncode"] == 3 and r["verified"] is False
    # A solver that raises: the worker (here run in-process) records an error, no plan.
    bundle = micro_run.out / "instances" / "micro-a"
    rec = run_one(bundle, "bench_raise", 1.0, 0, None, tmp_path / "p.jsonl")
    assert rec["status"] == "error" and "deliberate solver bug" in rec["message"]
    assert rec["verified"] is False and rec["objective"] is None
    for r in _by(micro_run, "nope"):
        assert r["status"] == "unavailable" and r["wall_s"] is None
    assert any("nope is not registered" in n for n in micro_run.notes)


def test_progress_records_and_time_to_first(micro_run: Any) -> None:
    for r in _by(micro_run, "bench_reporter"):
        path = micro_run.out / "progress" / f"{r['instance']}__bench_reporter__r0.jsonl"
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        assert [x["objective"] for x in recs] == [None, 1e6, 5e5]
        assert r["progress_reports"] == 3 and r["first_feasible_from"] == "progress"
        # First report with an objective: after the 0.05 s sleep, before the end.
        assert 0.05 <= r["first_feasible_s"] == recs[1]["elapsed"] <= r["solver_total_s"]
        assert r["verified"] is True


def test_gap_to_best_bound(micro_run: Any) -> None:
    for inst in ("micro-a", "micro-b"):
        rs = [r for r in micro_run.rows if r["instance"] == inst]
        lp = next(r for r in rs if r["solver"] == "lp-bound")
        assert lp["status"] == "bound" and lp["bound"] is not None
        base = next(r for r in rs if r["solver"] == "baseline")
        # Only the LP reported a bound here, so it is the best bound.
        assert base["best_bound"] == lp["bound"] <= base["objective"] + 1e-9
        want = (base["objective"] - lp["bound"]) / abs(base["objective"])
        assert math.isclose(base["gap_best_bound"], want, rel_tol=1e-12)
        assert base["obj_ratio"] == 1.0  # baseline and reporter return the same plan


def test_markdown_and_pngs(micro_run: Any) -> None:
    md = (micro_run.out / "results.md").read_text()
    assert "| instance | J×N×T | solver | status | objective | bound | gap to best bound" in md
    table = [ln for ln in md.splitlines() if ln.startswith("| ")][1:]
    assert len(table) == 2 * 6  # one per (instance, solver)
    # Solvers in command-line order after the LP bound; the instance named on its first row.
    i = table.index(next(ln for ln in table if ln.startswith("| micro-a | 3×2×8 | lp-bound |")))
    assert [ln.split("|")[3].strip() for ln in table[i:i + 6]] == ["lp-bound", *SOLVERS]
    assert table[i + 1].startswith("|  |  | baseline | feasible |")
    assert any("| bench_liar | error |" in ln for ln in table)
    assert "Machine:" in md and "highspy" in md and "optisched bench --suite micro" in md
    assert "- micro-a / bench_exit (repeat 0): crash: worker exited with code 3" in md
    for name in ("objective_vs_time", "gap_by_size", "performance_profile"):
        assert micro_run.files[name] == micro_run.out / f"{name}.png"
        _valid_png(micro_run.files[name])


def test_rebuild_from_the_journal_gives_the_same_report(micro_run: Any, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(micro_run.out, copy)
    for f in ("results.csv", "results.md", "gap_by_size.png"):
        (copy / f).unlink()
    again = rebuild(copy)
    assert again.markdown == micro_run.markdown
    assert _csv(copy / "results.csv") == _csv(micro_run.out / "results.csv")
    _valid_png(copy / "gap_by_size.png")


def test_instance_filter(tmp_path: Path) -> None:
    res = run_bench(BenchConfig("micro", [], time_limit=1.0, instances=["*-b"],
                                show_progress=False), tmp_path / "f")
    assert res.rows == [] and [p.name for p in (tmp_path / "f" / "instances").iterdir()] == [
        "micro-b"]
    res = run_bench(BenchConfig("micro", [], time_limit=1.0, instances=["zz*"],
                                show_progress=False), tmp_path / "g")
    assert res.notes == ["no instance of suite micro matches zz*"]


def test_instance_that_cannot_be_produced_is_reported(tmp_path: Path,
                                                     test_solvers: None) -> None:
    res = run_bench(BenchConfig("partial", [], time_limit=1.0, show_progress=False),
                    tmp_path / "p")
    assert res.notes == ["one instance is known missing", "instance gone not produced: "
                         "ModuleNotFoundError: No module named 'optisched.nothing'"]
    assert [p.name for p in (tmp_path / "p" / "instances").iterdir()] == ["micro-b"]
    assert "instance gone not produced" in (tmp_path / "p" / "results.md").read_text()


def test_hung_solver_is_killed(tmp_path: Path, test_solvers: None) -> None:
    cfg = BenchConfig("micro1", ["bench_hang"], time_limit=0.5, kill_factor=1.0,
                      kill_slack=3.0, plots=False, show_progress=False)
    t0 = time.perf_counter()
    res = run_bench(cfg, tmp_path / "hang")
    assert time.perf_counter() - t0 < 30
    assert [r["status"] for r in res.rows] == ["timeout"]
    assert all(3.4 <= r["wall_s"] < 20 and r["killed"] for r in res.rows)


def test_finished_runs_survive_a_later_crash(tmp_path: Path) -> None:
    seen: list[str] = []

    def boom(rec: dict[str, Any]) -> None:
        seen.append(rec["instance"])
        raise KeyboardInterrupt("benchmark interrupted after the first run")

    cfg = BenchConfig("micro", ["baseline"], time_limit=1.0, plots=False, show_progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_bench(cfg, tmp_path / "c", on_run=boom)
    cols, rows = _csv(tmp_path / "c" / "runs.csv")
    assert cols == list(RUN_COLUMNS) and len(rows) == 1 and len(seen) == 1
    assert rows[0]["instance"] == seen[0] and rows[0]["status"] == "feasible"
    assert float(rows[0]["objective"]) > 0


# --------------------------------------------------------------------------- pure parts


def _row(inst: str, solver: str, obj: float | None, bound: float | None,
         status: str = "feasible") -> dict[str, Any]:
    return {"instance": inst, "solver": solver, "repeat": 0, "status": status,
            "verified": obj is not None, "objective": obj, "bound": bound,
            "n_jobs": 2, "n_nodes": 1, "n_slots": 4}


def test_derive_by_hand() -> None:
    rows = [_row("i", "a", 10.0, 8.0), _row("i", "b", 12.0, 9.0, "optimal"),
            _row("i", "c", 11.0, 11.5),  # a bound above the best plan (10): impossible
            _row("i", "d", None, 9.5, "error"),  # a failed run's bound is not used
            _row("j", "a", -4.0, None), _row("j", "b", -2.0, None),
            _row("j", "c", None, None, "infeasible")]  # wrong: a has a verified plan
    out, notes = derive(rows)
    i = {r["solver"]: r for r in out if r["instance"] == "i"}
    assert all(r["best_bound"] == 9.0 and r["best_objective"] == 10.0 for r in i.values())
    assert i["a"]["gap_best_bound"] == pytest.approx(0.1)
    assert i["b"]["gap_best_bound"] == pytest.approx(0.25)
    assert i["c"]["gap_best_bound"] == pytest.approx(2.0 / 11.0)
    assert i["d"]["gap_best_bound"] is None and i["d"]["obj_ratio"] == math.inf
    assert i["b"]["obj_ratio"] == pytest.approx(1.2)
    assert len(notes) == 2 and "bound 11.5 of c" in notes[0]
    assert notes[1] == "j: c (repeat 0) reported infeasible, but a verified plan of cost -4 exists"
    j = {r["solver"]: r for r in out if r["instance"] == "j"}
    # Negative costs: shifted ratio 1 + (−2 − (−4)) / 4 = 1.5.
    assert j["a"]["obj_ratio"] == 1.0 and j["b"]["obj_ratio"] == pytest.approx(1.5)
    assert j["a"]["gap_best_bound"] is None
    md = markdown_table(out)
    assert "| i | 2×1×4 | a | feasible | 10 | 8 | 10.00 % |" in md


def test_repeats_are_summarised_by_medians() -> None:
    rows = [_row("i", "a", 10.0, None), _row("i", "a", 14.0, None),
            _row("i", "a", None, None, "error"), _row("i", "b", 12.0, 9.0)]
    for k, r in enumerate(rows[:3]):
        r.update(repeat=k, wall_s=float(k + 1), peak_mem_mb=100.0 + k)
    out, _ = derive(rows)
    md = markdown_table(out)
    # a: median of the verified objectives (10, 14) = 12, gap to the best bound 9 = 25 %,
    # median wall of 1, 2, 3 s = 2 s, largest peak memory 102 MiB.
    assert ("| i | 2×1×4 | a | feasible 2/3, error 1/3 | 12 | – | 25.00 % | – | – | 2.00 | – "
            "| 102 |") in md


def test_performance_profile_by_hand() -> None:
    rows, _ = derive([_row("i", "a", 10.0, None), _row("i", "b", 20.0, None),
                      _row("j", "a", None, None, "error"), _row("j", "b", 5.0, None)])
    taus, rho = performance_profile(rows)
    assert taus[0] == 1.0 and taus[-1] >= 2.0
    # At τ = 1: a best on i only, b best on j only; b reaches 1 at τ = 2; a never (failed j).
    assert rho["a"][0] == 0.5 and rho["b"][0] == 0.5
    assert rho["b"][-1] == 1.0 and rho["a"][-1] == 0.5
    k = next(n for n, t in enumerate(taus) if t >= 2.0)
    assert rho["b"][k] == 1.0 and rho["b"][k - 1] == 0.5


def test_update_benchmarks_replaces_only_the_marked_section(tmp_path: Path) -> None:
    f = tmp_path / "B.md"
    f.write_text("# Bench\n\nintro\n\n<!-- bench:scale:start -->\nold table\n"
                 "<!-- bench:scale:end -->\n\n## targets\nkeep me\n")
    update_benchmarks(f, "scale", "| new | table |\n")
    text = f.read_text()
    assert "old table" not in text and "| new | table |" in text
    assert text.startswith("# Bench\n\nintro\n") and text.endswith("## targets\nkeep me\n")
    update_benchmarks(f, "micro", "micro table")
    update_benchmarks(f, "micro", "micro table 2")
    text = f.read_text()
    assert text.count("<!-- bench:micro:start -->") == 1 and "micro table 2" in text
    assert "| new | table |" in text


def test_suites_and_errors() -> None:
    with pytest.raises(ValueError, match="unknown suite"):
        load_suite("nope")
    with pytest.raises(ValueError, match="unknown size"):
        load_suite("scale", ["huge"])
    inst, _ = load_suite("scale", ["tiny", "medium"])
    assert [i.size for i in inst] == ["tiny", "medium"]
    inst, _ = load_suite("datasets")
    assert "tiny" in [i.name for i in inst]
    with pytest.raises(ValueError, match="time-limit"):
        run_bench(BenchConfig("micro", ["baseline"], time_limit=0.0), "/nonexistent/x")


def test_feature_variants_switch_on_one_feature_each() -> None:
    base = micro_problems()["micro-b"]  # has a battery, a sleeper and a soft deadline
    v = feature_variants(base)
    assert list(v) == list(FEATURES)
    plain = v["plain"]
    assert plain == strip_features(base)

    def features(p: Problem) -> set[str]:
        on = set()
        if any(n.battery_kwh > 0 for n in p.nodes):
            on.add("battery")
        if p.feeders or any(n.feeder for n in p.nodes):
            on.add("feeders")
        if any(n.can_sleep for n in p.nodes):
            on.add("sleep")
        if any(j.tardiness_per_hour is not None for j in p.jobs):
            on.add("soft_deadlines")
        if any(j.latency_slo_ms is not None for j in p.jobs):
            on.add("latency")
        return on

    assert features(base) == {"battery", "sleep", "soft_deadlines"}
    assert features(plain) == set()
    for name, p in v.items():
        assert features(p) == (set() if name == "plain" else {name}), name
        # Same jobs and nodes, and still solvable: the baseline plan passes the evaluator.
        assert [j.job_id for j in p.jobs] == [j.job_id for j in base.jobs]
        plan = solve(p, "baseline")
        assert plan.status.has_plan and evaluate(p, plan).feasible, name
    # Latency: a third of the nodes are 15 ms over the 20 ms SLO (nodes 5/20/35 ms).
    lat = v["latency"].latency_ms
    assert lat == {"m1": {"r0": 5.0, "r1": 20.0}, "m2": {"r0": 20.0, "r1": 35.0},
                   "m3": {"r0": 35.0, "r1": 5.0}}


def test_cli_bench_updates_benchmarks(tmp_path: Path, test_solvers: None) -> None:
    from typer.testing import CliRunner

    from optisched.cli import app

    bm = tmp_path / "BENCHMARKS.md"
    bm.write_text("# B\n\n<!-- bench:micro1:start -->\n<!-- bench:micro1:end -->\n")
    r = CliRunner().invoke(app, ["bench", "--suite", "micro1", "--solvers", "baseline",
                                 "--time-limit", "1", "--out", str(tmp_path / "o"),
                                 "--keep-plans", "--update-benchmarks", str(bm)])
    assert r.exit_code == 0, r.output
    # --keep-plans: the verified plan is on disk and the evaluator accepts it there too.
    plan_dir = tmp_path / "o" / "plans" / "micro-b__baseline__r0"
    r2 = CliRunner().invoke(app, ["evaluate", str(tmp_path / "o" / "instances" / "micro-b"),
                                  str(plan_dir), "--json"])
    assert r2.exit_code == 0 and json.loads(r2.stdout)["feasible"] is True
    text = bm.read_text()
    assert text.startswith("# B\n\n<!-- bench:micro1:start -->\nSuite `micro1`")
    assert "| micro-b | 4×3×6 | baseline | feasible |" in text
    assert "--suite micro1 --solvers baseline --time-limit 1" in text
    r = CliRunner().invoke(app, ["bench", "--suite", "nope", "--solvers", "baseline",
                                 "--time-limit", "1", "--out", str(tmp_path / "o2")])
    assert r.exit_code == 1 and "unknown suite" in r.output
