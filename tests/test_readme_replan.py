"""The README's real-time loop runs as written (like tests/test_examples.py for examples/)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from optisched.evaluate import evaluate

README = Path(__file__).resolve().parents[1] / "README.md"


def _loop_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Real-time re-planning", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "the README's real-time section has no python block"
    return blocks[0]


def test_readme_real_time_loop_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    scope: dict[str, object] = {"__name__": "readme"}
    with contextlib.redirect_stdout(out):
        exec(compile(_loop_snippet(), str(README), "exec"), scope)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("feasible")
    assert "'a1', 'added'" in lines[1]
    assert lines[3] == "rejected False"  # the poisoned arrival left no trace in the problem
    assert lines[4].endswith(" 48")  # the window keeps 48 slots past midnight
    rp = scope["rp"]
    assert not list(tmp_path.iterdir())  # the README block writes no file
    assert evaluate(rp.problem, rp.plan).feasible  # type: ignore[attr-defined]
