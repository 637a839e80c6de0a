"""The HTTP service end to end: a real ``optisched serve`` (uvicorn) on 127.0.0.1 with a free
port, driven over HTTP by :class:`optisched.client.Client` (standard library only).

- solves: queued, streamed (server-sent events), planned, verified by the evaluator;
  cancelled; capped; a worker killed mid-solve gives ``error`` and the next one succeeds;
- limits: 401 without (or with a wrong) token, 413 over ``--max-body``, 422 with located
  errors for a malformed bundle, a bad problem document and bad events;
- sessions: arrivals, an outage, a return, through restarts of the server (SIGTERM and
  SIGKILL), the state resumed from SQLite exactly; queued solves resumed;
- no token or problem data in the server's log; no worker outlives the server.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import optisched
from optisched.client import Client, ServiceError
from optisched.domain import Job
from optisched.events import Events
from optisched.generate.random_problems import random_problem
from optisched.jsondoc import problem_from_json
from optisched.plan import Plan
from optisched.replan import Replanner
from optisched.service.config import ConfigError, read_tokens
from optisched.service.launch import ServerProcess
from optisched.service.launch import wait_gone as _wait_gone

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "datasets" / "tiny"
TOKEN = "test-token-0123456789abcdef"
SECRET_JOB = "job-SECRET-7f3a"  # must never appear in the server's log


class Server(ServerProcess):
    """The server of these tests; its client carries the test token by default."""

    def client(self, token: str | None = TOKEN, timeout: float = 60.0) -> Client:
        return super().client(token, timeout)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("service")
    (d / "tokens").write_text(f"# tokens\n\n{TOKEN}\n", encoding="utf-8")
    s = Server(d / "state", d / "server.log",
               ["--workers", "2", "--token-file", str(d / "tokens"), "--max-body", "300000",
                "--max-time-limit", "30", "--default-time-limit", "2"])
    s.start()
    yield s
    pids = s.stop()
    assert not _wait_gone(pids), "a worker outlived the server"
    log = s.log.read_text()
    assert TOKEN not in log and SECRET_JOB not in log


@pytest.fixture(scope="module")
def tiny() -> optisched.Problem:
    return optisched.read_bundle(TINY)


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def _bundle_files(folder: str = "") -> dict[str, str]:
    return {f"{folder}{p.name}": p.read_text() for p in TINY.iterdir()}


def _secret_problem() -> optisched.Problem:
    p = random_problem(11, n_nodes=3, n_jobs=4, slots=8)
    jobs = [p.jobs[0].model_copy(update={"job_id": SECRET_JOB}), *p.jobs[1:]]
    return p.model_copy(update={"jobs": jobs})


# ----------------------------------------------------------------------------- auth, limits


def test_health_is_public_and_everything_else_needs_the_token(server: Server,
                                                              tiny: optisched.Problem) -> None:
    assert server.client(None).health()["workers"] == 2
    for token in (None, "wrong-token-0123456789"):
        with pytest.raises(ServiceError) as info:
            server.client(token).validate(tiny)
        assert info.value.status == 401 and info.value.body["error"] == "unauthorized"
        with pytest.raises(ServiceError) as info:
            server.client(token).solves()
        assert info.value.status == 401
    assert server.client().validate(tiny)["valid"] is True
    # the API's documentation needs no token either
    status, spec = server.client(None).request("GET", "/openapi.json")
    assert status == 200 and "/v1/sessions/{session_id}/events" in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "SolveRequest" in spec["components"]["schemas"]


def test_client_needs_none_of_the_servers_packages(server: Server) -> None:
    code = ("import sys\n"
            "for m in ('fastapi', 'uvicorn', 'starlette', 'httptools', 'uvloop'):\n"
            "    sys.modules[m] = None  # importing any of them now fails\n"
            "from optisched.client import Client\n"
            f"c = Client({server.url!r}, token={TOKEN!r})\n"
            "print(len(c.solvers()), c.health()['ok'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1] == "True"


def test_body_over_the_limit_gets_413(server: Server) -> None:
    with pytest.raises(ServiceError) as info:
        server.client().request("POST", "/v1/validate", b"{" + b" " * 400_000 + b"}")
    assert info.value.status == 413 and info.value.body["error"] == "too_large"


def test_chunked_body_over_the_limit_gets_413(server: Server) -> None:
    # no Content-Length: the limit is enforced while the body streams in
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    chunks = (b"x" * 50_000 for _ in range(10))
    conn.request("POST", "/v1/validate", body=chunks, encode_chunked=True,
                 headers={"Authorization": f"Bearer {TOKEN}",
                          "Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["error"] == "too_large"
    conn.close()


def test_tokens_from_a_file_and_the_environment(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text("# comment\n\n  first-token-0123456789  \nsecond-token-0123456789\n")
    env = {"OPTISCHED_TOKEN": "env-token-0123456789abc"}
    assert read_tokens(f, env) == ["first-token-0123456789", "second-token-0123456789",
                                   "env-token-0123456789abc"]
    assert read_tokens(None, {}) == []
    f.write_text("has space in-it-0123456789\n")
    with pytest.raises(ConfigError, match="white space"):
        read_tokens(f, {})


def test_malformed_bundle_gets_422_with_located_errors(server: Server) -> None:
    files = _bundle_files("tiny/")
    lines = files["tiny/nodes.csv"].splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("gpus")] = "lots"
    files["tiny/nodes.csv"] = "\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n"
    with pytest.raises(ServiceError) as info:
        server.client().validate(bundle_zip=_zip(files))
    assert info.value.status == 422
    (e,) = info.value.errors
    assert (e["file"], e["row"], e["column"], e["value"]) == ("nodes.csv", 2, "gpus", "lots")
    # the same error as the CLI's
    good = server.client().validate(bundle_zip=_zip(_bundle_files()), with_problem=True)
    assert problem_from_json(good["problem"]) == optisched.read_bundle(TINY)
    with pytest.raises(ServiceError) as info:
        server.client().validate(bundle_zip=b"PK not a zip")
    assert info.value.status == 422 and info.value.errors[0]["file"] == "bundle.zip"


def test_bad_problem_document_gets_located_errors(server: Server,
                                                  tiny: optisched.Problem) -> None:
    doc = json.loads(tiny.model_dump_json())
    doc["jobs"][2]["power_kw"] = -3
    with pytest.raises(ServiceError) as info:
        server.client().solve(doc, solver="greedy")
    assert info.value.status == 422
    (e,) = info.value.errors
    assert (e["file"], e["row"], e["column"], e["value"]) == ("problem.jobs", 2, "power_kw",
                                                              "-3")
    with pytest.raises(ServiceError) as info:
        server.client().solve(tiny, solver="nope")
    assert info.value.errors[0]["column"] == "solver"
    with pytest.raises(ServiceError) as info:
        server.client().solve(tiny, solver="greedy", options={"bogus": 1})
    (e,) = info.value.errors
    assert (e["file"], e["column"], e["value"]) == ("request", "options.bogus", "1")


# ----------------------------------------------------------------------------- solves


def test_solve_streams_progress_and_its_plan_passes_the_evaluator(
        server: Server, tiny: optisched.Problem) -> None:
    c = server.client()
    sub = c.solve(tiny, solver="greedy", time_limit=1)
    assert sub["status"] in ("queued", "running") and sub["time_limit"] == 1
    events = list(c.events(sub["id"]))
    assert events[0][0] == "status" and events[-1][0] == "done"
    done = c.wait(sub["id"])
    assert done["status"] in ("feasible", "optimal") and done["done"]
    assert done["progress"]["objective"] is not None
    plan = Plan.from_json(tiny, done["plan"])
    ev = optisched.evaluate(tiny, plan)
    assert ev.feasible and abs(ev.objective - plan.objective) <= 1e-6 * max(1, ev.objective)
    remote = c.evaluate(tiny, done["plan"])
    assert remote["feasible"] and remote["objective_matches_summary"]
    assert remote["costs"]["energy"] == pytest.approx(ev.costs["energy"])
    assert {r["job_id"] for r in done["plan"]["assignments"]} == {j.job_id for j in tiny.jobs}


def test_zipped_bundle_solves_with_query_options(server: Server) -> None:
    c = server.client()
    sub = c.solve_zip(_zip(_bundle_files()), solver="baseline", time_limit=5)
    done = c.wait(sub["id"])
    assert done["status"] == "feasible" and done["solver"] == "baseline"


def test_time_limit_is_capped(server: Server, tiny: optisched.Problem) -> None:
    sub = server.client().solve(tiny, solver="baseline", time_limit=10_000)
    assert sub["time_limit"] == 30 and sub["time_limit_capped"] is True
    assert server.client().wait(sub["id"])["status"] == "feasible"


def _long_problem() -> optisched.Problem:
    return random_problem(5, n_nodes=20, n_jobs=100, slots=96, slot_minutes=15)


def _running(c: Client, solve_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = c.get_solve(solve_id, plan=False)
        if state["status"] == "running":
            return state
        time.sleep(0.05)
    raise AssertionError(f"solve {solve_id} never ran")


def test_killed_worker_gives_error_and_the_next_solve_succeeds(
        server: Server, tiny: optisched.Problem) -> None:
    c = server.client()
    sub = c.solve(_long_problem(), solver="greedy", time_limit=25)
    pid = _running(c, sub["id"])["worker_pid"]
    assert pid in server.worker_pids()
    os.kill(pid, signal.SIGKILL)
    done = c.wait(sub["id"], timeout=30)
    assert done["status"] == "error" and "died" in done["message"]
    assert "plan" not in done
    after = c.wait(c.solve(tiny, solver="greedy", time_limit=1)["id"], timeout=60)
    assert after["status"] == "feasible"
    assert c.health()["workers_alive"] == 2


def test_cancel_kills_a_running_solve(server: Server, tiny: optisched.Problem) -> None:
    c = server.client()
    sub = c.solve(_long_problem(), solver="greedy", time_limit=25)
    _running(c, sub["id"])
    t0 = time.monotonic()
    assert c.cancel(sub["id"])["status"] == "cancelled"
    assert time.monotonic() - t0 < 10
    assert c.get_solve(sub["id"])["status"] == "cancelled"
    assert c.wait(c.solve(tiny, solver="baseline")["id"])["status"] == "feasible"


def test_problem_data_is_not_logged(server: Server) -> None:
    c = server.client()
    p = _secret_problem()
    done = c.wait(c.solve(p, solver="greedy", time_limit=1)["id"])
    assert any(a["job_id"] == SECRET_JOB for a in done["plan"]["assignments"])
    bad = json.loads(p.model_dump_json())
    bad["jobs"][0]["gpus"] = "x"
    with pytest.raises(ServiceError):
        c.solve(bad)
    log = server.log.read_text()
    assert "POST /v1/solves 202" in log  # requests are logged, by path only
    assert SECRET_JOB not in log and TOKEN not in log


# ----------------------------------------------------------------------------- sessions


def _session_problem() -> optisched.Problem:
    return random_problem(21, n_nodes=4, n_jobs=6, slots=12, slot_minutes=60, droppable=True)


def _at(p: optisched.Problem, slot: int) -> str:
    return p.horizon.time_of(slot).isoformat()


def _verify(c: Client, session_id: str) -> dict[str, Any]:
    """The session's plan passes the evaluator against the session's problem."""
    problem = problem_from_json(c.session_problem(session_id))
    plan_doc = c.session_plan(session_id)["plan"]
    plan = Plan.from_json(problem, plan_doc)
    assert optisched.evaluate(problem, plan).feasible
    assert c.evaluate(problem, plan_doc)["feasible"]
    return plan_doc


def test_session_survives_restarts_with_nothing_lost(tmp_path: Path) -> None:
    s = Server(tmp_path / "state", tmp_path / "server.log",
               ["--workers", "1", "--no-auth", "--max-time-limit", "5"])
    s.start()
    try:
        c = s.client(None)
        p = _session_problem()
        created = c.create_session(p, solver="greedy", time_limit=0.1, iterations=50)
        sid = created["id"]
        assert created["version"] == 0 and created["status"] in ("feasible", "optimal")
        arrive = [{"time": _at(p, 1), "event": "arrive", "job_id": f"new{k}", "gpus": 1,
                   "duration_min": 60, "power_kw": 0.3, "drop_penalty": 50}
                  for k in range(2)]
        up = c.send_events(sid, arrive)
        assert up["version"] == 1 and up["updates"] == 1
        assert {ch["job_id"] for ch in up["changes"] if ch["kind"] == "added"} == {
            "new0", "new1"}
        outage = [{"time": _at(p, 2), "event": "outage", "node_id": p.nodes[0].node_id,
                   "until": _at(p, 6)}]
        up = c.send_events(sid, outage)
        assert up["version"] == 2
        before = _verify(c, sid)
        problem_before = c.session_problem(sid)

        pids = s.stop(signal.SIGTERM)  # a clean stop
        assert not _wait_gone(pids)
        s.start()
        c = s.client(None)
        after = c.session_plan(sid)
        assert after["version"] == 2 and after["plan"] == before
        assert c.session_problem(sid) == problem_before

        # the node comes back: its original availability (kept in the snapshot) returns
        back = c.send_events(sid, f"time,event,node_id\n{_at(p, 3)},return,"
                             f"{p.nodes[0].node_id}\n")
        assert back["version"] == 3
        rolled = problem_from_json(c.session_problem(sid))
        ns = rolled.node_series.get(p.nodes[0].node_id)
        assert ns is None or ns.available is None or all(ns.available)
        before = _verify(c, sid)

        pids = s.stop(signal.SIGKILL)  # a crash: the workers die with it
        assert not _wait_gone(pids), "a worker outlived a killed server"
        s.start()
        c = s.client(None)
        assert c.session_plan(sid)["plan"] == before
        log = c.session_log(sid)
        assert [e["version"] for e in log] == [1, 2, 3]
        assert log[0]["events"][0]["job_id"] == "new0" and log[2]["events"][0]["event"] == \
            "return"
        up = c.send_events(sid, [{"time": _at(p, 4), "event": "cancel", "job_id": "new1"}])
        assert up["version"] == 4
        assert "new1" not in {a["job_id"] for a in up["plan"]["assignments"]}
        _verify(c, sid)
    finally:
        s.stop(signal.SIGTERM)


def test_bad_events_are_located_and_leave_the_session_unchanged(server: Server) -> None:
    c = server.client()
    p = _session_problem()
    sid = c.create_session(p, time_limit=0.05, iterations=20)["id"]
    plan0 = c.session_plan(sid)
    bad = [{"time": _at(p, 1), "event": "arrive", "job_id": "a", "gpus": 1,
            "duration_min": 60, "power_kw": 0.2},
           {"time": _at(p, 1), "event": "soc", "node_id": "nowhere", "value": 1},
           {"time": "yesterday", "event": "cancel", "job_id": "b"}]
    with pytest.raises(ServiceError) as info:
        c.send_events(sid, bad)
    assert info.value.status == 422
    # what cannot be read is reported first (as optisched replan does)
    assert [(e["file"], e["row"], e["column"]) for e in info.value.errors] == [
        ("events", 2, "time")]
    with pytest.raises(ServiceError) as info:
        c.send_events(sid, bad[:2])
    assert [(e["file"], e["row"], e["column"], e["value"]) for e in info.value.errors] == [
        ("events", 1, "node_id", "nowhere")]
    with pytest.raises(ServiceError) as info:
        c.send_events(sid, [{"time": _at(p, 1), "event": "explode"}])
    assert info.value.errors[0]["column"] == "event"
    assert c.session_plan(sid) == plan0
    with pytest.raises(ServiceError) as info:
        c.session_plan("no-such-session")
    assert info.value.status == 404


def test_session_accepts_a_solved_plan(server: Server, tiny: optisched.Problem) -> None:
    c = server.client()
    done = c.wait(c.solve(tiny, solver="greedy", time_limit=1)["id"])
    created = c.create_session(tiny, done["plan"], detail="none")
    assert created["objective"] == pytest.approx(done["progress"]["objective"])
    assert "plan" not in created
    assert c.session_plan(created["id"])["plan"]["assignments"] == done["plan"]["assignments"]
    # or straight from the solve (what a curl user does)
    assert c.solve_plan(done["id"]) == done["plan"]
    assert problem_from_json(c.solve_problem(done["id"])) == tiny
    again = c.session_from_solve(done["id"], time_limit=0.1)
    assert again["objective"] == created["objective"] and again["plan"] == done["plan"]
    with pytest.raises(ServiceError) as info:
        c.solve_plan("nope")
    assert info.value.status == 404


def test_queued_solves_survive_a_restart(tmp_path: Path, tiny: optisched.Problem) -> None:
    s = Server(tmp_path / "state", tmp_path / "server.log", ["--workers", "1", "--no-auth"])
    s.start()
    try:
        c = s.client(None)
        ids = [c.solve(tiny, solver="greedy", time_limit=1.5)["id"] for _ in range(4)]
        s.stop(signal.SIGKILL)
        s.start()
        c = s.client(None)
        for sid in ids:
            done = c.wait(sid, timeout=120)
            assert done["status"] == "feasible"
            assert optisched.evaluate(tiny, Plan.from_json(tiny, done["plan"])).feasible
    finally:
        s.stop()


# ----------------------------------------------------------------------------- start-up


@pytest.mark.parametrize(("args", "env", "says"), [
    (["--no-auth", "--host", "0.0.0.0"], {}, "loopback"),
    ([], {}, "no token"),
    (["--token-file", "/nonexistent/tokens"], {}, "--token-file"),
    ([], {"OPTISCHED_TOKEN": "short"}, "at least 16"),
])
def test_serve_refuses_unsafe_settings(tmp_path: Path, args: list[str], env: dict[str, str],
                                       says: str) -> None:
    r = subprocess.run([sys.executable, "-m", "optisched.cli", "serve", "--port", "0",
                        "--state", str(tmp_path), *args], capture_output=True, text=True,
                       timeout=60, env={**{k: v for k, v in os.environ.items()
                                           if k != "OPTISCHED_TOKEN"}, **env})
    assert r.returncode == 1 and says in r.stderr


def test_restarted_session_continues_exactly_like_one_that_never_stopped(tmp_path: Path) -> None:
    # with a move cap instead of a time budget an update is reproducible: the server's
    # session, restarted between two updates, must give the in-process re-planner's plans
    p = _session_problem()
    plan0 = optisched.solve(p, "greedy", time_limit=1)
    s = Server(tmp_path / "state", tmp_path / "server.log", ["--workers", "1", "--no-auth"])
    s.start()
    try:
        c = s.client(None)
        sid = c.create_session(p, plan0.to_json(p), time_limit=30, iterations=15,
                               detail="none")["id"]
        rp = Replanner(p, plan=Plan.from_json(p, plan0.to_json(p)), time_limit=30,
                       iterations=15)
        node = p.nodes[1].node_id
        steps = [
            ([{"time": _at(p, 1), "event": "arrive", "job_id": "late", "gpus": 1,
               "duration_min": 120, "power_kw": 0.5, "drop_penalty": 40}],
             Events(p.horizon.time_of(1), new_jobs=[Job(job_id="late", gpus=1,
                                                        duration_min=120, power_kw=0.5,
                                                        release=p.horizon.time_of(1),
                                                        drop_penalty=40)])),
            ([{"time": _at(p, 2), "event": "outage", "node_id": node}],
             Events(p.horizon.time_of(2), outages={node: None})),
            ([{"time": _at(p, 4), "event": "return", "node_id": node}],
             Events(p.horizon.time_of(4), returns=[node])),
        ]
        for k, (records, events) in enumerate(steps):
            if k:
                s.stop(signal.SIGKILL if k == 2 else signal.SIGTERM)
                s.start()
                c = s.client(None)
            got = c.send_events(sid, records)
            events.apply(rp)
            want = json.loads(rp.plan.to_json(rp.problem))
            for doc in (got["plan"], want):
                doc["summary"].pop("timings")  # wall-clock seconds differ, nothing else
            assert got["plan"] == want, f"update {k}"
            assert c.session_problem(sid) == json.loads(rp.problem.model_dump_json())
    finally:
        s.stop()
