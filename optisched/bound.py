"""Lower bound on the optimum: the LP relaxation of the exact MILP.

:func:`lp_bound` builds the same model as the ``highs`` solver
(:func:`optisched.formulations.milp.build_milp`), drops integrality and solves
the LP with HiGHS. Every plan of the problem costs at least this much, so any
plan can be reported with a gap ``(objective − bound) / |objective|``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from optisched.domain import Problem
from optisched.index import Index, compile_index

__all__ = ["BoundResult", "lp_bound", "lp_bound_result"]

DEFAULT_LP_SOLVER = "ipm"
"""HiGHS LP method: interior point (with crossover). On the 100 x 20 x 96 benchmark
instances it took 80-100 s where dual simplex had not finished after 120 s
(``formulations/milp.md``)."""


@dataclass(frozen=True)
class BoundResult:
    """Result of :func:`lp_bound_result`.

    Attributes
    ----------
    bound : float
        LP optimum [money]; ``inf`` when the LP is infeasible (then so is the
        problem), ``-inf`` when it was not solved in time.
    status : str
        HiGHS model status.
    seconds : float
        Build + solve time [s].
    columns, rows : int
        Model size.
    """

    bound: float
    status: str
    seconds: float
    columns: int
    rows: int


def lp_bound_result(problem: Problem, index: Index | None = None,
                    time_limit: float | None = None, solver: str = DEFAULT_LP_SOLVER,
                    threads: int | None = None) -> BoundResult:
    """LP relaxation of the exact MILP with status and timing (see :func:`lp_bound`)."""
    import highspy

    from optisched.formulations.milp import build_milp
    from optisched.solvers.highs import highs_from_model

    t0 = time.perf_counter()
    index = index or compile_index(problem)
    model = build_milp(index)
    h = highs_from_model(model, relax=True)
    h.setOptionValue("solver", solver)
    if threads:
        h.setOptionValue("threads", int(threads))
    if time_limit is not None and math.isfinite(time_limit):
        h.setOptionValue("time_limit", float(time_limit))
    h.run()
    ms = h.getModelStatus()
    MS = highspy.HighsModelStatus
    if ms == MS.kNotset and threads:  # process-global pool of another size (SOLVER-NOTES)
        highspy.Highs.resetGlobalScheduler(True)
        h.run()
        ms = h.getModelStatus()
    if ms == MS.kOptimal:
        bound = float(h.getInfo().objective_function_value)
    elif ms == MS.kModelEmpty:
        bound = 0.0
    elif ms in (MS.kInfeasible, MS.kUnboundedOrInfeasible):
        bound = math.inf
    else:
        bound = -math.inf
    return BoundResult(bound, h.modelStatusToString(ms), time.perf_counter() - t0,
                       model.n_cols, model.n_rows)


def lp_bound(problem: Problem, index: Index | None = None,
             time_limit: float | None = None) -> float:
    """Lower bound on the optimal cost from the LP relaxation of the exact MILP.

    Parameters
    ----------
    problem : Problem
        The problem.
    index : Index, optional
        Its compiled index.
    time_limit : float, optional
        Seconds for the LP solve.

    Returns
    -------
    float
        The bound [money]; ``inf`` when even the relaxation is infeasible,
        ``-inf`` (no bound) when the LP was not solved within ``time_limit``.
    """
    return lp_bound_result(problem, index, time_limit).bound
