"""Difficulty orders of the jobs, for restarts of the construction and the repair queue.

A job is hard to place when it covers much of a node for long (resource-time area),
when its start window leaves little choice (slack) and when few nodes can take it.
Each order puts pinned jobs first and must-run jobs before droppable ones, as the
greedy's own order (:func:`~optisched.solvers.greedy.construct.job_order`) does; within
them it sorts by one difficulty measure, hardest first, optionally perturbed by
multiplicative noise and with some jobs (those that failed last time: the "squeaky
wheel") moved to the front.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from optisched.arrays import FloatArray, IntArray
from optisched.index import Index

__all__ = ["ORDER_KINDS", "difficulty", "difficulty_order"]

ORDER_KINDS = ("area", "slack", "eligible", "mixed")
"""Difficulty measures of :func:`difficulty`."""


def difficulty(index: Index, kind: str) -> FloatArray:
    """Difficulty of every job by ``kind`` (larger = harder).

    Parameters
    ----------
    index : Index
        The compiled index.
    kind : {"area", "slack", "eligible", "mixed"}
        ``area``: the job's largest share of a node's capacity over its resources
        times its duration [node-slots] (on its eligible node of least area);
        ``slack``: ``1 / (1 + widest start window)`` [1/slots]; ``eligible``:
        ``1 / eligible nodes``; ``mixed``: ``area · (d + 1) / (d + slack + 1) /
        sqrt(eligible nodes)``, the three together.

    Returns
    -------
    (J,) float
        Jobs without options get ``inf`` (they come first and fail at once).
    """
    if kind not in ORDER_KINDS:
        raise ValueError(f"unknown order kind {kind!r}; kinds are {', '.join(ORDER_KINDS)}")
    J = index.J
    out = np.full(J, np.inf)
    counts = np.diff(index.opt_job_ptr)
    has = counts > 0
    if not has.any():
        return out
    o_j = index.opt_job
    share = (index.usage[o_j] / np.maximum(index.capacity[index.opt_node], 1e-12)).max(axis=1)
    area = np.full(J, np.inf)
    np.minimum.at(area, o_j, share * index.opt_dur)
    dur = np.full(J, np.iinfo(np.int64).max)
    np.minimum.at(dur, o_j, index.opt_dur)
    slack = np.zeros(J, dtype=np.int64)
    np.maximum.at(slack, o_j, np.maximum(index.opt_latest - index.opt_earliest, 0))
    if kind == "area":
        out[has] = area[has]
    elif kind == "slack":
        out[has] = 1.0 / (1.0 + slack[has])
    elif kind == "eligible":
        out[has] = 1.0 / counts[has]
    else:
        d = dur[has].astype(float)
        out[has] = area[has] * (d + 1.0) / (d + slack[has] + 1.0) / np.sqrt(counts[has])
    return out


def difficulty_order(index: Index, kind: str, rng: np.random.Generator | None = None,
                     noise: float = 0.0, first: Sequence[int] = ()) -> IntArray:
    """Placement order: pinned, then must-run, then droppable jobs; hardest first within.

    Parameters
    ----------
    index : Index
        The compiled index.
    kind : str
        The measure of :func:`difficulty`.
    rng : numpy.random.Generator, optional
        Draws the noise (needed when ``noise > 0``).
    noise : float
        Each difficulty is multiplied by ``exp(noise · N(0, 1))`` (0: none).
    first : sequence of int
        Jobs placed first among the jobs of their class (must-run or droppable), in
        this order (the jobs that failed last time).

    Returns
    -------
    (J,) int
        Job positions in placement order.
    """
    J = index.J
    diff = difficulty(index, kind)
    if noise > 0:
        if rng is None:
            raise ValueError("noise needs an rng")
        diff = diff * np.exp(noise * rng.standard_normal(J))
    front = np.full(J, len(first), dtype=np.int64)
    for k, j in enumerate(first):
        front[int(j)] = min(int(front[int(j)]), k)
    keys = (np.arange(J), -diff, front, ~index.must_run, ~index.pinned)
    return np.lexsort(keys).astype(np.int64)
