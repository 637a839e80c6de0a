"""The start columns a column-generation master already holds, as one sorted key array.

Both masters that grow by start columns, the job LP of
:func:`optisched.bounds.lagrangian.capacity_bound` and the class-aggregated LP of
:func:`optisched.bounds.aggregate.aggregate_bound`, must add each (option, start) pair at
most once: a pricing round proposes pairs that may already be in the master, or twice in
one batch. :class:`ColumnSet` filters a batch against the pairs held (vectorized: a
binary search in the sorted keys instead of a Python set of tuples) and records the
new ones.
"""

from __future__ import annotations

import numpy as np

from optisched.arrays import IntArray

__all__ = ["ColumnSet"]

_SHIFT = 1 << 32
"""Key of a pair: ``option · 2³² + (start + 2³¹)``, so any start in ``[−2³¹, 2³¹)`` (a
pinned start may lie before the horizon) keeps the keys distinct and ordered by option,
then start."""
_HALF = 1 << 31


class ColumnSet:
    """The (option, start) pairs of a master, kept as sorted int64 keys.

    Options are indices ``0 ≤ option < 2³¹`` (into whatever option arrays the caller
    prices), starts slot numbers [slots] in ``[−2³¹, 2³¹)``.
    """

    def __init__(self) -> None:
        self._keys: IntArray = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._keys.size)

    @staticmethod
    def _key(options: IntArray, starts: IntArray) -> IntArray:
        o = np.asarray(options, dtype=np.int64).reshape(-1)
        s = np.asarray(starts, dtype=np.int64).reshape(-1)
        if o.size != s.size:
            raise ValueError(f"ColumnSet: {o.size} options but {s.size} starts")
        if o.size and (o.min() < 0 or o.max() >= _HALF):
            bad = int(np.nonzero((o < 0) | (o >= _HALF))[0][0])
            raise ValueError(f"ColumnSet: option {int(o[bad])} at position {bad} is not in "
                             f"[0, 2**31)")
        if s.size and (s.min() < -_HALF or s.max() >= _HALF):
            bad = int(np.nonzero((s < -_HALF) | (s >= _HALF))[0][0])
            raise ValueError(f"ColumnSet: start {int(s[bad])} at position {bad} is not in "
                             f"[-2**31, 2**31)")
        return np.asarray(o * _SHIFT + (s + _HALF), dtype=np.int64)

    def add_new(self, options: IntArray, starts: IntArray) -> IntArray:
        """Record the pairs ``(options[k], starts[k])`` not held yet.

        Parameters
        ----------
        options : (K,) int
            Option of every proposed column [index].
        starts : (K,) int
            Start slot of every proposed column [slot].

        Returns
        -------
        (M,) int64
            The positions ``k`` in the batch of the pairs that were not held, the first
            occurrence of each pair repeated within the batch, in batch order; those pairs
            are held from now on.
        """
        key = self._key(options, starts)
        if not key.size:
            return np.zeros(0, dtype=np.int64)
        first = np.sort(np.unique(key, return_index=True)[1])  # first occurrences, in order
        cand = key[first]
        at = np.searchsorted(self._keys, cand)
        held = np.zeros(cand.size, dtype=bool)
        inside = at < self._keys.size
        held[inside] = self._keys[at[inside]] == cand[inside]
        new = np.asarray(first[~held], dtype=np.int64)
        add = np.sort(key[new])
        self._keys = np.insert(self._keys, np.searchsorted(self._keys, add), add)
        return new
