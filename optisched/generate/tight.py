"""Tightly packed ICON-class instances, feasible by construction: :func:`tight_problem`.

The class is that of the ICON 2014 energy-cost aware scheduling challenge (CSPLib
prob059; ``../shared/icon/README.md``): one day of 5-minute slots, machines with
1-4 resources, idle power and start-up/shut-down costs that are off before the
first slot and must be off after the last, and tasks that must all run,
uninterrupted, inside their window [release, deadline] of that day.

How an instance is drawn (every step vectorized over jobs, lanes or machines)
------------------------------------------------------------------------------
1. **A hidden packing first.** Jobs are dealt to machines (multinomial, weights
   Gamma(8): near-equal shares). Each machine's capacity is cut into ``K`` lanes
   (``K`` uniform in ``lanes``, at most a third of its jobs, at least 1); lane ``k`` gets, per
   resource, an integer width ``ω_kr = max(1, ⌊hi · c_r · share_kr⌋)`` with the
   shares Dirichlet(1) over the machine's lanes, so ``Σ_k ω_kr ≤ hi · c_r + K``.
   The machine has one busy period ``[b0, b1)`` covering a fraction ``busy`` of
   the day (uniform in ``busy``); every lane spans all of it with its jobs back to
   back (durations: a random composition of the busy length, Gamma(``duration_shape``)
   weights capped at 3× their mean, each ≥ 1 slot). A job in lane ``k`` uses
   ``u_r = ⌈f_r · ω_kr⌉`` of resource
   ``r`` with ``f_r`` uniform in ``[lo/hi, 1]``.
2. **Feasible by construction.** At any slot at most one job per lane runs and it
   uses at most its lane's width, so a machine's use is at most
   ``Σ_k ω_kr ≤ c_r`` (checked; :class:`ValueError` if a capacity is too small
   for the rounding, which the default capacities never are).
3. **Tight by construction.** Inside the busy period every lane is busy, so each
   slot's use of every resource lies in ``[lo · c_r − K, hi · c_r + K]`` —
   80-95 % of capacity by default, up to the integer rounding of one unit per
   lane (``K / c_r`` ≤ 0.4 % with the default capacities). Outside it the
   machine is empty; over the whole day machines are 65-70 % used on average
   (the 50 ICON leaderboard instances: 40-81 %).
4. **Windows around the hidden placement.** A job of ``d`` slots hidden at
   ``s`` gets a window of ``W = min(T, d + σ)`` slots, ``σ = ⌊U · slack ·
   (T − d + 1)⌋``, placed uniformly among the positions inside the day that
   hold ``[s, s + d)``. The hidden start lies in every window, so the hidden
   plan stays feasible.
5. **Prices** are one of the nine ICON 2014 sample forecasts shipped in
   ``optisched/data/icon2014_forecast_prices.csv`` (CSPLib prob059, CC BY 4.0;
   ``datasets/README.md``), chosen by the seed, step-sampled onto the slots.

Machine figures follow the ICON instances (measured from the files of the nine
samples and the 50 leaderboard instances of CSPLib prob059): capacities per
resource by the number of resources (:data:`ICON_CAPACITY`: the more resources,
the smaller the machines), idle power 120-190, start-up and shut-down costs
0-0.1, task power ≈ 1,100 × its use of resource 0 / the machine's capacity of it
(the instances' median power-to-use ratio × capacity: 1,000-1,260; correlation
0.92-0.99), window slack median ≈ 110 slots (ICON: 100-130).

The hidden plan is returned as a priced :class:`~optisched.plan.Plan` (machines
on exactly in their busy period, grid import = load; its objective bounds the
optimum from above), ready for :func:`optisched.evaluate.evaluate`;
``plan.info`` records the busy periods, lane counts and the tightness band.

Example::

    from optisched.generate.tight import tight_problem
    problem, hidden = tight_problem(1000, 50, n_resources=3, seed=4)
"""

from __future__ import annotations

import functools
import math
from datetime import timedelta
from importlib import resources

import numpy as np

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.domain import Horizon, Job, Node, Problem, Scenario, Tariff
from optisched.evaluate import price_plan
from optisched.icon import ICON_START
from optisched.plan import Flows, Plan, Status

__all__ = ["ICON_CAPACITY", "ICON_PRICE_CURVES", "TIGHT_OPTIONS", "icon_price_curves",
           "tight_problem"]

ICON_PRICE_CURVES = tuple(f"sample{k:02d}" for k in range(1, 10))
"""Names of the shipped ICON 2014 forecast curves (columns of the data file)."""

TIGHT_OPTIONS = ("n_resources", "tightness", "busy", "lanes", "slack", "capacity", "idle",
                 "switch_cost", "duration_shape", "power_per_capacity", "prices")
"""Keyword options of :func:`tight_problem` beyond the sizes and the seed."""

ICON_CAPACITY: dict[int, tuple[int, int]] = {1: (5300, 5700), 2: (3080, 3460),
                                             3: (2330, 2680), 4: (1960, 2350)}
"""Capacity range per resource by number of resources, as in the 50 ICON 2014
leaderboard instances (CSPLib prob059 ``leaderboardinstances.zip``, measured: the
instances with more resources have smaller machines); 4 is used for more than 4."""

_DATA_FILE = "icon2014_forecast_prices.csv"
_ICON_SLOT_MINUTES = 5


@functools.lru_cache(maxsize=1)
def icon_price_curves() -> dict[str, FloatArray]:
    """The nine ICON 2014 sample forecasts, 288 five-minute prices each [money/unit energy].

    Returns
    -------
    dict of str to numpy.ndarray
        ``sample01`` … ``sample09`` → shape (288,).
    """
    with resources.files("optisched").joinpath("data", _DATA_FILE).open(
            "r", encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
        table = np.loadtxt(fh, delimiter=",", dtype=np.float64, ndmin=2)
    return {name: table[:, k].copy() for k, name in enumerate(header) if name != "slot"}


def _band(name: str, v: tuple[float, float], lo: float, hi: float) -> tuple[float, float]:
    a, b = float(v[0]), float(v[1])
    if not (lo <= a <= b <= hi) or not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"{name} must be a pair lo <= hi within [{lo:g}, {hi:g}], got {v!r}")
    return a, b


def tight_problem(n_jobs: int = 200, n_nodes: int = 10, n_resources: int = 1, slots: int = 288,
                  seed: int = 0, *, tightness: tuple[float, float] = (0.80, 0.95),
                  busy: tuple[float, float] = (0.5, 1.0), lanes: tuple[int, int] = (3, 8),
                  slack: float = 0.9, capacity: tuple[int, int] | None = None,
                  idle: tuple[int, int] = (120, 190),
                  switch_cost: tuple[float, float] = (0.0, 0.1), duration_shape: float = 0.8,
                  power_per_capacity: float = 1100.0, prices: str | None = None
                  ) -> tuple[Problem, Plan]:
    """Draw a tightly packed ICON-class problem and the hidden plan it was built from.

    Parameters
    ----------
    n_jobs, n_nodes : int
        Tasks and machines (``n_jobs >= 0``, ``n_nodes >= 1``).
    n_resources : int
        Resources per machine (ICON: 1-4); resource 0 is ``gpus``, resource
        ``r >= 1`` is ``res_r<r>`` (the names :func:`optisched.icon.read_icon` uses).
    slots : int
        Slots of the one-day horizon (must divide 1440; ICON: 288 of 5 minutes).
    seed : int
        Seed of every draw; equal arguments give equal problems.
    tightness : (float, float)
        ``(lo, hi)``: each resource's use in a machine's busy period lies in
        ``[lo, hi]`` of its capacity in every slot (up to one unit per lane).
    busy : (float, float)
        Range of a machine's busy period as a fraction of the day.
    lanes : (int, int)
        Range of the number of lanes (jobs running at once) per machine.
    slack : float
        Largest window slack as a fraction of ``slots − duration`` (uniform in
        ``[0, slack]``; 0 = every window is its hidden placement).
    capacity : (int, int), optional
        Range of the integer capacities (every resource); default by ``n_resources``
        as in the ICON instances (:data:`ICON_CAPACITY`).
    idle : (int, int)
        Range of the integer idle powers [kW].
    switch_cost : (float, float)
        Range of the start-up and shut-down costs [money per switch], 2 decimals.
    duration_shape : float
        Gamma shape of the duration weights within a lane (smaller: more spread).
    power_per_capacity : float
        Median power of a task that would use all of resource 0 [kW]: a task's
        power is ``power_per_capacity × u_0 / c_0`` times a log-normal factor
        (σ = 0.2), rounded to 2 decimals.
    prices : str, optional
        Which ICON forecast curve (``sample01`` … ``sample09``); default by the seed.

    Returns
    -------
    problem : Problem
        Machines ``m0 …``, tasks ``t0 …`` (ICON-shaped: ``optisched export-icon``
        and :func:`optisched.icon.write_icon` accept it), tariff ``icon``.
    hidden : Plan
        The hidden packing as a feasible plan (status feasible, priced by
        :func:`optisched.evaluate.price_plan`: an upper bound on the optimum).

    Raises
    ------
    ValueError
        Bad sizes or ranges, or more jobs per lane than the busy period has slots.
    """
    J, M, R, T = int(n_jobs), int(n_nodes), int(n_resources), int(slots)
    if J < 0 or M < 1 or R < 1 or T < 1:
        raise ValueError(f"need n_jobs >= 0, n_nodes >= 1, n_resources >= 1, slots >= 1; got "
                         f"{J}, {M}, {R}, {T}")
    if 1440 % T:
        raise ValueError(f"slots must divide 1440 (one day), got {T}")
    q = 1440 // T
    lo, hi = _band("tightness", tightness, 0.0, 1.0)
    if hi <= 0:
        raise ValueError("tightness hi must be > 0")
    b_lo, b_hi = _band("busy", busy, 0.0, 1.0)
    k_lo, k_hi = int(lanes[0]), int(lanes[1])
    if not 1 <= k_lo <= k_hi:
        raise ValueError(f"lanes must be a pair 1 <= lo <= hi, got {lanes!r}")
    if not 0.0 <= float(slack) <= 1.0:
        raise ValueError(f"slack must lie in [0, 1], got {slack!r}")
    c_lo, c_hi = (int(v) for v in (capacity if capacity is not None
                                    else ICON_CAPACITY[min(R, max(ICON_CAPACITY))]))
    i_lo, i_hi = (int(v) for v in idle)
    if not 1 <= c_lo <= c_hi or not 0 <= i_lo <= i_hi:
        raise ValueError(f"capacity must be 1 <= lo <= hi and idle 0 <= lo <= hi, got "
                         f"{capacity!r}, {idle!r}")
    s_lo, s_hi = _band("switch_cost", switch_cost, 0.0, math.inf)
    curves = icon_price_curves()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), J, M, R, T]))

    # --- machines
    cap = rng.integers(c_lo, c_hi + 1, size=(M, R)).astype(np.int64)
    idle_kw = rng.integers(i_lo, i_hi + 1, size=M).astype(np.float64)
    up = np.round(rng.uniform(s_lo, s_hi, size=M), 2)
    down = np.round(rng.uniform(s_lo, s_hi, size=M), 2)
    curve = prices if prices is not None else ICON_PRICE_CURVES[int(rng.integers(9))]
    if curve not in curves:
        raise ValueError(f"unknown price curve {curve!r}; valid: {', '.join(curves)}")

    # --- jobs per machine, lanes per machine, jobs per lane
    counts = rng.multinomial(J, _shares(rng, M)).astype(np.int64)
    # at least three jobs per lane where the machine has them (few jobs span most of a day)
    K = np.where(counts > 0, np.minimum(np.maximum(1, counts // 3),
                                        rng.integers(k_lo, k_hi + 1, size=M)), 0)
    L = int(K.sum())
    lane_m = np.repeat(np.arange(M), K)                       # machine of each lane
    lane_first = np.cumsum(K) - K                             # first lane of each machine
    extra = counts - K                                        # jobs beyond one per lane
    extra_m = np.repeat(np.arange(M), extra)
    extra_lane = lane_first[extra_m] + np.floor(rng.random(extra_m.size) * K[extra_m]
                                                ).astype(np.int64)
    n_lane = 1 + np.bincount(extra_lane, minlength=L)         # jobs per lane (>= 1)

    # --- busy period per machine, long enough for its fullest lane
    need = np.zeros(M, np.int64)
    np.maximum.at(need, lane_m, n_lane)
    length = np.ceil(rng.uniform(b_lo, b_hi, size=M) * T).astype(np.int64)
    length = np.clip(np.maximum(length, need), 0, None)
    if (length > T).any():
        m = int(np.argmax(length - T))
        raise ValueError(f"machine m{m} has {int(need[m])} jobs in one lane but the day has only "
                         f"{T} slots: use more lanes, more machines or fewer jobs")
    b0 = np.floor(rng.random(M) * (T - length + 1)).astype(np.int64)
    b0[counts == 0] = 0
    length[counts == 0] = 0

    # --- durations: a composition of each lane's length into its jobs (each >= 1 slot)
    job_lane = np.repeat(np.arange(L), n_lane)
    job_m = lane_m[job_lane]
    lane_len = length[lane_m]
    # weights capped at 3x their mean, so that a lane's longest job rarely covers the lane
    w = np.minimum(rng.gamma(float(duration_shape), size=J), 3.0 * float(duration_shape)) + 1e-12
    wsum = np.bincount(job_lane, weights=w, minlength=L)
    free = lane_len - n_lane                                  # slots beyond 1 per job
    raw = w / wsum[job_lane] * free[job_lane]
    dur = 1 + np.floor(raw).astype(np.int64)
    short = lane_len - np.bincount(job_lane, weights=dur, minlength=L).astype(np.int64)
    # give the lane's leftover slots to its jobs with the largest fractional parts
    order = np.lexsort((-(raw - np.floor(raw)), job_lane))
    first_job = np.cumsum(n_lane) - n_lane                    # first job of each lane
    rank = np.arange(J) - np.repeat(first_job, n_lane)
    bonus = np.zeros(J, np.int64)
    bonus[order] = (rank < short[job_lane[order]]).astype(np.int64)
    dur += bonus
    ends = np.cumsum(dur)
    offset = ends - dur - np.repeat(ends[first_job] - dur[first_job], n_lane)
    start = b0[job_m] + offset

    # --- lane widths and usages
    share = rng.gamma(1.0, size=(L, R)) + 1e-12
    msum = np.zeros((M, R))
    np.add.at(msum, lane_m, share)
    width = np.maximum(1, np.floor(hi * cap[lane_m] * share / msum[lane_m])).astype(np.int64)
    total = np.zeros((M, R), np.int64)
    np.add.at(total, lane_m, width)
    if (total > cap).any():
        m = int(np.nonzero((total > cap).any(axis=1))[0][0])
        raise ValueError(f"machine m{m}: capacities {cap[m].tolist()} are too small for "
                         f"{int(K[m])} lanes at tightness {hi:g}; raise capacity or lower lanes")
    f = rng.uniform(lo / hi, 1.0, size=(J, R))
    use = np.maximum(1, np.ceil(f * width[job_lane] - 1e-9)).astype(np.int64)
    power = np.maximum(0.01, np.round(float(power_per_capacity) * use[:, 0]
                                      / cap[job_m, 0] * np.exp(rng.normal(0.0, 0.2, size=J)), 2))

    # --- windows around the hidden placement
    sig = np.floor(rng.random(J) * float(slack) * (T - dur + 1)).astype(np.int64)
    width_w = np.minimum(T, dur + sig)                        # window length
    r_lo = np.maximum(0, start + dur - width_w)               # the window holds [s, s + d)
    r_hi = np.minimum(start, T - width_w)                     # ... and lies in the day
    release = r_lo + np.floor(rng.random(J) * (r_hi - r_lo + 1)).astype(np.int64)
    deadline = release + width_w

    # --- shuffle the task order so that ids do not reveal the packing
    perm = rng.permutation(J)
    dur, start, job_m, use, power = dur[perm], start[perm], job_m[perm], use[perm], power[perm]
    release, deadline = release[perm], deadline[perm]

    price = curves[curve][np.floor((np.arange(T) + 0.5) * q / _ICON_SLOT_MINUTES
                                   ).astype(np.int64) % curves[curve].size]
    problem = _build(q, T, cap, idle_kw, up, down, dur, use, power, release, deadline, price)
    hidden = _hidden_plan(problem, job_m, start, dur, power, b0, length, idle_kw)
    hidden.info = {"generator": "tight", "seed": int(seed), "prices": curve,
                   "tightness": [lo, hi], "busy_start": b0.tolist(),
                   "busy_end": (b0 + length).tolist(), "lanes": K.tolist()}
    return problem, price_plan(problem, hidden)


def _shares(rng: np.random.Generator, M: int) -> FloatArray:
    """Near-equal random shares of the jobs per machine (Gamma(8) weights)."""
    g = rng.gamma(8.0, size=M)
    out: FloatArray = g / g.sum()
    return out


def _build(q: int, T: int, cap: IntArray, idle_kw: FloatArray, up: FloatArray,
           down: FloatArray, dur: IntArray, use: IntArray, power: FloatArray,
           release: IntArray, deadline: IntArray, price: FloatArray) -> Problem:
    M, R = cap.shape
    nodes = [Node(node_id=f"m{m}", kind="icon_machine", gpus=float(cap[m, 0]),
                  resources={f"r{r}": float(cap[m, r]) for r in range(1, R)},
                  idle_kw=float(idle_kw[m]), can_sleep=True, initially_on=False, end_off=True,
                  startup_cost=float(up[m]), shutdown_cost=float(down[m]), tariff="icon")
             for m in range(M)]
    times = [ICON_START + timedelta(minutes=t * q) for t in range(T + 1)]
    use_f = use.astype(np.float64)
    jobs = [Job(job_id=f"t{j}", kind="icon_task", gpus=float(use_f[j, 0]),
                resources={f"r{r}": float(use_f[j, r]) for r in range(1, R)},
                duration_min=float(dur[j] * q), power_kw=float(power[j]),
                release=times[int(release[j])], deadline=times[int(deadline[j])])
            for j in range(len(dur))]
    scenario = Scenario(horizon=Horizon(start=ICON_START, slot_minutes=q, slots=T))
    tariff = Tariff(price=[float(v) for v in price], export_price=[0.0] * T,
                    carbon_g_per_kwh=[0.0] * T)
    return Problem(scenario=scenario, nodes=nodes, jobs=jobs, tariffs={"icon": tariff})


def _hidden_plan(problem: Problem, node: IntArray, start: IntArray, dur: IntArray,
                 power: FloatArray, b0: IntArray, length: IntArray, idle_kw: FloatArray) -> Plan:
    """The hidden packing as a plan: each machine on exactly in its busy period."""
    M, T = len(problem.nodes), problem.horizon.slots
    on: BoolArray = np.zeros((M, T), dtype=bool)
    t = np.arange(T)
    on[:] = (t[None, :] >= b0[:, None]) & (t[None, :] < (b0 + length)[:, None])
    delta = np.zeros((M, T + 1))
    np.add.at(delta, (node, start), power)
    np.add.at(delta, (node, start + dur), -power)
    load = np.cumsum(delta[:, :T], axis=1) + on * idle_kw[:, None]
    z = np.zeros((M, T))
    flows = Flows(on=on, load=load, pv_used=z.copy(), grid_import=load.copy(),
                  grid_export=z.copy(), charge=z.copy(), discharge=z.copy(), soc=z.copy())
    return Plan(solver="hidden", status=Status.FEASIBLE,
                job_ids=[j.job_id for j in problem.jobs],
                node_ids=[n.node_id for n in problem.nodes],
                node=np.asarray(node, dtype=np.int64), start=np.asarray(start, dtype=np.int64),
                flows=flows, message="the hidden packing the instance was drawn from")
