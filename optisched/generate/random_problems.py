"""Seeded random problems built in code: for tests and the solver benchmarks.

Two generators beside the realistic :func:`optisched.generate.generate`; both
make their draws in a fixed order from ``numpy.random.default_rng(seed)``, so
the same arguments always give the same problem, bit for bit (tests and
recorded benchmark figures depend on these exact instances: never reorder a
draw).

:func:`random_problem`
    Small consistent problems for tests (was ``tests/_problems.py``). Every
    feature is a switch so a test can ask for exactly what it exercises.
    Feasibility: node headroom is generous (at least the node's largest possible
    load unless ``tight_headroom``), jobs are short relative to the horizon and
    may be dropped when ``droppable``, so the ``baseline`` solver usually finds a
    plan. Feeder headroom is drawn around the feeder's expected net import, so it
    binds sometimes.
:func:`bench_problem`
    The shape of the greedy and MILP benchmarks (was
    ``optisched.solvers.greedy_bench.bench_problem``): 15-minute slots, long
    job windows, four day/night tariffs.

Example
-------
>>> p = random_problem(3, n_nodes=3, n_jobs=4, slots=8, batteries=True, feeders=True)
>>> len(p.nodes), p.horizon.slots
(3, 8)
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Literal

import numpy as np

from optisched.domain import (
    BatteryOptions,
    Feeder,
    Horizon,
    Job,
    Node,
    NodeSeries,
    ObjectiveOptions,
    Problem,
    Scenario,
    Tariff,
)

__all__ = ["START", "bench_problem", "random_problem"]

START = "2026-06-01T00:00:00+00:00"
"""Start of every horizon drawn here (UTC)."""


def random_problem(
    seed: int,
    n_nodes: int = 3,
    n_jobs: int = 5,
    slots: int = 8,
    *,
    slot_minutes: int = 60,
    batteries: bool = True,
    battery_share: float = 0.67,
    feeders: bool = False,
    negative_prices: bool = False,
    demand_charge: bool = False,
    export: bool = True,
    carbon: bool = False,
    degradation: bool = False,
    sleep: bool = False,
    droppable: bool = True,
    tight_headroom: bool = False,
    terminal: Literal["initial", "free"] = "initial",
) -> Problem:
    """A random consistent problem.

    Parameters
    ----------
    seed : int
        Seed of ``numpy.random.default_rng``.
    n_nodes, n_jobs, slots : int
        Sizes; ``slot_minutes`` sets Δ (default 60 min, Δ = 1 h).
    batteries : bool
        A share ``battery_share`` (default about 2/3) of the nodes get a battery
        (random capacity, soc bounds, power limits and efficiencies 0.85-1.0).
    feeders : bool
        Nodes are split over two feeders (a few stay outside), with per-slot
        headroom around their expected net import and some ``inf`` slots.
    negative_prices : bool
        Some slots get a negative import price (down to −0.2 money/kWh).
    demand_charge : bool
        About half of the nodes pay 0.5-5 money per kW of peak import.
    export : bool
        Nodes may export (export_kw > 0) at a random export price, sometimes
        above the import price.
    carbon : bool
        Carbon intensity per slot and a carbon price of 50-150 money/t.
    degradation : bool
        Batteries get a degradation cost of 0-0.05 money/kWh.
    sleep : bool
        Some nodes may sleep, with start-up/shut-down costs.
    droppable : bool
        Jobs get a drop penalty (else they must run).
    tight_headroom : bool
        Headroom may be below the peak load (infeasibility tests).
    terminal : {"initial", "free"}
        Battery terminal rule.

    Returns
    -------
    Problem
        Tariff ``"t<k>"`` per node, PV as a noisy bell over the horizon, and jobs
        of 1-3 slots with power 0.2-3 kW and release/deadline windows.
    """
    rng = np.random.default_rng(seed)
    T = slots
    horizon = Horizon(start=START, slot_minutes=slot_minutes, slots=T)
    nodes: list[Node] = []
    series: dict[str, NodeSeries] = {}
    tariffs: dict[str, Tariff] = {}
    feeder_of: list[str | None] = []
    n_feeders = 2 if feeders else 0
    bell = np.sin(np.linspace(0.0, math.pi, T + 2)[1:-1])
    for k in range(n_nodes):
        nid = f"n{k}"
        idle = float(rng.uniform(0.0, 0.5))
        gpus = float(rng.integers(1, 4))
        max_load = idle + gpus * 3.0
        has_batt = batteries and rng.random() < battery_share
        batt: dict[str, float] = {}
        if has_batt:
            E = float(rng.uniform(2.0, 10.0))
            lo = float(rng.uniform(0.0, 0.3))
            hi = float(rng.uniform(0.7, 1.0))
            batt = dict(
                battery_kwh=E, soc_min=lo, soc_max=hi, soc_init=float(rng.uniform(lo, hi)),
                charge_kw=float(rng.uniform(0.5, 1.0) * E / 2),
                discharge_kw=float(rng.uniform(0.5, 1.0) * E / 2),
                eff_charge=float(rng.uniform(0.85, 1.0)),
                eff_discharge=float(rng.uniform(0.85, 1.0)),
                degradation_per_kwh=float(rng.uniform(0.0, 0.05)) if degradation else 0.0,
            )
        fdr = None
        if n_feeders and rng.random() < 0.85:
            fdr = f"f{int(rng.integers(0, n_feeders))}"
        feeder_of.append(fdr)
        can_sleep = sleep and rng.random() < 0.5
        nodes.append(Node(
            node_id=nid, gpus=gpus, idle_kw=idle, tariff=f"t{k}", feeder=fdr,
            can_sleep=can_sleep, initially_on=bool(rng.random() < 0.5) if can_sleep else True,
            startup_cost=float(rng.uniform(0, 0.3)) if can_sleep else 0.0,
            shutdown_cost=float(rng.uniform(0, 0.3)) if can_sleep else 0.0,
            export_kw=float(rng.uniform(0.5, 3.0)) if export and rng.random() < 0.7 else 0.0,
            demand_charge_per_kw=(float(rng.uniform(0.5, 5.0))
                                  if demand_charge and rng.random() < 0.5 else 0.0),
            **batt,
        ))
        pv = np.maximum(0.0, bell * rng.uniform(0.0, 4.0) + rng.normal(0.0, 0.2, T))
        head = rng.uniform(0.6, 1.2, T) * max_load if tight_headroom else (
            np.full(T, max_load + float(rng.uniform(0.0, 2.0))))
        if not tight_headroom and rng.random() < 0.3:
            head_list: list[float | None] = [None] * T  # grid_kw (inf)
        else:
            head_list = [float(v) for v in head]
        series[nid] = NodeSeries(pv_kw=[float(v) for v in pv], headroom_kw=head_list)
        price = rng.uniform(0.05, 0.4, T)
        if negative_prices:
            neg = rng.random(T) < 0.3
            price = np.where(neg, -rng.uniform(0.0, 0.2, T), price)
        exp_price = (rng.uniform(0.0, 0.3, T) if export else np.zeros(T))
        exp_price = np.where(rng.random(T) < 0.2, 0.0, exp_price)
        carb = rng.uniform(50.0, 500.0, T) if carbon else np.zeros(T)
        tariffs[f"t{k}"] = Tariff(price=[float(v) for v in price],
                                  export_price=[float(v) for v in exp_price],
                                  carbon_g_per_kwh=[float(v) for v in carb])
    fdict: dict[str, Feeder] = {}
    for f in range(n_feeders):
        members = [k for k in range(n_nodes) if feeder_of[k] == f"f{f}"]
        base = sum(float(nodes[k].idle_kw) + 1.5 for k in members)
        lim = rng.uniform(0.6, 1.6, T) * max(base, 0.5)
        lim = np.where(rng.random(T) < 0.2, math.inf, lim)
        fdict[f"f{f}"] = Feeder(headroom_kw=[float(v) for v in lim])
    jobs: list[Job] = []
    for j in range(n_jobs):
        d_slots = int(rng.integers(1, min(3, T) + 1))
        rel = int(rng.integers(0, max(1, T - d_slots)))
        dl = min(T, rel + d_slots + int(rng.integers(0, T)))
        jobs.append(Job(
            job_id=f"j{j}", gpus=1.0, duration_min=d_slots * slot_minutes,
            power_kw=float(rng.uniform(0.2, 3.0)),
            release=horizon.time_of(rel), deadline=horizon.time_of(dl),
            drop_penalty=float(rng.uniform(1.0, 10.0)) if droppable else None,
        ))
    scenario = Scenario(
        horizon=horizon,
        objective=ObjectiveOptions(carbon_price_per_tonne=float(rng.uniform(50, 150))
                                   if carbon else 0.0),
        battery=BatteryOptions(terminal=terminal),
    )
    return Problem(scenario=scenario, nodes=nodes, jobs=jobs, node_series=series,
                   tariffs=tariffs, feeders=fdict)


def bench_problem(n_jobs: int, n_nodes: int, slots: int = 96, seed: int = 0,
                  slot_minutes: int = 15) -> Problem:
    """A random problem of the benchmark's shape.

    Nodes: 1-8 GPUs, idle 0.05-1 kW, a third can sleep (start-up/shut-down
    0-0.5 money), 60 % with a battery of 5-20 kWh, PV as a midday bell of peak
    0-6 kW, headroom 1.5x the node's largest load, 4 tariffs with a day/night
    price pattern 0.1-0.45 money/kWh. Jobs: 1-2 GPUs, 15-240 min, 0.2-2.5 kW,
    releases over the first 3/4 of the horizon, deadlines 2-12 h later (hard for
    60 %, else tardiness 0.1-1 money/h), 70 % droppable at 1-20 money.

    Parameters
    ----------
    n_jobs, n_nodes, slots : int
        Sizes (default 96 slots).
    seed : int
        Seed of ``numpy.random.default_rng``.
    slot_minutes : int
        Slot length Δ [min] (default 15).

    Returns
    -------
    Problem
        Consistent; the same seed gives the same problem.
    """
    rng = np.random.default_rng(seed)
    T = slots
    hz = Horizon(start=START, slot_minutes=slot_minutes, slots=T)
    hours = (np.arange(T) * slot_minutes / 60.0) % 24
    bell = np.clip(np.sin((hours - 6) / 12 * math.pi), 0.0, None)
    tariffs = {}
    for k in range(4):
        base = rng.uniform(0.1, 0.2)
        peak = np.where((hours >= 17) & (hours < 21), rng.uniform(0.15, 0.25), 0.0)
        day = np.where((hours >= 7) & (hours < 17), rng.uniform(0.02, 0.08), 0.0)
        tariffs[f"t{k}"] = Tariff(price=[float(v) for v in base + peak + day],
                                  export_price=[0.05] * T, carbon_g_per_kwh=[0.0] * T)
    nodes, series = [], {}
    for n in range(n_nodes):
        gpus = float(rng.integers(1, 9))
        idle = float(rng.uniform(0.05, 1.0))
        sleep = bool(rng.random() < 1 / 3)
        batt = rng.random() < 0.6
        E = float(rng.uniform(5, 20)) if batt else 0.0
        nodes.append(Node(
            node_id=f"n{n}", gpus=gpus, idle_kw=idle, tariff=f"t{n % 4}", can_sleep=sleep,
            initially_on=not sleep, startup_cost=float(rng.uniform(0, 0.5)) if sleep else 0.0,
            shutdown_cost=float(rng.uniform(0, 0.5)) if sleep else 0.0,
            export_kw=float(rng.uniform(0, 3)), battery_kwh=E,
            soc_init=0.5, soc_min=0.1 if batt else 0.0,
        ))
        pv = bell * rng.uniform(0.0, 6.0)
        head = idle + gpus * 2.5 * 1.5
        series[f"n{n}"] = NodeSeries(pv_kw=[float(v) for v in pv], headroom_kw=[head] * T)
    jobs = []
    for j in range(n_jobs):
        dur = float(rng.integers(1, 17) * 15)
        rel = int(rng.integers(0, max(1, 3 * T // 4)))
        slack_h = float(rng.uniform(2, 12))
        dl = hz.time_of(rel) + timedelta(minutes=dur) + timedelta(hours=slack_h)
        dl = min(dl, hz.end)
        hard = rng.random() < 0.6
        jobs.append(Job(
            job_id=f"j{j}", gpus=float(rng.integers(1, 3)), duration_min=dur,
            power_kw=float(rng.uniform(0.2, 2.5)), release=hz.time_of(rel), deadline=dl,
            tardiness_per_hour=None if hard else float(rng.uniform(0.1, 1.0)),
            drop_penalty=float(rng.uniform(1, 20)) if rng.random() < 0.7 else 1000.0,
        ))
    return Problem(scenario=Scenario(horizon=hz), nodes=nodes, jobs=jobs, node_series=series,
                   tariffs=tariffs)
