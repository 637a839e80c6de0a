"""Exact dispatch: cost-optimal energy flows for fixed job placements and on/off states.

OWNED BY THE GREEDY/DISPATCH WORK (issue 3). Signature fixed; implementation pending.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from optisched.index import Index
from optisched.plan import Flows

__all__ = ["DispatchResult", "dispatch"]


@dataclass
class DispatchResult:
    """Result of :func:`dispatch`.

    Attributes
    ----------
    feasible : bool
        Whether flows exist that satisfy SPEC §2 constraints 5-7 for the given load.
    flows : Flows or None
        The optimal flows (``on`` as given), None when infeasible.
    cost : float
        ``energy − export_revenue + carbon + degradation + demand`` of the flows [money]
        (``inf`` when infeasible).
    message : str
        Why infeasible (node or feeder, slot, what is short).
    """

    feasible: bool
    flows: Flows | None
    cost: float
    message: str = ""


def dispatch(
    index: Index,
    node: npt.NDArray[np.int64],
    start: npt.NDArray[np.int64],
    on: npt.NDArray[np.bool_] | None = None,
) -> DispatchResult:
    """Cost-optimal battery/grid/export/curtailment flows for fixed placements.

    Parameters
    ----------
    index : Index
        Compiled problem.
    node, start : (J,) int
        Placement per job (node -1 = dropped).
    on : (N, T) bool, optional
        On/off states; default: on where available and the node cannot sleep,
        or where a job runs.

    Returns
    -------
    DispatchResult
        Exact LP optimum of SPEC §2-3 for the fixed placement (never charging and
        discharging in one slot).
    """
    raise NotImplementedError
