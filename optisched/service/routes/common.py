"""What the route modules share: the :class:`Service` of the handlers, answers, fields.

The handlers reach the store, the worker pool and the managers through
``request.app.state.service`` (:func:`service_of`); documents already serialized
are embedded in an answer without re-parsing (:func:`raw_json`); the ``problem``
and ``plan`` fields of a body are read with located errors (:func:`problem_field`,
:func:`plan_field`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from optisched.domain import Problem
from optisched.errors import BundleError
from optisched.jsondoc import problem_from_json
from optisched.plan import Plan
from optisched.service import models
from optisched.service.config import ServiceConfig
from optisched.service.inputs import ApiError, request_error
from optisched.service.pool import WorkerPool
from optisched.service.sessions import SessionManager
from optisched.service.solves import SolveManager
from optisched.service.store import Store

__all__ = ["ERRORS", "Service", "body_doc", "finite", "plan_field", "problem_field", "raw_json",
           "service_of", "version"]


@dataclass
class Service:
    """What the handlers share (``app.state.service``)."""

    config: ServiceConfig
    store: Store
    pool: WorkerPool
    solves: SolveManager
    sessions: SessionManager


def service_of(request: Request) -> Service:
    """The :class:`Service` of the application serving ``request``."""
    s: Service = request.app.state.service
    return s


def raw_json(head: dict[str, Any], **embedded: str | None) -> Response:
    """A JSON answer with already serialized documents embedded (no re-parsing)."""
    text = json.dumps(head, allow_nan=False, separators=(",", ":"))
    extra = "".join(f',"{k}":{v}' for k, v in embedded.items() if v is not None)
    return Response(text[:-1] + extra + "}" if extra else text, media_type="application/json")


def finite(v: float | None) -> float | None:
    """``v`` as a float, or None when it is None, infinite or NaN (JSON has neither)."""
    return None if v is None or not math.isfinite(v) else float(v)


def body_doc(model: type[Any], extra_types: tuple[str, ...] = ()) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of a handler that reads its body itself."""
    content: dict[str, Any] = {"application/json": {"schema": {
        "$ref": f"#/components/schemas/{model.__name__}"}}}
    for t in extra_types:
        content[t] = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": True, "content": content}}


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or a wrong bearer token", "model": models.ErrorBody},
    413: {"description": "Body larger than --max-body", "model": models.ErrorBody},
    422: {"description": "Invalid input, every error located", "model": models.ErrorBody},
}
"""The error answers every guarded endpoint documents."""


def problem_field(data: dict[str, Any], key: str = "problem") -> Problem:
    """The problem document ``data[key]``, read (422 with every error located)."""
    if key not in data:
        raise request_error(key, None, f"required: the {key} document")
    if not isinstance(data[key], dict):
        raise request_error(key, None, "expected a JSON object")
    try:
        return problem_from_json(data[key], name=key)
    except BundleError as exc:
        raise ApiError.invalid(exc, key) from None


def plan_field(problem: Problem, doc: Any, key: str = "plan") -> Plan:
    """The plan document ``doc`` of ``problem``, read (422 with every error located)."""
    if not isinstance(doc, dict):
        raise request_error(key, None, "expected a plan document (a JSON object)")
    try:
        return Plan.from_json(problem, doc, name=key)
    except BundleError as exc:
        raise ApiError.invalid(exc, key) from None


def version() -> str:
    """The installed optisched version ("0" when it is not installed)."""
    try:
        return metadata.version("optisched")
    except metadata.PackageNotFoundError:  # pragma: no cover - not installed
        return "0"
