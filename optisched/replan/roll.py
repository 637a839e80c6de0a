"""The roll of one update: the current problem moved to ``now`` with its state carried.

:func:`roll_problem` builds the new problem (horizon from the slot of ``now`` to
the change's end): each node's on/off state and state of charge before ``now``
(:func:`carried_nodes`), the jobs that stay, running ones pinned, and the
placements of the others as the warm start (:func:`carried_jobs`), the arrivals
that can enter, and the data of the new window. :func:`next_index` gives its
index, updated rather than compiled where it can be.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from optisched.arrays import IntArray
from optisched.domain import Horizon, Job, Node, Problem, Scenario
from optisched.index import Index, compile_index
from optisched.plan import Flows, Plan
from optisched.replan.arrivals import accept_arrivals
from optisched.replan.step import Change, Roll
from optisched.rolling.incremental import append_jobs, drop_jobs, roll_index, with_node_rows
from optisched.rolling.store import TARIFF_KINDS, SeriesStore
from optisched.scenarios import window_scenarios

__all__ = ["carried_jobs", "carried_nodes", "next_index", "roll_problem"]


def roll_problem(problem: Problem, plan: Plan, index: Index, offset: int, change: Change,
                 store: SeriesStore) -> Roll:
    """The problem rolled to ``change.a_now``: state carried, jobs pinned, data applied.

    Parameters
    ----------
    problem, plan, index : Problem, Plan, Index
        The current problem (starting at absolute slot ``offset``), its plan and index.
    offset : int
        Absolute slot of the current horizon's start.
    change : Change
        What changed.
    store : SeriesStore
        The data with the update's values.

    Returns
    -------
    Roll
        The new problem (horizon ``[slot of now, change.end)``), the warm start,
        and what left.
    """
    k = change.a_now - offset
    T2 = change.end - change.a_now
    roll = Roll(problem=problem, k=k, hints={}, new_ids=set())
    nodes = carried_nodes(problem, plan.flows, change.soc, k)
    jobs = carried_jobs(problem, plan, index, change, k, store, roll)
    hz = problem.horizon
    horizon = Horizon.model_construct(start=store.time_of(change.a_now),
                                      slot_minutes=hz.slot_minutes, slots=T2)
    scenario = Scenario.model_construct(horizon=horizon, objective=problem.scenario.objective,
                                        battery=problem.scenario.battery,
                                        latency=problem.scenario.latency)
    known = {j.job_id for j in problem.jobs}
    jobs = accept_arrivals(jobs, change.new_jobs, scenario, nodes, known, roll)
    series, tariffs, feeders = store.problem_parts(problem, change.a_now, change.end)
    roll.problem = Problem.model_construct(
        scenario=scenario, nodes=nodes, jobs=jobs, node_series=series, tariffs=tariffs,
        feeders=feeders, latency_ms=problem.latency_ms, regions=problem.regions,
        scenarios=window_scenarios(problem, k, T2))  # beyond SPEC v1: each its own series
    return roll


def carried_nodes(problem: Problem, flows: Flows | None, soc: Mapping[str, float],
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


def carried_jobs(problem: Problem, plan: Plan, index: Index, change: Change, k: int,
                  store: SeriesStore, roll: Roll) -> list[Job]:
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


def next_index(roll: Roll, change: Change, old: Index) -> Index:
    """The index of ``roll.problem``, updated rather than compiled where it can be.

    At the same start with only jobs and data changed: arrivals appended, removed
    jobs dropped, the data rows of the nodes whose series changed replaced. After a
    roll: :func:`~optisched.rolling.incremental.roll_index` (the node part compiled,
    the jobs' windows moved). Compiled otherwise (and whenever those decline).
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
            rows = _data_rows(change, problem)
            ix = with_node_rows(ix, problem, rows) if (rows.size or "feeder_headroom" in
                                                      change.data) else ix
            ix = append_jobs(ix, problem, [j for j in problem.jobs
                                           if j.job_id in roll.new_ids])
    elif roll.k > 0 or not change.on_grid or problem.horizon.slots != old.T:
        ix = roll_index(old, problem, roll.k)
    if ix is None:
        ix = compile_index(problem)
    return ix


def _data_rows(change: Change, problem: Problem) -> IntArray:
    """Node positions whose PV, headroom or tariff data this update gives."""
    pos = {n.node_id: i for i, n in enumerate(problem.nodes)}
    rows = {pos[nid] for kind in ("pv", "headroom") for nid in change.data.get(kind, {})}
    tfs = {t for kind in TARIFF_KINDS for t in change.data.get(kind, {})}
    rows |= {i for i, n in enumerate(problem.nodes) if n.tariff in tfs}
    return np.array(sorted(rows), dtype=np.int64)
