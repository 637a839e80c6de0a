"""Coarse assignment of jobs to partitions: aggregate capacity and marginal prices.

Before any partition is solved, every job gets a partition from a small LP (a
transportation model, solved by HiGHS through :mod:`optisched.backends.highs`):

    min  Σ_{j,p} m_jp x_jp + Σ_j drop_j y_j
    s.t. Σ_p x_jp + y_j = 1                          every job j (y_j only if droppable)
         Σ_j g_jpb x_jp ≤ ρ · cap_pb                  every partition p and time block b
         x, y ≥ 0

``m_jp`` is the job's cheapest placement on the nodes of partition ``p`` at marginal
prices ``π⁰`` (:func:`price_proxy`; the workers compute it, in parallel, with
:func:`optisched.bounds.lagrangian.job_minima`), ``cap_pb`` the partition's GPU-slots
(``gpus · speed`` summed over its available node-slots of block ``b``), ``g_jpb`` the
GPU-slots of that cheapest placement spread evenly over the job's start window, and
``ρ`` = :data:`FILL` leaves room for what the aggregate cannot see (packing, power,
headroom). Each job goes to the partition of its largest ``x_jp`` (ties: cheaper, then
lower partition); a job the LP would drop still goes to its cheapest partition (its
sub-solve decides), a pinned job to its node's partition, a job without any option to
none (-1, dropped). Each job brings its :data:`CANDIDATES` cheapest partitions; the LP is
solved by interior point without crossover (only the largest ``x_jp`` matters).

The LP's job-row duals are every job's **price** under aggregate congestion: the cost of
serving it at the margin (its cheapest placement plus the capacity prices of the blocks
it fills), at most its drop penalty. The bound (``docs/algorithms/distributed.md`` §5)
lets a mobile job leave a partition at that price, so that a partition's capacity prices
rise where the city is congested (at the idle prices alone every job could leave at
about nothing, and no capacity price rose).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from optisched.arrays import FloatArray, IntArray
from optisched.backends import highs as hs
from optisched.index import Index

__all__ = ["BLOCKS", "FILL", "Assignment", "assign_jobs", "block_of_slots", "price_proxy"]

log = logging.getLogger(__name__)

BLOCKS = 8
"""Time blocks of the capacity rows (3 h each over a day of 96 slots)."""
FILL = 0.85
"""Share of a partition's aggregate GPU-slots the coarse model may fill."""
CANDIDATES = 3
"""Partitions per job in the LP: its cheapest ones (a job eligible everywhere would
otherwise bring a column for every partition)."""


def price_proxy(index: Index, load: FloatArray | None = None,
                grid_import: FloatArray | None = None,
                grid_export: FloatArray | None = None) -> FloatArray:
    """Marginal price of one more kW per node and slot [money/kW·slot], ``(N, T)``.

    ``Δ · import_cost`` where the next kW is imported; ``Δ · export_price`` (positive) where
    it would come out of paid export; 0 where it comes out of curtailed PV. Without flows
    the load is the idle draw of the nodes that cannot sleep and PV covers it first. A
    battery's ability to shift energy is not seen: the proxy only steers which partition
    and which moves are tried; every accepted plan is priced exactly.
    """
    dt = index.dt
    buy = dt * index.import_cost
    if grid_import is None or grid_export is None:
        if load is None:
            load = (~index.can_sleep[:, None] & index.available) * index.idle_kw[:, None]
        surplus = index.pv - load > 1e-9
        sell = dt * np.where(index.export_kw[:, None] > 0, np.maximum(index.export_price, 0.0),
                             0.0)
        return np.asarray(np.where(surplus, sell, buy))
    exporting = grid_export > 1e-6
    importing = grid_import > 1e-6
    sell = dt * np.maximum(index.export_price, 0.0)
    return np.asarray(np.where(importing | ~exporting, buy, sell))


@dataclass(frozen=True)
class Assignment:
    """The coarse model's answer.

    Attributes
    ----------
    part : (J,) int
        Partition of every job (-1: none).
    price : (J,) float
        Every job's price under aggregate congestion, the dual of its job row [money]
        (NaN where the LP gave none: no LP, a job outside it, or no valid duals).
    """

    part: IntArray
    price: FloatArray


def block_of_slots(T: int) -> IntArray:
    """Block of every slot."""
    B = max(1, min(BLOCKS, T))
    return np.minimum((np.arange(T) * B) // T, B - 1).astype(np.int64)


def assign_jobs(index: Index, part_of: IntArray, best: FloatArray, option: IntArray,
                time_limit: float = 60.0) -> Assignment:
    """Partition and price of every job from the coarse LP (module docstring).

    Parameters
    ----------
    index : Index
        Compiled problem.
    part_of : (N,) int
        Partition of every node.
    best : (P, J) float
        Cheapest cost of each job on each partition [money] (``inf``: no option there).
    option : (P, J) int
        That option.
    time_limit : float
        Limit of the LP [s]; without its solution every job goes to its cheapest partition.

    Returns
    -------
    Assignment
        Every job's partition (-1: none) and price (NaN without one).
    """
    P, J = best.shape
    out = np.full(J, -1, dtype=np.int64)
    price = np.full(J, np.nan)
    pin = index.pinned & (np.diff(index.opt_job_ptr) > 0)
    out[pin] = part_of[index.opt_node[index.opt_job_ptr[:-1][pin]]]
    free = np.nonzero(~pin & np.isfinite(best).any(axis=0))[0]
    if not free.size:
        return Assignment(out, price)
    cheapest = np.argmin(best[:, free], axis=0)
    if P == 1:
        out[free] = 0
        return Assignment(out, price)
    lp = _transport_lp(index, part_of, best, option, free, FILL)
    h = hs.load(lp.model)
    hs.configure(h, threads=1, presolve=True, solver="ipm", crossover=False,
                 time_limit=time_limit)
    ran = hs.run(h)
    sol = hs.solution(h)
    if not (ran.optimal and sol.value_valid):  # e.g. over-full in aggregate
        log.info("coarse assignment LP: %s; jobs go to their cheapest partitions", ran.text)
        out[free] = cheapest
        return Assignment(out, price)
    if sol.dual_valid:  # the job rows follow the P·B capacity rows
        y = sol.row_duals()[lp.blocks[0] * lp.blocks[1]:]
        if y.size == free.size and np.isfinite(y).all():
            price[free] = y
    pp, jj, cost = lp.part, lp.job, lp.cost
    x = sol.primal()[:pp.size]
    # per job: largest x, then cheaper, then lower partition
    order = np.lexsort((pp, cost, -np.round(x, 9), jj))
    first = np.ones(order.size, dtype=bool)
    first[1:] = jj[order][1:] != jj[order][:-1]
    lead = order[first]
    out[jj[lead]] = pp[lead]
    dropped = np.zeros(J, dtype=bool)
    dropped[jj[lead]] = x[lead] < 1e-9  # the LP drops it: cheapest partition decides
    dj = np.nonzero(dropped)[0]
    if dj.size:
        out[dj] = np.argmin(best[:, dj], axis=0)
    return Assignment(out, price)


@dataclass
class _Transport:
    """The transportation LP and its columns (partition, job, cost)."""

    model: hs.LinearModel
    part: IntArray
    job: IntArray
    cost: FloatArray
    blocks: tuple[int, int]


def _transport_lp(index: Index, part_of: IntArray, best: FloatArray, option: IntArray,
                  free: IntArray, fill: float) -> _Transport:
    """The LP of the module docstring over the ``free`` jobs (each with its
    :data:`CANDIDATES` cheapest partitions) with capacity rows ``fill · cap_pb`` net of the
    other jobs that have an option (at their first option)."""
    P, J = best.shape
    # columns: (partition, free job), each job's CANDIDATES cheapest partitions
    sub = best[:, free]
    rank = np.argsort(np.argsort(sub, axis=0, kind="stable"), axis=0, kind="stable")
    pp, kk = np.nonzero(np.isfinite(sub) & (rank < CANDIDATES))
    jj = free[kk]
    cost = best[pp, jj]
    o = option[pp, jj]
    T = index.T
    blk = block_of_slots(T)
    B = int(blk.max()) + 1
    # capacity of every (partition, block) in reference GPU-slots
    gpu_slots = index.capacity[:, 0:1] * index.speed[:, None] * index.available
    cap = np.zeros((P, B))
    np.add.at(cap, (np.repeat(part_of, T), np.tile(blk, index.N)), gpu_slots.ravel())
    # jobs with one partition only (and pinned ones) use its capacity first: their first
    # option's GPU-slots, spread over the window like the columns below
    fixed = np.nonzero((np.diff(index.opt_job_ptr) > 0) & ~np.isin(np.arange(J), free))[0]
    if fixed.size:
        fo = index.opt_job_ptr[fixed]
        cap -= _block_use(index, fixed, fo, blk, part_of[index.opt_node[fo]], P)
        cap = np.maximum(cap, 0.0)
    # use of every column: GPU-slots of its placement, spread over the job's window
    use = index.usage[jj, 0] * index.opt_dur[o] * index.speed[index.opt_node[o]]
    lo = index.opt_earliest[o]
    hi = np.minimum(index.opt_latest[o] + index.opt_dur[o], T)  # window end (exclusive)
    width = np.maximum(hi - lo, 1)
    rows, cols, vals = [], [], []
    n_cols = pp.size
    for b in range(B):
        slots = np.nonzero(blk == b)[0]
        a, z = int(slots[0]), int(slots[-1]) + 1
        share = np.clip(np.minimum(hi, z) - np.maximum(lo, a), 0, None) / width
        nz = np.nonzero(share > 0)[0]
        rows.append(pp[nz] * B + b)
        cols.append(nz)
        vals.append(use[nz] * share[nz])
    drop = index.drop_penalty[free]
    droppable = np.nonzero(~np.isnan(drop))[0]
    # job rows after the capacity rows
    job_row = P * B + np.searchsorted(free, jj)
    rows += [job_row, P * B + droppable]
    cols += [np.arange(n_cols), n_cols + np.arange(droppable.size)]
    vals += [np.ones(n_cols), np.ones(droppable.size)]
    n_all = n_cols + droppable.size
    A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(P * B + free.size, n_all))
    row_lo = np.concatenate([np.full(P * B, -np.inf), np.ones(free.size)])
    row_hi = np.concatenate([fill * cap.ravel(), np.ones(free.size)])
    c = np.concatenate([cost, drop[droppable]])
    model = hs.LinearModel(A=A, cost=c, col_lb=np.zeros(n_all), col_ub=np.ones(n_all),
                           row_lo=row_lo, row_hi=row_hi)
    return _Transport(model, pp.astype(np.int64), jj.astype(np.int64), cost, (P, B))


def _block_use(index: Index, jobs: IntArray, options: IntArray, blk: IntArray,
               parts: IntArray, P: int) -> FloatArray:
    """GPU-slots ``(P, B)`` of ``jobs`` at ``options`` on partitions ``parts``, each spread
    evenly over its start window and run."""
    T = index.T
    B = int(blk.max()) + 1
    use = index.usage[jobs, 0] * index.opt_dur[options] * index.speed[index.opt_node[options]]
    lo = index.opt_earliest[options]
    hi = np.minimum(index.opt_latest[options] + index.opt_dur[options], T)
    width = np.maximum(hi - lo, 1)
    out = np.zeros((P, B))
    for b in range(B):
        slots = np.nonzero(blk == b)[0]
        a, z = int(slots[0]), int(slots[-1]) + 1
        share = np.clip(np.minimum(hi, z) - np.maximum(lo, a), 0, None) / width
        np.add.at(out[:, b], parts, use * share)
    return out
