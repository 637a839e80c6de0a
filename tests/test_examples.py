"""The examples run and produce verified plans."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import optisched

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_plan_in_code(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("plan_in_code", EXAMPLES / "plan_in_code.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    plan = mod.main(tmp_path / "P")
    assert plan.status.has_plan
    problem = mod.build()
    back = optisched.read_plan(problem, tmp_path / "P")
    assert optisched.evaluate(problem, back).feasible
