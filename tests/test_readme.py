"""The README's Python blocks run as written, in order, in one namespace."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(README.parent)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, object] = {"__name__": "readme"}
    for k, code in enumerate(blocks):
        # blocks that write files write them under a temporary directory
        code = code.replace('"plan/"', repr(os.fspath(tmp_path / "plan")) )
        exec(compile(code, f"README.md python block {k + 1}", "exec"), namespace)
