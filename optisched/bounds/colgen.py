"""Lower bound for large instances by column generation on the start columns.

The LP relaxation of the exact MILP (:func:`optisched.formulations.milp.build_milp`)
has one column ``x[o, s]`` per feasible start of every option: on the large
benchmark (1000 jobs x 100 nodes x 96 slots) 741 k of its 828 k columns and, via
the ``on_link`` rows (one per option and covered slot), 931 k of its 963 k rows.
Few of these columns are ever positive, so the LP is solved by column
generation (Dantzig-Wolfe on the assignment rows):

* The **restricted master** (RMP) holds every column that is not a start column
  (energy, battery, on/off, drops, peaks; 87 k on the large instance), a small
  subset of the start columns, and the rows that are not ``on_link`` rows plus the
  ``on_link`` rows that some start column in the RMP covers. The other rows read
  ``−on[n,t] ≤ 0`` in the RMP (no start column of theirs is present): they are
  redundant, so the RMP is exactly the full LP with the missing start columns
  fixed to 0. Must-run jobs get an artificial column of cost ``big_m`` in their
  assignment row so that the RMP is always feasible.
* Each iteration builds the RMP afresh in HiGHS and solves it by interior point
  without crossover (any multipliers give a bound, so no vertex is needed; on the
  large instance a warm-started dual simplex took 30-80 s per master, as long as
  a cold one, against 7-35 s for IPM). It takes the row duals ``y`` (0 on the rows
  not in the RMP), prices **all** start columns of the full model,
  ``d = c − Aᵀy``, and adds per job the few most negative ones (with the
  ``on_link`` rows they cover). Unused start columns whose reduced cost is clearly
  positive leave the master, each at most once (no cycling): the IPM time grows
  with the master.
* Dual smoothing (Wentges): columns are priced at ``ỹ = α·ŷ + (1 − α)·y`` where
  ``ŷ`` are the multipliers of the best bound so far; when ``ỹ`` prices out no
  column, ``y`` itself is priced (so convergence is that of plain column
  generation).

**Why the bound is valid.** At every iteration the multipliers (``y`` and ``ỹ``)
are handed to :func:`optisched.bounds.duality.dual_value` on the *full* model. That is the
Lagrangian (Farley) bound: every row except the assignment rows is dualized with
sign-clipped multipliers, and each job keeps its simplex ``Σ x + drop = 1`` over
*all* its start columns, so it is a lower bound on the LP optimum, hence on the
MILP optimum, whatever the multipliers are: it does not matter that ``y`` comes
from a restricted master, from artificial columns, or from a solve stopped early.
When no start column has a negative reduced cost, the RMP solution is optimal for
the full LP (its duals, extended by 0, are dual feasible), so the RMP value is the
LP bound itself and equals the Lagrangian bound up to tolerances.

``inf`` is returned only with a proof: a must-run job without any start column,
or multipliers ``y`` whose zero-cost Lagrangian value on the full model is positive
(a Farkas certificate, checked by ``dual_value``): the dual ray of an infeasible
master (infeasible even with every job on its drop or artificial column), or the
duals of a converged phase-1 master (cost 1 on the artificial columns, 0
elsewhere), run when the artificial columns are still in use once no column prices
out; a phase 1 that reaches 0 raises ``big_m`` instead.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.backends import highs as hs
from optisched.bounds.duality import dual_value
from optisched.domain import Problem
from optisched.formulations.milp import MilpModel, ModelSets, build_milp
from optisched.index import Index, compile_index

__all__ = ["ColgenResult", "colgen_bound"]

log = logging.getLogger(__name__)

DEFAULT_INITIAL_COLUMNS = 3
"""Start columns per job in the first RMP (cheapest at the tariff price, distinct nodes)."""

DEFAULT_COLUMNS_PER_JOB = 3
"""Most negative start columns added per job and iteration."""

DEFAULT_PER_OPTION = 1
"""At most this many of the columns added per job and iteration are of one option."""

DEFAULT_SMOOTHING = 0.5
"""Weight ``α`` of the best multipliers in the pricing point (0 = no smoothing)."""

REDUCED_COST_TOL = 1e-7
"""A start column enters when its reduced cost is below ``−tol`` [money]
(HiGHS's default dual feasibility tolerance)."""

ARTIFICIAL_TOL = 1e-6
"""Artificial columns summing to more than this count as in use."""

INFEASIBILITY_TOL = 1e-6
"""A zero-cost Lagrangian value above this (multipliers scaled to max 1) proves the LP
infeasible."""

BIG_M_MAX = 1e12
"""Largest cost of the artificial columns [money]."""

DEFAULT_DROP_THRESHOLD = 1e-3
"""Relative reduced cost above which an unused start column leaves the master."""

DROP_X_TOL = 1e-6
"""Start columns below this value count as unused."""

IPM_TOL_MAX, IPM_TOL_MIN = 1e-6, 1e-8
"""Range of the interior-point optimality tolerance: the loosest while the bound is far
from the master value (inexact masters still give valid bounds), the tightest near
convergence."""

CONVERGED_GAP = 1e-9
"""Stop when the bound is within this relative distance of the master value."""


@dataclass(frozen=True)
class ColgenResult:
    """Result of :func:`colgen_bound`.

    Attributes
    ----------
    bound : float
        Best valid lower bound on the optimal cost [money]; ``inf`` when the
        problem is proven infeasible, ``-inf`` when no bound was computed.
    lp_value : float or None
        Value of the last restricted master [money] (an upper bound on the LP
        optimum, equal to it when ``converged``); None when no master was solved
        or it still used artificial columns.
    iterations : int
        Restricted masters solved.
    columns : int
        Start columns in the restricted master at the end.
    seconds : float
        Wall time including the model build [s].
    converged : bool
        No start column had a negative reduced cost at the end (then
        ``lp_value`` is the LP optimum), or infeasibility was proven.
    history : tuple of (float, float, float) tuples
        ``(elapsed [s], bound [money], RMP value [money])`` after each iteration.
    """

    bound: float
    lp_value: float | None
    iterations: int
    columns: int
    seconds: float
    converged: bool
    history: tuple[tuple[float, float, float], ...] = ()


def _group_rank(group: IntArray, key: FloatArray) -> tuple[IntArray, IntArray]:
    """Order by (group, key) and the rank of each element within its group."""
    order = np.lexsort((key, group))
    g = group[order]
    first = np.ones(g.size, dtype=bool)
    first[1:] = g[1:] != g[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(g.size), 0))
    return order, np.arange(g.size) - start


def _select(cand: IntArray, d: FloatArray, job: IntArray, opt: IntArray, per_job: int,
            per_option: int) -> IntArray:
    """Of the columns ``cand`` (positions in the start columns), the ``per_job`` with the
    lowest ``d`` per job, at most ``per_option`` of them per option."""
    if not cand.size:
        return cand
    order, rank = _group_rank(opt[cand], d[cand])
    cand = cand[order[rank < per_option]]
    order, rank = _group_rank(job[cand], d[cand])
    return np.sort(cand[order[rank < per_job]])


class _Master:
    """Restricted masters over the full model: fixed maps, one HiGHS model per solve.

    RMP columns: the non-start columns of the full model (in order), then the
    artificial columns (one per must-run job, while in use), then the active start
    columns. RMP rows: every row that is not an ``on_link`` row, then the ``on_link``
    rows the active start columns cover.
    """

    def __init__(self, model: MilpModel, index: Index, big_m: float, solver: str) -> None:
        self.model = model
        self.solver = solver
        self.big_m = big_m
        A = model.A
        is_x = np.zeros(model.n_cols, dtype=bool)
        is_x[model.x] = True
        self.nonx = np.nonzero(~is_x)[0]
        self.A_nonx = sp.csc_matrix(A[:, self.nonx])
        self.on_link = np.zeros(model.n_rows, dtype=bool)
        assign_row = np.full(index.J, -1, dtype=np.int64)
        for blk in model.blocks:
            if blk.family == "on_link":
                self.on_link[blk.start:blk.start + blk.size] = True
            elif blk.family == "assignment":
                assign_row[blk.job] = np.arange(blk.start, blk.start + blk.size)
        self.art_rows = assign_row[index.must_run & ~index.pinned]
        self.use_art = self.art_rows.size > 0
        self.rows = np.zeros(0, dtype=np.int64)
        self.active = np.zeros(0, dtype=np.int64)
        self.h = hs.new_highs()

    @property
    def n_art(self) -> int:
        """Artificial columns in the current master."""
        return int(self.art_rows.size) if self.use_art else 0

    def build(self, active: IntArray, phase1: bool = False) -> None:
        """A fresh master with the start columns ``active`` (positions in ``model.x``);
        ``phase1``: cost 1 on the artificial columns and 0 elsewhere."""
        model = self.model
        self.active = active
        cols = model.x[active]
        sub = sp.csc_matrix(model.A[:, cols])
        need = ~self.on_link
        need[sub.indices] = True
        self.rows = np.nonzero(need)[0]
        row_pos = np.full(model.n_rows, -1, dtype=np.int64)
        row_pos[self.rows] = np.arange(self.rows.size)
        m = self.rows.size
        coo = self.A_nonx.tocoo()
        r = row_pos[coo.row]
        keep = r >= 0
        parts = [sp.csc_matrix((coo.data[keep], (r[keep], coo.col[keep])),
                               shape=(m, self.nonx.size))]
        n_art = self.n_art
        if n_art:
            parts.append(sp.csc_matrix((np.ones(n_art), (row_pos[self.art_rows],
                                                         np.arange(n_art))), shape=(m, n_art)))
        parts.append(sp.csc_matrix((sub.data, row_pos[sub.indices], sub.indptr),
                                   shape=(m, cols.size)))
        M = sp.hstack(parts, format="csc")
        M.sort_indices()
        cost = np.concatenate([model.cost[self.nonx], np.full(n_art, self.big_m),
                               model.cost[cols]])
        if phase1:
            cost = np.concatenate([np.zeros(self.nonx.size), np.ones(n_art),
                                   np.zeros(cols.size)])
        lb = np.concatenate([model.col_lb[self.nonx], np.zeros(n_art), model.col_lb[cols]])
        ub = np.concatenate([model.col_ub[self.nonx], np.full(n_art, np.inf), model.col_ub[cols]])
        h = hs.load(hs.LinearModel(A=M, cost=cost, col_lb=lb, col_ub=ub,
                                   row_lo=model.row_lo[self.rows],
                                   row_hi=model.row_hi[self.rows]))
        # any multipliers give a bound: no crossover to a vertex needed with ipm
        hs.configure(h, threads=1, solver=self.solver,
                     crossover=False if self.solver == "ipm" else None)
        self.h = h

    def solve(self, time_limit: float, ipm_tol: float) -> str:
        """Solve the master; returns ``optimal``, ``infeasible`` or ``stopped``."""
        h = self.h
        hs.configure(h, time_limit=max(time_limit, 0.01),
                     ipm_optimality_tolerance=float(ipm_tol) if self.solver == "ipm" else None)
        ran = hs.run(h)
        if ran.unknown and self.solver == "ipm":
            # IPX without crossover may stop short of its tolerances: redo by simplex
            log.debug("colgen: IPM status %s, re-solving by simplex", ran.text)
            hs.configure(h, solver="simplex")
            ran = hs.run(h)
        if ran.optimal or ran.empty:
            return "optimal"
        if ran.infeasible:
            return "infeasible"
        log.debug("colgen: master status %s", ran.text)
        return "stopped"

    def value(self) -> float:
        """Objective of the last solve [money]."""
        return hs.info(self.h).objective

    def duals(self) -> FloatArray:
        """Row duals of the last solve on the full rows (0 on rows not in the master)."""
        y = np.zeros(self.model.n_rows)
        if self.rows.size:
            y[self.rows] = hs.solution(self.h).row_duals()[:self.rows.size]
        return y

    def start_values(self) -> FloatArray:
        """Values of the active start columns in the last solution."""
        x = hs.solution(self.h).primal()
        return x[self.nonx.size + self.n_art:]

    def artificial_use(self) -> float:
        """Total value of the artificial columns in the last solution."""
        if not self.n_art:
            return 0.0
        x = hs.solution(self.h).primal()
        return float(x[self.nonx.size:self.nonx.size + self.n_art].sum())


def _initial_columns(model: MilpModel, index: Index, per_job: int) -> IntArray:
    """Per job the ``per_job`` cheapest start columns on distinct nodes when energy costs
    the import price, and every pinned column."""
    y0 = np.zeros(model.n_rows)
    for blk in model.blocks:
        if blk.family == "power_balance":
            y0[blk.start:blk.start + blk.size] = index.dt * index.import_cost[blk.node, blk.slot]
    d = (model.cost - model.A.T @ y0)[model.x]
    sets = model.sets
    free = np.nonzero(~sets.x_fixed)[0]
    pick = _select(free, d, sets.x_job, sets.x_opt, per_job, 1)
    return np.union1d(pick, np.nonzero(sets.x_fixed)[0])


def _default_big_m(model: MilpModel) -> float:
    """A cost for the artificial columns far above what running a job can cost [money]."""
    span = float(np.abs(model.cost).max()) if model.n_cols else 0.0
    return 1e3 * max(1.0, span)


def _infeasibility_proven(model: MilpModel, index: Index, y: FloatArray) -> bool:
    """True when the multipliers ``y`` certify that the LP has no feasible point.

    With zero costs the LP optimum is 0 when it is feasible, so a positive
    :func:`~optisched.bounds.duality.dual_value` of the zero-cost model is a Farkas proof.
    """
    scale = float(np.abs(y).max()) if y.size else 0.0
    if not np.isfinite(scale) or scale <= 0.0:
        return False
    zero = dataclasses.replace(model, cost=np.zeros(model.n_cols))
    return dual_value(zero, index, y / scale) > INFEASIBILITY_TOL


def _farkas(master: _Master) -> FloatArray | None:
    """Row multipliers (full rows) from a dual ray of an infeasible master, if any."""
    h = master.h
    hs.configure(h, solver="simplex", presolve=False)
    hs.run(h)
    ray = hs.dual_ray(h)
    if ray is None:
        return None
    y = np.zeros(master.model.n_rows)
    y[master.rows] = ray[:master.rows.size]
    return y


def colgen_bound(problem: Problem, index: Index | None = None, time_limit: float | None = None,
                 model: MilpModel | None = None,
                 progress: Callable[[float, float], None] | None = None, *,
                 initial_columns: int = DEFAULT_INITIAL_COLUMNS,
                 columns_per_job: int = DEFAULT_COLUMNS_PER_JOB,
                 per_option: int = DEFAULT_PER_OPTION,
                 smoothing: float = DEFAULT_SMOOTHING,
                 lp_solver: str = "ipm",
                 drop_threshold: float = DEFAULT_DROP_THRESHOLD,
                 max_iterations: int | None = None) -> ColgenResult:
    """Lower bound on the optimal cost by column generation on the start columns.

    See the module docstring for the method and why every reported bound is valid.

    Parameters
    ----------
    problem : Problem
        The problem.
    index : Index, optional
        Its compiled index (compiled when missing).
    time_limit : float, optional
        Wall-time limit [s], including the model build; the best bound so far is
        returned when it is reached. None = until convergence.
    model : MilpModel, optional
        The full model (``build_milp(index)``), built when missing.
    progress : callable, optional
        Called as ``progress(bound [money], elapsed [s])`` after every iteration.
    initial_columns : int
        Start columns per job in the first master.
    columns_per_job : int
        Columns added per job and iteration.
    per_option : int
        Of those, at most this many per option (node).
    smoothing : float
        Dual smoothing weight ``α`` in [0, 1) (0 = plain column generation).
    lp_solver : {"ipm", "simplex"}
        HiGHS method for the masters (``ipm`` without crossover).
    drop_threshold : float
        Start columns at 0 whose reduced cost exceeds ``drop_threshold · |RMP value| / J``
        [money] leave the master (0 = never), at most once each; they re-enter when
        they price out again.
    max_iterations : int, optional
        Stop after this many masters.

    Returns
    -------
    ColgenResult
        Best bound, last master value, counts and timing.
    """
    t0 = time.perf_counter()
    index = index or compile_index(problem)
    model = model or build_milp(index)
    # a must-run job without any start column: no plan exists
    has_col = np.zeros(index.J, dtype=bool)
    has_col[model.sets.x_job] = True
    if np.any(index.must_run & ~index.pinned & ~has_col):
        log.info("colgen: a must-run job has no feasible start; bound = inf")
        return ColgenResult(math.inf, None, 0, 0, time.perf_counter() - t0, True, ())
    search = _Colgen(model, index, t0, math.inf if time_limit is None else float(time_limit),
                     progress, columns_per_job=columns_per_job, per_option=per_option,
                     smoothing=smoothing, drop_threshold=drop_threshold)
    search.start(initial_columns, lp_solver)
    return search.run(max_iterations)


class _Colgen:
    """The state of one column generation (see :func:`colgen_bound`)."""

    def __init__(self, model: MilpModel, index: Index, t0: float, limit: float,
                 progress: Callable[[float, float], None] | None, *, columns_per_job: int,
                 per_option: int, smoothing: float, drop_threshold: float) -> None:
        self.model, self.index, self.sets = model, index, model.sets
        self.t0, self.limit, self.progress = t0, limit, progress
        self.columns_per_job, self.per_option = columns_per_job, per_option
        self.smoothing, self.drop_threshold = smoothing, drop_threshold
        self.hist: list[tuple[float, float, float]] = []
        self.fixed = model.sets.x_fixed
        self.dropped = np.zeros(model.x.size, dtype=bool)
        self.best, self.best_y = -math.inf, np.zeros(model.n_rows)
        self.lp: float | None = None
        self.it = 0
        self.phase1 = False
        self.ipm_tol = IPM_TOL_MAX
        self.stopped = False
        """The search ends without a proof (after the current iteration)."""

    def start(self, initial_columns: int, lp_solver: str) -> None:
        """The first master's start columns and the master."""
        self.active = _initial_columns(self.model, self.index, initial_columns)
        self.master = _Master(self.model, self.index, _default_big_m(self.model), lp_solver)

    def elapsed(self) -> float:
        """Seconds since the start, model build included."""
        return time.perf_counter() - self.t0

    def result(self, bound: float, lp: float | None, converged: bool) -> ColgenResult:
        """The result at this point."""
        return ColgenResult(bound, lp, self.it, self.active.size, self.elapsed(), converged,
                            tuple(self.hist))

    def run(self, max_iterations: int | None) -> ColgenResult:
        """Masters until convergence, a proof of infeasibility, the limits or a stop."""
        master = self.master
        while max_iterations is None or self.it < max_iterations:
            master.build(self.active, self.phase1)
            status = master.solve(self.limit - self.elapsed(), self.ipm_tol)
            if status == "stopped":
                log.info("colgen: master %d not solved in time", self.it + 1)
                break
            self.it += 1
            if status == "infeasible":
                proof = self._infeasible_master()
                if proof is not None:
                    return proof
                break
            y = master.duals()
            value = master.value()
            art = master.artificial_use()
            price_y = y if self.phase1 else self._record(y, value, art)
            log.debug("colgen it %d: RMP %.6f bound %.6f artificial %.3g, %d start columns, "
                      "%d rows (%.1f s)", self.it, value, self.best, art, self.active.size,
                      master.rows.size, self.elapsed())
            if self.elapsed() >= self.limit:
                break
            if (not self.phase1 and self.lp is not None
                    and self.best >= value - CONVERGED_GAP * max(1.0, abs(value))):
                log.info("colgen: bound meets the master value after %d iterations (%.1f s)",
                         self.it, self.elapsed())
                return self.result(self.best, value, True)
            if self._add_columns(y, price_y, value):
                continue
            done = self._no_column_prices_out(y, value, art)
            if done is not None:
                return done
            if self.stopped:
                break
        return self.result(self.best, self.lp, False)

    def _infeasible_master(self) -> ColgenResult | None:
        """Infeasible whatever the start columns (every job may go to its drop or
        artificial column): the result when a Farkas ray on the full model proves it."""
        model, index = self.model, self.index
        ray = _farkas(self.master)
        if ray is not None and (_infeasibility_proven(model, index, ray)
                                or _infeasibility_proven(model, index, -ray)):
            log.info("colgen: LP relaxation infeasible (Farkas ray); bound = inf")
            return self.result(math.inf, None, True)
        log.warning("colgen: restricted master infeasible without a certificate; "
                    "returning the best bound so far")
        return None

    def _record(self, y: FloatArray, value: float, art: float) -> FloatArray:
        """Bound of a phase-2 master's duals (and of the smoothed ones); returns the
        multipliers to price at."""
        model, index = self.model, self.index
        price_y = y
        self.lp = value if art <= ARTIFICIAL_TOL else None
        bound_it, y_it = dual_value(model, index, y), y
        if self.smoothing > 0 and math.isfinite(self.best):
            price_y = self.smoothing * self.best_y + (1.0 - self.smoothing) * y
            b_s = dual_value(model, index, price_y)
            if b_s > bound_it:
                bound_it, y_it = b_s, price_y
        if bound_it > self.best:
            self.best, self.best_y = bound_it, y_it
        self.hist.append((self.elapsed(), self.best, value))
        if self.progress is not None:
            self.progress(self.best, self.elapsed())
        if math.isfinite(self.best) and self.lp is not None:
            gap = max(value - self.best, 0.0) / max(1.0, abs(value))
            self.ipm_tol = min(IPM_TOL_MAX, max(IPM_TOL_MIN, 1e-3 * gap))
        return price_y

    def _add_columns(self, y: FloatArray, price_y: FloatArray, value: float) -> bool:
        """Price the start columns outside the master and add the best; unused ones with a
        clearly positive reduced cost leave it. False when no column prices out."""
        model = self.model
        d = -(model.A.T @ y)[model.x]
        if not self.phase1:
            d += model.cost[model.x]
        d_price = d
        if price_y is not y:
            d_price = model.cost[model.x] - (model.A.T @ price_y)[model.x]
        active = self.active
        outside = np.ones(model.x.size, dtype=bool)
        outside[active] = False
        outside &= ~self.fixed
        new = _price(d_price, outside, self.sets, self.columns_per_job, self.per_option)
        if not new.size and d_price is not d:
            new = _price(d, outside, self.sets, self.columns_per_job, self.per_option)
        if not new.size:
            return False
        keep = np.ones(active.size, dtype=bool)
        if self.drop_threshold > 0 and not self.phase1:
            thr = self.drop_threshold * max(1.0, abs(value)) / max(1, self.index.J)
            xs = self.master.start_values()
            keep = ((xs > DROP_X_TOL) | (d[active] <= thr) | self.fixed[active]
                    | self.dropped[active])
            self.dropped[active[~keep]] = True  # never twice: no cycling
        self.active = np.union1d(active[keep], new)
        return True

    def _no_column_prices_out(self, y: FloatArray, value: float, art: float
                              ) -> ColgenResult | None:
        """The master is optimal for the full (phase-1) LP: the result when that ends the
        search with a proof; else the next phase (or :attr:`stopped`)."""
        if self.phase1:
            if _infeasibility_proven(self.model, self.index, y):
                log.info("colgen: phase 1 proves the LP infeasible; bound = inf")
                return self.result(math.inf, None, True)
            if value > ARTIFICIAL_TOL or self.master.big_m >= BIG_M_MAX:
                log.warning("colgen: phase 1 ends at %.3g without a certificate", value)
                self.stopped = True
                return None
            # feasible without artificial columns: they were too cheap
            self.phase1 = False
            self.master.big_m *= 100.0
            return None
        if art > ARTIFICIAL_TOL:
            log.info("colgen: artificial columns in use at convergence; phase 1")
            self.phase1 = True
            return None
        log.info("colgen: converged after %d iterations, LP %.6f, bound %.6f (%.1f s)", self.it,
                 value, self.best, self.elapsed())
        return self.result(self.best, value, True)


def _price(d: FloatArray, outside: BoolArray, sets: ModelSets, per_job: int,
           per_option: int) -> IntArray:
    """Start columns ``outside`` the master with reduced cost ``d`` below ``−tol``, the
    ``per_job`` most negative per job (at most ``per_option`` per option)."""
    cand = np.nonzero((d < -REDUCED_COST_TOL) & outside)[0]
    return _select(cand, d, sets.x_job, sets.x_opt, per_job, per_option)
