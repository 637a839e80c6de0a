"""Overload search: a min-conflicts local search that places every must-run job, overloads allowed.

Where ejection chains stall (whole-day use above 80 %: ICON 2014 sample09, 2,000 jobs
on 20 machines), the engine searches a larger space: every must-run job is placed,
and a node's resources (and its import, as a resource of capacity
``headroom + pv − idle_kw`` in each slot) may be *over*-used. The search minimises the
weighted overload

    V = Σ_{n,t} w_nt · Σ_r max(0, U_ntr − cap_ntr) / cap_nr

and ends when no slot is overloaded: the placement then fits every resource.

One iteration (all of it vectorized over the job's ``K options × W slots × R``):

1. pick an overloaded (node, slot) at random, and of the movable jobs running there the
   one with the largest share of its slots overloaded (ties at random; jobs moved in the
   last :attr:`ConflictSearch.tenure` iterations only when there is no other). Against
   a job at random this halved the iterations on ICON sample09 (13k against 27k on
   average over seeds 0-3) and did not raise them on samples 03, 06, 08 or tight
   200 × 10 and 1,000 × 50 instances;
2. take it out and score every eligible (node, start) by the rise of ``V`` it would
   cause (window sums of the per-slot marginal overload, from prefix sums); its old
   place is tabu for :attr:`ConflictSearch.tenure` iterations;
3. put it at the best place other than its old one (ties broken by the energy cost
   ``p_o Σ price``, then at random), even when that is no better: the search moves on
   (letting it stay at a local minimum instead ended fewer runs: on ICON sample09 one of
   three seeds within 60k iterations against three of three), and
4. when the best place does not lower ``V`` (a local minimum), every overloaded slot of
   the nodes involved weighs one more (``w_nt += 1``: the breakout method, Morris
   1993), so that the search is pushed out of the minimum. (Weighting only the nodes of
   the move, rather than every overloaded slot, took 25-28k iterations instead of 29k
   on sample09; no weights at all did not finish in 80k.)

The search never unplaces a job: it ends with every job in a place, and either no
overload (success) or the least overload it found. :meth:`ConflictSearch.apply` writes
a placement without overload back into the :class:`GreedyState` through the
construction's checks (feeder headroom, which the search does not model, included).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.solvers.greedy.scan import Scorer
from optisched.solvers.greedy.state import GreedyState

__all__ = ["TENURE", "ConflictSearch"]

_TOL = 1e-9
"""Tolerance on capacity [resource units, kW]."""
TENURE = 5
"""Iterations a moved job is not picked again and its old place stays tabu. Measured on ICON
sample09 (2,000 jobs, 20 machines; 89 jobs left out by construction), iterations to no
overload over seeds 0-2: tenure 5 28.6k on average, 10 59k, 20 43k with one run not done
in 80k, 3 45k."""


_GEOMETRY_CACHE = 4_000_000
"""Most (option, start) pairs whose scoring geometry :class:`ConflictSearch` keeps in its
cache (about 9 bytes each: two int32 indices and a mask; 36 MB)."""


@dataclass(frozen=True)
class _Geometry:
    """What scoring a job needs that does not change during the search."""

    opts: IntArray        # (K,) options with a start window
    n: IntArray           # (K,) their nodes
    a: int                # first slot of the span
    b: int                # end of the span (exclusive)
    NS: int               # starts a .. a + NS − 1
    u: FloatArray         # (K, R, 1) usage in units of the node's capacity
    end: IntArray         # (K, NS) flat index of the window's end in the prefix sums
    begin: IntArray       # (K, NS) flat index of its start
    valid: BoolArray      # (K, NS) start in the window and the node available long enough


class ConflictSearch:
    """Min-conflicts search over placements with overload (module docstring).

    Parameters
    ----------
    state : GreedyState
        The placement to start from (read; written only by :meth:`apply`).
    rng : numpy.random.Generator
        Random choices of the search.
    add : (k,) int
        Unplaced jobs to put in (at their place of least overload), normally the
        must-run jobs the state leaves out.

    Attributes
    ----------
    opt, start : (J,) int
        The search's placement (option -1: not placed).
    overload : float
        Current unweighted overload ``Σ max(0, U − cap) / cap`` [node-slots].
    best_overload : float
        Least overload seen; :attr:`best_opt`, :attr:`best_start` its placement.
    iterations : int
        Iterations run.
    tenure : int
        Iterations a moved job's old place stays tabu.
    """

    def __init__(self, state: GreedyState, rng: np.random.Generator, add: IntArray) -> None:
        ix = state.index
        self.state = state
        self.index = ix
        self.rng = rng
        N, T = state.N, state.T
        self.power = bool(np.isfinite(ix.headroom).any())
        cap = np.repeat(ix.capacity[:, None, :], T, axis=1)
        use = state.use
        if self.power:
            lim = ix.headroom + ix.pv - ix.idle_kw[:, None]
            cap = np.concatenate([cap, np.maximum(lim, 0.0)[:, :, None]], axis=2)
            use = np.concatenate([use, state.jobs_kw[:, :, None]], axis=2)
        # everything in shares of a per-(node, resource) unit: the capacity, or for power
        # the largest finite import limit of the node
        unit = np.where(np.isfinite(cap), cap, 0.0).max(axis=1)
        self.unit = np.where(unit > _TOL, unit, 1.0)
        """(N, R) unit of each node's resources (capacity; largest finite limit for power)."""
        self.free = np.ascontiguousarray(((cap - use) / self.unit[:, None, :]).transpose(0, 2, 1))
        """(N, R, T) capacity left in units (negative: overloaded; ``inf``: no limit); slots
        last, so that sums over resources add contiguous rows."""
        self._tol = _TOL / self.unit.max()
        self.opt = state.opt.copy()
        self.start = state.start.copy()
        self.node = state.node.copy()
        self.w = np.ones((N, T))
        self.movable = ~ix.pinned & (np.diff(ix.opt_job_ptr) > 0)
        self.tabu_until = np.zeros(ix.J, dtype=np.int64)
        self.tabu_place: dict[int, tuple[tuple[int, int], int]] = {}
        self.iterations = 0
        self.tenure = TENURE
        self._geom: dict[int, _Geometry] = {}
        self._geom_pairs = 0
        price = np.zeros((N, T + 1))
        np.cumsum(ix.import_cost, axis=1, out=price[:, 1:])
        self._price = price
        for j in np.asarray(add, dtype=np.int64).tolist():
            if self.opt[j] < 0 and self.movable[j]:
                best = self._best_place(j)
                if best is not None:
                    self._put(j, *best)
        self._bad = (self.free < -self._tol).any(axis=1)
        self._row_over = self._row_overload(np.arange(N))
        self.overload = float(self._row_over.sum())
        self.best_overload = self.overload
        self.best_opt, self.best_start = self.opt.copy(), self.start.copy()

    # ------------------------------------------------------------------ bookkeeping
    def _vec(self, j: int, o: int) -> FloatArray:
        """(R,) usage of job ``j`` on option ``o`` (resources, then power)."""
        if not self.power:
            return np.asarray(self.index.usage[j])
        return np.concatenate([self.index.usage[j], [self.index.opt_power[o]]])

    def _put(self, j: int, o: int, s: int) -> None:
        ix = self.index
        n = int(ix.opt_node[o])
        a, b = max(0, s), min(self.state.T, s + int(ix.opt_dur[o]))
        self.free[n, :, a:b] -= (self._vec(j, o) / self.unit[n])[:, None]
        self.opt[j], self.start[j], self.node[j] = o, s, n

    def _take(self, j: int) -> None:
        ix = self.index
        o = int(self.opt[j])
        n, s = int(ix.opt_node[o]), int(self.start[j])
        a, b = max(0, s), min(self.state.T, s + int(ix.opt_dur[o]))
        self.free[n, :, a:b] += (self._vec(j, o) / self.unit[n])[:, None]
        self.opt[j], self.node[j] = -1, -1

    def _row_overload(self, rows: IntArray) -> FloatArray:
        """(k,) overload ``Σ_{t,r} max(0, U − cap) / cap`` of nodes ``rows`` [node-slots]."""
        over = np.maximum(-self.free[rows], 0.0)
        return np.asarray(over.sum(axis=(1, 2)))

    # ------------------------------------------------------------------ scoring
    def _geometry(self, j: int) -> _Geometry:
        """The static part of scoring job ``j`` (cached: options, slot span, masks, usage)."""
        g = self._geom.get(j)
        if g is not None:
            return g
        ix = self.index
        T = self.state.T
        opts = ix.options_of(j)
        opts = opts[ix.opt_latest[opts] >= ix.opt_earliest[opts]]
        n = ix.opt_node[opts]
        d = ix.opt_dur[opts]
        a = max(0, int(ix.opt_earliest[opts].min()))
        hs = min(T - 1, int(ix.opt_latest[opts].max()))
        b = min(T, hs + int(d.max()))
        W, NS, K = b - a, hs - a + 1, opts.size
        if self.power:
            u = np.concatenate([np.broadcast_to(ix.usage[j], (K, ix.usage.shape[1])),
                                ix.opt_power[opts][:, None]], axis=1)
        else:
            u = np.broadcast_to(ix.usage[j], (K, ix.usage.shape[1]))
        U = np.arange(NS)[None, :]
        S = U + a
        valid = ((S >= ix.opt_earliest[opts][:, None]) & (S <= ix.opt_latest[opts][:, None])
                 & (ix.avail_run[n, a:hs + 1] >= d[:, None]))
        base = np.arange(K, dtype=np.int32)[:, None] * np.int32(W + 1)
        g = _Geometry(opts, n, a, b, NS, (u / self.unit[n])[:, :, None],
                      (np.minimum(U + d[:, None], W).astype(np.int32) + base),
                      (np.arange(NS, dtype=np.int32)[None, :] + base), valid)
        if self._geom_pairs + K * NS <= _GEOMETRY_CACHE:
            self._geom[j] = g
            self._geom_pairs += K * NS
        return g

    def _scores(self, j: int) -> tuple[IntArray, int, int, FloatArray, BoolArray]:
        """(K, NS) rise of the weighted overload of every (option, start) of ``j`` (taken out).

        Per slot and resource the rise is ``u − clip(free, 0, u)`` (in units of the capacity):
        zero where the job fits, ``u − free`` where it overfills, ``u`` where the slot is
        already over. Returns ``(options, first slot, starts, rise, valid)``; ``valid`` is a
        fresh mask of the starts in the window and availability.
        """
        g = self._geometry(j)
        K = g.opts.size
        x = self.free[g.n, :, g.a:g.b]                         # (K, R, W), a copy
        np.maximum(x, 0.0, out=x)
        np.minimum(x, g.u, out=x)
        np.subtract(g.u, x, out=x)
        rise = x.sum(axis=1)
        rise *= self.w[g.n, g.a:g.b]
        cr = np.zeros((K, g.b - g.a + 1))
        np.cumsum(rise, axis=1, out=cr[:, 1:])
        flat = cr.ravel()
        win = flat[g.end] - flat[g.begin]
        return g.opts, g.a, g.NS, win, g.valid.copy()

    def _pick(self, opts: IntArray, a: int, NS: int, score: FloatArray) -> tuple[int, int]:
        """The place of least score; among ties the cheapest energy ``p_o Σ price``."""
        low = float(score.min())
        ties = np.flatnonzero(score <= low + 1e-12 * max(1.0, abs(low)))
        if ties.size > 1:
            ix = self.index
            kk, uu = np.divmod(ties, NS)
            o = opts[kk]
            n = ix.opt_node[o]
            s = uu + a
            e = np.minimum(s + ix.opt_dur[o], self.state.T)
            cost = ix.opt_power[o] * (self._price[n, e] - self._price[n, s])
            cheap = ties[cost <= cost.min() + 1e-12 * max(1.0, abs(float(cost.min())))]
            pos = int(cheap[self.rng.integers(cheap.size)]) if cheap.size > 1 else int(cheap[0])
        else:
            pos = int(ties[self.rng.integers(ties.size)]) if ties.size > 1 else int(ties[0])
        kk_, uu_ = divmod(pos, NS)
        return int(opts[kk_]), int(uu_ + a)

    def _best_place(self, j: int) -> tuple[int, int] | None:
        """Place of least weighted-overload rise for the (taken out) job ``j``."""
        if self.index.opt_job_ptr[j + 1] == self.index.opt_job_ptr[j]:
            return None
        opts, a, NS, win, valid = self._scores(j)
        score = np.where(valid, win, np.inf)
        if not np.isfinite(score).any():
            return None
        return self._pick(opts, a, NS, score)

    # ------------------------------------------------------------------ the search
    def run(self, deadline: float, max_iterations: int | None = None) -> bool:
        """Iterate until no overload, ``deadline`` (perf_counter) or ``max_iterations``.

        Returns
        -------
        bool
            True when the current placement has no overload.
        """
        ix = self.index
        T = self.state.T
        while self._bad.any():
            if max_iterations is not None and self.iterations >= max_iterations:
                break
            if (self.iterations & 15) == 0 and time.perf_counter() >= deadline:
                break
            self.iterations += 1
            cells = np.flatnonzero(self._bad)
            cell = int(cells[self.rng.integers(cells.size)])
            n, t = divmod(cell, T)
            on = np.nonzero(self.node == n)[0]
            on = on[self.movable[on]]
            s = self.start[on]
            e = s + ix.opt_dur[self.opt[on]]
            here = on[(s <= t) & (e > t)]
            if here.size == 0:  # pinned jobs only (they fit together: precheck)
                continue
            free = here[self.tabu_until[here] <= self.iterations]
            pick = free if free.size else here
            if pick.size > 1:  # the job most in conflict: largest share of its slots over
                cb = np.concatenate([[0], np.cumsum(self._bad[n])])
                ps = np.maximum(self.start[pick], 0)
                pe = np.minimum(self.start[pick] + ix.opt_dur[self.opt[pick]], T)
                share = (cb[pe] - cb[ps]) / np.maximum(pe - ps, 1)
                pick = pick[share >= share.max()]
            j = int(pick[self.rng.integers(pick.size)]) if pick.size > 1 else int(pick[0])
            move = self._candidate(j)
            if move is None:
                continue
            old, new, low, stay = move
            self._put(j, *new)
            self.tabu_until[j] = self.iterations + self.tenure
            self.tabu_place[j] = (old, self.iterations + self.tenure)
            n2 = int(ix.opt_node[new[0]])
            rows = np.array([n] if n2 == n else [n, n2], dtype=np.int64)
            self._bad[rows] = (self.free[rows] < -self._tol).any(axis=1)
            if low >= stay - 1e-12:  # no better than staying: a local minimum
                self.w[rows] += self._bad[rows]
            self._row_over[rows] = self._row_overload(rows)
            self.overload = float(self._row_over.sum())
            if self.overload < self.best_overload - 1e-12:
                self.best_overload = self.overload
                self.best_opt, self.best_start = self.opt.copy(), self.start.copy()
        if not self._bad.any():
            self.overload = self.best_overload = 0.0
            self.best_opt, self.best_start = self.opt.copy(), self.start.copy()
            return True
        return False

    def _candidate(self, j: int) -> tuple[tuple[int, int], tuple[int, int], float, float] | None:
        """Best move of ``j`` elsewhere: ``(old, new, rise there, rise of staying)``.

        ``j`` is left out of the placement when a move is returned (the caller puts it at
        ``new``), and put back when None (no other valid place).
        """
        old = (int(self.opt[j]), int(self.start[j]))
        self._take(j)
        opts, a, NS, win, valid = self._scores(j)
        k_old = np.nonzero(opts == old[0])[0]
        stay = np.inf
        if k_old.size and 0 <= old[1] - a < NS:
            stay = float(win[int(k_old[0]), old[1] - a])
            valid[int(k_old[0]), old[1] - a] = False  # move somewhere else
        tp = self.tabu_place.get(j)
        if tp is not None and tp[1] > self.iterations:
            kt = np.nonzero(opts == tp[0][0])[0]
            if kt.size and 0 <= tp[0][1] - a < NS:
                valid[int(kt[0]), tp[0][1] - a] = False
        score = np.where(valid, win, np.inf)
        if not np.isfinite(score).any():
            self._put(j, *old)
            return None
        low = float(score.min())
        new = self._pick(opts, a, NS, score)
        return old, new, low, stay

    # ------------------------------------------------------------------ back to the state
    def apply(self, scorer: Scorer) -> int:
        """Write the best placement into the state (which is emptied first).

        Jobs go in by start slot through :meth:`Scorer.fits` (the construction's checks);
        a job that does not fit there (an overloaded slot, or feeder headroom) stays out.

        Returns
        -------
        int
            Jobs that stayed out.
        """
        st = self.state
        ix = self.index
        opt, start = self.best_opt, self.best_start
        st.reset()
        pinned = np.nonzero(ix.pinned & (opt >= 0))[0]
        st.place_many(pinned, opt[pinned], start[pinned])
        todo = np.nonzero((opt >= 0) & ~ix.pinned)[0]
        simple = not self.power and not len(ix.feeder_ids) and self.best_overload <= 0.0
        if simple:  # no overload and no power limit: the placement fits as it is
            st.place_many(todo, opt[todo], start[todo])
            return 0
        out = 0
        for j in todo[np.argsort(start[todo], kind="stable")].tolist():
            if scorer.fits(j, int(opt[j]), int(start[j])):
                st.place(j, int(opt[j]), int(start[j]))
            else:
                out += 1
        return out
