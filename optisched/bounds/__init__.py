"""Lower bounds on the optimum of a problem.

* :mod:`~optisched.bounds.lp`: the LP relaxation of the exact MILP
  (:func:`lp_bound`, :func:`lp_bound_result`), its start columns
  (:func:`read_placement`).
* :mod:`~optisched.bounds.duality`: a valid bound from any row multipliers
  (:func:`dual_value`, weak duality) and the finite column bounds it needs
  (:func:`implied_upper_bounds`).
* :mod:`~optisched.bounds.lagrangian`: the cheap Lagrangian bound of the node loads
  (:func:`lagrangian_bound`, :func:`improved_bound`, :func:`capacity_bound`).
* :mod:`~optisched.bounds.colgen`: the LP bound by column generation for models too
  large for the LP (:func:`colgen_bound`).
* :mod:`~optisched.bounds.process` and :mod:`~optisched.bounds.child`: a bound
  computed in a child process beside the caller (:class:`BoundProcess`).

Nothing here imports :mod:`optisched.solvers`: the solvers build on the bounds.
"""

from __future__ import annotations

from optisched.bounds.colgen import ColgenResult, colgen_bound
from optisched.bounds.duality import dual_value, implied_upper_bounds
from optisched.bounds.lagrangian import capacity_bound, improved_bound, lagrangian_bound
from optisched.bounds.lp import (
    DEFAULT_LP_SOLVER,
    PLACEMENT_MIN,
    BoundResult,
    lp_bound,
    lp_bound_result,
    read_placement,
)
from optisched.bounds.process import BoundProcess, BoundRequest

__all__ = [
    "DEFAULT_LP_SOLVER",
    "PLACEMENT_MIN",
    "BoundProcess",
    "BoundRequest",
    "BoundResult",
    "ColgenResult",
    "capacity_bound",
    "colgen_bound",
    "dual_value",
    "implied_upper_bounds",
    "improved_bound",
    "lagrangian_bound",
    "lp_bound",
    "lp_bound_result",
    "read_placement",
]
