"""Bundle I/O: round trip and every invalid-input case, with file/row/column in the message."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from optisched import read_bundle, write_bundle
from optisched.errors import BundleError, InputError


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _errors(bundle: Path) -> list[InputError]:
    with pytest.raises(BundleError) as info:
        read_bundle(bundle)
    return info.value.errors


def _has(errors: list[InputError], file: str, row: int | None, column: str | None,
         fragment: str = "") -> bool:
    return any(e.file == file and e.row == row and e.column == column and fragment in e.message
               for e in errors)


def test_round_trip(tiny_dir: Path, tmp_path: Path) -> None:
    p = read_bundle(tiny_dir)
    out = write_bundle(p, tmp_path / "rt")
    q = read_bundle(out)
    assert q == p
    assert q.nodes[0].extra == {"x_owner": "alice"}
    assert q.jobs[0].extra == {"x_team": "vision"}
    assert q.nodes[2].charge_kw is None and q.nodes[0].charge_kw == 3.0
    assert math.isinf(q.nodes[2].gpu_mem_gb) is False and q.nodes[0].gpu_mem_gb == 24.0


def test_bom_and_whitespace_are_accepted(tiny_copy: Path) -> None:
    f = tiny_copy / "nodes.csv"
    text = f.read_text(encoding="utf-8")
    header, rest = text.split("\n", 1)
    header = ", ".join(c for c in header.split(","))  # stray spaces after commas
    f.write_bytes(b"\xef\xbb\xbf" + (header + "\n" + rest.replace(",home,", ", home ,"))
                  .encode("utf-8"))
    p = read_bundle(tiny_copy)
    assert p.nodes[0].kind == "home"


def test_missing_required_file(tiny_copy: Path) -> None:
    (tiny_copy / "jobs.csv").unlink()
    errs = _errors(tiny_copy)
    assert any(e.file == "jobs.csv" and "missing" in e.message for e in errs)


def test_missing_required_column(tiny_copy: Path) -> None:
    f = tiny_copy / "jobs.csv"
    _edit(f, "job_id,kind,gpus,", "job_id,kind,gpux,")
    errs = _errors(tiny_copy)
    assert _has(errs, "jobs.csv", 1, "gpus", "required column")
    assert _has(errs, "jobs.csv", 1, "gpux", "unknown column")


def test_unknown_column_but_x_prefix_allowed(tiny_copy: Path) -> None:
    _edit(tiny_copy / "nodes.csv", ",x_owner", ",colour")
    errs = _errors(tiny_copy)
    assert _has(errs, "nodes.csv", 1, "colour", "x_")


def test_duplicate_ids(tiny_copy: Path) -> None:
    _edit(tiny_copy / "jobs.csv", "\nj2,", "\nj1,")
    errs = _errors(tiny_copy)
    assert _has(errs, "jobs.csv", 3, "job_id", "duplicate id (first on row 2)")


def test_unknown_references(tiny_copy: Path) -> None:
    _edit(tiny_copy / "nodes.csv", ",residential,f1,2,", ",residentail,f9,2,")
    _edit(tiny_copy / "jobs.csv", ",regional1,2026-06-01T07", ",regional9,2026-06-01T07")
    _edit(tiny_copy / "latency.csv", "street1,north", "street9,north")
    errs = _errors(tiny_copy)
    assert _has(errs, "nodes.csv", 2, "tariff", "unknown tariff")
    assert _has(errs, "nodes.csv", 2, "feeder", "unknown feeder")
    assert _has(errs, "jobs.csv", 6, "pinned_node", "unknown node_id")
    assert _has(errs, "latency.csv", 3, "node_id", "unknown node_id")


def test_timestamp_off_grid_and_outside_horizon(tiny_copy: Path) -> None:
    f = tiny_copy / "node_series.csv"
    _edit(f, "2026-06-01T09:00:00+00:00,home1", "2026-06-01T09:10:00+00:00,home1")
    _edit(f, "2026-06-01T10:00:00+00:00,home1", "2026-06-01T18:00:00+00:00,home1")
    errs = _errors(tiny_copy)
    assert _has(errs, "node_series.csv", 4, "time", "off the slot grid")
    assert _has(errs, "node_series.csv", 6, "time", "outside the horizon")


def test_timestamp_without_offset_and_garbage(tiny_copy: Path) -> None:
    f = tiny_copy / "jobs.csv"
    _edit(f, "2026-06-01T09:00:00+00:00,2026-06-01T11:00:00+00:00",
          "2026-06-01T09:00:00,yesterday")
    errs = _errors(tiny_copy)
    assert _has(errs, "jobs.csv", 3, "release", "UTC offset")
    assert _has(errs, "jobs.csv", 3, "deadline", "ISO 8601")


def test_tariff_not_covering_every_slot(tiny_copy: Path) -> None:
    f = tiny_copy / "prices.csv"
    lines = f.read_text().splitlines()
    f.write_text("\n".join(ln for ln in lines if not ln.startswith("2026-06-01T12:00:00+00:00,"
                                                                   "business")) + "\n")
    errs = _errors(tiny_copy)
    assert any(e.file == "prices.csv" and e.column == "time" and "business" in e.message
               and "1 of 8 slots" in e.message for e in errs)


@pytest.mark.parametrize(("old", "new", "column", "fragment"), [
    (",0.1,false,true,false,0,0,3,", ",nan,false,true,false,0,0,3,", "idle_kw", "NaN"),
    (",0.1,false,true,false,0,0,3,", ",-0.1,false,true,false,0,0,3,", "idle_kw", ">= 0"),
    (",0.1,false,true,false,0,0,3,", ",inf,false,true,false,0,0,3,", "idle_kw", "infinite"),
    (",0.1,false,true,false,0,0,3,", ",0.1,maybe,true,false,0,0,3,", "can_sleep", "true/false"),
    (",0.1,false,true,false,0,0,3,", ",lots,false,true,false,0,0,3,", "idle_kw", "not a number"),
    (",home1,home,north,52.52", ",home1,home,north,95", "lat", "<= 90"),
])
def test_bad_numbers(tiny_copy: Path, old: str, new: str, column: str, fragment: str) -> None:
    f = tiny_copy / "nodes.csv"
    text = f.read_text()
    if old.startswith(",home1"):
        text = text.replace("\nhome1,home,north,52.52", "\nhome1,home,north,95", 1)
    else:
        assert old in text
        text = text.replace(old, new, 1)
    f.write_text(text)
    errs = _errors(tiny_copy)
    assert _has(errs, "nodes.csv", 2, column, fragment), errs


def test_inf_allowed_where_documented(tiny_copy: Path) -> None:
    _edit(tiny_copy / "nodes.csv", ",24,1,1.0,1.0,0.1,", ",inf,1,1.0,1.0,0.1,")
    assert math.isinf(read_bundle(tiny_copy).nodes[0].gpu_mem_gb)


def test_soc_min_above_soc_max(tiny_copy: Path) -> None:
    _edit(tiny_copy / "nodes.csv", ",10,0.5,0.2,1.0,3,3,", ",10,0.5,0.9,0.8,3,3,")
    errs = _errors(tiny_copy)
    assert _has(errs, "nodes.csv", 2, "soc_min", "soc_max")


def test_job_needs_more_than_any_node(tiny_copy: Path) -> None:
    _edit(tiny_copy / "jobs.csv", "\nj3,batch_inference,4,64,", "\nj3,batch_inference,16,64,")
    errs = _errors(tiny_copy)
    assert _has(errs, "jobs.csv", 4, "gpus", "largest gpus capacity is 8")


def test_empty_file(tiny_copy: Path) -> None:
    (tiny_copy / "latency.csv").write_text("")
    errs = _errors(tiny_copy)
    assert any(e.file == "latency.csv" and "empty" in e.message for e in errs)


def test_ragged_row(tiny_copy: Path) -> None:
    f = tiny_copy / "regions.csv"
    f.write_text("region,lat,lon\nnorth,52.52\nsouth,48.14,11.58\n")
    errs = _errors(tiny_copy)
    assert _has(errs, "regions.csv", 2, None, "2 fields but the header has 3")


def test_errors_are_collected_not_just_the_first(tiny_copy: Path) -> None:
    f = tiny_copy / "jobs.csv"
    text = f.read_text().replace(",0.6,", ",-1,").replace(",0.15,", ",abc,")
    f.write_text(text)
    errs = _errors(tiny_copy)
    assert _has(errs, "jobs.csv", 2, "power_kw") and _has(errs, "jobs.csv", 3, "power_kw")


def test_error_cap(tiny_copy: Path) -> None:
    rows = ["time,node_id,pv_kw"] + [f"2026-06-01T08:00:00+00:00,ghost{k},1" for k in range(80)]
    (tiny_copy / "node_series.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(BundleError) as info:
        read_bundle(tiny_copy)
    assert info.value.total >= 80 and len(info.value.errors) == 50
    assert "more errors" in str(info.value)


def test_bad_scenario(tiny_copy: Path) -> None:
    f = tiny_copy / "scenario.toml"
    _edit(f, "slot_minutes = 60", "slot_minutes = 7")
    errs = _errors(tiny_copy)
    assert any(e.file == "scenario.toml" and e.column == "horizon.slot_minutes"
               and "divide 1440" in e.message for e in errs)


def test_scenario_unknown_key(tiny_copy: Path) -> None:
    _edit(tiny_copy / "scenario.toml", "terminal = \"initial\"", "terminal = \"initial\"\nfoo = 1")
    errs = _errors(tiny_copy)
    assert any(e.column == "battery.foo" and "unknown key" in e.message for e in errs)


def test_pinned_start_off_grid(tiny_copy: Path) -> None:
    _edit(tiny_copy / "jobs.csv", "regional1,2026-06-01T07:00:00+00:00",
          "regional1,2026-06-01T07:30:00+00:00")
    errs = _errors(tiny_copy)
    assert _has(errs, "jobs.csv", 6, "pinned_start", "slot grid")


# ------------------------------------------------------------------ Parquet tables (issue 20)


@pytest.mark.parametrize("tables", [("node_series",), ("jobs",), ("node_series", "jobs")])
def test_parquet_tables_read_back_to_the_same_problem(tmp_path: Path,
                                                      tables: tuple[str, ...]) -> None:
    pytest.importorskip("pyarrow")
    from optisched.generate import generate

    p = generate("medium", seed=1)
    out = write_bundle(p, tmp_path / "b", parquet=tables)
    for t in tables:
        assert (out / f"{t}.parquet").exists() and not (out / f"{t}.csv").exists()
    q = read_bundle(out)
    assert q == p
    assert q.jobs[0].release is not None and p.jobs[0].release is not None
    assert q.jobs[0].release.utcoffset() == p.jobs[0].release.utcoffset()


def test_parquet_errors_name_the_parquet_file_and_its_row(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from optisched.generate import generate

    out = write_bundle(generate("small", seed=0), tmp_path / "b", parquet=("jobs",))
    table = pq.read_table(out / "jobs.parquet")
    gpus = table.column("gpus").to_pylist()
    gpus[2] = -1.0
    table = table.set_column(table.schema.get_field_index("gpus"), "gpus",
                             pa.array(gpus, type=pa.float64()))
    pq.write_table(table, out / "jobs.parquet")
    with pytest.raises(BundleError) as info:
        read_bundle(out)
    errs = info.value.errors
    assert any(e.file == "jobs.parquet" and e.row == 4 and e.column == "gpus" for e in errs)


def test_a_table_as_csv_and_parquet_is_an_error(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from optisched.generate import generate

    p = generate("small", seed=0)
    out = write_bundle(p, tmp_path / "b", parquet=("node_series",))
    write_bundle(p, tmp_path / "c")
    (out / "node_series.csv").write_bytes((tmp_path / "c" / "node_series.csv").read_bytes())
    with pytest.raises(BundleError) as info:
        read_bundle(out)
    assert any(e.file == "node_series.parquet" and "keep one" in e.message
               for e in info.value.errors)
