"""The exact MILP of SPEC §2-3 as a Pyomo ``ConcreteModel``.

The same model as :mod:`optisched.formulations.milp` (same sets from
:func:`~optisched.formulations.milp.model_sets`, same families, same
``define_*`` names in the same order), written as readable Pyomo components that
users can inspect, extend and hand to any Pyomo solver::

    from optisched.formulations.milp_pyomo import build_pyomo_model
    m = build_pyomo_model(problem)
    m.capacity.pprint()

Components: sets ``K`` (start columns), ``NT`` (node, slot), ``SC`` (scenarios,
``0 … S−1``) and ``SNT`` (scenario, node, slot); variables ``x``, ``drop``, ``on``,
``up``, ``down``, ``down_end`` (first stage, over ``NT``) and ``pv_used``,
``grid_import``, ``grid_export``, ``charge``, ``discharge``, ``soc`` (over ``SNT``),
``peak`` (over scenario and node), ``excl``, and with a CVaR term ``eta`` and ``z``;
one ``Constraint`` per family (``assignment``, ``capacity``, ``on_link``,
``startup``, ``shutdown``, ``power_balance``, ``battery_soc``,
``battery_terminal``, ``battery_exclusion``, ``feeder``, ``demand_peak``, ``cvar``)
and the ``objective``. A problem without scenarios has the one scenario 0. The model
carries ``m._index`` and ``m._sets``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pyomo.environ as pyo

from optisched.domain import Problem
from optisched.formulations.milp import ModelSets, exclusion_nodes, model_sets, start_costs
from optisched.index import Index, compile_index

__all__ = [
    "build_pyomo_model",
    "define_assignment",
    "define_battery",
    "define_battery_exclusion",
    "define_capacity",
    "define_cvar",
    "define_demand_peak",
    "define_feeder",
    "define_objective",
    "define_on_link",
    "define_power_balance",
    "define_switching",
    "define_variables",
]


def _f(v: Any) -> float:
    return float(v)


def define_variables(m: pyo.ConcreteModel, index: Index, sets: ModelSets) -> None:
    """Variables and bounds (see :func:`optisched.formulations.milp.define_variables`)."""
    N, T = index.N, index.T
    K = sets.x_opt.size
    m.K = pyo.RangeSet(0, K - 1) if K else pyo.Set(initialize=[])
    m.NT = pyo.Set(initialize=[(n, t) for n in range(N) for t in range(T)], dimen=2)
    m.x = pyo.Var(m.K, domain=pyo.Binary)
    for k in np.nonzero(sets.x_fixed)[0]:
        m.x[int(k)].fix(1)
    droppable = [int(j) for j in np.nonzero(~index.must_run & ~index.pinned)[0]]
    m.DROP = pyo.Set(initialize=droppable)
    m.drop = pyo.Var(m.DROP, bounds=(0.0, 1.0))
    m.on = pyo.Var(m.NT, domain=pyo.Binary)
    for n, t in m.NT:
        if not (index.can_sleep[n] and index.available[n, t]):
            m.on[n, t].fix(int(index.available[n, t]))
    m.up = pyo.Var(m.NT, bounds=(0.0, 1.0))
    m.down = pyo.Var(m.NT, bounds=(0.0, 1.0))
    m.ENDOFF = pyo.Set(initialize=[int(n) for n in np.nonzero(index.end_off)[0]])
    m.down_end = pyo.Var(m.ENDOFF, bounds=(0.0, 1.0))
    S = index.S
    m.SC = pyo.RangeSet(0, S - 1)
    m.SNT = pyo.Set(initialize=[(s, n, t) for s in range(S) for n in range(N) for t in range(T)],
                    dimen=3)
    ix = [index.scenario(s) for s in range(S)]

    def bnd(field: str) -> Any:
        def rule(_m: pyo.ConcreteModel, s: int, n: int, t: int) -> Any:
            v = getattr(ix[s], field)[n, t]
            return (0.0, _f(v) if np.isfinite(v) else None)
        return rule

    m.pv_used = pyo.Var(m.SNT, bounds=bnd("pv"))
    m.grid_import = pyo.Var(m.SNT, bounds=bnd("headroom"))
    m.grid_export = pyo.Var(m.SNT, bounds=lambda _m, s, n, t: (0.0, _f(index.export_kw[n])))
    m.charge = pyo.Var(m.SNT, bounds=lambda _m, s, n, t: (0.0, _f(index.charge_kw[n])))
    m.discharge = pyo.Var(m.SNT, bounds=lambda _m, s, n, t: (0.0, _f(index.discharge_kw[n])))
    m.soc = pyo.Var(m.SNT, bounds=lambda _m, s, n, t: (_f(index.soc_min[n]),
                                                       _f(index.soc_max[n])))
    m.SN = pyo.Set(initialize=[(s, n) for s in range(S) for n in range(N)], dimen=2)
    m.peak = pyo.Var(m.SN, domain=pyo.NonNegativeReals)
    m.EXCL = pyo.Set(initialize=[(s, int(n), t) for s in range(S)
                                 for n in np.nonzero(exclusion_nodes(ix[s]))[0]
                                 for t in range(T)], dimen=3)
    m.excl = pyo.Var(m.EXCL, domain=pyo.Binary)
    cvar = index.scenarios.cvar_weight > 0
    m.CVAR = pyo.Set(initialize=list(range(S)) if cvar else [])
    m.ETA = pyo.Set(initialize=[0] if cvar else [])
    m.eta = pyo.Var(m.ETA, domain=pyo.Reals)
    m.z = pyo.Var(m.CVAR, domain=pyo.NonNegativeReals)


def define_assignment(m: pyo.ConcreteModel, index: Index, sets: ModelSets) -> None:
    """``assignment``: ``Σ_{o,s} x[o,s] + drop_j = 1`` for jobs not pinned."""
    by_job: dict[int, list[int]] = defaultdict(list)
    for k in np.nonzero(~sets.x_fixed)[0]:
        by_job[int(sets.x_job[k])].append(int(k))
    jobs = [int(j) for j in np.nonzero(~index.pinned)[0]]
    drops = set(m.DROP)

    def rule(_m: pyo.ConcreteModel, j: int) -> Any:
        expr = sum(_m.x[k] for k in by_job[j]) + (_m.drop[j] if j in drops else 0)
        if isinstance(expr, int):
            return pyo.Constraint.Infeasible if expr != 1 else pyo.Constraint.Feasible
        return expr == 1

    m.assignment = pyo.Constraint(jobs, rule=rule)


def _cover(sets: ModelSets) -> dict[tuple[int, int], list[int]]:
    """Start columns covering each (node, slot)."""
    cov: dict[tuple[int, int], list[int]] = defaultdict(list)
    for k, t in zip(sets.cov_k.tolist(), sets.cov_t.tolist(), strict=True):
        cov[(int(sets.x_node[k]), t)].append(k)
    return cov


def define_capacity(m: pyo.ConcreteModel, index: Index, sets: ModelSets) -> None:
    """``capacity``: ``Σ usage·x ≤ cap·on`` where the jobs that could run may exceed it."""
    cov = m._cover
    keys = []
    R = len(index.resources)
    for (n, t), ks in cov.items():
        jobs = {int(sets.x_job[k]) for k in ks}
        for r in range(R):
            if sum(index.usage[j, r] for j in jobs) > index.capacity[n, r] + 1e-9:
                keys.append((n, t, r))

    def rule(_m: pyo.ConcreteModel, n: int, t: int, r: int) -> Any:
        use = sum(_f(index.usage[sets.x_job[k], r]) * _m.x[k] for k in cov[(n, t)]
                  if index.usage[sets.x_job[k], r] != 0)
        if index.can_sleep[n]:
            return use <= _f(index.capacity[n, r]) * _m.on[n, t]
        return use <= _f(index.capacity[n, r])

    m.capacity = pyo.Constraint(pyo.Set(initialize=keys, dimen=3), rule=rule)


def define_on_link(m: pyo.ConcreteModel, index: Index, sets: ModelSets) -> None:
    """``on_link``: ``Σ_{s covering t} x[o,s] ≤ on[n,t]`` per option on a sleeping node."""
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for k, t in zip(sets.cov_k.tolist(), sets.cov_t.tolist(), strict=True):
        o = int(sets.x_opt[k])
        if index.can_sleep[index.opt_node[o]]:
            groups[(o, t)].append(k)

    def rule(_m: pyo.ConcreteModel, o: int, t: int) -> Any:
        return sum(_m.x[k] for k in groups[(o, t)]) <= _m.on[int(index.opt_node[o]), t]

    m.on_link = pyo.Constraint(pyo.Set(initialize=sorted(groups), dimen=2), rule=rule)


def define_switching(m: pyo.ConcreteModel, index: Index, sets: ModelSets) -> None:
    """``startup``: ``up ≥ on_t − on_{t−1}``; ``shutdown``: ``down ≥ on_{t−1} − on_t`` and
    ``down_end ≥ on_{T−1}`` (``end_off``); ``on_{−1} = initially_on``."""
    T = index.T

    def prev(_m: pyo.ConcreteModel, n: int, t: int) -> Any:
        return _m.on[n, t - 1] if t > 0 else int(index.initially_on[n])

    su = [(n, t) for n in np.nonzero(index.startup_cost > 0)[0].tolist() for t in range(T)]
    sd = [(n, t) for n in np.nonzero(index.shutdown_cost > 0)[0].tolist() for t in range(T)]
    m.startup = pyo.Constraint(pyo.Set(initialize=su, dimen=2),
                               rule=lambda _m, n, t: _m.up[n, t] >= _m.on[n, t] - prev(_m, n, t))
    m.shutdown = pyo.Constraint(pyo.Set(initialize=sd, dimen=2),
                                rule=lambda _m, n, t: _m.down[n, t] >= prev(_m, n, t) - _m.on[n, t])
    ends = [n for n in m.ENDOFF if index.shutdown_cost[n] > 0 and T]
    m.shutdown_end = pyo.Constraint(ends, rule=lambda _m, n: _m.down_end[n] >= _m.on[n, T - 1])


def define_power_balance(m: pyo.ConcreteModel, index: Index, sets: ModelSets) -> None:
    """``power_balance``: ``pv_used + import + discharge − charge − export = idle·on +
    Σ power·x`` [kW]."""
    cov = m._cover

    def rule(_m: pyo.ConcreteModel, s: int, n: int, t: int) -> Any:
        load = _f(index.idle_kw[n]) * _m.on[n, t] + sum(
            _f(index.opt_power[sets.x_opt[k]]) * _m.x[k] for k in cov.get((n, t), []))
        return (_m.pv_used[s, n, t] + _m.grid_import[s, n, t] + _m.discharge[s, n, t]
                - _m.charge[s, n, t] - _m.grid_export[s, n, t] == load)

    m.power_balance = pyo.Constraint(m.SNT, rule=rule)


def define_battery(m: pyo.ConcreteModel, index: Index, sets: ModelSets) -> None:
    """``battery_soc``: ``soc_t = soc_{t−1} + Δ(eff_c·charge − discharge/eff_d)``;
    ``battery_terminal``: ``soc_{T−1} ≥ soc_init``."""
    T, dt, S = index.T, index.dt, index.S
    nodes = [int(n) for n in np.nonzero(index.battery_kwh > 0)[0]]

    def rule(_m: pyo.ConcreteModel, s: int, n: int, t: int) -> Any:
        before = _m.soc[s, n, t - 1] if t > 0 else _f(index.soc_init[n])
        return _m.soc[s, n, t] == before + dt * (
            _f(index.eff_charge[n]) * _m.charge[s, n, t]
            - _m.discharge[s, n, t] / _f(index.eff_discharge[n]))

    m.battery_soc = pyo.Constraint(
        pyo.Set(initialize=[(s, n, t) for s in range(S) for n in nodes for t in range(T)],
                dimen=3), rule=rule)
    term = [(s, n) for s in range(S) for n in nodes] if index.terminal_initial and T else []
    m.battery_terminal = pyo.Constraint(
        pyo.Set(initialize=term, dimen=2),
        rule=lambda _m, s, n: _m.soc[s, n, T - 1] >= _f(index.soc_init[n]))


def define_battery_exclusion(m: pyo.ConcreteModel, index: Index, sets: ModelSets) -> None:
    """``battery_exclusion``: ``charge ≤ charge_kw·excl``, ``discharge ≤ discharge_kw·(1−excl)``."""
    m.battery_exclusion_charge = pyo.Constraint(
        m.EXCL, rule=lambda _m, s, n, t: _m.charge[s, n, t]
        <= _f(index.charge_kw[n]) * _m.excl[s, n, t])
    m.battery_exclusion_discharge = pyo.Constraint(
        m.EXCL, rule=lambda _m, s, n, t: _m.discharge[s, n, t]
        <= _f(index.discharge_kw[n]) * (1 - _m.excl[s, n, t]))


def define_feeder(m: pyo.ConcreteModel, index: Index, sets: ModelSets) -> None:
    """``feeder``: ``Σ_{n∈f}(import − export) ≤ feeder_headroom`` in finite slots (per
    scenario, with its own headroom)."""
    lims = [index.scenario(s).feeder_headroom for s in range(index.S)]
    keys = [(s, int(f), int(t)) for s in range(index.S)
            for f, t in zip(*np.nonzero(np.isfinite(lims[s])), strict=True)]
    members = {f: [int(n) for n in np.nonzero(index.feeder_of == f)[0]]
               for f in range(len(index.feeder_ids))}

    def rule(_m: pyo.ConcreteModel, s: int, f: int, t: int) -> Any:
        if not members[f]:
            return pyo.Constraint.Skip
        return (sum(_m.grid_import[s, n, t] - _m.grid_export[s, n, t] for n in members[f])
                <= _f(lims[s][f, t]))

    m.feeder = pyo.Constraint(pyo.Set(initialize=keys, dimen=3), rule=rule)


def define_demand_peak(m: pyo.ConcreteModel, index: Index, sets: ModelSets) -> None:
    """``demand_peak``: ``import[n,t] ≤ peak_n`` on nodes with a demand charge."""
    keys = [(s, int(n), t) for s in range(index.S) for n in np.nonzero(index.demand_charge > 0)[0]
            for t in range(index.T)]
    m.demand_peak = pyo.Constraint(pyo.Set(initialize=keys, dimen=3),
                                   rule=lambda _m, s, n, t: _m.grid_import[s, n, t]
                                   <= _m.peak[s, n])


def _first_stage_cost(m: pyo.ConcreteModel, index: Index, sets: ModelSets) -> Any:
    """Latency, tardiness, drop and switching costs [money] (the same in every scenario)."""
    sc = start_costs(index, sets)
    expr = sum(_f(sc[k]) * m.x[k] for k in m.K if sc[k] != 0)
    expr += sum(_f(index.drop_penalty[j]) * m.drop[j] for j in m.DROP)
    for n, t in m.NT:
        if index.startup_cost[n] != 0:
            expr += _f(index.startup_cost[n]) * m.up[n, t]
        if index.shutdown_cost[n] != 0:
            expr += _f(index.shutdown_cost[n]) * m.down[n, t]
    expr += sum(_f(index.shutdown_cost[n]) * m.down_end[n] for n in m.ENDOFF)
    return expr


def _recourse_cost(m: pyo.ConcreteModel, index: Index, s: int) -> Any:
    """Energy, export, carbon, degradation and demand costs of scenario ``s`` [money]."""
    dt, ix = index.dt, index.scenario(s)
    expr: Any = 0
    for n, t in m.NT:
        if ix.import_cost[n, t] != 0:
            expr += dt * _f(ix.import_cost[n, t]) * m.grid_import[s, n, t]
        if ix.export_price[n, t] != 0:
            expr -= dt * _f(ix.export_price[n, t]) * m.grid_export[s, n, t]
        if index.degradation[n] != 0:
            expr += dt * _f(index.degradation[n]) * m.discharge[s, n, t]
    expr += sum(_f(index.demand_charge[n]) * m.peak[s, n] for n in range(index.N)
                if index.demand_charge[n] != 0)
    return expr


def define_objective(m: pyo.ConcreteModel, index: Index, sets: ModelSets) -> None:
    """``objective``: the cost of SPEC §3 [money] (see ``docs/formulations/milp.md``); with
    scenarios the expected cost, plus ``λ·(η + Σ_σ w_σ z_σ / (1 − α))`` with a CVaR term."""
    sc = index.scenarios
    expr = _first_stage_cost(m, index, sets)
    if index.S == 1:
        expr += _recourse_cost(m, index, 0)
    else:
        expr += sum(_f(sc.weight[s]) * _recourse_cost(m, index, s) for s in range(index.S))
    if sc.cvar_weight > 0:
        expr += _f(sc.cvar_weight) * (m.eta[0] + sum(
            _f(sc.weight[s] / (1.0 - sc.cvar_alpha)) * m.z[s] for s in m.CVAR))
    m.objective = pyo.Objective(expr=expr, sense=pyo.minimize)


def define_cvar(m: pyo.ConcreteModel, index: Index, sets: ModelSets) -> None:
    """``cvar``: ``z_σ ≥ C_σ − η`` with ``C_σ`` the plan's cost in scenario σ (see
    :func:`optisched.formulations.milp.define_cvar`); no rows without a CVaR term."""
    first = _first_stage_cost(m, index, sets) if len(m.CVAR) else 0
    m.cvar = pyo.Constraint(m.CVAR, rule=lambda _m, s: _m.z[s] >= first
                            + _recourse_cost(_m, index, s) - _m.eta[0])


DEFINES = (define_assignment, define_capacity, define_on_link, define_switching,
           define_power_balance, define_battery, define_battery_exclusion, define_feeder,
           define_demand_peak, define_objective, define_cvar)
"""Constraint families and the objective, in the order of the highs build."""


def build_pyomo_model(problem: Problem, index: Index | None = None) -> pyo.ConcreteModel:
    """The exact MILP as a Pyomo ConcreteModel.

    Parameters
    ----------
    problem : Problem
        The problem.
    index : Index, optional
        Its compiled index (compiled when not given).

    Returns
    -------
    pyomo.environ.ConcreteModel
        Minimization model; ``m._index`` and ``m._sets`` hold the index and the
        start columns (``x[k]`` is option ``m._sets.x_opt[k]`` started at
        ``m._sets.x_start[k]``).
    """
    index = index or compile_index(problem)
    sets = model_sets(index)
    m = pyo.ConcreteModel(name="optisched_milp")
    m._index = index
    m._sets = sets
    m._cover = _cover(sets)
    define_variables(m, index, sets)
    for fn in DEFINES:
        fn(m, index, sets)
    return m
