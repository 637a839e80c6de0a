"""Coarse assignment of jobs to partitions: aggregate capacity and marginal prices.

Before any partition is solved, every job gets a partition from a small LP (a
transportation model, solved by HiGHS through :mod:`optisched.backends.highs`):

    min  Σ_{j,p} m_jp x_jp + Σ_j drop_j y_j
    s.t. Σ_p x_jp + y_j = 1                          every job j (y_j only if droppable)
         Σ_j g_jpb x_jp ≤ ρ · cap_pb                  every partition p and time block b
         Σ_{j: E_jp ⊆ U} g_jpb x_jp ≤ ρ · cap_Ub      every eligibility class U of p, block b
         x, y ≥ 0

``m_jp`` is the job's cheapest placement on the nodes of partition ``p`` at marginal
prices ``π⁰`` (:func:`price_proxy`; the workers compute it, in parallel, with
:func:`optisched.bounds.lagrangian.job_minima`), ``cap_pb`` the partition's GPU-slots
(``gpus · speed`` summed over its available node-slots of block ``b``), ``g_jpb`` the
GPU-slots of that cheapest placement spread evenly over the job's start window, and
``ρ`` = :data:`FILL` leaves room for what the aggregate cannot see (packing, power,
headroom). ``E_jp`` is the set of nodes of ``p`` job ``j`` may use: the jobs of one set
are an **eligibility class** of ``p``, and the :data:`CLASSES` classes of ``p`` whose own
jobs demand most of their nodes' GPU-slots (at least :data:`CLASS_PRESSURE`) get rows of
their own, charged with every job whose set lies within the class's nodes (a job that
needs an 80 GB host cannot use a partition's homes; before 2026-12-03 only the pooled row
was there, and the LP sent such jobs to partitions whose few eligible nodes were full).
Each job goes to the partition of its largest ``x_jp`` (ties: cheaper, then
lower partition); a job the LP would drop still goes to its cheapest partition (its
sub-solve decides), a pinned job to its node's partition, a job without any option to
none (-1, dropped); the largest ``x_jp`` is taken in turn, job by job, only while the
job's use fits the capacity rows left (else its next column with ``x_jp > 0``). Each job
brings its :data:`CANDIDATES` cheapest partitions; the LP is
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

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.backends import highs as hs
from optisched.index import Index

__all__ = ["BLOCKS", "CLASSES", "FILL", "Assignment", "assign_jobs", "block_of_slots",
           "price_proxy"]

log = logging.getLogger(__name__)

BLOCKS = 8
"""Time blocks of the capacity rows (3 h each over a day of 96 slots)."""
FILL = 0.85
"""Share of a partition's aggregate GPU-slots the coarse model may fill."""
CANDIDATES = 3
"""Partitions per job in the LP: its cheapest ones (a job eligible everywhere would
otherwise bring a column for every partition)."""
CLASSES = 12
"""Most eligibility classes per partition with capacity rows of their own."""
CLASS_PRESSURE = 0.5
"""Least demand of a class's own jobs over its nodes' GPU-slots [-] for rows of its own (a
class its jobs fill to less than half is left to the partition's row)."""


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
            load = index.idle_floor_kw
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
    pp, jj, cost = lp.part, lp.job, lp.cost
    if not (ran.optimal and sol.value_valid):  # e.g. the time limit
        log.info("coarse assignment LP: %s; jobs go to their cheapest partition with room",
                 ran.text)
        out[free] = cheapest
        # every column alike: each job (highest drop penalty per GPU-slot first) takes its
        # cheapest partition whose capacity rows still hold it
        order = np.lexsort((pp, cost, jj))
        first = np.ones(order.size, dtype=bool)
        first[1:] = jj[order][1:] != jj[order][:-1]
        drop = np.nan_to_num(index.drop_penalty, nan=np.inf)
        _round_within(lp, np.ones(pp.size), order, first, out, -drop[jj[order[first]]])
        return Assignment(out, price)
    if sol.dual_valid:  # the job rows follow the P·B capacity rows
        y = sol.row_duals()[lp.blocks[0] * lp.blocks[1]:]
        if y.size == free.size and np.isfinite(y).all():
            price[free] = y
    x = np.round(sol.primal()[:pp.size], 9)
    # per job: largest x, then cheaper, then lower partition
    order = np.lexsort((pp, cost, -x, jj))
    first = np.ones(order.size, dtype=bool)
    first[1:] = jj[order][1:] != jj[order][:-1]
    lead = order[first]
    out[jj[lead]] = pp[lead]
    _round_within(lp, x, order, first, out, -x[lead])
    dropped = np.zeros(J, dtype=bool)
    dropped[jj[lead]] = x[lead] < 1e-9  # the LP drops it: cheapest partition decides
    dj = np.nonzero(dropped)[0]
    if dj.size:
        out[dj] = np.argmin(best[:, dj], axis=0)
    return Assignment(out, price)


def _round_within(lp: _Transport, x: FloatArray, order: IntArray, first: BoolArray,
                  out: IntArray, key: FloatArray) -> None:
    """Round the LP's fractional assignment within its capacity rows: jobs by ``key``
    (lowest first, ties by position; the LP's rounding: minus their largest ``x``) each
    take the first of their columns in ``order`` with ``x > 0`` whose use still fits
    every capacity row it is charged to, else keep ``out`` (updated). An interior-point
    solution splits alike jobs evenly between partitions, and each going to its largest
    share would put all of them on one."""
    A = lp.model.A.tocsc()
    n_cap = lp.blocks[0] * lp.blocks[1]
    left = np.asarray(lp.model.row_hi[:n_cap], dtype=float).copy()
    starts = np.nonzero(first)[0]
    ends = np.append(starts[1:], order.size)
    lead_x = x[order[starts]]
    for k in np.lexsort((lp.job[order[starts]], key)):
        if lead_x[k] < 1e-9:
            continue
        for c in order[starts[k]:ends[k]]:
            if x[c] < 1e-9:
                break
            a, b = A.indptr[c], A.indptr[c + 1]
            rows, vals = A.indices[a:b], A.data[a:b]
            cap = rows < n_cap
            rows, vals = rows[cap], vals[cap]
            if np.all(vals <= left[rows] + 1e-9):
                left[rows] -= vals
                out[lp.job[c]] = lp.part[c]
                break


@dataclass
class _Transport:
    """The transportation LP and its columns (partition, job, cost); ``blocks`` = (capacity
    row groups: the partitions, then the eligibility classes; time blocks)."""

    model: hs.LinearModel
    part: IntArray
    job: IntArray
    cost: FloatArray
    blocks: tuple[int, int]
    classes: int = 0


@dataclass
class _Classes:
    """Eligibility classes with capacity rows of their own (``_eligibility_classes``).

    Attributes
    ----------
    part : (K,) int
        Partition of every class.
    cap : (K, B) float
        GPU-slots of its nodes per block [reference GPU-slots].
    col, col_class : (Z,) int
        The columns charged to each class row (a column may be charged to several).
    fixed, fixed_class : (Y,) int
        Positions in ``fixed`` of the fixed jobs charged to each class row.
    """

    part: IntArray
    cap: FloatArray
    col: IntArray
    col_class: IntArray
    fixed: IntArray
    fixed_class: IntArray


def _eligibility_classes(index: Index, part_of: IntArray, pp: IntArray, jj: IntArray,
                         weight: FloatArray, fixed: IntArray, fixed_p: IntArray,
                         fixed_use: FloatArray, blk: IntArray, P: int) -> _Classes:
    """The eligibility classes of the module docstring.

    The set ``E_jp`` of a (job, partition) pair is known by two random hashes of its nodes
    (sums of one random number per node, over the job's options on ``p``: equal sets give
    equal sums). A class's demand is the GPU-slots of its columns (``weight``: each
    column's share of its job) and of its fixed jobs (``fixed_use``); per partition, the
    :data:`CLASSES` classes of the highest demand over their nodes' GPU-slots (at least
    :data:`CLASS_PRESSURE`) are kept, and every column and fixed job is charged to each
    kept class of its partition whose nodes hold its whole set. Deterministic (seeded
    hashes, ties by position)."""
    N, J = index.N, index.J
    B = int(blk.max()) + 1
    empty = np.zeros(0, dtype=np.int64)
    none = _Classes(empty, np.zeros((0, B)), empty, empty, empty, empty)
    rng = np.random.default_rng(20)
    r1, r2 = rng.random(N), rng.random(N)
    opt_p = part_of[index.opt_node]
    okey = index.opt_job * P + opt_p
    keys = np.concatenate([jj * P + pp, fixed * P + fixed_p]).astype(np.int64)
    want = np.zeros(J * P, dtype=bool)
    want[keys] = True
    o = np.nonzero(want[okey])[0]
    ko, no = okey[o], index.opt_node[o]
    uk, inv = np.unique(ko, return_inverse=True)
    h1 = np.bincount(inv, weights=r1[no], minlength=uk.size)
    h2 = np.bincount(inv, weights=r2[no], minlength=uk.size)
    cnt = np.bincount(inv, minlength=uk.size)
    node_cap = index.capacity[:, 0] * index.speed * index.available.sum(axis=1)
    setcap = np.bincount(inv, weights=node_cap[no], minlength=uk.size)
    at = np.searchsorted(uk, keys)
    part = np.concatenate([pp, fixed_p]).astype(np.int64)
    demand = np.concatenate([weight, fixed_use])
    sig = np.stack([part.astype(float), h1[at], h2[at]], axis=1)
    groups, first, ginv = np.unique(sig, axis=0, return_index=True, return_inverse=True)
    ginv = ginv.ravel()
    gdem = np.bincount(ginv, weights=demand, minlength=groups.shape[0])
    gcap = setcap[at[first]]
    gpart = part[first]
    score = gdem / np.maximum(gcap, 1e-9)
    keep = []
    for p in range(P):
        mine = np.nonzero((gpart == p) & (score >= CLASS_PRESSURE) & (gcap > 0))[0]
        mine = mine[np.lexsort((mine, -score[mine]))][:CLASSES]
        keep.append(np.sort(mine))
    kept = np.concatenate(keep).astype(np.int64) if keep else empty
    if not kept.size:
        return none
    # every kept class's nodes: those of its first member's options on its partition
    K = kept.size
    cls_part = gpart[kept]
    rep = keys[first[kept]]
    members = np.zeros((N, CLASSES), dtype=bool)  # node -> local classes of its partition
    local = np.zeros(K, dtype=np.int64)
    offset = np.zeros(P + 1, dtype=np.int64)
    for p in range(P):
        offset[p + 1] = offset[p] + keep[p].size
    cap = np.zeros((K, B))
    for k in range(K):
        local[k] = k - offset[cls_part[k]]
        j, p = divmod(int(rep[k]), P)
        lo, hi = int(index.opt_job_ptr[j]), int(index.opt_job_ptr[j + 1])
        nodes = index.opt_node[lo:hi]
        nodes = nodes[part_of[nodes] == p]
        members[nodes, local[k]] = True
        gs = index.capacity[nodes, 0:1] * index.speed[nodes, None] * index.available[nodes]
        np.add.at(cap[k], np.tile(blk, nodes.size), gs.ravel())
    # a (job, partition) set lies within a class when all its options there are members
    inside = np.zeros((uk.size, CLASSES), dtype=np.int64)
    for c in range(CLASSES):
        m = members[no, c]
        if m.any():
            inside[:, c] = np.bincount(inv[m], minlength=uk.size)
    n_cols = pp.size
    within = inside[at] == cnt[at][:, None]  # (columns + fixed, CLASSES)
    valid = np.arange(CLASSES)[None, :] < (offset[part + 1] - offset[part])[:, None]
    rows, cls = np.nonzero(within & valid)
    gid = offset[part[rows]] + cls
    col = rows < n_cols
    return _Classes(cls_part, cap, rows[col].astype(np.int64), gid[col].astype(np.int64),
                    (rows[~col] - n_cols).astype(np.int64), gid[~col].astype(np.int64))


def _transport_lp(index: Index, part_of: IntArray, best: FloatArray, option: IntArray,
                  free: IntArray, fill: float, classes: bool = True) -> _Transport:
    """The LP of the module docstring over the ``free`` jobs (each with its
    :data:`CANDIDATES` cheapest partitions) with capacity rows ``fill · cap`` per partition
    and block and (``classes``) per eligibility class and block, net of the other jobs that
    have an option (at their first option)."""
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
    fo = index.opt_job_ptr[fixed]
    fixed_p = part_of[index.opt_node[fo]].astype(np.int64)
    if fixed.size:
        cap -= _block_use(index, fixed, fo, blk, fixed_p, P)
        cap = np.maximum(cap, 0.0)
    # use of every column: GPU-slots of its placement, spread over the job's window
    use = index.usage[jj, 0] * index.opt_dur[o] * index.speed[index.opt_node[o]]
    lo = index.opt_earliest[o]
    hi = np.minimum(index.opt_latest[o] + index.opt_dur[o], T)  # window end (exclusive)
    width = np.maximum(hi - lo, 1)
    n_cols = pp.size
    K = 0
    cls_cap = np.zeros((0, B))
    if classes and P > 1:
        per_job = np.bincount(kk, minlength=free.size)[kk]
        fuse = (index.usage[fixed, 0] * index.opt_dur[fo] * index.speed[index.opt_node[fo]]
                if fixed.size else np.zeros(0))
        cl = _eligibility_classes(index, part_of, pp.astype(np.int64), jj.astype(np.int64),
                                  use / np.maximum(per_job, 1), fixed, fixed_p, fuse, blk, P)
        K = cl.part.size
        cls_cap = cl.cap
        if cl.fixed.size:
            f = cl.fixed
            cls_cap = cls_cap - _block_use(index, fixed[f], fo[f], blk, cl.fixed_class, K)
            cls_cap = np.maximum(cls_cap, 0.0)
    rows, cols, vals = [], [], []
    for b in range(B):
        slots = np.nonzero(blk == b)[0]
        a, z = int(slots[0]), int(slots[-1]) + 1
        share = np.clip(np.minimum(hi, z) - np.maximum(lo, a), 0, None) / width
        nz = np.nonzero(share > 0)[0]
        rows.append(pp[nz] * B + b)
        cols.append(nz)
        vals.append(use[nz] * share[nz])
        if K:
            c = cl.col[share[cl.col] > 0]
            g = cl.col_class[share[cl.col] > 0]
            rows.append((P + g) * B + b)
            cols.append(c)
            vals.append(use[c] * share[c])
    cap_rows = (P + K) * B
    drop = index.drop_penalty[free]
    droppable = np.nonzero(~np.isnan(drop))[0]
    # job rows after the capacity rows
    job_row = cap_rows + np.searchsorted(free, jj)
    rows += [job_row, cap_rows + droppable]
    cols += [np.arange(n_cols), n_cols + np.arange(droppable.size)]
    vals += [np.ones(n_cols), np.ones(droppable.size)]
    n_all = n_cols + droppable.size
    A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(cap_rows + free.size, n_all))
    row_lo = np.concatenate([np.full(cap_rows, -np.inf), np.ones(free.size)])
    row_hi = np.concatenate([fill * cap.ravel(), fill * cls_cap.ravel(), np.ones(free.size)])
    c = np.concatenate([cost, drop[droppable]])
    model = hs.LinearModel(A=A, cost=c, col_lb=np.zeros(n_all), col_ub=np.ones(n_all),
                           row_lo=row_lo, row_hi=row_hi)
    return _Transport(model, pp.astype(np.int64), jj.astype(np.int64), cost, (P + K, B), K)


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
