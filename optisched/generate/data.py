"""Real series shipped as package data (``optisched/data``), extracted once by
``datasets/scripts/extract_series.py``; sources and licences in ``datasets/README.md``."""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["day_ahead_week", "resample_day", "slp_day"]


def _read(name: str) -> pd.DataFrame:
    with resources.files("optisched").joinpath("data", name).open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh)


@functools.lru_cache(maxsize=1)
def day_ahead_week() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """SMARD day-ahead price [€/MWh] and German grid carbon intensity [gCO2/kWh], hourly.

    Returns
    -------
    tuple of numpy.ndarray
        Both shape (168,): 2018-06-11 00:00 to 2018-06-17 23:00, Europe/Berlin.
    """
    df = _read("de_dayahead_carbon_2018-06.csv")
    return (df["price_eur_per_mwh"].to_numpy(dtype=float),
            df["carbon_g_per_kwh"].to_numpy(dtype=float))


@functools.lru_cache(maxsize=4)
def slp_day(profile: str, day: str = "workday") -> npt.NDArray[np.float64]:
    """BDEW standard load profile for one summer day [kW per 1,000 kWh/a], 96 quarter-hours.

    Parameters
    ----------
    profile : {"h0", "g0"}
        Household or commercial (general).
    day : {"workday", "sunday"}
        Day type.
    """
    df = _read("bdew_slp_summer.csv")
    return df.loc[df["day"] == day, f"{profile}_kw_per_mwh_a"].to_numpy(dtype=float)


def resample_day(values: npt.NDArray[np.float64], slots: int, slot_minutes: int,
                 start_minute: int = 0) -> npt.NDArray[np.float64]:
    """Step-resample a daily-periodic series onto slots [same unit].

    Parameters
    ----------
    values : numpy.ndarray
        Equally spaced values covering one day (or several days, then periodic in them).
    slots, slot_minutes : int
        Target grid.
    start_minute : int
        Minute (local day time of the series) of slot 0.
    """
    n = len(values)
    step = 1440.0 / n if n <= 96 else 60.0
    mids = start_minute + (np.arange(slots) + 0.5) * slot_minutes
    k = np.floor(mids / step).astype(np.int64) % n
    return values[k]
