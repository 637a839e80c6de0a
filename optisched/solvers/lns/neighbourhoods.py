"""Neighbourhoods of ``lns``: which nodes and jobs a sub-problem re-decides.

:class:`NeighbourhoodBuilder` keeps statistics of the incumbent (per-node energy cost,
per-job cost and penalty, the LP relaxation's disagreement) and draws a
:class:`Neighbourhood` of a given kind (:data:`KINDS`, ``docs/algorithms/lns.md``)
and size (freed jobs): nodes ``S`` and freed jobs ``F``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from optisched.arrays import FloatArray, IntArray
from optisched.domain import Problem
from optisched.index import Index
from optisched.plan import Plan
from optisched.solvers.options import LNS_KINDS

__all__ = ["KINDS", "LP_DISAGREE", "Neighbourhood", "NeighbourhoodBuilder"]

KINDS = LNS_KINDS
"""Neighbourhood kinds (see ``docs/algorithms/lns.md``)."""
LP_DISAGREE = 0.05
"""Jobs whose incumbent placement has LP value ≤ ``1 −`` this are candidates of kind ``lp``."""
MACHINE_JOBS = 24
"""Kind ``machine`` frees every job of its node up to ``max(MACHINE_JOBS, 2·size)`` jobs
(else that many consecutive ones by start). Measured on tight 200 × 10 and 1,000 × 50 × 288
(``docs/algorithms/lns.md`` §2): the CP-SAT interval sub-model re-optimizes one machine of
7-47 jobs in 1-5 s, often to proven optimality."""
BAND_NODES = (2, 4)
"""Kind ``time_band`` takes this many nodes (uniform, at most all)."""


@dataclass
class Neighbourhood:
    """A neighbourhood of the incumbent.

    Attributes
    ----------
    kind : str
        Its kind (:data:`KINDS`).
    nodes : (K,) int
        The nodes ``S`` whose jobs and flows the sub-problem re-decides (sorted).
    free : array of int
        The freed jobs ``F``.
    window : (int, int) or None
        See the attribute.
    """

    kind: str
    nodes: IntArray
    free: IntArray
    window: tuple[int, int] | None = None
    """Slots ``[a, b)`` the freed jobs must start and (hard deadlines) end in, or None:
    their own windows (kind ``time_band``: a cap on the sub-problem's start columns)."""


class NeighbourhoodBuilder:
    """Builds neighbourhoods of the incumbent."""

    def __init__(self, problem: Problem, index: Index, rng: np.random.Generator) -> None:
        self.problem = problem
        self.index = index
        self.rng = rng
        ix = index
        self.movable = ~ix.pinned
        # eligible nodes per job
        self.elig = np.zeros((ix.J, ix.N), dtype=bool)
        self.elig[ix.opt_job, ix.opt_node] = True
        # static per-option score: mean import cost over the window times energy + latency
        pref = np.zeros((ix.N, ix.T + 1))
        pref[:, 1:] = np.cumsum(ix.import_cost, axis=1)
        a = np.clip(ix.opt_earliest, 0, ix.T)
        b = np.clip(ix.opt_latest + ix.opt_dur, 0, ix.T)
        mean = (pref[ix.opt_node, b] - pref[ix.opt_node, a]) / np.maximum(b - a, 1)
        self.opt_score = ix.opt_power * ix.opt_dur * ix.dt * mean + ix.opt_latency_cost
        regions = [n.region for n in problem.nodes]
        self.regions: dict[str, IntArray] = {}
        for r in sorted(set(regions)):
            self.regions[r] = np.array([k for k, x in enumerate(regions) if x == r],
                                       dtype=np.int64)
        self.feeders = [np.nonzero(ix.feeder_of == f)[0].astype(np.int64)
                        for f in range(len(ix.feeder_ids))]
        self.feeders = [m for m in self.feeders if m.size]
        self.lp: tuple[IntArray, ...] | None = None
        self.lp_off: FloatArray | None = None

    # incumbent statistics ---------------------------------------------------------
    def refresh(self, plan: Plan) -> None:
        """Per-node and per-job costs of the incumbent."""
        ix = self.index
        f = plan.flows
        assert f is not None
        dt = ix.dt
        self.plan = plan
        self.node_cost = (dt * np.sum(ix.import_cost * f.grid_import
                                      - ix.export_price * f.grid_export
                                      + ix.degradation[:, None] * f.discharge, axis=1)
                          + ix.demand_charge * f.grid_import.max(axis=1, initial=0.0))
        self.node_kwh = dt * f.load.sum(axis=1)
        # marginal price of load per node and slot: the import cost where the grid
        # supplies, the export price given up where PV is exported, else 0
        lam = np.where(f.grid_import > 1e-9, ix.import_cost,
                       np.where(f.grid_export > 1e-9, ix.export_price, 0.0))
        pref = np.zeros((ix.N, ix.T + 1))
        pref[:, 1:] = np.cumsum(lam * dt, axis=1)
        jc = np.zeros(ix.J)
        self.penalty = np.zeros(ix.J)
        runs = np.nonzero(plan.node >= 0)[0]
        if runs.size:
            n = plan.node[runs]
            d = ix.duration(runs, n)
            a = np.clip(plan.start[runs], 0, ix.T)
            b = np.clip(plan.start[runs] + d, 0, ix.T)
            power = ix.job_power[runs] * ix.power_factor[n]
            over = ix.latency_ms[runs, n] - ix.latency_slo[runs]
            lat = np.where(np.isfinite(over) & (over > 0),
                           ix.latency_rate[runs] * np.nan_to_num(over), 0.0)
            tard = ix.tardiness_cost(runs, plan.start[runs] + d)
            jc[runs] = power * (pref[n, b] - pref[n, a]) + lat + tard
            self.penalty[runs] = lat + tard
        dropped = np.nonzero((plan.node < 0) & ~np.isnan(ix.drop_penalty))[0]
        jc[dropped] = ix.drop_penalty[dropped]
        self.penalty[dropped] = ix.drop_penalty[dropped]
        self.job_cost = jc
        self._lp_disagreement()

    def set_lp(self, placement: tuple[IntArray, ...]) -> None:
        """The LP relaxation's start columns ``(job, node, start, value)``."""
        self.lp = placement
        self._lp_disagreement()

    def _lp_disagreement(self) -> None:
        """``1 −`` the LP value of each job's incumbent placement (dropped: of dropping)."""
        if self.lp is None:
            return
        job, node, start, value = self.lp
        plan = self.plan
        same = (node == plan.node[job]) & (start == plan.start[job])
        here = np.bincount(job[same], weights=value[same], minlength=self.index.J)
        placed = np.bincount(job, weights=value, minlength=self.index.J)
        self.lp_off = np.where(plan.node >= 0, 1.0 - here, placed)
        self.lp_off[~self.movable] = 0.0

    # helpers ---------------------------------------------------------------------
    def _jobs_on(self, nodes: IntArray) -> IntArray:
        plan = self.plan
        on = (plan.node >= 0) & np.isin(plan.node, nodes) & self.movable
        return np.nonzero(on)[0].astype(np.int64)

    def _dropped_for(self, nodes: IntArray) -> IntArray:
        plan = self.plan
        d = (plan.node < 0) & self.movable & self.elig[:, nodes].any(axis=1)
        return np.nonzero(d)[0].astype(np.int64)

    def _pick(self, items: IntArray, k: int, weights: npt.ArrayLike | None = None) -> IntArray:
        if items.size <= k:
            return np.sort(items)
        p = None
        if weights is not None:
            w = np.maximum(np.asarray(weights, dtype=float), 0.0) + 1e-12
            p = w / w.sum()
        return np.sort(self.rng.choice(items, size=k, replace=False, p=p)).astype(np.int64)

    def _node_cap(self, size: int) -> int:
        return max(2, math.ceil(size / 2))

    def _grow(self, seed_nodes: IntArray, size: int) -> IntArray:
        """``seed_nodes`` plus random others until ``size`` jobs live there or the node cap."""
        nodes = np.unique(np.asarray(seed_nodes, dtype=np.int64))
        cap = self._node_cap(size)
        for n in self.rng.permutation(self.index.N):
            have = self._jobs_on(nodes).size + self._dropped_for(nodes).size
            if have >= size or (nodes.size >= cap and have > 0):
                break
            if n not in nodes:
                nodes = np.sort(np.append(nodes, n)).astype(np.int64)
        return nodes

    def _node_hood(self, kind: str, nodes: IntArray, size: int) -> Neighbourhood:
        jobs = np.concatenate([self._jobs_on(nodes), self._dropped_for(nodes)])
        return Neighbourhood(kind, nodes, self._pick(jobs, size))

    def _job_hood(self, kind: str, jobs: IntArray) -> Neighbourhood:
        """Free ``jobs``: their nodes plus one or two eligible alternatives each."""
        ix = self.index
        plan = self.plan
        nodes = set(int(n) for n in plan.node[jobs] if n >= 0)
        cap = self._node_cap(jobs.size) + len(nodes)
        for j in jobs:
            opts = ix.options_of(int(j))
            if not opts.size:
                continue
            sc = self.opt_score[opts]
            w = np.exp(-(sc - sc.min()) / max(1e-9, float(np.ptp(sc)) or 1.0))
            k = min(2, opts.size)
            for o in self._pick(opts, k, w):
                if len(nodes) < cap:
                    nodes.add(int(ix.opt_node[o]))
        arr = np.array(sorted(nodes), dtype=np.int64)
        # a freed job must have an eligible node in S, unless it may stay dropped
        ok = self.elig[jobs][:, arr].any(axis=1) | ~ix.must_run[jobs] | (plan.node[jobs] >= 0)
        return Neighbourhood(kind, arr, jobs[ok])

    def _lp_hood(self, size: int) -> Neighbourhood | None:
        """Jobs placed where the LP relaxation puts little weight, with the LP's nodes.

        Draws ``size`` jobs with weight ``1 − x_LP`` of their incumbent placement
        (RINS-like: where incumbent and relaxation agree nothing is freed); ``S`` is
        their nodes plus, per job, the node of its largest LP weight.
        """
        if self.lp is None or self.lp_off is None:
            return None
        cand = np.nonzero(self.lp_off > LP_DISAGREE)[0]
        if not cand.size:
            return None
        jobs = self._pick(cand, size, self.lp_off[cand])
        job, node, _, value = self.lp
        nodes = set(int(n) for n in self.plan.node[jobs] if n >= 0)
        cap = self._node_cap(jobs.size) + len(nodes)
        for j in jobs:
            mine = job == j
            if mine.any() and len(nodes) < cap:
                mass = np.bincount(node[mine], weights=value[mine], minlength=self.index.N)
                nodes.add(int(np.argmax(mass)))
        arr = np.array(sorted(nodes), dtype=np.int64)
        ix, plan = self.index, self.plan
        ok = self.elig[jobs][:, arr].any(axis=1) | ~ix.must_run[jobs] | (plan.node[jobs] >= 0)
        return Neighbourhood("lp", arr, jobs[ok])

    def _machine_hood(self, size: int) -> Neighbourhood | None:
        """One node drawn with weight ``1/(1+rank)`` of its energy cost per kWh of load (as
        ``worst_nodes``, every busy node possible), every job on it freed up to
        ``max(MACHINE_JOBS, 2·size)`` (else a random run of that many consecutive jobs by
        start), plus the dropped jobs eligible there; their own windows."""
        busy = np.nonzero(self.node_kwh > 0)[0]
        if not busy.size:
            return None
        per_kwh = self.node_cost / np.maximum(self.node_kwh, 1e-9)
        rank = np.argsort(np.argsort(-per_kwh[busy]))
        n = int(self._pick(busy, 1, 1.0 / (1.0 + rank))[0])
        nodes = np.array([n], dtype=np.int64)
        jobs = self._jobs_on(nodes)
        cap = max(MACHINE_JOBS, 2 * size)
        if jobs.size > cap:
            order = jobs[np.argsort(self.plan.start[jobs], kind="stable")]
            a = int(self.rng.integers(0, jobs.size - cap + 1))
            jobs = np.sort(order[a:a + cap])
        drop = self._dropped_for(nodes)
        free = np.concatenate([jobs, self._pick(drop, max(1, size // 2))]) if drop.size else jobs
        return Neighbourhood("machine", nodes, np.sort(free).astype(np.int64))

    def _band_hood(self, size: int) -> Neighbourhood | None:
        """A few nodes (:data:`BAND_NODES`) and a time band ``[a, b)``: the jobs lying wholly
        inside it on those nodes are freed, to start and end inside it on any of them.

        The band is wide enough that about ``size`` jobs lie inside (at least twice the
        median duration of the nodes' jobs), so the sub-problem has about
        ``size · nodes · (b − a)`` start columns whatever the instance's windows.
        """
        ix, plan, rng = self.index, self.plan, self.rng
        busy = np.nonzero(self.node_kwh > 0)[0]
        if busy.size < 1:
            return None
        k = int(rng.integers(BAND_NODES[0], BAND_NODES[1] + 1))
        k = min(k, ix.N)
        first = int(rng.choice(busy))
        others = np.setdiff1d(np.arange(ix.N), [first])
        nodes = np.sort(np.concatenate([[first], rng.choice(others, size=k - 1, replace=False)])
                        ).astype(np.int64) if k > 1 else np.array([first], dtype=np.int64)
        on_s = self._jobs_on(nodes)
        if not on_s.size:
            return None
        d = ix.duration(on_s, plan.node[on_s])
        span = max(1, int(np.ptp(np.concatenate([plan.start[on_s], plan.start[on_s] + d]))))
        w = int(np.clip(round(span * size / on_s.size), 2 * float(np.median(d)), ix.T))
        centre = int(plan.start[rng.choice(on_s)])
        a = int(np.clip(centre - w // 2, 0, max(0, ix.T - w)))
        b = min(ix.T, a + w)
        inside = on_s[(plan.start[on_s] >= a) & (plan.start[on_s] + d <= b)]
        if not inside.size:
            return None
        return Neighbourhood("time_band", nodes, self._pick(inside, max(size, 2)), (a, b))

    # kinds -----------------------------------------------------------------------
    def available(self, kind: str) -> bool:
        """Whether ``kind`` can be drawn now (``lp`` needs the LP relaxation's solution)."""
        return kind != "lp" or self.lp is not None

    def build(self, kind: str, size: int) -> Neighbourhood | None:
        ix = self.index
        rng = self.rng
        plan = self.plan
        if kind == "window":
            cap = self._node_cap(size)
            if ix.N <= cap:
                nodes = np.arange(ix.N, dtype=np.int64)
            else:
                nodes = np.sort(rng.choice(ix.N, size=cap, replace=False)).astype(np.int64)
            on_s = self._jobs_on(nodes)
            drop = self._dropped_for(nodes)
            total = max(1, on_s.size + drop.size)
            w = int(np.clip(round(ix.T * size / total), 2, ix.T))
            a = int(rng.integers(0, max(1, ix.T - w + 1)))
            b = a + w
            d = ix.duration(on_s, plan.node[on_s]) if on_s.size else np.zeros(0, dtype=np.int64)
            hit = on_s[(plan.start[on_s] < b) & (plan.start[on_s] + d > a)]
            dl = np.where(np.isfinite(ix.deadline[drop]), ix.deadline[drop], ix.T)
            hit_d = drop[(ix.release[drop] < b) & (dl > a)]
            return Neighbourhood(kind, nodes, self._pick(np.concatenate([hit, hit_d]), size))
        if kind == "feeder":
            coupled = [m for m in self.feeders if np.isfinite(
                ix.feeder_headroom[ix.feeder_of[m[0]]]).any()]
            if not coupled:
                return None
            m = coupled[int(rng.integers(len(coupled)))]
            return self._node_hood(kind, self._pick(m, self._node_cap(size)), size)
        if kind == "region":
            if len(self.regions) < 2:
                return None
            keys = sorted(self.regions)
            members = self.regions[keys[int(rng.integers(len(keys)))]]
            seed = self._pick(members, min(members.size, self._node_cap(size)))
            return self._node_hood(kind, self._grow(seed, size), size)
        if kind == "worst_nodes":
            per_kwh = self.node_cost / np.maximum(self.node_kwh, 1e-9)
            busy = np.nonzero(self.node_kwh > 0)[0]
            if not busy.size:
                return None
            rank = np.argsort(np.argsort(-per_kwh[busy]))
            seed = self._pick(busy, 1, 1.0 / (1.0 + rank))
            return self._node_hood(kind, self._grow(seed, size), size)
        if kind == "random_nodes":
            return self._node_hood(kind, self._grow(np.array([int(rng.integers(ix.N))]), size),
                                   size)
        if kind == "expensive":
            cand = np.nonzero(self.movable & (self.job_cost > 0))[0]
            if not cand.size:
                return None
            return self._job_hood(kind, self._pick(cand, size, self.job_cost[cand]))
        if kind == "penalty":
            cand = np.nonzero(self.movable & (self.penalty > 0))[0]
            if not cand.size:
                return None
            return self._job_hood(kind, self._pick(cand, size, self.penalty[cand]))
        if kind == "random_jobs":
            cand = np.nonzero(self.movable)[0]
            if not cand.size:
                return None
            return self._job_hood(kind, self._pick(cand, size))
        if kind == "lp":
            return self._lp_hood(size)
        if kind == "machine":
            return self._machine_hood(size)
        if kind == "time_band":
            return self._band_hood(size)
        raise ValueError(f"unknown neighbourhood kind {kind!r}; known: {', '.join(KINDS)}")
