"""Routes about the service itself: health, solvers, document schemas (tag ``service``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request

from optisched.jsondoc import plan_schema, problem_schema
from optisched.service.inputs import ApiError
from optisched.service.routes.common import ERRORS, service_of, version
from optisched.solvers import REGISTRY, default_solver

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/health", tags=["service"])
async def health(request: Request) -> dict[str, Any]:
    """Liveness: workers and queue (no token needed)."""
    s = service_of(request)
    return {"ok": True, "version": version(), "workers": s.pool.size,
            "workers_alive": len(s.pool.pids()), **s.pool.counts()}


@router.get("/v1/solvers", tags=["service"], responses=ERRORS)
async def solvers(request: Request) -> list[dict[str, Any]]:
    """Registered solvers and their options (as ``optisched solvers --json``)."""
    default = default_solver()
    return [{"name": n, "available": spec.available(), "exact": spec.exact,
             "default": n == default, "description": spec.description,
             "options": [asdict(o) for o in spec.options.describe()]}
            for n, spec in REGISTRY.items()]


@router.get("/v1/schemas/{name}", tags=["service"], responses=ERRORS)
async def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of the ``problem`` or the ``plan`` document."""
    if name == "problem":
        return problem_schema()
    if name == "plan":
        return plan_schema()
    raise ApiError(404, "not_found", "schemas: problem, plan")
