"""Reduced costs of every start column of the exact MILP without building it.

The time-indexed MILP (:func:`optisched.formulations.milp.build_milp`) has one column
``x[o, s]`` per feasible start of every option: 5.5 M at 1,000 jobs × 50 nodes × 288
slots, 30-55 M at 5,000 × 100 × 288, far beyond what fits in memory as a matrix.
Its reduced costs under row multipliers ``y`` are, by the structure of the model
(``docs/formulations/milp.md``), a sum over the slots ``C(o, s)`` the column covers:

    d[o, s] = λ_o + τ_j(s + d_o)
              + Σ_{t ∈ C(o,s)} ( P_o · y_bal[n, t] + Σ_r u_jr · μ[n, t, r] + ν[o, t] )

with ``y_bal`` the duals of the ``power_balance`` rows (coefficient ``−P_o``),
``μ = −min(0, y_cap) ≥ 0`` of the ``capacity`` rows (coefficient ``u_jr``) and
``ν = −min(0, y_link) ≥ 0`` of the ``on_link`` rows (coefficient 1), the assignment
row left out (it is kept as each job's simplex by the caller). Prefix sums over the
slots make every start an O(R) lookup, vectorized over chunks of options, so the
cheapest start of every option and job is found in one pass over the ``(option,
start)`` grid without storing it: :class:`StartPricer`.

Measured (2-core machine, one thread): a pricing pass over 5.5 M start columns (tight
1,000 × 50 × 288, 1 resource) takes about 0.5 s; over 42 M (5,000 × 100 × 288, 4
resources) about 6 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optisched.arrays import FloatArray, IntArray
from optisched.index import Index

__all__ = ["Duals", "Priced", "StartPricer", "start_column_count"]

CHUNK_CELLS = 4_000_000
"""Cells of the (option × slot) grid priced at once (memory: about 10 arrays of this size)."""


def start_column_count(index: Index) -> int:
    """Number of (option, start) pairs in the windows, the size of the time-indexed model."""
    width = np.maximum(0, index.opt_latest - index.opt_earliest + 1)
    return int(width.sum())


@dataclass
class Duals:
    """Multipliers of the rows a start column meets, as dense arrays.

    Attributes
    ----------
    balance : (N, T) float
        ``y_bal`` of the power-balance rows [money/kW].
    capacity : (N, T, R) float
        ``μ ≥ 0`` of the capacity rows [money per unit and slot].
    link : dict of int to (T,) float
        ``ν ≥ 0`` of the on-link rows of an option (options without rows: absent).
    """

    balance: FloatArray
    capacity: FloatArray
    link: dict[int, FloatArray]


@dataclass
class Priced:
    """Result of :meth:`StartPricer.price`.

    Attributes
    ----------
    job_best : (J,) float
        Cheapest reduced cost over every start column of each job not pinned
        (``inf`` without any; pinned jobs: ``nan``, the caller prices their fixed column).
    opt_best : (O,) float
        Cheapest reduced cost of each option (``inf`` without a feasible start).
    opt_start : (O,) int
        Its start.
    """

    job_best: FloatArray
    opt_best: FloatArray
    opt_start: IntArray


class StartPricer:
    """Prices every start column of an index under :class:`Duals` (module docstring).

    Parameters
    ----------
    index : Index
        The compiled problem.
    """

    def __init__(self, index: Index) -> None:
        self.index = index
        ix = index
        free = ~ix.pinned[ix.opt_job]
        self.free_opts = np.nonzero(free & (ix.opt_latest >= ix.opt_earliest))[0].astype(np.int64)
        lo = ix.opt_earliest[self.free_opts]
        hi = ix.opt_latest[self.free_opts]
        # chunks of options by window width so each chunk's grid stays small
        self.lo = np.clip(lo, 0, max(ix.T - 1, 0)).astype(np.int64)
        self.width = np.maximum(0, np.minimum(hi, ix.T - 1) - self.lo + 1).astype(np.int64)
        order = np.argsort(-self.width, kind="stable")
        self.order = order
        self.chunks: list[IntArray] = []
        a = 0
        n = order.size
        while a < n:
            w = max(1, int(self.width[order[a]]))
            b = min(n, a + max(1, CHUNK_CELLS // w))
            self.chunks.append(order[a:b])
            a = b

    def price(self, duals: Duals) -> Priced:
        """Cheapest reduced cost per option and job (and the option's start)."""
        ix = self.index
        T, R = ix.T, len(ix.resources)
        N = ix.N
        PB = np.zeros((N, T + 1))
        PB[:, 1:] = np.cumsum(duals.balance, axis=1)
        mu = duals.capacity
        use_mu = R > 0 and bool(mu.any())
        if use_mu:
            PC = np.zeros((N, T + 1, R))
            PC[:, 1:, :] = np.cumsum(mu, axis=1)
        opt_best = np.full(ix.opt_job.size, np.inf)
        opt_start = np.full(ix.opt_job.size, -1, dtype=np.int64)
        for ch in self.chunks:
            o = self.free_opts[ch]
            w = int(self.width[ch].max(initial=0))
            if w <= 0:
                continue
            j, n, d = ix.opt_job[o], ix.opt_node[o], ix.opt_dur[o]
            S = self.lo[ch][:, None] + np.arange(w)[None, :]  # (k, w)
            ok = (np.arange(w)[None, :] < self.width[ch][:, None])
            Sc = np.minimum(S, T - 1)
            ok &= ix.avail_run[n[:, None], Sc] >= d[:, None]
            E = np.minimum(Sc + d[:, None], T)
            c = ix.opt_power[o][:, None] * (PB[n[:, None], E] - PB[n[:, None], Sc])
            c += ix.opt_latency_cost[o][:, None]
            if ix.tardiness_rate[j].any():
                c += ix.tardiness_cost(j[:, None], Sc + d[:, None])
            if use_mu:
                for r in range(R):
                    u = ix.usage[j, r]
                    if u.any():
                        c += u[:, None] * (PC[n[:, None], E, r] - PC[n[:, None], Sc, r])
            if duals.link:
                has = np.array([int(x) in duals.link for x in o], dtype=bool)
                for k in np.nonzero(has)[0]:
                    lk = duals.link[int(o[k])]
                    P = np.concatenate(([0.0], np.cumsum(lk)))
                    c[k] += P[E[k]] - P[Sc[k]]
            c = np.where(ok, c, np.inf)
            arg = np.argmin(c, axis=1)
            rows = np.arange(o.size)
            opt_best[o] = c[rows, arg]
            opt_start[o] = Sc[rows, arg]
        job_best = np.full(ix.J, np.inf)
        if ix.opt_job.size:
            np.minimum.at(job_best, ix.opt_job, opt_best)
        job_best[ix.pinned] = np.nan
        return Priced(job_best, opt_best, opt_start)

    def reduced_costs(self, duals: Duals, opt: IntArray, start: IntArray) -> FloatArray:
        """Reduced cost of the start columns ``(opt, start)`` (assignment row left out)."""
        ix = self.index
        T, R = ix.T, len(ix.resources)
        opt = np.asarray(opt, dtype=np.int64)
        s = np.asarray(start, dtype=np.int64)
        j, n, d = ix.opt_job[opt], ix.opt_node[opt], ix.opt_dur[opt]
        a, e = np.clip(s, 0, T), np.clip(s + d, 0, T)
        PB = np.zeros((ix.N, T + 1))
        PB[:, 1:] = np.cumsum(duals.balance, axis=1)
        c = (ix.opt_power[opt] * (PB[n, e] - PB[n, a]) + ix.opt_latency_cost[opt]
             + ix.tardiness_cost(j, s + d))
        if R:
            PC = np.zeros((ix.N, T + 1, R))
            PC[:, 1:, :] = np.cumsum(duals.capacity, axis=1)
            c = c + np.einsum("kr,kr->k", ix.usage[j], PC[n, e] - PC[n, a])
        for k in range(opt.size):
            lk = duals.link.get(int(opt[k]))
            if lk is not None:
                c[k] += float(lk[a[k]:e[k]].sum())
        return np.asarray(c, dtype=float)

    def cheapest(self, priced: Priced, per_job: int, tol: float = 0.0,
                 job_dual: FloatArray | None = None) -> tuple[IntArray, IntArray]:
        """Per job the ``per_job`` options whose cheapest start prices out: reduced cost
        minus the job's assignment dual ``job_dual`` (0 when None) below ``−tol``, lowest
        first, one start per option: ``(option, start)`` arrays."""
        ix = self.index
        d = priced.opt_best.copy()
        if job_dual is not None:
            d = d - job_dual[ix.opt_job]
        cand = np.nonzero(d < -tol)[0]
        if not cand.size:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        order = np.lexsort((d[cand], ix.opt_job[cand]))
        cand = cand[order]
        g = ix.opt_job[cand]
        first = np.ones(g.size, dtype=bool)
        first[1:] = g[1:] != g[:-1]
        start = np.maximum.accumulate(np.where(first, np.arange(g.size), 0))
        keep = (np.arange(g.size) - start) < per_job
        cand = cand[keep]
        return cand.astype(np.int64), priced.opt_start[cand].astype(np.int64)
