"""The re-planner's inputs: series given as lists from ``now`` or keyed by time, checked.

:func:`parse_series` turns the new values of one series kind (a mapping id ->
list / pandas Series / mapping time -> value, or a DataFrame) into values by
absolute slot of a :class:`~optisched.rolling.store.SeriesStore`, each checked
against the rule of its kind; :func:`aware` reads a timezone-aware time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from optisched.arrays import FloatArray, IntArray
from optisched.rolling.store import SERIES_OWNER, SeriesStore

__all__ = ["SeriesInput", "TimeKeyed", "aware", "parse_series"]

TimeKeyed: TypeAlias = ("pd.Series[Any] | Mapping[datetime, Any] | Sequence[Any] "
                        "| np.ndarray[Any, Any]")
"""One series: values from ``now`` on (a list), or keyed by time (a Series or a mapping)."""
SeriesInput: TypeAlias = "Mapping[str, TimeKeyed] | pd.DataFrame"
"""Series of several ids: a mapping id -> series, or a DataFrame (columns = ids, index = times)."""

_GRID_TOL = 1e-6
"""Tolerance of "on the slot grid" [slots]."""


def aware(t: Any, what: str) -> datetime:
    """``t`` as a timezone-aware :class:`datetime` (a datetime, pandas Timestamp or ISO string).

    Raises
    ------
    ValueError
        ``t`` is naive (no UTC offset) or not a time.
    """
    if isinstance(t, str):
        try:
            t = datetime.fromisoformat(t)
        except ValueError:
            raise ValueError(f"{what}={t!r} is not an ISO 8601 time, e.g. "
                             "2026-06-01T08:00:00+00:00") from None
    if isinstance(t, pd.Timestamp):
        t = t.to_pydatetime()
    if not isinstance(t, datetime):
        raise ValueError(f"{what}={t!r} is not a time (give a timezone-aware datetime)")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what}={t.isoformat()} is naive: give a timezone-aware time, e.g. "
                         f"datetime(..., tzinfo=timezone.utc) or "
                         f"{t.replace(microsecond=0).isoformat()}+00:00")
    return t



_RULES: dict[str, tuple[float | None, bool, str]] = {
    # kind: lower bound, inf allowed, text
    "pv": (0.0, False, "a finite number >= 0 [kW]"),
    "headroom": (0.0, True, "a number >= 0 [kW] (inf = unlimited)"),
    "available": (None, False, "true/false (1/0)"),
    "price": (None, False, "a finite number [money/kWh]"),
    "export_price": (None, False, "a finite number [money/kWh]"),
    "carbon": (0.0, False, "a finite number >= 0 [g/kWh]"),
    "feeder_headroom": (0.0, True, "a number >= 0 [kW] (inf = unlimited)"),
}


def _values(kind: str, key: str, raw: Sequence[Any], time_at: Callable[[int], datetime]
            ) -> FloatArray:
    """``raw`` as floats (None / NaN = keep), each checked against the rule of ``kind``.

    ``time_at(i)`` is the time of value ``i`` (for the message naming a bad value).
    """
    lo, inf_ok, text = _RULES[kind]
    if kind != "available":
        try:
            arr = np.asarray(raw, dtype=float)  # None would raise: the loop below takes it
        except (TypeError, ValueError):
            arr = None
        if arr is not None and arr.ndim == 1:
            good = np.isnan(arr) | (np.isfinite(arr) | (inf_ok & (arr > 0)))
            if lo is not None:
                good &= np.isnan(arr) | (arr >= lo)
            if good.all():
                return arr
    out = np.full(len(raw), np.nan)
    for i, v in enumerate(raw):
        if v is None:
            continue
        if kind == "available":
            if isinstance(v, bool | np.bool_) or v in (0, 1):
                out[i] = float(bool(v))
                continue
            if isinstance(v, float) and math.isnan(v):
                continue
            raise ValueError(f"available for {key!r} at {time_at(i).isoformat()}: {v!r} must "
                             f"be {text}")
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{kind} for {key!r} at {time_at(i).isoformat()}: {v!r} is not a "
                             f"number; must be {text}") from None
        if math.isnan(x):
            continue
        if (math.isinf(x) and not (inf_ok and x > 0)) or (lo is not None and x < lo):
            raise ValueError(f"{kind} for {key!r} at {time_at(i).isoformat()}: {v!r} must be "
                             f"{text}")
        out[i] = x
    return out


def parse_series(kind: str, data: SeriesInput | None, known: Iterable[str], store: SeriesStore,
                 a_now: int, a_end: int) -> dict[str, tuple[IntArray, FloatArray]]:
    """New values of one kind as ``id -> (absolute slots, values)``, checked.

    Parameters
    ----------
    kind : str
        One of :data:`SERIES_KINDS`.
    data : mapping id -> series, DataFrame, or None
        A series is a list / array of values for the slots from ``now`` on (at least
        up to the current end ``a_end``; more values extend the horizon), or values
        keyed by time: a pandas Series with a timezone-aware DatetimeIndex or a
        mapping ``datetime -> value``; a DataFrame has one column per id. None or
        NaN keeps the current value. Times must lie on the slot grid; values for
        slots before ``now`` are ignored (the past is settled).
    known : iterable of str
        The ids this kind may name (node ids, tariffs or feeders).
    store : SeriesStore
        Gives the origin and slot length.
    a_now, a_end : int
        Absolute slot of ``now`` and end of the current horizon.

    Raises
    ------
    ValueError
        Unknown id, naive or off-grid time, too few values, or a value out of range.
    """
    if data is None:
        return {}
    items: Iterable[tuple[Any, Any]]
    if isinstance(data, pd.DataFrame):
        items = ((c, data[c]) for c in data.columns)
    else:
        items = data.items()
    ids = set(known)
    what = SERIES_OWNER.get(kind, "node_id")
    out: dict[str, tuple[IntArray, FloatArray]] = {}
    for key, seq in items:
        key = str(key)
        if key not in ids:
            raise ValueError(f"{kind}: unknown {what} {key!r}")
        if isinstance(seq, pd.Series) or isinstance(seq, Mapping):
            times, raw = _keyed(kind, key, seq)
            pos = np.array([store.position(t) for t in times], dtype=float)
            slots = np.rint(pos).astype(np.int64)
            off = np.nonzero(np.abs(pos - slots) > _GRID_TOL)[0]
            if off.size:
                raise ValueError(f"{kind} for {key!r}: time {times[off[0]].isoformat()} is not "
                                 f"on the slot grid ({store.slot_minutes}-minute slots from "
                                 f"{store.origin.isoformat()})")
        else:
            raw = list(seq)
            need = a_end - a_now
            if len(raw) < need:
                raise ValueError(f"{kind} for {key!r} has {len(raw)} values; the horizon from "
                                 f"now ({store.time_of(a_now).isoformat()}) has {need} slots "
                                 "(give at least that many: more extend the horizon; or key "
                                 "the values by time)")
            slots = a_now + np.arange(len(raw), dtype=np.int64)
            times = None
        at = (lambda i, ts=times: ts[i]) if times is not None else (
            lambda i, a=a_now: store.time_of(a + i))
        vals = _values(kind, key, raw, at)
        keep = slots >= a_now
        out[key] = (slots[keep], vals[keep])
    return out


def _keyed(kind: str, key: str, seq: pd.Series | Mapping[Any, Any]
           ) -> tuple[list[datetime], list[Any]]:
    """Times (aware) and values of a time-keyed series."""
    if isinstance(seq, pd.Series):
        idx = seq.index
        if not isinstance(idx, pd.DatetimeIndex):
            try:
                idx = pd.DatetimeIndex(idx)
            except (TypeError, ValueError):
                raise ValueError(f"{kind} for {key!r}: a Series needs a DatetimeIndex") from None
        if idx.tz is None:
            raise ValueError(f"{kind} for {key!r}: the Series index is naive: give it a "
                             "timezone (e.g. series.tz_localize('UTC'))")
        times = [t.to_pydatetime() for t in idx]
        return times, [None if pd.isna(v) else v for v in seq.tolist()]
    times = [aware(t, f"{kind} for {key!r}: time") for t in seq]
    return times, list(seq.values())
