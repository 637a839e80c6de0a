"""The closed-loop simulator (issue 16): forecasts, settlement, costs, files, CLI, example."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from optisched.cli import EXIT_INPUT, app
from optisched.domain import Problem
from optisched.errors import BundleError
from optisched.generate.random_problems import random_problem
from optisched.index import compile_index
from optisched.io import read_bundle, write_bundle
from optisched.simulate import (
    Forecasts,
    read_actuals,
    read_forecasts,
    settle_slot,
    simulate,
)

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "simulate"
GREEDY_PF = {"pf_solver": "greedy", "pf_options": {"iterations": 30}, "pf_time_limit": 60.0}
"""Perfect foresight by a capped greedy: fast and reproducible (the example uses lns)."""


def _day() -> tuple[Problem, Problem, Forecasts]:
    """A 24-slot day: the actual PV is the forecast shifted and scaled, prices +20 % after noon;
    jobs released over the day; forecasts re-issued at 06:00 and 12:00."""
    p = random_problem(5, n_nodes=4, n_jobs=12, slots=24, batteries=True, sleep=True,
                       terminal="free")
    hz = p.horizon
    jobs = [j.model_copy(update={"release": hz.time_of(3 * (k % 6))})
            if j.release is None else j for k, j in enumerate(p.jobs)]
    p = p.model_copy(update={"jobs": jobs})
    series = {}
    for nid, s in p.node_series.items():
        pv = np.asarray(s.pv_kw or [0.0] * 24)
        series[nid] = s.model_copy(update={"pv_kw": [float(v) for v in np.roll(pv, 1) * 0.8]})
    tariffs = {t: tf.model_copy(update={"price": [v * (1.2 if k >= 12 else 1.0)
                                                  for k, v in enumerate(tf.price)]})
               for t, tf in p.tariffs.items()}
    actual = p.model_copy(update={"node_series": series, "tariffs": tariffs})
    rows_pv, rows_pr = [], []
    for issue in (6, 12):
        at = hz.time_of(issue)
        for nid, s in actual.node_series.items():
            for t in range(issue, 24):
                # the forecast gets the actual right for the next 3 h
                truth = s.pv_kw[t] if s.pv_kw else 0.0
                fc = p.node_series[nid].pv_kw[t] if p.node_series[nid].pv_kw else 0.0
                rows_pv.append((at, hz.time_of(t), nid, truth if t < issue + 3 else fc))
        for name, tf in actual.tariffs.items():
            for t in range(issue, 24):
                rows_pr.append((at, hz.time_of(t), name, tf.price[t]))
    pv = pd.DataFrame(rows_pv, columns=["issued_at", "time", "node_id", "pv_kw"])
    pr = pd.DataFrame(rows_pr, columns=["issued_at", "time", "tariff", "price"])
    for df in (pv, pr):
        for c in ("issued_at", "time"):
            df[c] = pd.to_datetime(df[c], utc=True)
    return p, actual, Forecasts(pv=pv, price=pr)


def test_perfect_foresight_never_costs_more_than_the_realized_plan(tmp_path: Path) -> None:
    problem, actual, fc = _day()
    sim = simulate(problem, actual, fc, 4, time_limit=60.0, iterations=20,
                   plan_once_time_limit=60.0, **GREEDY_PF)  # type: ignore[arg-type]
    assert sim.perfect_foresight_cost <= sim.realized_cost + 1e-9
    assert sim.perfect_foresight_cost <= sim.plan_once_cost + 1e-9 or (
        sim.perfect_foresight_source != "realized")
    assert sim.perfect_foresight_source in ("greedy", "greedy-warm", "realized")
    assert sim.feasible["realized"] and sim.feasible["plan_once"]
    # every 4 slots, and at the slots where jobs arrive
    hz = problem.horizon
    arrive = {math.ceil(hz.slot_position(j.release)) for j in problem.jobs
              if j.release is not None and j.release > hz.start}
    want = sorted({t for t in range(1, 24) if t % 4 == 0} | arrive)
    assert [u["time"] for u in sim.updates] == [hz.time_of(t).isoformat() for t in want]
    assert all("error" not in u for u in sim.updates)
    assert len(sim.ledger) == 24 * len(problem.nodes)
    assert sim.ledger["cost"].sum() == pytest.approx(sum(sim.per_slot["realized"]))
    # the realized cost is the evaluator's on the actuals
    c = sim.costs["realized"]
    assert sim.realized_cost == pytest.approx(
        sum(-v if k == "export_revenue" else v for k, v in c.items()))
    out = sim.write(tmp_path / "sim")
    data = json.loads((out / "simulation.json").read_text())
    for key in ("realized_cost", "plan_once_cost", "perfect_foresight_cost", "ledger",
                "updates", "costs"):
        assert key in data
    assert len(data["ledger"]) == 24 * len(problem.nodes)
    assert (out / "cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(out / "ledger.csv")) == 24 * len(problem.nodes)


def test_simulation_is_reproducible() -> None:
    problem, actual, fc = _day()
    a = simulate(problem, actual, fc, 6, time_limit=60.0, iterations=10,
                 plan_once_time_limit=60.0, **GREEDY_PF)  # type: ignore[arg-type]
    b = simulate(problem, actual, fc, 6, time_limit=60.0, iterations=10,
                 plan_once_time_limit=60.0, **GREEDY_PF)  # type: ignore[arg-type]
    assert a.realized_cost == b.realized_cost and a.plan_once_cost == b.plan_once_cost
    assert a.perfect_foresight_cost == b.perfect_foresight_cost


def test_forecasts_latest_issue_wins() -> None:
    _, _, fc = _day()
    p = _day()[0]
    hz = p.horizon
    pv, _ = fc.latest(hz.time_of(13), hz.time_of(13), hz.end)
    assert set(pv) == {n.node_id for n in p.nodes if n.node_id in p.node_series}
    s = pv["n0"]
    assert s.index[0] == pd.Timestamp(hz.time_of(13))  # issued at 12:00, from 13:00 on
    pv0, _ = fc.latest(hz.time_of(5), hz.time_of(5), hz.end)
    assert pv0 == {}  # nothing issued by 05:00


def test_settlement_keeps_the_set_point_and_the_headroom() -> None:
    p = random_problem(2, n_nodes=2, n_jobs=2, slots=4, batteries=True, battery_share=1.0)
    p = p.model_copy(update={"node_series": {nid: s.model_copy(update={"headroom_kw": [2.0] * 4})
                                             for nid, s in p.node_series.items()}})
    ix = compile_index(p)
    soc = ix.soc_min + 0.5 * (ix.soc_max - ix.soc_min)
    t = 0
    # load far above PV + headroom: the battery discharges beyond its set-point
    big = ix.pv[:, t] + ix.headroom[:, t] + 0.5 * np.minimum(ix.discharge_kw, 1.0)
    f = settle_slot(ix, t, big, np.zeros(2), np.zeros(2), soc)
    assert (f["discharge"] > 0).all()
    assert np.allclose(f["pv_used"] + f["grid_import"] + f["discharge"] - f["charge"]
                       - f["grid_export"], big)
    assert (f["grid_import"] <= ix.headroom[:, t] + f["unserved"] + 1e-9).all()
    # no load, PV shining, no export price: the PV charges the battery instead of curtailing
    ix2 = compile_index(p.model_copy(update={"tariffs": {
        k: tf.model_copy(update={"export_price": [0.0] * 4}) for k, tf in p.tariffs.items()}}))
    pv = ix2.pv[:, t]
    f2 = settle_slot(ix2, t, np.zeros(2), np.zeros(2), np.zeros(2), soc)
    assert np.allclose(f2["charge"], np.minimum(pv, ix2.charge_kw), atol=1e-6) or (
        f2["soc"] >= ix2.soc_max - 1e-9).any()


def test_read_forecasts_names_every_bad_cell(tmp_path: Path) -> None:
    problem, _, _ = _day()
    rows = ["2026-06-01T06:00:00+00:00,2026-06-01T07:00:00+00:00,n0,1.5,,",
            "yesterday,2026-06-01T07:00:00+00:00,n0,1.5,,",
            "2026-06-01T06:00:00+00:00,2026-06-01T07:30:00+00:00,n0,1.5,,",
            "2026-06-01T06:00:00+00:00,2026-06-01T07:00:00+00:00,nope,-1,,",
            "2026-06-01T06:00:00+00:00,2026-06-01T07:00:00+00:00,,,t0,abc",
            "2026-06-01T06:00:00+00:00,2026-06-01T07:00:00+00:00,n0,1,t0,1"]
    f = tmp_path / "fc.csv"
    f.write_text("issued_at,time,node_id,pv_kw,tariff,price,bogus\n"
                 + "".join(r + ",\n" for r in rows))
    with pytest.raises(BundleError) as info:
        read_forecasts(f, problem)
    assert "column bogus" in str(info.value)
    f.write_text("issued_at,time,node_id,pv_kw,tariff,price\n" + "".join(r + "\n" for r in rows))
    with pytest.raises(BundleError) as info:
        read_forecasts(f, problem)
    text = str(info.value)
    assert "row 3, column issued_at: value 'yesterday'" in text
    assert "row 4, column time" in text and "slot grid" in text
    assert "row 5, column node_id: value 'nope': unknown node_id" in text
    assert "row 5, column pv_kw: value '-1'" in text
    assert "row 6, column price: value 'abc'" in text
    assert "row 7" in text and "either node_id and pv_kw or tariff and price" in text


def test_cli_simulate(tmp_path: Path) -> None:
    problem, actual, fc = _day()
    write_bundle(problem, tmp_path / "bundle")
    write_bundle(actual, tmp_path / "a")
    act = tmp_path / "actuals"
    act.mkdir()
    for name in ("node_series.csv", "prices.csv"):
        (act / name).write_bytes((tmp_path / "a" / name).read_bytes())
    fc.write(tmp_path / "forecasts.csv")
    back = read_forecasts(tmp_path / "forecasts.csv", read_bundle(tmp_path / "bundle"))
    assert len(back.pv) == len(fc.pv) and len(back.price) == len(fc.price)
    assert read_actuals(tmp_path / "bundle", act).node_series == actual.node_series
    r = runner.invoke(app, ["simulate", str(tmp_path / "bundle"), "--actuals", str(act),
                            "--forecasts", str(tmp_path / "forecasts.csv"), "--replan-every",
                            "6", "--time-limit", "0.05", "--plan-once-time-limit", "0.5",
                            "--pf-solver", "greedy", "--pf-time-limit", "0.5",
                            "--out", str(tmp_path / "sim")])
    assert r.exit_code == 0, r.output
    assert "perfect foresight" in r.output
    data = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    assert data["perfect_foresight_cost"] <= data["realized_cost"] + 1e-9
    r = runner.invoke(app, ["simulate", str(tmp_path / "bundle"), "--actuals", str(tmp_path),
                            "--forecasts", str(tmp_path / "nope.csv"), "--replan-every", "0",
                            "--out", str(tmp_path / "x")])
    assert r.exit_code == EXIT_INPUT
    assert "Traceback" not in r.output


def test_the_shipped_example_reads_and_is_reproducible(tmp_path: Path) -> None:
    """The example's files are what its script makes, and the simulator runs on them."""
    spec = importlib.util.spec_from_file_location("make_example", EXAMPLE / "make_example.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    bundle, actual, fc = mod.build()
    problem = read_bundle(EXAMPLE / "bundle")
    assert problem == bundle
    assert read_actuals(EXAMPLE / "bundle", EXAMPLE / "actuals") == actual
    shipped = read_forecasts(EXAMPLE / "forecasts.csv", problem)
    assert len(shipped.pv) == len(fc.pv) and len(shipped.price) == len(fc.price)
    assert np.allclose(shipped.pv["pv_kw"], fc.pv["pv_kw"], atol=1e-4)
    # forecasts re-issued during the day, and different from the actuals
    hz = problem.horizon
    assert len(shipped.issues()) >= 5 and shipped.issues()[0] < hz.start
    pv_f = np.array([s.pv_kw for s in problem.node_series.values()])
    pv_a = np.array([s.pv_kw for s in actual.node_series.values()])
    assert not np.allclose(pv_f, pv_a)
    assert problem.tariffs["home_dynamic"].price != actual.tariffs["home_dynamic"].price
    # a short run on it: every job known ahead, a re-plan every 6 h, capped searches
    sim = simulate(problem, actual, shipped, 24, time_limit=60.0, iterations=5,
                   plan_once_time_limit=1.0, jobs_known_ahead=True,
                   **GREEDY_PF)  # type: ignore[arg-type]
    assert sim.perfect_foresight_cost <= sim.realized_cost + 1e-9
    assert [u["time"] for u in sim.updates] == [hz.time_of(t).isoformat() for t in (24, 48, 72)]
    assert sim.feasible["realized"]
