"""Plan directories (docs/plan-directory.md): umask-derived mode, foreign files refused and
never deleted, leftovers of a killed write removed on the next write (only ours)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import optisched
import optisched.atomic as atomic
from optisched.atomic import remove_stale_temporaries, write_dir_atomically
from optisched.cli import EXIT_INPUT, app
from optisched.errors import OutputError
from optisched.plan import PLAN_FILES, check_plan_dir, write_plan

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_plan() -> tuple[optisched.Problem, optisched.Plan]:
    problem = optisched.read_bundle(ROOT / "datasets" / "tiny")
    return problem, optisched.solve(problem, "baseline")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _age(path: Path, seconds: float = 3600.0) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_new_plan_directory_gets_the_umask_mode(tiny_plan: tuple[optisched.Problem,
                                                                 optisched.Plan],
                                                tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        out = write_plan(*tiny_plan, tmp_path / "P")
        write_plan(*tiny_plan, out)  # replacing keeps the rule
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask
    for f in PLAN_FILES:
        assert stat.S_IMODE((out / f).stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("foreign", [".git", ".gitignore", "notes.txt", "report.html"])
def test_foreign_files_are_refused_and_kept(tiny_plan: tuple[optisched.Problem, optisched.Plan],
                                            tmp_path: Path, foreign: str) -> None:
    out = write_plan(*tiny_plan, tmp_path / "P")
    before = (out / "summary.json").read_bytes()
    target = out / foreign
    if foreign == ".git":
        target.mkdir()
        (target / "HEAD").write_text("ref: refs/heads/main\n")
    else:
        target.write_text("mine")
    with pytest.raises(FileExistsError, match=foreign.replace(".", r"\.")):
        write_plan(*tiny_plan, out)
    with pytest.raises(FileExistsError):
        check_plan_dir(out)
    assert target.exists() and (out / "summary.json").read_bytes() == before
    r = runner.invoke(app, ["plan", str(ROOT / "datasets" / "tiny"), "--out", str(out), "-s",
                            "baseline", "-q"])
    assert r.exit_code == EXIT_INPUT and "never deletes other files" in r.output
    assert target.exists()


def test_a_plan_directory_with_only_plan_files_is_replaced(
        tiny_plan: tuple[optisched.Problem, optisched.Plan], tmp_path: Path) -> None:
    out = write_plan(*tiny_plan, tmp_path / "P")
    (out / "assignments.csv").write_text("stale")
    write_plan(*tiny_plan, out)
    assert (out / "assignments.csv").read_text().startswith("job_id,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["P"]


def test_stale_leftovers_are_removed_only_when_ours(tmp_path: Path,
                                                    tiny_plan: tuple[optisched.Problem,
                                                                     optisched.Plan]) -> None:
    dead = _dead_pid()
    leftovers = {
        "dead-tmp": (f".P.tmp-{dead}-abc123", ["assignments.csv"], True, True),
        "dead-old": (f".P.old-{dead}-0a1b2c3d", list(PLAN_FILES), True, True),
        "empty": (f".P.tmp-{dead}-emptyx", [], True, True),
        "alive": (f".P.tmp-{os.getppid()}-abc123", ["assignments.csv"], True, False),
        "new": (f".P.tmp-{dead}-fresh1", ["assignments.csv"], False, False),
        "foreign": (f".P.tmp-{dead}-mine12", ["thesis.tex"], True, False),
        "other-target": (f".Q.tmp-{dead}-abc123", ["assignments.csv"], True, False),
        "no-pid": (".P.tmp-abc123", ["assignments.csv"], True, False),
    }
    for name, files, old, _ in leftovers.values():
        d = tmp_path / name
        d.mkdir()
        for f in files:
            (d / f).write_text("partial")
        if old:
            _age(d)
    write_plan(*tiny_plan, tmp_path / "P")
    for key, (name, _f, _o, removed) in leftovers.items():
        assert (tmp_path / name).exists() != removed, key


def test_leftover_of_a_killed_write_is_removed_next_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        tiny_plan: tuple[optisched.Problem, optisched.Plan]) -> None:
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from optisched.atomic import write_dir_atomically

        def fill(tmp: Path) -> None:
            (tmp / "assignments.csv").write_text("partial")
            print("writing", flush=True)
            time.sleep(60)

        write_dir_atomically({str(tmp_path / "P")!r}, fill, allowed=("assignments.csv",))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"writing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".P.tmp-")]
    assert len(left) == 1 and (left[0] / "assignments.csv").exists()
    monkeypatch.setattr(atomic, "_STARTED", time.time() + 1)  # a new run, after the kill
    write_plan(*tiny_plan, tmp_path / "P")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["P"]


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = tmp_path / f".report.html.tmp-{dead}-x1y2z3"
    stale.write_text("partial")
    _age(stale)
    atomic.write_file_atomically(tmp_path / "report.html", "<html></html>")
    assert not stale.exists() and (tmp_path / "report.html").read_text() == "<html></html>"
    assert remove_stale_temporaries(tmp_path / "report.html") == []


def test_unwritable_parent_is_an_output_error(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def deny(*args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkdtemp", deny)
    with pytest.raises(OutputError, match=r"cannot write .*P: Permission denied"):
        write_dir_atomically(tmp_path / "P", lambda d: None, allowed=())
    with pytest.raises(OutputError):
        check_plan_dir(tmp_path / "P")
