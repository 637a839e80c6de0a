"""CP-SAT packing model: placement and resources only (``docs/algorithms/lns.md`` §1).

A start for tightly packed instances (ICON 2014: two machines at 80-90 % of a
resource), where greedy insertion fails. It keeps SPEC §2 constraints 1-3 exactly
(assignment with drops, eligibility and start windows from the compiled index,
resources per node and slot) and leaves out power, battery, feeders and on/off,
which :func:`optisched.dispatch.dispatch` decides afterwards for the packing found
(a packing whose dispatch is infeasible is refused by the caller).

Families, built in this order by :func:`build_packing_model`:

1. :func:`define_packing_assignment` — ``Σ_o z_o + drop_j = 1`` per job, an optional
   interval ``[σ_o, σ_o + d_o)`` per option with ``σ_o ∈ S_o`` (feasible starts);
2. :func:`define_packing_capacity` — ``cumulative`` per node and resource:
   ``Σ_{o on n running at t} u_jr ≤ cap_nr``;
3. :func:`define_packing_objective` — a surrogate cost [money]: each option's
   energy at the import cost with no PV or battery
   ``Δ P_o Σ_{t=σ}^{σ+d−1} c_nt`` plus latency, tardiness and drop penalties, in
   integer units. Exact for grid-only nodes without idle draw (the ICON energy of
   the jobs); elsewhere only a guide, since the caller re-prices the packing;
4. :func:`define_packing_on_off` (``on_off=True``) — the on/off state of every node
   and slot: ``on_nt`` literals (fixed on where the node cannot sleep, off where it is
   unavailable); a job runs only while its node is on: per node a ``cumulative`` of
   the job intervals (demand 1) and, per slot, an interval ``[t, t+1)`` present iff
   ``¬on_nt`` with demand ``M_n`` (the node's number of job intervals) and capacity
   ``M_n``; start-ups ``up_t ≥ on_t − on_{t−1}`` and shut-downs ``down_t ≥ on_{t−1} −
   on_t`` from ``initially_on``, one more after the last slot with ``end_off``; their
   costs and the idle draw at the import cost ``Δ · idle_n · c_nt · on_nt`` join the
   objective. With it the objective is SPEC §3 exactly on grid-only nodes (no PV,
   battery, demand charge or finite feeder headroom): the ICON cost. This is the
   interval sub-model of ``lns`` (``docs/algorithms/lns.md`` §2,
   :func:`~optisched.solvers.lns.subproblem.solve_subproblem` with ``cpsat-pack``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from optisched.index import Index

#: resource usages and capacities are multiplied by this before rounding
RES_SCALE = 1000
#: the surrogate objective's money unit is at most this fraction of its largest term
COST_RESOLUTION = 1e-6


@dataclass
class PackingModel:
    """The CP-SAT model of :func:`build_packing_model` and its variables."""

    model: cp_model.CpModel
    index: Index
    present: dict[int, Any] = field(default_factory=dict)
    start: dict[int, Any] = field(default_factory=dict)
    interval: dict[int, Any] = field(default_factory=dict)
    drop: dict[int, Any] = field(default_factory=dict)
    cost_terms: list[Any] = field(default_factory=list)
    money: float = 1.0
    on: dict[tuple[int, int], Any] = field(default_factory=dict)
    """``on[n, t]`` literals of :func:`define_packing_on_off` (sleeping, available slots)."""
    switch_terms: list[tuple[Any, float]] = field(default_factory=list)
    """(literal, cost [money]) of the start-ups, shut-downs and idle draw."""
    up: dict[tuple[int, int], Any] = field(default_factory=dict)
    """Start-up literal of node ``n`` before slot ``t`` (t = T: none)."""
    down: dict[tuple[int, int], Any] = field(default_factory=dict)
    """Shut-down literal of node ``n`` before slot ``t`` (t = T: after the last slot)."""
    cost_var: dict[int, Any] = field(default_factory=dict)
    """Cost [money units] of option ``o`` at its start (options whose cost varies)."""


def _start_costs(index: Index, o: int, starts: np.ndarray) -> np.ndarray:
    """Surrogate cost of option ``o`` at each start in ``starts`` [money]."""
    n, d = int(index.opt_node[o]), int(index.opt_dur[o])
    j = int(index.opt_job[o])
    c = np.concatenate(([0.0], np.cumsum(index.import_cost[n])))
    lo = np.clip(starts, 0, index.T)
    hi = np.clip(starts + d, 0, index.T)
    energy = index.dt * float(index.opt_power[o]) * (c[hi] - c[lo])
    tard = np.asarray(index.tardiness_cost(j, starts + d), dtype=float)
    return np.asarray(energy + tard + float(index.opt_latency_cost[o]), dtype=float)


def define_packing_assignment(pm: PackingModel) -> None:
    """Each job on one option or dropped: ``Σ_o z_o + drop_j = 1``; pinned jobs fixed.

    Option ``o`` has a presence literal ``z_o``, a start ``σ_o ∈ S_o`` (the index's
    feasible starts) and an optional interval of length ``d_o`` [slots].
    """
    idx, md = pm.index, pm.model
    for j in range(idx.J):
        lits = []
        for o in idx.options_of(j):
            o = int(o)
            starts = idx.feasible_starts(o)
            if starts.size == 0:
                continue
            z = md.new_bool_var(f"z{o}")
            s = md.new_int_var_from_domain(cp_model.Domain.from_values(starts.tolist()), f"s{o}")
            pm.present[o], pm.start[o] = z, s
            pm.interval[o] = md.new_optional_fixed_size_interval_var(
                s, int(idx.opt_dur[o]), z, f"i{o}")
            lits.append(z)
        if not idx.must_run[j] and not idx.pinned[j]:
            pm.drop[j] = md.new_bool_var(f"drop{j}")
            lits.append(pm.drop[j])
        md.add_exactly_one(lits)


def define_packing_capacity(pm: PackingModel) -> None:
    """``cumulative`` per node and resource: running usage ``≤ cap_nr`` in every slot.

    Usages are rounded up and capacities down after scaling by :data:`RES_SCALE`,
    so every packing found fits the real capacities.
    """
    idx, md = pm.index, pm.model
    for n in range(idx.N):
        opts = [o for o in pm.interval if idx.opt_node[o] == n]
        for r in range(len(idx.resources)):
            use = [math.ceil(idx.usage[idx.opt_job[o], r] * RES_SCALE - 1e-9) for o in opts]
            cap = math.floor(idx.capacity[n, r] * RES_SCALE + 1e-9)
            if sum(use) <= cap:
                continue
            ivs = [pm.interval[o] for o, u in zip(opts, use, strict=True) if u > 0]
            md.add_cumulative(ivs, [u for u in use if u > 0], cap)


def define_packing_objective(pm: PackingModel) -> None:
    """Minimise the surrogate cost (module docstring) in integer money units."""
    idx, md = pm.index, pm.model
    tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    biggest = 0.0
    for o in pm.interval:
        starts = idx.feasible_starts(o)
        cost = _start_costs(idx, o, starts)
        tables[o] = (starts, cost)
        biggest = max(biggest, float(np.abs(cost).max(initial=0.0)))
    for j, _ in pm.drop.items():
        biggest = max(biggest, float(idx.drop_penalty[j]))
    for _, c in pm.switch_terms:
        biggest = max(biggest, abs(c))
    pm.money = max(biggest * COST_RESOLUTION, 1e-9)
    terms: list[Any] = []
    for o, (starts, cost) in tables.items():
        units = np.round(cost / pm.money).astype(np.int64)
        lo, hi = int(units.min()), int(units.max())
        if lo == hi:
            terms.append(lo * pm.present[o])
            continue
        v = md.new_int_var(min(lo, 0), max(hi, 0), f"c{o}")
        # v = cost(σ_o) when present; 0 when absent
        pairs = [[int(s), int(u)] for s, u in zip(starts, units, strict=True)]
        md.add_allowed_assignments([pm.start[o], v], pairs).only_enforce_if(pm.present[o])
        md.add(v == 0).only_enforce_if(~pm.present[o])
        pm.cost_var[o] = v
        terms.append(v)
    for j, lit in pm.drop.items():
        terms.append(round(float(idx.drop_penalty[j]) / pm.money) * lit)
    for lit, money in pm.switch_terms:
        switch_units = round(float(money) / pm.money)
        if switch_units:
            terms.append(switch_units * lit)
    pm.cost_terms = terms
    md.minimize(sum(terms))


def define_packing_on_off(pm: PackingModel) -> None:
    """On/off literals, a job only while its node is on, switching (module docstring).

    Appends the idle draw ``Δ · idle_n · c_nt`` of every ``on_nt`` literal and the
    start-up and shut-down costs to :attr:`PackingModel.switch_terms` [money]; constant
    on/off states (nodes that cannot sleep, unavailable slots) are left out.
    """
    idx, md = pm.index, pm.model
    T = idx.T
    for n in range(idx.N):
        opts = [o for o in pm.interval if idx.opt_node[o] == n]
        avail = idx.available[n]
        sleep = bool(idx.can_sleep[n])
        lits: list[Any] = []
        for t in range(T):
            if not avail[t]:
                lits.append(0)
            elif not sleep:
                lits.append(1)
            else:
                v = md.new_bool_var(f"on{n}_{t}")
                pm.on[n, t] = v
                lits.append(v)
                c = float(idx.dt * idx.idle_kw[n] * idx.import_cost[n, t])
                if c:
                    pm.switch_terms.append((v, c))
        if opts:
            M = len(opts)
            ivs = [pm.interval[o] for o in opts]
            dem = [1] * M
            for t in range(T):
                lit = lits[t]
                if isinstance(lit, int):  # constant: on, or unavailable (no start covers it)
                    continue
                ivs.append(md.new_optional_fixed_size_interval_var(t, 1, ~lit, f"off{n}_{t}"))
                dem.append(M)
            if len(ivs) > M:
                md.add_cumulative(ivs, dem, M)
        prev: Any = int(bool(idx.initially_on[n]))
        up_c, down_c = float(idx.startup_cost[n]), float(idx.shutdown_cost[n])
        for t in range(T + (1 if idx.end_off[n] else 0)):
            cur: Any = lits[t] if t < T else 0
            if isinstance(cur, int) and isinstance(prev, int):
                prev = cur
                continue
            if up_c > 0 and not (isinstance(cur, int) and cur == 0):
                u = md.new_bool_var(f"up{n}_{t}")
                md.add(u >= cur - prev)
                pm.up[n, t] = u
                pm.switch_terms.append((u, up_c))
            if down_c > 0 and not (isinstance(prev, int) and prev == 0):
                d = md.new_bool_var(f"down{n}_{t}")
                md.add(d >= prev - cur)
                pm.down[n, t] = d
                pm.switch_terms.append((d, down_c))
            prev = cur


def build_packing_model(index: Index, objective: bool = True,
                        on_off: bool = False) -> PackingModel:
    """Build the packing model (families in the order of the module docstring)."""
    pm = PackingModel(model=cp_model.CpModel(), index=index)
    define_packing_assignment(pm)
    define_packing_capacity(pm)
    if on_off:
        define_packing_on_off(pm)
    if objective:
        define_packing_objective(pm)
    return pm


def hint_packing(pm: PackingModel, node: np.ndarray, start: np.ndarray,
                 on: np.ndarray | None = None) -> None:
    """Hint every variable of ``pm`` with the placement ``(node, start)`` (and on/off
    states ``on`` (N, T) when the model has them): a complete hint, so CP-SAT's first
    solution is the hinted one."""
    idx, md = pm.index, pm.model
    tables = {}
    for o, z in pm.present.items():
        j = int(idx.opt_job[o])
        here = bool(node[j] == idx.opt_node[o])
        md.add_hint(z, here)
        s0 = int(start[j]) if here else int(idx.feasible_starts(o)[0])
        md.add_hint(pm.start[o], s0)
        v = pm.cost_var.get(o)
        if v is not None:
            tables[o] = (v, here, s0)
    if tables:
        for o, (v, here, s0) in tables.items():
            c = _start_costs(idx, o, np.array([s0]))[0] if here else 0.0
            md.add_hint(v, round(c / pm.money) if here else 0)
    for j, lit in pm.drop.items():
        md.add_hint(lit, bool(node[j] < 0))
    if on is None or not pm.on:
        return
    for (n, t), v in pm.on.items():
        md.add_hint(v, bool(on[n, t]))
    T = idx.T
    state = np.concatenate([idx.initially_on[:, None], on, np.zeros((idx.N, 1), dtype=bool)],
                           axis=1).astype(int)
    for (n, t), u in pm.up.items():
        md.add_hint(u, bool(state[n, t + 1] > state[n, t]) if t < T else False)
    for (n, t), d in pm.down.items():
        md.add_hint(d, bool(state[n, t] > state[n, t + 1]))


def extract_on(pm: PackingModel, solver: cp_model.CpSolver) -> np.ndarray:
    """The on/off states ``(N, T)`` of a solved model with :func:`define_packing_on_off`
    (constant states: on where available and the node cannot sleep)."""
    idx = pm.index
    on = np.array(idx.always_on, dtype=bool)
    for (n, t), v in pm.on.items():
        on[n, t] = bool(solver.boolean_value(v))
    return on


def extract_packing(pm: PackingModel, solver: cp_model.CpSolver) -> tuple[np.ndarray, np.ndarray]:
    """Node and start of every job (-1 when dropped) from a solved packing model."""
    idx = pm.index
    node = np.full(idx.J, -1, dtype=np.int64)
    start = np.full(idx.J, -1, dtype=np.int64)
    for o, z in pm.present.items():
        if solver.boolean_value(z):
            j = int(idx.opt_job[o])
            node[j], start[j] = int(idx.opt_node[o]), int(solver.value(pm.start[o]))
    return node, start
