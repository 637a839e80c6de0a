"""Vectorized scoring of a job's candidate (node, start) pairs against a :class:`GreedyState`.

:meth:`Scorer.scan` scores every eligible (option, start) pair of one job at once
over ``(K options × W slots)`` arrays: the marginal energy cost of the added load
(given the node's load, PV surplus, export and what the battery can still shift),
the switching cost of waking a sleeping node, the rise of the demand charge, the
latency and the tardiness cost. Window sums use prefix sums over slots; windows
that break capacity, availability, the node's or the feeder's headroom are
excluded. :meth:`Scorer.best_insertion` scans the candidates chunk by chunk
(:meth:`Scorer.candidate_chunks`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.index import Index, sparse_max_tables
from optisched.solvers.greedy.state import GreedyState

__all__ = [
    "DEFAULT_CANDIDATES",
    "LARGE_CANDIDATES",
    "Best",
    "Scorer",
    "default_candidates",
    "switch_delta",
    "why_no_window",
    "window_max_rows",
]

DEFAULT_CANDIDATES = 128
"""Most eligible nodes scored per job in construction (cheapest by a static score)."""
LARGE_CANDIDATES = 32
"""The same on instances with more than ``_LARGE_OPTIONS`` options."""
_LARGE_OPTIONS = 1_000_000
_CAP_TOL = 1e-9
"""Tolerance on resource capacity."""
_FLOW_TOL = 1e-7
"""Tolerance on the node's and the feeder's headroom [kW]."""
_EARLY = 1e12
"""Weight of the start slot in the earliest-start rule (the marginal cost breaks ties)."""


def default_candidates(index: Index) -> int:
    """:data:`DEFAULT_CANDIDATES`, or :data:`LARGE_CANDIDATES` above ``_LARGE_OPTIONS`` options."""
    return DEFAULT_CANDIDATES if index.opt_job.size <= _LARGE_OPTIONS else LARGE_CANDIDATES


@dataclass
class Best:
    """Cheapest (option, start) found for a job by :meth:`Scorer.scan`."""

    option: int
    start: int
    cost: float


class Scorer:
    """Scores insertions of single jobs into a :class:`GreedyState`.

    Parameters
    ----------
    state : GreedyState
        The placement the jobs are scored against (read, never changed).
    candidates : int
        Most eligible nodes scored per job before falling back to all.

    Attributes
    ----------
    earliest : bool
        Construction rule: False = cheapest marginal cost, True = earliest start
        (the marginal cost breaks ties).
    """

    def __init__(self, state: GreedyState, candidates: int = DEFAULT_CANDIDATES) -> None:
        self.state = state
        self.candidates = max(1, int(candidates))
        self.earliest = False
        self._opt_score: FloatArray | None = None
        ix = state.index
        self._has_pv = np.asarray(ix.pv.any(axis=1)) if state.T else np.zeros(ix.N, bool)
        """(N,) nodes with PV in some slot (elsewhere import = load, no export)."""
        self._has_limit = np.asarray(np.isfinite(ix.headroom).any(axis=1)) if state.T else \
            np.zeros(ix.N, bool)
        """(N,) nodes with a finite import limit in some slot."""

    # ------------------------------------------------------------------ static
    @property
    def opt_score(self) -> FloatArray:
        """(O,) static score of each option for candidate pruning [money] (computed once)."""
        if self._opt_score is None:
            self._opt_score = self._static_scores()
        return self._opt_score

    def _static_scores(self) -> FloatArray:
        """Per-option score for candidate pruning: energy at the window's mean price + latency."""
        st = self.state
        ix = st.index
        eff = np.where(ix.pv > st.load + 1e-9, st.exp_price, ix.import_cost)
        pref = np.zeros((st.N, st.T + 1))
        pref[:, 1:] = np.cumsum(eff, axis=1)
        o_n = ix.opt_node
        a = np.clip(ix.opt_earliest, 0, st.T)
        b = np.clip(ix.opt_latest + ix.opt_dur, 0, st.T)
        width = np.maximum(b - a, 1)
        mean = (pref[o_n, b] - pref[o_n, a]) / width
        return np.asarray(ix.opt_power * ix.opt_dur * ix.dt * mean + ix.opt_latency_cost)

    # ------------------------------------------------------------------ scoring
    def fits(self, j: int, o: int, s: int) -> bool:
        """Whether option ``o`` at ``s`` fits the current state (window, capacity, headroom)."""
        if not self.state.index.start_ok(o, s):
            return False
        best = self.scan(j, np.array([o]), only_start=s)
        return best is not None

    def scan(self, j: int, opts: IntArray, *, battery: bool = False,
             only_start: int | None = None, exclude: tuple[int, int] | None = None,
             diagnose: list[str] | None = None) -> Best | None:
        """Cheapest feasible (option, start) of job ``j`` among ``opts`` by marginal cost.

        Parameters
        ----------
        j : int
            Job position (not currently placed).
        opts : (K,) int
            Option positions to score.
        battery : bool
            Allow import above the headroom by up to the battery's discharge limit
            (the result must then be checked by the exact dispatch).
        only_start : int, optional
            Score only this start slot.
        exclude : (node, start), optional
            A placement not to return (the job's current one in a relocation).
        diagnose : list of str, optional
            When given and nothing fits, receives the reason.

        Returns
        -------
        Best or None
            The cheapest pair and its estimated marginal cost [money].
        """
        ix = self.state.index
        T = self.state.T
        if opts.size == 0:
            return None
        n = ix.opt_node[opts]
        d = ix.opt_dur[opts]
        # only the slots some window can touch: starts a .. hs, slots a .. b-1
        a = max(0, int(ix.opt_earliest[opts].min()))
        hs = min(T - 1, int(ix.opt_latest[opts].max()))
        if only_start is not None:
            a = hs = only_start
        if hs < a:
            if diagnose is not None:
                diagnose.append("window too short: no eligible node has a start in its window")
            return None
        b = min(T, hs + int(d.max()))
        W = b - a
        m, imp1, ok, cap_ok, head_ok, feed_ok = self._slot_terms(j, opts, n, slice(a, b),
                                                                 battery)
        K = opts.size
        NS = hs - a + 1
        U = np.arange(NS)[None, :]  # local start
        S = U + a
        end = np.minimum(U + d[:, None], W)
        end_flat = end + np.arange(K)[:, None] * (W + 1)  # flat take: 5x a 2-D gather
        cm = np.zeros((K, W + 1))
        np.cumsum(m, axis=1, out=cm[:, 1:])
        energy = np.take(cm, end_flat) - cm[:, :NS]
        cb = np.zeros((K, W + 1), dtype=np.int64)
        np.cumsum(~ok, axis=1, out=cb[:, 1:])
        win_bad = np.take(cb, end_flat) - cb[:, :NS]
        window = ((S >= ix.opt_earliest[opts][:, None]) & (S <= ix.opt_latest[opts][:, None])
                  & (ix.avail_run[n, a:hs + 1] >= d[:, None]))
        valid = window & (win_bad == 0)
        if exclude is not None:
            valid &= ~((n[:, None] == exclude[0]) & (S == exclude[1]))
        if not valid.any():
            if diagnose is not None:
                diagnose.append(why_no_window(window, cap_ok, head_ok, feed_ok, end, battery))
            return None
        total = self._window_cost(j, opts, n, d, S, NS, energy, imp1)
        total = np.where(valid, total, np.inf)
        if self.earliest:  # earliest start first, marginal cost breaks ties
            k = int(np.argmin(np.where(valid, S * _EARLY + total.clip(-_EARLY / 4, _EARLY / 4),
                                       np.inf)))
        else:
            k = int(np.argmin(total))
        kk, u = divmod(k, NS)
        return Best(int(opts[kk]), int(u + a), float(total[kk, u]))

    def _slot_terms(self, j: int, opts: IntArray, n: IntArray, cols: slice, battery: bool
                    ) -> tuple[FloatArray, FloatArray, BoolArray, BoolArray, BoolArray,
                               BoolArray | None]:
        """Marginal energy cost and feasibility of job ``j`` per (option, slot) in ``cols``.

        Returns
        -------
        m : (K, W) float
            Marginal energy cost of the slot: import at the (battery-shifted) price,
            export lost [money].
        imp1 : (K, W) float
            Grid import with the job added (battery idle) [kW].
        ok : (K, W) bool
            ``cap_ok & head_ok & feed_ok``.
        cap_ok, head_ok : (K, W) bool
            Every resource fits; the import stays within the headroom (plus the
            discharge limit with ``battery``).
        feed_ok : (K, W) bool or None
            The feeder's net import stays within its headroom (None: no node of
            ``opts`` is on a feeder).
        """
        st = self.state
        ix = st.index
        dt = ix.dt
        p = ix.opt_power[opts]
        on = st.on[n, cols]
        L = st.load[n, cols]
        idle = ix.idle_kw[n][:, None]
        new = L + p[:, None] + np.where(on, 0.0, idle)
        # marginal energy cost per slot: import at the (battery-shifted) price, export lost
        c = ix.import_cost[n, cols]
        shifting = st.budget[n] > 1e-9
        if shifting.any():
            shift = st.shift_price[n][:, None]
            c = np.where(shifting[:, None], np.minimum(c, shift), c)
        if self._has_pv[n].any():
            pv = ix.pv[n, cols]
            e = st.exp_price[n, cols]
            X = ix.export_kw[n][:, None]
            imp0 = np.maximum(L - pv, 0.0)
            imp1 = np.maximum(new - pv, 0.0)
            sur0 = np.minimum(np.maximum(pv - L, 0.0), X)
            sur1 = np.minimum(np.maximum(pv - new, 0.0), X)
            m = dt * (c * (imp1 - imp0) - e * (sur1 - sur0))
        else:  # no PV: import = load, no export (the same numbers, fewer operations)
            imp0, imp1 = L, new
            sur0 = sur1 = np.zeros_like(L)
            m = dt * (c * (imp1 - imp0))
        # feasibility per slot
        room = st.room[n]
        u = ix.usage[j]
        cap_ok = room[:, 0, cols] >= u[0] - _CAP_TOL
        for r in range(1, u.size):
            cap_ok &= room[:, r, cols] >= u[r] - _CAP_TOL
        if battery or self._has_limit[n].any():
            lim = ix.headroom[n, cols]
            if battery:
                lim = lim + ix.discharge_kw[n][:, None]
            head_ok = imp1 <= lim + _FLOW_TOL
            ok = cap_ok & head_ok
        else:
            head_ok = np.ones_like(cap_ok)
            ok = cap_ok.copy()
        f = ix.feeder_of[n]
        feed_ok = None
        if (f >= 0).any():
            has = f >= 0
            dnet = (imp1 - imp0) - np.where(ix.export_price[n, cols] > 0, sur1 - sur0, 0.0)
            feed_ok = np.ones_like(ok)
            fh = ix.feeder_headroom[f[has], cols]
            feed_ok[has] = ((st.fnet[f[has], cols] + dnet[has] <= fh + _FLOW_TOL)
                            | ~np.isfinite(fh))
            ok &= feed_ok
        return m, imp1, ok, cap_ok, head_ok, feed_ok

    def _window_cost(self, j: int, opts: IntArray, n: IntArray, d: IntArray, S: IntArray,
                     NS: int, energy: FloatArray, imp1: FloatArray) -> FloatArray:
        """Window energy cost plus switching, demand charge, latency and tardiness [money].

        ``energy`` is the (K, NS) marginal energy cost of each window; ``S`` the
        (1, NS) start slots; ``imp1`` the (K, W) import with the job added.
        """
        ix = self.state.index
        total = energy
        # switching: boundaries s .. s+d of the on-state of sleeping nodes
        sl = np.nonzero(ix.can_sleep[n])[0]
        if sl.size:
            total = total.copy()
            total[sl] += switch_delta(self.state, n[sl], d[sl], S)
        # demand charge: rise of the node's peak import
        dc = ix.demand_charge[n]
        if (dc > 0).any():
            peak = np.maximum(self.state.load[n] - ix.pv[n], 0.0).max(axis=1, initial=0.0)
            wmax = window_max_rows(imp1, d)[:, :NS]
            total = total + dc[:, None] * np.maximum(0.0, wmax - peak[:, None])
        total = total + ix.opt_latency_cost[opts][:, None]
        rate = ix.tardiness_rate[j]
        if rate > 0 and math.isfinite(ix.deadline[j]):
            total = total + rate * np.maximum(0.0, S + d[:, None] - ix.deadline[j])
        return total

    # ------------------------------------------------------------------ candidates
    def candidate_chunks(self, j: int) -> Iterator[IntArray]:
        """Options of job ``j`` in chunks of :attr:`candidates`, by static score.

        Nodes without enough free GPU-slots left in the whole horizon are skipped;
        the first chunk holds the cheapest half by :attr:`opt_score` and the half
        on the nodes with the most free GPU-slots; later chunks (doubling in size)
        follow the static score.
        """
        st = self.state
        ix = st.index
        opts = ix.options_of(j)
        if opts.size <= self.candidates:
            yield opts
            return
        need = ix.usage[j, 0] * ix.opt_dur[opts]
        room = opts[st.free_gpu[ix.opt_node[opts]] >= need - _CAP_TOL]
        if room.size <= self.candidates:
            yield room
            return
        sc = self.opt_score[room]
        # first chunk: half cheapest by static score, half the emptiest nodes
        half = max(1, self.candidates // 2)
        cheap = np.argpartition(sc, half - 1)[:half]
        free = st.free_gpu[ix.opt_node[room]].copy()
        free[cheap] = -np.inf
        empty = np.argpartition(-free, self.candidates - half - 1)[: self.candidates - half]
        first = np.union1d(cheap, empty)
        yield np.sort(room[first])
        rest = np.ones(room.size, dtype=bool)
        rest[first] = False
        ranked = room[rest][np.argsort(sc[rest], kind="stable")]
        # later chunks grow geometrically: few scans when the cheap nodes are full
        a, size = 0, 2 * self.candidates
        while a < ranked.size:
            yield np.sort(ranked[a:a + size])
            a += size
            size *= 2

    def best_insertion(self, j: int, *, exclude: tuple[int, int] | None = None,
                       diagnose: list[str] | None = None, battery: bool = False,
                       full: bool = False) -> Best | None:
        """Cheapest insertion of job ``j`` (chunk by chunk of candidates, then all options).

        Returns the cheapest place in the first chunk that has one; with ``full`` all
        options are scored together.
        """
        ix = self.state.index
        opts = ix.options_of(j)
        if opts.size == 0:
            return None
        seen = 0
        for cand in ([opts] if full else self.candidate_chunks(j)):
            best = self.scan(j, cand, battery=battery, exclude=exclude)
            if best is not None:
                return best
            seen += cand.size
        if diagnose is not None or seen < opts.size:
            return self.scan(j, opts, battery=battery, exclude=exclude, diagnose=diagnose)
        return None


# ---------------------------------------------------------------------- window helpers


def switch_delta(state: GreedyState, n: IntArray, d: IntArray, S: IntArray) -> FloatArray:
    """Change of start-up + shut-down cost when slots ``s .. s+d−1`` are switched on.

    Boundaries ``s .. s+d`` (prefix sums of ``b``, :meth:`GreedyState.bound_rows`)
    are replaced by a start-up when the node is off before ``s`` and a shut-down
    when it is off after the window (after ``T−1``: only when ``end_off``).

    Parameters
    ----------
    state : GreedyState
        Current on-state (its ``ext`` and ``bcum`` rows).
    n, d : (K,) int
        Node and duration [slots] of each option.
    S : (1, NS) int
        Start slots.

    Returns
    -------
    (K, NS) float
        The change [money].
    """
    ix, T = state.index, state.T
    lo = int(S.min())
    hi = min(int(S.max()) + int(d.max()) + 2, T + 2)
    ext, cb = state.ext[n, lo:hi], state.bcum[n, lo:hi]   # only the columns the windows touch
    base = np.arange(n.size)[:, None] * (hi - lo)          # flat takes: 5x a 2-D gather
    end = S + d[:, None]
    last = np.minimum(end + 1, T + 1) - lo + base
    first = (S - lo) + base
    old = np.take(cb, last) - np.take(cb, first)
    new_up = ix.startup_cost[n][:, None] * ~np.take(ext, first)
    nxt = np.where(end >= T, ~ix.end_off[n][:, None], np.take(ext, last))
    new_down = ix.shutdown_cost[n][:, None] * ~nxt
    return np.asarray(new_up + new_down - old)


def why_no_window(window: BoolArray, cap_ok: BoolArray, head_ok: BoolArray,
                  feed_ok: BoolArray | None, end: IntArray, battery: bool) -> str:
    """Reason no window fits: availability, capacity, headroom or feeder headroom.

    ``window`` marks the (option, start) pairs inside the start window and
    available long enough; ``cap_ok``/``head_ok``/``feed_ok`` are the per-slot
    masks of :meth:`Scorer._slot_terms`; ``end`` the local end slot of each window.
    """
    def any_window(mask: BoolArray) -> bool:
        K, W = mask.shape
        NS = end.shape[1]
        c = np.zeros((K, W + 1), dtype=np.int64)
        np.cumsum(~mask, axis=1, out=c[:, 1:])
        bad = np.take_along_axis(c, end, axis=1) - c[:, :NS]
        return bool((window & (bad == 0)).any())

    if not window.any():
        return "window too short: no eligible node is available long enough in its window"
    if not any_window(cap_ok):
        return ("capacity: every eligible node is fully used by other jobs in every "
                "window where it could run")
    extra = " plus what the battery could discharge" if battery else ""
    if not any_window(cap_ok & head_ok):
        return ("headroom: where capacity is free, the node's import would exceed its grid "
                f"headroom after PV{extra}")
    return "feeder headroom: the feeder's net import would exceed its headroom"


def window_max_rows(a: FloatArray, d: IntArray) -> FloatArray:
    """``out[k, s] = max(a[k, s : s + d[k]])`` (clipped at the end), by a sparse table."""
    K, T = a.shape
    tables = sparse_max_tables(a, max(int(d.max(initial=1)), 1))
    lev = np.floor(np.log2(np.maximum(d, 1))).astype(np.int64)
    out = np.empty((K, T))
    S = np.arange(T)
    for lv in np.unique(lev):
        rows = np.nonzero(lev == lv)[0]
        tab = tables[int(lv)][rows]
        span = 1 << int(lv)
        second = np.minimum(S[None, :] + d[rows][:, None] - span, T - 1)
        second = np.maximum(second, S[None, :])
        out[rows] = np.maximum(tab, np.take_along_axis(tab, second, axis=1))
    return out
