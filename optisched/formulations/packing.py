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
   the jobs); elsewhere only a guide, since the caller re-prices the packing.
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
        if not idx.must_run[j]:
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
        terms.append(v)
    for j, lit in pm.drop.items():
        terms.append(round(float(idx.drop_penalty[j]) / pm.money) * lit)
    pm.cost_terms = terms
    md.minimize(sum(terms))


def build_packing_model(index: Index, objective: bool = True) -> PackingModel:
    """Build the packing model (families in the order of the module docstring)."""
    pm = PackingModel(model=cp_model.CpModel(), index=index)
    define_packing_assignment(pm)
    define_packing_capacity(pm)
    if objective:
        define_packing_objective(pm)
    return pm


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
