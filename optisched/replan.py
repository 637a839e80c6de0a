"""Real-time re-planning: a :class:`Replanner` holds the current plan and updates it.

A scheduler calls :meth:`Replanner.update` whenever something changes. The update

1. **rolls the horizon** to ``now`` (a slot boundary of the current horizon): the
   new problem starts at ``now``, keeps the slot length and has the *remaining*
   slots ``T' = T − k`` (``k`` slots elapsed); nothing is invented past the end of
   the data the scheduler gave. For a horizon of constant length, start a new
   :class:`Replanner` from a fresh problem;
2. carries the **state** over: each node's on/off state before ``now``
   (``initially_on``) and battery state of charge (``soc_init``) come from the
   current plan at slot ``k − 1``, or from a measured ``soc``;
3. **pins running jobs**: a job of the current plan with ``start < k < start + d``
   gets ``pinned_node``/``pinned_start`` (its start may lie before ``now``; only
   its remaining slots are in the new horizon) and never moves again; jobs that
   ended by ``now``, finished or were cancelled leave the problem. A running job
   on a node that goes out is restarted from scratch (unpinned, full duration);
4. applies new jobs, forecasts (PV, import price, headroom) and node outages and
   returns;
5. **warm-starts** the greedy solver: every job not yet started keeps its
   (node, start) when that still fits, the rest are inserted by marginal cost
   (repair), then a short local search improves the plan (improve).

``optisched replan PLAN_DIR BUNDLE --events events.csv --out DIR`` applies an
events CSV (format: :func:`read_events`) and writes the final plan and bundle.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from optisched.arrays import BoolArray
from optisched.domain import Feeder, Horizon, Job, Node, NodeSeries, Problem, Scenario, Tariff
from optisched.evaluate import cost_terms, objective_of
from optisched.events import EVENT_KINDS, Events, check_event_times, read_events
from optisched.index import Index, compile_index
from optisched.plan import Flows, Plan, Status
from optisched.precheck import precheck
from optisched.solvers import solve
from optisched.solvers.base import SolveOptions
from optisched.solvers.greedy.run import run_greedy
from optisched.solvers.options import GreedyOptions

__all__ = ["EVENT_KINDS", "Events", "Replanner", "check_event_times", "read_events"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class _Change:
    """What one :meth:`Replanner.update` changes (its arguments, normalized).

    Attributes
    ----------
    now : datetime
        The new horizon start, a slot boundary of the current horizon.
    new_jobs : list of Job
        Jobs that arrived.
    cancelled, finished : set of str
        Job ids that leave the problem.
    soc : dict node_id -> float
        Measured battery state of charge [kWh].
    pv, headroom : mapping node_id -> sequence
        New forecasts over the new horizon [kW] (None entries keep the current value).
    prices : mapping tariff -> sequence
        New import prices over the new horizon [money/kWh] (None keeps).
    outages : dict node_id -> datetime or None
        Nodes out from ``now`` until the given time (None: to the end of the horizon).
    returns : set of str
        Nodes back in service from ``now``.
    """

    now: datetime
    new_jobs: list[Job]
    cancelled: set[str]
    finished: set[str]
    soc: dict[str, float]
    pv: Mapping[str, Sequence[float | None]]
    prices: Mapping[str, Sequence[float | None]]
    headroom: Mapping[str, Sequence[float | None]]
    outages: dict[str, datetime | None]
    returns: set[str]

    @property
    def keeps_placements(self) -> bool:
        """True when the old placements still fit together (availability and headroom kept)."""
        return not (self.outages or self.returns or self.pv or self.headroom)

    @property
    def keeps_node_data(self) -> bool:
        """True when only the job set changes: no forecast, price, availability or state."""
        return self.keeps_placements and not (self.soc or self.prices)


# ---------------------------------------------------------------------- rolling a problem
# The pieces of Replanner._next_problem, one per kind of change; each takes what it reads.


def _elapsed_slots(hz: Horizon, now: datetime) -> int:
    """Slots ``k`` of horizon ``hz`` before ``now``.

    Raises
    ------
    ValueError
        ``now`` off the slot grid or outside ``[start, end)``.
    """
    pos = hz.slot_position(now)
    k = round(pos)
    if abs(pos - k) > 1e-9:
        raise ValueError(f"now={now.isoformat()} is not on the slot grid "
                         f"({hz.slot_minutes}-minute slots from {hz.start.isoformat()})")
    if not 0 <= k < hz.slots:
        raise ValueError(f"now={now.isoformat()} lies outside the horizon "
                         f"[{hz.start.isoformat()}, {hz.end.isoformat()})")
    return k


def _check_change(problem: Problem, change: _Change, T2: int) -> None:
    """Reject ids ``problem`` does not have and forecasts that are not ``T2`` slots long.

    Raises
    ------
    ValueError
        The first unknown node id, then job id, then tariff, then wrong length.
    """
    node_ids = {n.node_id for n in problem.nodes}
    job_ids = {j.job_id for j in problem.jobs}
    for nid in [*change.soc, *change.pv, *change.headroom, *change.returns, *change.outages]:
        if nid not in node_ids:
            raise ValueError(f"unknown node_id {nid!r}")
    for jid in change.cancelled | change.finished:
        if jid not in job_ids:
            raise ValueError(f"unknown job_id {jid!r}")
    for t in change.prices:
        if t not in problem.tariffs:
            raise ValueError(f"unknown tariff {t!r}")
    for name, m in (("pv", change.pv), ("headroom", change.headroom), ("prices", change.prices)):
        for key, seq in m.items():
            if len(seq) != T2:
                raise ValueError(f"{name} for {key!r} has {len(seq)} values; the new horizon "
                                 f"from {change.now.isoformat()} has {T2} slots")


def _overlay(base: Sequence[float | None], new: Sequence[float | None]) -> list[Any]:
    """``base`` with the non-None values of ``new`` (of the same length) in their place."""
    return [b if v is None else float(v) for b, v in zip(base, new, strict=True)]


def _rolled_series(problem: Problem, change: _Change, k: int, T2: int,
                   availability: Mapping[str, list[bool] | None]) -> dict[str, NodeSeries]:
    """Node series over the remaining slots, new PV and headroom forecasts laid over them.

    Parameters
    ----------
    problem : Problem
        The current problem.
    change : _Change
        Its ``pv`` and ``headroom`` (None entries keep the current value; a node
        without PV series starts from 0 kW, one without headroom from unlimited).
    k, T2 : int
        Slots elapsed, slots left.
    availability : mapping node_id -> list of bool or None
        Availability over the new horizon (:func:`_availability`).

    Returns
    -------
    dict node_id -> NodeSeries
        The nodes with at least one series.
    """
    series: dict[str, NodeSeries] = {}
    for node in problem.nodes:
        nid = node.node_id
        ns = problem.node_series.get(nid)
        pv_l = list(ns.pv_kw[k:]) if ns is not None and ns.pv_kw is not None else None
        hr_l = (list(ns.headroom_kw[k:]) if ns is not None and ns.headroom_kw is not None
                else None)
        if nid in change.pv:
            pv_l = _overlay(pv_l or [0.0] * T2, change.pv[nid])
        if nid in change.headroom:
            hbase: list[float | None] = list(hr_l) if hr_l is not None else [None] * T2
            hr_l = _overlay(hbase, change.headroom[nid])
        av_l = availability[nid]
        if pv_l is not None or hr_l is not None or av_l is not None:
            series[nid] = NodeSeries(pv_kw=pv_l, headroom_kw=hr_l, available=av_l)
    return series


def _rolled_tariffs(problem: Problem, prices: Mapping[str, Sequence[float | None]],
                    k: int) -> dict[str, Tariff]:
    """Tariffs over the remaining slots, new import prices laid over them (None keeps)."""
    tariffs = {}
    for name, tf in problem.tariffs.items():
        price = list(tf.price[k:])
        if name in prices:
            price = _overlay(price, prices[name])
        tariffs[name] = Tariff(price=price, export_price=list(tf.export_price[k:]),
                               carbon_g_per_kwh=list(tf.carbon_g_per_kwh[k:]))
    return tariffs


def _outage_slots(outages: Mapping[str, datetime | None], now: datetime, slot_minutes: float,
                  T2: int) -> dict[str, int]:
    """Slots of the new horizon each outage covers from its slot 0 (``until`` rounded up).

    ``until`` None: all ``T2`` slots; an ``until`` at or before ``now``: none.
    """
    out_until: dict[str, int] = {}
    for nid, until in outages.items():
        if until is None:
            out_until[nid] = T2
        else:
            up = (until - now).total_seconds() / 60.0 / slot_minutes
            out_until[nid] = max(0, min(T2, math.ceil(up - 1e-9)))
    return out_until


def _availability(problem: Problem, change: _Change, k: int, T2: int,
                  original: Callable[[str], list[bool]]) -> dict[str, list[bool] | None]:
    """Availability of every node over the new horizon after outages and returns.

    Parameters
    ----------
    problem : Problem
        The current problem (its remaining availability).
    change : _Change
        Its ``outages`` (out from slot 0 until ``until``) and ``returns`` (back in
        service: the availability of the original data again).
    k, T2 : int
        Slots elapsed, slots left.
    original : callable
        ``original(node_id)``: the node's availability in the original data over
        the new horizon.

    Returns
    -------
    dict node_id -> list of bool or None
        None: always available.
    """
    out_slots = _outage_slots(change.outages, change.now, problem.horizon.slot_minutes, T2)
    out: dict[str, list[bool] | None] = {}
    for node in problem.nodes:
        nid = node.node_id
        ns = problem.node_series.get(nid)
        av_l = list(ns.available[k:]) if ns is not None and ns.available is not None else None
        if nid in change.returns:
            av_l = original(nid)
        if nid in out_slots:
            av_l = list(av_l) if av_l is not None else [True] * T2
            for slot in range(out_slots[nid]):
                av_l[slot] = False
        out[nid] = av_l
    return out


def _carried_nodes(problem: Problem, flows: Flows | None, soc: Mapping[str, float],
                   k: int) -> list[Node]:
    """Nodes with their state before slot ``k``: on/off and battery state of charge.

    ``initially_on`` and ``soc_init`` come from ``flows`` (the current plan's) at slot
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
                frac = min(max(kwh / E, node.soc_min), node.soc_max)
                upd["soc_init"] = frac
        nodes.append(node.model_copy(update=upd) if upd else node)
    return nodes


def _carried_jobs(problem: Problem, plan: Plan, index: Index | None, change: _Change, k: int,
                  available: Mapping[str, BoolArray]
                  ) -> tuple[list[Job], dict[str, tuple[str, int]]]:
    """The current jobs that stay, running ones pinned, and the placements of the others.

    Jobs cancelled, finished or ended by slot ``k`` leave; a job running across
    ``k`` is pinned to its node and start (restarted from scratch, unpinned with
    release ``now``, when its node is not available for its remaining slots); a
    job not yet started stays free and its placement becomes the warm-start hint.

    Parameters
    ----------
    problem, plan : Problem, Plan
        The current problem and plan.
    index : Index or None
        The plan's index (compiled here when None and the plan has flows).
    change : _Change
        Its ``cancelled``, ``finished`` and ``now``.
    k : int
        Slots elapsed.
    available : mapping node_id -> (T2,) bool
        Availability over the new horizon.

    Returns
    -------
    jobs : list of Job
        In the current order.
    hint : dict job_id -> (node_id, start slot of the new horizon)
    """
    hz = problem.horizon
    node_ids = [n.node_id for n in problem.nodes]
    if plan.status.has_plan and plan.flows is not None:
        index = index if index is not None else compile_index(problem)
    else:
        index = None
    jobs: list[Job] = []
    hint: dict[str, tuple[str, int]] = {}
    dur = np.zeros(len(problem.jobs), dtype=np.int64)
    if index is not None:
        runs = np.nonzero(plan.node >= 0)[0]
        dur[runs] = index.duration(runs, plan.node[runs])
    for j, job in enumerate(problem.jobs):
        if job.job_id in change.cancelled or job.job_id in change.finished:
            continue
        n = int(plan.node[j]) if plan.status.has_plan else -1
        if n < 0 or index is None:
            jobs.append(job)
            continue
        s = int(plan.start[j])
        d = int(dur[j])
        nid = node_ids[n]
        if s < k:
            if s + d <= k:
                continue  # done
            if not available[nid][: s + d - k].all():
                # its node went out: restart from scratch
                jobs.append(job.model_copy(update={"pinned_node": None, "pinned_start": None,
                                                   "release": change.now}))
                continue
            jobs.append(job.model_copy(update={"pinned_node": nid,
                                               "pinned_start": hz.time_of(s)}))
        else:
            jobs.append(job)
            hint[job.job_id] = (nid, s - k)
    return jobs, hint


def _with_new_jobs(problem: Problem, jobs: list[Job], new_jobs: list[Job]) -> list[Job]:
    """``jobs`` followed by the jobs that arrived.

    Raises
    ------
    ValueError
        A new job whose id is already used (in ``problem``, ``jobs`` or another new job).
    """
    job_ids = {j.job_id for j in problem.jobs}
    known = {j.job_id for j in jobs}
    out = list(jobs)
    for nj in new_jobs:
        if nj.job_id in known or nj.job_id in job_ids:
            raise ValueError(f"new job {nj.job_id!r}: job_id already used")
        known.add(nj.job_id)
        out.append(nj)
    return out


def _assemble(problem: Problem, change: _Change, k: int, T2: int, nodes: list[Node],
              jobs: list[Job], series: dict[str, NodeSeries], tariffs: dict[str, Tariff]
              ) -> Problem:
    """The rolled problem from its parts (feeder headroom rolled here).

    When only the job set changed (:attr:`_Change.keeps_node_data`), the parts are
    not validated again (``model_construct``); the new jobs' cross-references are
    checked as :meth:`Problem.issues` would.

    Raises
    ------
    ValueError
        A new job that refers to unknown data, or (pydantic) an invalid part.
    """
    hz = problem.horizon
    feeders = {f: Feeder(headroom_kw=list(fd.headroom_kw[k:]))
               for f, fd in problem.feeders.items()}
    scenario = Scenario(horizon=hz.model_copy(update={"start": change.now, "slots": T2}),
                        objective=problem.scenario.objective, battery=problem.scenario.battery,
                        latency=problem.scenario.latency)
    parts = dict(scenario=scenario, nodes=nodes, jobs=jobs, node_series=series,
                 tariffs=tariffs, feeders=feeders, latency_ms=problem.latency_ms,
                 regions=problem.regions)
    if not change.keeps_node_data:
        return Problem(**parts)
    # only the job set changed: every part is already validated except the
    # new jobs' cross-references, checked here as Problem.issues() would
    new = Problem.model_construct(**parts)  # type: ignore[arg-type]
    bad = [i for i in Problem.model_construct(
        scenario=scenario, nodes=nodes, jobs=change.new_jobs, node_series={}, tariffs={},
        feeders={}, latency_ms={}, regions={}).issues()
        if i.table == "jobs.csv"]
    if bad:
        raise ValueError("; ".join(f"job {i.key}: {i.column}={i.value!r}: {i.message}"
                                   for i in bad))
    return new


class Replanner:
    """Holds the current plan of a problem and re-plans it as things change.

    Parameters
    ----------
    problem : Problem
        The problem at the start.
    solver : str
        Registered solver; ``greedy`` (default) warm-starts from the current plan,
        any other solver re-solves from scratch.
    seed : int
        Random seed of the local search.
    time_limit : float
        Local-search budget of each update [s] (0 = repair only).
    plan : Plan, optional
        The current plan (e.g. read from a plan directory); solved when omitted.
    iterations : int, optional
        Cap on local-search moves per update (makes updates reproducible).

    Attributes
    ----------
    problem : Problem
        The current (rolled) problem.
    plan : Plan
        The current plan for it.
    """

    def __init__(self, problem: Problem, solver: str = "greedy", seed: int = 0,
                 time_limit: float = 0.05, plan: Plan | None = None,
                 iterations: int | None = None) -> None:
        self.solver = solver
        self.seed = seed
        self.time_limit = time_limit
        self.iterations = iterations
        self.problem = problem
        self.offset = 0
        """Slots rolled since ``problem`` was given."""
        T = problem.horizon.slots
        self._avail0 = {n.node_id: list(problem.node_series[n.node_id].available or [True] * T)
                        if n.node_id in problem.node_series else [True] * T
                        for n in problem.nodes}
        self._index: Index | None = None
        self.plan = plan if plan is not None else self._solve(problem, None)

    # ------------------------------------------------------------------ solving
    def _solve(self, problem: Problem, hint_ids: dict[str, tuple[str, int]] | None,
               trusted: bool = False, same_data: bool = False) -> Plan:
        """Plan ``problem``: greedy warm-started from ``hint_ids``, any other solver from scratch.

        Parameters
        ----------
        problem : Problem
            The (rolled) problem.
        hint_ids : dict job_id -> (node_id, start slot), optional
            Placements of jobs not yet started, to keep where they still fit.
        trusted : bool
            The hinted placements still fit together (see
            :func:`~optisched.solvers.greedy.construct.construct`).
        same_data : bool
            Node data unchanged since :attr:`plan`: its flows are reused for dispatch
            groups whose load is unchanged.

        Returns
        -------
        Plan
            The plan, with exact cost terms when it has one.
        """
        t0 = time.perf_counter()
        if self.solver != "greedy":
            self._index = None
            return solve(problem, self.solver, time_limit=self.time_limit, seed=self.seed)
        index = compile_index(problem)
        why = precheck(problem, index)
        if why is not None:
            return Plan.empty(problem, "greedy", Status.INFEASIBLE, why)
        hint = None
        if hint_ids:
            hint = {index.job_pos[j]: (index.node_pos[n], s) for j, (n, s) in hint_ids.items()
                    if j in index.job_pos and n in index.node_pos}
        prev = self.plan.flows if same_data and self.plan.status.has_plan else None
        params = GreedyOptions(iterations=self.iterations)
        plan = run_greedy(problem, index, SolveOptions(time_limit=self.time_limit,
                                                       seed=self.seed, params=params),
                          hint=hint, trusted=trusted, prev_flows=prev)
        self._index = index
        if plan.status.has_plan and plan.flows is not None:
            plan.costs = cost_terms(index, plan)
            plan.objective = objective_of(plan.costs)
        plan.timings["total"] = time.perf_counter() - t0
        return plan

    # ------------------------------------------------------------------ update
    def update(
        self,
        now: datetime,
        *,
        new_jobs: Iterable[Job] = (),
        cancelled: Iterable[str] = (),
        finished: Iterable[str] = (),
        soc: Mapping[str, float] | None = None,
        pv: Mapping[str, Sequence[float | None]] | None = None,
        prices: Mapping[str, Sequence[float | None]] | None = None,
        headroom: Mapping[str, Sequence[float | None]] | None = None,
        outages: Mapping[str, datetime | None] | Iterable[str] = (),
        returns: Iterable[str] = (),
    ) -> Plan:
        """Roll the horizon to ``now``, apply what changed and return the new plan.

        Parameters
        ----------
        now : datetime
            A slot boundary of the current horizon (``start ≤ now < end``).
        new_jobs : iterable of Job
            Jobs that arrived (release defaults to ``now``).
        cancelled, finished : iterable of str
            Job ids to remove (a finished job frees its node from ``now`` on).
        soc : mapping node_id -> float, optional
            Measured battery state of charge [kWh], clipped to [soc_min, soc_max].
        pv, headroom : mapping node_id -> sequence, optional
            New forecasts over the new horizon (``T'`` values [kW]; None keeps the
            current value; ``headroom`` inf = unlimited).
        prices : mapping tariff -> sequence, optional
            New import prices over the new horizon [money/kWh]; None keeps.
        outages : mapping node_id -> datetime or None, or iterable of node_id
            Nodes out from ``now`` until the given time (None or a plain id: to the
            end of the horizon).
        returns : iterable of node_id
            Nodes back in service from ``now`` (undo an outage).

        Returns
        -------
        Plan
            The new plan (also :attr:`plan`); :attr:`problem` is the new problem.

        Raises
        ------
        ValueError
            ``now`` off the slot grid or outside the horizon, unknown ids, or a
            forecast of the wrong length.
        """
        change = _Change(
            now=now, new_jobs=list(new_jobs), cancelled=set(cancelled), finished=set(finished),
            soc=dict(soc or {}), pv=pv or {}, prices=prices or {}, headroom=headroom or {},
            outages=(dict(outages) if isinstance(outages, Mapping)
                     else dict.fromkeys(outages, None)),
            returns=set(returns))
        problem, hint = self._next_problem(change)
        # old placements still fit together unless availability or headroom changed
        trusted = change.keeps_placements
        same_data = change.keeps_node_data and problem.horizon.start == (
            self.problem.horizon.start)
        plan = self._solve(problem, hint, trusted, same_data)
        self.offset += round(self.problem.horizon.slot_position(now))
        self.problem, self.plan = problem, plan
        return plan

    def _next_problem(self, change: _Change) -> tuple[Problem, dict[str, tuple[str, int]]]:
        """The problem rolled to ``change.now`` with every change applied, and the warm start.

        Parameters
        ----------
        change : _Change
            What changed.

        Returns
        -------
        problem : Problem
            The new problem: horizon ``[now, end)``, node state carried over, running
            jobs pinned, finished and cancelled jobs out, new jobs in, forecasts,
            prices and availability updated.
        hint : dict job_id -> (node_id, start slot)
            Placements of the jobs not yet started, in the new horizon's slots.

        Raises
        ------
        ValueError
            As :meth:`update`.
        """
        old, plan = self.problem, self.plan
        k = _elapsed_slots(old.horizon, change.now)
        T2 = old.horizon.slots - k
        _check_change(old, change, T2)
        availability = _availability(old, change, k, T2,
                                     lambda nid: self._original_availability(nid, k, T2))
        series = _rolled_series(old, change, k, T2, availability)
        tariffs = _rolled_tariffs(old, change.prices, k)
        nodes = _carried_nodes(old, plan.flows if plan.status.has_plan else None, change.soc, k)
        new_av = {n.node_id: np.asarray(series[n.node_id].available if n.node_id in series and
                                        series[n.node_id].available is not None
                                        else [True] * T2, dtype=bool)
                  for n in old.nodes}
        jobs, hint = _carried_jobs(old, plan, self._index, change, k, new_av)
        jobs = _with_new_jobs(old, jobs, change.new_jobs)
        return _assemble(old, change, k, T2, nodes, jobs, series, tariffs), hint

    def _original_availability(self, nid: str, k: int, T2: int) -> list[bool]:
        """Availability of node ``nid`` in the problem first given, over the new horizon.

        The ``T2`` slots from slot ``k`` of the current horizon, which starts
        :attr:`offset` slots after the first one.
        """
        a0 = self.offset + k
        return list(self._avail0[nid][a0:a0 + T2])
