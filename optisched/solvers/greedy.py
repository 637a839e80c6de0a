"""``greedy``: vectorized marginal-cost insertion, exact dispatch and local search.

The algorithm (``formulations/greedy.md`` has the full statement):

1. **Order.** Pinned jobs first (they are fixed), then must-run jobs before
   droppable ones; within each, least *slack* first (the widest start window of
   the job over its eligible nodes, ``opt_latest − opt_earliest`` [slots]), then
   larger reference energy ``power_kw · duration_min / 60`` [kWh] first, then
   larger drop penalty first, then file order.
2. **Construction.** For each job, every eligible (node, start) pair is scored at
   once in numpy over ``(K options × T slots)`` arrays: the marginal energy cost
   of the added load given the node's current load, PV surplus, export and an
   estimate of what the battery can still shift; the switching cost of waking a
   sleeping node (idle draw in the newly-on slots, start-up and shut-down); the
   latency and tardiness cost. Window sums use prefix sums over slots. Windows
   that break capacity (every resource), availability, the node's grid headroom
   or the feeder headroom are excluded. The cheapest pair wins; a droppable job
   is dropped when its penalty is lower, a must-run job that fits nowhere makes
   the plan infeasible with a message naming the job and the reason.
3. **Dispatch.** :func:`optisched.dispatch.dispatch_load` gives the exact
   cost-optimal flows for the placement, per dispatch group (a coupled feeder or
   a single node).
4. **Local search** until ``time_limit`` (default 1 s) or ``iterations`` moves:
   relocate a job (re-insert it at its best estimated place), hop it to a random
   other node, shift it on its node, swap two jobs between nodes, insert a
   dropped job, drop an optional job, keep a sleeping node on across a short gap
   (or stop doing so), and empty
   a lightly used sleeping node. A move is kept only when the exact objective
   (re-dispatched affected groups + switching + latency + tardiness + drop, the
   evaluator's objective) falls. The incumbent is always a complete plan.

Options: :class:`~optisched.solvers.options.GreedyOptions` (``iterations``,
``candidates``, ``improve``, ``second_start``).

Determinism: same input, seed and options give the same plan when the search
ends by ``iterations`` or by running out of improving moves; a search cut by
``time_limit`` depends on machine speed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from optisched.dispatch import dispatch_groups, dispatch_load
from optisched.domain import Problem
from optisched.index import Index, explain_job, sparse_max_tables
from optisched.plan import Flows, Plan, Status
from optisched.precheck import precheck
from optisched.solvers.base import SolveOptions, plan_from_placement
from optisched.solvers.options import GreedyOptions

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "GreedySearch",
    "job_order",
    "solve_greedy",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_TIME_LIMIT = 1.0
"""Local-search budget when ``time_limit`` is not given [s]."""
DEFAULT_CANDIDATES = 128
"""Most eligible nodes scored per job in construction (cheapest by a static score)."""
LARGE_CANDIDATES = 32
"""The same on instances with more than ``_LARGE_OPTIONS`` options."""
_LARGE_OPTIONS = 1_000_000
_CAP_TOL = 1e-9
_FLOW_TOL = 1e-7
_IMPROVE_RTOL = 1e-9
_EARLY = 1e12
_SECOND_START_MAX_OPTIONS = 20_000
_BASELINE_START_MAX_OPTIONS = 20_000


def job_order(index: Index) -> IntArray:
    """Order in which construction places the jobs.

    Keys, most significant first: pinned jobs first; must-run before droppable;
    least slack ``max_o (opt_latest − opt_earliest)`` [slots]; larger energy
    ``power_kw · duration_min / 60`` [kWh]; larger drop penalty; file order.

    Returns
    -------
    (J,) int
        Job positions in placement order.
    """
    J = index.J
    counts = np.diff(index.opt_job_ptr)
    slack = np.full(J, np.iinfo(np.int64).max // 4, dtype=np.int64)
    if index.opt_job.size:
        width = index.opt_latest - index.opt_earliest
        has = counts > 0
        slack[has] = np.maximum.reduceat(width, index.opt_job_ptr[:-1][has])
    energy = index.job_power * index.duration_min / 60.0
    penalty = np.where(np.isnan(index.drop_penalty), np.inf, index.drop_penalty)
    keys = (np.arange(J), -penalty, -energy, slack, ~index.must_run, ~index.pinned)
    return np.lexsort(keys).astype(np.int64)


@dataclass
class _Best:
    """Cheapest (option, start) found for a job by :meth:`GreedySearch.scan`."""

    option: int
    start: int
    cost: float


@dataclass
class _Move:
    """A tentative change: job re-assignments and bridge changes, with undo data."""

    jobs: list[tuple[int, int, int]] = field(default_factory=list)  # (j, option|-1, start)
    bridges: list[tuple[int, BoolArray]] = field(default_factory=list)  # (node, new row)


class GreedySearch:
    """State and moves of the greedy solver (also the engine of the re-planner).

    Parameters
    ----------
    problem : Problem
        The problem.
    index : Index
        Its compiled index.
    candidates : int
        Most eligible nodes scored per job before falling back to all.

    Attributes
    ----------
    node, start : (J,) int
        Current placement (node -1 = dropped or not yet placed).
    load : (N, T) float
        ``on · idle_kw + Σ job power`` [kW].
    on : (N, T) bool
        On/off state.
    """

    def __init__(self, problem: Problem, index: Index,
                 candidates: int = DEFAULT_CANDIDATES) -> None:
        self.problem = problem
        self.index = index
        self.candidates = max(1, int(candidates))
        ix = index
        N, T, J, R = ix.N, ix.T, ix.J, len(ix.resources)
        self.N, self.T, self.J, self.R = N, T, J, R
        self.node = np.full(J, -1, dtype=np.int64)
        self.start = np.zeros(J, dtype=np.int64)
        self.opt = np.full(J, -1, dtype=np.int64)
        self.jobs_kw = np.zeros((N, T))
        self.use = np.zeros((N, T, R))
        self.busy = np.zeros((N, T), dtype=np.int64)
        self.bridge = np.zeros((N, T), dtype=bool)
        self.base_on = (~ix.can_sleep[:, None]) & ix.available
        self.on = self.base_on.copy()
        self.load = self.on * ix.idle_kw[:, None]
        self.exp_price = np.maximum(ix.export_price, 0.0)
        self.net = self._net_rows(np.arange(N))
        self.ext = np.zeros((N, T + 2), dtype=bool)
        """On-state with the state before slot 0 and after slot T−1 added."""
        self.bcum = np.zeros((N, T + 2))
        """Prefix sums of the switching cost on boundaries 0..T (see ``_bound_rows``)."""
        self._bound_rows(np.nonzero(ix.can_sleep)[0])
        F = len(ix.feeder_ids)
        self.fnet = np.zeros((F, T))
        has = ix.feeder_of >= 0
        if F:
            np.add.at(self.fnet, ix.feeder_of[has], self.net[has])
        self.free_gpu = (ix.capacity[:, 0][:, None] * ix.available).sum(axis=1).astype(float)
        self._battery_estimates()
        self._opt_score: FloatArray | None = None
        groups, _ = dispatch_groups(ix)
        self.groups = groups
        self.group_of = np.zeros(N, dtype=np.int64)
        for g, members in enumerate(groups):
            self.group_of[members] = g
        # exact objective bookkeeping (filled by evaluate_all)
        self.gcost = np.zeros(len(groups))
        self.flows = Flows.zeros(N, T)
        self.sw = np.zeros(N)
        self.jcost = np.zeros(J)
        self.evaluated = False
        self.earliest = False
        """Construction rule: False = cheapest marginal cost, True = earliest start."""

    # ------------------------------------------------------------------ static
    def _battery_estimates(self) -> None:
        """Price at which a node's battery can serve load, and the energy it can shift.

        ``shift_price = min_t(charge cost) / (eff_c · eff_d) + degradation`` where the
        charge cost of a slot is the export price given up when PV is in surplus
        over the always-on load, else ``import_cost`` [money/kWh]; ``budget =
        (soc_max − soc_min) · eff_d`` [kWh] (zero without battery).
        """
        ix = self.index
        surplus = ix.pv > self.load + 1e-9
        charge_cost = np.where(surplus, self.exp_price, ix.import_cost)
        cheapest = charge_cost.min(axis=1, initial=np.inf) if self.T else np.zeros(self.N)
        eff = ix.eff_charge * ix.eff_discharge
        has = ix.discharge_kw > 0
        self.shift_price = np.where(has, cheapest / np.maximum(eff, 1e-9) + ix.degradation,
                                    np.inf)
        self.budget = np.where(has, (ix.soc_max - ix.soc_min) * ix.eff_discharge, 0.0)

    @property
    def opt_score(self) -> FloatArray:
        """(O,) static score of each option for candidate pruning [money] (computed once)."""
        if self._opt_score is None:
            self._opt_score = self._static_scores()
        return self._opt_score

    def _static_scores(self) -> FloatArray:
        """Per-option score for candidate pruning: energy at the window's mean price + latency."""
        ix = self.index
        eff = np.where(ix.pv > self.load + 1e-9, self.exp_price, ix.import_cost)
        pref = np.zeros((self.N, self.T + 1))
        pref[:, 1:] = np.cumsum(eff, axis=1)
        o_n = ix.opt_node
        a = np.clip(ix.opt_earliest, 0, self.T)
        b = np.clip(ix.opt_latest + ix.opt_dur, 0, self.T)
        width = np.maximum(b - a, 1)
        mean = (pref[o_n, b] - pref[o_n, a]) / width
        return np.asarray(ix.opt_power * ix.opt_dur * ix.dt * mean + ix.opt_latency_cost)

    # ------------------------------------------------------------------ state
    def _net_rows(self, rows: IntArray) -> FloatArray:
        """Net import ``import − export`` of nodes with the battery idle [kW]."""
        ix = self.index
        L, pv = self.load[rows], ix.pv[rows]
        imp = np.maximum(L - pv, 0.0)
        exp = np.where(ix.export_price[rows] > 0,
                       np.minimum(np.maximum(pv - L, 0.0), ix.export_kw[rows][:, None]), 0.0)
        return np.asarray(imp - exp)

    def _bound_rows(self, rows: IntArray) -> None:
        """Recompute :attr:`ext` and :attr:`bcum` of nodes ``rows``.

        ``b_k`` is the start-up or shut-down cost on the boundary between slots ``k−1``
        and ``k`` (``k = 0..T``; boundary 0 from ``initially_on``, boundary ``T`` a
        shut-down only when ``end_off``).
        """
        if rows.size == 0:
            return
        ix, T = self.index, self.T
        on = self.on[rows]
        ext = np.empty((rows.size, T + 2), dtype=bool)
        ext[:, 0] = ix.initially_on[rows]
        ext[:, 1:T + 1] = on
        ext[:, T + 1] = np.where(ix.end_off[rows], False, on[:, T - 1])
        su = ix.startup_cost[rows][:, None]
        sd = ix.shutdown_cost[rows][:, None]
        b = su * (~ext[:, :T + 1] & ext[:, 1:]) + sd * (ext[:, :T + 1] & ~ext[:, 1:])
        self.ext[rows] = ext
        self.bcum[rows, 0] = 0.0
        self.bcum[rows, 1:] = np.cumsum(b, axis=1)

    def _refresh(self, n: int) -> None:
        ix = self.index
        self.on[n] = self.base_on[n] | (self.busy[n] > 0) | (self.bridge[n] & ix.available[n])
        self.load[n] = self.on[n] * ix.idle_kw[n] + self.jobs_kw[n]
        f = int(ix.feeder_of[n])
        new = self._net_rows(np.array([n]))[0]
        if f >= 0:
            self.fnet[f] += new - self.net[n]
        self.net[n] = new
        if ix.can_sleep[n]:
            self._bound_rows(np.array([n]))

    def place(self, j: int, o: int, s: int) -> None:
        """Put job ``j`` on option ``o`` at start ``s`` (no checks)."""
        ix = self.index
        n = int(ix.opt_node[o])
        a, b = max(0, s), min(self.T, s + int(ix.opt_dur[o]))
        self.node[j], self.start[j], self.opt[j] = n, s, o
        self.jobs_kw[n, a:b] += ix.opt_power[o]
        self.use[n, a:b] += ix.usage[j]
        self.busy[n, a:b] += 1
        self.free_gpu[n] -= ix.usage[j, 0] * (b - a)
        self.budget[n] -= ix.opt_power[o] * (b - a) * ix.dt
        self._refresh(n)

    def unplace(self, j: int) -> None:
        """Remove job ``j`` from its node (it becomes unplaced)."""
        o = int(self.opt[j])
        if o < 0:
            return
        ix = self.index
        n, s = int(self.node[j]), int(self.start[j])
        a, b = max(0, s), min(self.T, s + int(ix.opt_dur[o]))
        self.jobs_kw[n, a:b] -= ix.opt_power[o]
        self.use[n, a:b] -= ix.usage[j]
        self.busy[n, a:b] -= 1
        self.free_gpu[n] += ix.usage[j, 0] * (b - a)
        self.budget[n] += ix.opt_power[o] * (b - a) * ix.dt
        zero = self.busy[n, a:b] == 0
        self.jobs_kw[n, a:b][zero] = 0.0  # no drift from repeated add/remove
        self.use[n, a:b][zero] = 0.0
        self.node[j], self.start[j], self.opt[j] = -1, 0, -1
        self._refresh(n)

    def set_bridge(self, n: int, row: BoolArray) -> None:
        """Set the kept-on slots of node ``n`` (only effective where it may sleep)."""
        self.bridge[n] = row & self.index.available[n] & bool(self.index.can_sleep[n])
        self._refresh(n)

    # ------------------------------------------------------------------ scoring
    def fits(self, j: int, o: int, s: int) -> bool:
        """Whether option ``o`` at ``s`` fits the current state (window, capacity, headroom)."""
        if not self.index.start_ok(o, s):
            return False
        best = self.scan(j, np.array([o]), only_start=s)
        return best is not None

    def scan(self, j: int, opts: IntArray, *, battery: bool = False,
             only_start: int | None = None, exclude: tuple[int, int] | None = None,
             diagnose: list[str] | None = None) -> _Best | None:
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
        _Best or None
            The cheapest pair and its estimated marginal cost [money].
        """
        ix = self.index
        T, dt = self.T, ix.dt
        if opts.size == 0:
            return None
        n = ix.opt_node[opts]
        d = ix.opt_dur[opts]
        p = ix.opt_power[opts]
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
        cols = slice(a, b)
        W = b - a
        on = self.on[n, cols]
        L = self.load[n, cols]
        pv = ix.pv[n, cols]
        idle = ix.idle_kw[n][:, None]
        new = L + p[:, None] + np.where(on, 0.0, idle)
        # marginal energy cost per slot: import at the (battery-shifted) price, export lost
        c = ix.import_cost[n, cols]
        shift = self.shift_price[n][:, None]
        c = np.where((self.budget[n] > 1e-9)[:, None], np.minimum(c, shift), c)
        e = self.exp_price[n, cols]
        X = ix.export_kw[n][:, None]
        imp0 = np.maximum(L - pv, 0.0)
        imp1 = np.maximum(new - pv, 0.0)
        sur0 = np.minimum(np.maximum(pv - L, 0.0), X)
        sur1 = np.minimum(np.maximum(pv - new, 0.0), X)
        m = dt * (c * (imp1 - imp0) - e * (sur1 - sur0))
        # feasibility per slot
        cap_ok = (self.use[n, cols] + ix.usage[j]
                  <= ix.capacity[n][:, None, :] + _CAP_TOL).all(axis=2)
        lim = ix.headroom[n, cols]
        if battery:
            lim = lim + ix.discharge_kw[n][:, None]
        head_ok = imp1 <= lim + _FLOW_TOL
        ok = cap_ok & head_ok
        f = ix.feeder_of[n]
        feed_ok = None
        if (f >= 0).any():
            has = f >= 0
            dnet = (imp1 - imp0) - np.where(ix.export_price[n, cols] > 0, sur1 - sur0, 0.0)
            feed_ok = np.ones_like(ok)
            fh = ix.feeder_headroom[f[has], cols]
            feed_ok[has] = ((self.fnet[f[has], cols] + dnet[has] <= fh + _FLOW_TOL)
                            | ~np.isfinite(fh))
            ok &= feed_ok
        K = opts.size
        NS = hs - a + 1
        U = np.arange(NS)[None, :]  # local start
        S = U + a
        end = np.minimum(U + d[:, None], W)
        rows = np.arange(K)[:, None]
        cm = np.zeros((K, W + 1))
        np.cumsum(m, axis=1, out=cm[:, 1:])
        energy = cm[rows, end] - cm[:, :NS]
        cb = np.zeros((K, W + 1), dtype=np.int64)
        np.cumsum(~ok, axis=1, out=cb[:, 1:])
        win_bad = cb[rows, end] - cb[:, :NS]
        window = ((S >= ix.opt_earliest[opts][:, None]) & (S <= ix.opt_latest[opts][:, None])
                  & (ix.avail_run[n, a:hs + 1] >= d[:, None]))
        valid = window & (win_bad == 0)
        if exclude is not None:
            valid &= ~((n[:, None] == exclude[0]) & (S == exclude[1]))
        if not valid.any():
            if diagnose is not None:
                diagnose.append(self._why(window, cap_ok, head_ok, feed_ok, end, battery))
            return None
        total = energy
        # switching: boundaries s .. s+d of the on-state of sleeping nodes
        sl = np.nonzero(ix.can_sleep[n])[0]
        if sl.size:
            total = total.copy()
            total[sl] += self._switch_delta(n[sl], d[sl], S)
        # demand charge: rise of the node's peak import
        dc = ix.demand_charge[n]
        if (dc > 0).any():
            peak = np.maximum(self.load[n] - ix.pv[n], 0.0).max(axis=1, initial=0.0)
            wmax = _window_max_rows(imp1, d)[:, :NS]
            total = total + dc[:, None] * np.maximum(0.0, wmax - peak[:, None])
        total = total + ix.opt_latency_cost[opts][:, None]
        rate = ix.tardiness_rate[j]
        if rate > 0 and math.isfinite(ix.deadline[j]):
            total = total + rate * np.maximum(0.0, S + d[:, None] - ix.deadline[j])
        total = np.where(valid, total, np.inf)
        if self.earliest:  # earliest start first, marginal cost breaks ties
            k = int(np.argmin(np.where(valid, S * _EARLY + total.clip(-_EARLY / 4, _EARLY / 4),
                                       np.inf)))
        else:
            k = int(np.argmin(total))
        kk, u = divmod(k, NS)
        return _Best(int(opts[kk]), int(u + a), float(total[kk, u]))

    def _switch_delta(self, n: IntArray, d: IntArray, S: IntArray) -> FloatArray:
        """Change of start-up + shut-down cost when slots ``s .. s+d−1`` are switched on.

        Boundaries ``s .. s+d`` (prefix sums of ``b``) are replaced by a start-up
        when the node is off before ``s`` and a shut-down when it is off after the
        window (after ``T−1``: only when ``end_off``).
        """
        ix, T = self.index, self.T
        ext, cb = self.ext[n], self.bcum[n]
        rows = np.arange(n.size)[:, None]
        end = S + d[:, None]
        last = np.minimum(end + 1, T + 1)
        old = cb[rows, last] - cb[rows, np.broadcast_to(S, end.shape)]
        new_up = ix.startup_cost[n][:, None] * ~ext[rows, np.broadcast_to(S, end.shape)]
        nxt = np.where(end >= T, ~ix.end_off[n][:, None], ext[rows, last])
        new_down = ix.shutdown_cost[n][:, None] * ~nxt
        return np.asarray(new_up + new_down - old)

    def _why(self, window: BoolArray, cap_ok: BoolArray, head_ok: BoolArray,
             feed_ok: BoolArray | None, end: IntArray, battery: bool) -> str:
        """Reason no window fits: capacity, headroom or feeder headroom."""
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

    def candidate_chunks(self, j: int) -> Iterator[IntArray]:
        """Options of job ``j`` in chunks of :attr:`candidates`, by static score.

        Nodes without enough free GPU-slots left in the whole horizon are skipped;
        the first chunk holds the cheapest half by :attr:`opt_score` and the half
        on the nodes with the most free GPU-slots; later chunks (doubling in size)
        follow the static score.
        """
        ix = self.index
        opts = ix.options_of(j)
        if opts.size <= self.candidates:
            yield opts
            return
        need = ix.usage[j, 0] * ix.opt_dur[opts]
        room = opts[self.free_gpu[ix.opt_node[opts]] >= need - _CAP_TOL]
        if room.size <= self.candidates:
            yield room
            return
        sc = self.opt_score[room]
        # first chunk: half cheapest by static score, half the emptiest nodes
        half = max(1, self.candidates // 2)
        cheap = np.argpartition(sc, half - 1)[:half]
        free = self.free_gpu[ix.opt_node[room]].copy()
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
                       full: bool = False) -> _Best | None:
        """Cheapest insertion of job ``j`` (chunk by chunk of candidates, then all options).

        Returns the cheapest place in the first chunk that has one; with ``full`` all
        options are scored together.
        """
        ix = self.index
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

    # ------------------------------------------------------------------ exact objective
    def job_terms(self, j: int) -> float:
        """Latency + tardiness of a placed job, or its drop penalty (``inf`` if must-run)."""
        ix = self.index
        o = int(self.opt[j])
        if o < 0:
            pen = ix.drop_penalty[j]
            return math.inf if math.isnan(pen) else float(pen)
        end = int(self.start[j]) + int(ix.opt_dur[o])
        return float(ix.opt_latency_cost[o]) + float(ix.tardiness_cost(j, end))

    def switching(self, rows: IntArray) -> FloatArray:
        """Start-up + shut-down cost of nodes ``rows`` for the current on-state [money]."""
        ix = self.index
        on = self.on[rows]
        prev = np.concatenate([ix.initially_on[rows][:, None], on[:, :-1]], axis=1)
        ups = (on & ~prev).sum(axis=1)
        downs = (~on & prev).sum(axis=1) + (ix.end_off[rows] & on[:, -1])
        return np.asarray(ups * ix.startup_cost[rows] + downs * ix.shutdown_cost[rows])

    def _dispatch(self, groups: list[int]) -> tuple[bool, dict[int, float], object, str]:
        members = np.concatenate([self.groups[g] for g in groups])
        res = dispatch_load(self.index, self.load, members)
        costs: dict[int, float] = {}
        if res.nodes.size:
            pos = np.full(self.N, -1, dtype=np.int64)
            pos[res.nodes] = np.arange(res.nodes.size)
            for g in groups:
                costs[g] = float(np.sum(res.cost[pos[self.groups[g]]]))
        return bool(res.feasible), costs, res, res.message

    def evaluate_all(self, prev: Flows | None = None) -> tuple[bool, str]:
        """Dispatch every group and price the whole plan exactly.

        Parameters
        ----------
        prev : Flows, optional
            Flows of an earlier plan of the *same* node data (re-planning at the same
            ``now`` without forecast or state changes): groups whose load and on-state
            are unchanged keep those flows instead of being dispatched again.
        """
        groups = list(range(len(self.groups)))
        if prev is not None and prev.load.shape == self.load.shape:
            same = (prev.load == self.load).all(axis=1) & (prev.on == self.on).all(axis=1)
            kept = [g for g in groups if same[self.groups[g]].all()]
            for g in kept:
                rows = self.groups[g]
                for name in ("pv_used", "grid_import", "grid_export", "charge", "discharge",
                             "soc"):
                    getattr(self.flows, name)[rows] = getattr(prev, name)[rows]
            groups = [g for g in groups if not same[self.groups[g]].all()]
        ok, msg = True, ""
        if groups:
            ok, _, res, msg = self._dispatch(groups)
            res.write_into(self.flows)  # type: ignore[attr-defined]
        node_cost = self._flow_costs()
        self.gcost = np.asarray(np.bincount(self.group_of, weights=node_cost,
                                            minlength=len(self.groups)), dtype=np.float64)
        if not ok:
            self.gcost[:] = np.inf
        self.sw = self.switching(np.arange(self.N))
        self.jcost = self.all_job_terms()
        self.evaluated = ok
        return ok, msg

    def _flow_costs(self) -> FloatArray:
        """Energy cost of each node's current flows (SPEC §3 energy..demand) [money]."""
        ix, f = self.index, self.flows
        dt = ix.dt
        return np.asarray(
            dt * (ix.import_cost * f.grid_import - ix.export_price * f.grid_export).sum(axis=1)
            + dt * ix.degradation * f.discharge.sum(axis=1)
            + ix.demand_charge * f.grid_import.max(axis=1, initial=0.0))

    def all_job_terms(self) -> FloatArray:
        """:meth:`job_terms` of every job, vectorized [money]."""
        ix = self.index
        out = np.where(np.isnan(ix.drop_penalty), np.inf, ix.drop_penalty)
        placed = np.nonzero(self.opt >= 0)[0]
        if placed.size:
            o = self.opt[placed]
            end = self.start[placed] + ix.opt_dur[o]
            out[placed] = ix.opt_latency_cost[o] + ix.tardiness_cost(placed, end)
        return np.asarray(out, dtype=float)

    def place_many(self, jobs: IntArray, opts: IntArray, starts: IntArray) -> None:
        """Place many jobs at once (no checks), by difference arrays."""
        ix = self.index
        if jobs.size == 0:
            return
        n = ix.opt_node[opts]
        a = np.clip(starts, 0, self.T)
        b = np.clip(starts + ix.opt_dur[opts], 0, self.T)
        self.node[jobs], self.start[jobs], self.opt[jobs] = n, starts, opts
        diff = np.zeros((self.N, self.T + 1, self.R + 2))
        vals = np.concatenate([ix.opt_power[opts][:, None], ix.usage[jobs],
                               np.ones((jobs.size, 1))], axis=1)
        np.add.at(diff, (n, a), vals)
        np.add.at(diff, (n, b), -vals)
        acc = np.cumsum(diff, axis=1)[:, : self.T]
        self.jobs_kw += acc[:, :, 0]
        self.use += acc[:, :, 1:self.R + 1]
        self.busy += np.rint(acc[:, :, -1]).astype(np.int64)
        np.add.at(self.free_gpu, n, -ix.usage[jobs, 0] * (b - a))
        np.add.at(self.budget, n, -ix.opt_power[opts] * (b - a) * ix.dt)
        rows = np.unique(n)
        self.on[rows] = self.base_on[rows] | (self.busy[rows] > 0) | (
            self.bridge[rows] & ix.available[rows])
        self.load[rows] = self.on[rows] * ix.idle_kw[rows][:, None] + self.jobs_kw[rows]
        new = self._net_rows(rows)
        fr = ix.feeder_of[rows]
        has = fr >= 0
        if has.any():
            np.add.at(self.fnet, fr[has], new[has] - self.net[rows[has]])
        self.net[rows] = new
        self._bound_rows(rows[ix.can_sleep[rows]])

    @property
    def objective(self) -> float:
        """Exact objective of the current state (after :meth:`evaluate_all`) [money]."""
        return float(self.gcost.sum() + self.sw.sum() + self.jcost.sum())

    def try_move(self, move: _Move) -> float | None:
        """Apply ``move``; keep it if the exact objective falls, else undo.

        Returns
        -------
        float or None
            The objective change (negative) when kept, None when undone.
        """
        ix = self.index
        undo_jobs = [(j, int(self.opt[j]), int(self.start[j])) for j, _, _ in move.jobs]
        undo_bridges = [(n, self.bridge[n].copy()) for n, _ in move.bridges]
        nodes: set[int] = set()
        for j, _o, _s in move.jobs:
            if self.opt[j] >= 0:
                nodes.add(int(self.node[j]))
                self.unplace(j)
        for j, o, s in move.jobs:
            if o >= 0:
                self.place(j, o, s)
                nodes.add(int(ix.opt_node[o]))
        for n, row in move.bridges:
            self.set_bridge(n, row)
            nodes.add(n)
        rows = np.array(sorted(nodes), dtype=np.int64)
        groups = sorted({int(self.group_of[n]) for n in rows})
        job_ids = [j for j, _, _ in move.jobs]
        new_j = {j: self.job_terms(j) for j in job_ids}
        new_sw = self.switching(rows) if rows.size else np.zeros(0)
        delta = sum(new_j[j] - self.jcost[j] for j in job_ids)
        delta += float(new_sw.sum() - self.sw[rows].sum()) if rows.size else 0.0
        res = None
        feasible = math.isfinite(delta)
        if feasible and groups:
            # cheap pre-test: skip the LP when even a free energy change cannot help
            ok, costs, res, _ = self._dispatch(groups)
            feasible = ok
            if ok:
                delta += sum(costs[g] - self.gcost[g] for g in groups)
        if feasible and delta < -_IMPROVE_RTOL * max(1.0, abs(self.objective)):
            for j in job_ids:
                self.jcost[j] = new_j[j]
            self.sw[rows] = new_sw
            if res is not None:
                for g, c in costs.items():
                    self.gcost[g] = c
                res.write_into(self.flows)  # type: ignore[attr-defined]
            return float(delta)
        # undo
        for j, _, _ in move.jobs:
            self.unplace(j)
        for j, o, s in undo_jobs:
            if o >= 0:
                self.place(j, o, s)
        for n, row in undo_bridges:
            self.bridge[n] = row
            self._refresh(n)
        return None

    def final_flows(self) -> Flows:
        """Flows of the current state (exact dispatch), with on/load set."""
        f = self.flows.copy()
        f.on = self.on.copy()
        f.load = self.load.copy()
        return f

    # ------------------------------------------------------------------ construction
    def construct(self, order: IntArray, hint: dict[int, tuple[int, int]] | None = None,
                  trusted: bool = False) -> str | None:
        """Place jobs in ``order`` (pinned as pinned, hinted where they still fit).

        Parameters
        ----------
        order : (J,) int
            Placement order (see :func:`job_order`).
        hint : dict, optional
            ``job -> (node, start)`` to keep when it still fits (warm start).
        trusted : bool
            The hinted placements are known to fit together (same capacities,
            availability and headroom as when they were made): place them at once
            without checks.

        Returns
        -------
        str or None
            Message naming a must-run job that could not be placed and why, else None.
        """
        ix = self.index
        hint = hint or {}
        if trusted and hint:
            js = np.fromiter(hint.keys(), dtype=np.int64, count=len(hint))
            js = js[ix.pinned_node[js] < 0]
            hn = np.array([hint[int(j)][0] for j in js], dtype=np.int64)
            ss = np.array([hint[int(j)][1] for j in js], dtype=np.int64)
            os_ = _find_options(ix, js, hn)
            oc = np.maximum(os_, 0)
            good = ((os_ >= 0) & (ix.opt_earliest[oc] <= ss) & (ss <= ix.opt_latest[oc])
                    & (ix.avail_run[ix.opt_node[oc], np.clip(ss, 0, self.T - 1)]
                       >= ix.opt_dur[oc]))
            self.place_many(js[good], os_[good], ss[good])
            pj = np.nonzero(ix.pinned)[0]
            pj = pj[np.diff(ix.opt_job_ptr)[pj] > 0]
            self.place_many(pj, ix.opt_job_ptr[pj], ix.pinned_start[pj])
        for j in order:
            j = int(j)
            if self.opt[j] >= 0:
                continue
            lo, hi = int(ix.opt_job_ptr[j]), int(ix.opt_job_ptr[j + 1])
            if ix.pinned_node[j] >= 0:
                if hi > lo:
                    self.place(j, lo, int(ix.pinned_start[j]))
                continue
            if j in hint:
                n, s = hint[j]
                o = ix.find_option(j, n)
                if o >= 0 and self.fits(j, o, s):
                    self.place(j, o, s)
                    continue
            why = self.insert(j)
            if why is not None:
                return why
        return None

    def insert(self, j: int) -> str | None:
        """Insert job ``j`` at its cheapest place, drop it, or explain why it cannot run."""
        ix = self.index
        must = bool(ix.must_run[j])
        if ix.opt_job_ptr[j + 1] == ix.opt_job_ptr[j]:
            if must:
                return explain_job(self.problem, ix, j) + " (it must run)"
            return None
        best = self.best_insertion(j)
        if best is None:
            best = self._battery_insertion(j)
        if best is None:
            if not must:
                return None
            reason: list[str] = []
            self.best_insertion(j, diagnose=reason, battery=True, full=True)
            why = reason[0] if reason else "no feasible window"
            return f"job {ix.job_ids[j]}: no feasible placement found ({why}); it must run"
        if not must and float(ix.drop_penalty[j]) < best.cost:
            return None
        self.place(j, best.option, best.start)
        return None

    def _battery_insertion(self, j: int) -> _Best | None:
        """Insert using battery discharge beyond headroom, verified by the exact dispatch."""
        ix = self.index
        best = self.best_insertion(j, battery=True, full=True)
        if best is None:
            return None
        n = int(ix.opt_node[best.option])
        self.place(j, best.option, best.start)
        res = dispatch_load(ix, self.load, np.array([n]))
        self.unplace(j)
        return best if res.feasible else None

    # ------------------------------------------------------------------ local search
    def improve(self, rng: np.random.Generator, deadline: float, max_iters: int | None,
                report: object = None) -> int:
        """Local search until ``deadline`` (perf_counter), ``max_iters`` or no improving move.

        Returns
        -------
        int
            Moves tried.
        """
        ix = self.index
        movable = np.nonzero(~ix.pinned & (np.diff(ix.opt_job_ptr) > 0))[0]
        if movable.size == 0:
            return 0
        kinds = ("relocate", "hop", "shift", "swap", "insert", "drop", "bridge", "empty")
        tried = 0
        stale = 0  # consecutive moves without improvement
        limit = max(200, 4 * movable.size)
        while time.perf_counter() < deadline:
            if max_iters is not None and tried >= max_iters:
                break
            if stale >= limit:
                break
            kind = kinds[int(rng.integers(len(kinds)))]
            move = getattr(self, f"_move_{kind}")(rng, movable)
            tried += 1
            if move is None:
                stale += 1
                continue
            delta = self.try_move(move)
            if delta is None:
                stale += 1
            else:
                stale = 0
                if callable(report):
                    report(self.objective, kind)
        return tried

    def _move_relocate(self, rng: np.random.Generator, movable: IntArray) -> _Move | None:
        placed = movable[self.opt[movable] >= 0]
        if placed.size == 0:
            return None
        j = int(placed[rng.integers(placed.size)])
        n, s, o = int(self.node[j]), int(self.start[j]), int(self.opt[j])
        self.unplace(j)
        best = self.best_insertion(j, exclude=(n, s))
        self.place(j, o, s)
        if best is None:
            return None
        return _Move(jobs=[(j, best.option, best.start)])

    def _move_hop(self, rng: np.random.Generator, movable: IntArray) -> _Move | None:
        """Move a job to a random other eligible node, at its best start there."""
        placed = movable[self.opt[movable] >= 0]
        if placed.size == 0:
            return None
        j = int(placed[rng.integers(placed.size)])
        opts = self.index.options_of(j)
        opts = opts[opts != self.opt[j]]
        if opts.size == 0:
            return None
        o2 = int(opts[rng.integers(opts.size)])
        s, o = int(self.start[j]), int(self.opt[j])
        self.unplace(j)
        best = self.scan(j, np.array([o2]))
        self.place(j, o, s)
        return None if best is None else _Move(jobs=[(j, best.option, best.start)])

    def _move_shift(self, rng: np.random.Generator, movable: IntArray) -> _Move | None:
        placed = movable[self.opt[movable] >= 0]
        if placed.size == 0:
            return None
        j = int(placed[rng.integers(placed.size)])
        o, s = int(self.opt[j]), int(self.start[j])
        step = int(rng.integers(1, 5)) * (1 if rng.random() < 0.5 else -1)
        s2 = s + step
        if not self.index.start_ok(o, s2):
            return None
        self.unplace(j)
        ok = self.fits(j, o, s2)
        self.place(j, o, s)
        return _Move(jobs=[(j, o, s2)]) if ok else None

    def _move_swap(self, rng: np.random.Generator, movable: IntArray) -> _Move | None:
        placed = movable[self.opt[movable] >= 0]
        if placed.size < 2:
            return None
        a, b = (int(x) for x in rng.choice(placed, size=2, replace=False))
        na, nb = int(self.node[a]), int(self.node[b])
        if na == nb:
            return None
        ix = self.index
        oa, ob = ix.find_option(a, nb), ix.find_option(b, na)
        if oa < 0 or ob < 0:
            return None
        sa, sb = int(self.start[b]), int(self.start[a])
        if not (ix.start_ok(oa, sa) and ix.start_ok(ob, sb)):
            return None
        old = [(a, int(self.opt[a]), int(self.start[a])), (b, int(self.opt[b]), int(self.start[b]))]
        self.unplace(a)
        self.unplace(b)
        ok = self.fits(a, oa, sa)
        if ok:
            self.place(a, oa, sa)
            ok = self.fits(b, ob, sb)
            self.unplace(a)
        for j, o, s in old:
            self.place(j, o, s)
        return _Move(jobs=[(a, oa, sa), (b, ob, sb)]) if ok else None

    def _move_insert(self, rng: np.random.Generator, movable: IntArray) -> _Move | None:
        dropped = movable[self.opt[movable] < 0]
        if dropped.size == 0:
            return None
        j = int(dropped[rng.integers(dropped.size)])
        best = self.best_insertion(j)
        return None if best is None else _Move(jobs=[(j, best.option, best.start)])

    def _move_drop(self, rng: np.random.Generator, movable: IntArray) -> _Move | None:
        ix = self.index
        cand = movable[(self.opt[movable] >= 0) & ~ix.must_run[movable]]
        if cand.size == 0:
            return None
        j = int(cand[rng.integers(cand.size)])
        return _Move(jobs=[(j, -1, 0)])

    def _move_bridge(self, rng: np.random.Generator, movable: IntArray) -> _Move | None:
        """Keep a sleeping node on across an off gap, or undo a bridge.

        Gaps: off runs between two on runs (saves a shut-down and a start-up), the
        off head when the node is initially on (same) and the off tail when it need
        not be off at the end (saves a shut-down).
        """
        ix = self.index
        sleepers = np.nonzero(ix.can_sleep)[0]
        if sleepers.size == 0:
            return None
        n = int(sleepers[rng.integers(sleepers.size)])
        if self.bridge[n].any() and rng.random() < 0.3:
            return _Move(bridges=[(n, np.zeros(self.T, dtype=bool))])
        on = self.on[n]
        gaps = _off_gaps(on, ix.available[n], bool(ix.initially_on[n]),
                         not bool(ix.end_off[n]))
        if not gaps:
            return None
        a, b = gaps[int(rng.integers(len(gaps)))]
        idle_cost = ix.idle_kw[n] * ix.dt * float(ix.import_cost[n, a:b].clip(0).sum())
        if idle_cost >= ix.startup_cost[n] + ix.shutdown_cost[n] + 1e-12:
            return None
        row = self.bridge[n].copy()
        row[a:b] = True
        return _Move(bridges=[(n, row)])

    def _move_empty(self, rng: np.random.Generator, movable: IntArray) -> _Move | None:
        """Move every job off a lightly used sleeping node so it can stay off."""
        ix = self.index
        used = np.nonzero(ix.can_sleep & (self.busy.sum(axis=1) > 0))[0]
        if used.size == 0:
            return None
        n = int(used[rng.integers(used.size)])
        jobs = [int(j) for j in np.nonzero(self.node == n)[0]]
        if any(ix.pinned[j] for j in jobs) or len(jobs) > 8:
            return None
        old = [(j, int(self.opt[j]), int(self.start[j])) for j in jobs]
        for j in jobs:
            self.unplace(j)
        saved_bridge = self.bridge[n].copy()
        self.bridge[n] = False
        self._refresh(n)
        blocked = self.base_on[n].any()
        new: list[tuple[int, int, int]] = []
        for j in jobs:
            opts = ix.options_of(j)
            opts = opts[ix.opt_node[opts] != n]
            best = self.scan(j, opts) if not blocked else None
            if best is None:
                break
            self.place(j, best.option, best.start)
            new.append((j, best.option, best.start))
        for j, _, _ in new:
            self.unplace(j)
        self.bridge[n] = saved_bridge
        self._refresh(n)
        for j, o, s in old:
            self.place(j, o, s)
        if len(new) < len(jobs):
            return None
        return _Move(jobs=new, bridges=[(n, np.zeros(self.T, dtype=bool))])


def _find_options(ix: Index, jobs: IntArray, nodes: IntArray) -> IntArray:
    """Option position of each (job, node) pair, -1 when not eligible (vectorized)."""
    key = ix.opt_job * max(ix.N, 1) + ix.opt_node  # sorted: options go by job, then node
    want = jobs * max(ix.N, 1) + nodes
    pos = np.searchsorted(key, want)
    posc = np.minimum(pos, max(key.size - 1, 0))
    hit = (pos < key.size) & (key[posc] == want) if key.size else np.zeros(jobs.size, bool)
    return np.where(hit, posc, -1).astype(np.int64)


def _off_gaps(on: BoolArray, avail: BoolArray, head: bool = False,
              tail: bool = False) -> list[tuple[int, int]]:
    """Maximal off runs ``[a, b)`` strictly between two on slots, all available.

    With ``head`` also the off run before the first on slot, with ``tail`` the one
    after the last on slot (when available throughout).
    """
    idx = np.nonzero(on)[0]
    T = on.size
    if idx.size == 0:
        return []
    out = []
    if head and idx[0] > 0 and avail[: idx[0]].all():
        out.append((0, int(idx[0])))
    for k in range(idx.size - 1):
        a, b = int(idx[k]) + 1, int(idx[k + 1])
        if b > a and avail[a:b].all():
            out.append((a, b))
    if tail and idx[-1] < T - 1 and avail[idx[-1] + 1:].all():
        out.append((int(idx[-1]) + 1, T))
    return out


def _window_max_rows(a: FloatArray, d: IntArray) -> FloatArray:
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


def solve_greedy(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    """Construction, exact dispatch and local search (see the module docstring).

    A ``warm_start`` plan of the options is the construction's hint: its placements are
    tried first, job by job.
    """
    hint = None
    ws = options.warm_start
    if ws is not None and ws.status.has_plan:
        hint = {j: (int(ws.node[j]), int(ws.start[j])) for j in range(index.J)
                if ws.node[j] >= 0 and not index.pinned[j]}
    return run_greedy(problem, index, options, hint=hint)


def run_greedy(problem: Problem, index: Index, options: SolveOptions,
               hint: dict[int, tuple[int, int]] | None = None,
               search: GreedySearch | None = None, trusted: bool = False,
               prev_flows: Flows | None = None) -> Plan:
    """The greedy solver, optionally warm-started from ``hint`` (``job -> (node, start)``).

    ``trusted`` and ``prev_flows`` are the re-planner's fast path (see
    :meth:`GreedySearch.construct` and :meth:`GreedySearch.evaluate_all`).

    Returns
    -------
    Plan
        Status ``feasible`` with exact flows, or ``no_solution`` with a message naming the job
        and why it found no place (a heuristic proves no infeasibility; proven cases, such as a
        must-run job without any eligible node, are reported ``infeasible`` by ``solve``).
    """
    t0 = time.perf_counter()
    params = options.params_as(GreedyOptions)
    cands = params.candidates or (DEFAULT_CANDIDATES if index.opt_job.size <= _LARGE_OPTIONS
                                  else LARGE_CANDIDATES)
    proven = _proven_infeasibility(problem, index)
    if proven is not None:
        return Plan.empty(problem, "greedy", Status.INFEASIBLE, proven)
    state = search or GreedySearch(problem, index, cands)
    order = job_order(index)
    why = state.construct(order, hint, trusted)
    if why is not None:
        return Plan.empty(problem, "greedy", Status.NO_SOLUTION, why)
    t_build = time.perf_counter() - t0
    ok, msg = state.evaluate_all(prev_flows)
    if not ok:
        ok, msg = _repair(state)
        if not ok:
            return Plan.empty(problem, "greedy", Status.NO_SOLUTION, msg)
    if hint is None and index.opt_job.size <= _SECOND_START_MAX_OPTIONS and params.second_start:
        state = _other_starts(problem, index, options, state, order, cands)
    options.report(t0, state.objective, None, "construction")
    info: dict[str, object] = {"construction_objective": state.objective}
    if params.improve:
        rng = np.random.default_rng(options.seed)
        deadline = options.deadline(t0, DEFAULT_TIME_LIMIT)
        iters = params.iterations

        def report(obj: float, kind: str) -> None:
            options.report(t0, obj, None, f"local search: {kind}")

        info["moves_tried"] = state.improve(rng, deadline, None if iters is None else int(iters),
                                            report)
    plan = plan_from_placement(problem, index, "greedy", Status.FEASIBLE, state.node,
                               state.start, state.final_flows())
    plan.objective = state.objective
    plan.info = info
    plan.timings = {"build": t_build, "solve": time.perf_counter() - t0 - t_build}
    return plan


def _other_starts(problem: Problem, index: Index, options: SolveOptions, state: GreedySearch,
                  order: IntArray, cands: int) -> GreedySearch:
    """Multi-start: construction by earliest start, and (small cases) the baseline's placement.

    Earliest start packs the runs of sleeping nodes; the baseline's placement makes
    the greedy never worse than the ``baseline`` solver. The cheapest start wins.
    """
    other = GreedySearch(problem, index, cands)
    other.earliest = True
    if other.construct(order) is None and other.evaluate_all()[0] and (
            other.objective < state.objective - 1e-9):
        state = other
    if index.opt_job.size <= _BASELINE_START_MAX_OPTIONS:
        from optisched.solvers.baseline import solve_baseline

        base = solve_baseline(problem, index, SolveOptions(seed=options.seed))
        if base.status.has_plan:
            third = GreedySearch(problem, index, cands)
            hint = {j: (int(base.node[j]), int(base.start[j])) for j in range(index.J)
                    if base.node[j] >= 0 and not index.pinned[j]}
            if (third.construct(order, hint, trusted=True) is None
                    and third.evaluate_all()[0] and third.objective < state.objective - 1e-9):
                state = third
    state.earliest = False
    return state


def _repair(state: GreedySearch) -> tuple[bool, str]:
    """Make an infeasible dispatch feasible by moving jobs off groups the battery cannot carry.

    Jobs on infeasible groups are taken out (latest placed last) and re-inserted with
    the strict headroom rule (battery idle); must-run jobs that fit nowhere make the
    plan infeasible.
    """
    ix = state.index
    for _ in range(3):
        res = dispatch_load(ix, state.load)
        if res.feasible:
            return state.evaluate_all()
        bad_nodes = res.nodes[~np.isfinite(res.cost)]
        jobs = [int(j) for j in np.nonzero(np.isin(state.node, bad_nodes) & ~ix.pinned)[0]]
        if not jobs:
            return False, f"no feasible energy flows even without movable jobs: {res.message}"
        for j in jobs:
            state.unplace(j)
        for j in jobs:
            best = state.best_insertion(j)
            if best is not None and int(ix.opt_node[best.option]) not in set(bad_nodes.tolist()):
                state.place(j, best.option, best.start)
            elif ix.must_run[j]:
                return False, (f"job {ix.job_ids[j]}: no feasible placement found (headroom: "
                               f"the exact dispatch cannot supply it: {res.message}); it must run")
    res = dispatch_load(ix, state.load)
    return (state.evaluate_all() if res.feasible else (False, res.message))


def _proven_infeasibility(problem: Problem, index: Index) -> str | None:
    """Infeasibility that holds for every plan (:func:`optisched.precheck.precheck`), or None."""
    return precheck(problem, index)
