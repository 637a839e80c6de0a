"""Solver registry and the one entry point :func:`solve`.

Each solver is registered by name with the module and function that implement
it, imported lazily, so a missing optional backend only disables its solver.
Every plan a solver returns is priced and checked by the evaluator before it is
handed back; a plan that fails the check is never returned as a result.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from optisched.domain import Problem
from optisched.evaluate import evaluate
from optisched.index import Index, compile_index, explain_job
from optisched.plan import Plan, Status
from optisched.solvers.base import Progress, SolveOptions, SolverFunction

__all__ = [
    "REGISTRY",
    "Progress",
    "SolveOptions",
    "SolverSpec",
    "available_solvers",
    "precheck",
    "register",
    "solve",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SolverSpec:
    """A registered solver.

    Attributes
    ----------
    name : str
        Registry name (``--solver``).
    module, function : str
        Where the :class:`~optisched.solvers.base.SolverFunction` lives.
    description : str
        One line for ``optisched solvers``.
    requires : tuple of str
        Importable packages it needs.
    exact : bool
        Whether it can prove optimality.
    """

    name: str
    module: str
    function: str
    description: str
    requires: tuple[str, ...] = ()
    exact: bool = False

    def available(self) -> bool:
        """True when every required package can be imported."""
        return all(importlib.util.find_spec(p) is not None for p in self.requires)

    def load(self) -> SolverFunction:
        """Import and return the solver function."""
        fn: SolverFunction = getattr(importlib.import_module(self.module), self.function)
        return fn


REGISTRY: dict[str, SolverSpec] = {}


def register(spec: SolverSpec) -> None:
    """Add (or replace) a solver in the registry."""
    REGISTRY[spec.name] = spec


register(SolverSpec("baseline", "optisched.solvers.baseline", "solve_baseline",
                    "reference: earliest feasible placement, battery idle, grid covers the rest"))
register(SolverSpec("greedy", "optisched.solvers.greedy", "solve_greedy",
                    "marginal-cost insertion + exact dispatch + local search (anytime, "
                    "default 1 s)", requires=("highspy",)))
register(SolverSpec("highs", "optisched.solvers.highs", "solve_highs",
                    "exact MILP (vectorized build) solved by HiGHS, greedy warm start",
                    requires=("highspy",), exact=True))
register(SolverSpec("pyomo", "optisched.solvers.pyomo_solver", "solve_pyomo",
                    "the same exact MILP as a Pyomo model, any Pyomo solver (--pyomo-solver)",
                    requires=("pyomo", "highspy"), exact=True))
register(SolverSpec("cpsat", "optisched.solvers.cpsat", "solve_cpsat",
                    "CP-SAT (OR-Tools) on a scaled integer relaxation, flows re-dispatched "
                    "exactly", requires=("ortools",), exact=True))
register(SolverSpec("lns", "optisched.solvers.lns", "solve_lns",
                    "adaptive large-neighbourhood search: greedy start, exact sub-MILPs "
                    "(HiGHS), Lagrangian/LP bound", requires=("highspy",)))


def available_solvers() -> list[str]:
    """Names of registered solvers whose packages are installed."""
    return [name for name, spec in REGISTRY.items() if spec.available()]


DEFAULT_SOLVER_ORDER = ("lns", "greedy", "baseline")


def default_solver() -> str:
    """The best registered solver: ``lns``, else ``greedy``, else ``baseline``."""
    for name in DEFAULT_SOLVER_ORDER:
        if name in REGISTRY and REGISTRY[name].available():
            return name
    return "baseline"


def precheck(problem: Problem, index: Index) -> str | None:
    """Infeasibility visible before any search, in user terms, or None.

    Finds must-run jobs without any eligible (node, start) and pinned jobs that
    run where their node is unavailable or that together exceed its capacity.
    """
    msgs = []
    no_option = np.diff(index.opt_job_ptr) == 0
    for j in np.nonzero(no_option & index.must_run & ~index.pinned)[0][:10]:
        msgs.append(explain_job(problem, index, int(j)) + " (it must run: give it a "
                    "drop_penalty to allow dropping)")
    pj = np.nonzero(index.pinned)[0]
    if pj.size:
        use = np.zeros((index.N, index.T, len(index.resources)))
        for j in pj:
            n, s = int(index.pinned_node[j]), int(index.pinned_start[j])
            d = int(index.duration(int(j), n))
            a, b = max(0, s), min(index.T, s + d)
            use[n, a:b] += index.usage[j]
            if b > a and not index.available[n, a:b].all():
                t = a + int(np.argmin(index.available[n, a:b]))
                msgs.append(f"pinned job {index.job_ids[j]} runs on node {index.node_ids[n]} in "
                            f"slot {t}, where the node is unavailable")
        over = use > index.capacity[:, None, :] + 1e-9
        if over.any():
            n, t, r = np.argwhere(over)[0]
            msgs.append(f"pinned jobs on node {index.node_ids[n]} use {use[n, t, r]:g} "
                        f"{index.resources[r]} in slot {t}, above its capacity "
                        f"{index.capacity[n, r]:g}")
    return "; ".join(msgs) if msgs else None


def solve(
    problem: Problem,
    solver: str | None = None,
    *,
    time_limit: float | None = None,
    mip_gap: float | None = None,
    seed: int = 0,
    threads: int | None = None,
    callback: Callable[[Progress], None] | None = None,
    **options: Any,
) -> Plan:
    """Solve a problem with a registered solver.

    Parameters
    ----------
    problem : Problem
        The problem (SPEC §1-3).
    solver : str, optional
        Registry name; default :func:`default_solver`.
    time_limit : float, optional
        Wall-clock budget [s].
    mip_gap : float, optional
        Relative gap at which exact solvers may stop.
    seed : int
        Random seed.
    threads : int, optional
        Threads for solvers that use them.
    callback : callable, optional
        Receives :class:`Progress` reports.
    **options
        Solver-specific options.

    Returns
    -------
    Plan
        Status from the shared vocabulary; for optimal/feasible plans the
        objective and cost terms come from the evaluator. An infeasible problem
        is a result (status ``infeasible`` with a message naming jobs, nodes,
        slots or constraints), not an exception.

    Raises
    ------
    ValueError
        Unknown solver name, or a solver whose packages are missing.
    """
    name = solver or default_solver()
    if name not in REGISTRY:
        raise ValueError(f"unknown solver {name!r}; registered: {', '.join(REGISTRY)}")
    spec = REGISTRY[name]
    if not spec.available():
        raise ValueError(f"solver {name!r} needs {', '.join(spec.requires)}, not installed")
    t0 = time.perf_counter()
    index = compile_index(problem)
    t_index = time.perf_counter() - t0
    why = precheck(problem, index)
    if why is not None:
        plan = Plan.empty(problem, name, Status.INFEASIBLE, why)
        plan.timings = {"build": t_index, "solve": 0.0, "total": time.perf_counter() - t0}
        return plan
    opts = SolveOptions(time_limit=time_limit, mip_gap=mip_gap, seed=seed, threads=threads,
                        callback=callback, extra=dict(options))
    fn = spec.load()
    try:
        plan = fn(problem, index, opts)
    except Exception as exc:  # a solver bug must not take the caller down
        log.exception("solver %s failed", name)
        plan = Plan.empty(problem, name, Status.ERROR, f"{type(exc).__name__}: {exc}")
    plan.solver = name
    build = plan.timings.get("build", 0.0) + t_index
    plan.timings["build"] = build
    plan.timings.setdefault("solve", max(0.0, time.perf_counter() - t0 - build))
    if plan.status.has_plan:
        ev = evaluate(problem, plan, index)
        plan.costs, reported = ev.costs, plan.objective
        plan.objective = ev.objective
        if reported is not None and abs(reported - ev.objective) > 1e-6 * max(1.0, abs(reported)):
            plan.info["solver_objective"] = reported
        if not ev.feasible:
            detail = "; ".join(str(v) for v in ev.violations[:5])
            log.error("solver %s returned a plan that fails the evaluator: %s", name, detail)
            plan.status = Status.ERROR
            plan.message = f"solver returned a plan that fails the evaluator: {detail}"
        if plan.bound is not None and plan.objective is not None:
            plan.bound = min(plan.bound, plan.objective) if plan.status is Status.OPTIMAL \
                else plan.bound
    plan.timings["total"] = time.perf_counter() - t0
    return plan
