"""The files a bound child process and its caller exchange, each written atomically.

A reader never sees half a file (:func:`optisched.atomic.write_file_atomically`), so
the caller may read while the child writes; a missing or unreadable file reads as
"nothing yet".
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from optisched.atomic import write_file_atomically

__all__ = ["load_npz", "read_bound", "read_value", "save_npz", "write_value"]


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """``numpy.savez`` of ``arrays`` written atomically to ``path``."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    write_file_atomically(path, buf.getvalue())


def load_npz(path: str | os.PathLike[str], keys: tuple[str, ...]
             ) -> tuple[np.ndarray, ...] | None:
    """The arrays ``keys`` of the npz file ``path``; None when it is absent or unreadable."""
    try:
        with np.load(path) as z:
            return tuple(np.asarray(z[k]) for k in keys)
    except (OSError, ValueError, KeyError):
        return None


def write_value(path: str | os.PathLike[str], value: float, source: str | None = None) -> None:
    """Write one number (``repr`` of a float) atomically, followed by ``source`` (one word:
    the method that computed it) when given, so a reader never pairs a value with another
    value's method."""
    text = repr(float(value)) if source is None else f"{float(value)!r} {source.split()[0]}"
    write_file_atomically(path, text)


def read_bound(path: str | os.PathLike[str]) -> tuple[float, str | None]:
    """The number written by :func:`write_value` and its source (None when written without
    one); ``(nan, None)`` when there is none (yet)."""
    try:
        parts = Path(path).read_text().split()
        return float(parts[0]), (parts[1] if len(parts) > 1 else None)
    except (OSError, ValueError, IndexError):
        return math.nan, None


def read_value(path: str | os.PathLike[str]) -> float:
    """The number written by :func:`write_value`; NaN when there is none (yet)."""
    return read_bound(path)[0]
