"""The greedy's local search, and :class:`GreedySearch`: a state, its scorer and both phases.

:func:`improve` draws one of the eight moves of :mod:`optisched.solvers.greedy.moves`
or the four of :mod:`optisched.solvers.greedy.ruin` at random, lets it propose a
change and keeps the change only when the exact objective falls
(:func:`~optisched.solvers.greedy.moves.try_move`), until the deadline, the move
cap, or ``max(200, 4 · movable jobs)`` moves in a row without improvement.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from optisched.arrays import IntArray
from optisched.domain import Problem
from optisched.index import Index
from optisched.solvers.greedy.construct import construct
from optisched.solvers.greedy.moves import MOVES, MoveFunction, try_move
from optisched.solvers.greedy.ruin import RUIN_MOVES
from optisched.solvers.greedy.scan import DEFAULT_CANDIDATES, Scorer
from optisched.solvers.greedy.state import GreedyState

__all__ = ["SEARCH_MOVES", "GreedySearch", "improve"]

SEARCH_MOVES: dict[str, MoveFunction] = {**MOVES, **RUIN_MOVES}
"""The moves the search draws from: the eight single-job and node moves, then the
ruin-and-recreate moves (:mod:`optisched.solvers.greedy.ruin`)."""

Report = Callable[[float, str], None]
"""``report(objective, move kind)``, called after each kept move."""


def improve(state: GreedyState, scorer: Scorer, rng: np.random.Generator, deadline: float,
            max_iters: int | None, report: Report | None = None,
            moves: dict[str, MoveFunction] | None = None) -> int:
    """Local search until ``deadline`` (perf_counter), ``max_iters`` or no improving move.

    Parameters
    ----------
    state : GreedyState
        A complete, evaluated plan (:meth:`GreedyState.evaluate_all`); it stays one.
    scorer : Scorer
        Scores insertions into ``state``.
    rng : numpy.random.Generator
        Draws the moves (the plan is reproducible for a seed when the search ends by
        ``max_iters`` or by running out of improving moves).
    deadline : float
        ``time.perf_counter()`` value at which to stop [s].
    max_iters : int or None
        Cap on moves tried.
    report : callable, optional
        Called with the new objective and the move's kind after each kept move.
    moves : dict, optional
        The moves to draw from, by name; default :data:`SEARCH_MOVES`.

    Returns
    -------
    int
        Moves tried.
    """
    ix = state.index
    movable = np.nonzero(~ix.pinned & (np.diff(ix.opt_job_ptr) > 0))[0]
    if movable.size == 0:
        return 0
    table = SEARCH_MOVES if moves is None else moves
    kinds = tuple(table)
    tried = 0
    stale = 0  # consecutive moves without improvement
    limit = max(200, 4 * movable.size)
    while time.perf_counter() < deadline:
        if max_iters is not None and tried >= max_iters:
            break
        if stale >= limit:
            break
        kind = kinds[int(rng.integers(len(kinds)))]
        move = table[kind](state, scorer, rng, movable)
        tried += 1
        if move is None:
            stale += 1
            continue
        delta = try_move(state, move)
        if delta is None:
            stale += 1
        else:
            stale = 0
            if report is not None:
                report(state.objective, kind)
    return tried


class GreedySearch:
    """One greedy run: a placement state, the scorer of insertions into it, both phases.

    Parameters
    ----------
    problem : Problem
        The problem.
    index : Index
        Its compiled index.
    candidates : int
        Most eligible nodes scored per job before falling back to all.

    Attributes
    ----------
    state : GreedyState
        The placement and its exact objective.
    scorer : Scorer
        Scores insertions into :attr:`state`.
    """

    def __init__(self, problem: Problem, index: Index,
                 candidates: int = DEFAULT_CANDIDATES) -> None:
        self.state = GreedyState(problem, index)
        self.scorer = Scorer(self.state, candidates)

    @property
    def objective(self) -> float:
        """Exact objective of the current plan (after evaluation) [money]."""
        return self.state.objective

    def construct(self, order: IntArray, hint: dict[int, tuple[int, int]] | None = None,
                  trusted: bool = False, failed: list[int] | None = None,
                  checked: dict[int, tuple[int, int]] | None = None) -> str | None:
        """:func:`~optisched.solvers.greedy.construct.construct` into :attr:`state`."""
        return construct(self.state, self.scorer, order, hint, trusted, failed, checked)

    def improve(self, rng: np.random.Generator, deadline: float, max_iters: int | None,
                report: Report | None = None) -> int:
        """:func:`improve` on :attr:`state`; returns the moves tried."""
        return improve(self.state, self.scorer, rng, deadline, max_iters, report)
