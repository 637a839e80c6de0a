"""CP-SAT model of SPEC §2-3 in scaled integers (``docs/formulations/cpsat.md``).

The model is built by :func:`build_model`, which calls one ``define_*`` function
per constraint family in a fixed order:

1. :func:`define_scaling`     — power, state-of-charge and money units;
2. :func:`define_assignment`  — start literals (or optional intervals), drops;
   :func:`define_on_off_vars` — the on literals (the capacity rows use them);
3. :func:`define_capacity`    — resources per node and slot;
4. :func:`define_on_off`      — job ⇒ on, start-ups and shut-downs;
5. :func:`define_power`       — power balance, flow bounds, demand peak;
6. :func:`define_battery`     — state of charge in integers;
7. :func:`define_feeders`     — feeder headroom;
8. :func:`define_objective`   — SPEC §3 in money units.

The scaled model is a *relaxation* of SPEC §2 up to a bounded cost: every
feasible plan of the real problem maps to a feasible solution of the scaled model
whose scaled cost exceeds the real cost by at most :attr:`CpsatModel.rounding_bound`
[money] (the argument is in ``docs/formulations/cpsat.md``). Hence
``cpsat_bound − rounding_bound`` is a valid lower bound of the real optimum. The
placement and on/off states of a CP-SAT solution are exactly feasible for
SPEC §2 constraints 1-4 (resources are scaled exactly when they are multiples of
1/1000, which :attr:`CpsatModel.bound_valid` records); its energy flows are
recomputed exactly by :func:`optisched.dispatch.dispatch`.

Notation: ``p_n`` power unit of node n [kW], ``e_n`` energy unit of its battery
[kWh], ``m`` money unit [money], ``Δ`` slot length [h]; ``⌈·⌉``, ``⌊·⌋``,
``rnd(·)`` ceiling, floor and rounding to the nearest integer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from ortools.sat.python import cp_model

from optisched.arrays import FloatArray, IntArray
from optisched.index import Index

__all__ = [
    "EFF_DEN",
    "MAX_POWER_UNITS",
    "SOC_UNITS",
    "CpsatModel",
    "Scaling",
    "build_model",
    "define_assignment",
    "define_battery",
    "define_capacity",
    "define_feeders",
    "define_objective",
    "define_on_off",
    "define_on_off_vars",
    "define_power",
    "define_scaling",
]


MAX_POWER_UNITS = 1e5
"""A node's largest power in power units is at most this (``p_n = 10^k`` kW, k ≥ −4)."""
MIN_POWER_EXP = -4
"""Finest power unit: 10^-4 kW = 0.1 W."""
SOC_UNITS = 100_000
"""A battery's capacity in energy units (``e_n = battery_kwh / SOC_UNITS``)."""
EFF_DEN = 1000
"""Denominator of the integer efficiency ratios (relative precision 1/EFF_DEN)."""
RES_SCALE = 1000
"""Resources are counted in 1/RES_SCALE of their unit."""
MONEY_PRECISION = 1e4
"""The smallest non-zero flow cost coefficient is at least this many money units."""
MAX_OBJECTIVE_UNITS = 1e17
"""Upper limit on the objective's activity range in money units (int64 headroom)."""

Lit = Any  # cp_model IntVar / literal / constant


@dataclass
class Scaling:
    """Integer units of the model.

    Attributes
    ----------
    p : (N,) float
        Power unit of each node [kW per unit] (a power of ten).
    e : (N,) float
        Energy unit of each node's battery [kWh per unit] (1 without battery).
    m : float
        Money unit [money per unit] (a power of ten).
    res_exact : bool
        All resource capacities and uses are exact multiples of 1/RES_SCALE.
    """

    p: FloatArray
    e: FloatArray
    m: float
    res_exact: bool


@dataclass
class CpsatModel:
    """A built CP-SAT model with the handles needed to read a solution back.

    Attributes
    ----------
    model : cp_model.CpModel
        The model.
    index : Index
        The compiled problem.
    scaling : Scaling
        Units.
    variant : str
        ``"starts"`` (a literal per option and feasible start) or ``"intervals"``
        (an optional interval per option plus per-slot running literals).
    opt_starts : list of (k,) int
        Feasible starts per option (``starts``) .
    opt_lits : list of list
        Start literals per option (``starts``), or ``[presence]`` (``intervals``).
    opt_start_var : list
        Start variable per option (``intervals``), else empty.
    drop : list
        Drop literal per job, or None for a job that must run.
    on : (N, T) object
        On/off literal or Python bool per node and slot.
    imp, exp, chg, dis, soc, cin, dout, sig_p, sig_m : (N, T) object
        Flow variables in power units (soc, cin, dout in energy units) or None.
    peak : list
        Peak-import variable per node (None without demand charge).
    enforce : dict of str to list of (literal, label)
        Enforcement literals per family (``job``, ``capacity``, ``power``,
        ``feeder``) when built with ``explain=True``.
    offset : float
        Constant part of the objective [money] (switches of nodes that cannot sleep).
    rounding_bound : float
        Bound ε on how much the scaled cost of a real plan can exceed its real cost
        [money]; its parts are in :attr:`eps_parts`.
    bound_valid : bool
        The relaxation argument holds (resources scaled exactly).
    """

    model: cp_model.CpModel
    index: Index
    scaling: Scaling
    variant: str
    opt_starts: list[IntArray] = field(default_factory=list)
    opt_lits: list[list[Lit]] = field(default_factory=list)
    opt_start_var: list[Lit] = field(default_factory=list)
    drop: list[Lit | None] = field(default_factory=list)
    on: npt.NDArray[np.object_] | None = None
    imp: npt.NDArray[np.object_] | None = None
    exp: npt.NDArray[np.object_] | None = None
    chg: npt.NDArray[np.object_] | None = None
    dis: npt.NDArray[np.object_] | None = None
    soc: npt.NDArray[np.object_] | None = None
    cin: npt.NDArray[np.object_] | None = None
    dout: npt.NDArray[np.object_] | None = None
    sig_p: npt.NDArray[np.object_] | None = None
    sig_m: npt.NDArray[np.object_] | None = None
    peak: list[Lit | None] = field(default_factory=list)
    enforce: dict[str, list[tuple[Lit, str]]] = field(default_factory=dict)
    offset: float = 0.0
    eps_parts: dict[str, float] = field(default_factory=dict)
    bound_valid: bool = True
    explain: bool = False
    # internal: per (n, t) terms of the load [power units] and of resource use
    load_terms: list[list[list[tuple[Lit, int]]]] = field(default_factory=list)
    cap_terms: list[list[list[list[tuple[Lit, int]]]]] = field(default_factory=list)
    load_resid: FloatArray | None = None
    obj_vars: list[Lit] = field(default_factory=list)
    obj_coefs: list[int] = field(default_factory=list)
    no_resource: set[int] = field(default_factory=set)
    n_complementarity: int = 0
    switches: list[tuple[Lit, int, int, bool]] = field(default_factory=list)
    batt: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    comp: list[tuple[Lit, int, int]] = field(default_factory=list)

    @property
    def rounding_bound(self) -> float:
        """ε = sum of :attr:`eps_parts` [money]."""
        return float(sum(self.eps_parts.values()))

    def lit(self, family: str, label: str) -> list[Lit]:
        """An enforcement literal of ``family`` (empty list when not explaining)."""
        if not self.explain:
            return []
        b = self.model.new_bool_var(f"{family}:{label}")
        self.enforce.setdefault(family, []).append((b, label))
        return [b]

    def cost(self, var: Lit, coef: int) -> None:
        """Add ``coef · var`` [money units] to the objective."""
        if coef:
            self.obj_vars.append(var)
            self.obj_coefs.append(int(coef))


def _rnd(x: float) -> int:
    return math.floor(x + 0.5)


def _pow10_at_least(x: float, lo_exp: int) -> float:
    """Smallest ``10^k ≥ x`` with ``k ≥ lo_exp``."""
    if x <= 0 or not math.isfinite(x):
        return 10.0 ** lo_exp
    return 10.0 ** max(lo_exp, math.ceil(math.log10(x) - 1e-12))


def _concurrency(index: Index) -> IntArray:
    """Most jobs that can run at once on each node (by the resources they all use)."""
    N = index.N
    k = np.zeros(N, dtype=np.int64)
    for n in range(N):
        opts = np.nonzero(index.opt_node == n)[0]
        if not opts.size:
            continue
        use = index.usage[index.opt_job[opts]]
        best = opts.size
        for r in range(use.shape[1]):
            if (use[:, r] > 0).all():
                best = min(best, int(np.floor(index.capacity[n, r] / use[:, r].min() + 1e-9)))
        k[n] = max(best, 0)
    return k


def _load_upper(index: Index) -> FloatArray:
    """Upper bound of each node's load per slot [kW].

    ``idle + min(Σ power of the options that may cover the slot, sum of the K
    largest powers on the node)`` with K from :func:`_concurrency`.
    """
    N, T = index.N, index.T
    ub = np.zeros((N, T))
    for o in range(index.opt_job.size):
        n = int(index.opt_node[o])
        a = max(0, int(index.opt_earliest[o]))
        b = min(T, int(index.opt_latest[o]) + int(index.opt_dur[o]))
        if b > a:
            ub[n, a:b] += index.opt_power[o]
    conc = _concurrency(index)
    for n in range(N):
        pw = np.sort(index.opt_power[index.opt_node == n])[::-1]
        ub[n] = np.minimum(ub[n], pw[: int(conc[n])].sum())
    return np.asarray(ub + index.idle_kw[:, None])


def define_scaling(index: Index) -> Scaling:
    """Choose the integer units.

    ``p_n = 10^k`` kW, the smallest power of ten ≥ 0.1 W with
    ``P_n / p_n ≤ MAX_POWER_UNITS``, where ``P_n`` is the node's largest power
    (PV, finite headroom, load bound, battery and export limits).
    ``e_n = battery_kwh_n / SOC_UNITS``. ``m = 10^k`` money, the largest power of
    ten with ``min |c| / m ≥ MONEY_PRECISION`` over the non-zero per-unit flow
    cost coefficients ``c ∈ {Δ·import_cost·p, Δ·export_price·p, Δ·degradation·p,
    demand_charge·p}``, coarsened while the objective's activity range exceeds
    ``MAX_OBJECTIVE_UNITS``.
    """
    N = index.N
    load_ub = _load_upper(index)
    p = np.empty(N)
    for n in range(N):
        big = max(
            float(index.pv[n].max(initial=0.0)),
            float(np.max(np.where(np.isfinite(index.headroom[n]),
                                  np.minimum(index.headroom[n], load_ub[n] + index.charge_kw[n]
                                             + index.export_kw[n]), 0.0), initial=0.0)),
            float(load_ub[n].max(initial=0.0)), float(index.charge_kw[n]),
            float(index.discharge_kw[n]), float(index.export_kw[n]), 1e-9,
        )
        p[n] = _pow10_at_least(big / MAX_POWER_UNITS, MIN_POWER_EXP)
    e = np.where(index.battery_kwh > 0, index.battery_kwh / SOC_UNITS, 1.0)
    dt = index.dt
    coefs = np.concatenate([
        np.abs(dt * index.import_cost * p[:, None]).ravel(),
        np.abs(dt * index.export_price * p[:, None]).ravel(),
        dt * index.degradation * p, index.demand_charge * p,
    ]) if N else np.zeros(0)
    nz = coefs[coefs > 0]
    disc = np.concatenate([index.startup_cost, index.shutdown_cost,
                           np.nan_to_num(index.drop_penalty), index.opt_latency_cost,
                           index.tardiness_rate * index.T])
    big_c = float(max(nz.max(initial=0.0), np.abs(disc).max(initial=0.0), 1e-12))
    small = float(nz.min()) if nz.size else big_c
    m = 10.0 ** math.floor(math.log10(small / MONEY_PRECISION))
    m = max(m, 10.0 ** math.ceil(math.log10(big_c / 1e12)))
    # largest |objective| [money]: every flow at its bound, every discrete cost
    flow_ub = (load_ub + index.charge_kw[:, None] + 2 * index.export_kw[:, None]
               + index.discharge_kw[:, None] + 10 * p[:, None])
    act = float(np.sum(dt * (np.abs(index.import_cost) + np.abs(index.export_price)
                             + index.degradation[:, None]) * flow_ub)
                + np.sum(index.demand_charge * flow_ub.max(axis=1, initial=0.0))
                + np.sum(np.abs(disc)) * max(index.T, 1) + 1.0)
    while act / m > MAX_OBJECTIVE_UNITS:
        m *= 10.0
    caps = np.concatenate([index.capacity.ravel(), index.usage.ravel()]) * RES_SCALE
    res_exact = bool(np.all(np.abs(caps - np.round(caps)) <= 1e-6))
    return Scaling(p=p, e=e, m=m, res_exact=res_exact)


def define_assignment(cm: CpsatModel) -> None:
    """Constraint 1-2: each job one (node, start) or dropped; pinned jobs fixed.

    ``starts``: ``Σ_{o∈j} Σ_{s∈S_o} x_{o,s} + drop_j = 1`` with ``S_o`` =
    ``index.feasible_starts(o)``; ``drop_j`` exists only when the job has a
    drop penalty; a pinned job's single literal is fixed to 1. Job ``j`` on
    node ``n`` started at ``s`` adds ``rnd(power_o / p_n)`` to the load of slots
    ``s … s+d−1`` (only those inside the horizon).

    ``intervals``: a presence literal ``z_o``, a start ``σ_o ∈ S_o``, an optional
    interval ``[σ_o, σ_o + d_o)`` and running literals ``r_{o,t}`` with
    ``r_{o,t} ⇒ z_o``, ``r_{o,t} ⇒ t−d_o+1 ≤ σ_o ≤ t`` and ``Σ_t r_{o,t} = d_o·z_o``.
    """
    idx, md, sc = cm.index, cm.model, cm.scaling
    N, T, R = idx.N, idx.T, len(idx.resources)
    cm.load_terms = [[[] for _ in range(T)] for _ in range(N)]
    cm.cap_terms = [[[[] for _ in range(R)] for _ in range(T)] for _ in range(N)]
    resid = np.abs(idx.idle_kw / sc.p - np.round(idx.idle_kw / sc.p))[:, None] * np.ones((N, T))
    use_s = (np.round(idx.usage * RES_SCALE) if sc.res_exact
             else np.ceil(idx.usage * RES_SCALE - 1e-9)).astype(np.int64)
    m = sc.m
    for j in range(idx.J):
        terms: list[Lit] = []
        for o in idx.options_of(j):
            o = int(o)
            n = int(idx.opt_node[o])
            d = int(idx.opt_dur[o])
            pu = _rnd(idx.opt_power[o] / sc.p[n])
            res = abs(idx.opt_power[o] / sc.p[n] - pu)
            starts = idx.feasible_starts(o)
            cover = np.zeros(T, dtype=bool)
            lat = float(idx.opt_latency_cost[o])
            if cm.variant == "starts":
                lits = []
                for s in starts:
                    s = int(s)
                    x = md.new_bool_var("")
                    lits.append(x)
                    if not use_s[j].any():
                        cm.no_resource.add(x.index)
                    a, b = idx.occupied(o, s)
                    cover[a:b] = True
                    for t in range(a, b):
                        cm.load_terms[n][t].append((x, pu))
                        for r in range(R):
                            if use_s[j, r]:
                                cm.cap_terms[n][t][r].append((x, int(use_s[j, r])))
                    cost = lat + float(idx.tardiness_cost(j, s + d))
                    cm.cost(x, _rnd(cost / m))
                cm.opt_starts.append(np.asarray(starts, dtype=np.int64))
                cm.opt_lits.append(lits)
                terms.extend(lits)
            else:
                z = md.new_bool_var("")
                a0 = max(0, int(starts.min()))
                b0 = min(T, int(starts.max()) + d)
                if idx.pinned[j]:
                    a, b = idx.occupied(o, int(starts[0]))
                    st = md.new_constant(int(starts[0]))
                    run = {t: z for t in range(a, b)}
                    cover[a:b] = True
                else:
                    st = md.new_int_var_from_domain(
                        cp_model.Domain.from_values([int(s) for s in starts]), "")
                    run = {}
                    for t in range(a0, b0):
                        r_ = md.new_bool_var("")
                        md.add_implication(r_, z)
                        md.add(st <= t).only_enforce_if(r_)
                        md.add(st >= t - d + 1).only_enforce_if(r_)
                        run[t] = r_
                    md.add(cp_model.LinearExpr.sum(list(run.values())) == d * z)
                    cover[a0:b0] = True
                    rate = float(idx.tardiness_rate[j])
                    if rate > 0 and math.isfinite(idx.deadline[j]):
                        tc = md.new_int_var(0, _rnd(rate * T / m) + 1, "")
                        md.add(tc >= _rnd(rate / m) * st + _rnd(rate * (d - idx.deadline[j]) / m)
                               ).only_enforce_if(z)
                        cm.cost(tc, 1)
                for t, r_ in run.items():
                    cm.load_terms[n][t].append((r_, pu))
                cm.cost(z, _rnd(lat / m))
                cm.opt_starts.append(np.asarray(starts, dtype=np.int64))
                cm.opt_lits.append([z])
                cm.opt_start_var.append((st, b0 - a0, d))
                terms.append(z)
            resid[n, cover] += res
        dj = None
        if idx.must_run[j] or idx.pinned[j]:
            cm.drop.append(None)
        else:
            dj = md.new_bool_var(f"drop_{idx.job_ids[j]}")
            cm.drop.append(dj)
            cm.cost(dj, _rnd(float(idx.drop_penalty[j]) / m))
            terms.append(dj)
        enf = cm.lit("job", idx.job_ids[j])
        if terms:
            md.add(cp_model.LinearExpr.sum(terms) == 1).only_enforce_if(enf)
        elif enf:
            md.add_bool_or([]).only_enforce_if(enf)
        else:
            md.add_bool_or([])  # no option and must run: infeasible
        if idx.pinned[j]:
            for lit_ in cm.opt_lits[-1] if terms else []:
                md.add(lit_ == 1).only_enforce_if(enf)
    # at most K jobs run at once: the load rounding is at most K times the largest residual
    conc = _concurrency(idx)
    for n in range(N):
        on_n = idx.opt_node == n
        if on_n.any():
            r_o = np.abs(idx.opt_power[on_n] / sc.p[n] - np.round(idx.opt_power[on_n] / sc.p[n]))
            idle_r = abs(idx.idle_kw[n] / sc.p[n] - round(idx.idle_kw[n] / sc.p[n]))
            resid[n] = np.minimum(resid[n], idle_r + conc[n] * r_o.max())
    cm.load_resid = resid
    # one rounded coefficient per job (start cost or drop penalty)
    cm.eps_parts["discrete_rounding"] = 0.5 * m * idx.J


def define_capacity(cm: CpsatModel) -> None:
    """Constraint 3: ``Σ use_{j,r}·x ≤ cap_{n,r}·u_{n,t}`` per node, slot and resource.

    Uses and capacities are in 1/RES_SCALE units (exact when the data are
    multiples of it; else uses are rounded up and capacities down, a restriction,
    and the bound is not reported). ``u`` is the on literal of a node that may
    sleep (1 otherwise), which also links running jobs to the on state.
    ``intervals``: one cumulative constraint per node and resource.
    """
    idx, md, sc = cm.index, cm.model, cm.scaling
    N, T, R = idx.N, idx.T, len(idx.resources)
    cap_s = (np.round(idx.capacity * RES_SCALE) if sc.res_exact
             else np.floor(idx.capacity * RES_SCALE + 1e-9)).astype(np.int64)
    if not sc.res_exact:
        cm.bound_valid = False
    assert cm.on is not None
    if cm.variant == "starts":
        for n in range(N):
            enf = cm.lit("capacity", idx.node_ids[n])
            for t in range(T):
                u = cm.on[n, t]
                for r in range(R):
                    terms = cm.cap_terms[n][t][r]
                    if not terms:
                        continue
                    tot = sum(c for _, c in terms)
                    if isinstance(u, bool):
                        if tot <= cap_s[n, r]:
                            continue
                        md.add(cp_model.LinearExpr.weighted_sum(
                            [v for v, _ in terms], [c for _, c in terms]) <= int(cap_s[n, r])
                        ).only_enforce_if(enf)
                    else:
                        md.add(cp_model.LinearExpr.weighted_sum(
                            [v for v, _ in terms], [c for _, c in terms])
                            <= int(cap_s[n, r]) * u).only_enforce_if(enf)
        return
    use_s = (np.round(idx.usage * RES_SCALE) if sc.res_exact
             else np.ceil(idx.usage * RES_SCALE - 1e-9)).astype(np.int64)
    per_node: list[list[tuple[Lit, int]]] = [[] for _ in range(N)]
    for o in range(idx.opt_job.size):
        st, _, d = cm.opt_start_var[o]
        n = int(idx.opt_node[o])
        z = cm.opt_lits[o][0]
        iv = md.new_optional_fixed_size_interval_var(st, d, z, "")
        per_node[n].append((iv, int(idx.opt_job[o])))
    for n in range(N):
        enf = cm.lit("capacity", idx.node_ids[n])
        for r in range(R):
            ivs = [(iv, int(use_s[j, r])) for iv, j in per_node[n] if use_s[j, r] > 0]
            if ivs and sum(c for _, c in ivs) > cap_s[n, r]:
                md.add_cumulative([iv for iv, _ in ivs], [c for _, c in ivs],
                                  int(cap_s[n, r])).only_enforce_if(enf)


def define_on_off(cm: CpsatModel) -> None:
    """Constraint 4 and the switching cost.

    ``u_{n,t}`` is a literal where the node may sleep and is available, 1 where
    it cannot sleep and is available, 0 where unavailable. A running job implies
    ``u`` (through the capacity constraint, or ``x ⇒ u`` for jobs using no
    resource, or ``r_{o,t} ⇒ u`` in the ``intervals`` variant). Start-ups
    ``up_t ≥ u_t − u_{t−1}`` and shut-downs ``down_t ≥ u_{t−1} − u_t`` with
    ``u_{−1}`` = initially_on and, with end_off, ``down_T ≥ u_{T−1}``; constant
    switches go to :attr:`CpsatModel.offset` exactly.
    """
    idx, md, sc = cm.index, cm.model, cm.scaling
    N, T = idx.N, idx.T
    assert cm.on is not None
    on = cm.on
    n_switch_vars = 0
    m = sc.m
    for n in range(N):
        seq: list[Lit] = [bool(idx.initially_on[n]), *on[n].tolist()]
        if idx.end_off[n]:
            seq.append(False)
        su, sd = float(idx.startup_cost[n]), float(idx.shutdown_cost[n])
        for k in range(1, len(seq)):
            a, b = seq[k - 1], seq[k]
            if isinstance(a, bool) and isinstance(b, bool):
                cm.offset += su * (b and not a) + sd * (a and not b)
                continue
            if su:
                up = md.new_bool_var("")
                md.add(up >= b - a)
                cm.cost(up, _rnd(su / m))
                cm.switches.append((up, n, k, True))
                n_switch_vars += 1
            if sd:
                dn = md.new_bool_var("")
                md.add(dn >= a - b)
                cm.cost(dn, _rnd(sd / m))
                cm.switches.append((dn, n, k, False))
                n_switch_vars += 1
        if idx.can_sleep[n]:
            # jobs using no resource are not linked by the capacity constraint
            for t in range(T):
                if isinstance(on[n, t], bool):
                    continue
                for x, _ in cm.load_terms[n][t]:
                    if cm.variant == "intervals" or x.index in cm.no_resource:
                        md.add_implication(x, on[n, t])
    cm.eps_parts["discrete_rounding"] += 0.5 * m * n_switch_vars


def define_power(cm: CpsatModel) -> None:
    """Constraint 5 in power units ``p_n``, with the demand-charge peak.

    Per node and slot (``pv_used`` eliminated)::

        0 ≤ L + c + x − i − d − σ⁺ + σ⁻ ≤ rnd(pv/p)
        L = rnd(idle/p)·u + Σ rnd(power_o/p)·x_{o,s}      (running jobs)
        0 ≤ i ≤ rnd(headroom/p)  (or the largest useful import when headroom is inf)
        0 ≤ x ≤ rnd(export_kw/p),  0 ≤ σ± ≤ S_{n,t}
        i + σ⁺ ≤ peak_n           (nodes with a demand charge)

    ``σ`` absorbs the rounding of a real plan's flows and loads:
    ``S = ⌈3.5 + Σ |power/p − rnd(power/p)|⌉`` (3 flows rounded to the nearest
    unit, charge and discharge rounded cumulatively, plus the load rounding of
    every job that can run in the slot). It costs ``w = max(|k_imp|, |k_exp|, k_deg, 1)``
    money units per unit, so it is never cheaper than importing or exporting.
    """
    idx, md, sc = cm.index, cm.model, cm.scaling
    N, T, dt, m = idx.N, idx.T, idx.dt, sc.m
    assert cm.on is not None and cm.load_resid is not None
    load_ub = _load_upper(idx)
    shape = (N, T)
    cm.imp, cm.exp = np.full(shape, None, dtype=object), np.full(shape, None, dtype=object)
    cm.chg, cm.dis = np.full(shape, None, dtype=object), np.full(shape, None, dtype=object)
    cm.sig_p, cm.sig_m = np.full(shape, None, dtype=object), np.full(shape, None, dtype=object)
    has_batt = idx.battery_kwh > 0
    eps_sigma = eps_flow = eps_coef = 0.0
    for n in range(N):
        p = float(sc.p[n])
        enf = cm.lit("power", idx.node_ids[n])
        idle_u = _rnd(idx.idle_kw[n] / p)
        cu = _rnd(idx.charge_kw[n] / p) + 1 if has_batt[n] else 0
        du = _rnd(idx.discharge_kw[n] / p) + 1 if has_batt[n] else 0
        xu = _rnd(idx.export_kw[n] / p)
        peak = None
        if idx.demand_charge[n] > 0:
            useful = float(np.max(load_ub[n])) + idx.charge_kw[n] + idx.export_kw[n]
            h = np.where(np.isfinite(idx.headroom[n]), idx.headroom[n], useful)
            s_top = math.ceil(3.5 + float(cm.load_resid[n].max(initial=0.0)))
            peak = md.new_int_var(0, _rnd(float(np.max(np.minimum(h, useful))) / p) + 1 + s_top,
                                  f"peak_{idx.node_ids[n]}")
            kp = _rnd(idx.demand_charge[n] * p / m)
            cm.cost(peak, kp)
            eps_coef += 0.5 * m * (_rnd(float(np.max(np.minimum(h, useful))) / p) + 1)
        cm.peak.append(peak)
        s_max = 0
        for t in range(T):
            useful = load_ub[n, t] + idx.charge_kw[n] + idx.export_kw[n]
            hd = float(idx.headroom[n, t])
            iu = _rnd(min(hd, useful) / p) if math.isfinite(hd) else _rnd(useful / p) + 1
            pvu = _rnd(float(idx.pv[n, t]) / p)
            ki = _rnd(dt * float(idx.import_cost[n, t]) * p / m)
            ke = _rnd(dt * float(idx.export_price[n, t]) * p / m)
            kd = _rnd(dt * float(idx.degradation[n]) * p / m)
            w = max(abs(ki), abs(ke), kd, 1)
            S = math.ceil(3.5 + float(cm.load_resid[n, t]) - 1e-9)
            vars_: list[Lit] = []
            coefs: list[int] = []
            const = 0
            u = cm.on[n, t]
            if isinstance(u, bool):
                const += idle_u * int(u)
            elif idle_u:
                vars_.append(u)
                coefs.append(idle_u)
            for x, c in cm.load_terms[n][t]:
                vars_.append(x)
                coefs.append(c)
            if iu > 0:
                i = md.new_int_var(0, iu, "")
                cm.imp[n, t] = i
                vars_.append(i)
                coefs.append(-1)
                cm.cost(i, ki)
                eps_flow += 0.5 * abs(dt * idx.import_cost[n, t] * p)
                eps_coef += 0.5 * m * iu if ki else 0.0
            if xu > 0:
                x_ = md.new_int_var(0, xu, "")
                cm.exp[n, t] = x_
                vars_.append(x_)
                coefs.append(1)
                cm.cost(x_, -ke)
                eps_flow += 0.5 * abs(dt * idx.export_price[n, t] * p)
                eps_coef += 0.5 * m * xu if ke else 0.0
            if has_batt[n]:
                c_ = md.new_int_var(0, cu, "")
                d_ = md.new_int_var(0, du, "")
                cm.chg[n, t], cm.dis[n, t] = c_, d_
                vars_ += [c_, d_]
                coefs += [1, -1]
                cm.cost(d_, kd)
                eps_flow += dt * idx.degradation[n] * p
                eps_coef += 0.5 * m * du if kd else 0.0
            sp = md.new_int_var(0, S, "")
            sm = md.new_int_var(0, S, "")
            cm.sig_p[n, t], cm.sig_m[n, t] = sp, sm
            vars_ += [sp, sm]
            coefs += [-1, 1]
            cm.cost(sp, w)
            cm.cost(sm, w)
            if peak is not None:  # σ⁺ counts as import for the peak: it cannot shave it
                if cm.imp[n, t] is not None:
                    md.add(cm.imp[n, t] + sp <= peak)
                else:
                    md.add(sp <= peak)
                s_max = max(s_max, S)
            eps_sigma += w * m * S
            expr = cp_model.LinearExpr.weighted_sum(vars_, coefs) + const
            md.add_linear_constraint(expr, 0, pvu).only_enforce_if(enf)
        if peak is not None:
            eps_flow += idx.demand_charge[n] * p * (0.5 + s_max)
    cm.eps_parts["sigma"] = eps_sigma
    cm.eps_parts["flow_rounding"] = eps_flow
    cm.eps_parts["coef_rounding"] = eps_coef


def define_battery(cm: CpsatModel) -> None:
    """Constraint 6 in energy units ``e_n = battery_kwh / SOC_UNITS``.

    With ``A = ⌈EFF_DEN·Δ·eff_c·p/e⌉`` and ``B = ⌊EFF_DEN·Δ·p/(eff_d·e)⌋``
    (rounded in the battery's favour)::

        soc_t = soc_{t−1} + cin_t − dout_t,   soc_{−1} = rnd(soc_init/e)
        EFF_DEN·cin_t ≤ A·charge_t,   EFF_DEN·dout_t ≥ B·discharge_t
        EFF_DEN·cin_t ≥ A⁻·charge_t − A − EFF_DEN,  EFF_DEN·dout_t ≤ B⁺·discharge_t + B + EFF_DEN
        rnd(soc_min/e) − δ ≤ soc_t ≤ rnd(soc_max/e) + δ
        soc_{T−1} ≥ rnd(soc_init/e) − δ                  (terminal "initial")

    ``A⁻ = ⌊EFF_DEN·Δ·eff_c·p/e⌋``, ``B⁺ = ⌈EFF_DEN·Δ·p/(eff_d·e)⌉``: the two
    rows of the second line (only in slots with a negative import cost) keep
    the model from storing less than it charges, i.e. from burning energy; the
    slack of one power and one energy unit covers rounding.
    ``δ = T + ⌈(A+B)/(2·EFF_DEN)⌉ + 2`` covers the rounding of a real plan's
    cumulative charge and discharge. Charge and discharge are complementary
    (a Boolean ``b``: ``b ⇒ discharge = 0``, ``¬b ⇒ charge = 0``) only in slots
    with a negative import cost, the only slots where burning energy through
    the battery can pay; elsewhere the relaxation never gains from it and the
    exact dispatch restores complementarity.
    """
    idx, md, sc = cm.index, cm.model, cm.scaling
    N, T, dt = idx.N, idx.T, idx.dt
    assert cm.chg is not None and cm.dis is not None
    cm.soc = np.full((N, T), None, dtype=object)
    cm.cin = np.full((N, T), None, dtype=object)
    cm.dout = np.full((N, T), None, dtype=object)
    n_bool = 0
    for n_ in np.nonzero(idx.battery_kwh > 0)[0]:
        n = int(n_)
        enf = cm.enforce.get("power", [])
        lit = [b for b, lab in enf if lab == idx.node_ids[n]]
        p, e = float(sc.p[n]), float(sc.e[n])
        A = math.ceil(EFF_DEN * dt * idx.eff_charge[n] * p / e - 1e-9)
        B = math.floor(EFF_DEN * dt * p / (idx.eff_discharge[n] * e) + 1e-9)
        A_lo = math.floor(EFF_DEN * dt * idx.eff_charge[n] * p / e + 1e-9)
        B_hi = math.ceil(EFF_DEN * dt * p / (idx.eff_discharge[n] * e) - 1e-9)
        delta = T + math.ceil((A + B) / (2 * EFF_DEN)) + 2
        lo = _rnd(idx.soc_min[n] / e) - delta
        hi = _rnd(idx.soc_max[n] / e) + delta
        s0 = _rnd(idx.soc_init[n] / e)
        cm.batt[n] = (A, B, s0)
        cu = _rnd(idx.charge_kw[n] / p) + 1
        prev: Lit = s0
        for t in range(T):
            ci = md.new_int_var(0, A * cu // EFF_DEN + 1, "")
            do = md.new_int_var(0, hi - lo, "")
            s = md.new_int_var(lo, hi, "")
            md.add(EFF_DEN * ci <= A * cm.chg[n, t]).only_enforce_if(lit)
            md.add(EFF_DEN * do >= B * cm.dis[n, t]).only_enforce_if(lit)
            if idx.import_cost[n, t] < 0:  # only where burning energy can pay
                md.add(EFF_DEN * ci >= A_lo * cm.chg[n, t] - A - EFF_DEN).only_enforce_if(lit)
                md.add(EFF_DEN * do <= B_hi * cm.dis[n, t] + B + EFF_DEN).only_enforce_if(lit)
                b = md.new_bool_var("")
                cm.comp.append((b, n, t))
                md.add(cm.dis[n, t] == 0).only_enforce_if(b)
                md.add(cm.chg[n, t] == 0).only_enforce_if(~b)
                n_bool += 1
            md.add(s == prev + ci - do).only_enforce_if(lit)
            cm.soc[n, t], cm.cin[n, t], cm.dout[n, t] = s, ci, do
            prev = s
        if idx.terminal_initial and T:
            md.add(cm.soc[n, T - 1] >= s0 - delta).only_enforce_if(lit)
    cm.n_complementarity = n_bool


def define_feeders(cm: CpsatModel) -> None:
    """Constraint 7 in the finest unit ``p_f`` of the feeder's nodes.

    ``Σ_{n∈f} (p_n/p_f)·(i_n − x_n) ≤ ⌊headroom/p_f + Σ_{n∈f} p_n/p_f⌋`` in every slot
    with a finite headroom (the added units cover the rounding of real flows).
    """
    idx, md, sc = cm.index, cm.model, cm.scaling
    assert cm.imp is not None and cm.exp is not None
    for f, fid in enumerate(idx.feeder_ids):
        members = np.nonzero(idx.feeder_of == f)[0]
        lim = idx.feeder_headroom[f]
        if not members.size or not np.isfinite(lim).any():
            continue
        pf = float(sc.p[members].min())
        ratio = {int(n): _rnd(sc.p[n] / pf) for n in members}
        extra = sum(ratio.values())
        enf = cm.lit("feeder", fid)
        for t_ in np.nonzero(np.isfinite(lim))[0]:
            t = int(t_)
            vs: list[Lit] = []
            cs: list[int] = []
            for n, r in ratio.items():
                if cm.imp[n, t] is not None:
                    vs.append(cm.imp[n, t])
                    cs.append(r)
                if cm.exp[n, t] is not None:
                    vs.append(cm.exp[n, t])
                    cs.append(-r)
            rhs = math.floor(float(lim[t]) / pf + extra + 1e-9)
            if vs:
                md.add(cp_model.LinearExpr.weighted_sum(vs, cs) <= rhs).only_enforce_if(enf)
            elif rhs < 0:
                md.add_bool_or([]).only_enforce_if(enf)


def define_objective(cm: CpsatModel) -> None:
    """SPEC §3 in money units ``m``: minimize the sum collected by :meth:`CpsatModel.cost`.

    Coefficients per unit and slot: import ``rnd(Δ·import_cost·p/m)`` (energy and
    carbon), export ``−rnd(Δ·export_price·p/m)``, discharge ``rnd(Δ·degradation·p/m)``,
    peak ``rnd(demand_charge·p/m)``, switches ``rnd(cost/m)``, a start
    ``rnd((latency + tardiness)/m)``, a drop ``rnd(drop_penalty/m)``, σ± ``w``.
    Constant switches are in :attr:`CpsatModel.offset` [money].
    """
    cm.model.minimize(cp_model.LinearExpr.weighted_sum(cm.obj_vars, cm.obj_coefs))


def build_model(index: Index, variant: str = "starts", explain: bool = False) -> CpsatModel:
    """Build the CP-SAT model (families in the fixed order of the module docstring).

    Parameters
    ----------
    index : Index
        Compiled problem.
    variant : {"starts", "intervals"}
        Placement variables (``docs/formulations/cpsat.md`` has the measurement).
    explain : bool
        Put an enforcement literal on every job, node capacity, node power and
        feeder family (for ``sufficient_assumptions_for_infeasibility``).

    Returns
    -------
    CpsatModel
    """
    if variant not in ("starts", "intervals"):
        raise ValueError(f"variant must be 'starts' or 'intervals', not {variant!r}")
    scaling = define_scaling(index)
    cm = CpsatModel(model=cp_model.CpModel(), index=index, scaling=scaling, variant=variant,
                    explain=explain)
    define_assignment(cm)
    define_on_off_vars(cm)
    define_capacity(cm)
    define_on_off(cm)
    define_power(cm)
    define_battery(cm)
    define_feeders(cm)
    define_objective(cm)
    return cm


def define_on_off_vars(cm: CpsatModel) -> None:
    """Create the on literals (needed by the capacity constraint); see :func:`define_on_off`."""
    idx, md = cm.index, cm.model
    on = np.empty((idx.N, idx.T), dtype=object)
    for n in range(idx.N):
        for t in range(idx.T):
            if not idx.available[n, t]:
                on[n, t] = False
            elif idx.can_sleep[n]:
                on[n, t] = md.new_bool_var("")
            else:
                on[n, t] = True
    cm.on = on
