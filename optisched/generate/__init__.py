"""Realistic scenario generator: ``generate(preset, n_nodes, n_jobs, n_slots, seed) -> Problem``.

Nodes are drawn from the archetypes of :mod:`optisched.generate.archetypes` in the
Berlin metro area, with PV from pvlib (:mod:`~optisched.generate.solar`), headroom
from BDEW standard load profiles, prices and carbon from a real German day-ahead
week (:mod:`~optisched.generate.prices`) and jobs calibrated to published AI-cluster
traces (:mod:`~optisched.generate.jobs`). Everything is offline and deterministic
given ``seed``.

Example::

    from optisched.generate import generate
    problem = generate("medium", seed=1)            # 100 jobs x 20 nodes x 96 slots
    problem = generate("city", n_jobs=60, seed=3)   # explicit sizes override the preset

Seeded synthetic problems for tests and the solver benchmarks
(:func:`~optisched.generate.random_problems.random_problem`,
:func:`~optisched.generate.random_problems.bench_problem`) live in
:mod:`optisched.generate.random_problems`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from optisched.domain import (
    Feeder,
    Horizon,
    LatencyOptions,
    Node,
    NodeSeries,
    Problem,
    Region,
    Scenario,
)
from optisched.generate.archetypes import (
    ARCHETYPES,
    BERLIN_DISTRICTS,
    FEEDER_SHARE_KW,
    BuiltNode,
    Ctx,
    build_node,
    extra_latency_ms,
)
from optisched.generate.jobs import JobMix, draw_jobs
from optisched.generate.metro import metro_problem
from optisched.generate.prices import make_tariffs
from optisched.generate.random_problems import bench_problem, random_problem
from optisched.generate.solar import clearness_by_hour, read_weather_csv
from optisched.generate.tight import TIGHT_OPTIONS, tight_problem
from optisched.geo import great_circle_km

__all__ = ["ARCHETYPES", "METRO_PRESET", "PRESETS", "TIGHT_PRESET", "Preset", "bench_problem",
           "generate", "metro_problem", "random_problem", "tight_problem"]

BERLIN_TZ = timezone(timedelta(hours=2))  # CEST
"""Horizons start at local midnight in Berlin summer time (UTC+02:00)."""

_CITY_MIX = {"home": 0.35, "streetlight": 0.25, "regional_dc": 0.05, "ev_site_pod": 0.12,
             "vehicle": 0.18, "offgrid": 0.05}


@dataclass(frozen=True)
class Preset:
    """A named scenario: sizes and node mix.

    Attributes
    ----------
    n_nodes, n_jobs, n_slots : int
        Default sizes (slots cover one day when n_slots divides 1440).
    mix : dict of str to float
        Archetype weights (largest-remainder allocation) — or exact counts when
        ``counts`` is set.
    counts : dict of str to int, optional
        Exact archetype counts at the default size.
    homes_per_feeder : int
        Homes are grouped onto low-voltage feeders of this many homes (0 = no feeders).
    description : str
        One line.
    """

    n_nodes: int
    n_jobs: int
    n_slots: int
    mix: dict[str, float] = field(default_factory=lambda: dict(_CITY_MIX))
    counts: dict[str, int] | None = None
    homes_per_feeder: int = 10
    description: str = ""


PRESETS: dict[str, Preset] = {
    "tiny": Preset(3, 6, 24, description="scale ladder: 6 jobs x 3 nodes x 24 hourly slots"),
    "small": Preset(5, 20, 48, description="scale ladder: 20 jobs x 5 nodes x 48 slots"),
    "medium": Preset(20, 100, 96, description="scale ladder: 100 jobs x 20 nodes x 96 slots"),
    "large": Preset(100, 1000, 96, description="scale ladder: 1000 jobs x 100 nodes x 96 slots"),
    "xl": Preset(1000, 10000, 96, description="scale ladder: 10000 jobs x 1000 nodes x 96 slots"),
    "neighborhood": Preset(12, 40, 96, mix={"home": 1.0}, homes_per_feeder=12,
                           description="12 homes with PV and batteries on one LV feeder"),
    "city": Preset(26, 120, 96, counts={"streetlight": 8, "home": 8, "regional_dc": 2,
                                        "ev_site_pod": 3, "vehicle": 4, "offgrid": 1},
                   description="Berlin: streetlights, homes, regional sites, EV pods, "
                               "parked cars, an off-grid node"),
}


METRO_PRESET = "metro"
"""Preset served by :func:`optisched.generate.metro.metro_problem` (a city of 10,000 nodes and
100,000 jobs over 96 slots, generated vectorized)."""

TIGHT_PRESET = "tight"
"""Preset served by :func:`optisched.generate.tight.tight_problem` (ICON-class, tightly
packed, feasible by construction); default 200 jobs x 10 nodes x 288 five-minute slots."""


def _allocate(n: int, preset: Preset) -> list[str]:
    """Archetype of each node: exact counts at the preset size, else largest remainder."""
    if preset.counts is not None and n == sum(preset.counts.values()):
        kinds = [k for k, c in preset.counts.items() for _ in range(c)]
        return kinds
    weights = preset.counts if preset.counts is not None else preset.mix
    names = [k for k in ARCHETYPES if weights.get(k, 0) > 0]
    w = np.array([float(weights[k]) for k in names])
    w = w / w.sum()
    raw = w * n
    cnt = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - cnt), kind="stable")[: n - int(cnt.sum())]:
        cnt[k] += 1
    # big jobs need a large node: keep at least one regional site when there is one in the mix
    if "regional_dc" in names and n >= 2:
        r = names.index("regional_dc")
        if cnt[r] == 0:
            cnt[int(np.argmax(cnt))] -= 1
            cnt[r] = 1
    return [k for k, c in zip(names, cnt, strict=True) for _ in range(int(c))]


def generate(preset: str, n_nodes: int | None = None, n_jobs: int | None = None,
             n_slots: int | None = None, seed: int = 0, **kw: Any) -> Problem:
    """Generate a realistic problem.

    Parameters
    ----------
    preset : str
        A key of :data:`PRESETS`: tiny, small, medium, large, xl, neighborhood, city;
        ``metro`` (:func:`~optisched.generate.metro.metro_problem`: 10,000 nodes, 100,000
        jobs, 96 slots, vectorized); or ``tight``
        (:func:`~optisched.generate.tight.tight_problem`: its options
        :data:`~optisched.generate.tight.TIGHT_OPTIONS` as keywords, e.g.
        ``n_resources=4``; the hidden plan is not returned).
    n_nodes, n_jobs, n_slots : int, optional
        Override the preset's sizes. Slots are ``1440 / n_slots`` minutes when that
        divides a day, else 15 minutes (multi-day horizons are fine).
    seed : int
        Seed of every random draw; equal seeds give equal problems.
    **kw
        ``weather`` (path to a weather CSV or a pvlib-shipped TMY3 file name such
        as ``"723170TYA.CSV"``; default clear sky), ``forecast_error`` (std of the
        PV forecast error [-], default 0.05), ``day`` (0-6: weekday of the shipped
        price week, default ``seed % 5``), ``must_run_share`` (default 0.1),
        ``hard_slo_share`` (default 0.5), ``mix`` (archetype weights).

    Returns
    -------
    Problem
    """
    if preset == TIGHT_PRESET:
        bad = sorted(set(kw) - set(TIGHT_OPTIONS))
        if bad:
            raise ValueError(f"unknown options {bad} for preset tight; valid: "
                             f"{', '.join(TIGHT_OPTIONS)}")
        return tight_problem(200 if n_jobs is None else n_jobs,
                             10 if n_nodes is None else n_nodes,
                             slots=288 if n_slots is None else n_slots, seed=seed, **kw)[0]
    if preset == METRO_PRESET:
        if kw:
            raise ValueError(f"unknown options {sorted(kw)} for preset metro")
        return metro_problem(10_000 if n_nodes is None else n_nodes,
                             100_000 if n_jobs is None else n_jobs,
                             96 if n_slots is None else n_slots, seed=seed)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}, "
                         f"{TIGHT_PRESET}, {METRO_PRESET}")
    p = PRESETS[preset]
    if "mix" in kw:
        p = Preset(p.n_nodes, p.n_jobs, p.n_slots, mix=dict(kw.pop("mix")),
                   homes_per_feeder=p.homes_per_feeder, description=p.description)
    N = p.n_nodes if n_nodes is None else int(n_nodes)
    J = p.n_jobs if n_jobs is None else int(n_jobs)
    T = p.n_slots if n_slots is None else int(n_slots)
    if N < 1 or J < 0 or T < 1:
        raise ValueError(f"need n_nodes >= 1, n_jobs >= 0, n_slots >= 1; got {N}, {J}, {T}")
    slot_minutes = 1440 // T if 1440 % T == 0 else 15
    day = int(kw.pop("day", seed % 5)) % 7
    forecast_error = float(kw.pop("forecast_error", 0.05))
    weather = kw.pop("weather", None)
    mix = JobMix(must_run_share=float(kw.pop("must_run_share", 0.1)),
                 hard_slo_share=float(kw.pop("hard_slo_share", 0.5)))
    if kw:
        raise ValueError(f"unknown options {sorted(kw)}")
    start_dt = datetime(2026, 6, 15, tzinfo=BERLIN_TZ) + timedelta(days=day)  # Mon 15 June
    start = pd.Timestamp(start_dt)
    clearness = None
    if weather is not None:
        clearness = _clearness(str(weather), start_dt)
    ctx = Ctx(start=start, slots=T, slot_minutes=slot_minutes, start_minute=0,
              weekday=day < 5, clearness=clearness, forecast_error=forecast_error)

    kinds = _allocate(N, p)
    counters: dict[str, int] = {}
    built: list[BuiltNode] = []
    home_idx = 0
    for kind in kinds:
        counters[kind] = counters.get(kind, 0) + 1
        nid = f"{kind}{counters[kind]:04d}" if N >= 1000 else f"{kind}{counters[kind]:02d}"
        feeder = None
        if kind == "home" and p.homes_per_feeder > 0:
            feeder = f"lv{home_idx // p.homes_per_feeder + 1:03d}"
            home_idx += 1
        built.append(build_node(kind, nid, np.random.default_rng([seed, len(built)]), ctx,
                                feeder))
    nodes: list[Node] = [b.node for b in built]
    # every series column explicit, so the bundle reads back to an equal Problem
    series: dict[str, NodeSeries] = {
        b.node.node_id: NodeSeries(
            pv_kw=b.series.pv_kw if b.series.pv_kw is not None else [0.0] * T,
            headroom_kw=(b.series.headroom_kw if b.series.headroom_kw is not None
                         else [b.node.grid_kw] * T),
            available=b.series.available if b.series.available is not None else [True] * T,
        ) for b in built}

    feeders: dict[str, Feeder] = {}
    for b in built:
        if b.node.feeder is not None:
            acc = feeders.setdefault(b.node.feeder, Feeder(headroom_kw=[0.0] * T))
            hh = b.household_kw if b.household_kw is not None else np.zeros(T)
            # diversified LV feeder share per home minus its household load
            new = np.asarray(acc.headroom_kw) + np.clip(FEEDER_SHARE_KW - hh, 0.0, None)
            acc.headroom_kw = [round(float(v), 4) for v in new]

    regions = {k: Region(lat=a, lon=b) for k, (a, b) in BERLIN_DISTRICTS.items()}
    lat_opts = LatencyOptions(base_ms=2.0, ms_per_km=0.015)
    rl = np.array([[r.lat, r.lon] for r in regions.values()])
    nl = np.array([[n.lat, n.lon] for n in nodes], dtype=float)
    km = great_circle_km(rl[:, 0:1], rl[:, 1:2], nl[None, :, 0], nl[None, :, 1])
    extra = np.array([extra_latency_ms(n.kind) for n in nodes])
    lat_ms = lat_opts.base_ms + lat_opts.ms_per_km * km + extra[None, :]
    latency: dict[str, dict[str, float]] = {}
    for k, n in enumerate(nodes):
        if extra[k] > 0:
            latency[n.node_id] = {r: round(float(lat_ms[i, k]), 3)
                                  for i, r in enumerate(regions)}

    caps = (np.array([n.gpus for n in nodes], dtype=float),
            np.array([n.gpu_mem_gb for n in nodes], dtype=float),
            np.array([n.trust for n in nodes], dtype=float),
            np.array([n.speed for n in nodes], dtype=float))
    jobs = draw_jobs(np.random.default_rng([seed, 1_000_003]), J, start, T, slot_minutes, 0,
                     list(regions), caps, lat_ms, mix)
    tariffs = make_tariffs(T, slot_minutes, day)
    used = {n.tariff for n in nodes}
    tariffs = {k: v for k, v in tariffs.items() if k in used}
    scenario = Scenario(horizon=Horizon(start=start_dt, slot_minutes=slot_minutes, slots=T),
                        latency=lat_opts)
    scenario.objective.carbon_price_per_tonne = 55.0
    return Problem(scenario=scenario, nodes=nodes, jobs=jobs, node_series=series,
                   tariffs=tariffs, feeders=feeders, latency_ms=latency, regions=regions)


def _clearness(weather: str, start: datetime) -> np.ndarray:
    """Clearness index per local hour from a weather file for the horizon's day of year."""
    from pathlib import Path

    from optisched.generate.solar import shipped_weather_files

    path = Path(weather)
    if not path.exists():
        shipped = {p.name: p for p in shipped_weather_files()}
        if weather not in shipped:
            raise ValueError(f"weather file {weather!r} not found; pvlib ships "
                             f"{', '.join(sorted(shipped))}")
        path = shipped[weather]
    df = read_weather_csv(path)
    lat = float(df.attrs.get("latitude", BERLIN_DISTRICTS["mitte"][0]))
    lon = float(df.attrs.get("longitude", BERLIN_DISTRICTS["mitte"][1]))
    doy = start.timetuple().tm_yday
    k = clearness_by_hour(df, lat, lon, doy)
    return k if math.isfinite(float(k.sum())) else np.ones(24)
