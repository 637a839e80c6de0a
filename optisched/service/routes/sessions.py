"""Routes of re-planning sessions: create, list, read, plan, problem, events, log, delete
(tag ``sessions``).

A session is a :class:`~optisched.replan.Replanner` kept by the
:class:`~optisched.service.sessions.SessionManager`; its first plan, when none is
given, is solved in the worker pool (:func:`_first_plan`); reading its plan or
problem holds the session's lock, as an update does.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from optisched.domain import Problem
from optisched.errors import BundleError
from optisched.plan import Plan
from optisched.service import models
from optisched.service.config import ServiceConfig
from optisched.service.inputs import ApiError, json_object, request_error
from optisched.service.pool import Outcome, Task
from optisched.service.routes.common import (
    ERRORS,
    Service,
    body_doc,
    finite,
    plan_field,
    problem_field,
    raw_json,
    service_of,
)
from optisched.service.sessions import Session, SessionSettings
from optisched.solvers import REGISTRY

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/sessions", tags=["sessions"], status_code=201,
             response_model=models.SessionAnswer, responses=ERRORS,
             openapi_extra=body_doc(models.SessionRequest))
async def create_session(request: Request) -> Response:
    """Start a re-planning session from a problem and its plan (solved in a worker when
    no plan is given)."""
    s = service_of(request)
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
    problem = await run_in_threadpool(problem_field, data)
    if data.get("plan") is not None:
        plan = await run_in_threadpool(plan_field, problem, data["plan"])
    else:
        plan = await _first_plan(s, problem, settings, data.get("initial_time_limit"))
    session = await run_in_threadpool(s.sessions.create, problem, plan, settings)
    text = await run_in_threadpool(_plan_text, session, _detail(request))
    resp = _session_answer(session, text)
    resp.status_code = 201
    resp.headers["location"] = f"/v1/sessions/{session.id}"
    return resp


@router.get("/v1/sessions", tags=["sessions"], responses=ERRORS)
async def list_sessions(request: Request) -> dict[str, Any]:
    """Every session id."""
    return {"sessions": await run_in_threadpool(service_of(request).sessions.ids)}


@router.get("/v1/sessions/{session_id}", tags=["sessions"],
            response_model=models.SessionAnswer, responses=ERRORS)
async def get_session(session_id: str, request: Request) -> Response:
    """A session's version, horizon and plan status (no plan)."""
    return _session_answer(await _session(request, session_id))


@router.get("/v1/sessions/{session_id}/plan", tags=["sessions"],
            response_model=models.SessionAnswer, responses=ERRORS)
async def session_plan(session_id: str, request: Request) -> Response:
    """The session's current plan (``?plan=assignments`` leaves node_series out)."""
    session = await _session(request, session_id)
    detail = _detail(request)
    with_lock = lambda: _locked(session, lambda: _plan_text(session, detail))  # noqa: E731
    return _session_answer(session, await run_in_threadpool(with_lock))


@router.get("/v1/sessions/{session_id}/problem", tags=["sessions"], responses=ERRORS)
async def session_problem(session_id: str, request: Request) -> Response:
    """The session's current (rolled) problem document."""
    session = await _session(request, session_id)
    text = await run_in_threadpool(
        lambda: _locked(session, session.replanner.problem.model_dump_json))
    return Response(text, media_type="application/json")


@router.post("/v1/sessions/{session_id}/events", tags=["sessions"],
             response_model=models.SessionAnswer, responses=ERRORS,
             openapi_extra=body_doc(models.EventsRequest, ("text/csv",)))
async def session_events(session_id: str, request: Request) -> Response:
    """Apply events (the events-CSV vocabulary, docs/events.md): JSON ``{"events":
    [...]}`` or an events CSV (text/csv). Answers the new plan and its change set."""
    s = service_of(request)
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


@router.get("/v1/sessions/{session_id}/events", tags=["sessions"], responses=ERRORS)
async def session_log(session_id: str, request: Request) -> dict[str, Any]:
    """The session's event log (every update as received, its status and changes)."""
    session = await _session(request, session_id)
    log_rows = await run_in_threadpool(service_of(request).store.session_events, session.id)
    return {"id": session.id, "events": log_rows}


@router.delete("/v1/sessions/{session_id}", tags=["sessions"], responses=ERRORS)
async def delete_session(session_id: str, request: Request) -> dict[str, Any]:
    """Remove a session, its snapshots and its log."""
    if not await run_in_threadpool(service_of(request).sessions.delete, session_id):
        raise ApiError(404, "not_found", f"no session {session_id}")
    return {"id": session_id, "deleted": True}


# ----------------------------------------------------------------------------- helpers


async def _session(request: Request, session_id: str) -> Session:
    session = await run_in_threadpool(service_of(request).sessions.get, session_id)
    if session is None:
        raise ApiError(404, "not_found", f"no session {session_id}")
    return session


def _session_answer(session: Session, plan: str | None = None, **more: Any) -> Response:
    rp = session.replanner
    hz = rp.problem.horizon
    head = {"id": session.id, "version": session.version, "status": rp.plan.status.value,
            "objective": finite(rp.plan.objective), "settings": session.settings.to_dict(),
            "horizon": {"start": hz.start.isoformat(), "slot_minutes": hz.slot_minutes,
                        "slots": hz.slots},
            "jobs": len(rp.problem.jobs), "nodes": len(rp.problem.nodes), **more}
    return raw_json(head, plan=plan)


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
