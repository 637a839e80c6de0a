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

import numpy as np

from optisched.arrays import FloatArray
from optisched.backends import highs as hs
from optisched.bounds.duality import dual_value
from optisched.bounds.files import load_npz, save_npz
from optisched.domain import Problem
from optisched.formulations.milp import MilpModel, build_milp
from optisched.index import Index, compile_index

__all__ = ["DEFAULT_LP_SOLVER", "PLACEMENT_MIN", "BoundResult", "lp_bound", "lp_bound_result",
           "read_placement"]

DEFAULT_LP_SOLVER = "ipm"
"""HiGHS LP method: interior point, without crossover. On the 100 x 20 x 96 benchmark
instances it took 80-100 s with crossover where dual simplex had not finished after
120 s (``docs/formulations/milp.md``); without crossover, 10.5 s on generate medium seed 0
(33 k columns, one core)."""


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
                    threads: int | None = None, crossover: bool = False,
                    placement_path: str | None = None) -> BoundResult:
    """LP relaxation of the exact MILP with status and timing (see :func:`lp_bound`).

    Without ``crossover`` (the default) the interior-point solution is not turned into
    a basic one; the bound is then :func:`dual_value` of its duals, a weak-duality
    bound that holds whatever their accuracy (equal to the LP value within 1e-8
    relative on the medium and ICON instances, at half the time).

    With ``placement_path``, an optimal LP's start columns with value above
    :data:`PLACEMENT_MIN` are saved there (``numpy.savez``: ``job``, ``node``,
    ``start``, ``value``), written atomically, for LP-guided neighbourhoods.
    """
    t0 = time.perf_counter()
    index = index or compile_index(problem)
    model = build_milp(index)
    h = hs.load(model)
    hs.configure(h, solver=solver, crossover=crossover, threads=threads, time_limit=time_limit)
    ran = hs.run(h, pool_threads=threads)
    if ran.optimal:
        sol = hs.solution(h)
        bound = (dual_value(model, index, sol.row_duals()) if sol.dual_valid
                 else hs.info(h).objective)
        if placement_path is not None and sol.value_valid:
            _save_placement(model, sol.primal(), placement_path)
    elif ran.empty:
        bound = 0.0
    elif ran.infeasible:
        bound = math.inf
    else:
        bound = -math.inf
    return BoundResult(bound, ran.text, time.perf_counter() - t0,
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


PLACEMENT_MIN = 1e-3
"""Smallest LP value of a start column kept by ``placement_path`` of :func:`lp_bound_result`."""


def _save_placement(model: MilpModel, col_value: FloatArray, path: str) -> None:
    v = col_value[model.x]
    keep = v > PLACEMENT_MIN
    sets = model.sets
    save_npz(path, job=sets.x_job[keep], node=sets.x_node[keep], start=sets.x_start[keep],
             value=v[keep])


def read_placement(path: str) -> tuple[np.ndarray, ...] | None:
    """``(job, node, start, value)`` saved by :func:`lp_bound_result`, None when absent."""
    return load_npz(path, ("job", "node", "start", "value"))
