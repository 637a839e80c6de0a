"""Solve the CP-SAT packing model (:mod:`optisched.formulations.packing`).

Used by ``lns`` as its start when greedy and baseline find no plan.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from ortools.sat.python import cp_model

from optisched.formulations.packing import build_packing_model, extract_packing
from optisched.index import Index

logger = logging.getLogger(__name__)

#: CP-SAT statuses that come with a solution
_HAS_SOLUTION = (cp_model.OPTIMAL, cp_model.FEASIBLE)


def _solver(time_limit: float, seed: int) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.05, float(time_limit))
    solver.parameters.random_seed = int(seed)
    solver.parameters.num_workers = 1
    return solver


def pack(index: Index, time_limit: float, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Packings ``(node, start)`` found (node = -1: dropped), cheapest surrogate last.

    Phase 1 solves the model without objective (a feasible packing, fast on tight
    instances); phase 2 minimises the surrogate cost hinted with it, for what is left
    of ``time_limit`` [s]. Each phase uses one worker and ``seed`` (deterministic up to
    the time limit). An empty list: no packing found (or proven impossible).
    """
    t0 = time.perf_counter()
    found: list[tuple[np.ndarray, np.ndarray]] = []
    feas = build_packing_model(index, objective=False)
    solver = _solver(time_limit, seed)
    code = solver.solve(feas.model)
    logger.info("packing phase 1: %s in %.2f s", solver.status_name(code),
                time.perf_counter() - t0)
    if code not in _HAS_SOLUTION:
        return found
    node, start = extract_packing(feas, solver)
    found.append((node, start))
    left = time_limit - (time.perf_counter() - t0)
    if left < 0.5:
        return found
    pm = build_packing_model(index, objective=True)
    for o, z in pm.present.items():
        j = int(index.opt_job[o])
        on = bool(node[j] == index.opt_node[o])
        pm.model.add_hint(z, on)
        if on:
            pm.model.add_hint(pm.start[o], int(start[j]))
    for j, lit in pm.drop.items():
        pm.model.add_hint(lit, bool(node[j] < 0))
    solver = _solver(left, seed)
    code = solver.solve(pm.model)
    logger.info("packing phase 2: %s, surrogate %.4f, in %.2f s", solver.status_name(code),
                solver.objective_value * pm.money if code in _HAS_SOLUTION else float("nan"),
                time.perf_counter() - t0)
    if code in _HAS_SOLUTION:
        found.append(extract_packing(pm, solver))
    return found
