"""Request and answer bodies of the HTTP API, as pydantic models (for ``/docs`` and the
OpenAPI document; the handlers read bodies themselves so that every error is located)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from optisched.events import EVENT_KINDS

__all__ = ["Change", "ErrorBody", "EvaluateAnswer", "EvaluateRequest", "EventRecord",
           "EventsRequest", "InputErrorModel", "Progress", "SessionAnswer", "SessionRequest",
           "SolveAccepted", "SolveAnswer", "SolveRequest", "ValidateAnswer"]

_Strict = ConfigDict(extra="forbid")


class InputErrorModel(BaseModel):
    """One located error (the CLI's errors, as JSON)."""

    file: str = Field(description="Bundle file (nodes.csv …), or the list or object of a "
                      "JSON document (problem.nodes, plan.assignments, events, request).")
    row: int | None = Field(description="CSV: row with header = 1 (TOML: line). JSON: the "
                            "0-based position in the list named by file.")
    column: str | None = Field(description="Column, TOML key or the rest of the JSON path.")
    value: str | None = Field(description="The value as written.")
    message: str = Field(description="What is wrong and what is valid.")


class ErrorBody(BaseModel):
    """Every error answer."""

    ok: Literal[False] = False
    error: str = Field(description="invalid_input, unauthorized, too_large, not_found, "
                       "unsupported_media_type, internal …")
    message: str
    errors: list[InputErrorModel] = Field(default_factory=list)
    total_errors: int = 0


class ValidateAnswer(BaseModel):
    """``POST /v1/validate`` of a valid problem."""

    ok: Literal[True] = True
    valid: Literal[True] = True
    nodes: int
    jobs: int
    slots: int
    slot_minutes: int
    problem: dict[str, Any] | None = Field(
        default=None, description="The problem document (with ?problem=true).")


class SolveRequest(BaseModel):
    """``POST /v1/solves`` (JSON; a zipped bundle takes these as query parameters)."""

    model_config = _Strict
    problem: dict[str, Any] = Field(description="Problem.model_dump_json() "
                                    "(docs/schemas/problem.schema.json).")
    solver: str | None = Field(default=None, description="A registered solver (GET "
                               "/v1/solvers); default: the CLI's default (lns).")
    time_limit: float | None = Field(default=None, gt=0, description="Seconds; default "
                                     "--default-time-limit, capped at --max-time-limit.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    mip_gap: float | None = Field(default=None, ge=0, lt=1)
    threads: int | None = Field(default=None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="Solver options (optisched solvers --options).")


class SolveAccepted(BaseModel):
    """``202`` of ``POST /v1/solves``."""

    id: str
    status: str
    url: str
    time_limit: float
    time_limit_capped: bool


class Progress(BaseModel):
    """The best values a solver reported so far."""

    elapsed: float | None = None
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    message: str = ""


class SolveAnswer(BaseModel):
    """``GET /v1/solves/{id}``."""

    id: str
    status: str = Field(description="queued, running, optimal, feasible, infeasible, "
                        "no_solution, error or cancelled.")
    done: bool
    solver: str
    time_limit: float
    time_limit_capped: bool
    created: str
    started: str | None
    finished: str | None
    progress: Progress | None
    message: str
    worker_pid: int | None = None
    plan: dict[str, Any] | None = Field(default=None, description="When done with a plan "
                                        "status: docs/schemas/plan.schema.json.")


class EvaluateRequest(BaseModel):
    """``POST /v1/evaluate``."""

    model_config = _Strict
    problem: dict[str, Any]
    plan: dict[str, Any] = Field(description="A plan document (e.g. the plan of a solve).")


class EvaluateAnswer(BaseModel):
    """The evaluator's verdict (as ``optisched evaluate --json``, violations as objects)."""

    feasible: bool
    objective: float | None
    summary_objective: float | None
    objective_matches_summary: bool
    costs: dict[str, float]
    violations: list[dict[str, Any]]
    violation_counts: dict[str, int]


class SessionRequest(BaseModel):
    """``POST /v1/sessions``."""

    model_config = _Strict
    problem: dict[str, Any] | None = Field(default=None, description="The problem document "
                                           "(or give solve_id).")
    plan: dict[str, Any] | None = Field(default=None, description="The current plan "
                                        "(a plan document); solved in a worker when omitted.")
    solve_id: str | None = Field(default=None, description="Start from the problem and plan "
                                 "of this finished solve instead.")
    solver: str = Field(default="greedy", description="Re-planning solver: greedy "
                        "warm-starts, any other re-solves each update.")
    time_limit: float = Field(default=0.2, ge=0, description="Seconds of search per update.")
    initial_time_limit: float | None = Field(default=None, gt=0, description="Seconds for the "
                                             "first plan when none is given.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    iterations: int | None = Field(default=None, ge=0)


class EventRecord(BaseModel):
    """One event: the columns of the events CSV (docs/events.md); numbers may be JSON numbers."""

    model_config = ConfigDict(extra="allow")
    time: str = Field(description="ISO 8601 with offset, a slot boundary.")
    event: Literal[EVENT_KINDS]  # type: ignore[valid-type]
    job_id: str | None = None
    node_id: str | None = None
    tariff: str | None = None
    value: float | str | None = None
    at: str | None = None
    until: str | None = None
    kind: str | None = None
    release: str | None = None
    deadline: str | None = None
    region: str | None = None
    gpus: float | None = None
    duration_min: float | None = None
    power_kw: float | None = None
    tardiness_per_hour: float | None = None
    drop_penalty: float | None = None
    latency_slo_ms: float | None = None
    latency_per_ms: float | None = None
    min_gpu_mem_gb: float | None = None
    min_trust: float | None = None


class EventsRequest(BaseModel):
    """``POST /v1/sessions/{id}/events`` (JSON; ``text/csv`` takes an events CSV)."""

    events: list[EventRecord]


class Change(BaseModel):
    """One job whose placement changed in an update (the re-planner's change set)."""

    model_config = ConfigDict(extra="allow")
    job_id: str
    kind: str = Field(description="added, moved, dropped, cancelled, finished, ended (and "
                      "the kinds of the re-planner's own change set, docs/service.md).")
    reason: str = ""
    node_before: str | None
    start_before: str | None
    node_after: str | None
    start_after: str | None
    time: str | None = Field(default=None, description="The update's time (when the "
                             "re-planner reports its own change set).")


class SessionAnswer(BaseModel):
    """A session's state (with ``plan`` and, after an update, ``changes``)."""

    id: str
    version: int
    status: str
    objective: float | None
    settings: dict[str, Any]
    horizon: dict[str, Any]
    jobs: int
    nodes: int
    updates: int | None = None
    changes: list[Change] | None = None
    plan: dict[str, Any] | None = None
