"""Table-driven bad-input suite (issue 15): every case is a mutation of a copy of
``datasets/tiny`` run through the CLI, with the expected exit code, the located
message (file, row, column, value as written, what is valid), the false cascade
messages that must *not* appear, and never a traceback or pydantic internals.
"""

from __future__ import annotations

import csv
import io
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optisched.cli import EXIT_INFEASIBLE, EXIT_INPUT, app

TINY = Path(__file__).resolve().parents[1] / "datasets" / "tiny"
runner = CliRunner()

INTERNALS = ("Traceback", "[type=", "input_value=", "input_type=", "errors.pydantic.dev",
             "For further information", "internal error")
"""Never in any message of this suite."""


# ----------------------------------------------------------------------------- mutations


def edit(file: str, old: str, new: str) -> Callable[[Path], None]:
    """Replace the first ``old`` in ``file`` (which must hold it)."""

    def run(b: Path) -> None:
        text = (b / file).read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {file}"
        (b / file).write_text(text.replace(old, new, 1), encoding="utf-8")

    return run


def cell(file: str, row: int, column: str, value: str) -> Callable[[Path], None]:
    """Set one cell (``row`` as in messages: header = 1)."""

    def run(b: Path) -> None:
        rows = list(csv.reader(io.StringIO((b / file).read_text(encoding="utf-8"))))
        rows[row - 1][rows[0].index(column)] = value
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        (b / file).write_text(buf.getvalue(), encoding="utf-8")

    return run


def write(file: str, data: str | bytes) -> Callable[[Path], None]:
    def run(b: Path) -> None:
        if isinstance(data, bytes):
            (b / file).write_bytes(data)
        else:
            (b / file).write_text(data, encoding="utf-8")

    return run


def make_dir(file: str) -> Callable[[Path], None]:
    def run(b: Path) -> None:
        (b / file).unlink()
        (b / file).mkdir()

    return run


def header_only(file: str) -> Callable[[Path], None]:
    def run(b: Path) -> None:
        (b / file).write_text((b / file).read_text().splitlines()[0] + "\n")

    return run


def separated_by(file: str, sep: str) -> Callable[[Path], None]:
    def run(b: Path) -> None:
        (b / file).write_text((b / file).read_text().replace(",", sep))

    return run


def both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(b: Path) -> None:
        for s in steps:
            s(b)

    return run


def unchanged(b: Path) -> None:
    pass


SCENARIOS = TINY.parent / "tiny-scenarios"


def scenarios(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    """The bundle of ``datasets/tiny-scenarios`` (two scenarios, beyond SPEC v1), then
    ``steps``."""

    def run(b: Path) -> None:
        for f in SCENARIOS.iterdir():
            shutil.copyfile(f, b / f.name)
        for st in steps:
            st(b)

    return run


def drop_lines(file: str, fragment: str) -> Callable[[Path], None]:
    """Remove every line of ``file`` holding ``fragment``."""

    def run(b: Path) -> None:
        lines = (b / file).read_text(encoding="utf-8").splitlines(keepends=True)
        (b / file).write_text("".join(ln for ln in lines if fragment not in ln),
                              encoding="utf-8")

    return run


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    """One bad input: mutation, command, exit code, what must and must not be said.

    ``args`` may use ``{b}`` (the mutated bundle) and ``{tmp}`` (a scratch directory).
    ``expect`` fragments must each appear on one output line; ``absent`` fragments
    (false cascades) must not appear anywhere; ``errors`` is the exact count of the
    "invalid input (N errors)" header when given.
    """

    id: str
    mutate: Callable[[Path], None]
    expect: tuple[str, ...]
    absent: tuple[str, ...] = ()
    args: tuple[str, ...] = ("validate", "{b}")
    exit: int = EXIT_INPUT
    errors: int | None = None
    patch: Callable[[pytest.MonkeyPatch], None] | None = field(default=None, compare=False)


def _deny_read(name: str) -> Callable[[pytest.MonkeyPatch], None]:
    """Reading ``name`` raises PermissionError (what a chmod 000 file does for non-root)."""

    def patch(mp: pytest.MonkeyPatch) -> None:
        real = pathlib.Path.read_bytes

        def read_bytes(self: pathlib.Path) -> bytes:
            if self.name == name:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        mp.setattr(pathlib.Path, "read_bytes", read_bytes)

    return patch


def _deny_mkdtemp(mp: pytest.MonkeyPatch) -> None:
    """Creating directories beside ``--out`` fails (a read-only parent for non-root)."""

    def mkdtemp(*args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    mp.setattr(tempfile, "mkdtemp", mkdtemp)


PLAN = ("plan", "{b}", "--out", "{tmp}/P", "-s", "baseline", "-q")

CASES = [
    # ---- wrong exit codes or internal errors (all exit 1 now, located)
    Case("nodes-blank-cells", write("nodes.csv", " , ,\n,,\n"),
         ("nodes.csv, row 1: value ' , ,': no header row",),
         ("IndexError", "unknown node_id", "no node has that much"), errors=1),
    Case("scenario-horizon-int", write("scenario.toml", "horizon = 5\n"),
         ("scenario.toml, line 1, key horizon: value '5': must be a [horizon] table",),
         ("TypeError", "horizon.start is required"), errors=1),
    Case("nodes-is-directory", make_dir("nodes.csv"),
         ("nodes.csv: ", "is a directory; expected a file"),
         ("IsADirectoryError", "unknown node_id", "no node has that much"), errors=1),
    Case("scenario-is-directory", make_dir("scenario.toml"),
         ("scenario.toml: ", "is a directory; expected a file"), ("IsADirectoryError",),
         errors=1),
    Case("nodes-unreadable", unchanged, ("nodes.csv: cannot read", "permission denied"),
         ("PermissionError", "please report", "unknown node_id"), errors=1,
         patch=_deny_read("nodes.csv")),
    Case("scenario-unreadable", unchanged, ("scenario.toml: cannot read", "permission denied"),
         ("PermissionError",), errors=1, patch=_deny_read("scenario.toml")),
    Case("out-not-writable", unchanged, ("error: cannot write", "/P: Permission denied"),
         ("PermissionError", "please report"), args=PLAN, patch=_deny_mkdtemp),
    Case("release-date-only", cell("jobs.csv", 2, "release", "2026-06-01"),
         ("jobs.csv, row 2, column release: value '2026-06-01': a date without a time of day",
          "Z or ±HH:MM"), ("needs a UTC offset",), errors=1),
    Case("series-time-date-only", cell("node_series.csv", 2, "time", "2026-06-01"),
         ("node_series.csv, row 2, column time: value '2026-06-01': a date without a time",),
         ("duplicate", "outside the horizon"), errors=1),
    Case("start-soon", edit("scenario.toml", '"2026-06-01T08:00:00+00:00"', '"soon"'),
         ("scenario.toml, line 3, key horizon.start: value '\"soon\"': not a timestamp; "
          "expected an ISO 8601 date-time with a UTC offset",), ("needs a UTC offset",),
         errors=1),
    Case("start-toml-date", edit("scenario.toml", '"2026-06-01T08:00:00+00:00"', "2026-06-01"),
         ("key horizon.start: value '2026-06-01': a date without a time of day",), errors=1),
    Case("start-toml-local-datetime",
         edit("scenario.toml", '"2026-06-01T08:00:00+00:00"', "2026-06-01T08:00:00"),
         ("key horizon.start: value '2026-06-01T08:00:00': needs a UTC offset",), errors=1),
    Case("release-no-offset", cell("jobs.csv", 2, "release", "2026-06-01T08:00:00"),
         ("jobs.csv, row 2, column release: value '2026-06-01T08:00:00': needs a UTC offset "
          "(Z or ±HH:MM)",), errors=1),
    Case("release-offset-without-colon", cell("jobs.csv", 2, "release",
                                              "2026-06-01T08:00:00+0000"),
         ("column release: value '2026-06-01T08:00:00+0000': write the UTC offset as Z or "
          "±HH:MM",), errors=1),
    Case("release-impossible-date", cell("jobs.csv", 2, "release", "2026-13-01T08:00:00+00:00"),
         ("column release: value '2026-13-01T08:00:00+00:00': not a valid date-time",),
         errors=1),
    Case("release-z-offset-ok", cell("jobs.csv", 2, "release", "2026-06-01T08:00:00Z"),
         ("valid: 3 nodes, 5 jobs",), exit=0),
    # ---- usage errors: exit 1 with click's message, never 2 (= infeasible)
    Case("unknown-flag", unchanged, ("No such option: --bogus",),
         args=("plan", "{b}", "--out", "{tmp}/P", "--bogus")),
    Case("missing-out", unchanged, ("Missing option '--out'",), args=("plan", "{b}")),
    Case("time-limit-abc", unchanged, ("Invalid value for '--time-limit'",),
         args=(*PLAN, "--time-limit", "abc")),
    Case("bundle-not-found", unchanged, ("nope: bundle directory not found",),
         args=("plan", "{tmp}/nope", "--out", "{tmp}/P")),
    Case("bundle-is-a-file", unchanged, ("scenario.toml: bundle directory is not a directory",),
         args=("validate", "{b}/scenario.toml")),
    *(Case(f"plan-time-limit-{v}", unchanged,
           ("Invalid value for '--time-limit'", "finite number of seconds > 0"),
           args=(*PLAN, "--time-limit", v)) for v in ("0", "-1", "nan", "inf")),
    *(Case(f"plan-seed-{v}", unchanged, ("Invalid value for '--seed'",),
           args=(*PLAN, "--seed", v)) for v in ("-1", str(2**31), "99999999999")),
    *(Case(f"plan-mip-gap-{v}", unchanged, ("Invalid value for '--mip-gap'", "[0, 1)"),
           args=(*PLAN, "--mip-gap", v)) for v in ("1", "-0.1", "nan")),
    Case("plan-threads-0", unchanged, ("Invalid value for '--threads'",),
         args=(*PLAN, "--threads", "0")),
    Case("bound-time-limit-0", unchanged, ("Invalid value for '--time-limit'",),
         args=("bound", "{b}", "--time-limit", "0")),
    Case("bench-time-limit-nan", unchanged, ("Invalid value for '--time-limit'",),
         args=("bench", "--suite", "micro", "--solvers", "greedy", "--time-limit", "nan",
               "--out", "{tmp}/B")),
    Case("bench-seed-negative", unchanged, ("Invalid value for '--seed'",),
         args=("bench", "--suite", "micro", "--solvers", "greedy", "--time-limit", "1",
               "--out", "{tmp}/B", "--seed", "-1")),
    Case("bench-repeat-0", unchanged, ("Invalid value for '--repeat'",),
         args=("bench", "--suite", "micro", "--solvers", "greedy", "--time-limit", "1",
               "--out", "{tmp}/B", "--repeat", "0")),
    Case("replan-time-limit-negative", unchanged,
         ("Invalid value for '--time-limit'", "seconds >= 0"),
         args=("replan", "{tmp}/P", "{b}", "--events", "{tmp}/e.csv", "--out", "{tmp}/R",
               "--time-limit", "-1")),
    Case("replan-seed-huge", unchanged, ("Invalid value for '--seed'",),
         args=("replan", "{tmp}/P", "{b}", "--events", "{tmp}/e.csv", "--out", "{tmp}/R",
               "--seed", str(2**31))),
    Case("generate-seed-negative", unchanged, ("Invalid value for '--seed'",),
         args=("generate", "--preset", "tiny", "--out", "{tmp}/G", "--seed", "-1")),
    # ---- messages: the root cause once, values as written, hints, no internals
    Case("speed-zero", cell("nodes.csv", 2, "speed", "0"),
         ("nodes.csv, row 2, column speed: value '0': out of range; expected a number > 0 "
          "and <= 1e3",),
         ("unknown node_id", "Input should be", "'0.0'"), errors=1),
    Case("price-not-a-number", cell("prices.csv", 2, "price", "abc"),
         ("prices.csv, row 2, column price: value 'abc': not a number; expected a number",),
         ("unknown tariff", "does not cover"), errors=1),
    Case("price-time-bad", cell("prices.csv", 2, "time", "yesterday"),
         ("prices.csv, row 2, column time: value 'yesterday': not a timestamp",),
         ("unknown tariff", "does not cover"), errors=1),
    Case("nodes-empty-file", write("nodes.csv", ""),
         ("nodes.csv: file is empty; it needs at least a header row",),
         ("largest", "unknown node_id"), errors=1),
    Case("nodes-header-only", header_only("nodes.csv"), ("nodes.csv: no nodes",),
         ("largest", "unknown node_id"), errors=1),
    Case("power-not-a-number", cell("jobs.csv", 2, "power_kw", "lots"),
         ("jobs.csv, row 2, column power_kw: value 'lots': not a number; expected a number >= 0 "
          "and <= 1e6 [kW]",), ("Field required",), errors=1),
    Case("gpus-missing-value", cell("jobs.csv", 2, "gpus", ""),
         ("jobs.csv, row 2, column gpus: value '': a value is required",),
         ("Field required",), errors=1),
    Case("soc-as-written", both(cell("nodes.csv", 2, "soc_min", "0.90"),
                                cell("nodes.csv", 2, "soc_max", "0.80")),
         ("nodes.csv, row 2, column soc_min: value '0.90': soc_min must be <= soc_max "
          "(soc_max '0.80')",), ("'0.9'", "'0.8'"), errors=1),
    Case("deadline-before-release-as-written",
         both(cell("jobs.csv", 3, "release", "2026-06-01T11:00:00+00:00"),
              cell("jobs.csv", 3, "deadline", "2026-06-01T09:00:00+00:00")),
         ("jobs.csv, row 3, column deadline: value '2026-06-01T09:00:00+00:00': deadline must "
          "be after release (release '2026-06-01T11:00:00+00:00')",),
         ("2026-06-01 09:00:00",), errors=1),
    Case("latency-per-ms-without-slo", both(cell("jobs.csv", 3, "latency_slo_ms", ""),
                                            cell("jobs.csv", 3, "latency_per_ms", "0.01")),
         ("jobs.csv, row 3, column latency_per_ms: value '0.01': latency_per_ms needs "
          "latency_slo_ms",), errors=1),
    Case("nodes-semicolons", separated_by("nodes.csv", ";"),
         ("nodes.csv, row 1: value", "looks semicolon-separated", "','"),
         ("required column is missing", "unknown column", "unknown node_id"), errors=1),
    Case("prices-tabs", separated_by("prices.csv", "\t"), ("looks tab-separated",),
         ("unknown tariff",), errors=1),
    Case("series-unknown-node-once", edit("node_series.csv", ",home1,", ",hom1,"),
         ("node_series.csv, row 2, column node_id: value 'hom1': unknown node_id",),
         errors=1),
    Case("series-unknown-node-all-rows",
         lambda b: (b / "node_series.csv").write_text(
             (b / "node_series.csv").read_text().replace(",home1,", ",hom1,")),
         ("value 'hom1': unknown node_id (not in nodes.csv: home1, regional1, street1); also "
          "on 7 more rows",), errors=1),
    Case("unknown-tariff-still-reported", cell("nodes.csv", 3, "tariff", "residentail"),
         ("nodes.csv, row 3, column tariff: value 'residentail': unknown tariff; prices.csv "
          "has business, residential",), errors=1),
    Case("nodes-not-utf8", lambda b: (b / "nodes.csv").write_bytes(
        (b / "nodes.csv").read_bytes().replace(b"alice", b"al\xefce")),
         ("nodes.csv: not UTF-8 text",), ("UnicodeDecodeError",), errors=1),
    Case("unknown-column", edit("jobs.csv", ",x_team", ",team"),
         ("jobs.csv, row 1, column team: value 'team': unknown column; valid:",), errors=1),
    Case("pinned-node-of-failed-node", cell("nodes.csv", 4, "idle_kw", "-1"),
         ("nodes.csv, row 4, column idle_kw: value '-1': out of range",),
         ("pinned_node", "no node has that much", "unknown node_id"), errors=1),
    Case("duration-at-limit-infeasible-not-overflow", cell("jobs.csv", 2, "duration_min", "1e7"),
         ("job j1",), ("overflow", "-9223372036854775808"), args=PLAN, exit=EXIT_INFEASIBLE),
    # ---- scenarios (beyond SPEC v1): the scenario columns are validated like every other
    Case("scenarios-valid", scenarios(), ("valid: 3 nodes, 5 jobs",), exit=0),
    Case("scenario-unknown", scenarios(cell("prices.csv", 5, "scenario", "s3")),
         ("prices.csv, row 5, column scenario: value 's3': unknown scenario (not in "
          "scenarios.csv: s1, s2)",), ("does not cover", "unknown tariff"), errors=1),
    Case("scenario-unknown-all-rows", scenarios(edit("node_series.csv", ",s2,", ",s9,"),
                                                lambda b: (b / "node_series.csv").write_text(
                                                    (b / "node_series.csv").read_text()
                                                    .replace(",s2,", ",s9,"))),
         ("node_series.csv, row 18, column scenario: value 's9': unknown scenario (not in "
          "scenarios.csv: s1, s2); also on 15 more rows",), ("has no rows",), errors=1),
    Case("scenario-empty-cell", scenarios(cell("prices.csv", 5, "scenario", "")),
         ("prices.csv, row 5, column scenario: value '': a scenario is required: prices.csv "
          "has a scenario column (one of s1, s2)",), ("does not cover", "unknown tariff"),
         errors=1),
    Case("scenario-weights-not-one", scenarios(cell("scenarios.csv", 3, "weight", "0.5")),
         ("scenarios.csv, column weight: value '1.1': the weights of the 2 scenarios sum to "
          "1.1; they must sum to 1 (within 1e-09)",), errors=1),
    Case("scenario-weights-within-tolerance",
         scenarios(write("scenarios.csv", "scenario,weight\ns1,0.6\ns2,0.4000000000005\n")),
         ("valid: 3 nodes, 5 jobs",), exit=0),
    Case("scenario-weight-out-of-range", scenarios(cell("scenarios.csv", 3, "weight", "-0.4")),
         ("scenarios.csv, row 3, column weight: value '-0.4': out of range; expected a number "
          "> 0 and <= 1",), ("sum to",), errors=1),
    Case("scenario-weight-missing", scenarios(cell("scenarios.csv", 3, "weight", "")),
         ("scenarios.csv, row 3, column weight: value '': a value is required",), ("sum to",),
         errors=1),
    Case("scenario-duplicate-id", scenarios(write("scenarios.csv",
                                                  "scenario,weight\ns1,0.6\ns2,0.2\ns2,0.2\n")),
         ("scenarios.csv, row 4, column scenario: value 's2': duplicate id (first on row 3)",),
         errors=1),
    Case("scenario-missing-rows", scenarios(drop_lines("prices.csv", ",s2,")),
         ("prices.csv, column scenario: value 's2': scenario 's2' has no rows in prices.csv",),
         ("unknown tariff",), errors=1),
    Case("scenario-tariff-short-in-one", scenarios(drop_lines(
        "prices.csv", "2026-06-01T09:00:00+00:00,business,s2")),
         ("prices.csv, row 3, column time: tariff 'business' does not cover every slot in "
          "scenario 's2': 1 of 8 slots have no price",), ("unknown tariff",), errors=1),
    Case("scenario-duplicate-row", scenarios(cell("prices.csv", 4, "tariff", "business")),
         ("prices.csv, row 5, column time: value '2026-06-01T09:00:00+00:00': duplicate "
          "(tariff, time, scenario): first on row 4",), errors=2),
    Case("scenario-column-without-scenarios-csv",
         scenarios(lambda b: (b / "scenarios.csv").unlink()),
         ("node_series.csv, row 1, column scenario: value 'scenario': a scenario column needs "
          "scenarios.csv",
          "prices.csv, row 1, column scenario: value 'scenario': a scenario column needs "
          "scenarios.csv"), ("unknown tariff", "unknown scenario"), errors=2),
    Case("scenarios-header-only", scenarios(header_only("scenarios.csv")),
         ("scenarios.csv: no scenarios: add at least one row (scenario, weight)",),
         ("unknown scenario",), errors=1),
    Case("scenarios-unknown-column", scenarios(edit("scenarios.csv", "weight", "prob")),
         ("scenarios.csv, row 1, column prob: value 'prob': unknown column",
          "scenarios.csv, row 1, column weight: required column is missing"),
         ("unknown scenario",), errors=2),
    Case("cvar-alpha-too-high", edit("scenario.toml", "carbon_price_per_tonne = 50.0",
                                     "carbon_price_per_tonne = 50.0\ncvar_alpha = 1"),
         ("key objective.cvar_alpha: value '1': objective.cvar_alpha = 1: above the limit "
          "0.999",), errors=1),
    Case("cvar-weight-negative", edit("scenario.toml", "carbon_price_per_tonne = 50.0",
                                      "carbon_price_per_tonne = 50.0\ncvar_weight = -1"),
         ("key objective.cvar_weight: value '-1':", "out of range"), errors=1),
    Case("scenarios-plan", scenarios(), (), args=PLAN, exit=0),
]


def _run(case: Case, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    bundle = tmp / "b"
    shutil.copytree(TINY, bundle)
    case.mutate(bundle)
    args = [a.replace("{b}", str(bundle)).replace("{tmp}", str(tmp)) for a in case.args]
    if case.patch is not None:
        case.patch(monkeypatch)
    result = runner.invoke(app, args)
    monkeypatch.undo()
    return result.exit_code, result.output


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = _run(case, tmp_path, monkeypatch)
    lines = [" ".join(ln.replace("│", " ").split()) for ln in out.splitlines()]
    flat = " ".join(lines)
    assert code == case.exit, out
    for fragment in case.expect:
        assert any(fragment in ln for ln in lines) or (
            case.args[0] != "validate" and fragment in flat), (fragment, out)
    for fragment in (*case.absent, *INTERNALS):
        assert fragment not in out, (fragment, out)
    if case.errors is not None:
        s = "s" if case.errors != 1 else ""
        assert f"invalid input ({case.errors} error{s})" in out, out
    if case.exit == EXIT_INPUT and "--out" in case.args:
        assert not (tmp_path / "P").exists()


def test_the_table_covers_every_issue_case() -> None:
    ids = {c.id for c in CASES}
    for needed in ("nodes-blank-cells", "scenario-horizon-int", "nodes-is-directory",
                   "scenario-is-directory", "nodes-unreadable", "out-not-writable",
                   "release-date-only", "series-time-date-only", "start-soon", "unknown-flag",
                   "missing-out", "time-limit-abc", "bundle-not-found", "speed-zero",
                   "price-not-a-number", "nodes-empty-file", "power-not-a-number",
                   "soc-as-written", "nodes-semicolons"):
        assert needed in ids


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root reads and writes regardless of permissions")
def test_chmod_000_and_read_only_out(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(TINY, bundle)
    (bundle / "jobs.csv").chmod(0)
    try:
        r = runner.invoke(app, ["validate", str(bundle)])
    finally:
        (bundle / "jobs.csv").chmod(0o644)
    assert r.exit_code == EXIT_INPUT and "jobs.csv: cannot read" in r.output
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = runner.invoke(app, ["plan", str(bundle), "--out", str(ro / "P"), "-s", "baseline",
                                "-q"])
    finally:
        ro.chmod(0o755)
    assert r.exit_code == EXIT_INPUT and "cannot write" in r.output
    assert "Traceback" not in r.output


# ----------------------------------------------------------------------------- events files

EV_HEADER = ("time,event,job_id,node_id,tariff,value,at,until,gpus,duration_min,power_kw,"
             "deadline,latency_per_ms\n")
T9, T10 = "2026-06-01T09:00:00+00:00", "2026-06-01T10:00:00+00:00"


def ev(*rows: str) -> str:
    return EV_HEADER + "".join(r + "\n" for r in rows)


@dataclass(frozen=True)
class EventCase:
    """One bad events file for ``optisched replan`` on a plan of datasets/tiny."""

    id: str
    content: str | bytes
    expect: tuple[str, ...]
    absent: tuple[str, ...] = ()
    errors: int | None = 1


EVENT_CASES = [
    EventCase("unknown-job", ev(f"{T9},cancel,j99,,,,,,,,,,"),
              ("events.csv, row 2, column job_id: value 'j99': unknown job_id",)),
    EventCase("unknown-node", ev(f"{T9},outage,,nowhere,,,,,,,,,"),
              ("events.csv, row 2, column node_id: value 'nowhere': unknown node_id (nodes.csv "
               "has home1, regional1, street1)",)),
    EventCase("unknown-tariff", ev(f"{T9},price,,,nope,0.5,,,,,,,"),
              ("events.csv, row 2, column tariff: value 'nope': unknown tariff (prices.csv has "
               "business, residential)",)),
    EventCase("duplicate-arrival", ev(f"{T9},arrive,j9,,,,,,1,60,0.5,,",
                                      f"{T9},arrive,j9,,,,,,1,60,0.5,,"),
              ("events.csv, row 3, column job_id: value 'j9': job_id already used (row 2)",)),
    EventCase("arrival-reuses-an-id", ev(f"{T9},arrive,j1,,,,,,1,60,0.5,,"),
              ("events.csv, row 2, column job_id: value 'j1': job_id already used (jobs.csv)",)),
    EventCase("arrival-reuses-a-cancelled-id", ev(f"{T9},cancel,j3,,,,,,,,,,",
                                                  f"{T10},arrive,j3,,,,,,1,60,0.5,,"),
              ("events.csv, row 3, column job_id: value 'j3': job_id already used (jobs.csv, "
               "removed by row 2)",)),
    EventCase("cancel-twice", ev(f"{T9},cancel,j3,,,,,,,,,,", f"{T10},cancel,j3,,,,,,,,,,"),
              ("events.csv, row 3, column job_id: value 'j3': job j3 was already removed by "
               "row 2",)),
    EventCase("cancel-an-arrival-of-the-same-time", ev(f"{T9},arrive,j9,,,,,,1,60,0.5,,",
                                                       f"{T9},cancel,j9,,,,,,,,,,"),
              ("events.csv, row 3, column job_id: value 'j9': unknown job_id",)),
    EventCase("time-off-grid", ev("2026-06-01T09:30:00+00:00,cancel,j3,,,,,,,,,,"),
              ("events.csv, row 2, column time: value '2026-06-01T09:30:00+00:00': must be a "
               "slot boundary",)),
    EventCase("time-before-horizon", ev("2026-06-01T07:00:00+00:00,cancel,j3,,,,,,,,,,"),
              ("events.csv, row 2, column time: value '2026-06-01T07:00:00+00:00'",
               "in [2026-06-01T08:00:00+00:00, 2026-06-01T16:00:00+00:00)")),
    EventCase("time-after-horizon", ev("2026-06-02T09:00:00+00:00,cancel,j3,,,,,,,,,,",
                                       "2026-06-02T09:00:00+00:00,cancel,j4,,,,,,,,,,"),
              ("events.csv, row 2, column time: value '2026-06-02T09:00:00+00:00'",
               "row 3 has the same time"), ("row 3, column",)),
    EventCase("time-date-only", ev("2026-06-01,cancel,j3,,,,,,,,,,"),
              ("events.csv, row 2, column time: value '2026-06-01': a date without a time",),
              ("needs a UTC offset",)),
    EventCase("at-off-grid", ev(f"{T9},pv,,home1,,2,2026-06-01T10:30:00+00:00,,,,,,"),
              ("events.csv, row 2, column at: value '2026-06-01T10:30:00+00:00': must be a slot "
               "boundary",)),
    EventCase("at-after-horizon", ev(f"{T9},pv,,home1,,2,2026-06-01T17:00:00+00:00,,,,,,"),
              ("column at: value '2026-06-01T17:00:00+00:00': lies at or after the end of the "
               "horizon",)),
    EventCase("empty-file", b"", ("events.csv: file is empty",)),
    EventCase("header-only", EV_HEADER, ("events.csv: no events",)),
    EventCase("not-utf8", ev(f"{T9},cancel,j3,,,,,,,,,,").encode() + b"\xff\xfe",
              ("events.csv: not UTF-8 text",), ("UnicodeDecodeError",)),
    EventCase("soc-above-capacity", ev(f"{T9},soc,,home1,,500,,,,,,,"),
              ("events.csv, row 2, column value: value '500': above the capacity of node home1's "
               "battery (10 kWh",)),
    EventCase("soc-without-battery", ev(f"{T9},soc,,regional1,,1,,,,,,,"),
              ("events.csv, row 2, column node_id: value 'regional1': node regional1 has no "
               "battery",)),
    EventCase("soc-negative", ev(f"{T9},soc,,home1,,-1,,,,,,,"),
              ("events.csv, row 2, column value: value '-1': for a soc event (kWh): out of "
               "range",)),
    EventCase("outage-ends-before-it-starts", ev(f"{T10},outage,,street1,,,,{T9},,,,,"),
              (f"events.csv, row 2, column until: value '{T9}': the outage ends before it "
               "starts",)),
    EventCase("arrival-too-big", ev(f"{T9},arrive,j9,,,,,,100,60,0.5,,"),
              ("events.csv, row 2, column gpus: value '100': no node has that much",)),
    EventCase("arrival-power-past-limit", ev(f"{T9},arrive,j9,,,,,,1,60,1e308,,"),
              ("events.csv, row 2, column power_kw: value '1e308': above the limit 1e6 kW",)),
    EventCase("arrival-rule-no-internals", ev(f"{T9},arrive,j9,,,,,,1,60,0.5,,0.1"),
              ("events.csv, row 2, column latency_per_ms: value '0.1': latency_per_ms needs "
               "latency_slo_ms",)),
    EventCase("arrival-deadline-before-time", ev(f"{T10},arrive,j9,,,,,,1,60,0.5,{T9},"),
              (f"column deadline: value '{T9}': deadline must be after release (release empty "
               f"(default: time {T10}))",)),
    EventCase("cancel-of-an-ended-job", ev(f"{T9},cancel,j3,,,,,,,,,,",
                                           "2026-06-01T12:00:00+00:00,finish,j5,,,,,,,,,,"),
              ("events.csv, row 3, column job_id: value 'j5': cannot be applied at "
               "2026-06-01T12:00:00+00:00", "has left the plan"), errors=1),
]


@pytest.fixture(scope="module")
def tiny_plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan") / "P"
    r = runner.invoke(app, ["plan", str(TINY), "--out", str(out), "-s", "baseline", "-q"])
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.parametrize("case", EVENT_CASES, ids=[c.id for c in EVENT_CASES])
def test_bad_events(case: EventCase, tiny_plan_dir: Path, tmp_path: Path) -> None:
    f = tmp_path / "events.csv"
    if isinstance(case.content, bytes):
        f.write_bytes(case.content)
    else:
        f.write_text(case.content, encoding="utf-8")
    r = runner.invoke(app, ["replan", str(tiny_plan_dir), str(TINY), "--events", str(f), "--out",
                            str(tmp_path / "R"), "--time-limit", "0"])
    out = r.output.replace(str(f), "events.csv")
    assert r.exit_code == EXIT_INPUT, out
    for fragment in case.expect:
        assert any(fragment in ln for ln in out.splitlines()), (fragment, out)
    for fragment in (*case.absent, *INTERNALS):
        assert fragment not in out, (fragment, out)
    if case.errors is not None:
        s = "s" if case.errors != 1 else ""
        assert f"invalid input ({case.errors} error{s})" in out, out
    assert not (tmp_path / "R").exists()


def test_example_events_file_replans_tiny(tiny_plan_dir: Path, tmp_path: Path) -> None:
    example = TINY.parents[1] / "examples" / "events-tiny.csv"
    r = runner.invoke(app, ["replan", str(tiny_plan_dir), str(TINY), "--events", str(example),
                            "--out", str(tmp_path / "R"), "--time-limit", "0.05"])
    assert r.exit_code == 0, r.output
    steps = (tmp_path / "R" / "steps.csv").read_text().splitlines()
    assert len(steps) == 1 + 4 and all(",feasible," in s for s in steps[1:])
