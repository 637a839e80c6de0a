"""How a :class:`~optisched.replan.Replanner` re-plans: its settings, checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from optisched.rolling.store import FILL_POLICIES, SERIES_KINDS

__all__ = ["REDISPATCH", "ReplanSettings", "fill_policy"]

REDISPATCH = ("changed", "all")
"""Dispatch after a roll: only nodes whose data, load or state changed, or every node."""


@dataclass(frozen=True)
class ReplanSettings:
    """The arguments of :class:`~optisched.replan.Replanner` beyond the problem and plan.

    Attributes
    ----------
    solver : str
        Registered solver (``greedy`` warm-starts).
    seed : int
        Random seed of the local search.
    time_limit : float
        Local-search budget of each update [s].
    iterations : int or None
        Cap on local-search moves per update.
    window_slots : int or None
        Rolling window [slots] (None: the horizon ends where the data ends).
    fill : dict kind -> policy
        Fill policy per series kind (:func:`fill_policy`).
    redispatch : str
        One of :data:`REDISPATCH`.
    refresh : int
        Carried nodes dispatched exactly again at each roll (>= 0).
    verify : bool
        Check every new plan with the evaluator.
    """

    solver: str
    seed: int
    time_limit: float
    iterations: int | None
    window_slots: int | None
    fill: dict[str, str]
    redispatch: str
    refresh: int
    verify: bool

    @classmethod
    def of(cls, *, solver: str, seed: int, time_limit: float, iterations: int | None,
           window_slots: int | None, fill: str | Mapping[str, str] | None, redispatch: str,
           refresh: int, verify: bool) -> ReplanSettings:
        """The settings from the constructor's arguments, checked and normalized.

        Raises
        ------
        ValueError
            ``window_slots`` not a positive whole number, an unknown ``redispatch``,
            or an unknown fill policy or kind.
        """
        if window_slots is not None and (int(window_slots) != window_slots or window_slots < 1):
            raise ValueError(f"window_slots must be a positive whole number, got {window_slots!r}")
        if redispatch not in REDISPATCH:
            raise ValueError(f"redispatch must be one of {', '.join(REDISPATCH)}, "
                             f"got {redispatch!r}")
        return cls(solver=solver, seed=seed, time_limit=time_limit, iterations=iterations,
                   window_slots=None if window_slots is None else int(window_slots),
                   fill=fill_policy(fill), redispatch=redispatch, refresh=max(0, int(refresh)),
                   verify=verify)


def fill_policy(fill: str | Mapping[str, str] | None) -> dict[str, str]:
    """``fill`` as kind -> policy (every kind for a plain policy name).

    Raises
    ------
    ValueError
        An unknown policy or kind.
    """
    if fill is None:
        return {}
    if isinstance(fill, str):
        fill = dict.fromkeys(SERIES_KINDS, fill)
    out = {}
    for kind, pol in fill.items():
        if kind not in SERIES_KINDS:
            raise ValueError(f"fill: unknown series kind {kind!r}; known: "
                             + ", ".join(SERIES_KINDS))
        if pol not in FILL_POLICIES:
            raise ValueError(f"fill policy must be one of {', '.join(FILL_POLICIES)}, "
                             f"got {pol!r}")
        out[kind] = pol
    return out
