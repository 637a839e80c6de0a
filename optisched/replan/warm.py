"""The warm-started greedy run of an update, and the dispatch carried across a roll.

:func:`warm_greedy` re-plans the rolled problem from the plan in force: jobs not
yet started keep their place, checked first only on the nodes whose data changed
(:func:`index_changed_rows`, with every node of a coupled feeder:
:func:`feeder_closure`); pinned jobs are placed as pinned, the on-state of
sleeping nodes is kept; the nodes whose data, state and load are unchanged keep
the flows of the plan in force (:class:`CarriedDispatch`,
:func:`optisched.rolling.carry.carry_flows`), the others are dispatched; then the
greedy's local search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optisched.arrays import BoolArray, IntArray
from optisched.domain import Problem
from optisched.index import Index
from optisched.plan import Flows, Plan
from optisched.replan.step import Roll
from optisched.rolling.carry import carry_flows
from optisched.solvers.base import SolveOptions
from optisched.solvers.greedy import GreedySearch, GreedyState, run_greedy
from optisched.solvers.greedy.construct import find_options
from optisched.solvers.greedy.scan import default_candidates

__all__ = ["CarriedDispatch", "feeder_closure", "index_changed_rows", "warm_greedy"]

_CARRY_NEW_SLOTS = 4
"""Most slots appended by one roll (window mode, an extension) for which a battery node
keeps its flows (its new slots filled by a rule, :func:`optisched.rolling.carry.carry_flows`);
more, and every node is dispatched again. Measured: with one to four new slots per roll
the carried dispatch stays within 0.06 % of the exact one (``docs/replan.md``)."""


def index_changed_rows(old: Index, new: Index, k: int
                       ) -> tuple[BoolArray, BoolArray, BoolArray, BoolArray, int]:
    """Nodes whose data changed over the slots both horizons cover.

    Returns
    -------
    available : (N,) bool
        Availability changed.
    power : (N,) bool
        PV or headroom changed.
    feeder : (N,) bool
        The node is on a feeder whose headroom changed.
    prices : (N,) bool
        Import price, export price or import cost changed.
    overlap : int
        Shared slots ``T_ov`` (new slots ``0..T_ov−1`` are old slots ``k..k+T_ov−1``).
    """
    T_ov = max(0, min(new.T, old.T - k))

    def diff(name: str) -> BoolArray:
        a, b = getattr(old, name)[:, k:k + T_ov], getattr(new, name)[:, :T_ov]
        return ~((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1)

    feeder = np.zeros(new.N, dtype=bool)
    if new.feeder_ids:
        fa = old.feeder_headroom[:, k:k + T_ov]
        fb = new.feeder_headroom[:, :T_ov]
        fchg = ~((fa == fb) | (np.isinf(fa) & np.isinf(fb))).all(axis=1)
        has = new.feeder_of >= 0
        feeder = has & fchg[np.maximum(new.feeder_of, 0)]
    prices = diff("price") | diff("export_price") | diff("import_cost")
    return diff("available"), diff("pv") | diff("headroom"), feeder, prices, T_ov


def feeder_closure(index: Index, rows: BoolArray) -> BoolArray:
    """``rows`` with every node of a feeder (with a finite headroom) that one of them is on."""
    if not index.feeder_ids or not rows.any():
        return rows
    finite = np.isfinite(index.feeder_headroom).any(axis=1)
    f = index.feeder_of
    hit = np.zeros(len(index.feeder_ids), dtype=bool)
    sel = rows & (f >= 0)
    hit[f[sel]] = True
    hit &= finite
    return np.asarray(rows | ((f >= 0) & hit[np.maximum(f, 0)]))


@dataclass
class CarriedDispatch:
    """Which nodes keep the dispatch of the plan in force across a roll, and for how long.

    Attributes
    ----------
    redispatch : str
        ``changed`` (carry what can be carried) or ``all`` (carry only when nothing
        was rolled).
    refresh : int
        Carried nodes dispatched exactly again at each roll, the longest-carried first.
    age : (N,) int
        Rolls each node's dispatch has been carried since it was last dispatched exactly.
    """

    redispatch: str
    refresh: int
    age: IntArray

    def flows(self, index: Index, st: GreedyState, of: Flows, k: int, T_ov: int,
              changed: BoolArray) -> Flows:
        """Flows of the plan in force for the nodes whose dispatch can be kept.

        A node keeps them when it needs a linear program (battery, demand charge), its
        data over the shared slots and its load and on-state there are unchanged, and
        :func:`~optisched.rolling.carry.carry_flows` accepts them (with
        ``redispatch="all"``, only when nothing was rolled). Every other node gets
        ``load = NaN``: the greedy dispatches it again.
        """
        N, T = index.N, index.T
        prev = Flows.zeros(N, T)
        prev.load[:] = np.nan
        if self.redispatch == "all" and k > 0:
            return prev
        lp = (index.battery_kwh > 0) | (index.demand_charge > 0)
        if index.feeder_ids:
            # coupled feeder groups are dispatched together: keep them only unrolled
            on_feeder = index.feeder_of >= 0
            lp &= ~on_feeder | (k == 0 and T_ov == T)
        same = lp & ~changed
        if T_ov:
            same &= (np.abs(st.load[:, :T_ov] - of.load[:, k:k + T_ov]) <= 1e-9).all(axis=1)
            same &= (st.on[:, :T_ov] == of.on[:, k:k + T_ov]).all(axis=1)
        rolled = k > 0 or T_ov < T
        if T - T_ov > _CARRY_NEW_SLOTS:
            return prev  # many new slots: their dispatch is not a small change, solve it
        if rolled:
            # a demand charge or a negative price is not followed by the terminal shift:
            # dispatch those nodes exactly; and the longest-carried ones (the drift bound)
            same &= (index.demand_charge <= 0) & (index.import_cost >= 0).all(axis=1)
            if self.refresh and same.any():
                age = self.age if self.age.size == N else np.zeros(N, dtype=np.int64)
                cand = np.nonzero(same & (age > 0))[0]
                pick = cand[np.argsort(-age[cand], kind="stable")[:self.refresh]]
                same[pick] = False
        rows, got = carry_flows(index, np.nonzero(same)[0], of, k, st.load)
        for name, arr in got.items():
            getattr(prev, name)[rows] = arr
        prev.load[rows] = st.load[rows]
        prev.on[rows] = st.on[rows]
        return prev

    def note(self, index: Index, plan: Plan, rolled: bool) -> None:
        """Count one more roll for the nodes ``plan`` carried (``plan.info["carried_nodes"]``);
        the others were dispatched exactly (age 0)."""
        carried = np.isin(np.array(index.node_ids), plan.info.get("carried_nodes", []))
        age = self.age if self.age.size == index.N else np.zeros(index.N, dtype=np.int64)
        self.age = np.where(carried, age + int(rolled), 0)


def warm_greedy(problem: Problem, index: Index, roll: Roll, prev: tuple[Index, Plan] | None,
                options: SolveOptions, carry: CarriedDispatch
                ) -> tuple[Plan, GreedySearch, set[str]]:
    """The warm-started greedy run.

    Jobs not yet started are placed at once where nothing changed; on nodes whose
    PV, headroom or availability changed (and their feeder) each is checked
    first. Pinned jobs are placed as pinned, the on-state of sleeping nodes kept.
    Nodes whose data, state and load are unchanged keep the flows of the plan in
    force (:meth:`CarriedDispatch.flows`); the others are dispatched.

    Parameters
    ----------
    problem, index : Problem, Index
        The rolled problem and its index.
    roll : Roll
        Its warm start (``roll.hints``) and the slots rolled.
    prev : (Index, Plan) or None
        The index and plan in force (None: a plan from scratch, every node dispatched).
    options : SolveOptions
        Time limit, seed and greedy options of the run.
    carry : CarriedDispatch
        What decides the carried dispatch.

    Returns
    -------
    (Plan, GreedySearch, set of str)
        The plan (exact objective; no cost terms yet), the search (its state
        tells which job failed) and the ids of the jobs whose place was checked.
    """
    search = GreedySearch(problem, index, default_candidates(index))
    st = search.state
    hint = {index.job_pos[j]: (index.node_pos[n], s) for j, (n, s) in roll.hints.items()
            if j in index.job_pos and n in index.node_pos}
    k = roll.k
    old_flows = prev[1].flows if prev is not None else None
    if prev is not None and old_flows is not None:
        placement, price_chg, T_ov = _changed_nodes(prev[0], old_flows, index, k)
    else:
        placement = np.ones(index.N, dtype=bool)
        price_chg = np.ones(index.N, dtype=bool)
        T_ov = 0
    placement = feeder_closure(index, placement)
    checked = _place_trusted(st, index, hint, placement)
    prev_flows = None
    if T_ov > 0 and old_flows is not None:
        _keep_bridges(st, index, old_flows, placement, k, T_ov)
        prev_flows = carry.flows(index, st, old_flows, k, T_ov, placement | price_chg)
    fresh = prev is None and not hint  # a first plan: greedy's multi-start too
    plan = run_greedy(problem, index, options, hint=None if fresh else checked, search=search,
                      trusted=False, prev_flows=prev_flows)
    plan.info["carried_nodes"] = [index.node_ids[n]
                                  for n in np.nonzero(_carried(index, plan, prev_flows))[0]]
    return plan, search, {index.job_ids[j] for j in checked}


def _changed_nodes(old_index: Index, old_flows: Flows, index: Index, k: int
                   ) -> tuple[BoolArray, BoolArray, int]:
    """Nodes whose jobs must be checked again, nodes whose prices changed, shared slots.

    New PV or headroom: a node whose load (battery idle) still fits its headroom in
    every shared slot keeps its jobs unchecked (capacity did not change).
    """
    N = index.N
    av_chg, power_chg, feeder_chg, price_chg, T_ov = index_changed_rows(old_index, index, k)
    coupled = np.zeros(N, dtype=bool)
    if index.feeder_ids:
        finite: BoolArray = np.asarray(np.isfinite(index.feeder_headroom).any(axis=1))
        coupled = (index.feeder_of >= 0) & finite[np.maximum(index.feeder_of, 0)]
    loose = power_chg & ~av_chg & ~coupled
    if T_ov and loose.any():
        rows = np.nonzero(loose)[0]
        need = np.maximum(old_flows.load[rows, k:k + T_ov] - index.pv[rows, :T_ov], 0.0)
        fits = (need <= index.headroom[rows, :T_ov] + 1e-7).all(axis=1)
        loose[rows[~fits]] = False
    placement = av_chg | feeder_chg | (power_chg & ~loose)
    return placement, price_chg | power_chg, T_ov


def _place_trusted(st: GreedyState, index: Index, hint: dict[int, tuple[int, int]],
                   placement: BoolArray) -> dict[int, tuple[int, int]]:
    """Place the trusted jobs: hinted jobs on nodes whose data did not change (where their
    option still holds) and the pinned jobs.

    Returns
    -------
    dict job -> (node, start)
        The hints still to check (on changed nodes, or no longer valid).
    """
    T = index.T
    js = np.array([j for j, (n, _s) in hint.items() if not placement[n]], dtype=np.int64)
    checked = {j: hint[j] for j in hint if placement[hint[j][0]]}
    if js.size:
        hn = np.array([hint[int(j)][0] for j in js], dtype=np.int64)
        ss = np.array([hint[int(j)][1] for j in js], dtype=np.int64)
        os_ = find_options(index, js, hn)
        oc = np.maximum(os_, 0)
        good = ((os_ >= 0) & (index.opt_earliest[oc] <= ss) & (ss <= index.opt_latest[oc])
                & (ss >= 0) & (ss < T)
                & (index.avail_run[index.opt_node[oc], np.clip(ss, 0, T - 1)]
                   >= index.opt_dur[oc]))
        st.place_many(js[good], os_[good], ss[good])
        for j in js[~good].tolist():
            checked[j] = hint[j]
    pj = np.nonzero(index.pinned & (np.diff(index.opt_job_ptr) > 0))[0]
    st.place_many(pj, index.opt_job_ptr[pj], index.pinned_start[pj])
    return checked


def _keep_bridges(st: GreedyState, index: Index, of: Flows, placement: BoolArray, k: int,
                  T_ov: int) -> None:
    """Carry the on-state of sleeping nodes whose data did not change (kept on between
    jobs: the bridge) over the shared slots."""
    for n in np.nonzero(index.can_sleep & ~placement)[0].tolist():
        row = np.zeros(index.T, dtype=bool)
        row[:T_ov] = of.on[n, k:k + T_ov]
        if (row & ~st.on[n]).any():
            st.set_bridge(n, row)


def _carried(index: Index, plan: Plan, prev_flows: Flows | None) -> BoolArray:
    """Nodes whose flows in ``plan`` are the carried ones (``prev_flows``) unchanged."""
    N, T = index.N, index.T
    carried = np.zeros(N, dtype=bool)
    if prev_flows is not None and plan.flows is not None:
        offered = ~np.isnan(prev_flows.load[:, 0]) if T else np.zeros(N, dtype=bool)
        carried = offered & (plan.flows.grid_import == prev_flows.grid_import).all(axis=1) & (
            plan.flows.soc == prev_flows.soc).all(axis=1)
    return carried
