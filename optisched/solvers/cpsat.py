"""``cpsat``: the CP-SAT model of :mod:`optisched.formulations.cpsat` (OR-Tools).

CP-SAT decides the placement and on/off states on a scaled integer relaxation;
the energy flows of the returned plan are then recomputed exactly in floating
point by :func:`optisched.dispatch.dispatch`, so the objective the evaluator
reports is that of a plan that meets SPEC §2 exactly. ``plan.info`` carries the
scaled CP-SAT objective and bound converted back to money (``cpsat_objective``,
``cpsat_bound``) and the rounding bound ε (``rounding_bound``); ``plan.bound`` is
``cpsat_bound − ε``, a valid lower bound of the real optimum.

Options: :class:`~optisched.solvers.options.CpsatOptions` (``variant``,
``workers``, ``hint``, ``hint_time``, ``cpsat_params``, ``log_search_progress``,
``explain``). ``options.warm_start`` is the plan hinted; without one, the
``greedy`` solver's plan when registered, else ``baseline``'s (unless ``hint`` is off).

``time_limit`` → ``max_time_in_seconds`` (default 60 s) of what is left after the hint
and the model build, both inside the limit (a model whose build would not fit,
:func:`build_seconds_estimate`, is not built: the hint is returned, and when the build
would not fit even the whole limit no short hint is computed first: greedy's feasibility
engine gets all the time, once, as :mod:`~optisched.solvers.highs` does); ``mip_gap`` →
``relative_gap_limit``, ``seed`` → ``random_seed``. ``deterministic``: one worker, no
interleaved search, ``max_deterministic_time`` of
:data:`~optisched.solvers.base.CPSAT_DETERMINISTIC_PER_SECOND` per second of the limit
instead of a wall-clock limit, the hint by ``greedy``'s move cap.

With several scenarios (beyond SPEC v1) CP-SAT places the jobs on the
*expected-value problem* (the index's first-stage view: expected PV and prices, the
least headroom of any scenario); the exact dispatch then gives every scenario its
own flows, so the plan is priced on every scenario, but neither optimality nor the
bound carries over to the two-stage problem: the status is at most ``feasible`` and
the bound is None (``info["expected_value_problem"]``).

Statuses come from :data:`STATUS_TABLE`. Documented fallbacks return the hint
plan with status ``feasible`` (``info["fallback"]``): CP-SAT found no solution in
time (``UNKNOWN``), its best plan (not proven optimal) is worse than the hint,
or the exact dispatch of its placement failed.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from optisched.domain import Problem
from optisched.formulations.cpsat import EFF_DEN, CpsatModel, build_model
from optisched.index import Index
from optisched.plan import Plan, Status
from optisched.solvers.base import (
    CPSAT_DETERMINISTIC_PER_SECOND,
    SolveOptions,
    deterministic_params,
    plan_from_placement,
    usable_cores,
)
from optisched.solvers.fallback import fallback_plan
from optisched.solvers.options import CpsatOptions, GreedyOptions

__all__ = ["DEFAULT_PARAMS", "DEFAULT_TIME_LIMIT", "STATUS_TABLE", "build_seconds_estimate",
           "map_status", "solve_cpsat"]

log = logging.getLogger(__name__)

DEFAULT_TIME_LIMIT = 60.0
"""Wall-clock limit when none is given [s]."""

BUILD_SECONDS_PER_COVER = 2.5e-5
"""Model build time per (start, covered slot) pair [s]: :func:`build_seconds_estimate`
(measured 1.0-2.0e-5 on a loaded 2-core machine: neighborhood 171k pairs 1.8 s, city
288k 3.6 s, ICON sample02 580k 11.5 s)."""
MIN_SOLVE = 0.05
"""Smallest time left [s] for which CP-SAT is started at all."""
OPTIMAL_EPS = 0.01
"""A plan CP-SAT proves optimal for its scaled model is reported ``optimal`` only when the
rounding bound ε is at most this fraction of the objective (at least 1 money); else
``feasible`` (extreme values: a node with 1e7 kW of headroom gets a 100 kW power unit, and
ε of several hundred money beside an objective below 1)."""

ABS_GAP_FRACTION = 0.1
"""CP-SAT's ``absolute_gap_limit`` is this fraction of the rounding bound ε (in money units)."""

DEFAULT_PARAMS: dict[str, Any] = {
    # keep the hint feasible through presolve (without it CP-SAT found no solution in
    # 30 s on the medium benchmark although the complete hint is feasible)
    "keep_all_feasible_solutions_in_presolve": True,
    # the big-linear-overlap presolve took ~3 s per iteration on the medium benchmark
    "find_big_linear_overlap": False,
    "max_presolve_iterations": 1,
}
"""Parameters set before ``cpsat_params`` (which may override them); see
``docs/formulations/cpsat.md``."""

STATUS_TABLE: dict[Any, Status] = {
    cp_model.OPTIMAL: Status.OPTIMAL,
    cp_model.FEASIBLE: Status.FEASIBLE,
    cp_model.INFEASIBLE: Status.INFEASIBLE,
    cp_model.MODEL_INVALID: Status.ERROR,
    cp_model.UNKNOWN: Status.NO_SOLUTION,
}
"""The one mapping of CP-SAT statuses to optisched statuses."""


def map_status(code: Any) -> Status:
    """optisched status of a CP-SAT status code (unknown codes: error)."""
    return STATUS_TABLE.get(int(code), Status.ERROR)


class _Progress(cp_model.CpSolverSolutionCallback):
    """Reports every new CP-SAT incumbent (converted to money) to the options' callback."""

    def __init__(self, cm: CpsatModel, options: SolveOptions, t0: float) -> None:
        super().__init__()
        self.cm, self.options, self.t0 = cm, options, t0
        self.first: float | None = None
        self.count = 0

    def on_solution_callback(self) -> None:
        self.count += 1
        if self.first is None:
            self.first = time.perf_counter() - self.t0
        m, off = self.cm.scaling.m, self.cm.offset
        obj = self.objective_value * m + off
        bnd = self.best_objective_bound * m + off - self.cm.rounding_bound
        self.options.report(self.t0, obj, bnd if self.cm.bound_valid else None,
                            "cpsat incumbent (scaled objective)")


def build_seconds_estimate(index: Index) -> float:
    """About how long :func:`~optisched.formulations.cpsat.build_model` takes [s]: one
    linear term per (start, covered slot) pair, :data:`BUILD_SECONDS_PER_COVER` each."""
    width = np.maximum(0, index.opt_latest - index.opt_earliest + 1)
    cover = int((width * np.minimum(index.opt_dur, index.T)).sum())
    return BUILD_SECONDS_PER_COVER * (cover + 4 * index.N * index.T)


def _workers(options: SolveOptions) -> int:
    if options.deterministic:
        return 1
    w = options.params_as(CpsatOptions).workers or options.threads
    cores = usable_cores()
    return max(1, min(int(w), cores)) if w else max(1, min(2, cores))


def configure(solver: cp_model.CpSolver, options: SolveOptions, time_limit: float) -> None:
    """Set CP-SAT parameters from the options (attribute assignment, OR-Tools 9.15).

    ``time_limit`` [s] is ``max_time_in_seconds``, or (deterministic) converted into
    ``max_deterministic_time`` with one worker and no interleaved search.
    """
    prm = solver.parameters
    if options.deterministic:
        prm.max_deterministic_time = max(0.01, CPSAT_DETERMINISTIC_PER_SECOND
                                         * float(time_limit))
        prm.interleave_search = False
    else:
        prm.max_time_in_seconds = max(0.01, float(time_limit))
    prm.num_workers = _workers(options)
    prm.random_seed = int(options.seed)
    if options.mip_gap is not None:
        prm.relative_gap_limit = float(options.mip_gap)
    params = options.params_as(CpsatOptions)
    if params.log_search_progress:
        prm.log_search_progress = True
        prm.log_to_stdout = False
        solver.log_callback = log.info
    for k, v in DEFAULT_PARAMS.items():
        setattr(prm, k, v)
    for k, v in params.cpsat_params.items():
        setattr(prm, k, v)


def _hint_plan(problem: Problem, index: Index, options: SolveOptions,
               most: float = math.inf) -> Plan | None:
    """The plan to hint: ``options.warm_start``, else greedy's, else baseline's (None when
    the ``hint`` option is off), computed within ``hint_time`` and at most ``most`` [s]
    (deterministic: by greedy's move cap)."""
    given = options.warm_start
    if given is not None:
        return given if given.status.has_plan else None
    params = options.params_as(CpsatOptions)
    if not params.hint:
        return None
    from optisched.solvers import REGISTRY  # late: the registry imports this module lazily

    name = "greedy" if "greedy" in REGISTRY and REGISTRY["greedy"].available() else "baseline"
    try:
        limit = DEFAULT_TIME_LIMIT if options.time_limit is None else options.time_limit
        budget = params.hint_time if params.hint_time is not None else min(2.0, 0.1 * limit)
        sub = SolveOptions(time_limit=min(budget, most), seed=options.seed, threads=1,
                           started=time.perf_counter())
        if options.deterministic and name == "greedy":
            sub.params, sub.time_limit = deterministic_params(GreedyOptions(), budget)
            sub.deterministic = True
        plan = REGISTRY[name].load()(problem, index, sub)
    except Exception:  # a hint is optional
        log.warning("cpsat: hint solver %s failed", name, exc_info=True)
        return None
    plan.solver = name
    return plan if plan.status.has_plan else None


def apply_hint(cm: CpsatModel, plan: Plan) -> int:
    """Hint placement, drops, on/off and flows of ``plan``; returns the hinted variables."""
    idx, md = cm.index, cm.model
    k = 0
    for j in range(idx.J):
        n_j, s_j = int(plan.node[j]), int(plan.start[j])
        for o in idx.options_of(j):
            o = int(o)
            here = int(idx.opt_node[o]) == n_j
            if cm.variant == "starts":
                for s, x in zip(cm.opt_starts[o], cm.opt_lits[o], strict=True):
                    md.add_hint(x, bool(here and int(s) == s_j))
                    k += 1
            else:
                md.add_hint(cm.opt_lits[o][0], here)
                st = cm.opt_start_var[o][0]
                if here and not idx.pinned[j]:
                    md.add_hint(st, s_j)
                k += 1
        dj = cm.drop[j]
        if dj is not None:
            md.add_hint(dj, n_j < 0)
            k += 1
    f = plan.flows
    if f is None:
        return k
    return k + _hint_flows(cm, plan)


def _cum_round(x: np.ndarray) -> np.ndarray:
    """Integers whose running sums stay within 0.5 of those of ``x`` (per row)."""
    c = np.rint(np.cumsum(x, axis=-1))
    return np.diff(c, axis=-1, prepend=0.0).astype(np.int64)


def _hint_flows(cm: CpsatModel, plan: Plan) -> int:
    """Hint every flow, σ, peak, switch and battery variable from the plan's flows.

    Follows the mapping of a real plan into the scaled model (docs/formulations/cpsat.md):
    import/export rounded, charge/discharge rounded cumulatively, stored/removed
    energy tracking the real state of charge, σ the balance residual.
    """
    idx, md, sc = cm.index, cm.model, cm.scaling
    f = plan.flows
    assert f is not None and cm.on is not None
    N, T = idx.N, idx.T
    k = 0

    def hint(v: Any, val: int) -> None:
        nonlocal k
        lo, hi = v.proto.domain[0], _ub(v)
        md.add_hint(v, int(min(max(val, lo), hi)))
        k += 1

    for (n, t), u in np.ndenumerate(cm.on):
        if not isinstance(u, bool):
            md.add_hint(u, bool(f.on[n, t]))
            k += 1
    for var, n, kk, is_up in cm.switches:
        seq = [bool(idx.initially_on[n]), *f.on[n].astype(bool).tolist()]
        if idx.end_off[n]:
            seq.append(False)
        a, b = seq[kk - 1], seq[kk]
        md.add_hint(var, bool(b and not a) if is_up else bool(a and not b))
        k += 1
    load_s = np.zeros((N, T), dtype=np.int64)
    for o in range(len(cm.opt_lits)):
        n = int(idx.opt_node[o])
        j = int(idx.opt_job[o])
        if int(plan.node[j]) != n:
            continue
        pu = int(np.floor(idx.opt_power[o] / sc.p[n] + 0.5))
        a, b = idx.occupied(o, int(plan.start[j]))
        load_s[n, a:b] += pu
    for n in range(N):
        p = float(sc.p[n])
        idle_u = int(np.floor(idx.idle_kw[n] / p + 0.5))
        load_s[n] += idle_u * f.on[n].astype(np.int64)
        imp = np.rint(f.grid_import[n] / p).astype(np.int64)
        exp = np.rint(f.grid_export[n] / p).astype(np.int64)
        pv = np.rint(f.pv_used[n] / p).astype(np.int64)
        c = _cum_round(f.charge[n] / p)
        d = _cum_round(f.discharge[n] / p)
        r = load_s[n] + c + exp - imp - d - pv  # = σ⁺ − σ⁻ with pv_used = pv exactly
        sp, sm = np.maximum(r, 0), np.maximum(-r, 0)
        for t in range(T):
            for arr, val in ((cm.imp, imp), (cm.exp, exp), (cm.chg, c), (cm.dis, d),
                             (cm.sig_p, sp), (cm.sig_m, sm)):
                assert arr is not None
                if arr[n, t] is not None:
                    hint(arr[n, t], int(val[t]))
        pk = cm.peak[n] if n < len(cm.peak) else None
        if pk is not None:
            hint(pk, int(np.max(np.where(imp > 0, imp, 0) + sp, initial=0)))
        if n in cm.batt:
            A, B, s0 = cm.batt[n]
            e = float(sc.e[n])
            stored = np.cumsum(idx.dt * idx.eff_charge[n] * f.charge[n] / e)
            removed = np.cumsum(idx.dt * f.discharge[n] / (idx.eff_discharge[n] * e))
            cum_in = cum_out = 0
            assert cm.cin is not None and cm.dout is not None and cm.soc is not None
            for t in range(T):
                ci = min((A * int(c[t])) // EFF_DEN, max(0, int(np.rint(stored[t])) - cum_in))
                do = max(-((-B * int(d[t])) // EFF_DEN), int(np.rint(removed[t])) - cum_out)
                cum_in += ci
                cum_out += do
                hint(cm.cin[n, t], ci)
                hint(cm.dout[n, t], do)
                hint(cm.soc[n, t], s0 + cum_in - cum_out)
    for b, n, t in cm.comp:
        md.add_hint(b, bool(f.charge[n, t] > 0))
        k += 1
    return k


def _ub(v: Any) -> int:
    dom = list(v.proto.domain)  # negative indexing is not supported on this container
    return int(dom[-1])


def extract(cm: CpsatModel, solver: cp_model.CpSolver) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """Placement ``(node, start)`` and on/off ``(N, T)`` of the solver's solution."""
    idx = cm.index
    node = np.full(idx.J, -1, dtype=np.int64)
    start = np.zeros(idx.J, dtype=np.int64)
    for o in range(idx.opt_job.size):
        j = int(idx.opt_job[o])
        if cm.variant == "starts":
            for s, x in zip(cm.opt_starts[o], cm.opt_lits[o], strict=True):
                if solver.boolean_value(x):
                    node[j], start[j] = int(idx.opt_node[o]), int(s)
                    break
        elif solver.boolean_value(cm.opt_lits[o][0]):
            node[j] = int(idx.opt_node[o])
            start[j] = int(solver.value(cm.opt_start_var[o][0]))
    assert cm.on is not None
    on = np.zeros((idx.N, idx.T), dtype=bool)
    for (n, t), u in np.ndenumerate(cm.on):
        on[n, t] = u if isinstance(u, bool) else solver.boolean_value(u)
    return node, start, on


def _minimize_core(cm: CpsatModel, options: SolveOptions, core: set[int],
                   deadline: float) -> set[int]:
    """Deletion filter: drop each assumption whose removal keeps the model infeasible.

    Stops at ``deadline`` (``time.perf_counter()``), returning the core reached so far;
    deterministic: no clock, each trial gets an equal share of ``deadline`` read as a
    budget [s] (converted to deterministic time by :func:`configure`).
    """
    keep = set(core)
    # try to drop the physical families first, so that a conflict is named by the
    # resources it is about rather than by bounds derived from them
    rank = {b.index: (k, b.index) for k, fam in enumerate(("feeder", "power", "capacity", "job"))
            for b, _ in cm.enforce.get(fam, [])}
    share = deadline / max(1, len(core)) if options.deterministic else 0.0
    for lit_index in sorted(core, key=lambda i: rank.get(i, (9, i))):
        left = share if options.deterministic else deadline - time.perf_counter()
        if left <= 0.05 and not options.deterministic:
            break
        trial = keep - {lit_index}
        cm.model.clear_assumptions()
        cm.model.add_assumptions([cm.model.get_bool_var_from_proto_index(i) for i in trial])
        solver = cp_model.CpSolver()
        configure(solver, options, left)
        solver.parameters.num_workers = 1
        if solver.solve(cm.model) == cp_model.INFEASIBLE:
            keep = trial
    return keep


def explain_infeasible(problem: Problem, index: Index, options: SolveOptions,
                       variant: str, time_limit: float) -> str:
    """Re-solve with an assumption per job, node capacity, node power and feeder family.

    Returns the families of ``sufficient_assumptions_for_infeasibility`` in user terms,
    within ``time_limit`` [s] in all (half for the core, half to shrink it).
    """
    end = time.perf_counter() + time_limit
    cm = build_model(index, variant=variant, explain=True)
    lits = [(b, fam, lab) for fam, lst in cm.enforce.items() for b, lab in lst]
    cm.model.add_assumptions([b for b, _, _ in lits])
    solver = cp_model.CpSolver()
    configure(solver, options, time_limit / 2 if options.deterministic
              else max(0.01, 0.5 * (end - time.perf_counter())))
    solver.parameters.num_workers = 1
    status = solver.solve(cm.model)
    if status != cp_model.INFEASIBLE:
        return "CP-SAT proved the model infeasible (no smaller explanation found in time)"
    core = set(solver.sufficient_assumptions_for_infeasibility())
    core = _minimize_core(cm, options, core, time_limit / 2 if options.deterministic
                          else time.perf_counter() + max(0.0, end - time.perf_counter()))
    what = {
        "job": "job {} (exactly one eligible (node, start) or a drop)",
        "capacity": "node {} resource capacity",
        "power": "node {} power balance (pv + grid headroom + battery vs load)",
        "feeder": "feeder {} headroom",
    }
    parts = [what[fam].format(lab) for b, fam, lab in lits if b.index in core]
    jobs = [lab for b, fam, lab in lits if fam == "job" and b.index in core]
    detail = []
    for jid in jobs[:5]:
        j = index.job_pos[jid]
        opts = index.options_of(j)
        where = ", ".join(
            f"node {index.node_ids[int(index.opt_node[o])]} (start slots "
            f"{int(index.opt_earliest[o])}..{int(index.opt_latest[o])})" for o in opts[:4])
        detail.append(f"job {jid} may run on {where or 'no node'}")
    msg = "infeasible: these constraints conflict: " + "; ".join(parts or ["(empty core)"])
    if detail:
        msg += ". " + "; ".join(detail)
    return msg


def solve_cpsat(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    """Solve with CP-SAT and re-dispatch the flows exactly (see module docstring)."""
    t0 = time.perf_counter()
    limit = DEFAULT_TIME_LIMIT if options.time_limit is None else float(options.time_limit)
    deadline = options.deadline(t0, DEFAULT_TIME_LIMIT)
    det = options.deterministic
    reserve = min(2.0, max(0.1, 0.03 * limit))  # for the dispatch and checks after CP-SAT

    def left() -> float:
        return math.inf if det else deadline - time.perf_counter() - reserve

    params = options.params_as(CpsatOptions)
    variant = params.variant
    est = build_seconds_estimate(index)

    def too_big() -> str:
        return (f"time limit: the CP-SAT model (about {est:.2g} s to build) does not fit the "
                f"{max(0.0, left()):.2g} s left")

    if est > left():  # never built: greedy gets the whole budget once, not a short hint
        given = options.warm_start
        return _no_time(problem, index, given if given is not None and given.status.has_plan
                        else None, too_big(), {"hint_time": 0.0}, options, left())
    hint = _hint_plan(problem, index, options, most=max(0.0, 0.5 * left()))
    t_hint = time.perf_counter() - t0
    if est > left():
        return _no_time(problem, index, hint, too_big(), {"hint_time": t_hint}, options,
                        left())
    cm = build_model(index, variant=variant)
    t_model = time.perf_counter() - t0 - t_hint
    n_hint = apply_hint(cm, hint) if hint is not None else 0
    hint_obj = None
    if hint is not None and hint.flows is not None:
        from optisched.evaluate import evaluate

        ev = evaluate(problem, hint, index)
        hint_obj = ev.objective if ev.feasible else None
        if hint_obj is not None:
            options.report(t0, hint_obj, None, f"hint ({hint.solver})")
    t_build = time.perf_counter() - t0
    if left() < MIN_SOLVE:
        return _no_time(problem, index, hint, "time limit reached before CP-SAT could run",
                        {"hint_time": t_hint, "model_time": t_model}, options, left())
    solver = cp_model.CpSolver()
    configure(solver, options, limit if det else left())
    if "absolute_gap_limit" not in params.cpsat_params:
        # closing a gap far below the rounding bound ε proves nothing about the real problem
        gap_units = ABS_GAP_FRACTION * cm.rounding_bound / cm.scaling.m
        solver.parameters.absolute_gap_limit = max(
            float(solver.parameters.absolute_gap_limit), gap_units)
    cb = _Progress(cm, options, t0)
    code = solver.solve(cm.model, cb)
    t_solve = time.perf_counter() - t0 - t_build
    status = map_status(code)
    m, off, eps = cm.scaling.m, cm.offset, cm.rounding_bound
    info: dict[str, Any] = {
        "cpsat_status": solver.status_name(code), "variant": variant,
        "rounding_bound": eps, "rounding_parts": dict(cm.eps_parts),
        "power_unit_kw": sorted({float(p) for p in cm.scaling.p}),
        "money_unit": m, "bound_valid": cm.bound_valid,
        "workers": int(solver.parameters.num_workers), "hinted_vars": n_hint,
        "hint_solver": hint.solver if hint is not None else None, "hint_objective": hint_obj,
        "solutions": cb.count,
        "conflicts": int(solver.num_conflicts), "branches": int(solver.num_branches),
    }
    bound: float | None = None
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE, cp_model.UNKNOWN):
        raw_bound = float(solver.best_objective_bound)
        if math.isfinite(raw_bound) and cm.bound_valid:
            info["cpsat_bound"] = raw_bound * m + off
            bound = raw_bound * m + off - eps
    timings = {"build": t_build, "solve": t_solve, "hint": t_hint, "model": t_model,
               "cpsat_wall": float(solver.wall_time)}
    if cb.first is not None:
        timings["first_solution"] = cb.first
    if index.S > 1:  # the expected-value problem: no proof carries over to the two-stage one
        bound, info["expected_value_problem"] = None, True
        status = {Status.OPTIMAL: Status.FEASIBLE,
                  Status.INFEASIBLE: Status.NO_SOLUTION}.get(status, status)
    if not status.has_plan:
        msg = f"CP-SAT status {solver.status_name(code)}"
        if status is Status.INFEASIBLE:
            if not cm.bound_valid:  # a restriction: infeasibility is not proven
                status = Status.NO_SOLUTION
                msg += " (resources were rounded conservatively: infeasibility not proven)"
            elif params.explain:
                more = limit if det else left()
                msg = explain_infeasible(problem, index, options, variant, more) \
                    if more >= MIN_SOLVE else msg + " (no time left to explain why)"
        elif status is Status.NO_SOLUTION:
            msg += (f": no solution within the deterministic time {limit:g}" if det
                    else f": no solution within {limit:g} s")
            if hint is not None and hint.flows is not None and hint_obj is not None:
                # anytime: the hint is a known feasible plan (CP-SAT's bound still holds)
                info["fallback"] = hint.solver
                plan = plan_from_placement(problem, index, "cpsat", Status.FEASIBLE, hint.node,
                                           hint.start, hint.flows,
                                           message=msg + f"; plan of {hint.solver} (the hint)")
                plan.bound, plan.info, plan.timings = bound, info, timings
                return plan
            if params.hint:
                plan = fallback_plan(problem, index, options, name="cpsat", why=msg,
                                     seconds=left())
                info.update(plan.info)
                plan.bound, plan.info, plan.timings = bound, info, timings
                return plan
        plan = Plan.empty(problem, "cpsat", status, msg)
        plan.bound, plan.info, plan.timings = bound, info, timings
        return plan
    info["cpsat_objective"] = float(solver.objective_value) * m + off
    node, start, on = extract(cm, solver)
    from optisched.dispatch import dispatch  # highspy: imported only when a plan exists

    res = dispatch(index, node, start, on)
    better_hint = False
    if res.feasible and res.flows is not None:
        plan = plan_from_placement(problem, index, "cpsat", status, node, start, res.flows)
        if status is not Status.OPTIMAL and hint is not None and hint_obj is not None:
            from optisched.evaluate import evaluate

            ev = evaluate(problem, plan, index)
            better_hint = not ev.feasible or ev.objective > hint_obj + 1e-9
    if better_hint and hint is not None and hint.flows is not None:
        # anytime: never return a plan worse than the hint CP-SAT was given
        plan = plan_from_placement(problem, index, "cpsat", Status.FEASIBLE, hint.node,
                                   hint.start, hint.flows,
                                   message=f"CP-SAT's best plan is worse than the hint; plan of "
                                           f"{hint.solver}")
        info["fallback"] = hint.solver
    elif res.feasible and res.flows is not None:
        pass
    elif hint is not None and hint.flows is not None:
        log.warning("cpsat: exact dispatch of the CP-SAT placement failed (%s); returning the "
                    "hint plan", res.message)
        plan = plan_from_placement(problem, index, "cpsat", Status.FEASIBLE, hint.node,
                                   hint.start, hint.flows,
                                   message=f"CP-SAT placement not dispatchable ({res.message}); "
                                           f"plan of {hint.solver}")
        info["fallback"] = hint.solver
    elif params.hint:
        plan = fallback_plan(problem, index, options, name="cpsat",
                             why=f"CP-SAT placement not dispatchable: {res.message}",
                             seconds=left())
        info.update(plan.info)
    else:
        plan = Plan.empty(problem, "cpsat", Status.NO_SOLUTION,
                          f"CP-SAT placement not dispatchable: {res.message}")
    if plan.status is Status.OPTIMAL and eps > OPTIMAL_EPS * max(1.0, abs(info["cpsat_objective"])):
        # optimal for the scaled model only: its rounding bound hides what the real plan
        # may still gain (coarse power units of nodes with huge powers, prices at the limits)
        plan.status = Status.FEASIBLE
        plan.message = (f"optimal for CP-SAT's scaled model; its rounding bound {eps:.3g} is "
                        f"large beside the objective, so optimality is not proven (power unit "
                        f"up to {max(info['power_unit_kw']):g} kW, money unit {m:g})")
        info["scaled_optimal"] = True
    plan.bound, plan.info, plan.timings = bound, info, timings
    return plan


def _no_time(problem: Problem, index: Index, hint: Plan | None, why: str,
             timings: dict[str, float], options: SolveOptions, seconds: float) -> Plan:
    """The plan when CP-SAT does not run: the hint, else greedy on the ``seconds`` left."""
    info: dict[str, Any] = {"cpsat_status": "not run"}
    if hint is not None and hint.flows is not None:
        info["fallback"] = hint.solver
        plan = plan_from_placement(problem, index, "cpsat", Status.FEASIBLE, hint.node,
                                   hint.start, hint.flows,
                                   message=f"{why}; plan of {hint.solver} (the hint)")
    elif options.params_as(CpsatOptions).hint:
        plan = fallback_plan(problem, index, options, name="cpsat", why=why, seconds=seconds)
        info.update(plan.info)
    else:
        plan = Plan.empty(problem, "cpsat", Status.NO_SOLUTION, why + "; no hint plan")
    plan.info, plan.timings = info, {"build": sum(timings.values()), "solve": 0.0, **timings}
    return plan
