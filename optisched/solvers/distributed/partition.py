"""Partitions of the nodes, and a partition as a problem and an index of its own.

:func:`partition_nodes` cuts the nodes into partitions: whole dispatch groups (a coupled
feeder is never split, so every partition dispatches exactly on its own), nodes of one
user region together (jobs with latency SLOs mostly stay local), balanced by capacity
and node count. :func:`restrict_index` and :func:`sub_problem` give a partition with a
set of jobs as an :class:`~optisched.index.Index` and a
:class:`~optisched.domain.Problem` of their own, for the existing solvers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optisched.arrays import FloatArray, IntArray
from optisched.dispatch import dispatch_groups
from optisched.domain import Problem
from optisched.index import Index

__all__ = ["Partitioning", "job_work", "node_capacity", "partition_nodes", "restrict_index",
           "sub_problem"]

BIG_SHARE = 0.5
"""A dispatch group with more than this share of a partition's target weight is placed
first, largest first, on the lightest partition (longest-processing-time rule)."""


@dataclass(frozen=True)
class Partitioning:
    """Nodes cut into partitions.

    Attributes
    ----------
    part_of : (N,) int
        Partition of every node.
    nodes : list of (K_p,) int
        Sorted node positions of each partition.
    capacity : (P,) float
        Capacity of each partition [reference GPU-slots] (:func:`node_capacity`).
    """

    part_of: IntArray
    nodes: list[IntArray]
    capacity: FloatArray

    @property
    def count(self) -> int:
        """Number of partitions."""
        return len(self.nodes)


def job_work(index: Index) -> FloatArray:
    """Work of every job [reference GPU-slots]: its GPUs times its duration in slots at
    speed 1, the unit of :func:`node_capacity`."""
    return np.asarray(index.usage[:, 0] * index.duration_min / index.slot_minutes,
                      dtype=float)


def node_capacity(index: Index) -> FloatArray:
    """Capacity of every node ``gpus · speed · available slots`` [reference GPU-slots]."""
    return np.asarray(index.capacity[:, 0] * index.speed * index.available.sum(axis=1),
                      dtype=float)


def _home_region(index: Index) -> IntArray:
    """The user region closest (by latency) to every node; ``G`` (one past the last) when
    no latency to any region is known."""
    lat = index.latency_ms.by_region[:-1]  # (G, N), without the no-region row
    G = lat.shape[0]
    if G == 0:
        return np.zeros(index.N, dtype=np.int64)
    known = ~np.isnan(lat)
    filled = np.where(known, lat, np.inf)
    home = np.argmin(filled, axis=0).astype(np.int64)
    home[~known.any(axis=0)] = G
    return home


def partition_nodes(index: Index, count: int) -> Partitioning:
    """Cut the nodes into at most ``count`` partitions.

    1. **Atoms**: the dispatch groups (:func:`optisched.dispatch.dispatch_groups`): a
       feeder with a finite headroom couples its nodes and stays whole, every other node
       is an atom of its own. There are never more partitions than atoms.
    2. **Weight** of an atom: half its share of the capacity (:func:`node_capacity`), half
       its share of the nodes (sub-solve work grows with both).
    3. **Big atoms** (more than :data:`BIG_SHARE` of a partition's target weight) go
       first, largest first, to the lightest partition.
    4. **Locality**: the other atoms are ordered by their nodes' home region (the user
       region of least latency; majority vote within a feeder), then by position, and cut
       into consecutive runs that fill each partition up to its target weight; so a
       region is split only where it is larger than a partition.

    Deterministic: no random draw, ties by position.

    Parameters
    ----------
    index : Index
        Compiled problem.
    count : int
        Partitions wanted (at least 1).
    """
    groups, _ = dispatch_groups(index)
    groups = sorted(groups, key=lambda g: int(g[0]))
    P = max(1, min(int(count), len(groups)))
    cap = node_capacity(index)
    cap_total = float(cap.sum())
    share = cap / cap_total if cap_total > 0 else np.full(index.N, 1.0 / max(index.N, 1))
    weight_n = np.asarray(0.5 / max(index.N, 1) + 0.5 * share, dtype=float)
    w = np.array([float(weight_n[g].sum()) for g in groups])
    target = float(w.sum()) / P
    home = _home_region(index)
    keys = np.array([int(np.bincount(home[g]).argmax()) for g in groups], dtype=np.int64)
    load = np.zeros(P)
    assign = np.full(len(groups), -1, dtype=np.int64)
    big = [k for k in np.argsort(-w, kind="stable") if w[k] > BIG_SHARE * target]
    for k in big:
        p = int(np.argmin(load))
        assign[k] = p
        load[p] += w[k]
    rest = [k for k in np.lexsort((np.arange(len(groups)), keys)) if assign[k] < 0]
    p = 0
    for k in rest:
        while p < P - 1 and load[p] + 0.5 * w[k] > target:
            p += 1
        assign[k] = p
        load[p] += w[k]
    part_of = np.full(index.N, -1, dtype=np.int64)
    for k, g in enumerate(groups):
        part_of[g] = assign[k]
    used = np.unique(part_of)
    part_of = np.searchsorted(used, part_of).astype(np.int64)  # drop empty partitions
    nodes = [np.nonzero(part_of == q)[0].astype(np.int64) for q in range(used.size)]
    capacity = np.array([float(cap[n].sum()) for n in nodes])
    return Partitioning(part_of=part_of, nodes=nodes, capacity=capacity)


JOBS_PER_PARTITION = 5000
"""Jobs per partition by default (a greedy construction of 5,000 jobs takes seconds)."""
NODES_PER_PARTITION = 500
"""Nodes per partition by default: an exact dispatch of every node of a partition (greedy
does one per construction) takes seconds at 500 battery nodes on 50-home feeders."""


def default_partitions(index: Index, workers: int) -> int:
    """Partitions when the option ``partitions`` is not given: one below 200 jobs or 4
    nodes, else ``max(workers, ceil(J / JOBS_PER_PARTITION), ceil(N / NODES_PER_PARTITION))``."""
    if index.J < 200 or index.N < 4:
        return 1
    return max(int(workers), math.ceil(index.J / JOBS_PER_PARTITION),
               math.ceil(index.N / NODES_PER_PARTITION))


def restrict_index(index: Index, nodes: IntArray, jobs: IntArray) -> Index:
    """The index of nodes ``nodes`` and jobs ``jobs`` (sorted positions) alone.

    Equal to ``compile_index(sub_problem(problem, nodes, jobs))`` (eligibility is decided
    per (job, node) pair), without compiling: every array is a slice of ``index``. A
    pinned job's node must be among ``nodes``.
    """
    nodes = np.asarray(nodes, dtype=np.int64)
    jobs = np.asarray(jobs, dtype=np.int64)
    node_pos = np.full(index.N, -1, dtype=np.int64)
    node_pos[nodes] = np.arange(nodes.size)
    job_pos = np.full(index.J, -1, dtype=np.int64)
    job_pos[jobs] = np.arange(jobs.size)
    keep = (job_pos[index.opt_job] >= 0) & (node_pos[index.opt_node] >= 0)
    o = np.nonzero(keep)[0]
    opt_job = job_pos[index.opt_job[o]]
    ptr = np.concatenate([[0], np.cumsum(np.bincount(opt_job, minlength=jobs.size))]
                         ).astype(np.int64)
    fused = np.unique(index.feeder_of[nodes])
    fused = fused[fused >= 0]
    feeder_pos = np.full(len(index.feeder_ids), -1, dtype=np.int64)
    feeder_pos[fused] = np.arange(fused.size)
    f_of = index.feeder_of[nodes]
    pinned_node = index.pinned_node[jobs]
    pinned_node = np.where(pinned_node >= 0, node_pos[np.maximum(pinned_node, 0)], -1)
    node_ids = [index.node_ids[int(n)] for n in nodes]
    job_ids = [index.job_ids[int(j)] for j in jobs]
    return Index(
        T=index.T, dt=index.dt, node_ids=node_ids, job_ids=job_ids,
        resources=list(index.resources),
        pv=index.pv[nodes], headroom=index.headroom[nodes], available=index.available[nodes],
        avail_run=index.avail_run[nodes], price=index.price[nodes],
        export_price=index.export_price[nodes], carbon=index.carbon[nodes],
        import_cost=index.import_cost[nodes], capacity=index.capacity[nodes],
        idle_kw=index.idle_kw[nodes], export_kw=index.export_kw[nodes],
        can_sleep=index.can_sleep[nodes], initially_on=index.initially_on[nodes],
        end_off=index.end_off[nodes], startup_cost=index.startup_cost[nodes],
        shutdown_cost=index.shutdown_cost[nodes], battery_kwh=index.battery_kwh[nodes],
        soc_init=index.soc_init[nodes], soc_min=index.soc_min[nodes],
        soc_max=index.soc_max[nodes], charge_kw=index.charge_kw[nodes],
        discharge_kw=index.discharge_kw[nodes], eff_charge=index.eff_charge[nodes],
        eff_discharge=index.eff_discharge[nodes], degradation=index.degradation[nodes],
        demand_charge=index.demand_charge[nodes],
        feeder_ids=[index.feeder_ids[int(f)] for f in fused],
        feeder_of=(np.where(f_of >= 0, feeder_pos[np.maximum(f_of, 0)], -1) if feeder_pos.size
                   else np.full(nodes.size, -1)).astype(np.int64),
        feeder_headroom=index.feeder_headroom[fused],
        usage=index.usage[jobs], job_power=index.job_power[jobs], release=index.release[jobs],
        deadline=index.deadline[jobs], hard_deadline=index.hard_deadline[jobs],
        tardiness_rate=index.tardiness_rate[jobs], drop_penalty=index.drop_penalty[jobs],
        pinned_node=pinned_node.astype(np.int64), pinned_start=index.pinned_start[jobs],
        opt_job=opt_job, opt_node=node_pos[index.opt_node[o]], opt_dur=index.opt_dur[o],
        opt_power=index.opt_power[o], opt_latency_cost=index.opt_latency_cost[o],
        opt_earliest=index.opt_earliest[o], opt_latest=index.opt_latest[o], opt_job_ptr=ptr,
        latency_ms=index.latency_ms.subset(jobs, nodes),
        terminal_initial=index.terminal_initial, slot_minutes=index.slot_minutes,
        duration_min=index.duration_min[jobs], speed=index.speed[nodes],
        power_factor=index.power_factor[nodes], latency_slo=index.latency_slo[jobs],
        latency_rate=index.latency_rate[jobs], carbon_price=index.carbon_price,
        node_pos={nid: k for k, nid in enumerate(node_ids)},
        job_pos={jid: k for k, jid in enumerate(job_ids)},
    )


def sub_problem(problem: Problem, nodes: IntArray, jobs: IntArray) -> Problem:
    """The problem of nodes ``nodes`` and jobs ``jobs`` (positions) alone.

    Built without validation (``model_construct``) from the same node and job objects:
    their series, the tariffs and feeders they use, their latency rows and every region.
    A feeder keeps its whole headroom, so the partition must hold all its nodes
    (:func:`partition_nodes` keeps feeders whole).
    """
    sub_nodes = [problem.nodes[int(n)] for n in nodes]
    ids = {n.node_id for n in sub_nodes}
    feeders = {n.feeder for n in sub_nodes if n.feeder}
    tariffs = {n.tariff for n in sub_nodes}
    return Problem.model_construct(
        scenario=problem.scenario, nodes=sub_nodes, jobs=[problem.jobs[int(j)] for j in jobs],
        node_series={k: v for k, v in problem.node_series.items() if k in ids},
        tariffs={k: v for k, v in problem.tariffs.items() if k in tariffs},
        feeders={k: v for k, v in problem.feeders.items() if k in feeders},
        latency_ms={k: v for k, v in problem.latency_ms.items() if k in ids},
        regions=dict(problem.regions),
    )
