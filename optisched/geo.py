"""Distances on the Earth's surface (the one place they are computed)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from optisched.arrays import FloatArray

__all__ = ["EARTH_RADIUS_KM", "great_circle_km"]

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius [km] (IUGG mean radius R1; Moritz, 2000, doi:10.1007/s001900050278)."""


def great_circle_km(lat1: npt.ArrayLike, lon1: npt.ArrayLike, lat2: npt.ArrayLike,
                    lon2: npt.ArrayLike) -> FloatArray:
    """Great-circle distance by the haversine formula [km].

    Parameters
    ----------
    lat1, lon1, lat2, lon2 : array_like
        Coordinates [deg]; broadcast against each other.

    Returns
    -------
    numpy.ndarray
        Distance [km] on a sphere of radius :data:`EARTH_RADIUS_KM`.

    Examples
    --------
    One degree of latitude is about 111.2 km:

    >>> round(float(great_circle_km(0.0, 0.0, 1.0, 0.0)), 1)
    111.2
    """
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))
