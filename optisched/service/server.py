"""Running the service on uvicorn: ``optisched serve`` calls :func:`serve`."""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn

from optisched.service.app import create_app
from optisched.service.config import ServiceConfig

__all__ = ["serve"]


class _OnlyService(logging.Filter):
    """Pass the service's own records and uvicorn's start/stop lines, nothing else
    (a library's message could quote problem data)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("optisched.service") or record.name == "uvicorn.error"


def _logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_OnlyService())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())


def serve(config: ServiceConfig, log_level: str = "info") -> None:
    """Serve until SIGINT or SIGTERM, then stop the worker processes.

    A ``port`` of 0 takes a free port; the line ``optisched serve: listening on
    http://HOST:PORT`` on standard error names it.

    Raises
    ------
    ConfigError
        Settings the server refuses (no token, ``--no-auth`` off loopback …).
    """
    config.check()
    _logging(log_level)
    app = create_app(config)
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    port = sock.getsockname()[1]
    ucfg = uvicorn.Config(app, log_config=None, access_log=False, log_level=log_level,
                          lifespan="on", timeout_graceful_shutdown=5, server_header=False)
    server = uvicorn.Server(ucfg)
    host = f"[{config.host}]" if ":" in config.host else config.host
    sys.stderr.write(f"optisched serve: listening on http://{host}:{port} "
                     f"({config.workers} worker(s), state {config.state_dir}, "
                     f"auth {'on' if config.auth else 'off'})\n")
    sys.stderr.flush()
    server.run(sockets=[sock])
