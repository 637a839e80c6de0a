"""The plan every solver returns, and its files (SPEC §4).

A :class:`Plan` holds, in the problem's job and node order, where and when each
job runs (``node[j]``, ``start[j]``; ``node[j] == -1`` for dropped), the on/off
state and energy flows of every node and slot, and the solve's status,
objective, bound and timings. :func:`write_plan` writes ``assignments.csv``,
``node_series.csv`` and ``summary.json`` atomically; :func:`read_plan` reads
them back with errors that name file, row and column.

The same three files as one JSON document (:class:`PlanDocument`, the plan of the
HTTP service): :meth:`Plan.to_json` / :meth:`Plan.from_json`, an exact round trip
(numbers at full precision, infinities as the strings ``"Infinity"`` /
``"-Infinity"``, ``NaN`` as ``"NaN"``; in the free-form ``info`` these three strings
read back as numbers).
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.atomic import check_dir_target, write_dir_atomically
from optisched.domain import Problem
from optisched.errors import MAX_ERRORS, BundleError, InputError
from optisched.index import slots_needed

__all__ = [
    "COST_TERMS",
    "FLOW_NAMES",
    "AssignmentRecord",
    "FlowArrays",
    "Flows",
    "NodeSeriesRecord",
    "Plan",
    "PlanDocument",
    "PlanSummary",
    "Status",
    "check_plan_dir",
    "read_plan",
    "relative_gap",
    "write_plan",
]

COST_TERMS = (
    "energy",
    "export_revenue",
    "carbon",
    "degradation",
    "demand",
    "switching",
    "latency",
    "tardiness",
    "drop",
)
"""Cost terms of SPEC §3, in order; ``export_revenue`` is subtracted."""

PLAN_FILES = ("assignments.csv", "node_series.csv", "summary.json")
RISK_KEYS = ("expected_cost", "cvar", "cvar_alpha", "cvar_weight", "scenario_costs")
"""Keys of ``summary.json`` for a problem with scenarios (beyond SPEC v1, :attr:`Plan.risk`)."""


class Status(StrEnum):
    """The one status vocabulary of every solver (SPEC §4 summary.json)."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"
    ERROR = "error"

    @property
    def has_plan(self) -> bool:
        """True for statuses that carry a plan (optimal, feasible)."""
        return self in (Status.OPTIMAL, Status.FEASIBLE)


@dataclass
class FlowArrays:
    """The six energy flows of some nodes, each ``(K, T)``: the one declaration.

    :class:`Flows` (every node, with on/off states and load) and
    :class:`optisched.dispatch.NodeDispatch` (the nodes one dispatch call solved)
    extend it.

    Attributes
    ----------
    pv_used, grid_import, grid_export, charge, discharge : float
        Power [kW], constant over the slot.
    soc : float
        Battery state of charge at the end of the slot [kWh].
    """

    pv_used: FloatArray
    grid_import: FloatArray
    grid_export: FloatArray
    charge: FloatArray
    discharge: FloatArray
    soc: FloatArray

    def flow_arrays(self) -> dict[str, FloatArray]:
        """The six arrays by name (:data:`FLOW_NAMES`), not copied."""
        return {name: getattr(self, name) for name in FLOW_NAMES}

    def set_flows(self, rows: IntArray, src: FlowArrays) -> None:
        """Copy the six arrays of ``src`` into rows ``rows`` of these (scenario by scenario
        when there are several)."""
        for dst, part in zip(self.scenario_flows(), src.scenario_flows(), strict=True):
            for name in FLOW_NAMES:
                getattr(dst, name)[rows] = getattr(part, name)

    def scenario_flows(self) -> list[FlowArrays]:
        """The flows of every scenario, these arrays first (beyond SPEC v1; one scenario:
        ``[self]``)."""
        return [self]


FLOW_NAMES: tuple[str, ...] = tuple(f.name for f in fields(FlowArrays))
"""``pv_used``, ``grid_import``, ``grid_export``, ``charge``, ``discharge``, ``soc``."""


@dataclass
class Flows(FlowArrays):
    """On/off state and energy flows per node and slot, all ``(N, T)``.

    Attributes
    ----------
    on : bool
        Node on in the slot.
    load : float
        Power [kW], constant over the slot.
    pv_used, grid_import, grid_export, charge, discharge, soc : float
        The flows of :class:`FlowArrays`.
    """

    on: BoolArray
    load: FloatArray
    more: list[FlowArrays] = field(default_factory=list, init=False)
    """Beyond SPEC v1: the six flows of scenarios 2 … S (the arrays above are the first
    scenario's; ``on`` and ``load`` are the first stage's, shared by every scenario). Set by
    :meth:`of_scenarios`, :meth:`zeros` and :meth:`of`."""

    @classmethod
    def of_scenarios(cls, on: BoolArray, load: FloatArray,
                     parts: list[FlowArrays]) -> Flows:
        """Flows from on/off states, load and the six flows of every scenario (not
        copied)."""
        out = cls(on=on, load=load, **parts[0].flow_arrays())
        out.more = list(parts[1:])
        return out

    @classmethod
    def zeros(cls, n_nodes: int, n_slots: int, scenarios: int = 1) -> Flows:
        """All-off, all-zero flows (of ``scenarios`` scenarios)."""
        z = np.zeros((n_nodes, n_slots))
        out = cls(
            on=np.zeros((n_nodes, n_slots), dtype=bool),
            load=z.copy(), pv_used=z.copy(), grid_import=z.copy(), grid_export=z.copy(),
            charge=z.copy(), discharge=z.copy(), soc=z.copy(),
        )
        out.more = [FlowArrays(*(z.copy() for _ in FLOW_NAMES)) for _ in range(scenarios - 1)]
        return out

    @classmethod
    def of(cls, on: BoolArray, load: FloatArray, flows: FlowArrays) -> Flows:
        """Flows from on/off states, load and the six arrays of ``flows`` (of every
        scenario; not copied)."""
        return cls.of_scenarios(on, load, [FlowArrays(**f.flow_arrays())
                                           for f in flows.scenario_flows()])

    @property
    def S(self) -> int:
        """Number of scenarios the flows are for."""
        return 1 + len(self.more)

    def scenario_flows(self) -> list[FlowArrays]:
        """The flows of every scenario: these arrays, then :attr:`more`."""
        return [self, *self.more]

    def scenario(self, s: int) -> Flows:
        """The flows of scenario ``s`` as :class:`Flows` of one scenario (arrays shared)."""
        if s == 0 and not self.more:
            return self
        return Flows(on=self.on, load=self.load, **self.scenario_flows()[s].flow_arrays())

    def copy(self) -> Flows:
        """A deep copy."""
        return Flows.of_scenarios(self.on.copy(), self.load.copy(), [
            FlowArrays(**{k: v.copy() for k, v in f.flow_arrays().items()})
            for f in self.scenario_flows()])

    def take_rows(self, rows: IntArray) -> Flows:
        """Copies of rows ``rows`` (nodes) of every array."""
        return Flows.of_scenarios(self.on[rows].copy(), self.load[rows].copy(), [
            FlowArrays(**{k: v[rows].copy() for k, v in f.flow_arrays().items()})
            for f in self.scenario_flows()])

    def take_scenarios(self, kept: list[int]) -> Flows:
        """Copies of the flows of scenarios ``kept`` (in that order), on and load shared."""
        parts = self.scenario_flows()
        return Flows.of_scenarios(self.on.copy(), self.load.copy(), [
            FlowArrays(**{k: v.copy() for k, v in parts[s].flow_arrays().items()})
            for s in kept])

    def set_rows(self, rows: IntArray, src: Flows) -> None:
        """Copy every array of ``src`` (on, load and the flows) into rows ``rows``."""
        self.on[rows] = src.on
        self.load[rows] = src.load
        self.set_flows(rows, src)


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """Relative gap ``(objective − bound) / max(|objective|, 1e-9)``; None without a bound."""
    if objective is None or bound is None or not math.isfinite(bound):
        return None
    return max(0.0, (objective - bound) / max(abs(objective), 1e-9))


@dataclass
class Plan:
    """A plan for one problem.

    Attributes
    ----------
    solver : str
        Name of the solver that made it.
    status : Status
        Outcome of the solve.
    job_ids, node_ids : list of str
        Ids in the problem's order.
    node : (J,) int
        Node position per job, -1 when dropped (or when there is no plan).
    start : (J,) int
        Start slot per job (may be negative for a pinned job).
    flows : Flows or None
        Node states and energy flows; None when there is no plan.
    objective : float or None
        Cost of SPEC §3 [money].
    bound : float or None
        Proven lower bound on the optimum [money], None when unknown.
    costs : dict of str to float
        Every term of SPEC §3 by name.
    timings : dict of str to float
        Seconds: ``build``, ``solve``, ``total``.
    message : str
        Why infeasible, or other notes for the user.
    info : dict
        Solver-specific statistics (iterations, nodes, scaled objective …).
    risk : dict
        Beyond SPEC v1, for a problem with scenarios (filled by the evaluator):
        ``expected_cost``, ``cvar``, ``cvar_alpha``, ``cvar_weight`` and
        ``scenario_costs`` (scenario id -> cost of the plan in it) [money]; the
        objective is ``expected_cost + cvar_weight · cvar`` and :attr:`costs` are the
        expected terms. Empty for a SPEC v1 problem.
    """

    solver: str
    status: Status
    job_ids: list[str]
    node_ids: list[str]
    node: IntArray
    start: IntArray
    flows: Flows | None = None
    objective: float | None = None
    bound: float | None = None
    costs: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    risk: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, problem: Problem, solver: str, status: Status, message: str = "") -> Plan:
        """A plan without a solution (infeasible, no_solution or error)."""
        J = len(problem.jobs)
        return cls(
            solver=solver, status=status,
            job_ids=[j.job_id for j in problem.jobs], node_ids=[n.node_id for n in problem.nodes],
            node=np.full(J, -1, dtype=np.int64), start=np.zeros(J, dtype=np.int64),
            message=message,
        )

    @property
    def gap(self) -> float | None:
        """Relative gap between objective and bound (see :func:`relative_gap`)."""
        return relative_gap(self.objective, self.bound)

    @property
    def scheduled(self) -> BoolArray:
        """(J,) True for jobs that run (scheduled or pinned)."""
        return self.node >= 0

    def job_counts(self, problem: Problem) -> dict[str, int]:
        """Counts of scheduled, dropped and pinned jobs."""
        pinned = np.array([j.pinned for j in problem.jobs], dtype=bool)
        runs = self.node >= 0
        if not self.status.has_plan:
            return {"scheduled": 0, "dropped": 0, "pinned": 0}
        return {
            "scheduled": int((runs & ~pinned).sum()),
            "dropped": int((~runs).sum()),
            "pinned": int((runs & pinned).sum()),
        }

    def summary(self, problem: Problem) -> dict[str, Any]:
        """The ``summary.json`` content of SPEC §4."""
        return {
            "solver": self.solver,
            "status": self.status.value,
            "objective": _num(self.objective),
            "bound": _num(self.bound),
            "gap": _num(self.gap),
            "costs": {k: _num(self.costs.get(k, 0.0)) for k in COST_TERMS} if self.costs else {},
            "timings": {k: round(float(v), 6) for k, v in self.timings.items()},
            "jobs": self.job_counts(problem),
            "message": self.message,
            "info": _jsonable(self.info),
            **({k: _jsonable(v) for k, v in self.risk.items()} if self.risk else {}),
        }

    def to_document(self, problem: Problem) -> dict[str, Any]:
        """The plan as a JSON-ready :class:`PlanDocument` (``assignments``, ``node_series``,
        ``summary``), numbers at full precision, non-finite ones as strings.

        Parameters
        ----------
        problem : Problem
            The problem the plan is for (durations, slot times).

        Returns
        -------
        dict
            Plain lists, dicts, strings, numbers and None: ``json.dumps`` takes it as is.
        """
        return {"assignments": _assignment_records(problem, self),
                "node_series": _series_records(problem, self),
                "summary": _document_summary(problem, self)}

    def to_json(self, problem: Problem, indent: int | None = None) -> str:
        """:meth:`to_document` as JSON text (read back exactly by :meth:`from_json`)."""
        doc = self.to_document(problem)
        if indent is not None:
            return json.dumps(doc, indent=indent, allow_nan=False)
        return pydantic_core.to_json(doc).decode("utf-8")  # 3-4x faster than json.dumps

    @classmethod
    def from_json(cls, problem: Problem, data: str | bytes | Mapping[str, Any],
                  name: str = "plan") -> Plan:
        """Read a :class:`PlanDocument` (JSON text, or already parsed) for ``problem``.

        Parameters
        ----------
        problem : Problem
            The problem the plan is for (job and node order).
        data : str, bytes or mapping
            The document.
        name : str
            Name of the document in error messages: errors name ``{name}.assignments``,
            ``{name}.node_series`` or ``{name}.summary`` as their file and the 0-based
            position in that list as their row.

        Returns
        -------
        Plan
            Equal to the plan that wrote the document (flows bit for bit).

        Raises
        ------
        BundleError
            Invalid JSON, wrong types, unknown ids, missing or repeated rows, each
            located by list, position, key and value.
        """
        return _plan_from_document(problem, data, name)


def _num(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return float(v)


def _jsonable(obj: Any, number: Callable[[float], Any] | None = None) -> Any:
    """``obj`` as JSON values; floats through ``number`` (default: non-finite → None)."""
    num = _num if number is None else number
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, num) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, num) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return num(float(obj))
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


# --------------------------------------------------------------------------- write


def _assignments_frame(problem: Problem, plan: Plan, durations: IntArray) -> pd.DataFrame:
    hz = problem.horizon
    rows: list[tuple[object, ...]] = []
    for j, job in enumerate(problem.jobs):
        n = int(plan.node[j])
        if n < 0:
            rows.append((job.job_id, "dropped", "", "", "", "", ""))
            continue
        s = int(plan.start[j])
        e = s + int(durations[j])
        rows.append((
            job.job_id, "pinned" if job.pinned else "scheduled", plan.node_ids[n], s, e,
            hz.time_of(s).isoformat(), hz.time_of(e).isoformat(),
        ))
    return pd.DataFrame(
        rows, columns=["job_id", "status", "node_id", "start_slot", "end_slot", "start", "end"]
    )


SERIES_COLUMNS = ("node_id", "slot", "time", "on", "load_kw", "pv_used_kw", "import_kw",
                  "export_kw", "charge_kw", "discharge_kw", "soc_kwh")
"""Columns of the plan's ``node_series.csv`` (SPEC §4); with several scenarios
``scenario`` comes first (beyond SPEC v1)."""


def _series_frame(problem: Problem, plan: Plan) -> pd.DataFrame:
    hz = problem.horizon
    cols = list(SERIES_COLUMNS)
    f = plan.flows
    several = len(problem.scenarios) > 1
    if several:
        cols = ["scenario", *cols]
    if f is None:
        return pd.DataFrame(columns=cols)
    N, T = f.on.shape
    times = [hz.time_of(t).isoformat() for t in range(T)]
    frames = []
    for sid, part in zip(problem.scenarios if several else [""], f.scenario_flows(),
                         strict=True):
        frame = pd.DataFrame({
            **({"scenario": np.full(N * T, sid, dtype=object)} if several else {}),
            "node_id": np.repeat(np.array(plan.node_ids, dtype=object), T),
            "slot": np.tile(np.arange(T), N),
            "time": np.tile(np.array(times, dtype=object), N),
            "on": f.on.astype(int).ravel(),
            "load_kw": f.load.ravel(),
            "pv_used_kw": part.pv_used.ravel(),
            "import_kw": part.grid_import.ravel(),
            "export_kw": part.grid_export.ravel(),
            "charge_kw": part.charge.ravel(),
            "discharge_kw": part.discharge.ravel(),
            "soc_kwh": part.soc.ravel(),
        })[cols]
        frames.append(frame)
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def write_plan(problem: Problem, plan: Plan, out: str | os.PathLike[str]) -> Path:
    """Write a plan directory atomically (SPEC §4).

    The three files are written into a temporary sibling directory which then
    replaces ``out`` by rename, so an interrupted run never leaves a half plan.

    Parameters
    ----------
    problem : Problem
        The problem the plan is for.
    plan : Plan
        The plan.
    out : path
        Target directory. If it exists it may hold only the three plan files;
        anything else (dot-files such as ``.git`` included) is refused rather than
        deleted. The new directory gets the mode of a plain ``mkdir`` (umask);
        leftovers of a killed earlier write are removed (``docs/plan-directory.md``).

    Returns
    -------
    pathlib.Path
        The written directory.

    Raises
    ------
    FileExistsError
        When ``out`` exists and holds files that are not part of a plan.
    OutputError
        When ``out`` cannot be written (permissions, a read-only file system).
    """
    dur = np.zeros(len(problem.jobs), dtype=np.int64)
    runs = np.nonzero(plan.node >= 0)[0]
    if runs.size:
        minutes = np.array([problem.jobs[j].duration_min for j in runs])
        speed = np.array([problem.nodes[n].speed for n in plan.node[runs]])
        dur[runs] = slots_needed(minutes, problem.horizon.slot_minutes, speed)

    def fill(tmp: Path) -> None:
        _assignments_frame(problem, plan, dur).to_csv(tmp / "assignments.csv", index=False)
        _series_frame(problem, plan).to_csv(tmp / "node_series.csv", index=False,
                                            float_format="%.10g")
        with open(tmp / "summary.json", "w", encoding="utf-8") as fh:
            json.dump(plan.summary(problem), fh, indent=2)
            fh.write("\n")

    return write_dir_atomically(out, fill, allowed=PLAN_FILES)


def check_plan_dir(out: str | os.PathLike[str]) -> None:
    """Raise now what :func:`write_plan` would raise about ``out`` (foreign files in it, a
    parent that cannot be written), before a solve spends its time limit."""
    check_dir_target(out, PLAN_FILES)


# --------------------------------------------------------------------------- read


def read_plan(problem: Problem, path: str | os.PathLike[str]) -> Plan:
    """Read a plan directory written by :func:`write_plan` (or by hand).

    Raises
    ------
    BundleError
        Missing or unreadable files, unknown ids, missing rows or bad numbers,
        each named by file, row (header = 1), column and value.
    """
    path = Path(path)
    errors: list[InputError] = []
    require_plan_files(path, PLAN_FILES)
    summary = read_summary(path)
    try:
        status = Status(summary.get("status", ""))
    except ValueError:
        raise BundleError([InputError(str(path / "summary.json"), None, "status",
                                      str(summary.get("status")),
                                      "must be one of " + ", ".join(s.value for s in Status))]
                          ) from None
    plan = Plan.empty(problem, str(summary.get("solver", "")), status,
                      str(summary.get("message", "")))
    plan.objective = _summary_number(summary, "objective", path, errors)
    plan.bound = _summary_number(summary, "bound", path, errors)
    plan.costs = _summary_numbers(summary, "costs", path, errors)
    plan.timings = _summary_numbers(summary, "timings", path, errors)
    plan.info = summary.get("info") or {}
    plan.risk = {k: summary[k] for k in RISK_KEYS if k in summary}
    _read_assignments(problem, plan, path / "assignments.csv", errors)
    if status.has_plan:
        plan.flows = _read_series(problem, plan, path / "node_series.csv", errors)
    if errors:
        raise BundleError(errors)
    return plan


def _summary_number(summary: dict[str, Any], key: str, path: Path,
                    errors: list[InputError]) -> float | None:
    v = summary.get(key)
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return None if v is None else float(v)
    errors.append(InputError(str(path / "summary.json"), None, key, str(v),
                             "must be a number or null"))
    return None


def _summary_numbers(summary: dict[str, Any], key: str, path: Path,
                     errors: list[InputError]) -> dict[str, float]:
    v = summary.get(key) or {}
    if not isinstance(v, dict):
        errors.append(InputError(str(path / "summary.json"), None, key, str(v),
                                 "must be an object of numbers"))
        return {}
    out = {}
    for k, x in v.items():
        if x is None:
            continue
        if not isinstance(x, (int, float)) or isinstance(x, bool):
            errors.append(InputError(str(path / "summary.json"), None, f"{key}.{k}", str(x),
                                     "must be a number"))
            continue
        out[k] = float(x)
    return out


def require_plan_files(path: Path, names: tuple[str, ...]) -> None:
    """Raise a :class:`BundleError` naming every file of ``names`` missing from ``path``."""
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "not found"
        raise BundleError([InputError(str(path), None, None, None, f"plan directory {what}")])
    missing = [InputError(str(path / name), None, None, None,
                          "plan file is missing" if not (path / name).exists()
                          else "is not a file")
               for name in names if not (path / name).is_file()]
    if missing:
        raise BundleError(missing)


def _text(file: Path) -> str:
    """A plan file's UTF-8 text; unreadable or non-UTF-8 files raise a located BundleError."""
    try:
        return file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    except PermissionError:
        reason = "cannot be read: permission denied"
    except OSError as exc:
        reason = f"cannot be read: {exc.strerror or exc}"
    raise BundleError([InputError(str(file), None, None, None, reason)])


def read_summary(path: Path) -> dict[str, Any]:
    """``summary.json`` of a plan directory; invalid JSON raises a located :class:`BundleError`."""
    file = path / "summary.json"
    try:
        summary = json.loads(_text(file))
    except json.JSONDecodeError as exc:
        raise BundleError([InputError(str(file), exc.lineno, None, None,
                                      f"not valid JSON: {exc.msg}")]) from exc
    if not isinstance(summary, dict):
        raise BundleError([InputError(str(file), None, None, None,
                                      "must be a JSON object with solver, status, objective, "
                                      "...")])
    return summary


ASSIGNMENT_COLUMNS = ("job_id", "status", "node_id", "start_slot")


def _csv(file: Path) -> pd.DataFrame:
    """A plan CSV file as strings with stripped headers; located errors when unreadable."""
    text = _text(file)
    if not text.strip():
        raise BundleError([InputError(str(file), None, None, None,
                                      "file is empty; it needs at least a header row")])
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise BundleError([InputError(str(file), None, None, None,
                                      f"not valid CSV: {str(exc).strip()}")]) from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def read_assignments_frame(file: Path, errors: list[InputError]) -> pd.DataFrame | None:
    """``assignments.csv`` as strings with stripped headers; None (and errors) when a
    required column is missing."""
    df = _csv(file)
    missing = [c for c in ASSIGNMENT_COLUMNS if c not in df.columns]
    errors.extend(InputError(str(file), 1, c, None, "required column is missing")
                  for c in missing)
    return None if missing else df


def _read_assignments(problem: Problem, plan: Plan, file: Path, errors: list[InputError]) -> None:
    df = read_assignments_frame(file, errors)
    if df is None or errors:
        return
    job_pos = {j.job_id: i for i, j in enumerate(problem.jobs)}
    node_pos = {n.node_id: i for i, n in enumerate(problem.nodes)}
    seen: set[str] = set()
    for k, row in enumerate(df.itertuples(index=False)):
        r = k + 2
        jid, st, nid, ss = (str(getattr(row, c)).strip() for c in ASSIGNMENT_COLUMNS)
        if jid not in job_pos:
            errors.append(InputError(str(file), r, "job_id", jid, "unknown job_id"))
            continue
        if jid in seen:
            errors.append(InputError(str(file), r, "job_id", jid, "job listed twice"))
        seen.add(jid)
        j = job_pos[jid]
        if st == "dropped":
            plan.node[j] = -1
            continue
        if st not in ("scheduled", "pinned"):
            errors.append(InputError(str(file), r, "status", st,
                                     "must be scheduled, dropped or pinned"))
            continue
        if nid not in node_pos:
            errors.append(InputError(str(file), r, "node_id", nid, "unknown node_id"))
            continue
        try:
            s = int(ss)
        except ValueError:
            errors.append(InputError(str(file), r, "start_slot", ss, "must be an integer slot"))
            continue
        plan.node[j] = node_pos[nid]
        plan.start[j] = s
    if plan.status.has_plan:
        for jid in job_pos:
            if jid not in seen:
                errors.append(InputError(str(file), None, "job_id", jid,
                                         "job missing: every job needs a row"))


def _read_series(problem: Problem, plan: Plan, file: Path, errors: list[InputError]) -> Flows:
    N, T = len(problem.nodes), problem.horizon.slots
    df = _csv(file)
    sids = list(problem.scenarios) if len(problem.scenarios) > 1 else [""]
    flows = Flows.zeros(N, T, len(sids))
    if len(sids) == 1:
        _read_series_part(problem, df, file, errors, flows)
        return flows
    if "scenario" not in df.columns:
        errors.append(InputError(str(file), 1, "scenario", None, "required column is missing: "
                                 f"the problem has {len(sids)} scenarios"))
        return flows
    scen = df["scenario"].str.strip()
    for k in np.nonzero(~scen.isin(sids).to_numpy())[0][:10]:
        errors.append(InputError(str(file), int(k) + 2, "scenario", str(scen.iloc[k]),
                                 f"unknown scenario; the problem has {', '.join(sids)}"))
    for s, sid in enumerate(sids):
        part = Flows.zeros(N, T)
        _read_series_part(problem, df[(scen == sid).to_numpy()], file, errors, part,
                          f" in scenario {sid}")
        if s == 0:
            flows.on, flows.load = part.on, part.load
        elif not errors and ((part.on != flows.on).any() or (part.load != flows.load).any()):
            n_bad, t_bad = np.nonzero((part.on != flows.on) | (part.load != flows.load))
            errors.append(InputError(str(file), None, "on", f"{problem.nodes[n_bad[0]].node_id}/"
                                     f"{t_bad[0]}", f"on and load_kw are first-stage decisions: "
                                     f"scenario {sid} differs from scenario {sids[0]}"))
        dst = flows.scenario_flows()[s]
        for name in FLOW_NAMES:
            getattr(dst, name)[:] = getattr(part, name)
    return flows


def _read_series_part(problem: Problem, df: pd.DataFrame, file: Path,
                      errors: list[InputError], flows: Flows, where: str = "") -> None:
    """The rows of ``df`` (one scenario) into ``flows``; rows are named by ``df.index``."""
    N, T = len(problem.nodes), problem.horizon.slots
    cols = {"on": "on", "load_kw": "load", "pv_used_kw": "pv_used", "import_kw": "grid_import",
            "export_kw": "grid_export", "charge_kw": "charge", "discharge_kw": "discharge",
            "soc_kwh": "soc"}
    missing = [c for c in ("node_id", "slot", *cols) if c not in df.columns]
    for c in missing:
        if not any(e.column == c and e.row == 1 for e in errors):
            errors.append(InputError(str(file), 1, c, None, "required column is missing"))
    if missing:
        return
    line = df.index.to_numpy() + 2
    node_pos = {n.node_id: i for i, n in enumerate(problem.nodes)}
    nidx = df["node_id"].str.strip().map(node_pos)
    slot = pd.to_numeric(df["slot"].str.strip(), errors="coerce")
    bad = nidx.isna() | slot.isna() | (slot < 0) | (slot >= T) | (slot != slot.round())
    for k in np.nonzero(bad.to_numpy())[0][:50]:
        c = "node_id" if pd.isna(nidx.iloc[k]) else "slot"
        what = "unknown node_id" if c == "node_id" else f"slot must be 0..{T - 1}"
        errors.append(InputError(str(file), int(line[k]), c, str(df[c].iloc[k]), what))
    ok = ~bad.to_numpy()
    ni = nidx.to_numpy()[ok].astype(np.int64)
    ti = slot.to_numpy()[ok].astype(np.int64)
    seen = np.zeros((N, T), dtype=np.int64)
    np.add.at(seen, (ni, ti), 1)
    if (seen != 1).any():
        n_bad, t_bad = np.nonzero(seen != 1)
        errors.append(InputError(str(file), None, "slot", f"{problem.nodes[n_bad[0]].node_id}/"
                                 f"{t_bad[0]}", f"every (node_id, slot) needs exactly one "
                                 f"row{where}"))
        return
    for c, attr in cols.items():
        v = pd.to_numeric(df[c].str.strip(), errors="coerce").to_numpy()[ok]
        badv = ~np.isfinite(v)
        for k in np.nonzero(badv)[0][:10]:
            errors.append(InputError(str(file), int(line[ok][k]), c,
                                     str(df[c].to_numpy()[ok][k]), "must be a finite number"))
        arr = getattr(flows, attr)
        if attr == "on":
            arr[ni, ti] = v > 0.5
        else:
            arr[ni, ti] = np.nan_to_num(v)


# --------------------------------------------------------------------------- JSON document


_DOC = ConfigDict(extra="forbid", ser_json_inf_nan="strings")
JsonFloat = float | Literal["Infinity", "-Infinity", "NaN"]
"""A number as the JSON document writes it: non-finite numbers are these strings."""


class AssignmentRecord(BaseModel):
    """One row of ``assignments.csv`` (SPEC §4) as a JSON object."""

    model_config = ConfigDict(extra="allow")
    job_id: str
    status: Literal["scheduled", "dropped", "pinned"]
    node_id: str | None = None
    start_slot: int | None = None
    end_slot: int | None = Field(default=None, description="Exclusive end slot.")
    start: datetime | None = None
    end: datetime | None = None


class NodeSeriesRecord(BaseModel):
    """One row of ``node_series.csv`` (SPEC §4) as a JSON object; powers [kW], soc [kWh]."""

    model_config = _DOC
    scenario: str | None = Field(default=None, description="Beyond SPEC v1: the scenario of "
                                 "the flows, given when the problem has several.")
    node_id: str
    slot: int
    time: datetime | None = None
    on: Literal[0, 1]
    load_kw: float
    pv_used_kw: float
    import_kw: float
    export_kw: float
    charge_kw: float
    discharge_kw: float
    soc_kwh: float = Field(description="State of charge at the end of the slot [kWh].")


class PlanSummary(BaseModel):
    """``summary.json`` (SPEC §4); numbers at full precision, non-finite ones as strings."""

    model_config = _DOC
    solver: str
    status: Status
    objective: JsonFloat | None = None
    bound: JsonFloat | None = None
    gap: JsonFloat | None = None
    costs: dict[str, JsonFloat] = Field(default_factory=dict)
    timings: dict[str, JsonFloat] = Field(default_factory=dict)
    jobs: dict[str, int] = Field(default_factory=dict)
    message: str = ""
    info: dict[str, Any] = Field(default_factory=dict)
    expected_cost: JsonFloat | None = None
    cvar: JsonFloat | None = None
    cvar_alpha: JsonFloat | None = None
    cvar_weight: JsonFloat | None = None
    scenario_costs: dict[str, JsonFloat] | None = None


class PlanDocument(BaseModel):
    """A plan as one JSON document: the three plan files of SPEC §4.

    ``assignments``: one record per job in the problem's order; ``node_series``: one
    record per node and slot (empty without a plan); ``summary``: as ``summary.json``
    (``gap`` and ``jobs`` are derived and ignored when read).
    """

    model_config = _DOC
    assignments: list[AssignmentRecord]
    node_series: list[NodeSeriesRecord]
    summary: PlanSummary


def _json_number(v: float | None) -> float | str | None:
    """A float for JSON: non-finite values as ``Infinity`` / ``-Infinity`` / ``NaN``."""
    if v is None:
        return None
    v = float(v)
    if math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def _from_json_number(v: float | str | None) -> float | None:
    if v is None:
        return None
    return float({"Infinity": "inf", "-Infinity": "-inf", "NaN": "nan"}.get(v, v)
                 if isinstance(v, str) else v)


def _info_value(obj: Any) -> Any:
    """``info`` content for the document (like :func:`_jsonable`, infinities kept)."""
    return _jsonable(obj, _json_number)


def _info_from_json(obj: Any) -> Any:
    """``info`` as read: the strings of non-finite numbers become those numbers again."""
    if isinstance(obj, dict):
        return {k: _info_from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_info_from_json(v) for v in obj]
    if obj in ("Infinity", "-Infinity", "NaN"):
        return _from_json_number(obj)
    return obj


def _durations_of(problem: Problem, plan: Plan) -> IntArray:
    dur = np.zeros(len(problem.jobs), dtype=np.int64)
    runs = np.nonzero(plan.node >= 0)[0]
    if runs.size:
        minutes = np.array([problem.jobs[j].duration_min for j in runs])
        speed = np.array([problem.nodes[n].speed for n in plan.node[runs]])
        dur[runs] = slots_needed(minutes, problem.horizon.slot_minutes, speed)
    return dur


def _assignment_records(problem: Problem, plan: Plan) -> list[dict[str, Any]]:
    hz = problem.horizon
    dur = _durations_of(problem, plan)
    out: list[dict[str, Any]] = []
    for j, job in enumerate(problem.jobs):
        n = int(plan.node[j])
        if n < 0:
            out.append({"job_id": job.job_id, "status": "dropped", "node_id": None,
                        "start_slot": None, "end_slot": None, "start": None, "end": None})
            continue
        s = int(plan.start[j])
        e = s + int(dur[j])
        out.append({"job_id": job.job_id, "status": "pinned" if job.pinned else "scheduled",
                    "node_id": plan.node_ids[n], "start_slot": s, "end_slot": e,
                    "start": hz.time_of(s).isoformat(), "end": hz.time_of(e).isoformat()})
    return out


_SERIES_FIELDS = (("load_kw", "load"), ("pv_used_kw", "pv_used"), ("import_kw", "grid_import"),
                  ("export_kw", "grid_export"), ("charge_kw", "charge"),
                  ("discharge_kw", "discharge"), ("soc_kwh", "soc"))
"""(record key, :class:`Flows` attribute) of every power and energy column."""


def _series_records(problem: Problem, plan: Plan) -> list[dict[str, Any]]:
    f = plan.flows
    if f is None:
        return []
    N, T = f.on.shape
    hz = problem.horizon
    times = [hz.time_of(t).isoformat() for t in range(T)] * N
    node_ids = np.repeat(np.array(plan.node_ids, dtype=object), T).tolist()
    slots = np.tile(np.arange(T), N).tolist()
    on = f.on.astype(int).ravel().tolist()
    several = len(problem.scenarios) > 1
    out: list[dict[str, Any]] = []
    for sid, part in zip(problem.scenarios if several else [""], f.scenario_flows(),
                         strict=True):
        cols: list[list[Any]] = []
        for _, attr in _SERIES_FIELDS:
            src = f if attr == "load" else part
            arr = np.asarray(getattr(src, attr), dtype=float).ravel()
            cols.append(arr.tolist() if np.isfinite(arr).all()
                        else [_json_number(x) for x in arr.tolist()])
        keys = ("node_id", "slot", "time", "on", *(k for k, _ in _SERIES_FIELDS))
        lead = {"scenario": sid} if several else {}
        out += [{**lead, **dict(zip(keys, row, strict=True))}
                for row in zip(node_ids, slots, times, on, *cols, strict=True)]
    return out


def _document_summary(problem: Problem, plan: Plan) -> dict[str, Any]:
    """:meth:`Plan.summary` at full precision (timings not rounded), infinities kept."""
    return {
        "solver": plan.solver,
        "status": plan.status.value,
        "objective": _json_number(plan.objective),
        "bound": _json_number(plan.bound),
        "gap": _json_number(plan.gap),
        "costs": ({k: _json_number(plan.costs.get(k, 0.0)) for k in
                   (*COST_TERMS, *(k for k in plan.costs if k not in COST_TERMS))}
                  if plan.costs else {}),
        "timings": {k: _json_number(v) for k, v in plan.timings.items()},
        "jobs": plan.job_counts(problem),
        "message": plan.message,
        "info": _info_value(plan.info),
        **{k: _info_value(v) for k, v in plan.risk.items()},
    }


def _validation_errors(exc: ValidationError, name: str) -> list[InputError]:
    """Pydantic errors of a plan document as located input errors."""
    out = []
    for e in exc.errors():
        loc = list(e["loc"])
        file = name if not loc else f"{name}.{loc[0]}"
        row = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        rest = loc[2:] if row is not None else loc[1:]
        column = ".".join(str(x) for x in rest) or None
        value = e.get("input")
        shown = None if isinstance(value, (dict, list)) else (
            None if value is None and e["type"] == "missing" else json.dumps(value, default=str))
        out.append(InputError(file, row, column, shown,
                              str(e["msg"]).removeprefix("Value error, ")))
    return out


def _plan_from_document(problem: Problem, data: str | bytes | Mapping[str, Any],
                        name: str) -> Plan:
    try:
        doc = (PlanDocument.model_validate_json(data) if isinstance(data, (str, bytes))
               else PlanDocument.model_validate(data))
    except ValidationError as exc:
        raise BundleError(_validation_errors(exc, name)) from None
    s = doc.summary
    plan = Plan.empty(problem, s.solver, s.status, s.message)
    plan.objective = _from_json_number(s.objective)
    plan.bound = _from_json_number(s.bound)
    plan.costs = {k: float(_from_json_number(v) or 0.0) for k, v in s.costs.items()}
    plan.timings = {k: float(_from_json_number(v) or 0.0) for k, v in s.timings.items()}
    plan.info = _info_from_json(s.info)
    plan.risk = {k: _info_from_json(getattr(s, k)) for k in RISK_KEYS
                 if getattr(s, k) is not None}
    errors: list[InputError] = []
    _document_assignments(problem, plan, doc.assignments, f"{name}.assignments", errors)
    if s.status.has_plan:
        plan.flows = _document_series(problem, plan, doc.node_series, f"{name}.node_series",
                                      errors)
    if errors:
        raise BundleError(errors)
    return plan


def _document_assignments(problem: Problem, plan: Plan, records: list[AssignmentRecord],
                          file: str, errors: list[InputError]) -> None:
    job_pos = {j.job_id: i for i, j in enumerate(problem.jobs)}
    node_pos = {n.node_id: i for i, n in enumerate(problem.nodes)}
    seen: set[str] = set()
    for r, rec in enumerate(records):
        if rec.job_id not in job_pos:
            errors.append(InputError(file, r, "job_id", rec.job_id, "unknown job_id"))
            continue
        if rec.job_id in seen:
            errors.append(InputError(file, r, "job_id", rec.job_id, "job listed twice"))
        seen.add(rec.job_id)
        j = job_pos[rec.job_id]
        if rec.status == "dropped":
            plan.node[j] = -1
            continue
        if rec.node_id is None or rec.node_id not in node_pos:
            errors.append(InputError(file, r, "node_id", rec.node_id, "unknown node_id"))
            continue
        if rec.start_slot is None:
            errors.append(InputError(file, r, "start_slot", None,
                                     "required for a scheduled or pinned job"))
            continue
        plan.node[j] = node_pos[rec.node_id]
        plan.start[j] = rec.start_slot
    if plan.status.has_plan:
        for jid in job_pos:
            if jid not in seen:
                errors.append(InputError(file, None, "job_id", jid,
                                         "job missing: every job needs a record"))


def _document_series(problem: Problem, plan: Plan, records: list[NodeSeriesRecord], file: str,
                     errors: list[InputError]) -> Flows:
    N, T = len(problem.nodes), problem.horizon.slots
    sids = list(problem.scenarios) if len(problem.scenarios) > 1 else [None]
    spos = {sid: s for s, sid in enumerate(sids)}
    flows = Flows.zeros(N, T, len(sids))
    parts = flows.scenario_flows()
    node_pos = {n.node_id: i for i, n in enumerate(problem.nodes)}
    seen = np.zeros((len(sids), N, T), dtype=np.int64)
    for r, rec in enumerate(records):
        s = spos.get(rec.scenario)
        if s is None:
            errors.append(InputError(file, r, "scenario", rec.scenario,
                                     "unknown scenario" if len(sids) > 1 else
                                     "the problem has no scenarios"))
            continue
        n = node_pos.get(rec.node_id)
        if n is None:
            errors.append(InputError(file, r, "node_id", rec.node_id, "unknown node_id"))
            continue
        if not 0 <= rec.slot < T:
            errors.append(InputError(file, r, "slot", str(rec.slot), f"slot must be 0..{T - 1}"))
            continue
        t = rec.slot
        seen[s, n, t] += 1
        flows.on[n, t] = rec.on == 1
        for key, attr in _SERIES_FIELDS:
            getattr(flows if attr == "load" else parts[s], attr)[n, t] = getattr(rec, key)
        if len(errors) > MAX_ERRORS:
            break
    if not errors and (seen != 1).any():
        _, n_bad, t_bad = np.nonzero(seen != 1)
        errors.append(InputError(file, None, "slot", f"{problem.nodes[n_bad[0]].node_id}/"
                                 f"{t_bad[0]}", "every (node_id, slot) needs exactly one record"))
    return flows
