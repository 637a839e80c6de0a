"""Ejection chains: place a job by taking out the jobs in its way and re-placing them.

One *repair step* (:meth:`EjectionChain.place`) for an unplaced job ``j``:

1. **Where.** Every eligible (node, start) of ``j`` is scored at once over
   ``(K options × W slots × R resources)`` arrays: the *excess* of a window is
   ``Σ_τ Σ_r max(0, U_nτr + u_jr − cap_nr) / cap_nr``, the share of the node's
   capacity that would have to be freed [node-slots], from prefix sums over the
   slots. Windows where the jobs that may not move (pinned jobs, and jobs already
   moved in this step) leave no room for ``j`` are excluded, and so are those outside
   its start window or availability.
2. **Whom.** For the windows of least excess, the jobs to take out are chosen by a
   greedy cover of the overload ``max(0, U + u_j − cap)`` per slot and resource: the
   job that covers most of what is left per unit of its *weight* first, where the
   weight ``w_b = area_b · (d_b + 1) / (d_b + slack_b + 1)`` (``area_b`` = its largest
   capacity share × its slots) says how hard ``b`` is to place again; jobs the cover
   does not need are then put back. The window with the least total weight is tried
   first.
3. **Chain.** The blocking jobs are taken out, ``j`` is placed (checked by the scorer:
   capacity, availability, the node's and the feeder's headroom), and every job taken
   out is inserted again, hardest first: at its cheapest place
   (:meth:`~optisched.solvers.greedy.scan.Scorer.best_insertion`), else by an
   ejection chain of its own, one level deeper, while the depth limit allows. A job
   that has moved in this step is never taken out again in it (no cycles).
4. **All or nothing.** When every job taken out is placed again, the step is kept;
   otherwise every change of the step is undone (:class:`Journal`), so **a repair
   step never loses a placed must-run job**. A droppable job taken out that finds no
   place stays out (it may be dropped); that only happens to place must-run work.

Every placement goes through the same checks as construction, so the result always
has feasible flows with the battery idle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optisched.arrays import FloatArray, IntArray
from optisched.solvers.greedy.scan import Scorer
from optisched.solvers.greedy.state import GreedyState

__all__ = ["EjectionChain", "Journal", "StepLimits", "job_weights"]

_TOL = 1e-9
"""Tolerance on resource capacity (as the scorer's)."""


class Journal:
    """Undo log of placement changes: every change is recorded before it is made.

    Parameters
    ----------
    state : GreedyState
        The state changed through this journal.
    """

    def __init__(self, state: GreedyState) -> None:
        self.state = state
        self.log: list[tuple[int, int, int]] = []  # (job, option before, start before)

    def mark(self) -> int:
        """Position to :meth:`rollback` to."""
        return len(self.log)

    def place(self, j: int, o: int, s: int) -> None:
        """Place the unplaced job ``j`` on option ``o`` at ``s``."""
        st = self.state
        self.log.append((j, int(st.opt[j]), int(st.start[j])))
        st.place(j, o, s)

    def unplace(self, j: int) -> None:
        """Take job ``j`` out."""
        st = self.state
        self.log.append((j, int(st.opt[j]), int(st.start[j])))
        st.unplace(j)

    def rollback(self, mark: int) -> None:
        """Undo every change after ``mark``, latest first."""
        st = self.state
        while len(self.log) > mark:
            j, o, s = self.log.pop()
            st.unplace(j)
            if o >= 0:
                st.place(j, o, s)

    def touched(self, mark: int) -> set[int]:
        """Jobs changed after ``mark``."""
        return {j for j, _, _ in self.log[mark:]}


@dataclass
class StepLimits:
    """Effort of one repair step.

    Attributes
    ----------
    depth : int
        Levels of ejection below the job being placed (0: only its own blockers are
        taken out, and they must find a place by plain insertion).
    breadth : int
        Windows tried for the job being placed [windows].
    deep_breadth : int
        Windows tried for a job taken out, one level down or more [windows].
    shortlist : int
        Windows of least excess whose blocking sets are computed before the one of least
        weight is tried [windows].
    work : int
        Most windows tried in the whole step, all levels together [windows].
    noise : float
        Relative random noise on the window and blocker scores (0: deterministic
        ranking; > 0 diversifies repeated attempts).
    """

    depth: int = 2
    breadth: int = 6
    deep_breadth: int = 3
    shortlist: int = 12
    work: int = 200
    noise: float = 0.0


def job_weights(state: GreedyState) -> FloatArray:
    """Weight ``w_b`` of every job: how hard it is to place again (module docstring).

    ``area_b · (d_b + 1) / (d_b + slack_b + 1)``: ``area_b`` is the job's largest share
    of a node's capacity (over resources, on its most capacious eligible node) times its
    shortest duration [node-slots], ``slack_b`` its widest start window [slots]. Jobs
    without options weigh ``inf``.
    """
    ix = state.index
    J = ix.J
    out = np.full(J, np.inf)
    if ix.opt_job.size == 0:
        return out
    o_j = ix.opt_job
    share = (ix.usage[o_j] / np.maximum(ix.capacity[ix.opt_node], _TOL)).max(axis=1)
    share_j = np.full(J, np.inf)
    np.minimum.at(share_j, o_j, share)
    dur = np.full(J, np.iinfo(np.int64).max)
    np.minimum.at(dur, o_j, ix.opt_dur)
    slack = np.zeros(J, dtype=np.int64)
    np.maximum.at(slack, o_j, np.maximum(ix.opt_latest - ix.opt_earliest, 0))
    has = np.diff(ix.opt_job_ptr) > 0
    d = dur[has].astype(float)
    out[has] = share_j[has] * d * (d + 1.0) / (d + slack[has] + 1.0)
    return out


class EjectionChain:
    """Repair steps by ejection chains on a :class:`GreedyState` (module docstring).

    Parameters
    ----------
    state : GreedyState
        The placement to repair (changed in place).
    scorer : Scorer
        Scores insertions into ``state``.
    rng : numpy.random.Generator
        Noise of the rankings (only used when ``limits.noise > 0``).

    Attributes
    ----------
    journal : Journal
        Every change made through this object.
    weight : (J,) float
        :func:`job_weights`.
    windows_tried : int
        Windows tried over all steps (the work measure of :attr:`StepLimits.work`).
    """

    def __init__(self, state: GreedyState, scorer: Scorer, rng: np.random.Generator) -> None:
        self.state = state
        self.scorer = scorer
        self.rng = rng
        self.journal = Journal(state)
        self.weight = job_weights(state)
        ix = state.index
        self.movable = ~ix.pinned
        self.pinned_use = self._pinned_use()
        self.windows_tried = 0
        self._work = 0
        self._limits = StepLimits()

    def _pinned_use(self) -> FloatArray | None:
        """(N, T, R) resource use of the pinned jobs (None when there are none)."""
        st = self.state
        ix = st.index
        pj = np.nonzero(ix.pinned & (st.opt >= 0))[0]
        if pj.size == 0:
            return None
        out = np.zeros((st.N, st.T + 1, st.R))
        o = st.opt[pj]
        a = np.clip(st.start[pj], 0, st.T)
        b = np.clip(st.start[pj] + ix.opt_dur[o], 0, st.T)
        np.add.at(out, (st.node[pj], a), ix.usage[pj])
        np.add.at(out, (st.node[pj], b), -ix.usage[pj])
        return np.asarray(np.cumsum(out, axis=1)[:, :st.T])

    # ------------------------------------------------------------------ insertion
    def insert(self, j: int) -> bool:
        """Plain insertion of ``j`` at its cheapest place (through the journal)."""
        best = self.scorer.best_insertion(j)
        if best is None:
            return False
        self.journal.place(j, best.option, best.start)
        return True

    def place(self, j: int, limits: StepLimits) -> bool:
        """One repair step for the unplaced job ``j``: plain insertion, else an ejection chain.

        Returns
        -------
        bool
            True when ``j`` is placed and every job moved on the way is placed again
            (droppable ones excepted); False when the state is as before the step.
        """
        self._limits = limits
        self._work = 0
        mark = self.journal.mark()
        if self.insert(j):
            return True
        ok = self._chain(j, limits.depth, mark)
        if not ok:
            self.journal.rollback(mark)
        return ok

    # ------------------------------------------------------------------ the chain
    def _chain(self, j: int, depth: int, top: int) -> bool:
        """Place ``j`` by ejecting its blockers; re-place them, recursively to ``depth``."""
        ix = self.state.index
        lim = self._limits
        tabu = self.journal.touched(top)
        tabu.add(j)
        breadth = lim.breadth if depth == lim.depth else lim.deep_breadth
        for o, s, out in self.windows(j, tabu, lim.shortlist)[:breadth]:
            if self._work >= lim.work:
                return False
            self._work += 1
            self.windows_tried += 1
            mark = self.journal.mark()
            for b in out:
                self.journal.unplace(int(b))
            if not self.scorer.fits(j, o, s):  # headroom or feeder, which the cover ignores
                self.journal.rollback(mark)
                continue
            self.journal.place(j, o, s)
            ok = True
            for b in out[np.argsort(-self.weight[out], kind="stable")]:
                b = int(b)
                if self.insert(b):
                    continue
                if depth > 0 and self._chain(b, depth - 1, top):
                    continue
                if not ix.must_run[b]:
                    continue  # a droppable job may stay out
                ok = False
                break
            if ok:
                return True
            self.journal.rollback(mark)
        return False

    # ------------------------------------------------------------------ windows
    def windows(self, j: int, tabu: set[int], shortlist: int
                ) -> list[tuple[int, int, IntArray]]:
        """Windows ``(option, start, jobs to take out)`` for ``j``, least weight first.

        The ``shortlist`` windows of least excess (vectorized over every option and
        start, module docstring) get a blocking set by :meth:`blockers`; those with one
        are returned by the total weight of the set.
        """
        st = self.state
        ix = st.index
        opts = ix.options_of(j)
        opts = opts[ix.opt_latest[opts] >= ix.opt_earliest[opts]]
        if opts.size == 0:
            return []
        T = st.T
        n = ix.opt_node[opts]
        d = ix.opt_dur[opts]
        a = max(0, int(ix.opt_earliest[opts].min()))
        hs = min(T - 1, int(ix.opt_latest[opts].max()))
        if hs < a:
            return []
        b = min(T, hs + int(d.max()))
        W, NS, K = b - a, hs - a + 1, opts.size
        cap = ix.capacity[n][:, None, :]
        u = ix.usage[j]
        use = st.use[n, a:b]
        excess = (np.maximum(use + u - cap, 0.0) / np.maximum(cap, _TOL)).sum(axis=2)
        fixed = self._fixed_use(n, a, b, tabu)
        stuck = ~ix.available[n, a:b]
        if fixed is not None:
            stuck |= (fixed + u > cap + _TOL).any(axis=2)
        cx = np.zeros((K, W + 1))
        np.cumsum(excess, axis=1, out=cx[:, 1:])
        cs = np.zeros((K, W + 1), dtype=np.int64)
        np.cumsum(stuck, axis=1, out=cs[:, 1:])
        U = np.arange(NS)[None, :]
        S = U + a
        end = np.minimum(U + d[:, None], W) + np.arange(K)[:, None] * (W + 1)  # flat
        win_x = np.take(cx, end) - cx[:, :NS]
        win_s = np.take(cs, end) - cs[:, :NS]
        valid = ((S >= ix.opt_earliest[opts][:, None]) & (S <= ix.opt_latest[opts][:, None])
                 & (ix.avail_run[n, a:hs + 1] >= d[:, None]) & (win_s == 0))
        score = np.where(valid, win_x, np.inf)
        if self._limits.noise > 0:
            score = score * (1.0 + self._limits.noise * self.rng.random(score.shape))
        flat = score.ravel()
        k = min(int(shortlist), int(np.isfinite(flat).sum()))
        if k == 0:
            return []
        top = np.argpartition(flat, k - 1)[:k]
        top = top[np.argsort(flat[top], kind="stable")]
        found: list[tuple[float, int, int, IntArray]] = []
        for pos in top.tolist():
            kk, uu = divmod(pos, NS)
            o, s = int(opts[kk]), int(uu + a)
            out = self.blockers(j, o, s, tabu)
            if out is None:
                continue
            w = float(self.weight[out].sum())
            if self._limits.noise > 0:
                w *= 1.0 + self._limits.noise * float(self.rng.random())
            found.append((w, o, s, out))
        found.sort(key=lambda t: t[0])
        return [(o, s, out) for _, o, s, out in found]

    def _fixed_use(self, n: IntArray, a: int, b: int, tabu: set[int]) -> FloatArray | None:
        """(K, W, R) use of slots ``a..b−1`` of nodes ``n`` by jobs that may not move."""
        st = self.state
        ix = st.index
        fixed = None if self.pinned_use is None else self.pinned_use[n, a:b].copy()
        rows = np.full(st.N, -1, dtype=np.int64)
        rows[n] = np.arange(n.size)
        for t in tabu:
            o = int(st.opt[t])
            if o < 0 or ix.pinned[t]:
                continue
            k = int(rows[st.node[t]])
            if k < 0:
                continue
            s = int(st.start[t])
            lo, hi = max(a, s), min(b, s + int(ix.opt_dur[o]))
            if hi <= lo:
                continue
            if fixed is None:
                fixed = np.zeros((n.size, b - a, st.R))
            fixed[k, lo - a:hi - a] += ix.usage[t]
        return fixed

    def blockers(self, j: int, o: int, s: int, tabu: set[int]) -> IntArray | None:
        """Jobs to take out of node ``opt_node[o]`` so that ``j`` fits there at ``s``.

        A greedy cover of the overload ``max(0, U_nτr + u_jr − cap_nr)`` of the window
        by the movable jobs running in it (not pinned, not in ``tabu``): most overload
        covered per unit of weight first, then jobs the cover does not need are put
        back (heaviest first). None when the movable jobs cannot cover it.
        """
        st = self.state
        ix = st.index
        n = int(ix.opt_node[o])
        t0, t1 = max(0, s), min(st.T, s + int(ix.opt_dur[o]))
        cap = ix.capacity[n]
        need = np.maximum(st.use[n, t0:t1] + ix.usage[j] - cap - _TOL, 0.0)  # (L, R)
        if not need.any():
            return np.zeros(0, dtype=np.int64)
        on = np.nonzero(st.node == n)[0]
        on = on[self.movable[on]]
        if tabu:
            on = on[~np.isin(on, np.fromiter(tabu, dtype=np.int64, count=len(tabu)))]
        bs = st.start[on]
        be = bs + ix.opt_dur[st.opt[on]]
        hit = (bs < t1) & (be > t0)
        on, bs, be = on[hit], bs[hit], be[hit]
        if on.size == 0:
            return None
        over = need.any(axis=1)
        tt = np.arange(t0, t1)[over]                                       # overloaded slots
        need = need[over]
        runs = (bs[:, None] <= tt[None, :]) & (tt[None, :] < be[:, None])  # (B, L)
        cover = runs[:, :, None] * ix.usage[on][:, None, :]                # (B, L, R)
        scale = 1.0 / np.maximum(cap, _TOL)
        weight = self.weight[on]
        if self._limits.noise > 0:
            weight = weight * (1.0 + self._limits.noise * self.rng.random(on.size))
        left = need.copy()
        chosen: list[int] = []
        free = np.ones(on.size, dtype=bool)
        while (left > 0).any():
            gain = (np.minimum(cover, left[None]) * scale).sum(axis=(1, 2))
            gain[~free] = 0.0
            if gain.max(initial=0.0) <= 0.0:
                return None
            k = int(np.argmax(gain / np.maximum(weight, _TOL)))
            chosen.append(k)
            free[k] = False
            left = np.maximum(left - cover[k], 0.0)
        if len(chosen) > 1:  # put back what the cover does not need, heaviest first
            total = cover[chosen].sum(axis=0)
            for k in sorted(chosen, key=lambda q: -weight[q]):
                rest = total - cover[k]
                if (rest >= need - _TOL).all():
                    total = rest
                    chosen.remove(k)
        return on[np.array(chosen, dtype=np.int64)]
