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

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.index import Index

__all__ = ["Moves", "Room", "find_room", "free_resources", "make_room"]

log = logging.getLogger(__name__)

TOL = 1e-9
"""Tolerance on a resource's free amount [resource units]."""
BATCH_JOBS = 256
"""Most jobs whose options :func:`find_room` searches at once [jobs]."""
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


@dataclass(frozen=True)
class Moves:
    """Running jobs moved to make room for dropped ones (:func:`make_room`).

    Attributes
    ----------
    jobs : (M,) int
        The moved jobs.
    node, start : (M,) int
        The place reserved for each (global node, start slot), on a node of the
        partition it runs in.
    """

    jobs: IntArray
    node: IntArray
    start: IntArray


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
              banned: dict[int, set[int]] | None = None, until: float = math.inf,
              targets: IntArray | None = None, allowed: BoolArray | None = None) -> Room:
    """The dropped droppable jobs of a placement and a free place for each that has one.

    Jobs are taken by drop penalty per reference GPU-slot (``work``), highest first (ties
    by position); each gets its cheapest feasible (option, start) whose resources are free
    for the whole run at marginal prices ``pi`` ``(N, T)`` (default 0: the latency and
    tardiness costs alone, then the earliest start; ties: the earlier option, then the
    earlier start), and that place is taken from the free resources before the next job.
    Deterministic.

    The cheapest start of every option depends only on the free resources of its node.
    So the options of a batch of jobs are searched at once (:func:`_option_places`, dense
    arrays of options × slots) against the free resources at the batch's start, and when
    a job's turn comes only its options on nodes where a place was reserved since are
    searched again: the places are exactly those of one job after the other.

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
    targets : (D,) int, optional
        The jobs to find places for instead of the dropped droppable ones (each dropped in
        ``node``; :func:`make_room` moves running jobs with it).
    allowed : (O,) bool, optional
        The options that may be used (default: all).

    Returns
    -------
    Room
        The dropped jobs and the places reserved.
    """
    T = index.T
    ptr = index.opt_job_ptr
    has = np.diff(ptr) > 0
    if targets is None:
        drop = np.nonzero((node < 0) & has & ~np.isnan(index.drop_penalty)
                          & ~index.pinned)[0]
    else:
        drop = np.asarray(targets, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    if not drop.size:
        return Room(drop.astype(np.int64), empty, empty, empty, np.zeros(0))
    free = free_resources(index, node, start)
    cum = np.zeros((index.N, T + 1))
    if pi is not None:
        cum[:, 1:] = np.cumsum(pi, axis=1)
    density = np.nan_to_num(index.drop_penalty[drop], nan=np.inf) / np.maximum(work[drop],
                                                                               1e-9)
    order = drop[np.lexsort((drop, -density))]
    banned = banned or {}
    count = np.diff(ptr)
    # options searched per job (batch sizes): with ``allowed`` those alone
    size = count if allowed is None else np.bincount(index.opt_job[allowed],
                                                     minlength=index.J)
    version = np.zeros(index.N, dtype=np.int64)  # places reserved on each node so far
    jobs, nodes, starts, costs = [], [], [], []
    i = 0
    while i < order.size and time.perf_counter() <= until:
        # a batch: up to BATCH_JOBS jobs and BATCH_OPTIONS options (at least one job)
        take = order[i:i + BATCH_JOBS]
        take = take[:max(1, int((np.cumsum(size[take]) <= BATCH_OPTIONS).sum()))]
        i += take.size
        lo = ptr[take]
        first = np.cumsum(count[take]) - count[take]  # each job's first row
        o = np.arange(int(count[take].sum())) - np.repeat(first, count[take]) + \
            np.repeat(lo, count[take])
        jo = np.repeat(take, count[take])
        keep = index.opt_latest[o] >= index.opt_earliest[o]
        if banned and part_of is not None:
            for k, j in enumerate(take):
                no = banned.get(int(j))
                if no:
                    span = slice(int(first[k]), int(first[k] + count[j]))
                    keep[span] &= ~np.isin(part_of[index.opt_node[o[span]]], list(no))
        rows_of = count[take]
        if allowed is not None:  # the allowed options alone are searched
            keep &= allowed[o]
            rows_of = np.bincount(np.repeat(np.arange(take.size), count[take])[keep],
                                  minlength=take.size)
            o, jo, keep = o[keep], jo[keep], keep[keep]
            first = np.cumsum(rows_of) - rows_of
        n = index.opt_node[o]
        best, when = _option_places(index, o, jo, free, cum, keep)
        seen = version[n]
        for k, j in enumerate(take):
            if time.perf_counter() > until:
                i = order.size
                break
            rows = np.arange(int(first[k]), int(first[k] + rows_of[k]))
            if not rows.size:
                continue
            stale = rows[seen[rows] != version[n[rows]]]
            if stale.size:  # a place was reserved on their node since they were searched
                best[stale], when[stale] = _option_places(index, o[stale], jo[stale], free,
                                                          cum, keep[stale])
                seen[stale] = version[n[stale]]
            r = int(rows[0] + np.argmin(best[rows]))  # the first option of the least cost
            if not np.isfinite(best[r]):
                continue
            nn, ss, dd = int(n[r]), int(when[r]), int(index.opt_dur[o[r]])
            free[nn, ss:ss + dd] -= index.usage[j]
            version[nn] += 1
            jobs.append(int(j))
            nodes.append(nn)
            starts.append(ss)
            costs.append(float(best[r]))
    return Room(drop.astype(np.int64), np.array(jobs, dtype=np.int64),
                np.array(nodes, dtype=np.int64), np.array(starts, dtype=np.int64),
                np.array(costs, dtype=float))


def _option_places(index: Index, o: IntArray, jo: IntArray, free: FloatArray,
                   cum: FloatArray, keep: BoolArray) -> tuple[FloatArray, IntArray]:
    """For options ``o`` of jobs ``jo`` (``keep``: not left out), the least cost of a start
    whose resources are free for the whole run under ``free`` (``inf``: none) and the first
    such start. One dense (options × slots) test: free resources, the node's available
    run, the window."""
    T = index.T
    n = index.opt_node[o]
    e = np.maximum(index.opt_earliest[o], 0)
    d = index.opt_dur[o].astype(np.int64)
    last = np.minimum(index.opt_latest[o], T - d)
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
    return cost.min(axis=1), cost.argmin(axis=1).astype(np.int64)


def make_room(index: Index, node: IntArray, start: IntArray, work: FloatArray, room: Room,
              part_of: IntArray, pi: FloatArray | None = None,
              banned: dict[int, set[int]] | None = None,
              until: float = math.inf) -> tuple[Room, Moves]:
    """More places for the dropped jobs that :func:`find_room` found none for, by moving
    running jobs off the nodes those jobs may use (``docs/algorithms/distributed.md`` §3).

    With ``room``'s places taken, the **scarce** nodes are those some dropped job without
    a place may use (an 80 GB host where the job needs one). Every running, unpinned job
    on a scarce node that may also run on a node of its partition that is not scarce is
    lifted from its place and given a free place on such a node (:func:`find_room` with
    those options alone); then :func:`find_room` looks again for the dropped jobs, in the
    room the moved jobs left. A moved job goes back to its old place when that is still
    free (its node got no dropped job, or one that did not need its room: jobs in reverse
    order of their moves), so that only the moves a new place needs are kept. Every move
    stays within its partition: the partition's re-solve holds both the moved job and
    the dropped job that takes its room. Deterministic.

    Parameters
    ----------
    index, node, start, work, pi, banned, until
        As for :func:`find_room` (the placement: global node, -1 dropped, and start).
    room : Room
        :func:`find_room` of that placement.
    part_of : (N,) int
        Partition of every node.

    Returns
    -------
    tuple of Room, Moves
        ``room`` with the new places appended, and the moves they need.
    """
    empty = np.zeros(0, dtype=np.int64)
    none = Moves(empty, empty, empty)
    left = np.setdiff1d(room.dropped, room.jobs)
    if not left.size or time.perf_counter() > until:
        return room, none
    n1, s1 = node.copy(), start.copy()
    n1[room.jobs], s1[room.jobs] = room.node, room.start
    without = np.zeros(index.J, dtype=bool)
    without[left] = True
    scarce = np.zeros(index.N, dtype=bool)
    scarce[index.opt_node[without[index.opt_job]]] = True  # their options' nodes
    at = n1[index.opt_job]
    # options off the scarce nodes, in the partition the job runs in
    off = (at >= 0) & ~scarce[index.opt_node]
    off &= part_of[index.opt_node] == part_of[np.maximum(at, 0)]
    flexible = np.bincount(index.opt_job[off], minlength=index.J) > 0
    lift = np.nonzero((n1 >= 0) & scarce[np.maximum(n1, 0)] & flexible & ~index.pinned)[0]
    if not lift.size:
        return room, none
    n2 = n1.copy()
    n2[lift] = -1
    moved = find_room(index, n2, s1, work, pi, until=until, targets=lift, allowed=off)
    if not moved.jobs.size:
        return room, none
    n2[lift] = n1[lift]
    s2 = s1.copy()
    n2[moved.jobs], s2[moved.jobs] = moved.node, moved.start
    more = find_room(index, n2, s2, work, pi, part_of, banned, until)
    if not more.jobs.size:
        return room, none
    # back to their old places where those are still free (nothing else moves there)
    n3, s3 = n2.copy(), s2.copy()
    n3[more.jobs], s3[more.jobs] = more.node, more.start
    free = free_resources(index, n3, s3)
    back = np.zeros(moved.jobs.size, dtype=bool)
    for k in range(moved.jobs.size - 1, -1, -1):
        j = int(moved.jobs[k])
        n, s = int(n1[j]), int(s1[j])
        run = free[n, s:s + int(index.duration(j, n))]
        if (run >= index.usage[j] - TOL).all():
            back[k] = True
            run -= index.usage[j]
    stay = ~back
    log.debug("make_room: %d jobs lifted off %d scarce nodes, %d moved, %d kept moved; "
              "%d more dropped jobs placed", lift.size, int(scarce.sum()), moved.jobs.size,
              int(stay.sum()), more.jobs.size)
    out = Room(room.dropped, np.concatenate([room.jobs, more.jobs]),
               np.concatenate([room.node, more.node]),
               np.concatenate([room.start, more.start]),
               np.concatenate([room.cost, more.cost]))
    return out, Moves(moved.jobs[stay], moved.node[stay], moved.start[stay])
