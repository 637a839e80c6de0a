"""The referee: checks a plan against SPEC §2 and prices it by SPEC §3.

Imports no solver. Every solver's plan goes through :func:`evaluate`; the
objective a solver reports is the one computed here (:func:`price_plan`).

Tolerances (SPEC §4): flows within ``FLOW_ATOL`` = 1e-6 kW plus ``RTOL`` = 1e-6
relative to the magnitudes involved; state of charge within ``RTOL`` of the
battery capacity plus 1e-6 kWh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optisched.arrays import FloatArray, IntArray
from optisched.domain import Problem
from optisched.index import Index, compile_index, ineligibility
from optisched.plan import COST_TERMS, Flows, Plan
from optisched.risk import cvar

__all__ = [
    "FLOW_ATOL",
    "RTOL",
    "Evaluation",
    "Violation",
    "cost_terms",
    "evaluate",
    "job_load",
    "objective_of",
    "price_plan",
    "resource_usage",
    "scenario_pricing",
]


FLOW_ATOL = 1e-6
"""Absolute tolerance on flows [kW] and energy [kWh] (SPEC §4)."""
RTOL = 1e-6
"""Relative tolerance (SPEC §4)."""

MAX_VIOLATIONS_PER_FAMILY = 20


@dataclass(frozen=True)
class Violation:
    """One broken constraint.

    Attributes
    ----------
    constraint : str
        Family: ``assignment``, ``eligibility``, ``capacity``, ``on_off``,
        ``power_balance``, ``battery``, ``feeder``, ``plan``.
    message : str
        What is wrong, with ids, slot and amounts.
    job, node : str or None
        Ids involved.
    slot : int or None
        Slot involved.
    amount : float
        By how much it is broken (in the constraint's unit).
    """

    constraint: str
    message: str
    job: str | None = None
    node: str | None = None
    slot: int | None = None
    amount: float = 0.0

    def __str__(self) -> str:
        return f"[{self.constraint}] {self.message}"


@dataclass
class Evaluation:
    """Result of :func:`evaluate`.

    Attributes
    ----------
    feasible : bool
        No violation.
    violations : list of Violation
        Kept violations (at most ``MAX_VIOLATIONS_PER_FAMILY`` per family).
    counts : dict of str to int
        Number of violations per family (all, not only the kept ones).
    costs : dict of str to float
        Terms of SPEC §3.
    objective : float
        ``energy − export_revenue + carbon + degradation + demand + switching +
        latency + tardiness + drop`` [money]; with scenarios (beyond SPEC v1)
        ``expected_cost + cvar_weight · cvar``.
    risk : dict
        With scenarios: ``expected_cost``, ``cvar``, ``cvar_alpha``, ``cvar_weight`` and
        ``scenario_costs`` (id -> cost) (:attr:`optisched.plan.Plan.risk`); else empty.
    """

    feasible: bool
    violations: list[Violation] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    objective: float = float("nan")
    risk: dict[str, Any] = field(default_factory=dict)


class _Collector:
    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self.counts: dict[str, int] = {}

    def add(self, v: Violation) -> None:
        c = self.counts.get(v.constraint, 0)
        self.counts[v.constraint] = c + 1
        if c < MAX_VIOLATIONS_PER_FAMILY:
            self.violations.append(v)

    def check(self, family: str, excess: FloatArray, tol: FloatArray | float,
              describe: Callable[[tuple[int, ...], float], Violation]) -> None:
        """Record a violation for every entry where ``excess > tol``."""
        bad = np.argwhere(excess > tol)
        self.counts[family] = self.counts.get(family, 0) + len(bad)
        for idx in bad[:MAX_VIOLATIONS_PER_FAMILY]:
            key = tuple(int(i) for i in idx)
            self.violations.append(describe(key, float(excess[key])))


def _durations(index: Index, plan: Plan) -> IntArray:
    runs = plan.node >= 0
    d = np.zeros(index.J, dtype=np.int64)
    if runs.any():
        d[runs] = index.duration(np.nonzero(runs)[0], plan.node[runs])
    return d


def resource_usage(index: Index, node: IntArray, start: IntArray,
                   values: FloatArray) -> FloatArray:
    """Sum ``values[j]`` over the slots each running job occupies.

    Parameters
    ----------
    index : Index
        Compiled problem.
    node, start : (J,) int
        Placement (node -1 = not running).
    values : (J,) or (J, K) float
        Per-job quantity (power [kW], resource use …).

    Returns
    -------
    numpy.ndarray
        ``(N, T)`` or ``(N, T, K)`` sums, by difference arrays and a cumulative sum.
    """
    vals = values if values.ndim == 2 else values[:, None]
    K = vals.shape[1]
    diff = np.zeros((index.N, index.T + 1, K))
    runs = np.nonzero(node >= 0)[0]
    if runs.size:
        n = node[runs]
        d = index.duration(runs, n)
        a = np.clip(start[runs], 0, index.T)
        b = np.clip(start[runs] + d, 0, index.T)
        np.add.at(diff, (n, a), vals[runs])
        np.add.at(diff, (n, b), -vals[runs])
    out = np.cumsum(diff, axis=1)[:, : index.T]
    return out if values.ndim == 2 else out[:, :, 0]


def job_load(index: Index, node: IntArray, start: IntArray) -> FloatArray:
    """Power of running jobs ``Σ power_kw · power_factor`` per node and slot [kW], ``(N, T)``."""
    pf_power = np.zeros(index.J)
    runs = node >= 0
    if runs.any():
        j = np.nonzero(runs)[0]
        pf_power[j] = index.job_power[j] * index.power_factor[node[j]]
    return resource_usage(index, node, start, pf_power)


def cost_terms(index: Index, plan: Plan) -> dict[str, float]:
    """Every cost term of SPEC §3 for a plan with flows [money], each from its own definition.

    ``energy = Σ Δ·price·import``, ``export_revenue = Σ Δ·export_price·export``,
    ``carbon = carbon_price · Σ Δ·carbon·import / 1e6``, ``degradation = Σ Δ·
    degradation_per_kwh·discharge``, ``demand = Σ_n demand_charge · max_t import``,
    ``switching`` = start-ups and shut-downs (from ``initially_on``, and to off
    after the last slot when ``end_off``), ``latency = Σ_j latency_per_ms ·
    max(0, latency − SLO)``, ``tardiness = Σ_j rate · max(0, end − deadline)``,
    ``drop = Σ dropped penalties``. No term is the difference of two others, so
    none loses precision when another is large.

    With several scenarios (beyond SPEC v1) the energy terms (energy to demand) are
    their expectation over the scenarios, each scenario's flows priced on its own
    series (:func:`scenario_pricing`).

    Parameters
    ----------
    index : Index
        Compiled problem.
    plan : Plan
        A plan with flows.
    """
    f = plan.flows
    assert f is not None
    if index.S == 1:
        return {**_energy_terms(index, f), **_first_stage_terms(index, plan)}
    return scenario_pricing(index, plan).costs


def _energy_terms(index: Index, f: Flows) -> dict[str, float]:
    """The terms that depend on the flows: energy, export revenue, carbon, degradation,
    demand [money]."""
    dt = index.dt
    imp = f.grid_import
    carbon = index.carbon_price * float(np.sum(dt * index.carbon * imp)) / 1e6
    return {
        "energy": float(np.sum(dt * index.price * imp)),
        "export_revenue": float(np.sum(dt * index.export_price * f.grid_export)),
        "carbon": carbon,
        "degradation": float(np.sum(dt * index.degradation[:, None] * f.discharge)),
        "demand": float(np.sum(index.demand_charge * imp.max(axis=1, initial=0.0))),
    }


def _first_stage_terms(index: Index, plan: Plan) -> dict[str, float]:
    """The terms of placement and on/off: switching, latency, tardiness, drop [money]."""
    f = plan.flows
    assert f is not None
    on = f.on.astype(bool)
    prev = np.concatenate([index.initially_on[:, None], on[:, :-1]], axis=1)
    ups = (on & ~prev).sum(axis=1)
    downs = (~on & prev).sum(axis=1) + (index.end_off & on[:, -1])
    runs = plan.node >= 0
    jr = np.nonzero(runs)[0]
    nr = plan.node[runs]
    lat = 0.0
    tard = 0.0
    if jr.size:
        over = index.latency_ms[jr, nr] - index.latency_slo[jr]
        lat = float(np.sum(np.where(np.isfinite(over) & (over > 0),
                                    index.latency_rate[jr] * np.nan_to_num(over), 0.0)))
        end = plan.start[jr] + index.duration(jr, nr)
        tard = float(np.sum(index.tardiness_cost(jr, end)))
    dropped = ~runs
    drop = float(np.nansum(index.drop_penalty[dropped]))
    return {
        "switching": float(np.sum(ups * index.startup_cost + downs * index.shutdown_cost)),
        "latency": lat,
        "tardiness": tard,
        "drop": drop,
    }


def objective_of(costs: dict[str, float]) -> float:
    """Objective of SPEC §3 from its terms (export revenue subtracted)."""
    return sum(-costs[k] if k == "export_revenue" else costs[k] for k in COST_TERMS)


@dataclass(frozen=True)
class ScenarioPricing:
    """The price of a plan on every scenario (beyond SPEC v1; :func:`scenario_pricing`).

    Attributes
    ----------
    costs : dict of str to float
        Expected cost terms: the first-stage terms once, the energy terms' weighted mean.
    scenario_terms : list of dict
        The terms of each scenario.
    scenario_costs : (S,) float
        Cost of the plan in each scenario [money].
    expected : float
        ``Σ_s w_s · scenario_costs`` [money] (equal to ``objective_of(costs)``).
    cvar : float
        ``CVaR_α`` of the scenario costs (:func:`optisched.risk.cvar`) [money].
    objective : float
        ``expected + cvar_weight · cvar`` [money].
    """

    costs: dict[str, float]
    scenario_terms: list[dict[str, float]]
    scenario_costs: FloatArray
    expected: float
    cvar: float
    objective: float

    def risk(self, index: Index) -> dict[str, Any]:
        """The :attr:`optisched.plan.Plan.risk` entries."""
        sc = index.scenarios
        return {"expected_cost": self.expected, "cvar": self.cvar, "cvar_alpha": sc.cvar_alpha,
                "cvar_weight": sc.cvar_weight,
                "scenario_costs": {sid: float(c) for sid, c in
                                   zip(sc.ids, self.scenario_costs, strict=True)}}


def scenario_pricing(index: Index, plan: Plan) -> ScenarioPricing:
    """Price a plan with flows on every scenario of ``index``.

    Scenario ``s``'s flows (``plan.flows.scenario(s)``) are priced on its own series
    (:meth:`~optisched.index.Index.scenario`); the terms of placement and on/off are the
    same in every scenario. With one scenario this is :func:`cost_terms`, and the
    objective is ``objective_of(costs)`` (plus ``cvar_weight`` times it, when set).
    """
    f = plan.flows
    assert f is not None
    first = _first_stage_terms(index, plan)
    sc = index.scenarios
    terms = [{**_energy_terms(index.scenario(s), f.scenario(s)), **first}
             for s in range(index.S)]
    totals = np.array([objective_of(t) for t in terms])
    if index.S == 1:
        costs = terms[0]
        expected = float(totals[0])
    else:
        w = sc.weight
        costs = {k: (first[k] if k in first else float(np.dot(w, [t[k] for t in terms])))
                 for k in COST_TERMS}
        expected = objective_of(costs)
    risk = cvar(totals, sc.weight, sc.cvar_alpha)
    objective = expected + sc.cvar_weight * risk if sc.cvar_weight else expected
    return ScenarioPricing(costs, terms, totals, expected, risk, objective)


def price_plan(problem: Problem, plan: Plan, index: Index | None = None) -> Plan:
    """Fill ``plan.costs`` and ``plan.objective`` (and, with scenarios, ``plan.risk``) from
    the plan's flows (in place).

    Returns
    -------
    Plan
        The same plan, for chaining.
    """
    if plan.flows is None:
        return plan
    index = index or compile_index(problem)
    pricing = scenario_pricing(index, plan)
    plan.costs = pricing.costs
    plan.objective = pricing.objective
    plan.risk = pricing.risk(index) if problem.scenarios else {}
    return plan


def evaluate(problem: Problem, plan: Plan, index: Index | None = None) -> Evaluation:
    """Check every constraint of SPEC §2 and price the plan by SPEC §3.

    Parameters
    ----------
    problem : Problem
        The problem.
    plan : Plan
        A plan for it (job and node order of the problem).
    index : Index, optional
        The compiled problem, when the caller has it.

    Returns
    -------
    Evaluation
        ``feasible`` with pinpointed violations and the cost breakdown.
    """
    index = index or compile_index(problem)
    col = _Collector()
    if not plan.status.has_plan or plan.flows is None:
        col.add(Violation("plan", f"no plan (status {plan.status.value}): {plan.message}"))
        return Evaluation(False, col.violations, col.counts)
    f = plan.flows
    N, T = index.N, index.T
    if f.on.shape != (N, T):
        col.add(Violation("plan", f"node series has shape {f.on.shape}, expected {(N, T)}"))
        return Evaluation(False, col.violations, col.counts)
    if f.S != index.S:
        col.add(Violation("plan", f"the plan has flows of {f.S} scenario(s), the problem has "
                          f"{index.S}"))
        return Evaluation(False, col.violations, col.counts)
    _check_assignment(problem, index, plan, col)
    _check_capacity(index, plan, col)
    _check_on_off(index, plan, col)
    for s in range(index.S):  # constraints 5-7 hold in every scenario
        first = len(col.violations)
        ix_s, f_s = index.scenario(s), f.scenario(s)
        _check_power(ix_s, plan, f_s, col)
        _check_battery(ix_s, f_s, col)
        _check_feeders(ix_s, f_s, col)
        if index.S > 1:
            sid = index.scenarios.ids[s]
            col.violations[first:] = [dataclasses.replace(v, message=f"scenario {sid}: "
                                                          f"{v.message}")
                                      for v in col.violations[first:]]
    pricing = scenario_pricing(index, plan)
    return Evaluation(not col.violations and not any(col.counts.values()), col.violations,
                      col.counts, pricing.costs, pricing.objective,
                      pricing.risk(index) if problem.scenarios else {})


def _check_assignment(problem: Problem, index: Index, plan: Plan, col: _Collector) -> None:
    """Constraints 1-2: one placement or a permitted drop; pinned fixed; eligible start."""
    for j, job in enumerate(problem.jobs):
        n = int(plan.node[j])
        s = int(plan.start[j])
        if job.pinned:
            pn, ps = int(index.pinned_node[j]), int(index.pinned_start[j])
            if n != pn or s != ps:
                col.add(Violation("assignment", f"job {job.job_id} is pinned to node "
                                  f"{index.node_ids[pn]} at slot {ps} but the plan has "
                                  f"{'dropped' if n < 0 else f'{index.node_ids[n]} at slot {s}'}",
                                  job=job.job_id))
            continue
        if n < 0:
            if job.drop_penalty is None:
                col.add(Violation("assignment", f"job {job.job_id} must run but is dropped",
                                  job=job.job_id))
            continue
        o = index.find_option(j, n)
        if o < 0:
            why = ineligibility(problem, index, j, n) or "not eligible"
            col.add(Violation("eligibility", f"job {job.job_id} may not run on node "
                              f"{index.node_ids[n]}: {why}", job=job.job_id,
                              node=index.node_ids[n]))
        elif not index.start_ok(o, s):
            d = int(index.opt_dur[o])
            lo, hi = int(index.opt_earliest[o]), int(index.opt_latest[o])
            why = (f"start must lie in [{lo}, {hi}] (release, deadline, horizon)"
                   if not lo <= s <= hi else
                   f"node {index.node_ids[n]} is unavailable in some of slots {s}..{s + d - 1}")
            col.add(Violation("eligibility", f"job {job.job_id} cannot start at slot {s} on "
                              f"node {index.node_ids[n]}: {why}", job=job.job_id,
                              node=index.node_ids[n], slot=s))


def _check_capacity(index: Index, plan: Plan, col: _Collector) -> None:
    """Constraint 3: resource use ≤ capacity; nothing runs where unavailable."""
    use = resource_usage(index, plan.node, plan.start, index.usage)
    excess = use - index.capacity[:, None, :]
    tol = FLOW_ATOL + RTOL * index.capacity[:, None, :]

    def cap_msg(key: tuple[int, ...], amount: float) -> Violation:
        n, t, r = key
        return Violation("capacity", f"node {index.node_ids[n]} slot {t}: {index.resources[r]} use "
                         f"{use[n, t, r]:g} exceeds capacity {index.capacity[n, r]:g}",
                         node=index.node_ids[n], slot=t, amount=amount)

    col.check("capacity", excess, tol, cap_msg)
    count = resource_usage(index, plan.node, plan.start, np.ones(index.J))
    busy_unavail = np.where(~index.available, count, 0.0)

    def avail_msg(key: tuple[int, ...], amount: float) -> Violation:
        n, t = key
        return Violation("capacity", f"node {index.node_ids[n]} slot {t} is unavailable but "
                         f"{int(amount)} job(s) run there", node=index.node_ids[n], slot=t,
                         amount=amount)

    col.check("capacity", busy_unavail, 0.5, avail_msg)


def _check_on_off(index: Index, plan: Plan, col: _Collector) -> None:
    """Constraint 4: jobs run on on nodes; can_sleep=false is on when available; unavailable off."""
    assert plan.flows is not None
    on = plan.flows.on.astype(bool)
    count = resource_usage(index, plan.node, plan.start, np.ones(index.J))
    off_busy = np.where(~on, count, 0.0)

    def busy_msg(key: tuple[int, ...], amount: float) -> Violation:
        n, t = key
        return Violation("on_off", f"node {index.node_ids[n]} is off in slot {t} but "
                         f"{int(amount)} job(s) run there", node=index.node_ids[n], slot=t)

    col.check("on_off", off_busy, 0.5, busy_msg)
    must_on = (~index.can_sleep[:, None]) & index.available & ~on

    def awake_msg(key: tuple[int, ...], amount: float) -> Violation:
        n, t = key
        return Violation("on_off", f"node {index.node_ids[n]} cannot sleep but is off in "
                         f"available slot {t}", node=index.node_ids[n], slot=t)

    col.check("on_off", must_on.astype(float), 0.5, awake_msg)
    on_unavail = (~index.available) & on

    def unavail_msg(key: tuple[int, ...], amount: float) -> Violation:
        n, t = key
        return Violation("on_off", f"node {index.node_ids[n]} is on in unavailable slot {t}",
                         node=index.node_ids[n], slot=t)

    col.check("on_off", on_unavail.astype(float), 0.5, unavail_msg)


def _check_power(index: Index, plan: Plan, f: Flows, col: _Collector) -> None:
    """Constraint 5: power balance, load definition and flow bounds (flows ``f``)."""
    load = f.on * index.idle_kw[:, None] + job_load(index, plan.node, plan.start)
    ids = index.node_ids

    def at(name: str, arr: FloatArray, unit: str = "kW") -> Callable[[tuple[int, ...], float],
                                                                     Violation]:
        def msg(key: tuple[int, ...], amount: float) -> Violation:
            n, t = key
            return Violation("power_balance", f"node {ids[n]} slot {t}: {name} (value "
                             f"{arr[n, t]:.6g} {unit}, off by {amount:.3g})", node=ids[n],
                             slot=t, amount=amount)
        return msg

    col.check("power_balance", np.abs(f.load - load), FLOW_ATOL + RTOL * np.abs(load),
              at("load_kw must equal on·idle_kw + job power = "
                 f"{load.max(initial=0.0):.6g} at most", f.load))
    supply = f.pv_used + f.grid_import + f.discharge
    demand = load + f.charge + f.grid_export
    col.check("power_balance", np.abs(supply - demand),
              FLOW_ATOL + RTOL * np.maximum(np.abs(supply), np.abs(demand)),
              at("pv_used + import + discharge must equal load + charge + export", supply))
    for name, arr, hi in (
        ("pv_used_kw", f.pv_used, index.pv),
        ("import_kw", f.grid_import, index.headroom),
        ("export_kw", f.grid_export, np.broadcast_to(index.export_kw[:, None], f.on.shape)),
    ):
        col.check("power_balance", -arr, FLOW_ATOL, at(f"{name} must be >= 0", arr))
        with np.errstate(invalid="ignore"):
            over = np.where(np.isfinite(hi), arr - hi, -np.inf)
        col.check("power_balance", over, FLOW_ATOL + RTOL * np.where(np.isfinite(hi), hi, 0.0),
                  at(f"{name} exceeds its limit", arr))


def _check_battery(index: Index, f: Flows, col: _Collector) -> None:
    """Constraint 6: SoC dynamics, bounds, terminal rule, power limits, no simultaneous c/d."""
    dt = index.dt
    E = index.battery_kwh
    ids = index.node_ids
    soc_tol = FLOW_ATOL + RTOL * E[:, None]
    prev = np.concatenate([index.soc_init[:, None], f.soc[:, :-1]], axis=1)
    expect = prev + dt * (index.eff_charge[:, None] * f.charge
                          - f.discharge / index.eff_discharge[:, None])

    def bmsg(text: str, arr: FloatArray) -> Callable[[tuple[int, ...], float], Violation]:
        def msg(key: tuple[int, ...], amount: float) -> Violation:
            n, t = key
            return Violation("battery", f"node {ids[n]} slot {t}: {text} (value {arr[n, t]:.6g}, "
                             f"off by {amount:.3g})", node=ids[n], slot=t, amount=amount)
        return msg

    col.check("battery", np.abs(f.soc - expect), soc_tol,
              bmsg("soc_kwh must equal soc before + Δ(eff_charge·charge − discharge/eff_discharge)",
                   f.soc))
    col.check("battery", index.soc_min[:, None] - f.soc, soc_tol, bmsg("soc below soc_min", f.soc))
    col.check("battery", f.soc - index.soc_max[:, None], soc_tol, bmsg("soc above soc_max", f.soc))
    for name, arr, hi in (("charge_kw", f.charge, index.charge_kw),
                          ("discharge_kw", f.discharge, index.discharge_kw)):
        col.check("battery", -arr, FLOW_ATOL, bmsg(f"{name} must be >= 0", arr))
        col.check("battery", arr - hi[:, None], FLOW_ATOL + RTOL * hi[:, None],
                  bmsg(f"{name} exceeds its limit {hi.max(initial=0.0):g}", arr))
    col.check("battery", np.minimum(f.charge, f.discharge), FLOW_ATOL,
              bmsg("charges and discharges in the same slot", f.charge))
    if index.terminal_initial and index.T:
        short = (index.soc_init - f.soc[:, -1])[:, None]
        col.check("battery", short, soc_tol[:, :1],
                  lambda key, amount: Violation(
                      "battery", f"node {ids[key[0]]}: final soc {f.soc[key[0], -1]:.6g} kWh is "
                      f"below the initial {index.soc_init[key[0]]:.6g} kWh (terminal = initial)",
                      node=ids[key[0]], slot=index.T - 1, amount=amount))


def _check_feeders(index: Index, f: Flows, col: _Collector) -> None:
    """Constraint 7: Σ_{n∈f} (import − export) ≤ feeder headroom."""
    if not index.feeder_ids:
        return
    F = len(index.feeder_ids)
    net = np.zeros((F, index.T))
    has = index.feeder_of >= 0
    np.add.at(net, index.feeder_of[has], (f.grid_import - f.grid_export)[has])
    lim = index.feeder_headroom
    over = np.where(np.isfinite(lim), net - lim, -np.inf)
    col.check("feeder", over, FLOW_ATOL + RTOL * np.where(np.isfinite(lim), np.abs(lim), 0.0),
              lambda key, amount: Violation(
                  "feeder", f"feeder {index.feeder_ids[key[0]]} slot {key[1]}: net import "
                  f"{net[key]:.6g} kW exceeds headroom {lim[key]:.6g} kW",
                  slot=key[1], amount=amount))
