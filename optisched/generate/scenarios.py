"""Scenarios of PV and prices for a generated problem, and held-out actual days (beyond SPEC v1).

:func:`draw_scenarios` turns a generated problem into one with ``K`` equally likely
scenarios and ``D`` *actual* days drawn from the same distribution independently of
the scenarios (``docs/algorithms/scenarios.md``, "Making scenarios"):

* **PV** (a documented forecast-error model): the problem's PV (the clear-sky
  forecast of :mod:`optisched.generate.solar` unless a weather file was given) times a
  clearness factor shared by every node of the metro area (weather is regional):
  ``k(h) = clip(m · exp(σ_d z − σ_d²/2) · exp(σ_h ε_h − σ_h²/2), 0, 1)`` per local hour
  ``h``, with ``z`` and ``ε_h`` standard normal, mean clearness :data:`MEAN_CLEARNESS`,
  day spread :data:`DAY_SIGMA` and hourly spread :data:`HOUR_SIGMA`.
* **Prices**: the day-ahead part of the dynamic tariffs (``home_dynamic``,
  ``industrial_dayahead``) is one day of the shipped SMARD week
  (:func:`optisched.generate.data.day_ahead_week`), drawn uniformly, times an hourly
  factor ``exp(σ_p ε_h − σ_p²/2)`` (:data:`PRICE_SIGMA`); the surcharges, the
  time-of-use and off-grid tariffs are the same in every scenario; carbon is that
  day's.
* **Weights**: ``1/K`` each.
"""

from __future__ import annotations

import math

import numpy as np

from optisched.arrays import FloatArray
from optisched.domain import NodeSeries, Problem, ScenarioData, Tariff
from optisched.generate.prices import HOUSEHOLD_SURCHARGE, INDUSTRIAL_SURCHARGE, make_tariffs

__all__ = ["DAY_SIGMA", "HOUR_SIGMA", "MEAN_CLEARNESS", "PRICE_SIGMA", "draw_outcome",
           "draw_scenarios"]

MEAN_CLEARNESS = 0.75
"""Mean ratio of actual to clear-sky PV of a June day in Berlin [-] (assumption)."""
DAY_SIGMA = 0.35
"""Spread of the day's clearness (lognormal σ) [-] (assumption)."""
HOUR_SIGMA = 0.15
"""Spread of the hourly clearness around the day's (lognormal σ) [-] (assumption)."""
PRICE_SIGMA = 0.10
"""Spread of the hourly day-ahead price around the drawn day's (lognormal σ) [-]
(assumption)."""
DYNAMIC = {"home_dynamic": HOUSEHOLD_SURCHARGE, "industrial_dayahead": INDUSTRIAL_SURCHARGE}
"""Tariffs with a day-ahead part, and their surcharges [€/kWh]."""


def _hours(problem: Problem) -> FloatArray:
    """Local hour (0..23) of every slot's midpoint."""
    hz = problem.horizon
    start_h = hz.start.hour + hz.start.minute / 60.0
    return np.asarray((start_h + (np.arange(hz.slots) + 0.5) * hz.slot_minutes / 60.0) % 24.0)


def draw_outcome(problem: Problem, rng: np.random.Generator
                 ) -> tuple[dict[str, NodeSeries], dict[str, Tariff]]:
    """One outcome of PV and prices (the model of the module docstring).

    Parameters
    ----------
    problem : Problem
        A generated problem without scenarios (its PV is the clear-sky forecast).
    rng : numpy.random.Generator
        Source of the draws.

    Returns
    -------
    node_series, tariffs
        The outcome's series of every node and tariff.
    """
    hz = problem.horizon
    T = hz.slots
    hour = _hours(problem).astype(int)
    z = rng.standard_normal()
    eps = rng.standard_normal(24)
    k = np.clip(MEAN_CLEARNESS * math.exp(DAY_SIGMA * z - DAY_SIGMA ** 2 / 2)
                * np.exp(HOUR_SIGMA * eps - HOUR_SIGMA ** 2 / 2), 0.0, 1.0)[hour]
    series = {nid: s.model_copy(update={"pv_kw": None if s.pv_kw is None else
                                        [round(float(v), 4) for v in np.asarray(s.pv_kw) * k]})
              for nid, s in problem.node_series.items()}
    day = int(rng.integers(7))
    noise = np.exp(PRICE_SIGMA * rng.standard_normal(24) - PRICE_SIGMA ** 2 / 2)[hour]
    fresh = make_tariffs(T, hz.slot_minutes, day)
    tariffs: dict[str, Tariff] = {}
    for name, tf in problem.tariffs.items():
        if name in DYNAMIC and name in fresh:
            da = (np.asarray(fresh[name].price) - DYNAMIC[name]) * noise
            tariffs[name] = Tariff(price=[round(float(v), 5) for v in da + DYNAMIC[name]],
                                   export_price=tf.export_price,
                                   carbon_g_per_kwh=fresh[name].carbon_g_per_kwh)
        else:
            tariffs[name] = tf
    return series, tariffs


def draw_scenarios(problem: Problem, k: int, seed: int = 0, actuals: int = 0
                   ) -> tuple[Problem, list[Problem]]:
    """``problem`` with ``k`` scenarios of PV and prices, and ``actuals`` held-out days.

    Parameters
    ----------
    problem : Problem
        A generated problem without scenarios.
    k : int
        Scenarios (>= 1), weight ``1/k`` each, ids ``s00``, ``s01``, …
    seed : int
        Seed; the scenarios and the actual days come from independent streams.
    actuals : int
        Held-out actual days.

    Returns
    -------
    problem : Problem
        With ``k`` scenarios (its own PV and price series moved into them).
    days : list of Problem
        The actual days: ``problem`` with one outcome's series and no scenarios.
    """
    if k < 1:
        raise ValueError(f"--scenarios must be at least 1, not {k}")
    if problem.scenarios:
        raise ValueError("the problem has scenarios already")
    width = max(2, len(str(k - 1)))
    scen: dict[str, ScenarioData] = {}
    rng = np.random.default_rng([seed, 19, 0])
    for s in range(k):
        series, tariffs = draw_outcome(problem, rng)
        scen[f"s{s:0{width}d}"] = ScenarioData(weight=1.0 / k, node_series=series,
                                               tariffs=tariffs)
    days = []
    rng_a = np.random.default_rng([seed, 19, 1])
    for _ in range(actuals):
        series, tariffs = draw_outcome(problem, rng_a)
        days.append(problem.model_copy(update={"node_series": series, "tariffs": tariffs}))
    out = problem.model_copy(update={"node_series": {}, "tariffs": {}, "scenarios": scen})
    return out, days
