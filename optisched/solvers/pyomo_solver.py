"""``pyomo``: the exact MILP as a Pyomo model, solved by any installed Pyomo solver.

``PyomoOptions.pyomo_solver`` (CLI ``--pyomo-solver``) names the Pyomo
solver: ``appsi_highs`` by default, else ``highs``, ``cbc``, ``glpk``, ``scip``,
``gurobi``, ``cplex`` … whatever ``pyomo.environ.SolverFactory`` knows and finds.
The solution is read without Pyomo's automatic load (the HiGHS interfaces raise
when asked to load a solution that does not exist; SOLVER-NOTES), the status is
mapped by :data:`STATUS_MAP`, and the plan's flows come from the exact dispatch,
as in the ``highs`` solver.

A Pyomo solver that is not available gives status ``error`` naming the available ones
before the model is built (:func:`require_pyomo_solver` raises instead: the CLI's check).
The time limit counts from the :func:`optisched.solve` call: the Pyomo model costs about
:data:`SECONDS_PER_COEFFICIENT` per coefficient to build and hand over (SOLVER-NOTES), so
a model that does not fit the time left is not built (status ``no_solution``, pointing
to ``--solver highs``, the same MILP built vectorized), and the solver gets what is left.
``deterministic``: one thread, the seed, and for HiGHS a node limit
(:data:`~optisched.solvers.base.HIGHS_NODES_PER_SECOND`) instead of the time limit.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.opt import TerminationCondition as TC

from optisched.backends import highs as hs
from optisched.dispatch import dispatch
from optisched.domain import Problem
from optisched.evaluate import job_load
from optisched.formulations.milp_pyomo import build_pyomo_model
from optisched.index import Index
from optisched.plan import FlowArrays, Flows, Plan, Status
from optisched.solvers.base import HIGHS_NODES_PER_SECOND, SolveOptions, plan_from_placement
from optisched.solvers.fallback import fallback_plan
from optisched.solvers.highs import (
    PRESOLVE_RULE_OFF,
    SLOW_PRESOLVE_NONZEROS_PER_SECOND,
    explain_infeasibility,
    feasibility_jump_fits,
    milp_nonzeros_estimate,
)
from optisched.solvers.options import OptionError, PyomoOptions

__all__ = ["CANDIDATE_SOLVERS", "DEFAULT_PYOMO_SOLVER", "SECONDS_PER_COEFFICIENT", "STATUS_MAP",
           "available_pyomo_solvers", "pyomo_solver_options", "require_pyomo_solver", "solve_pyomo"]

log = logging.getLogger(__name__)

DEFAULT_PYOMO_SOLVER = "appsi_highs"
SECONDS_PER_COEFFICIENT = 2.5e-5
"""Build and hand-off time of the Pyomo model per coefficient [s] (SOLVER-NOTES: about
20 µs; measured 21 µs for ``datasets/city``'s 829k on a loaded 2-core machine)."""
FALLBACK_RESERVE = 0.2
"""Seconds kept back from greedy's fallback for the checks after it [s]."""
CANDIDATE_SOLVERS = ("appsi_highs", "highs", "cbc", "appsi_cbc", "glpk", "scip", "gurobi",
                     "gurobi_direct", "appsi_gurobi", "cplex", "cplex_direct", "appsi_cplex",
                     "xpress", "mosek")
"""Pyomo solvers looked for when naming the available ones."""

STATUS_MAP: dict[Any, Status | None] = {
    TC.optimal: Status.OPTIMAL,
    TC.globallyOptimal: Status.OPTIMAL,
    TC.locallyOptimal: Status.OPTIMAL,
    TC.infeasible: Status.INFEASIBLE,
    TC.infeasibleOrUnbounded: Status.INFEASIBLE,
    TC.unbounded: Status.ERROR,
    TC.maxTimeLimit: None,
    TC.maxIterations: None,
    TC.maxEvaluations: None,
    TC.minFunctionValue: None,
    TC.minStepLength: None,
    TC.userInterrupt: None,
    TC.resourceInterrupt: None,
    TC.licensingProblems: Status.ERROR,
    TC.solverFailure: Status.ERROR,
    TC.internalSolverError: Status.ERROR,
    TC.error: Status.ERROR,
    TC.other: None,
    TC.unknown: None,
    TC.feasible: Status.FEASIBLE,
}
"""Pyomo TerminationCondition → optisched Status; None = ``feasible`` when a solution
could be loaded, else ``no_solution``."""

# option names per solver family: time limit [s], relative gap, threads, seed
_OPTION_NAMES: dict[str, tuple[str | None, str | None, str | None, str | None]] = {
    "highs": ("time_limit", "mip_rel_gap", "threads", "random_seed"),
    "cbc": ("sec", "ratio", "threads", "randomSeed"),
    "glpk": ("tmlim", "mipgap", None, None),
    "scip": ("limits/time", "limits/gap", None, "randomization/randomseedshift"),
    "gurobi": ("TimeLimit", "MIPGap", "Threads", "Seed"),
    "cplex": ("timelimit", "mip_tolerances_mipgap", "threads", "randomseed"),
}


def pyomo_solver_options(solver: str, options: SolveOptions,
                         time_limit: float | None = None) -> dict[str, Any]:
    """Solver options (time limit, gap, threads, seed) under the solver's own names.

    ``time_limit`` [s] (default ``options.time_limit``) is what the solver gets;
    deterministic: no time limit, one thread, and HiGHS's ``mip_max_nodes``.
    """
    fam = next((k for k in _OPTION_NAMES if k in solver.lower()), None)
    if fam is None:
        return {}
    names = _OPTION_NAMES[fam]
    limit = options.time_limit if time_limit is None else time_limit
    det = options.deterministic
    vals: list[Any] = [
        None if det or limit is None or not math.isfinite(limit) else (
            max(1, math.ceil(limit)) if fam == "glpk" else max(0.01, float(limit))),
        1e-6 if options.mip_gap is None else float(options.mip_gap),
        1 if det else (options.threads or None),
        int(options.seed),
    ]
    out = {n: v for n, v in zip(names, vals, strict=True) if n is not None and v is not None}
    if det and fam == "highs":
        budget = options.time_limit if options.time_limit is not None else 60.0
        out["mip_max_nodes"] = max(1, round(HIGHS_NODES_PER_SECOND * min(budget, 1e6)))
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Pyomo's warnings (with tracebacks) about solvers it cannot create."""
    loggers = [logging.getLogger(n) for n in ("pyomo.opt", "pyomo.solvers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


def _solver(name: str) -> Any:
    """The Pyomo solver ``name`` when it is available, else None."""
    with _quiet():
        try:
            opt = pyo.SolverFactory(name)
            return opt if opt is not None and opt.available(exception_flag=False) else None
        except Exception:  # Pyomo raises for some unknown names
            return None


def available_pyomo_solvers() -> list[str]:
    """The :data:`CANDIDATE_SOLVERS` Pyomo can run here."""
    return [n for n in CANDIDATE_SOLVERS if _solver(n) is not None]


def _unavailable(name: str) -> str:
    have = available_pyomo_solvers()
    return (f"Pyomo cannot run the solver {name!r} here; available: "
            f"{', '.join(have) or 'none'}")


def require_pyomo_solver(name: str) -> None:
    """Raise :class:`~optisched.solvers.options.OptionError` (a ``ValueError``) naming the
    available Pyomo solvers when ``name`` is not one of them."""
    if _solver(name) is None:
        raise OptionError("pyomo", "pyomo_solver", f"= {name!r}: {_unavailable(name)}",
                          PyomoOptions.keys())


def solve_pyomo(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    """Build the Pyomo model and solve it with the ``pyomo_solver`` option."""
    t0 = time.perf_counter()
    params = options.params_as(PyomoOptions)
    name = params.pyomo_solver or DEFAULT_PYOMO_SOLVER
    opt = _solver(name)
    if opt is None:
        return Plan.empty(problem, "pyomo", Status.ERROR, _unavailable(name))
    deadline = options.deadline(t0, math.inf)
    det = options.deterministic
    coefficients = milp_nonzeros_estimate(index)
    prepare = SECONDS_PER_COEFFICIENT * coefficients
    left = deadline - time.perf_counter()
    if not det and prepare > left:
        plan = fallback_plan(problem, index, options, name="pyomo",
                             why=f"time limit: the Pyomo model (about {coefficients:,} "
                                 f"coefficients, about {prepare:.2g} s to build and hand over) "
                                 f"does not fit the {max(left, 0.0):.2g} s left; --solver highs "
                                 "solves the same MILP, built vectorized",
                             seconds=left - FALLBACK_RESERVE)
        plan.info = {**plan.info, "pyomo_solver": name, "termination": "not run"}
        plan.timings = {"build": 0.0, "solve": time.perf_counter() - t0}
        return plan
    m = build_pyomo_model(problem, index)
    t_build = time.perf_counter() - t0
    # the hand-off is about half of the preparation (SOLVER-NOTES); it happens in solve()
    limit = None if det else max(0.01, deadline - time.perf_counter() - 0.5 * prepare
                                 - min(2.0, max(0.1, 0.03 * (options.time_limit or 0.0))))
    for k, v in pyomo_solver_options(name, options, limit).items():
        opt.options[k] = v
    if "highs" in name.lower():
        rule_off = _presolve_rule_off(coefficients, limit)
        if rule_off is not None:
            opt.options["presolve_rule_off"] = rule_off
        if limit is not None and not feasibility_jump_fits(coefficients, limit):
            opt.options["mip_heuristic_run_feasibility_jump"] = False
        if options.threads or det:
            # HiGHS's thread pool is process-global; a pool of another size makes the
            # solve fail, so start a fresh one (solves in this process are sequential)
            hs.reset_thread_pool()
    res = opt.solve(m, load_solutions=False, tee=params.log)
    tc = res.solver.termination_condition
    mapped = STATUS_MAP.get(tc, Status.ERROR)
    loaded = False
    if mapped in (None, Status.OPTIMAL, Status.FEASIBLE):
        try:
            m.solutions.load_from(res)
            loaded = all(v.value is not None for v in m.x.values()) or not len(m.x)
        except Exception:  # no solution to load
            log.debug("no solution loaded", exc_info=True)
    if mapped is None:
        mapped = Status.FEASIBLE if loaded else Status.NO_SOLUTION
    info: dict[str, Any] = {"pyomo_solver": name, "termination": str(tc)}
    lb = getattr(res.problem, "lower_bound", None)
    bound = float(lb) if lb is not None and math.isfinite(float(lb)) else None
    if mapped in (Status.OPTIMAL, Status.FEASIBLE) and loaded:
        sets = m._sets
        xv = np.array([pyo.value(m.x[k]) for k in range(sets.x_opt.size)], dtype=float)
        node = np.full(index.J, -1, dtype=np.int64)
        start = np.zeros(index.J, dtype=np.int64)
        sel = np.nonzero(xv > 0.5)[0]
        node[sets.x_job[sel]] = sets.x_node[sel]
        start[sets.x_job[sel]] = sets.x_start[sel]
        on = np.zeros((index.N, index.T), dtype=bool)
        for (n, t), v in m.on.items():
            on[n, t] = (v.value or 0.0) > 0.5
        flows = _flows(index, m, node, start, on)
        plan = plan_from_placement(problem, index, "pyomo", mapped, node, start, flows)
        plan.objective = float(pyo.value(m.objective))
        plan.bound = bound if bound is not None else (
            plan.objective if mapped is Status.OPTIMAL else None)
        info["milp_objective"] = plan.objective
    elif mapped is Status.INFEASIBLE:
        more = (options.time_limit or 10.0) if det else deadline - time.perf_counter()
        why = (explain_infeasibility(index, time_limit=min(more, 10.0), deterministic=det)
               if more >= 0.1 else "the MILP is infeasible (no time left to explain why)")
        plan = Plan.empty(problem, "pyomo", Status.INFEASIBLE, why)
    elif mapped in (Status.NO_SOLUTION, Status.FEASIBLE):
        plan = fallback_plan(problem, index, options, name="pyomo",
                             why=f"{name} ended with {tc} and no plan",
                             seconds=deadline - time.perf_counter() - FALLBACK_RESERVE)
        info.update(plan.info)
    else:
        plan = Plan.empty(problem, "pyomo", mapped, f"{name} ended with {tc} and no plan")
    plan.info = info
    plan.timings = {"build": t_build, "solve": time.perf_counter() - t0 - t_build}
    options.report(t0, plan.objective, plan.bound, f"pyomo {name} {tc}")
    return plan


def _presolve_rule_off(coefficients: int, seconds: float | None) -> int | None:
    """HiGHS's slow presolve rules off for large models on short budgets (as ``highs``)."""
    budget = math.inf if seconds is None else seconds
    if coefficients > SLOW_PRESOLVE_NONZEROS_PER_SECOND * budget:
        return PRESOLVE_RULE_OFF
    return None


def _flows(index: Index, m: pyo.ConcreteModel, node: Any, start: Any, on: Any) -> Flows:
    """Exact dispatch of the placement; the model's own flows if it fails."""
    res = dispatch(index, node, start, on)
    if res.feasible and res.flows is not None:
        return res.flows

    def arr(var: Any, s: int) -> Any:
        a = np.zeros((index.N, index.T))
        for (sv, n, t), v in var.items():
            if sv == s:
                a[n, t] = v.value or 0.0
        return a

    load = on * index.idle_kw[:, None] + job_load(index, node, start)
    parts = [FlowArrays(pv_used=arr(m.pv_used, s), grid_import=arr(m.grid_import, s),
                        grid_export=arr(m.grid_export, s), charge=arr(m.charge, s),
                        discharge=arr(m.discharge, s), soc=arr(m.soc, s))
             for s in range(index.S)]  # every scenario's (beyond SPEC v1)
    return Flows.of_scenarios(on, load, list(parts))
