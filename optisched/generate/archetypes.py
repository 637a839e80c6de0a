"""Node archetypes of the distributed compute grid, placed in the Berlin metro area.

Every figure below carries its source or is marked as an assumption; the table in
``datasets/README.md`` repeats them. Reference hardware (speed 1.0, power_factor 1.0):
one data-center GPU of the NVIDIA DGX H100 class, 10.2 kW max for 8 GPUs, i.e.
~1.3 kW per GPU including its server share (NVIDIA DGX H100 datasheet); a job's
``power_kw`` is given for that hardware.

Archetypes (``kind`` in nodes.csv):

``home``
    Compact GPU node beside a home electrical panel and home battery (NVIDIA/Span
    trials, FIELD.md, 2026 coverage). 1-2 consumer GPUs (RTX 4090 class: 24 GB,
    450 W board power), rooftop PV 5-10 kWp, a Powerwall-3-class battery (13.5 kWh
    usable, 11.5 kW continuous discharge, 5 kW grid charging; Tesla datasheet) with
    the 20 % default backup reserve as soc_min, a residential service of 14.5 kW
    (DIN 18015-1 minimum for a dwelling without electric hot water) minus the
    household's BDEW H0 load as headroom, export limited to 60 % of kWp
    (Solarspitzengesetz 2025 for new systems without smart meter gateway).
``streetlight``
    Solar streetlight retrofitted as an AI micro data center (Conflow Power iLamp,
    FIELD.md, 2026 coverage): one Jetson-AGX-Orin-class module (32 GB, up to 60 W),
    0.3-0.5 kWp pole PV, 2 kWh LiFePO4 battery whose night lighting reserve
    (40 W LED × 10 h) is soc_min; half on the existing lamppost connection
    (0.1 kW), half solar-only (grid 0).
``regional_dc``
    Slice of a ~10 MW regional site in Brandenburg (Gray Wolf's "fifty 10 MW sites",
    FIELD.md, 2026 coverage): 128-512 H100-class GPUs offered to the grid, PUE
    1.2-1.4 as power_factor (Uptime Institute 2023 survey: average 1.58, new sites
    lower), 10 MW connection minus the rest of the site's load: a flat data-centre
    load with a cooling swing, at 93-98 % of the connection at its afternoon peak
    (the power wall: only a few per cent of a built-out connection are spare;
    assumption, see :func:`site_load_kw`), demand charge, half with a 2 MWh battery.
``ev_site_pod``
    Modular container pod at an EV fast-charging site (Tesla "MEGAPOD" filing and
    "~7 GW spare Supercharger capacity" claim, FIELD.md, 2026 coverage): 8-32 GPUs,
    1.5 MW site connection (assumption) shared with 8 stalls of 250 kW (V3
    Supercharger peak), headroom = connection minus charging load of simulated
    sessions (assumption: ~150 kW mean for ~25 min, arrivals peaking at midday and
    evening), so it dips when cars charge. A hub of this size has a medium-voltage
    supply contract, so it buys on the industrial day-ahead tariff like a regional
    site (assumption), without a demand charge of its own: the chargers set the
    site's billed peak and the pod only uses what they leave of the connection.
``vehicle``
    Parked car offering its on-board computer (idle compute in parked cars, FIELD.md,
    2026 coverage): 1 accelerator (16 GB, ~0.25 kW), available only in a parking
    window (overnight at home or a working day at the office), 11 kW wallbox.
``offgrid``
    Wave/solar autonomous node (Panthalassa-style, FIELD.md, 2026 coverage), moored
    in the Baltic off Warnemünde: grid_kw = 0, 4 GPUs, 4 kWp PV plus ~1.5 kW wave
    power (reported in pv_kw, the node's local generation), 30 kWh battery, radio
    backhaul (+40 ms, assumption) so high latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from optisched.arrays import FloatArray
from optisched.domain import Node, NodeSeries
from optisched.generate.data import resample_day, slp_day
from optisched.generate.solar import pv_ac_kw

__all__ = [
    "ARCHETYPES",
    "BERLIN_DISTRICTS",
    "FEEDER_SHARE_KW",
    "OFFSHORE_SITES",
    "REGIONAL_SITES",
    "BuiltNode",
    "build_node",
    "extra_latency_ms",
]


FEEDER_SHARE_KW = 4.0
"""Diversified low-voltage feeder capacity per home [kW] (assumption): a feeder's headroom
is the sum over its homes of this share minus the home's household load (at least 0)."""

ARCHETYPES = ("home", "streetlight", "regional_dc", "ev_site_pod", "vehicle", "offgrid")

BERLIN_DISTRICTS: dict[str, tuple[float, float]] = {
    # the 12 Bezirke of Berlin, approximate centres (rounded to 0.01°)
    "mitte": (52.53, 13.37),
    "friedrichshain_kreuzberg": (52.50, 13.43),
    "pankow": (52.60, 13.43),
    "charlottenburg_wilmersdorf": (52.50, 13.28),
    "spandau": (52.54, 13.20),
    "steglitz_zehlendorf": (52.43, 13.24),
    "tempelhof_schoeneberg": (52.46, 13.38),
    "neukoelln": (52.44, 13.44),
    "treptow_koepenick": (52.42, 13.58),
    "marzahn_hellersdorf": (52.54, 13.59),
    "lichtenberg": (52.53, 13.50),
    "reinickendorf": (52.60, 13.29),
}
"""User regions (regions.csv) and home districts of city nodes [deg]."""

REGIONAL_SITES: dict[str, tuple[float, float]] = {
    # towns around Berlin for ~10 MW regional sites [deg], approximate town centres
    "ludwigsfelde": (52.30, 13.26),
    "koenigs_wusterhausen": (52.30, 13.63),
    "brandenburg_havel": (52.41, 12.55),
    "frankfurt_oder": (52.34, 14.55),
    "eberswalde": (52.83, 13.82),
    "cottbus": (51.76, 14.33),
    "schwedt": (53.06, 14.28),
}

OFFSHORE_SITES: dict[str, tuple[float, float]] = {"baltic_warnemuende": (54.25, 12.05)}

# per-kind latency added to the distance-based RTT [ms] (access network; assumptions)
_EXTRA_LATENCY = {"offgrid": 40.0, "vehicle": 10.0}

REFERENCE_KW_PER_GPU = 10.2 / 8
"""DGX H100 max system power per GPU [kW] (NVIDIA DGX H100 datasheet)."""


def extra_latency_ms(kind: str) -> float:
    """Access-network RTT added on top of the distance-based latency for a kind [ms]."""
    return _EXTRA_LATENCY.get(kind, 0.0)


@dataclass
class BuiltNode:
    """A generated node with its series."""

    node: Node
    series: NodeSeries
    household_kw: FloatArray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ctx:
    """What the archetype builders share: horizon, clock and sun."""

    start: pd.Timestamp
    slots: int
    slot_minutes: int
    start_minute: int  # local minute of day of slot 0
    weekday: bool
    clearness: FloatArray | None
    forecast_error: float

    @property
    def hours(self) -> FloatArray:
        """Local hour of day of each slot's middle [h] (periodic, 0..24)."""
        mins = self.start_minute + (np.arange(self.slots) + 0.5) * self.slot_minutes
        return np.asarray((mins / 60.0) % 24.0, dtype=np.float64)

    def slp(self, profile: str) -> FloatArray:
        """BDEW profile resampled onto the slots [kW per 1,000 kWh/a]."""
        return resample_day(slp_day(profile, "workday" if self.weekday else "sunday"),
                            self.slots, self.slot_minutes, self.start_minute)

    def pv(self, rng: np.random.Generator, lat: float, lon: float, kwp: float, tilt: float,
           azimuth: float) -> FloatArray:
        """PV AC output [kW] from pvlib (see :mod:`optisched.generate.solar`)."""
        return pv_ac_kw(lat, lon, kwp, tilt, azimuth, self.start, self.slots, self.slot_minutes,
                        clearness=self.clearness, forecast_error=self.forecast_error, rng=rng)


def _jitter(rng: np.random.Generator, x: FloatArray, sd: float) -> FloatArray:
    """Multiplicative lognormal jitter with a slot-to-slot AR(1) correlation."""
    e = rng.normal(0.0, sd, size=x.shape)
    for t in range(1, len(e)):
        e[t] = 0.7 * e[t - 1] + math.sqrt(1 - 0.49) * e[t]
    return np.asarray(x * np.exp(e - sd * sd / 2), dtype=np.float64)


def _r(v: float, nd: int = 4) -> float:
    return float(round(v, nd))


def _near(rng: np.random.Generator, lat: float, lon: float, km: float) -> tuple[float, float]:
    """A point within ~km of (lat, lon), rounded to 1e-4° (~10 m)."""
    dlat = rng.uniform(-km, km) / 111.0
    dlon = rng.uniform(-km, km) / (111.0 * math.cos(math.radians(lat)))
    return round(lat + dlat, 4), round(lon + dlon, 4)


def build_node(kind: str, node_id: str, rng: np.random.Generator, ctx: Ctx,
               feeder: str | None = None) -> BuiltNode:
    """Draw one node of archetype ``kind`` with its pv/headroom/availability series.

    Parameters
    ----------
    kind : str
        One of :data:`ARCHETYPES`.
    node_id : str
        Its id.
    rng : numpy.random.Generator
        Seeded source of every random draw.
    ctx : Ctx
        Horizon and sun.
    feeder : str, optional
        Feeder the node hangs on.
    """
    T = ctx.slots
    districts = list(BERLIN_DISTRICTS)
    if kind == "home":
        region = districts[rng.integers(len(districts))]
        lat, lon = _near(rng, *BERLIN_DISTRICTS[region], 2.5)
        kwp = _r(rng.uniform(5.0, 10.0), 1)
        gpus = int(rng.choice([1, 2], p=[0.6, 0.4]))
        annual_kwh = rng.uniform(2500.0, 5000.0)
        household = _jitter(rng, ctx.slp("h0") * annual_kwh / 1000.0, 0.25)
        grid = 14.5
        node = Node(
            node_id=node_id, kind=kind, region=region, lat=lat, lon=lon, tariff="home_dynamic",
            feeder=feeder, gpus=gpus, gpu_mem_gb=24, trust=1, speed=0.4, power_factor=0.45,
            idle_kw=0.06, can_sleep=True, initially_on=False, startup_cost=0.01,
            shutdown_cost=0.0, grid_kw=grid, export_kw=_r(0.6 * kwp, 2), battery_kwh=13.5,
            soc_init=_r(rng.uniform(0.4, 0.8), 2), soc_min=0.2, soc_max=1.0, charge_kw=5.0,
            discharge_kw=11.5, eff_charge=0.95, eff_discharge=0.95, degradation_per_kwh=0.05,
        )
        pv = ctx.pv(rng, lat, lon, kwp, _r(rng.uniform(25, 45), 0), _r(rng.uniform(135, 225), 0))
        head = np.clip(grid - household, 0.0, grid)
        return BuiltNode(node, NodeSeries(pv_kw=_list(pv), headroom_kw=_list(head)), household,
                         {"kwp": kwp})
    if kind == "streetlight":
        region = districts[rng.integers(len(districts))]
        lat, lon = _near(rng, *BERLIN_DISTRICTS[region], 3.0)
        kwp = _r(rng.uniform(0.3, 0.5), 2)
        grid = 0.1 if rng.random() < 0.5 else 0.0
        node = Node(
            node_id=node_id, kind=kind, region=region, lat=lat, lon=lon, tariff="commercial_tou",
            feeder=feeder, gpus=1, gpu_mem_gb=32, trust=0, speed=0.08, power_factor=0.05,
            idle_kw=0.015, can_sleep=True, initially_on=False, grid_kw=grid, export_kw=0.0,
            battery_kwh=2.0, soc_init=_r(rng.uniform(0.4, 0.7), 2), soc_min=0.2, soc_max=1.0,
            charge_kw=0.5, discharge_kw=0.5, eff_charge=0.96, eff_discharge=0.96,
        )
        pv = ctx.pv(rng, lat, lon, kwp, _r(rng.uniform(40, 60), 0), _r(rng.uniform(160, 200), 0))
        return BuiltNode(node, NodeSeries(pv_kw=_list(pv)), None, {"kwp": kwp})
    if kind == "regional_dc":
        names = list(REGIONAL_SITES)
        site = names[rng.integers(len(names))]
        lat, lon = _near(rng, *REGIONAL_SITES[site], 2.0)
        gpus = int(rng.choice([128, 256, 512]))
        pue = _r(rng.uniform(1.2, 1.4), 2)
        grid = 10_000.0
        base = _jitter(rng, site_load_kw(rng, ctx, grid), 0.005)
        battery = 2000.0 if rng.random() < 0.5 else 0.0
        node = Node(
            node_id=node_id, kind=kind, region=site, lat=lat, lon=lon,
            tariff="industrial_dayahead", feeder=feeder, gpus=gpus, gpu_mem_gb=80, trust=2,
            speed=1.0, power_factor=pue, idle_kw=_r(gpus * 0.15 * pue, 2), can_sleep=False,
            grid_kw=grid, battery_kwh=battery, soc_init=0.5, soc_min=0.1,
            charge_kw=battery / 2, discharge_kw=battery / 2, eff_charge=0.96,
            eff_discharge=0.96, degradation_per_kwh=0.03 if battery else 0.0,
            demand_charge_per_kw=0.35,
        )
        # the slice's idle draw always fits (the site keeps it powered)
        head = np.clip(grid - base, 3.0 * node.idle_kw, grid)
        return BuiltNode(node, NodeSeries(headroom_kw=_list(head)), None, {"site": site})
    if kind == "ev_site_pod":
        region = districts[rng.integers(len(districts))]
        lat, lon = _near(rng, *BERLIN_DISTRICTS[region], 4.0)
        gpus = int(rng.choice([8, 16, 32]))
        conn = 1500.0
        charging = ev_charging_kw(rng, ctx, stalls=8)
        node = Node(
            node_id=node_id, kind=kind, region=region, lat=lat, lon=lon,
            tariff="industrial_dayahead", feeder=feeder, gpus=gpus, gpu_mem_gb=80, trust=2,
            speed=1.0, power_factor=1.25,
            idle_kw=_r(0.4 + 0.1 * gpus, 2), can_sleep=True, initially_on=False,
            startup_cost=0.5, shutdown_cost=0.2, grid_kw=conn,
        )
        head = np.clip(conn - charging, 0.0, conn)
        return BuiltNode(node, NodeSeries(headroom_kw=_list(head)), charging, {})
    if kind == "vehicle":
        region = districts[rng.integers(len(districts))]
        lat, lon = _near(rng, *BERLIN_DISTRICTS[region], 3.0)
        h = ctx.hours
        if rng.random() < 0.5:  # overnight at home
            a, b = rng.uniform(18.0, 20.0), rng.uniform(6.5, 8.0)
            avail = (h >= a) | (h < b)
        else:  # office car park
            a, b = rng.uniform(8.0, 9.5), rng.uniform(16.5, 18.5)
            avail = (h >= a) & (h < b)
        node = Node(
            node_id=node_id, kind=kind, region=region, lat=lat, lon=lon, tariff="home_dynamic",
            feeder=feeder, gpus=1, gpu_mem_gb=16, trust=0, speed=0.15, power_factor=0.2,
            idle_kw=0.05, can_sleep=True, initially_on=False, grid_kw=11.0,
        )
        return BuiltNode(node, NodeSeries(available=[bool(v) for v in avail]), None,
                         {"window": (round(float(a), 2), round(float(b), 2))})
    if kind == "offgrid":
        names = list(OFFSHORE_SITES)
        lat, lon = _near(rng, *OFFSHORE_SITES[names[rng.integers(len(names))]], 5.0)
        wave = _jitter(rng, np.full(T, rng.uniform(1.0, 2.0)), 0.3)
        pv = ctx.pv(rng, lat, lon, 4.0, 10.0, 180.0) + wave
        node = Node(
            node_id=node_id, kind=kind, region="baltic", lat=lat, lon=lon, tariff="offgrid",
            feeder=None, gpus=4, gpu_mem_gb=48, trust=1, speed=0.8, power_factor=0.9,
            idle_kw=0.1, can_sleep=True, initially_on=False, grid_kw=0.0, export_kw=0.0,
            battery_kwh=30.0, soc_init=0.6, soc_min=0.1, charge_kw=10.0, discharge_kw=10.0,
        )
        return BuiltNode(node, NodeSeries(pv_kw=_list(pv)), None, {})
    raise ValueError(f"unknown archetype {kind!r}; valid: {', '.join(ARCHETYPES)}")


SITE_PEAK_SHARE = (0.93, 0.98)
"""The rest of a regional site at its daily peak, as a share of its connection [-]
(assumption, the power wall of FIELD.md: sites are built out to a connection that the
grid operator cannot raise, so only a few per cent of it are spare)."""
SITE_COOLING_SWING = 0.03
"""Day-night swing of a regional site's load as a share of its connection [-] (assumption:
IT load is flat; cooling, about a quarter of site power at PUE ~1.35, varies by about
±10 % with the outdoor temperature, i.e. ~3 % of site power)."""


def site_load_kw(rng: np.random.Generator, ctx: Ctx, grid_kw: float) -> FloatArray:
    """Load of the rest of a ~10 MW regional site per slot [kW] (data-centre shaped).

    Flat IT load plus a cooling share that follows the outdoor temperature (daily
    maximum at 15:00 local, minimum at 03:00): at its peak the site draws
    :data:`SITE_PEAK_SHARE` of its connection, at night :data:`SITE_COOLING_SWING`
    of it less. Replaces the BDEW G0 (office) shape used before, whose night trough
    at ~25 % of the peak left a data-centre site's connection mostly free at night.
    """
    peak = rng.uniform(*SITE_PEAK_SHARE) * grid_kw
    warm = 0.5 * (1.0 + np.cos(2.0 * np.pi * (ctx.hours - 15.0) / 24.0))  # 1 at 15:00
    return np.asarray(peak - SITE_COOLING_SWING * grid_kw * (1.0 - warm), dtype=np.float64)


def ev_charging_kw(rng: np.random.Generator, ctx: Ctx, stalls: int) -> FloatArray:
    """Charging load of an EV fast-charging site per slot [kW] (simulated sessions).

    Sessions arrive as a Poisson process whose hourly rate has a midday and an
    evening peak (assumption; ~2 sessions per stall-hour-equivalent at peak), each
    drawing ~150 kW (uniform 100-200 kW) for 15-40 min, at most ``stalls`` at once.
    """
    T, dt = ctx.slots, ctx.slot_minutes
    h = ctx.hours
    rate = 0.3 + 2.2 * np.exp(-((h - 12.5) ** 2) / 4.0) + 2.8 * np.exp(-((h - 17.5) ** 2) / 3.0)
    per_slot = rate * dt / 60.0 * stalls / 4.0
    load = np.zeros(T)
    busy = np.zeros(T)
    for t in range(T):
        for _ in range(int(rng.poisson(per_slot[t]))):
            dur = max(1, math.ceil(rng.uniform(15, 40) / dt))
            kw = rng.uniform(100, 200)
            end = min(T, t + dur)
            if (busy[t:end] < stalls).all():
                busy[t:end] += 1
                load[t:end] += kw
    return load


def _list(a: FloatArray) -> list[float]:
    return [round(float(v), 4) for v in a]
