"""Exact MILP: ``highs`` vs ``pyomo`` vs a brute force, evaluator agreement, LP bound,
infeasibility explanations, and highspy/ortools coexistence."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.optimize as so
import scipy.sparse as sp

from optisched.bounds import lp_bound
from optisched.domain import (
    BatteryOptions,
    Feeder,
    Horizon,
    Job,
    Node,
    NodeSeries,
    ObjectiveOptions,
    Problem,
    Scenario,
    Tariff,
)
from optisched.evaluate import evaluate
from optisched.formulations.milp import FAMILIES, build_milp
from optisched.generate.random_problems import START, random_problem
from optisched.index import compile_index
from optisched.plan import Status
from optisched.solvers import solve
from optisched.solvers.base import Progress

OPTS = dict(time_limit=20.0, mip_gap=0.0, threads=1, seed=0)


def rel_close(a: float, b: float, tol: float = 1e-6) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def all_features(seed: int) -> Problem:
    """A random problem with every SPEC feature: batteries, feeders, sleep, end_off,
    unavailability, soft deadline, soft latency SLO, drops, a must-run and a pinned
    job, demand charge, carbon price, negative prices, degradation."""
    p = random_problem(seed, n_nodes=3, n_jobs=5, slots=6, feeders=True, negative_prices=True,
                       demand_charge=True, carbon=True, degradation=True, sleep=True)
    T = p.horizon.slots
    hz = p.horizon
    jobs = [j.model_dump() for j in p.jobs]
    jobs[0].update(pinned_node="n0", pinned_start=hz.time_of(0), release=None, deadline=None,
                   duration_min=60.0)
    jobs[1].update(tardiness_per_hour=1.5, release=hz.time_of(0), deadline=hz.time_of(2))
    jobs[2].update(region="r", latency_slo_ms=10.0, latency_per_ms=0.05)
    jobs[3].update(drop_penalty=None, release=None, deadline=None)
    nodes = [n.model_dump() for n in p.nodes]
    nodes[1].update(can_sleep=True, end_off=True, startup_cost=0.2, shutdown_cost=0.1,
                    initially_on=False)
    series = {k: v.model_dump() for k, v in p.node_series.items()}
    series["n2"]["available"] = [t != T - 2 for t in range(T)]
    return Problem(
        scenario=p.scenario, nodes=[Node(**n) for n in nodes], jobs=[Job(**j) for j in jobs],
        node_series={k: NodeSeries(**v) for k, v in series.items()}, tariffs=p.tariffs,
        feeders=p.feeders, latency_ms={"n0": {"r": 5.0}, "n1": {"r": 30.0}, "n2": {"r": 18.0}},
    )


# --------------------------------------------------------------------------------------
# brute force on tiny instances, independent of the model and of optisched.dispatch
# --------------------------------------------------------------------------------------

@dataclass
class TinySpec:
    T: int
    gpus: list[float]
    idle: list[float]
    can_sleep: list[bool]
    init_on: list[bool]
    end_off: list[bool]
    su: list[float]
    sd: list[float]
    pv: np.ndarray
    head: np.ndarray
    price: np.ndarray
    exp_price: np.ndarray
    export_kw: list[float]
    E: list[float]
    soc0: list[float]
    soc_lo: list[float]
    soc_hi: list[float]
    ck: list[float]
    dk: list[float]
    ec: list[float]
    ed: list[float]
    deg: list[float]
    demand: list[float]
    feeder: np.ndarray  # (T,) limit on Σ(import − export) of both nodes
    dur: list[int]
    power: list[float]
    rel: list[int]
    dl: list[int]
    tard: list[float | None]
    drop: list[float | None]
    lat_cost: list[list[float]]  # [job][node] money
    pinned: list[tuple[int, int] | None]


def tiny(seed: int) -> tuple[Problem, TinySpec]:
    """2 nodes x 3 jobs x 4 slots of 1 h; node 0 may sleep and has a battery."""
    rng = np.random.default_rng(seed)
    T = 4
    pv = np.round(rng.uniform(0, 2.5, (2, T)), 2)
    head = np.round(rng.uniform(2.5, 5.0, (2, T)), 2)
    price = np.round(rng.uniform(-0.1, 0.4, (2, T)), 3)
    exp_price = np.round(rng.uniform(0.0, 0.3, (2, T)), 3)
    s = TinySpec(
        T=T, gpus=[1.0, 2.0], idle=[0.3, 0.2], can_sleep=[True, False],
        init_on=[bool(rng.random() < 0.5), True], end_off=[bool(rng.random() < 0.5), False],
        su=[0.15, 0.0], sd=[0.1, 0.0], pv=pv, head=head, price=price, exp_price=exp_price,
        export_kw=[1.0, 0.5], E=[4.0, 0.0], soc0=[2.0, 0.0], soc_lo=[0.4, 0.0],
        soc_hi=[3.6, 0.0], ck=[1.5, 0.0], dk=[1.5, 0.0], ec=[0.9, 0.95], ed=[0.92, 0.95],
        deg=[0.02, 0.0], demand=[0.0, 0.3], feeder=np.round(rng.uniform(1.0, 4.0, T), 2),
        dur=[1, 2, 1], power=[float(v) for v in np.round(rng.uniform(0.5, 2.0, 3), 2)],
        rel=[0, 1, 1], dl=[2, T, 2], tard=[None, None, 0.5], drop=[3.0, 4.0, None],
        lat_cost=[[0.0, 0.0], [0.0, 0.0], [0.0, 0.2]], pinned=[None, None, None],
    )
    if seed % 2:
        s.pinned[0] = (1, 1)
    hz = Horizon(start=START, slot_minutes=60, slots=T)
    nodes = []
    for n in range(2):
        batt = {} if s.E[n] == 0 else dict(
            battery_kwh=s.E[n], soc_init=s.soc0[n] / s.E[n], soc_min=s.soc_lo[n] / s.E[n],
            soc_max=s.soc_hi[n] / s.E[n], charge_kw=s.ck[n], discharge_kw=s.dk[n],
            eff_charge=s.ec[n], eff_discharge=s.ed[n], degradation_per_kwh=s.deg[n])
        nodes.append(Node(node_id=f"n{n}", gpus=s.gpus[n], idle_kw=s.idle[n], tariff=f"t{n}",
                          feeder="f", can_sleep=s.can_sleep[n], initially_on=s.init_on[n],
                          end_off=s.end_off[n], startup_cost=s.su[n], shutdown_cost=s.sd[n],
                          export_kw=s.export_kw[n], demand_charge_per_kw=s.demand[n],
                          region="", **batt))
    jobs = []
    for j in range(3):
        pin = s.pinned[j]
        jobs.append(Job(
            job_id=f"j{j}", gpus=1.0, duration_min=60.0 * s.dur[j], power_kw=s.power[j],
            release=hz.time_of(s.rel[j]) if pin is None else None,
            deadline=hz.time_of(s.dl[j]) if pin is None else None,
            tardiness_per_hour=s.tard[j], drop_penalty=s.drop[j],
            region="r" if j == 2 else None, latency_slo_ms=10.0 if j == 2 else None,
            latency_per_ms=0.02 if j == 2 else None,
            pinned_node=None if pin is None else f"n{pin[0]}",
            pinned_start=None if pin is None else hz.time_of(pin[1])))
    problem = Problem(
        scenario=Scenario(horizon=hz, objective=ObjectiveOptions(),
                          battery=BatteryOptions(terminal="initial")),
        nodes=nodes, jobs=jobs,
        node_series={f"n{n}": NodeSeries(pv_kw=list(pv[n]), headroom_kw=list(head[n]))
                     for n in range(2)},
        tariffs={f"t{n}": Tariff(price=list(price[n]), export_price=list(exp_price[n]),
                                 carbon_g_per_kwh=[0.0] * T)
                 for n in range(2)},
        feeders={"f": Feeder(headroom_kw=list(s.feeder))},
        latency_ms={"n0": {"r": 5.0}, "n1": {"r": 20.0}},  # j2 on n1: 10 ms over, 0.2
    )
    return problem, s


class FlowsLP:
    """Cheapest flows for a fixed load (N=2, T): a MILP with exclusion binaries on every
    slot (scipy.optimize.milp); the matrix is built once, only the load changes."""

    def __init__(self, s: TinySpec) -> None:
        N, T = 2, s.T
        V = 7  # pv, imp, exp, ch, dis, soc, b
        nv = N * T * V + N  # + peak per node

        def v(n: int, t: int, k: int) -> int:
            return (n * T + t) * V + k

        c = np.zeros(nv)
        lb, ub = np.zeros(nv), np.zeros(nv)
        integ = np.zeros(nv)
        rows: list[dict[int, float]] = []
        lo: list[float] = []
        hi: list[float] = []
        self.balance: list[int] = []
        for n in range(N):
            for t in range(T):
                ub[v(n, t, 0)] = s.pv[n, t]
                ub[v(n, t, 1)] = s.head[n, t]
                ub[v(n, t, 2)] = s.export_kw[n]
                ub[v(n, t, 3)] = s.ck[n]
                ub[v(n, t, 4)] = s.dk[n]
                lb[v(n, t, 5)], ub[v(n, t, 5)] = s.soc_lo[n], s.soc_hi[n]
                ub[v(n, t, 6)] = 1.0
                integ[v(n, t, 6)] = 1
                c[v(n, t, 1)] = s.price[n, t]
                c[v(n, t, 2)] = -s.exp_price[n, t]
                c[v(n, t, 4)] = s.deg[n]
                self.balance.append(len(rows))
                rows.append({v(n, t, 0): 1, v(n, t, 1): 1, v(n, t, 4): 1, v(n, t, 3): -1,
                             v(n, t, 2): -1})
                lo.append(0.0)
                hi.append(0.0)
                r = {v(n, t, 5): 1.0, v(n, t, 3): -s.ec[n], v(n, t, 4): 1.0 / s.ed[n]}
                if t:
                    r[v(n, t - 1, 5)] = -1.0
                rows.append(r)
                lo.append(0.0 if t else s.soc0[n])
                hi.append(0.0 if t else s.soc0[n])
                rows.append({v(n, t, 3): 1.0, v(n, t, 6): -s.ck[n]})
                lo.append(-np.inf)
                hi.append(0.0)
                rows.append({v(n, t, 4): 1.0, v(n, t, 6): s.dk[n]})
                lo.append(-np.inf)
                hi.append(s.dk[n])
                rows.append({v(n, t, 1): 1.0, N * T * V + n: -1.0})
                lo.append(-np.inf)
                hi.append(0.0)
            rows.append({v(n, T - 1, 5): 1.0})
            lo.append(s.soc0[n])
            hi.append(np.inf)
            ub[N * T * V + n] = np.inf
            c[N * T * V + n] = s.demand[n]
        for t in range(T):
            rows.append({v(0, t, 1): 1, v(0, t, 2): -1, v(1, t, 1): 1, v(1, t, 2): -1})
            lo.append(-np.inf)
            hi.append(s.feeder[t])
        ri = [i for i, r in enumerate(rows) for _ in r]
        ci = [k for r in rows for k in r]
        vi = [val for r in rows for val in r.values()]
        self.A = sp.csr_matrix((vi, (ri, ci)), shape=(len(rows), nv))
        self.lo, self.hi = np.array(lo), np.array(hi)
        self.c, self.integ, self.bounds = c, integ, so.Bounds(lb, ub)

    def cost(self, load: np.ndarray) -> float:
        lo, hi = self.lo.copy(), self.hi.copy()
        lo[self.balance] = load.reshape(-1)
        hi[self.balance] = load.reshape(-1)
        cons = so.LinearConstraint(self.A, lo, hi)
        # the LP relaxation first: if it never charges and discharges at once, it is
        # feasible for the MILP, hence optimal
        res = so.milp(self.c, constraints=cons, bounds=self.bounds)
        if res.status != 0:
            return math.inf
        x = res.x[:-2].reshape(-1, 7)
        if (np.minimum(x[:, 3], x[:, 4]) <= 1e-9).all():
            return float(res.fun)
        res = so.milp(self.c, constraints=cons, integrality=self.integ, bounds=self.bounds,
                      options={"mip_rel_gap": 1e-9})
        return float(res.fun) if res.status == 0 else math.inf


def brute_force(s: TinySpec) -> float:
    """Enumerate every placement and every on/off pattern of the sleeping node."""
    T, J = s.T, len(s.dur)
    choices: list[list[tuple[int, int] | None]] = []
    for j in range(J):
        if s.pinned[j] is not None:
            choices.append([s.pinned[j]])
            continue
        opts: list[tuple[int, int] | None] = [None] if s.drop[j] is not None else []
        for n in range(2):
            for st in range(s.rel[j], T - s.dur[j] + 1):
                if s.tard[j] is None and st + s.dur[j] > s.dl[j]:
                    continue
                opts.append((n, st))
        choices.append(opts)
    best = math.inf
    lp = FlowsLP(s)
    cache: dict[bytes, float] = {}
    for combo in itertools.product(*choices):
        use = np.zeros((2, T))
        jobs_kw = np.zeros((2, T))
        fixed = 0.0
        for j, ch in enumerate(combo):
            if ch is None:
                fixed += float(s.drop[j])  # type: ignore[arg-type]
                continue
            n, st = ch
            use[n, st:st + s.dur[j]] += 1.0
            jobs_kw[n, st:st + s.dur[j]] += s.power[j]
            fixed += s.lat_cost[j][n]
            if s.tard[j] is not None:
                fixed += s.tard[j] * max(0, st + s.dur[j] - s.dl[j])  # type: ignore[operator]
        if (use > np.array(s.gpus)[:, None]).any():
            continue
        busy0 = use[0] > 0
        free = [t for t in range(T) if not busy0[t]]
        for bits in itertools.product([0, 1], repeat=len(free)):
            on0 = busy0.copy()
            for t, bval in zip(free, bits, strict=True):
                on0[t] = bool(bval)
            on = np.vstack([on0, np.ones(T, dtype=bool)])
            sw = 0.0
            for n in range(2):
                prev = s.init_on[n]
                for t in range(T):
                    sw += s.su[n] * (on[n, t] and not prev) + s.sd[n] * (prev and not on[n, t])
                    prev = bool(on[n, t])
                sw += s.sd[n] * (s.end_off[n] and prev)
            load = on * np.array(s.idle)[:, None] + jobs_kw
            key = load.tobytes()
            if key not in cache:
                cache[key] = lp.cost(load)
            best = min(best, fixed + sw + cache[key])
    return best


# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_highs_equals_pyomo_with_every_feature(seed: int) -> None:
    p = all_features(seed)
    h = solve(p, "highs", **OPTS)  # type: ignore[arg-type]
    q = solve(p, "pyomo", **OPTS)  # type: ignore[arg-type]
    assert h.status is q.status
    assert h.status is Status.OPTIMAL, h.message
    assert rel_close(h.objective, q.objective)  # type: ignore[arg-type]
    for plan in (h, q):
        ev = evaluate(p, plan)
        assert ev.feasible
        # the evaluator's price equals the MILP's objective (SPEC §4, 1e-6 relative)
        assert rel_close(ev.objective, plan.info["milp_objective"])
        assert "solver_objective" not in plan.info
    # the features are really in play
    ix = compile_index(p)
    assert h.node[0] == 0 and h.start[0] == 0  # pinned
    assert ix.can_sleep.any() and ix.demand_charge.any() and len(ix.feeder_ids)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_milp_equals_brute_force(seed: int) -> None:
    p, s = tiny(seed)
    expect = brute_force(s)
    assert math.isfinite(expect)
    h = solve(p, "highs", **OPTS)  # type: ignore[arg-type]
    q = solve(p, "pyomo", **OPTS)  # type: ignore[arg-type]
    assert h.status is Status.OPTIMAL and q.status is Status.OPTIMAL
    assert rel_close(h.objective, expect, 1e-6)  # type: ignore[arg-type]
    assert rel_close(q.objective, expect, 1e-6)  # type: ignore[arg-type]
    assert evaluate(p, h).feasible and evaluate(p, q).feasible


@pytest.mark.parametrize("seed", [0, 1])
def test_lp_bound_below_optimum(seed: int) -> None:
    p = all_features(seed)
    h = solve(p, "highs", **OPTS)  # type: ignore[arg-type]
    b = lp_bound(p)
    assert math.isfinite(b)
    assert b <= h.objective + 1e-6 * max(1.0, abs(h.objective))  # type: ignore[operator]
    assert h.bound is not None and h.bound <= h.objective + 1e-6  # type: ignore[operator]
    assert b <= h.bound + 1e-6 * max(1.0, abs(h.bound))


def test_lp_bound_is_exact_without_integers() -> None:
    # no job, no sleeping node, no negative price: the MILP is an LP; bound = optimum
    p = random_problem(4, n_nodes=2, n_jobs=0, slots=6, negative_prices=False)
    h = solve(p, "highs", **OPTS)  # type: ignore[arg-type]
    assert rel_close(lp_bound(p), h.objective)  # type: ignore[arg-type]


def _two_jobs_one_gpu() -> Problem:
    hz = Horizon(start=START, slot_minutes=60, slots=3)
    nodes = [Node(node_id="solo", gpus=1.0, idle_kw=0.1)]
    jobs = [Job(job_id=f"urgent{k}", gpus=1.0, duration_min=60.0, power_kw=1.0,
                deadline=hz.time_of(1)) for k in range(2)]
    return Problem(scenario=Scenario(horizon=hz), nodes=nodes, jobs=jobs)


def test_infeasible_capacity_names_jobs_and_node() -> None:
    p = _two_jobs_one_gpu()
    plan = solve(p, "highs", **OPTS)  # type: ignore[arg-type]
    assert plan.status is Status.INFEASIBLE
    msg = plan.message
    # both must run in slot 0 on the only node, which has one GPU
    assert ("urgent0" in msg or "urgent1" in msg or "solo" in msg), msg
    assert "[assignment]" in msg or "[capacity]" in msg, msg
    q = solve(p, "pyomo", **OPTS)  # type: ignore[arg-type]
    assert q.status is Status.INFEASIBLE and q.message


def test_infeasible_power_names_node_and_slot() -> None:
    hz = Horizon(start=START, slot_minutes=60, slots=2)
    nodes = [Node(node_id="weak", gpus=1.0, grid_kw=1.0)]
    jobs = [Job(job_id="big", gpus=1.0, duration_min=60.0, power_kw=3.0)]
    p = Problem(scenario=Scenario(horizon=hz), nodes=nodes, jobs=jobs,
                node_series={"weak": NodeSeries(pv_kw=[0.5, 0.0])})
    plan = solve(p, "highs", **OPTS)  # type: ignore[arg-type]
    assert plan.status is Status.INFEASIBLE
    # best slot 0: 3 kW load − 0.5 PV − 1 headroom = 1.5 kW short
    assert "[power_balance]" in plan.message and "weak" in plan.message, plan.message
    assert "slot 0" in plan.message and "1.5 kW" in plan.message, plan.message


def test_feasible_when_droppable() -> None:
    # the same conflict with drop penalties: one job is dropped (penalty 2 < running cost?)
    hz = Horizon(start=START, slot_minutes=60, slots=3)
    jobs = [Job(job_id=f"j{k}", gpus=1.0, duration_min=60.0, power_kw=1.0,
                deadline=hz.time_of(1), drop_penalty=5.0 + k) for k in range(2)]
    p = Problem(scenario=Scenario(horizon=hz), nodes=[Node(node_id="solo", gpus=1.0)], jobs=jobs,
                tariffs={"default": Tariff(price=[0.1] * 3, export_price=[0.0] * 3,
                                          carbon_g_per_kwh=[0.0] * 3)})
    plan = solve(p, "highs", **OPTS)  # type: ignore[arg-type]
    assert plan.status is Status.OPTIMAL
    # j1 (penalty 6) runs in slot 0 (1 kWh at 0.1), j0 is dropped (5)
    assert list(plan.node) == [-1, 0]
    assert rel_close(plan.objective, 5.0 + 0.1)  # type: ignore[arg-type]


def test_warm_start_and_progress_callback() -> None:
    p = all_features(0)
    base = solve(p, "baseline")
    seen: list[Progress] = []
    plan = solve(p, "highs", callback=seen.append, warm_start=base,
                 **OPTS)  # type: ignore[arg-type]
    assert plan.info["warm_start"] == "baseline"
    assert plan.status is Status.OPTIMAL
    assert plan.objective <= base.objective + 1e-9  # type: ignore[operator]
    assert seen and seen[-1].objective is not None


def test_model_families_and_sizes() -> None:
    p = all_features(1)
    ix = compile_index(p)
    m = build_milp(ix)
    fams = {b.family for b in m.blocks}
    assert fams <= set(FAMILIES)
    assert {"assignment", "power_balance", "battery_soc", "feeder", "demand_peak",
            "on_link"} <= fams
    # one start column per feasible start of each eligible option
    assert m.x.size == sum(ix.feasible_starts(o).size for o in range(ix.opt_job.size))
    # exclusion binaries only on battery nodes with a negative import cost
    want = (ix.battery_kwh > 0) & (ix.import_cost < 0).any(axis=1)
    assert np.array_equal((m.excl >= 0).any(axis=1), want)


def test_pyomo_model_is_public_and_named_by_family() -> None:
    from optisched.formulations.milp_pyomo import build_pyomo_model

    m = build_pyomo_model(all_features(2))
    for fam in ("assignment", "capacity", "on_link", "startup", "shutdown", "power_balance",
                "battery_soc", "battery_terminal", "feeder", "demand_peak"):
        assert hasattr(m, fam)
    assert len(m.power_balance) == 3 * 6


@pytest.mark.parametrize("name", ["cbc", "glpk", "scip", "gurobi", "cplex"])
def test_other_pyomo_solvers_agree(name: str) -> None:
    import pyomo.environ as pyo

    if not pyo.SolverFactory(name).available(exception_flag=False):
        pytest.skip(f"{name} not installed")
    p, _ = tiny(0)
    h = solve(p, "highs", **OPTS)  # type: ignore[arg-type]
    q = solve(p, "pyomo", pyomo_solver=name, **OPTS)  # type: ignore[arg-type]
    assert rel_close(h.objective, q.objective, 1e-5)  # type: ignore[arg-type]


def test_missing_pyomo_solver_is_an_error_not_a_crash() -> None:
    p, _ = tiny(0)
    q = solve(p, "pyomo", pyomo_solver="no_such_solver_xyz", **OPTS)  # type: ignore[arg-type]
    assert q.status is Status.ERROR


@pytest.mark.parametrize("order", [("highspy", "ortools"), ("ortools", "highspy")])
def test_highspy_and_ortools_share_a_process(order: tuple[str, str]) -> None:
    imports = {"highspy": "import highspy; h = highspy.Highs(); h.setOptionValue('output_flag', "
                          "False); h.addVar(0, 1); h.run()",
               "ortools": "from ortools.sat.python import cp_model; m = cp_model.CpModel(); "
                          "x = m.NewBoolVar('x'); s = cp_model.CpSolver(); s.Solve(m)"}
    code = "; ".join(imports[k] for k in order) + "; print('ok')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_cli_bound_and_pyomo_solver_option(tmp_path: object) -> None:
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from optisched.cli import app
    from optisched.io import read_bundle

    tiny_dir = str(Path(__file__).resolve().parents[1] / "datasets" / "tiny")
    runner = CliRunner()
    res = runner.invoke(app, ["bound", tiny_dir, "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    problem = read_bundle(tiny_dir)
    h = solve(problem, "highs", **OPTS)  # type: ignore[arg-type]
    assert got["bound"] <= h.objective + 1e-6  # type: ignore[operator]
    out = Path(str(tmp_path)) / "plan"
    res = runner.invoke(app, ["plan", tiny_dir, "--out", str(out), "--solver", "pyomo",
                              "--pyomo-solver", "appsi_highs", "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "optimal"
    assert rel_close(summary["objective"], h.objective, 1e-5)  # type: ignore[arg-type]
    res = runner.invoke(app, ["plan", tiny_dir, "--out", str(out) + "2", "--solver",
                              "pyomo", "--pyomo-solver", "no_such_solver_xyz"])
    # a usage error (issue 15: it was exit 3 with a traceback): exit 1, naming what is there
    assert res.exit_code == 1, res.output
    assert "no_such_solver_xyz" in res.output and "available: appsi_highs" in res.output
    assert "Traceback" not in res.output


def test_status_map_covers_every_highs_status() -> None:
    import highspy

    from optisched.solvers.highs import STATUS_MAP

    assert set(highspy.HighsModelStatus.__members__.values()) <= set(STATUS_MAP)


def test_thread_count_change_in_one_process() -> None:
    # HiGHS's pool is process-global; a second solve asking another size still works
    p = all_features(3)
    a = solve(p, "highs", time_limit=20.0, mip_gap=0.0, threads=2, seed=0)
    b = solve(p, "highs", **OPTS)  # type: ignore[arg-type]
    assert a.status is Status.OPTIMAL and b.status is Status.OPTIMAL
    assert rel_close(a.objective, b.objective)  # type: ignore[arg-type]


def test_pinned_job_started_before_the_horizon() -> None:
    from datetime import timedelta

    hz = Horizon(start=START, slot_minutes=60, slots=2)
    node = Node(node_id="n0", gpus=1.0, can_sleep=True, initially_on=False, startup_cost=1.0)
    jobs = [Job(job_id="running", gpus=1.0, duration_min=120.0, power_kw=2.0,
                pinned_node="n0", pinned_start=hz.time_of(0) - timedelta(hours=1)),
            Job(job_id="late", gpus=1.0, duration_min=60.0, power_kw=1.0,
                deadline=hz.time_of(1), drop_penalty=3.0)]
    p = Problem(scenario=Scenario(horizon=hz), nodes=[node], jobs=jobs,
                tariffs={"default": Tariff(price=[0.1, 0.1], export_price=[0.0, 0.0],
                                           carbon_g_per_kwh=[0.0, 0.0])})
    for name in ("highs", "pyomo"):
        plan = solve(p, name, **OPTS)  # type: ignore[arg-type]
        assert plan.status is Status.OPTIMAL, plan.message
        # slot 0 only: 2 kWh at 0.1, one start-up (initially off), "late" dropped (no GPU free)
        assert list(plan.node) == [0, -1]
        assert plan.flows is not None and list(plan.flows.on[0]) == [True, False]
        assert rel_close(plan.objective, 0.2 + 1.0 + 3.0)  # type: ignore[arg-type]
