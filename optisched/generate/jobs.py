"""AI jobs: training, fine-tuning, batch inference and latency-bound inference.

Calibration (shape, not exact fit; see ``datasets/README.md``):

- GPU counts: most jobs in shared AI clusters request one GPU and a few request
  many (Jeon et al., "Analysis of Large-Scale Multi-Tenant GPU Clusters for DNN
  Training Workloads", USENIX ATC 2019, Microsoft Philly; Weng et al., "MLaaS in
  the Wild", NSDI 2022, Alibaba PAI: the large majority of task instances request
  at most one GPU). We use 1 GPU for inference, {1,2,4} for batch inference,
  {1,2,4,8} for fine-tuning and {4,8,16,32} for training.
- Durations: heavy-tailed (lognormal) — both traces report durations spanning
  minutes to days with medians of minutes to about an hour for most jobs and long
  training jobs holding most GPU time. Clipped to fit the horizon.
- Arrivals: diurnal — submissions peak in working hours (both traces);
  inference follows user activity (daytime and evening).
- Power: ``gpus × U × 1.275 kW`` (DGX H100 per-GPU system share) with
  utilization U ~ 0.5-0.9 (training high, inference lower).
- Value: drop penalty = value per GPU-hour (assumption: 2 €/GPU-h, about an
  on-demand H100 cloud price in 2025; inference 4 €/GPU-h) × GPU-hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from optisched.domain import Job

__all__ = ["JOB_KINDS", "JobMix", "draw_jobs"]

Array = npt.NDArray[np.float64]

JOB_KINDS = ("inference", "batch_inference", "fine_tune", "training")

KW_PER_GPU = 10.2 / 8
"""Reference system power per GPU [kW] (DGX H100 datasheet, 10.2 kW / 8 GPUs)."""


@dataclass(frozen=True)
class JobMix:
    """Shares of job kinds by count and feasibility knobs.

    Attributes
    ----------
    shares : tuple of float
        Shares of :data:`JOB_KINDS` (normalized).
    must_run_share : float
        Target share of must-run jobs (hard, no drop penalty), capped by a capacity budget.
    hard_slo_share : float
        Share of inference jobs whose latency SLO is hard.
    """

    shares: tuple[float, float, float, float] = (0.40, 0.25, 0.20, 0.15)
    must_run_share: float = 0.1
    hard_slo_share: float = 0.5


def _diurnal(hours: Array, kind: str) -> Array:
    """Relative arrival rate by local hour (assumption shaped after the traces' daily cycle)."""
    work = np.exp(-((hours - 11.0) ** 2) / 8.0) + 0.8 * np.exp(-((hours - 15.5) ** 2) / 6.0)
    if kind == "inference":
        return 0.15 + work + 0.9 * np.exp(-((hours - 20.0) ** 2) / 4.0)
    if kind == "training":
        return 0.2 + work
    return 0.35 + 0.6 * work


def draw_jobs(rng: np.random.Generator, n_jobs: int, start: pd.Timestamp, slots: int,
              slot_minutes: int, start_minute: int, regions: list[str],
              node_caps: tuple[Array, Array, Array, Array], min_latency: npt.NDArray[np.float64],
              mix: JobMix | None = None) -> list[Job]:
    """Draw ``n_jobs`` jobs over the horizon.

    Parameters
    ----------
    rng : numpy.random.Generator
        Seeded source.
    n_jobs : int
        Number of jobs.
    start : pandas.Timestamp
        Horizon start.
    slots, slot_minutes, start_minute : int
        Horizon and local minute of day of slot 0.
    regions : list of str
        User regions.
    node_caps : tuple of numpy.ndarray
        (gpus, gpu_mem_gb, trust, speed) of every node, for capping requests so some node fits.
    min_latency : numpy.ndarray
        (len(regions), len(nodes)) latency [ms] from each region to each node.
    mix : JobMix, optional
        Kind shares and knobs.
    """
    mix = mix or JobMix()
    T, dt = slots, slot_minutes
    horizon_min = T * dt
    gpus_cap, mem_cap, trust_cap, speed_cap = node_caps
    max_gpus = float(gpus_cap.max())
    hours = np.asarray(((start_minute + (np.arange(T) + 0.5) * dt) / 60.0) % 24.0,
                       dtype=np.float64)
    shares = np.asarray(mix.shares, dtype=float)
    kinds = rng.choice(len(JOB_KINDS), size=n_jobs, p=shares / shares.sum())
    total_gpu_slots = float(gpus_cap.sum()) * T
    budget = 0.25 * total_gpu_slots
    jobs: list[Job] = []
    for i in range(n_jobs):
        kind = JOB_KINDS[int(kinds[i])]
        if kind == "inference":
            gpus = 1.0
            dur = float(np.clip(rng.lognormal(math.log(30), 0.5), 10, 120))
            util, mem, value = rng.uniform(0.4, 0.7), 16.0, 4.0
        elif kind == "batch_inference":
            gpus = float(rng.choice([1, 2, 4], p=[0.6, 0.3, 0.1]))
            dur = float(np.clip(rng.lognormal(math.log(90), 0.7), 15, 8 * 60))
            util, mem, value = rng.uniform(0.5, 0.8), float(rng.choice([16.0, 24.0])), 2.0
        elif kind == "fine_tune":
            gpus = float(rng.choice([1, 2, 4, 8], p=[0.4, 0.3, 0.2, 0.1]))
            dur = float(np.clip(rng.lognormal(math.log(180), 0.6), 30, 10 * 60))
            util, mem, value = rng.uniform(0.6, 0.9), float(rng.choice([24.0, 48.0, 80.0])), 2.0
        else:
            gpus = float(rng.choice([4, 8, 16, 32], p=[0.3, 0.4, 0.2, 0.1]))
            dur = float(np.clip(rng.lognormal(math.log(360), 0.5), 60, 16 * 60))
            util, mem, value = rng.uniform(0.7, 0.95), 80.0, 2.0
        gpus = min(gpus, max_gpus)
        fits = gpus_cap >= gpus
        mem = min(mem, float(mem_cap[fits].max()))
        dur = min(dur, 0.6 * horizon_min)
        dur = float(max(dt, round(dur / 5.0) * 5.0))
        fastest = float(speed_cap[fits & (mem_cap >= mem)].max())
        dur = min(dur, float(math.floor(0.6 * horizon_min * fastest / 5.0) * 5.0) or dt)
        # slots on the fastest node able to hold it (speed < 1 stretches a job)
        d_slots = math.ceil(dur / dt / fastest - 1e-9)
        rate = _diurnal(hours, kind)
        latest_release = max(0, T - d_slots)
        p = rate[: latest_release + 1]
        rel = int(rng.choice(latest_release + 1, p=p / p.sum()))
        power = round(gpus * KW_PER_GPU * util, 3)
        gpu_hours = gpus * dur / 60.0
        region = regions[int(rng.integers(len(regions)))]
        slo = lat_pen = tard = None
        if kind == "inference":
            r = regions.index(region)
            # the SLO is met by some node of the fastest class (d_slots is counted there)
            ok = fits & (mem_cap >= mem) & (speed_cap >= fastest)
            best = float(min_latency[r][ok].min()) if ok.any() else math.inf
            slo = round(float(rng.uniform(3.0, 8.0)), 1)
            if rng.random() < mix.hard_slo_share and math.isfinite(best):
                slo = max(slo, math.ceil((best + 0.5) * 10) / 10)
            else:
                lat_pen = round(0.002 * gpu_hours * value, 4)  # money per ms over the SLO
            slack = d_slots + int(rng.integers(1, 4))
        elif kind == "batch_inference":
            slack = d_slots * int(rng.integers(2, 5))
            tard = round(0.2 * value * gpus, 3)
        else:
            slack = T  # by the end of the horizon
            tard = round(0.1 * value * gpus, 3) if kind == "fine_tune" else None
        end = min(T, rel + slack)
        if end - rel < d_slots:
            end = min(T, rel + d_slots)
        trust = 2.0 if kind == "training" and rng.random() < 0.3 else 0.0
        trust = min(trust, float(trust_cap[fits & (mem_cap >= mem)].max()))
        # must-run only where it cannot crowd out: small against the largest node, short
        # against the horizon, and within a capacity budget of 25 % of all GPU-slots
        small = gpus == 1 or gpus <= max_gpus / 4
        must = (rng.random() < mix.must_run_share and small and d_slots <= T // 2
                and budget >= gpus * d_slots * 2)
        if must:
            budget -= gpus * d_slots * 2
            slack_end = max(end, min(T, rel + 3 * d_slots))
            end = slack_end
        drop = None if must else round(value * gpu_hours, 3)
        release = start + timedelta(minutes=rel * dt)
        deadline = start + timedelta(minutes=end * dt)
        jobs.append(Job(
            job_id=f"j{i + 1:05d}", kind=kind, gpus=gpus, duration_min=dur, power_kw=power,
            release=release.to_pydatetime(), deadline=deadline.to_pydatetime(),
            tardiness_per_hour=tard, drop_penalty=drop, region=region,
            latency_slo_ms=slo, latency_per_ms=lat_pen, min_gpu_mem_gb=mem,
            min_trust=trust,
        ))
    return jobs
