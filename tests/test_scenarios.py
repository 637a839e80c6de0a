"""Scenarios and two-stage plans (issue 19, beyond SPEC v1).

- one scenario (``scenarios.csv`` of one row, or two identical scenarios) gives every solver
  the plan and cost of the bundle without scenarios;
- a hand-built two-scenario case where the plan made on the mean forecast is provably worse in
  expectation than the two-stage plan (costs by hand);
- the CVaR term by hand (the sorted-tail formula, the MILP's linearization, the evaluator);
- the batched dispatch equals each scenario's own; the evaluator checks every scenario;
- plan files and JSON documents with several scenarios round-trip.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optisched.dispatch import dispatch, dispatch_load, stacked
from optisched.domain import (
    Horizon,
    Job,
    Node,
    NodeSeries,
    ObjectiveOptions,
    Problem,
    Scenario,
    ScenarioData,
    Tariff,
)
from optisched.evaluate import evaluate, job_load, scenario_pricing
from optisched.generate import generate
from optisched.index import compile_index
from optisched.io import read_bundle, write_bundle
from optisched.plan import FLOW_NAMES, Plan, Status, read_plan, write_plan
from optisched.risk import cvar, risk_objective, tail_weights
from optisched.scenarios import mean_forecast
from optisched.solvers import solve

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "datasets" / "tiny"
TINY_S = ROOT / "datasets" / "tiny-scenarios"

DETERMINISTIC: dict[str, dict[str, Any]] = {
    "baseline": {},
    "greedy": {"options": {"iterations": 30}, "time_limit": 60},
    "highs": {"time_limit": 120, "threads": 1, "options": {"greedy_start": False}},
    "pyomo": {"time_limit": 120, "threads": 1},
    "cpsat": {"time_limit": 120, "options": {"workers": 1, "hint": False,
                                             "cpsat_params": {"max_deterministic_time": 2.0}}},
    "lns": {"time_limit": 300, "options": {"max_iterations": 3, "lp_bound": False,
                                           "restricted_master": False, "sub_time_limit": 60.0}},
}
"""Solver settings whose plans do not depend on timing."""


def _one_scenario(p: Problem) -> Problem:
    return p.model_copy(update={"scenarios": {"only": ScenarioData(weight=1.0)}})


def _same_plan(a: Plan, b: Plan) -> None:
    assert a.status == b.status
    assert np.array_equal(a.node, b.node) and np.array_equal(a.start, b.start)
    assert a.objective == b.objective
    assert a.flows is not None and b.flows is not None
    for name in ("on", "load", *FLOW_NAMES):
        assert np.array_equal(getattr(a.flows, name), getattr(b.flows, name)), name


# ----------------------------------------------------------------------------- one scenario


@pytest.mark.parametrize("solver", list(DETERMINISTIC))
@pytest.mark.parametrize("bundle", ["tiny", "tiny-gen"])
def test_one_scenario_gives_todays_plan(solver: str, bundle: str) -> None:
    p = read_bundle(TINY) if bundle == "tiny" else generate("tiny", seed=1)
    plain = solve(p, solver, seed=0, **DETERMINISTIC[solver])
    one = solve(_one_scenario(p), solver, seed=0, **DETERMINISTIC[solver])
    assert plain.status.has_plan
    _same_plan(plain, one)
    assert plain.costs == one.costs
    assert plain.risk == {} and one.risk["scenario_costs"] == {"only": plain.objective}
    assert one.risk["cvar"] == one.risk["expected_cost"] == plain.objective


def test_one_scenario_index_is_todays() -> None:
    p = read_bundle(TINY)
    a, b = compile_index(p), compile_index(_one_scenario(p))
    for f in ("pv", "headroom", "available", "price", "export_price", "carbon", "import_cost",
              "feeder_headroom", "opt_job", "opt_node", "opt_earliest", "opt_latest"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert a.S == b.S == 1 and b.scenario(0) is b
    assert np.array_equal(b.scenarios.pv[0], a.pv)


def test_two_identical_scenarios_cost_as_one() -> None:
    p = read_bundle(TINY)
    two = p.model_copy(update={"scenarios": {"a": ScenarioData(weight=0.25),
                                             "b": ScenarioData(weight=0.75)}})
    plain = solve(p, "highs", **DETERMINISTIC["highs"])
    both = solve(two, "highs", **DETERMINISTIC["highs"])
    assert both.status is Status.OPTIMAL
    assert both.objective == pytest.approx(plain.objective, rel=1e-9)
    assert both.risk["scenario_costs"]["a"] == pytest.approx(plain.objective, rel=1e-9)


# ----------------------------------------------------------------------------- by hand


def _two_slot_problem(pv: dict[str, tuple[float, float]],
                      weights: dict[str, float] | None = None,
                      objective: ObjectiveOptions | None = None) -> Problem:
    """One node (no battery, no export, price 1 per kWh), one must-run 1-kW job of one
    hour, two one-hour slots; per scenario its PV in each slot."""
    weights = weights or {sid: 1.0 / len(pv) for sid in pv}
    hz = Horizon(start="2026-06-01T10:00:00+00:00", slot_minutes=60, slots=2)
    return Problem(
        scenario=Scenario(horizon=hz, objective=objective or ObjectiveOptions()),
        nodes=[Node(node_id="n", gpus=1)],
        jobs=[Job(job_id="j", gpus=1, duration_min=60, power_kw=1.0)],
        tariffs={"default": Tariff.constant(2, price=1.0)},
        scenarios={sid: ScenarioData(weight=weights[sid],
                                     node_series={"n": NodeSeries(pv_kw=list(v))})
                   for sid, v in pv.items()},
    )


def test_the_mean_forecast_plan_is_worse_in_expectation() -> None:
    # slot 0: PV 2 kW in A, 0 in B (mean 1); slot 1: 0.8 kW in both (mean 0.8); p = 0.5 each.
    # The mean forecast covers the 1-kW job in slot 0 (import 0) and not in slot 1 (0.2 kWh),
    # so the deterministic plan runs it in slot 0. By hand, in expectation:
    #   slot 0: 0.5 * max(0, 1 - 2) + 0.5 * max(0, 1 - 0) = 0.5 [money]
    #   slot 1: 0.5 * 0.2 + 0.5 * 0.2                      = 0.2 [money]
    p = _two_slot_problem({"A": (2.0, 0.8), "B": (0.0, 0.8)})
    det = solve(mean_forecast(p), "highs", **DETERMINISTIC["highs"])
    assert det.status is Status.OPTIMAL and det.start[0] == 0
    assert det.objective == pytest.approx(0.0, abs=1e-9)
    two = solve(p, "highs", **DETERMINISTIC["highs"])
    assert two.status is Status.OPTIMAL and two.start[0] == 1
    assert two.objective == pytest.approx(0.2, abs=1e-9)
    assert two.risk["scenario_costs"] == pytest.approx({"A": 0.2, "B": 0.2})
    # the deterministic placement priced on the scenarios (its recourse re-optimized)
    ix = compile_index(p)
    res = dispatch(ix, det.node, det.start)
    assert res.feasible and res.scenario_cost is not None
    assert res.scenario_cost == pytest.approx([0.0, 1.0])
    as_plan = Plan(solver="mean", status=Status.FEASIBLE, job_ids=["j"], node_ids=["n"],
                   node=det.node, start=det.start, flows=res.flows)
    ev = evaluate(p, as_plan, ix)
    assert ev.feasible and ev.objective == pytest.approx(0.5, abs=1e-9)
    # value of the stochastic solution of this case: 0.5 - 0.2 = 0.3
    assert ev.objective - two.objective == pytest.approx(0.3, abs=1e-9)
    for solver in ("greedy", "lns", "pyomo"):
        got = solve(p, solver, **DETERMINISTIC.get(solver, {"time_limit": 60}))
        assert got.start[0] == 1 and got.objective == pytest.approx(0.2, abs=1e-9), solver


def test_cvar_by_hand() -> None:
    # sorted-tail formula: costs (3, 1, 2) with weights (0.2, 0.5, 0.3), alpha = 0.6: the worst
    # 0.4 of the mass is scenario 0 (0.2 at cost 3) and 0.2 of scenario 2 (cost 2):
    # CVaR = (0.2 * 3 + 0.2 * 2) / 0.4 = 2.5
    c, w = [3.0, 1.0, 2.0], [0.2, 0.5, 0.3]
    assert cvar(c, w, 0.6) == pytest.approx(2.5)
    assert tail_weights(c, w, 0.6) == pytest.approx([0.5, 0.0, 0.5])
    assert cvar(c, w, 0.0) == pytest.approx(np.dot(c, w))  # CVaR_0 = E
    assert cvar(c, w, 0.9) == pytest.approx(3.0)  # the tail lies in the worst scenario
    # Rockafellar-Uryasev: min over eta of eta + E[max(0, c - eta)] / (1 - alpha)
    etas = np.linspace(0, 4, 4001)
    ru = [e + np.dot(w, np.maximum(0.0, np.array(c) - e)) / 0.4 for e in etas]
    assert min(ru) == pytest.approx(2.5, abs=1e-9)
    assert risk_objective(c, w, 0.6, 2.0) == pytest.approx(np.dot(c, w) + 5.0)


def test_cvar_changes_the_decision() -> None:
    # slot 0: import 0 in A (PV 1) and 0.8 in B (PV 0.2): E = 0.4, CVaR_0.5 = 0.8;
    # slot 1: import 0.5 in both: E = 0.5, CVaR_0.5 = 0.5.
    # lambda = 0: slot 0 (0.4 < 0.5); lambda = 1: slot 1 (0.5 + 0.5 = 1.0 < 0.4 + 0.8 = 1.2).
    pv = {"A": (1.0, 0.5), "B": (0.2, 0.5)}
    risk_neutral = _two_slot_problem(pv)
    averse = _two_slot_problem(pv, objective=ObjectiveOptions(cvar_alpha=0.5, cvar_weight=1.0))
    a = solve(risk_neutral, "highs", **DETERMINISTIC["highs"])
    assert a.start[0] == 0 and a.objective == pytest.approx(0.4, abs=1e-9)
    assert a.risk["cvar"] == pytest.approx(0.8, abs=1e-9)
    for solver in ("highs", "pyomo", "greedy", "lns"):
        b = solve(averse, solver, **DETERMINISTIC.get(solver, {"time_limit": 60}))
        assert b.start[0] == 1, solver
        assert b.objective == pytest.approx(1.0, abs=1e-9), solver
        assert b.risk["cvar"] == pytest.approx(0.5, abs=1e-9)
        assert b.risk["expected_cost"] == pytest.approx(0.5, abs=1e-9)
    # the MILP's CVaR columns equal the sorted-tail value at the optimum
    b = solve(averse, "highs", **DETERMINISTIC["highs"])
    assert b.info["milp_objective"] == pytest.approx(1.0, abs=1e-7)
    assert b.bound == pytest.approx(1.0, abs=1e-7)


def test_worked_example_of_cost_md() -> None:
    p = read_bundle(TINY_S)
    plan = solve(p, "baseline")
    ix = compile_index(p)
    sp = scenario_pricing(ix, plan)
    s1, s2 = sp.scenario_terms
    assert s1["energy"] == pytest.approx(1.3531) and s2["energy"] == pytest.approx(2.18715)
    assert s1["export_revenue"] == pytest.approx(0.8)
    assert s2["export_revenue"] == pytest.approx(0.392)
    assert s1["carbon"] == pytest.approx(0.1163525)
    assert s2["carbon"] == pytest.approx(0.1223275)
    assert sp.scenario_costs == pytest.approx([3.1194525, 4.3674775])
    assert plan.objective == pytest.approx(3.6186625)
    assert plan.risk["cvar"] == pytest.approx(4.3674775)
    assert cvar(sp.scenario_costs, [0.6, 0.4], 0.5) == pytest.approx(4.1178725)
    averse = p.model_copy(update={"scenario": p.scenario.model_copy(update={
        "objective": ObjectiveOptions(carbon_price_per_tonne=50.0, cvar_alpha=0.5,
                                      cvar_weight=1.0)})})
    assert solve(averse, "baseline").objective == pytest.approx(7.736535)


# ----------------------------------------------------------------------------- dispatch


def _scenario_problem(seed: int = 3) -> Problem:
    """A generated problem with three made-up scenarios of PV and prices."""
    p = generate("tiny", seed=seed)
    rng = np.random.default_rng(seed)
    out = {}
    for k, w in enumerate((0.5, 0.3, 0.2)):
        f_pv, f_price = rng.uniform(0.2, 1.4), rng.uniform(0.6, 1.6)
        out[f"s{k}"] = ScenarioData(
            weight=w,
            node_series={nid: s.model_copy(update={"pv_kw": [f_pv * v for v in s.pv_kw]})
                         if s.pv_kw is not None else s for nid, s in p.node_series.items()},
            tariffs={name: Tariff(price=[f_price * v for v in tf.price],
                                  export_price=tf.export_price,
                                  carbon_g_per_kwh=tf.carbon_g_per_kwh)
                     for name, tf in p.tariffs.items()})
    return p.model_copy(update={"scenarios": out})


def test_batched_dispatch_equals_each_scenario_alone() -> None:
    p = _scenario_problem()
    ix = compile_index(p)
    plan = solve(p, "greedy", options={"iterations": 10})
    assert plan.flows is not None and plan.flows.S == 3
    load = plan.flows.on * ix.idle_kw[:, None] + job_load(ix, plan.node, plan.start)
    got = dispatch_load(ix, load)
    assert got.feasible and got.scenario_cost is not None
    for s in range(ix.S):
        alone = dispatch_load(ix.scenario(s), load)
        assert got.scenario_cost[s] == pytest.approx(alone.cost, rel=1e-9, abs=1e-9)
        part = got.scenario_flows()[s]
        for name in FLOW_NAMES:
            assert np.allclose(getattr(part, name), getattr(alone, name), atol=1e-7), name
    assert got.cost == pytest.approx(np.tensordot(ix.scenarios.weight, got.scenario_cost, 1))
    stk = stacked(ix)
    assert stk.N == 3 * ix.N and stk.node_ids[ix.N].endswith("(scenario s1)")


def test_solvers_plan_every_scenario() -> None:
    p = _scenario_problem()
    best = solve(p, "highs", time_limit=60, threads=1)
    assert best.status is Status.OPTIMAL and best.bound is not None
    for solver in ("baseline", "greedy", "lns", "cpsat"):
        plan = solve(p, solver, time_limit=20)
        assert plan.status.has_plan, (solver, plan.message)
        assert plan.flows is not None and plan.flows.S == 3
        assert evaluate(p, plan).feasible
        assert plan.objective >= best.bound - 1e-6 * abs(best.bound)
        if solver == "cpsat":
            assert plan.bound is None and plan.status is Status.FEASIBLE


def test_evaluator_checks_every_scenario() -> None:
    # flows that serve scenario A's PV also in scenario B break B's PV bound
    p = _two_slot_problem({"A": (2.0, 0.8), "B": (0.0, 0.8)})
    ix = compile_index(p)
    node = np.array([0])
    start = np.array([0])
    res = dispatch(ix, node, start)
    assert res.flows is not None
    flows = res.flows.copy()
    b = flows.scenario_flows()[1]
    b.pv_used[:] = flows.pv_used  # scenario A's PV use in B
    b.grid_import[:] = flows.grid_import
    plan = Plan(solver="x", status=Status.FEASIBLE, job_ids=["j"], node_ids=["n"], node=node,
                start=start, flows=flows)
    ev = evaluate(p, plan, ix)
    assert not ev.feasible
    assert any(v.message.startswith("scenario B: node n slot 0: pv_used_kw exceeds its limit")
               for v in ev.violations), ev.violations
    single = Plan(solver="x", status=Status.FEASIBLE, job_ids=["j"], node_ids=["n"], node=node,
                  start=start, flows=flows.scenario(0))
    assert not evaluate(p, single, ix).feasible  # flows of one scenario for two


def test_availability_is_the_conjunction() -> None:
    p = _two_slot_problem({"A": (0.0, 0.0), "B": (0.0, 0.0)})
    b = p.scenarios["B"].model_copy(update={"node_series": {"n": NodeSeries(
        pv_kw=[0.0, 0.0], available=[False, True])}})
    p = p.model_copy(update={"scenarios": {**p.scenarios, "B": b}})
    ix = compile_index(p)
    assert ix.available.tolist() == [[False, True]]
    plan = solve(p, "highs", **DETERMINISTIC["highs"])
    assert plan.start[0] == 1


# ----------------------------------------------------------------------------- files


def test_plan_files_and_json_round_trip(tmp_path: Path) -> None:
    p = read_bundle(TINY_S)
    plan = solve(p, "greedy", options={"iterations": 10})
    out = write_plan(p, plan, tmp_path / "plan")
    lines = (out / "node_series.csv").read_text().splitlines()
    assert lines[0].startswith("scenario,node_id,slot,")
    assert len(lines) == 1 + 2 * 3 * 8
    back = read_plan(p, out)
    ev = evaluate(p, back)
    assert ev.feasible and ev.objective == pytest.approx(plan.objective, rel=1e-9)
    assert back.risk["scenario_costs"] == pytest.approx(plan.risk["scenario_costs"])
    doc = Plan.from_json(p, plan.to_json(p))
    assert doc.flows is not None and plan.flows is not None and doc.flows.S == 2
    for a, b in zip(doc.flows.scenario_flows(), plan.flows.scenario_flows(), strict=True):
        for name in FLOW_NAMES:
            assert np.array_equal(getattr(a, name), getattr(b, name))
    assert doc.risk == plan.risk
    # a bundle with scenarios round-trips too (the scenario column, scenarios.csv)
    write_bundle(p, tmp_path / "b")
    assert read_bundle(tmp_path / "b") == p
    assert "scenario" in (tmp_path / "b" / "prices.csv").read_text().splitlines()[0]


def test_plan_without_scenario_rows_is_a_located_error(tmp_path: Path) -> None:
    p = read_bundle(TINY_S)
    plan = solve(p, "baseline")
    out = write_plan(p, plan, tmp_path / "plan")
    text = (out / "node_series.csv").read_text().splitlines()
    (out / "node_series.csv").write_text("\n".join(ln for ln in text if not ln.startswith("s2,"))
                                         + "\n")
    with pytest.raises(Exception, match="in scenario s2"):
        read_plan(p, out)


def test_problem_checks_scenarios_in_code() -> None:
    with pytest.raises(ValueError, match="must sum to 1"):
        _two_slot_problem({"A": (1.0, 1.0), "B": (1.0, 1.0)}, weights={"A": 0.5, "B": 0.4})
    short = ScenarioData(weight=0.5, node_series={"n": NodeSeries(pv_kw=[1.0])})
    q = _two_slot_problem({"A": (1.0, 1.0), "B": (1.0, 1.0)})
    bad = q.model_copy(update={"scenarios": {**q.scenarios, "B": short}})
    assert any(i.scenario == "B" and "one value per slot" in i.message for i in bad.issues())
    assert math.isclose(sum(sc.weight for sc in q.scenarios.values()), 1.0)
    with pytest.raises(ValueError, match=r"one value per slot \(2\) \(scenario B\)"):
        Problem.model_validate(bad.model_dump())


# ------------------------------------------------------------ lns on a reduced scenario set


def test_lns_sub_problems_on_kept_scenarios_are_priced_on_every_scenario() -> None:
    from optisched.generate.scenarios import draw_scenarios
    from optisched.solvers.lns.search import sub_scenario_selection
    from optisched.solvers.lns.subproblem import build_subproblem, solve_subproblem, splice

    p, _ = draw_scenarios(generate("small", seed=0), 4, seed=0)
    ix = compile_index(p)
    assert sub_scenario_selection(p, ix, 4) is None  # S ≤ k: every scenario
    keep = sub_scenario_selection(p, ix, 2)
    assert keep is not None and len(keep[0]) == 2 and keep[1].sum() == pytest.approx(1.0)
    start = solve(p, "baseline")
    start.objective = evaluate(p, start, ix).objective
    sub = build_subproblem(p, ix, start, np.arange(ix.N), np.nonzero(~ix.pinned)[0],
                           keep=keep)
    ids = list(p.scenarios)
    assert sub.reduced and list(sub.problem.scenarios) == [ids[k] for k in keep[0]]
    assert [sc.weight for sc in sub.problem.scenarios.values()] == pytest.approx(keep[1])
    assert sub.warm.flows is not None and len(sub.warm.flows.scenario_flows()) == 2
    result = solve_subproblem("highs", sub, 30.0, 0, 1)
    assert result.status.has_plan
    cand, ev = splice(p, ix, start, start.objective, sub, result)
    assert cand is not None and ev is not None and ev.feasible
    # the spliced plan carries flows of all four scenarios: the exact dispatch of its
    # placement and on/off states in each, priced by the evaluator on all of them
    assert cand.flows is not None and len(cand.flows.scenario_flows()) == 4
    again = dispatch(ix, cand.node, cand.start, cand.flows.on)
    assert again.feasible and again.flows is not None
    redone = Plan(solver="x", status=Status.FEASIBLE, job_ids=cand.job_ids,
                  node_ids=cand.node_ids, node=cand.node, start=cand.start, flows=again.flows)
    assert evaluate(p, redone, ix).objective == pytest.approx(ev.objective, rel=1e-7)
    assert ev.objective <= start.objective + 1e-9  # the whole problem was free


def test_lns_with_kept_scenarios_returns_a_verified_plan() -> None:
    from optisched.generate.scenarios import draw_scenarios

    p, _ = draw_scenarios(generate("small", seed=0), 4, seed=0)
    plan = solve(p, "lns", time_limit=60, seed=0, deterministic=True,
                 options={"sub_scenarios": 1, "max_iterations": 4, "lp_bound": False})
    ev = evaluate(p, plan)
    assert ev.feasible and ev.objective == pytest.approx(plan.objective, rel=1e-9)
    assert plan.objective <= plan.info["start_objective"] + 1e-9
