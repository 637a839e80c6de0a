"""The greedy's placement state: loads, capacity use, on-state, dispatch bookkeeping, objective.

:class:`GreedyState` holds one placement of the jobs and everything derived from
it that scoring (:mod:`optisched.solvers.greedy.scan`) and the exact objective
need, updated incrementally by :meth:`~GreedyState.place` and
:meth:`~GreedyState.unplace`. It makes no decisions: construction, moves and the
search loop live in the sibling modules and take a state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optisched.arrays import BoolArray, FloatArray, IntArray
from optisched.dispatch import dispatch_groups, dispatch_load
from optisched.domain import Problem
from optisched.index import Index
from optisched.plan import FlowArrays, Flows
from optisched.risk import risk_objective

__all__ = ["DispatchResult", "GreedyState", "Placement"]


def _node_energy(ix: Index, f: FlowArrays) -> FloatArray:
    """Energy cost of each node's flows ``f`` on the prices of ``ix`` (SPEC §3 energy..demand)
    [money]."""
    dt = ix.dt
    return np.asarray(
        dt * (ix.import_cost * f.grid_import - ix.export_price * f.grid_export).sum(axis=1)
        + dt * ix.degradation * f.discharge.sum(axis=1)
        + ix.demand_charge * f.grid_import.max(axis=1, initial=0.0))

DispatchResult = tuple[bool, dict[int, float], object, str]
"""``(feasible, {group: energy cost}, result, message)`` of :meth:`GreedyState.dispatch`."""


@dataclass(frozen=True)
class Placement:
    """A placement of the jobs, as :meth:`GreedyState.snapshot` takes it.

    Attributes
    ----------
    opt : (J,) int
        Option position of each job (-1 = not placed).
    start : (J,) int
        Start slot of each placed job.
    bridge : (N, T) bool
        Bridged slots of sleeping nodes.
    """

    opt: IntArray
    start: IntArray
    bridge: BoolArray

    @property
    def placed(self) -> BoolArray:
        """(J,) True for the placed jobs."""
        return np.asarray(self.opt >= 0)


class GreedyState:
    """Placement state of the greedy solver (also what the re-planner's warm start fills).

    Parameters
    ----------
    problem : Problem
        The problem.
    index : Index
        Its compiled index.

    Attributes
    ----------
    node, start : (J,) int
        Current placement (node -1 = dropped or not yet placed).
    opt : (J,) int
        Option position of each placed job (-1 = not placed).
    jobs_kw : (N, T) float
        Σ power of the jobs running in each slot [kW].
    use : (N, T, R) float
        Σ resource use of the jobs running in each slot.
    room : (N, R, T) float
        Capacity left, ``capacity − use``, with slots last (the scorer's capacity test
        reads contiguous rows of it).
    busy : (N, T) int
        Number of jobs running in each slot.
    bridge : (N, T) bool
        Slots a sleeping node is kept on without a job (the ``bridge`` move).
    on : (N, T) bool
        On/off state.
    load : (N, T) float
        ``on · idle_kw + Σ job power`` [kW].
    net : (N, T) float
        Net import with the battery idle [kW]; ``fnet`` its sum per feeder.
    free_gpu : (N,) float
        GPU-slots still free over the horizon (candidate pruning).
    shift_price, budget : (N,) float
        Price at which the battery can serve load [money/kWh] and the energy it can
        still shift [kWh] (:meth:`_battery_estimates`).
    gcost, sw, jcost : float arrays
        Exact objective per dispatch group, per node (switching) and per job
        (latency + tardiness, or drop penalty), filled by :meth:`evaluate_all`. With
        several scenarios (beyond SPEC v1) ``gcost`` is ``(G, S)``: each group's cost in
        each scenario (the objective is then :meth:`risk_delta`'s).
    """

    def __init__(self, problem: Problem, index: Index) -> None:
        self.problem = problem
        self.index = index
        ix = index
        N, T, J, R = ix.N, ix.T, ix.J, len(ix.resources)
        self.N, self.T, self.J, self.R = N, T, J, R
        self.base_on = ix.always_on
        self.exp_price = np.maximum(ix.export_price, 0.0)
        groups, _ = dispatch_groups(ix)
        self.groups = groups
        self.group_of = np.zeros(N, dtype=np.int64)
        for g, members in enumerate(groups):
            self.group_of[members] = g
        self.reset()

    def reset(self) -> None:
        """Empty the placement: no job placed, no bridge, every derived array as at the start."""
        ix = self.index
        N, T, J, R = self.N, self.T, self.J, self.R
        self.node = np.full(J, -1, dtype=np.int64)
        self.start = np.zeros(J, dtype=np.int64)
        self.opt = np.full(J, -1, dtype=np.int64)
        self.jobs_kw = np.zeros((N, T))
        self.use = np.zeros((N, T, R))
        self.room = np.repeat(ix.capacity[:, :, None], T, axis=2)
        self.busy = np.zeros((N, T), dtype=np.int64)
        self.bridge = np.zeros((N, T), dtype=bool)
        self.on = self.base_on.copy()
        self.load = self.on * ix.idle_kw[:, None]
        self.net = self.net_rows(np.arange(N))
        self.ext = np.zeros((N, T + 2), dtype=bool)
        """On-state with the state before slot 0 and after slot T−1 added."""
        self.bcum = np.zeros((N, T + 2))
        """Prefix sums of the switching cost on boundaries 0..T (see :meth:`bound_rows`)."""
        self.bound_rows(np.nonzero(ix.can_sleep)[0])
        F = len(ix.feeder_ids)
        self.fnet = np.zeros((F, T))
        has = ix.feeder_of >= 0
        if F:
            np.add.at(self.fnet, ix.feeder_of[has], self.net[has])
        self.free_gpu = (ix.capacity[:, 0][:, None] * ix.available).sum(axis=1).astype(float)
        self._battery_estimates()
        # exact objective bookkeeping (filled by evaluate_all)
        self.gcost = np.zeros(len(self.groups) if ix.S == 1 else (len(self.groups), ix.S))
        self.flows = Flows.zeros(N, T, ix.S)
        self.sw = np.zeros(N)
        self.jcost = np.zeros(J)
        self.evaluated = False

    def snapshot(self) -> Placement:
        """The current placement (options, starts, bridges), for :meth:`restore`."""
        return Placement(self.opt.copy(), self.start.copy(), self.bridge.copy())

    def restore(self, placement: Placement) -> None:
        """Make ``placement`` (from :meth:`snapshot` of a state of the same index) current.

        The exact objective is not recomputed: call :meth:`evaluate_all` afterwards.
        """
        self.reset()
        jobs = np.nonzero(placement.opt >= 0)[0]
        self.place_many(jobs, placement.opt[jobs], placement.start[jobs])
        rows = np.nonzero(placement.bridge.any(axis=1))[0]
        for n in rows:
            self.set_bridge(int(n), placement.bridge[n])

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

    # ------------------------------------------------------------------ derived rows
    def net_rows(self, rows: IntArray) -> FloatArray:
        """Net import ``import − export`` of nodes ``rows`` with the battery idle [kW]."""
        ix = self.index
        L, pv = self.load[rows], ix.pv[rows]
        imp = np.maximum(L - pv, 0.0)
        exp = np.where(ix.export_price[rows] > 0,
                       np.minimum(np.maximum(pv - L, 0.0), ix.export_kw[rows][:, None]), 0.0)
        return np.asarray(imp - exp)

    def bound_rows(self, rows: IntArray) -> None:
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

    def refresh(self, n: int) -> None:
        """Recompute the on-state, load, net import and switching rows of node ``n``."""
        ix = self.index
        self.on[n] = self.base_on[n] | (self.busy[n] > 0) | (self.bridge[n] & ix.available[n])
        self.load[n] = self.on[n] * ix.idle_kw[n] + self.jobs_kw[n]
        f = int(ix.feeder_of[n])
        new = self.net_rows(np.array([n]))[0]
        if f >= 0:
            self.fnet[f] += new - self.net[n]
        self.net[n] = new
        if ix.can_sleep[n]:
            self.bound_rows(np.array([n]))

    # ------------------------------------------------------------------ placement
    def place(self, j: int, o: int, s: int) -> None:
        """Put job ``j`` on option ``o`` at start ``s`` (no checks)."""
        ix = self.index
        n = int(ix.opt_node[o])
        a, b = max(0, s), min(self.T, s + int(ix.opt_dur[o]))
        self.node[j], self.start[j], self.opt[j] = n, s, o
        self.jobs_kw[n, a:b] += ix.opt_power[o]
        self.use[n, a:b] += ix.usage[j]
        self.room[n, :, a:b] -= ix.usage[j][:, None]
        self.busy[n, a:b] += 1
        self.free_gpu[n] -= ix.usage[j, 0] * (b - a)
        self.budget[n] -= ix.opt_power[o] * (b - a) * ix.dt
        self.refresh(n)

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
        self.room[n, :, a:b] += ix.usage[j][:, None]
        self.busy[n, a:b] -= 1
        self.free_gpu[n] += ix.usage[j, 0] * (b - a)
        self.budget[n] += ix.opt_power[o] * (b - a) * ix.dt
        zero = self.busy[n, a:b] == 0
        self.jobs_kw[n, a:b][zero] = 0.0  # no drift from repeated add/remove
        self.use[n, a:b][zero] = 0.0
        if zero.any():
            self.room[n, :, a:b][:, zero] = ix.capacity[n][:, None]
        self.node[j], self.start[j], self.opt[j] = -1, 0, -1
        self.refresh(n)

    def set_bridge(self, n: int, row: BoolArray) -> None:
        """Set the kept-on slots of node ``n`` (only effective where it may sleep)."""
        self.bridge[n] = row & self.index.available[n] & bool(self.index.can_sleep[n])
        self.refresh(n)

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
        self.room -= acc[:, :, 1:self.R + 1].transpose(0, 2, 1)
        self.busy += np.rint(acc[:, :, -1]).astype(np.int64)
        np.add.at(self.free_gpu, n, -ix.usage[jobs, 0] * (b - a))
        np.add.at(self.budget, n, -ix.opt_power[opts] * (b - a) * ix.dt)
        rows = np.unique(n)
        self.on[rows] = self.base_on[rows] | (self.busy[rows] > 0) | (
            self.bridge[rows] & ix.available[rows])
        self.load[rows] = self.on[rows] * ix.idle_kw[rows][:, None] + self.jobs_kw[rows]
        new = self.net_rows(rows)
        fr = ix.feeder_of[rows]
        has = fr >= 0
        if has.any():
            np.add.at(self.fnet, fr[has], new[has] - self.net[rows[has]])
        self.net[rows] = new
        self.bound_rows(rows[ix.can_sleep[rows]])

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

    def switching(self, rows: IntArray) -> FloatArray:
        """Start-up + shut-down cost of nodes ``rows`` for the current on-state [money]."""
        ix = self.index
        on = self.on[rows]
        prev = np.concatenate([ix.initially_on[rows][:, None], on[:, :-1]], axis=1)
        ups = (on & ~prev).sum(axis=1)
        downs = (~on & prev).sum(axis=1) + (ix.end_off[rows] & on[:, -1])
        return np.asarray(ups * ix.startup_cost[rows] + downs * ix.shutdown_cost[rows])

    def dispatch(self, groups: list[int]) -> DispatchResult:
        """Exact dispatch of the dispatch groups ``groups`` for the current load.

        Returns
        -------
        tuple
            ``(feasible, {group: energy cost}, result, message)``; ``result`` is the
            :func:`optisched.dispatch.dispatch_load` result (its ``write_into``
            stores the flows).
        """
        members = np.concatenate([self.groups[g] for g in groups])
        res = dispatch_load(self.index, self.load, members)
        costs: dict[int, float] = {}
        if res.nodes.size:
            pos = np.full(self.N, -1, dtype=np.int64)
            pos[res.nodes] = np.arange(res.nodes.size)
            for g in groups:
                if res.scenario_cost is None:
                    costs[g] = float(np.sum(res.cost[pos[self.groups[g]]]))
                else:  # (S,): the group's cost in each scenario
                    per = res.scenario_cost[:, pos[self.groups[g]]]
                    costs[g] = per.sum(axis=1)
        return bool(res.feasible), costs, res, res.message

    def evaluate_all(self, prev: Flows | None = None) -> tuple[bool, str]:
        """Dispatch every group and price the whole plan exactly.

        Parameters
        ----------
        prev : Flows, optional
            Flows of an earlier plan of the *same* node data (re-planning at the same
            ``now`` without forecast or state changes): groups whose load and on-state
            are unchanged keep those flows instead of being dispatched again.

        Returns
        -------
        (bool, str)
            Whether every group has feasible flows, and the dispatch's message.
        """
        groups = list(range(len(self.groups)))
        if prev is not None and prev.load.shape == self.load.shape:
            same = (prev.load == self.load).all(axis=1) & (prev.on == self.on).all(axis=1)
            kept = [g for g in groups if same[self.groups[g]].all()]
            for g in kept:
                rows = self.groups[g]
                self.flows.set_flows(rows, prev.take_rows(rows))
            groups = [g for g in groups if not same[self.groups[g]].all()]
        ok, msg = True, ""
        if groups:
            ok, _, res, msg = self.dispatch(groups)
            res.write_into(self.flows)  # type: ignore[attr-defined]
        node_cost = self._flow_costs()
        if self.index.S == 1:
            self.gcost = np.asarray(np.bincount(self.group_of, weights=node_cost,
                                                minlength=len(self.groups)), dtype=np.float64)
        else:
            self.gcost = np.zeros((len(self.groups), self.index.S))
            np.add.at(self.gcost, self.group_of, node_cost.T)
        if not ok:
            self.gcost[:] = np.inf
        self.sw = self.switching(np.arange(self.N))
        self.jcost = self.all_job_terms()
        self.evaluated = ok
        return ok, msg

    def _flow_costs(self) -> FloatArray:
        """Energy cost of each node's current flows (SPEC §3 energy..demand) [money]; with
        several scenarios ``(S, N)``, each scenario's flows on its own prices."""
        if self.index.S > 1:
            return np.stack([_node_energy(self.index.scenario(s), f)
                             for s, f in enumerate(self.flows.scenario_flows())])
        return _node_energy(self.index, self.flows)

    @property
    def objective(self) -> float:
        """Exact objective of the current state (after :meth:`evaluate_all`) [money]."""
        if self.gcost.ndim == 2:
            return self.risk_delta(np.zeros(self.index.S), base=True)
        return float(self.gcost.sum() + self.sw.sum() + self.jcost.sum())

    def risk_delta(self, delta: float | FloatArray, base: bool = False) -> float:
        """The change of the objective when every scenario's cost changes by ``delta``.

        With one scenario ``delta`` itself. With several, ``delta`` is ``(S,)`` (or a
        number, the same in every scenario) and the objective ``E + λ·CVaR_α`` of the
        scenario totals is recomputed (:func:`optisched.risk.risk_objective`), so moves are
        priced exactly; ``base``: the objective itself instead of its change.
        """
        if self.gcost.ndim == 1:
            return float(delta)
        sc = self.index.scenarios
        totals = self.gcost.sum(axis=0) + self.sw.sum() + self.jcost.sum()
        old = risk_objective(totals, sc.weight, sc.cvar_alpha, sc.cvar_weight)
        if base:
            return old
        new = risk_objective(totals + np.asarray(delta, dtype=float), sc.weight, sc.cvar_alpha,
                             sc.cvar_weight)
        return new - old

    def final_flows(self) -> Flows:
        """Flows of the current state (exact dispatch), with on/load set."""
        f = self.flows.copy()
        f.on = self.on.copy()
        f.load = self.load.copy()
        return f
