"""Compare two plans (``optisched diff``): cost terms side by side, and which jobs moved.

:func:`diff_plans` is a pure function of two :class:`PlanRecord` s (placements
by job id, cost terms, objective). A record comes from a plan directory alone
(:func:`read_record`: ``assignments.csv`` and ``summary.json``, costs as the
solver wrote them) or from a :class:`~optisched.plan.Plan` with its problem
(:func:`record_of`: costs recomputed by the evaluator).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optisched.arrays import FloatArray, IntArray
from optisched.domain import Problem
from optisched.errors import BundleError, InputError
from optisched.evaluate import evaluate
from optisched.index import Index, compile_index
from optisched.plan import (
    ASSIGNMENT_COLUMNS,
    COST_TERMS,
    Plan,
    read_assignments_frame,
    read_summary,
    require_plan_files,
)

__all__ = ["JobChange", "NodeDelta", "PlanDiff", "PlanRecord", "diff_plans", "node_energy_delta",
           "read_record", "record_of"]


@dataclass(frozen=True)
class Placement:
    """Where a job runs: node id and start slot, or both None when dropped."""

    node_id: str | None
    start_slot: int | None

    @property
    def dropped(self) -> bool:
        """True when the job does not run."""
        return self.node_id is None


@dataclass
class PlanRecord:
    """What :func:`diff_plans` compares.

    Attributes
    ----------
    name : str
        Label (e.g. the plan directory).
    solver, status : str
        From the summary.
    objective : float or None
        Objective [money].
    costs : dict of str to float
        Terms of SPEC §3 [money] (export_revenue positive, subtracted).
    placements : dict of str to Placement
        By job id.
    source : str
        ``summary.json`` or ``evaluator``: where the costs come from.
    """

    name: str
    solver: str
    status: str
    objective: float | None
    costs: dict[str, float]
    placements: dict[str, Placement]
    source: str = "summary.json"


@dataclass(frozen=True)
class JobChange:
    """A job whose placement differs between plan A and plan B.

    Attributes
    ----------
    job_id : str
        The job.
    change : str
        ``moved`` (other node), ``retimed`` (same node, other start),
        ``dropped`` (runs in A, dropped in B), ``scheduled`` (dropped in A, runs
        in B), ``only_a`` / ``only_b`` (the job is in one plan only).
    node_a, node_b : str or None
        Node in A and B (None: dropped or absent).
    start_a, start_b : int or None
        Start slot in A and B.
    """

    job_id: str
    change: str
    node_a: str | None
    start_a: int | None
    node_b: str | None
    start_b: int | None

    @property
    def shift(self) -> int | None:
        """Start slot change B − A [slots] when the job runs in both."""
        if self.start_a is None or self.start_b is None:
            return None
        return self.start_b - self.start_a


@dataclass
class PlanDiff:
    """Result of :func:`diff_plans`.

    Attributes
    ----------
    a, b : str
        Names of the two plans.
    source : str
        Where the costs come from (``summary.json`` or ``evaluator``).
    costs_a, costs_b, delta : dict of str to float or None
        Every term of SPEC §3 in A, in B, and B − A [money] (None when a side
        lacks the term).
    objective_a, objective_b, objective_delta : float or None
        Objectives and B − A [money].
    changes : list of JobChange
        Jobs whose placement differs, by job id.
    unchanged : int
        Jobs placed identically in both.
    """

    a: str
    b: str
    source: str
    costs_a: dict[str, float | None]
    costs_b: dict[str, float | None]
    delta: dict[str, float | None]
    objective_a: float | None
    objective_b: float | None
    objective_delta: float | None
    changes: list[JobChange] = field(default_factory=list)
    unchanged: int = 0

    def counts(self) -> dict[str, int]:
        """Number of changed jobs per kind of change."""
        out: dict[str, int] = {}
        for c in self.changes:
            out[c.change] = out.get(c.change, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content (``optisched diff --json``)."""
        d = asdict(self)
        d["counts"] = self.counts()
        return d


def _sub(x: float | None, y: float | None) -> float | None:
    if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
        return None
    return y - x


def diff_plans(a: PlanRecord, b: PlanRecord) -> PlanDiff:
    """Compare plan A with plan B.

    Parameters
    ----------
    a, b : PlanRecord
        The two plans.

    Returns
    -------
    PlanDiff
        Cost terms of both and B − A, and every job whose node or start differs
        or that is dropped in one plan only, sorted by job id.
    """
    terms = list(COST_TERMS) + [k for k in (*a.costs, *b.costs) if k not in COST_TERMS]
    terms = list(dict.fromkeys(terms))
    ca: dict[str, float | None] = {k: a.costs.get(k) for k in terms}
    cb: dict[str, float | None] = {k: b.costs.get(k) for k in terms}
    changes: list[JobChange] = []
    unchanged = 0
    for jid in sorted(set(a.placements) | set(b.placements)):
        pa, pb = a.placements.get(jid), b.placements.get(jid)
        if pa is None or pb is None:
            kind = "only_b" if pa is None else "only_a"
        elif pa == pb:
            unchanged += 1
            continue
        elif pa.dropped:
            kind = "scheduled"
        elif pb.dropped:
            kind = "dropped"
        elif pa.node_id != pb.node_id:
            kind = "moved"
        else:
            kind = "retimed"
        changes.append(JobChange(jid, kind, pa.node_id if pa else None,
                                 pa.start_slot if pa else None, pb.node_id if pb else None,
                                 pb.start_slot if pb else None))
    source = a.source if a.source == b.source else f"{a.source} / {b.source}"
    return PlanDiff(a=a.name, b=b.name, source=source, costs_a=ca, costs_b=cb,
                    delta={k: _sub(ca[k], cb[k]) for k in terms},
                    objective_a=a.objective, objective_b=b.objective,
                    objective_delta=_sub(a.objective, b.objective),
                    changes=changes, unchanged=unchanged)


def read_record(path: str | os.PathLike[str]) -> PlanRecord:
    """A plan directory's ``summary.json`` and ``assignments.csv`` as a record (no bundle).

    Raises
    ------
    BundleError
        Missing files, invalid JSON, missing columns or bad start slots, each
        named by file, row and column.
    """
    path = Path(path)
    errors: list[InputError] = []
    require_plan_files(path, ("summary.json", "assignments.csv"))
    summary = read_summary(path)
    file = path / "assignments.csv"
    df = read_assignments_frame(file, errors)
    if df is None:
        raise BundleError(errors)
    placements: dict[str, Placement] = {}
    for k, row in enumerate(df.itertuples(index=False)):
        jid, st, nid, ss = (str(getattr(row, c)).strip() for c in ASSIGNMENT_COLUMNS)
        if st == "dropped":
            placements[jid] = Placement(None, None)
            continue
        try:
            placements[jid] = Placement(nid, int(ss))
        except ValueError:
            errors.append(InputError(str(file), k + 2, "start_slot", ss,
                                     "must be an integer slot"))
    if errors:
        raise BundleError(errors)
    costs = {str(k): float(v) for k, v in (summary.get("costs") or {}).items() if v is not None}
    obj = summary.get("objective")
    return PlanRecord(name=str(path), solver=str(summary.get("solver", "")),
                      status=str(summary.get("status", "")),
                      objective=None if obj is None else float(obj), costs=costs,
                      placements=placements, source="summary.json")


def record_of(problem: Problem, plan: Plan, name: str = "") -> PlanRecord:
    """A :class:`~optisched.plan.Plan` as a record, its costs recomputed by the evaluator."""
    placements = {
        jid: (Placement(None, None) if int(plan.node[j]) < 0
              else Placement(plan.node_ids[int(plan.node[j])], int(plan.start[j])))
        for j, jid in enumerate(plan.job_ids)
    }
    costs: dict[str, float] = {}
    objective: float | None = None
    if plan.flows is not None:
        ev = evaluate(problem, plan)
        costs, objective = dict(ev.costs), ev.objective
    return PlanRecord(name=name or plan.solver, solver=plan.solver, status=plan.status.value,
                      objective=objective, costs=costs, placements=placements,
                      source="evaluator")


@dataclass
class NodeDelta:
    """Energy and jobs per node in plan A and plan B (:func:`node_energy_delta`).

    Attributes
    ----------
    node_ids : list of str
        Nodes in problem order.
    energy_a, energy_b : (N,) float
        Load energy of each node over the horizon [kWh].
    jobs_a, jobs_b : (N,) int
        Jobs running on each node.
    """

    node_ids: list[str]
    energy_a: FloatArray
    energy_b: FloatArray
    jobs_a: IntArray
    jobs_b: IntArray

    @property
    def energy_delta(self) -> FloatArray:
        """B − A per node [kWh]."""
        return self.energy_b - self.energy_a


def node_energy_delta(problem: Problem, a: Plan, b: Plan, index: Index | None = None
                      ) -> NodeDelta:
    """Energy [kWh] and job count per node of two plans of one problem, and B − A.

    Raises
    ------
    ValueError
        A plan has no flows.
    """
    index = index or compile_index(problem)

    def side(p: Plan) -> tuple[FloatArray, IntArray]:
        if p.flows is None:
            raise ValueError(f"plan {p.solver} ({p.status.value}) has no flows to compare")
        jobs = np.bincount(p.node[p.node >= 0], minlength=index.N).astype(np.int64)
        return np.asarray(index.dt * p.flows.load.sum(axis=1), dtype=float), jobs

    ea, ja = side(a)
    eb, jb = side(b)
    return NodeDelta(node_ids=list(index.node_ids), energy_a=ea, energy_b=eb, jobs_a=ja,
                     jobs_b=jb)
