"""The inputs of one re-planner update, normalized and checked: :func:`prepare_change`.

Every argument of :meth:`~optisched.replan.Replanner.update` is checked here
(``now`` on the current horizon, known ids, finite states of charge, series
values) and the new data is written into a *copy* of the re-planner's
:class:`~optisched.rolling.store.SeriesStore`, so that an update that fails
leaves the re-planner as it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from optisched.arrays import FloatArray, IntArray
from optisched.domain import Job, Problem
from optisched.replan.step import Change
from optisched.rolling.inputs import SeriesInput, aware, parse_series
from optisched.rolling.store import SERIES_KINDS, SERIES_OWNER, TARIFF_KINDS, SeriesStore

__all__ = ["UPDATE_ARGS", "prepare_change"]

_ON_GRID = 1e-6
"""Tolerance of "``now`` is on the slot grid" [slots]."""
_DEFAULTS = {"pv": 0.0, "available": 1.0}
"""Value of a node series before it was first given (headroom: the node's ``grid_kw``)."""
UPDATE_ARGS = {"pv": "pv", "headroom": "headroom", "available": "available",
               "price": "prices", "export_price": "export_prices", "carbon": "carbon",
               "feeder_headroom": "feeder_headroom"}
"""Series kind -> :meth:`~optisched.replan.Replanner.update` argument."""

_Data = dict[str, dict[str, tuple[IntArray, FloatArray]]]
"""New series values: kind -> id -> (absolute slots, values)."""


def prepare_change(store: SeriesStore, problem: Problem, offset: int, now: Any, *,
                   new_jobs: Iterable[Job], cancelled: Iterable[str], finished: Iterable[str],
                   soc: Mapping[str, float] | None, series: Mapping[str, SeriesInput | None],
                   outages: Mapping[str, datetime | None] | Iterable[str],
                   returns: Iterable[str], window_slots: int | None,
                   fill: Mapping[str, str]) -> tuple[Change, SeriesStore]:
    """Check an update's arguments and write its new data into a copy of ``store``.

    Parameters
    ----------
    store : SeriesStore
        The re-planner's data (not changed).
    problem : Problem
        The current problem; it starts at absolute slot ``offset``.
    offset : int
        Absolute slot of the current horizon's start.
    now, new_jobs, cancelled, finished, soc, outages, returns
        As :meth:`~optisched.replan.Replanner.update`.
    series : mapping kind -> series input or None
        The update's series by kind (:data:`~optisched.rolling.store.SERIES_KINDS`).
    window_slots : int or None
        The rolling window (None: the horizon ends where the data ends).
    fill : mapping kind -> policy
        Fill policies (:func:`~optisched.replan.settings.fill_policy`).

    Returns
    -------
    (Change, SeriesStore)
        The normalized change and the store with its data (``store`` itself is
        untouched until the update succeeds).

    Raises
    ------
    ValueError
        As :meth:`~optisched.replan.Replanner.update`.
    """
    now = aware(now, "now")
    st = store.copy()
    pos = st.position(now)
    on_grid = abs(pos - round(pos)) <= _ON_GRID
    a_now = round(pos) if on_grid else math.floor(pos)
    a1 = offset + problem.horizon.slots
    _check_now(problem, now, a_now, offset, a1)
    outs = (dict(outages) if isinstance(outages, Mapping) else dict.fromkeys(outages, None))
    rets = set(returns)
    soc_d = {str(k): float(v) for k, v in (soc or {}).items()}
    cset, fset = _check_ids(problem, soc_d, outs, rets, cancelled, finished)
    data = _parsed(problem, st, series, a_now, a1)
    if window_slots is not None:
        end = a_now + window_slots
    else:
        ends = [int(s.max()) + 1 for per in data.values() for s, _ in per.values() if s.size]
        end = max([a1, *ends])
    if a_now >= end:
        raise ValueError(f"now={now.isoformat()} lies at the horizon end "
                         f"{problem.horizon.end.isoformat()}: pass data reaching past it (the "
                         "horizon extends) or use Replanner(window_slots=...)")
    _write(problem, st, data, a1)
    st.ensure(end)
    if fill:
        st.fill(a_now, end, fill)
    _require_data(st, a_now, end, problem.horizon.slot_minutes)
    _apply_outages(st, outs, rets, a_now)
    arrivals = [nj if nj.release is not None else nj.model_copy(update={"release": now})
                for nj in new_jobs]
    change = Change(now=now, a_now=a_now, on_grid=on_grid, end=end, new_jobs=arrivals,
                    cancelled=cset, finished=fset, soc=soc_d, data=data, outages=outs,
                    returns=rets)
    return change, st


def _check_now(problem: Problem, now: datetime, a_now: int, a0: int, a1: int) -> None:
    """``now`` (absolute slot ``a_now``) must lie in the current horizon ``[a0, a1]``."""
    if a_now < a0:
        raise ValueError(f"now={now.isoformat()} lies before the current horizon start "
                         f"{problem.horizon.start.isoformat()}: the past cannot be re-planned")
    if a_now > a1:
        raise ValueError(f"now={now.isoformat()} lies past the horizon end "
                         f"{problem.horizon.end.isoformat()}: no plan covers the slots between "
                         "(update at least once before the horizon ends)")


def _check_ids(problem: Problem, soc: dict[str, float], outs: Mapping[str, Any],
               rets: set[str], cancelled: Iterable[str], finished: Iterable[str]
               ) -> tuple[set[str], set[str]]:
    """Every node and job id named is in ``problem``; every state of charge finite, >= 0.

    Returns
    -------
    (set of str, set of str)
        The cancelled and the finished job ids.
    """
    nset = {n.node_id for n in problem.nodes}
    for nid in [*soc, *outs, *rets]:
        if nid not in nset:
            raise ValueError(f"unknown node_id {nid!r}")
    job_ids = {j.job_id for j in problem.jobs}
    cset, fset = set(cancelled), set(finished)
    for jid in cset | fset:
        if jid not in job_ids:
            raise ValueError(f"unknown job_id {jid!r}")
    for nid, v in soc.items():
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"soc for {nid!r}: {v!r} must be a finite number >= 0 [kWh]")
    return cset, fset


def _parsed(problem: Problem, st: SeriesStore, series: Mapping[str, SeriesInput | None],
            a_now: int, a1: int) -> _Data:
    """The update's series, each kind read by :func:`~optisched.rolling.inputs.parse_series`."""
    nset = {n.node_id for n in problem.nodes}
    known = {"pv": nset, "headroom": nset, "available": nset,
             "price": set(problem.tariffs), "export_price": set(problem.tariffs),
             "carbon": set(problem.tariffs), "feeder_headroom": set(problem.feeders)}
    data: _Data = {}
    for kind in SERIES_KINDS:
        if kind in TARIFF_KINDS and series.get(kind) is not None and not problem.tariffs:
            raise ValueError(f"{UPDATE_ARGS[kind]}: the problem has no tariffs")
        parsed = parse_series(kind, series.get(kind), known[kind], st, a_now, a1)
        if parsed:
            data[kind] = parsed
    return data


def _write(problem: Problem, st: SeriesStore, data: _Data, a1: int) -> None:
    """Write ``data`` into ``st``; a node series given for the first time starts from its
    default over the current horizon (``a1`` slots)."""
    grid = {n.node_id: n.grid_kw for n in problem.nodes}
    for kind, per in data.items():
        for key, (slots, vals) in per.items():
            if (kind, key) not in st.data:
                default = grid[key] if kind == "headroom" else _DEFAULTS[kind]
                st.start_series(kind, key, default, a1)
            st.write(kind, key, slots, vals)


def _require_data(st: SeriesStore, a_now: int, end: int, slot_minutes: int) -> None:
    """Every series has data in every slot of the new horizon ``[a_now, end)``.

    Raises
    ------
    ValueError
        Naming the first twelve series without data, where their gap starts, and
        the update arguments and fill policies that would give it.
    """
    missing = st.missing(a_now, end)
    if not missing:
        return
    lines = [f"{kind} of {SERIES_OWNER.get(kind, 'node')} {key!r} from "
             f"{st.time_of(a).isoformat()} (slot {a - a_now} of the new "
             f"horizon, {n} slot{'s' if n != 1 else ''} without data)"
             for kind, key, a, n in missing[:12]]
    more = f"; ... and {len(missing) - 12} more" if len(missing) > 12 else ""
    raise ValueError(
        f"no data for the new horizon [{st.time_of(a_now).isoformat()}, "
        f"{st.time_of(end).isoformat()}) ({slot_minutes}-minute slots): " + "; ".join(lines)
        + more + ". Pass it to update(" + ", ".join(sorted({UPDATE_ARGS[m[0]] + "=..."
                                                           for m in missing}))
        + ") or choose Replanner(fill='repeat_day' or 'last')")


def _apply_outages(st: SeriesStore, outs: Mapping[str, Any], rets: set[str], a_now: int
                   ) -> None:
    """Outages from ``a_now`` (until a time, or until the node returns) and returns."""
    for nid, until in outs.items():
        b = None
        if until is not None:
            u = aware(until, f"outage of {nid!r}: until")
            b = math.ceil(st.position(u) - 1e-9)
            if b <= a_now:
                continue
        st.set_outage(nid, a_now, b)
    for nid in rets:
        st.clear_outage(nid, a_now)
