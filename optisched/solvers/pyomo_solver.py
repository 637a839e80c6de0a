"""``pyomo``: the exact MILP as a Pyomo model, solved by any installed Pyomo solver.

``PyomoOptions.pyomo_solver`` (CLI ``--pyomo-solver``) names the Pyomo
solver: ``appsi_highs`` by default, else ``highs``, ``cbc``, ``glpk``, ``scip``,
``gurobi``, ``cplex`` … whatever ``pyomo.environ.SolverFactory`` knows and finds.
The solution is read without Pyomo's automatic load (the HiGHS interfaces raise
when asked to load a solution that does not exist; SOLVER-NOTES), the status is
mapped by :data:`STATUS_MAP`, and the plan's flows come from the exact dispatch,
as in the ``highs`` solver.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.opt import TerminationCondition as TC

from optisched.domain import Problem
from optisched.formulations.milp_pyomo import build_pyomo_model
from optisched.index import Index
from optisched.plan import FlowArrays, Flows, Plan, Status
from optisched.solvers.base import SolveOptions, plan_from_placement
from optisched.solvers.options import PyomoOptions

__all__ = ["DEFAULT_PYOMO_SOLVER", "STATUS_MAP", "pyomo_solver_options", "solve_pyomo"]

log = logging.getLogger(__name__)

DEFAULT_PYOMO_SOLVER = "appsi_highs"

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


def pyomo_solver_options(solver: str, options: SolveOptions) -> dict[str, Any]:
    """Solver options (time limit, gap, threads, seed) under the solver's own names."""
    fam = next((k for k in _OPTION_NAMES if k in solver.lower()), None)
    if fam is None:
        return {}
    names = _OPTION_NAMES[fam]
    limit = options.time_limit
    vals: list[Any] = [
        None if limit is None or not math.isfinite(limit) else (
            math.ceil(limit) if fam == "glpk" else float(limit)),
        1e-6 if options.mip_gap is None else float(options.mip_gap),
        options.threads or None,
        int(options.seed),
    ]
    return {n: v for n, v in zip(names, vals, strict=True) if n is not None and v is not None}


def solve_pyomo(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    """Build the Pyomo model and solve it with the ``pyomo_solver`` option."""
    t0 = time.perf_counter()
    params = options.params_as(PyomoOptions)
    name = params.pyomo_solver or DEFAULT_PYOMO_SOLVER
    m = build_pyomo_model(problem, index)
    t_build = time.perf_counter() - t0
    opt = pyo.SolverFactory(name)
    if opt is None or not opt.available(exception_flag=False):
        return Plan.empty(problem, "pyomo", Status.ERROR,
                          f"Pyomo solver {name!r} is not available")
    for k, v in pyomo_solver_options(name, options).items():
        opt.options[k] = v
    if options.threads and "highs" in name.lower():
        # HiGHS's thread pool is process-global; a pool of another size makes the solve
        # fail, so start a fresh one (solves in this process are sequential)
        import highspy

        highspy.Highs.resetGlobalScheduler(True)
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
        from optisched.solvers.highs import explain_infeasibility

        plan = Plan.empty(problem, "pyomo", Status.INFEASIBLE, explain_infeasibility(index))
    else:
        plan = Plan.empty(problem, "pyomo", mapped if mapped is not Status.FEASIBLE
                          else Status.NO_SOLUTION, f"{name} ended with {tc} and no plan")
    plan.info = info
    plan.timings = {"build": t_build, "solve": time.perf_counter() - t0 - t_build}
    options.report(t0, plan.objective, plan.bound, f"pyomo {name} {tc}")
    return plan


def _flows(index: Index, m: pyo.ConcreteModel, node: Any, start: Any, on: Any) -> Flows:
    """Exact dispatch of the placement; the model's own flows if it fails."""
    from optisched.dispatch import dispatch
    from optisched.evaluate import job_load

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
