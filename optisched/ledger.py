"""What the re-planner records: the executed past (:class:`Ledger`) and each update's changes.

:class:`Ledger`
    Every slot the re-planner rolled past, per node: on/off, the flows of the
    plan that was in force, the data it was priced on, the measured state of
    charge, the jobs running and the cost of the slot (SPEC §3 terms per slot);
    and every job that left the problem (ran, finished, cancelled, restarted,
    expired while dropped, rejected) with its job cost. Its realized cost plus
    the current plan's remaining cost (:attr:`~optisched.replan.Replanner.remaining_cost`)
    is the cost of the whole executed horizon as the evaluator computes it.
:class:`ChangeSet`
    One :class:`JobChange` per job an update touched: ``added``, ``moved``,
    ``started``, ``restarted``, ``dropped`` or ``rejected``, with the reason and
    the placement before and after; :meth:`ChangeSet.to_json` for callers.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optisched.arrays import FloatArray, IntArray
from optisched.atomic import write_file_atomically
from optisched.index import Index
from optisched.plan import COST_TERMS, Flows

__all__ = ["CHANGE_KINDS", "JOB_STATUSES", "ChangeSet", "JobChange", "Ledger"]

CHANGE_KINDS = ("added", "moved", "started", "restarted", "dropped", "rejected")
"""Kinds of :class:`JobChange`."""
JOB_STATUSES = ("done", "finished", "cancelled", "restarted", "dropped", "rejected")
"""Why a job left the problem (column ``status`` of :attr:`Ledger.jobs`)."""

SLOT_COLUMNS = ("time", "slot", "node_id", "on", "load_kw", "pv_kw", "pv_used_kw", "import_kw",
                "export_kw", "charge_kw", "discharge_kw", "soc_kwh", "soc_measured_kwh", "price",
                "export_price", "import_cost", "energy", "export_revenue", "carbon",
                "degradation", "switching", "cost", "jobs")
"""Columns of :attr:`Ledger.slots` (one row per executed slot and node)."""
JOB_COLUMNS = ("recorded_at", "job_id", "status", "node_id", "start", "end", "latency",
               "tardiness", "drop", "cost", "reason")
"""Columns of :attr:`Ledger.jobs` (one row per job that left the problem)."""


@dataclass(frozen=True)
class JobChange:
    """What one update did to one job.

    Attributes
    ----------
    job_id : str
        The job.
    kind : str
        One of :data:`CHANGE_KINDS`: ``added`` (an arrival got a place), ``moved``
        (a job not yet started got another node or start, or a place after being
        dropped), ``started`` (began since the last update), ``restarted`` (was
        running on a node that went out: starts again from scratch), ``dropped``
        (left out, paying its drop penalty), ``rejected`` (could not be placed and
        must run: taken out of the problem).
    reason : str
        Why, in user terms.
    node_before, node_after : str or None
        Node before and after the update (None: none).
    start_before, start_after : datetime or None
        Start before and after the update.
    """

    job_id: str
    kind: str
    reason: str
    node_before: str | None = None
    start_before: datetime | None = None
    node_after: str | None = None
    start_after: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """The record with ISO 8601 times (JSON-ready)."""
        d = asdict(self)
        for k in ("start_before", "start_after"):
            d[k] = None if d[k] is None else d[k].isoformat()
        return d


@dataclass
class ChangeSet:
    """The :class:`JobChange` records of one update, in job order.

    Iterable and sized like a list; :meth:`to_list` / :meth:`to_json` for callers,
    :meth:`of_kind` to filter.
    """

    records: list[JobChange] = field(default_factory=list)

    def __iter__(self) -> Iterator[JobChange]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> JobChange:
        return self.records[i]

    def of_kind(self, kind: str) -> list[JobChange]:
        """The records of one kind."""
        return [r for r in self.records if r.kind == kind]

    def by_job(self) -> dict[str, JobChange]:
        """Records by job id."""
        return {r.job_id: r for r in self.records}

    def to_list(self) -> list[dict[str, Any]]:
        """The records as dicts (times as ISO strings)."""
        return [r.as_dict() for r in self.records]

    def to_json(self, indent: int | None = None) -> str:
        """The records as a JSON array."""
        return json.dumps(self.to_list(), indent=indent)


def slot_costs(index: Index, flows: Flows, k: int) -> dict[str, FloatArray]:
    """SPEC §3 energy terms and switching of slots ``0..k-1`` per node, each ``(N, k)`` [money].

    Switching at slot ``t`` is the start-up (off at ``t − 1``, on at ``t``) or
    shut-down (on, then off) on the boundary before ``t`` (before slot 0: from
    ``initially_on``); the shut-down after the horizon (``end_off``) belongs to the
    plan, not to the past.
    """
    dt = index.dt
    imp = flows.grid_import[:, :k]
    on = flows.on[:, :k].astype(bool)
    prev = np.concatenate([index.initially_on[:, None], on[:, :-1]], axis=1)
    su, sd = index.startup_cost[:, None], index.shutdown_cost[:, None]
    return {
        "energy": dt * index.price[:, :k] * imp,
        "export_revenue": dt * index.export_price[:, :k] * flows.grid_export[:, :k],
        "carbon": index.carbon_price * dt * index.carbon[:, :k] * imp / 1e6,
        "degradation": dt * index.degradation[:, None] * flows.discharge[:, :k],
        "switching": su * (on & ~prev) + sd * (~on & prev),
    }


class Ledger:
    """The executed past of a re-planner: slots per node, and the jobs that left.

    Attributes
    ----------
    peak : dict node_id -> float
        Highest grid import of each node over the executed slots [kW] (the demand
        charge applies to it).
    """

    def __init__(self, node_ids: list[str], demand_charge: FloatArray) -> None:
        self.node_ids = list(node_ids)
        self._dc = dict(zip(self.node_ids, (float(x) for x in demand_charge), strict=True))
        self.peak: dict[str, float] = dict.fromkeys(self.node_ids, 0.0)
        self._chunks: list[dict[str, Any]] = []
        self._jobs: list[dict[str, Any]] = []
        self._slots_df: pd.DataFrame | None = None
        self._sums: dict[str, float] = dict.fromkeys(COST_TERMS, 0.0)
        self.flows: list[Flows] = []
        """The executed part of each plan, in order (concatenated: the flows of the past)."""

    # ------------------------------------------------------------------ recording
    def record_slots(self, index: Index, flows: Flows, times: list[datetime], a0: int,
                     running: list[list[list[str]]], measured: dict[str, float]) -> None:
        """Append slots ``0..k-1`` of a plan (``k = len(times)``) as executed.

        Parameters
        ----------
        index : Index
            The plan's index (its prices and switching costs).
        flows : Flows
            The plan's flows.
        times : list of datetime
            Start of each executed slot.
        a0 : int
            Absolute slot of the plan's slot 0.
        running : list (node) of list (slot) of list of job ids
            Jobs running in each executed slot.
        measured : dict node_id -> kWh
            State of charge measured at the end of the last executed slot.
        """
        k = len(times)
        if k == 0:
            return
        N = index.N
        costs = slot_costs(index, flows, k)
        for name, arr in costs.items():
            self._sums[name] += float(arr.sum())
        imp = flows.grid_import[:, :k]
        for i, nid in enumerate(index.node_ids):
            self.peak[nid] = max(self.peak[nid], float(imp[i].max(initial=0.0)))
        meas = np.full((N, k), np.nan)
        for nid, v in measured.items():
            meas[index.node_pos[nid], k - 1] = v
        total = (costs["energy"] - costs["export_revenue"] + costs["carbon"]
                 + costs["degradation"] + costs["switching"])
        chunk = {
            "time": np.repeat(np.array(times, dtype=object)[None, :], N, axis=0),
            "slot": np.repeat((a0 + np.arange(k))[None, :], N, axis=0),
            "node_id": np.repeat(np.array(index.node_ids, dtype=object)[:, None], k, axis=1),
            "on": flows.on[:, :k].astype(bool),
            "load_kw": flows.load[:, :k], "pv_kw": index.pv[:, :k],
            "pv_used_kw": flows.pv_used[:, :k], "import_kw": imp,
            "export_kw": flows.grid_export[:, :k], "charge_kw": flows.charge[:, :k],
            "discharge_kw": flows.discharge[:, :k], "soc_kwh": flows.soc[:, :k],
            "soc_measured_kwh": meas, "price": index.price[:, :k],
            "export_price": index.export_price[:, :k], "import_cost": index.import_cost[:, :k],
            **costs, "cost": total,
            "jobs": np.array([[" ".join(running[i][t]) for t in range(k)] for i in range(N)],
                             dtype=object).reshape(N, k),
        }
        self._chunks.append({c: np.asarray(chunk[c]).T.reshape(-1) for c in SLOT_COLUMNS})
        part = Flows(**{name: np.array(getattr(flows, name)[:, :k], copy=True)
                        for name in ("on", "load", "pv_used", "grid_import", "grid_export",
                                     "charge", "discharge", "soc")})
        self.flows.append(part)
        self._slots_df = None

    def record_job(self, recorded_at: datetime, job_id: str, status: str, node_id: str | None,
                   start: datetime | None, end: datetime | None, latency: float = 0.0,
                   tardiness: float = 0.0, drop: float = 0.0, reason: str = "") -> None:
        """Append a job that left the problem, with its job cost [money]."""
        self._jobs.append({"recorded_at": recorded_at, "job_id": job_id, "status": status,
                           "node_id": node_id, "start": start, "end": end, "latency": latency,
                           "tardiness": tardiness, "drop": drop,
                           "cost": latency + tardiness + drop, "reason": reason})
        self._sums["latency"] += latency
        self._sums["tardiness"] += tardiness
        self._sums["drop"] += drop

    # ------------------------------------------------------------------ reading
    @property
    def slots(self) -> pd.DataFrame:
        """Executed slots, one row per slot and node (columns :data:`SLOT_COLUMNS`)."""
        if self._slots_df is None:
            if not self._chunks:
                self._slots_df = pd.DataFrame({c: [] for c in SLOT_COLUMNS})
            else:
                self._slots_df = pd.DataFrame(
                    {c: np.concatenate([ch[c] for ch in self._chunks]) for c in SLOT_COLUMNS})
        return self._slots_df

    @property
    def jobs(self) -> pd.DataFrame:
        """Jobs that left the problem (columns :data:`JOB_COLUMNS`)."""
        return pd.DataFrame(self._jobs, columns=list(JOB_COLUMNS))

    @property
    def job_records(self) -> list[dict[str, Any]]:
        """The rows of :attr:`jobs` as dicts."""
        return list(self._jobs)

    @property
    def executed_slots(self) -> int:
        """Number of executed slots."""
        return sum(f.on.shape[1] for f in self.flows)

    def costs(self) -> dict[str, float]:
        """Realized cost by SPEC §3 term [money]; ``demand`` on the peaks so far."""
        out = dict(self._sums)
        out["demand"] = sum(self._dc[n] * p for n, p in self.peak.items())
        return out

    @property
    def cost(self) -> float:
        """Realized cost [money] (export revenue subtracted)."""
        c = self.costs()
        return sum(-c[k] if k == "export_revenue" else c[k] for k in COST_TERMS)

    def demand_adjustment(self, index: Index, flows: Flows) -> float:
        """Demand charge of a plan beyond the peaks so far, minus the plan's own demand term.

        ``Σ_n dc_n · (max(peak_past, peak_plan) − peak_past − peak_plan)`` [money]: added
        to the plan's objective it gives the cost the plan adds to the realized cost.
        """
        out = 0.0
        peaks = flows.grid_import.max(axis=1, initial=0.0)
        for i, nid in enumerate(index.node_ids):
            dc = float(index.demand_charge[i])
            if dc > 0:
                pp, pf = self.peak.get(nid, 0.0), float(peaks[i])
                out += dc * (max(pp, pf) - pp - pf)
        return out

    def write(self, path: str | Path) -> tuple[Path, Path]:
        """Write :attr:`slots` to ``path`` and :attr:`jobs` to ``<stem>_jobs.csv`` beside it.

        Both atomically (a reader never sees half a file). Times as ISO 8601.

        Returns
        -------
        (Path, Path)
            The two files.
        """
        path = Path(path)
        jobs_path = path.with_name(f"{path.stem}_jobs{path.suffix or '.csv'}")
        write_file_atomically(path, _csv(self.slots))
        write_file_atomically(jobs_path, _csv(self.jobs))
        return path, jobs_path


def _csv(df: pd.DataFrame) -> str:
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or isinstance(out[c].dtype, pd.DatetimeTZDtype):
            out[c] = [v.isoformat() if isinstance(v, datetime) else v for v in out[c]]
    buf = io.StringIO()
    out.to_csv(buf, index=False, float_format="%.10g", lineterminator="\n")
    return buf.getvalue()


def job_terms(index: Index, j: int, n: int, end: int) -> tuple[float, float]:
    """Latency and tardiness cost of job ``j`` run on node ``n`` until slot ``end`` [money].

    As :func:`optisched.evaluate.cost_terms` prices them (``end`` exclusive, in the
    index's slots).
    """
    over = float(index.latency_ms[j, n] - index.latency_slo[j])
    lat = float(index.latency_rate[j]) * over if math.isfinite(over) and over > 0 else 0.0
    tard = float(index.tardiness_cost(int(j), int(end)))
    return lat, tard


def runs_by_slot(index: Index, node: IntArray, start: IntArray, k: int) -> list[list[list[str]]]:
    """Job ids running in each slot ``0..k-1`` of each node, ``[node][slot] -> ids``."""
    out: list[list[list[str]]] = [[[] for _ in range(k)] for _ in range(index.N)]
    runs = np.nonzero(node >= 0)[0]
    if runs.size == 0 or k == 0:
        return out
    d = index.duration(runs, node[runs])
    for j, n, s, dd in zip(runs.tolist(), node[runs].tolist(), start[runs].tolist(),
                           d.tolist(), strict=True):
        for t in range(max(0, s), min(k, s + dd)):
            out[n][t].append(index.job_ids[j])
    return out
