"""Ruin-and-recreate moves of the greedy's local search, and the wake move.

The single-job moves of :mod:`optisched.solvers.greedy.moves` cannot leave a local
optimum in which jobs block each other: a long job with a fixed window sits on an
expensive node (say a data centre that must wake up for it, 48 kW idle) because a
shorter, flexible job took its slot on the cheap node first, and moving either one
alone makes the plan worse or does not fit. A *ruin-and-recreate* move takes a set
of related jobs out at once (placed or dropped) and re-inserts them one by one, each
at its cheapest place by marginal cost given the others already re-inserted
(:func:`recreate`; the order is drawn: least slack first as in
:func:`~optisched.solvers.greedy.construct.job_order`, random, or largest energy
first). The whole change is kept only when the exact objective falls
(:func:`~optisched.solvers.greedy.moves.try_move`).

Three ways to pick the set, each capped at :data:`RUIN_MAX_JOBS` jobs:

``ruin_related``
    A random placed job and the placed jobs nearest to it in start time among those
    that share an eligible node with it and overlap its start window (Shaw-style
    relatedness), plus a few dropped jobs eligible there.
``ruin_window``
    The jobs running in a random window of 2 to ``max(2, T / 4)`` slots, on every
    node, plus dropped jobs whose window meets it.
``ruin_nodes``
    Every movable job of two random used nodes (consolidation: one of them may end
    empty and, when it can sleep, off), plus dropped jobs eligible on them.

and one that wakes a sleeping node up for the jobs it takes (``wake``,
:func:`move_wake`).
"""

from __future__ import annotations

import weakref

import numpy as np

from optisched.arrays import IntArray
from optisched.solvers.greedy.construct import job_order
from optisched.solvers.greedy.moves import Move, MoveFunction, off_gaps
from optisched.solvers.greedy.scan import Scorer
from optisched.solvers.greedy.state import GreedyState

__all__ = ["RUIN_MAX_JOBS", "RUIN_MOVES", "recreate"]

RUIN_MAX_JOBS = 6
"""Most jobs a ruin move takes out [jobs]."""

_DROPPED_SCAN = 64
"""Most dropped jobs looked at by one ruin move (an even sample when more) [jobs]."""

_RANK: weakref.WeakKeyDictionary[GreedyState, IntArray] = weakref.WeakKeyDictionary()
"""Rank of each job in :func:`job_order`, per state (computed once)."""


def _rank(state: GreedyState) -> IntArray:
    """(J,) position of each job in :func:`job_order` of the state's index."""
    got = _RANK.get(state)
    if got is None:
        order = job_order(state.index)
        got = np.empty(state.J, dtype=np.int64)
        got[order] = np.arange(state.J)
        _RANK[state] = got
    return got


def recreate(state: GreedyState, scorer: Scorer, jobs: list[int],
             keep: bool = False, order: IntArray | None = None) -> Move | None:
    """Take ``jobs`` out, re-insert them least slack first, restore the state, return the move.

    Parameters
    ----------
    state : GreedyState
        The current placement (left as it was found).
    scorer : Scorer
        Scores insertions into ``state``.
    jobs : list of int
        Unpinned jobs to move (placed or dropped).
    keep : bool
        Insert droppable jobs wherever they fit even when their penalty is lower than
        the estimated cost (the exact objective of the whole move decides; a job that
        pays for itself only with the others around it gets its chance).
    order : (len(jobs),) int, optional
        Re-insertion order as positions into ``jobs``; default least slack first
        (:func:`~optisched.solvers.greedy.construct.job_order`).

    Returns
    -------
    Move or None
        The new place (or drop, ``option = -1``) of every job in ``jobs``; None when a
        must-run job finds no place or nothing changes.
    """
    ix = state.index
    if not jobs:
        return None
    rank = _rank(state)
    old = [(j, int(state.opt[j]), int(state.start[j])) for j in jobs]
    for j in jobs:
        state.unplace(j)
    new: list[tuple[int, int, int]] = []
    placed: list[int] = []
    ok = True
    seq = (sorted(jobs, key=lambda x: int(rank[x])) if order is None
           else [jobs[int(k)] for k in order])
    for j in seq:
        best = scorer.best_insertion(j)
        must = bool(ix.must_run[j])
        if best is None:
            if must:
                ok = False
                break
            new.append((j, -1, 0))
            continue
        if not must and not keep and float(ix.drop_penalty[j]) < best.cost:
            new.append((j, -1, 0))
            continue
        state.place(j, best.option, best.start)
        placed.append(j)
        new.append((j, best.option, best.start))
    for j in placed:
        state.unplace(j)
    for j, o, s in old:
        if o >= 0:
            state.place(j, o, s)
    if not ok or sorted(new) == sorted(old):
        return None
    return Move(jobs=new)


def _placed_movable(state: GreedyState, movable: IntArray) -> IntArray:
    return movable[state.opt[movable] >= 0]


def _dropped_near(state: GreedyState, movable: IntArray, nodes: IntArray, lo: int,
                  hi: int) -> IntArray:
    """Dropped movable jobs with an option on ``nodes`` whose window meets slots ``[lo, hi)``."""
    ix = state.index
    dropped = movable[state.opt[movable] < 0]
    if dropped.size > _DROPPED_SCAN:
        dropped = dropped[:: -(-dropped.size // _DROPPED_SCAN)]
    if dropped.size == 0:
        return dropped
    hit = np.zeros(dropped.size, dtype=bool)
    for k, j in enumerate(dropped.tolist()):
        opts = ix.options_of(j)
        on = np.isin(ix.opt_node[opts], nodes)
        hit[k] = bool((on & (ix.opt_earliest[opts] < hi)
                       & (ix.opt_latest[opts] + ix.opt_dur[opts] > lo)).any())
    return dropped[hit]


def _recreate_random(state: GreedyState, scorer: Scorer, rng: np.random.Generator,
                     jobs: list[int]) -> Move | None:
    """:func:`recreate` with a random policy: half the time droppable jobs are kept, and
    the order is least slack first (half), or random (a quarter), or largest energy first.
    """
    ix = state.index
    keep = bool(rng.random() < 0.5)
    u = rng.random()
    order: IntArray | None = None
    if u >= 0.75:
        e = np.array([ix.job_power[j] * ix.duration_min[j] for j in jobs])
        order = np.argsort(-e, kind="stable")
    elif u >= 0.5:
        order = rng.permutation(len(jobs))
    return recreate(state, scorer, jobs, keep=keep, order=order)


def _cap(rng: np.random.Generator, jobs: IntArray) -> list[int]:
    """At most :data:`RUIN_MAX_JOBS` of ``jobs``, a random subset when more."""
    if jobs.size > RUIN_MAX_JOBS:
        jobs = rng.choice(jobs, size=RUIN_MAX_JOBS, replace=False)
    return [int(j) for j in jobs]


def move_ruin_related(state: GreedyState, scorer: Scorer, rng: np.random.Generator,
                      movable: IntArray) -> Move | None:
    """A random job and its nearest related jobs (shared node, overlapping window)."""
    ix = state.index
    placed = _placed_movable(state, movable)
    if placed.size < 2:
        return None
    j = int(placed[rng.integers(placed.size)])
    opts = ix.options_of(j)
    lo = int(ix.opt_earliest[opts].min())
    hi = int((ix.opt_latest[opts] + ix.opt_dur[opts]).max())
    others = placed[placed != j]
    o2 = state.opt[others]
    s2 = state.start[others]
    e2 = s2 + ix.opt_dur[o2]
    near = (np.isin(state.node[others], ix.opt_node[opts]) & (s2 < hi) & (e2 > lo))
    cand = others[near]
    dist = np.abs(state.start[cand] - int(state.start[j]))
    extra = _cap(rng, _dropped_near(state, movable, ix.opt_node[opts], lo, hi))
    extra = extra[: RUIN_MAX_JOBS // 3]
    near_n = RUIN_MAX_JOBS - 1 - len(extra)
    pick = [j, *(int(x) for x in cand[np.argsort(dist, kind="stable")[:near_n]]), *extra]
    if len(pick) < 2:
        return None
    return _recreate_random(state, scorer, rng, pick)


def move_ruin_window(state: GreedyState, scorer: Scorer, rng: np.random.Generator,
                     movable: IntArray) -> Move | None:
    """The jobs running in a random window of slots, on every node."""
    ix = state.index
    placed = _placed_movable(state, movable)
    if placed.size < 2 or state.T < 2:
        return None
    w = int(rng.integers(2, max(2, state.T // 4) + 1))
    a = int(rng.integers(0, max(1, state.T - w + 1)))
    s = state.start[placed]
    e = s + ix.opt_dur[state.opt[placed]]
    hit = placed[(s < a + w) & (e > a)]
    extra = _dropped_near(state, movable, np.arange(ix.N), a, a + w)
    if hit.size + extra.size < 2:
        return None
    return _recreate_random(state, scorer, rng, _cap(rng, np.concatenate([hit, extra])))


def move_ruin_nodes(state: GreedyState, scorer: Scorer, rng: np.random.Generator,
                    movable: IntArray) -> Move | None:
    """Every movable job of two random used nodes."""
    placed = _placed_movable(state, movable)
    if placed.size < 2:
        return None
    used = np.unique(state.node[placed])
    if used.size < 2:
        return None
    pair = rng.choice(used, size=2, replace=False)
    hit = placed[np.isin(state.node[placed], pair)]
    extra = _dropped_near(state, movable, pair, 0, state.T)
    return _recreate_random(state, scorer, rng, _cap(rng, np.concatenate([hit, extra])))


def move_wake(state: GreedyState, scorer: Scorer, rng: np.random.Generator,
              movable: IntArray) -> Move | None:
    """Keep a sleeping node on and move related jobs onto it (consolidation onto a woken node).

    One job at a time, a sleeping node never pays for waking up: the first job pays the
    start-up, the shut-down and the idle draw of its slots alone, so the local search
    leaves the node off even where the jobs together would pay for it (its PV covers
    them, or its price is lower). This move keeps node ``n`` on in every available slot,
    re-inserts up to :data:`RUIN_MAX_JOBS` jobs eligible on it (placed elsewhere or
    dropped), then keeps it on only over the span of its jobs and across the gaps,
    head and tail where the idle draw costs less than switching it off and on again.
    """
    ix = state.index
    T = state.T
    asleep = np.nonzero(ix.can_sleep & (ix.available & ~state.on).any(axis=1))[0]
    if asleep.size == 0:
        return None
    n = int(asleep[rng.integers(asleep.size)])
    placed = _placed_movable(state, movable)
    placed = placed[state.node[placed] != n]
    on_n = np.zeros(placed.size, dtype=bool)
    for k, j in enumerate(placed.tolist()):
        on_n[k] = ix.find_option(j, n) >= 0
    cand = np.concatenate([placed[on_n], _dropped_near(state, movable, np.array([n]), 0, T)])
    if cand.size == 0:
        return None
    jobs = _cap(rng, cand)
    saved = state.bridge[n].copy()
    state.set_bridge(n, ix.available[n].copy())
    move = _recreate_random(state, scorer, rng, jobs)
    state.bridge[n] = saved
    state.refresh(n)
    if move is None:
        return None
    busy = state.busy[n] > 0  # n's own jobs stay; the move's jobs come from elsewhere
    for _j, o, st in move.jobs:
        if o >= 0 and int(ix.opt_node[o]) == n:
            busy[max(0, st):st + int(ix.opt_dur[o])] = True
    if not busy.any():
        return None
    row = np.zeros(T, dtype=bool)
    on_cost = ix.idle_kw[n] * ix.dt * ix.import_cost[n].clip(0)
    for a, b in off_gaps(busy, ix.available[n], bool(ix.initially_on[n]),
                         not bool(ix.end_off[n])):
        saves = ix.startup_cost[n] * (b < T) + ix.shutdown_cost[n]  # tail: no start-up
        if float(on_cost[a:b].sum()) < saves:
            row[a:b] = True
    move.bridges.append((n, row))
    return move


RUIN_MOVES: dict[str, MoveFunction] = {
    "ruin_related": move_ruin_related,
    "ruin_window": move_ruin_window,
    "ruin_nodes": move_ruin_nodes,
    "wake": move_wake,
}
"""The ruin-and-recreate and wake moves by name (drawn after
:data:`~optisched.solvers.greedy.moves.MOVES`)."""
