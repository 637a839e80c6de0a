"""Exact JSON round trips of a Problem and a Plan (property-based), and the shipped schemas.

A problem's JSON is ``Problem.model_dump_json()``: infinities (a node's default
``gpu_mem_gb`` and ``grid_kw``, unlimited headroom) are the string ``"Infinity"``,
optional fields ``null``, timestamps keep their UTC offset. A plan's JSON is
``Plan.to_json(problem)`` (the plan files of SPEC §4 as one document).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optisched
from optisched.domain import Feeder, Job, Node, NodeSeries, Problem
from optisched.errors import BundleError
from optisched.generate.random_problems import random_problem
from optisched.jsondoc import SCHEMA_FILES, problem_from_json, schema_text, schemas
from optisched.plan import FLOW_NAMES, Plan, Status

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "docs" / "schemas"

offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
finite_or_inf = st.one_of(st.just(math.inf), st.floats(0, 1e6, allow_nan=False))


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    """A random problem of the test generator with drawn edits: infinities and finite
    limits, optional fields set or not, timestamps in other UTC offsets, user columns."""
    p = random_problem(draw(st.integers(0, 10_000)), n_nodes=draw(st.integers(1, 4)),
                       n_jobs=draw(st.integers(0, 6)), slots=draw(st.integers(2, 8)),
                       feeders=draw(st.booleans()), batteries=draw(st.booleans()),
                       sleep=draw(st.booleans()), droppable=draw(st.booleans()))
    tz = draw(offsets)
    hz = p.horizon
    horizon = hz.model_copy(update={"start": hz.start.astimezone(tz)})
    nodes = []
    for n in p.nodes:
        upd: dict[str, Any] = {"gpu_mem_gb": draw(finite_or_inf),
                               "grid_kw": draw(finite_or_inf)}
        if draw(st.booleans()):
            upd["lat"], upd["lon"] = draw(st.floats(-90, 90)), draw(st.floats(-180, 180))
        if draw(st.booleans()):
            upd["extra"] = {"x_rack": draw(st.text(max_size=8))}
        if draw(st.booleans()) and n.battery_kwh > 0:
            upd["charge_kw"] = draw(st.floats(0, 1e3))
        nodes.append(Node.model_validate({**n.model_dump(), **upd}))
    jobs = []
    for j in p.jobs:
        upd = {}
        if j.release is not None:
            upd["release"] = j.release.astimezone(draw(offsets))
        if j.deadline is not None:
            upd["deadline"] = j.deadline.astimezone(draw(offsets))
        if draw(st.booleans()):
            upd["tardiness_per_hour"] = draw(st.floats(0, 1e3))
        if draw(st.booleans()):
            upd["kind"] = draw(st.text(max_size=10))
        jobs.append(Job.model_validate({**j.model_dump(), **upd}))
    series = {}
    for n in nodes:
        if draw(st.booleans()):
            T = hz.slots
            series[n.node_id] = NodeSeries(
                pv_kw=draw(st.lists(st.floats(0, 100), min_size=T, max_size=T)),
                headroom_kw=draw(st.lists(st.one_of(st.none(), finite_or_inf),
                                          min_size=T, max_size=T)),
                available=draw(st.one_of(st.none(), st.lists(st.booleans(), min_size=T,
                                                             max_size=T))))
    feeders = {k: Feeder(headroom_kw=[draw(finite_or_inf) for _ in f.headroom_kw])
               for k, f in p.feeders.items()}
    return Problem(scenario=p.scenario.model_copy(update={"horizon": horizon}), nodes=nodes,
                   jobs=jobs, node_series=series, tariffs=p.tariffs, feeders=feeders,
                   latency_ms=p.latency_ms, regions=p.regions)


def _same_instants_and_offsets(a: Problem, b: Problem) -> None:
    assert a.horizon.start.utcoffset() == b.horizon.start.utcoffset()
    for ja, jb in zip(a.jobs, b.jobs, strict=True):
        for f in ("release", "deadline", "pinned_start"):
            ta, tb = getattr(ja, f), getattr(jb, f)
            assert (ta is None) == (tb is None)
            if ta is not None:
                assert ta == tb and ta.utcoffset() == tb.utcoffset()
                assert ta.isoformat() == tb.isoformat()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_problem_json_round_trip_is_exact(p: Problem) -> None:
    text = p.model_dump_json()
    back = Problem.model_validate_json(text)
    assert back == p
    _same_instants_and_offsets(back, p)
    assert back.model_dump_json() == text  # and again: a fixed point
    assert problem_from_json(text) == p
    assert problem_from_json(json.loads(text)) == p
    json.loads(text)  # strict JSON: no bare Infinity or NaN
    assert "Infinity" not in text.replace('"Infinity"', "")


def test_default_infinities_read_back() -> None:
    # the bug of issue 17: a node's default unlimited gpu_mem_gb and grid_kw became null
    p = random_problem(0)
    assert math.isinf(p.nodes[0].gpu_mem_gb) and math.isinf(p.nodes[0].grid_kw)
    text = p.model_dump_json()
    assert '"gpu_mem_gb":"Infinity"' in text and '"grid_kw":"Infinity"' in text
    back = Problem.model_validate_json(text)
    assert math.isinf(back.nodes[0].gpu_mem_gb) and back == p
    assert p.model_dump()["nodes"][0]["grid_kw"] == math.inf  # Python mode unchanged


def test_problem_json_errors_are_located() -> None:
    doc = json.loads(random_problem(1).model_dump_json())
    doc["nodes"][1]["gpu_mem_gb"] = -1
    doc["jobs"][0]["duration_min"] = "soon"
    with pytest.raises(BundleError) as info:
        problem_from_json(json.dumps(doc))
    where = {(e.file, e.row, e.column) for e in info.value.errors}
    assert where == {("problem.nodes", 1, "gpu_mem_gb"), ("problem.jobs", 0, "duration_min")}
    doc = json.loads(random_problem(1).model_dump_json())
    doc["nodes"][2]["tariff"] = "nope"
    with pytest.raises(BundleError) as info:
        problem_from_json(doc)
    (e,) = info.value.errors
    assert (e.file, e.row, e.column, e.value) == ("problem.nodes", 2, "tariff", "nope")
    assert "unknown tariff" in e.message
    with pytest.raises(BundleError, match="not valid JSON"):
        problem_from_json("{")


def _assert_same_plan(a: Plan, b: Plan) -> None:
    for f in ("solver", "status", "job_ids", "node_ids", "costs", "timings", "message", "info"):
        assert getattr(a, f) == getattr(b, f), f
    for f in ("objective", "bound"):
        x, y = getattr(a, f), getattr(b, f)
        assert (x is None and y is None) or x == y or (math.isnan(x) and math.isnan(y)), f
    assert np.array_equal(a.node, b.node) and np.array_equal(a.start, b.start)
    assert (a.flows is None) == (b.flows is None)
    if a.flows is not None and b.flows is not None:
        assert a.flows.S == b.flows.S
        for fa, fb in zip(a.flows.scenario_flows(), b.flows.scenario_flows(), strict=True):
            for k in ("on", "load", *FLOW_NAMES) if fa is a.flows else FLOW_NAMES:
                v, w = getattr(fa, k), getattr(fb, k)
                assert v.dtype == w.dtype and np.array_equal(v, w), k


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.sampled_from(["baseline", "greedy"]),
       st.dictionaries(st.text(max_size=5),
                       st.one_of(st.integers(), st.floats(allow_nan=False),
                                 st.text().filter(lambda t: t not in ("Infinity", "-Infinity",
                                                                      "NaN")),
                                 st.lists(st.integers(), max_size=3)),
                       max_size=3))
def test_plan_json_round_trip_is_exact(p: Problem, solver: str, info: dict[str, Any]) -> None:
    plan = optisched.solve(p, solver, time_limit=0.2)
    plan.info.update(info)
    text = plan.to_json(p)
    back = Plan.from_json(p, text)
    _assert_same_plan(plan, back)
    assert back.to_json(p) == text
    if plan.status.has_plan:
        assert optisched.evaluate(p, back).feasible


def test_plan_without_solution_keeps_infinite_bound() -> None:
    p = random_problem(2)
    plan = Plan.empty(p, "highs", Status.INFEASIBLE, "job j0 fits nowhere")
    plan.bound = math.inf
    doc = json.loads(plan.to_json(p))
    assert doc["summary"]["bound"] == "Infinity" and doc["node_series"] == []
    assert all(a["status"] == "dropped" for a in doc["assignments"])
    _assert_same_plan(plan, Plan.from_json(p, json.dumps(doc)))


def test_plan_document_has_the_plan_files_columns() -> None:
    p = random_problem(3)
    plan = optisched.solve(p, "baseline")
    doc = plan.to_document(p)
    assert list(doc["assignments"][0]) == ["job_id", "status", "node_id", "start_slot",
                                           "end_slot", "start", "end"]
    assert list(doc["node_series"][0]) == ["node_id", "slot", "time", "on", "load_kw",
                                           "pv_used_kw", "import_kw", "export_kw", "charge_kw",
                                           "discharge_kw", "soc_kwh"]
    assert len(doc["node_series"]) == len(p.nodes) * p.horizon.slots
    summary = plan.summary(p)
    assert set(doc["summary"]) == set(summary)
    assert {k: v for k, v in doc["summary"].items() if k != "timings"} == {
        k: v for k, v in summary.items() if k != "timings"}


def test_plan_document_errors_are_located() -> None:
    p = random_problem(4)
    doc = optisched.solve(p, "baseline").to_document(p)
    doc["assignments"][1]["job_id"] = "ghost"
    doc["node_series"][3]["load_kw"] = "lots"
    with pytest.raises(BundleError) as info:
        Plan.from_json(p, doc)
    (e,) = info.value.errors  # the type error first: records are checked before ids
    assert (e.file, e.row, e.column) == ("plan.node_series", 3, "load_kw")
    doc["node_series"][3]["load_kw"] = 0.0
    with pytest.raises(BundleError) as info:
        Plan.from_json(p, doc)
    where = {(e.file, e.row, e.column) for e in info.value.errors}
    assert ("plan.assignments", 1, "job_id") in where


# ----------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_shipped_schema_is_the_generated_one(name: str) -> None:
    # regenerate with: python -m optisched.jsondoc docs/schemas
    assert (SCHEMAS / name).read_text(encoding="utf-8") == schema_text(schemas()[name])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_documents_match_their_schemas(p: Problem) -> None:
    jsonschema.validate(json.loads(p.model_dump_json()), schemas()["problem.schema.json"])
    plan = optisched.solve(p, "baseline")
    jsonschema.validate(json.loads(plan.to_json(p)), schemas()["plan.schema.json"])


def test_schema_carries_the_limits() -> None:
    node = schemas()["problem.schema.json"]["$defs"]["Node"]["properties"]
    assert node["gpu_mem_gb"]["default"] == "Infinity"
    assert {"const": "Infinity"} in node["gpu_mem_gb"]["anyOf"]
    assert node["soc_min"]["minimum"] == 0 and node["soc_min"]["maximum"] == 1
    bad = json.loads(random_problem(0).model_dump_json())
    bad["nodes"][0]["soc_max"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schemas()["problem.schema.json"])


def test_timestamps_keep_their_offset() -> None:
    p = random_problem(5)
    start = datetime(2026, 6, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    q = p.model_copy(update={"scenario": p.scenario.model_copy(update={
        "horizon": p.horizon.model_copy(update={"start": start})})})
    text = q.model_dump_json()
    assert '"start":"2026-06-01T02:00:00+02:00"' in text
    back = Problem.model_validate_json(text)
    assert back.horizon.start.utcoffset() == timedelta(hours=2)
    assert back.horizon.start == datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
