"""What every solver shares: options, the registry entry type and plan assembly."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from optisched.arrays import FloatArray, IntArray
from optisched.domain import Problem
from optisched.index import Index
from optisched.plan import Flows, Plan, Status
from optisched.solvers.options import SolverOptions

__all__ = [
    "Progress",
    "SolveOptions",
    "SolverFunction",
    "idle_flows",
    "plan_from_placement",
]

OptionsT = TypeVar("OptionsT", bound=SolverOptions)


@dataclass(frozen=True)
class Progress:
    """One progress report of an anytime solver.

    Attributes
    ----------
    elapsed : float
        Seconds since the solve started.
    objective : float or None
        Best objective so far [money].
    bound : float or None
        Best proven lower bound so far [money].
    message : str
        Free text (phase, neighbourhood …).
    """

    elapsed: float
    objective: float | None
    bound: float | None
    message: str = ""


@dataclass
class SolveOptions:
    """Options every solver understands.

    Attributes
    ----------
    time_limit : float or None
        Wall-clock budget [s]; None = the solver's default.
    mip_gap : float or None
        Relative gap at which an exact solver may stop.
    seed : int
        Random seed; same input and seed give the same plan.
    threads : int or None
        Threads for solvers that use them.
    callback : callable or None
        Called with a :class:`Progress` on every new incumbent or bound.
    warm_start : Plan or None
        A plan of this problem to start from: ``highs``'s MIP start, ``cpsat``'s hint,
        ``lns``'s start plan, ``greedy``'s construction hint.
    params : SolverOptions
        The solver's own typed options (:mod:`optisched.solvers.options`).
    """

    time_limit: float | None = None
    mip_gap: float | None = None
    seed: int = 0
    threads: int | None = None
    callback: Callable[[Progress], None] | None = None
    warm_start: Plan | None = None
    params: SolverOptions = field(default_factory=SolverOptions)

    def params_as(self, cls: type[OptionsT]) -> OptionsT:
        """The solver's options as ``cls``: :attr:`params` when it is one, else defaults.

        Raises
        ------
        TypeError
            :attr:`params` holds the options of another solver.
        """
        if isinstance(self.params, cls):
            return self.params
        if type(self.params) is SolverOptions:
            return cls()
        raise TypeError(f"{cls.__name__} expected, got {type(self.params).__name__}")

    def deadline(self, start: float, default: float) -> float:
        """Absolute ``time.perf_counter()`` deadline of a solve started at ``start``."""
        limit = default if self.time_limit is None else self.time_limit
        return start + limit if math.isfinite(limit) else math.inf

    def report(self, start: float, objective: float | None, bound: float | None,
               message: str = "") -> None:
        """Send a progress report to the callback, if any."""
        if self.callback is not None:
            self.callback(Progress(time.perf_counter() - start, objective, bound, message))


class SolverFunction(Protocol):
    """Signature of a registered solver."""

    def __call__(self, problem: Problem, index: Index, options: SolveOptions) -> Plan: ...


def idle_flows(index: Index, on: npt.NDArray[np.bool_], load: FloatArray) -> Flows:
    """Flows with the battery idle: PV first, then grid import; surplus exported where paid.

    ``import = load − min(pv, load)``, ``export = min(pv − min(pv, load), export_kw)``
    where ``export_price > 0`` (else curtailed), ``pv_used = min(pv, load) + export``,
    ``charge = discharge = 0``, ``soc = soc_init`` [kWh]. With several scenarios, the
    flows of each on its own PV and prices.
    """
    if index.S > 1:
        parts = [idle_flows(index.scenario(s), on, load) for s in range(index.S)]
        return Flows.of_scenarios(parts[0].on, load, list(parts))
    pv_self = np.minimum(index.pv, load)
    grid_import = load - pv_self
    grid_export = np.where(index.export_price > 0,
                           np.minimum(index.pv - pv_self, index.export_kw[:, None]), 0.0)
    pv_used = pv_self + grid_export
    N, T = load.shape
    return Flows(on=on.astype(bool), load=load, pv_used=pv_used, grid_import=grid_import,
                 grid_export=grid_export, charge=np.zeros((N, T)), discharge=np.zeros((N, T)),
                 soc=np.tile(index.soc_init[:, None], (1, T)))


def plan_from_placement(problem: Problem, index: Index, solver: str, status: Status,
                        node: IntArray, start: IntArray, flows: Flows,
                        message: str = "") -> Plan:
    """Assemble a :class:`Plan` in the problem's order."""
    return Plan(solver=solver, status=status, job_ids=list(index.job_ids),
                node_ids=list(index.node_ids), node=np.asarray(node, dtype=np.int64).copy(),
                start=np.asarray(start, dtype=np.int64).copy(), flows=flows, message=message)


def dispatched_plan(index: Index, solver: str, node: IntArray, start: IntArray,
                    status: Status = Status.FEASIBLE) -> Plan | None:
    """A plan of placement ``(node, start)`` with the exact dispatch's flows
    (:func:`optisched.dispatch.dispatch`); None when no feasible flows exist."""
    from optisched.dispatch import dispatch

    res = dispatch(index, node, start)
    if not res.feasible or res.flows is None:
        return None
    return Plan(solver=solver, status=status, job_ids=list(index.job_ids),
                node_ids=list(index.node_ids), node=np.asarray(node, dtype=np.int64).copy(),
                start=np.asarray(start, dtype=np.int64).copy(), flows=res.flows)
