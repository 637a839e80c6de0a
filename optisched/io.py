"""Read and write input bundles (SPEC §1).

:func:`read_bundle` collects every error it finds (capped at
:data:`~optisched.errors.MAX_ERRORS`), each naming file, row (header = row 1),
column, the value as written and what would be valid, and raises one
:class:`~optisched.errors.BundleError`. A root cause is reported once: a row
that failed is left out but its id stays known to the other files, a table that
could not be read is not cross-checked, and no check runs on values already
reported. Numeric values must lie within the documented limits of
:mod:`optisched.limits` (``docs/limits.md``). :func:`write_bundle` writes a
bundle that reads back to an equal :class:`~optisched.domain.Problem`.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import ValidationError

from optisched.atomic import write_dir_atomically
from optisched.cells import (
    TIMESTAMP_EXAMPLE,
    ErrorList,
    bools,
    check_columns,
    ids,
    numbers,
    parse_timestamp,
    read_csv_frame,
    read_text,
    strs,
    timestamps,
)
from optisched.domain import (
    Feeder,
    Horizon,
    Job,
    Node,
    NodeSeries,
    Problem,
    References,
    Region,
    RuleBreak,
    Scenario,
    ScenarioData,
    Tariff,
    battery_rule_breaks,
    job_rule_breaks,
)
from optisched.limits import limit

__all__ = ["BEYOND_SPEC_FILES", "BUNDLE_FILES", "COLUMNS", "PARQUET_TABLES", "SCENARIO_KEYS",
           "USER_PREFIXES", "cell_text", "read_bundle", "write_bundle"]

BUNDLE_FILES = (
    "scenario.toml", "nodes.csv", "jobs.csv", "node_series.csv", "prices.csv", "feeders.csv",
    "latency.csv", "regions.csv", "scenarios.csv",
)
BEYOND_SPEC_FILES = ("scenarios.csv",)
"""Bundle files SPEC v1 does not have (deliberate extensions, ``docs/contract/input.md``)."""
_REQUIRED = ("scenario.toml", "nodes.csv", "jobs.csv")
PARQUET_TABLES = ("node_series", "jobs")
"""Tables that may come as ``<table>.parquet`` instead of ``<table>.csv`` (*beyond SPEC v1*,
``docs/contract/input.md``): the same columns, typed, read through ``pyarrow``."""

# column: default (empty cell) or required; the valid values are in optisched.limits
_NODE_FLOATS: dict[str, dict[str, Any]] = {
    "lat": {"default": None},
    "lon": {"default": None},
    "gpus": {"required": True},
    "gpu_mem_gb": {"default": math.inf},
    "trust": {"default": 0.0},
    "speed": {"default": 1.0},
    "power_factor": {"default": 1.0},
    "idle_kw": {"default": 0.0},
    "startup_cost": {"default": 0.0},
    "shutdown_cost": {"default": 0.0},
    "grid_kw": {"default": math.inf},
    "export_kw": {"default": 0.0},
    "battery_kwh": {"default": 0.0},
    "soc_init": {"default": 0.5},
    "soc_min": {"default": 0.0},
    "soc_max": {"default": 1.0},
    "charge_kw": {"default": None},
    "discharge_kw": {"default": None},
    "eff_charge": {"default": 0.95},
    "eff_discharge": {"default": 0.95},
    "degradation_per_kwh": {"default": 0.0},
    "demand_charge_per_kw": {"default": 0.0},
}
_NODE_BOOLS = {"can_sleep": False, "initially_on": True, "end_off": False}
_NODE_STRS = {"kind": "", "region": "", "tariff": "default", "feeder": None}

_JOB_FLOATS: dict[str, dict[str, Any]] = {
    "gpus": {"required": True},
    "duration_min": {"required": True},
    "power_kw": {"required": True},
    "tardiness_per_hour": {"default": None},
    "drop_penalty": {"default": None},
    "latency_slo_ms": {"default": None},
    "latency_per_ms": {"default": None},
    "min_gpu_mem_gb": {"default": 0.0},
    "min_trust": {"default": 0.0},
}
_JOB_TIMES = ("release", "deadline", "pinned_start")
_JOB_STRS = {"kind": "", "region": None, "pinned_node": None}

COLUMNS: dict[str, tuple[str, ...]] = {
    "nodes.csv": ("node_id", *_NODE_FLOATS, *_NODE_BOOLS, *_NODE_STRS),
    "jobs.csv": ("job_id", *_JOB_FLOATS, *_JOB_TIMES, *_JOB_STRS),
    "node_series.csv": ("time", "node_id", "scenario", "pv_kw", "headroom_kw", "available"),
    "prices.csv": ("time", "tariff", "scenario", "price", "export_price", "carbon_g_per_kwh"),
    "feeders.csv": ("time", "feeder", "scenario", "headroom_kw"),
    "latency.csv": ("node_id", "region", "latency_ms"),
    "regions.csv": ("region", "lat", "lon"),
    "scenarios.csv": ("scenario", "weight"),
}
"""Column names :func:`read_bundle` accepts in each CSV file (``docs/contract/input.md``)."""
USER_PREFIXES: dict[str, tuple[str, ...]] = {
    f: ("x_", "res_") if f in ("nodes.csv", "jobs.csv") else ("x_",) for f in COLUMNS
}
"""Prefixes of further accepted columns: ``x_`` user data everywhere, ``res_`` resources."""
SCENARIO_KEYS: dict[str, tuple[str, ...]] = {
    "horizon": ("start", "slot_minutes", "slots"),
    "objective": ("carbon_price_per_tonne", "cvar_alpha", "cvar_weight"),
    "battery": ("terminal",), "latency": ("base_ms", "ms_per_km"),
}
"""Sections of ``scenario.toml`` and the keys each accepts."""
_START_EXAMPLE = 'start = "2026-06-01T00:00:00+00:00"'


@dataclass
class _Bundle:
    """What the readers of one bundle share: errors, tables, and ids by file.

    ``ids[file]`` holds the ids of *every* row of a table that could be read,
    including rows that failed (they stay known to the other files); a file
    missing from ``ids`` could not be read, so references to it are not checked.
    """

    root: Path
    errs: ErrorList
    frames: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    ids: dict[str, set[str]] = field(default_factory=dict)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)

    def cell(self, file: str, row: int | None, column: str) -> str | None:
        """The cell as written, or None."""
        df = self.frames.get(file)
        if df is None or row is None or column not in df.columns or row not in df.index:
            return None
        return str(df.at[row, column])


# ----------------------------------------------------------------------------- scenario


def _toml_keys(text: str) -> dict[str, tuple[int, str]]:
    """``section.key`` (or a top-level key) -> (line, value as written), for messages."""
    out: dict[str, tuple[int, str]] = {}
    section = ""
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        head = re.fullmatch(r"\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?", stripped)
        if head:
            section = head.group(1)
            out.setdefault(section, (line_no, stripped))
            continue
        kv = re.fullmatch(r"([A-Za-z0-9_-]+)\s*=\s*(.*)", stripped)
        if kv:
            raw = kv.group(2)
            if raw[:1] in "\"'":
                end = raw.find(raw[0], 1)
                raw = raw[: end + 1] if end > 0 else raw
            else:
                raw = raw.split("#", 1)[0].strip()
            out.setdefault(f"{section}.{kv.group(1)}" if section else kv.group(1), (line_no, raw))
    return out


def _read_scenario(path: Path, errs: ErrorList) -> Scenario | None:
    name = "scenario.toml"
    text = read_text(path, name, errs, required=True)
    if text is None:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        errs.add(name, None, None, None, f"not valid TOML: {exc}")
        return None
    where = _toml_keys(text)

    def add(key: str, msg: str, value: Any = None) -> None:
        line, raw = where.get(key, (None, None))
        errs.add(name, line, key, raw if raw is not None else value, msg)

    if not _scenario_shape_ok(data, add):
        return None
    start = _scenario_start(data["horizon"]["start"])
    if isinstance(start, str):
        add("horizon.start", start)
        return None
    data = {**data, "horizon": {**data["horizon"], "start": start}}
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        for e in exc.errors():
            key = ".".join(str(x) for x in e["loc"])
            add(key, str(e["msg"]).removeprefix("Value error, "), e.get("input"))
        return None


def _scenario_shape_ok(data: dict[str, Any], add: Callable[..., None]) -> bool:
    """Known sections that are tables, known keys, and a horizon start."""
    ok = True
    for section, body in data.items():
        if section not in SCENARIO_KEYS:
            add(section, f"unknown section; valid: {', '.join(sorted(SCENARIO_KEYS))}", section)
            ok = False
        elif not isinstance(body, dict):
            add(section, f"must be a [{section}] table, e.g. [{section}] on its own line "
                "followed by key = value lines", body)
            ok = False
        else:
            for key in body:
                if key not in SCENARIO_KEYS[section]:
                    add(f"{section}.{key}", "unknown key; valid: "
                        + ", ".join(sorted(SCENARIO_KEYS[section])), body[key])
                    ok = False
    if ok and "start" not in data.get("horizon", {}):
        add("horizon" if "horizon" in data else "horizon.start",
            f"horizon.start is required, e.g. [horizon] {_START_EXAMPLE}")
        ok = False
    return ok


def _scenario_start(v: Any) -> datetime | str:
    """The horizon start as an aware datetime, or a message saying what is wrong."""
    if isinstance(v, datetime):
        return v if v.utcoffset() is not None else (
            f"needs a UTC offset (Z or ±HH:MM), e.g. {_START_EXAMPLE}")
    if isinstance(v, date):
        return f"a date without a time of day; expected e.g. {_START_EXAMPLE}"
    if isinstance(v, time):
        return f"a time without a date; expected e.g. {_START_EXAMPLE}"
    if not isinstance(v, str):
        return f"must be a timestamp string, e.g. {_START_EXAMPLE}"
    try:
        return parse_timestamp(v)
    except ValueError as exc:
        return str(exc)


# ----------------------------------------------------------------------------- read


def read_bundle(path: str | os.PathLike[str]) -> Problem:
    """Read an input bundle directory into a :class:`Problem`.

    Parameters
    ----------
    path : path
        Bundle directory (SPEC §1).

    Returns
    -------
    Problem
        The validated problem.

    Raises
    ------
    BundleError
        Every error found (capped), each with file, row, column, the value as
        written and what is valid; each root cause once.
    """
    b = _Bundle(Path(path), ErrorList())
    errs = b.errs
    if not b.root.is_dir():
        what = "is not a directory" if b.root.exists() else "not found"
        errs.add(str(b.root), None, None, None, f"bundle directory {what}")
        errs.raise_if_any()
    scenario = _read_scenario(b.root / "scenario.toml", errs)
    parquet = {f"{t}.csv": f"{t}.parquet" for t in PARQUET_TABLES
               if (b.root / f"{t}.parquet").exists()}
    for f in BUNDLE_FILES:
        if f in parquet:
            b.frames[f] = _read_parquet_frame(b.root, f, parquet[f], errs)
        elif f.endswith(".csv"):
            b.frames[f] = read_csv_frame(b.root / f, f, errs, f in _REQUIRED)
    nodes = _read_nodes(b)
    jobs = _read_jobs(b)
    weights = _read_scenarios(b)
    if scenario is None:
        errs.raise_if_any()
        raise AssertionError("unreachable")  # pragma: no cover
    hz = scenario.horizon
    series, series_s = _read_node_series(b, hz)
    tariffs, tariffs_s = _read_prices(b, hz)
    feeders, feeders_s = _read_feeders(b, hz)
    scenarios = {sid: ScenarioData.model_construct(
        weight=w, node_series=None if series_s is None else series_s.get(sid),
        tariffs=None if tariffs_s is None else tariffs_s.get(sid),
        feeders=None if feeders_s is None else feeders_s.get(sid)) for sid, w in weights.items()}
    problem = Problem.model_construct(
        scenario=scenario, nodes=nodes, jobs=jobs, node_series=series, tariffs=tariffs,
        feeders=feeders, latency_ms=_read_latency(b), regions=_read_regions(b),
        scenarios=scenarios,
    )
    _cross_check(b, problem)
    for csv_name, pq_name in parquet.items():  # errors name the file that was read
        errs.items = [dataclasses.replace(e, file=pq_name) if e.file == csv_name else e
                      for e in errs.items]
    errs.raise_if_any()
    return problem


def _read_parquet_frame(root: Path, csv_name: str, name: str, errs: ErrorList
                        ) -> pd.DataFrame | None:
    """A Parquet table as the frame :func:`~optisched.cells.read_csv_frame` gives for its
    CSV twin: every cell as text (empty = default), rows numbered from 2 as if a header
    were row 1, so every rule and message of the CSV reader applies unchanged.

    Numbers are written at full precision (``repr``), timestamps in ISO 8601 with their
    offset (a timestamp column without a time zone is an error), booleans as
    ``true``/``false``, nulls as empty cells. Both ``<table>.csv`` and ``<table>.parquet``
    in one bundle is an error.
    """
    if (root / csv_name).exists():
        errs.add(name, None, None, None, f"the bundle has both {csv_name} and {name}; "
                 "keep one of them")
        return None
    try:
        import pyarrow.parquet as pq  # optional: only bundles with Parquet tables need it
    except ImportError:
        errs.add(name, None, None, None, "reading Parquet needs pyarrow: "
                 'pip install "optisched[parquet]"')
        return None
    try:
        table = pq.read_table(root / name)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        errs.add(name, None, None, None, f"not a readable Parquet file: {exc}")
        return None
    cols: dict[str, list[str]] = {}
    for field_ in table.schema:
        col = table.column(field_.name).to_pandas()
        typ = str(field_.type)
        if typ.startswith("timestamp"):
            if getattr(field_.type, "tz", None) is None:
                errs.add(name, 1, field_.name, typ, "timestamps need a time zone (UTC "
                         "offset); write them timezone-aware")
                return None
            cols[field_.name] = [_iso(v) for v in col]
        else:
            cols[field_.name] = [_parquet_cell(v) for v in col]
    df = pd.DataFrame(cols, dtype=object)
    df.index = pd.Index(np.arange(2, len(df) + 2), dtype=np.int64)
    return df


def _iso(v: Any) -> str:
    if v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(pd.Timestamp(v).isoformat())


def _parquet_cell(v: Any) -> str:
    if v is None or v is pd.NA:
        return ""
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, float | np.floating):
        f = float(v)
        if math.isnan(f):
            return ""
        return "inf" if f == math.inf else "-inf" if f == -math.inf else repr(f)
    return str(v).strip()


def _cross_check(b: _Bundle, problem: Problem) -> None:
    """References between files, checked against every row that was read (see
    :class:`~optisched.domain.References`); ids already reported are skipped."""
    refs = References(
        nodes=b.ids.get("nodes.csv"),
        tariffs=b.ids.get("prices.csv") if (b.root / "prices.csv").exists() else None,
        feeders=(b.ids.get("feeders.csv") if (b.root / "feeders.csv").exists() else set()),
        capacity=("nodes.csv" in b.ids and b.errs.count("nodes.csv") == 0),
    )
    id_columns = {("nodes.csv", "node_id"), ("jobs.csv", "job_id")}  # checked with rows above
    for issue in problem.issues(refs):
        if (issue.table, issue.column) in id_columns:
            continue
        if issue.table == "scenarios.csv" and b.errs.count("scenarios.csv"):
            continue  # a weight that failed makes the sum meaningless
        if issue.column == "scenario" and b.errs.count(issue.table):
            continue  # rows left out after an error: "no rows" would be a cascade
        if issue.scenario is not None and issue.table == "nodes.csv" and b.errs.count(
                "prices.csv" if issue.column == "tariff" else "feeders.csv"):
            continue  # the scenario's tariff or feeder was left out after an error
        row = b.rows.get(issue.table, {}).get(issue.key)
        value = b.cell(issue.table, row, issue.column)
        b.errs.add(issue.table, row, issue.column, issue.value if value is None else value,
                   issue.message)


def _report_breaks(df: pd.DataFrame, name: str, row: int, breaks: list[RuleBreak],
                   errs: ErrorList) -> None:
    """Errors for rules between columns, with every value as written."""

    def shown(c: str) -> str:
        v = str(df.at[row, c]) if c in df.columns else ""
        return f"{c} {v!r}" if v else f"{c} empty (default)"

    for br in breaks:
        value = str(df.at[row, br.column]) if br.column in df.columns else ""
        extra = f" ({', '.join(shown(c) for c in br.related)})" if br.related else ""
        errs.add(name, row, br.column, value, br.message + extra)


def _row_models(df: pd.DataFrame, name: str, build: Callable[..., Any],
                records: list[tuple[int, dict[str, Any]]], errs: ErrorList) -> list[Any]:
    """Build one model per row; a rule the readers did not check is still located."""
    out = []
    for row, rec in records:
        try:
            out.append(build(**rec))
        except ValidationError as exc:
            for e in exc.errors():
                loc = [str(x) for x in e["loc"]]
                column = (f"res_{loc[1]}" if loc[:1] == ["resources"] and len(loc) > 1
                          else loc[0] if loc else None)
                value = (str(df.at[row, column]) if column in df.columns else None)
                errs.add(name, row, column, value, str(e["msg"]).removeprefix("Value error, "))
    return out


def _extras(df: pd.DataFrame, k: int) -> dict[str, str]:
    return {c: str(df[c].iloc[k]) for c in df.columns if c.startswith("x_")}


def _resources(df: pd.DataFrame, name: str, errs: ErrorList) -> dict[str, list[float | None]]:
    return {c[4:]: numbers(df, name, c, errs, limit(name, c), default=0.0)
            for c in df.columns if c.startswith("res_")}


def _entity_table(b: _Bundle, name: str, key: str,
                  required: tuple[str, ...]) -> tuple[pd.DataFrame, list[str]] | None:
    """The nodes or jobs table with checked columns and ids (all rows' ids become known)."""
    df = b.frames.get(name)
    if df is None or not check_columns(df, name, COLUMNS[name], required, b.errs,
                                       USER_PREFIXES[name]):
        return None
    row_ids = ids(df, name, key, b.errs)
    b.ids[name] = {i for i in row_ids if i}
    b.rows[name] = {}
    for i, r in zip(row_ids, df.index, strict=True):
        b.rows[name].setdefault(i, int(r))
    return df, row_ids


def _read_nodes(b: _Bundle) -> list[Node]:
    name = "nodes.csv"
    got = _entity_table(b, name, "node_id", ("node_id", "gpus"))
    if got is None:
        return []
    df, row_ids = got
    errs = b.errs
    if len(df) == 0:
        errs.add(name, None, None, None, "no nodes: add at least one row")
        del b.ids[name]  # nothing to check references against
        return []
    cols = {c: numbers(df, name, c, errs, limit(name, c), **spec)
            for c, spec in _NODE_FLOATS.items()}
    flags = {c: bools(df, name, c, d, errs) for c, d in _NODE_BOOLS.items()}
    texts = {c: strs(df, c, d) for c, d in _NODE_STRS.items()}
    res = _resources(df, name, errs)
    records = []
    for k, row in enumerate(int(r) for r in df.index):
        if errs.failed(name, row):
            continue  # reported; its id stays known to the other files
        rec: dict[str, Any] = {"node_id": row_ids[k]}
        rec.update({c: v[k] for c, v in cols.items() if v[k] is not None})
        rec.update({c: v[k] for c, v in flags.items()})
        rec.update({c: v[k] for c, v in texts.items() if v[k] is not None})
        rec["resources"] = {r: v[k] for r, v in res.items()}
        rec["extra"] = _extras(df, k)
        breaks = battery_rule_breaks(rec.get("soc_init", 0.5), rec.get("soc_min", 0.0),
                                     rec.get("soc_max", 1.0))
        if breaks:
            _report_breaks(df, name, row, breaks, errs)
            continue
        records.append((row, rec))
    return _row_models(df, name, Node, records, errs)


def _read_jobs(b: _Bundle) -> list[Job]:
    name = "jobs.csv"
    got = _entity_table(b, name, "job_id", ("job_id", "gpus", "duration_min", "power_kw"))
    if got is None:
        return []
    df, row_ids = got
    errs = b.errs
    cols = {c: numbers(df, name, c, errs, limit(name, c), **spec)
            for c, spec in _JOB_FLOATS.items()}
    times = {c: timestamps(df, name, c, errs) for c in _JOB_TIMES}
    texts = {c: strs(df, c, d) for c, d in _JOB_STRS.items()}
    res = _resources(df, name, errs)
    records = []
    for k, row in enumerate(int(r) for r in df.index):
        if errs.failed(name, row):
            continue
        rec: dict[str, Any] = {"job_id": row_ids[k]}
        rec.update({c: v[k] for c, v in cols.items() if v[k] is not None})
        rec.update({c: v[k] for c, v in times.items() if v[k] is not None})
        rec.update({c: v[k] for c, v in texts.items() if v[k] is not None})
        rec["resources"] = {r: v[k] for r, v in res.items()}
        rec["extra"] = _extras(df, k)
        breaks = job_rule_breaks(rec)
        if breaks:
            _report_breaks(df, name, row, breaks, errs)
            continue
        records.append((row, rec))
    return _row_models(df, name, Job, records, errs)


# ----------------------------------------------------------------------------- long files


def _slots(df: pd.DataFrame, name: str, horizon: Horizon, errs: ErrorList
           ) -> npt.NDArray[np.int64]:
    """Slot of each row's ``time`` (-1 when bad): on the grid and inside the horizon."""
    out = np.full(len(df), -1, dtype=np.int64)
    for k, t in enumerate(timestamps(df, name, "time", errs)):
        row = int(df.index[k])
        raw = df["time"].iloc[k]
        if t is None:
            if raw == "":
                errs.add(name, row, "time", "", f"a timestamp is required, e.g. "
                         f"{TIMESTAMP_EXAMPLE}")
            continue
        pos = horizon.slot_position(t)
        if abs(pos - round(pos)) > 1e-9:
            errs.add(name, row, "time", raw,
                     f"off the slot grid; times must be {horizon.start.isoformat()} plus a "
                     f"multiple of {horizon.slot_minutes} minutes")
        elif not 0 <= round(pos) < horizon.slots:
            errs.add(name, row, "time", raw,
                     f"outside the horizon [{horizon.start.isoformat()}, "
                     f"{horizon.end.isoformat()})")
        else:
            out[k] = round(pos)
    return out


def _long(b: _Bundle, name: str, key: str, required_values: Iterable[str], hz: Horizon
          ) -> tuple[pd.DataFrame, npt.NDArray[np.int64], list[str] | None] | None:
    """Common checks of a long-format (time, key, [scenario,] values…) file.

    Returns the frame, the slot of each row (-1 when its time or scenario is bad) and
    the scenario of each row (None when the file has no ``scenario`` column).
    """
    df = b.frames.get(name)
    if df is None or not check_columns(df, name, COLUMNS[name],
                                       ("time", key, *required_values), b.errs):
        return None
    slots = _slots(df, name, hz, b.errs)
    scen = _row_scenarios(b, df, name)
    if scen is not None:
        slots[np.array([not s for s in scen], dtype=bool)] = -1
    seen: dict[tuple[str, int, str], int] = {}
    b.rows[name] = {}
    b.ids[name] = set()
    for k, (row, kv) in enumerate(zip(df.index, df[key], strict=True)):
        b.rows[name].setdefault(str(kv), int(row))
        if kv == "":
            b.errs.add(name, int(row), key, "", "a value is required")
            continue
        b.ids[name].add(str(kv))
        if slots[k] < 0:
            continue
        sid = "" if scen is None else scen[k]
        first = seen.setdefault((kv, int(slots[k]), sid), int(row))
        if first != int(row):
            what = f"({key}, time)" if scen is None else f"({key}, time, scenario)"
            b.errs.add(name, int(row), "time", df["time"].iloc[k],
                       f"duplicate {what}: first on row {first}")
    return df, slots, scen


def _row_scenarios(b: _Bundle, df: pd.DataFrame, name: str) -> list[str] | None:
    """The scenario of each row ('' when it is bad, with a located error), or None when
    ``name`` has no ``scenario`` column (its rows are shared by every scenario)."""
    if "scenario" not in df.columns:
        return None
    known = b.ids.get("scenarios.csv")
    if known is None:
        if not (b.root / "scenarios.csv").exists():
            b.errs.add(name, 1, "scenario", "scenario",
                       "a scenario column needs scenarios.csv (columns scenario, weight: each "
                       "scenario and its probability); without it remove the column")
        return ["" for _ in range(len(df))]  # scenarios.csv failed or missing: reported
    out: list[str] = []
    unknown: dict[str, list[int]] = {}
    for row, sid in zip(df.index, df["scenario"], strict=True):
        if sid == "":
            b.errs.add(name, int(row), "scenario", "",
                       f"a scenario is required: {name} has a scenario column (one of "
                       f"{_some(known)})")
            out.append("")
        elif sid not in known:
            unknown.setdefault(sid, []).append(int(row))
            out.append("")
        else:
            out.append(sid)
    for sid, rows in unknown.items():
        more = (f"; also on {len(rows) - 1} more row{'s' if len(rows) > 2 else ''}"
                if len(rows) > 1 else "")
        for row in rows:  # every row of it failed (left out), the message once
            b.errs.mark(name, row)
        b.errs.add(name, rows[0], "scenario", sid,
                   f"unknown scenario (not in scenarios.csv: {_some(known)}){more}")
    return out


def _read_scenarios(b: _Bundle) -> dict[str, float]:
    """``scenarios.csv``: scenario id -> weight (NaN for a row whose weight failed)."""
    name = "scenarios.csv"
    df = b.frames.get(name)
    if df is None or not check_columns(df, name, COLUMNS[name], COLUMNS[name], b.errs):
        return {}
    if len(df) == 0:
        b.errs.add(name, None, None, None, "no scenarios: add at least one row (scenario, weight)")
        return {}
    sids = ids(df, name, "scenario", b.errs)
    weight = numbers(df, name, "weight", b.errs, limit(name, "weight"), required=True)
    b.ids[name] = {i for i in sids if i}
    b.rows[name] = {}
    out: dict[str, float] = {}
    for sid, w, row in zip(sids, weight, df.index, strict=True):
        if sid and sid not in out:
            b.rows[name][sid] = int(row)
            out[sid] = math.nan if w is None else float(w)
    return out


def _unknown_nodes(b: _Bundle, df: pd.DataFrame, name: str) -> set[str]:
    """Report each node_id not in nodes.csv once (on its first row); return them."""
    known = b.ids.get("nodes.csv")
    if known is None:
        return set()  # nodes.csv could not be read: nothing to compare with
    where: dict[str, list[int]] = {}
    for row, nid in zip(df.index, df["node_id"], strict=True):
        if nid and nid not in known:
            where.setdefault(nid, []).append(int(row))
    for nid, rows in where.items():
        more = (f"; also on {len(rows) - 1} more row{'s' if len(rows) > 2 else ''} "
                f"({', '.join(map(str, rows[1:4]))}{' …' if len(rows) > 4 else ''})"
                if len(rows) > 1 else "")
        b.errs.add(name, rows[0], "node_id", nid,
                   f"unknown node_id (not in nodes.csv: {_some(known)}){more}")
    return set(where)


def _some(ids_: Iterable[str]) -> str:
    keys = sorted(ids_)
    return (", ".join(keys[:8]) + (" …" if len(keys) > 8 else "")) if keys else "none"


def _split(shared_or_none: list[str] | None, k: int) -> str:
    return "" if shared_or_none is None else shared_or_none[k]


def _read_node_series(b: _Bundle, hz: Horizon
                      ) -> tuple[dict[str, NodeSeries], dict[str, dict[str, NodeSeries]] | None]:
    """The shared per-node series, or (with a ``scenario`` column) those of each scenario."""
    name = "node_series.csv"
    got = _long(b, name, "node_id", (), hz)
    if got is None:
        return {}, None
    df, slots, scen = got
    errs = b.errs
    unknown = _unknown_nodes(b, df, name)
    pv = numbers(df, name, "pv_kw", errs, limit(name, "pv_kw"))
    head = numbers(df, name, "headroom_kw", errs, limit(name, "headroom_kw"))
    avail: list[bool | None] = [None] * len(df)
    if "available" in df.columns:
        avail = [None if v == "" else a for v, a in
                 zip(df["available"], bools(df, name, "available", True, errs), strict=True)]
    T = hz.slots
    per: dict[str, dict[str, dict[str, list[Any]]]] = {}
    for k, nid in enumerate(df["node_id"]):
        if slots[k] < 0 or not nid or nid in unknown:
            continue
        d = per.setdefault(_split(scen, k), {}).setdefault(
            nid, {"pv_kw": [None] * T, "headroom_kw": [None] * T, "available": [None] * T})
        t = int(slots[k])
        d["pv_kw"][t], d["headroom_kw"][t], d["available"][t] = pv[k], head[k], avail[k]

    def build(nodes: dict[str, dict[str, list[Any]]]) -> dict[str, NodeSeries]:
        return {nid: NodeSeries(
            pv_kw=None if "pv_kw" not in df.columns else [0.0 if v is None else v
                                                           for v in d["pv_kw"]],
            headroom_kw=None if "headroom_kw" not in df.columns else d["headroom_kw"],
            available=None if "available" not in df.columns else [True if v is None else v
                                                                   for v in d["available"]],
        ) for nid, d in nodes.items()}

    if scen is None:
        return build(per.get("", {})), None
    return {}, {sid: build(nodes) for sid, nodes in per.items()}


def _read_prices(b: _Bundle, hz: Horizon
                 ) -> tuple[dict[str, Tariff], dict[str, dict[str, Tariff]] | None]:
    """The shared tariffs, or (with a ``scenario`` column) those of each scenario; every
    tariff covers every slot (in every scenario it appears in)."""
    name = "prices.csv"
    got = _long(b, name, "tariff", ("price",), hz)
    if got is None:
        return {}, None
    df, slots, scen = got
    errs = b.errs
    price = numbers(df, name, "price", errs, limit(name, "price"), required=True)
    exp = numbers(df, name, "export_price", errs, limit(name, "export_price"), default=0.0)
    co2 = numbers(df, name, "carbon_g_per_kwh", errs, limit(name, "carbon_g_per_kwh"),
                  default=0.0)
    T = hz.slots
    per: dict[tuple[str, str], list[list[float | None]]] = {}
    broken: set[tuple[str, str]] = set()  # a row of it failed: its coverage is not judged
    for k, (row, tariff) in enumerate(zip(df.index, df["tariff"], strict=True)):
        if tariff == "":
            continue
        key = (_split(scen, k), tariff)
        if errs.failed(name, int(row)) or slots[k] < 0:
            if scen is not None and not key[0]:  # scenario unknown: judge it in none
                broken.update((sid, tariff) for sid in b.ids.get("scenarios.csv", ()))
            broken.add(key)
            continue
        arr = per.setdefault(key, [[None] * T, [0.0] * T, [0.0] * T])
        t = int(slots[k])
        arr[0][t], arr[1][t], arr[2][t] = price[k], exp[k], co2[k]
    out: dict[str, dict[str, Tariff]] = {}
    for (sid, tariff), (pr, e, c) in per.items():
        missing = [t for t in range(T) if pr[t] is None]
        if (sid, tariff) in broken:
            continue
        if missing:
            first = ", ".join(hz.time_of(t).isoformat() for t in missing[:3])
            where = f" in scenario {sid!r}" if scen is not None else ""
            errs.add(name, b.rows[name].get(tariff), "time", None,
                     f"tariff {tariff!r} does not cover every slot{where}: {len(missing)} of "
                     f"{T} slots have no price (first: {first})")
            continue
        out.setdefault(sid, {})[tariff] = Tariff(
            price=[float(v) for v in pr if v is not None],
            export_price=[float(v or 0.0) for v in e],
            carbon_g_per_kwh=[float(v or 0.0) for v in c])
    if scen is None:
        return out.get("", {}), None
    return {}, out


def _read_feeders(b: _Bundle, hz: Horizon
                  ) -> tuple[dict[str, Feeder], dict[str, dict[str, Feeder]] | None]:
    """The shared feeders, or (with a ``scenario`` column) those of each scenario."""
    name = "feeders.csv"
    got = _long(b, name, "feeder", ("headroom_kw",), hz)
    if got is None:
        return {}, None
    df, slots, scen = got
    head = numbers(df, name, "headroom_kw", b.errs, limit(name, "headroom_kw"), required=True)
    out: dict[str, dict[str, list[float]]] = {}
    for k, feeder in enumerate(df["feeder"]):
        if slots[k] < 0 or feeder == "":
            continue
        arr = out.setdefault(_split(scen, k), {}).setdefault(feeder, [math.inf] * hz.slots)
        v = head[k]
        arr[int(slots[k])] = math.inf if v is None else float(v)
    built = {sid: {f: Feeder(headroom_kw=v) for f, v in fs.items()} for sid, fs in out.items()}
    if scen is None:
        return built.get("", {}), None
    return {}, built


def _read_latency(b: _Bundle) -> dict[str, dict[str, float]]:
    name = "latency.csv"
    df = b.frames.get(name)
    if df is None or not check_columns(df, name, COLUMNS[name], COLUMNS[name], b.errs):
        return {}
    errs = b.errs
    ms = numbers(df, name, "latency_ms", errs, limit(name, "latency_ms"), required=True)
    unknown = _unknown_nodes(b, df, name)
    out: dict[str, dict[str, float]] = {}
    b.rows[name] = {}
    for k, (row, nid, region) in enumerate(zip(df.index, df["node_id"], df["region"],
                                               strict=True)):
        b.rows[name].setdefault(nid, int(row))
        if nid in unknown:
            continue
        if nid == "":
            errs.add(name, int(row), "node_id", "", "a node_id is required")
            continue
        if region == "":
            errs.add(name, int(row), "region", "", "a region is required")
            continue
        if region in out.get(nid, {}):
            errs.add(name, int(row), "region", region, f"duplicate ({nid}, {region}) pair")
        v = ms[k]
        if v is not None:
            out.setdefault(nid, {})[region] = float(v)
    return out


def _read_regions(b: _Bundle) -> dict[str, Region]:
    name = "regions.csv"
    df = b.frames.get(name)
    if df is None or not check_columns(df, name, COLUMNS[name], COLUMNS[name], b.errs):
        return {}
    region_ids = ids(df, name, "region", b.errs)
    lat = numbers(df, name, "lat", b.errs, limit(name, "lat"), required=True)
    lon = numbers(df, name, "lon", b.errs, limit(name, "lon"), required=True)
    b.rows[name] = {i: int(r) for i, r in zip(region_ids, df.index, strict=True)}
    return {i: Region(lat=a, lon=o) for i, a, o in zip(region_ids, lat, lon, strict=True)
            if a is not None and o is not None}


# ----------------------------------------------------------------------------- write


def cell_text(v: Any) -> str:
    """``v`` as a CSV cell the reader reads back (``inf``, ``true``, ISO times, ``""``)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)


def _write_csv(path: Path, header: list[str], rows: Iterable[Iterable[Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow([cell_text(v) for v in r])


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return f'"{v.isoformat()}"'
    return repr(v)


def write_bundle(problem: Problem, path: str | os.PathLike[str],
                 parquet: Iterable[str] = ()) -> Path:
    """Write a problem as a bundle directory that :func:`read_bundle` reads back equal.

    Files are written into a temporary sibling directory that then replaces
    ``path`` (which, if it exists, may hold only bundle files).

    Parameters
    ----------
    problem : Problem
        The problem.
    path : path
        The bundle directory.
    parquet : iterable of str
        Tables of :data:`PARQUET_TABLES` to write as ``<table>.parquet`` (typed columns,
        needs ``pyarrow``) instead of CSV: ``node_series`` has a row per node and slot
        (960,000 rows for 10,000 nodes × 96 slots).

    Returns
    -------
    pathlib.Path
        The bundle directory.
    """
    as_parquet = tuple(parquet)
    bad = [t for t in as_parquet if t not in PARQUET_TABLES]
    if bad:
        raise ValueError(f"parquet tables {bad}: only {', '.join(PARQUET_TABLES)}")
    allowed = (*BUNDLE_FILES, *(f"{t}.parquet" for t in PARQUET_TABLES))
    return write_dir_atomically(path, lambda tmp: _write_all(problem, tmp, as_parquet),
                                allowed=allowed, keep=("README.md",))


def _entity_row(obj: Node | Job, columns: list[str]) -> list[Any]:
    """Cells of a node or job row: ``res_*`` from resources, ``x_*`` from extra."""
    return [obj.resources.get(c[4:], 0.0) if c.startswith("res_") else
            obj.extra.get(c, "") if c.startswith("x_") else getattr(obj, c) for c in columns]


def _write_all(problem: Problem, d: Path, parquet: tuple[str, ...] = ()) -> None:
    sc = problem.scenario
    lines = []
    for section, model in (("horizon", sc.horizon), ("objective", sc.objective),
                           ("battery", sc.battery), ("latency", sc.latency)):
        lines.append(f"[{section}]")
        # keys beyond SPEC v1 only when set, so a SPEC v1 problem writes a SPEC v1 bundle
        for k, v in model.model_dump(exclude_defaults=section == "objective").items():
            lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
    (d / "scenario.toml").write_text("\n".join(lines), encoding="utf-8")
    hz = sc.horizon
    times = [hz.time_of(t).isoformat() for t in range(hz.slots)]

    node_res = sorted({r for n in problem.nodes for r in n.resources})
    node_x = sorted({x for n in problem.nodes for x in n.extra})
    ncols = ["node_id", "kind", "region", "lat", "lon", "tariff", "feeder", "gpus",
             *(f"res_{r}" for r in node_res), "gpu_mem_gb", "trust", "speed", "power_factor",
             "idle_kw", "can_sleep", "initially_on", "end_off", "startup_cost", "shutdown_cost",
             "grid_kw", "export_kw", "battery_kwh", "soc_init", "soc_min", "soc_max", "charge_kw",
             "discharge_kw", "eff_charge", "eff_discharge", "degradation_per_kwh",
             "demand_charge_per_kw", *node_x]

    _write_csv(d / "nodes.csv", ncols, (_entity_row(n, ncols) for n in problem.nodes))

    job_res = sorted({r for j in problem.jobs for r in j.resources})
    job_x = sorted({x for j in problem.jobs for x in j.extra})
    jcols = ["job_id", "kind", "gpus", *(f"res_{r}" for r in job_res), "duration_min",
             "power_kw", "release", "deadline", "tardiness_per_hour", "drop_penalty", "region",
             "latency_slo_ms", "latency_per_ms", "min_gpu_mem_gb", "min_trust", "pinned_node",
             "pinned_start", *job_x]

    if "jobs" in parquet:
        _write_parquet(d / "jobs.parquet", jcols, [_entity_row(j, jcols) for j in problem.jobs])
    else:
        _write_csv(d / "jobs.csv", jcols, (_entity_row(j, jcols) for j in problem.jobs))

    views = {sid: problem.scenario_problem(sid) for sid in problem.scenarios}

    def parts(part: str) -> list[tuple[str | None, Problem]]:
        """(scenario or None, problem) whose ``part`` goes into the file."""
        if any(getattr(sc, part) is not None for sc in problem.scenarios.values()):
            return [(sid, v) for sid, v in views.items()]
        return [(None, problem)]

    if problem.scenarios:
        _write_csv(d / "scenarios.csv", ["scenario", "weight"],
                   ([sid, sc.weight] for sid, sc in problem.scenarios.items()))
    series = parts("node_series")
    if any(p.node_series for _, p in series):
        scols = ["pv_kw", "headroom_kw", "available"]
        used = [c for c in scols if any(getattr(s, c) is not None
                                        for _, p in series for s in p.node_series.values())]

        def series_rows() -> Iterable[list[Any]]:
            for sid, p in series:
                for nid, s in p.node_series.items():
                    for t in range(hz.slots):
                        row: list[Any] = [times[t], nid, *(() if sid is None else (sid,))]
                        for c in used:
                            seq = getattr(s, c)
                            v = None if seq is None else seq[t]
                            row.append(("1" if v else "0") if c == "available" and v is not None
                                       else v)
                        yield row

        keyed = ["time", "node_id", *(() if series[0][0] is None else ("scenario",))]
        if "node_series" in parquet:
            if series[0][0] is not None:
                raise ValueError("node_series.parquet has no scenario column: write the "
                                 "node series of a problem with scenarios as CSV")
            _write_series_parquet(d / "node_series.parquet", problem, used)
        else:
            _write_csv(d / "node_series.csv", [*keyed, *used], series_rows())
    prices = parts("tariffs")
    if any(p.tariffs for _, p in prices):
        keyed = ["time", "tariff", *(() if prices[0][0] is None else ("scenario",))]
        _write_csv(d / "prices.csv", [*keyed, "price", "export_price", "carbon_g_per_kwh"],
                   ([times[t], name, *(() if sid is None else (sid,)), tf.price[t],
                     tf.export_price[t], tf.carbon_g_per_kwh[t]]
                    for sid, p in prices for name, tf in p.tariffs.items()
                    for t in range(hz.slots)))
    feeders = parts("feeders")
    if any(p.feeders for _, p in feeders):
        keyed = ["time", "feeder", *(() if feeders[0][0] is None else ("scenario",))]
        _write_csv(d / "feeders.csv", [*keyed, "headroom_kw"],
                   ([times[t], name, *(() if sid is None else (sid,)), f.headroom_kw[t]]
                    for sid, p in feeders for name, f in p.feeders.items()
                    for t in range(hz.slots)))
    if problem.latency_ms:
        _write_csv(d / "latency.csv", ["node_id", "region", "latency_ms"],
                   ([nid, region, ms] for nid, row in problem.latency_ms.items()
                    for region, ms in row.items()))
    if problem.regions:
        _write_csv(d / "regions.csv", ["region", "lat", "lon"],
                   ([name, r.lat, r.lon] for name, r in problem.regions.items()))


def _write_parquet(path: Path, columns: list[str], rows: list[list[Any]]) -> None:
    """A table of ``rows`` as Parquet with typed columns: timestamps (with their offset as
    UTC instants), numbers (``None`` as null), booleans, text."""
    import pyarrow as pa  # optional: only Parquet bundles need it
    import pyarrow.parquet as pq

    arrays = {}
    for k, c in enumerate(columns):
        vals = [r[k] for r in rows]
        given = [v for v in vals if v is not None]
        if given and all(isinstance(v, datetime) for v in given):
            tz = _offset_name(given[0])  # the column's zone: the first value's UTC offset
            arrays[c] = pa.array([None if v is None else pd.Timestamp(v) for v in vals],
                                 type=pa.timestamp("us", tz=tz))
        elif given and all(isinstance(v, bool) for v in given):
            arrays[c] = pa.array(vals, type=pa.bool_())
        elif given and all(isinstance(v, int | float) and not isinstance(v, bool)
                           for v in given):
            arrays[c] = pa.array([None if v is None else float(v) for v in vals],
                                 type=pa.float64())
        else:
            arrays[c] = pa.array(["" if v is None else str(v) for v in vals], type=pa.string())
    pq.write_table(pa.table(arrays), path, compression="zstd")


def _write_series_parquet(path: Path, problem: Problem, used: list[str]) -> None:
    """``node_series`` as Parquet, built column-wise (one row per node and slot)."""
    import pyarrow as pa  # optional: only Parquet bundles need it
    import pyarrow.parquet as pq

    hz = problem.horizon
    T = hz.slots
    ids = list(problem.node_series)
    times = pd.Timestamp(hz.start).tz_convert("UTC") + pd.to_timedelta(
        np.arange(T) * hz.slot_minutes, unit="min")
    arrays: dict[str, Any] = {
        "time": pa.array(np.tile(times.to_numpy(), len(ids)),
                         type=pa.timestamp("ns", tz=_offset_name(hz.start))),
        "node_id": pa.array(np.repeat(np.array(ids, dtype=object), T), type=pa.string()),
    }
    for c in used:
        seqs = [getattr(problem.node_series[n], c) for n in ids]
        if c == "available":
            flags = [None if v is None else bool(v) for s in seqs for v in (s or [None] * T)]
            arrays[c] = pa.array(flags, type=pa.bool_())
        else:
            flat = [None if s is None or v is None else float(v) for s in seqs
                    for v in (s or [None] * T)]
            arrays[c] = pa.array(flat, type=pa.float64())
    pq.write_table(pa.table(arrays), path, compression="zstd")


def _offset_name(t: datetime) -> str:
    """The UTC offset of ``t`` as Arrow names a fixed zone, e.g. ``+02:00``."""
    off = t.utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
