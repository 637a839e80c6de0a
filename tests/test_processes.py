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
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from optisched.bounds.guard import DONE_FILE
from optisched.bounds.process import DIR_PREFIX, remove_stale_dirs
from optisched.shutdown import EXIT_SIGNALS, Terminated, exit_on_signals, stop_groups

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
    start columns starts its bound child before the search; kill the plan mid-solve. The
    plan directory keeps the plan an earlier run wrote, byte for byte, with nothing beside
    it; ``SIGTERM`` exits 143 (``docs/plan-directory.md``)."""
    from optisched.io import read_bundle
    from optisched.plan import write_plan
    from optisched.solvers import solve
    from optisched.solvers.lns.search import LP_BOUND_MIN_BUDGET, LP_EARLY_COLUMNS

    assert LP_BOUND_MIN_BUDGET <= 30 and LP_EARLY_COLUMNS <= 8580  # neighborhood's columns
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "plans" / "plan"
    tiny = read_bundle(ROOT / "datasets" / "tiny")
    write_plan(tiny, solve(tiny, "baseline"), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    cmd = [sys.executable, "-m", "optisched.cli", "plan", str(ROOT / "datasets" / "neighborhood"),
           "--solver", "lns", "--time-limit", "30", "--out", str(out), "-q"]
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
        if how != "SIGKILL":
            expected = {"SIGTERM": 143, "Ctrl-C": 130}[how]
            assert proc.returncode == expected, proc.stderr.read() if proc.stderr else ""
        assert [p.name for p in out.parent.iterdir()] == ["plan"]
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
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


# --------------------------------------------------------------------------- SIGTERM


@pytest.fixture
def default_exit_handlers() -> Iterator[None]:
    """SIGTERM and SIGHUP at their defaults for the test, pytest's handlers back after."""
    saved = {s: signal.getsignal(s) for s in EXIT_SIGNALS}
    for s in EXIT_SIGNALS:
        signal.signal(s, signal.SIG_DFL)
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def test_sigterm_becomes_terminated_and_finally_blocks_run(default_exit_handlers: None) -> None:
    assert exit_on_signals() == EXIT_SIGNALS
    assert exit_on_signals() == EXIT_SIGNALS  # idempotent
    assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
    ran: list[str] = []
    with pytest.raises(Terminated) as info:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # the handler raises here at the latest
        finally:
            ran.append("finally")
    assert ran == ["finally"]
    assert info.value.code == 128 + signal.SIGTERM == 143
    assert str(info.value) == "terminated by SIGTERM"
    # the first signal took its handler with it: a second one would end the process at once
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN)


def test_exit_on_signals_keeps_other_handlers_and_needs_the_main_thread(
        default_exit_handlers: None) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
    seen: list[tuple[int, ...]] = []
    t = threading.Thread(target=lambda: seen.append(exit_on_signals()))
    t.start()
    t.join()
    assert seen == [()] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert exit_on_signals() == (signal.SIGTERM,)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN


def test_stop_groups_terminates_then_kills_what_ignores_sigterm() -> None:
    polite = subprocess.Popen(["sleep", "60"], start_new_session=True)
    # sh ignores SIGTERM and so does its sleep (an ignored signal stays ignored across exec)
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60 & echo $!; wait"],
                                stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert stubborn.stdout is not None
        grandchild = int(stubborn.stdout.readline())
        stop_groups([polite.pid, stubborn.pid], grace=0.5)
        assert polite.wait(10) == -signal.SIGTERM
        assert stubborn.wait(10) == -signal.SIGKILL
        assert _wait_for(lambda: grandchild not in _running_with("sleep 60"), GONE_WITHIN)
    finally:
        for p in (polite, stubborn):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


_ATOMIC_WRITE = """
import os, signal, sys, time
from optisched.atomic import write_dir_atomically
from optisched.shutdown import exit_on_signals

def fill(tmp):
    (tmp / "a.csv").write_text("new, half written")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)

exit_on_signals()
write_dir_atomically(sys.argv[1], fill, allowed={"a.csv"})
"""


def test_a_sigterm_during_an_atomic_write_leaves_the_old_output(tmp_path: Path) -> None:
    out = tmp_path / "parent" / "out"
    out.mkdir(parents=True)
    (out / "a.csv").write_text("old")
    r = subprocess.run([sys.executable, "-c", _ATOMIC_WRITE, str(out)], env=_env(tmp_path),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 143, r.stderr
    assert [p.name for p in out.parent.iterdir()] == ["out"]  # no .out.tmp-* beside it
    assert [p.name for p in out.iterdir()] == ["a.csv"]
    assert (out / "a.csv").read_text() == "old"


def _tl_child(tmp: Path) -> list[int]:
    """The ``--one`` child of a time-limit benchmark whose TMPDIR is ``tmp``."""
    return sorted(set(_running_with(str(tmp))) & set(_running_with(" --one ")))


def _time_limits(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """``python -m optisched.bench.time_limits`` of one 600 s lns run on neighborhood (it
    starts its bound grandchild before the search), with a private TMPDIR."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cmd = [sys.executable, "-m", "optisched.bench.time_limits", "--datasets",
           str(ROOT / "datasets" / "neighborhood"), "--solvers", "lns", "--limits", "600"]
    proc = subprocess.Popen(cmd, env=_env(tmp), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    return proc, tmp


@pytest.mark.parametrize("when", [
    "child importing",
    pytest.param("bound grandchild running", marks=pytest.mark.slow),  # ~7 s at load 2.3
])
def test_a_sigterm_ends_the_time_limit_benchmark_with_its_child_and_temp_dirs(
        tmp_path: Path, when: str) -> None:
    """The driver's SIGTERM as soon as its child exists, or once the child's lns runs
    with its bound grandchild: exit 143, the child's process group stopped, no
    ``optisched-*`` directory left in TMPDIR."""
    proc, tmp = _time_limits(tmp_path)
    try:
        if when == "child importing":
            assert _wait_for(lambda: bool(_tl_child(tmp)), 120.0, 0.01), "no child started"
        else:
            assert _wait_for(lambda: {d.name.split("-")[1] for d in tmp.iterdir()}
                             >= {"tl", "bound"}, 120.0, 0.1), "no bound grandchild started"
        family = _running_with(str(tmp))  # the child (and its bound grandchild)
        assert len(family) >= (1 if when == "child importing" else 2)
        assert [d.name[:13] for d in tmp.iterdir() if d.name.startswith("optisched-tl-")] == [
            "optisched-tl-"]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert proc.returncode == 143, proc.stderr.read() if proc.stderr else ""
        assert _wait_for(lambda: not _running_with(str(tmp)), GONE_WITHIN), family
        assert not [d.name for d in tmp.iterdir()]
    finally:
        _end(proc, tmp)


@pytest.mark.slow  # 4-12 s at load 2.3-3.3: the orphan's imports
def test_the_time_limit_child_ends_when_the_benchmark_dies_during_its_imports(
        tmp_path: Path) -> None:
    """SIGKILL of the driver as soon as its child exists (the child is importing, its
    guard not set yet): the child knows the driver's pid, and its guard ends it as soon
    as it is set, not after the 600 s solve."""
    proc, tmp = _time_limits(tmp_path)
    try:
        assert _wait_for(lambda: bool(_tl_child(tmp)), 120.0, 0.01), "no child started"
        child = _tl_child(tmp)
        proc.kill()
        proc.wait(timeout=60)
        assert _wait_for(lambda: not _running_with(str(tmp)), 60.0), child
    finally:
        _end(proc, tmp)


_SLOW_SOLVER = """
import os, pathlib, subprocess, tempfile, time

def solve_slow(problem, index, options):
    with tempfile.TemporaryDirectory(prefix="optisched-slow-") as d:
        sleeper = subprocess.Popen(["sleep", "600"])
        pathlib.Path({started!r}).write_text(f"{{os.getpid()}} {{sleeper.pid}} {{d}}")
        time.sleep(600)
"""

_BENCH = """
import sys
from optisched.solvers import SolverSpec, register
register(SolverSpec("slow", "slow_solver", "solve_slow", "sleeps in a temporary directory"))
from optisched.cli import main
sys.argv = ["optisched", "bench", "--suite", "micro", "--solvers", "slow", "--time-limit",
            "600", "--out", {out!r}]
main()
"""


@pytest.mark.slow  # ~10 s at load 2.2: the CLI's and the worker's imports
def test_a_sigterm_ends_the_benchmark_runner_with_its_workers(tmp_path: Path) -> None:
    """``optisched bench`` SIGTERMed while its worker solves: exit 143; the worker's own
    ``finally`` ran (its temporary directory is gone) and its whole group ended."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    started = tmp_path / "started"
    (tmp_path / "slow_solver.py").write_text(_SLOW_SOLVER.format(started=str(started)))
    env = _env(tmp)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    proc = subprocess.Popen([sys.executable, "-c", _BENCH.format(out=str(tmp_path / "bench"))],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert _wait_for(started.exists, 120.0, 0.1), "the worker never started solving"
        worker, sleeper, temp = started.read_text().split()
        assert Path(temp).is_dir() and Path(temp).parent == tmp
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert proc.returncode == 143, err
        assert "terminated by SIGTERM" in err
        assert _wait_for(lambda: not {int(worker), int(sleeper)} & set(_running_with("")),
                         GONE_WITHIN)
        assert not [d.name for d in tmp.iterdir()]  # the worker's finally removed it
        assert not list((tmp_path / "bench" / "runs").iterdir())  # no result
    finally:
        _end(proc, tmp)
        if started.exists():
            mine = {int(p) for p in started.read_text().split()[:2]}
            for pid in set(_running_with("")) & mine:
                os.kill(pid, signal.SIGKILL)
