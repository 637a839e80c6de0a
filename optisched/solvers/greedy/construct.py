"""Construction of a greedy plan: job order, insertion by marginal cost, warm start, repair.

Every function takes the :class:`~optisched.solvers.greedy.state.GreedyState` it
changes and the :class:`~optisched.solvers.greedy.scan.Scorer` that scores
insertions into it.
"""

from __future__ import annotations

import numpy as np

from optisched.arrays import IntArray
from optisched.dispatch import dispatch_load
from optisched.index import Index, explain_job
from optisched.solvers.greedy.scan import Best, Scorer
from optisched.solvers.greedy.state import GreedyState

__all__ = ["construct", "energy_order", "find_options", "insert", "job_order", "repair"]


def job_order(index: Index) -> IntArray:
    """Order in which construction places the jobs.

    Keys, most significant first: pinned jobs first; must-run before droppable;
    least slack ``max_o (opt_latest − opt_earliest)`` [slots]; larger energy
    ``power_kw · duration_min / 60`` [kWh]; larger drop penalty; file order.

    Returns
    -------
    (J,) int
        Job positions in placement order.
    """
    J = index.J
    counts = np.diff(index.opt_job_ptr)
    slack = np.full(J, np.iinfo(np.int64).max // 4, dtype=np.int64)
    if index.opt_job.size:
        width = index.opt_latest - index.opt_earliest
        has = counts > 0
        slack[has] = np.maximum.reduceat(width, index.opt_job_ptr[:-1][has])
    energy = index.job_power * index.duration_min / 60.0
    penalty = np.where(np.isnan(index.drop_penalty), np.inf, index.drop_penalty)
    keys = (np.arange(J), -penalty, -energy, slack, ~index.must_run, ~index.pinned)
    return np.lexsort(keys).astype(np.int64)


def energy_order(index: Index) -> IntArray:
    """Pinned jobs first, then largest reference energy ``power_kw · duration_min / 60``
    [kWh] first, whether the job must run or not; file order breaks ties.

    One of the starts of the multi-start (:func:`~optisched.solvers.greedy.run.run_greedy`):
    the big jobs choose their nodes before the small ones fill them.

    Returns
    -------
    (J,) int
        Job positions in placement order.
    """
    energy = index.job_power * index.duration_min / 60.0
    return np.lexsort((np.arange(index.J), -energy, ~index.pinned)).astype(np.int64)


def construct(state: GreedyState, scorer: Scorer, order: IntArray,
              hint: dict[int, tuple[int, int]] | None = None,
              trusted: bool = False, failed: list[int] | None = None,
              checked: dict[int, tuple[int, int]] | None = None) -> str | None:
    """Place jobs in ``order`` (pinned as pinned, hinted where they still fit).

    Parameters
    ----------
    state : GreedyState
        The placement to fill.
    scorer : Scorer
        Scores insertions into ``state``.
    order : (J,) int
        Placement order (see :func:`job_order`).
    hint : dict, optional
        ``job -> (node, start)`` to keep when it still fits (warm start).
    trusted : bool
        The hinted placements are known to fit together (same capacities,
        availability and headroom as when they were made): place them at once
        without checks.
    failed : list of int, optional
        When given, a must-run job that finds no place is appended to it and the
        construction goes on with the next job (the feasibility engine,
        :mod:`optisched.solvers.greedy.feasibility`, repairs them afterwards); without
        it, construction stops at the first such job.
    checked : dict, optional
        More hints ``job -> (node, start)`` for jobs not in ``hint``, kept when they
        still fit (tried with the checks even when ``trusted``: the distributed solver's
        repair re-solve trusts its partition's plan and checks the places found for the
        jobs it adds).

    Returns
    -------
    str or None
        Message naming the first must-run job that could not be placed and why, else
        None.
    """
    ix = state.index
    hint = hint or {}
    if trusted and hint:
        _place_trusted(state, hint)
    if checked:  # tried with the checks below, like every hint not placed yet
        hint = {**checked, **hint}
    first: str | None = None
    for j in order:
        j = int(j)
        if state.opt[j] >= 0:
            continue
        lo, hi = int(ix.opt_job_ptr[j]), int(ix.opt_job_ptr[j + 1])
        if ix.pinned_node[j] >= 0:
            if hi > lo:
                state.place(j, lo, int(ix.pinned_start[j]))
            continue
        if j in hint:
            n, s = hint[j]
            o = ix.find_option(j, n)
            if o >= 0 and scorer.fits(j, o, s):
                state.place(j, o, s)
                continue
        why = insert(state, scorer, j)
        if why is not None:
            if failed is None:
                return why
            failed.append(j)
            first = first or why
    return first


def _place_trusted(state: GreedyState, hint: dict[int, tuple[int, int]]) -> None:
    """Place the hinted jobs still eligible in their start window, then the pinned jobs, at once.

    No capacity or headroom checks: the caller knows the hinted placements fit
    together (:func:`construct` with ``trusted``).
    """
    ix = state.index
    js = np.fromiter(hint.keys(), dtype=np.int64, count=len(hint))
    js = js[ix.pinned_node[js] < 0]
    hn = np.array([hint[int(j)][0] for j in js], dtype=np.int64)
    ss = np.array([hint[int(j)][1] for j in js], dtype=np.int64)
    os_ = find_options(ix, js, hn)
    oc = np.maximum(os_, 0)
    good = ((os_ >= 0) & (ix.opt_earliest[oc] <= ss) & (ss <= ix.opt_latest[oc])
            & (ix.avail_run[ix.opt_node[oc], np.clip(ss, 0, state.T - 1)]
               >= ix.opt_dur[oc]))
    state.place_many(js[good], os_[good], ss[good])
    pj = np.nonzero(ix.pinned)[0]
    pj = pj[np.diff(ix.opt_job_ptr)[pj] > 0]
    state.place_many(pj, ix.opt_job_ptr[pj], ix.pinned_start[pj])


def insert(state: GreedyState, scorer: Scorer, j: int) -> str | None:
    """Insert job ``j`` at its cheapest place, drop it, or explain why it cannot run.

    Returns
    -------
    str or None
        Why a must-run job found no place, else None (placed or dropped).
    """
    ix = state.index
    must = bool(ix.must_run[j])
    if ix.opt_job_ptr[j + 1] == ix.opt_job_ptr[j]:
        if must:
            return explain_job(state.problem, ix, j) + " (it must run)"
        return None
    best = scorer.best_insertion(j)
    if best is None:
        best = _battery_insertion(state, scorer, j)
    if best is None:
        if not must:
            return None
        reason: list[str] = []
        scorer.best_insertion(j, diagnose=reason, battery=True, full=True)
        why = reason[0] if reason else "no feasible window"
        return f"job {ix.job_ids[j]}: no feasible placement found ({why}); it must run"
    if not must and float(ix.drop_penalty[j]) < best.cost:
        return None
    state.place(j, best.option, best.start)
    return None


def _battery_insertion(state: GreedyState, scorer: Scorer, j: int) -> Best | None:
    """Insert using battery discharge beyond headroom, verified by the exact dispatch."""
    ix = state.index
    best = scorer.best_insertion(j, battery=True, full=True)
    if best is None:
        return None
    n = int(ix.opt_node[best.option])
    state.place(j, best.option, best.start)
    res = dispatch_load(ix, state.load, np.array([n]))
    state.unplace(j)
    return best if res.feasible else None


def repair(state: GreedyState, scorer: Scorer) -> tuple[bool, str]:
    """Make an infeasible dispatch feasible by moving jobs off groups the battery cannot carry.

    Jobs on infeasible groups are taken out (latest placed last) and re-inserted with
    the strict headroom rule (battery idle); must-run jobs that fit nowhere make the
    plan infeasible.

    Returns
    -------
    (bool, str)
        As :meth:`GreedyState.evaluate_all`: whether the plan is now feasible, and
        why not.
    """
    ix = state.index
    for _ in range(3):
        res = dispatch_load(ix, state.load)
        if res.feasible:
            return state.evaluate_all()
        bad_nodes = res.nodes[~np.isfinite(res.cost)]
        jobs = [int(j) for j in np.nonzero(np.isin(state.node, bad_nodes) & ~ix.pinned)[0]]
        if not jobs:
            return False, f"no feasible energy flows even without movable jobs: {res.message}"
        for j in jobs:
            state.unplace(j)
        for j in jobs:
            best = scorer.best_insertion(j)
            if best is not None and int(ix.opt_node[best.option]) not in set(bad_nodes.tolist()):
                state.place(j, best.option, best.start)
            elif ix.must_run[j]:
                return False, (f"job {ix.job_ids[j]}: no feasible placement found (headroom: "
                               f"the exact dispatch cannot supply it: {res.message}); it must run")
    res = dispatch_load(ix, state.load)
    return (state.evaluate_all() if res.feasible else (False, res.message))


def find_options(ix: Index, jobs: IntArray, nodes: IntArray) -> IntArray:
    """Option position of each (job, node) pair, -1 when not eligible (vectorized)."""
    key = ix.opt_job * max(ix.N, 1) + ix.opt_node  # sorted: options go by job, then node
    want = jobs * max(ix.N, 1) + nodes
    pos = np.searchsorted(key, want)
    posc = np.minimum(pos, max(key.size - 1, 0))
    hit = (pos < key.size) & (key[posc] == want) if key.size else np.zeros(jobs.size, bool)
    return np.where(hit, posc, -1).astype(np.int64)
