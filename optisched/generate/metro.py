"""The ``metro`` preset: a city-wide grid of 10,000 nodes and 100,000 jobs, generated vectorized.

The archetypes are those of :mod:`optisched.generate.archetypes` (same hardware, batteries,
tariffs, connections and their sources), drawn in bulk instead of node by node: PV from
pvlib for a few orientation classes per neighbourhood (scaled by each system's kWp, with
a seeded AR(1) forecast error per node), household loads from the BDEW H0 profile with
per-home jitter, EV charging sessions as Poisson arrivals, regional sites' load by
:func:`~optisched.generate.archetypes.site_load_kw`'s shape (with :data:`METRO_SITE_SHARE`).
Default mix at 10,000 nodes:

- 7,600 ``home`` nodes on low-voltage feeders of :data:`HOMES_PER_FEEDER` homes (a feeder's
  headroom is its diversified share of 4 kW per home minus the households' load), 60 %
  with a home battery (assumption: a PV-rich city by the 2030s);
- 1,500 ``streetlight`` nodes (Conflow iLamp), 300 ``ev_site_pod`` nodes, 560 parked cars
  (``vehicle``) and 40 ``regional_dc`` slices of ~10 MW sites in Brandenburg with demand
  charges (FIELD.md).

User regions are :data:`CELL_KM`-km neighbourhood cells over Berlin; latency follows
distance at :data:`MS_PER_KM` ms/km plus :data:`BASE_MS` (assumption: metro access and
aggregation networks, not straight fibre), +10 ms for parked cars (cellular). Jobs
(:func:`metro_jobs`) are mostly latency-bound inference served within a few km (hard
SLOs), batch inference with a data-residency SLO, and fine-tuning and training that need
trusted 80 GB hosts (EV pods, regional sites), so most jobs have a few hundred eligible
nodes, not ten thousand.

Measured (``BENCHMARKS.md``, "Distributed solver"): ``generate("metro")`` in 17 s and
0.52 GiB peak at a load average of 8 on 2 cores; ``write_bundle`` with
``parquet=("node_series", "jobs")`` (``docs/contract/input.md``) in 12 s, 9.2 MiB.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from optisched.arrays import FloatArray, IntArray
from optisched.domain import (
    Feeder,
    Horizon,
    Job,
    LatencyOptions,
    Node,
    NodeSeries,
    Problem,
    Region,
    Scenario,
)
from optisched.generate.archetypes import (
    BERLIN_DISTRICTS,
    FEEDER_SHARE_KW,
    REGIONAL_SITES,
    SITE_COOLING_SWING,
    Ctx,
)
from optisched.generate.jobs import KW_PER_GPU
from optisched.generate.prices import make_tariffs
from optisched.generate.solar import pv_ac_kw
from optisched.geo import great_circle_km

__all__ = ["METRO_MIX", "metro_jobs", "metro_problem"]

METRO_MIX = {"home": 0.76, "streetlight": 0.15, "ev_site_pod": 0.03, "vehicle": 0.056,
             "regional_dc": 0.004}
"""Share of each archetype among the nodes."""
HOMES_PER_FEEDER = 50
"""Homes per low-voltage feeder (typical urban LV feeders serve 30-150 homes; assumption)."""
HOME_BATTERY_SHARE = 0.6
"""Share of homes with a battery (assumption)."""
CELL_KM = 3.0
"""Side of a user-region cell [km]."""
BASE_MS, MS_PER_KM = 1.0, 1.0
"""Latency by distance in the city [ms], [ms/km] (assumption, see module docstring)."""
CITY = (52.34, 52.68, 13.09, 13.76)
"""Bounding box of Berlin [deg]: lat min, lat max, lon min, lon max."""
_BERLIN_TZ = timezone(timedelta(hours=2))
"""Local midnight in Berlin summer time, as :mod:`optisched.generate` starts its horizons."""
METRO_SITE_SHARE = (0.80, 0.90)
"""The rest of a regional site at its daily peak, as a share of its connection [-]: lower
than the archetype's 93-98 % (:data:`~optisched.generate.archetypes.SITE_PEAK_SHARE`), an
assumption for a city that contracts 1-2 MW of each site's connection for the grid's
compute (at 93-98 % most training jobs find no power at the afternoon peak)."""
JOB_SHARES = {"inference": 0.62, "batch_inference": 0.20, "fine_tune": 0.15, "training": 0.03}
"""Share of each job kind."""


def _cells() -> tuple[list[str], FloatArray, FloatArray]:
    """Region cells inside an ellipse over Berlin: names, centre latitudes and longitudes."""
    lat0, lat1, lon0, lon1 = CITY
    dlat = CELL_KM / 111.0
    dlon = CELL_KM / (111.0 * math.cos(math.radians(0.5 * (lat0 + lat1))))
    lats = np.arange(lat0 + dlat / 2, lat1, dlat)
    lons = np.arange(lon0 + dlon / 2, lon1, dlon)
    la, lo = np.meshgrid(lats, lons, indexing="ij")
    cy, cx = 0.5 * (lat0 + lat1), 0.5 * (lon0 + lon1)
    inside = ((la - cy) / (0.5 * (lat1 - lat0))) ** 2 + ((lo - cx) / (0.5 * (lon1 - lon0))) ** 2
    keep = inside <= 1.0
    la, lo = la[keep], lo[keep]
    dnames = list(BERLIN_DISTRICTS)
    dl = np.array([BERLIN_DISTRICTS[d] for d in dnames])
    near = np.argmin((la[:, None] - dl[None, :, 0]) ** 2 + (lo[:, None] - dl[None, :, 1]) ** 2,
                     axis=1)
    names: list[str] = []
    count: dict[str, int] = {}
    for k in near:
        d = dnames[int(k)]
        count[d] = count.get(d, 0) + 1
        names.append(f"{d}_{count[d]:02d}")
    return names, np.asarray(np.round(la, 4), dtype=float), np.asarray(np.round(lo, 4),
                                                                      dtype=float)


def _counts(n: int) -> dict[str, int]:
    """Nodes per archetype: largest remainder of :data:`METRO_MIX`, a regional site kept."""
    kinds = list(METRO_MIX)
    raw = np.array([METRO_MIX[k] for k in kinds]) * n
    cnt = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - cnt), kind="stable")[: n - int(cnt.sum())]:
        cnt[k] += 1
    out = dict(zip(kinds, (int(c) for c in cnt), strict=True))
    if out["regional_dc"] == 0 and n >= 2:
        out["regional_dc"], out["home"] = 1, out["home"] - 1
    return out


def _ar1(rng: np.random.Generator, shape: tuple[int, int], sd: float, phi: float) -> FloatArray:
    """AR(1) noise along the last axis, stationary standard deviation ``sd``."""
    e = rng.normal(0.0, sd * math.sqrt(1 - phi * phi), size=shape)
    out = np.empty(shape)
    out[:, 0] = rng.normal(0.0, sd, size=shape[0])
    for t in range(1, shape[1]):
        out[:, t] = phi * out[:, t - 1] + e[:, t]
    return out


def metro_problem(n_nodes: int = 10_000, n_jobs: int = 100_000, n_slots: int = 96,
                  seed: int = 0) -> Problem:
    """The ``metro`` city (module docstring): ``n_nodes`` nodes, ``n_jobs`` jobs.

    Deterministic given ``seed``; everything is drawn in bulk with numpy.
    """
    rng = np.random.default_rng([seed, 20])
    T = n_slots
    slot_minutes = 1440 // T if 1440 % T == 0 else 15
    day = seed % 5
    start_dt = datetime(2026, 6, 15, tzinfo=_BERLIN_TZ) + timedelta(days=day)
    start = pd.Timestamp(start_dt)
    ctx = Ctx(start=start, slots=T, slot_minutes=slot_minutes, start_minute=0,
              weekday=day < 5, clearness=None, forecast_error=0.05)
    names, clat, clon = _cells()
    counts = _counts(n_nodes)
    nodes: list[Node] = []
    series: dict[str, NodeSeries] = {}
    household: FloatArray = np.zeros((0, T))
    feeder_of: list[str | None] = []
    # ---------------------------------------------------------------- city nodes
    for kind in ("home", "streetlight", "ev_site_pod", "vehicle"):
        n = counts[kind]
        if n == 0:
            continue
        # sorted: consecutive homes are neighbours, so a feeder serves a neighbourhood
        cell = np.sort(rng.integers(len(names), size=n))
        half = CELL_KM / 2
        lat = np.round(clat[cell] + rng.uniform(-half, half, n) / 111.0, 4)
        lon = np.round(clon[cell] + rng.uniform(-half, half, n)
                       / (111.0 * math.cos(math.radians(52.5))), 4)
        region = [names[int(c)] for c in cell]
        built = _city_kind(kind, n, rng, ctx, cell, len(names), clat, clon)
        for k in range(n):
            nid = f"{kind}{k + 1:05d}"
            fd = (f"lv{k // HOMES_PER_FEEDER + 1:04d}" if kind == "home" else None)
            nodes.append(Node(node_id=nid, kind=kind, region=region[k], lat=float(lat[k]),
                              lon=float(lon[k]), feeder=fd, **built["node"][k]))
            feeder_of.append(fd)
            series[nid] = NodeSeries(pv_kw=built["pv"][k].tolist(),
                                     headroom_kw=built["head"][k].tolist(),
                                     available=built["avail"][k].tolist())
        if kind == "home":
            household = built["household"]
    # ---------------------------------------------------------------- regional sites
    n = counts["regional_dc"]
    sites = list(REGIONAL_SITES)
    site = rng.integers(len(sites), size=n)
    gpus = rng.choice([128, 256, 512], size=n)
    pue = np.round(rng.uniform(1.2, 1.4, n), 2)
    grid = 10_000.0
    peak = rng.uniform(*METRO_SITE_SHARE, size=n)[:, None] * grid
    warm = 0.5 * (1.0 + np.cos(2.0 * np.pi * (ctx.hours - 15.0) / 24.0))
    base = peak - SITE_COOLING_SWING * grid * (1.0 - warm)[None, :]
    base = base * np.exp(_ar1(rng, (n, T), 0.005, 0.7))
    battery = np.where(rng.random(n) < 0.5, 2000.0, 0.0)
    for k in range(n):
        s = sites[int(site[k])]
        la, lo = REGIONAL_SITES[s]
        idle = round(float(gpus[k]) * 0.15 * float(pue[k]), 2)
        nid = f"regional_dc{k + 1:03d}"
        nodes.append(Node(
            node_id=nid, kind="regional_dc", region=s,
            lat=round(la + float(rng.uniform(-0.02, 0.02)), 4),
            lon=round(lo + float(rng.uniform(-0.02, 0.02)), 4), tariff="industrial_dayahead",
            gpus=float(gpus[k]), gpu_mem_gb=80, trust=2, speed=1.0,
            power_factor=float(pue[k]), idle_kw=idle, can_sleep=False, grid_kw=grid,
            battery_kwh=float(battery[k]), soc_init=0.5, soc_min=0.1,
            charge_kw=float(battery[k]) / 2, discharge_kw=float(battery[k]) / 2,
            eff_charge=0.96, eff_discharge=0.96,
            degradation_per_kwh=0.03 if battery[k] else 0.0, demand_charge_per_kw=0.35))
        feeder_of.append(None)
        head = np.round(np.clip(grid - base[k], 3.0 * idle, grid), 4)
        series[nid] = NodeSeries(pv_kw=[0.0] * T, headroom_kw=head.tolist(),
                                 available=[True] * T)
    # ---------------------------------------------------------------- feeders
    feeders: dict[str, Feeder] = {}
    nh = counts["home"]
    if nh:
        fidx = np.arange(nh) // HOMES_PER_FEEDER
        share = np.clip(FEEDER_SHARE_KW - household, 0.0, None)
        head = np.zeros((int(fidx.max()) + 1, T))
        np.add.at(head, fidx, share)
        for f in range(head.shape[0]):
            feeders[f"lv{f + 1:04d}"] = Feeder(headroom_kw=np.round(head[f], 4).tolist())
    regions = {nm: Region(lat=float(a), lon=float(b))
               for nm, a, b in zip(names, clat, clon, strict=True)}
    latency: dict[str, dict[str, float]] = {}
    for node in nodes:
        if node.kind == "vehicle":
            km = great_circle_km(float(node.lat or 0.0), float(node.lon or 0.0), clat, clon)
            latency[node.node_id] = {nm: round(float(BASE_MS + MS_PER_KM * d + 10.0), 3)
                                     for nm, d in zip(names, km, strict=True)}
    lat_opts = LatencyOptions(base_ms=BASE_MS, ms_per_km=MS_PER_KM)
    scenario = Scenario(horizon=Horizon(start=start_dt, slot_minutes=slot_minutes, slots=T),
                        latency=lat_opts)
    scenario.objective.carbon_price_per_tonne = 55.0
    tariffs = make_tariffs(T, slot_minutes, day)
    used = {n.tariff for n in nodes}
    tariffs = {k: v for k, v in tariffs.items() if k in used}
    jobs = metro_jobs(np.random.default_rng([seed, 21]), n_jobs, nodes, names, clat, clon,
                      start_dt, T, slot_minutes, lat_opts)
    # a hard SLO some host of the job's kind meets (few nodes: the nearest may be far)
    hosts = [n for n in nodes if n.kind in ("home", "streetlight", "ev_site_pod")]
    if hosts:
        hl = np.array([[n.lat, n.lon] for n in hosts], dtype=float)
        km = great_circle_km(clat[:, None], clon[:, None], hl[None, :, 0], hl[None, :, 1])
        best = BASE_MS + MS_PER_KM * km.min(axis=1)
        pos = {nm: k for k, nm in enumerate(names)}
        for job in jobs:
            if job.latency_slo_ms is not None and job.region is not None:
                need = math.ceil((float(best[pos[job.region]]) + 0.3) * 10) / 10
                if need > job.latency_slo_ms:
                    job.latency_slo_ms = need
    return Problem.model_construct(scenario=scenario, nodes=nodes, jobs=jobs,
                                   node_series=series, tariffs=tariffs, feeders=feeders,
                                   latency_ms=latency, regions=regions)


def _city_kind(kind: str, n: int, rng: np.random.Generator, ctx: Ctx, cell: IntArray,
               n_cells: int, clat: FloatArray, clon: FloatArray) -> dict[str, Any]:
    """Node fields (keyword arguments of :class:`Node`) and series of ``n`` city nodes."""
    T = ctx.slots
    zeros = np.zeros((n, T))
    if kind == "home":
        kwp = np.round(rng.uniform(5.0, 10.0, n), 1)
        pv = _pv(rng, ctx, cell, n_cells, clat, clon, kwp, tilt=35.0)
        gpus = rng.choice([1, 2], size=n, p=[0.6, 0.4])
        annual = rng.uniform(2500.0, 5000.0, n)
        h0 = ctx.slp("h0")
        household = h0[None, :] * annual[:, None] / 1000.0 * np.exp(
            _ar1(rng, (n, T), 0.25, 0.7) - 0.25 ** 2 / 2)
        head = np.round(np.clip(14.5 - household, 0.0, 14.5), 4)
        batt = rng.random(n) < HOME_BATTERY_SHARE
        soc = np.round(rng.uniform(0.4, 0.8, n), 2)
        node = [dict(tariff="home_dynamic", gpus=float(gpus[k]), gpu_mem_gb=24, trust=1,
                     speed=0.4, power_factor=0.45, idle_kw=0.06, can_sleep=True,
                     initially_on=False, startup_cost=0.01, grid_kw=14.5,
                     export_kw=round(0.6 * float(kwp[k]), 2),
                     battery_kwh=13.5 if batt[k] else 0.0, soc_init=float(soc[k]),
                     soc_min=0.2, charge_kw=5.0 if batt[k] else 0.0,
                     discharge_kw=11.5 if batt[k] else 0.0, degradation_per_kwh=0.05)
                for k in range(n)]
        return {"node": node, "pv": np.round(pv, 4), "head": head,
                "avail": np.ones((n, T), dtype=bool), "household": household}
    if kind == "streetlight":
        kwp = np.round(rng.uniform(0.3, 0.5, n), 2)
        pv = _pv(rng, ctx, cell, n_cells, clat, clon, kwp, tilt=50.0)
        sl_grid = np.where(rng.random(n) < 0.5, 0.1, 0.0)
        soc = np.round(rng.uniform(0.4, 0.7, n), 2)
        node = [dict(tariff="commercial_tou", gpus=1.0, gpu_mem_gb=32, trust=0, speed=0.08,
                     power_factor=0.05, idle_kw=0.015, can_sleep=True, initially_on=False,
                     grid_kw=float(sl_grid[k]), battery_kwh=2.0, soc_init=float(soc[k]),
                     soc_min=0.2, charge_kw=0.5, discharge_kw=0.5, eff_charge=0.96,
                     eff_discharge=0.96) for k in range(n)]
        head = np.repeat(sl_grid[:, None], T, axis=1)
        return {"node": node, "pv": np.round(pv, 4), "head": head,
                "avail": np.ones((n, T), dtype=bool)}
    if kind == "ev_site_pod":
        gpus = rng.choice([8, 16, 32], size=n)
        conn = 1500.0
        h = ctx.hours
        rate = (0.3 + 2.2 * np.exp(-((h - 12.5) ** 2) / 4.0)
                + 2.8 * np.exp(-((h - 17.5) ** 2) / 3.0))
        per_slot = rate * ctx.slot_minutes / 60.0 * 8 / 4.0
        arrivals = rng.poisson(np.broadcast_to(per_slot, (n, T)))
        dur = max(1, math.ceil(27.5 / ctx.slot_minutes))
        busy = np.zeros((n, T))
        for d in range(dur):
            busy[:, d:] += arrivals[:, : T - d] if d else arrivals
        charging = np.minimum(busy, 8) * rng.uniform(100, 200, (n, 1))
        head = np.round(np.clip(conn - charging, 0.0, conn), 4)
        node = [dict(tariff="industrial_dayahead", gpus=float(gpus[k]), gpu_mem_gb=80,
                     trust=2, speed=1.0, power_factor=1.25,
                     idle_kw=round(0.4 + 0.1 * float(gpus[k]), 2), can_sleep=True,
                     initially_on=False, startup_cost=0.5, shutdown_cost=0.2, grid_kw=conn)
                for k in range(n)]
        return {"node": node, "pv": zeros, "head": head, "avail": np.ones((n, T), dtype=bool)}
    if kind == "vehicle":
        h = ctx.hours[None, :]
        home = rng.random(n) < 0.5
        a = np.where(home, rng.uniform(18.0, 20.0, n), rng.uniform(8.0, 9.5, n))[:, None]
        b = np.where(home, rng.uniform(6.5, 8.0, n), rng.uniform(16.5, 18.5, n))[:, None]
        avail = np.where(home[:, None], (h >= a) | (h < b), (h >= a) & (h < b))
        node = [dict(tariff="home_dynamic", gpus=1.0, gpu_mem_gb=16, trust=0, speed=0.15,
                     power_factor=0.2, idle_kw=0.05, can_sleep=True, initially_on=False,
                     grid_kw=11.0) for _ in range(n)]
        return {"node": node, "pv": zeros, "head": np.full((n, T), 11.0), "avail": avail}
    raise ValueError(f"no city nodes of kind {kind!r}")


def _pv(rng: np.random.Generator, ctx: Ctx, cell: IntArray, n_cells: int, clat: FloatArray,
        clon: FloatArray, kwp: FloatArray, tilt: float) -> FloatArray:
    """PV AC output ``(n, T)`` [kW]: pvlib per cell for three azimuths (SE, S, SW) per kWp,
    scaled by each system's kWp, with a per-node AR(1) forecast error (5 %)."""
    T = ctx.slots
    azimuths = (135.0, 180.0, 225.0)
    unit = np.zeros((n_cells, len(azimuths), T))
    for c in np.unique(cell):
        for a, az in enumerate(azimuths):
            unit[c, a] = pv_ac_kw(float(clat[c]), float(clon[c]), 1.0, tilt, az, ctx.start, T,
                                  ctx.slot_minutes)
    which = rng.integers(len(azimuths), size=cell.size)
    noise = 1.0 + _ar1(rng, (cell.size, T), ctx.forecast_error * 0.6 / math.sqrt(1 - 0.64), 0.8)
    return np.clip(unit[cell, which] * kwp[:, None] * noise, 0.0, kwp[:, None])


def metro_jobs(rng: np.random.Generator, n_jobs: int, nodes: list[Node], names: list[str],
               clat: FloatArray, clon: FloatArray, start: datetime, T: int, slot_minutes: int,
               lat_opts: LatencyOptions) -> list[Job]:
    """``n_jobs`` jobs of the metro city, drawn in bulk.

    - ``inference`` (62 %): 1 GPU, 16 GB, 10-60 min, hard SLO of 2.2-3.5 ms to its
      neighbourhood (served within 1-2.5 km), due 1-3 slots after its run, drop penalty
      4 €/GPU-h;
    - ``batch_inference`` (20 %): 1-2 GPUs, 16-24 GB, 30-240 min, a data-residency SLO of
      4 ms (hard), due within 2-4 times its run, soft deadline;
    - ``fine_tune`` (15 %): 1-8 GPUs, 80 GB, trust 2 (EV pods and regional sites), 1-6 h,
      by the end of the day, soft deadline;
    - ``training`` (3 %): 8-16 GPUs, 80 GB, trust 2, 2-6 h, by the end of the day.

    The mix fills about half of the GPU-slots of the 80 GB hosts and three quarters of the
    homes' (by the jobs' shortest durations).

    Releases follow the daily cycle of :mod:`optisched.generate.jobs`; power is
    ``gpus · 1.275 kW · utilization``. 30 % of the small (≤ 2 GPUs), short (≤ a quarter of
    the horizon) fine-tuning jobs must run.
    """
    J = n_jobs
    dt = slot_minutes
    kinds = list(JOB_SHARES)
    kind = rng.choice(len(kinds), size=J, p=np.array(list(JOB_SHARES.values())))
    inf, bat, ft, tr = (kind == k for k in range(4))
    gpus = np.ones(J)
    gpus[bat] = rng.choice([1, 2], size=int(bat.sum()), p=[0.8, 0.2])
    gpus[ft] = rng.choice([1, 2, 4, 8], size=int(ft.sum()), p=[0.4, 0.3, 0.2, 0.1])
    gpus[tr] = rng.choice([8, 16], size=int(tr.sum()), p=[0.7, 0.3])
    dur = np.empty(J)
    dur[inf] = rng.uniform(10, 60, int(inf.sum()))
    dur[bat] = np.clip(rng.lognormal(math.log(90), 0.5, int(bat.sum())), 30, 240)
    dur[ft] = rng.uniform(60, 360, int(ft.sum()))
    dur[tr] = rng.uniform(120, 360, int(tr.sum()))
    dur = np.maximum(dt, np.round(dur / 5.0) * 5.0)
    util = np.where(inf, rng.uniform(0.4, 0.7, J), np.where(bat, rng.uniform(0.5, 0.8, J),
                                                             rng.uniform(0.7, 0.95, J)))
    power = np.round(gpus * KW_PER_GPU * util, 3)
    mem = np.where(inf, 16.0, np.where(bat, rng.choice([16.0, 24.0], size=J), 80.0))
    trust = np.where(ft | tr, 2.0, 0.0)
    # slowest plausible host: homes (speed 0.4) for inference and batch, else speed 1
    speed = np.where(inf | bat, 0.4, 1.0)
    d_slots = np.ceil(dur / dt / speed - 1e-9).astype(np.int64)
    dur = np.where(d_slots > T // 2, np.floor(T // 2 * dt * speed / 5.0) * 5.0, dur)
    d_slots = np.minimum(d_slots, T // 2)
    hours = (np.arange(T) + 0.5) * dt / 60.0 % 24.0
    work = np.exp(-((hours - 11.0) ** 2) / 8.0) + 0.8 * np.exp(-((hours - 15.5) ** 2) / 6.0)
    rate_inf = 0.15 + work + 0.9 * np.exp(-((hours - 20.0) ** 2) / 4.0)
    rate_oth = 0.35 + 0.6 * work
    cdf_inf = np.cumsum(rate_inf) / rate_inf.sum()
    cdf_oth = np.cumsum(rate_oth) / rate_oth.sum()
    u = rng.random(J)
    rel = np.where(inf, np.searchsorted(cdf_inf, u), np.searchsorted(cdf_oth, u))
    rel = np.minimum(rel, T - d_slots).astype(np.int64)
    slack = np.where(inf, d_slots + rng.integers(1, 4, J),
                     np.where(bat, d_slots * rng.integers(2, 5, J), T))
    end = np.minimum(T, rel + slack)
    end = np.maximum(end, np.minimum(T, rel + d_slots))
    region_k = rng.integers(len(names), size=J)
    slo = np.where(inf, np.round(rng.uniform(2.2, 3.5, J), 1), np.where(bat, 4.0, np.nan))
    gpu_hours = gpus * dur / 60.0
    value = np.where(inf, 4.0, 2.0)
    drop = np.round(value * gpu_hours, 3)
    tard = np.where(bat, np.round(0.4 * gpus, 3), np.where(ft, np.round(0.2 * gpus, 3),
                                                            np.nan))
    # must-run: small, short fine-tuning jobs (every EV pod and regional site hosts them),
    # not latency-bound jobs (a crowded or sparse neighbourhood may have no room for them)
    must = (rng.random(J) < 0.3) & ft & (gpus <= 2) & (d_slots <= T // 4)
    times = [start + timedelta(minutes=t * dt) for t in range(T + 1)]
    jobs = []
    for i in range(J):
        k = kinds[int(kind[i])]
        has_slo = not math.isnan(slo[i])
        jobs.append(Job(
            job_id=f"j{i + 1:06d}", kind=k, gpus=float(gpus[i]), duration_min=float(dur[i]),
            power_kw=float(power[i]), release=times[int(rel[i])],
            deadline=times[int(end[i])],
            tardiness_per_hour=None if math.isnan(tard[i]) else float(tard[i]),
            drop_penalty=None if must[i] else float(drop[i]),
            region=names[int(region_k[i])] if has_slo else None,
            latency_slo_ms=float(slo[i]) if has_slo else None,
            min_gpu_mem_gb=float(mem[i]), min_trust=float(trust[i])))
    return jobs
