"""The eight local-search moves of the greedy and :func:`try_move`, which keeps or undoes one.

A move function looks at the state (it may place and unplace jobs to score, but
leaves the state as it found it) and proposes a :class:`Move`, or None when it
finds nothing to try. :func:`try_move` applies the move, prices it exactly
(re-dispatched affected groups + switching + latency + tardiness + drop) and keeps
it only when the objective falls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from optisched.arrays import BoolArray, IntArray
from optisched.solvers.greedy.scan import Scorer
from optisched.solvers.greedy.state import GreedyState

__all__ = ["MOVES", "Move", "MoveFunction", "try_move"]

_IMPROVE_RTOL = 1e-9
"""Least relative fall of the objective for a move to be kept."""


@dataclass
class Move:
    """A tentative change: job re-assignments and bridge changes."""

    jobs: list[tuple[int, int, int]] = field(default_factory=list)  # (j, option|-1, start)
    bridges: list[tuple[int, BoolArray]] = field(default_factory=list)  # (node, new row)


MoveFunction = Callable[[GreedyState, Scorer, np.random.Generator, IntArray], Move | None]
"""``move(state, scorer, rng, movable) -> Move | None``."""


def try_move(state: GreedyState, move: Move) -> float | None:
    """Apply ``move``; keep it if the exact objective falls, else undo.

    Returns
    -------
    float or None
        The objective change (negative) when kept, None when undone.
    """
    ix = state.index
    undo_jobs = [(j, int(state.opt[j]), int(state.start[j])) for j, _, _ in move.jobs]
    undo_bridges = [(n, state.bridge[n].copy()) for n, _ in move.bridges]
    nodes: set[int] = set()
    for j, _o, _s in move.jobs:
        if state.opt[j] >= 0:
            nodes.add(int(state.node[j]))
            state.unplace(j)
    for j, o, s in move.jobs:
        if o >= 0:
            state.place(j, o, s)
            nodes.add(int(ix.opt_node[o]))
    for n, row in move.bridges:
        state.set_bridge(n, row)
        nodes.add(n)
    rows = np.array(sorted(nodes), dtype=np.int64)
    groups = sorted({int(state.group_of[n]) for n in rows})
    job_ids = [j for j, _, _ in move.jobs]
    new_j = {j: state.job_terms(j) for j in job_ids}
    new_sw = state.switching(rows) if rows.size else np.zeros(0)
    delta = sum(new_j[j] - state.jcost[j] for j in job_ids)
    delta += float(new_sw.sum() - state.sw[rows].sum()) if rows.size else 0.0
    res = None
    feasible = math.isfinite(delta)
    if feasible and groups:
        # cheap pre-test: skip the LP when even a free energy change cannot help
        ok, costs, res, _ = state.dispatch(groups)
        feasible = ok
        if ok:
            delta += sum(costs[g] - state.gcost[g] for g in groups)
    if feasible and state.index.S > 1:  # several scenarios: E + λ·CVaR of the totals
        delta = state.risk_delta(delta)
    if feasible and delta < -_IMPROVE_RTOL * max(1.0, abs(state.objective)):
        for j in job_ids:
            state.jcost[j] = new_j[j]
        state.sw[rows] = new_sw
        if res is not None:
            for g, c in costs.items():
                state.gcost[g] = c
            res.write_into(state.flows)  # type: ignore[attr-defined]
        return float(delta)
    # undo
    for j, _, _ in move.jobs:
        state.unplace(j)
    for j, o, s in undo_jobs:
        if o >= 0:
            state.place(j, o, s)
    for n, row in undo_bridges:
        state.bridge[n] = row
        state.refresh(n)
    return None


# ---------------------------------------------------------------------- the moves


def move_relocate(state: GreedyState, scorer: Scorer, rng: np.random.Generator,
                  movable: IntArray) -> Move | None:
    """Re-insert a random placed job at its best estimated place (not its current one)."""
    placed = movable[state.opt[movable] >= 0]
    if placed.size == 0:
        return None
    j = int(placed[rng.integers(placed.size)])
    n, s, o = int(state.node[j]), int(state.start[j]), int(state.opt[j])
    state.unplace(j)
    best = scorer.best_insertion(j, exclude=(n, s))
    state.place(j, o, s)
    if best is None:
        return None
    return Move(jobs=[(j, best.option, best.start)])


def move_hop(state: GreedyState, scorer: Scorer, rng: np.random.Generator,
             movable: IntArray) -> Move | None:
    """Move a job to a random other eligible node, at its best start there."""
    placed = movable[state.opt[movable] >= 0]
    if placed.size == 0:
        return None
    j = int(placed[rng.integers(placed.size)])
    opts = state.index.options_of(j)
    opts = opts[opts != state.opt[j]]
    if opts.size == 0:
        return None
    o2 = int(opts[rng.integers(opts.size)])
    s, o = int(state.start[j]), int(state.opt[j])
    state.unplace(j)
    best = scorer.scan(j, np.array([o2]))
    state.place(j, o, s)
    return None if best is None else Move(jobs=[(j, best.option, best.start)])


def move_shift(state: GreedyState, scorer: Scorer, rng: np.random.Generator,
               movable: IntArray) -> Move | None:
    """Shift a random placed job by 1-4 slots earlier or later on its node."""
    placed = movable[state.opt[movable] >= 0]
    if placed.size == 0:
        return None
    j = int(placed[rng.integers(placed.size)])
    o, s = int(state.opt[j]), int(state.start[j])
    step = int(rng.integers(1, 5)) * (1 if rng.random() < 0.5 else -1)
    s2 = s + step
    if not state.index.start_ok(o, s2):
        return None
    state.unplace(j)
    ok = scorer.fits(j, o, s2)
    state.place(j, o, s)
    return Move(jobs=[(j, o, s2)]) if ok else None


def move_swap(state: GreedyState, scorer: Scorer, rng: np.random.Generator,
              movable: IntArray) -> Move | None:
    """Swap two placed jobs on different nodes, each taking the other's start."""
    placed = movable[state.opt[movable] >= 0]
    if placed.size < 2:
        return None
    a, b = (int(x) for x in rng.choice(placed, size=2, replace=False))
    na, nb = int(state.node[a]), int(state.node[b])
    if na == nb:
        return None
    ix = state.index
    oa, ob = ix.find_option(a, nb), ix.find_option(b, na)
    if oa < 0 or ob < 0:
        return None
    sa, sb = int(state.start[b]), int(state.start[a])
    if not (ix.start_ok(oa, sa) and ix.start_ok(ob, sb)):
        return None
    old = [(a, int(state.opt[a]), int(state.start[a])),
           (b, int(state.opt[b]), int(state.start[b]))]
    state.unplace(a)
    state.unplace(b)
    ok = scorer.fits(a, oa, sa)
    if ok:
        state.place(a, oa, sa)
        ok = scorer.fits(b, ob, sb)
        state.unplace(a)
    for j, o, s in old:
        state.place(j, o, s)
    return Move(jobs=[(a, oa, sa), (b, ob, sb)]) if ok else None


def move_insert(state: GreedyState, scorer: Scorer, rng: np.random.Generator,
                movable: IntArray) -> Move | None:
    """Insert a random dropped job at its best estimated place."""
    dropped = movable[state.opt[movable] < 0]
    if dropped.size == 0:
        return None
    j = int(dropped[rng.integers(dropped.size)])
    best = scorer.best_insertion(j)
    return None if best is None else Move(jobs=[(j, best.option, best.start)])


def move_drop(state: GreedyState, scorer: Scorer, rng: np.random.Generator,
              movable: IntArray) -> Move | None:
    """Drop a random placed job that need not run."""
    ix = state.index
    cand = movable[(state.opt[movable] >= 0) & ~ix.must_run[movable]]
    if cand.size == 0:
        return None
    j = int(cand[rng.integers(cand.size)])
    return Move(jobs=[(j, -1, 0)])


def move_bridge(state: GreedyState, scorer: Scorer, rng: np.random.Generator,
                movable: IntArray) -> Move | None:
    """Keep a sleeping node on across an off gap, or undo a bridge.

    Gaps: off runs between two on runs (saves a shut-down and a start-up), the
    off head when the node is initially on (same) and the off tail when it need
    not be off at the end (saves a shut-down).
    """
    ix = state.index
    sleepers = np.nonzero(ix.can_sleep)[0]
    if sleepers.size == 0:
        return None
    n = int(sleepers[rng.integers(sleepers.size)])
    if state.bridge[n].any() and rng.random() < 0.3:
        return Move(bridges=[(n, np.zeros(state.T, dtype=bool))])
    on = state.on[n]
    gaps = off_gaps(on, ix.available[n], bool(ix.initially_on[n]), not bool(ix.end_off[n]))
    if not gaps:
        return None
    a, b = gaps[int(rng.integers(len(gaps)))]
    idle_cost = ix.idle_kw[n] * ix.dt * float(ix.import_cost[n, a:b].clip(0).sum())
    if idle_cost >= ix.startup_cost[n] + ix.shutdown_cost[n] + 1e-12:
        return None
    row = state.bridge[n].copy()
    row[a:b] = True
    return Move(bridges=[(n, row)])


def move_empty(state: GreedyState, scorer: Scorer, rng: np.random.Generator,
               movable: IntArray) -> Move | None:
    """Move every job off a lightly used sleeping node so it can stay off."""
    ix = state.index
    used = np.nonzero(ix.can_sleep & (state.busy.sum(axis=1) > 0))[0]
    if used.size == 0:
        return None
    n = int(used[rng.integers(used.size)])
    jobs = [int(j) for j in np.nonzero(state.node == n)[0]]
    if any(ix.pinned[j] for j in jobs) or len(jobs) > 8:
        return None
    old = [(j, int(state.opt[j]), int(state.start[j])) for j in jobs]
    for j in jobs:
        state.unplace(j)
    saved_bridge = state.bridge[n].copy()
    state.bridge[n] = False
    state.refresh(n)
    blocked = state.base_on[n].any()
    new: list[tuple[int, int, int]] = []
    for j in jobs:
        opts = ix.options_of(j)
        opts = opts[ix.opt_node[opts] != n]
        best = scorer.scan(j, opts) if not blocked else None
        if best is None:
            break
        state.place(j, best.option, best.start)
        new.append((j, best.option, best.start))
    for j, _, _ in new:
        state.unplace(j)
    state.bridge[n] = saved_bridge
    state.refresh(n)
    for j, o, s in old:
        state.place(j, o, s)
    if len(new) < len(jobs):
        return None
    return Move(jobs=new, bridges=[(n, np.zeros(state.T, dtype=bool))])


MOVES: dict[str, MoveFunction] = {
    "relocate": move_relocate,
    "hop": move_hop,
    "shift": move_shift,
    "swap": move_swap,
    "insert": move_insert,
    "drop": move_drop,
    "bridge": move_bridge,
    "empty": move_empty,
}
"""The moves by name, in the order the search draws them from (the order fixes the plans)."""


def off_gaps(on: BoolArray, avail: BoolArray, head: bool = False,
             tail: bool = False) -> list[tuple[int, int]]:
    """Maximal off runs ``[a, b)`` strictly between two on slots, all available.

    With ``head`` also the off run before the first on slot, with ``tail`` the one
    after the last on slot (when available throughout).
    """
    idx = np.nonzero(on)[0]
    T = on.size
    if idx.size == 0:
        return []
    out = []
    if head and idx[0] > 0 and avail[: idx[0]].all():
        out.append((0, int(idx[0])))
    for k in range(idx.size - 1):
        a, b = int(idx[k]) + 1, int(idx[k + 1])
        if b > a and avail[a:b].all():
            out.append((a, b))
    if tail and idx[-1] < T - 1 and avail[idx[-1] + 1:].all():
        out.append((int(idx[-1]) + 1, T))
    return out
