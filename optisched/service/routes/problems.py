"""Routes that check documents without keeping them: validate, evaluate (tag ``problems``)."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from optisched.evaluate import evaluate
from optisched.service import models
from optisched.service.inputs import json_object, problem_of_body, request_error
from optisched.service.routes.common import (
    ERRORS,
    body_doc,
    finite,
    plan_field,
    problem_field,
    raw_json,
    service_of,
)

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/validate", tags=["problems"], response_model=models.ValidateAnswer,
             responses=ERRORS, openapi_extra=body_doc(models.SolveRequest,
                                                      ("application/zip",)))
async def validate(request: Request) -> Response:
    """Check a problem document (application/json) or a zipped CSV bundle
    (application/zip): 200 when valid, 422 with every error located (as the CLI's).
    ``?problem=true`` also returns the problem document (a bundle converted)."""
    s = service_of(request)
    body = await request.body()
    problem = await run_in_threadpool(problem_of_body, body,
                                      request.headers.get("content-type", ""),
                                      s.config.state_dir / "tmp", 4 * s.config.max_body_bytes)
    head = {"ok": True, "valid": True, "nodes": len(problem.nodes),
            "jobs": len(problem.jobs), "slots": problem.horizon.slots,
            "slot_minutes": problem.horizon.slot_minutes}
    want = request.query_params.get("problem", "false").lower() in ("1", "true", "yes")
    return raw_json(head, problem=problem.model_dump_json() if want else None)


@router.post("/v1/evaluate", tags=["problems"], response_model=models.EvaluateAnswer,
             responses=ERRORS, openapi_extra=body_doc(models.EvaluateRequest))
async def evaluate_plan(request: Request) -> dict[str, Any]:
    """Check a plan against every constraint and price it (``optisched evaluate``)."""
    data = json_object(await request.body())

    def work() -> dict[str, Any]:
        problem = problem_field(data)
        if "plan" not in data:
            raise request_error("plan", None, "required: the plan document")
        plan = plan_field(problem, data["plan"])
        ev = evaluate(problem, plan)
        claimed = plan.objective
        objective = ev.objective if ev.costs and math.isfinite(ev.objective) else None
        agrees = (claimed is not None and objective is not None
                  and abs(claimed - objective) <= 1e-6 * max(1.0, abs(objective)))
        return {"feasible": ev.feasible, "objective": objective,
                "summary_objective": finite(claimed), "objective_matches_summary": agrees,
                "costs": {k: finite(v) for k, v in ev.costs.items()},
                "violations": [asdict(v) for v in ev.violations],
                "violation_counts": ev.counts}

    return await run_in_threadpool(work)
