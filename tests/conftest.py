"""Shared fixtures: paths and a small problem built in code."""

from __future__ import annotations

import shutil
from pathlib import Path

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
