"""The process pool of ``distributed`` (``backends.ProcessEngine``): a pool process that
dies is an error naming it, never a hang, and no process or temporary file is left.

Every scenario runs in a child Python (``subprocess.run(timeout=…)``: a regression that
hangs fails the test, not the suite) with a private ``TMPDIR``. The scenario script's
module-level code also runs in every pool process (``spawn`` imports the main script as
``__mp_main__``); that is how a pool process is made to die where a test wants it:
``ENGINE_TEST`` (read by each process as it starts) names the place.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300.0
"""Seconds a scenario may take before it counts as hung [s] (each takes about 10-30 s on
a loaded 2-core machine)."""

SCRIPT = textwrap.dedent('''
    import json, multiprocessing, os, pickle, signal, sys, tempfile, time

    import numpy as np

    from optisched.solvers.distributed.backends import ProcessEngine, WorkerDied
    from optisched.solvers.distributed.worker import CostTask, PartitionWorker

    WHERE = os.environ.get("ENGINE_TEST", "")
    if __name__ == "__mp_main__":  # in a pool process, before it loads its start data
        if WHERE == "import":  # a crash at import: the start data is never read
            os.kill(os.getpid(), signal.SIGKILL)

        def hang(self, task):
            time.sleep(3600)

        def die(self, task):
            os.kill(os.getpid(), signal.SIGKILL)

        PartitionWorker.hang = hang
        if WHERE == "task":  # the first task of the solve kills its process
            PartitionWorker.costs = die
            PartitionWorker.solve = die


    def _explode():
        raise RuntimeError("this start data cannot be loaded")


    class Explodes:
        """Start data whose loading raises (in the pool process)."""

        def __reduce__(self):
            return (_explode, ())


    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


    def left(pids):
        return {"alive": [p for p in pids if alive(p)],
                "children": len(multiprocessing.active_children()),
                "dirs": sorted(n for n in os.listdir(tempfile.gettempdir())
                               if n.startswith(".optisched-pool"))}


    def died(exc):
        return {"error": type(exc).__name__, "exitcode": exc.exitcode, "loaded": exc.loaded,
                "method": exc.method, "task": exc.task, "message": str(exc)}


    def engine_run(p, ix, where, index=None):
        os.environ["ENGINE_TEST"] = where
        tiny = [CostTask(k, np.arange(1), np.zeros((1, ix.T)), np.zeros(0, dtype=np.int64))
                for k in range(2)]
        engine = ProcessEngine(p, ix if index is None else index, 2)
        pids, out = engine.pids, {}
        out["dir_at_start"] = engine.dir is not None and engine.dir.exists()
        try:
            if where == "hang":
                out["first"] = [c.part for c in engine.map("costs", tiny)]
                out["dir_after_load"] = engine.dir is not None

                def make(k):
                    if k == 1:  # task 0 (which never ends) is on the first process
                        os.kill(pids[0], signal.SIGKILL)
                    return None

                engine.map_lazy("hang", 2, make)
            elif where == "raise":  # a task that raises in its process
                try:
                    engine.map("costs", [tiny[0], None])
                except AttributeError as exc:
                    out["raised"] = [str(exc), str(exc.__cause__)]
                out["alive"] = [alive(p) for p in pids]
            else:
                engine.map("costs", tiny)
            out["result"] = "no error"
        except WorkerDied as exc:
            out["result"] = died(exc)
            try:
                engine.map("costs", tiny)
            except RuntimeError as again:
                out["again"] = str(again)
        finally:
            engine.close()
        out["left"] = left(pids)
        return out


    if __name__ == "__main__":
        from optisched.generate import generate  # not in the pool processes: slow to import
        from optisched.index import compile_index

        mode, dst = sys.argv[1], sys.argv[2]
        p = generate("metro", n_nodes=120, n_jobs=240, seed=2)
        ix = compile_index(p)
        got = {"start_bytes": len(pickle.dumps((p, ix), protocol=pickle.HIGHEST_PROTOCOL))}
        if mode == "engine":
            got["import"] = engine_run(p, ix, "import")
            got["load"] = engine_run(p, ix, "load", index=Explodes())
            got["hang"] = engine_run(p, ix, "hang")
            got["raise"] = engine_run(p, ix, "raise")
            from optisched.plan import Status
            from optisched.solvers import solve
            os.environ["ENGINE_TEST"] = "task"
            plan = solve(p, "distributed", time_limit=60, seed=0,
                         options={"backend": "processes", "workers": 2, "partitions": 2})
            got["solve"] = {"error": plan.status is Status.ERROR, "message": plan.message,
                            "left": left([])}
            with open(dst, "w") as fh:
                json.dump(got, fh)
        else:  # the command line, with the first task killing its process
            from optisched.cli import main
            from optisched.io import write_bundle
            write_bundle(p, "bundle")
            os.environ["ENGINE_TEST"] = "task"
            sys.argv = ["optisched", "plan", "bundle", "--out", "plan", "--solver",
                        "distributed", "--option", "backend=processes", "--option",
                        "workers=2", "--option", "partitions=2", "--time-limit", "60"]
            try:
                main()
            finally:
                with open(dst, "w") as fh:
                    json.dump({"left": left([])}, fh)
''')


def _run(tmp_path: Path, mode: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    script = tmp_path / "scenario.py"
    script.write_text(SCRIPT)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("ENGINE_TEST", None)
    out = tmp_path / "out.json"
    try:
        res = subprocess.run([sys.executable, str(script), mode, str(out)], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=TIMEOUT,
                             check=False)
    except subprocess.TimeoutExpired as exc:  # the child is killed by run()
        pytest.fail(f"the scenario hung for {TIMEOUT:.0f} s: {exc.stderr!r}")
    assert out.exists(), res.stderr
    assert sorted(tmp.iterdir()) == [], "temporary files left"
    return res, json.loads(out.read_text())


@pytest.fixture(scope="module")
def engine_scenarios(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The scenarios of mode ``engine`` (one child Python for all: the imports and the
    problem are paid once)."""
    res, got = _run(tmp_path_factory.mktemp("engine"), "engine")
    assert res.returncode == 0, res.stderr
    return got


def _clean(left: dict[str, Any]) -> None:
    assert left == {"alive": [], "children": 0, "dirs": []}


def test_a_process_killed_at_import_is_an_error_not_a_hang(
        engine_scenarios: dict[str, Any]) -> None:
    # the start data is larger than a pipe's buffer (64 KiB): through spawn's start pipe
    # the parent blocked in its write to the dead process for ever
    assert engine_scenarios["start_bytes"] > 65536
    run = engine_scenarios["import"]
    assert run["dir_at_start"] is True
    assert run["result"]["error"] == "WorkerDied"
    assert run["result"]["exitcode"] == -9 and run["result"]["loaded"] is False
    assert "before it had loaded the problem (killed by SIGKILL)" in run["result"]["message"]
    assert "workers=1" in run["result"]["message"]
    assert "cannot be used after WorkerDied" in run["again"]
    _clean(run["left"])


def test_start_data_that_cannot_be_loaded_is_an_error_with_the_exit_code(
        engine_scenarios: dict[str, Any]) -> None:
    run = engine_scenarios["load"]
    assert run["result"]["exitcode"] == 1 and run["result"]["loaded"] is False
    assert "(exit code 1)" in run["result"]["message"]
    _clean(run["left"])


def test_a_process_killed_during_its_task_is_an_error_naming_the_task(
        engine_scenarios: dict[str, Any]) -> None:
    run = engine_scenarios["hang"]
    assert run["first"] == [0, 1]  # both processes answered, in task order
    assert run["dir_at_start"] is True and run["dir_after_load"] is False
    got = run["result"]
    assert (got["exitcode"], got["loaded"], got["method"], got["task"]) == (-9, True,
                                                                           "hang", 0)
    assert "during task 0 of its map 'hang' (killed by SIGKILL)" in got["message"]
    _clean(run["left"])  # the other process, still in its endless task, was stopped


def test_an_exception_in_a_task_is_raised_in_the_parent_with_its_traceback(
        engine_scenarios: dict[str, Any]) -> None:
    run = engine_scenarios["raise"]
    message, cause = run["raised"]
    assert message == "'NoneType' object has no attribute 'pi'"
    assert cause.startswith("Traceback") and "in costs" in cause
    assert run["alive"] == [True, True] and run["result"] == "no error"
    _clean(run["left"])


def test_solve_returns_an_error_plan_when_a_pool_process_dies(
        engine_scenarios: dict[str, Any]) -> None:
    run = engine_scenarios["solve"]
    assert run["error"] is True
    assert run["message"].startswith("a worker process of the process pool (pid ")
    assert "killed by SIGKILL" in run["message"] and "Traceback" not in run["message"]
    _clean(run["left"])


def test_the_command_line_says_which_process_died(tmp_path: Path) -> None:
    res, got = _run(tmp_path, "cli")
    assert res.returncode == 3, res.stderr  # Status.ERROR: the internal-error exit code
    assert "a worker process of the process pool (pid " in res.stderr
    assert "killed by SIGKILL" in res.stderr and "Traceback" not in res.stderr
    _clean(got["left"])
