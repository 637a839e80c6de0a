"""Formatting of the report: numbers for people, escaped text, the scenario's clock,
JSON-safe series."""

from __future__ import annotations

import html
import math
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from optisched import viz
from optisched.domain import Problem

__all__ = ["Clock", "clean", "esc", "fmt_number", "report_timezone", "snap", "stepped"]


def fmt_number(v: float | None, digits: int = 3) -> str:
    """A number for people: thousands separators, no exponent, noise shown as 0.

    Magnitudes below :data:`optisched.viz.DISPLAY_TOL` print as ``0``; from
    1,000 up no decimals; below that ``digits`` significant digits (at most two
    decimals from 1 up). None, NaN and inf print as ``–``.
    """
    if v is None or not math.isfinite(v):
        return "–"
    a = abs(v)
    if a < viz.DISPLAY_TOL:
        return "0"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 1:
        dec = max(0, min(2, digits - 1 - math.floor(math.log10(a))))
        return f"{v:.{dec}f}"
    dec = digits - 1 - math.floor(math.log10(a))
    return f"{v:.{min(dec, 8)}f}".rstrip("0")


def snap(v: float) -> float:
    """Rounding noise (below :data:`optisched.viz.DISPLAY_TOL`) as 0."""
    return 0.0 if abs(v) < viz.DISPLAY_TOL else v


def esc(x: object) -> str:
    """``x`` as HTML text (quotes escaped)."""
    return html.escape(str(x), quote=True)


def report_timezone(problem: Problem) -> tzinfo:
    """The scenario's time zone: its zone name when it has one, else the horizon's UTC offset."""
    for owner in (problem.scenario, problem.horizon):
        name = getattr(owner, "timezone", None)
        if isinstance(name, str) and name:
            return ZoneInfo(name)
    tz = problem.horizon.start.tzinfo
    assert tz is not None  # Horizon requires an offset
    return tz


def _zone_label(problem: Problem, tz: tzinfo) -> str:
    off = problem.horizon.start.astimezone(tz).utcoffset() or timedelta(0)
    mins = int(off.total_seconds() // 60)
    sign = "+" if mins >= 0 else "−"
    offset = f"UTC{sign}{abs(mins) // 60:02d}:{abs(mins) % 60:02d}"
    return f"{tz} ({offset})" if isinstance(tz, ZoneInfo) else offset


class Clock:
    """Slot numbers to local clock times of the scenario."""

    def __init__(self, problem: Problem) -> None:
        self.tz = report_timezone(problem)
        self.start = problem.horizon.start.astimezone(self.tz)
        self.step = timedelta(minutes=problem.horizon.slot_minutes)
        self.label = _zone_label(problem, self.tz)
        self.days = len({(self.start + k * self.step).date()
                         for k in range(problem.horizon.slots)})

    def at(self, slot: int) -> datetime:
        return (self.start + slot * self.step).astimezone(self.tz)

    def axis(self, slots: int) -> list[str]:
        """Local wall-clock strings of slot edges ``0..slots`` for a plotly date axis."""
        return [self.at(k).strftime("%Y-%m-%d %H:%M") for k in range(slots + 1)]

    def text(self, slot: int | None) -> str:
        if slot is None:
            return ""
        t = self.at(slot)
        same_day = self.days == 1 and t.date() == self.start.date()
        return t.strftime("%H:%M") if same_day else t.strftime("%d %b %H:%M")


def clean(a: npt.ArrayLike, digits: int = 5) -> list[float | None]:
    """A float array as a JSON-safe list: rounding noise 0, non-finite None, ~digits kept."""
    x = np.asarray(a, dtype=float)
    x = np.where(np.abs(x) < viz.DISPLAY_TOL, 0.0, x)
    out: list[float | None] = []
    for v in x.tolist():
        out.append(float(f"{v:.{digits}g}") if math.isfinite(v) else None)
    return out


def stepped(a: npt.ArrayLike) -> list[float | None]:
    """Per-slot values with the last one repeated, for ``hv`` steps over slot edges."""
    x = np.asarray(a, dtype=float)
    return clean(np.concatenate([x, x[-1:]]) if x.size else x)
