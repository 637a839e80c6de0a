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
* Each iteration solves the RMP by dual simplex (warm-started: new rows and
  columns are appended to the same HiGHS instance), takes its row duals ``y``
  (0 on the rows not in the RMP), prices **all** start columns of the full model,
  ``d = c − Aᵀy``, and appends per job the few most negative ones together with
  the ``on_link`` rows they cover.
* Dual smoothing (Wentges): columns are priced at ``ỹ = α·ŷ + (1 − α)·y`` where
  ``ŷ`` are the multipliers of the best bound so far; when ``ỹ`` prices out no
  column, ``y`` itself is priced (so convergence is that of plain column
  generation).

**Why the bound is valid.** At every iteration the multipliers (``y`` and ``ỹ``)
are handed to :func:`optisched.bound.dual_value` on the *full* model. That is the
Lagrangian (Farley) bound: every row except the assignment rows is dualized with
sign-clipped multipliers, and each job keeps its simplex ``Σ x + drop = 1`` over
*all* its start columns, so it is a lower bound on the LP optimum, hence on the
MILP optimum, whatever the multipliers are: it does not matter that ``y`` comes
from a restricted master, from artificial columns, or from a solve stopped early.
When no start column has a negative reduced cost, the RMP solution is optimal for
the full LP (its duals, extended by 0, are dual feasible), so the RMP value is the
LP bound itself and equals the Lagrangian bound up to tolerances.

If a must-run job has no start column at all, or the RMP is infeasible with all
must-run jobs on artificial columns (then even the relaxation without the
assignment rows is infeasible), the bound is ``inf``. If the artificial columns
are still used when no column prices out, a phase-1 master (cost 1 on the
artificial columns, 0 elsewhere) decides between "LP infeasible" (bound ``inf``)
and "raise ``big_m``".
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from optisched.bound import dual_value
from optisched.domain import Problem
from optisched.index import Index, compile_index

if TYPE_CHECKING:
    from optisched.formulations.milp import MilpModel

__all__ = ["ColgenResult", "colgen_bound"]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

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

PHASE1_TOL = 1e-7
"""Phase-1 values (total artificial use) above this prove the LP infeasible."""


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
    """The restricted master in one HiGHS instance, with maps to the full model.

    RMP columns: the non-start columns of the full model (in order), then the
    artificial columns (one per must-run job), then start columns as they enter.
    RMP rows: full rows in the order they entered.
    """

    def __init__(self, model: MilpModel, index: Index, init: IntArray, big_m: float) -> None:
        self.model = model
        A = model.A
        n_rows = model.n_rows
        is_x = np.zeros(model.n_cols, dtype=bool)
        is_x[model.x] = True
        self.nonx = np.nonzero(~is_x)[0]
        self.kpos = np.full(model.x.size, -1, dtype=np.int64)  # RMP column of start column
        self.row_pos = np.full(n_rows, -1, dtype=np.int64)
        on_link = np.zeros(n_rows, dtype=bool)
        self.assign_row = np.full(index.J, -1, dtype=np.int64)
        for blk in model.blocks:
            if blk.family == "on_link":
                on_link[blk.start:blk.start + blk.size] = True
            elif blk.family == "assignment":
                self.assign_row[blk.job] = np.arange(blk.start, blk.start + blk.size)
        # rows of the non-start columns, to give rows entering later their entries
        self.rows_nonx = sp.csr_matrix(A[:, self.nonx])
        # initial rows: all but on_link, plus on_link rows covered by init columns
        sub = A[:, model.x[init]]
        need = np.zeros(n_rows, dtype=bool)
        need[~on_link] = True
        need[sub.indices] = True
        self.rows = np.nonzero(need)[0]
        self.row_pos[self.rows] = np.arange(self.rows.size)
        # artificial columns: must-run (not pinned) jobs
        art_jobs = np.nonzero(index.must_run & ~index.pinned)[0]
        self.art_jobs = art_jobs
        n_art = art_jobs.size
        self.art0 = self.nonx.size
        # assemble: non-start columns | artificials | init
        full = sp.csc_matrix(A[:, self.nonx])
        coo = full.tocoo()
        r = self.row_pos[coo.row]
        keep = r >= 0
        m_nonx = sp.csc_matrix((coo.data[keep], (r[keep], coo.col[keep])),
                               shape=(self.rows.size, self.nonx.size))
        m_art = sp.csc_matrix((np.ones(n_art), (self.row_pos[self.assign_row[art_jobs]],
                                                np.arange(n_art))),
                              shape=(self.rows.size, n_art))
        m_x = sp.csc_matrix((sub.data, self.row_pos[sub.indices], sub.indptr),
                            shape=(self.rows.size, init.size))
        M = sp.hstack([m_nonx, m_art, m_x], format="csc")
        M.sort_indices()
        cols_full = np.concatenate([self.nonx, model.x[init]])
        self.big_m = big_m
        self.cost = np.concatenate([model.cost[self.nonx], np.full(n_art, big_m),
                                    model.cost[model.x[init]]])
        lb = np.concatenate([model.col_lb[self.nonx], np.zeros(n_art),
                             model.col_lb[model.x[init]]])
        ub = np.concatenate([model.col_ub[self.nonx], np.full(n_art, np.inf),
                             model.col_ub[model.x[init]]])
        self.kpos[init] = self.art0 + n_art + np.arange(init.size)
        self.n_cols = M.shape[1]
        self.cols_full = cols_full  # full column of each non-artificial RMP column
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("solver", os.environ.get("CG_SOLVER", "simplex"))
        if os.environ.get("CG_SOLVER") == "ipm":
            h.setOptionValue("run_crossover", os.environ.get("CG_XOVER", "off"))
        h.setOptionValue("threads", 1)
        h.setOptionValue("simplex_strategy", int(os.environ.get("CG_STRAT", "1")))
        h.passModel(self.n_cols, self.rows.size, int(M.nnz), int(highspy.MatrixFormat.kColwise),
                    int(highspy.ObjSense.kMinimize), 0.0, np.ascontiguousarray(self.cost),
                    np.ascontiguousarray(lb), np.ascontiguousarray(ub),
                    np.ascontiguousarray(model.row_lo[self.rows]),
                    np.ascontiguousarray(model.row_hi[self.rows]),
                    M.indptr.astype(np.int32), M.indices.astype(np.int32),
                    M.data.astype(np.float64), np.zeros(self.n_cols, dtype=np.int32))
        self.h = h

    @property
    def n_start(self) -> int:
        """Start columns in the RMP."""
        return int((self.kpos >= 0).sum())

    def add(self, ks: IntArray) -> None:
        """Append start columns ``ks`` (positions in ``model.x``) and the rows they need."""
        if not ks.size:
            return
        model, h = self.model, self.h
        sub = model.A[:, model.x[ks]]
        rows = np.unique(sub.indices)
        new = rows[self.row_pos[rows] < 0]
        if new.size:
            # entries of the new rows in present columns: non-start columns only (a
            # start column in the RMP covering one of them would have brought it)
            rr = self.rows_nonx[new]
            h.addRows(int(new.size), np.ascontiguousarray(model.row_lo[new]),
                      np.ascontiguousarray(model.row_hi[new]), int(rr.nnz),
                      rr.indptr[:-1].astype(np.int32), rr.indices.astype(np.int32),
                      rr.data.astype(np.float64))
            self.row_pos[new] = self.rows.size + np.arange(new.size)
            self.rows = np.concatenate([self.rows, new])
        cols = model.x[ks]
        h.addCols(int(ks.size), np.ascontiguousarray(model.cost[cols]),
                  np.ascontiguousarray(model.col_lb[cols]),
                  np.ascontiguousarray(model.col_ub[cols]), int(sub.nnz),
                  sub.indptr[:-1].astype(np.int32), self.row_pos[sub.indices].astype(np.int32),
                  sub.data.astype(np.float64))
        self.kpos[ks] = self.n_cols + np.arange(ks.size)
        self.n_cols += int(ks.size)
        self.cols_full = np.concatenate([self.cols_full, cols])
        self.cost = np.concatenate([self.cost, model.cost[cols]])

    def solve(self, time_limit: float) -> str:
        """Solve the RMP; returns ``optimal``, ``infeasible`` or ``stopped``."""
        h = self.h
        if math.isfinite(time_limit):  # HiGHS's clock runs over all solves of h
            h.setOptionValue("time_limit", h.getRunTime() + float(max(time_limit, 0.01)))
        import os
        if os.environ.get("CG_DUMP"):
            h.writeModel(os.environ["CG_DUMP"])
        if os.environ.get("CG_COLD"):
            h.clearSolver()
        t = time.perf_counter()
        h.run()
        log.debug("solve %.2f s, %d simplex its %d ipm its status %s dual_valid %s",
                  time.perf_counter() - t, h.getInfo().simplex_iteration_count,
                  h.getInfo().ipm_iteration_count, h.modelStatusToString(h.getModelStatus()),
                  h.getSolution().dual_valid)
        ms = h.getModelStatus()
        MS = highspy.HighsModelStatus
        if ms == MS.kOptimal:
            return "optimal"
        if ms in (MS.kInfeasible, MS.kUnboundedOrInfeasible):
            return "infeasible"
        return "stopped"

    def value(self) -> float:
        """Objective of the last solve [money]."""
        return float(self.h.getInfo().objective_function_value)

    def duals(self) -> FloatArray:
        """Row duals of the last solve on the full rows (0 on rows not in the RMP)."""
        y = np.zeros(self.model.n_rows)
        y[self.rows] = np.asarray(self.h.getSolution().row_dual)[:self.rows.size]
        return y

    def artificial_use(self) -> float:
        """Total value of the artificial columns in the last solution."""
        if not self.art_jobs.size:
            return 0.0
        x = np.asarray(self.h.getSolution().col_value)
        return float(x[self.art0:self.art0 + self.art_jobs.size].sum())

    def set_phase(self, phase1: bool, big_m: float) -> None:
        """Phase 1: cost 1 on the artificial columns and 0 elsewhere; else the real costs
        with ``big_m`` on the artificial columns."""
        n_art = self.art_jobs.size
        cost = self.cost.copy()
        if phase1:
            cost[:] = 0.0
            cost[self.art0:self.art0 + n_art] = 1.0
        else:
            self.big_m = big_m
            cost[self.art0:self.art0 + n_art] = big_m
            self.cost = cost
        self.h.changeColsCost(self.n_cols, np.arange(self.n_cols, dtype=np.int32), cost)

    def fix_artificials(self) -> None:
        """Remove the artificial columns (upper bound 0) once the RMP is feasible without."""
        n_art = self.art_jobs.size
        if n_art:
            idx = np.arange(self.art0, self.art0 + n_art, dtype=np.int32)
            self.h.changeColsBounds(n_art, idx, np.zeros(n_art), np.zeros(n_art))


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


def _default_big_m(model: MilpModel, index: Index) -> float:
    """A cost for the artificial columns far above what running a job can cost [money]."""
    span = float(np.abs(model.cost).max()) if model.n_cols else 0.0
    return 1e3 * max(1.0, span)


def colgen_bound(problem: Problem, index: Index | None = None, time_limit: float | None = None,
                 model: MilpModel | None = None,
                 progress: Callable[[float, float], None] | None = None, *,
                 initial_columns: int = DEFAULT_INITIAL_COLUMNS,
                 columns_per_job: int = DEFAULT_COLUMNS_PER_JOB,
                 per_option: int = DEFAULT_PER_OPTION,
                 smoothing: float = DEFAULT_SMOOTHING,
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
    max_iterations : int, optional
        Stop after this many masters.

    Returns
    -------
    ColgenResult
        Best bound, last master value, counts and timing.
    """
    from optisched.formulations.milp import build_milp

    t0 = time.perf_counter()
    limit = math.inf if time_limit is None else float(time_limit)
    index = index or compile_index(problem)
    model = model or build_milp(index)
    sets = model.sets

    def elapsed() -> float:
        return time.perf_counter() - t0

    def result(bound: float, lp: float | None, it: int, cols: int, conv: bool,
               hist: list[tuple[float, float, float]]) -> ColgenResult:
        return ColgenResult(bound, lp, it, cols, elapsed(), conv, tuple(hist))

    # a must-run job without any start column: no plan exists
    has_col = np.zeros(index.J, dtype=bool)
    has_col[sets.x_job] = True
    if np.any(index.must_run & ~index.pinned & ~has_col):
        log.info("colgen: a must-run job has no feasible start; bound = inf")
        return result(math.inf, None, 0, 0, True, [])

    init = _initial_columns(model, index, initial_columns)
    big_m = _default_big_m(model, index)
    master = _Master(model, index, init, big_m)
    log.info("colgen: RMP %d rows x %d columns (%d start columns) after %.1f s",
             master.rows.size, master.n_cols, init.size, elapsed())
    best, best_y = -math.inf, np.zeros(model.n_rows)
    hist: list[tuple[float, float, float]] = []
    lp: float | None = None
    it = 0
    phase1 = False
    while True:
        if max_iterations is not None and it >= max_iterations:
            break
        status = master.solve(limit - elapsed())
        if status == "stopped":
            log.info("colgen: master not solved in time (iteration %d)", it)
            break
        it += 1
        if status == "infeasible":
            # infeasible with every must-run job on an artificial column: the LP
            # without assignment rows is infeasible, hence the problem
            log.info("colgen: master infeasible; bound = inf")
            return result(math.inf, None, it, master.n_start, True, hist)
        y = master.duals()
        value = master.value()
        art = master.artificial_use()
        price_y = y
        if not phase1:
            lp = value if art <= PHASE1_TOL else None
            bound_iter, y_iter = dual_value(model, index, y), y
            if smoothing > 0 and math.isfinite(best):
                price_y = smoothing * best_y + (1.0 - smoothing) * y
                b_s = dual_value(model, index, price_y)
                if b_s > bound_iter:
                    bound_iter, y_iter = b_s, price_y
            if bound_iter > best:
                best, best_y = bound_iter, y_iter
            hist.append((elapsed(), best, value))
            if progress is not None:
                progress(best, elapsed())
        log.debug("colgen it %d: value %.6f bound %.6f art %.3g cols %d rows %d (%.1f s)", it,
                  value, best, art, master.n_start, master.rows.size, elapsed())
        if elapsed() >= limit:
            break
        ks = _price(model, master, price_y, columns_per_job, per_option, phase1)
        if not ks.size and price_y is not y:
            ks = _price(model, master, y, columns_per_job, per_option, phase1)
        if ks.size:
            master.add(ks)
            continue
        # no column prices out: the master is optimal for the full (phase) LP
        if phase1:
            if value > PHASE1_TOL:
                log.info("colgen: phase 1 proves the LP infeasible; bound = inf")
                return result(math.inf, None, it, master.n_start, True, hist)
            master.fix_artificials()
            master.set_phase(False, big_m)
            phase1 = False
            continue
        if art > PHASE1_TOL:
            log.info("colgen: artificial columns used at convergence; phase 1")
            phase1 = True
            master.set_phase(True, big_m)
            continue
        log.info("colgen: converged after %d iterations, LP %.6f, bound %.6f (%.1f s)", it,
                 value, best, elapsed())
        return result(max(best, -math.inf), value, it, master.n_start, True, hist)
    return result(best, lp, it, master.n_start, False, hist)


def _price(model: MilpModel, master: _Master, y: FloatArray, per_job: int, per_option: int,
           phase1: bool) -> IntArray:
    """Start columns not in the master with reduced cost below ``−tol`` at ``y``, the
    ``per_job`` most negative per job (``phase1``: zero costs)."""
    sets = model.sets
    d = -(model.A.T @ y)[model.x]
    if not phase1:
        d += model.cost[model.x]
    cand = np.nonzero((d < -REDUCED_COST_TOL) & (master.kpos < 0) & ~sets.x_fixed)[0]
    return _select(cand, d, sets.x_job, sets.x_opt, per_job, per_option)
