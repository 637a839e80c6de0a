"""The FastAPI application of ``optisched serve`` (endpoints: ``docs/service.md``).

Every request except ``/v1/health``, ``/docs`` and ``/openapi.json`` needs
``Authorization: Bearer TOKEN`` (unless the server runs with ``--no-auth`` on a
loopback address); bodies larger than ``--max-body`` get 413 before they are read.
Solves run in the worker pool (:mod:`optisched.service.pool`); sessions are updated
in the server's threads, one update of a session at a time. Logs name methods,
paths, statuses and ids only: never a token or problem data.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from optisched.domain import Problem
from optisched.errors import BundleError
from optisched.evaluate import evaluate
from optisched.jsondoc import plan_schema, problem_from_json, problem_schema
from optisched.plan import Plan
from optisched.service import models
from optisched.service.config import ServiceConfig
from optisched.service.inputs import (
    ApiError,
    error_body,
    json_object,
    problem_of_body,
    request_error,
)
from optisched.service.pool import Outcome, Task, WorkerPool
from optisched.service.sessions import Session, SessionManager, SessionSettings
from optisched.service.solves import SolveManager
from optisched.service.store import Store
from optisched.solvers import REGISTRY, OptionError, default_solver

__all__ = ["PUBLIC_PATHS", "Service", "create_app"]

log = logging.getLogger("optisched.service")

PUBLIC_PATHS = ("/v1/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")
"""Paths served without a token (they hold no data)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Service:
    """What the handlers share (``app.state.service``)."""

    config: ServiceConfig
    store: Store
    pool: WorkerPool
    solves: SolveManager
    sessions: SessionManager


class _TooLarge(Exception):
    pass


class Guard:
    """ASGI middleware: bearer tokens (401), body size (413), one access-log line.

    The log line holds method, path (no query), status and milliseconds.
    """

    def __init__(self, app: ASGIApp, config: ServiceConfig) -> None:
        self.app = app
        self.config = config
        self._tokens = [t.encode() for t in config.tokens]

    def _authorized(self, scope: Scope) -> bool:
        if not self.config.auth or scope["path"] in PUBLIC_PATHS:
            return True
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return False
        ok = False
        for t in self._tokens:  # compare with every token, in constant time
            ok |= hmac.compare_digest(t, token.strip())
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [0]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            if not self._authorized(scope):
                await _send_json(sending, 401, error_body(
                    "unauthorized", "a bearer token is required: Authorization: Bearer TOKEN"),
                    [(b"www-authenticate", b'Bearer realm="optisched"')])
                return
            limit = self.config.max_body_bytes
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                await _send_json(sending, 413, _too_large(limit))
                return
            seen = [0]

            async def receiving() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    seen[0] += len(message.get("body", b""))
                    if seen[0] > limit:
                        raise _TooLarge
                return message

            try:
                await self.app(scope, receiving, sending)
            except _TooLarge:
                if status[0] == 0:
                    await _send_json(sending, 413, _too_large(limit))
        finally:
            log.info("%s %s %d %.0f ms", scope.get("method"), scope.get("path"), status[0],
                     1000 * (time.perf_counter() - t0))


def _too_large(limit: int) -> dict[str, Any]:
    return error_body("too_large", f"the request body is larger than {limit} bytes "
                      "(--max-body)")


async def _send_json(send: Send, status: int, body: dict[str, Any],
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


def _raw_json(head: dict[str, Any], **embedded: str | None) -> Response:
    """A JSON answer with already serialized documents embedded (no re-parsing)."""
    text = json.dumps(head, allow_nan=False, separators=(",", ":"))
    extra = "".join(f',"{k}":{v}' for k, v in embedded.items() if v is not None)
    return Response(text[:-1] + extra + "}" if extra else text, media_type="application/json")


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _body_doc(model: type[Any], extra_types: tuple[str, ...] = ()) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of a handler that reads its body itself."""
    content: dict[str, Any] = {"application/json": {"schema": {
        "$ref": f"#/components/schemas/{model.__name__}"}}}
    for t in extra_types:
        content[t] = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": True, "content": content}}


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or a wrong bearer token", "model": models.ErrorBody},
    413: {"description": "Body larger than --max-body", "model": models.ErrorBody},
    422: {"description": "Invalid input, every error located", "model": models.ErrorBody},
}


# ----------------------------------------------------------------------------- parsing


def _solve_request(cfg: ServiceConfig, fields: dict[str, Any]) -> dict[str, Any]:
    """The checked, capped options of a solve."""
    extra = set(fields) - {"problem", "solver", "time_limit", "seed", "mip_gap", "threads",
                           "options"}
    if extra:
        raise request_error(sorted(extra)[0], None, "unknown key; valid: problem, solver, "
                            "time_limit, seed, mip_gap, threads, options")
    solver = fields.get("solver") or default_solver()
    if solver not in REGISTRY:
        raise request_error("solver", solver, f"unknown solver; registered: {', '.join(REGISTRY)}")
    if not REGISTRY[solver].available():
        raise request_error("solver", solver, "its packages are not installed on the server")
    tl = fields.get("time_limit")
    if tl is not None and (not isinstance(tl, (int, float)) or isinstance(tl, bool)
                           or not math.isfinite(tl) or tl <= 0):
        raise request_error("time_limit", tl, "expected a finite number of seconds > 0")
    seed = fields.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 2**31 - 1:
        raise request_error("seed", seed, "expected a whole number 0 … 2147483647")
    gap = fields.get("mip_gap")
    if gap is not None and (not isinstance(gap, (int, float)) or not 0 <= gap < 1):
        raise request_error("mip_gap", gap, "expected a relative gap in [0, 1)")
    threads = fields.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise request_error("threads", threads, "expected a whole number >= 1")
    options = fields.get("options") or {}
    if not isinstance(options, dict):
        raise request_error("options", None, "expected an object of solver options")
    try:
        REGISTRY[solver].parse_options(options)
    except OptionError as exc:
        raise request_error(f"options.{exc.key}", options.get(exc.key), str(exc)) from None
    capped, cut = cfg.cap(None if tl is None else float(tl))
    return {"solver": solver, "time_limit": capped, "time_limit_capped": cut, "seed": seed,
            "mip_gap": gap, "threads": threads, "options": options}


def _query_fields(request: Request) -> dict[str, Any]:
    """Solve options as query parameters (for a zipped bundle body)."""
    out: dict[str, Any] = {}
    q = request.query_params
    for key in ("solver",):
        if key in q:
            out[key] = q[key]
    for key, conv in (("time_limit", float), ("mip_gap", float), ("seed", int),
                      ("threads", int)):
        if key in q:
            try:
                out[key] = conv(q[key])
            except ValueError:
                raise request_error(key, q[key], "not a number") from None
    return out


def _problem_field(data: dict[str, Any], key: str = "problem") -> Problem:
    if key not in data:
        raise request_error(key, None, f"required: the {key} document")
    if not isinstance(data[key], dict):
        raise request_error(key, None, "expected a JSON object")
    try:
        return problem_from_json(data[key], name=key)
    except BundleError as exc:
        raise ApiError.invalid(exc, key) from None


def _plan_field(problem: Problem, doc: Any, key: str = "plan") -> Plan:
    if not isinstance(doc, dict):
        raise request_error(key, None, "expected a plan document (a JSON object)")
    try:
        return Plan.from_json(problem, doc, name=key)
    except BundleError as exc:
        raise ApiError.invalid(exc, key) from None


def _session_answer(session: Session, plan: str | None = None, **more: Any) -> Response:
    rp = session.replanner
    hz = rp.problem.horizon
    head = {"id": session.id, "version": session.version, "status": rp.plan.status.value,
            "objective": _finite(rp.plan.objective), "settings": session.settings.to_dict(),
            "horizon": {"start": hz.start.isoformat(), "slot_minutes": hz.slot_minutes,
                        "slots": hz.slots},
            "jobs": len(rp.problem.jobs), "nodes": len(rp.problem.nodes), **more}
    return _raw_json(head, plan=plan)


def _plan_text(session: Session, detail: str) -> str | None:
    rp = session.replanner
    if detail == "none":
        return None
    if detail == "full":
        return rp.plan.to_json(rp.problem)
    doc = rp.plan.to_document(rp.problem)
    doc["node_series"] = []
    return json.dumps(doc, allow_nan=False, separators=(",", ":"))


def _detail(request: Request) -> str:
    d = request.query_params.get("plan", "full")
    if d not in ("full", "assignments", "none"):
        raise request_error("plan", d, "expected full, assignments or none")
    return d


# ----------------------------------------------------------------------------- app


def create_app(config: ServiceConfig) -> FastAPI:
    """The application: routes, the guard middleware, a lifespan that starts and stops
    the store, the worker pool and the managers."""
    config.check()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = config.state_dir
        state.mkdir(mode=0o700, parents=True, exist_ok=True)  # holds pickles: private
        store = Store(state / "state.sqlite")
        pool = WorkerPool(config.workers)
        pool.start()
        solves = SolveManager(store, pool, config)
        sessions = SessionManager(store, state / "tmp")
        app.state.service = Service(config, store, pool, solves, sessions)
        solves.resume()
        log.info("optisched service ready: %d worker(s), state %s, auth %s", config.workers,
                 state, "on" if config.auth else "off")
        try:
            yield
        finally:
            pool.close()
            store.close()
            log.info("optisched service stopped")

    app = FastAPI(title="optisched", version=_version(), lifespan=lifespan,
                  description="Plans where and when AI jobs run on small, locally powered "
                  "compute nodes. Every endpoint but /v1/health needs `Authorization: Bearer "
                  "TOKEN`. Documents: docs/schemas/problem.schema.json and plan.schema.json; "
                  "guide: docs/service.md.")

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
        log.error("internal error %s at %s in %s %s", type(exc).__name__, where,
                  request.method, request.url.path)  # no message: it may hold data
        return JSONResponse(error_body("internal", f"internal error ({type(exc).__name__}); "
                                       "please report it"), status_code=500)

    def svc(request: Request) -> Service:
        s: Service = request.app.state.service
        return s

    # ------------------------------------------------------------------ misc
    @app.get("/v1/health", tags=["service"])
    async def health(request: Request) -> dict[str, Any]:
        """Liveness: workers and queue (no token needed)."""
        s = svc(request)
        return {"ok": True, "version": _version(), "workers": s.pool.size,
                "workers_alive": len(s.pool.pids()), **s.pool.counts()}

    @app.get("/v1/solvers", tags=["service"], responses=_ERRORS)
    async def solvers(request: Request) -> list[dict[str, Any]]:
        """Registered solvers and their options (as ``optisched solvers --json``)."""
        default = default_solver()
        return [{"name": n, "available": spec.available(), "exact": spec.exact,
                 "default": n == default, "description": spec.description,
                 "options": [asdict(o) for o in spec.options.describe()]}
                for n, spec in REGISTRY.items()]

    @app.get("/v1/schemas/{name}", tags=["service"], responses=_ERRORS)
    async def schema(name: str) -> dict[str, Any]:
        """The JSON Schema of the ``problem`` or the ``plan`` document."""
        if name == "problem":
            return problem_schema()
        if name == "plan":
            return plan_schema()
        raise ApiError(404, "not_found", "schemas: problem, plan")

    # ------------------------------------------------------------------ validate, evaluate
    @app.post("/v1/validate", tags=["problems"], response_model=models.ValidateAnswer,
              responses=_ERRORS, openapi_extra=_body_doc(models.SolveRequest,
                                                         ("application/zip",)))
    async def validate(request: Request) -> Response:
        """Check a problem document (application/json) or a zipped CSV bundle
        (application/zip): 200 when valid, 422 with every error located (as the CLI's).
        ``?problem=true`` also returns the problem document (a bundle converted)."""
        s = svc(request)
        body = await request.body()
        problem = await run_in_threadpool(problem_of_body, body,
                                          request.headers.get("content-type", ""),
                                          s.config.state_dir / "tmp", 4 * s.config.max_body_bytes)
        head = {"ok": True, "valid": True, "nodes": len(problem.nodes),
                "jobs": len(problem.jobs), "slots": problem.horizon.slots,
                "slot_minutes": problem.horizon.slot_minutes}
        want = request.query_params.get("problem", "false").lower() in ("1", "true", "yes")
        return _raw_json(head, problem=problem.model_dump_json() if want else None)

    @app.post("/v1/evaluate", tags=["problems"], response_model=models.EvaluateAnswer,
              responses=_ERRORS, openapi_extra=_body_doc(models.EvaluateRequest))
    async def evaluate_plan(request: Request) -> dict[str, Any]:
        """Check a plan against every constraint and price it (``optisched evaluate``)."""
        data = json_object(await request.body())

        def work() -> dict[str, Any]:
            problem = _problem_field(data)
            if "plan" not in data:
                raise request_error("plan", None, "required: the plan document")
            plan = _plan_field(problem, data["plan"])
            ev = evaluate(problem, plan)
            claimed = plan.objective
            objective = ev.objective if ev.costs and math.isfinite(ev.objective) else None
            agrees = (claimed is not None and objective is not None
                      and abs(claimed - objective) <= 1e-6 * max(1.0, abs(objective)))
            return {"feasible": ev.feasible, "objective": objective,
                    "summary_objective": _finite(claimed), "objective_matches_summary": agrees,
                    "costs": {k: _finite(v) for k, v in ev.costs.items()},
                    "violations": [asdict(v) for v in ev.violations],
                    "violation_counts": ev.counts}

        return await run_in_threadpool(work)

    # ------------------------------------------------------------------ solves
    @app.post("/v1/solves", tags=["solves"], status_code=202,
              response_model=models.SolveAccepted, responses=_ERRORS,
              openapi_extra=_body_doc(models.SolveRequest, ("application/zip",)))
    async def submit(request: Request) -> Response:
        """Queue a solve: JSON ``{"problem": …, "solver": …, "time_limit": …}``, or a zipped
        bundle with the options as query parameters. 202 with the solve's id."""
        s = svc(request)
        body = await request.body()
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()

        def work() -> tuple[str, dict[str, Any]]:
            if ctype in ("application/json", ""):
                data = json_object(body)
                fields = _solve_request(s.config, data)
                problem = _problem_field(data)
            else:
                fields = _solve_request(s.config, _query_fields(request))
                problem = problem_of_body(body, ctype, s.config.state_dir / "tmp",
                                          4 * s.config.max_body_bytes)
            return problem.model_dump_json(), fields

        problem_json, fields = await run_in_threadpool(work)
        state = await run_in_threadpool(s.solves.submit, problem_json, fields)
        url = f"/v1/solves/{state.id}"
        return JSONResponse({"id": state.id, "status": state.status, "url": url,
                             "time_limit": fields["time_limit"],
                             "time_limit_capped": fields["time_limit_capped"]},
                            status_code=202, headers={"location": url})

    @app.get("/v1/solves", tags=["solves"], responses=_ERRORS)
    async def list_solves(request: Request, limit: int = 1000) -> dict[str, Any]:
        """Every solve (oldest first), without plans."""
        states = await run_in_threadpool(svc(request).solves.list, limit)
        return {"solves": [st.to_dict() for st in states]}

    @app.get("/v1/solves/{solve_id}", tags=["solves"], response_model=models.SolveAnswer,
             responses=_ERRORS)
    async def get_solve(solve_id: str, request: Request, plan: bool = True) -> Response:
        """Status and progress; when done with a plan, the plan document (``?plan=false``
        leaves it out)."""
        s = svc(request)
        state = s.solves.get(solve_id)
        if state is None:
            raise ApiError(404, "not_found", f"no solve {solve_id}")
        text = await run_in_threadpool(s.solves.plan, solve_id) if plan and state.done else None
        return _raw_json(state.to_dict(), plan=text)

    @app.get("/v1/solves/{solve_id}/plan", tags=["solves"], responses=_ERRORS)
    async def get_solve_plan(solve_id: str, request: Request) -> Response:
        """The plan document of a finished solve (404 while it has none)."""
        text = await run_in_threadpool(svc(request).solves.plan, solve_id)
        if text is None:
            raise ApiError(404, "not_found", f"solve {solve_id} has no plan (unknown, not "
                           "done, or it ended without one)")
        return Response(text, media_type="application/json")

    @app.get("/v1/solves/{solve_id}/problem", tags=["solves"], responses=_ERRORS)
    async def get_solve_problem(solve_id: str, request: Request) -> Response:
        """The problem document of a solve."""
        text = await run_in_threadpool(svc(request).store.solve_problem, solve_id)
        if text is None:
            raise ApiError(404, "not_found", f"no solve {solve_id}")
        return Response(text, media_type="application/json")

    @app.get("/v1/solves/{solve_id}/events", tags=["solves"], responses=_ERRORS)
    async def solve_events(solve_id: str, request: Request) -> StreamingResponse:
        """Server-sent events: ``status`` first, then ``progress`` reports, ``done`` last."""
        s = svc(request)
        state, q = s.solves.subscribe(solve_id, asyncio.get_running_loop())
        if state is None:
            raise ApiError(404, "not_found", f"no solve {solve_id}")

        def sse(event: str, data: Any) -> str:
            return f"event: {event}\ndata: {json.dumps(data)}\n\n"

        async def stream() -> AsyncIterator[str]:
            try:
                yield sse("status", state.to_dict())
                if state.progress:
                    yield sse("progress", state.progress)
                if q is None:
                    yield sse("done", state.to_dict())
                    return
                while True:
                    try:
                        ev = await asyncio.wait_for(q.get(), 15.0)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield sse(ev["event"], ev["data"])
                    if ev["event"] == "done":
                        return
            finally:
                if q is not None:
                    s.solves.unsubscribe(solve_id, q)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache",
                                          "x-accel-buffering": "no"})

    @app.delete("/v1/solves/{solve_id}", tags=["solves"], response_model=models.SolveAnswer,
                responses=_ERRORS)
    async def cancel(solve_id: str, request: Request) -> dict[str, Any]:
        """Cancel a queued or running solve (its worker process is killed and replaced);
        a finished solve is left as it is."""
        s = svc(request)
        state = await run_in_threadpool(s.solves.cancel, solve_id)
        if state is None:
            raise ApiError(404, "not_found", f"no solve {solve_id}")
        for _ in range(100):  # a running one ends within moments
            if state is None or state.done:
                break
            await asyncio.sleep(0.05)
            state = s.solves.get(solve_id)
        assert state is not None
        return state.to_dict()

    # ------------------------------------------------------------------ sessions
    @app.post("/v1/sessions", tags=["sessions"], status_code=201,
              response_model=models.SessionAnswer, responses=_ERRORS,
              openapi_extra=_body_doc(models.SessionRequest))
    async def create_session(request: Request) -> Response:
        """Start a re-planning session from a problem and its plan (solved in a worker when
        no plan is given)."""
        s = svc(request)
        data = json_object(await request.body())
        known = set(models.SessionRequest.model_fields)
        for key in data:
            if key not in known:
                raise request_error(key, None, "unknown key; valid: " + ", ".join(known))
        settings = _session_settings(s.config, data)
        if data.get("solve_id") is not None:  # the problem and plan of a finished solve
            sid = str(data["solve_id"])
            if "problem" in data or "plan" in data:
                raise request_error("solve_id", sid, "give solve_id or problem (and plan), "
                                    "not both")
            ptext = await run_in_threadpool(s.store.solve_problem, sid)
            plan_text = await run_in_threadpool(s.solves.plan, sid)
            if ptext is None or plan_text is None:
                raise request_error("solve_id", sid, "no finished solve with a plan has "
                                    "this id")
            data = {**data, "problem": json.loads(ptext), "plan": json.loads(plan_text)}
        problem = await run_in_threadpool(_problem_field, data)
        if data.get("plan") is not None:
            plan = await run_in_threadpool(_plan_field, problem, data["plan"])
        else:
            plan = await _first_plan(s, problem, settings, data.get("initial_time_limit"))
        session = await run_in_threadpool(s.sessions.create, problem, plan, settings)
        text = await run_in_threadpool(_plan_text, session, _detail(request))
        resp = _session_answer(session, text)
        resp.status_code = 201
        resp.headers["location"] = f"/v1/sessions/{session.id}"
        return resp

    @app.get("/v1/sessions", tags=["sessions"], responses=_ERRORS)
    async def list_sessions(request: Request) -> dict[str, Any]:
        """Every session id."""
        return {"sessions": await run_in_threadpool(svc(request).sessions.ids)}

    async def _session(request: Request, session_id: str) -> Session:
        session = await run_in_threadpool(svc(request).sessions.get, session_id)
        if session is None:
            raise ApiError(404, "not_found", f"no session {session_id}")
        return session

    @app.get("/v1/sessions/{session_id}", tags=["sessions"],
             response_model=models.SessionAnswer, responses=_ERRORS)
    async def get_session(session_id: str, request: Request) -> Response:
        """A session's version, horizon and plan status (no plan)."""
        return _session_answer(await _session(request, session_id))

    @app.get("/v1/sessions/{session_id}/plan", tags=["sessions"],
             response_model=models.SessionAnswer, responses=_ERRORS)
    async def session_plan(session_id: str, request: Request) -> Response:
        """The session's current plan (``?plan=assignments`` leaves node_series out)."""
        session = await _session(request, session_id)
        detail = _detail(request)
        with_lock = lambda: _locked(session, lambda: _plan_text(session, detail))  # noqa: E731
        return _session_answer(session, await run_in_threadpool(with_lock))

    @app.get("/v1/sessions/{session_id}/problem", tags=["sessions"], responses=_ERRORS)
    async def session_problem(session_id: str, request: Request) -> Response:
        """The session's current (rolled) problem document."""
        session = await _session(request, session_id)
        text = await run_in_threadpool(
            lambda: _locked(session, session.replanner.problem.model_dump_json))
        return Response(text, media_type="application/json")

    @app.post("/v1/sessions/{session_id}/events", tags=["sessions"],
              response_model=models.SessionAnswer, responses=_ERRORS,
              openapi_extra=_body_doc(models.EventsRequest, ("text/csv",)))
    async def session_events(session_id: str, request: Request) -> Response:
        """Apply events (the events-CSV vocabulary, docs/events.md): JSON ``{"events":
        [...]}`` or an events CSV (text/csv). Answers the new plan and its change set."""
        s = svc(request)
        detail = _detail(request)
        body = await request.body()
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        events: list[Any] | str
        if ctype == "text/csv":
            try:
                events = body.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise request_error(None, None, "the events CSV is not UTF-8") from None
        else:
            data = json_object(body)
            if not isinstance(data.get("events"), list):
                raise request_error("events", None, "expected a list of event objects")
            events = data["events"]

        def work() -> tuple[Session, int, list[dict[str, Any]], str | None] | None:
            try:
                upd = s.sessions.apply(session_id, events)
            except BundleError as exc:
                raise ApiError.invalid(exc, "events") from None
            if upd is None:
                return None
            text = _locked(upd.session, lambda: _plan_text(upd.session, detail))
            return upd.session, upd.updates, upd.changes, text

        result = await run_in_threadpool(work)
        if result is None:
            raise ApiError(404, "not_found", f"no session {session_id}")
        session, n, changes, text = result
        return _session_answer(session, text, updates=n, changes=changes)

    @app.get("/v1/sessions/{session_id}/events", tags=["sessions"], responses=_ERRORS)
    async def session_log(session_id: str, request: Request) -> dict[str, Any]:
        """The session's event log (every update as received, its status and changes)."""
        session = await _session(request, session_id)
        log_rows = await run_in_threadpool(svc(request).store.session_events, session.id)
        return {"id": session.id, "events": log_rows}

    @app.delete("/v1/sessions/{session_id}", tags=["sessions"], responses=_ERRORS)
    async def delete_session(session_id: str, request: Request) -> dict[str, Any]:
        """Remove a session, its snapshots and its log."""
        if not await run_in_threadpool(svc(request).sessions.delete, session_id):
            raise ApiError(404, "not_found", f"no session {session_id}")
        return {"id": session_id, "deleted": True}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            comps = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (models.SolveRequest, models.EvaluateRequest, models.SessionRequest,
                          models.EventsRequest):
                doc = model.model_json_schema(ref_template="#/components/schemas/{model}")
                comps.update(doc.pop("$defs", {}))
                comps[model.__name__] = doc
            schema["components"]["securitySchemes"] = {"bearer": {"type": "http",
                                                                  "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(Guard, config=config)
    return app


def _locked(session: Session, fn: Callable[[], Any]) -> Any:
    with session.lock:
        return fn()


def _session_settings(cfg: ServiceConfig, data: dict[str, Any]) -> SessionSettings:
    solver = data.get("solver", "greedy")
    if solver not in REGISTRY or not REGISTRY[solver].available():
        raise request_error("solver", solver, f"unknown or unavailable solver; registered: "
                            f"{', '.join(REGISTRY)}")
    tl = data.get("time_limit", 0.2)
    if not isinstance(tl, (int, float)) or isinstance(tl, bool) or not (
            math.isfinite(tl) and tl >= 0):
        raise request_error("time_limit", tl, "expected a finite number of seconds >= 0")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 2**31 - 1:
        raise request_error("seed", seed, "expected a whole number 0 … 2147483647")
    it = data.get("iterations")
    if it is not None and (not isinstance(it, int) or isinstance(it, bool) or it < 0):
        raise request_error("iterations", it, "expected a whole number >= 0 or null")
    return SessionSettings(solver=solver, time_limit=min(float(tl), cfg.max_time_limit),
                           seed=seed, iterations=it)


async def _first_plan(s: Service, problem: Problem, settings: SessionSettings,
                      time_limit: Any) -> Plan:
    """The session's first plan, solved in the worker pool."""
    if time_limit is not None and (not isinstance(time_limit, (int, float))
                                   or not math.isfinite(time_limit) or time_limit <= 0):
        raise request_error("initial_time_limit", time_limit, "expected seconds > 0")
    tl, _ = s.config.cap(None if time_limit is None else float(time_limit))
    fut: Future[Outcome] = Future()
    payload = {"problem": problem.model_dump_json(), "solver": settings.solver,
               "time_limit": tl, "seed": settings.seed, "mip_gap": None, "threads": None,
               "options": None}
    task = Task(f"session-{id(fut)}", payload, s.config.kill_factor * tl + s.config.kill_slack,
                lambda t, pid: None, lambda t, r: None, lambda t, o: fut.set_result(o))
    s.pool.submit(task)
    outcome = await asyncio.wrap_future(fut)
    if outcome.kind != "done" or outcome.result is None:
        raise ApiError(500 if outcome.kind != "failed" else 422, "first_plan_failed",
                       f"the first plan could not be made: {outcome.message}")
    return await run_in_threadpool(Plan.from_json, problem, str(outcome.result["plan"]))


def _version() -> str:
    try:
        return metadata.version("optisched")
    except metadata.PackageNotFoundError:  # pragma: no cover - not installed
        return "0"
