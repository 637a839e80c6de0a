"""The HTTP routes of ``optisched serve``, one module per resource (endpoints:
``docs/service.md``).

:mod:`~optisched.service.routes.meta`
    ``/v1/health``, ``/v1/solvers``, ``/v1/schemas/{name}``.
:mod:`~optisched.service.routes.problems`
    ``/v1/validate``, ``/v1/evaluate``.
:mod:`~optisched.service.routes.solves`
    ``/v1/solves`` and ``/v1/solves/{id}`` (plan, problem, events, cancel).
:mod:`~optisched.service.routes.sessions`
    ``/v1/sessions`` and ``/v1/sessions/{id}`` (plan, problem, events, log, delete).
:mod:`~optisched.service.routes.common`
    What they share: the :class:`~optisched.service.routes.common.Service` of the
    handlers, answers with embedded documents, the problem and plan fields.
"""

from __future__ import annotations

from fastapi import APIRouter

from optisched.service.routes import meta, problems, sessions, solves

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (meta.router, problems.router, solves.router, sessions.router)
"""Every router, in the order the application serves (and documents) them."""
