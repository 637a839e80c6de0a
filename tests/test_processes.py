"""No orphan processes and no temporary directories left (issue 15).

A plan killed during its solve (``SIGKILL``, ``SIGTERM``, Ctrl-C) must not leave its
bound child running nor an ``optisched-bound-*`` directory in the temporary directory.
Each test uses a private ``TMPDIR``; a process "remains" when its command line names
that directory and it is not a zombie (an exited child waits for the init process to
reap it, which here can take a second or two).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from optisched.bounds.guard import DONE_FILE
from optisched.bounds.process import DIR_PREFIX, remove_stale_dirs

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="reads /proc (Linux)")

GONE_WITHIN = 5.0
"""Seconds after the parent's death within which its children must have ended."""


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TMPDIR"] = str(tmp)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _running_with(marker: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line contains ``marker``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(ln.split()[1] for ln in (d / "status").read_text().splitlines()
                         if ln.startswith("State:"))
        except (OSError, StopIteration, IndexError):
            continue
        if marker in cmd and state != "Z":
            out.append(int(d.name))
    return out


def _wait_for(cond: Callable[[], object], seconds: float, step: float = 0.05) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def _end(proc: subprocess.Popen[bytes], tmp: Path) -> None:
    """Clean up whatever a failed test left running."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid in _running_with(str(tmp)):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "Ctrl-C"])
def test_a_killed_plan_leaves_no_child_and_no_temp_dir(tmp_path: Path, how: str) -> None:
    """``optisched plan --solver lns --time-limit 30`` on a bundle of ≥ LP_EARLY_COLUMNS
    start columns starts its bound child before the search; kill the plan mid-solve."""
    from optisched.solvers.lns.search import LP_BOUND_MIN_BUDGET, LP_EARLY_COLUMNS

    assert LP_BOUND_MIN_BUDGET <= 30 and LP_EARLY_COLUMNS <= 8580  # neighborhood's columns
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cmd = [sys.executable, "-m", "optisched.cli", "plan", str(ROOT / "datasets" / "neighborhood"),
           "--solver", "lns", "--time-limit", "30", "--out", str(tmp_path / "plan"), "-q"]
    proc = subprocess.Popen(cmd, env=_env(tmp), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert _wait_for(lambda: bool(_running_with(str(tmp))) and any(tmp.iterdir()), 120.0,
                         0.1), "the bound child never started"
        children = _running_with(str(tmp))
        assert next(d.name for d in tmp.iterdir()).startswith(f"{DIR_PREFIX}{proc.pid}-")
        time.sleep(1.0)  # into the child's work
        if how == "SIGKILL":
            proc.send_signal(signal.SIGKILL)
        elif how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:  # the terminal sends SIGINT to the whole foreground process group
            os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        assert _wait_for(lambda: not _running_with(str(tmp)), GONE_WITHIN), (
            f"children {children} still run {GONE_WITHIN} s after the parent's {how}")
        assert _wait_for(lambda: not any(tmp.iterdir()), GONE_WITHIN - (time.monotonic() - t0)
                         + 1.0), f"left in TMPDIR: {[d.name for d in tmp.iterdir()]}"
        proc.wait(timeout=60)
        if how == "Ctrl-C":
            assert proc.returncode == 130, proc.stderr.read() if proc.stderr else ""
    finally:
        _end(proc, tmp)


_FINISHED_CHILD = """
import time
from optisched.bounds.process import ChildProcess
c = ChildProcess("quick_child", {"x": 1})
while not c.ended():
    time.sleep(0.05)
print(c.proc.pid, c.dir.name, flush=True)
time.sleep(120)
"""


def test_a_finished_child_takes_its_directory_with_it(tmp_path: Path) -> None:
    """A child whose work is done waits for its caller: the caller's SIGKILL still removes
    the directory (the child does), and the child ends."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp_path / "quick_child.py").write_text("print('done')\n")
    script = tmp_path / "parent.py"
    script.write_text(_FINISHED_CHILD)
    env = _env(tmp)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        pid_s, d = proc.stdout.readline().decode().split()
        assert (Path(d) / DONE_FILE).read_text() == "0"
        assert _running_with(str(tmp)) == [int(pid_s)]  # done, waiting for its caller
        proc.kill()
        assert _wait_for(lambda: not _running_with(str(tmp)), GONE_WITHIN)
        assert _wait_for(lambda: not Path(d).exists(), 2.0)
    finally:
        _end(proc, tmp)


def test_stale_dirs_of_dead_callers_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    gone = tmp_path / f"{DIR_PREFIX}{int(dead.stdout)}-abc"
    mine = tmp_path / f"{DIR_PREFIX}{os.getpid()}-def"
    old = tmp_path / f"{DIR_PREFIX}xyz12345"   # an earlier version's name: by age only
    other = tmp_path / "unrelated-1-dir"
    for d in (gone, mine, old, other):
        d.mkdir()
        (d / "bound.txt").write_text("1.0")
    assert remove_stale_dirs(tmp_path) == [gone]
    os.utime(old, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    assert remove_stale_dirs(tmp_path) == [old]
    assert mine.exists() and other.exists()


def test_bench_worker_ends_with_its_runner(tmp_path: Path) -> None:
    """The benchmark worker runs in its own session (the runner kills its group on
    timeout); when the runner itself is SIGKILLed, the worker ends too."""
    import json

    started = tmp_path / "started"
    (tmp_path / "slow_solver.py").write_text(textwrap.dedent(f"""
        import pathlib, time
        def solve_slow(problem, index, options):
            pathlib.Path({str(started)!r}).write_text("x")
            time.sleep(120)
    """))
    spec = json.dumps({"name": "slow", "module": "slow_solver", "function": "solve_slow",
                       "options": "optisched.solvers.options:SolverOptions"})
    runner = textwrap.dedent(f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-m", "optisched.bench.worker", "--bundle",
                              {str(ROOT / "datasets" / "tiny")!r}, "--solver", "slow",
                              "--spec", {spec!r}, "--progress", {str(tmp_path / "p.jsonl")!r},
                              "--result", {str(tmp_path / "r.json")!r}], start_new_session=True)
        print(p.pid, flush=True)
        time.sleep(120)
    """)
    env = _env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    proc = subprocess.Popen([sys.executable, "-c", runner], env=env, stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        worker = int(proc.stdout.readline())
        assert _wait_for(started.exists, 120.0, 0.1), "the worker never started solving"
        assert worker in _running_with("optisched.bench.worker")
        proc.kill()
        assert _wait_for(lambda: worker not in _running_with("optisched.bench.worker"),
                         GONE_WITHIN)
    finally:
        _end(proc, tmp_path)
        for pid in _running_with("optisched.bench.worker"):
            if pid == worker:
                os.kill(pid, signal.SIGKILL)
