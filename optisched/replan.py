"""Real-time re-planning: a :class:`Replanner` holds the current plan and updates it all day.

A scheduler calls :meth:`Replanner.update` whenever something changes; each call
returns the new :class:`~optisched.plan.Plan` and

1. **rolls the horizon** to ``now``. The new problem starts at the slot that
   contains ``now`` (a ``now`` off the slot grid means "during that slot": the
   slot is re-planned from its start, jobs planned to start in it count as
   started, and arrivals are released at ``now``, i.e. from the next slot). The
   slots before it are *executed*: they go to the ledger. The horizon ends where
   the data ends: new data (lists from ``now``, or values keyed by time) may
   reach past the current end and the horizon extends; with
   ``Replanner(problem, window_slots=T)`` it always covers ``T`` slots from
   ``now``. A series without data for a new slot is an error naming it, unless a
   fill policy is chosen (``fill="repeat_day"`` or ``"last"``);
2. carries the **state** over exactly: each node's on/off state before ``now``
   and battery state of charge come from the plan in force (or from a measured
   ``soc``); a job running at ``now`` is pinned to its node and start and never
   moves (restarted from scratch only when its node goes out); jobs that ended,
   finished or were cancelled leave the problem;
3. applies arrivals, forecasts (PV, prices, headroom, availability), outages
   and returns. An arrival that cannot be placed (no eligible node, window too
   short, no capacity, ...) and must run is **rejected** with its reason and
   left out of the problem; the rest of the plan is returned intact;
4. **warm-starts** the greedy solver: jobs not yet started keep their place,
   checked only on the nodes whose data changed; the others are inserted by
   marginal cost; only the nodes whose data or load changed are dispatched
   again; then a short local search (``time_limit``, ``iterations``);
5. records the executed past (:attr:`Replanner.ledger`,
   :attr:`Replanner.realized_cost`) and what changed per job
   (:attr:`Replanner.last_changes`). Every returned plan passes
   :func:`optisched.evaluate.evaluate` (checked when ``verify``).

``docs/replan.md`` describes the re-planner, the ledger, the change set and the
file formats. ``optisched replan PLAN_DIR BUNDLE --events events.csv --out DIR`` applies an
events CSV (format: ``docs/events.md``, :func:`optisched.events.read_events`) and
writes the final plan, bundle, ledger and changes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.domain import Horizon, Job, Node, Problem, Scenario
from optisched.evaluate import cost_terms, evaluate, objective_of
from optisched.events import EVENT_KINDS, Events, check_event_times, read_events
from optisched.index import Index, compile_index, explain_job
from optisched.ledger import ChangeSet, JobChange, Ledger, job_terms, runs_by_slot
from optisched.plan import Flows, Plan, Status
from optisched.precheck import precheck
from optisched.rolling import (
    FILL_POLICIES,
    SERIES_KINDS,
    SeriesInput,
    SeriesStore,
    append_jobs,
    aware,
    carry_flows,
    drop_jobs,
    parse_series,
    roll_index,
    with_node_rows,
)
from optisched.solvers import solve
from optisched.solvers.base import SolveOptions
from optisched.solvers.greedy import GreedySearch, job_order, run_greedy
from optisched.solvers.greedy.construct import find_options
from optisched.solvers.greedy.scan import default_candidates
from optisched.solvers.options import GreedyOptions

__all__ = ["EVENT_KINDS", "ChangeSet", "Events", "JobChange", "ReplanError", "Replanner",
           "check_event_times", "read_events"]

log = logging.getLogger(__name__)

REDISPATCH = ("changed", "all")
"""Dispatch after a roll: only nodes whose data, load or state changed, or every node."""

_ON_GRID = 1e-6
"""Tolerance of "``now`` is on the slot grid" [slots]."""
_CARRY_NEW_SLOTS = 4
"""Most slots appended by one roll (window mode, an extension) for which a battery node
keeps its flows (its new slots filled by a rule, :func:`optisched.rolling.carry_flows`);
more, and every node is dispatched again. Measured: with one to four new slots per roll
the carried dispatch stays within 0.06 % of the exact one (``docs/replan.md``)."""
_DEFAULTS = {"pv": 0.0, "available": 1.0}
"""Value of a node series before it was first given (headroom: the node's ``grid_kw``)."""
_OWNER = {"price": "tariff", "export_price": "tariff", "carbon": "tariff",
          "feeder_headroom": "feeder"}
"""What a series kind belongs to (default: a node)."""
_UPDATE_ARGS = {"pv": "pv", "headroom": "headroom", "available": "available",
                "price": "prices", "export_price": "export_prices", "carbon": "carbon",
                "feeder_headroom": "feeder_headroom"}
"""Series kind -> :meth:`Replanner.update` argument."""


class ReplanError(ValueError):
    """No plan exists that keeps every running and pinned job where it is.

    The re-planner is left as it was before the update (the plan in force stays).
    """


@dataclass(frozen=True)
class _Change:
    """What one :meth:`Replanner.update` changes (its arguments, normalized and checked).

    Attributes
    ----------
    now : datetime
        When the update happens (timezone-aware).
    a_now : int
        Absolute slot containing ``now`` (slots since the first problem's start).
    on_grid : bool
        ``now`` is the start of slot ``a_now``.
    end : int
        Absolute end slot of the new horizon.
    new_jobs : list of Job
        Jobs that arrived (release set to ``now`` when not given).
    cancelled, finished : set of str
        Job ids that leave the problem.
    soc : dict node_id -> float
        Measured battery state of charge [kWh].
    data : dict kind -> dict id -> (slots, values)
        New series values by absolute slot (:func:`optisched.rolling.parse_series`).
    outages : dict node_id -> datetime or None
        Nodes out from ``now`` until the given time (None: until they return).
    returns : set of str
        Nodes back in service from ``now``.
    """

    now: datetime
    a_now: int
    on_grid: bool
    end: int
    new_jobs: list[Job]
    cancelled: set[str]
    finished: set[str]
    soc: dict[str, float]
    data: dict[str, dict[str, tuple[IntArray, FloatArray]]]
    outages: dict[str, datetime | None]
    returns: set[str]

    @property
    def availability_changed(self) -> bool:
        """True when availability may differ from the plan's (outages, returns, data)."""
        return bool(self.outages or self.returns or self.data.get("available"))


@dataclass
class _Roll:
    """The rolled problem before solving, and what the solve and the records need.

    Attributes
    ----------
    problem : Problem
        The new problem (unvalidated parts, each checked when it was made).
    k : int
        Slots of the previous horizon executed by this update.
    hints : dict job_id -> (node_id, start slot)
        Placements of jobs not yet started, in the new horizon's slots.
    new_ids : set of str
        Ids of the arrivals in the problem.
    rejected : dict job_id -> str
        Jobs taken out, with the reason.
    events : list of tuple
        ``(job, status, node position, start, end, reason)`` of the jobs that left
        (positions and slots of the previous plan; ``end`` exclusive).
    restarted : dict job_id -> str
        Running jobs restarted from scratch, with the reason.
    started : set of str
        Jobs that began since the last update.
    """

    problem: Problem
    k: int
    hints: dict[str, tuple[str, int]]
    new_ids: set[str]
    rejected: dict[str, str] = field(default_factory=dict)
    events: list[tuple[Job, str, int, int, int, str]] = field(default_factory=list)
    restarted: dict[str, str] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)


# ---------------------------------------------------------------------- rolling a problem
# The pieces of Replanner._roll, one per part of the new problem; each takes what it reads.


def _carried_nodes(problem: Problem, flows: Flows | None, soc: Mapping[str, float],
                   k: int) -> list[Node]:
    """Nodes with their state before slot ``k``: on/off and battery state of charge.

    ``initially_on`` and ``soc_init`` come from ``flows`` (the plan in force) at slot
    ``k − 1``; a measured ``soc`` [kWh] overrides the plan's; the state of charge is
    clipped to [soc_min, soc_max] (fractions of ``battery_kwh``).
    """
    nodes = []
    for i, node in enumerate(problem.nodes):
        upd: dict[str, Any] = {}
        if k > 0 and flows is not None:
            upd["initially_on"] = bool(flows.on[i, k - 1])
        E = node.battery_kwh
        if E > 0:
            kwh = None
            if node.node_id in soc:
                kwh = float(soc[node.node_id])
            elif k > 0 and flows is not None:
                kwh = float(flows.soc[i, k - 1])
            if kwh is not None:
                upd["soc_init"] = min(max(kwh / E, node.soc_min), node.soc_max)
        nodes.append(node.model_copy(update=upd) if upd else node)
    return nodes


def _carried_jobs(problem: Problem, plan: Plan, index: Index, change: _Change, k: int,
                  store: SeriesStore, roll: _Roll) -> list[Job]:
    """The current jobs that stay, running ones pinned; the placements of the others.

    Jobs cancelled, finished or ended by slot ``k`` leave (``roll.events``); a job
    that has begun (its start before ``k``, or at ``k`` when ``now`` lies inside
    slot ``k``) and not ended is pinned to its node and start, or restarted from
    scratch (unpinned, release ``now``; ``roll.restarted``) when its node is not
    available for its remaining slots; a job not yet started stays free and its
    placement goes to ``roll.hints``.

    Returns
    -------
    list of Job
        In the current order.
    """
    hz = problem.horizon
    a_start = change.a_now
    begun = k if change.on_grid else k + 1
    node_ids = index.node_ids
    jobs: list[Job] = []
    placed = np.nonzero(plan.node >= 0)[0]
    dur = np.zeros(len(problem.jobs), dtype=np.int64)
    dur[placed] = index.duration(placed, plan.node[placed])
    for j, job in enumerate(problem.jobs):
        n = int(plan.node[j])
        s, d = int(plan.start[j]), int(dur[j])
        ran = n >= 0 and s < k
        if job.job_id in change.cancelled or job.job_id in change.finished:
            status = "cancelled" if job.job_id in change.cancelled else "finished"
            roll.events.append((job, status, n if ran else -1, s, min(s + d, k), ""))
            continue
        if n < 0:
            jobs.append(job)
            continue
        nid = node_ids[n]
        if s + d <= k:
            roll.events.append((job, "done", n, s, s + d, ""))
            if not job.pinned:
                roll.started.add(job.job_id)
            continue
        if s < begun:
            left = s + d - k
            av = store.availability(nid, a_start, a_start + left)
            if av is not None and not av.all():
                t_out = store.time_of(a_start + int(np.argmin(av)))
                why = f"its node {nid} is out at {t_out.isoformat()}: restarted from scratch"
                roll.events.append((job, "restarted", n if ran else -1, s, k, why))
                roll.restarted[job.job_id] = why
                jobs.append(job.model_copy(update={"pinned_node": None, "pinned_start": None,
                                                   "release": change.now}))
                continue
            if job.pinned_node == nid:
                jobs.append(job)  # pinned by an earlier update (or by the caller)
                continue
            roll.started.add(job.job_id)
            jobs.append(job.model_copy(update={"pinned_node": nid,
                                               "pinned_start": hz.time_of(s)}))
        else:
            jobs.append(job)
            roll.hints[job.job_id] = (nid, s - k)
    return jobs


def _job_issues(scenario: Scenario, nodes: list[Node], job: Job) -> list[str]:
    """Cross-reference problems of one job, as :meth:`Problem.issues` names them."""
    probe = Problem.model_construct(scenario=scenario, nodes=nodes, jobs=[job], node_series={},
                                    tariffs={}, feeders={}, latency_ms={}, regions={})
    return [f"{i.column}={i.value!r}: {i.message}" for i in probe.issues()
            if i.table == "jobs.csv"]


def _accept_arrivals(jobs: list[Job], new_jobs: list[Job], scenario: Scenario,
                     nodes: list[Node], known: set[str], roll: _Roll) -> list[Job]:
    """``jobs`` followed by the arrivals that can enter the problem.

    An arrival whose ``job_id`` is already used, or that refers to unknown data
    (a pinned node that does not exist, more of a resource than any node has), is
    rejected (``roll.rejected``) instead.
    """
    out = list(jobs)
    seen = set(known)
    for nj in new_jobs:
        if nj.job_id in seen:
            roll.rejected[nj.job_id] = f"job_id {nj.job_id!r} is already used"
            continue
        bad = _job_issues(scenario, nodes, nj)
        if bad:
            roll.rejected[nj.job_id] = "; ".join(bad)
            continue
        seen.add(nj.job_id)
        roll.new_ids.add(nj.job_id)
        out.append(nj)
    return out


def _index_changed_rows(old: Index, new: Index, k: int
                        ) -> tuple[BoolArray, BoolArray, BoolArray, BoolArray, int]:
    """Nodes whose data changed over the slots both horizons cover.

    Returns
    -------
    available : (N,) bool
        Availability changed.
    power : (N,) bool
        PV or headroom changed.
    feeder : (N,) bool
        The node is on a feeder whose headroom changed.
    prices : (N,) bool
        Import price, export price or import cost changed.
    overlap : int
        Shared slots ``T_ov`` (new slots ``0..T_ov−1`` are old slots ``k..k+T_ov−1``).
    """
    T_ov = max(0, min(new.T, old.T - k))

    def diff(name: str) -> BoolArray:
        a, b = getattr(old, name)[:, k:k + T_ov], getattr(new, name)[:, :T_ov]
        return ~((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1)

    feeder = np.zeros(new.N, dtype=bool)
    if new.feeder_ids:
        fa = old.feeder_headroom[:, k:k + T_ov]
        fb = new.feeder_headroom[:, :T_ov]
        fchg = ~((fa == fb) | (np.isinf(fa) & np.isinf(fb))).all(axis=1)
        has = new.feeder_of >= 0
        feeder = has & fchg[np.maximum(new.feeder_of, 0)]
    prices = diff("price") | diff("export_price") | diff("import_cost")
    return diff("available"), diff("pv") | diff("headroom"), feeder, prices, T_ov


def _feeder_closure(index: Index, rows: BoolArray) -> BoolArray:
    """``rows`` with every node of a feeder (with a finite headroom) that one of them is on."""
    if not index.feeder_ids or not rows.any():
        return rows
    finite = np.isfinite(index.feeder_headroom).any(axis=1)
    f = index.feeder_of
    hit = np.zeros(len(index.feeder_ids), dtype=bool)
    sel = rows & (f >= 0)
    hit[f[sel]] = True
    hit &= finite
    return np.asarray(rows | ((f >= 0) & hit[np.maximum(f, 0)]))


class Replanner:
    """Holds the current plan of a problem and re-plans it as things change, all day.

    Parameters
    ----------
    problem : Problem
        The problem at the start; its start is the *origin* of absolute slots.
    solver : str
        Registered solver; ``greedy`` (default) warm-starts from the current plan,
        any other solver re-solves from scratch (greedy takes over when it fails).
    seed : int
        Random seed of the local search.
    time_limit : float
        Local-search budget of each update [s] (0 = repair only).
    plan : Plan, optional
        The current plan (e.g. read from a plan directory); solved when omitted or
        when it has no flows.
    iterations : int, optional
        Cap on local-search moves per update (makes updates reproducible).
    window_slots : int, optional
        Rolling window: every update plans the ``window_slots`` slots from the slot
        containing ``now`` (from the first update on; the first plan covers
        ``problem``'s horizon). Default: the horizon ends where the data ends.
    fill : str or mapping kind -> str, optional
        How to fill slots that are in the new horizon but have no data yet:
        ``"repeat_day"`` (the value 24 h earlier) or ``"last"`` (the last known
        value), for every series kind or per kind (``pv``, ``headroom``,
        ``available``, ``price``, ``export_price``, ``carbon``,
        ``feeder_headroom``). Default: such a slot is an error naming the series
        and the slot.
    redispatch : {"changed", "all"}
        After a roll, dispatch again only the nodes whose data, load or state
        changed (``changed``, default: a battery node kept carries the remaining
        flows of the plan in force, its final state of charge shifted to the new
        terminal target; nodes with a demand charge or a negative price are always
        dispatched again), or every node (``all``: exact dispatch, slower).
    refresh : int
        With ``redispatch="changed"``: the carried nodes dispatched exactly again at
        each roll, the longest-carried first: a guard that bounds how far carried
        dispatch could drift from the exact one (default 0: measured without drift,
        ``docs/replan.md``).
    verify : bool
        Check every new plan with :func:`optisched.evaluate.evaluate` (default);
        a plan that fails is re-made with a full dispatch.

    Attributes
    ----------
    problem : Problem
        The current (rolled) problem.
    plan : Plan
        The current plan for it.
    offset : int
        Absolute slot of the current horizon's start (slots rolled since ``problem``).
    last_changes : ChangeSet
        What the last update (or the first plan) did to each job.
    """

    def __init__(self, problem: Problem, solver: str = "greedy", seed: int = 0,
                 time_limit: float = 0.05, plan: Plan | None = None,
                 iterations: int | None = None, *, window_slots: int | None = None,
                 fill: str | Mapping[str, str] | None = None, redispatch: str = "changed",
                 refresh: int = 0, verify: bool = True) -> None:
        if window_slots is not None and (int(window_slots) != window_slots or window_slots < 1):
            raise ValueError(f"window_slots must be a positive whole number, got {window_slots!r}")
        if redispatch not in REDISPATCH:
            raise ValueError(f"redispatch must be one of {', '.join(REDISPATCH)}, "
                             f"got {redispatch!r}")
        self.solver = solver
        self.seed = seed
        self.time_limit = time_limit
        self.iterations = iterations
        self.window_slots = None if window_slots is None else int(window_slots)
        self.fill = _fill_policy(fill)
        self.redispatch = redispatch
        self.refresh = max(0, int(refresh))
        self.verify = verify
        self._age = np.zeros(len(problem.nodes), dtype=np.int64)
        """Rolls each node's dispatch has been carried since it was last dispatched exactly."""
        self.problem = problem
        self._offset = 0
        self._store = SeriesStore.from_problem(problem)
        self._first = problem
        self._ledger = Ledger([n.node_id for n in problem.nodes],
                              np.array([n.demand_charge_per_kw for n in problem.nodes], float))
        self._runs: list[tuple[Job, int, int, int]] = []
        """Job runs of the executed past: (job as given, node position, absolute start, slots)."""
        self._dropped: list[Job] = []
        """Droppable jobs whose window closed while dropped (their penalty is realized)."""
        self.last_changes = ChangeSet()
        self._index: Index | None = None
        self.timings: dict[str, float] = {}
        """Seconds of the last update by phase (``roll``, ``index``, ``solve``, ``verify``,
        ``record``, ``total``)."""
        if plan is not None and plan.status.has_plan and plan.flows is not None:
            self.plan = plan
        else:
            roll = _Roll(problem=problem, k=0, hints={}, new_ids=set())
            index = compile_index(problem)
            first, index = self._pre_reject(problem, index, roll,
                                            {j.job_id for j in problem.jobs})
            self.plan, self._index = self._solve(first, index, roll, None)
            self.problem = roll.problem
            self.last_changes = self._changes(problem, None, None, roll, self.plan)
            for jid, why in roll.rejected.items():
                self._ledger.record_job(problem.horizon.start, jid, "rejected", None, None,
                                        None, reason=why)

    @property
    def offset(self) -> int:
        """Absolute slot of the current horizon's start (slots rolled since the first problem)."""
        return self._offset

    @offset.setter
    def offset(self, value: int) -> None:
        """Declare that :attr:`problem` starts ``value`` slots after the origin.

        For a re-planner rebuilt from a rolled problem and its plan (e.g. a saved
        session): the origin moves back by ``value`` slots; the slots before the
        current start have no data (and no ledger).
        """
        value = int(value)
        if value != self._offset:
            self._store.rebase(value - self._offset)
            self._offset = value

    # ------------------------------------------------------------------ what it recorded
    @property
    def ledger(self) -> pd.DataFrame:
        """The executed past, one row per slot and node (:data:`optisched.ledger.SLOT_COLUMNS`):
        time, node, on/off, flows of the plan in force, measured state of charge, the
        data it was priced on, the cost terms of the slot and the jobs running."""
        return self._ledger.slots

    @property
    def job_ledger(self) -> pd.DataFrame:
        """Jobs that left the problem (:data:`optisched.ledger.JOB_COLUMNS`): done, finished,
        cancelled, restarted (the part run), dropped (window closed), rejected; with the job
        cost (latency, tardiness, drop penalty)."""
        return self._ledger.jobs

    @property
    def realized_costs(self) -> dict[str, float]:
        """Cost of the executed past by SPEC §3 term [money] (demand on the peaks so far)."""
        return self._ledger.costs()

    @property
    def realized_cost(self) -> float:
        """Cost of the executed past [money]: :attr:`ledger` and :attr:`job_ledger`, plus
        the demand charge on each node's peak import so far."""
        return self._ledger.cost

    @property
    def remaining_cost(self) -> float:
        """What the current plan adds to :attr:`realized_cost` [money].

        The plan's objective, except that its demand charge counts only the peak
        import above the peak already realized; ``realized_cost + remaining_cost``
        is the cost of the whole executed and planned horizon (:meth:`executed`).
        """
        obj = float(self.plan.objective or 0.0)
        if self.plan.flows is None:
            return obj
        index = self._index if self._index is not None else compile_index(self.problem)
        return obj + self._ledger.demand_adjustment(index, self.plan.flows)

    def write_ledger(self, path: str | Path) -> tuple[Path, Path]:
        """Write :attr:`ledger` to ``path`` (CSV) and :attr:`job_ledger` beside it.

        The job ledger goes to ``<stem>_jobs.csv``; both are written atomically
        (:func:`optisched.atomic.write_file_atomically`).

        Returns
        -------
        (Path, Path)
            The two files.
        """
        return self._ledger.write(path)

    def executed(self) -> tuple[Problem, Plan]:
        """The whole horizon so far as one problem and plan: the executed past and the plan.

        The problem runs from the first problem's start to the current end with the
        data each slot had when it was planned or executed, the first problem's
        node state, every job that ran (pinned where it ran; a run cut short by a
        cancel, finish or restart appears with the slots it ran, as ``job_id#n``
        after its first run), the jobs dropped for good and the current jobs. The
        plan is the ledger's flows followed by the current plan's. Its cost by
        :func:`~optisched.evaluate.evaluate` is ``realized_cost + remaining_cost``.
        (Measured states of charge make the battery dynamics jump where they were
        measured; the evaluator reports those slots.)
        """
        st = self._store
        end = self.offset + self.problem.horizon.slots
        if self._ledger.executed_slots != self.offset:
            raise ValueError("the executed past is not known: this re-planner was rebuilt from "
                             "a rolled problem (its first slots have no ledger)")
        first = self._first
        hz0 = first.horizon
        series, tariffs, feeders = st.problem_parts(first, 0, end)
        node_pos = {n.node_id: i for i, n in enumerate(first.nodes)}
        jobs: list[Job] = []
        node: list[int] = []
        start: list[int] = []
        used: dict[str, int] = {}
        for job, n, a, slots in self._runs:
            c = used.get(job.job_id, 0)
            used[job.job_id] = c + 1
            nid = first.nodes[n].node_id
            spd = first.nodes[n].speed
            upd: dict[str, Any] = {"pinned_node": nid, "pinned_start": st.time_of(a),
                                   "duration_min": slots * hz0.slot_minutes * spd}
            if c:
                upd["job_id"] = f"{job.job_id}#{c}"
            jobs.append(job.model_copy(update=upd))
            node.append(n)
            start.append(a)
        for job in self._dropped:
            jobs.append(job)
            node.append(-1)
            start.append(0)
        plan = self.plan
        for j, job in enumerate(self.problem.jobs):
            c = used.get(job.job_id, 0)
            if c:
                job = job.model_copy(update={"job_id": f"{job.job_id}#{c}"})
            jobs.append(job)
            n = int(plan.node[j])
            node.append(node_pos[plan.node_ids[n]] if n >= 0 else -1)
            start.append(int(plan.start[j]) + self.offset if n >= 0 else 0)
        scenario = first.scenario.model_copy(update={"horizon": hz0.model_copy(
            update={"slots": end})})
        problem = Problem(scenario=scenario, nodes=first.nodes, jobs=jobs, node_series=series,
                          tariffs=tariffs, feeders=feeders, latency_ms=first.latency_ms,
                          regions=first.regions)
        parts = [*self._ledger.flows]
        if plan.flows is not None:
            parts.append(plan.flows)
        flows = Flows(**{name: np.concatenate([getattr(p, name) for p in parts], axis=1)
                         for name in ("on", "load", "pv_used", "grid_import", "grid_export",
                                      "charge", "discharge", "soc")})
        whole = Plan(solver=plan.solver, status=plan.status, job_ids=[j.job_id for j in jobs],
                     node_ids=[n.node_id for n in first.nodes],
                     node=np.array(node, dtype=np.int64), start=np.array(start, dtype=np.int64),
                     flows=flows)
        index = compile_index(problem)
        whole.costs = cost_terms(index, whole)
        whole.objective = objective_of(whole.costs)
        return problem, whole

    # ------------------------------------------------------------------ update
    def update(
        self,
        now: datetime | pd.Timestamp | str,
        *,
        new_jobs: Iterable[Job] = (),
        cancelled: Iterable[str] = (),
        finished: Iterable[str] = (),
        soc: Mapping[str, float] | None = None,
        pv: SeriesInput | None = None,
        prices: SeriesInput | None = None,
        headroom: SeriesInput | None = None,
        outages: Mapping[str, datetime | None] | Iterable[str] = (),
        returns: Iterable[str] = (),
        available: SeriesInput | None = None,
        export_prices: SeriesInput | None = None,
        carbon: SeriesInput | None = None,
        feeder_headroom: SeriesInput | None = None,
    ) -> Plan:
        """Roll the horizon to ``now``, apply what changed and return the new plan.

        Parameters
        ----------
        now : datetime, pandas Timestamp or ISO string
            Timezone-aware; at or after the current horizon's start, within it or at
            its end when new data extends it. Off the slot grid it means "during the
            slot that contains it" (see the module docstring).
        new_jobs : iterable of Job
            Jobs that arrived (release defaults to ``now``).
        cancelled, finished : iterable of str
            Job ids to remove (a finished job frees its node from ``now`` on).
        soc : mapping node_id -> float, optional
            Measured battery state of charge [kWh] at ``now``, clipped to
            [soc_min, soc_max].
        pv, headroom, available : mapping node_id -> series, or DataFrame, optional
            New PV forecast [kW], import headroom [kW, inf = unlimited] and
            availability (true/false) per node.
        prices, export_prices, carbon : mapping tariff -> series, or DataFrame, optional
            New import and export prices [money/kWh] and carbon intensity [g/kWh].
        feeder_headroom : mapping feeder -> series, or DataFrame, optional
            New feeder headroom [kW, inf = none].
        outages : mapping node_id -> datetime or None, or iterable of node_id
            Nodes out from ``now`` until the given time (None or a plain id: until
            they return).
        returns : iterable of node_id
            Nodes back in service from ``now`` (undo an outage).

        A series is a list of values for the slots from ``now`` on (at least to the
        current end; more extend the horizon), or values keyed by time: a pandas
        Series with a timezone-aware DatetimeIndex, or a mapping datetime -> value
        (times on the slot grid; times before ``now`` are ignored). A DataFrame has
        one column per id. None / NaN keeps the current value. The same values as
        a list or keyed by time give the same plan.

        Returns
        -------
        Plan
            The new plan (also :attr:`plan`); :attr:`problem` is the new problem,
            :attr:`last_changes` what happened to each job, :attr:`ledger` the
            executed slots.

        Raises
        ------
        ValueError
            ``now`` naive, before the horizon or past its end (without data reaching
            further), unknown ids, too few values, values out of range, or a series
            without data for a slot of the new horizon (no ``fill`` policy). The
            re-planner is unchanged.
        ReplanError
            No plan keeps every running and pinned job where it is (e.g. the headroom
            of a node fell below what its running jobs draw). The re-planner is
            unchanged.
        """
        t0 = time.perf_counter()
        change, store = self._prepare(
            now, new_jobs=new_jobs, cancelled=cancelled, finished=finished, soc=soc,
            series={"pv": pv, "headroom": headroom, "available": available, "price": prices,
                    "export_price": export_prices, "carbon": carbon,
                    "feeder_headroom": feeder_headroom},
            outages=outages, returns=returns)
        roll = self._roll(change, store)
        t1 = time.perf_counter()
        old_index = self._current_index()
        index = self._next_index(roll, change, old_index)
        problem, index = self._pre_reject(roll.problem, index, roll, roll.new_ids)
        roll.problem = problem
        t2 = time.perf_counter()
        plan, index = self._solve(problem, index, roll, (old_index, change))
        problem = roll.problem
        t3 = time.perf_counter()
        changes = self._changes(self.problem, self.plan, change, roll, plan)
        self._commit(change, store, roll, old_index)
        carried = np.isin(np.array(index.node_ids), plan.info.get("carried_nodes", []))
        rolled = roll.k > 0 or problem.horizon.slots != old_index.T
        age = self._age if self._age.size == index.N else np.zeros(index.N, dtype=np.int64)
        self._age = np.where(carried, age + int(rolled), 0)
        self.problem, self.plan, self._index = problem, plan, index
        self._offset = change.a_now
        self.last_changes = changes
        t4 = time.perf_counter()
        self.timings = {"roll": t1 - t0, "index": t2 - t1, "solve": t3 - t2 - plan.timings.get(
            "verify", 0.0), "verify": plan.timings.get("verify", 0.0), "record": t4 - t3,
            "total": t4 - t0}
        plan.timings["total"] = t4 - t0
        return plan

    # ------------------------------------------------------------------ preparing
    def _current_index(self) -> Index:
        """The index of :attr:`problem` (compiled when the plan came from outside)."""
        if self._index is None:
            self._index = compile_index(self.problem)
        return self._index

    def _prepare(self, now: Any, *, new_jobs: Iterable[Job], cancelled: Iterable[str],
                 finished: Iterable[str], soc: Mapping[str, float] | None,
                 series: Mapping[str, SeriesInput | None],
                 outages: Mapping[str, datetime | None] | Iterable[str],
                 returns: Iterable[str]) -> tuple[_Change, SeriesStore]:
        """Check the arguments and write the new data into a copy of the store.

        Returns
        -------
        (_Change, SeriesStore)
            The normalized change and the store with its data (the re-planner's own
            store is untouched until the update succeeds).

        Raises
        ------
        ValueError
            As :meth:`update`.
        """
        now = aware(now, "now")
        old = self.problem
        st = self._store.copy()
        pos = st.position(now)
        on_grid = abs(pos - round(pos)) <= _ON_GRID
        a_now = round(pos) if on_grid else math.floor(pos)
        a0 = self.offset
        a1 = a0 + old.horizon.slots
        step = f"{old.horizon.slot_minutes}-minute slots"
        if a_now < a0:
            raise ValueError(f"now={now.isoformat()} lies before the current horizon start "
                             f"{old.horizon.start.isoformat()}: the past cannot be re-planned")
        if a_now > a1:
            raise ValueError(f"now={now.isoformat()} lies past the horizon end "
                             f"{old.horizon.end.isoformat()}: no plan covers the slots between "
                             "(update at least once before the horizon ends)")
        node_ids = [n.node_id for n in old.nodes]
        nset = set(node_ids)
        outs = (dict(outages) if isinstance(outages, Mapping) else dict.fromkeys(outages, None))
        rets = set(returns)
        soc_d = {str(k): float(v) for k, v in (soc or {}).items()}
        for nid in [*soc_d, *outs, *rets]:
            if nid not in nset:
                raise ValueError(f"unknown node_id {nid!r}")
        job_ids = {j.job_id for j in old.jobs}
        cset, fset = set(cancelled), set(finished)
        for jid in cset | fset:
            if jid not in job_ids:
                raise ValueError(f"unknown job_id {jid!r}")
        for nid, v in soc_d.items():
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"soc for {nid!r}: {v!r} must be a finite number >= 0 [kWh]")
        known = {"pv": nset, "headroom": nset, "available": nset,
                 "price": set(old.tariffs), "export_price": set(old.tariffs),
                 "carbon": set(old.tariffs), "feeder_headroom": set(old.feeders)}
        data: dict[str, dict[str, tuple[IntArray, FloatArray]]] = {}
        for kind in SERIES_KINDS:
            if kind in ("price", "export_price", "carbon") and series.get(kind) is not None \
                    and not old.tariffs:
                raise ValueError(f"{_UPDATE_ARGS[kind]}: the problem has no tariffs")
            parsed = parse_series(kind, series.get(kind), known[kind], st, a_now, a1)
            if parsed:
                data[kind] = parsed
        if self.window_slots is not None:
            end = a_now + self.window_slots
        else:
            ends = [int(s.max()) + 1 for per in data.values() for s, _ in per.values() if s.size]
            end = max([a1, *ends])
        if a_now >= end:
            raise ValueError(f"now={now.isoformat()} lies at the horizon end "
                             f"{old.horizon.end.isoformat()}: pass data reaching past it (the "
                             "horizon extends) or use Replanner(window_slots=...)")
        grid = {n.node_id: n.grid_kw for n in old.nodes}
        for kind, per in data.items():
            for key, (slots, vals) in per.items():
                if (kind, key) not in st.data:
                    default = grid[key] if kind == "headroom" else _DEFAULTS[kind]
                    st.start_series(kind, key, default, a1)
                st.write(kind, key, slots, vals)
        st.ensure(end)
        if self.fill:
            st.fill(a_now, end, self.fill)
        missing = st.missing(a_now, end)
        if missing:
            lines = [f"{kind} of {_OWNER.get(kind, 'node')} {key!r} from "
                     f"{st.time_of(a).isoformat()} (slot {a - a_now} of the new "
                     f"horizon, {n} slot{'s' if n != 1 else ''} without data)"
                     for kind, key, a, n in missing[:12]]
            more = f"; ... and {len(missing) - 12} more" if len(missing) > 12 else ""
            raise ValueError(
                f"no data for the new horizon [{st.time_of(a_now).isoformat()}, "
                f"{st.time_of(end).isoformat()}) ({step}): " + "; ".join(lines) + more
                + ". Pass it to update(" + ", ".join(sorted({_UPDATE_ARGS[m[0]] + "=..."
                                                             for m in missing}))
                + ") or choose Replanner(fill='repeat_day' or 'last')")
        for nid, until in outs.items():
            b = None
            if until is not None:
                u = aware(until, f"outage of {nid!r}: until")
                b = math.ceil(st.position(u) - 1e-9)
                if b <= a_now:
                    continue
            st.set_outage(nid, a_now, b)
        for nid in rets:
            st.clear_outage(nid, a_now)
        arrivals = [nj if nj.release is not None else nj.model_copy(update={"release": now})
                    for nj in new_jobs]
        change = _Change(now=now, a_now=a_now, on_grid=on_grid, end=end, new_jobs=arrivals,
                         cancelled=cset, finished=fset, soc=soc_d, data=data, outages=outs,
                         returns=rets)
        return change, st

    def _roll(self, change: _Change, store: SeriesStore) -> _Roll:
        """The problem rolled to ``change.a_now``: state carried, jobs pinned, data applied.

        Parameters
        ----------
        change : _Change
            What changed.
        store : SeriesStore
            The data with the update's values.

        Returns
        -------
        _Roll
            The new problem (horizon ``[slot of now, change.end)``), the warm start,
            and what left.
        """
        old, plan = self.problem, self.plan
        k = change.a_now - self.offset
        T2 = change.end - change.a_now
        roll = _Roll(problem=old, k=k, hints={}, new_ids=set())
        nodes = _carried_nodes(old, plan.flows, change.soc, k)
        jobs = _carried_jobs(old, plan, self._current_index(), change, k, store, roll)
        hz = old.horizon
        horizon = Horizon.model_construct(start=store.time_of(change.a_now),
                                          slot_minutes=hz.slot_minutes, slots=T2)
        scenario = Scenario.model_construct(horizon=horizon, objective=old.scenario.objective,
                                            battery=old.scenario.battery,
                                            latency=old.scenario.latency)
        known = {j.job_id for j in old.jobs}
        jobs = _accept_arrivals(jobs, change.new_jobs, scenario, nodes, known, roll)
        series, tariffs, feeders = store.problem_parts(old, change.a_now, change.end)
        roll.problem = Problem.model_construct(
            scenario=scenario, nodes=nodes, jobs=jobs, node_series=series, tariffs=tariffs,
            feeders=feeders, latency_ms=old.latency_ms, regions=old.regions)
        return roll

    def _next_index(self, roll: _Roll, change: _Change, old: Index) -> Index:
        """The index of ``roll.problem``, updated rather than compiled where it can be.

        At the same start with only jobs and data changed: arrivals appended, removed
        jobs dropped, the data rows of the nodes whose series changed replaced. After a
        roll: :func:`~optisched.rolling.roll_index` (the node part compiled, the jobs'
        windows moved). Compiled otherwise (and whenever those decline).
        """
        problem = roll.problem
        same = (roll.k == 0 and change.on_grid and problem.horizon.slots == old.T
                and not change.availability_changed and not change.soc and not roll.restarted)
        ix: Index | None = None
        if same:
            ids = {j.job_id for j in problem.jobs}
            keep = np.array([jid in ids for jid in old.job_ids], dtype=bool)
            stay = Problem.model_construct(**{**dict(problem), "jobs": [
                j for j in problem.jobs if j.job_id not in roll.new_ids]})
            ix = drop_jobs(old, keep, stay)
            if ix is not None:
                rows = self._data_rows(change, problem)
                ix = with_node_rows(ix, problem, rows) if (rows.size or "feeder_headroom" in
                                                          change.data) else ix
                ix = append_jobs(ix, problem, [j for j in problem.jobs
                                               if j.job_id in roll.new_ids])
        elif roll.k > 0 or not change.on_grid or problem.horizon.slots != old.T:
            ix = roll_index(old, problem, roll.k)
        if ix is None:
            ix = compile_index(problem)
        return ix

    @staticmethod
    def _data_rows(change: _Change, problem: Problem) -> IntArray:
        """Node positions whose PV, headroom or tariff data this update gives."""
        pos = {n.node_id: i for i, n in enumerate(problem.nodes)}
        rows = {pos[nid] for kind in ("pv", "headroom") for nid in change.data.get(kind, {})}
        tfs = {t for kind in ("price", "export_price", "carbon") for t in change.data.get(kind, {})}
        rows |= {i for i, n in enumerate(problem.nodes) if n.tariff in tfs}
        return np.array(sorted(rows), dtype=np.int64)

    def _pre_reject(self, problem: Problem, index: Index, roll: _Roll, new_ids: set[str]
                    ) -> tuple[Problem, Index]:
        """Take out the jobs no plan can hold, before solving.

        A must-run job (not pinned) without any eligible (node, start) is rejected with
        :func:`~optisched.index.explain_job`'s reason; a droppable one whose hard
        deadline has passed leaves as dropped for good (its penalty realized); a
        droppable arrival without a place stays, dropped.
        """
        counts = np.diff(index.opt_job_ptr)
        none = np.nonzero((counts == 0) & ~index.pinned)[0]
        if none.size == 0:
            return problem, index
        gone: set[str] = set()
        now = problem.horizon.start
        for j in none.tolist():
            job = problem.jobs[j]
            if index.must_run[j]:
                roll.rejected[job.job_id] = explain_job(problem, index, j) + " (it must run)"
                gone.add(job.job_id)
            elif (job.tardiness_per_hour is None and job.deadline is not None
                  and job.deadline <= now and job.job_id not in new_ids):
                roll.events.append((job, "dropped", -1, 0, 0,
                                    f"its deadline {job.deadline.isoformat()} has passed"))
                gone.add(job.job_id)
        return self._without(problem, index, gone)

    @staticmethod
    def _without(problem: Problem, index: Index, gone: set[str]) -> tuple[Problem, Index]:
        """``problem`` and ``index`` without the jobs ``gone``."""
        if not gone:
            return problem, index
        jobs = [j for j in problem.jobs if j.job_id not in gone]
        new = Problem.model_construct(**{**dict(problem), "jobs": jobs})
        keep = np.array([jid not in gone for jid in index.job_ids], dtype=bool)
        ix = drop_jobs(index, keep, new)
        return new, ix if ix is not None else compile_index(new)

    # ------------------------------------------------------------------ solving
    def _solve(self, problem: Problem, index: Index, roll: _Roll,
               prev: tuple[Index, _Change] | None) -> tuple[Plan, Index]:
        """Plan ``problem``, rejecting must-run jobs that find no place, until a plan exists.

        Parameters
        ----------
        problem, index : Problem, Index
            The rolled problem and its index.
        roll : _Roll
            Its warm start; receives the rejections.
        prev : (Index, _Change) or None
            The previous plan's index and the change (None: first plan).

        Returns
        -------
        (Plan, Index)
            A plan that passes the evaluator (when :attr:`verify`), with exact cost
            terms, and the index of the (possibly smaller) problem it is for.

        Raises
        ------
        ReplanError
            No plan exists without moving a running or pinned job.
        """
        for _attempt in range(len(problem.jobs) + 1):
            plan, culprit = self._attempt(problem, index, roll, prev)
            if plan.status.has_plan:
                if roll.rejected:
                    plan.message = "; ".join(
                        [*([plan.message] if plan.message else []),
                         *(f"rejected job {j}: {why}" for j, why in roll.rejected.items())])
                roll.problem = problem
                return plan, index
            if culprit is None:
                raise ReplanError(f"no plan keeps the running and pinned jobs in place: "
                                  f"{plan.message}")
            roll.rejected[problem.jobs[culprit].job_id] = plan.message
            problem, index = self._without(problem, index, {problem.jobs[culprit].job_id})
        raise ReplanError("no plan found")  # pragma: no cover - every attempt removes a job

    def _attempt(self, problem: Problem, index: Index, roll: _Roll,
                 prev: tuple[Index, _Change] | None) -> tuple[Plan, int | None]:
        """One solve: the plan, or no plan and the job to reject (None: none can be).

        Pinned jobs that break availability or capacity (:func:`~optisched.precheck.precheck`)
        reject an arrival that is pinned, if any.
        """
        pinned_new = [j for j, job in enumerate(problem.jobs)
                      if job.job_id in roll.new_ids and job.pinned]
        if self.solver != "greedy":
            why = precheck(problem, index)
            if why is not None:
                return Plan.empty(problem, self.solver, Status.INFEASIBLE, why), (
                    pinned_new[0] if pinned_new else None)
            plan = solve(problem, self.solver, time_limit=self.time_limit, seed=self.seed)
            if plan.status.has_plan and plan.flows is not None:
                ok = self._checked(problem, index, plan)
                if ok is not None:
                    return ok, None
            log.info("solver %s found no plan (%s); greedy takes over", self.solver,
                     plan.message)
        t0 = time.perf_counter()
        plan, search, checked = self._greedy(problem, index, roll, prev)
        if plan.status is Status.INFEASIBLE:  # proven by precheck: pinned jobs clash
            return plan, pinned_new[0] if pinned_new else None
        if not plan.status.has_plan:
            return plan, self._culprit(index, search, roll)
        ok = self._checked(problem, index, plan)
        if ok is None:
            log.warning("re-planned plan failed verification; re-made with a full dispatch")
            plan, search, _ = self._greedy(problem, index, roll, None)
            if not plan.status.has_plan:
                return plan, self._culprit(index, search, roll)
            ok = self._checked(problem, index, plan)
            if ok is None:
                raise ReplanError("the re-planned plan fails the evaluator: "
                                  + "; ".join(plan.info.get("violations", [])))
        ok.info["checked_jobs"] = sorted(checked)
        ok.timings["solve"] = time.perf_counter() - t0
        return ok, None

    def _checked(self, problem: Problem, index: Index, plan: Plan) -> Plan | None:
        """``plan`` priced exactly, or None when :attr:`verify` and the evaluator rejects it."""
        plan.costs = cost_terms(index, plan)
        plan.objective = objective_of(plan.costs)
        if not self.verify:
            return plan
        t0 = time.perf_counter()
        ev = evaluate(problem, plan, index)
        plan.timings["verify"] = time.perf_counter() - t0
        if not ev.feasible:
            plan.info["violations"] = [str(v) for v in ev.violations[:5]]
            log.warning("plan fails the evaluator: %s", plan.info["violations"])
            return None
        return plan

    @staticmethod
    def _culprit(index: Index, search: GreedySearch, roll: _Roll) -> int | None:
        """The job a failed greedy run could not place: the first unplaced must-run job in
        placement order (not pinned), preferring an arrival; None when there is none."""
        st = search.state
        cands = [int(j) for j in job_order(index)
                 if index.must_run[j] and not index.pinned[j] and st.opt[j] < 0]
        new = [j for j in cands if index.job_ids[j] in roll.new_ids]
        pick = new or cands
        return pick[0] if pick else None

    def _greedy(self, problem: Problem, index: Index, roll: _Roll,
                prev: tuple[Index, _Change] | None) -> tuple[Plan, GreedySearch, set[str]]:
        """The warm-started greedy run.

        Jobs not yet started are placed at once where nothing changed; on nodes whose
        PV, headroom or availability changed (and their feeder) each is checked
        first. Pinned jobs are placed as pinned, the on-state of sleeping nodes kept.
        Nodes whose data, state and load are unchanged keep the flows of the plan in
        force (:func:`optisched.rolling.carry_flows`); the others are dispatched.

        Returns
        -------
        (Plan, GreedySearch, set of str)
            The plan (exact objective; no cost terms yet), the search (its state
            tells which job failed) and the ids of the jobs whose place was checked.
        """
        cands = default_candidates(index)
        search = GreedySearch(problem, index, cands)
        st = search.state
        N, T = index.N, index.T
        hint = {index.job_pos[j]: (index.node_pos[n], s) for j, (n, s) in roll.hints.items()
                if j in index.job_pos and n in index.node_pos}
        old_index = prev[0] if prev is not None else None
        old_plan = self.plan if prev is not None else None
        k = roll.k
        if old_index is not None and old_plan is not None and old_plan.flows is not None:
            av_chg, power_chg, feeder_chg, price_chg, T_ov = _index_changed_rows(
                old_index, index, k)
            # new PV or headroom: a node whose load (battery idle) still fits its headroom in
            # every shared slot keeps its jobs unchecked (capacity did not change)
            coupled = np.zeros(N, dtype=bool)
            if index.feeder_ids:
                finite: BoolArray = np.asarray(np.isfinite(index.feeder_headroom).any(axis=1))
                coupled = (index.feeder_of >= 0) & finite[np.maximum(index.feeder_of, 0)]
            loose = power_chg & ~av_chg & ~coupled
            if T_ov and loose.any():
                rows = np.nonzero(loose)[0]
                need = np.maximum(old_plan.flows.load[rows, k:k + T_ov]
                                  - index.pv[rows, :T_ov], 0.0)
                fits = (need <= index.headroom[rows, :T_ov] + 1e-7).all(axis=1)
                loose[rows[~fits]] = False
            placement = av_chg | feeder_chg | (power_chg & ~loose)
            price_chg = price_chg | power_chg
        else:
            placement = np.ones(N, dtype=bool)
            price_chg = np.ones(N, dtype=bool)
            T_ov = 0
        placement = _feeder_closure(index, placement)
        # 1. trusted: hinted jobs on nodes whose data did not change, and pinned jobs
        js = np.array([j for j, (n, _s) in hint.items() if not placement[n]], dtype=np.int64)
        checked = {j: hint[j] for j in hint if placement[hint[j][0]]}
        if js.size:
            hn = np.array([hint[int(j)][0] for j in js], dtype=np.int64)
            ss = np.array([hint[int(j)][1] for j in js], dtype=np.int64)
            os_ = find_options(index, js, hn)
            oc = np.maximum(os_, 0)
            good = ((os_ >= 0) & (index.opt_earliest[oc] <= ss) & (ss <= index.opt_latest[oc])
                    & (ss >= 0) & (ss < T)
                    & (index.avail_run[index.opt_node[oc], np.clip(ss, 0, T - 1)]
                       >= index.opt_dur[oc]))
            st.place_many(js[good], os_[good], ss[good])
            for j in js[~good].tolist():
                checked[j] = hint[j]
        pj = np.nonzero(index.pinned & (np.diff(index.opt_job_ptr) > 0))[0]
        st.place_many(pj, index.opt_job_ptr[pj], index.pinned_start[pj])
        # 2. carried on-state of sleeping nodes (kept on between jobs: the bridge)
        prev_flows = None
        if T_ov > 0 and old_plan is not None and old_plan.flows is not None:
            of = old_plan.flows
            for n in np.nonzero(index.can_sleep & ~placement)[0].tolist():
                row = np.zeros(T, dtype=bool)
                row[:T_ov] = of.on[n, k:k + T_ov]
                if (row & ~st.on[n]).any():
                    st.set_bridge(n, row)
            prev_flows = self._carry(index, st, of, k, T_ov, placement | price_chg)
        fresh = prev is None and not hint  # a first plan: greedy's multi-start too
        plan = run_greedy(problem, index, SolveOptions(
            time_limit=self.time_limit, seed=self.seed,
            params=GreedyOptions(iterations=self.iterations)),
            hint=None if fresh else checked, search=search, trusted=False,
            prev_flows=prev_flows)
        carried = np.zeros(N, dtype=bool)
        if prev_flows is not None and plan.flows is not None:
            offered = ~np.isnan(prev_flows.load[:, 0]) if T else np.zeros(N, dtype=bool)
            carried = offered & (plan.flows.grid_import == prev_flows.grid_import).all(axis=1) & (
                plan.flows.soc == prev_flows.soc).all(axis=1)
        plan.info["carried_nodes"] = [index.node_ids[n] for n in np.nonzero(carried)[0]]
        return plan, search, {index.job_ids[j] for j in checked}

    def _carry(self, index: Index, st: Any, of: Flows, k: int, T_ov: int, changed: BoolArray
               ) -> Flows:
        """Flows of the plan in force for the nodes whose dispatch can be kept.

        A node keeps them when it needs a linear program (battery, demand charge), its
        data over the shared slots and its load and on-state there are unchanged, and
        :func:`~optisched.rolling.carry_flows` accepts them (with ``redispatch="all"``,
        only when nothing was rolled). Every other node gets ``load = NaN``: the
        greedy dispatches it again.
        """
        N, T = index.N, index.T
        prev = Flows.zeros(N, T)
        prev.load[:] = np.nan
        if self.redispatch == "all" and k > 0:
            return prev
        lp = (index.battery_kwh > 0) | (index.demand_charge > 0)
        if index.feeder_ids:
            # coupled feeder groups are dispatched together: keep them only unrolled
            on_feeder = index.feeder_of >= 0
            lp &= ~on_feeder | (k == 0 and T_ov == T)
        same = lp & ~changed
        if T_ov:
            same &= (np.abs(st.load[:, :T_ov] - of.load[:, k:k + T_ov]) <= 1e-9).all(axis=1)
            same &= (st.on[:, :T_ov] == of.on[:, k:k + T_ov]).all(axis=1)
        rolled = k > 0 or T_ov < T
        if T - T_ov > _CARRY_NEW_SLOTS:
            return prev  # many new slots: their dispatch is not a small change, solve it
        if rolled:
            # a demand charge or a negative price is not followed by the terminal shift:
            # dispatch those nodes exactly; and the longest-carried ones (the drift bound)
            same &= (index.demand_charge <= 0) & (index.import_cost >= 0).all(axis=1)
            if self.refresh and same.any():
                age = self._age if self._age.size == N else np.zeros(N, dtype=np.int64)
                cand = np.nonzero(same & (age > 0))[0]
                pick = cand[np.argsort(-age[cand], kind="stable")[:self.refresh]]
                same[pick] = False
        rows, got = carry_flows(index, np.nonzero(same)[0], of, k, st.load)
        for name, arr in got.items():
            getattr(prev, name)[rows] = arr
        prev.load[rows] = st.load[rows]
        prev.on[rows] = st.on[rows]
        return prev

    # ------------------------------------------------------------------ records
    def _changes(self, old: Problem, old_plan: Plan | None, change: _Change | None, roll: _Roll,
                 plan: Plan) -> ChangeSet:
        """One :class:`JobChange` per job the update touched (kinds: ``CHANGE_KINDS``).

        For the first plan (``change`` None): the jobs left out (dropped or rejected).
        """
        new = roll.problem
        when = self._store.time_of
        a_old = self.offset
        a_new = change.a_now if change is not None else 0
        old_pos = {j.job_id: i for i, j in enumerate(old.jobs)}
        has_old = old_plan is not None and old_plan.status.has_plan
        o_node = old_plan.node if has_old and old_plan is not None else np.full(len(old.jobs), -1)
        o_abs = (old_plan.start + a_old) if has_old and old_plan is not None else np.zeros(
            len(old.jobs), dtype=np.int64)
        node_ids = plan.node_ids

        def before_of(jid: str) -> tuple[str, datetime] | None:
            i = old_pos.get(jid)
            if i is None or o_node[i] < 0:
                return None
            return node_ids[int(o_node[i])], when(int(o_abs[i]))

        def after_of(j: int) -> tuple[str, datetime] | None:
            n = int(plan.node[j])
            return (node_ids[n], when(int(plan.start[j]) + a_new)) if n >= 0 else None

        # jobs of the new problem whose (node, absolute start) differ from the plan in force
        idx = np.array([old_pos.get(j.job_id, -1) for j in new.jobs], dtype=np.int64)
        known = idx >= 0
        oi = np.maximum(idx, 0)
        n_abs = plan.start + a_new
        moved = ~known | (o_node[oi] != plan.node) | ((plan.node >= 0) & (o_abs[oi] != n_abs))
        look = set(np.nonzero(moved)[0].tolist())
        before = {jid: b for jid in {*roll.started, *roll.restarted, *roll.rejected}
                  if (b := before_of(jid)) is not None}
        after = {new.jobs[j].job_id: after_of(j) for j in look}
        new_pos = {jb.job_id: j for j, jb in enumerate(new.jobs)}
        for jid in roll.restarted:
            if jid in new_pos and jid not in after:
                after[jid] = after_of(new_pos[jid])
        for j in look:
            jid = new.jobs[j].job_id
            b = before_of(jid)
            if b is not None:
                before[jid] = b
        checked = set(plan.info.get("checked_jobs", []))
        records: list[JobChange] = []
        done = {ev[0].job_id for ev in roll.events if ev[1] == "done"}
        for jid in sorted(roll.started):
            b = before.get(jid)
            tail = " and ended before now" if jid in done else ""
            why = f"started on {b[0]} at {b[1].isoformat()}{tail}" if b else "started"
            records.append(JobChange(jid, "started", why, b[0] if b else None,
                                     b[1] if b else None, b[0] if b else None,
                                     b[1] if b else None))
        for jid, why in roll.restarted.items():
            b, a = before.get(jid), after.get(jid)
            where = f"; now on {a[0]} at {a[1].isoformat()}" if a else "; now dropped"
            records.append(JobChange(jid, "restarted", why + where, b[0] if b else None,
                                     b[1] if b else None, a[0] if a else None,
                                     a[1] if a else None))
        for j in sorted(look):
            job = new.jobs[j]
            jid = job.job_id
            if job.pinned or jid in roll.restarted:
                continue
            a, b = after[jid], before.get(jid)
            if change is None or jid in roll.new_ids:
                if a is None:
                    records.append(JobChange(jid, "dropped", self._drop_reason(
                        job, "on arrival" if change is not None else "in the first plan")))
                elif change is not None:
                    records.append(JobChange(jid, "added", f"placed on {a[0]} at "
                                             f"{a[1].isoformat()}", None, None, a[0], a[1]))
                continue
            if a == b:
                continue
            if a is None:
                assert b is not None
                records.append(JobChange(jid, "dropped", self._drop_reason(
                    job, "its place no longer fits" if jid in checked else "re-optimized"),
                    b[0], b[1]))
            elif b is None:
                records.append(JobChange(jid, "moved", f"placed on {a[0]} at "
                                         f"{a[1].isoformat()} (it was dropped)", None, None,
                                         a[0], a[1]))
            else:
                if b[0] in change.outages:
                    why = f"its node {b[0]} is out from {change.now.isoformat()}"
                elif jid in checked:
                    why = (f"its place on {b[0]} at {b[1].isoformat()} was checked against the "
                           "new data: it no longer fits, or a cheaper place was found")
                else:
                    why = "the local search found a cheaper place"
                records.append(JobChange(jid, "moved", why, b[0], b[1], a[0], a[1]))
        for jid, why in roll.rejected.items():
            b = before.get(jid)
            records.append(JobChange(jid, "rejected", why, b[0] if b else None,
                                     b[1] if b else None))
        order = {j.job_id: i for i, j in enumerate([*old.jobs, *new.jobs])}
        records.sort(key=lambda r: order.get(r.job_id, len(order)))
        return ChangeSet(records)

    @staticmethod
    def _drop_reason(job: Job, when: str) -> str:
        pen = job.drop_penalty
        return (f"dropped ({when}): no place found costs less than its drop penalty "
                f"{pen:g}" if pen is not None else f"dropped ({when})")

    def _commit(self, change: _Change, store: SeriesStore, roll: _Roll, old_index: Index
                ) -> None:
        """Keep the update's data and record the executed slots and the jobs that left."""
        k = roll.k
        plan = self.plan
        a0 = self.offset
        if k > 0 and plan.flows is not None:
            times = [store.time_of(a0 + t) for t in range(k)]
            running = runs_by_slot(old_index, plan.node, plan.start, k)
            self._ledger.record_slots(old_index, plan.flows, times, a0, running, change.soc)
        now = change.now
        hz = self.problem.horizon
        pos = old_index.job_pos
        for job, status, n, s, e, why in roll.events:
            first = self._origin_job(job)
            if status == "dropped":
                pen = float(job.drop_penalty or 0.0)
                self._ledger.record_job(now, job.job_id, "dropped", None, None, None, drop=pen,
                                        reason=why)
                self._dropped.append(first)
                continue
            if n < 0 or e <= s:
                self._ledger.record_job(now, job.job_id, status, None, None, None, reason=why)
                continue
            lat, tard = job_terms(old_index, pos[job.job_id], n, e)
            self._ledger.record_job(now, job.job_id, status, old_index.node_ids[n],
                                    hz.time_of(s), hz.time_of(e), latency=lat, tardiness=tard,
                                    reason=why)
            self._runs.append((first, n, a0 + s, e - s))
        for jid, why in roll.rejected.items():
            self._ledger.record_job(now, jid, "rejected", None, None, None, reason=why)
        self._store = store

    @staticmethod
    def _origin_job(job: Job) -> Job:
        """``job`` without the pin the re-planner gave it while it ran."""
        if job.pinned_node is not None and job.pinned_start is not None:
            return job.model_copy(update={"pinned_node": None, "pinned_start": None})
        return job


def _fill_policy(fill: str | Mapping[str, str] | None) -> dict[str, str]:
    """``fill`` as kind -> policy (every kind for a plain policy name).

    Raises
    ------
    ValueError
        An unknown policy or kind.
    """
    if fill is None:
        return {}
    if isinstance(fill, str):
        fill = dict.fromkeys(SERIES_KINDS, fill)
    out = {}
    for kind, pol in fill.items():
        if kind not in SERIES_KINDS:
            raise ValueError(f"fill: unknown series kind {kind!r}; known: "
                             + ", ".join(SERIES_KINDS))
        if pol not in FILL_POLICIES:
            raise ValueError(f"fill policy must be one of {', '.join(FILL_POLICIES)}, "
                             f"got {pol!r}")
        out[kind] = pol
    return out
