"""Domain model of the optisched problem (``docs/contract/input.md``, SPEC v1 §1).

Every class here mirrors one part of the input bundle, with the SPEC's defaults
and units. A :class:`Problem` can be built in code without any CSV::

    from optisched.domain import Horizon, Job, Node, Problem, Scenario, Tariff

    horizon = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=4)
    problem = Problem(
        scenario=Scenario(horizon=horizon),
        nodes=[Node(node_id="n1", gpus=1, idle_kw=0.1)],
        jobs=[Job(job_id="j1", gpus=1, duration_min=120, power_kw=0.5)],
        tariffs={"default": Tariff.constant(4, price=0.25)},
    )

Units: power [kW], energy [kWh], money in the scenario's currency, time in
slots of ``Δ = slot_minutes / 60`` [h].

JSON: ``problem.model_dump_json()`` is read back exactly by
``Problem.model_validate_json`` (and :func:`optisched.jsondoc.problem_from_json`, with
located errors). JSON has no infinite numbers, so ``inf`` (a node's default
``gpu_mem_gb`` and ``grid_kw``, unlimited headroom) is written as the string
``"Infinity"`` (pydantic's ``ser_json_inf_nan="strings"``), which reads back as
``inf``; ``model_dump()`` (Python mode) keeps the float. Timestamps keep their UTC
offset. Schema: ``docs/schemas/problem.schema.json``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from optisched.limits import LIMITS, fmt_number, limit

__all__ = [
    "SCENARIO_PARTS",
    "BatteryOptions",
    "Feeder",
    "Horizon",
    "Issue",
    "Job",
    "LatencyOptions",
    "Node",
    "NodeSeries",
    "ObjectiveOptions",
    "Problem",
    "References",
    "Region",
    "RuleBreak",
    "Scenario",
    "ScenarioData",
    "Tariff",
    "battery_rule_breaks",
    "job_rule_breaks",
]

_STRICT = ConfigDict(extra="forbid", validate_assignment=False, frozen=False,
                     ser_json_inf_nan="strings")  # inf -> "Infinity" in JSON (see above)


def _columns(file: str) -> tuple[str, ...]:
    """The numeric columns of ``file`` with a limit in :data:`optisched.limits.LIMITS`."""
    return tuple(c for f, c in LIMITS if f == file and c != "res_*")


def _within(file: str, column: str, value: float | None) -> float | None:
    """``value`` when it respects the column's documented limit, else a ValueError."""
    if value is None:
        return None
    why = limit(file, column).problem(float(value))
    if why is not None:
        raise ValueError(f"{column} = {fmt_number(float(value))}: {why}")
    return value


def _within_all(file: str, column: str, values: Sequence[float | None] | None) -> None:
    """Every value of a per-slot series within the column's limit (None entries skipped)."""
    if not values:
        return
    arr = np.array(values, dtype=float)  # None -> NaN
    given = np.array([v is not None for v in values]) if np.isnan(arr).any() else True
    bad = np.nonzero(given & ~limit(file, column).valid(arr))[0]
    if bad.size:
        t = int(bad[0])
        why = limit(file, column).problem(float(arr[t]))
        raise ValueError(f"{column} in slot {t} = {fmt_number(float(arr[t]))}: {why}")


def _resources_within(file: str, resources: dict[str, float]) -> dict[str, float]:
    for name, value in resources.items():
        _within(file, f"res_{name}", value)
    return resources


@dataclass(frozen=True)
class RuleBreak:
    """A rule between columns of one row that does not hold.

    Attributes
    ----------
    column : str
        The column reported (the one to fix, usually).
    message : str
        The rule, in terms of column names.
    related : tuple of str
        Other columns of the rule (their values help the reader).
    """

    column: str
    message: str
    related: tuple[str, ...] = ()


def battery_rule_breaks(soc_init: float, soc_min: float, soc_max: float) -> list[RuleBreak]:
    """``soc_min <= soc_init <= soc_max`` (the fractions of one node's battery)."""
    if soc_min > soc_max:
        return [RuleBreak("soc_min", "soc_min must be <= soc_max", ("soc_max",))]
    if not soc_min <= soc_init <= soc_max:
        return [RuleBreak("soc_init", "soc_init must lie in [soc_min, soc_max]",
                          ("soc_min", "soc_max"))]
    return []


def job_rule_breaks(values: Mapping[str, Any]) -> list[RuleBreak]:
    """Rules between the columns of one job (``values``: column -> parsed value or None)."""
    out = []
    release, deadline = values.get("release"), values.get("deadline")
    if release is not None and deadline is not None and deadline <= release:
        out.append(RuleBreak("deadline", "deadline must be after release", ("release",)))
    if (values.get("pinned_node") is None) != (values.get("pinned_start") is None):
        given = "pinned_node" if values.get("pinned_node") is not None else "pinned_start"
        out.append(RuleBreak(given, "pinned_node and pinned_start must be given together"))
    if values.get("latency_slo_ms") is not None and not values.get("region"):
        out.append(RuleBreak("latency_slo_ms", "latency_slo_ms needs a region"))
    if values.get("latency_per_ms") is not None and values.get("latency_slo_ms") is None:
        out.append(RuleBreak("latency_per_ms", "latency_per_ms needs latency_slo_ms"))
    return out


class Horizon(BaseModel):
    """Planning horizon: ``slots`` slots of ``slot_minutes`` from ``start``.

    Attributes
    ----------
    start : datetime
        Start of slot 0, timezone-aware (ISO 8601 with UTC offset).
    slot_minutes : int
        Slot length [min]; must divide 1440.
    slots : int
        Number of slots ``T``.
    """

    model_config = _STRICT

    start: datetime
    slot_minutes: int = Field(default=15, gt=0)
    slots: int = 96

    @field_validator("slots")
    @classmethod
    def _slots(cls, v: int) -> int:
        _within("scenario.toml", "horizon.slots", v)
        return v

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("start needs a UTC offset, e.g. 2026-06-01T00:00:00+00:00")
        return v

    @field_validator("slot_minutes")
    @classmethod
    def _divides_day(cls, v: int) -> int:
        if 1440 % v != 0:
            raise ValueError(f"slot_minutes must divide 1440, got {v}")
        return v

    @property
    def dt_hours(self) -> float:
        """Slot length Δ [h]."""
        return self.slot_minutes / 60.0

    @property
    def end(self) -> datetime:
        """End of the last slot (exclusive)."""
        return self.start + timedelta(minutes=self.slot_minutes * self.slots)

    def time_of(self, slot: int) -> datetime:
        """Start time of ``slot`` (may be outside ``0..T``)."""
        return self.start + timedelta(minutes=self.slot_minutes * slot)

    def slot_position(self, t: datetime) -> float:
        """Position of time ``t`` in slots from the start [slots], fractional when off-grid."""
        return (t - self.start).total_seconds() / (60.0 * self.slot_minutes)


class ObjectiveOptions(BaseModel):
    """``[objective]`` of scenario.toml.

    Attributes
    ----------
    carbon_price_per_tonne : float
        Money per tonne CO2 of grid import [money/t].
    cvar_alpha : float
        Level α of the CVaR of the scenario costs (the weighted mean of the worst
        ``1 − α`` of them); beyond SPEC v1 (``docs/contract/cost.md``).
    cvar_weight : float
        Weight λ of ``CVaR_α`` in the objective ``E[cost] + λ · CVaR_α(cost)``; 0 (the
        default): the expected cost alone.
    """

    model_config = _STRICT
    carbon_price_per_tonne: float = 0.0
    cvar_alpha: float = 0.9
    cvar_weight: float = 0.0

    @field_validator("carbon_price_per_tonne", "cvar_alpha", "cvar_weight")
    @classmethod
    def _limits(cls, v: float, info: ValidationInfo) -> float:
        _within("scenario.toml", f"objective.{info.field_name}", v)
        return v


class BatteryOptions(BaseModel):
    """``[battery]`` of scenario.toml.

    Attributes
    ----------
    terminal : {"initial", "free"}
        ``initial``: the state of charge at the end is at least the initial one.
    """

    model_config = _STRICT
    terminal: Literal["initial", "free"] = "initial"


class LatencyOptions(BaseModel):
    """``[latency]`` of scenario.toml: latency by distance for pairs not in latency.csv.

    Attributes
    ----------
    base_ms : float
        Fixed round-trip part [ms].
    ms_per_km : float
        Round-trip time per great-circle km, route factor included [ms/km].
    """

    model_config = _STRICT
    base_ms: float = 2.0
    ms_per_km: float = 0.015

    @field_validator("base_ms", "ms_per_km")
    @classmethod
    def _limits(cls, v: float, info: ValidationInfo) -> float:
        _within("scenario.toml", f"latency.{info.field_name}", v)
        return v


class Scenario(BaseModel):
    """Contents of ``scenario.toml``."""

    model_config = _STRICT
    horizon: Horizon
    objective: ObjectiveOptions = Field(default_factory=ObjectiveOptions)
    battery: BatteryOptions = Field(default_factory=BatteryOptions)
    latency: LatencyOptions = Field(default_factory=LatencyOptions)


class Node(BaseModel):
    """A compute node with its power set-up (one row of nodes.csv).

    Attributes
    ----------
    node_id : str
        Unique id.
    kind, region : str
        Free label; region where the node is (for latency).
    lat, lon : float or None
        Coordinates [deg] for latency by distance.
    tariff : str
        Key into the tariffs (prices.csv).
    feeder : str or None
        Key into the feeders (feeders.csv).
    gpus : float
        Capacity of the main resource [GPUs].
    resources : dict of str to float
        Capacity of further resources (``res_<name>`` columns).
    gpu_mem_gb : float
        Memory per GPU [GB] (eligibility), ``inf`` by default.
    trust : float
        Trust level (eligibility).
    speed : float
        Throughput vs reference; a job's slots here are
        ``ceil(duration_min / slot_minutes / speed)``.
    power_factor : float
        Multiplies a job's ``power_kw`` here.
    idle_kw : float
        Draw while on [kW].
    can_sleep : bool
        Whether on/off is a decision (else on in every available slot).
    initially_on, end_off : bool
        State before slot 0; whether it must be off after the last slot.
    startup_cost, shutdown_cost : float
        Money per off→on / on→off switch.
    grid_kw : float
        Default import limit [kW] (``inf``; 0 = off-grid).
    export_kw : float
        Export limit [kW].
    battery_kwh : float
        Usable battery capacity E [kWh]; 0 = no battery.
    soc_init, soc_min, soc_max : float
        Fractions of ``battery_kwh``.
    charge_kw, discharge_kw : float
        Battery power limits [kW]; default ``battery_kwh / 2`` (per hour).
    eff_charge, eff_discharge : float
        One-way efficiencies in (0, 1].
    degradation_per_kwh : float
        Money per kWh discharged [money/kWh].
    demand_charge_per_kw : float
        Money per kW of the node's peak import over the horizon [money/kW].
    extra : dict of str to str
        ``x_`` user columns, carried through.
    """

    model_config = _STRICT

    node_id: str = Field(min_length=1)
    kind: str = ""
    region: str = ""
    lat: float | None = None
    lon: float | None = None
    tariff: str = "default"
    feeder: str | None = None
    gpus: float
    resources: dict[str, float] = Field(default_factory=dict)
    gpu_mem_gb: float = math.inf
    trust: float = 0.0
    speed: float = 1.0
    power_factor: float = 1.0
    idle_kw: float = 0.0
    can_sleep: bool = False
    initially_on: bool = True
    end_off: bool = False
    startup_cost: float = 0.0
    shutdown_cost: float = 0.0
    grid_kw: float = math.inf
    export_kw: float = 0.0
    battery_kwh: float = 0.0
    soc_init: float = 0.5
    soc_min: float = 0.0
    soc_max: float = 1.0
    charge_kw: float | None = None
    discharge_kw: float | None = None
    eff_charge: float = 0.95
    eff_discharge: float = 0.95
    degradation_per_kwh: float = 0.0
    demand_charge_per_kw: float = 0.0
    extra: dict[str, str] = Field(default_factory=dict)

    @field_validator(*_columns("nodes.csv"))
    @classmethod
    def _limits(cls, v: float | None, info: ValidationInfo) -> float | None:
        return _within("nodes.csv", str(info.field_name), v)

    @field_validator("resources")
    @classmethod
    def _resource_limits(cls, v: dict[str, float]) -> dict[str, float]:
        return _resources_within("nodes.csv", v)

    @model_validator(mode="after")
    def _battery(self) -> Node:
        for b in battery_rule_breaks(self.soc_init, self.soc_min, self.soc_max):
            shown = ", ".join(f"{c} = {getattr(self, c):g}" for c in (b.column, *b.related))
            raise ValueError(f"{b.message} ({shown})")
        return self

    @property
    def charge_limit_kw(self) -> float:
        """Effective charge limit [kW] (default ``battery_kwh / 2``)."""
        return self.battery_kwh / 2.0 if self.charge_kw is None else self.charge_kw

    @property
    def discharge_limit_kw(self) -> float:
        """Effective discharge limit [kW] (default ``battery_kwh / 2``)."""
        return self.battery_kwh / 2.0 if self.discharge_kw is None else self.discharge_kw


class Job(BaseModel):
    """A job to place (one row of jobs.csv).

    Attributes
    ----------
    job_id : str
        Unique id.
    kind : str
        Free label.
    gpus : float
        Usage of the main resource while running [GPUs].
    resources : dict of str to float
        Usage of further resources (``res_<name>``).
    duration_min : float
        Run time on a speed-1.0 node [min].
    power_kw : float
        Draw while running on a power_factor-1.0 node [kW].
    release, deadline : datetime or None
        Earliest start and latest end (default: horizon start and end).
    tardiness_per_hour : float or None
        None: the deadline is hard; else money per hour of lateness [money/h].
    drop_penalty : float or None
        None: must run; else money if left out.
    region : str or None
        Where its users are.
    latency_slo_ms : float or None
        Round-trip bound to ``region`` [ms].
    latency_per_ms : float or None
        None: the SLO is hard; else money per ms over the SLO [money/ms].
    min_gpu_mem_gb, min_trust : float
        Eligibility thresholds.
    pinned_node : str or None
        Node of a job already placed.
    pinned_start : datetime or None
        Its start (may lie before the horizon).
    extra : dict of str to str
        ``x_`` user columns.
    """

    model_config = _STRICT

    job_id: str = Field(min_length=1)
    kind: str = ""
    gpus: float
    resources: dict[str, float] = Field(default_factory=dict)
    duration_min: float
    power_kw: float
    release: datetime | None = None
    deadline: datetime | None = None
    tardiness_per_hour: float | None = None
    drop_penalty: float | None = None
    region: str | None = None
    latency_slo_ms: float | None = None
    latency_per_ms: float | None = None
    min_gpu_mem_gb: float = 0.0
    min_trust: float = 0.0
    pinned_node: str | None = None
    pinned_start: datetime | None = None
    extra: dict[str, str] = Field(default_factory=dict)

    @field_validator(*_columns("jobs.csv"))
    @classmethod
    def _limits(cls, v: float | None, info: ValidationInfo) -> float | None:
        return _within("jobs.csv", str(info.field_name), v)

    @field_validator("resources")
    @classmethod
    def _resource_limits(cls, v: dict[str, float]) -> dict[str, float]:
        return _resources_within("jobs.csv", v)

    @field_validator("release", "deadline", "pinned_start")
    @classmethod
    def _aware(cls, v: datetime | None, info: ValidationInfo) -> datetime | None:
        if v is not None and v.utcoffset() is None:
            raise ValueError(f"{info.field_name} needs a UTC offset")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Job:
        breaks = job_rule_breaks(self.__dict__)
        if breaks:
            raise ValueError("; ".join(b.message for b in breaks))
        return self

    @property
    def must_run(self) -> bool:
        """True when the job has no drop penalty."""
        return self.drop_penalty is None

    @property
    def pinned(self) -> bool:
        """True when the job is already placed."""
        return self.pinned_node is not None


class NodeSeries(BaseModel):
    """Per-slot series of one node (node_series.csv).

    Attributes
    ----------
    pv_kw : list of float
        Solar forecast per slot [kW] (default 0).
    headroom_kw : list of float or None
        Import limit per slot [kW]; None = the node's ``grid_kw``.
    available : list of bool
        False: no job may run and the node is off in that slot.
    """

    model_config = _STRICT
    pv_kw: list[float] | None = None
    headroom_kw: list[float | None] | None = None
    available: list[bool] | None = None

    @field_validator("pv_kw", "headroom_kw")
    @classmethod
    def _limits(cls, v: list[float | None] | None, info: ValidationInfo
                ) -> list[float | None] | None:
        _within_all("node_series.csv", str(info.field_name), v)
        return v


class Tariff(BaseModel):
    """Per-slot prices of one tariff (prices.csv).

    Attributes
    ----------
    price : list of float
        Import price per slot [money/kWh] (may be zero or negative).
    export_price : list of float
        Export price per slot [money/kWh].
    carbon_g_per_kwh : list of float
        Carbon intensity of import per slot [gCO2/kWh] (default: 0 in every slot).
    """

    model_config = _STRICT
    price: list[float]
    export_price: list[float]
    carbon_g_per_kwh: list[float] = Field(default_factory=list)

    @classmethod
    def constant(
        cls, slots: int, price: float, export_price: float = 0.0, carbon_g_per_kwh: float = 0.0
    ) -> Tariff:
        """A flat tariff over ``slots`` slots."""
        return cls(
            price=[price] * slots,
            export_price=[export_price] * slots,
            carbon_g_per_kwh=[carbon_g_per_kwh] * slots,
        )

    @field_validator("price", "export_price", "carbon_g_per_kwh")
    @classmethod
    def _limits(cls, v: list[float], info: ValidationInfo) -> list[float]:
        _within_all("prices.csv", str(info.field_name), v)
        return v

    @model_validator(mode="after")
    def _equal_length(self) -> Tariff:
        if not self.carbon_g_per_kwh and "carbon_g_per_kwh" not in self.model_fields_set:
            self.carbon_g_per_kwh = [0.0] * len(self.price)
        if not (len(self.price) == len(self.export_price) == len(self.carbon_g_per_kwh)):
            raise ValueError("price, export_price and carbon_g_per_kwh must have equal length")
        return self


class Feeder(BaseModel):
    """A transformer/feeder limiting the net import of its nodes (feeders.csv).

    Attributes
    ----------
    headroom_kw : list of float
        Limit on Σ(import − export) of its nodes per slot [kW]; ``inf`` = none.
    """

    model_config = _STRICT
    headroom_kw: list[float]

    @field_validator("headroom_kw")
    @classmethod
    def _limits(cls, v: list[float]) -> list[float]:
        _within_all("feeders.csv", "headroom_kw", v)
        return v


class Region(BaseModel):
    """A user region with coordinates (regions.csv)."""

    model_config = _STRICT
    lat: float
    lon: float

    @field_validator("lat", "lon")
    @classmethod
    def _limits(cls, v: float, info: ValidationInfo) -> float:
        _within("regions.csv", str(info.field_name), v)
        return v


class ScenarioData(BaseModel):
    """One scenario of the uncertain series (beyond SPEC v1: ``scenarios.csv``).

    A scenario has a probability and, for each series file given with a
    ``scenario`` column, its own series; a file without that column is shared by
    every scenario (the :class:`Problem`'s own ``node_series``, ``tariffs`` or
    ``feeders``). ``docs/contract/input.md`` ("Beyond SPEC v1: scenarios").

    Attributes
    ----------
    weight : float
        Probability of the scenario, in (0, 1]; the weights of a problem sum to 1.
    node_series : dict of str to NodeSeries or None
        The scenario's per-node series; None: the problem's own.
    tariffs : dict of str to Tariff or None
        The scenario's tariffs; None: the problem's own.
    feeders : dict of str to Feeder or None
        The scenario's feeders; None: the problem's own.
    """

    model_config = _STRICT
    weight: float
    node_series: dict[str, NodeSeries] | None = None
    tariffs: dict[str, Tariff] | None = None
    feeders: dict[str, Feeder] | None = None

    @field_validator("weight")
    @classmethod
    def _limits(cls, v: float) -> float:
        _within("scenarios.csv", "weight", v)
        return v


SCENARIO_PARTS = ("node_series", "tariffs", "feeders")
"""The parts of a :class:`Problem` a scenario may give its own (:class:`ScenarioData`)."""
_PART_FILE = {"node_series": "node_series.csv", "tariffs": "prices.csv",
              "feeders": "feeders.csv"}
WEIGHT_TOL = 1e-9
"""Scenario weights must sum to 1 within this."""


@dataclass(frozen=True)
class Issue:
    """A consistency problem found in a :class:`Problem`.

    Attributes
    ----------
    table : str
        Bundle file the value lives in (``nodes.csv`` …).
    key : str
        Id of the row's entity (node_id, job_id, tariff, feeder …).
    column : str
        Column of the offending value.
    value : str
        The offending value.
    message : str
        What is wrong and what would be valid.
    scenario : str or None
        The scenario whose own series the issue is about (beyond SPEC v1), None for the
        shared data.
    """

    table: str
    key: str
    column: str
    value: str
    message: str
    scenario: str | None = None


@dataclass(frozen=True)
class References:
    """What counts as defined when :meth:`Problem.issues` checks references.

    A reader that left out rows it could not read passes the ids of *every* row
    (a node whose row failed is still a known node id) and None for a table it
    could not read at all, so that no reference is reported unknown because of an
    error already reported.

    Attributes
    ----------
    nodes, tariffs, feeders : collection of str or None
        Known ids; None: do not check references to that table.
    capacity : bool
        False: the node table is incomplete, so do not check that some node can
        hold each job.
    """

    nodes: Collection[str] | None
    tariffs: Collection[str] | None
    feeders: Collection[str] | None
    capacity: bool = True


class Problem(BaseModel):
    """A whole planning problem (one input bundle).

    Attributes
    ----------
    scenario : Scenario
        Horizon and options.
    nodes, jobs : list
        Compute nodes and jobs.
    node_series : dict of str to NodeSeries
        Per-node series by node_id (nodes not listed take defaults).
    tariffs : dict of str to Tariff
        Tariffs by name. When empty, every tariff is free (price 0).
    feeders : dict of str to Feeder
        Feeders by name.
    latency_ms : dict of str to dict of str to float
        Explicit round-trip times ``latency_ms[node_id][region]`` [ms].
    regions : dict of str to Region
        Region coordinates.
    scenarios : dict of str to ScenarioData
        Scenarios of the uncertain series by id (beyond SPEC v1); empty: the one
        problem of SPEC v1. A scenario's own series replace ``node_series``,
        ``tariffs`` or ``feeders`` in that scenario (:meth:`scenario_problem`).
    """

    model_config = _STRICT

    scenario: Scenario
    nodes: list[Node]
    jobs: list[Job]
    node_series: dict[str, NodeSeries] = Field(default_factory=dict)
    tariffs: dict[str, Tariff] = Field(default_factory=dict)
    feeders: dict[str, Feeder] = Field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = Field(default_factory=dict)
    regions: dict[str, Region] = Field(default_factory=dict)
    scenarios: dict[str, ScenarioData] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> Problem:
        issues = self.issues()
        if issues:
            lines = [f"{i.table} [{i.key}] {i.column}={i.value!r}: {i.message}" for i in issues]
            shown = lines[:20]
            more = f"\n... and {len(lines) - 20} more" if len(lines) > 20 else ""
            raise ValueError("inconsistent problem:\n" + "\n".join(shown) + more)
        return self

    @property
    def horizon(self) -> Horizon:
        """The scenario's horizon."""
        return self.scenario.horizon

    def scenario_problem(self, sid: str) -> Problem:
        """The deterministic problem of scenario ``sid``: this problem with the scenario's
        own series laid over the shared ones (per node, tariff or feeder), and no
        scenarios.

        Raises
        ------
        KeyError
            ``sid`` is not a scenario of this problem.
        """
        sc = self.scenarios[sid]
        update: dict[str, Any] = {"scenarios": {}}
        for part in SCENARIO_PARTS:
            own = getattr(sc, part)
            if own is not None:
                update[part] = {**getattr(self, part), **own}
        return self.model_copy(update=update)

    def scenario_problems(self) -> list[tuple[str, float, Problem]]:
        """``(id, weight, problem)`` of every scenario, in order; a problem without
        scenarios is its own only scenario ``("", 1.0, self)``."""
        if not self.scenarios:
            return [("", 1.0, self)]
        return [(sid, sc.weight, self.scenario_problem(sid)) for sid, sc in self.scenarios.items()]

    def issues(self, refs: References | None = None) -> list[Issue]:
        """Cross-reference checks: ids, references, series lengths, resource fit.

        Parameters
        ----------
        refs : References, optional
            What counts as defined (default: this problem's own nodes, tariffs
            and feeders; tariffs are not checked when there are none, feeders not here when
            only the scenarios have them, which are then checked per scenario).

        Returns
        -------
        list of Issue
            Empty when the problem is consistent.
        """
        if refs is None:
            refs = References(nodes=[n.node_id for n in self.nodes],
                              tariffs=list(self.tariffs) if self.tariffs else None,
                              feeders=(list(self.feeders) if self.feeders or not any(
                                  sc.feeders for sc in self.scenarios.values()) else None))
        return [*self._node_issues(refs), *self._job_issues(refs), *self._series_issues(refs),
                *self._scenario_issues(refs)]

    def _node_issues(self, refs: References) -> list[Issue]:
        out: list[Issue] = []
        seen: set[str] = set()
        tariffs = None if refs.tariffs is None else set(refs.tariffs)
        feeders = None if refs.feeders is None else set(refs.feeders)
        for n in self.nodes:
            if n.node_id in seen:
                out.append(Issue("nodes.csv", n.node_id, "node_id", n.node_id, "duplicate node_id"))
            seen.add(n.node_id)
            if tariffs is not None and n.tariff not in tariffs:
                out.append(Issue("nodes.csv", n.node_id, "tariff", n.tariff,
                                 f"unknown tariff; prices.csv has {_some(tariffs)}"))
            if feeders is not None and n.feeder is not None and n.feeder not in feeders:
                out.append(Issue("nodes.csv", n.node_id, "feeder", n.feeder,
                                 f"unknown feeder; feeders.csv has {_some(feeders)}"))
        return out

    def _job_issues(self, refs: References) -> list[Issue]:
        out: list[Issue] = []
        nodes = None if refs.nodes is None else set(refs.nodes)
        seen: set[str] = set()
        cap_max: dict[str, float] = {"gpus": max((n.gpus for n in self.nodes), default=0.0)}
        for n in self.nodes:
            for r, v in n.resources.items():
                cap_max[r] = max(cap_max.get(r, 0.0), v)
        hz = self.horizon
        for j in self.jobs:
            if j.job_id in seen:
                out.append(Issue("jobs.csv", j.job_id, "job_id", j.job_id, "duplicate job_id"))
            seen.add(j.job_id)
            if nodes is not None and j.pinned_node is not None and j.pinned_node not in nodes:
                out.append(Issue("jobs.csv", j.job_id, "pinned_node", j.pinned_node,
                                 "unknown node_id (not in nodes.csv)"))
            for r, v in ({"gpus": j.gpus, **j.resources} if refs.capacity else {}).items():
                col = "gpus" if r == "gpus" else f"res_{r}"
                if v > cap_max.get(r, 0.0) + 1e-9:
                    out.append(Issue("jobs.csv", j.job_id, col, _fmt(v),
                                     f"no node has that much; the largest {col} capacity is "
                                     f"{_fmt(cap_max.get(r, 0.0))}"))
            if j.pinned_start is not None:
                pos = hz.slot_position(j.pinned_start)
                if abs(pos - round(pos)) > 1e-9:
                    out.append(Issue("jobs.csv", j.job_id, "pinned_start",
                                     j.pinned_start.isoformat(),
                                     f"must lie on the slot grid ({hz.slot_minutes}-minute "
                                     f"slots from {hz.start.isoformat()})"))
        return out

    def _series_issues(self, refs: References) -> list[Issue]:
        T = self.horizon.slots
        nodes = None if refs.nodes is None else set(refs.nodes)
        out = [*_node_series_issues(self.node_series, nodes, T),
               *_tariff_issues(self.tariffs, T), *_feeder_issues(self.feeders, T)]
        lat = limit("latency.csv", "latency_ms")
        for nid, row in self.latency_ms.items():
            if nodes is not None and nid not in nodes:
                out.append(Issue("latency.csv", nid, "node_id", nid,
                                 "unknown node_id (not in nodes.csv)"))
            for region, ms in row.items():
                why = lat.problem(ms)
                if why is not None:
                    out.append(Issue("latency.csv", nid, "latency_ms", _fmt(ms),
                                     f"latency to {region}: {why}"))
        return out

    def _scenario_issues(self, refs: References) -> list[Issue]:
        """Weights summing to 1, the same parts given by every scenario, and each
        scenario's own series checked like the shared ones (ids, lengths, references)."""
        if not self.scenarios:
            return []
        out: list[Issue] = []
        total = math.fsum(sc.weight for sc in self.scenarios.values())
        if abs(total - 1.0) > WEIGHT_TOL:
            out.append(Issue("scenarios.csv", "", "weight", repr(total),
                             f"the weights of the {len(self.scenarios)} scenarios sum to "
                             f"{total!r}; they must sum to 1 (within {WEIGHT_TOL:g})"))
        for part in SCENARIO_PARTS:
            given = [sid for sid, sc in self.scenarios.items() if getattr(sc, part) is not None]
            if given and len(given) != len(self.scenarios):
                missing = [sid for sid in self.scenarios if sid not in given]
                out.append(Issue(_PART_FILE[part], missing[0], "scenario", missing[0],
                                 f"scenario {missing[0]!r} has no rows in {_PART_FILE[part]} "
                                 f"(it has rows of {_some(given)}): with a scenario column "
                                 "every scenario of scenarios.csv needs its rows"))
        T = self.horizon.slots
        nodes = None if refs.nodes is None else set(refs.nodes)
        for sid, sc in self.scenarios.items():
            found: list[Issue] = []
            if sc.node_series is not None:
                found += _node_series_issues(sc.node_series, nodes, T)
            if sc.tariffs is not None:
                found += _tariff_issues(sc.tariffs, T)
                known = None if refs.tariffs is None else set(refs.tariffs)
                for n in self.nodes if sc.tariffs else ():
                    # a tariff unknown in every scenario is reported once, by the shared check
                    if n.tariff not in sc.tariffs and (known is None or n.tariff in known):
                        found.append(Issue("nodes.csv", n.node_id, "tariff", n.tariff,
                                           f"unknown tariff; prices.csv has {_some(sc.tariffs)}"))
            if sc.feeders is not None:
                found += _feeder_issues(sc.feeders, T)
                known_f = None if refs.feeders is None else set(refs.feeders)
                for n in self.nodes:
                    if n.feeder is not None and n.feeder not in sc.feeders and (
                            known_f is None or n.feeder in known_f):
                        found.append(Issue("nodes.csv", n.node_id, "feeder", n.feeder,
                                           f"unknown feeder; feeders.csv has {_some(sc.feeders)}"))
            out += [Issue(i.table, i.key, i.column, i.value, f"{i.message} (scenario {sid})",
                          sid) for i in found]
        return out


def _node_series_issues(series: Mapping[str, NodeSeries], nodes: set[str] | None,
                        T: int) -> list[Issue]:
    out: list[Issue] = []
    for nid, s in series.items():
        if nodes is not None and nid not in nodes:
            out.append(Issue("node_series.csv", nid, "node_id", nid,
                             "unknown node_id (not in nodes.csv)"))
        for col in ("pv_kw", "headroom_kw", "available"):
            seq = getattr(s, col)
            if seq is not None and len(seq) != T:
                out.append(Issue("node_series.csv", nid, col, f"{len(seq)} values",
                                 f"needs one value per slot ({T})"))
    return out


def _tariff_issues(tariffs: Mapping[str, Tariff], T: int) -> list[Issue]:
    return [Issue("prices.csv", name, "price", f"{len(tariff.price)} values",
                  f"a tariff needs one value per slot ({T})")
            for name, tariff in tariffs.items() if len(tariff.price) != T]


def _feeder_issues(feeders: Mapping[str, Feeder], T: int) -> list[Issue]:
    return [Issue("feeders.csv", name, "headroom_kw", f"{len(feeder.headroom_kw)} values",
                  f"needs one value per slot ({T})")
            for name, feeder in feeders.items() if len(feeder.headroom_kw) != T]


def _fmt(v: float) -> str:
    return f"{v:g}"


def _some(d: Iterable[str]) -> str:
    keys = sorted(d)
    if not keys:
        return "none"
    return ", ".join(keys[:8]) + (" …" if len(keys) > 8 else "")
