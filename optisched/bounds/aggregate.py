"""A cheap valid bound for large grid-only problems: the LP over node classes.

The time-indexed LP relaxation (:mod:`optisched.bounds.lp`) has one start column per
(job, node, start): 5.5 M at 1,000 jobs × 50 nodes × 288 slots. When every node is
*linear* (no PV, battery, demand charge or finite feeder headroom: the grid supplies
every kW at the import cost, the ICON 2014 class) and many nodes are alike, the node
index of a start column can be aggregated away.

**Classes.** Nodes with the same import cost in every slot, the same availability, speed
and power factor form a class ``c`` (the ICON instances: one class). A job's options on
the nodes of a class then have the same duration, power, windows and energy cost.

**The aggregated LP** (a relaxation of SPEC §2-3 on linear nodes)::

    min  Σ_{j,c,s} (E_jcs + λ_jc + τ_js) x_jcs + Σ_j π_j drop_j
         + Σ_{n,t} Δ·idle_n·c_nt·z_nt + Σ σ^up_n up_nt + Σ σ^dn_n (down_nt + down^end_n)
    s.t. Σ_{c,s} x_jcs + drop_j = 1                       every job not pinned
         Σ_{j,s: t ∈ [s, s+d)} u_jr x_jcs ≤ Σ_{n ∈ c} cap_nr z_nt    every class, slot, resource
         up_nt ≥ z_nt − z_n,t−1,  down_nt ≥ z_n,t−1 − z_nt,  down^end_n ≥ z_n,T−1 (end_off)
         0 ≤ x, drop, z, up, down ≤ 1; z_nt = available where the node cannot sleep, 0 where
         it is unavailable

with ``E_jcs = Δ P_jc Σ_{t=s}^{s+d−1} c_nt`` the energy of the start, ``λ_jc`` the least
latency cost over the class's eligible nodes, ``τ`` the tardiness, and pinned jobs fixed.
*Why it is a relaxation:* a plan gives ``x_jcs = 1`` for its placement (``c`` its node's
class) and ``z = on``; each node's use is at most ``cap_nr · on_nt``, so the class sums
satisfy the capacity rows; on linear nodes the import is the load, so the plan's energy
cost is exactly the LP's energy terms; latency is at least ``λ_jc``. So the LP optimum is
at most the cost of every plan. It drops the per-node packing (a job may use the summed
capacity of its class), the on-link of a job to its own node and the power limits.

**The whole LP first.** Up to :data:`WHOLE_MAX_COLUMNS` start columns in all (tight
1,000 × 50: 110 k), every column goes into one model solved by interior point without
crossover; its value is Farley's bound at the interior point's duals (below). Interior
point takes 8.7-34.5 s at tight 1,000 × 50 with 1-4 resources, where the column
generation below needed 74 s for one resource and did not finish its second master in
130 s for two (the masters' many degenerate ``z``, ``up``, ``down`` columns).

**Column generation.** Larger LPs (or one not solved in its share of the time) are
solved by column generation on the start columns (the rows never change: every class,
slot and resource has its capacity row), so the master is one HiGHS LP that columns are
appended to and re-solved warm: per job the
cheapest starts at the tariff price (and an incumbent's, when given) first, an
artificial column of cost ``big_m`` per must-run job so that it is always feasible;
pricing runs over every (job, class, start) with the capacity multipliers (prefix sums
over the slots, vectorized), up to :data:`COLUMNS_PER_JOB` starts per job enter per
iteration, and it stops when nothing prices out (the master is then the LP optimum).

**Validity whatever the solver's accuracy.** The bound is not HiGHS's objective but the
weak-duality value of its row duals ``y`` on the box-bounded LP (every column here has
finite bounds): ``Σ_i min(y_i lo_i, y_i hi_i) + Σ_k min(d_k l_k, d_k u_k)``,
``d = c − Aᵀy``, with the assignment rows kept as each job's simplex (as
:func:`~optisched.bounds.duality.dual_value`) and each job's minimum taken over *all* its
start columns (the pricer's), so every iteration's value is a bound of the whole LP, hence
of the problem (Farley's bound of column generation).

Size: one start column per (job, class, start): 29 k at tight 200 × 10 × 288, 154 k at
1,000 × 50 (one class), against 0.2 M and 5.5 M in the time-indexed model. Measured
(tight seed 0, load ≈ 6 on 2 cores): the whole aggregated LP by dual simplex 4.7 s at
200 × 10 (15,453.9; the time-indexed LP without its on-link rows 15,458.5) and 100 s at
1,000 × 50 (54,272.9, greedy's plan 58,080).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.backends import highs as hs
from optisched.bounds.column_set import ColumnSet
from optisched.index import Index

__all__ = ["AggregateResult", "aggregate_bound", "linear_nodes", "node_classes"]

log = logging.getLogger(__name__)

INITIAL_COLUMNS = 5
"""Starts per job in the first master (the cheapest at the tariff price)."""
COLUMNS_PER_JOB = 5
"""Starts per job that enter per iteration (lowest reduced cost first)."""
REDUCED_COST_TOL = 1e-7
"""A start enters when its reduced cost is below ``−tol·max(1, |master|/J)`` [money]."""
CONVERGED_GAP = 1e-7
"""Stop when the bound is within this relative distance of the master value."""
DAMPING = (0.3, 0.1, 0.03, 0.01)
"""Steps ``θ`` from the best multipliers ``ŷ`` towards the master's ``y`` whose Farley
bound is also evaluated while artificial columns are in the master
(``ŷ + θ (y − ŷ)``; every point's value is a bound)."""
CHUNK_CELLS = 2_000_000
"""(class option × start) cells priced at once."""
WHOLE_MAX_COLUMNS = 300_000
"""At most this many start columns in all: the whole aggregated LP is built and solved
by interior point first. Measured alone on 2 cores (2026-12-01): tight 1,000 × 50 seed 0
(110,776 columns) 8.7 s, where column generation took 74 s; seed 1 (two resources) 16.8 s,
where its second master did not finish in 130 s; ICON sample07 (143,036) 42.5 s to
3,151.94, where the time-indexed LP's Farley value was 2,048.69; sample08 (134,533) 39.6 s;
sample09 (258,982) 214 s; tight 5,000 × 100 × 4 (590,457) > 500 s without a value."""
WHOLE_SHARE = 0.8
"""Share of the time limit the whole LP may take before column generation gets the rest."""


def linear_nodes(index: Index) -> BoolArray:
    """(N,) nodes whose cost is linear in their load: no PV, battery, demand charge or
    finite feeder headroom (the grid supplies every kW at the import cost, as in ICON).
    None are with several scenarios (the bounds and the interval model here price one).
    """
    if index.S > 1:
        return np.zeros(index.N, dtype=bool)
    feeder = np.zeros(index.N, dtype=bool)
    f = index.feeder_of
    has = f >= 0
    if has.any():
        feeder[has] = np.isfinite(index.feeder_headroom[f[has]]).any(axis=1)
    battery = (index.charge_kw > 0) | (index.discharge_kw > 0)
    pv = (index.pv > 0).any(axis=1) if index.T else np.zeros(index.N, dtype=bool)
    return np.asarray(~pv & ~battery & ~(index.demand_charge > 0) & ~feeder)


def node_classes(index: Index) -> IntArray:
    """(N,) class of each node: equal import cost row, availability, speed, power factor."""
    keys: dict[bytes, int] = {}
    out = np.zeros(index.N, dtype=np.int64)
    for n in range(index.N):
        key = (np.ascontiguousarray(index.import_cost[n]).tobytes()
               + np.ascontiguousarray(index.available[n]).tobytes()
               + np.float64(index.speed[n]).tobytes() + np.float64(index.power_factor[n]).tobytes())
        out[n] = keys.setdefault(key, len(keys))
    return out


@dataclass(frozen=True)
class AggregateResult:
    """Result of :func:`aggregate_bound`.

    Attributes
    ----------
    bound : float
        Valid lower bound [money]; ``-inf`` when none (not solved in time, or a node that
        is not linear); ``inf`` when a must-run job has no start.
    lp_value : float or None
        The last master's value without artificial columns (≥ the LP optimum; equal
        when ``converged``).
    columns, rows, classes : int
        Start columns in the last master, rows, node classes.
    seconds : float
        Build and solve time [s].
    status : str
        HiGHS's model status, or why no bound was computed.
    """

    bound: float
    lp_value: float | None
    columns: int
    rows: int
    classes: int
    seconds: float
    status: str
    iterations: int = 0
    converged: bool = False
    history: tuple[tuple[float, float, float], ...] = ()
    """``(elapsed [s], bound, master value)`` per iteration."""


def _class_options(index: Index, cls: IntArray) -> tuple[IntArray, FloatArray]:
    """One option per (job, class): the first, and the least latency cost over the class."""
    oj, on = index.opt_job, index.opt_node
    key = oj * (int(cls.max(initial=0)) + 1) + cls[on]
    order = np.lexsort((np.arange(oj.size), key))
    k = key[order]
    first = np.ones(k.size, dtype=bool)
    first[1:] = k[1:] != k[:-1]
    rep = order[first]
    grp = np.cumsum(first) - 1
    lat = np.full(rep.size, np.inf)
    np.minimum.at(lat, grp, index.opt_latency_cost[order])
    return rep.astype(np.int64), lat


class _Model:
    """The aggregated LP's fixed part, its class options and their pricing."""

    def __init__(self, index: Index) -> None:
        self.index = ix = index
        N, T, J, R = ix.N, ix.T, ix.J, len(ix.resources)
        self.cls = cls = node_classes(ix)
        self.C = C = int(cls.max(initial=-1)) + 1
        rep, lat = _class_options(ix, cls)
        pin_job = ix.pinned[ix.opt_job[rep]]
        if pin_job.any():  # a pinned job keeps only its pinned node's class
            pj = ix.opt_job[rep]
            keep = ~pin_job | (cls[ix.opt_node[rep]] == cls[np.maximum(ix.pinned_node[pj], 0)])
            rep, lat = rep[keep], lat[keep]
        self.rep, self.lat = rep, lat
        self.job = ix.opt_job[rep].astype(np.int64)
        self.node = ix.opt_node[rep].astype(np.int64)
        self.dur = ix.opt_dur[rep].astype(np.int64)
        self.lo = ix.opt_earliest[rep].astype(np.int64)
        self.hi = ix.opt_latest[rep].astype(np.int64)
        self.pinned = ix.pinned[self.job]
        self.P = np.zeros((N, T + 1))
        self.P[:, 1:] = np.cumsum(ix.import_cost, axis=1)
        # columns: drop (J'), z, up, down (N·T each), down_end (N), then starts
        droppable = ~ix.must_run & ~ix.pinned
        self.drop_col = np.full(J, -1, dtype=np.int64)
        nd = int(droppable.sum())
        self.drop_col[droppable] = np.arange(nd)
        z = nd + np.arange(N * T).reshape(N, T)
        up, down = z + N * T, z + 2 * N * T
        down_end = nd + 3 * N * T + np.arange(N)
        self.z = z
        n = nd + 3 * N * T + N
        cost, lb, ub = np.zeros(n), np.zeros(n), np.ones(n)
        down_end_ub = None
        dj = np.nonzero(droppable)[0]
        cost[self.drop_col[dj]] = ix.drop_penalty[dj]
        avail = ix.available.astype(float)
        cost[z] = ix.dt * ix.idle_kw[:, None] * ix.import_cost
        ub[z] = avail
        lb[z] = np.where(ix.can_sleep[:, None], 0.0, avail)
        cost[up] = ix.startup_cost[:, None]
        cost[down] = ix.shutdown_cost[:, None]
        cost[down_end] = np.where(ix.end_off, ix.shutdown_cost, 0.0)
        ub[down_end] = np.where(ix.end_off, 1.0, 0.0)
        del down_end_ub
        # rows: assignment (free jobs), flow and capacity (R·C·T each), start-up,
        # shut-down (N·T), end; the class's running use L_rct (columns after down_end)
        free = np.nonzero(~ix.pinned)[0]
        self.arow = np.full(J, -1, dtype=np.int64)
        self.arow[free] = np.arange(free.size)
        self.n_assign = free.size
        self.flow0 = free.size
        RCT = R * C * T
        self.cap0 = self.flow0 + RCT
        L = n + np.arange(RCT)
        self.L = L
        cap_sum = np.zeros((R, C))
        for r in range(R):
            np.add.at(cap_sum[r], cls, ix.capacity[:, r])
        cost = np.concatenate([cost, np.zeros(RCT)])
        lb = np.concatenate([lb, np.zeros(RCT)])
        ub = np.concatenate([ub, np.repeat(cap_sum.reshape(-1), T)])
        self.cost, self.lb, self.ub = cost, lb, ub
        n += RCT
        rows: list[IntArray] = [self.arow[dj]]
        cols: list[IntArray] = [self.drop_col[dj]]
        vals: list[FloatArray] = [np.ones(dj.size)]
        # flow: L_t − L_{t−1} − (use of the starts at t) + (use of the ends at t) = 0
        q = np.arange(RCT)
        tq = q % T
        rows += [self.flow0 + q, self.flow0 + q[tq > 0]]
        cols += [L, L[q[tq > 0] - 1]]
        vals += [np.ones(RCT), -np.ones(int((tq > 0).sum()))]
        # capacity: L_t − Σ_{n ∈ c} cap_nr z_nt ≤ 0
        rows.append(self.cap0 + q)
        cols.append(L)
        vals.append(np.ones(RCT))
        nn, tt = np.meshgrid(np.arange(N), np.arange(T), indexing="ij")
        for r in range(R):
            rows.append((self.cap0 + (r * C + cls[nn]) * T + tt).reshape(-1))
            cols.append(z.reshape(-1))
            vals.append(-np.repeat(ix.capacity[:, r], T))
        rows = [np.asarray(a).reshape(-1) for a in rows]
        cols = [np.asarray(a).reshape(-1) for a in cols]
        vals = [np.asarray(a, dtype=float).reshape(-1) for a in vals]
        m = self.cap0 + RCT
        lo_r = [np.ones(free.size), np.zeros(RCT), np.full(RCT, -np.inf)]
        hi_r = [np.ones(free.size), np.zeros(RCT), np.zeros(RCT)]
        fn, ft = nn.reshape(-1), tt.reshape(-1)
        prev = ft > 0
        init = ix.initially_on[fn].astype(float)
        for col, sign in ((up, 1.0), (down, -1.0)):
            r_ = m + np.arange(N * T)
            rows += [r_, r_, r_[prev]]
            cols += [col.reshape(-1), z.reshape(-1), z[fn[prev], ft[prev] - 1]]
            vals += [np.ones(N * T), -sign * np.ones(N * T), sign * np.ones(int(prev.sum()))]
            lo_r.append(np.where(prev, 0.0, -sign * init))
            hi_r.append(np.full(N * T, np.inf))
            m += N * T
        ends = np.nonzero(ix.end_off)[0] if T else np.zeros(0, dtype=np.int64)
        r_ = m + np.arange(ends.size)
        rows += [r_, r_]
        cols += [down_end[ends], z[ends, T - 1] if T else down_end[ends]]
        vals += [np.ones(ends.size), -np.ones(ends.size)]
        lo_r.append(np.zeros(ends.size))
        hi_r.append(np.full(ends.size, np.inf))
        m += ends.size
        self.n_rows = m
        self.row_lo, self.row_hi = np.concatenate(lo_r), np.concatenate(hi_r)
        self.A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows),
                                                       np.concatenate(cols))), shape=(m, n))
        self.A.sum_duplicates()
        # pricing chunks by window width
        width = np.where(self.pinned, 1, np.maximum(0, self.hi - self.lo + 1))
        self.width = width
        order = np.argsort(-width, kind="stable")
        self.chunks: list[IntArray] = []
        a = 0
        while a < order.size:
            w = max(1, int(width[order[a]]))
            b = min(order.size, a + max(1, CHUNK_CELLS // w))
            self.chunks.append(order[a:b])
            a = b

    def start_cost(self, k: IntArray, s: IntArray) -> FloatArray:
        """Cost of class option ``k`` started at ``s`` [money]."""
        ix = self.index
        T = ix.T
        n, d = self.node[k], self.dur[k]
        a, e = np.clip(s, 0, T), np.clip(s + d, 0, T)
        return np.asarray(ix.dt * ix.opt_power[self.rep[k]] * (self.P[n, e] - self.P[n, a])
                          + self.lat[k] + ix.tardiness_cost(self.job[k], s + d), dtype=float)

    def columns(self, k: IntArray, s: IntArray) -> sp.csc_matrix:
        """Entries of the start columns ``(k, s)`` in the rows: the assignment row, and per
        resource ``−u`` in the flow row of the first slot it covers and ``+u`` in that of
        the slot after its last (none at the horizon end)."""
        ix = self.index
        T, C = ix.T, self.C
        a = np.clip(s, 0, T)
        e = np.clip(s + self.dur[k], 0, T)
        c = self.cls[self.node[k]]
        j = self.job[k]
        free = self.arow[j] >= 0
        ar = np.arange(k.size)
        rows = [self.arow[j][free]]
        cols = [ar[free]]
        vals = [np.ones(int(free.sum()))]
        for r in range(len(ix.resources)):
            u = ix.usage[j, r]
            m = (u != 0) & (a < T)
            rows.append(self.flow0 + (r * C + c[m]) * T + a[m])
            cols.append(ar[m])
            vals.append(-u[m])
            m = (u != 0) & (e < T)
            rows.append(self.flow0 + (r * C + c[m]) * T + e[m])
            cols.append(ar[m])
            vals.append(u[m])
        return sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(self.n_rows, k.size))

    def price(self, y: FloatArray, per_job: int, job_dual: FloatArray | None = None
              ) -> tuple[FloatArray, IntArray, IntArray, FloatArray]:
        """Per job the least reduced cost over all its starts (assignment row left out;
        ``nan`` for pinned jobs), and the ``per_job`` starts of lowest reduced cost minus
        ``job_dual`` per job: ``(job_best, option, start, value)``."""
        ix = self.index
        T, C, R = ix.T, self.C, len(ix.resources)
        # reduced cost of a start: cost + Σ_r u_jr (ψ_rc,a − ψ_rc,e), ψ the flow-row duals
        Q = np.zeros((R, C, T + 1))
        Q[:, :, :T] = y[self.flow0:self.flow0 + R * C * T].reshape(R, C, T)
        job_best = np.full(ix.J, np.inf)
        ks, ss, vs = [], [], []
        take = max(1, per_job)
        for ch in self.chunks:
            w = int(self.width[ch].max(initial=0))
            if w <= 0:
                continue
            S = self.lo[ch][:, None] + np.arange(w)[None, :]
            ok = np.arange(w)[None, :] < self.width[ch][:, None]
            n, d, j = self.node[ch], self.dur[ch], self.job[ch]
            Sc = np.clip(S, -10**9, max(T - 1, 0))
            pin = self.pinned[ch]
            ok &= pin[:, None] | (ix.avail_run[n[:, None], np.clip(S, 0, max(T - 1, 0))]
                                  >= d[:, None])
            a, e = np.clip(S, 0, T), np.clip(S + d[:, None], 0, T)
            c = (ix.dt * ix.opt_power[self.rep[ch]][:, None]
                 * (self.P[n[:, None], e] - self.P[n[:, None], a])
                 + self.lat[ch][:, None] + ix.tardiness_cost(j[:, None], S + d[:, None]))
            cl = self.cls[n]
            for r in range(R):
                u = ix.usage[j, r]
                if u.any():
                    c += u[:, None] * (Q[r, cl[:, None], a] - Q[r, cl[:, None], e])
            c = np.where(ok, c, np.inf)
            np.minimum.at(job_best, j, c.min(axis=1))
            red = c if job_dual is None else c - job_dual[j][:, None]
            red = np.where(pin[:, None], np.inf, red)
            kk = min(take, w)
            part = np.argpartition(red, kk - 1, axis=1)[:, :kk] if kk < w else np.tile(
                np.arange(w), (ch.size, 1))
            rows = np.repeat(np.arange(ch.size), part.shape[1])
            cols = part.reshape(-1)
            v = red[rows, cols]
            keep = np.isfinite(v)
            ks.append(ch[rows[keep]])
            ss.append(Sc[rows[keep], cols[keep]])
            vs.append(v[keep])
        job_best[ix.pinned] = np.nan
        k = np.concatenate(ks) if ks else np.zeros(0, dtype=np.int64)
        s = np.concatenate(ss) if ss else np.zeros(0, dtype=np.int64)
        v = np.concatenate(vs) if vs else np.zeros(0)
        # per job the best ``per_job``
        order = np.lexsort((v, self.job[k]))
        k, s, v = k[order], s[order], v[order]
        g = self.job[k]
        first = np.ones(g.size, dtype=bool)
        first[1:] = g[1:] != g[:-1]
        rank = np.arange(g.size) - np.maximum.accumulate(np.where(first, np.arange(g.size), 0))
        keep = rank < per_job
        return job_best, k[keep], s[keep].astype(np.int64), v[keep]

    def bound(self, y: FloatArray, job_best: FloatArray, x_pinned: float) -> float:
        """Farley's bound at ``y`` (module docstring); ``x_pinned``: the reduced cost sum of
        the pinned jobs' fixed start columns."""
        ix = self.index
        y = self.clip(y)
        with np.errstate(invalid="ignore"):
            rows = np.where(y > 0, y * self.row_lo, np.where(y < 0, y * self.row_hi, 0.0))
        value = float(rows.sum())
        d = self.cost - self.A.T @ y
        box = np.ones(d.size, dtype=bool)
        best = job_best.copy()
        has = self.drop_col >= 0
        best[has] = np.fmin(best[has], d[self.drop_col[has]])
        box[self.drop_col[has]] = False
        with np.errstate(invalid="ignore"):
            dbox = np.where(d > 0, d * self.lb, np.where(d < 0, d * self.ub, 0.0))
        value += float(dbox[box].sum()) + float(best[~ix.pinned].sum()) + x_pinned
        return value if not math.isnan(value) else -math.inf

    def clip(self, y: FloatArray) -> FloatArray:
        """Row multipliers clipped to their signs, assignment rows at 0."""
        y = np.where(np.isneginf(self.row_lo), np.minimum(y, 0.0), y)
        y = np.where(np.isposinf(self.row_hi), np.maximum(y, 0.0), y)
        y = np.where(np.isfinite(y), y, 0.0)
        y[:self.n_assign] = 0.0
        return np.asarray(y, dtype=float)


@dataclass(frozen=True)
class _Pinned:
    """The pinned jobs' fixed start columns: positions ``k``, starts ``s``, costs, matrix."""

    k: IntArray
    s: IntArray
    cost: FloatArray
    cols: sp.csc_matrix

    @classmethod
    def of(cls, md: _Model) -> _Pinned:
        k = np.nonzero(md.pinned)[0]
        s = md.index.pinned_start[md.job[k]].astype(np.int64)
        return cls(k, s, md.start_cost(k, s), md.columns(k, s))

    def farley(self, md: _Model, y: FloatArray, job_best: FloatArray | None = None) -> float:
        """Farley's bound at ``y`` (one pricing pass unless ``job_best`` is given)."""
        jb = md.price(y, 0)[0] if job_best is None else job_best
        x_pin = float(np.sum(self.cost - self.cols.T @ y)) if self.k.size else 0.0
        return md.bound(y, jb, x_pin)


def _master(md: _Model, pin: _Pinned, k: IntArray, s: IntArray, art_jobs: IntArray,
            big_m: float) -> hs.LinearModel:
    """The aggregated LP over the static columns, one artificial column of cost ``big_m``
    per job in ``art_jobs``, the pinned starts (fixed at 1) and the start columns
    ``(k, s)``, in this column order."""
    art = sp.csc_matrix((np.ones(art_jobs.size), (md.arow[art_jobs], np.arange(art_jobs.size))),
                        shape=(md.n_rows, art_jobs.size))
    A = sp.hstack([md.A, art, pin.cols, md.columns(k, s)], format="csc")
    cost = np.concatenate([md.cost, np.full(art_jobs.size, big_m), pin.cost,
                           md.start_cost(k, s)])
    lb = np.concatenate([md.lb, np.zeros(art_jobs.size), np.ones(pin.k.size), np.zeros(k.size)])
    ub = np.concatenate([md.ub, np.full(art_jobs.size, np.inf), np.ones(pin.k.size),
                         np.ones(k.size)])
    return hs.LinearModel(A=A, cost=cost, col_lb=lb, col_ub=ub, row_lo=md.row_lo,
                          row_hi=md.row_hi)


def _whole(md: _Model, pin: _Pinned, time_limit: float, t0: float,
           progress: Callable[[float, float], None] | None) -> AggregateResult | None:
    """The whole aggregated LP (every start column) by interior point, when it has at most
    :data:`WHOLE_MAX_COLUMNS` start columns; None when larger or not solved in time.

    The value is Farley's bound at the interior point's row duals (valid whatever their
    accuracy, no crossover needed); with every column in the model it is the LP optimum
    up to the solver's tolerance.
    """
    cells = int(np.where(md.pinned, 0, md.width).sum())
    if cells > WHOLE_MAX_COLUMNS or time_limit <= 0:
        return None
    _, k, s, _ = md.price(np.zeros(md.n_rows), cells + 1)
    h = hs.load(_master(md, pin, k, s, np.zeros(0, dtype=np.int64), 0.0))
    left = time_limit - (time.perf_counter() - t0)
    hs.configure(h, threads=1, solver="ipm", crossover=False, time_limit=max(0.05, left))
    ran = hs.run(h, deadline=time.perf_counter() + left + 1.0)
    sol = hs.solution(h)
    if not ran.optimal or not sol.dual_valid:
        log.debug("aggregate whole LP: %s after %.1f s", ran.text, time.perf_counter() - t0)
        return None
    bound = pin.farley(md, md.clip(sol.row_duals()))
    value = hs.info(h).objective
    elapsed = time.perf_counter() - t0
    if progress is not None and math.isfinite(bound):
        progress(bound, elapsed)
    log.debug("aggregate whole LP: %.6f (Farley %.6f), %d starts, %.1f s", value, bound,
              k.size, elapsed)
    return AggregateResult(bound, value, int(k.size), md.n_rows, md.C, elapsed, ran.text, 1,
                           True, ((elapsed, bound, value),))


def aggregate_bound(index: Index, time_limit: float | None = None,
                    progress: Callable[[float, float], None] | None = None,
                    incumbent: tuple[IntArray, IntArray] | None = None,
                    max_iterations: int | None = None, whole: bool = True) -> AggregateResult:
    """The bound of the aggregated LP by column generation (module docstring) [money].

    Parameters
    ----------
    index : Index
        Compiled problem.
    time_limit : float, optional
        Wall-clock limit [s]; the best bound so far is returned when it is reached.
    progress : callable, optional
        ``progress(bound, elapsed)`` whenever the bound improves.
    incumbent : (node, start) arrays, optional
        A plan's placement: its starts join the first master.
    max_iterations : int, optional
        Stop after this many masters (column generation only).
    whole : bool
        Solve the whole LP by interior point first when it has at most
        :data:`WHOLE_MAX_COLUMNS` start columns (for at most :data:`WHOLE_SHARE` of the
        time limit); column generation runs when it is larger or not solved in time.
    """
    t0 = time.perf_counter()
    limit = math.inf if time_limit is None else float(time_limit)
    ix = index
    if not linear_nodes(ix).all():
        return AggregateResult(-math.inf, None, 0, 0, 0, 0.0, "a node is not linear")
    md = _Model(ix)
    has = np.zeros(ix.J, dtype=bool)
    has[md.job] = True
    if np.any(ix.must_run & ~has):
        return AggregateResult(math.inf, None, 0, md.n_rows, md.C, time.perf_counter() - t0,
                               "a must-run job has no start")
    pin = _Pinned.of(md)
    if whole and max_iterations is None:
        done = _whole(md, pin, WHOLE_SHARE * limit, t0, progress)
        if done is not None:
            return done
    # first master: pinned starts, the cheapest at the tariff price, the incumbent's
    _, k0, s0, _ = md.price(np.zeros(md.n_rows), INITIAL_COLUMNS)
    ks, ss = [k0], [s0]
    if incumbent is not None:
        node, st = (np.asarray(v) for v in incumbent)
        js = np.nonzero((node >= 0) & ~ix.pinned)[0]
        of_class = {(int(j), int(md.cls[md.node[k]])): k for k, j in enumerate(md.job.tolist())}
        kk = np.array([of_class.get((int(j), int(md.cls[node[j]])), -1) for j in js],
                      dtype=np.int64)
        ok = kk >= 0
        ks.append(kk[ok])
        ss.append(st[js[ok]].astype(np.int64))
    k_all = np.concatenate(ks)
    s_all = np.concatenate(ss)
    seen = ColumnSet()  # the (option, start) pairs in the master
    fresh = seen.add_new(k_all, s_all)
    order = np.lexsort((s_all[fresh], k_all[fresh]))  # by option, then start
    k_all, s_all = k_all[fresh][order], s_all[fresh][order]
    span = float(md.cost.max(initial=0.0)) + float(np.abs(md.start_cost(
        np.arange(md.rep.size), np.maximum(md.lo, 0))).max(initial=1.0))
    big_m = 1e3 * max(1.0, span)
    art_jobs = np.nonzero(ix.must_run & ~ix.pinned)[0]
    h = hs.load(_master(md, pin, k_all, s_all, art_jobs, big_m))
    hs.configure(h, threads=1, solver="simplex")
    art0 = md.cost.size
    best, it, lp_value, converged = -math.inf, 0, None, False
    hist: list[tuple[float, float, float]] = []

    # y = 0: every job at its cheapest start, the idle draw of the nodes that cannot sleep
    best_y = np.zeros(md.n_rows)
    best = pin.farley(md, best_y)
    if progress is not None and math.isfinite(best):
        progress(best, time.perf_counter() - t0)
    n_starts = int(k_all.size)
    status = "not solved"
    while max_iterations is None or it < max_iterations:
        left = limit - (time.perf_counter() - t0)
        if left <= 0:
            break
        # HiGHS's time limit counts its run time over every solve of the instance: the
        # masters' run time so far plus what is left (else each master after the first
        # stopped at once once the first had taken more than the time left)
        hs.configure(h, time_limit=h.getRunTime() + max(0.05, left))
        ran = hs.run(h)
        status = ran.text
        if not ran.optimal:
            break
        it += 1
        if it == 1:  # columns only enter from now on: the basis stays primal feasible
            h.setOptionValue("simplex_strategy", 4)
        sol = hs.solution(h)
        y_raw = sol.row_duals()
        x = sol.primal()
        value = hs.info(h).objective
        art_use = float(x[art0:art0 + art_jobs.size].sum())
        lp_value = value if art_use <= 1e-6 else None
        y = md.clip(y_raw)
        jd = np.zeros(ix.J)
        jd[~ix.pinned] = y_raw[md.arow[~ix.pinned]]
        job_best, k_new, s_new, v_new = md.price(y, COLUMNS_PER_JOB, jd)
        b = pin.farley(md, y, job_best)
        b_y = y
        if lp_value is None:
            # artificial columns in use: the master's multipliers carry their big-M and
            # give a poor bound; steps from the best multipliers towards them do better
            for theta in DAMPING:
                yd = md.clip(best_y + theta * (y - best_y))
                bd = pin.farley(md, yd)
                if bd > b:
                    b, b_y = bd, yd
        if b > best:
            best, best_y = b, b_y
            if progress is not None:
                progress(best, time.perf_counter() - t0)
        hist.append((time.perf_counter() - t0, best, value))
        log.debug("aggregate it %d: master %.6f (artificial %.3g) bound %.6f, %d starts, %.1f s",
                  it, value, art_use, best, n_starts, time.perf_counter() - t0)
        if lp_value is not None and best >= value - CONVERGED_GAP * max(1.0, abs(value)):
            converged = True
            break
        tol = REDUCED_COST_TOL * max(1.0, abs(value) / max(1, ix.J))
        m = v_new < -tol
        fresh = seen.add_new(k_new[m], s_new[m])
        k_new, s_new = k_new[m][fresh], s_new[m][fresh]
        if not k_new.size:
            converged = lp_value is not None
            break
        hs.add_cols(h, md.start_cost(k_new, s_new), np.zeros(k_new.size), np.ones(k_new.size),
                    md.columns(k_new, s_new))
        n_starts += int(k_new.size)
    return AggregateResult(best, lp_value, n_starts, md.n_rows, md.C, time.perf_counter() - t0,
                           status, it, converged, tuple(hist))
