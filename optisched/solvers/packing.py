"""Packings for tight instances: randomized list scheduling, then the CP-SAT packing
model (:mod:`optisched.formulations.packing`).

Used by ``lns`` as its start when greedy and baseline find no plan. Both keep SPEC §2
constraints 1-3 (assignment, eligibility and start windows from the index, resources
per node and slot) and leave power to the exact dispatch afterwards.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from ortools.sat.python import cp_model

from optisched.formulations.packing import build_packing_model, extract_packing
from optisched.index import Index

logger = logging.getLogger(__name__)

#: CP-SAT statuses that come with a solution
_HAS_SOLUTION = (cp_model.OPTIMAL, cp_model.FEASIBLE)


def _earliest_fit(free: np.ndarray, use: np.ndarray, d: int, starts: np.ndarray) -> int:
    """First start in ``starts`` where ``use`` fits ``free`` for ``d`` slots, else -1.

    ``free`` (T, R) is the node's remaining capacity, ``use`` (R,) the job's usage.
    """
    fits = (free >= use[None, :] - 1e-9).all(axis=1)
    if d <= 0:
        return int(starts[0]) if starts.size else -1
    run = np.zeros(fits.size + 1, dtype=np.int64)
    run[1:] = np.cumsum(fits)
    ok = starts[(starts + d <= fits.size)]
    good = ok[run[ok + d] - run[ok] == d]
    return int(good[0]) if good.size else -1


def list_schedule(index: Index, time_limit: float, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, bool]:
    """A packing by randomized list scheduling: ``(node, start, complete)``.

    ``complete`` is False when some must-run job is unplaced at ``time_limit``; the
    placement is then the pass that placed the most jobs (a hint for CP-SAT).

    Jobs are taken in order of their slack (width of their start windows on their best
    option, least first; ties by total resource share, largest first), each placed at
    its earliest start that fits the remaining capacity [resource units], on the node
    where that start is earliest. A job that fits nowhere moves to the front and the
    pass restarts with the order perturbed (random keys from ``seed``), until
    ``time_limit`` [s]. Droppable jobs that do not fit are dropped. Pinned jobs are
    placed first where they are. ICON 2014 samples 07-09 (1000-2000 jobs at 80-90 %
    use) defeat CP-SAT's packing model in 60 s; this is what packs them.
    """
    t_end = time.perf_counter() + time_limit
    ix = index
    T = ix.T
    rng = np.random.default_rng(seed)
    starts = {int(o): ix.feasible_starts(int(o)) for o in range(ix.opt_job.size)}
    slack = np.full(ix.J, np.inf)
    for o, st in starts.items():
        j = int(ix.opt_job[o])
        slack[j] = min(slack[j], float(st.size))
    share = (ix.usage / np.maximum(ix.capacity.max(axis=0), 1e-9)[None, :]).sum(axis=1)
    base = np.lexsort((-share, slack))
    rank = np.empty(ix.J)
    rank[base] = np.arange(ix.J)
    order = base
    bumped: list[int] = []
    partial = (np.full(ix.J, -1, dtype=np.int64), np.full(ix.J, -1, dtype=np.int64))
    most = -1
    while True:
        free = np.repeat(ix.capacity[:, None, :], T, axis=1).astype(float)
        node = np.full(ix.J, -1, dtype=np.int64)
        start = np.full(ix.J, -1, dtype=np.int64)
        for jp in np.nonzero(ix.pinned)[0].tolist():
            o = ix.find_option(jp, int(ix.pinned_node[jp]))
            a, b = ix.occupied(o, int(ix.pinned_start[jp]))
            free[ix.pinned_node[jp], a:b] -= ix.usage[jp]
            node[jp], start[jp] = ix.pinned_node[jp], ix.pinned_start[jp]
        failed = -1
        for j in order:
            j = int(j)
            if ix.pinned[j]:
                continue
            best = (T + 1, -1, -1)
            for o in ix.options_of(j):
                n, d = int(ix.opt_node[o]), int(ix.opt_dur[o])
                s = _earliest_fit(free[n], ix.usage[j], d, starts[int(o)])
                if 0 <= s < best[0]:
                    best = (s, n, d)
            s, n, d = best
            if n < 0:
                if ix.must_run[j] and failed < 0:
                    failed = j
                continue
            free[n, s:s + d] -= ix.usage[j]
            node[j], start[j] = n, s
        if failed < 0:
            return node, start, True
        placed = int((node >= 0).sum())
        if placed > most:
            most, partial = placed, (node, start)
        if time.perf_counter() >= t_end:
            return partial[0], partial[1], False
        bumped = [failed] + [b for b in bumped if b != failed]
        keys = rank + rng.normal(0.0, 0.02 * ix.J, ix.J)
        keys[bumped] = -np.arange(len(bumped), 0, -1, dtype=float) - 1e9
        order = np.argsort(keys, kind="stable")


def _solver(time_limit: float, seed: int) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.05, float(time_limit))
    solver.parameters.random_seed = int(seed)
    solver.parameters.num_workers = 1
    return solver


@dataclass
class Packings:
    """What :func:`pack` found."""

    found: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    """Complete packings ``(node, start)`` (node = -1: dropped), cheapest surrogate last."""
    partial: tuple[np.ndarray, np.ndarray] | None = None
    """When none is complete: list scheduling's pass that placed the most jobs."""


def pack(index: Index, time_limit: float, seed: int = 0) -> Packings:
    """Packings of the jobs: CP-SAT, else list scheduling.

    Phase 1 solves the CP-SAT packing model without objective for up to half of
    ``time_limit`` [s] (ICON samples 01-06 pack in 0.02-15 s); when it finds nothing,
    :func:`list_schedule` gets the rest (it packs ICON sample07, 1000 jobs, where
    CP-SAT does not in 60 s). After a CP-SAT packing, phase 2 minimises the surrogate
    cost hinted with it for what is left. One worker and ``seed`` each (deterministic
    up to the time limit).
    """
    t0 = time.perf_counter()
    out = Packings()
    found = out.found
    feas = build_packing_model(index, objective=False)
    solver = _solver(time_limit / 2.0, seed)
    code = solver.solve(feas.model)
    logger.info("packing phase 1: %s in %.2f s", solver.status_name(code),
                time.perf_counter() - t0)
    if code == cp_model.INFEASIBLE:
        return out
    if code not in _HAS_SOLUTION:
        node, start, complete = list_schedule(
            index, max(0.1, time_limit - (time.perf_counter() - t0)), seed)
        logger.info("list scheduling: complete=%s, %d of %d jobs placed, %.2f s", complete,
                    int((node >= 0).sum()), index.J, time.perf_counter() - t0)
        if complete:
            found.append((node, start))
        else:
            out.partial = (node, start)
        return out
    node, start = extract_packing(feas, solver)
    found.append((node, start))
    left = time_limit - (time.perf_counter() - t0)
    if left < 0.5:
        return out
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
    return out
