"""Bad input never crashes: random cell edits give exit 0, 1 or 2 and never a traceback."""

from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from optisched.cli import app

TINY = Path(__file__).resolve().parents[1] / "datasets" / "tiny"
FILES = ["nodes.csv", "jobs.csv", "node_series.csv", "prices.csv", "feeders.csv",
         "latency.csv", "regions.csv"]
VALUES = st.one_of(
    st.sampled_from(["", "nan", "inf", "-1", "0", "1e308", "true", "maybe", "home1", "j1",
                     "2026-06-01T08:00:00", "2026-13-01T00:00:00+00:00", " ", "\"", "x,y",
                     "2026-06-01T08:07:00+00:00", "regional1", "-inf", "1.5"]),
    st.text(max_size=6),
)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=st.sampled_from(FILES), row=st.integers(0, 20), col=st.integers(0, 40),
       value=VALUES)
def test_random_cell_edits_never_traceback(file: str, row: int, col: int, value: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "b"
        shutil.copytree(TINY, bundle)
        path = bundle / file
        rows = list(csv.reader(path.read_text().splitlines()))
        r = row % len(rows)
        c = col % len(rows[r])
        rows[r][c] = value
        with open(path, "w", newline="") as fh:
            csv.writer(fh).writerows(rows)
        result = CliRunner().invoke(app, ["plan", str(bundle), "--out", str(Path(tmp) / "P"),
                                          "-s", "baseline"])
        assert result.exit_code in (0, 1, 2), (result.exit_code, result.output,
                                               result.exception)
        assert "Traceback" not in result.output
        if result.exit_code == 1:
            assert file in result.output or "scenario" in result.output or "error" in \
                result.output
