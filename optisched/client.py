"""A small client of the optisched HTTP service (``optisched serve``, ``docs/service.md``).

Standard library only (``urllib``): a scheduler can use it without the server's
packages. Problems and plans go over the wire as the JSON documents of
:mod:`optisched.jsondoc` (``Problem.model_dump_json()`` and ``Plan.to_json(problem)``);
anything with a ``model_dump_json`` method, a JSON string or a parsed dict is taken.

Example::

    from optisched.client import Client
    c = Client("http://127.0.0.1:8000", token="...")
    solve = c.solve(problem, solver="greedy", time_limit=5)     # 202: queued
    done = c.wait(solve["id"])                                  # status, progress, plan
    assert c.evaluate(problem, done["plan"])["feasible"]
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["Client", "ServiceError"]


class ServiceError(Exception):
    """An error answer of the service.

    Attributes
    ----------
    status : int
        HTTP status (401, 404, 413, 422 …).
    body : dict
        ``{"ok": false, "error": code, "message": …, "errors": [{file, row, column, value,
        message}, …]}``.
    """

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {body.get('message', body)}")

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The located errors."""
        errors: list[dict[str, Any]] = self.body.get("errors", [])
        return errors


def _document(obj: Any) -> str:
    """A problem or plan as JSON text."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, bytes):
        return obj.decode("utf-8")
    if hasattr(obj, "model_dump_json"):
        return str(obj.model_dump_json())
    return json.dumps(obj, allow_nan=False)


class Client:
    """Calls of the optisched HTTP API.

    Parameters
    ----------
    base_url : str
        E.g. ``http://127.0.0.1:8000``.
    token : str, optional
        Bearer token (not needed with ``--no-auth``).
    timeout : float
        Seconds per request.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # ------------------------------------------------------------------ plumbing
    def request(self, method: str, path: str, body: bytes | str | None = None,
                content_type: str = "application/json", query: Mapping[str, Any] | None = None
                ) -> tuple[int, Any]:
        """One request; returns (status, parsed JSON).

        Raises
        ------
        ServiceError
            For any status of 400 and above.
        """
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items()
                                                 if v is not None})
        data = body.encode("utf-8") if isinstance(body, str) else body
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = {"ok": False, "error": "http", "message": raw.decode("utf-8", "replace")}
            raise ServiceError(exc.code, parsed if isinstance(parsed, dict)
                               else {"message": str(parsed)}) from None

    def _json(self, method: str, path: str, body: str | None = None, **query: Any) -> Any:
        return self.request(method, path, body, query=query or None)[1]

    # ------------------------------------------------------------------ service
    def health(self) -> dict[str, Any]:
        """``GET /v1/health``."""
        result: dict[str, Any] = self._json("GET", "/v1/health")
        return result

    def solvers(self) -> list[dict[str, Any]]:
        """``GET /v1/solvers``."""
        result: list[dict[str, Any]] = self._json("GET", "/v1/solvers")
        return result

    def validate(self, problem: Any = None, *, bundle_zip: bytes | None = None,
                 with_problem: bool = False) -> dict[str, Any]:
        """``POST /v1/validate`` of a problem document or a zipped bundle."""
        query = {"problem": "true"} if with_problem else None
        if bundle_zip is not None:
            return dict(self.request("POST", "/v1/validate", bundle_zip, "application/zip",
                                     query)[1])
        return dict(self.request("POST", "/v1/validate", _document(problem), query=query)[1])

    def evaluate(self, problem: Any, plan: Any) -> dict[str, Any]:
        """``POST /v1/evaluate``: feasibility, violations and cost terms of a plan."""
        body = f'{{"problem":{_document(problem)},"plan":{_document(plan)}}}'
        return dict(self._json("POST", "/v1/evaluate", body))

    # ------------------------------------------------------------------ solves
    def solve(self, problem: Any, solver: str | None = None, time_limit: float | None = None,
              **fields: Any) -> dict[str, Any]:
        """``POST /v1/solves``: queue a solve (``seed``, ``mip_gap``, ``threads``,
        ``options`` as keywords); returns ``{"id", "status", "url", "time_limit", …}``."""
        head = {k: v for k, v in {"solver": solver, "time_limit": time_limit, **fields}.items()
                if v is not None}
        body = json.dumps(head)[:-1] + ("," if head else "") + f'"problem":{_document(problem)}}}'
        return dict(self._json("POST", "/v1/solves", body))

    def solve_zip(self, bundle_zip: bytes, **query: Any) -> dict[str, Any]:
        """``POST /v1/solves`` of a zipped bundle (options as query parameters)."""
        return dict(self.request("POST", "/v1/solves", bundle_zip, "application/zip",
                                 query)[1])

    def get_solve(self, solve_id: str, plan: bool = True) -> dict[str, Any]:
        """``GET /v1/solves/{id}``."""
        return dict(self._json("GET", f"/v1/solves/{solve_id}",
                               plan=None if plan else "false"))

    def solve_plan(self, solve_id: str) -> dict[str, Any]:
        """``GET /v1/solves/{id}/plan``: the plan document."""
        return dict(self._json("GET", f"/v1/solves/{solve_id}/plan"))

    def solve_problem(self, solve_id: str) -> dict[str, Any]:
        """``GET /v1/solves/{id}/problem``: the problem document."""
        return dict(self._json("GET", f"/v1/solves/{solve_id}/problem"))

    def session_from_solve(self, solve_id: str, **settings: Any) -> dict[str, Any]:
        """``POST /v1/sessions`` from a finished solve's problem and plan."""
        detail = settings.pop("detail", "full")
        body = json.dumps({"solve_id": solve_id, **settings})
        return dict(self._json("POST", "/v1/sessions", body, plan=detail))

    def solves(self) -> list[dict[str, Any]]:
        """``GET /v1/solves``."""
        return list(self._json("GET", "/v1/solves")["solves"])

    def wait(self, solve_id: str, timeout: float = 300.0, poll: float = 0.2) -> dict[str, Any]:
        """Poll until the solve is done; returns its final state with the plan.

        Raises
        ------
        TimeoutError
            Not done within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            state = self.get_solve(solve_id, plan=False)
            if state["done"]:
                return self.get_solve(solve_id)
            if time.monotonic() > deadline:
                raise TimeoutError(f"solve {solve_id} not done after {timeout} s "
                                   f"(status {state['status']})")
            time.sleep(poll)

    def cancel(self, solve_id: str) -> dict[str, Any]:
        """``DELETE /v1/solves/{id}``."""
        return dict(self._json("DELETE", f"/v1/solves/{solve_id}"))

    def events(self, solve_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``GET /v1/solves/{id}/events``: (event, data) pairs until ``done``."""
        req = urllib.request.Request(f"{self.base_url}/v1/solves/{solve_id}/events")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise ServiceError(exc.code, json.loads(exc.read() or b"{}")) from None
        with resp:
            event, data = "message", []
            for raw in resp:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith(":"):
                    continue
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    yield event, json.loads("\n".join(data))
                    if event == "done":
                        return
                    event, data = "message", []

    # ------------------------------------------------------------------ sessions
    def create_session(self, problem: Any, plan: Any = None, *, solver: str = "greedy",
                       time_limit: float = 0.2, seed: int = 0, iterations: int | None = None,
                       initial_time_limit: float | None = None, detail: str = "full"
                       ) -> dict[str, Any]:
        """``POST /v1/sessions``; ``detail`` (full, assignments, none): how much plan."""
        head = {"solver": solver, "time_limit": time_limit, "seed": seed,
                "iterations": iterations, "initial_time_limit": initial_time_limit}
        body = json.dumps({k: v for k, v in head.items() if v is not None})[:-1]
        body += f',"problem":{_document(problem)}'
        if plan is not None:
            body += f',"plan":{_document(plan)}'
        return dict(self._json("POST", "/v1/sessions", body + "}", plan=detail))

    def session(self, session_id: str) -> dict[str, Any]:
        """``GET /v1/sessions/{id}``."""
        return dict(self._json("GET", f"/v1/sessions/{session_id}"))

    def session_plan(self, session_id: str, detail: str = "full") -> dict[str, Any]:
        """``GET /v1/sessions/{id}/plan``."""
        return dict(self._json("GET", f"/v1/sessions/{session_id}/plan", plan=detail))

    def session_problem(self, session_id: str) -> dict[str, Any]:
        """``GET /v1/sessions/{id}/problem``: the current (rolled) problem document."""
        return dict(self._json("GET", f"/v1/sessions/{session_id}/problem"))

    def send_events(self, session_id: str, events: Sequence[Mapping[str, Any]] | str,
                    detail: str = "full") -> dict[str, Any]:
        """``POST /v1/sessions/{id}/events``: records (the events-CSV columns) or CSV text."""
        path = f"/v1/sessions/{session_id}/events"
        if isinstance(events, str):
            return dict(self.request("POST", path, events, "text/csv", {"plan": detail})[1])
        return dict(self._json("POST", path, json.dumps({"events": list(events)}),
                               plan=detail))

    def session_log(self, session_id: str) -> list[dict[str, Any]]:
        """``GET /v1/sessions/{id}/events``: the event log."""
        return list(self._json("GET", f"/v1/sessions/{session_id}/events")["events"])

    def delete_session(self, session_id: str) -> dict[str, Any]:
        """``DELETE /v1/sessions/{id}``."""
        return dict(self._json("DELETE", f"/v1/sessions/{session_id}"))
