"""The numpy array type aliases every module of optisched uses (the one place they are defined)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["BoolArray", "FloatArray", "IntArray"]

FloatArray = npt.NDArray[np.float64]
"""An array of float64 values (powers [kW], energies [kWh], money, …)."""
IntArray = npt.NDArray[np.int64]
"""An array of int64 values (positions, slots, counts)."""
BoolArray = npt.NDArray[np.bool_]
"""An array of booleans (masks)."""
