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
BATCH_JOBS = 256
"""Most jobs whose places :func:`find_room` searches at once [jobs]."""
BATCH_OPTIONS = 16_384
"""Most options of those jobs [options] (the dense arrays are options × slots)."""


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
    tardiness costs alone, then the earliest start; ties: the earlier option, then the
    earlier start), and that place is taken from the free resources before the next job.
    Deterministic.

    The places are searched for a batch of jobs at once (:func:`_cheapest_places`, dense
    arrays of the batch's options × slots) against the free resources at the batch's
    start, then reserved in order: a job's place that is still free after the places
    reserved before it in the batch is its cheapest one now too (the free resources only
    shrink, costs do not change), a job without a place has none later either; at the
    first job whose place was taken the batch ends and the next starts there, half as
    long (twice as long after a batch without such a job). So the places are those of
    one job after the other.

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
        ``time.perf_counter()`` after which no further batch is looked at (the jobs so far
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
    ban = None
    if banned and part_of is not None:
        ban = (np.asarray(part_of), banned)
    count = np.diff(index.opt_job_ptr)
    jobs, nodes, starts, costs = [], [], [], []
    i, size = 0, BATCH_JOBS
    while i < order.size and time.perf_counter() <= until:
        # the batch: up to ``size`` jobs and BATCH_OPTIONS options (at least one job)
        take = order[i:i + size]
        fit = np.cumsum(count[take]) <= BATCH_OPTIONS
        take = take[:max(1, int(fit.sum()))]
        got_n, got_s, got_d, got_c = _cheapest_places(index, take, free, cum, ban)
        done = take.size
        for k, j in enumerate(take):
            n = int(got_n[k])
            if n < 0:
                continue
            s, d = int(got_s[k]), int(got_d[k])
            use = index.usage[j]
            if k and not (free[n, s:s + d] >= use[None, :] - TOL).all():
                done = k  # taken by a job before it in the batch: search again from here
                break
            free[n, s:s + d] -= use
            jobs.append(int(j))
            nodes.append(n)
            starts.append(s)
            costs.append(float(got_c[k]))
        i += done
        size = max(1, size // 2) if done < take.size else min(BATCH_JOBS, 2 * size)
    return Room(drop.astype(np.int64), np.array(jobs, dtype=np.int64),
                np.array(nodes, dtype=np.int64), np.array(starts, dtype=np.int64),
                np.array(costs, dtype=float))


def _cheapest_places(index: Index, jobs: IntArray, free: FloatArray, cum: FloatArray,
                     ban: tuple[IntArray, dict[int, set[int]]] | None = None
                     ) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """Every job's cheapest (node, start, duration, cost) whose resources are free for its
    whole run under ``free`` (ties: the earlier option, then the earlier start); node -1
    when it has none. ``ban``: the partition of every node and the partitions to leave
    out per job. One dense (options × slots) test over the options of all ``jobs``."""
    T = index.T
    ptr = index.opt_job_ptr
    lo, hi = ptr[jobs], ptr[jobs + 1]
    count = hi - lo
    seg = np.repeat(np.arange(jobs.size), count)  # the batch position of every option
    o = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count) + \
        np.repeat(lo, count)
    jo = jobs[seg]
    n = index.opt_node[o]
    e = np.maximum(index.opt_earliest[o], 0)
    d = index.opt_dur[o].astype(np.int64)
    last = np.minimum(index.opt_latest[o], T - d)
    keep = index.opt_latest[o] >= index.opt_earliest[o]
    if ban is not None:
        part_of, banned = ban
        for k, j in enumerate(jobs):
            no = banned.get(int(j))
            if no:
                rows = slice(int(np.searchsorted(seg, k)), int(np.searchsorted(seg, k, "right")))
                keep[rows] &= ~np.isin(part_of[n[rows]], list(no))
    # a slot blocks an option's node when some resource has less free than the job uses
    blocked = (free[n] < index.usage[jo][:, None, :] - TOL).any(axis=2)
    csum = np.zeros((o.size, T + 1), dtype=np.int64)
    csum[:, 1:] = np.cumsum(blocked, axis=1)
    s = np.arange(T)
    end = s[None, :] + d[:, None]
    endc = np.minimum(end, T)
    fits = ((np.take_along_axis(csum, endc, axis=1) == csum[:, :T])
            & (index.avail_run[n] >= d[:, None])
            & (s[None, :] >= e[:, None]) & (s[None, :] <= last[:, None]) & keep[:, None])
    cn = cum[n]
    cost = (index.opt_power[o][:, None] * (np.take_along_axis(cn, endc, axis=1) - cn[:, :T])
            + index.opt_latency_cost[o][:, None]
            + index.tardiness_cost(jo[:, None], end))
    cost = np.where(fits, cost, np.inf)
    row_best = cost.min(axis=1)
    row_start = cost.argmin(axis=1)  # the first start of the least cost
    first = np.cumsum(count) - count
    has = count > 0
    job_best = np.full(jobs.size, np.inf)
    job_best[has] = np.minimum.reduceat(row_best, first[has])
    pos = np.where(row_best == job_best[seg], np.arange(o.size), o.size)
    at = np.full(jobs.size, o.size)
    at[has] = np.minimum.reduceat(pos, first[has])  # the first option of the least cost
    ok = np.isfinite(job_best) & (at < o.size)
    at = np.minimum(at, max(o.size - 1, 0))
    out_n = np.where(ok, n[at], -1).astype(np.int64)
    out_s = np.where(ok, row_start[at], 0).astype(np.int64)
    out_d = np.where(ok, d[at], 0).astype(np.int64)
    return out_n, out_s, out_d, np.where(ok, job_best, np.inf)
