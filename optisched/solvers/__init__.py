"""Solvers and the one entry point :func:`solve`.

The registry (:mod:`optisched.solvers.registry`) names every solver with its
module, its needs and its typed options (:mod:`optisched.solvers.options`).
Every plan a solver returns is priced and checked by the evaluator before it is
handed back; a plan that fails the check is never returned as a result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from optisched.domain import Problem
from optisched.evaluate import evaluate
from optisched.index import compile_index
from optisched.plan import Plan, Status
from optisched.precheck import precheck, prove_infeasible
from optisched.solvers.base import Progress, SolveOptions, SolverFunction, deterministic_params
from optisched.solvers.options import OptionError, SolverOptions
from optisched.solvers.registry import (
    REGISTRY,
    SolverSpec,
    available_solvers,
    default_solver,
    register,
)

__all__ = [
    "REGISTRY",
    "OptionError",
    "Progress",
    "SolveOptions",
    "SolverFunction",
    "SolverOptions",
    "SolverSpec",
    "available_solvers",
    "default_solver",
    "deterministic_params",
    "precheck",
    "register",
    "solve",
]

log = logging.getLogger(__name__)


def solve(
    problem: Problem,
    solver: str | None = None,
    *,
    time_limit: float | None = None,
    mip_gap: float | None = None,
    seed: int = 0,
    threads: int | None = None,
    callback: Callable[[Progress], None] | None = None,
    warm_start: Plan | None = None,
    options: SolverOptions | Mapping[str, Any] | None = None,
    deterministic: bool = False,
    **kwargs: Any,
) -> Plan:
    """Solve a problem with a registered solver.

    Parameters
    ----------
    problem : Problem
        The problem (``docs/contract/``).
    solver : str, optional
        Registry name; default :func:`default_solver`.
    time_limit : float, optional
        Wall-clock budget [s], from this call (compiling the index and the precheck
        count); every solver returns within ``time_limit + max(1 s, 5 %)``
        (``BENCHMARKS.md``, "Time limits"). With ``deterministic``, a work budget instead.
    mip_gap : float, optional
        Relative gap at which exact solvers may stop.
    seed : int
        Random seed.
    threads : int, optional
        Threads for solvers that use them.
    callback : callable, optional
        Receives :class:`Progress` reports.
    warm_start : Plan, optional
        A plan of this problem to start from (see :class:`SolveOptions`).
    options : SolverOptions or mapping, optional
        The solver's typed options (e.g. :class:`~optisched.solvers.options.LnsOptions`),
        or a mapping of option names to values.
    deterministic : bool
        Work limits instead of wall-clock limits, one thread, fixed seeds: repeated runs
        give byte-identical plan files (``docs/reproducibility.md``;
        :func:`deterministic_params` converts the time limit of ``greedy`` and ``lns``).
    **kwargs
        More of the solver's options by name (merged into ``options`` when that is a
        mapping); ``optisched solvers --options`` lists them.

    Returns
    -------
    Plan
        Status from the shared vocabulary; for optimal/feasible plans the
        objective and cost terms come from the evaluator. An infeasible problem
        is a result (status ``infeasible`` with a message naming jobs, nodes,
        slots or constraints), not an exception. What
        :func:`~optisched.precheck.prove_infeasible` proves before any search comes
        back at once, with ``info["infeasible"]`` (the failing constraint families) and
        ``info["dropping_helps"]`` (whether a ``drop_penalty`` on must-run jobs could help).

    Raises
    ------
    ValueError
        Unknown solver name, or a solver whose packages are missing.
    OptionError
        An unknown or mistyped option (a ``ValueError`` naming the solver, the key
        and the valid keys).
    """
    t0 = time.perf_counter()
    name = solver or default_solver()
    if name not in REGISTRY:
        raise ValueError(f"unknown solver {name!r}; registered: {', '.join(REGISTRY)}")
    spec = REGISTRY[name]
    if not spec.available():
        raise ValueError(f"solver {name!r} needs {', '.join(spec.requires)}, not installed")
    if kwargs:
        if isinstance(options, SolverOptions):
            raise OptionError(name, next(iter(kwargs)), "given beside an options object",
                              spec.options.keys())
        options = {**(options or {}), **kwargs}
    params = spec.parse_options(options)
    if deterministic:
        params, time_limit = deterministic_params(params, time_limit)
    index = compile_index(problem)
    t_index = time.perf_counter() - t0
    proofs = prove_infeasible(problem, index)
    if proofs:
        plan = Plan.empty(problem, name, Status.INFEASIBLE, "; ".join(p.message for p in proofs))
        plan.info = {"infeasible": sorted({p.constraint for p in proofs}),
                     "dropping_helps": any(p.dropping_helps for p in proofs)}
        plan.timings = {"build": t_index, "solve": 0.0, "total": time.perf_counter() - t0}
        return plan
    opts = SolveOptions(time_limit=time_limit, mip_gap=mip_gap, seed=seed,
                        threads=1 if deterministic else threads, callback=callback,
                        warm_start=warm_start, params=params, deterministic=deterministic,
                        started=t0)
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
        plan.objective, plan.risk = ev.objective, ev.risk
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
    if deterministic:
        plan.info["deterministic"] = True
    plan.timings["total"] = time.perf_counter() - t0
    return plan

