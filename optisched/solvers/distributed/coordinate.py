"""Coordination rounds: which jobs move between which partitions.

At the start of a round every job's current cost is priced at the marginal prices of
the current plan (:func:`optisched.solvers.distributed.coarse.price_proxy`), and the
workers price every *mobile* job (one with options in more than one partition) on each
other partition at that partition's prices (:meth:`PartitionWorker.costs`). A job
whose cheapest other partition is cheaper than where it is now (by more than
:data:`MIN_GAIN`) is a candidate move; pairs of partitions are weighted by the
estimated gain of the candidates between them, and a set of disjoint pairs is picked,
heaviest first (:func:`select_pairs`). Each picked pair is re-solved with its movers
exchanged (a distributed LNS whose neighbourhoods are partition pairs) and kept only
when the pair's exact cost falls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optisched.arrays import FloatArray, IntArray
from optisched.index import Index

__all__ = ["MIN_GAIN", "Move", "current_costs", "mobile_jobs", "propose_moves",
           "select_pairs"]

MIN_GAIN = 1e-6
"""Smallest estimated gain of a move [money], relative to max(1, |job cost|)."""


@dataclass(frozen=True)
class Move:
    """A pair of partitions and the jobs to exchange between them.

    Attributes
    ----------
    a, b : int
        The partitions (``a < b``).
    to_b, to_a : (k,) int
        Jobs moving from ``a`` to ``b`` and from ``b`` to ``a``.
    gain : float
        Estimated gain of all of them [money].
    """

    a: int
    b: int
    to_b: IntArray
    to_a: IntArray
    gain: float


def mobile_jobs(index: Index, part_of: IntArray) -> IntArray:
    """Jobs with options on more than one partition (the only ones that can move)."""
    if not index.opt_job.size:
        return np.zeros(0, dtype=np.int64)
    width = int(part_of.max()) + 1
    pairs = np.unique(index.opt_job * width + part_of[index.opt_node])
    counts = np.bincount(pairs // width, minlength=index.J)
    mob = counts > 1
    mob &= ~index.pinned
    return np.nonzero(mob)[0].astype(np.int64)


def current_costs(index: Index, pi: FloatArray, node: IntArray, start: IntArray) -> FloatArray:
    """Each job's cost where it is now at marginal prices ``pi`` (N, T): energy at ``pi``,
    latency and tardiness; its drop penalty when dropped [money]."""
    T = index.T
    cost = np.where(np.isnan(index.drop_penalty), np.inf, index.drop_penalty)
    runs = np.nonzero(node >= 0)[0]
    if runs.size:
        n, s = node[runs], start[runs]
        d = index.duration(runs, n)
        P = np.zeros((index.N, T + 1))
        P[:, 1:] = np.cumsum(pi, axis=1)
        a, b = np.clip(s, 0, T), np.clip(s + d, 0, T)
        power = index.job_power[runs] * index.power_factor[n]
        lat = index.latency_ms[runs, n] - index.latency_slo[runs]
        lat_cost = np.where(np.isfinite(lat) & (lat > 0),
                            index.latency_rate[runs] * np.nan_to_num(lat), 0.0)
        cost[runs] = (power * (P[n, b] - P[n, a]) + lat_cost
                      + index.tardiness_cost(runs, s + d))
    return np.asarray(cost)


def propose_moves(part_of_job: IntArray, current: FloatArray, best: FloatArray,
                  mobile: IntArray, tabu: set[tuple[int, int]], per_pair: int) -> list[Move]:
    """Candidate moves of mobile jobs to their cheapest other partition, grouped by pair.

    Parameters
    ----------
    part_of_job : (J,) int
        Partition of every job now (-1: none).
    current : (J,) float
        Its cost there [money].
    best : (P, J) float
        Its cheapest cost on every partition at that partition's prices [money].
    mobile : (M,) int
        Jobs that may move.
    tabu : set of (job, partition)
        Moves tried without success since the partitions last changed.
    per_pair : int
        Most jobs moved in each direction of a pair.

    Returns
    -------
    list of Move
        One per pair with a candidate, heaviest first (ties by pair).
    """
    if not mobile.size:
        return []
    src = part_of_job[mobile]
    costs = best[:, mobile].copy()
    ok = src >= 0
    costs[src[ok], np.nonzero(ok)[0]] = np.inf  # not its own partition
    for j, q in tabu:
        at = int(np.searchsorted(mobile, j))
        if at < mobile.size and mobile[at] == j:
            costs[q, at] = np.inf
    dst = np.argmin(costs, axis=0)
    gain = current[mobile] - costs[dst, np.arange(mobile.size)]
    want = ok & np.isfinite(gain) & (gain > MIN_GAIN * np.maximum(1.0, np.abs(current[mobile])))
    by_pair: dict[tuple[int, int], list[tuple[float, int, int]]] = {}
    for i in np.nonzero(want)[0]:
        a, b = int(src[i]), int(dst[i])
        by_pair.setdefault((min(a, b), max(a, b)), []).append((float(gain[i]),
                                                                int(mobile[i]), b))
    moves = []
    for (a, b), items in by_pair.items():
        items.sort(key=lambda t: (-t[0], t[1]))
        to_b = [j for _, j, d in items if d == b][:per_pair]
        to_a = [j for _, j, d in items if d == a][:per_pair]
        chosen = set(to_b) | set(to_a)
        total = sum(g for g, j, _ in items if j in chosen)
        moves.append(Move(a, b, np.array(sorted(to_b), dtype=np.int64),
                          np.array(sorted(to_a), dtype=np.int64), total))
    moves.sort(key=lambda m: (-m.gain, m.a, m.b))
    return moves


def select_pairs(moves: list[Move], limit: int) -> list[Move]:
    """Disjoint pairs, heaviest first, at most ``limit`` of them."""
    used: set[int] = set()
    out = []
    for m in moves:
        if m.a in used or m.b in used:
            continue
        out.append(m)
        used |= {m.a, m.b}
        if len(out) >= limit:
            break
    return out
