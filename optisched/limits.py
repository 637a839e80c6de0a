"""Documented limits of every numeric input value: the one table the validators use.

Each entry of :data:`LIMITS` says which values a column of a bundle file (or a
key of ``scenario.toml``) accepts: a lower bound (inclusive, or exclusive when
``lo_open``), a physically sensible upper bound, and whether ``inf`` is allowed
(only where SPEC §1 gives ``inf`` as the default: unlimited). A value at a limit
is valid; one step past it is bad input, reported with file, row, column, value
and the limit. The bounds keep every value a solver sees far from floating-point
overflow; ``docs/limits.md`` is this table in prose (:func:`limits_markdown`
writes it, and a test keeps the two equal).

The bounds are generous on purpose: a regional data centre draws 1e4 kW, a large
grid connection 1e5 kW; 1e6 kW per job or node and 1e7 kW per connection or
feeder are beyond any site this tool plans for. Prices of 1e4 per kWh are
10 000 times a scarcity price; carbon intensities of 1e5 g/kWh 100 times lignite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optisched.arrays import BoolArray, FloatArray

__all__ = ["LIMITS", "Limit", "fmt_number", "limit", "limits_markdown"]


@dataclass(frozen=True)
class Limit:
    """The valid values of one numeric column.

    Attributes
    ----------
    lo : float or None
        Lower bound (None: none); inclusive unless ``lo_open``.
    hi : float or None
        Upper bound, inclusive (None: none).
    lo_open : bool
        True: values must be strictly greater than ``lo``.
    inf : bool
        True: ``inf`` (unlimited) is also valid.
    unit : str
        Unit of the value, for messages.
    integer : bool
        True: the value must be a whole number.
    """

    lo: float | None
    hi: float | None
    lo_open: bool = False
    inf: bool = False
    unit: str = ""
    integer: bool = False

    def ok(self, x: float) -> bool:
        """True when ``x`` is valid (NaN never is)."""
        if math.isnan(x):
            return False
        if math.isinf(x):
            return self.inf and x > 0
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        if self.hi is not None and x > self.hi:
            return False
        return not self.integer or x == int(x)

    def valid(self, values: FloatArray) -> BoolArray:
        """:meth:`ok` of every element of ``values`` (vectorized)."""
        x = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            good = np.isfinite(x)
            if self.lo is not None:
                good &= (x > self.lo) if self.lo_open else (x >= self.lo)
            if self.hi is not None:
                good &= x <= self.hi
            if self.integer:
                good &= x == np.round(x)
            if self.inf:
                good |= np.isposinf(x)
        return good

    def describe(self) -> str:
        """What is valid, e.g. ``a number > 0 and <= 1e3``."""
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {fmt_number(self.lo)}")
        if self.hi is not None:
            parts.append(f"<= {fmt_number(self.hi)}")
        txt = ("a whole number" if self.integer else "a number") + (
            " " + " and ".join(parts) if parts else "")
        if self.unit:
            txt += f" [{self.unit}]"
        return txt + (" or inf" if self.inf else "")

    def problem(self, x: float) -> str | None:
        """Why ``x`` is invalid (a message naming the limit), or None when it is valid."""
        if self.ok(x):
            return None
        if math.isnan(x):
            return f"NaN is not allowed; expected {self.describe()}"
        if math.isinf(x):
            return f"infinite values are not allowed here; expected {self.describe()}"
        if self.hi is not None and x > self.hi:
            unit = f" {self.unit}" if self.unit else ""
            return (f"above the limit {fmt_number(self.hi)}{unit} (docs/limits.md); "
                    f"expected {self.describe()}")
        if self.integer and x != int(x):
            return f"not a whole number; expected {self.describe()}"
        return f"out of range; expected {self.describe()}"


def fmt_number(x: float) -> str:
    """``1e6`` for 1000000.0, ``1e3`` for 1000, ``0.5`` for 0.5: short, exact for the
    table's numbers."""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if abs(x) >= 1e3:
        exp = round(math.log10(abs(x)))
        if abs(x) == 10.0**exp:
            return f"{'-' if x < 0 else ''}1e{exp}"
    txt = f"{x:g}"
    return txt.replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


_KW = 1e6          # power of one job or node [kW]
_GRID_KW = 1e7     # a grid connection, export limit, headroom, feeder, battery power [kW]
_KWH = 1e7         # battery energy [kWh]
_PRICE = 1e4       # money per kWh, either sign
_MONEY = 1e9       # money per event (switch, drop, hour late, ms over an SLO)
_CAP = 1e6         # GPUs, GPU memory [GB]
_RES = 1e9         # any further resource (cpu, mem_gb, ...)
_TRUST = 1e9       # trust levels, either sign
_MS = 1e6          # latency [ms]

LIMITS: dict[tuple[str, str], Limit] = {
    # ---- scenario.toml
    ("scenario.toml", "horizon.slots"): Limit(0, 1e6, lo_open=True, unit="slots", integer=True),
    ("scenario.toml", "objective.carbon_price_per_tonne"): Limit(0, 1e5, unit="money/t"),
    # CVaR level: the mean of the worst (1 − α) of the scenario costs; below 1 so that
    # the tail weights w_s / (1 − α) stay finite
    ("scenario.toml", "objective.cvar_alpha"): Limit(0, 0.999),
    ("scenario.toml", "objective.cvar_weight"): Limit(0, 1e3),
    ("scenario.toml", "latency.base_ms"): Limit(0, _MS, unit="ms"),
    ("scenario.toml", "latency.ms_per_km"): Limit(0, 1e3, unit="ms/km"),
    # ---- nodes.csv
    ("nodes.csv", "lat"): Limit(-90, 90, unit="deg"),
    ("nodes.csv", "lon"): Limit(-180, 180, unit="deg"),
    ("nodes.csv", "gpus"): Limit(0, _CAP, unit="GPUs"),
    ("nodes.csv", "res_*"): Limit(0, _RES),
    ("nodes.csv", "gpu_mem_gb"): Limit(0, _CAP, inf=True, unit="GB"),
    ("nodes.csv", "trust"): Limit(-_TRUST, _TRUST),
    ("nodes.csv", "speed"): Limit(0, 1e3, lo_open=True),
    ("nodes.csv", "power_factor"): Limit(0, 100),
    ("nodes.csv", "idle_kw"): Limit(0, _KW, unit="kW"),
    ("nodes.csv", "startup_cost"): Limit(0, _MONEY, unit="money"),
    ("nodes.csv", "shutdown_cost"): Limit(0, _MONEY, unit="money"),
    ("nodes.csv", "grid_kw"): Limit(0, _GRID_KW, inf=True, unit="kW"),
    ("nodes.csv", "export_kw"): Limit(0, _GRID_KW, unit="kW"),
    ("nodes.csv", "battery_kwh"): Limit(0, _KWH, unit="kWh"),
    ("nodes.csv", "soc_init"): Limit(0, 1),
    ("nodes.csv", "soc_min"): Limit(0, 1),
    ("nodes.csv", "soc_max"): Limit(0, 1),
    ("nodes.csv", "charge_kw"): Limit(0, _GRID_KW, unit="kW"),
    ("nodes.csv", "discharge_kw"): Limit(0, _GRID_KW, unit="kW"),
    ("nodes.csv", "eff_charge"): Limit(0, 1, lo_open=True),
    ("nodes.csv", "eff_discharge"): Limit(0, 1, lo_open=True),
    ("nodes.csv", "degradation_per_kwh"): Limit(0, _PRICE, unit="money/kWh"),
    ("nodes.csv", "demand_charge_per_kw"): Limit(0, 1e6, unit="money/kW"),
    # ---- jobs.csv
    ("jobs.csv", "gpus"): Limit(0, _CAP, unit="GPUs"),
    ("jobs.csv", "res_*"): Limit(0, _RES),
    ("jobs.csv", "duration_min"): Limit(0, 1e7, lo_open=True, unit="min"),
    ("jobs.csv", "power_kw"): Limit(0, _KW, unit="kW"),
    ("jobs.csv", "tardiness_per_hour"): Limit(0, _MONEY, unit="money/h"),
    ("jobs.csv", "drop_penalty"): Limit(0, _MONEY, unit="money"),
    ("jobs.csv", "latency_slo_ms"): Limit(0, _MS, unit="ms"),
    ("jobs.csv", "latency_per_ms"): Limit(0, _MONEY, unit="money/ms"),
    ("jobs.csv", "min_gpu_mem_gb"): Limit(0, _CAP, unit="GB"),
    ("jobs.csv", "min_trust"): Limit(-_TRUST, _TRUST),
    # ---- long-format series
    ("node_series.csv", "pv_kw"): Limit(0, _GRID_KW, unit="kW"),
    ("node_series.csv", "headroom_kw"): Limit(0, _GRID_KW, inf=True, unit="kW"),
    ("prices.csv", "price"): Limit(-_PRICE, _PRICE, unit="money/kWh"),
    ("prices.csv", "export_price"): Limit(-_PRICE, _PRICE, unit="money/kWh"),
    ("prices.csv", "carbon_g_per_kwh"): Limit(0, 1e5, unit="g/kWh"),
    ("feeders.csv", "headroom_kw"): Limit(0, _GRID_KW, inf=True, unit="kW"),
    ("latency.csv", "latency_ms"): Limit(0, _MS, unit="ms"),
    ("regions.csv", "lat"): Limit(-90, 90, unit="deg"),
    ("regions.csv", "lon"): Limit(-180, 180, unit="deg"),
    # ---- scenarios.csv (beyond SPEC v1): probabilities, summing to 1
    ("scenarios.csv", "weight"): Limit(0, 1, lo_open=True),
}
"""(file, column) -> valid values. ``res_*`` stands for every ``res_<name>`` column."""


def limit(file: str, column: str) -> Limit:
    """The limit of ``column`` in ``file`` (``res_<name>`` columns share ``res_*``).

    Raises
    ------
    KeyError
        For a column without a documented limit.
    """
    key = (file, "res_*" if column.startswith("res_") else column)
    return LIMITS[key]


def limits_markdown() -> str:
    """The table of :data:`LIMITS` as Markdown rows (the body of ``docs/limits.md``)."""
    lines = ["| file | column | valid values | unit |", "|---|---|---|---|"]
    for (file, column), lim in LIMITS.items():
        lo = "" if lim.lo is None else f"{'>' if lim.lo_open else '≥'} {fmt_number(lim.lo)}"
        hi = "" if lim.hi is None else f"≤ {fmt_number(lim.hi)}"
        valid = ", ".join(p for p in (lo, hi) if p) + (", or inf" if lim.inf else "")
        if lim.integer:
            valid += ", whole"
        lines.append(f"| `{file}` | `{column}` | {valid} | {lim.unit or '—'} |")
    return "\n".join(lines) + "\n"
