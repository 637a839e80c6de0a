"""The one HiGHS adapter: a sparse model in, options set, run, status and results out.

Every HiGHS call of optisched goes through this module (the MILP solver, the exact
dispatch, the LP and column-generation bounds, the Lagrangian bound):

* :class:`SparseModel` is what a model must offer (``n_cols``, ``n_rows``, ``cost``,
  ``col_lb``/``col_ub``, ``row_lo``/``row_hi`` and a scipy.sparse matrix ``A`` of
  shape ``(n_rows, n_cols)``); :class:`LinearModel` is a plain dataclass of those
  arrays, and :class:`~optisched.formulations.milp.MilpModel` fits as it is.
* :func:`load` creates a silent :class:`highspy.Highs` holding a model, or
  :func:`pass_model` replaces the model of an instance the caller reuses. Both use
  the array overload of ``passModel`` (numpy arrays in, no per-element Python
  objects), row-wise for a CSR matrix and column-wise for a CSC one, minimising,
  with an integrality mask (all continuous when none is given).
* :func:`configure` is the one place options are set (time limit, threads, seed,
  presolve, method, tolerances, gaps).
* :func:`run` runs the solver and returns a :class:`RunStatus`, mapped to the
  optisched :class:`~optisched.plan.Status` by :data:`STATUS_MAP`; with
  ``pool_threads`` it resets HiGHS's process-global thread pool
  (:func:`reset_thread_pool`) and retries once when a pool of another size makes the
  run fail at once (``../shared/SOLVER-NOTES.md``); with ``deadline`` a watchdog on
  HiGHS's interrupt callbacks (simplex, interior point, MIP) stops the run at that
  ``time.perf_counter()`` even where HiGHS's own ``time_limit`` is checked late.
* :func:`solution` (primal values, row duals), :func:`info` (objective, MIP bound,
  gap, nodes), :func:`dual_ray`, :func:`set_solution` (a MIP start) and
  :func:`subscribe_improving` (the MIP callback) read and write results; :func:`add_cols`
  and :func:`add_rows` grow a model between warm runs (column generation).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from optisched.arrays import BoolArray, FloatArray
from optisched.plan import Status

__all__ = [
    "INF",
    "STATUS_MAP",
    "Highs",
    "Info",
    "LinearModel",
    "MipEvent",
    "RunStatus",
    "Solution",
    "SparseModel",
    "add_cols",
    "add_rows",
    "configure",
    "dual_ray",
    "info",
    "load",
    "new_highs",
    "pass_model",
    "reset_thread_pool",
    "run",
    "set_solution",
    "solution",
    "subscribe_improving",
]

log = logging.getLogger(__name__)

Highs = highspy.Highs
"""The HiGHS instance type (for annotations)."""
INF: float = float(highspy.kHighsInf)
"""HiGHS's infinity (``inf``)."""

_MS = highspy.HighsModelStatus
STATUS_MAP: dict[Any, Status | None] = {
    _MS.kOptimal: Status.OPTIMAL,
    _MS.kModelEmpty: Status.OPTIMAL,
    _MS.kInfeasible: Status.INFEASIBLE,
    _MS.kUnboundedOrInfeasible: Status.INFEASIBLE,
    _MS.kUnbounded: Status.ERROR,
    _MS.kTimeLimit: None,
    _MS.kIterationLimit: None,
    _MS.kSolutionLimit: None,
    _MS.kInterrupt: None,
    _MS.kHighsInterrupt: None,
    _MS.kObjectiveBound: None,
    _MS.kObjectiveTarget: None,
    _MS.kMemoryLimit: None,
    _MS.kUnknown: None,
    _MS.kNotset: Status.ERROR,
    _MS.kLoadError: Status.ERROR,
    _MS.kModelError: Status.ERROR,
    _MS.kPresolveError: Status.ERROR,
    _MS.kSolveError: Status.ERROR,
    _MS.kPostsolveError: Status.ERROR,
}
"""HighsModelStatus → optisched Status; None = ``feasible`` with an incumbent, else
``no_solution``."""


class SparseModel(Protocol):
    """What :func:`load` needs of a model: ``min cost·x, row_lo ≤ A x ≤ row_hi,
    col_lb ≤ x ≤ col_ub``.

    ``A`` is a scipy.sparse matrix of shape ``(n_rows, n_cols)``: CSR is handed over
    row-wise, CSC column-wise (any other format is converted to CSC). Infinite bounds
    are ``±inf``.
    """

    @property
    def n_cols(self) -> int: ...

    @property
    def n_rows(self) -> int: ...

    @property
    def A(self) -> Any: ...

    @property
    def cost(self) -> FloatArray: ...

    @property
    def col_lb(self) -> FloatArray: ...

    @property
    def col_ub(self) -> FloatArray: ...

    @property
    def row_lo(self) -> FloatArray: ...

    @property
    def row_hi(self) -> FloatArray: ...


@dataclass
class LinearModel:
    """A :class:`SparseModel` made of plain arrays.

    Attributes
    ----------
    A : scipy.sparse.csr_matrix or csc_matrix
        Constraint matrix ``(n_rows, n_cols)``.
    cost : (n_cols,) float
        Objective coefficients (minimised).
    col_lb, col_ub : (n_cols,) float
        Column bounds.
    row_lo, row_hi : (n_rows,) float
        Row bounds.
    """

    A: Any
    cost: FloatArray
    col_lb: FloatArray
    col_ub: FloatArray
    row_lo: FloatArray
    row_hi: FloatArray

    @property
    def n_cols(self) -> int:
        """Number of columns."""
        return int(self.A.shape[1])

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.A.shape[0])


def new_highs(log_output: bool = False) -> highspy.Highs:
    """A HiGHS instance, silent unless ``log_output``."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", bool(log_output))
    return h


def _f64(a: npt.ArrayLike) -> FloatArray:
    return np.ascontiguousarray(a, dtype=np.float64)


def pass_model(h: highspy.Highs, model: SparseModel, integer: BoolArray | None = None) -> bool:
    """Hand ``model`` to ``h``, replacing any model it holds.

    Parameters
    ----------
    h : highspy.Highs
        The instance (e.g. one the caller reuses).
    model : SparseModel
        The model.
    integer : (n_cols,) bool, optional
        Integer columns; None: all continuous (an LP).

    Returns
    -------
    bool
        False when HiGHS rejected the model.
    """
    h.clearModel()
    A = model.A
    if A.format == "csr":
        fmt = highspy.MatrixFormat.kRowwise
    else:
        if A.format != "csc":
            A = sp.csc_matrix(A)
        fmt = highspy.MatrixFormat.kColwise
    n = model.n_cols
    integrality = (np.zeros(n, dtype=np.int32) if integer is None
                   else np.asarray(integer).astype(np.int32))
    status = h.passModel(n, model.n_rows, int(A.nnz), int(fmt), int(highspy.ObjSense.kMinimize),
                         0.0, _f64(model.cost), _f64(model.col_lb), _f64(model.col_ub),
                         _f64(model.row_lo), _f64(model.row_hi), A.indptr.astype(np.int32),
                         A.indices.astype(np.int32), A.data.astype(np.float64), integrality)
    return bool(status != highspy.HighsStatus.kError)


def load(model: SparseModel, integer: BoolArray | None = None, *,
         log_output: bool = False) -> highspy.Highs:
    """A new silent (unless ``log_output``) HiGHS instance holding ``model``.

    ``integer`` as in :func:`pass_model`.
    """
    h = new_highs(log_output)
    pass_model(h, model, integer)
    return h


def configure(h: highspy.Highs, *, time_limit: float | None = None, threads: int | None = None,
              seed: int | None = None, presolve: bool | None = None,
              presolve_rule_off: int | None = None, solver: str | None = None,
              crossover: bool | None = None,
              primal_feasibility_tolerance: float | None = None,
              dual_feasibility_tolerance: float | None = None,
              ipm_optimality_tolerance: float | None = None,
              mip_rel_gap: float | None = None, mip_abs_gap: float | None = None,
              mip_feasibility_tolerance: float | None = None,
              mip_max_nodes: int | None = None,
              simplex_iteration_limit: int | None = None,
              feasibility_jump: bool | None = None) -> None:
    """Set HiGHS options; every argument left at None keeps the instance's value.

    Parameters
    ----------
    h : highspy.Highs
        The instance.
    time_limit : float, optional
        Wall-clock limit [s], set only when finite (callers clamp it as they need).
    threads : int, optional
        Thread count, set only when positive (HiGHS's pool is process-global:
        see :func:`run`).
    seed : int, optional
        ``random_seed``.
    presolve : bool, optional
        Presolve on or off.
    presolve_rule_off : int, optional
        Bit mask of presolve rules to skip.
    solver : str, optional
        ``"simplex"``, ``"ipm"``, ``"choose"`` …
    crossover : bool, optional
        Crossover after interior point.
    primal_feasibility_tolerance, dual_feasibility_tolerance : float, optional
        Feasibility tolerances.
    ipm_optimality_tolerance : float, optional
        Interior-point optimality tolerance.
    mip_rel_gap, mip_abs_gap, mip_feasibility_tolerance : float, optional
        MIP stopping gaps and feasibility tolerance.
    mip_max_nodes, simplex_iteration_limit : int, optional
        Work limits (branch-and-bound nodes, simplex iterations): a run they end is
        reproducible, unlike one ended by ``time_limit``.
    feasibility_jump : bool, optional
        ``mip_heuristic_run_feasibility_jump``: HiGHS's feasibility-jump heuristic, which
        runs at the root without looking at the clock.
    """
    values: dict[str, Any] = {
        "random_seed": None if seed is None else int(seed),
        "presolve": None if presolve is None else ("on" if presolve else "off"),
        "presolve_rule_off": None if presolve_rule_off is None else int(presolve_rule_off),
        "solver": solver,
        "run_crossover": None if crossover is None else ("on" if crossover else "off"),
        "primal_feasibility_tolerance": primal_feasibility_tolerance,
        "dual_feasibility_tolerance": dual_feasibility_tolerance,
        "ipm_optimality_tolerance": ipm_optimality_tolerance,
        "mip_rel_gap": mip_rel_gap,
        "mip_abs_gap": mip_abs_gap,
        "mip_feasibility_tolerance": mip_feasibility_tolerance,
        "mip_max_nodes": None if mip_max_nodes is None else int(mip_max_nodes),
        "simplex_iteration_limit": (None if simplex_iteration_limit is None
                                    else int(simplex_iteration_limit)),
        "mip_heuristic_run_feasibility_jump": feasibility_jump,
    }
    if time_limit is not None and math.isfinite(time_limit):
        values["time_limit"] = float(time_limit)
    if threads:
        values["threads"] = int(threads)
    for name, value in values.items():
        if value is not None:
            h.setOptionValue(name, value)


@dataclass(frozen=True)
class RunStatus:
    """How a run ended.

    Attributes
    ----------
    model_status : highspy.HighsModelStatus
        HiGHS's model status.
    text : str
        Its name (``modelStatusToString``).
    scheduler_reset : bool
        Whether the thread pool had to be reset and the run retried.
    """

    model_status: Any
    text: str
    scheduler_reset: bool = False

    @property
    def status(self) -> Status | None:
        """:data:`STATUS_MAP` of the model status (``error`` when unmapped)."""
        return STATUS_MAP.get(self.model_status, Status.ERROR)

    @property
    def optimal(self) -> bool:
        """Solved to optimality (an empty model is not)."""
        return bool(self.model_status == _MS.kOptimal)

    @property
    def empty(self) -> bool:
        """The model has no columns."""
        return bool(self.model_status == _MS.kModelEmpty)

    @property
    def infeasible(self) -> bool:
        """Proven infeasible (or unbounded-or-infeasible)."""
        return self.model_status in (_MS.kInfeasible, _MS.kUnboundedOrInfeasible)

    @property
    def unknown(self) -> bool:
        """Ended without a verdict (``kUnknown`` or ``kNotset``)."""
        return self.model_status in (_MS.kUnknown, _MS.kNotset)


def reset_thread_pool() -> None:
    """Start a fresh process-global HiGHS thread pool (the next run sizes it).

    HiGHS's ``threads`` is process-global: an instance asking for another size than the
    running pool fails (``../shared/SOLVER-NOTES.md``). Solves in one process are
    sequential here, so resetting between them is safe; every reset goes through here.
    """
    highspy.Highs.resetGlobalScheduler(True)


class _Watchdog:
    """Interrupts a run at a ``time.perf_counter()`` deadline (HiGHS's interrupt
    callbacks: simplex iterations, interior-point iterations, MIP search)."""

    def __init__(self, h: highspy.Highs, deadline: float) -> None:
        self.h, self.deadline, self.fired = h, deadline, False
        self.events = (h.cbSimplexInterrupt, h.cbIpmInterrupt, h.cbMipInterrupt)
        for ev in self.events:
            ev.subscribe(self)

    def __call__(self, e: Any) -> None:
        if time.perf_counter() >= self.deadline:
            self.fired = True
            e.interrupt()

    def close(self) -> None:
        for ev in self.events:
            ev.unsubscribe(self)


def run(h: highspy.Highs, *, pool_threads: int | None = None,
        deadline: float | None = None) -> RunStatus:
    """Run the solver on the model ``h`` holds.

    Parameters
    ----------
    h : highspy.Highs
        The instance.
    pool_threads : int, optional
        The thread count asked for. HiGHS's thread pool is process-global: a pool
        started earlier with another size makes ``run`` fail at once (status
        ``kNotset``). With ``pool_threads`` set, the pool is then reset
        (:func:`reset_thread_pool`) and the run retried once.
    deadline : float, optional
        ``time.perf_counter()`` at which the run is interrupted (status ``kInterrupt``,
        the incumbent kept) wherever HiGHS calls back: a backstop behind its own
        ``time_limit`` (set that a little earlier). Presolve does not call back.
    """
    dog = _Watchdog(h, deadline) if deadline is not None and math.isfinite(deadline) else None
    try:
        h.run()
        ms = h.getModelStatus()
        reset = False
        if ms == _MS.kNotset and pool_threads:
            log.info("HiGHS thread pool has another size; resetting it to %d", pool_threads)
            reset_thread_pool()
            h.run()
            ms = h.getModelStatus()
            reset = True
    finally:
        if dog is not None:
            dog.close()
    if dog is not None and dog.fired:
        log.debug("HiGHS run interrupted at its deadline")
    return RunStatus(ms, h.modelStatusToString(ms), reset)


class Solution:
    """The solution of the last run (read once from HiGHS, converted on demand)."""

    def __init__(self, h: highspy.Highs) -> None:
        self._sol = h.getSolution()

    @property
    def value_valid(self) -> bool:
        """Whether primal values exist."""
        return bool(self._sol.value_valid)

    @property
    def dual_valid(self) -> bool:
        """Whether row duals exist."""
        return bool(self._sol.dual_valid)

    def primal(self) -> FloatArray:
        """Column values ``(n_cols,)``."""
        return np.asarray(self._sol.col_value, dtype=float)

    def row_duals(self) -> FloatArray:
        """Row duals ``(n_rows,)``, HiGHS's sign convention (``c − Aᵀy`` are the reduced
        costs)."""
        return np.asarray(self._sol.row_dual, dtype=float)


def solution(h: highspy.Highs) -> Solution:
    """The solution of the last run."""
    return Solution(h)


@dataclass(frozen=True)
class Info:
    """Figures of the last run.

    Attributes
    ----------
    objective : float
        Objective value [model units].
    mip_bound : float
        MIP dual bound.
    mip_gap : float
        Relative MIP gap.
    mip_nodes : int
        Branch-and-bound nodes.
    has_primal : bool
        A feasible primal solution exists (``primal_solution_status == 2``).
    """

    objective: float
    mip_bound: float
    mip_gap: float
    mip_nodes: int
    has_primal: bool


def info(h: highspy.Highs) -> Info:
    """Objective, MIP bound, gap, node count and primal status of the last run."""
    i = h.getInfo()
    return Info(float(i.objective_function_value), float(i.mip_dual_bound), float(i.mip_gap),
                int(i.mip_node_count), i.primal_solution_status == 2)


def dual_ray(h: highspy.Highs) -> FloatArray | None:
    """A dual ray ``(n_rows,)`` of an infeasible LP, None when HiGHS has none."""
    _, has_ray, ray = h.getDualRay()
    return np.asarray(ray) if has_ray else None


def add_cols(h: highspy.Highs, cost: FloatArray, lb: FloatArray, ub: FloatArray,
             A: Any) -> bool:
    """Append columns (``A``: their entries in the existing rows, scipy CSC of shape
    ``(n_rows, k)``) to the model of ``h``, keeping its basis (column generation)."""
    A = sp.csc_matrix(A)
    status = h.addCols(int(A.shape[1]), _f64(cost), _f64(lb), _f64(ub), int(A.nnz),
                       A.indptr[:-1].astype(np.int32), A.indices.astype(np.int32),
                       A.data.astype(np.float64))
    return bool(status != highspy.HighsStatus.kError)


def add_rows(h: highspy.Highs, lo: FloatArray, hi: FloatArray, A: Any = None) -> bool:
    """Append rows ``lo ≤ A x ≤ hi`` to the model of ``h``, keeping its basis. Without
    ``A`` the rows are empty (their entries come with the columns :func:`add_cols`
    appends next: rows generated lazily); ``A`` (scipy CSR of shape ``(k, n_cols)``):
    their entries in the existing columns (cutting planes)."""
    n = int(np.size(lo))
    if not n:
        return True
    if A is None:
        status = h.addRows(n, _f64(lo), _f64(hi), 0, np.zeros(n, dtype=np.int32),
                           np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float64))
    else:
        A = sp.csr_matrix(A)
        status = h.addRows(n, _f64(lo), _f64(hi), int(A.nnz),
                           A.indptr[:-1].astype(np.int32), A.indices.astype(np.int32),
                           A.data.astype(np.float64))
    return bool(status != highspy.HighsStatus.kError)


def set_solution(h: highspy.Highs, x: FloatArray) -> None:
    """Give HiGHS a full column vector as a (MIP) start."""
    sol = highspy.HighsSolution()
    sol.col_value = x
    sol.value_valid = True
    h.setSolution(sol)


@dataclass(frozen=True)
class MipEvent:
    """An improving MIP solution reported during a run.

    Attributes
    ----------
    objective : float
        Its objective.
    bound : float
        The MIP dual bound at that moment.
    """

    objective: float
    bound: float
    _data: Any

    def solution(self) -> FloatArray:
        """Its column vector ``(n_cols,)``."""
        return np.asarray(self._data.mip_solution, dtype=float)


def subscribe_improving(h: highspy.Highs, callback: Callable[[MipEvent], None]) -> None:
    """Call ``callback`` with a :class:`MipEvent` on every improving MIP solution."""

    def improving(e: Any) -> None:
        d = e.data_out
        callback(MipEvent(float(d.objective_function_value), float(d.mip_dual_bound), d))

    h.cbMipImprovingSolution.subscribe(improving)
