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

__all__ = ["load_npz", "read_value", "save_npz", "write_value"]


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


def write_value(path: str | os.PathLike[str], value: float) -> None:
    """Write one number (``repr`` of a float) atomically."""
    write_file_atomically(path, repr(float(value)))


def read_value(path: str | os.PathLike[str]) -> float:
    """The number written by :func:`write_value`; NaN when there is none (yet)."""
    try:
        return float(Path(path).read_text())
    except (OSError, ValueError):
        return math.nan
