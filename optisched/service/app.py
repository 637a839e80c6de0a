"""The FastAPI application of ``optisched serve`` (endpoints: ``docs/service.md``).

Every request except ``/v1/health``, ``/docs`` and ``/openapi.json`` needs
``Authorization: Bearer TOKEN`` (unless the server runs with ``--no-auth`` on a
loopback address); bodies larger than ``--max-body`` get 413 before they are read
(:class:`~optisched.service.guard.Guard`). The routes live in
:mod:`optisched.service.routes`, one module per resource. Solves run in the worker
pool (:mod:`optisched.service.pool`); sessions are updated in the server's threads,
one update of a session at a time. Logs name methods, paths, statuses and ids only:
never a token or problem data.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from optisched.service import models
from optisched.service.config import ServiceConfig
from optisched.service.guard import PUBLIC_PATHS, Guard
from optisched.service.inputs import ApiError, error_body
from optisched.service.pool import WorkerPool
from optisched.service.routes import ROUTERS
from optisched.service.routes.common import Service, version
from optisched.service.sessions import SessionManager
from optisched.service.solves import SolveManager
from optisched.service.store import Store

__all__ = ["PUBLIC_PATHS", "Service", "create_app"]

log = logging.getLogger("optisched.service")


def create_app(config: ServiceConfig) -> FastAPI:
    """The application: routes, the guard middleware, a lifespan that starts and stops
    the store, the worker pool and the managers."""
    config.check()
    app = FastAPI(title="optisched", version=version(), lifespan=_lifespan(config),
                  description="Plans where and when AI jobs run on small, locally powered "
                  "compute nodes. Every endpoint but /v1/health needs `Authorization: Bearer "
                  "TOKEN`. Documents: docs/schemas/problem.schema.json and plan.schema.json; "
                  "guide: docs/service.md.")
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal)
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(Guard, config=config)
    return app


def _lifespan(config: ServiceConfig) -> Any:
    """The lifespan: the store, the worker pool and the managers, up and down."""

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

    return lifespan


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
    log.error("internal error %s at %s in %s %s", type(exc).__name__, where,
              request.method, request.url.path)  # no message: it may hold data
    return JSONResponse(error_body("internal", f"internal error ({type(exc).__name__}); "
                                   "please report it"), status_code=500)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, built once: the request models of the handlers that read
    their body themselves, and the bearer scheme."""
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
