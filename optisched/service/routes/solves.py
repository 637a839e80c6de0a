"""Routes of solves: submit, list, status, plan, problem, progress events, cancel (tag
``solves``).

A solve runs in the worker pool (:class:`~optisched.service.solves.SolveManager`);
its options are checked and its time limit capped here (:func:`solve_request`).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from optisched.service import models
from optisched.service.config import ServiceConfig
from optisched.service.inputs import ApiError, json_object, problem_of_body, request_error
from optisched.service.routes.common import ERRORS, body_doc, problem_field, raw_json, service_of
from optisched.solvers import REGISTRY, OptionError, default_solver

__all__ = ["router", "solve_request"]

router = APIRouter()


def solve_request(cfg: ServiceConfig, fields: dict[str, Any]) -> dict[str, Any]:
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


@router.post("/v1/solves", tags=["solves"], status_code=202,
             response_model=models.SolveAccepted, responses=ERRORS,
             openapi_extra=body_doc(models.SolveRequest, ("application/zip",)))
async def submit(request: Request) -> Response:
    """Queue a solve: JSON ``{"problem": …, "solver": …, "time_limit": …}``, or a zipped
    bundle with the options as query parameters. 202 with the solve's id."""
    s = service_of(request)
    body = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()

    def work() -> tuple[str, dict[str, Any]]:
        if ctype in ("application/json", ""):
            data = json_object(body)
            fields = solve_request(s.config, data)
            problem = problem_field(data)
        else:
            fields = solve_request(s.config, _query_fields(request))
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


@router.get("/v1/solves", tags=["solves"], responses=ERRORS)
async def list_solves(request: Request, limit: int = 1000) -> dict[str, Any]:
    """Every solve (oldest first), without plans."""
    states = await run_in_threadpool(service_of(request).solves.list, limit)
    return {"solves": [st.to_dict() for st in states]}


@router.get("/v1/solves/{solve_id}", tags=["solves"], response_model=models.SolveAnswer,
            responses=ERRORS)
async def get_solve(solve_id: str, request: Request, plan: bool = True) -> Response:
    """Status and progress; when done with a plan, the plan document (``?plan=false``
    leaves it out)."""
    s = service_of(request)
    state = s.solves.get(solve_id)
    if state is None:
        raise ApiError(404, "not_found", f"no solve {solve_id}")
    text = await run_in_threadpool(s.solves.plan, solve_id) if plan and state.done else None
    return raw_json(state.to_dict(), plan=text)


@router.get("/v1/solves/{solve_id}/plan", tags=["solves"], responses=ERRORS)
async def get_solve_plan(solve_id: str, request: Request) -> Response:
    """The plan document of a finished solve (404 while it has none)."""
    text = await run_in_threadpool(service_of(request).solves.plan, solve_id)
    if text is None:
        raise ApiError(404, "not_found", f"solve {solve_id} has no plan (unknown, not "
                       "done, or it ended without one)")
    return Response(text, media_type="application/json")


@router.get("/v1/solves/{solve_id}/problem", tags=["solves"], responses=ERRORS)
async def get_solve_problem(solve_id: str, request: Request) -> Response:
    """The problem document of a solve."""
    text = await run_in_threadpool(service_of(request).store.solve_problem, solve_id)
    if text is None:
        raise ApiError(404, "not_found", f"no solve {solve_id}")
    return Response(text, media_type="application/json")


@router.get("/v1/solves/{solve_id}/events", tags=["solves"], responses=ERRORS)
async def solve_events(solve_id: str, request: Request) -> StreamingResponse:
    """Server-sent events: ``status`` first, then ``progress`` reports, ``done`` last."""
    s = service_of(request)
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


@router.delete("/v1/solves/{solve_id}", tags=["solves"], response_model=models.SolveAnswer,
               responses=ERRORS)
async def cancel(solve_id: str, request: Request) -> dict[str, Any]:
    """Cancel a queued or running solve (its worker process is killed and replaced);
    a finished solve is left as it is."""
    s = service_of(request)
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
