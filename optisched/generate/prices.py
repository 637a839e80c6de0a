"""Tariffs: a real day-ahead series plus published surcharges, and time-of-use structures.

Tariffs (all in [€/kWh]; carbon [gCO2/kWh] from the shipped German series):

``home_dynamic``
    German dynamic household tariff (offered under §41a EnWG): SMARD day-ahead
    price of the day plus :data:`HOUSEHOLD_SURCHARGE` (grid fees, levies,
    electricity tax, VAT on the energy part, supplier margin). Export price: the
    EEG feed-in tariff for new rooftop systems up to 10 kWp, :data:`FEED_IN`.
``commercial_tou``
    A two-period time-of-use structure for commercial connections modelled on PG&E's
    B-19/E-TOU-C period layout (peak 16:00–21:00 every day), with peak/off-peak
    energy prices :data:`TOU_PEAK` / :data:`TOU_OFFPEAK`.
``industrial_dayahead``
    Medium-voltage site: day-ahead price plus :data:`INDUSTRIAL_SURCHARGE`; demand
    charges are on the node (``demand_charge_per_kw``).
``offgrid``
    Price 0 (no grid).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from optisched.domain import Tariff
from optisched.generate.data import day_ahead_week, resample_day

__all__ = [
    "FEED_IN",
    "HOUSEHOLD_SURCHARGE",
    "INDUSTRIAL_SURCHARGE",
    "TOU_OFFPEAK",
    "TOU_PEAK",
    "make_tariffs",
]

HOUSEHOLD_SURCHARGE = 0.25
"""Non-energy part of a German household price [€/kWh]: ~40 ct/kWh average price minus
~10-15 ct/kWh procurement (BDEW Strompreisanalyse 2024, order of magnitude)."""
INDUSTRIAL_SURCHARGE = 0.06
"""Non-energy part of a medium-voltage price [€/kWh] (assumption, order of magnitude)."""
FEED_IN = 0.081
"""EEG feed-in tariff, rooftop PV ≤ 10 kWp with partial feed-in, 2024 [€/kWh]
(Bundesnetzagentur, EEG-Förderung; 8.11 ct/kWh from 2024-02-01)."""
TOU_PEAK = 0.42
"""Peak price of ``commercial_tou`` [€/kWh] (assumption in the range of PG&E E-TOU-C)."""
TOU_OFFPEAK = 0.30
"""Off-peak price of ``commercial_tou`` [€/kWh] (assumption)."""
TOU_PEAK_HOURS = (16, 21)
"""Peak window [h local], PG&E E-TOU-C: 4-9 p.m. every day."""


def make_tariffs(slots: int, slot_minutes: int, day: int) -> dict[str, Tariff]:
    """The four tariffs over the horizon, starting at local midnight of shipped day ``day``.

    Parameters
    ----------
    slots, slot_minutes : int
        Horizon (slot 0 starts at local midnight).
    day : int
        0..6: which day of the shipped week (2018-06-11 Mon .. 06-17 Sun) slot 0 falls on.
    """
    price_mwh, carbon = day_ahead_week()
    start_min = (day % 7) * 1440
    da = resample_day(price_mwh, slots, slot_minutes, start_min) / 1000.0
    co2 = resample_day(carbon, slots, slot_minutes, start_min)
    hour = ((np.arange(slots) + 0.5) * slot_minutes / 60.0) % 24.0
    peak = (hour >= TOU_PEAK_HOURS[0]) & (hour < TOU_PEAK_HOURS[1])
    tou = np.where(peak, TOU_PEAK, TOU_OFFPEAK)

    def tariff(price: npt.NDArray[np.float64], export: float) -> Tariff:
        return Tariff(price=[round(float(v), 5) for v in price],
                      export_price=[export] * slots,
                      carbon_g_per_kwh=[float(v) for v in co2])

    return {
        "home_dynamic": tariff(da + HOUSEHOLD_SURCHARGE, FEED_IN),
        "commercial_tou": tariff(tou, 0.0),
        "industrial_dayahead": tariff(da + INDUSTRIAL_SURCHARGE, 0.0),
        "offgrid": Tariff(price=[0.0] * slots, export_price=[0.0] * slots,
                          carbon_g_per_kwh=[0.0] * slots),
    }
