"""Domain model of the optisched problem (``../shared/SPEC.md`` section 1).

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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
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
    "Region",
    "Scenario",
    "Tariff",
]

_STRICT = ConfigDict(extra="forbid", validate_assignment=False, frozen=False)


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
    slots: int = Field(default=96, gt=0)

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
    """

    model_config = _STRICT
    carbon_price_per_tonne: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)


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
    base_ms: float = Field(default=2.0, ge=0.0, allow_inf_nan=False)
    ms_per_km: float = Field(default=0.015, ge=0.0, allow_inf_nan=False)


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
    lat: float | None = Field(default=None, ge=-90.0, le=90.0)
    lon: float | None = Field(default=None, ge=-180.0, le=180.0)
    tariff: str = "default"
    feeder: str | None = None
    gpus: float = Field(ge=0.0, allow_inf_nan=False)
    resources: dict[str, float] = Field(default_factory=dict)
    gpu_mem_gb: float = Field(default=math.inf, ge=0.0)
    trust: float = Field(default=0.0, allow_inf_nan=False)
    speed: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    power_factor: float = Field(default=1.0, ge=0.0, allow_inf_nan=False)
    idle_kw: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    can_sleep: bool = False
    initially_on: bool = True
    end_off: bool = False
    startup_cost: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    shutdown_cost: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    grid_kw: float = Field(default=math.inf, ge=0.0)
    export_kw: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    battery_kwh: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    soc_init: float = Field(default=0.5, ge=0.0, le=1.0, allow_inf_nan=False)
    soc_min: float = Field(default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    soc_max: float = Field(default=1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    charge_kw: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    discharge_kw: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    eff_charge: float = Field(default=0.95, gt=0.0, le=1.0, allow_inf_nan=False)
    eff_discharge: float = Field(default=0.95, gt=0.0, le=1.0, allow_inf_nan=False)
    degradation_per_kwh: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    demand_charge_per_kw: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    extra: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _battery(self) -> Node:
        if self.soc_min > self.soc_max:
            raise ValueError(f"soc_min ({self.soc_min}) > soc_max ({self.soc_max})")
        if not self.soc_min <= self.soc_init <= self.soc_max:
            raise ValueError(
                f"soc_init ({self.soc_init}) must lie in [soc_min, soc_max] = "
                f"[{self.soc_min}, {self.soc_max}]"
            )
        for name, value in self.resources.items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"resource res_{name} must be finite and >= 0, got {value}")
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
    gpus: float = Field(ge=0.0, allow_inf_nan=False)
    resources: dict[str, float] = Field(default_factory=dict)
    duration_min: float = Field(gt=0.0, allow_inf_nan=False)
    power_kw: float = Field(ge=0.0, allow_inf_nan=False)
    release: datetime | None = None
    deadline: datetime | None = None
    tardiness_per_hour: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    drop_penalty: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    region: str | None = None
    latency_slo_ms: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    latency_per_ms: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    min_gpu_mem_gb: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    min_trust: float = Field(default=0.0, allow_inf_nan=False)
    pinned_node: str | None = None
    pinned_start: datetime | None = None
    extra: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Job:
        for name in ("release", "deadline", "pinned_start"):
            t = getattr(self, name)
            if t is not None and t.utcoffset() is None:
                raise ValueError(f"{name} needs a UTC offset")
        if self.release is not None and self.deadline is not None:
            if self.deadline <= self.release:
                raise ValueError(
                    f"deadline ({self.deadline.isoformat()}) must be after release "
                    f"({self.release.isoformat()})"
                )
        if (self.pinned_node is None) != (self.pinned_start is None):
            raise ValueError("pinned_node and pinned_start must be given together")
        if self.latency_slo_ms is not None and not self.region:
            raise ValueError("latency_slo_ms needs a region")
        if self.latency_per_ms is not None and self.latency_slo_ms is None:
            raise ValueError("latency_per_ms needs latency_slo_ms")
        for name, value in self.resources.items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"resource res_{name} must be finite and >= 0, got {value}")
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

    @model_validator(mode="after")
    def _finite(self) -> Tariff:
        if not self.carbon_g_per_kwh and "carbon_g_per_kwh" not in self.model_fields_set:
            self.carbon_g_per_kwh = [0.0] * len(self.price)
        if not (len(self.price) == len(self.export_price) == len(self.carbon_g_per_kwh)):
            raise ValueError("price, export_price and carbon_g_per_kwh must have equal length")
        for name in ("price", "export_price", "carbon_g_per_kwh"):
            if not all(math.isfinite(v) for v in getattr(self, name)):
                raise ValueError(f"{name} must be finite")
        if any(v < 0 for v in self.carbon_g_per_kwh):
            raise ValueError("carbon_g_per_kwh must be >= 0")
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


class Region(BaseModel):
    """A user region with coordinates (regions.csv)."""

    model_config = _STRICT
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)


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
    """

    table: str
    key: str
    column: str
    value: str
    message: str


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

    def issues(self) -> list[Issue]:
        """Cross-reference checks: ids, references, series lengths, resource fit.

        Returns
        -------
        list of Issue
            Empty when the problem is consistent.
        """
        out: list[Issue] = []
        T = self.horizon.slots
        node_ids: set[str] = set()
        for n in self.nodes:
            if n.node_id in node_ids:
                out.append(Issue("nodes.csv", n.node_id, "node_id", n.node_id, "duplicate node_id"))
            node_ids.add(n.node_id)
            if self.tariffs and n.tariff not in self.tariffs:
                out.append(
                    Issue(
                        "nodes.csv", n.node_id, "tariff", n.tariff,
                        f"unknown tariff; prices.csv has {_some(self.tariffs)}",
                    )
                )
            if n.feeder is not None and n.feeder not in self.feeders:
                out.append(
                    Issue(
                        "nodes.csv", n.node_id, "feeder", n.feeder,
                        f"unknown feeder; feeders.csv has {_some(self.feeders)}",
                    )
                )
        job_ids: set[str] = set()
        cap_max: dict[str, float] = {"gpus": max((n.gpus for n in self.nodes), default=0.0)}
        for n in self.nodes:
            for r, v in n.resources.items():
                cap_max[r] = max(cap_max.get(r, 0.0), v)
        for j in self.jobs:
            if j.job_id in job_ids:
                out.append(Issue("jobs.csv", j.job_id, "job_id", j.job_id, "duplicate job_id"))
            job_ids.add(j.job_id)
            if j.pinned_node is not None and j.pinned_node not in node_ids:
                out.append(
                    Issue("jobs.csv", j.job_id, "pinned_node", j.pinned_node, "unknown node_id")
                )
            uses = {"gpus": j.gpus, **j.resources}
            for r, v in uses.items():
                col = "gpus" if r == "gpus" else f"res_{r}"
                if v > cap_max.get(r, 0.0) + 1e-9:
                    out.append(
                        Issue(
                            "jobs.csv", j.job_id, col, _fmt(v),
                            f"no node has that much; the largest {col} capacity is "
                            f"{_fmt(cap_max.get(r, 0.0))}",
                        )
                    )
            if j.pinned_start is not None:
                pos = self.horizon.slot_position(j.pinned_start)
                if abs(pos - round(pos)) > 1e-9:
                    out.append(
                        Issue(
                            "jobs.csv", j.job_id, "pinned_start", j.pinned_start.isoformat(),
                            f"must lie on the slot grid ({self.horizon.slot_minutes}-minute "
                            f"slots from {self.horizon.start.isoformat()})",
                        )
                    )
        for nid, s in self.node_series.items():
            if nid not in node_ids:
                out.append(Issue("node_series.csv", nid, "node_id", nid, "unknown node_id"))
            for col in ("pv_kw", "headroom_kw", "available"):
                seq = getattr(s, col)
                if seq is not None and len(seq) != T:
                    out.append(
                        Issue("node_series.csv", nid, col, f"{len(seq)} values",
                              f"needs one value per slot ({T})")
                    )
            for col in ("pv_kw", "headroom_kw"):
                seq = getattr(s, col)
                if seq is not None and any(
                    v is not None and (math.isnan(v) or v < 0) for v in seq
                ):
                    out.append(Issue("node_series.csv", nid, col, "", "values must be >= 0"))
            if s.pv_kw is not None and any(math.isinf(v) for v in s.pv_kw):
                out.append(Issue("node_series.csv", nid, "pv_kw", "inf", "pv_kw must be finite"))
        for name, tariff in self.tariffs.items():
            if len(tariff.price) != T:
                out.append(
                    Issue("prices.csv", name, "price", f"{len(tariff.price)} values",
                          f"a tariff needs one value per slot ({T})")
                )
        for name, feeder in self.feeders.items():
            if len(feeder.headroom_kw) != T:
                out.append(
                    Issue("feeders.csv", name, "headroom_kw", f"{len(feeder.headroom_kw)} values",
                          f"needs one value per slot ({T})")
                )
            if any(math.isnan(v) or v < 0 for v in feeder.headroom_kw):
                out.append(Issue("feeders.csv", name, "headroom_kw", "", "values must be >= 0"))
        for nid, row in self.latency_ms.items():
            if nid not in node_ids:
                out.append(Issue("latency.csv", nid, "node_id", nid, "unknown node_id"))
            for region, ms in row.items():
                if not math.isfinite(ms) or ms < 0:
                    out.append(Issue("latency.csv", nid, "latency_ms", _fmt(ms),
                                     f"latency to {region} must be finite and >= 0"))
        return out


def _fmt(v: float) -> str:
    return f"{v:g}"


def _some(d: Mapping[str, object]) -> str:
    keys = sorted(d)
    if not keys:
        return "none"
    return ", ".join(keys[:8]) + (" …" if len(keys) > 8 else "")
