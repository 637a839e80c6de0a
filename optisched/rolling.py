"""The re-planner's rolling data: series by absolute slot, time-keyed inputs, fill policies.

A :class:`~optisched.replan.Replanner` keeps every per-slot series it was given in
a :class:`SeriesStore`, indexed by *absolute slot* ``a`` = slots since the start
of the first problem (the *origin*). The problem of each update is a window
``[a0, a1)`` of the store; new data (lists from ``now``, or values keyed by
time) is written into the store, may reach past the current end (the horizon
then extends) and never changes the past.

This module also holds the two pieces of the roll that work on arrays only:
:func:`carry_flows` (the previous plan's dispatch of a node kept across a roll,
with :func:`top_up` for the terminal state of charge) and the incremental index
updates :func:`append_jobs`, :func:`drop_jobs` and :func:`with_node_rows`, each
equal to :func:`~optisched.index.compile_index` of the new problem (the tests
compare them field by field): eligibility, windows and durations are still
decided only by :mod:`optisched.index`, here applied to the new jobs or nodes
alone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.domain import Feeder, Job, Node, NodeSeries, Problem, Tariff
from optisched.index import Index, compile_index, slots_needed, sparse_max_tables
from optisched.plan import Flows

__all__ = [
    "FILL_POLICIES",
    "NODE_KINDS",
    "SERIES_KINDS",
    "TARIFF_KINDS",
    "SeriesInput",
    "SeriesStore",
    "append_jobs",
    "aware",
    "carry_flows",
    "drop_jobs",
    "parse_series",
    "roll_index",
    "top_up",
    "with_node_rows",
]

NODE_KINDS = ("pv", "headroom", "available")
"""Per-node series: PV forecast [kW], import headroom [kW, inf = unlimited], availability."""
TARIFF_KINDS = ("price", "export_price", "carbon")
"""Per-tariff series: import and export price [money/kWh], carbon intensity [g/kWh]."""
SERIES_KINDS = (*NODE_KINDS, *TARIFF_KINDS, "feeder_headroom")
"""Every series kind the store holds (``feeder_headroom`` per feeder [kW])."""
FILL_POLICIES = ("repeat_day", "last")
"""Opt-in fill policies for slots past the data: the value 24 h earlier, or the last value."""

TimeKeyed: TypeAlias = ("pd.Series[Any] | Mapping[datetime, Any] | Sequence[Any] "
                        "| np.ndarray[Any, Any]")
"""One series: values from ``now`` on (a list), or keyed by time (a Series or a mapping)."""
SeriesInput: TypeAlias = "Mapping[str, TimeKeyed] | pd.DataFrame"
"""Series of several ids: a mapping id -> series, or a DataFrame (columns = ids, index = times)."""

_GRID_TOL = 1e-6
"""Tolerance of "on the slot grid" [slots]."""
_SOC_TOL = 1e-7
"""Tolerance of carried state-of-charge bounds [kWh]."""
_FLOW_TOL = 1e-9


def aware(t: Any, what: str) -> datetime:
    """``t`` as a timezone-aware :class:`datetime` (a datetime, pandas Timestamp or ISO string).

    Raises
    ------
    ValueError
        ``t`` is naive (no UTC offset) or not a time.
    """
    if isinstance(t, str):
        try:
            t = datetime.fromisoformat(t)
        except ValueError:
            raise ValueError(f"{what}={t!r} is not an ISO 8601 time, e.g. "
                             "2026-06-01T08:00:00+00:00") from None
    if isinstance(t, pd.Timestamp):
        t = t.to_pydatetime()
    if not isinstance(t, datetime):
        raise ValueError(f"{what}={t!r} is not a time (give a timezone-aware datetime)")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what}={t.isoformat()} is naive: give a timezone-aware time, e.g. "
                         f"datetime(..., tzinfo=timezone.utc) or "
                         f"{t.replace(microsecond=0).isoformat()}+00:00")
    return t


@dataclass
class SeriesStore:
    """Every per-slot series of the re-planner by absolute slot (``NaN`` = no data yet).

    Parameters
    ----------
    origin : datetime
        Start of absolute slot 0.
    slot_minutes : int
        Slot length [min].

    Attributes
    ----------
    data : dict (kind, id) -> (L,) float
        Series by kind (:data:`SERIES_KINDS`) and node id, tariff or feeder. A node
        without an entry for a node kind takes the default (no PV, headroom
        ``grid_kw``, always available); availability is stored as 1.0 / 0.0.
    out : dict node_id -> (L,) bool
        Slots a node is out (outages), on top of its availability data.
    out_open : dict node_id -> int
        Node out from this absolute slot on, until it returns (an outage without end).
    """

    origin: datetime
    slot_minutes: int
    data: dict[tuple[str, str], FloatArray] = dataclasses.field(default_factory=dict)
    out: dict[str, BoolArray] = dataclasses.field(default_factory=dict)
    out_open: dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_problem(cls, problem: Problem) -> SeriesStore:
        """The store of a problem's series (absolute slot 0 = its start).

        A headroom entry None (the node's ``grid_kw``) is stored as ``grid_kw``.
        """
        hz = problem.horizon
        st = cls(origin=hz.start, slot_minutes=hz.slot_minutes)
        grid = {n.node_id: n.grid_kw for n in problem.nodes}
        for nid, s in problem.node_series.items():
            if s.pv_kw is not None:
                st.data["pv", nid] = np.asarray(s.pv_kw, dtype=float)
            if s.headroom_kw is not None:
                st.data["headroom", nid] = np.array(
                    [grid[nid] if v is None else v for v in s.headroom_kw], dtype=float)
            if s.available is not None:
                st.data["available", nid] = np.asarray(s.available, dtype=float)
        for name, tf in problem.tariffs.items():
            st.data["price", name] = np.asarray(tf.price, dtype=float)
            st.data["export_price", name] = np.asarray(tf.export_price, dtype=float)
            st.data["carbon", name] = np.asarray(tf.carbon_g_per_kwh, dtype=float)
        for name, fd in problem.feeders.items():
            st.data["feeder_headroom", name] = np.asarray(fd.headroom_kw, dtype=float)
        return st

    def copy(self) -> SeriesStore:
        """A copy that shares the arrays until it writes (copy on write).

        An update writes into a copy and keeps it only when it succeeds; arrays it
        does not touch are not copied (the store grows with every day it runs).
        """
        st = SeriesStore(self.origin, self.slot_minutes, dict(self.data), dict(self.out),
                         dict(self.out_open))
        st._owned = set()
        return st

    _owned: set[object] | None = None
    """Keys whose arrays this copy owns (None: all, the store is not a copy)."""

    def _mine(self, key: tuple[str, str]) -> FloatArray:
        """The array of ``key``, copied first when it is still shared."""
        if self._owned is not None and key not in self._owned:
            self.data[key] = self.data[key].copy()
            self._owned.add(key)
        return self.data[key]

    def _mine_out(self, nid: str) -> BoolArray:
        """The outage mask of ``nid``, copied first when it is still shared."""
        if self._owned is not None and ("out", nid) not in self._owned:
            self.out[nid] = self.out[nid].copy()
            self._owned.add(("out", nid))
        return self.out[nid]

    def rebase(self, shift: int) -> None:
        """Move the origin ``shift`` slots earlier (slots before the data: NaN, available)."""
        if shift == 0:
            return
        if shift < 0:
            raise ValueError("the origin can only move back")
        self.origin = self.origin - timedelta(minutes=self.slot_minutes * shift)
        self.data = {k: np.concatenate([np.full(shift, np.nan), v]) for k, v in self.data.items()}
        self.out = {k: np.concatenate([np.zeros(shift, dtype=bool), v])
                    for k, v in self.out.items()}
        self.out_open = {k: v + shift for k, v in self.out_open.items()}
        self._owned = None

    # ------------------------------------------------------------------ time
    def position(self, t: datetime) -> float:
        """Position of ``t`` in slots from the origin (fractional off the grid)."""
        return (t - self.origin).total_seconds() / (60.0 * self.slot_minutes)

    def time_of(self, a: int) -> datetime:
        """Start of absolute slot ``a``."""
        return self.origin + timedelta(minutes=self.slot_minutes * a)

    @property
    def slots_per_day(self) -> int:
        """Slots in 24 h."""
        return 1440 // self.slot_minutes

    # ------------------------------------------------------------------ writing
    def ensure(self, end: int) -> None:
        """Grow every series (and outage mask) to at least ``end`` slots (new slots NaN).

        Arrays grow to at least twice their size, so a store that gains a slot at
        every update copies its arrays only now and then.
        """
        for key, arr in self.data.items():
            if arr.size < end:
                size = max(end, 2 * arr.size)
                self.data[key] = np.concatenate([arr, np.full(size - arr.size, np.nan)])
                if self._owned is not None:
                    self._owned.add(key)
        for nid, m in self.out.items():
            if m.size < end:
                size = max(end, 2 * m.size)
                self.out[nid] = np.concatenate([m, np.zeros(size - m.size, dtype=bool)])
                if self._owned is not None:
                    self._owned.add(("out", nid))

    def write(self, kind: str, key: str, slots: IntArray, values: FloatArray) -> None:
        """Set ``values`` (NaN = keep) at absolute ``slots`` of series ``(kind, key)``.

        A node series that did not exist starts from its default (PV 0, availability
        1; headroom has no default here: the caller passes the node's ``grid_kw``
        through :meth:`start_series`).
        """
        if slots.size == 0:
            return
        end = int(slots.max()) + 1
        if self.data[kind, key].size < end:
            self.ensure(end)
        arr = self._mine((kind, key))
        good = ~np.isnan(values)
        arr[slots[good]] = values[good]

    def start_series(self, kind: str, key: str, default: float, length: int) -> None:
        """Create series ``(kind, key)`` filled with ``default`` over ``length`` slots."""
        if (kind, key) not in self.data:
            size = max([length, *(a.size for a in self.data.values())])
            arr = np.full(size, np.nan)
            arr[:length] = default
            self.data[kind, key] = arr
            if self._owned is not None:
                self._owned.add((kind, key))

    def set_outage(self, nid: str, a: int, b: int | None) -> None:
        """Node ``nid`` out over absolute slots ``[a, b)`` (``b`` None: until it returns)."""
        size = max([b or a, a, *(x.size for x in self.data.values()), *(
            x.size for x in self.out.values())])
        m = self._mine_out(nid) if nid in self.out else None
        if m is None:
            m = np.zeros(size, dtype=bool)
        elif m.size < size:
            m = np.concatenate([m, np.zeros(size - m.size, dtype=bool)])
        if self._owned is not None:
            self._owned.add(("out", nid))
        if b is None:
            self.out_open[nid] = a if nid not in self.out_open else min(a, self.out_open[nid])
            m[a:] = True
        else:
            m[a:b] = True
        self.out[nid] = m

    def clear_outage(self, nid: str, a: int) -> None:
        """Node ``nid`` back in service from absolute slot ``a``."""
        self.out_open.pop(nid, None)
        if nid in self.out:
            self._mine_out(nid)[a:] = False

    # ------------------------------------------------------------------ filling
    def missing(self, a: int, b: int) -> list[tuple[str, str, int, int]]:
        """Series without data somewhere in ``[a, b)``: ``(kind, key, first slot, count)``."""
        out = []
        for (kind, key), arr in self.data.items():
            seg = arr[a:b] if arr.size >= b else np.concatenate(
                [arr[a:], np.full(b - max(a, arr.size), np.nan)])
            bad = np.isnan(seg)
            if bad.any():
                out.append((kind, key, a + int(np.argmax(bad)), int(bad.sum())))
        return out

    def fill(self, a: int, b: int, policy: Mapping[str, str]) -> None:
        """Fill the NaN slots of ``[a, b)`` by each kind's policy (kinds without one stay NaN).

        ``repeat_day``: the value of the same slot 24 h earlier (itself filled first
        when missing); ``last``: the last value before the gap.
        """
        self.ensure(b)
        day = self.slots_per_day
        for key in list(self.data):
            rule = policy.get(key[0])
            if rule is None:
                continue
            gaps = np.nonzero(np.isnan(self.data[key][a:b]))[0] + a
            if gaps.size == 0:
                continue
            arr = self._mine(key)
            for t in gaps:
                if rule == "repeat_day":
                    if t - day >= 0:
                        arr[t] = arr[t - day]
                elif t > 0:
                    arr[t] = arr[t - 1]

    # ------------------------------------------------------------------ reading
    def window(self, kind: str, key: str, a: int, b: int) -> FloatArray:
        """Series ``(kind, key)`` over ``[a, b)`` (a copy; NaN where no data)."""
        arr = self.data[kind, key]
        if arr.size >= b:
            return arr[a:b].copy()
        return np.concatenate([arr[a:], np.full(b - max(a, arr.size), np.nan)])

    def availability(self, nid: str, a: int, b: int) -> BoolArray | None:
        """Availability of ``nid`` over ``[a, b)`` with outages applied (None: always)."""
        av: BoolArray | None = None
        if ("available", nid) in self.data:
            av = self.window("available", nid, a, b) > 0.5
        m = self.out.get(nid)
        opened = self.out_open.get(nid)
        if m is None and opened is None:
            return av
        out = np.zeros(b - a, dtype=bool)
        if m is not None:
            seg = m[a:b]
            out[:seg.size] = seg
        if opened is not None:
            out[max(0, opened - a):] = True
        if not out.any():
            return av
        base = av if av is not None else np.ones(b - a, dtype=bool)
        return np.asarray(base & ~out)

    def problem_parts(self, problem: Problem, a: int, b: int
                      ) -> tuple[dict[str, NodeSeries], dict[str, Tariff], dict[str, Feeder]]:
        """Node series, tariffs and feeders of window ``[a, b)`` (no NaN left: fill first).

        Built without validation (``model_construct``): every value was checked when
        it was written (:func:`parse_series`).
        """
        series: dict[str, NodeSeries] = {}
        for node in problem.nodes:
            nid = node.node_id
            pv = self.window("pv", nid, a, b).tolist() if ("pv", nid) in self.data else None
            hr = (self.window("headroom", nid, a, b).tolist() if ("headroom", nid) in self.data
                  else None)
            av = self.availability(nid, a, b)
            if pv is not None or hr is not None or av is not None:
                series[nid] = NodeSeries.model_construct(
                    pv_kw=pv, headroom_kw=hr, available=None if av is None else av.tolist())
        tariffs = {name: Tariff.model_construct(
            price=self.window("price", name, a, b).tolist(),
            export_price=self.window("export_price", name, a, b).tolist(),
            carbon_g_per_kwh=self.window("carbon", name, a, b).tolist())
            for name in problem.tariffs}
        feeders = {name: Feeder.model_construct(
            headroom_kw=self.window("feeder_headroom", name, a, b).tolist())
            for name in problem.feeders}
        return series, tariffs, feeders


# ---------------------------------------------------------------------- inputs

_RULES: dict[str, tuple[float | None, bool, str]] = {
    # kind: lower bound, inf allowed, text
    "pv": (0.0, False, "a finite number >= 0 [kW]"),
    "headroom": (0.0, True, "a number >= 0 [kW] (inf = unlimited)"),
    "available": (None, False, "true/false (1/0)"),
    "price": (None, False, "a finite number [money/kWh]"),
    "export_price": (None, False, "a finite number [money/kWh]"),
    "carbon": (0.0, False, "a finite number >= 0 [g/kWh]"),
    "feeder_headroom": (0.0, True, "a number >= 0 [kW] (inf = unlimited)"),
}


def _values(kind: str, key: str, raw: Sequence[Any], time_at: Callable[[int], datetime]
            ) -> FloatArray:
    """``raw`` as floats (None / NaN = keep), each checked against the rule of ``kind``.

    ``time_at(i)`` is the time of value ``i`` (for the message naming a bad value).
    """
    lo, inf_ok, text = _RULES[kind]
    if kind != "available":
        try:
            arr = np.asarray(raw, dtype=float)  # None would raise: the loop below takes it
        except (TypeError, ValueError):
            arr = None
        if arr is not None and arr.ndim == 1:
            good = np.isnan(arr) | (np.isfinite(arr) | (inf_ok & (arr > 0)))
            if lo is not None:
                good &= np.isnan(arr) | (arr >= lo)
            if good.all():
                return arr
    out = np.full(len(raw), np.nan)
    for i, v in enumerate(raw):
        if v is None:
            continue
        if kind == "available":
            if isinstance(v, bool | np.bool_) or v in (0, 1):
                out[i] = float(bool(v))
                continue
            if isinstance(v, float) and math.isnan(v):
                continue
            raise ValueError(f"available for {key!r} at {time_at(i).isoformat()}: {v!r} must "
                             f"be {text}")
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{kind} for {key!r} at {time_at(i).isoformat()}: {v!r} is not a "
                             f"number; must be {text}") from None
        if math.isnan(x):
            continue
        if (math.isinf(x) and not (inf_ok and x > 0)) or (lo is not None and x < lo):
            raise ValueError(f"{kind} for {key!r} at {time_at(i).isoformat()}: {v!r} must be "
                             f"{text}")
        out[i] = x
    return out


def parse_series(kind: str, data: SeriesInput | None, known: Iterable[str], store: SeriesStore,
                 a_now: int, a_end: int) -> dict[str, tuple[IntArray, FloatArray]]:
    """New values of one kind as ``id -> (absolute slots, values)``, checked.

    Parameters
    ----------
    kind : str
        One of :data:`SERIES_KINDS`.
    data : mapping id -> series, DataFrame, or None
        A series is a list / array of values for the slots from ``now`` on (at least
        up to the current end ``a_end``; more values extend the horizon), or values
        keyed by time: a pandas Series with a timezone-aware DatetimeIndex or a
        mapping ``datetime -> value``; a DataFrame has one column per id. None or
        NaN keeps the current value. Times must lie on the slot grid; values for
        slots before ``now`` are ignored (the past is settled).
    known : iterable of str
        The ids this kind may name (node ids, tariffs or feeders).
    store : SeriesStore
        Gives the origin and slot length.
    a_now, a_end : int
        Absolute slot of ``now`` and end of the current horizon.

    Raises
    ------
    ValueError
        Unknown id, naive or off-grid time, too few values, or a value out of range.
    """
    if data is None:
        return {}
    items: Iterable[tuple[Any, Any]]
    if isinstance(data, pd.DataFrame):
        items = ((c, data[c]) for c in data.columns)
    else:
        items = data.items()
    ids = set(known)
    what = {"price": "tariff", "export_price": "tariff", "carbon": "tariff",
            "feeder_headroom": "feeder"}.get(kind, "node_id")
    out: dict[str, tuple[IntArray, FloatArray]] = {}
    for key, seq in items:
        key = str(key)
        if key not in ids:
            raise ValueError(f"{kind}: unknown {what} {key!r}")
        if isinstance(seq, pd.Series) or isinstance(seq, Mapping):
            times, raw = _keyed(kind, key, seq)
            pos = np.array([store.position(t) for t in times], dtype=float)
            slots = np.rint(pos).astype(np.int64)
            off = np.nonzero(np.abs(pos - slots) > _GRID_TOL)[0]
            if off.size:
                raise ValueError(f"{kind} for {key!r}: time {times[off[0]].isoformat()} is not "
                                 f"on the slot grid ({store.slot_minutes}-minute slots from "
                                 f"{store.origin.isoformat()})")
        else:
            raw = list(seq)
            need = a_end - a_now
            if len(raw) < need:
                raise ValueError(f"{kind} for {key!r} has {len(raw)} values; the horizon from "
                                 f"now ({store.time_of(a_now).isoformat()}) has {need} slots "
                                 "(give at least that many: more extend the horizon; or key "
                                 "the values by time)")
            slots = a_now + np.arange(len(raw), dtype=np.int64)
            times = None
        at = (lambda i, ts=times: ts[i]) if times is not None else (
            lambda i, a=a_now: store.time_of(a + i))
        vals = _values(kind, key, raw, at)
        keep = slots >= a_now
        out[key] = (slots[keep], vals[keep])
    return out


def _keyed(kind: str, key: str, seq: pd.Series | Mapping[Any, Any]
           ) -> tuple[list[datetime], list[Any]]:
    """Times (aware) and values of a time-keyed series."""
    if isinstance(seq, pd.Series):
        idx = seq.index
        if not isinstance(idx, pd.DatetimeIndex):
            try:
                idx = pd.DatetimeIndex(idx)
            except (TypeError, ValueError):
                raise ValueError(f"{kind} for {key!r}: a Series needs a DatetimeIndex") from None
        if idx.tz is None:
            raise ValueError(f"{kind} for {key!r}: the Series index is naive: give it a "
                             "timezone (e.g. series.tz_localize('UTC'))")
        times = [t.to_pydatetime() for t in idx]
        return times, [None if pd.isna(v) else v for v in seq.tolist()]
    times = [aware(t, f"{kind} for {key!r}: time") for t in seq]
    return times, list(seq.values())


# ---------------------------------------------------------------------- carrying the dispatch


@dataclass
class NodeFlows:
    """Flows of one node over a horizon (each ``(T,)``), battery parameters and limits.

    The mutable working copy of :func:`carry_flows` and :func:`top_up`.
    """

    load: FloatArray
    pv: FloatArray
    headroom: FloatArray
    import_cost: FloatArray
    export_price: FloatArray
    pv_used: FloatArray
    grid_import: FloatArray
    grid_export: FloatArray
    charge: FloatArray
    discharge: FloatArray
    soc: FloatArray


def carry_flows(index: Index, rows: IntArray, old: Flows, k: int, load: FloatArray
                ) -> tuple[IntArray, dict[str, FloatArray]]:
    """The previous plan's dispatch of nodes ``rows``, carried into the new horizon.

    Parameters
    ----------
    index : Index
        The new problem's index.
    rows : (R,) int
        Node positions whose data, load and on-state over the shared slots are
        unchanged.
    old : Flows
        The previous plan's flows; its slots ``k .. k+T_ov−1`` are the new slots
        ``0 .. T_ov−1`` (``T_ov = min(T, old slots − k)``).
    k : int
        Slots rolled.
    load : (N, T) float
        Load of the new plan.

    Returns
    -------
    kept : (R',) int
        The rows whose flows could be carried.
    flows : dict name -> (R', T) float
        Their ``pv_used``, ``grid_import``, ``grid_export``, ``charge``,
        ``discharge`` and ``soc``: the carried flows; in the slots past ``T_ov`` PV
        first, the grid for the rest, PV left over stored when that is worth more
        than exporting it (else exported when paid), the battery otherwise idle; the
        state of charge recomputed from the new ``soc_init`` and shifted to the
        terminal rule (:func:`top_up` when short, :func:`draw_down` when the
        previous plan stored more than the rolled problem asks for). A row is left
        out when a bound breaks (headroom in a new slot, soc limits) or the top-up
        cannot reach the terminal state: it is then dispatched again.
    """
    T = index.T
    T_ov = max(0, min(T, old.on.shape[1] - k))
    R = rows.size
    fl = {name: np.zeros((R, T)) for name in ("pv_used", "grid_import", "grid_export",
                                              "charge", "discharge")}
    for name, arr in fl.items():
        arr[:, :T_ov] = getattr(old, name)[rows, k:k + T_ov]
    ok = np.ones(R, dtype=bool)
    if T_ov < T:  # new slots: battery idle
        L, P = load[rows, T_ov:], index.pv[rows, T_ov:]
        used = np.minimum(P, L)
        imp = L - used
        ok &= ~(imp > index.headroom[rows, T_ov:] + 1e-7).any(axis=1)
        exp = np.where(index.export_price[rows, T_ov:] > 0,
                       np.minimum(P - used, index.export_kw[rows][:, None]), 0.0)
        # PV left over (curtailed, or exported for less than it saves when stored: the
        # cheapest import it can displace, after the round trip) charges the battery,
        # within its power limit and the room left at the end of the shared slots; a
        # charge beyond the terminal target is then drawn down where it saves most
        spare = P - used
        eff = index.eff_charge[rows] * index.eff_discharge[rows]
        least = index.import_cost[rows].min(axis=1, initial=np.inf) * eff
        worth = (index.battery_kwh[rows] > 0)[:, None] & (
            index.export_price[rows, T_ov:] < least[:, None])
        ch = np.where(worth, np.minimum(spare, index.charge_kw[rows][:, None]), 0.0)
        dt = index.dt
        step0 = dt * (index.eff_charge[rows][:, None] * fl["charge"][:, :T_ov]
                      - fl["discharge"][:, :T_ov] / index.eff_discharge[rows][:, None])
        room = index.soc_max[rows] - (index.soc_init[rows] + step0.sum(axis=1))
        for t in range(ch.shape[1]):  # the few new slots: cap by the room left
            ch[:, t] = np.clip(np.minimum(ch[:, t], room / (dt * index.eff_charge[rows])),
                               0.0, None)
            room = room - dt * index.eff_charge[rows] * ch[:, t]
        exp = np.minimum(exp, spare - ch)
        fl["charge"][:, T_ov:] = ch
        fl["pv_used"][:, T_ov:] = used + exp + ch
        fl["grid_import"][:, T_ov:] = imp
        fl["grid_export"][:, T_ov:] = exp
    dt = index.dt
    step = dt * (index.eff_charge[rows][:, None] * fl["charge"]
                 - fl["discharge"] / index.eff_discharge[rows][:, None])
    soc = index.soc_init[rows][:, None] + np.cumsum(step, axis=1)
    batt = index.battery_kwh[rows] > 0
    ok &= ~batt | (((soc >= index.soc_min[rows][:, None] - _SOC_TOL)
                    & (soc <= index.soc_max[rows][:, None] + _SOC_TOL)).all(axis=1))
    fl["soc"] = soc
    if index.terminal_initial:
        diff = index.soc_init[rows] - soc[:, -1]
        for r in np.nonzero(ok & batt & (np.abs(diff) > _SOC_TOL))[0].tolist():
            n = int(rows[r])
            f = NodeFlows(load=load[n], pv=index.pv[n], headroom=index.headroom[n],
                          import_cost=index.import_cost[n], export_price=index.export_price[n],
                          pv_used=fl["pv_used"][r], grid_import=fl["grid_import"][r],
                          grid_export=fl["grid_export"][r], charge=fl["charge"][r],
                          discharge=fl["discharge"][r], soc=fl["soc"][r])
            if diff[r] > 0:
                ok[r] = top_up(index, n, f, float(diff[r]))
            else:
                draw_down(index, n, f, float(-diff[r]))
    keep = np.nonzero(ok)[0]
    return rows[keep], {name: arr[keep] for name, arr in fl.items()}


def _soc(index: Index, n: int, f: NodeFlows) -> None:
    """Recompute ``f.soc`` from ``soc_init`` and the battery flows (SPEC §2.6 dynamics)."""
    dt = index.dt
    step = dt * (index.eff_charge[n] * f.charge - f.discharge / index.eff_discharge[n])
    f.soc[:] = index.soc_init[n] + np.cumsum(step)


def draw_down(index: Index, n: int, f: NodeFlows, excess: float) -> None:
    """Lower the final state of charge of node ``n`` by up to ``excess`` kWh where it saves money.

    The mirror of :func:`top_up`: a plan made for a higher terminal target stores
    more than the rolled problem asks for. The most valuable cuts first, each
    limited by the soc floor of every later slot: charging less at ``t`` (the
    supply freed: less import, more export, or curtailed PV) lowers the charge by
    ``Δ·eff_c`` per kW and is worth ``v / eff_c`` per kWh; discharging more where
    the battery does not charge (displacing import, or exported) lowers it by
    ``Δ/eff_d`` per kW and is worth ``(v − degradation)·eff_d`` per kWh, for the
    value ``v`` of what the energy displaces (import cost, export price, 0 for
    curtailed PV). Cuts worth nothing are not made.
    """
    _shift(index, n, f, -excess)


def top_up(index: Index, n: int, f: NodeFlows, short: float) -> bool:
    """Raise the final state of charge of node ``n`` by ``short`` kWh at the least cost, in place.

    The cheapest raises first, each limited by the soc ceiling of every later slot:
    discharging less at slot ``t`` (the load then served by spare PV, exported PV
    or the grid within headroom) raises the charge by ``Δ/eff_d`` per kW, charging
    more (only where the battery does not discharge) by ``Δ·eff_c`` per kW. Cost
    per kWh raised: ``(q − degradation)·eff_d`` and ``q / eff_c`` for a source of
    price ``q`` (0 for PV that would be curtailed, the export price for PV that
    would be exported, the import cost for the grid; a node with a demand charge
    imports no more than its current peak).

    Measured on the re-planner's rolls (bench problem 1,000 × 100 × 96, hourly
    rolls over a day) :func:`top_up` and :func:`draw_down` reproduce the exact
    dispatch's cost to 1e-3 money; a node they cannot fix is dispatched again.

    Returns
    -------
    bool
        Whether the full ``short`` was raised (``f`` is then feasible again).
    """
    _shift(index, n, f, short)
    return bool(float(index.soc_init[n] - f.soc[-1]) <= _SOC_TOL
                and (f.soc <= index.soc_max[n] + _SOC_TOL).all())


def _shift(index: Index, n: int, f: NodeFlows, amount: float) -> None:
    """Raise (``amount > 0``) or lower the final state of charge by ``|amount|`` kWh, in place.

    See :func:`top_up` and :func:`draw_down`. Sources (raise) or sinks (lower) per
    slot, with their price or value and the kW they have left, are kept in arrays;
    candidates ``(cost, slot, mode, source)`` are tried cheapest (most valuable)
    first, later slots first on ties.
    """
    dt = index.dt
    ec, ed = float(index.eff_charge[n]), float(index.eff_discharge[n])
    deg = float(index.degradation[n])
    C, D = float(index.charge_kw[n]), float(index.discharge_kw[n])
    lo, hi = float(index.soc_min[n]), float(index.soc_max[n])
    T = f.soc.size
    q, e = f.import_cost, f.export_price
    up = amount > 0
    if up:
        lim = f.headroom.copy()
        if float(index.demand_charge[n]) > 0:
            lim = np.minimum(lim, f.grid_import.max(initial=0.0))
        # sources of extra supply: spare PV (free), exported PV, grid within headroom
        price = [np.zeros(T), e, q]
        left_kw = [np.maximum(f.pv - f.pv_used, 0.0), f.grid_export.copy(),
                   np.maximum(lim - f.grid_import, 0.0)]
        # mode 0: discharge less ((p − deg)·eff_d per kWh), mode 1: charge more (p / eff_c)
        cost = [lambda p: (p - deg) * ed, lambda p: p / ec]
    else:
        X = float(index.export_kw[n])
        # sinks of freed supply: less import, more (paid) export, curtailed PV
        price = [q, e, np.zeros(T)]
        left_kw = [f.grid_import.copy(), np.where(e > 0, np.maximum(X - f.grid_export, 0.0), 0.0),
                   f.pv_used.copy()]
        # mode 0: discharge more (worth (v − deg)·eff_d), mode 1: charge less (v / eff_c)
        cost = [lambda p: -(p - deg) * ed, lambda p: -p / ec]
    rows = []
    for src in range(3):
        for mode in range(2):
            if not up and mode == 0 and src == 2:
                continue  # discharging into curtailment is worth nothing
            c = cost[mode](price[src])
            ok = left_kw[src] > _FLOW_TOL
            if (up and mode == 0) or (not up and mode == 1):  # cuts an existing flow
                ok &= (f.discharge if up else f.charge) > _FLOW_TOL
            at = np.nonzero(ok)[0]
            rows.append(np.stack([c[at], at.astype(float), np.full(at.size, mode),
                                  np.full(at.size, src)], axis=1))
    cand = np.concatenate(rows) if rows else np.zeros((0, 4))
    if not up:
        cand = cand[cand[:, 0] < 0]  # only cuts that save money
    order = np.lexsort((-cand[:, 1], cand[:, 0]))
    left = abs(amount)
    for r in order.tolist():
        if left <= _SOC_TOL:
            break
        t, mode, src = int(cand[r, 1]), int(cand[r, 2]), int(cand[r, 3])
        room = (hi - float(f.soc[t:].max())) if up else (float(f.soc[t:].min()) - lo)
        kw_src = float(left_kw[src][t])
        if room <= _SOC_TOL or kw_src <= _FLOW_TOL:
            continue
        if up and mode == 0:      # discharge less
            per_kw, cap = dt / ed, float(f.discharge[t])
        elif up:                  # charge more, where it does not discharge
            per_kw, cap = dt * ec, C - float(f.charge[t]) if f.discharge[t] <= _FLOW_TOL else 0.0
        elif mode == 0:           # discharge more, where it does not charge
            per_kw, cap = dt / ed, D - float(f.discharge[t]) if f.charge[t] <= _FLOW_TOL else 0.0
        else:                     # charge less
            per_kw, cap = dt * ec, float(f.charge[t])
        kw = min(cap, kw_src, min(left, room) / per_kw)
        if kw <= _FLOW_TOL:
            continue
        if mode == 0:
            f.discharge[t] += -kw if up else kw
        else:
            f.charge[t] += kw if up else -kw
        # the other side of the power balance
        if up:
            if src == 0:
                f.pv_used[t] += kw
            elif src == 1:
                f.grid_export[t] -= kw
            else:
                f.grid_import[t] += kw
        elif src == 0:
            f.grid_import[t] -= kw
        elif src == 1:
            f.grid_export[t] += kw
        else:
            f.pv_used[t] -= kw
        left_kw[src][t] -= kw
        step = kw * per_kw
        f.soc[t:] += step if up else -step
        left -= step
    _soc(index, n, f)


# ---------------------------------------------------------------------- incremental index

_JOB_FIELDS = ("usage", "job_power", "release", "deadline", "hard_deadline", "tardiness_rate",
               "drop_penalty", "pinned_node", "pinned_start", "latency_ms", "duration_min",
               "latency_slo", "latency_rate")
"""Index fields with one row per job."""
_OPT_FIELDS = ("opt_node", "opt_dur", "opt_power", "opt_latency_cost", "opt_earliest",
               "opt_latest")
"""Option fields other than ``opt_job`` (rows follow their job)."""
_NODE_ROWS = ("pv", "headroom", "price", "export_price", "carbon", "import_cost")
"""Node × slot data fields that do not decide eligibility."""


def _jobs_only(problem: Problem, jobs: list[Job]) -> Problem:
    """``problem`` with ``jobs`` and only what eligibility reads (nodes, availability, latency).

    Unvalidated (``model_construct``); only for :func:`compile_index` of the jobs' rows.
    """
    series = {nid: NodeSeries.model_construct(pv_kw=None, headroom_kw=None, available=s.available)
              for nid, s in problem.node_series.items() if s.available is not None}
    return Problem.model_construct(scenario=problem.scenario, nodes=problem.nodes, jobs=jobs,
                                   node_series=series, tariffs={}, feeders={},
                                   latency_ms=problem.latency_ms, regions=problem.regions)


def append_jobs(index: Index, problem: Problem, new: list[Job]) -> Index | None:
    """The index of ``problem`` (= the indexed problem + ``new`` jobs at the end), or None.

    The new jobs' rows come from :func:`compile_index` of the new jobs alone; None
    when they bring a resource the index does not know (compile the whole problem).
    """
    if not new:
        return index
    part = compile_index(_jobs_only(problem, new))
    if part.resources != index.resources:
        return None
    J0, O0 = index.J, index.opt_job.size
    upd: dict[str, Any] = {f: np.concatenate([getattr(index, f), getattr(part, f)])
                           for f in (*_JOB_FIELDS, *_OPT_FIELDS)}
    upd["opt_job"] = np.concatenate([index.opt_job, part.opt_job + J0])
    upd["opt_job_ptr"] = np.concatenate([index.opt_job_ptr[:-1], part.opt_job_ptr + O0])
    upd["job_ids"] = [*index.job_ids, *part.job_ids]
    upd["job_pos"] = {j: i for i, j in enumerate(upd["job_ids"])}
    return dataclasses.replace(index, **upd)


def drop_jobs(index: Index, keep: BoolArray, problem: Problem) -> Index | None:
    """The index without the jobs where ``keep`` is False, or None.

    None when a removed job alone uses a resource no node has (the compiled index
    would no longer list it): compile the whole problem then.
    """
    if keep.all():
        return index
    node_res = {r for n in problem.nodes for r in n.resources} | {"gpus"}
    left_res = node_res | {r for j in problem.jobs for r in j.resources}
    if any(r not in left_res for r in index.resources):
        return None
    upd: dict[str, Any] = {f: getattr(index, f)[keep] for f in _JOB_FIELDS}
    okeep = keep[index.opt_job]
    for f in _OPT_FIELDS:
        upd[f] = getattr(index, f)[okeep]
    newpos = np.cumsum(keep) - 1
    upd["opt_job"] = newpos[index.opt_job[okeep]].astype(np.int64)
    counts = np.bincount(upd["opt_job"], minlength=int(keep.sum()))
    upd["opt_job_ptr"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    upd["job_ids"] = [j for j, k in zip(index.job_ids, keep, strict=True) if k]
    upd["job_pos"] = {j: i for i, j in enumerate(upd["job_ids"])}
    return dataclasses.replace(index, **upd)


def with_node_rows(index: Index, problem: Problem, rows: IntArray) -> Index:
    """The index with the data rows (PV, headroom, prices, carbon) of nodes ``rows`` and the
    feeder headroom taken from ``problem`` (availability and every job field unchanged).

    The rows come from :func:`compile_index` of those nodes alone, without jobs.
    """
    if rows.size == 0 and not problem.feeders:
        return index
    nodes: list[Node] = [problem.nodes[int(i)] for i in rows]
    sub = Problem.model_construct(
        scenario=problem.scenario, nodes=nodes, jobs=[],
        node_series={n.node_id: problem.node_series[n.node_id] for n in nodes
                     if n.node_id in problem.node_series},
        tariffs=problem.tariffs, feeders=problem.feeders, latency_ms={}, regions={})
    part = compile_index(sub)
    upd: dict[str, Any] = {}
    for f in _NODE_ROWS:
        arr = getattr(index, f).copy()
        arr[rows] = getattr(part, f)
        upd[f] = arr
    upd["feeder_headroom"] = part.feeder_headroom
    return dataclasses.replace(index, **upd)


_EPS = 1e-9
"""The index's tolerance on slot positions (:mod:`optisched.index`)."""


def roll_index(old: Index, problem: Problem, k: int) -> Index | None:
    """The index of ``problem``, the problem of ``old`` rolled by ``k`` slots, or None.

    ``problem`` keeps a subset of ``old``'s jobs in their order (some now pinned where
    they run) and may append new ones; its horizon starts ``k`` slots later and may
    have another length. The node part is compiled without jobs; the kept jobs'
    rows are ``old``'s with their windows moved (release ``max(0, r − k)``, deadline
    and pins from the jobs' times, the window end capped by the new horizon) and
    their options filtered by the new windows and availability, as
    :func:`~optisched.index.compile_index` decides them; a job whose window grows at
    its end (the horizon got longer than the rest of the old one) keeps its options
    with the longer window, and is compiled alone when that could give it a new one
    (its window was too short for its duration on some node, or a node is not always
    available);
    arrivals are appended (:func:`append_jobs`). None when that cannot be the
    compiled index: a job that lost its pin, a pin without its option, a node
    available where it was not, other resources.
    """
    hz = problem.horizon
    T2 = hz.slots
    old_pos = old.job_pos
    kept = [j for j in problem.jobs if j.job_id in old_pos]
    new = [j for j in problem.jobs if j.job_id not in old_pos]
    kept_ids = {j.job_id for j in kept}
    if [j.job_id for j in kept] != [jid for jid in old.job_ids if jid in kept_ids]:
        return None  # reordered
    ki = np.array([old_pos[j.job_id] for j in kept], dtype=np.int64)
    J = ki.size
    if J == 0:
        return None  # nothing kept: the compile is cheap
    newpos = np.full(old.J, -1, dtype=np.int64)
    newpos[ki] = np.arange(J)
    nodes_ix = compile_index(Problem.model_construct(**{**dict(problem), "jobs": []}))
    if nodes_ix.resources != old.resources:
        return None  # a resource only jobs name: compile
    T_ov = max(0, min(T2, old.T - k))
    if (nodes_ix.available[:, :T_ov] & ~old.available[:, k:k + T_ov]).any():
        return None  # a node is available where it was not: options may appear
    base = {f: getattr(old, f)[ki] for f in _JOB_FIELDS}
    # the kept jobs' times in the new horizon
    release = np.maximum(base["release"] - k, 0)
    deadline = np.array([math.inf if j.deadline is None else hz.slot_position(j.deadline)
                         for j in kept], dtype=float).reshape(J)
    pinned_node = np.full(J, -1, dtype=np.int64)
    pinned_start = np.zeros(J, dtype=np.int64)
    for i, j in enumerate(kept):
        if j.pinned_node is not None and j.pinned_start is not None:
            pinned_node[i] = nodes_ix.node_pos[j.pinned_node]
            pinned_start[i] = round(hz.slot_position(j.pinned_start))
    if ((base["pinned_node"] >= 0) & (pinned_node < 0)).any():
        return None  # a pin was lifted (a restart): compile
    hard = base["hard_deadline"]
    end_cap = np.where(hard & np.isfinite(deadline),
                       np.floor(np.minimum(deadline, T2) + _EPS), T2).astype(np.int64)
    old_cap = np.where(hard & np.isfinite(base["deadline"]),
                       np.floor(np.minimum(base["deadline"], old.T) + _EPS), old.T
                       ).astype(np.int64)
    # a window that grows at its end may gain options where the old window was too short
    # for the job's duration there, or on a node not always available: such jobs are
    # compiled alone; the others keep their options with the longer window
    grow = (pinned_node < 0) & (end_cap > old_cap - k)
    partial: BoolArray = np.asarray(~nodes_ix.available.all(axis=1) | ~old.available.all(axis=1))
    alone = np.zeros(J, dtype=bool)
    gj = np.nonzero(grow)[0]
    if gj.size:
        dur = slots_needed(base["duration_min"][gj][:, None], old.slot_minutes,
                           old.speed[None, :])
        has = np.zeros((gj.size, old.N), dtype=bool)
        gpos = np.full(J, -1, dtype=np.int64)
        gpos[gj] = np.arange(gj.size)
        sel = (newpos[old.opt_job] >= 0)
        sel[sel] = gpos[newpos[old.opt_job][sel]] >= 0
        has[gpos[newpos[old.opt_job[sel]]], old.opt_node[sel]] = True
        short = (old_cap[gj] - base["release"][gj])[:, None] - dur < 0
        alone[gj] = (~has & (short | partial[None, :])).any(axis=1)
    # options: the pinned one for pinned jobs, the rest by the new windows and availability
    alive = newpos[old.opt_job] >= 0  # options of kept jobs
    oj = np.maximum(newpos[old.opt_job], 0)
    on, od = old.opt_node, old.opt_dur
    pin = pinned_node[oj] >= 0
    earliest = np.where(pin, pinned_start[oj], release[oj])
    latest = np.where(pin, pinned_start[oj], end_cap[oj] - od)
    ok = alive & np.where(pin, on == pinned_node[oj], latest >= earliest) & ~alone[oj]
    now_partial: BoolArray = np.asarray(~nodes_ix.available.all(axis=1))
    chk = np.nonzero(ok & ~pin & now_partial[on])[0]
    if chk.size:
        ok[chk] = _window_max(nodes_ix.avail_run, on[chk], earliest[chk], latest[chk]) >= od[chk]
    if (np.bincount(oj[ok & pin], minlength=J) != (pinned_node >= 0)).any():
        return None  # a pinned job without its option there
    upd: dict[str, Any] = {f: getattr(old, f)[ok] for f in _OPT_FIELDS}
    upd["opt_earliest"] = earliest[ok].astype(np.int64)
    upd["opt_latest"] = latest[ok].astype(np.int64)
    upd["opt_job"] = oj[ok]
    if alone.any():
        aj = np.nonzero(alone)[0]
        part = compile_index(_jobs_only(problem, [kept[int(i)] for i in aj]))
        if part.resources != old.resources:
            return None
        upd = {f: np.concatenate([upd[f], getattr(part, f)]) for f in (*_OPT_FIELDS, "opt_job")
               } | {"opt_job": np.concatenate([upd["opt_job"], aj[part.opt_job]])}
        order = np.lexsort((upd["opt_node"], upd["opt_job"]))
        upd = {f: v[order] for f, v in upd.items()}
    counts = np.bincount(upd["opt_job"], minlength=J)
    upd["opt_job_ptr"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    upd.update(release=release.astype(np.int64), deadline=deadline, pinned_node=pinned_node,
               pinned_start=pinned_start)
    ids = [j.job_id for j in kept]
    job_part: dict[str, Any] = {**base, "job_ids": ids,
                                "job_pos": {jid: i for i, jid in enumerate(ids)}, **upd}
    node_fields = {f.name for f in dataclasses.fields(Index)} - set(job_part) - {"resources"}
    rolled = dataclasses.replace(old, **job_part,
                                 **{f: getattr(nodes_ix, f) for f in node_fields})
    return append_jobs(rolled, problem, new)


def _window_max(run: IntArray, node: IntArray, lo: IntArray, hi: IntArray) -> IntArray:
    """Max of ``run[node, lo..hi]`` per query (inclusive), -1 when empty (as the index's)."""
    out = np.full(node.shape, -1, dtype=np.int64)
    good = hi >= lo
    if not good.any():
        return out
    tables = sparse_max_tables(run, run.shape[1])
    length = (hi[good] - lo[good] + 1).astype(np.int64)
    lvl = np.floor(np.log2(length)).astype(np.int64)
    res = np.empty(length.shape, dtype=np.int64)
    n_all, a_all, b_all = node[good], lo[good], hi[good]
    for lev in np.unique(lvl):
        m = lvl == lev
        tab = tables[int(lev)]
        res[m] = np.maximum(tab[n_all[m], a_all[m]], tab[n_all[m], b_all[m] - (1 << int(lev)) + 1])
    out[good] = res
    return out
