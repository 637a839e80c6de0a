"""Make the closed-loop example: ``bundle/``, ``actuals/`` and ``forecasts.csv``.

Run from anywhere: ``python examples/simulate/make_example.py`` (rewrites the three
beside this script; deterministic). Then::

    optisched simulate examples/simulate/bundle --actuals examples/simulate/actuals \\
        --forecasts examples/simulate/forecasts.csv --replan-every 4 --out sim/

The day: the ``city`` scenario of the generator (26 nodes in Berlin: street lights,
homes with PV and batteries on a feeder, regional sites, EV-site pods, parked cars,
an off-grid node; 120 jobs released over the day), Wednesday 17 June 2026, 96
quarter-hours, with the battery terminal rule ``free`` (see below).

Sources
-------
* **PV, actual**: pvlib (clear sky, Ineichen) at each node's site, with the hourly
  clearness index of the same day of year in the TMY3 file ``723170TYA.CSV``
  (Greensboro NC; NREL TMY3, public domain, shipped with pvlib) applied to it:
  ``optisched.generate.generate("city", seed=1, day=2, weather="723170TYA.CSV",
  forecast_error=0)``. (No Berlin TMY file ships with pvlib: the clouds are a
  borrowed day, as ``datasets/README.md`` says.)
* **PV, forecast** (the forecast-error model): the clear-sky PV ``P_cs(t)`` of the
  same nodes times a clearness forecast. Day-ahead (issued 12:00 the day before):
  the day's mean daylight clearness ``k̄`` (the forecast knows how cloudy the day is,
  not when). Intraday, issued every 3 h at ``τ``: smart persistence, the clearness
  observed in the hour before ``τ`` decaying to ``k̄`` with the lead time ``L``:
  ``k(t) = w·k_obs(τ) + (1 − w)·k̄``, ``w = exp(−L / 2 h)``; forecast
  ``P(t) = min(P_cs(t)·k(t), kWp)``.
* **Prices, actual**: the tariffs of the generator for that day
  (``optisched.generate.prices.make_tariffs``): the EPEX day-ahead price of
  Wednesday 13 June 2018 (SMARD.de, Bundesnetzagentur, CC BY 4.0; shipped as
  ``optisched/data/de_dayahead_carbon_2018-06.csv``) plus the published surcharges.
* **Prices, forecast**: persistence, the previous day's day-ahead price at the same
  hour (Tuesday 12 June 2018, same file), issued 12:00 the day before; every 6 h a
  new issue makes the next 6 h firm (the actual price: a tariff published 6 h
  ahead) and keeps persistence beyond. ``commercial_tou`` and ``offgrid`` have no
  forecast error.
* **Terminal rule** ``free``: every plan may end the day with any state of charge.
  (With ``initial`` each re-plan would ask every battery to end the day at least
  as full as it is at that update: see ``docs/replan.md``.)

``bundle/`` holds the first forecast (day-ahead PV, persistence prices);
``actuals/`` the actual ``node_series.csv`` and ``prices.csv``; ``forecasts.csv``
every issue.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from optisched.domain import BatteryOptions, Problem
from optisched.generate import generate
from optisched.generate.prices import make_tariffs
from optisched.io import write_bundle
from optisched.simulate import Forecasts

HERE = Path(__file__).resolve().parent
PRESET, SEED, DAY = "city", 1, 2  # Wednesday of the shipped price week
WEATHER = "723170TYA.CSV"
PV_ISSUE_HOURS = 3
PRICE_ISSUE_HOURS = 6
PERSISTENCE_DECAY_H = 2.0
DAY_AHEAD_ISSUE = timedelta(hours=-12)
"""Day-ahead issues: 12:00 the day before the horizon starts."""


def _with_free_terminal(p: Problem) -> Problem:
    return p.model_copy(update={"scenario": p.scenario.model_copy(
        update={"battery": BatteryOptions(terminal="free")})})


def build() -> tuple[Problem, Problem, Forecasts]:
    """The bundle (first forecast), the actual day and every forecast issue."""
    actual = _with_free_terminal(generate(PRESET, seed=SEED, day=DAY, weather=WEATHER,
                                          forecast_error=0.0))
    clear = generate(PRESET, seed=SEED, day=DAY, forecast_error=0.0)
    assert [n.node_id for n in clear.nodes] == [n.node_id for n in actual.nodes]
    assert clear.nodes == actual.nodes and clear.jobs == actual.jobs
    hz = actual.horizon
    T, dt_min = hz.slots, hz.slot_minutes
    times = [hz.time_of(t) for t in range(T)]
    pv_rows = []
    day_ahead: dict[str, list[float]] = {}
    for nid, s in actual.node_series.items():
        act = np.asarray(s.pv_kw, dtype=float)
        cs = np.asarray(clear.node_series[nid].pv_kw, dtype=float)
        if cs.max(initial=0.0) <= 0:
            continue
        day = cs > 0.02 * cs.max()
        k_act = np.where(day, act / np.maximum(cs, 1e-9), 1.0)
        k_bar = float(act[day].sum() / cs[day].sum())
        cap = float(cs.max())  # the clear-sky peak: an upper envelope of the AC output
        issues = [hz.start + DAY_AHEAD_ISSUE] + [
            hz.start + timedelta(hours=h) for h in range(PV_ISSUE_HOURS, 24, PV_ISSUE_HOURS)]
        for issued in issues:
            first = max(0, int((issued - hz.start).total_seconds() // 60 // dt_min))
            if issued <= hz.start:
                k = np.full(T, k_bar)
            else:
                # clearness observed in the hour before the issue (daylight slots only)
                obs = [t for t in range(max(0, first - 60 // dt_min), first) if day[t]]
                k_obs = float(np.mean(k_act[obs])) if obs else k_bar
                lead_h = (np.arange(T) - first) * dt_min / 60.0
                w = np.exp(-np.maximum(lead_h, 0.0) / PERSISTENCE_DECAY_H)
                k = w * k_obs + (1 - w) * k_bar
            fc = np.minimum(cs * k, cap)
            if issued <= hz.start:
                day_ahead[nid] = [round(float(v), 4) for v in fc]
            for t in range(first, T):
                if cs[t] > 0:  # no row where the sun is down: every issue says 0 there
                    pv_rows.append((issued, times[t], nid, round(float(fc[t]), 4)))
    act_tf = make_tariffs(T, dt_min, DAY)
    prev_tf = make_tariffs(T, dt_min, DAY - 1)
    price_rows = []
    for name in ("home_dynamic", "industrial_dayahead"):
        a, b = np.asarray(act_tf[name].price), np.asarray(prev_tf[name].price)
        price_rows += [(hz.start + DAY_AHEAD_ISSUE, times[t], name, float(b[t]))
                       for t in range(T)]
        for h in range(PRICE_ISSUE_HOURS, 24, PRICE_ISSUE_HOURS):
            issued = hz.start + timedelta(hours=h)
            first = h * 60 // dt_min
            firm = first + PRICE_ISSUE_HOURS * 60 // dt_min
            price_rows += [(issued, times[t], name, float(a[t] if t < firm else b[t]))
                           for t in range(first, T)]
    pv_df = pd.DataFrame(pv_rows, columns=["issued_at", "time", "node_id", "pv_kw"])
    pr_df = pd.DataFrame(price_rows, columns=["issued_at", "time", "tariff", "price"])
    for df in (pv_df, pr_df):
        for c in ("issued_at", "time"):
            df[c] = pd.to_datetime(df[c], utc=True).dt.tz_convert(hz.start.tzinfo)
    forecasts = Forecasts(pv=pv_df, price=pr_df)
    # the bundle: the day-ahead issue laid over the actual day's other data
    series = {nid: s.model_copy(update={"pv_kw": day_ahead[nid]}) if nid in day_ahead else s
              for nid, s in actual.node_series.items()}
    tariffs = dict(actual.tariffs)
    for name in ("home_dynamic", "industrial_dayahead"):
        tariffs[name] = tariffs[name].model_copy(update={"price": list(prev_tf[name].price)})
    bundle = actual.model_copy(update={"node_series": series, "tariffs": tariffs})
    return bundle, actual, forecasts


def main() -> None:
    """Write ``bundle/``, ``actuals/`` and ``forecasts.csv`` beside this script."""
    bundle, actual, forecasts = build()
    for d in ("bundle", "actuals"):
        shutil.rmtree(HERE / d, ignore_errors=True)
    write_bundle(bundle, HERE / "bundle")
    with tempfile.TemporaryDirectory() as tmp:
        write_bundle(actual, Path(tmp) / "a")
        (HERE / "actuals").mkdir()
        for f in ("node_series.csv", "prices.csv"):
            shutil.copyfile(Path(tmp) / "a" / f, HERE / "actuals" / f)
    forecasts.write(HERE / "forecasts.csv")


if __name__ == "__main__":
    main()
