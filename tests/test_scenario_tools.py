"""Scenario tools (issue 19, beyond SPEC v1): reduction, the mean forecast, generation,
plans judged on actuals, VSS and EVPI.

Costs and selections are computed by hand in the comments.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optisched.actuals import realized, settled
from optisched.bench.uncertainty import run_uncertainty, uncertainty_metrics
from optisched.cli import EXIT_INPUT, app
from optisched.domain import Horizon, Job, Node, NodeSeries, Problem, Scenario, ScenarioData, Tariff
from optisched.generate import generate
from optisched.generate.scenarios import MEAN_CLEARNESS, draw_scenarios
from optisched.io import read_bundle, write_bundle
from optisched.plan import Status
from optisched.scenarios import forward_selection, mean_forecast, reduce_scenarios
from optisched.solvers import solve

ROOT = Path(__file__).resolve().parents[1]
TINY_S = ROOT / "datasets" / "tiny-scenarios"
HIGHS = {"time_limit": 120, "threads": 1, "options": {"greedy_start": False}}
runner = CliRunner()


def _pv_problem(pv: dict[str, tuple[float, float]]) -> Problem:
    """One node (price 1 per kWh, no battery, no export), one must-run 1-kW job of one hour,
    two one-hour slots; each scenario its PV per slot, equal weights."""
    hz = Horizon(start="2026-06-01T10:00:00+00:00", slot_minutes=60, slots=2)
    return Problem(
        scenario=Scenario(horizon=hz), nodes=[Node(node_id="n", gpus=1)],
        jobs=[Job(job_id="j", gpus=1, duration_min=60, power_kw=1.0)],
        tariffs={"default": Tariff.constant(2, price=1.0)},
        scenarios={sid: ScenarioData(weight=1.0 / len(pv),
                                     node_series={"n": NodeSeries(pv_kw=list(v))})
                   for sid, v in pv.items()})


def _day(p: Problem, sid: str) -> Problem:
    """Scenario ``sid`` of ``p`` as an actual day."""
    return p.scenario_problem(sid)


# ----------------------------------------------------------------------------- reduction


def test_forward_selection_by_hand() -> None:
    # four scenarios on a line at 0, 1, 3, 10, weight 1/4 each, d = |x_i - x_j|.
    # step 1: sum_i w_i d_iu = (14, 12, 12, 26) / 4 -> u = 1 (first of the tie 1, 2)
    # step 2: nearest (1, 0, 2, 9); u = 0: (0 + 2 + 9) / 4, u = 2: (1 + 0 + 7) / 4,
    #         u = 3: (1 + 2 + 0) / 4 -> u = 3
    # weights: 0 -> 1 (d 1), 2 -> 1 (d 2 < 7): (3/4, 1/4)
    x = np.array([0.0, 1.0, 3.0, 10.0])
    d = np.abs(x[:, None] - x[None, :])
    kept, w = forward_selection(d, np.full(4, 0.25), 2)
    assert kept == [1, 3]
    assert w == pytest.approx([0.75, 0.25])
    kept1, w1 = forward_selection(d, np.full(4, 0.25), 1)
    assert kept1 == [1] and w1 == pytest.approx([1.0])
    kept4, w4 = forward_selection(d, np.full(4, 0.25), 4)
    assert kept4 == [0, 1, 2, 3] and w4 == pytest.approx([0.25] * 4)
    with pytest.raises(ValueError, match="can keep 1 to 4"):
        forward_selection(d, np.full(4, 0.25), 5)


def test_reduce_scenarios_keeps_series_and_moves_weights() -> None:
    # PV levels 0, 1, 3, 10 in both slots: distances proportional to the line above
    p = _pv_problem({f"s{k}": (v, v) for k, v in enumerate((0.0, 1.0, 3.0, 10.0))})
    r = reduce_scenarios(p, 2)
    assert {k: v.weight for k, v in r.scenarios.items()} == pytest.approx({"s1": 0.75,
                                                                          "s3": 0.25})
    assert r.scenarios["s3"].node_series == p.scenarios["s3"].node_series
    assert r.issues() == []
    assert reduce_scenarios(p, 4) is p
    with pytest.raises(ValueError, match="at least 1"):
        reduce_scenarios(p, 0)


def test_mean_forecast_by_hand() -> None:
    p = read_bundle(TINY_S)
    m = mean_forecast(p)
    assert not m.scenarios and m.issues() == []
    # residential price in slot 0: 0.6 * 0.3 + 0.4 * 0.45 = 0.36
    s1, s2 = (v for _, _, v in p.scenario_problems())
    assert s1.tariffs["residential"].price[0] == 0.3
    assert s2.tariffs["residential"].price[0] == pytest.approx(0.45)
    assert m.tariffs["residential"].price[0] == pytest.approx(0.36)
    for nid, ser in m.node_series.items():
        a, b = s1.node_series[nid], s2.node_series[nid]
        assert ser.pv_kw == pytest.approx(0.6 * np.array(a.pv_kw) + 0.4 * np.array(b.pv_kw))
        assert ser.available == [x and y for x, y in zip(a.available or [True] * 8,
                                                          b.available or [True] * 8,
                                                          strict=True)]
    assert mean_forecast(m) is m


# ----------------------------------------------------------------------------- generation


def test_draw_scenarios_are_valid_and_seeded(tmp_path: Path) -> None:
    base = generate("tiny", seed=2)
    p, days = draw_scenarios(base, 3, seed=2, actuals=2)
    again, days2 = draw_scenarios(base, 3, seed=2, actuals=2)
    assert p == again and days == days2
    assert list(p.scenarios) == ["s00", "s01", "s02"]
    assert sum(sc.weight for sc in p.scenarios.values()) == pytest.approx(1.0)
    assert p.issues() == [] and all(d.issues() == [] and not d.scenarios for d in days)
    clear = np.array([base.node_series[n].pv_kw for n in base.node_series])
    pvs = []
    for _, _, v in p.scenario_problems():
        pv = np.array([v.node_series[n].pv_kw for n in base.node_series])
        assert (pv <= clear + 1e-9).all() and (pv >= 0).all()
        pvs.append(pv.sum())
        # tariffs without a day-ahead part are the same in every scenario
        assert v.tariffs.get("commercial_tou") == base.tariffs.get("commercial_tou")
    assert len(set(pvs)) == 3  # each scenario its own weather
    assert np.mean(pvs) < clear.sum() and np.mean(pvs) > 0.3 * MEAN_CLEARNESS * clear.sum()
    write_bundle(p, tmp_path / "b")
    assert read_bundle(tmp_path / "b") == p
    with pytest.raises(ValueError, match="at least 1"):
        draw_scenarios(base, 0)


# ----------------------------------------------------------------------------- actuals


def test_realized_on_a_scenario_is_its_cost() -> None:
    # the plan's flows of scenario s are an optimal recourse of s: re-optimizing them on
    # scenario s as the actual day gives the same cost; the simulator's settlement (no
    # look-ahead, the mean battery set-point) never costs less
    p = read_bundle(TINY_S)
    plan = solve(p, "highs", **HIGHS)
    assert plan.status is Status.OPTIMAL
    w = [sc.weight for sc in p.scenarios.values()]
    for sid in p.scenarios:
        day = _day(p, sid)
        got = realized(day, plan)
        assert got.feasible
        assert got.cost == pytest.approx(plan.risk["scenario_costs"][sid], rel=1e-7, abs=1e-9)
        st = settled(day, plan, w)
        assert st.cost >= got.cost - 1e-7
    with pytest.raises(ValueError, match="no scenarios"):
        realized(p, plan)


def test_vss_and_evpi_by_hand() -> None:
    # scenarios A (PV 2, 0.8) and B (PV 0, 0.8), p = 1/2; actual days: A and B.
    # deterministic plan (mean PV 1, 0.8): slot 0 -> realized A 0, B 1: EEV = 0.5
    # two-stage plan: slot 1 -> realized 0.2 on both days: RP = 0.2
    # perfect foresight: A slot 0 (0), B slot 1 (0.2): WS = 0.1
    # VSS = 0.5 - 0.2 = 0.3, EVPI = 0.2 - 0.1 = 0.1
    p = _pv_problem({"A": (2.0, 0.8), "B": (0.0, 0.8)})
    row = uncertainty_metrics(p, [_day(p, "A"), _day(p, "B")], "highs", 60.0,
                              options=HIGHS["options"])
    assert row.eev == pytest.approx(0.5, abs=1e-9)
    assert row.rp == pytest.approx(0.2, abs=1e-9)
    assert row.ws == pytest.approx(0.1, abs=1e-9)
    assert row.vss == pytest.approx(0.3, abs=1e-9)
    assert row.evpi == pytest.approx(0.1, abs=1e-9)
    assert row.sp_expected_of_ev == pytest.approx(0.5, abs=1e-9)
    assert row.vss_positive_days == 1  # day A: both 0.2 vs 0 -> EV better; day B: SP better
    assert [d["eev"] - d["rp"] for d in row.per_day] == pytest.approx([-0.2, 0.8])


def test_uncertainty_suite_files(tmp_path: Path) -> None:
    md = run_uncertainty(tmp_path, ["baseline"], 10.0, sizes=["tiny"], scenarios=2, days=2)
    assert "| tiny | baseline | 2 | 2 | 0 / 0 |" in md
    rows = json.loads((tmp_path / "results.json").read_text())
    r = rows[0]
    assert r["vss"] == pytest.approx(r["eev"] - r["rp"])
    assert r["evpi"] == pytest.approx(r["rp"] - r["ws"]) and r["evpi"] >= -1e-9
    assert (tmp_path / "instances" / "tiny" / "actuals" / "day-001" / "prices.csv").is_file()


# ----------------------------------------------------------------------------- command line


def test_cli_generate_reduce_evaluate_actuals(tmp_path: Path) -> None:
    b = tmp_path / "b"
    r = runner.invoke(app, ["generate", "--preset", "tiny", "--out", str(b), "--scenarios", "4",
                            "--actuals", "2", "--seed", "1"])
    assert r.exit_code == 0, r.output
    assert "4 scenarios, 2 actual days" in r.output
    assert len((b / "scenarios.csv").read_text().splitlines()) == 5
    r = runner.invoke(app, ["scenarios", "reduce", str(b), "--to", "2", "--out",
                            str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    red = read_bundle(tmp_path / "r")
    assert len(red.scenarios) == 2
    assert sum(sc.weight for sc in red.scenarios.values()) == pytest.approx(1.0)
    r = runner.invoke(app, ["plan", str(b), "--out", str(tmp_path / "P"), "-s", "baseline",
                            "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["evaluate", str(b), str(tmp_path / "P"), "--actuals",
                            str(b / "actuals"), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] and len(doc["scenario_costs"]) == 4
    days = doc["actuals"]["days"]
    assert [d["day"] for d in days] == ["day-000", "day-001"]
    assert all(d["settled"]["cost"] >= d["realized"]["cost"] - 1e-7 for d in days)
    assert doc["actuals"]["mean_realized"] == pytest.approx(
        sum(d["realized"]["cost"] for d in days) / 2)
    one = runner.invoke(app, ["evaluate", str(b), str(tmp_path / "P"), "--actuals",
                              str(b / "actuals" / "day-001"), "--json"])
    assert json.loads(one.stdout)["actuals"]["days"][0]["realized"] == days[1]["realized"]


def test_cli_scenario_errors(tmp_path: Path) -> None:
    r = runner.invoke(app, ["generate", "--preset", "tiny", "--out", str(tmp_path / "g"),
                            "--actuals", "2"])
    assert r.exit_code == EXIT_INPUT and "--actuals needs --scenarios" in r.output
    r = runner.invoke(app, ["scenarios", "reduce", str(ROOT / "datasets" / "tiny"), "--to", "1",
                            "--out", str(tmp_path / "r")])
    assert r.exit_code == EXIT_INPUT and "has no scenarios" in r.output
    r = runner.invoke(app, ["plan", str(TINY_S), "--out", str(tmp_path / "P"), "-s", "baseline",
                            "-q"])
    assert r.exit_code == 0, r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["evaluate", str(TINY_S), str(tmp_path / "P"), "--actuals",
                            str(tmp_path / "empty")])
    assert r.exit_code == EXIT_INPUT and "no node_series.csv" in r.output


def test_simulator_settles_a_scenario_bundle_on_actuals(tmp_path: Path) -> None:
    import pandas as pd

    from optisched.simulate import Forecasts, read_actuals, simulate

    # the actual day: scenario s2's data as its own files; read without scenarios.csv
    p = read_bundle(TINY_S)
    day = tmp_path / "day"
    write_bundle(_day(p, "s2"), day)
    actual = read_actuals(TINY_S, day)
    assert not actual.scenarios and actual == _day(p, "s2")
    none = Forecasts(pv=pd.DataFrame(columns=["issued_at", "time", "node_id", "pv_kw"]),
                     price=pd.DataFrame(columns=["issued_at", "time", "tariff", "price"]))
    sim = simulate(p, actual, none, 4, time_limit=60.0, iterations=10,
                   plan_once_time_limit=60.0, pf_solver="greedy", pf_time_limit=60.0,
                   pf_options={"iterations": 10})
    assert sim.feasible["plan_once"] and sim.feasible["perfect_foresight"]
    # the settlement keeps the set-point slot by slot (no look-ahead): on a day this far
    # from the scenarios planned on, a re-planned battery may end below its initial charge
    assert all("terminal = initial" in v for v in sim.violations["realized"])
    assert sim.perfect_foresight_cost <= min(sim.realized_cost, sim.plan_once_cost) + 1e-9
    # the plan made once, settled on the actuals, is never cheaper than its first stage
    # with the recourse re-optimized there
    once = solve(p, "greedy", options={"iterations": 10}, time_limit=60.0)
    assert settled(actual, once).cost >= realized(actual, once).cost - 1e-7


def test_replanner_keeps_every_scenario() -> None:
    from optisched.evaluate import evaluate
    from optisched.replan import Replanner

    p = read_bundle(TINY_S)
    rp = Replanner(p, solver="greedy", time_limit=60.0, iterations=10)
    assert rp.plan.flows is not None and rp.plan.flows.S == 2
    hz = p.horizon
    new = Job(job_id="late", gpus=1, duration_min=60, power_kw=0.1, release=hz.time_of(3),
              drop_penalty=5.0)
    plan = rp.update(hz.time_of(2), new_jobs=[new])
    assert plan.flows is not None and plan.flows.S == 2
    assert len(rp.problem.scenarios) == 2
    ev = evaluate(rp.problem, plan)
    assert ev.feasible, [str(v) for v in ev.violations[:3]]
    assert set(ev.risk["scenario_costs"]) == {"s1", "s2"}
