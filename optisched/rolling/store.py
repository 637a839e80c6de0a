"""The re-planner's data by absolute slot: :class:`SeriesStore` and its :class:`OutageMask`.

Absolute slot ``a`` = slots since the start of the first problem (the *origin*).
The problem of each update is a window ``[a0, a1)`` of the store; new data is
written into a copy of it (copy on write: an update keeps the copy only when it
succeeds), may reach past the current end and never changes the past.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.domain import Feeder, NodeSeries, Problem, Tariff

__all__ = ["FILL_POLICIES", "NODE_KINDS", "SERIES_KINDS", "SERIES_OWNER", "TARIFF_KINDS",
           "OutageMask", "SeriesStore"]

NODE_KINDS = ("pv", "headroom", "available")
"""Per-node series: PV forecast [kW], import headroom [kW, inf = unlimited], availability."""
TARIFF_KINDS = ("price", "export_price", "carbon")
"""Per-tariff series: import and export price [money/kWh], carbon intensity [g/kWh]."""
SERIES_KINDS = (*NODE_KINDS, *TARIFF_KINDS, "feeder_headroom")
"""Every series kind the store holds (``feeder_headroom`` per feeder [kW])."""
FILL_POLICIES = ("repeat_day", "last")
"""Opt-in fill policies for slots past the data: the value 24 h earlier, or the last value."""
SERIES_OWNER = {**dict.fromkeys(TARIFF_KINDS, "tariff"), "feeder_headroom": "feeder"}
"""What a series kind belongs to, for messages (a kind not listed: a node)."""


@dataclass
class OutageMask:
    """The slots each node is out (outages), on top of its availability data.

    Attributes
    ----------
    out : dict node_id -> (L,) bool
        Slots a node is out, by absolute slot.
    out_open : dict node_id -> int
        Node out from this absolute slot on, until it returns (an outage without end).
    """

    out: dict[str, BoolArray] = dataclasses.field(default_factory=dict)
    out_open: dict[str, int] = dataclasses.field(default_factory=dict)
    _owned: set[str] | None = None
    """Nodes whose masks this copy owns (None: all, the mask is not a copy)."""

    def copy(self) -> OutageMask:
        """A copy that shares the masks until it writes (copy on write)."""
        return OutageMask(dict(self.out), dict(self.out_open), set())

    def _mine(self, nid: str) -> BoolArray:
        """The mask of ``nid``, copied first when it is still shared."""
        if self._owned is not None and nid not in self._owned:
            self.out[nid] = self.out[nid].copy()
            self._owned.add(nid)
        return self.out[nid]

    def rebase(self, shift: int) -> None:
        """Prepend ``shift`` slots (not out) to every mask."""
        self.out = {k: np.concatenate([np.zeros(shift, dtype=bool), v])
                    for k, v in self.out.items()}
        self.out_open = {k: v + shift for k, v in self.out_open.items()}
        self._owned = None

    def ensure(self, end: int) -> None:
        """Grow every mask to at least ``end`` slots (to at least twice its size)."""
        for nid, m in self.out.items():
            if m.size < end:
                size = max(end, 2 * m.size)
                self.out[nid] = np.concatenate([m, np.zeros(size - m.size, dtype=bool)])
                if self._owned is not None:
                    self._owned.add(nid)

    def set(self, nid: str, a: int, b: int | None, size: int) -> None:
        """Node ``nid`` out over absolute slots ``[a, b)`` (``b`` None: until it returns).

        A new or shorter mask grows to ``size`` slots (or the longest mask).
        """
        size = max([size, *(x.size for x in self.out.values())])
        m = self._mine(nid) if nid in self.out else None
        if m is None:
            m = np.zeros(size, dtype=bool)
        elif m.size < size:
            m = np.concatenate([m, np.zeros(size - m.size, dtype=bool)])
        if self._owned is not None:
            self._owned.add(nid)
        if b is None:
            self.out_open[nid] = a if nid not in self.out_open else min(a, self.out_open[nid])
            m[a:] = True
        else:
            m[a:b] = True
        self.out[nid] = m

    def clear(self, nid: str, a: int) -> None:
        """Node ``nid`` back in service from absolute slot ``a``."""
        self.out_open.pop(nid, None)
        if nid in self.out:
            self._mine(nid)[a:] = False

    def mask(self, nid: str, a: int, b: int) -> BoolArray | None:
        """Slots of ``[a, b)`` node ``nid`` is out (None: none)."""
        m = self.out.get(nid)
        opened = self.out_open.get(nid)
        if m is None and opened is None:
            return None
        out = np.zeros(b - a, dtype=bool)
        if m is not None:
            seg = m[a:b]
            out[:seg.size] = seg
        if opened is not None:
            out[max(0, opened - a):] = True
        return out if out.any() else None


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
    outages : OutageMask
        Slots a node is out (outages), on top of its availability data.
    """

    origin: datetime
    slot_minutes: int
    data: dict[tuple[str, str], FloatArray] = dataclasses.field(default_factory=dict)
    outages: OutageMask = dataclasses.field(default_factory=OutageMask)

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
        st = SeriesStore(self.origin, self.slot_minutes, dict(self.data), self.outages.copy())
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

    def rebase(self, shift: int) -> None:
        """Move the origin ``shift`` slots earlier (slots before the data: NaN, available)."""
        if shift == 0:
            return
        if shift < 0:
            raise ValueError("the origin can only move back")
        self.origin = self.origin - timedelta(minutes=self.slot_minutes * shift)
        self.data = {k: np.concatenate([np.full(shift, np.nan), v]) for k, v in self.data.items()}
        self.outages.rebase(shift)
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
        self.outages.ensure(end)

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
        self.outages.set(nid, a, b, max([b or a, a, *(x.size for x in self.data.values())]))

    def clear_outage(self, nid: str, a: int) -> None:
        """Node ``nid`` back in service from absolute slot ``a``."""
        self.outages.clear(nid, a)

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
        out = self.outages.mask(nid, a, b)
        if out is None:
            return av
        base = av if av is not None else np.ones(b - a, dtype=bool)
        return np.asarray(base & ~out)

    def problem_parts(self, problem: Problem, a: int, b: int
                      ) -> tuple[dict[str, NodeSeries], dict[str, Tariff], dict[str, Feeder]]:
        """Node series, tariffs and feeders of window ``[a, b)`` (no NaN left: fill first).

        Built without validation (``model_construct``): every value was checked when
        it was written (:func:`optisched.rolling.inputs.parse_series`).
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
