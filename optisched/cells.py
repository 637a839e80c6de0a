"""Cells of input files: reading a CSV table, parsing numbers, flags and timestamps.

Shared by the bundle reader (:mod:`optisched.io`) and the events reader
(:mod:`optisched.events`). Every problem becomes one located
:class:`~optisched.errors.InputError` (file, row with header = row 1, column,
the value as written, what is valid) in an :class:`ErrorList`, which also
remembers the rows that failed, so that what follows from a bad cell (a row
left out, an id then unknown elsewhere) is not reported a second time.
"""

from __future__ import annotations

import csv
import io as _io
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optisched.errors import MAX_ERRORS, BundleError, InputError
from optisched.limits import Limit

__all__ = [
    "TIMESTAMP_EXAMPLE",
    "ErrorList",
    "bools",
    "check_columns",
    "ids",
    "numbers",
    "parse_timestamp",
    "read_csv_frame",
    "read_text",
    "strs",
    "timestamps",
]

TIMESTAMP_EXAMPLE = "2026-06-01T00:15:00+00:00"
_TIMESTAMP_FORMAT = ("an ISO 8601 date-time with a UTC offset (YYYY-MM-DDTHH:MM[:SS] then Z or "
                     f"±HH:MM), e.g. {TIMESTAMP_EXAMPLE}")
_FULL = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|z|[+-]\d\d:\d\d)")
_NAIVE = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?")
_OTHER_OFFSET = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?[+-]\d\d(\d\d)?")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


class ErrorList:
    """Collects input errors (details kept up to the cap) and the rows they were found on."""

    def __init__(self) -> None:
        self.items: list[InputError] = []
        self.total = 0
        self._rows: dict[str, set[int]] = {}
        self._files: dict[str, int] = {}

    def add(self, file: str, row: int | None, column: str | None, value: Any, msg: str) -> None:
        """Record one error; ``value`` is the cell as written (None: no value to show)."""
        self.total += 1
        self._files[file] = self._files.get(file, 0) + 1
        if row is not None:
            self._rows.setdefault(file, set()).add(row)
        if len(self.items) < MAX_ERRORS:
            self.items.append(InputError(file, row, column,
                                         None if value is None else str(value), msg))

    def mark(self, file: str, row: int) -> None:
        """Record ``row`` of ``file`` as failed without a message of its own (a root cause
        reported on another row covers it)."""
        self._rows.setdefault(file, set()).add(row)

    def failed(self, file: str, row: int) -> bool:
        """True when an error was recorded on ``row`` of ``file``."""
        return row in self._rows.get(file, ())

    def count(self, file: str) -> int:
        """Errors recorded in ``file``."""
        return self._files.get(file, 0)

    def raise_if_any(self) -> None:
        """Raise one :class:`BundleError` with every error, if there is any: the files in the
        order their first error was found, each file's errors by row."""
        if self.total:
            first = {f: k for k, f in reversed(list(enumerate(e.file for e in self.items)))}
            items = sorted(self.items, key=lambda e: (first[e.file], e.row or 0))
            raise BundleError(items, self.total)


# ----------------------------------------------------------------------------- files


def read_text(path: Path, name: str, errs: ErrorList, required: bool) -> str | None:
    """The UTF-8 text of a file, or None (with a located error unless optional and absent).

    A directory, a file that cannot be read (permissions, I/O) and bytes that are
    not UTF-8 are errors naming the file; a UTF-8 byte-order mark is dropped.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if required:
            errs.add(name, None, None, None, f"required file is missing from {path.parent}")
        return None
    except IsADirectoryError:
        errs.add(name, None, None, None, f"{path} is a directory; expected a file")
        return None
    except PermissionError:
        errs.add(name, None, None, None, f"cannot read {path}: permission denied")
        return None
    except OSError as exc:
        errs.add(name, None, None, None, f"cannot read {path}: {exc.strerror or exc}")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        errs.add(name, None, None, None,
                 f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8")
        return None


def read_csv_frame(path: Path, name: str, errs: ErrorList, required: bool) -> pd.DataFrame | None:
    """A CSV file as a frame of stripped strings indexed by file row (header = row 1).

    Returns None (with located errors) for a missing required file, an unreadable,
    empty or malformed one, a header with empty or repeated names or rows with the
    wrong number of fields. A header that is one column holding ``;`` or a tab
    gets a hint that the file is not comma-separated.
    """
    text = read_text(path, name, errs, required)
    if text is None:
        return None
    if not text.strip():
        errs.add(name, None, None, None, "file is empty; it needs at least a header row")
        return None
    try:
        numbered = [(k + 1, r) for k, r in enumerate(csv.reader(_io.StringIO(text)))
                    if any(c.strip() for c in r)]  # blank lines are not rows
    except csv.Error as exc:
        errs.add(name, None, None, None, f"not valid CSV: {exc}")
        return None
    if not numbered:
        errs.add(name, 1, None, text.splitlines()[0] if text.splitlines() else "",
                 "no header row: every line is empty or holds only empty cells")
        return None
    line0, raw_header = numbered[0]
    header = [c.strip() for c in raw_header]
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        sep = "semicolon" if ";" in header[0] else "tab"
        errs.add(name, line0, None, raw_header[0],
                 f"the header is one column holding {sep}s: the file looks {sep}-separated; "
                 "optisched reads comma-separated CSV (save it with ',' as the separator)")
        return None
    if not _header_ok(header, name, line0, errs):
        return None
    body, rows = [], []
    bad = False
    for line, r in numbered[1:]:
        if len(r) != len(header):
            errs.add(name, line, None, ",".join(r),
                     f"row has {len(r)} fields but the header has {len(header)}")
            bad = True
            continue
        body.append([c.strip() for c in r])
        rows.append(line)
    if bad:
        return None
    df = pd.DataFrame(body, columns=header, dtype=object)
    df.index = pd.Index(rows, dtype=np.int64)
    return df


def _header_ok(header: list[str], name: str, line: int, errs: ErrorList) -> bool:
    ok = True
    seen: set[str] = set()
    for c in header:
        if not c:
            errs.add(name, line, None, "", "empty column name in the header")
            ok = False
        elif c in seen:
            errs.add(name, line, c, c, "column appears twice in the header")
            ok = False
        seen.add(c)
    return ok


def check_columns(df: pd.DataFrame, name: str, known: Iterable[str], required: Iterable[str],
                  errs: ErrorList, prefixes: tuple[str, ...] = ("x_",)) -> bool:
    """Every required column present, every other column known or user-prefixed."""
    known = set(known)
    ok = True
    for c in required:
        if c not in df.columns:
            errs.add(name, 1, c, None, "required column is missing")
            ok = False
    for c in df.columns:
        if c not in known and not c.startswith(prefixes):
            allowed = ", ".join(sorted(known))
            user = " or ".join(f"{p}…" for p in prefixes)
            errs.add(name, 1, c, c, f"unknown column; valid: {allowed} (and user columns {user})")
            ok = False
    return ok


# ----------------------------------------------------------------------------- cells


def parse_timestamp(text: str) -> datetime:
    """A full ISO 8601 date-time with an explicit UTC offset (``Z`` or ``±HH:MM``).

    Raises
    ------
    ValueError
        With a message saying what is wrong (a date without a time, no offset,
        an offset in another form, not a date-time at all, an impossible date).
    """
    v = text.strip()
    if _FULL.fullmatch(v):
        try:
            return datetime.fromisoformat(v[:-1] + "+00:00" if v[-1] in "Zz" else v)
        except ValueError as exc:
            raise ValueError(f"not a valid date-time ({exc}); expected {_TIMESTAMP_FORMAT}"
                             ) from None
    if _DATE.fullmatch(v):
        raise ValueError(f"a date without a time of day; expected {_TIMESTAMP_FORMAT}")
    if _NAIVE.fullmatch(v):
        raise ValueError(f"needs a UTC offset (Z or ±HH:MM), e.g. {TIMESTAMP_EXAMPLE}")
    if _OTHER_OFFSET.fullmatch(v):
        raise ValueError(f"write the UTC offset as Z or ±HH:MM, e.g. {TIMESTAMP_EXAMPLE}")
    raise ValueError(f"not a timestamp; expected {_TIMESTAMP_FORMAT}")


def timestamps(df: pd.DataFrame, name: str, col: str, errs: ErrorList) -> list[datetime | None]:
    """Parse a timestamp column (see :func:`parse_timestamp`); empty or bad = None."""
    if col not in df.columns:
        return [None] * len(df)
    cache: dict[str, datetime | str] = {}
    out: list[datetime | None] = []
    for row, v in zip(df.index, df[col], strict=True):
        if v == "":
            out.append(None)
            continue
        got = cache.get(v)
        if got is None:
            try:
                got = parse_timestamp(v)
            except ValueError as exc:
                got = str(exc)
            cache[v] = got
        if isinstance(got, str):
            errs.add(name, int(row), col, v, got)
            out.append(None)
        else:
            out.append(got)
    return out


def numbers(df: pd.DataFrame, name: str, col: str, errs: ErrorList, lim: Limit, *,
            default: float | None = None, required: bool = False) -> list[float | None]:
    """Parse a numeric column against its limit; empty = ``default``; a bad cell = ``default``
    and an error naming the value as written and what is valid."""
    n = len(df)
    if col not in df.columns:
        return [default] * n
    raw = df[col].astype(str)
    empty = (raw == "").to_numpy()
    vals = pd.to_numeric(raw.where(~empty, None), errors="coerce").to_numpy(dtype=float)
    out: list[float | None] = [default if e else float(v)
                               for e, v in zip(empty, vals, strict=True)]
    ok = lim.valid(vals)
    for k in np.nonzero(~empty & ~ok)[0]:
        value = raw.iloc[k]
        if np.isnan(vals[k]) and value.strip().lower() not in ("nan", "-nan", "+nan"):
            msg = f"not a number; expected {lim.describe()}"
        else:
            msg = lim.problem(float(vals[k])) or f"expected {lim.describe()}"
        errs.add(name, int(df.index[k]), col, value, msg)
        out[k] = default
    if required:
        for k in np.nonzero(empty)[0]:
            errs.add(name, int(df.index[k]), col, "", f"a value is required; expected "
                     f"{lim.describe()}")
    return out


def bools(df: pd.DataFrame, name: str, col: str, default: bool, errs: ErrorList) -> list[bool]:
    """Parse a true/false column (also 1/0, yes/no); empty = ``default``."""
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


def strs(df: pd.DataFrame, col: str, default: str | None) -> list[str | None]:
    """A text column; empty = ``default``."""
    if col not in df.columns:
        return [default] * len(df)
    return [default if v == "" else str(v) for v in df[col]]


def ids(df: pd.DataFrame, name: str, col: str, errs: ErrorList) -> list[str]:
    """An id column: every cell non-empty and unique."""
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
