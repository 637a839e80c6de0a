"""Documented limits (optisched/limits.py, docs/limits.md): every numeric column at its
limit validates, one step past it is a located error naming the limit."""

from __future__ import annotations

import csv
import io
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from optisched.domain import Horizon, Job, Node, Tariff
from optisched.errors import BundleError, InputError
from optisched.io import read_bundle
from optisched.limits import LIMITS, Limit, limit, limits_markdown

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "datasets" / "tiny"

ROW = {"nodes.csv": 2, "jobs.csv": 2, "node_series.csv": 2, "prices.csv": 2, "feeders.csv": 2,
       "latency.csv": 2, "regions.csv": 2, "scenarios.csv": 2}
"""The row (header = 1) each column is set on; jobs with an SLO live on row 3."""
JOB_ROW3 = {"latency_slo_ms", "latency_per_ms"}
COLUMN = {"res_*": "res_mem_gb"}

# values that make one column's extreme value valid on its own (the rules between columns)
COMPANIONS: dict[tuple[str, str, str], dict[tuple[str, int, str], str]] = {
    ("nodes.csv", "soc_min", "hi"): {("nodes.csv", 2, "soc_init"): "1",
                                     ("nodes.csv", 2, "soc_max"): "1"},
    ("nodes.csv", "soc_init", "lo"): {("nodes.csv", 2, "soc_min"): "0"},
    ("nodes.csv", "soc_max", "lo"): {("nodes.csv", 2, "soc_min"): "0",
                                     ("nodes.csv", 2, "soc_init"): "0"},
    ("jobs.csv", "gpus", "hi"): {("nodes.csv", 4, "gpus"): "1e6"},
    ("jobs.csv", "res_*", "hi"): {("nodes.csv", 4, "res_mem_gb"): "1e9"},
}


# files the bundle lacks: the weights must still sum to 1 around the value tested (the
# value is set on row 2; at the lower limit a second scenario carries the weight)
FILES: dict[tuple[str, str], str] = {
    ("scenarios.csv", "hi"): "scenario,weight\ns1,1\n",
    ("scenarios.csv", "inf"): "scenario,weight\ns1,1\n",
    ("scenarios.csv", "lo"): "scenario,weight\ns1,0.5\ns2,1\n",
}


def _set(bundle: Path, file: str, row: int, column: str, value: str) -> None:
    if file == "scenario.toml":
        section, key = column.split(".")
        text = (bundle / file).read_text()
        new, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        if not n:
            new = text.replace(f"[{section}]\n", f"[{section}]\n{key} = {value}\n")
        (bundle / file).write_text(new)
        return
    rows = list(csv.reader(io.StringIO((bundle / file).read_text())))
    rows[row - 1][rows[0].index(column)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    (bundle / file).write_text(buf.getvalue())


def _errors(bundle: Path) -> list[InputError]:
    try:
        read_bundle(bundle)
    except BundleError as exc:
        return exc.errors
    return []


def _text(x: float) -> str:
    return repr(float(x)) if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def _cases() -> list[tuple[str, str, str, str, bool]]:
    """(file, column, side, value, valid) at and one step past each bound."""
    out = []
    for (file, column), lim in LIMITS.items():
        if column == "horizon.slots":
            continue  # a million slots: checked on Horizon below, not through a bundle
        if lim.hi is not None:
            out.append((file, column, "hi", _text(lim.hi), True))
            out.append((file, column, "hi", _text(np.nextafter(lim.hi, math.inf)), False))
        if lim.lo is not None:
            if lim.lo_open:
                out.append((file, column, "lo", _text(lim.lo), False))
                out.append((file, column, "lo", _text(np.nextafter(lim.lo, math.inf)), True))
            else:
                out.append((file, column, "lo", _text(lim.lo), True))
                out.append((file, column, "lo", _text(np.nextafter(lim.lo, -math.inf)), False))
        out.append((file, column, "inf", "inf", lim.inf))
    return out


CASES = _cases()


@pytest.mark.parametrize(("file", "column", "side", "value", "valid"), CASES,
                         ids=[f"{f}:{c}:{v}" for f, c, _s, v, _ok in CASES])
def test_at_and_past_each_limit(tmp_path: Path, file: str, column: str, side: str, value: str,
                                valid: bool) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(TINY, bundle)
    col = COLUMN.get(column, column)
    row = 3 if file == "jobs.csv" and column in JOB_ROW3 else ROW.get(file, 0)
    if (file, side) in FILES:
        (bundle / file).write_text(FILES[file, side])
    for (f, r, c), v in COMPANIONS.get((file, column, side), {}).items():
        _set(bundle, f, r, c, v)
    _set(bundle, file, row, col, value)
    errs = _errors(bundle)
    here = [e for e in errs if e.file == file and e.column == col]
    if valid:
        assert not here, here
        assert not errs, errs  # and nothing else follows from it
    else:
        assert len(errs) == 1, errs  # the root cause, once
        e = errs[0]
        assert e.file == file and e.column == col and e.value == value
        assert e.row == (row if file != "scenario.toml" else e.row)
        assert limit(file, column).describe() in e.message


def test_horizon_slots_limit() -> None:
    Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=1, slots=10**6)
    with pytest.raises(ValidationError, match="above the limit 1e6"):
        Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=1, slots=10**6 + 1)
    with pytest.raises(ValidationError, match="out of range"):
        Horizon(start="2026-06-01T00:00:00+00:00", slots=0)


def test_code_built_models_use_the_same_table() -> None:
    Node(node_id="n", gpus=1, battery_kwh=1e7, charge_kw=1e7, grid_kw=math.inf)
    with pytest.raises(ValidationError, match=r"battery_kwh = 1e12: above the limit 1e7 kWh"):
        Node(node_id="n", gpus=1, battery_kwh=1e12)
    with pytest.raises(ValidationError, match="power_kw"):
        Job(job_id="j", gpus=1, duration_min=60, power_kw=1e308)
    with pytest.raises(ValidationError, match="res_cpu"):
        Job(job_id="j", gpus=1, duration_min=60, power_kw=1, resources={"cpu": 1e10})
    with pytest.raises(ValidationError, match=r"price in slot 1 = 1e300"):
        Tariff(price=[0.1, 1e300], export_price=[0, 0], carbon_g_per_kwh=[0, 0])
    with pytest.raises(ValidationError, match="NaN"):
        Node(node_id="n", gpus=1, grid_kw=math.nan)


def test_limit_messages() -> None:
    lim = Limit(0, 1e3, lo_open=True)
    assert lim.problem(1e3) is None and lim.problem(0.5) is None
    assert "above the limit 1e3" in str(lim.problem(1000.5))
    assert "out of range" in str(lim.problem(0.0))
    assert "NaN" in str(lim.problem(math.nan))
    assert "infinite" in str(lim.problem(math.inf))
    assert Limit(0, 10, inf=True).ok(math.inf) and not Limit(0, 10, inf=True).ok(-math.inf)
    assert Limit(0, 10).valid(np.array([0, 10, 11, np.nan, np.inf])).tolist() == [
        True, True, False, False, False]


def test_docs_limits_page_is_the_table() -> None:
    page = (ROOT / "docs" / "limits.md").read_text(encoding="utf-8")
    assert limits_markdown() in page, "regenerate the table: python -c 'from " \
        "optisched.limits import limits_markdown; print(limits_markdown())'"
