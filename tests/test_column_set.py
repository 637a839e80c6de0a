"""The set of (option, start) pairs a column-generation master holds
(``optisched.bounds.column_set.ColumnSet``), on hand-written batches."""

from __future__ import annotations

import numpy as np
import pytest

from optisched.bounds.column_set import ColumnSet


def _ints(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


def test_batches_keep_first_occurrences_in_order_and_skip_held_pairs() -> None:
    cs = ColumnSet()
    # (2, 5) twice and (0, 1) twice within the batch: their first positions, in order
    new = cs.add_new(_ints(2, 0, 2, 7, 0), _ints(5, 1, 5, 0, 1))
    assert new.tolist() == [0, 1, 3] and new.dtype == np.int64
    assert len(cs) == 3
    # against the first batch: (0, 1) and (7, 0) held; (2, 6) and (7, 5) new, (2, 6) twice
    new = cs.add_new(_ints(0, 2, 7, 7, 2), _ints(1, 6, 0, 5, 6))
    assert new.tolist() == [1, 3]
    assert len(cs) == 5
    # the same option and start in swapped roles are different pairs
    assert cs.add_new(_ints(5, 1), _ints(2, 0)).tolist() == [0, 1]
    # everything held: nothing new, nothing recorded
    assert cs.add_new(_ints(2, 7, 5), _ints(5, 5, 2)).size == 0
    assert len(cs) == 7


def test_empty_batches_and_negative_starts() -> None:
    cs = ColumnSet()
    new = cs.add_new(_ints(), _ints())
    assert new.size == 0 and new.dtype == np.int64 and len(cs) == 0
    # a pinned start before the horizon: (3, -2) is not (2, T-2) nor (3, 2)
    assert cs.add_new(_ints(3, 2, 3), _ints(-2, 22, 2)).tolist() == [0, 1, 2]
    assert cs.add_new(_ints(3, 3), _ints(-2, -1)).tolist() == [1]
    assert cs.add_new(_ints(), _ints()).size == 0 and len(cs) == 4


def test_matches_a_python_set_on_random_batches() -> None:
    rng = np.random.default_rng(7)
    cs, seen = ColumnSet(), set()
    for _ in range(20):
        o = rng.integers(0, 30, size=rng.integers(0, 40))
        s = rng.integers(-3, 10, size=o.size)
        want = []
        for k, key in enumerate(zip(o.tolist(), s.tolist(), strict=True)):
            if key not in seen:
                seen.add(key)
                want.append(k)
        assert cs.add_new(o, s).tolist() == want
    assert len(cs) == len(seen)


def test_bad_batches_are_located() -> None:
    cs = ColumnSet()
    with pytest.raises(ValueError, match="2 options but 3 starts"):
        cs.add_new(_ints(0, 1), _ints(0, 1, 2))
    with pytest.raises(ValueError, match="option -1 at position 1"):
        cs.add_new(_ints(0, -1), _ints(0, 1))
    with pytest.raises(ValueError, match="start 2147483648 at position 0"):
        cs.add_new(_ints(0), _ints(1 << 31))
    assert len(cs) == 0
