"""Deterministic mode (issue 15): repeated runs write byte-identical plan files.

``solve(..., deterministic=True)`` / ``optisched plan --deterministic``: work limits
instead of wall-clock limits, one thread, fixed seeds. The plan files of
:func:`optisched.write_plan` (``assignments.csv``, ``node_series.csv`` and
``summary.json`` without its ``timings``) must be the same bytes over 5 repeats for every
solver, however loaded the machine is (nothing here depends on the clock).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from optisched.domain import Problem
from optisched.generate.random_problems import random_problem
from optisched.io import read_bundle
from optisched.plan import write_plan
from optisched.solvers import REGISTRY, deterministic_params, solve
from optisched.solvers.options import GreedyOptions, HighsOptions, LnsOptions

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 5


def _files(problem: Problem, solver: str, out: Path, **kw: object) -> tuple[bytes, bytes, str]:
    plan = solve(problem, solver, time_limit=1.0, seed=7, deterministic=True, **kw)  # type: ignore[arg-type]
    assert plan.status.has_plan, plan.message
    write_plan(problem, plan, out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["info"]["deterministic"] is True
    summary.pop("timings")
    return ((out / "assignments.csv").read_bytes(), (out / "node_series.csv").read_bytes(),
            json.dumps(summary, sort_keys=True))


PROBLEMS = {
    "tiny": lambda: read_bundle(ROOT / "datasets" / "tiny"),
    "random": lambda: random_problem(5, n_nodes=3, n_jobs=6, slots=8, sleep=True, feeders=True),
}


@pytest.mark.parametrize("solver", [s for s in REGISTRY if REGISTRY[s].available()])
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_repeated_deterministic_runs_write_the_same_bytes(tmp_path: Path, solver: str,
                                                          name: str) -> None:
    problem = PROBLEMS[name]()
    first = _files(problem, solver, tmp_path / "0")
    for r in range(1, REPEATS):
        again = _files(problem, solver, tmp_path / str(r))
        for what, a, b in zip(("assignments.csv", "node_series.csv", "summary.json"), first,
                              again, strict=True):
            assert a == b, f"{solver} on {name}: {what} differs in repeat {r}"


def test_deterministic_mode_is_a_work_budget() -> None:
    greedy, limit = deterministic_params(GreedyOptions(), 2.0)
    assert isinstance(greedy, GreedyOptions) and greedy.iterations == 200 and limit == float("inf")
    mine, _ = deterministic_params(GreedyOptions(iterations=17), 2.0)
    assert isinstance(mine, GreedyOptions) and mine.iterations == 17  # the user's cap is kept
    lns, limit = deterministic_params(LnsOptions(), 2.0)
    assert isinstance(lns, LnsOptions)
    assert lns.max_iterations == 10 and lns.lp_bound is False and not lns.restricted_master
    assert lns.sub_time_limit == 1.0 and limit == float("inf")
    highs, limit = deterministic_params(HighsOptions(), 2.0)
    assert highs == HighsOptions() and limit == 2.0  # highs converts it itself (node limit)


def test_highs_deterministic_uses_a_node_limit_and_one_thread() -> None:
    problem = PROBLEMS["random"]()
    plan = solve(problem, "highs", time_limit=1.0, seed=3, deterministic=True, threads=2)
    assert plan.status.has_plan and plan.info["deterministic"] is True


def test_cli_deterministic_runs_are_byte_identical(tmp_path: Path) -> None:
    """Two processes (HiGHS's thread pool and every other process state fresh each time)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                  "")]))
    outs = []
    for r in range(2):
        out = tmp_path / f"p{r}"
        res = subprocess.run([sys.executable, "-m", "optisched.cli", "plan",
                              str(ROOT / "datasets" / "tiny"), "--solver", "lns", "--seed", "7",
                              "--time-limit", "2", "--deterministic", "--out", str(out), "-q"],
                             env=env, capture_output=True, text=True, timeout=300, check=False)
        assert res.returncode == 0, res.stderr
        summary = json.loads((out / "summary.json").read_text())
        summary.pop("timings")
        outs.append(((out / "assignments.csv").read_bytes(),
                     (out / "node_series.csv").read_bytes(), summary))
    assert outs[0] == outs[1]
