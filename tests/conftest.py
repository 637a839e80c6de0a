"""Shared fixtures: paths and a small problem built in code."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "datasets" / "tiny"


@pytest.fixture
def tiny_dir() -> Path:
    """The shipped tiny bundle (read-only)."""
    return TINY


@pytest.fixture
def tiny_copy(tmp_path: Path) -> Path:
    """A writable copy of the tiny bundle."""
    dst = tmp_path / "tiny"
    shutil.copytree(TINY, dst)
    return dst


Calls = list[tuple[tuple[Any, ...], dict[str, Any]]]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Callable[[object, str], Calls]:
    """``spy(owner, name)`` wraps ``owner.name`` for the test: the real function still
    runs, and the returned list gets each call's ``(args, kwargs)``."""

    def install(owner: object, name: str) -> Calls:
        calls: Calls = []
        real = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append((args, kwargs))
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)
        return calls

    return install
