"""The LP bound by column generation without the full model (implicit pricing).

:mod:`optisched.bounds.colgen` solves the LP relaxation of the exact MILP by column
generation but builds the full model first, to price its columns by ``c − Aᵀy``: 2.6 GB
at 741 k start columns, out of reach at 5.5 M (tight 1,000 × 50 × 288) or 42 M
(5,000 × 100 × 288). Here the full model is never built.

**Relaxation.** The LP relaxation of the MILP of ``docs/formulations/milp.md`` without
its ``on_link`` rows (one per option and covered slot: 50 k rows for 800 start columns at
200 × 10 × 288, which made every master 4× slower); dropping rows relaxes, so its bound
is a bound of the MILP. Capacity rows ``Σ u x ≤ cap · on`` still tie jobs to ``on``.

**Restricted master** (:class:`RestrictedMaster`): one HiGHS LP kept across iterations
(columns are appended, the basis is kept, so each re-solve is a warm primal simplex):
every non-start column and every row of :func:`~optisched.formulations.milp.build_milp`
except ``on_link``, the ``capacity`` rows of every ``(n, t, r)`` some option's window
could overload (the full model's rows or more: each is valid for every plan), the
start columns that entered, and an artificial column of cost ``big_m`` per must-run
job in its assignment row (always feasible).

**Pricing** (:class:`~optisched.bounds.pricing.StartPricer`): the reduced cost of every
start column from the master's multipliers of the power-balance and capacity rows, the
cheapest start per option, vectorized; up to :data:`COLUMNS_PER_JOB` options per job
enter per iteration (their cheapest starts) when ``d − y_assign < −tol``. Columns are
priced at the Wentges point ``α·ŷ + (1 − α)·y`` (``ŷ`` the multipliers of the best
bound), at ``y`` itself when nothing prices out there.

**Bound** (:meth:`RestrictedMaster.bound`): for any multipliers ``y`` (sign-clipped,
assignment rows set to 0), Farley's Lagrangian value ``Σ_rows min(y·lo, y·hi) + Σ_{non-start
columns} min(d·l, d·u) + Σ_jobs min(d_drop, min over all the job's start columns d)``
with ``d = c − Aᵀy`` is at most the relaxation's optimum (weak duality, each job on its
simplex ``Σ x + drop = 1``); the per-job minimum over *all* start columns is the
pricer's. It is evaluated at every iteration, so stopping early still gives a valid
bound, and it equals the master value once nothing prices out.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from optisched.arrays import FloatArray, IntArray
from optisched.backends import highs as hs
from optisched.bounds.duality import implied_upper_bounds
from optisched.bounds.pricing import Duals, Priced, StartPricer
from optisched.formulations.milp import build_milp
from optisched.index import Index

__all__ = ["ImplicitResult", "RestrictedMaster", "implicit_colgen_bound"]

log = logging.getLogger(__name__)

INITIAL_COLUMNS = 4
"""Start columns per job in the first master (cheapest options at the tariff price)."""
COLUMNS_PER_JOB = 8
"""Columns added per job and iteration (at most one per option)."""
SMOOTHING = 0.5
"""Weight ``α`` of the best multipliers in the pricing point."""
REDUCED_COST_TOL = 1e-7
"""A column enters when its reduced cost is below ``−tol·max(1, |master|/J)`` [money]."""
CONVERGED_GAP = 1e-6
"""Stop when the bound is within this relative distance of the master value."""


@dataclass(frozen=True)
class ImplicitResult:
    """Result of :func:`implicit_colgen_bound`.

    Attributes
    ----------
    bound : float
        Best valid lower bound [money] (``-inf``: none; ``inf``: a must-run job has no
        start column).
    lp_value : float or None
        Last master value without artificial columns (≥ the relaxation's optimum).
    iterations : int
        Masters solved.
    columns : int
        Start columns in the last master.
    seconds : float
        Wall time [s].
    converged : bool
        Nothing priced out at the end (the bound is then the relaxation's optimum).
    history : tuple of (float, float, float)
        ``(elapsed [s], bound, master value)`` per iteration.
    placement : tuple of arrays or None
        ``(job, node, start, value)`` of the last master's start columns above 1e-3.
    """

    bound: float
    lp_value: float | None
    iterations: int
    columns: int
    seconds: float
    converged: bool
    history: tuple[tuple[float, float, float], ...] = ()
    placement: tuple[IntArray, IntArray, IntArray, FloatArray] | None = None


def _capacity_need(index: Index) -> np.ndarray:
    """(N, T, R) bool: some set of options whose windows cover ``(n, t)`` could exceed the
    capacity of ``r`` (every option counted over ``[earliest, latest + d)``)."""
    N, T, R = index.N, index.T, len(index.resources)
    if not R or not index.opt_job.size:
        return np.zeros((N, T, R), dtype=bool)
    a = np.clip(index.opt_earliest, 0, T)
    b = np.clip(index.opt_latest + index.opt_dur, 0, T)
    use = index.usage[index.opt_job]
    diff = np.zeros((N, T + 1, R))
    np.add.at(diff, (index.opt_node, a), use)
    np.add.at(diff, (index.opt_node, b), -use)
    maxuse = np.cumsum(diff, axis=1)[:, :T, :]
    need: np.ndarray = maxuse > index.capacity[:, None, :] + 1e-9
    return need & index.available[:, :, None]


class RestrictedMaster:
    """The restricted master LP of :func:`implicit_colgen_bound` (module docstring).

    Parameters
    ----------
    index : Index
        Compiled problem.
    opt, start : (K,) int
        The first start columns (option, start slot).
    big_m : float
        Cost of the artificial columns [money].
    """

    def __init__(self, index: Index, opt: IntArray, start: IntArray, big_m: float) -> None:
        self.index = ix = index
        model = build_milp(index, allowed=(opt, start))
        N, T, R = ix.N, ix.T, len(ix.resources)
        keep = np.ones(model.n_rows, dtype=bool)
        self.assign_row = np.full(ix.J, -1, dtype=np.int64)
        self.bal_row = np.full((N, T), -1, dtype=np.int64)
        pos = np.full(model.n_rows, -1, dtype=np.int64)
        for blk in model.blocks:
            if blk.family in ("capacity", "on_link"):
                keep[blk.start:blk.start + blk.size] = False
        pos[keep] = np.arange(int(keep.sum()))
        for blk in model.blocks:
            rows = pos[blk.start:blk.start + blk.size]
            if blk.family == "assignment":
                self.assign_row[blk.job] = rows
            elif blk.family == "power_balance":
                self.bal_row[blk.node, blk.slot] = rows
        base = sp.csr_matrix(model.A)[np.nonzero(keep)[0]]
        m0 = base.shape[0]
        need = _capacity_need(ix)
        nn, tt, rr = np.nonzero(need)
        self.cap_row = np.full((N, T, R), -1, dtype=np.int64)
        self.cap_row[nn, tt, rr] = m0 + np.arange(nn.size)
        sets = model.sets
        # capacity entries of the first start columns, and −cap·on on sleeping nodes
        kn, kt = sets.x_node[sets.cov_k], sets.cov_t
        r_l, c_l, v_l = [], [], []
        for r in range(R):
            row = self.cap_row[kn, kt, r]
            u = ix.usage[sets.x_job[sets.cov_k], r]
            m = (row >= 0) & (u != 0)
            r_l.append(row[m] - m0)
            c_l.append(model.x[sets.cov_k[m]])
            v_l.append(u[m])
        sleep = ix.can_sleep[nn]
        r_l.append(np.nonzero(sleep)[0])
        c_l.append(model.on[nn[sleep], tt[sleep]])
        v_l.append(-ix.capacity[nn[sleep], rr[sleep]])
        cap_A = sp.csr_matrix((np.concatenate(v_l), (np.concatenate(r_l), np.concatenate(c_l))),
                              shape=(nn.size, model.n_cols))
        A = sp.vstack([base, cap_A], format="csc")
        self.row_lo = np.concatenate([model.row_lo[keep], np.full(nn.size, -np.inf)])
        self.row_hi = np.concatenate([model.row_hi[keep],
                                      np.where(sleep, 0.0, ix.capacity[nn, rr])])
        self.in_assign = np.zeros(self.row_lo.size, dtype=bool)
        self.in_assign[self.assign_row[self.assign_row >= 0]] = True
        # columns: the model's, then artificial, then entering start columns
        self.n_model = model.n_cols
        art_jobs = np.nonzero(ix.must_run & ~ix.pinned & (self.assign_row >= 0))[0]
        self.n_art = art_jobs.size
        art = sp.csc_matrix((np.ones(self.n_art), (self.assign_row[art_jobs],
                                                   np.arange(self.n_art))),
                            shape=(A.shape[0], self.n_art))
        self.A0 = A  # model columns (non-start, first start columns) over all rows
        cost = np.concatenate([model.cost, np.full(self.n_art, big_m)])
        lb = np.concatenate([model.col_lb, np.zeros(self.n_art)])
        ub = np.concatenate([model.col_ub, np.full(self.n_art, np.inf)])
        self.cost0, self.lb0 = model.cost, model.col_lb
        self.ub0 = implied_upper_bounds(model, ix)
        is_x = np.zeros(model.n_cols, dtype=bool)
        is_x[model.x] = True
        self.pinned_cols = model.x[sets.x_fixed]
        self.drop_cols = model.drop
        is_drop = np.zeros(model.n_cols, dtype=bool)
        is_drop[model.drop[model.drop >= 0]] = True
        self.box_cols = np.nonzero(~is_x & ~is_drop)[0]
        free = ~sets.x_fixed
        self.col_opt = sets.x_opt[free].astype(np.int64)
        self.col_start = sets.x_start[free].astype(np.int64)
        self.col_pos = model.x[free].astype(np.int64)
        self.keys = set((self.col_opt * (T + 1) + self.col_start).tolist())
        self.h = hs.load(hs.LinearModel(A=sp.hstack([A, art], format="csc"), cost=cost,
                                        col_lb=lb, col_ub=ub, row_lo=self.row_lo,
                                        row_hi=self.row_hi))
        hs.configure(self.h, threads=1, solver="simplex")
        # columns enter, the basis stays primal feasible: primal simplex (measured 1.7× faster
        # than the default dual on tight 200 × 10 × 288)
        self.h.setOptionValue("simplex_strategy", 4)
        self.n_cols = self.n_model + self.n_art

    @property
    def n_starts(self) -> int:
        """Free start columns in the master."""
        return int(self.col_opt.size)

    def add(self, opt: IntArray, start: IntArray) -> int:
        """Append the start columns ``(opt, start)`` not yet in the master; returns how many."""
        ix = self.index
        T = ix.T
        key = np.asarray(opt, dtype=np.int64) * (T + 1) + np.asarray(start, dtype=np.int64)
        new = np.array([k not in self.keys for k in key.tolist()], dtype=bool)
        opt, start = np.asarray(opt)[new], np.asarray(start)[new]
        if not opt.size:
            return 0
        self.keys.update(key[new].tolist())
        j, n, d = ix.opt_job[opt], ix.opt_node[opt], ix.opt_dur[opt]
        a = np.clip(start, 0, T)
        ln = np.clip(start + d, 0, T) - a
        col = np.repeat(np.arange(opt.size), ln)
        off = np.repeat(np.cumsum(ln) - ln, ln)
        t = a[col] + (np.arange(col.size) - off)
        nc = n[col]
        rows = [self.assign_row[j], self.bal_row[nc, t]]
        cols = [np.arange(opt.size), col]
        vals = [np.ones(opt.size), -ix.opt_power[opt][col]]
        for r in range(len(ix.resources)):
            u = ix.usage[j[col], r]
            cr = self.cap_row[nc, t, r]
            m = (cr >= 0) & (u != 0)
            rows.append(cr[m])
            cols.append(col[m])
            vals.append(u[m])
        A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(self.row_lo.size, opt.size))
        cost = (ix.opt_latency_cost[opt] + ix.tardiness_cost(j, start + d)).astype(float)
        hs.add_cols(self.h, cost, np.zeros(opt.size), np.ones(opt.size), A)
        self.col_pos = np.concatenate([self.col_pos, self.n_cols + np.arange(opt.size)])
        self.col_opt = np.concatenate([self.col_opt, opt])
        self.col_start = np.concatenate([self.col_start, start])
        self.n_cols += opt.size
        return int(opt.size)

    def solve(self, time_limit: float) -> str:
        """Solve (warm from the last basis): ``optimal``, ``infeasible`` or ``stopped``."""
        # HiGHS's time limit counts the instance's run time over every solve
        hs.configure(self.h, time_limit=self.h.getRunTime() + max(0.05, time_limit))
        ran = hs.run(self.h)
        if ran.optimal or ran.empty:
            return "optimal"
        return "infeasible" if ran.infeasible else "stopped"

    def value(self) -> float:
        """Objective of the last solve [money]."""
        return hs.info(self.h).objective

    def row_duals(self) -> FloatArray:
        """Row multipliers of the last solve."""
        return hs.solution(self.h).row_duals()

    def primal(self) -> FloatArray:
        """Column values of the last solve."""
        return hs.solution(self.h).primal()

    def artificial_use(self, x: FloatArray) -> float:
        """Sum of the artificial columns in ``x``."""
        return float(x[self.n_model:self.n_model + self.n_art].sum())

    def clip(self, y: FloatArray) -> FloatArray:
        """``y`` clipped to the signs the row bounds allow, assignment rows at 0."""
        y = np.where(np.isneginf(self.row_lo), np.minimum(y, 0.0), y)
        y = np.where(np.isposinf(self.row_hi), np.maximum(y, 0.0), y)
        y = np.where(np.isfinite(y) & ~self.in_assign, y, 0.0)
        return np.asarray(y, dtype=float)

    def duals(self, y: FloatArray) -> Duals:
        """The pricer's multipliers of (clipped) ``y``."""
        ix = self.index
        y = self.clip(y)
        bal = np.where(self.bal_row >= 0, y[np.maximum(self.bal_row, 0)], 0.0)
        mu = np.where(self.cap_row >= 0, -np.minimum(y[np.maximum(self.cap_row, 0)], 0.0), 0.0)
        return Duals(bal, mu.reshape(ix.N, ix.T, len(ix.resources)), {})

    def job_duals(self, y: FloatArray) -> FloatArray:
        """Assignment-row multipliers per job (0 without a row)."""
        return np.where(self.assign_row >= 0, y[np.maximum(self.assign_row, 0)], 0.0)

    def bound(self, y: FloatArray, priced: Priced) -> float:
        """Farley's Lagrangian bound at ``y`` with the pricer's job minima (module doc)."""
        ix = self.index
        y = self.clip(y)
        with np.errstate(invalid="ignore"):
            rows = np.where(y > 0, y * self.row_lo, np.where(y < 0, y * self.row_hi, 0.0))
        value = float(rows.sum())
        d = self.cost0 - self.A0.T @ y
        db = d[self.box_cols]
        with np.errstate(invalid="ignore"):
            box = np.where(db > 0, db * self.lb0[self.box_cols],
                           np.where(db < 0, db * self.ub0[self.box_cols], 0.0))
        value += float(box.sum()) + float(d[self.pinned_cols].sum())
        best = priced.job_best.copy()
        has_drop = self.drop_cols >= 0
        best[has_drop] = np.fmin(best[has_drop], d[self.drop_cols[has_drop]])
        value += float(best[~ix.pinned].sum())
        return value if not math.isnan(value) else -math.inf

    def placement(self, x: FloatArray, tol: float = 1e-3
                  ) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
        """``(job, node, start, value)`` of the start columns above ``tol`` in ``x``."""
        have = self.col_pos < x.size  # columns added after that solve are at 0
        v = np.zeros(self.col_pos.size)
        v[have] = x[self.col_pos[have]]
        k = v > tol
        o = self.col_opt[k]
        return (self.index.opt_job[o].astype(np.int64), self.index.opt_node[o].astype(np.int64),
                self.col_start[k].astype(np.int64), v[k])


def _initial(index: Index, pricer: StartPricer, per_job: int) -> tuple[IntArray, IntArray]:
    """Per job its ``per_job`` cheapest options at the tariff price (energy only)."""
    T, N, R = index.T, index.N, len(index.resources)
    d0 = Duals(index.dt * index.import_cost, np.zeros((N, T, R)), {})
    return pricer.cheapest(pricer.price(d0), per_job, tol=-np.inf)


def _incumbent_columns(index: Index, node: IntArray, start: IntArray
                       ) -> tuple[IntArray, IntArray]:
    js = np.nonzero((np.asarray(node) >= 0) & ~index.pinned)[0]
    os_ = np.array([index.find_option(int(j), int(node[j])) for j in js], dtype=np.int64)
    ok = os_ >= 0
    return os_[ok], np.asarray(start, dtype=np.int64)[js[ok]]


def implicit_colgen_bound(index: Index, time_limit: float | None = None,
                          progress: Callable[[float, float], None] | None = None,
                          incumbent: tuple[IntArray, IntArray] | None = None,
                          max_iterations: int | None = None,
                          initial_columns: int = INITIAL_COLUMNS,
                          columns_per_job: int = COLUMNS_PER_JOB,
                          smoothing: float = SMOOTHING) -> ImplicitResult:
    """Lower bound on the optimum by column generation with implicit pricing (module doc).

    Parameters
    ----------
    index : Index
        Compiled problem.
    time_limit : float, optional
        Wall-clock limit [s]; the best bound so far is returned when it is reached.
    progress : callable, optional
        ``progress(bound, elapsed)`` after every iteration that improves the bound.
    incumbent : (node, start) arrays, optional
        A plan's placement: its start columns join the first master (which then needs
        no artificial column).
    max_iterations : int, optional
        Stop after this many masters.
    initial_columns, columns_per_job : int
        Start columns per job in the first master / entering per iteration.
    smoothing : float
        Wentges weight in [0, 1).

    Returns
    -------
    ImplicitResult
    """
    t0 = time.perf_counter()
    limit = math.inf if time_limit is None else float(time_limit)
    ix = index
    if ix.S > 1:  # the master and the pricer price one scenario
        return ImplicitResult(-math.inf, None, 0, 0, 0.0, False)
    pricer = StartPricer(ix)
    has = np.zeros(ix.J, dtype=bool)
    has[ix.opt_job[pricer.free_opts]] = True
    if np.any(ix.must_run & ~ix.pinned & ~has):
        return ImplicitResult(math.inf, None, 0, 0, time.perf_counter() - t0, True)
    opt, start = _initial(ix, pricer, initial_columns)
    if incumbent is not None:
        io, is_ = _incumbent_columns(ix, *incumbent)
        opt, start = np.concatenate([opt, io]), np.concatenate([start, is_])
    span = float(np.abs(ix.import_cost).max(initial=1.0)) * ix.dt * float(
        (ix.opt_power * ix.opt_dur).max(initial=1.0))
    big_m = 1e3 * max(1.0, span, float(np.nanmax(np.append(ix.drop_penalty, 0.0))))
    master = RestrictedMaster(ix, opt, start, big_m)
    best = -math.inf
    best_y: FloatArray | None = None
    hist: list[tuple[float, float, float]] = []
    it = 0
    lp_value: float | None = None
    converged = False
    x = None
    while max_iterations is None or it < max_iterations:
        left = limit - (time.perf_counter() - t0)
        if left <= 0:
            break
        status = master.solve(left)
        if status != "optimal":
            log.info("implicit colgen: master %d %s", it + 1, status)
            break
        it += 1
        y = master.clip(master.row_duals())
        x = master.primal()
        value = master.value()
        art = master.artificial_use(x)
        lp_value = value if art <= 1e-6 else None
        priced = pricer.price(master.duals(y))
        b, b_y = master.bound(y, priced), y
        price_at = priced
        if smoothing > 0 and best_y is not None:
            ys = smoothing * best_y + (1.0 - smoothing) * y
            ps = pricer.price(master.duals(ys))
            bs = master.bound(ys, ps)
            price_at = ps
            if bs > b:
                b, b_y = bs, ys
        if b > best:
            best, best_y = b, b_y
            if progress is not None:
                progress(best, time.perf_counter() - t0)
        hist.append((time.perf_counter() - t0, best, value))
        log.debug("implicit colgen it %d: master %.6f (artificial %.3g) bound %.6f, %d columns, "
                  "%.1f s", it, value, art, best, master.n_starts, time.perf_counter() - t0)
        if lp_value is not None and best >= value - CONVERGED_GAP * max(1.0, abs(value)):
            converged = True
            break
        tol = REDUCED_COST_TOL * max(1.0, abs(value) / max(1, ix.J))
        jd = master.job_duals(master.row_duals())
        added = master.add(*pricer.cheapest(price_at, columns_per_job, tol, jd))
        if not added and price_at is not priced:
            added = master.add(*pricer.cheapest(priced, columns_per_job, tol, jd))
        if not added:
            converged = lp_value is not None
            break
    place = master.placement(x) if x is not None and lp_value is not None else None
    return ImplicitResult(best, lp_value, it, master.n_starts, time.perf_counter() - t0,
                          converged, tuple(hist), place)
