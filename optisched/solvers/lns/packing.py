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
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from optisched.formulations.packing import RES_SCALE, build_packing_model, extract_packing
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


CPSAT_PACK_JOBS = 500
"""Jobs up to which :func:`pack` gives CP-SAT's packing model 30 s (else 10 s): ICON samples
01-06 (≤ 250 jobs) pack in 0.02-15.5 s, samples 07-09 (1000-2000) not in 60 s."""
WINDOW_NODES = 3
"""Nodes whose jobs a window of :func:`repair` frees (the unplaced job's and others)."""


def repair(index: Index, node: np.ndarray, start: np.ndarray, time_limit: float,
           seed: int = 0, window_limit: float = 1.0) -> tuple[np.ndarray, np.ndarray, bool]:
    """Place unplaced must-run jobs by CP-SAT over time windows: ``(node, start, complete)``.

    Repeatedly draws an unplaced must-run job ``j``, a window ``[a, b)`` of ``2-6``
    times its duration that contains one of its feasible placements and up to
    :data:`WINDOW_NODES` of its eligible nodes; every placed job lying wholly inside
    the window on those nodes is freed to move within it (on those nodes), every
    other job stays where it is (its usage is a fixed interval of the cumulative
    constraints), and CP-SAT maximises the number of unplaced must-run jobs placed in
    the window while every freed job stays placed (``window_limit`` [s] per window).
    The packing only ever gains jobs. Stops when all are placed or at ``time_limit``
    [s]. A large-neighbourhood repair for packings that list scheduling leaves short
    (ICON 2014 samples 08-09: 1000-2000 jobs at 80-90 % use).
    """
    t_end = time.perf_counter() + time_limit
    ix = index
    rng = np.random.default_rng(seed)
    node, start = node.copy(), start.copy()
    dur = np.zeros(ix.J, dtype=np.int64)
    placed0 = node >= 0
    dur[placed0] = ix.duration(np.nonzero(placed0)[0], node[placed0])
    use = np.ceil(ix.usage * RES_SCALE - 1e-9).astype(np.int64)
    cap = np.floor(ix.capacity * RES_SCALE + 1e-9).astype(np.int64)
    while time.perf_counter() < t_end:
        missing = np.nonzero((node < 0) & ix.must_run)[0]
        if not missing.size:
            return node, start, True
        j = int(rng.choice(missing))
        opts = ix.options_of(j)
        if not opts.size:
            return node, start, False
        o = int(rng.choice(opts))
        st = ix.feasible_starts(o)
        if not st.size:
            continue
        d = int(ix.opt_dur[o])
        s0 = int(rng.choice(st))
        width = int(rng.integers(2 * d, 6 * d + 1))
        a = max(0, s0 - int(rng.integers(0, max(1, width - d + 1))))
        b = min(ix.T, a + max(width, d))
        cand = np.unique(ix.opt_node[opts])
        sub = rng.choice(cand, size=min(WINDOW_NODES, cand.size), replace=False)
        if int(ix.opt_node[o]) not in sub:
            sub[0] = int(ix.opt_node[o])
        in_sub = np.zeros(ix.N, dtype=bool)
        in_sub[sub] = True
        inside = np.nonzero((node >= 0) & ~ix.pinned & (start >= a) & (start + dur <= b)
                            & in_sub[np.maximum(node, 0)])[0]
        targets = missing[(ix.release[missing] < b)]
        md = cp_model.CpModel()
        per_node: dict[int, list[tuple[Any, int]]] = {n: [] for n in range(ix.N)}
        chosen: list[tuple[int, list[tuple[Any, Any, int]]]] = []
        gain: list[Any] = []
        moving = set(inside.tolist())
        for k in np.concatenate([inside, targets]).tolist():
            lits = []
            for oo in ix.options_of(k).tolist():
                n, dd = int(ix.opt_node[oo]), int(ix.opt_dur[oo])
                if not in_sub[n]:
                    continue
                ok = ix.feasible_starts(oo)
                ok = ok[(ok >= a) & (ok + dd <= b)]
                if not ok.size:
                    continue
                z = md.new_bool_var("")
                sv = md.new_int_var_from_domain(cp_model.Domain.from_values(ok.tolist()), "")
                per_node[n].append((md.new_optional_fixed_size_interval_var(sv, dd, z, ""), k))
                lits.append((z, sv, n))
            if k in moving:
                md.add_exactly_one([z for z, _, _ in lits])
            else:
                md.add_at_most_one([z for z, _, _ in lits])
                gain.extend(z for z, _, _ in lits)
            chosen.append((k, lits))
        if not gain:
            continue
        fixed = np.nonzero((node >= 0) & ~np.isin(np.arange(ix.J), inside))[0]
        fixed = fixed[(start[fixed] < b) & (start[fixed] + dur[fixed] > a)]
        for n in range(ix.N):
            mine = per_node[n]
            if not mine:
                continue
            fx = fixed[node[fixed] == n].tolist()
            lo = [max(a, int(start[f])) for f in fx]
            hi = [min(b, int(start[f] + dur[f])) for f in fx]
            for r in range(use.shape[1]):
                ivs = [iv for iv, _ in mine] + [md.new_fixed_size_interval_var(x, y - x, "")
                                                for x, y in zip(lo, hi, strict=True)]
                dem = [int(use[k, r]) for _, k in mine] + [int(use[f, r]) for f in fx]
                md.add_cumulative(ivs, dem, int(cap[n, r]))
        md.maximize(sum(gain))
        solver = _solver(min(window_limit, max(0.05, t_end - time.perf_counter())), seed)
        code = solver.solve(md)
        if code not in _HAS_SOLUTION or solver.objective_value < 0.5:
            continue
        for k, lits in chosen:
            for z, sv, n in lits:
                if solver.boolean_value(z):
                    node[k], start[k] = n, int(solver.value(sv))
                    dur[k] = ix.duration(k, n)
    complete = not ((node < 0) & ix.must_run).any()
    return node, start, complete


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


def pack(index: Index, time_limit: float, seed: int = 0,
         improve_limit: float | None = None) -> Packings:
    """Packings of the jobs: CP-SAT, else list scheduling.

    Phase 1 solves the CP-SAT packing model without objective for up to
    ``min(30, time_limit/3)`` [s] (10 s above :data:`CPSAT_PACK_JOBS` jobs; ICON samples
    01-06 pack in 0.02-15 s); when it finds nothing, :func:`list_schedule` gets a third
    of the rest (it packs ICON sample07, 1000 jobs, where CP-SAT does not in 60 s) and
    :func:`repair` the remainder. After a
    CP-SAT packing, phase 2 minimises the surrogate cost hinted with it for at most
    ``improve_limit`` [s] (default: what is left). One worker and ``seed`` each
    (deterministic up to the time limit).
    """
    t0 = time.perf_counter()
    out = Packings()
    found = out.found
    feas = build_packing_model(index, objective=False)
    # CP-SAT packs up to a few hundred jobs fast; beyond, list scheduling and repair pay
    first = min(30.0 if index.J <= CPSAT_PACK_JOBS else 10.0, time_limit / 3.0)
    solver = _solver(first, seed)
    code = solver.solve(feas.model)
    logger.info("packing phase 1: %s in %.2f s", solver.status_name(code),
                time.perf_counter() - t0)
    if code == cp_model.INFEASIBLE:
        return out
    if code not in _HAS_SOLUTION:
        node, start, complete = list_schedule(
            index, max(0.1, (time_limit - (time.perf_counter() - t0)) / 3.0), seed)
        logger.info("list scheduling: complete=%s, %d of %d jobs placed, %.2f s", complete,
                    int((node >= 0).sum()), index.J, time.perf_counter() - t0)
        if not complete:
            node, start, complete = repair(
                index, node, start, max(0.1, time_limit - (time.perf_counter() - t0)), seed)
            logger.info("repair: complete=%s, %d of %d jobs placed, %.2f s", complete,
                        int((node >= 0).sum()), index.J, time.perf_counter() - t0)
        if complete:
            found.append((node, start))
        else:
            out.partial = (node, start)
        return out
    node, start = extract_packing(feas, solver)
    found.append((node, start))
    left = time_limit - (time.perf_counter() - t0)
    if improve_limit is not None:
        left = min(left, improve_limit)
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
