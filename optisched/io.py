"""Read and write input bundles (SPEC §1).

:func:`read_bundle` collects every error it finds (capped at
:data:`~optisched.errors.MAX_ERRORS`), each naming file, row (header = row 1),
column, value and what would be valid, and raises one
:class:`~optisched.errors.BundleError`. :func:`write_bundle` writes a bundle that
reads back to an equal :class:`~optisched.domain.Problem`.
"""

from __future__ import annotations

import csv
import io as _io
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import ValidationError

from optisched.atomic import write_dir_atomically
from optisched.domain import (
    Feeder,
    Horizon,
    Job,
    Node,
    NodeSeries,
    Problem,
    Region,
    Scenario,
    Tariff,
)
from optisched.errors import MAX_ERRORS, BundleError, InputError

__all__ = ["BUNDLE_FILES", "COLUMNS", "SCENARIO_KEYS", "USER_PREFIXES", "read_bundle",
           "write_bundle"]

BUNDLE_FILES = (
    "scenario.toml", "nodes.csv", "jobs.csv", "node_series.csv", "prices.csv", "feeders.csv",
    "latency.csv", "regions.csv",
)

_NODE_FLOATS: dict[str, dict[str, Any]] = {
    # column: default, lower bound (inclusive unless gt), upper, inf allowed
    "lat": {"default": None, "lo": -90.0, "hi": 90.0},
    "lon": {"default": None, "lo": -180.0, "hi": 180.0},
    "gpus": {"required": True, "lo": 0.0},
    "gpu_mem_gb": {"default": math.inf, "lo": 0.0, "inf": True},
    "trust": {"default": 0.0},
    "speed": {"default": 1.0, "gt": 0.0},
    "power_factor": {"default": 1.0, "lo": 0.0},
    "idle_kw": {"default": 0.0, "lo": 0.0},
    "startup_cost": {"default": 0.0, "lo": 0.0},
    "shutdown_cost": {"default": 0.0, "lo": 0.0},
    "grid_kw": {"default": math.inf, "lo": 0.0, "inf": True},
    "export_kw": {"default": 0.0, "lo": 0.0},
    "battery_kwh": {"default": 0.0, "lo": 0.0},
    "soc_init": {"default": 0.5, "lo": 0.0, "hi": 1.0},
    "soc_min": {"default": 0.0, "lo": 0.0, "hi": 1.0},
    "soc_max": {"default": 1.0, "lo": 0.0, "hi": 1.0},
    "charge_kw": {"default": None, "lo": 0.0},
    "discharge_kw": {"default": None, "lo": 0.0},
    "eff_charge": {"default": 0.95, "gt": 0.0, "hi": 1.0},
    "eff_discharge": {"default": 0.95, "gt": 0.0, "hi": 1.0},
    "degradation_per_kwh": {"default": 0.0, "lo": 0.0},
    "demand_charge_per_kw": {"default": 0.0, "lo": 0.0},
}
_NODE_BOOLS = {"can_sleep": False, "initially_on": True, "end_off": False}
_NODE_STRS = {"kind": "", "region": "", "tariff": "default", "feeder": None}

_JOB_FLOATS: dict[str, dict[str, Any]] = {
    "gpus": {"required": True, "lo": 0.0},
    "duration_min": {"required": True, "gt": 0.0},
    "power_kw": {"required": True, "lo": 0.0},
    "tardiness_per_hour": {"default": None, "lo": 0.0},
    "drop_penalty": {"default": None, "lo": 0.0},
    "latency_slo_ms": {"default": None, "lo": 0.0},
    "latency_per_ms": {"default": None, "lo": 0.0},
    "min_gpu_mem_gb": {"default": 0.0, "lo": 0.0},
    "min_trust": {"default": 0.0},
}
_JOB_TIMES = ("release", "deadline", "pinned_start")
_JOB_STRS = {"kind": "", "region": None, "pinned_node": None}

COLUMNS: dict[str, tuple[str, ...]] = {
    "nodes.csv": ("node_id", *_NODE_FLOATS, *_NODE_BOOLS, *_NODE_STRS),
    "jobs.csv": ("job_id", *_JOB_FLOATS, *_JOB_TIMES, *_JOB_STRS),
    "node_series.csv": ("time", "node_id", "pv_kw", "headroom_kw", "available"),
    "prices.csv": ("time", "tariff", "price", "export_price", "carbon_g_per_kwh"),
    "feeders.csv": ("time", "feeder", "headroom_kw"),
    "latency.csv": ("node_id", "region", "latency_ms"),
    "regions.csv": ("region", "lat", "lon"),
}
"""Column names :func:`read_bundle` accepts in each CSV file (``docs/contract/input.md``)."""
USER_PREFIXES: dict[str, tuple[str, ...]] = {
    f: ("x_", "res_") if f in ("nodes.csv", "jobs.csv") else ("x_",) for f in COLUMNS
}
"""Prefixes of further accepted columns: ``x_`` user data everywhere, ``res_`` resources."""
SCENARIO_KEYS: dict[str, tuple[str, ...]] = {
    "horizon": ("start", "slot_minutes", "slots"), "objective": ("carbon_price_per_tonne",),
    "battery": ("terminal",), "latency": ("base_ms", "ms_per_km"),
}
"""Sections of ``scenario.toml`` and the keys each accepts."""

_OFFSET_RE = re.compile(r"(Z|[+-]\d\d(:?\d\d)?)$", re.IGNORECASE)
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}

FloatArray = npt.NDArray[np.float64]


class _Errors:
    """Collects input errors; stops keeping details past the cap."""

    def __init__(self) -> None:
        self.items: list[InputError] = []
        self.total = 0

    def add(self, file: str, row: int | None, column: str | None, value: Any, msg: str) -> None:
        self.total += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append(InputError(file, row, column,
                                         None if value is None else str(value), msg))

    def raise_if_any(self) -> None:
        if self.total:
            raise BundleError(self.items, self.total)


# ----------------------------------------------------------------------------- CSV helpers


def _read_csv(path: Path, errs: _Errors, required: bool) -> pd.DataFrame | None:
    name = path.name
    if not path.exists():
        if required:
            errs.add(name, None, None, None, f"required file is missing from {path.parent}")
        return None
    text = path.read_bytes()
    try:
        decoded = text.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        errs.add(name, None, None, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        return None
    if not decoded.strip():
        errs.add(name, None, None, None, "file is empty; it needs at least a header row")
        return None
    try:
        numbered = [(k + 1, r) for k, r in enumerate(csv.reader(_io.StringIO(decoded)))
                    if any(c.strip() for c in r)]  # blank lines are not rows
    except csv.Error as exc:
        errs.add(name, None, None, None, f"not valid CSV: {exc}")
        return None
    header = [c.strip() for c in numbered[0][1]]
    width = len(header)
    bad = False
    seen: set[str] = set()
    for c in header:
        if not c:
            errs.add(name, 1, None, "", "empty column name in the header")
            bad = True
        elif c in seen:
            errs.add(name, 1, c, c, "column appears twice in the header")
            bad = True
        seen.add(c)
    body = []
    line_numbers = []
    for line, r in numbered[1:]:
        if len(r) != width:
            errs.add(name, line, None, ",".join(r),
                     f"row has {len(r)} fields but the header has {width}")
            bad = True
            continue
        body.append([c.strip() for c in r])
        line_numbers.append(line)
    if bad:
        return None
    df = pd.DataFrame(body, columns=header, dtype=object)
    df.index = pd.Index(line_numbers, dtype=np.int64)  # file row numbers (header = 1)
    return df


def _check_columns(df: pd.DataFrame, name: str, required: Iterable[str], errs: _Errors) -> bool:
    known = set(COLUMNS[name])
    prefixes = USER_PREFIXES[name]
    ok = True
    for c in required:
        if c not in df.columns:
            errs.add(name, 1, c, None, "required column is missing")
            ok = False
    for c in df.columns:
        if c not in known and not c.startswith(prefixes):
            allowed = ", ".join(sorted(known))
            errs.add(name, 1, c, c, f"unknown column; valid: {allowed} (user columns start "
                     "with x_)")
            ok = False
    return ok


def _floats(df: pd.DataFrame, name: str, col: str, errs: _Errors, *, default: float | None = None,
            required: bool = False, lo: float | None = None, hi: float | None = None,
            gt: float | None = None, inf: bool = False) -> list[float | None]:
    """Parse a numeric column; empty = default. Errors name file, row, column and value."""
    n = len(df)
    if col not in df.columns:
        return [default] * n
    raw = df[col].astype(str)
    vals = pd.to_numeric(raw.where(raw != "", None), errors="coerce").to_numpy(dtype=float)
    empty = (raw == "").to_numpy()
    out: list[float | None] = [None if e else float(v) for e, v in zip(empty, vals, strict=True)]
    bad = ~empty & ~np.isfinite(vals)
    valid = _range_text(lo, hi, gt, inf)
    for k in np.nonzero(bad)[0]:
        value = raw.iloc[k]
        if np.isinf(vals[k]) and inf and vals[k] > 0:
            continue
        kind = ("NaN is not allowed" if value.lower() in ("nan", "-nan") else
                "infinite values are not allowed" if np.isinf(vals[k]) else "not a number")
        errs.add(name, int(df.index[k]), col, value, f"{kind}; expected {valid}")
        out[k] = default
    chk = ~empty & np.isfinite(vals) | (~empty & np.isinf(vals) & inf & (vals > 0))
    with np.errstate(invalid="ignore"):
        low = (vals < lo) if lo is not None else np.zeros(n, bool)
        low |= (vals <= gt) if gt is not None else False
        high = (vals > hi) if hi is not None else np.zeros(n, bool)
    for k in np.nonzero(chk & (low | high))[0]:
        errs.add(name, int(df.index[k]), col, raw.iloc[k], f"out of range; expected {valid}")
    for k in np.nonzero(empty)[0]:
        if required:
            errs.add(name, int(df.index[k]), col, "", f"a value is required; expected {valid}")
        out[k] = default
    return out


def _range_text(lo: float | None, hi: float | None, gt: float | None, inf: bool) -> str:
    parts = []
    if gt is not None:
        parts.append(f"> {gt:g}")
    if lo is not None:
        parts.append(f">= {lo:g}")
    if hi is not None:
        parts.append(f"<= {hi:g}")
    txt = "a number" + (" " + " and ".join(parts) if parts else "")
    return txt + (" (inf allowed)" if inf else "")


def _bools(df: pd.DataFrame, name: str, col: str, default: bool, errs: _Errors) -> list[bool]:
    if col not in df.columns:
        return [default] * len(df)
    out = []
    for row, v in zip(df.index, df[col], strict=True):
        low = str(v).lower()
        if low == "":
            out.append(default)
        elif low in _TRUE:
            out.append(True)
        elif low in _FALSE:
            out.append(False)
        else:
            errs.add(name, int(row), col, v, "expected true/false (or 1/0, yes/no)")
            out.append(default)
    return out


def _times(df: pd.DataFrame, name: str, col: str, errs: _Errors) -> list[datetime | None]:
    """Parse ISO 8601 timestamps with a UTC offset; empty = None."""
    if col not in df.columns:
        return [None] * len(df)
    raw = df[col].astype(str)
    parsed = pd.to_datetime(raw.where(raw != "", None), errors="coerce", utc=True,
                            format="ISO8601")
    out: list[datetime | None] = []
    for k, (v, p) in enumerate(zip(raw, parsed, strict=True)):
        if v == "":
            out.append(None)
        elif pd.isna(p):
            errs.add(name, int(df.index[k]), col, v,
                     "not an ISO 8601 timestamp; expected e.g. 2026-06-01T00:15:00+00:00")
            out.append(None)
        elif not _OFFSET_RE.search(v):
            errs.add(name, int(df.index[k]), col, v,
                     "timestamp needs a UTC offset, e.g. 2026-06-01T00:15:00+00:00")
            out.append(None)
        else:
            out.append(p.to_pydatetime())
    return out


def _strs(df: pd.DataFrame, col: str, default: str | None) -> list[str | None]:
    if col not in df.columns:
        return [default] * len(df)
    return [default if v == "" else str(v) for v in df[col]]


def _ids(df: pd.DataFrame, name: str, col: str, errs: _Errors) -> list[str]:
    out = []
    first: dict[str, int] = {}
    for row, v in zip(df.index, df[col], strict=True):
        v = str(v)
        if v == "":
            errs.add(name, int(row), col, v, "an id is required")
        elif v in first:
            errs.add(name, int(row), col, v, f"duplicate id (first on row {first[v]})")
        else:
            first[v] = int(row)
        out.append(v)
    return out


def _slots(df: pd.DataFrame, name: str, horizon: Horizon, errs: _Errors) -> npt.NDArray[np.int64]:
    """Slot of each row's ``time`` (-1 when bad): on the grid and inside the horizon."""
    times = _times(df, name, "time", errs)
    out = np.full(len(df), -1, dtype=np.int64)
    for k, t in enumerate(times):
        row = int(df.index[k])
        if t is None:
            if df["time"].iloc[k] == "":
                errs.add(name, row, "time", "", "a timestamp is required")
            continue
        pos = horizon.slot_position(t)
        if abs(pos - round(pos)) > 1e-9:
            errs.add(name, row, "time", df["time"].iloc[k],
                     f"off the slot grid; times must be {horizon.start.isoformat()} plus a "
                     f"multiple of {horizon.slot_minutes} minutes")
        elif not 0 <= round(pos) < horizon.slots:
            errs.add(name, row, "time", df["time"].iloc[k],
                     f"outside the horizon [{horizon.start.isoformat()}, "
                     f"{horizon.end.isoformat()})")
        else:
            out[k] = round(pos)
    return out


# ----------------------------------------------------------------------------- scenario


def _read_scenario(path: Path, errs: _Errors) -> Scenario | None:
    name = "scenario.toml"
    if not path.exists():
        errs.add(name, None, None, None, f"required file is missing from {path.parent}")
        return None
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        errs.add(name, None, None, None, f"not valid TOML: {exc}")
        return None
    known = SCENARIO_KEYS
    ok = True
    for section, body in data.items():
        if section not in known:
            errs.add(name, None, section, section,
                     f"unknown section; valid: {', '.join(sorted(known))}")
            ok = False
        elif not isinstance(body, dict):
            errs.add(name, None, section, body, "must be a [section] table")
            ok = False
        else:
            for key in body:
                if key not in known[section]:
                    errs.add(name, None, f"{section}.{key}", body[key],
                             f"unknown key; valid: {', '.join(sorted(known[section]))}")
                    ok = False
    if "horizon" not in data or "start" not in data.get("horizon", {}):
        errs.add(name, None, "horizon.start", None, "required, e.g. start = "
                 "\"2026-06-01T00:00:00+00:00\"")
        return None
    if not ok:
        return None
    hz = dict(data["horizon"])
    if isinstance(hz["start"], str):
        if not _OFFSET_RE.search(hz["start"].strip()):
            errs.add(name, None, "horizon.start", hz["start"],
                     "needs a UTC offset, e.g. 2026-06-01T00:00:00+00:00")
            return None
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        for e in exc.errors():
            key = ".".join(str(x) for x in e["loc"])
            errs.add(name, None, key, e.get("input"), e["msg"])
        return None


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
        Every error found (capped), each with file, row, column, value and
        what is valid.
    """
    root = Path(path)
    errs = _Errors()
    if not root.is_dir():
        errs.add(str(root), None, None, None, "bundle directory not found")
        errs.raise_if_any()
    scenario = _read_scenario(root / "scenario.toml", errs)
    frames = {f: _read_csv(root / f, errs, f in ("nodes.csv", "jobs.csv"))
              for f in BUNDLE_FILES if f.endswith(".csv")}
    rows: dict[str, dict[str, int]] = {}
    before = errs.total
    nodes = _read_nodes(frames["nodes.csv"], errs, rows)
    jobs = _read_jobs(frames["jobs.csv"], errs, rows)
    entities_ok = errs.total == before  # cross-checks only make sense on complete tables
    if scenario is None:
        errs.raise_if_any()
        raise AssertionError("unreachable")  # pragma: no cover
    hz = scenario.horizon
    node_ids = [n.node_id for n in nodes]
    series = _read_node_series(frames["node_series.csv"], hz, node_ids, errs, rows)
    tariffs = _read_prices(frames["prices.csv"], hz, errs, rows)
    feeders = _read_feeders(frames["feeders.csv"], hz, errs, rows)
    latency = _read_latency(frames["latency.csv"], node_ids, errs, rows)
    regions = _read_regions(frames["regions.csv"], errs, rows)
    problem = Problem.model_construct(
        scenario=scenario, nodes=nodes, jobs=jobs, node_series=series, tariffs=tariffs,
        feeders=feeders, latency_ms=latency, regions=regions,
    )
    id_columns = {("nodes.csv", "node_id"), ("jobs.csv", "job_id")}  # checked with rows above
    for issue in problem.issues() if entities_ok else []:
        if (issue.table, issue.column) in id_columns:
            continue
        row = rows.get(issue.table, {}).get(issue.key)
        errs.add(issue.table, row, issue.column, issue.value, issue.message)
    errs.raise_if_any()
    return problem


def _row_models(df: pd.DataFrame, name: str, build: Callable[[dict[str, Any]], Any],
                records: list[dict[str, Any]], errs: _Errors) -> list[Any]:
    out = []
    for row, rec in zip(df.index, records, strict=True):
        try:
            out.append(build(rec))
        except ValidationError as exc:
            for e in exc.errors():
                loc = [str(x) for x in e["loc"]]
                column = loc[0] if loc else _guess_column(e["msg"])
                if column == "resources" and len(loc) > 1:
                    column = f"res_{loc[1]}"
                value = rec.get(column) if column in rec else e.get("input")
                if isinstance(value, dict):
                    value = None
                msg = str(e["msg"]).removeprefix("Value error, ")
                errs.add(name, int(row), column, value, msg)
    return out


def _guess_column(msg: str) -> str | None:
    for c in ("soc_min", "soc_init", "deadline", "pinned_node", "latency_slo_ms",
              "latency_per_ms", "release"):
        if c in msg:
            return c
    return None


def _extras(df: pd.DataFrame, k: int) -> dict[str, str]:
    return {c: str(df[c].iloc[k]) for c in df.columns if c.startswith("x_")}


def _resources(df: pd.DataFrame, name: str, errs: _Errors) -> dict[str, list[float | None]]:
    return {c[4:]: _floats(df, name, c, errs, default=0.0, lo=0.0)
            for c in df.columns if c.startswith("res_")}


def _read_nodes(df: pd.DataFrame | None, errs: _Errors, rows: dict[str, dict[str, int]]
                ) -> list[Node]:
    name = "nodes.csv"
    if df is None:
        return []
    if not _check_columns(df, name, ("node_id", "gpus"), errs):
        return []
    if len(df) == 0:
        errs.add(name, None, None, None, "no nodes: add at least one row")
        return []
    ids = _ids(df, name, "node_id", errs)
    rows[name] = {i: int(r) for i, r in zip(ids, df.index, strict=True)}
    cols = {c: _floats(df, name, c, errs, **spec) for c, spec in _NODE_FLOATS.items()}
    bools = {c: _bools(df, name, c, d, errs) for c, d in _NODE_BOOLS.items()}
    strs = {c: _strs(df, c, d) for c, d in _NODE_STRS.items()}
    res = _resources(df, name, errs)
    records = []
    for k in range(len(df)):
        rec: dict[str, Any] = {"node_id": ids[k]}
        rec.update({c: v[k] for c, v in cols.items() if v[k] is not None})
        rec.update({c: v[k] for c, v in bools.items()})
        rec.update({c: v[k] for c, v in strs.items() if v[k] is not None})
        rec["resources"] = {r: v[k] for r, v in res.items()}
        rec["extra"] = _extras(df, k)
        smin, smax, sinit = (rec.get("soc_min", 0.0), rec.get("soc_max", 1.0),
                             rec.get("soc_init", 0.5))
        if smin > smax:
            errs.add(name, int(df.index[k]), "soc_min", smin,
                     f"soc_min must be <= soc_max ({smax:g})")
            continue
        if not smin <= sinit <= smax:
            errs.add(name, int(df.index[k]), "soc_init", sinit,
                     f"soc_init must lie in [soc_min, soc_max] = [{smin:g}, {smax:g}]")
            continue
        records.append(rec)
    if len(records) != len(df):
        return []
    return _row_models(df, name, lambda r: Node(**r), records, errs)


def _read_jobs(df: pd.DataFrame | None, errs: _Errors, rows: dict[str, dict[str, int]]
               ) -> list[Job]:
    name = "jobs.csv"
    if df is None:
        return []
    if not _check_columns(df, name, ("job_id", "gpus", "duration_min", "power_kw"), errs):
        return []
    ids = _ids(df, name, "job_id", errs)
    rows[name] = {i: int(r) for i, r in zip(ids, df.index, strict=True)}
    cols = {c: _floats(df, name, c, errs, **spec) for c, spec in _JOB_FLOATS.items()}
    times = {c: _times(df, name, c, errs) for c in _JOB_TIMES}
    strs = {c: _strs(df, c, d) for c, d in _JOB_STRS.items()}
    res = _resources(df, name, errs)
    records = []
    for k in range(len(df)):
        rec: dict[str, Any] = {"job_id": ids[k]}
        rec.update({c: v[k] for c, v in cols.items() if v[k] is not None})
        rec.update({c: v[k] for c, v in times.items() if v[k] is not None})
        rec.update({c: v[k] for c, v in strs.items() if v[k] is not None})
        rec["resources"] = {r: v[k] for r, v in res.items()}
        rec["extra"] = _extras(df, k)
        records.append(rec)
    return _row_models(df, name, lambda r: Job(**r), records, errs)


def _long(df: pd.DataFrame | None, name: str, key: str,
          required_values: Iterable[str], hz: Horizon, errs: _Errors,
          rows: dict[str, dict[str, int]]) -> tuple[pd.DataFrame, npt.NDArray[np.int64]] | None:
    """Common checks of a long-format (time, key, values…) file."""
    if df is None:
        return None
    if not _check_columns(df, name, ("time", key, *required_values), errs):
        return None
    slots = _slots(df, name, hz, errs)
    seen: dict[tuple[str, int], int] = {}
    rows[name] = {}
    for k, (row, kv) in enumerate(zip(df.index, df[key], strict=True)):
        rows[name].setdefault(str(kv), int(row))
        if kv == "":
            errs.add(name, int(row), key, "", "a value is required")
        if slots[k] < 0:
            continue
        if (kv, int(slots[k])) in seen:
            errs.add(name, int(row), "time", df["time"].iloc[k],
                     f"duplicate ({key}, time): first on row {seen[(kv, int(slots[k]))]}")
        seen[(kv, int(slots[k]))] = int(row)
    return df, slots


def _read_node_series(df: pd.DataFrame | None, hz: Horizon, node_ids: list[str], errs: _Errors,
                      rows: dict[str, dict[str, int]]) -> dict[str, NodeSeries]:
    name = "node_series.csv"
    got = _long(df, name, "node_id", (), hz, errs, rows)
    if got is None:
        return {}
    df, slots = got
    known = set(node_ids)
    for row, nid in zip(df.index, df["node_id"], strict=True):
        if nid and known and nid not in known:
            errs.add(name, int(row), "node_id", nid, "unknown node_id (not in nodes.csv)")
    pv = _floats(df, name, "pv_kw", errs, default=None, lo=0.0)
    head = _floats(df, name, "headroom_kw", errs, default=None, lo=0.0, inf=True)
    avail: list[bool | None]
    if "available" in df.columns:
        avail = [None if v == "" else b for v, b in
                 zip(df["available"], _bools(df, name, "available", True, errs), strict=True)]
    else:
        avail = [None] * len(df)
    T = hz.slots
    out: dict[str, NodeSeries] = {}
    per: dict[str, dict[str, list[Any]]] = {}
    for k, nid in enumerate(df["node_id"]):
        if slots[k] < 0 or nid not in known:
            continue
        d = per.setdefault(nid, {"pv_kw": [None] * T, "headroom_kw": [None] * T,
                                 "available": [None] * T})
        t = int(slots[k])
        d["pv_kw"][t], d["headroom_kw"][t], d["available"][t] = pv[k], head[k], avail[k]
    for nid, d in per.items():
        out[nid] = NodeSeries(
            pv_kw=None if "pv_kw" not in df.columns else [0.0 if v is None else v
                                                           for v in d["pv_kw"]],
            headroom_kw=None if "headroom_kw" not in df.columns else d["headroom_kw"],
            available=None if "available" not in df.columns else [True if v is None else v
                                                                   for v in d["available"]],
        )
    return out


def _read_prices(df: pd.DataFrame | None, hz: Horizon, errs: _Errors,
                 rows: dict[str, dict[str, int]]) -> dict[str, Tariff]:
    name = "prices.csv"
    got = _long(df, name, "tariff", ("price",), hz, errs, rows)
    if got is None:
        return {}
    df, slots = got
    price = _floats(df, name, "price", errs, required=True)
    exp = _floats(df, name, "export_price", errs, default=0.0)
    co2 = _floats(df, name, "carbon_g_per_kwh", errs, default=0.0, lo=0.0)
    T = hz.slots
    per: dict[str, list[list[float | None]]] = {}
    for k, tariff in enumerate(df["tariff"]):
        if slots[k] < 0 or tariff == "":
            continue
        arr = per.setdefault(tariff, [[None] * T, [0.0] * T, [0.0] * T])
        t = int(slots[k])
        arr[0][t], arr[1][t], arr[2][t] = price[k], exp[k], co2[k]
    out = {}
    for tariff, (p, e, c) in per.items():
        missing = [t for t in range(T) if p[t] is None]
        if missing:
            first = ", ".join(hz.time_of(t).isoformat() for t in missing[:3])
            errs.add(name, rows[name].get(tariff), "time", tariff,
                     f"tariff {tariff!r} does not cover every slot: {len(missing)} of {T} slots "
                     f"have no price (first: {first})")
            continue
        out[tariff] = Tariff(price=[float(v) for v in p if v is not None],
                             export_price=[float(v or 0.0) for v in e],
                             carbon_g_per_kwh=[float(v or 0.0) for v in c])
    return out


def _read_feeders(df: pd.DataFrame | None, hz: Horizon, errs: _Errors,
                  rows: dict[str, dict[str, int]]) -> dict[str, Feeder]:
    name = "feeders.csv"
    got = _long(df, name, "feeder", ("headroom_kw",), hz, errs, rows)
    if got is None:
        return {}
    df, slots = got
    head = _floats(df, name, "headroom_kw", errs, required=True, lo=0.0, inf=True)
    out: dict[str, list[float]] = {}
    for k, feeder in enumerate(df["feeder"]):
        if slots[k] < 0 or feeder == "":
            continue
        arr = out.setdefault(feeder, [math.inf] * hz.slots)
        arr[int(slots[k])] = math.inf if head[k] is None else float(head[k])  # type: ignore[arg-type]
    return {f: Feeder(headroom_kw=v) for f, v in out.items()}


def _read_latency(df: pd.DataFrame | None, node_ids: list[str], errs: _Errors,
                  rows: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    name = "latency.csv"
    if df is None or not _check_columns(df, name, ("node_id", "region", "latency_ms"), errs):
        return {}
    ms = _floats(df, name, "latency_ms", errs, required=True, lo=0.0)
    known = set(node_ids)
    out: dict[str, dict[str, float]] = {}
    rows[name] = {}
    for k, (row, nid, region) in enumerate(zip(df.index, df["node_id"], df["region"],
                                               strict=True)):
        rows[name].setdefault(nid, int(row))
        if known and nid not in known:
            errs.add(name, int(row), "node_id", nid, "unknown node_id (not in nodes.csv)")
            continue
        if region == "":
            errs.add(name, int(row), "region", "", "a region is required")
            continue
        if region in out.get(nid, {}):
            errs.add(name, int(row), "region", region, f"duplicate ({nid}, {region}) pair")
        if ms[k] is not None:
            out.setdefault(nid, {})[region] = float(ms[k])  # type: ignore[arg-type]
    return out


def _read_regions(df: pd.DataFrame | None, errs: _Errors, rows: dict[str, dict[str, int]]
                  ) -> dict[str, Region]:
    name = "regions.csv"
    if df is None or not _check_columns(df, name, ("region", "lat", "lon"), errs):
        return {}
    ids = _ids(df, name, "region", errs)
    lat = _floats(df, name, "lat", errs, required=True, lo=-90, hi=90)
    lon = _floats(df, name, "lon", errs, required=True, lo=-180, hi=180)
    rows[name] = {i: int(r) for i, r in zip(ids, df.index, strict=True)}
    return {i: Region(lat=a, lon=b) for i, a, b in zip(ids, lat, lon, strict=True)
            if a is not None and b is not None}


# ----------------------------------------------------------------------------- write


def _cell(v: Any) -> str:
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
            w.writerow([_cell(v) for v in r])


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return f'"{v.isoformat()}"'
    return repr(v)


def write_bundle(problem: Problem, path: str | os.PathLike[str]) -> Path:
    """Write a problem as a bundle directory that :func:`read_bundle` reads back equal.

    Files are written into a temporary sibling directory that then replaces
    ``path`` (which, if it exists, may hold only bundle files).

    Returns
    -------
    pathlib.Path
        The bundle directory.
    """
    return write_dir_atomically(path, lambda tmp: _write_all(problem, tmp),
                                allowed=BUNDLE_FILES, keep=("README.md",))


def _entity_row(obj: Node | Job, columns: list[str]) -> list[Any]:
    """Cells of a node or job row: ``res_*`` from resources, ``x_*`` from extra."""
    return [obj.resources.get(c[4:], 0.0) if c.startswith("res_") else
            obj.extra.get(c, "") if c.startswith("x_") else getattr(obj, c) for c in columns]


def _write_all(problem: Problem, d: Path) -> None:
    sc = problem.scenario
    lines = []
    for section, model in (("horizon", sc.horizon), ("objective", sc.objective),
                           ("battery", sc.battery), ("latency", sc.latency)):
        lines.append(f"[{section}]")
        for k, v in model.model_dump().items():
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

    _write_csv(d / "jobs.csv", jcols, (_entity_row(j, jcols) for j in problem.jobs))

    if problem.node_series:
        scols = ["pv_kw", "headroom_kw", "available"]
        used = [c for c in scols if any(getattr(s, c) is not None
                                        for s in problem.node_series.values())]

        def series_rows() -> Iterable[list[Any]]:
            for nid, s in problem.node_series.items():
                for t in range(hz.slots):
                    row: list[Any] = [times[t], nid]
                    for c in used:
                        seq = getattr(s, c)
                        v = None if seq is None else seq[t]
                        row.append(("1" if v else "0") if c == "available" and v is not None
                                   else v)
                    yield row

        _write_csv(d / "node_series.csv", ["time", "node_id", *used], series_rows())
    if problem.tariffs:
        _write_csv(d / "prices.csv", ["time", "tariff", "price", "export_price",
                                      "carbon_g_per_kwh"],
                   ([times[t], name, tf.price[t], tf.export_price[t], tf.carbon_g_per_kwh[t]]
                    for name, tf in problem.tariffs.items() for t in range(hz.slots)))
    if problem.feeders:
        _write_csv(d / "feeders.csv", ["time", "feeder", "headroom_kw"],
                   ([times[t], name, f.headroom_kw[t]]
                    for name, f in problem.feeders.items() for t in range(hz.slots)))
    if problem.latency_ms:
        _write_csv(d / "latency.csv", ["node_id", "region", "latency_ms"],
                   ([nid, region, ms] for nid, row in problem.latency_ms.items()
                    for region, ms in row.items()))
    if problem.regions:
        _write_csv(d / "regions.csv", ["region", "lat", "lon"],
                   ([name, r.lat, r.lon] for name, r in problem.regions.items()))
