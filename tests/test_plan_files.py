"""Plan files: round trip, atomic replacement, refusal to clobber foreign directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import optisched
from optisched.errors import BundleError
from optisched.plan import read_plan, write_plan


def test_round_trip(tiny_dir: Path, tmp_path: Path) -> None:
    problem = optisched.read_bundle(tiny_dir)
    plan = optisched.solve(problem, "baseline")
    write_plan(problem, plan, tmp_path / "P")
    back = read_plan(problem, tmp_path / "P")
    assert np.array_equal(back.node, plan.node) and np.array_equal(back.start, plan.start)
    assert back.flows is not None and plan.flows is not None
    assert np.allclose(back.flows.grid_import, plan.flows.grid_import, atol=1e-9)
    assert back.objective == pytest.approx(plan.objective)
    assert optisched.evaluate(problem, back).objective == pytest.approx(plan.objective)


def test_refuses_foreign_directory(tiny_dir: Path, tmp_path: Path) -> None:
    problem = optisched.read_bundle(tiny_dir)
    plan = optisched.solve(problem, "baseline")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_plan(problem, plan, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_interrupted_write_keeps_old_plan(tiny_dir: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    problem = optisched.read_bundle(tiny_dir)
    plan = optisched.solve(problem, "baseline")
    out = tmp_path / "P"
    write_plan(problem, plan, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import optisched.plan as plan_mod

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(plan_mod, "_series_frame", boom)
    with pytest.raises(KeyboardInterrupt):
        write_plan(problem, plan, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_read_plan_errors_name_file_row(tiny_dir: Path, tmp_path: Path) -> None:
    problem = optisched.read_bundle(tiny_dir)
    out = write_plan(problem, optisched.solve(problem, "baseline"), tmp_path / "P")
    a = out / "assignments.csv"
    a.write_text(a.read_text().replace("j2,scheduled,regional1", "j2,scheduled,nowhere"))
    with pytest.raises(BundleError) as info:
        read_plan(problem, out)
    e = info.value.errors[0]
    assert e.file.endswith("assignments.csv") and e.row == 3 and e.column == "node_id"
