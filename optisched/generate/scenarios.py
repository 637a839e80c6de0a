"""Scenarios of PV, prices and headroom for a generated problem, and held-out actual days
(beyond SPEC v1).

:func:`draw_scenarios` turns a generated problem into one with ``K`` equally likely
scenarios and ``D`` *actual* days drawn from the same distribution independently of
the scenarios (``docs/algorithms/scenarios.md``, "Making scenarios"). The problem's own
series are the forecast; each outcome is the forecast with forecast errors:

* **PV**, per *weather cell*: a node within :data:`CELL_RADIUS_KM` of the centre of its
  region (a Berlin district) is in that district's cell, any other node (a regional
  site, the off-grid node) is a cell of its own at its place. Cell ``c`` gets the
  clearness ``k_c(h) = clip(m · exp(σ_d z_c − σ_d²/2) · exp(σ_h ε_{c,h} − σ_h²/2), 0, 1)``
  per local hour ``h`` (mean :data:`MEAN_CLEARNESS`, spreads :data:`DAY_SIGMA`,
  :data:`HOUR_SIGMA`), ``z`` and every hour's ``ε_{·,h}`` standard normal and
  correlated between cells by ``exp(−d/L)`` of the distance ``d`` between the cells
  (``L`` = :data:`DAY_LENGTH_KM` for the day's factor, :data:`HOUR_LENGTH_KM` for the
  hourly one): the exponential decay of the correlation of irradiance with distance,
  faster the shorter the time scale, of Perez et al. (2012) and Gafurov et al. (2015).
  A node's PV is its forecast times its cell's clearness; an off-grid node's (wave power
  plus PV) only above its least value, the wave power of the night.
* **Prices**: the forecast day-ahead part of the dynamic tariffs (``home_dynamic``,
  ``industrial_dayahead``: the tariff minus its surcharge) plus ``±Δ``, where ``Δ`` is
  one of the six real day-to-day changes of the shipped SMARD week
  (:func:`optisched.generate.data.day_ahead_week`, day ``d+1`` minus day ``d`` hour by
  hour: the error of a persistence forecast), drawn uniformly with a random sign (so the
  errors are centred). They carry the week's real spreads: the morning and evening
  ramps, and the Sunday midday trough of 0.1 €/MWh against ~45 €/MWh on Saturday.
  Carbon intensity moves by the same pair of days' change (at least 0). Surcharges, the
  time-of-use and the off-grid tariffs are the same in every scenario.
* **Headroom** of homes and their low-voltage feeders: a home's household load (its
  connection minus its forecast headroom) times
  ``exp(σ_c η_h + σ_i ε_{n,h} − (σ_c² + σ_i²)/2)``, a factor common to every home
  (:data:`LOAD_COMMON_SIGMA`) and one of its own (:data:`LOAD_HOME_SIGMA`) per hour;
  its headroom and its feeder's share (:data:`~optisched.generate.archetypes.FEEDER_SHARE_KW`
  minus the load) follow.
* **Weights**: ``1/K`` each.

References: R. Perez, S. Kivalov, J. Schlemmer, K. Hemker, T. Hoff, *Short-term irradiance
variability: preliminary estimation of station pair correlation as a function of distance*,
Solar Energy 86 (2012) 2170-2176; T. Gafurov, J. Usaola, M. Prodanovic, *Incorporating
spatial correlation into stochastic generation of solar radiation data*, Solar Energy 115
(2015) 74-84. The lengths and spreads are our assumptions in line with their findings
(correlation near 1 within a few km, falling with distance, slower for daily values).
"""

from __future__ import annotations

import functools

import numpy as np

from optisched.arrays import FloatArray
from optisched.domain import Feeder, NodeSeries, Problem, ScenarioData, Tariff
from optisched.generate.archetypes import BERLIN_DISTRICTS, FEEDER_SHARE_KW
from optisched.generate.data import day_ahead_week, resample_day
from optisched.generate.prices import HOUSEHOLD_SURCHARGE, INDUSTRIAL_SURCHARGE
from optisched.geo import great_circle_km

__all__ = ["CELL_RADIUS_KM", "DAY_LENGTH_KM", "DAY_SIGMA", "HOUR_LENGTH_KM", "HOUR_SIGMA",
           "LOAD_COMMON_SIGMA", "LOAD_HOME_SIGMA", "MEAN_CLEARNESS", "draw_outcome",
           "draw_scenarios", "weather_cells"]

MEAN_CLEARNESS = 0.75
"""Mean ratio of actual to clear-sky PV of a June day in Berlin [-] (assumption)."""
DAY_SIGMA = 0.35
"""Spread of the day's clearness of a cell (lognormal σ) [-] (assumption)."""
HOUR_SIGMA = 0.25
"""Spread of a cell's hourly clearness around its day's (lognormal σ) [-] (assumption)."""
DAY_LENGTH_KM = 60.0
"""Correlation length of the day's clearness between cells [km] (assumption): two
districts 10 km apart correlate at 0.85, a regional site 80 km away at 0.26."""
HOUR_LENGTH_KM = 8.0
"""Correlation length of the hourly clearness between cells [km] (assumption): single
clouds are a few km across, so neighbouring districts' hours differ."""
CELL_RADIUS_KM = 15.0
"""A node this close to its region's centre shares that district's weather [km]."""
LOAD_COMMON_SIGMA = 0.10
"""Spread of the household-load error common to every home (lognormal σ) [-]
(assumption: weather- and weekday-driven deviations of the whole population)."""
LOAD_HOME_SIGMA = 0.30
"""Spread of one home's own hourly household-load error (lognormal σ) [-] (assumption:
a single household deviates from the BDEW population profile by tens of per cent)."""
DYNAMIC = {"home_dynamic": HOUSEHOLD_SURCHARGE, "industrial_dayahead": INDUSTRIAL_SURCHARGE}
"""Tariffs with a day-ahead part, and their surcharges [€/kWh]."""


def _hours(problem: Problem) -> FloatArray:
    """Local hour (0..23) of every slot's midpoint."""
    hz = problem.horizon
    start_h = hz.start.hour + hz.start.minute / 60.0
    return np.asarray((start_h + (np.arange(hz.slots) + 0.5) * hz.slot_minutes / 60.0) % 24.0)


def weather_cells(problem: Problem) -> tuple[list[str], dict[str, int], FloatArray]:
    """The weather cells of the module docstring.

    Returns
    -------
    names : list of str
        Cell names: a district, or a node id.
    cell_of : dict
        Node id → cell position.
    distance : (C, C) float
        Distances between the cells' centres [km].
    """
    names: list[str] = []
    where: list[tuple[float, float]] = []
    cell_of: dict[str, int] = {}
    for n in problem.nodes:
        lat = float(n.lat) if n.lat is not None else BERLIN_DISTRICTS["mitte"][0]
        lon = float(n.lon) if n.lon is not None else BERLIN_DISTRICTS["mitte"][1]
        centre = problem.regions.get(n.region) if n.region is not None else None
        key, pos = n.node_id, (lat, lon)
        if centre is not None and float(great_circle_km(lat, lon, centre.lat, centre.lon)
                                        ) <= CELL_RADIUS_KM:
            key, pos = str(n.region), (centre.lat, centre.lon)
        if key not in names:
            names.append(key)
            where.append(pos)
        cell_of[n.node_id] = names.index(key)
    ll = np.asarray(where, dtype=float).reshape(-1, 2)
    dist = great_circle_km(ll[:, 0:1], ll[:, 1:2], ll[None, :, 0], ll[None, :, 1])
    return names, cell_of, np.asarray(dist, dtype=float).reshape(len(names), len(names))


@functools.lru_cache(maxsize=8)
def _day_changes(slots: int, slot_minutes: int) -> tuple[FloatArray, FloatArray]:
    """The six day-to-day changes of the shipped week on the slots: price [€/kWh] and
    carbon [g/kWh], each ``(6, slots)``."""
    price_mwh, carbon = day_ahead_week()
    p = [resample_day(price_mwh, slots, slot_minutes, d * 1440) / 1000.0 for d in range(7)]
    c = [resample_day(carbon, slots, slot_minutes, d * 1440) for d in range(7)]
    return (np.asarray([p[d + 1] - p[d] for d in range(6)]),
            np.asarray([c[d + 1] - c[d] for d in range(6)]))


def _correlated(rng: np.random.Generator, chol: FloatArray, size: int = 1) -> FloatArray:
    """``size`` standard normal vectors with correlation ``chol @ chol.T``: ``(size, C)``."""
    return np.asarray(rng.standard_normal((size, chol.shape[0])) @ chol.T)


def _cholesky(dist: FloatArray, length: float) -> FloatArray:
    """Cholesky factor of ``exp(−dist/length)`` (positive definite for distinct points)."""
    c = np.exp(-dist / length)
    return np.asarray(np.linalg.cholesky(c + 1e-9 * np.eye(len(c))))


def draw_outcome(problem: Problem, rng: np.random.Generator
                 ) -> tuple[dict[str, NodeSeries], dict[str, Tariff], dict[str, Feeder]]:
    """One outcome of PV, prices and headroom (the model of the module docstring).

    Parameters
    ----------
    problem : Problem
        A generated problem without scenarios (its series are the forecast).
    rng : numpy.random.Generator
        Source of the draws.

    Returns
    -------
    node_series, tariffs, feeders
        The outcome's series of every node, tariff and feeder.
    """
    hz = problem.horizon
    T = hz.slots
    hour = _hours(problem).astype(int)
    _, cell_of, dist = weather_cells(problem)
    z = _correlated(rng, _cholesky(dist, DAY_LENGTH_KM))[0]  # (C,)
    eps = _correlated(rng, _cholesky(dist, HOUR_LENGTH_KM), 24)  # (24, C)
    k = np.clip(MEAN_CLEARNESS * np.exp(DAY_SIGMA * z - DAY_SIGMA ** 2 / 2)[None, :]
                * np.exp(HOUR_SIGMA * eps - HOUR_SIGMA ** 2 / 2), 0.0, 1.0)[hour]  # (T, C)
    common = rng.standard_normal(24)
    s2 = LOAD_COMMON_SIGMA ** 2 + LOAD_HOME_SIGMA ** 2
    grid = {n.node_id: n.grid_kw for n in problem.nodes}
    homes = {n.node_id: n.feeder for n in problem.nodes if n.kind == "home"}
    wave = {n.node_id for n in problem.nodes if n.kind == "offgrid"}
    share_change: dict[str, FloatArray] = {}
    series: dict[str, NodeSeries] = {}
    for nid, s in problem.node_series.items():
        upd: dict[str, list[float] | None] = {}
        if s.pv_kw is not None:
            pv = np.asarray(s.pv_kw, dtype=float)
            # an off-grid node's generation is wave power plus PV: only the part above its
            # least value (the wave power of the night) follows the clearness
            floor = float(pv.min()) if nid in wave else 0.0
            upd["pv_kw"] = [round(float(v), 4) for v in floor + (pv - floor) * k[:, cell_of[nid]]]
        own = rng.standard_normal(24)  # drawn for every node: the stream does not depend on kinds
        if nid in homes and s.headroom_kw is not None and np.isfinite(grid[nid]):
            g = float(grid[nid])
            load = np.clip(g - np.asarray(s.headroom_kw, dtype=float), 0.0, None)
            f = np.exp(LOAD_COMMON_SIGMA * common + LOAD_HOME_SIGMA * own - s2 / 2)[hour]
            new = load * f
            upd["headroom_kw"] = [round(float(v), 4) for v in np.clip(g - new, 0.0, g)]
            fd = homes[nid]
            if fd is not None:
                delta = (np.clip(FEEDER_SHARE_KW - new, 0.0, None)
                         - np.clip(FEEDER_SHARE_KW - load, 0.0, None))
                share_change[fd] = share_change.get(fd, np.zeros(T)) + delta
        series[nid] = s.model_copy(update=upd)
    feeders = {name: Feeder(headroom_kw=[round(float(v), 4) for v in np.clip(
        np.asarray(fd.headroom_kw, dtype=float) + share_change.get(name, 0.0), 0.0, None)])
        for name, fd in problem.feeders.items()}
    dp, dc = _day_changes(T, hz.slot_minutes)
    pick = int(rng.integers(len(dp)))
    sign = 1.0 if rng.random() < 0.5 else -1.0
    tariffs: dict[str, Tariff] = {}
    for name, tf in problem.tariffs.items():
        if name in DYNAMIC:
            carbon = np.clip(np.asarray(tf.carbon_g_per_kwh, dtype=float) + sign * dc[pick],
                             0.0, None)
            tariffs[name] = Tariff(
                price=[round(float(v), 5) for v in np.asarray(tf.price) + sign * dp[pick]],
                export_price=tf.export_price, carbon_g_per_kwh=[float(v) for v in carbon])
        else:
            tariffs[name] = tf
    return series, tariffs, feeders


def draw_scenarios(problem: Problem, k: int, seed: int = 0, actuals: int = 0
                   ) -> tuple[Problem, list[Problem]]:
    """``problem`` with ``k`` scenarios of PV, prices and headroom, and ``actuals``
    held-out days.

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
        With ``k`` scenarios (its own PV, headroom, price and feeder series moved into
        them).
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
        series, tariffs, feeders = draw_outcome(problem, rng)
        scen[f"s{s:0{width}d}"] = ScenarioData(weight=1.0 / k, node_series=series,
                                               tariffs=tariffs,
                                               feeders=feeders if feeders else None)
    days = []
    rng_a = np.random.default_rng([seed, 19, 1])
    for _ in range(actuals):
        series, tariffs, feeders = draw_outcome(problem, rng_a)
        days.append(problem.model_copy(update={"node_series": series, "tariffs": tariffs,
                                               "feeders": feeders}))
    out = problem.model_copy(update={"node_series": {}, "tariffs": {}, "scenarios": scen,
                                     "feeders": {}})
    return out, days
