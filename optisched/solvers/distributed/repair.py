"""Dropped jobs that have room: free capacity of an assembled plan, and where each fits.

A decomposed plan drops jobs where a partition's eligible nodes are full, though other
nodes the job may use have room (``docs/algorithms/distributed.md`` §3). :func:`find_room`
answers, for the dropped droppable jobs of a global placement, which of them fit the
resources the plan leaves free (every resource of an eligible node over a whole run at a
feasible start; power, batteries and headroom are not checked: the partition's re-solve
and the evaluator decide those) and reserves one such place for each, one job after the
other (highest drop penalty per reference GPU-slot first), so that the places found never
overlap. The repair wave of the solver (``search.py``) re-solves the partitions of those
places with the jobs added there; the benchmark reports the same counts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from optisched.arrays import FloatArray, IntArray
from optisched.index import Index

__all__ = ["Room", "find_room", "free_resources"]

TOL = 1e-9
"""Tolerance on a resource's free amount [resource units]."""


@dataclass(frozen=True)
class Room:
    """Dropped jobs and the free places reserved for them.

    Attributes
    ----------
    dropped : (D,) int
        The droppable, unpinned jobs with an option that the placement drops.
    jobs : (K,) int
        Those of them with a free place (a subset of ``dropped``, in reservation order).
    node, start : (K,) int
        The place reserved for each (global node, start slot); no two overlap beyond the
        free resources.
    cost : (K,) float
        Its cost at the marginal prices given [money] (energy, latency, tardiness).
    """

    dropped: IntArray
    jobs: IntArray
    node: IntArray
    start: IntArray
    cost: FloatArray


def free_resources(index: Index, node: IntArray, start: IntArray) -> FloatArray:
    """Free amount of every resource per node and slot ``(N, T, R)`` under a placement
    (``node`` -1: dropped); 0 where the node is unavailable."""
    N, T = index.N, index.T
    R = index.capacity.shape[1]
    used = np.zeros((N, T + 1, R))
    run = np.nonzero(node >= 0)[0]
    if run.size:
        n = node[run]
        a = np.clip(start[run], 0, T)
        b = np.clip(start[run] + index.duration(run, n), 0, T)
        np.add.at(used, (n, a), index.usage[run])
        np.add.at(used, (n, b), -index.usage[run])
    used = np.cumsum(used, axis=1)[:, :T]
    free = index.capacity[:, None, :] - used
    free[~index.available] = 0.0
    return np.asarray(free)


def find_room(index: Index, node: IntArray, start: IntArray, work: FloatArray,
              pi: FloatArray | None = None, part_of: IntArray | None = None,
              banned: dict[int, set[int]] | None = None, until: float = math.inf) -> Room:
    """The dropped droppable jobs of a placement and a free place for each that has one.

    Jobs are taken by drop penalty per reference GPU-slot (``work``), highest first (ties
    by position); each gets its cheapest feasible (option, start) whose resources are free
    for the whole run at marginal prices ``pi`` ``(N, T)`` (default 0: the latency and
    tardiness costs alone, then the earliest start), and that place is taken from the free
    resources before the next job. Deterministic.

    Parameters
    ----------
    index : Index
        Compiled problem.
    node, start : (J,) int
        The placement (global node, -1: dropped; start slot).
    work : (J,) float
        Every job's work [reference GPU-slots].
    pi : (N, T) float, optional
        Marginal energy price [money/kW per slot].
    part_of : (N,) int, optional
        Partition of every node (with ``banned``).
    banned : dict of job -> set of int, optional
        Partitions where a job is not to be placed (tried without success).
    until : float
        ``time.perf_counter()`` after which no further job is looked at (the jobs so far
        keep their places; default: none).

    Returns
    -------
    Room
        The dropped jobs and the places reserved.
    """
    T = index.T
    has = np.diff(index.opt_job_ptr) > 0
    drop = np.nonzero((node < 0) & has & ~np.isnan(index.drop_penalty) & ~index.pinned)[0]
    empty = np.zeros(0, dtype=np.int64)
    if not drop.size:
        return Room(drop.astype(np.int64), empty, empty, empty, np.zeros(0))
    free = free_resources(index, node, start)
    cum = np.zeros((index.N, T + 1))
    if pi is not None:
        cum[:, 1:] = np.cumsum(pi, axis=1)
    density = index.drop_penalty[drop] / np.maximum(work[drop], 1e-9)
    order = drop[np.lexsort((drop, -density))]
    jobs, nodes, starts, costs = [], [], [], []
    banned = banned or {}
    for j in order:
        if time.perf_counter() > until:
            break
        no = banned.get(int(j))
        got = _cheapest_free(index, int(j), free, cum,
                             None if not no or part_of is None else (part_of, no))
        if got is None:
            continue
        n, s, d, c = got
        free[n, s:s + d] -= index.usage[j]
        jobs.append(int(j))
        nodes.append(n)
        starts.append(s)
        costs.append(c)
    return Room(drop.astype(np.int64), np.array(jobs, dtype=np.int64),
                np.array(nodes, dtype=np.int64), np.array(starts, dtype=np.int64),
                np.array(costs, dtype=float))


def _cheapest_free(index: Index, j: int, free: FloatArray, cum: FloatArray,
                   ban: tuple[IntArray, set[int]] | None = None
                   ) -> tuple[int, int, int, float] | None:
    """Job ``j``'s cheapest (node, start, duration, cost) whose resources are free for its
    whole run (ties: earlier option, earlier start), or None; ``ban``: the partition of
    every node and the partitions to leave out. The options are taken in groups of one
    window and duration (one per node speed, mostly), each a dense (options × starts)
    test."""
    T = index.T
    lo, hi = int(index.opt_job_ptr[j]), int(index.opt_job_ptr[j + 1])
    o = np.arange(lo, hi)
    keep = index.opt_latest[o] >= index.opt_earliest[o]
    if ban is not None:
        keep &= ~np.isin(ban[0][index.opt_node[o]], list(ban[1]))
    o = o[keep]
    if not o.size:
        return None
    n = index.opt_node[o]
    # a slot blocks a node when some resource has less free than the job uses
    blocked = (free[n] < index.usage[j][None, None, :] - TOL).any(axis=2)
    csum = np.zeros((o.size, T + 1), dtype=np.int64)
    csum[:, 1:] = np.cumsum(blocked, axis=1)
    e, l_, d = index.opt_earliest[o], index.opt_latest[o], index.opt_dur[o]
    groups = np.unique(np.stack([e, l_, d], axis=1), axis=0)
    best: tuple[float, int, int, int, int, int] | None = None  # cost, option, start, ...
    for ge, gl, gd in groups:
        rows = np.nonzero((e == ge) & (l_ == gl) & (d == gd))[0]
        s = np.arange(max(0, int(ge)), min(int(gl), T - int(gd)) + 1)
        if not s.size:
            continue
        cs = csum[rows]
        nn = n[rows]
        fits = (cs[:, s + gd] == cs[:, s]) & (index.avail_run[nn][:, s] >= gd)
        if not fits.any():
            continue
        cost = (index.opt_power[o[rows]][:, None] * (cum[nn][:, s + gd] - cum[nn][:, s])
                + index.opt_latency_cost[o[rows]][:, None]
                + index.tardiness_cost(np.full(s.size, j), s + gd)[None, :])
        cost = np.where(fits, cost, np.inf)
        r, c = np.unravel_index(int(np.argmin(cost)), cost.shape)  # first: option, start
        key = (float(cost[r, c]), int(o[rows[r]]), int(s[c]))
        if best is None or key < best[:3]:
            best = (*key, int(nn[r]), int(s[c]), int(gd))
    if best is None:
        return None
    return best[3], best[4], best[5], best[0]
