"""JSON documents of a problem and a plan: reading them with located errors, their JSON Schemas.

The problem document is ``Problem.model_dump_json()`` (:mod:`optisched.domain`), read back
exactly by :func:`problem_from_json`; the plan document is ``Plan.to_json(problem)``
(:class:`optisched.plan.PlanDocument`), read back by ``Plan.from_json``. In both,
numbers that are not finite are the strings ``"Infinity"``, ``"-Infinity"`` and ``"NaN"``
(JSON has no such numbers; only ``+inf`` is valid in a problem, where
``docs/limits.md`` says "or inf": ``gpu_mem_gb``, ``grid_kw`` and the ``headroom_kw``
series), timestamps carry their UTC offset.

Errors name the document's list or object as ``file`` (``problem.nodes``,
``problem.scenario``, ``plan.assignments`` …), the 0-based position in a list as
``row``, the rest of the path as ``column`` (``gpu_mem_gb``, ``horizon.start``,
``n1.pv_kw.5``), the value as JSON text and what is valid.

The JSON Schemas (``docs/schemas/problem.schema.json``, ``plan.schema.json``) are
generated here from the pydantic models, with the numeric limits of
:data:`optisched.limits.LIMITS`; ``python -m optisched.jsondoc [DIR]`` writes them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from optisched.domain import (
    Feeder,
    Horizon,
    Job,
    LatencyOptions,
    Node,
    NodeSeries,
    ObjectiveOptions,
    Problem,
    Region,
    Scenario,
    ScenarioData,
    Tariff,
)
from optisched.errors import BundleError, InputError
from optisched.limits import LIMITS, Limit
from optisched.plan import PlanDocument

__all__ = [
    "SCHEMA_FILES",
    "issue_errors",
    "plan_schema",
    "problem_from_json",
    "problem_schema",
    "schemas",
    "validation_errors",
    "write_schemas",
]

SCHEMA_FILES = {"problem.schema.json": "problem", "plan.schema.json": "plan"}
"""Shipped schema file -> document."""

_TABLES = {"nodes.csv": "nodes", "jobs.csv": "jobs", "node_series.csv": "node_series",
           "prices.csv": "tariffs", "feeders.csv": "feeders", "latency.csv": "latency_ms",
           "regions.csv": "regions"}
"""Bundle file of a :class:`~optisched.domain.Issue` -> key of the problem document."""


def _shown(value: Any) -> str | None:
    """A value as JSON text for an error (None for whole objects and lists)."""
    if isinstance(value, (dict, list)):
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


def validation_errors(exc: ValidationError, name: str) -> list[InputError]:
    """Pydantic errors of a JSON document named ``name`` as located input errors.

    ``loc`` ``("nodes", 3, "gpu_mem_gb")`` becomes file ``{name}.nodes``, row 3, column
    ``gpu_mem_gb``; ``("scenario", "horizon", "start")`` file ``{name}.scenario``, no row,
    column ``horizon.start``.
    """
    out = []
    for e in exc.errors():
        loc = list(e["loc"])
        if e["type"] == "json_invalid":
            out.append(InputError(name, None, None, None,
                                  f"not valid JSON: {e.get('ctx', {}).get('error', e['msg'])}"))
            continue
        file = f"{name}.{loc[0]}" if loc else name
        row = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        rest = loc[2:] if row is not None else loc[1:]
        column = ".".join(str(x) for x in rest) or None
        value = None if e["type"] == "missing" else _shown(e.get("input"))
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "extra_forbidden":
            msg = "unknown key (see docs/schemas/problem.schema.json)"
        out.append(InputError(file, row, column, value, msg))
    return out


def issue_errors(problem: Problem, name: str = "problem") -> list[InputError]:
    """:meth:`Problem.issues` (ids, references, series lengths, resource fit) as located
    errors of the problem document."""
    pos = {"nodes": {n.node_id: i for i, n in enumerate(problem.nodes)},
           "jobs": {j.job_id: i for i, j in enumerate(problem.jobs)}}
    out = []
    for i in problem.issues():
        key = _TABLES.get(i.table, i.table)
        if key in pos:
            out.append(InputError(f"{name}.{key}", pos[key].get(i.key), i.column, i.value,
                                  i.message))
        else:
            out.append(InputError(f"{name}.{key}", None, f"{i.key}.{i.column}", i.value,
                                  i.message))
    return out


def problem_from_json(data: str | bytes | Mapping[str, Any], name: str = "problem") -> Problem:
    """Read a problem document (``Problem.model_dump_json()``, or its parsed form).

    Parameters
    ----------
    data : str, bytes or mapping
        The document.
    name : str
        Its name in error messages (the ``file`` of every error starts with it).

    Returns
    -------
    Problem
        Equal to the problem that wrote the document.

    Raises
    ------
    BundleError
        Every error, located by list or object, position, key and value.
    """
    try:
        if isinstance(data, (str, bytes)):
            return Problem.model_validate_json(data)
        return Problem.model_validate(data)
    except ValidationError as exc:
        details = exc.errors()
        if not all(not e["loc"] and e["type"] == "value_error" for e in details):
            raise BundleError(validation_errors(exc, name)) from None
    # only the cross-reference check failed: every part is valid on its own
    raw = json.loads(data) if isinstance(data, (str, bytes)) else dict(data)
    built = Problem.model_construct(
        scenario=Scenario.model_validate(raw["scenario"]),
        nodes=[Node.model_validate(n) for n in raw["nodes"]],
        jobs=[Job.model_validate(j) for j in raw["jobs"]],
        node_series={k: NodeSeries.model_validate(v)
                     for k, v in raw.get("node_series", {}).items()},
        tariffs={k: Tariff.model_validate(v) for k, v in raw.get("tariffs", {}).items()},
        feeders={k: Feeder.model_validate(v) for k, v in raw.get("feeders", {}).items()},
        latency_ms=dict(raw.get("latency_ms", {})),
        regions={k: Region.model_validate(v) for k, v in raw.get("regions", {}).items()},
        scenarios={k: ScenarioData.model_validate(v)
                   for k, v in raw.get("scenarios", {}).items()},
    )
    raise BundleError(issue_errors(built, name))


# ----------------------------------------------------------------------------- schemas

_MODEL_FILES: dict[str, tuple[str, dict[str, str]]] = {
    "Node": ("nodes.csv", {}),
    "Job": ("jobs.csv", {}),
    "NodeSeries": ("node_series.csv", {}),
    "Tariff": ("prices.csv", {}),
    "Feeder": ("feeders.csv", {}),
    "Region": ("regions.csv", {}),
    "Horizon": ("scenario.toml", {"slots": "horizon.slots"}),
    "ObjectiveOptions": ("scenario.toml",
                         {"carbon_price_per_tonne": "objective.carbon_price_per_tonne",
                          "cvar_alpha": "objective.cvar_alpha",
                          "cvar_weight": "objective.cvar_weight"}),
    "ScenarioData": ("scenarios.csv", {}),
    "LatencyOptions": ("scenario.toml", {"base_ms": "latency.base_ms",
                                         "ms_per_km": "latency.ms_per_km"}),
}
"""Schema definition -> (limits file, field -> limits column where the names differ)."""

_MODELS: tuple[type[BaseModel], ...] = (Node, Job, NodeSeries, Tariff, Feeder, Region, Horizon,
                                        ObjectiveOptions, LatencyOptions, ScenarioData)


def _bounded(node: Any, lim: Limit) -> Any:
    """``node`` (a property schema) with the limit on every number in it."""
    if not isinstance(node, dict):
        return node
    if node.get("type") in ("number", "integer"):
        out = dict(node)
        if lim.lo is not None:
            out["exclusiveMinimum" if lim.lo_open else "minimum"] = lim.lo
        if lim.hi is not None:
            out["maximum"] = lim.hi
        if lim.integer:
            out["type"] = "integer"
        if not lim.inf:
            return out
        notes = {k: out.pop(k) for k in ("title", "description", "default") if k in out}
        return {"anyOf": [out, {"const": "Infinity"}], **notes}
    out = dict(node)
    if "anyOf" in out:
        out["anyOf"] = [_bounded(x, lim) for x in out["anyOf"]]
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _bounded(out[key], lim)
    return out


def _finite_defaults(node: Any) -> Any:
    """Defaults that are infinite as the strings the documents use."""
    if isinstance(node, dict):
        return {k: ("Infinity" if v == float("inf") else "-Infinity")
                if k == "default" and isinstance(v, float) and v in (float("inf"), float("-inf"))
                else _finite_defaults(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_finite_defaults(v) for v in node]
    return node


def problem_schema() -> dict[str, Any]:
    """The JSON Schema of the problem document, with the limits of ``docs/limits.md``."""
    schema = Problem.model_json_schema()
    defs = schema["$defs"]
    for model in _MODELS:
        file, renamed = _MODEL_FILES[model.__name__]
        props = defs[model.__name__]["properties"]
        for field_name in props:
            column = renamed.get(field_name, field_name)
            if field_name == "resources":
                props[field_name] = _bounded(props[field_name], LIMITS[(file, "res_*")])
            elif (file, column) in LIMITS:
                props[field_name] = _bounded(props[field_name], LIMITS[(file, column)])
    props = schema["properties"]
    props["latency_ms"] = _bounded(props["latency_ms"], LIMITS[("latency.csv", "latency_ms")])
    schema = _finite_defaults(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            **{k: v for k, v in schema.items() if k not in ("title", "description")},
            "title": "optisched problem",
            "description": "Problem.model_dump_json() of optisched (docs/service.md). Numbers "
            "that are not finite are the string \"Infinity\" (only where docs/limits.md "
            "allows inf). Generated by `python -m optisched.jsondoc`: do not edit."}


def plan_schema() -> dict[str, Any]:
    """The JSON Schema of the plan document (:class:`~optisched.plan.PlanDocument`)."""
    schema = _finite_defaults(PlanDocument.model_json_schema())
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "optisched plan",
            "description": "Plan.to_json(problem) of optisched: the plan files of SPEC §4 "
            "(docs/contract/plan-files.md) as one document. Generated by "
            "`python -m optisched.jsondoc`: do not edit.",
            **{k: v for k, v in schema.items() if k not in ("title", "description")}}


def schemas() -> dict[str, dict[str, Any]]:
    """Every shipped schema by file name."""
    return {"problem.schema.json": problem_schema(), "plan.schema.json": plan_schema()}


def schema_text(schema: dict[str, Any]) -> str:
    """A schema as the shipped file's text."""
    return json.dumps(schema, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def write_schemas(directory: str | Path) -> list[Path]:
    """Write every schema into ``directory`` (created); returns the files written."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name, schema in schemas().items():
        (d / name).write_text(schema_text(schema), encoding="utf-8")
        out.append(d / name)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m optisched.jsondoc [DIR]``: write the schemas (default ``docs/schemas``)."""
    args = sys.argv[1:] if argv is None else argv
    for path in write_schemas(args[0] if args else "docs/schemas"):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
