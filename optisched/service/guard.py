"""The ASGI guard of ``optisched serve``: bearer tokens (401), body size (413), access log.

Every request except :data:`PUBLIC_PATHS` needs ``Authorization: Bearer TOKEN``
(unless the server runs with ``--no-auth`` on a loopback address); bodies larger
than ``--max-body`` get 413 before they are read. The log line names method, path
(no query), status and milliseconds only: never a token or problem data.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from optisched.service.config import ServiceConfig
from optisched.service.inputs import error_body

__all__ = ["PUBLIC_PATHS", "Guard"]

log = logging.getLogger("optisched.service")

PUBLIC_PATHS = ("/v1/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")
"""Paths served without a token (they hold no data)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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
