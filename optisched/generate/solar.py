"""PV forecasts per node from pvlib: clear sky or a weather file, plane of array, PVWatts-style AC.

The chain, per node:

1. Solar position (``pvlib.location.Location.get_solarposition``) at the node's
   latitude/longitude, evaluated at the middle of each slot.
2. Horizontal irradiance: the Ineichen clear-sky model with pvlib's shipped Linke
   turbidity climatology (``Location.get_clearsky``), optionally scaled per hour
   of day by the clearness index ``GHI / GHI_clearsky`` of a weather file (one of
   the TMY files pvlib ships, e.g. ``723170TYA.CSV``, or the user's own CSV, see
   :func:`read_weather_csv`) for the same day of year.
3. Plane-of-array irradiance ``pvlib.irradiance.get_total_irradiance`` (isotropic
   sky, albedo 0.2) for the node's tilt and azimuth.
4. PVWatts-style DC → AC: ``P_dc = kWp · POA / 1000 W/m² · (1 + γ (T_cell − 25 °C))``
   with γ = −0.0037 /K and a NOCT-style cell temperature
   ``T_cell = T_air + POA · (45 − 20) / 800``; then ``P_ac = min(P_dc · η_sys, kWp · 1.0)``
   with η_sys = 0.86 (PVWatts' default 14 % system losses, Dobos 2014, NREL/TP-6A20-62641).
5. Optional forecast error: multiplicative AR(1) noise (seeded), clipped to
   ``[0, kWp]``.

All outputs are AC power [kW], 0 at night, never above the rated ``kwp``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "GAMMA_PDC",
    "SYSTEM_EFF",
    "clearness_by_hour",
    "pv_ac_kw",
    "read_weather_csv",
    "shipped_weather_files",
]

GAMMA_PDC = -0.0037
"""PVWatts temperature coefficient of power [1/K] (standard module)."""
SYSTEM_EFF = 0.86
"""DC→AC system efficiency (PVWatts default 14 % losses) [-]."""

Array = npt.NDArray[np.float64]


def shipped_weather_files() -> list[Path]:
    """TMY weather files shipped inside the installed pvlib (no download).

    Returns
    -------
    list of pathlib.Path
        ``*.csv``/``*.CSV`` TMY3 files under ``pvlib/data``.
    """
    import pvlib

    d = Path(pvlib.__path__[0]) / "data"
    return sorted(p for p in d.iterdir() if p.name.upper().endswith("TY.CSV")
                  or p.name.upper().endswith("TYA.CSV"))


def read_weather_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read hourly weather: a pvlib-shipped TMY3 file or a user CSV.

    A user CSV has a header row and the columns ``time`` (ISO 8601 with UTC
    offset, hourly, any year), ``ghi`` [W/m²] and optionally ``temp_air`` [°C].
    A TMY3 file (``pvlib.iotools.read_tmy3`` format) is recognized by its
    two-line header.

    Returns
    -------
    pandas.DataFrame
        Index: timezone-aware timestamps; columns ``ghi`` [W/m²], ``temp_air`` [°C].
    """
    p = Path(path)
    with open(p, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    if not first.lower().startswith("time"):
        import pvlib

        data, meta = pvlib.iotools.read_tmy3(str(p), map_variables=True)
        tmy = pd.DataFrame({"ghi": data["ghi"].astype(float),
                            "temp_air": data["temp_air"].astype(float)})
        tmy.attrs["latitude"] = float(meta["latitude"])
        tmy.attrs["longitude"] = float(meta["longitude"])
        return tmy
    df = pd.read_csv(p)
    if "ghi" not in df.columns:
        raise ValueError(f"{p}: weather CSV needs columns time, ghi [W/m2] (temp_air optional)")
    # keep the file's own clock: clearness is matched by local hour of day
    tz = pd.Timestamp(str(df["time"].iloc[0])).tz
    idx = pd.DatetimeIndex(pd.to_datetime(df["time"], utc=True)).tz_convert(tz)
    out = pd.DataFrame({"ghi": df["ghi"].astype(float).to_numpy()}, index=idx)
    out["temp_air"] = df["temp_air"].astype(float).to_numpy() if "temp_air" in df else 20.0
    return out


def clearness_by_hour(weather: pd.DataFrame, lat: float, lon: float,
                      day_of_year: int) -> Array:
    """Clearness index GHI / GHI_clearsky for each hour 0..23 of one day of a weather file.

    Parameters
    ----------
    weather : pandas.DataFrame
        From :func:`read_weather_csv`.
    lat, lon : float
        Location of the weather file [deg].
    day_of_year : int
        1..366; the file's day with that number is used.

    Returns
    -------
    numpy.ndarray
        Shape (24,) by the file's local clock hour, values in [0, 1.2]; 1.0 where the
        sun is down.
    """
    import pvlib

    day = weather[weather.index.day_of_year == day_of_year]
    if len(day) < 24:
        day = weather.iloc[:24]
    day = day.iloc[:24]
    loc = pvlib.location.Location(lat, lon)
    cs = loc.get_clearsky(day.index, model="ineichen")
    k = np.ones(24)
    ghi = day["ghi"].to_numpy(dtype=float)
    csg = cs["ghi"].to_numpy(dtype=float)
    hours = day.index.hour.to_numpy()
    ok = csg > 20.0
    k[hours[ok]] = np.clip(ghi[ok] / csg[ok], 0.0, 1.2)
    return k


@functools.lru_cache(maxsize=256)
def _sky(lat: float, lon: float, start: pd.Timestamp, slots: int, slot_minutes: int
         ) -> tuple[Array, Array, Array, Array, Array, Array]:
    """Solar position and clear-sky irradiance at slot mid-points (cached per site)."""
    import pvlib

    times = pd.date_range(start + pd.Timedelta(minutes=slot_minutes / 2), periods=slots,
                          freq=f"{slot_minutes}min")
    loc = pvlib.location.Location(lat, lon)
    sp = loc.get_solarposition(times)
    cs = loc.get_clearsky(times, model="ineichen", solar_position=sp)
    dni_extra = pvlib.irradiance.get_extra_radiation(times).to_numpy(dtype=float)
    return (sp["apparent_zenith"].to_numpy(dtype=float), sp["azimuth"].to_numpy(dtype=float),
            cs["ghi"].to_numpy(dtype=float), cs["dni"].to_numpy(dtype=float),
            cs["dhi"].to_numpy(dtype=float), dni_extra)


def pv_ac_kw(lat: float, lon: float, kwp: float, tilt: float, azimuth: float,
             start: pd.Timestamp, slots: int, slot_minutes: int, *,
             clearness: Array | None = None, temp_air: float = 20.0,
             forecast_error: float = 0.0, rng: np.random.Generator | None = None) -> Array:
    """AC output of a PV system per slot [kW] (mean over the slot, evaluated at its middle).

    Parameters
    ----------
    lat, lon : float
        Site [deg]; rounded to 0.05° for the cached solar geometry (~5 km).
    kwp : float
        Rated DC power [kWp]; AC output never exceeds it.
    tilt, azimuth : float
        Panel tilt from horizontal [deg] and azimuth [deg, 180 = south].
    start : pandas.Timestamp
        Start of slot 0, timezone-aware.
    slots, slot_minutes : int
        Horizon.
    clearness : numpy.ndarray, optional
        Clearness index per hour of day (24,) from :func:`clearness_by_hour`
        (indexed by the slot's local hour in ``start``'s UTC offset); None = clear sky.
    temp_air : float
        Air temperature [°C].
    forecast_error : float
        Standard deviation of the multiplicative forecast error [-] (0 = none).
    rng : numpy.random.Generator, optional
        Source of the forecast error.

    Returns
    -------
    numpy.ndarray
        Shape (slots,), AC power [kW], in [0, kwp].
    """
    import pvlib

    if kwp <= 0:
        return np.zeros(slots)
    zen, az, ghi, dni, dhi, extra = _sky(round(lat * 20) / 20, round(lon * 20) / 20,
                                         pd.Timestamp(start), slots, slot_minutes)
    if clearness is not None:
        mid = pd.Timestamp(start) + pd.to_timedelta(
            (np.arange(slots) + 0.5) * slot_minutes, unit="min")
        k = np.asarray(clearness, dtype=float)[np.asarray(mid.hour)]
        # overcast: beam scales with k², diffuse takes part of the rest (simple split)
        dni = dni * np.clip(k, 0, 1) ** 2
        dhi = dhi * np.clip(0.5 + 0.5 * k, 0, 1.2)
        ghi = ghi * k
    poa = pvlib.irradiance.get_total_irradiance(
        surface_tilt=tilt, surface_azimuth=azimuth, solar_zenith=zen, solar_azimuth=az,
        dni=dni, ghi=ghi, dhi=dhi, dni_extra=extra, model="isotropic", albedo=0.2,
    )["poa_global"]
    poa = np.nan_to_num(np.asarray(poa, dtype=float), nan=0.0).clip(min=0.0)
    poa[zen >= 90.0] = 0.0
    t_cell = temp_air + poa * (45.0 - 20.0) / 800.0
    p_dc = kwp * poa / 1000.0 * (1.0 + GAMMA_PDC * (t_cell - 25.0))
    p_ac = np.clip(p_dc * SYSTEM_EFF, 0.0, kwp)
    if forecast_error > 0 and rng is not None:
        e = np.empty(slots)
        prev = 0.0
        for t in range(slots):
            prev = 0.8 * prev + rng.normal(0.0, forecast_error * 0.6)
            e[t] = prev
        p_ac = np.clip(p_ac * (1.0 + e), 0.0, kwp)
    return p_ac
