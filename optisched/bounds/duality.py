"""Weak duality: a valid lower bound from any row multipliers of the exact MILP.

:func:`dual_value` turns any multipliers (optimal LP duals, an interior-point iterate,
the duals of a restricted master) into a lower bound on the MILP optimum;
:func:`implied_upper_bounds` gives it the finite column bounds it needs.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from optisched.arrays import FloatArray
from optisched.formulations.milp import MilpModel
from optisched.index import Index

__all__ = ["dual_value", "implied_upper_bounds"]


def implied_upper_bounds(model: MilpModel, index: Index) -> FloatArray:
    """Column upper bounds of ``model`` with every infinite one replaced by a finite,
    implied one [kW].

    Power balance gives ``import = load + charge + export − pv_used − discharge ≤
    load + charge + export``, and a node's load is at most
    ``U_n = idle_n + Σ_{o on n} P_o`` (every eligible job at once), so
    ``import_nt ≤ U_n + charge_kw_n + export_kw_n`` and ``peak_n`` (the largest
    import) obeys the same bound in every feasible solution. Adding these bounds
    leaves the feasible set unchanged, so a bound of the bounded LP is one of the
    problem (:func:`dual_value` needs finite bounds).
    """
    ub = model.col_ub.copy()
    load = index.idle_kw + np.bincount(index.opt_node, weights=index.opt_power,
                                       minlength=index.N)
    cap = load + index.charge_kw + index.export_kw
    for fc in model.scenarios:  # every scenario's import and peak (beyond SPEC v1)
        ub[fc.grid_import] = np.minimum(ub[fc.grid_import], cap[:, None])
        ub[fc.peak] = np.minimum(ub[fc.peak], cap)
    return ub


def dual_value(model: MilpModel, index: Index, row_dual: npt.ArrayLike,
               keep_assignment: bool = True) -> float:
    """A lower bound on the MILP optimum from any row multipliers (Lagrangian dual) [money].

    For the LP ``min c·x, lo ≤ A x ≤ hi, l ≤ x ≤ u`` (bounds ``u`` from
    :func:`implied_upper_bounds`) and any ``y``, clipped to the sign its finite row
    bounds allow (``y_i ≤ 0`` where ``lo_i = −∞``, ``y_i ≥ 0`` where ``hi_i = ∞``),
    every feasible ``x`` has
    ``c·x = y·Ax + d·x ≥ Σ_i min(y_i lo_i, y_i hi_i) + Σ_k min(d_k l_k, d_k u_k)``
    with ``d = c − Aᵀy``: weak duality, valid whatever ``y`` is (an interior-point
    iterate, the duals of a restricted master, …), and equal to the LP optimum at
    optimal duals.

    With ``keep_assignment`` the ``assignment`` rows are not dualized: their ``y``
    is set to 0 and each job's columns (starts and drop) are minimised over the
    simplex ``Σ x + drop = 1`` instead of the box, i.e. the job contributes
    ``min(min_k d_k, d_drop)`` (must-run jobs: ``min_k d_k``; ``+∞`` without columns).
    This is the Lagrangian bound of column generation (Farley's bound); it is never
    weaker than the box version when ``y`` ignores the assignment rows.

    Parameters
    ----------
    model : MilpModel
        The model (``build_milp``); integrality is ignored.
    index : Index
        Its compiled index.
    row_dual : array_like, shape (n_rows,)
        Multipliers, HiGHS's sign convention (``c − Aᵀy`` are the reduced costs).
    keep_assignment : bool
        Minimise each job over its simplex (see above).

    Returns
    -------
    float
        The bound [money]; ``inf`` when a must-run job has no column.
    """
    y = np.array(row_dual, dtype=float, copy=True)
    lo, hi = model.row_lo, model.row_hi
    y = np.where(np.isneginf(lo), np.minimum(y, 0.0), y)
    y = np.where(np.isposinf(hi), np.maximum(y, 0.0), y)
    y[~np.isfinite(y)] = 0.0
    in_assign = np.zeros(model.n_rows, dtype=bool)
    if keep_assignment:
        for blk in model.blocks:
            if blk.family == "assignment":
                in_assign[blk.start:blk.start + blk.size] = True
        y[in_assign] = 0.0
    with np.errstate(invalid="ignore"):
        rows = np.where(y > 0, y * lo, np.where(y < 0, y * hi, 0.0))
    value = float(rows.sum())
    d = model.cost - model.A.T @ y
    lb = model.col_lb
    ub = implied_upper_bounds(model, index)
    box = np.ones(model.n_cols, dtype=bool)
    if keep_assignment and in_assign.any():
        x_free = model.x[~model.sets.x_fixed]
        jobs = model.sets.x_job[~model.sets.x_fixed]
        best = np.full(index.J, np.inf)
        np.minimum.at(best, jobs, d[x_free])
        has_drop = model.drop >= 0
        best[has_drop] = np.minimum(best[has_drop], d[model.drop[has_drop]])
        free_jobs = ~index.pinned
        value += float(best[free_jobs].sum())
        box[x_free] = False
        box[model.drop[has_drop]] = False
    with np.errstate(invalid="ignore"):
        cols = np.where(d > 0, d * lb, np.where(d < 0, d * ub, 0.0))
    value += float(cols[box].sum())
    return value if not math.isnan(value) else -math.inf
