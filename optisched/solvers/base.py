"""What every solver shares: options, the registry entry type and plan assembly."""

from __future__ import annotations

import dataclasses
import math
import os
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
from optisched.solvers.options import GreedyOptions, LnsOptions, SolverOptions

__all__ = [
    "CPSAT_DETERMINISTIC_PER_SECOND",
    "DETERMINISTIC_LIMIT",
    "GREEDY_MOVES_PER_SECOND",
    "HIGHS_NODES_PER_SECOND",
    "LNS_ITERATIONS_PER_SECOND",
    "Progress",
    "SolveOptions",
    "SolverFunction",
    "deterministic_params",
    "idle_flows",
    "plan_from_placement",
    "usable_cores",
]

OptionsT = TypeVar("OptionsT", bound=SolverOptions)

# Deterministic mode (docs/reproducibility.md): the time limit becomes a work budget. The
# rates are rough equivalents on the 2-core benchmark machine, so that ``--time-limit``
# keeps meaning "about this much effort"; they are counts, never clocks.
DETERMINISTIC_LIMIT = 10.0
"""The time limit a deterministic run's budget is computed from when none is given [s]."""
GREEDY_MOVES_PER_SECOND = 100
"""``greedy`` local-search moves per second of the time limit."""
LNS_ITERATIONS_PER_SECOND = 5
"""``lns`` neighbourhoods per second of the time limit."""
HIGHS_NODES_PER_SECOND = 200
"""HiGHS branch-and-bound nodes (``mip_max_nodes``) per second of the time limit."""
CPSAT_DETERMINISTIC_PER_SECOND = 0.5
"""CP-SAT deterministic time (``max_deterministic_time``) per second of the time limit."""


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
        Random seed; with ``deterministic``, same input and seed give the same plan.
    threads : int or None
        Threads for solvers that use them.
    callback : callable or None
        Called with a :class:`Progress` on every new incumbent or bound.
    warm_start : Plan or None
        A plan of this problem to start from: ``highs``'s MIP start, ``cpsat``'s hint,
        ``lns``'s start plan, ``greedy``'s construction hint.
    params : SolverOptions
        The solver's own typed options (:mod:`optisched.solvers.options`).
    deterministic : bool
        Work limits instead of wall-clock limits, one thread, fixed seeds: repeated runs
        give the same plan, byte for byte (``docs/reproducibility.md``); the time limit
        is then converted into work and not kept as a wall-clock limit.
    started : float or None
        ``time.perf_counter()`` at which the time limit started (:func:`optisched.solve`
        sets it at its call, so compiling the index counts); None: when the solver
        starts.
    """

    time_limit: float | None = None
    mip_gap: float | None = None
    seed: int = 0
    threads: int | None = None
    callback: Callable[[Progress], None] | None = None
    warm_start: Plan | None = None
    params: SolverOptions = field(default_factory=SolverOptions)
    deterministic: bool = False
    started: float | None = None

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
        """Absolute ``time.perf_counter()`` deadline of a solve started at ``start``
        (at :attr:`started` when that is earlier); ``default`` is the limit when
        :attr:`time_limit` is None [s]."""
        limit = default if self.time_limit is None else self.time_limit
        if self.started is not None:
            start = min(start, self.started)
        return start + limit if math.isfinite(limit) else math.inf

    def remaining(self, start: float, default: float) -> float:
        """Seconds left until :meth:`deadline` (``inf`` without a limit; ≤ 0 when over)."""
        return self.deadline(start, default) - time.perf_counter()

    def report(self, start: float, objective: float | None, bound: float | None,
               message: str = "") -> None:
        """Send a progress report to the callback, if any."""
        if self.callback is not None:
            self.callback(Progress(time.perf_counter() - start, objective, bound, message))


def deterministic_params(params: SolverOptions, time_limit: float | None
                         ) -> tuple[SolverOptions, float | None]:
    """The options and time limit of a deterministic run (``docs/reproducibility.md``).

    ``greedy`` and ``lns`` end by counts instead of by the clock: ``greedy`` after
    :data:`GREEDY_MOVES_PER_SECOND` moves per second of the time
    limit (unless ``iterations`` is given), ``lns`` after
    :data:`LNS_ITERATIONS_PER_SECOND` neighbourhoods per second
    (unless ``max_iterations`` is given), without the bound process (a wall-clock LP) and
    with sub-solves limited by work (``sub_time_limit`` is converted by the sub-solver);
    their wall-clock limit is lifted. Without a time limit the budget is that of
    :data:`DETERMINISTIC_LIMIT`. The other solvers convert the
    time limit themselves (``SolveOptions.deterministic``): it is returned unchanged.
    """
    limit = DETERMINISTIC_LIMIT if time_limit is None or not math.isfinite(time_limit) \
        else float(time_limit)
    if isinstance(params, GreedyOptions):
        if params.iterations is None:
            params = dataclasses.replace(
                params, iterations=max(1, round(GREEDY_MOVES_PER_SECOND * limit)))
        return params, math.inf
    if isinstance(params, LnsOptions):
        sub = params.sub_time_limit if params.sub_time_limit is not None else \
            min(3.0, max(1.0, limit / 20.0))
        iterations = params.max_iterations if params.max_iterations is not None else \
            max(1, round(LNS_ITERATIONS_PER_SECOND * limit))
        return dataclasses.replace(params, max_iterations=iterations, lp_bound=False,
                                   restricted_master=False, sub_time_limit=sub), math.inf
    return params, time_limit


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


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; ``os.cpu_count()`` where the
    platform has none), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
