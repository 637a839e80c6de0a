"""optisched as an HTTP/JSON service (``optisched serve``; guide: ``docs/service.md``).

- :mod:`~optisched.service.app`: the FastAPI application (lifespan, errors, OpenAPI);
- :mod:`~optisched.service.routes`: the routes, one module per resource (validate and
  evaluate, solves, sessions, the service's own);
- :mod:`~optisched.service.guard`: bearer tokens, body size limit, access log;
- :mod:`~optisched.service.pool`, :mod:`~optisched.service.worker`: solver processes;
- :mod:`~optisched.service.solves`: solves, queued and persisted;
- :mod:`~optisched.service.sessions`: re-planning sessions, persisted;
- :mod:`~optisched.service.store`: the SQLite state file;
- :mod:`~optisched.service.server`: running it on uvicorn.

Needs the ``service`` extra (``pip install "optisched[service]"``: fastapi, uvicorn).
"""

from __future__ import annotations

from optisched.service.config import ConfigError, ServiceConfig

__all__ = ["ConfigError", "ServiceConfig"]
