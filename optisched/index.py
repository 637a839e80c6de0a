"""Compiled index: the numeric arrays every formulation shares.

:func:`compile_index` turns a :class:`~optisched.domain.Problem` into numpy
arrays. It is the only place where eligibility, durations and start windows are
decided (SPEC §2 constraint 2); formulations, heuristics and the evaluator all
read them from here.

Notation: ``N`` nodes, ``J`` jobs, ``T`` slots, ``R`` resources (``gpus`` first),
``O`` options = eligible (job, node) pairs, ``Δ`` slot length [h].
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.domain import Node, Problem
from optisched.geo import EARTH_RADIUS_KM, great_circle_km

__all__ = [
    "EARTH_RADIUS_KM",
    "SCENARIO_FIELDS",
    "Index",
    "LatencyTable",
    "ScenarioArrays",
    "compile_index",
    "explain_job",
    "great_circle_km",
    "ineligibility",
    "sparse_max_tables",
]

_EPS = 1e-9
MAX_SLOTS = 2.0**40
"""Durations are capped here [slots]: far beyond any horizon, far below int64 overflow."""


_CHUNK_CELLS = 4_000_000
"""(job, node) cells per block of the eligibility scan: :func:`compile_index` decides
eligibility in blocks of jobs, so its memory stays ``O(options + cells per block)`` and never
``O(J · N)`` (100,000 jobs × 10,000 nodes would be 10^9 cells, 8 GB per float array)."""


class LatencyTable:
    """Round-trip time of every job's region to every node, ``(J, N)`` [ms], stored per region.

    Jobs of one region share a row, so the table holds ``(G + 1, N)`` values (``G`` user
    regions and a last row of ``nan`` for jobs without a region) instead of ``J · N``.
    Indexing follows a dense ``(J, N)`` array: ``table[j, n]`` with integers, slices or
    arrays (paired like numpy's fancy indexing), ``table[j]`` a job's row; ``np.asarray``
    gives the dense array (small problems and tests only).

    Parameters
    ----------
    by_region : (G + 1, N) float
        Round trip of each region to each node [ms] (``nan`` unknown), last row all ``nan``.
    region_of : (J,) int
        Row of each job in ``by_region`` (``G`` for a job without a region).
    """

    __slots__ = ("by_region", "region_of")

    def __init__(self, by_region: FloatArray, region_of: IntArray) -> None:
        self.by_region = by_region
        self.region_of = region_of

    @property
    def shape(self) -> tuple[int, int]:
        """``(J, N)``."""
        return int(self.region_of.size), int(self.by_region.shape[1])

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            if len(key) != 2:
                raise IndexError("a latency table has two axes (job, node)")
            return self.by_region[self.region_of[key[0]], key[1]]
        return self.by_region[self.region_of[key]]

    def __array__(self, dtype: Any = None, copy: Any = None) -> FloatArray:
        dense = self.by_region[self.region_of]
        return dense if dtype is None else dense.astype(dtype)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyTable):
            return NotImplemented
        return bool(np.array_equal(np.asarray(self), np.asarray(other), equal_nan=True))

    __hash__ = None  # type: ignore[assignment]

    def subset(self, jobs: IntArray, nodes: IntArray) -> LatencyTable:
        """The table of jobs ``jobs`` and nodes ``nodes`` (positions, in that order)."""
        return LatencyTable(np.ascontiguousarray(self.by_region[:, nodes]),
                            np.asarray(self.region_of[jobs], dtype=np.int64))


@dataclass(frozen=True, eq=False)
class ScenarioArrays:
    """The scenario-dependent arrays of an index, each with a leading scenario axis.

    With one scenario (every SPEC v1 problem) every array is the index's own with an
    axis of length 1 in front (a view, not a copy). With several, the index's own
    arrays are the first-stage view of :func:`compile_index` and these hold each
    scenario's; :meth:`Index.scenario` is the index of one scenario.

    Attributes
    ----------
    ids : list of str
        Scenario ids (``[""]`` for a problem without scenarios).
    weight : (S,) float
        Probabilities.
    pv, headroom : (S, N, T) float
        Solar forecast and import limit [kW] of each scenario.
    available : (S, N, T) bool
        Availability of each scenario (the index's own is their conjunction).
    price, export_price, carbon, import_cost : (S, N, T) float
        Prices [money/kWh] and carbon intensity [g/kWh] of each scenario.
    feeder_headroom : (S, F, T) float
        Feeder limits [kW] of each scenario.
    cvar_alpha, cvar_weight : float
        ``[objective]`` CVaR level α and weight λ of the objective ``E + λ·CVaR_α``.
    """

    ids: list[str]
    weight: FloatArray
    pv: FloatArray
    headroom: FloatArray
    available: BoolArray
    price: FloatArray
    export_price: FloatArray
    carbon: FloatArray
    import_cost: FloatArray
    feeder_headroom: FloatArray
    cvar_alpha: float = 0.9
    cvar_weight: float = 0.0
    views: dict[int, Index] = field(default_factory=dict, repr=False)
    """Cache of :meth:`Index.scenario`."""

    @property
    def S(self) -> int:
        """Number of scenarios."""
        return len(self.ids)


SCENARIO_FIELDS = ("pv", "headroom", "price", "export_price", "carbon", "import_cost",
                   "feeder_headroom")
"""Index fields that differ between scenarios (besides ``available``)."""


@dataclass(frozen=True, eq=False)
class Index:
    """Numeric view of a problem.

    Node × slot arrays are ``(N, T)``; option arrays are ``(O,)`` with options
    sorted by job then node. A job's options are ``opt_job_ptr[j]:opt_job_ptr[j+1]``.

    Attributes
    ----------
    T, dt : int, float
        Slots and slot length Δ [h].
    node_ids, job_ids, resources : list of str
        Ids in bundle order; resource names (``gpus`` first).
    pv, headroom : (N, T) float
        Solar forecast and import limit [kW] (headroom may be ``inf``).
    available : (N, T) bool
        Node availability.
    avail_run : (N, T) int
        Consecutive available slots starting at t (0 where unavailable).
    price, export_price, carbon : (N, T) float
        Import/export price [money/kWh], carbon intensity [g/kWh].
    import_cost : (N, T) float
        ``price + carbon_price_per_tonne · carbon / 1e6`` [money/kWh].
    capacity : (N, R) float
        Resource capacities.
    idle_kw, export_kw : (N,) float
        Idle draw and export limit [kW].
    can_sleep, initially_on, end_off : (N,) bool
        On/off settings.
    startup_cost, shutdown_cost : (N,) float
        Money per switch.
    battery_kwh, soc_init, soc_min, soc_max : (N,) float
        Capacity [kWh] and bounds [kWh] (already multiplied by capacity).
    charge_kw, discharge_kw : (N,) float
        Battery power limits [kW].
    eff_charge, eff_discharge, degradation, demand_charge : (N,) float
        Efficiencies, money per kWh discharged, money per kW of peak import.
    feeder_ids : list of str
        Feeder names.
    feeder_of : (N,) int
        Feeder position of each node, -1 for none.
    feeder_headroom : (F, T) float
        Limit on net import of a feeder [kW] (``inf`` = none).
    usage : (J, R) float
        Resource use of each job.
    job_power : (J,) float
        Draw while running on a power_factor-1 node [kW].
    release : (J,) int
        Earliest start slot (clipped at 0).
    deadline : (J,) float
        Deadline position [slots] (``inf`` when none).
    hard_deadline : (J,) bool
        Deadline is hard.
    tardiness_rate : (J,) float
        Money per slot of lateness (``tardiness_per_hour · Δ``), 0 when none.
    drop_penalty : (J,) float
        Money when dropped, ``nan`` for must-run jobs.
    pinned_node : (J,) int
        Node position of a pinned job, -1 otherwise.
    pinned_start : (J,) int
        Start slot of a pinned job (may be negative), 0 otherwise.
    opt_job, opt_node : (O,) int
        The (job, node) pair of each option.
    opt_dur : (O,) int
        Slots the job occupies on the node ``d_jn``.
    opt_power : (O,) float
        Draw while running there ``power_kw · power_factor`` [kW].
    opt_latency_cost : (O,) float
        Latency cost if the job runs there [money].
    opt_earliest, opt_latest : (O,) int
        First and last start slot of the window (inclusive); a start ``s`` in it
        is feasible iff ``avail_run[n, s] >= opt_dur`` (pinned options excepted).
    opt_job_ptr : (J+1,) int
        Option range of each job.
    latency_ms : LatencyTable
        Round-trip time of each job's region to each node [ms] (``nan`` unknown), indexed
        like a ``(J, N)`` array but stored per region (:class:`LatencyTable`).
    terminal_initial : bool
        Terminal rule: end state of charge ≥ initial.
    slot_minutes : int
        Slot length [min].
    duration_min : (J,) float
        Run time on a speed-1 node [min].
    speed : (N,) float
        Node throughput vs reference.
    power_factor : (N,) float
        Multiplier of a job's power on the node.
    latency_slo : (J,) float
        Latency SLO [ms] (``inf`` when none).
    latency_rate : (J,) float
        Money per ms over the SLO (0 when none or hard).
    carbon_price : float
        The scenario's carbon price [money/t CO2].
    scenarios : ScenarioArrays
        The scenario-dependent arrays with a leading scenario axis (beyond SPEC v1). With
        several scenarios the arrays above are the *first-stage view* every solver's
        scoring and feasibility pre-checks read: ``pv``, ``price``, ``export_price``,
        ``carbon`` and ``import_cost`` are the scenarios' weighted means, ``headroom``
        and ``feeder_headroom`` their minimum and ``available`` their conjunction; the
        exact dispatch, the MILP and the evaluator use each scenario's own
        (:meth:`scenario`).
    """

    T: int
    dt: float
    node_ids: list[str]
    job_ids: list[str]
    resources: list[str]
    pv: FloatArray
    headroom: FloatArray
    available: BoolArray
    avail_run: IntArray
    price: FloatArray
    export_price: FloatArray
    carbon: FloatArray
    import_cost: FloatArray
    capacity: FloatArray
    idle_kw: FloatArray
    export_kw: FloatArray
    can_sleep: BoolArray
    initially_on: BoolArray
    end_off: BoolArray
    startup_cost: FloatArray
    shutdown_cost: FloatArray
    battery_kwh: FloatArray
    soc_init: FloatArray
    soc_min: FloatArray
    soc_max: FloatArray
    charge_kw: FloatArray
    discharge_kw: FloatArray
    eff_charge: FloatArray
    eff_discharge: FloatArray
    degradation: FloatArray
    demand_charge: FloatArray
    feeder_ids: list[str]
    feeder_of: IntArray
    feeder_headroom: FloatArray
    usage: FloatArray
    job_power: FloatArray
    release: IntArray
    deadline: FloatArray
    hard_deadline: BoolArray
    tardiness_rate: FloatArray
    drop_penalty: FloatArray
    pinned_node: IntArray
    pinned_start: IntArray
    opt_job: IntArray
    opt_node: IntArray
    opt_dur: IntArray
    opt_power: FloatArray
    opt_latency_cost: FloatArray
    opt_earliest: IntArray
    opt_latest: IntArray
    opt_job_ptr: IntArray
    latency_ms: LatencyTable
    terminal_initial: bool
    slot_minutes: int
    duration_min: FloatArray
    speed: FloatArray
    power_factor: FloatArray
    latency_slo: FloatArray
    latency_rate: FloatArray
    carbon_price: float
    node_pos: dict[str, int] = field(repr=False)
    job_pos: dict[str, int] = field(repr=False)
    scenarios: ScenarioArrays = field(default=None, repr=False)  # type: ignore[assignment]
    """Set by :meth:`__post_init__` when None (one scenario: the arrays above)."""

    def __post_init__(self) -> None:
        sc = self.scenarios
        if sc is None or sc.S == 1:  # one scenario: always the index's own arrays
            object.__setattr__(self, "scenarios", _single(self, sc))

    @property
    def S(self) -> int:
        """Number of scenarios (1 for a SPEC v1 problem)."""
        return self.scenarios.S

    def scenario(self, s: int) -> Index:
        """The index of scenario ``s`` (position): this index with that scenario's series,
        and one scenario; with a single scenario, this index itself.

        Placement, options and availability (the conjunction over the scenarios) are the
        first stage's, shared by every scenario.
        """
        sc = self.scenarios
        if sc.S == 1:
            return self
        got = sc.views.get(s)
        if got is None:
            got = self.replace(**{f: getattr(sc, f)[s] for f in SCENARIO_FIELDS})
            object.__setattr__(got.scenarios, "ids", [sc.ids[s]])
            sc.views[s] = got
        return got

    def replace(self, **changes: Any) -> Index:
        """A copy with ``changes`` (fields by name) and one scenario: the copy's own arrays
        (the fields of :data:`SCENARIO_FIELDS` are taken as that scenario's)."""
        return dataclasses.replace(self, scenarios=cast(ScenarioArrays, None), **changes)

    @property
    def N(self) -> int:
        """Number of nodes."""
        return len(self.node_ids)

    @property
    def J(self) -> int:
        """Number of jobs."""
        return len(self.job_ids)

    @property
    def must_run(self) -> BoolArray:
        """(J,) True for jobs without a drop penalty."""
        return np.isnan(self.drop_penalty)

    @property
    def pinned(self) -> BoolArray:
        """(J,) True for pinned jobs."""
        return self.pinned_node >= 0

    @property
    def always_on(self) -> BoolArray:
        """(N, T) True where a node is on whatever the plan: available and unable to
        sleep (SPEC §2, constraint 6)."""
        return np.asarray((~self.can_sleep[:, None]) & self.available)

    @property
    def idle_floor_kw(self) -> FloatArray:
        """(N, T) The least load of every node-slot whatever the plan [kW]: the idle draw
        where the node is :attr:`always_on`, else 0."""
        return np.asarray(self.always_on * self.idle_kw[:, None], dtype=float)

    def options_of(self, j: int) -> IntArray:
        """Option positions of job ``j``."""
        return np.arange(self.opt_job_ptr[j], self.opt_job_ptr[j + 1])

    def find_option(self, j: int, n: int) -> int:
        """Option position of job ``j`` on node ``n``, or -1 when not eligible."""
        lo, hi = int(self.opt_job_ptr[j]), int(self.opt_job_ptr[j + 1])
        hit = np.nonzero(self.opt_node[lo:hi] == n)[0]
        return int(lo + hit[0]) if hit.size else -1

    def feasible_starts(self, o: int) -> IntArray:
        """Feasible start slots of option ``o`` (window and availability)."""
        j = int(self.opt_job[o])
        if self.pinned_node[j] >= 0:
            return np.array([self.pinned_start[j]], dtype=np.int64)
        s = np.arange(self.opt_earliest[o], self.opt_latest[o] + 1)
        return s[self.avail_run[self.opt_node[o], s] >= self.opt_dur[o]]

    def start_ok(self, o: int, s: int) -> bool:
        """Whether option ``o`` may start at slot ``s``."""
        j = int(self.opt_job[o])
        if self.pinned_node[j] >= 0:
            return s == int(self.pinned_start[j])
        if not self.opt_earliest[o] <= s <= self.opt_latest[o]:
            return False
        return bool(self.avail_run[self.opt_node[o], s] >= self.opt_dur[o])

    def tardiness_cost(self, j: int | IntArray, end: int | IntArray) -> FloatArray:
        """Tardiness cost of job(s) ``j`` ending at slot ``end`` (exclusive) [money]."""
        late = np.maximum(0.0, np.asarray(end, dtype=float) - self.deadline[j])
        late = np.where(np.isfinite(self.deadline[j]), late, 0.0)
        return np.asarray(self.tardiness_rate[j] * late)

    def duration(self, j: int | IntArray, n: int | IntArray) -> IntArray:
        """Slots ``d_jn`` job(s) ``j`` occupy on node(s) ``n`` (eligible or not)."""
        return slots_needed(self.duration_min[j], self.slot_minutes, self.speed[n])

    def occupied(self, o: int, s: int) -> tuple[int, int]:
        """Slots ``[a, b)`` of the horizon occupied by option ``o`` started at ``s``."""
        return max(0, s), min(self.T, s + int(self.opt_dur[o]))


def _single(index: Index, given: ScenarioArrays | None) -> ScenarioArrays:
    """The one scenario of an index: its own arrays with a scenario axis of length 1 (id
    and CVaR options of ``given``, when there is one)."""
    return ScenarioArrays(
        ids=[""] if given is None else list(given.ids), weight=np.ones(1),
        available=index.available[None],
        cvar_alpha=0.9 if given is None else given.cvar_alpha,
        cvar_weight=0.0 if given is None else given.cvar_weight,
        **{f: getattr(index, f)[None] for f in SCENARIO_FIELDS})


def slots_needed(duration_min: FloatArray, slot_minutes: int, speed: FloatArray) -> IntArray:
    """Slots a job occupies: ``ceil(duration_min / slot_minutes / speed)``, at least 1.

    Parameters
    ----------
    duration_min : array_like
        Run time on a speed-1 node [min].
    slot_minutes : int
        Slot length [min].
    speed : array_like
        Node throughput vs reference (broadcast against ``duration_min``).

    Returns
    -------
    numpy.ndarray
        Slots, capped at :data:`MAX_SLOTS` (a job that long fits no horizon), so
        that no duration overflows int64 even for a tiny ``speed``.
    """
    with np.errstate(over="ignore", divide="ignore"):
        raw = np.asarray(duration_min, dtype=float) / slot_minutes / np.asarray(speed, dtype=float)
    return np.maximum(1, np.ceil(np.minimum(raw, MAX_SLOTS) - _EPS)).astype(np.int64)


def _avail_run(available: BoolArray) -> IntArray:
    """Consecutive available slots starting at each slot, by a backward scan over T."""
    N, T = available.shape
    run = np.zeros((N, T + 1), dtype=np.int64)
    for t in range(T - 1, -1, -1):
        run[:, t] = np.where(available[:, t], run[:, t + 1] + 1, 0)
    return run[:, :T]


def sparse_max_tables(a: npt.NDArray[np.generic], longest: int) -> list[npt.NDArray[np.generic]]:
    """Sparse table of row-wise window maxima: ``tables[k][:, t] = max(a[:, t : t + 2**k])``.

    Windows are clipped at the end of the row. Levels go up to the largest
    ``2**k <= longest``, so any window of length ``L <= longest`` is the max of two
    overlapping level-``floor(log2 L)`` windows.
    """
    T = a.shape[1]
    tables = [a]
    k = 1
    while (1 << k) <= longest:
        prev = tables[-1]
        half = 1 << (k - 1)
        nxt = prev.copy()
        nxt[:, : T - half] = np.maximum(prev[:, : T - half], prev[:, half:])
        tables.append(nxt)
        k += 1
    return tables


def _window_max(tables: list[IntArray], node: IntArray, lo: IntArray, hi: IntArray
                ) -> IntArray:
    """Max of ``run[node, lo..hi]`` per query (inclusive) from the sparse ``tables`` of
    ``run`` (:func:`sparse_max_tables`); -1 if empty."""
    out = np.full(node.shape, -1, dtype=np.int64)
    ok = hi >= lo
    if not ok.any():
        return out
    length = (hi[ok] - lo[ok] + 1).astype(np.int64)
    lvl = np.floor(np.log2(length)).astype(np.int64)
    res = np.empty(length.shape, dtype=np.int64)
    for lev in np.unique(lvl):
        m = lvl == lev
        tab = tables[int(lev)]
        n_, a_, b_ = node[ok][m], lo[ok][m], hi[ok][m] - (1 << int(lev)) + 1
        res[m] = np.maximum(tab[n_, a_], tab[n_, b_])
    out[ok] = res
    return out


def compile_index(problem: Problem) -> Index:
    """Compile a problem into the shared numeric index.

    Parameters
    ----------
    problem : Problem
        A consistent problem.

    Returns
    -------
    Index
        Arrays for all formulations. Eligibility of (job j, node n): enough of
        every resource, ``gpu_mem_gb >= min_gpu_mem_gb``, ``trust >= min_trust``,
        a known latency when the job has an SLO and, for a hard SLO, latency ≤ SLO,
        and a start ``s`` with ``release ≤ s``, ``s + d_jn ≤ T`` (and ≤ deadline
        when hard) and the node available over ``s .. s + d_jn − 1``. Pinned jobs
        get exactly their pinned (node, start) and skip these checks.
    """
    hz = problem.horizon
    T, dt = hz.slots, hz.dt_hours
    nodes, jobs = problem.nodes, problem.jobs
    N = len(nodes)
    node_pos = {n.node_id: i for i, n in enumerate(nodes)}
    job_pos = {j.job_id: i for i, j in enumerate(jobs)}
    ncol = _node_columns(nodes)
    views = problem.scenario_problems()
    series = [_node_series(v, node_pos, ncol["grid_kw"]) for _, _, v in views]
    tariffs = [_tariff_series(v) for _, _, v in views]
    carbon_price = problem.scenario.objective.carbon_price_per_tonne
    names, capacity, usage = _resources(problem)
    E, charge_kw, discharge_kw = _battery(nodes, ncol["battery_kwh"])
    feeder_ids = list(dict.fromkeys(f for _, _, v in views for f in v.feeders))
    feeder_of = _feeder_of(problem, feeder_ids)
    limits = [_feeder_headroom(v, feeder_ids) for _, _, v in views]
    obj = problem.scenario.objective
    w = np.array([wt for _, wt, _ in views], dtype=float)
    if len(views) == 1:
        (pv, headroom, available), (price, export_price, carbon) = series[0], tariffs[0]
        import_cost = price + carbon_price * carbon / 1e6
        feeder_headroom = limits[0]
        scen = ScenarioArrays(ids=[views[0][0]], weight=w, pv=pv[None], headroom=headroom[None],
                              available=available[None], price=price[None],
                              export_price=export_price[None], carbon=carbon[None],
                              import_cost=import_cost[None], feeder_headroom=feeder_headroom[None],
                              cvar_alpha=obj.cvar_alpha, cvar_weight=obj.cvar_weight)
    else:
        scen = ScenarioArrays(
            ids=[sid for sid, _, _ in views], weight=w,
            pv=np.stack([x[0] for x in series]), headroom=np.stack([x[1] for x in series]),
            available=np.stack([x[2] for x in series]),
            price=np.stack([x[0] for x in tariffs]),
            export_price=np.stack([x[1] for x in tariffs]),
            carbon=np.stack([x[2] for x in tariffs]),
            import_cost=np.stack([x[0] + carbon_price * x[2] / 1e6 for x in tariffs]),
            feeder_headroom=np.stack(limits), cvar_alpha=obj.cvar_alpha,
            cvar_weight=obj.cvar_weight)
        pv, price, export_price, carbon, import_cost = (
            np.tensordot(w, getattr(scen, f), axes=1)
            for f in ("pv", "price", "export_price", "carbon", "import_cost"))
        headroom = scen.headroom.min(axis=0)
        feeder_headroom = scen.feeder_headroom.min(axis=0)
        available = np.asarray(scen.available.all(axis=0), dtype=bool)
    jt = _job_times(problem, node_pos)
    latency_ms = _latency_table(problem, node_pos)
    avail_run = _avail_run(available)
    opts = _all_options(ncol, usage, capacity, latency_ms, jt, available, avail_run,
                        hz.slot_minutes)
    return Index(
        T=T, dt=dt,
        node_ids=[n.node_id for n in nodes], job_ids=[j.job_id for j in jobs],
        resources=names,
        pv=pv, headroom=headroom, available=available, avail_run=avail_run,
        price=price, export_price=export_price, carbon=carbon, import_cost=import_cost,
        capacity=capacity, idle_kw=ncol["idle_kw"], export_kw=ncol["export_kw"],
        can_sleep=np.array([n.can_sleep for n in nodes], dtype=bool).reshape(N),
        initially_on=np.array([n.initially_on for n in nodes], dtype=bool).reshape(N),
        end_off=np.array([n.end_off for n in nodes], dtype=bool).reshape(N),
        startup_cost=ncol["startup_cost"], shutdown_cost=ncol["shutdown_cost"],
        battery_kwh=E, soc_init=ncol["soc_init"] * E, soc_min=ncol["soc_min"] * E,
        soc_max=ncol["soc_max"] * E, charge_kw=charge_kw, discharge_kw=discharge_kw,
        eff_charge=ncol["eff_charge"], eff_discharge=ncol["eff_discharge"],
        degradation=ncol["degradation_per_kwh"], demand_charge=ncol["demand_charge_per_kw"],
        feeder_ids=feeder_ids, feeder_of=feeder_of, feeder_headroom=feeder_headroom,
        usage=usage, job_power=jt["power_kw"], release=jt["release"],
        deadline=jt["deadline"], hard_deadline=jt["hard_deadline"],
        tardiness_rate=jt["tardiness_per_hour"] * dt, drop_penalty=jt["drop_penalty"],
        pinned_node=jt["pinned_node"], pinned_start=jt["pinned_start"],
        opt_job=opts["job"], opt_node=opts["node"], opt_dur=opts["dur"],
        opt_power=opts["power"], opt_latency_cost=opts["latency_cost"],
        opt_earliest=opts["earliest"], opt_latest=opts["latest"], opt_job_ptr=opts["ptr"],
        latency_ms=latency_ms,
        terminal_initial=problem.scenario.battery.terminal == "initial",
        slot_minutes=hz.slot_minutes, duration_min=jt["duration_min"], speed=ncol["speed"],
        power_factor=ncol["power_factor"], latency_slo=jt["latency_slo_ms"],
        latency_rate=jt["latency_per_ms"], carbon_price=carbon_price,
        node_pos=node_pos, job_pos=job_pos, scenarios=scen,
    )


_NODE_COLUMNS = ("grid_kw", "battery_kwh", "speed", "power_factor", "gpu_mem_gb", "trust",
                 "idle_kw", "export_kw", "startup_cost", "shutdown_cost", "soc_init",
                 "soc_min", "soc_max", "eff_charge", "eff_discharge", "degradation_per_kwh",
                 "demand_charge_per_kw")
"""Scalar node fields the index holds as ``(N,)`` float arrays."""


def _node_columns(nodes: list[Node]) -> dict[str, FloatArray]:
    """Every field of :data:`_NODE_COLUMNS` as an ``(N,)`` float array."""
    N = len(nodes)
    return {a: np.array([float(getattr(n, a)) for n in nodes], dtype=float).reshape(N)
            for a in _NODE_COLUMNS}


def _node_series(problem: Problem, node_pos: dict[str, int], grid_kw: FloatArray
                 ) -> tuple[FloatArray, FloatArray, BoolArray]:
    """PV forecast [kW], import headroom [kW] (``grid_kw`` where no series gives one) and
    availability, each ``(N, T)``."""
    N, T = len(problem.nodes), problem.horizon.slots
    pv = np.zeros((N, T))
    headroom = np.tile(grid_kw[:, None], (1, T)) if N else np.zeros((0, T))
    available = np.ones((N, T), dtype=bool)
    for nid, s in problem.node_series.items():
        i = node_pos[nid]
        if s.pv_kw is not None:
            pv[i] = s.pv_kw
        if s.headroom_kw is not None:
            h = np.array([np.nan if v is None else v for v in s.headroom_kw], dtype=float)
            headroom[i] = np.where(np.isnan(h), headroom[i], h)
        if s.available is not None:
            available[i] = s.available
    return pv, headroom, available


def _tariff_series(problem: Problem) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Import price, export price [money/kWh] and carbon intensity [g/kWh] of every node's
    tariff, each ``(N, T)`` (zeros for a tariff the problem does not define)."""
    N, T = len(problem.nodes), problem.horizon.slots
    price = np.zeros((N, T))
    export_price = np.zeros((N, T))
    carbon = np.zeros((N, T))
    for i, n in enumerate(problem.nodes):
        tariff = problem.tariffs.get(n.tariff)
        if tariff is not None:
            price[i], export_price[i], carbon[i] = (
                tariff.price, tariff.export_price, tariff.carbon_g_per_kwh
            )
    return price, export_price, carbon


def _resources(problem: Problem) -> tuple[list[str], FloatArray, FloatArray]:
    """Resource names (``gpus`` first, then in order of appearance), node capacities
    ``(N, R)`` and job usages ``(J, R)``."""
    nodes, jobs = problem.nodes, problem.jobs
    names: list[str] = ["gpus"]
    for res in [*(n.resources for n in nodes), *(j.resources for j in jobs)]:
        for r in res:
            if r not in names:
                names.append(r)
    capacity = np.array(
        [[n.gpus if r == "gpus" else n.resources.get(r, 0.0) for r in names] for n in nodes],
        dtype=float,
    ).reshape(len(nodes), len(names))
    usage = np.array(
        [[j.gpus if r == "gpus" else j.resources.get(r, 0.0) for r in names] for j in jobs],
        dtype=float,
    ).reshape(len(jobs), len(names))
    return names, capacity, usage


def _battery(nodes: list[Node], battery_kwh: FloatArray
             ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Usable capacity [kWh] (0 for no battery) and charge/discharge limits [kW] (0 for a
    node without battery), each ``(N,)``."""
    N = len(nodes)
    charge_kw = np.array([n.charge_limit_kw for n in nodes], dtype=float).reshape(N)
    discharge_kw = np.array([n.discharge_limit_kw for n in nodes], dtype=float).reshape(N)
    no_batt = battery_kwh <= 0
    charge_kw[no_batt] = 0.0
    discharge_kw[no_batt] = 0.0
    return np.where(no_batt, 0.0, battery_kwh), charge_kw, discharge_kw


def _feeder_of(problem: Problem, feeder_ids: list[str]) -> IntArray:
    """Each node's feeder position ``(N,)`` (-1: none)."""
    fpos = {f: k for k, f in enumerate(feeder_ids)}
    return np.array([fpos.get(n.feeder, -1) if n.feeder else -1 for n in problem.nodes],
                    dtype=np.int64).reshape(len(problem.nodes))


def _feeder_headroom(problem: Problem, feeder_ids: list[str]) -> FloatArray:
    """The headroom ``(F, T)`` [kW] of feeders ``feeder_ids`` (``inf`` for one the problem
    does not define)."""
    T = problem.horizon.slots
    return np.array([problem.feeders[f].headroom_kw if f in problem.feeders else [math.inf] * T
                     for f in feeder_ids], dtype=float).reshape(len(feeder_ids), T)


def _job_times(problem: Problem, node_pos: dict[str, int]) -> dict[str, npt.NDArray[Any]]:
    """Per-job ``(J,)`` arrays: release slot, deadline (fractional slot, ``inf`` when none),
    whether the deadline is hard, pinned node and start, the end cap of a start window and
    the job's numeric fields (empty cells as their defaults)."""
    hz = problem.horizon
    jobs, J, T = problem.jobs, len(problem.jobs), hz.slots

    def jcol(attr: str, default: float) -> FloatArray:
        vals = [getattr(j, attr) for j in jobs]
        return np.array([default if v is None else float(v) for v in vals], dtype=float).reshape(J)

    out: dict[str, npt.NDArray[Any]] = {
        "release": np.array(
            [0 if j.release is None else max(0, math.ceil(hz.slot_position(j.release) - _EPS))
             for j in jobs], dtype=np.int64).reshape(J),
        "deadline": np.array(
            [math.inf if j.deadline is None else hz.slot_position(j.deadline) for j in jobs],
            dtype=float).reshape(J),
        "hard_deadline": np.array([j.tardiness_per_hour is None for j in jobs],
                                  dtype=bool).reshape(J),
        "pinned_node": np.array([node_pos[j.pinned_node] if j.pinned_node else -1
                                 for j in jobs], dtype=np.int64).reshape(J),
        "pinned_start": np.array(
            [round(hz.slot_position(j.pinned_start)) if j.pinned_start is not None else 0
             for j in jobs], dtype=np.int64).reshape(J),
        "tardiness_per_hour": jcol("tardiness_per_hour", 0.0),
        "drop_penalty": jcol("drop_penalty", math.nan),
        "duration_min": jcol("duration_min", 1.0),
        "power_kw": jcol("power_kw", 0.0),
        "min_gpu_mem_gb": jcol("min_gpu_mem_gb", 0.0),
        "min_trust": jcol("min_trust", 0.0),
        "latency_per_ms": jcol("latency_per_ms", 0.0),
        "latency_slo_ms": jcol("latency_slo_ms", math.inf),
        "has_slo": np.array([j.latency_slo_ms is not None for j in jobs],
                            dtype=bool).reshape(J),
        "hard_slo": np.array([j.latency_slo_ms is not None and j.latency_per_ms is None
                              for j in jobs], dtype=bool).reshape(J),
    }
    hard, deadline = out["hard_deadline"], out["deadline"]
    out["end_cap"] = np.where(hard & np.isfinite(deadline),
                              np.floor(np.minimum(deadline, T) + _EPS), T).astype(np.int64)
    return out


def _all_options(ncol: dict[str, FloatArray], usage: FloatArray, capacity: FloatArray,
                 latency: LatencyTable, jt: dict[str, npt.NDArray[Any]], available: BoolArray,
                 avail_run: IntArray, slot_minutes: int) -> dict[str, npt.NDArray[Any]]:
    """The option arrays of :func:`_options`, decided in blocks of jobs of at most
    :data:`_CHUNK_CELLS` (job, node) cells each (see :func:`_eligibility`)."""
    J, N = usage.shape[0], capacity.shape[0]
    rows = max(1, _CHUNK_CELLS // max(N, 1))
    partial = np.nonzero(~available.all(axis=1))[0]  # only these need the availability scan
    tables: list[IntArray] = (
        [np.asarray(t, dtype=np.int64) for t in sparse_max_tables(avail_run, avail_run.shape[1])]
        if partial.size else [])
    parts: list[dict[str, npt.NDArray[Any]]] = []
    for a in range(0, J, rows):
        b = min(J, a + rows)
        block = {k: v[a:b] for k, v in jt.items()}
        dur = slots_needed(block["duration_min"][:, None], slot_minutes, ncol["speed"][None, :])
        lat = latency[a:b]
        elig = _eligibility(ncol, usage[a:b], capacity, lat, dur, block, avail_run, partial,
                            tables)
        part = _options(elig, dur, block, ncol["power_factor"], lat)
        part["job"] += a
        parts.append(part)
    keys = ("job", "node", "dur", "power", "latency_cost", "earliest", "latest")
    if parts:
        out = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    else:
        empty = _options(np.zeros((0, N), dtype=bool), np.zeros((0, N), dtype=np.int64),
                         jt, ncol["power_factor"], np.zeros((0, N)))
        out = {k: empty[k] for k in keys}
    out["ptr"] = np.concatenate(
        [[0], np.cumsum(np.bincount(out["job"], minlength=J))]).astype(np.int64)
    return out


def _eligibility(ncol: dict[str, FloatArray], usage: FloatArray, capacity: FloatArray,
                 latency_ms: FloatArray, dur: IntArray, jt: dict[str, npt.NDArray[Any]],
                 avail_run: IntArray, partial: IntArray, tables: list[IntArray]) -> BoolArray:
    """Eligible (job, node) pairs ``(B, N)`` of a block of ``B`` jobs: resources, memory,
    trust, latency, a start window inside release/deadline/horizon and an available run long
    enough (``partial``: the nodes unavailable somewhere, ``tables``: the sparse max tables of
    ``avail_run``); pinned jobs exactly on their node (see :func:`compile_index`)."""
    J, N = usage.shape[0], capacity.shape[0]
    elig = np.ones((J, N), dtype=bool)
    if J and N:
        for r in range(usage.shape[1]):
            elig &= usage[:, r, None] <= capacity[None, :, r] + _EPS
        elig &= ncol["gpu_mem_gb"][None, :] >= jt["min_gpu_mem_gb"][:, None] - _EPS
        elig &= ncol["trust"][None, :] >= jt["min_trust"][:, None] - _EPS
        slo = jt["latency_slo_ms"]
        elig &= ~(jt["has_slo"][:, None] & np.isnan(latency_ms))
        elig &= ~(jt["hard_slo"][:, None] & (latency_ms > slo[:, None] + _EPS))
    earliest = np.broadcast_to(jt["release"][:, None], (J, N))
    latest = jt["end_cap"][:, None] - dur
    elig &= latest >= earliest
    pinned_mask = jt["pinned_node"] >= 0
    elig[pinned_mask] = False
    if partial.size and J:
        sub = elig[:, partial]
        jj, kk = np.nonzero(sub)
        nn = partial[kk]
        best = _window_max(tables, nn, earliest[jj, nn], latest[jj, nn])
        sub[jj, kk] = best >= dur[jj, nn]
        elig[:, partial] = sub
    pj = np.nonzero(pinned_mask)[0]
    elig[pj, jt["pinned_node"][pj]] = True
    return elig


def _options(elig: BoolArray, dur: IntArray, jt: dict[str, npt.NDArray[Any]],
             power_factor: FloatArray, latency_ms: FloatArray) -> dict[str, npt.NDArray[Any]]:
    """The option arrays ``(O,)`` of a block of jobs (eligible pairs sorted by job then node,
    as :func:`numpy.nonzero` gives them; job positions within the block): job, node, slots,
    power [kW], soft-latency cost [money], start window. A pinned job has exactly one option,
    the first of its range, with its pinned start as its window."""
    opt_job, opt_node = (a.astype(np.int64) for a in np.nonzero(elig))
    opt_dur = dur[opt_job, opt_node]
    opt_earliest = jt["release"][opt_job]
    opt_latest = jt["end_cap"][opt_job] - opt_dur
    pinned = jt["pinned_node"][opt_job] >= 0
    if pinned.any():
        po = np.nonzero(pinned)[0]
        opt_earliest[po] = jt["pinned_start"][opt_job[po]]
        opt_latest[po] = jt["pinned_start"][opt_job[po]]
    per_ms, slo_all = jt["latency_per_ms"], jt["latency_slo_ms"]
    opt_latency_cost = np.zeros(opt_job.size)
    soft = np.nonzero((per_ms > 0)[opt_job])[0]
    if soft.size:
        over = latency_ms[opt_job[soft], opt_node[soft]] - slo_all[opt_job[soft]]
        opt_latency_cost[soft] = per_ms[opt_job[soft]] * np.nan_to_num(np.maximum(0.0, over))
    return {"job": opt_job, "node": opt_node, "dur": opt_dur,
            "power": jt["power_kw"][opt_job] * power_factor[opt_node],
            "latency_cost": opt_latency_cost, "earliest": opt_earliest, "latest": opt_latest}


def _latency_table(problem: Problem, node_pos: dict[str, int]) -> LatencyTable:
    """Round-trip time ``(J, N)`` [ms] per region: latency.csv, else base_ms + ms_per_km ·
    distance (see :class:`LatencyTable`)."""
    nodes, jobs = problem.nodes, problem.jobs
    N = len(nodes)
    regions = sorted({j.region for j in jobs if j.region})
    G = len(regions)
    gpos = {r: k for k, r in enumerate(regions)}
    region_of = np.array([gpos[j.region] if j.region else G for j in jobs],
                         dtype=np.int64).reshape(len(jobs))
    by_region = np.full((G + 1, N), np.nan)
    if not G or not N:
        return LatencyTable(by_region, region_of)
    opts = problem.scenario.latency
    nlat = np.array([np.nan if n.lat is None else n.lat for n in nodes], dtype=float)
    nlon = np.array([np.nan if n.lon is None else n.lon for n in nodes], dtype=float)
    rlat = np.array([problem.regions[r].lat if r in problem.regions else np.nan for r in regions])
    rlon = np.array([problem.regions[r].lon if r in problem.regions else np.nan for r in regions])
    with np.errstate(invalid="ignore"):
        km = great_circle_km(nlat[:, None], nlon[:, None], rlat[None, :], rlon[None, :]).T
    by_region[:G] = opts.base_ms + opts.ms_per_km * km  # nan where a coordinate is missing
    for nid, row in problem.latency_ms.items():
        i = node_pos[nid]
        for region, ms in row.items():
            if region in gpos:
                by_region[gpos[region], i] = ms
    return LatencyTable(by_region, region_of)


def ineligibility(problem: Problem, index: Index, j: int, n: int) -> str | None:
    """Why job ``j`` may not run on node ``n`` (None when it may), in user terms.

    Applies the same rules as :func:`compile_index`, one at a time, so the first
    failing rule is named.
    """
    job, node = problem.jobs[j], problem.nodes[n]
    lacks = [k for k in range(len(index.resources))
             if index.usage[j, k] > index.capacity[n, k] + _EPS]
    if lacks:
        return "lacks " + ", ".join(
            f"{index.resources[k]} (needs {index.usage[j, k]:g}, has {index.capacity[n, k]:g})"
            for k in lacks)
    if node.gpu_mem_gb < job.min_gpu_mem_gb - _EPS:
        return f"gpu_mem_gb {node.gpu_mem_gb:g} is below the job's {job.min_gpu_mem_gb:g}"
    if node.trust < job.min_trust - _EPS:
        return f"trust {node.trust:g} is below the job's {job.min_trust:g}"
    lat = index.latency_ms[j, n]
    if job.latency_slo_ms is not None and np.isnan(lat):
        return f"latency to region {job.region!r} is unknown (no latency.csv row or coordinates)"
    hard = job.latency_slo_ms is not None and job.latency_per_ms is None
    if hard and job.latency_slo_ms is not None and lat > job.latency_slo_ms + _EPS:
        return f"latency {lat:.3g} ms exceeds the hard SLO of {job.latency_slo_ms:g} ms"
    d = int(index.duration(j, n))
    end_cap = index.T
    if index.hard_deadline[j] and math.isfinite(index.deadline[j]):
        end_cap = min(index.T, math.floor(index.deadline[j] + _EPS))
    lo, hi = int(index.release[j]), end_cap - d
    if hi < lo:
        return (f"its {d} slots do not fit between release slot {lo} and "
                f"{'deadline' if end_cap < index.T else 'horizon end'} slot {end_cap}")
    if not (index.avail_run[n, lo:hi + 1] >= d).any():
        return f"the node is not available for {d} consecutive slots in [{lo}, {end_cap})"
    return None


def explain_job(problem: Problem, index: Index, j: int) -> str:
    """Why job ``j`` has no eligible node, in user terms.

    Returns
    -------
    str
        Reasons with how many nodes each rules out, e.g. ``"job j7: 3 nodes: lacks
        gpus (needs 4, has 2); 2 nodes: latency 31 ms exceeds the hard SLO of 20 ms"``.
    """
    reasons: dict[str, int] = {}
    for n in range(index.N):
        why = ineligibility(problem, index, j, n) or "eligible"
        reasons[why] = reasons.get(why, 0) + 1
    if not reasons:
        return f"job {problem.jobs[j].job_id}: there are no nodes"
    parts = [f"{c} node{'s' if c != 1 else ''}: {msg}" for msg, c in
             sorted(reasons.items(), key=lambda kv: -kv[1])]
    return f"job {problem.jobs[j].job_id}: " + "; ".join(parts)
