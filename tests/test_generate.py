"""Scenario generator: presets validate and round-trip, determinism, archetype physics, data."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from optisched.cli import app
from optisched.domain import Problem
from optisched.generate import PRESETS, generate
from optisched.generate.data import day_ahead_week
from optisched.generate.prices import HOUSEHOLD_SURCHARGE
from optisched.generate.solar import pv_ac_kw, shipped_weather_files
from optisched.index import compile_index
from optisched.io import read_bundle, write_bundle
from optisched.solvers import REGISTRY, solve

DATASETS = Path(__file__).resolve().parents[1] / "datasets"


def _local_hours(p: Problem) -> np.ndarray:
    """Local (UTC+2) hour of each slot's middle [h]."""
    hz = p.horizon
    return np.array([((hz.time_of(t) + timedelta(minutes=hz.slot_minutes / 2))
                      .astimezone(hz.start.tzinfo).hour
                      + (hz.time_of(t) + timedelta(minutes=hz.slot_minutes / 2))
                      .astimezone(hz.start.tzinfo).minute / 60) for t in range(hz.slots)])


@pytest.mark.parametrize("preset", ["tiny", "small", "medium", "neighborhood", "city", "large"])
def test_preset_round_trip(tmp_path: Path, preset: str) -> None:
    p = generate(preset, seed=3)
    spec = PRESETS[preset]
    assert (len(p.nodes), len(p.jobs), p.horizon.slots) == (spec.n_nodes, spec.n_jobs,
                                                             spec.n_slots)
    write_bundle(p, tmp_path / preset)
    back = read_bundle(tmp_path / preset)
    assert back.model_dump() == p.model_dump()


@pytest.mark.slow
def test_xl_round_trip(tmp_path: Path) -> None:
    p = generate("xl", seed=0)
    assert (len(p.nodes), len(p.jobs), p.horizon.slots) == (1000, 10000, 96)
    write_bundle(p, tmp_path / "xl")
    assert read_bundle(tmp_path / "xl").model_dump() == p.model_dump()


def test_scale_ladder_sizes_and_overrides() -> None:
    assert {k: (v.n_jobs, v.n_nodes, v.n_slots) for k, v in PRESETS.items()
            if k in ("small", "medium", "large", "xl")} == {
        "small": (20, 5, 48), "medium": (100, 20, 96), "large": (1000, 100, 96),
        "xl": (10000, 1000, 96)}
    p = generate("city", n_nodes=9, n_jobs=17, n_slots=48, seed=2)
    assert (len(p.nodes), len(p.jobs), p.horizon.slots, p.horizon.slot_minutes) == (9, 17, 48,
                                                                                    30)
    assert generate("small", n_slots=100).horizon.slot_minutes == 15  # 100 does not divide 1440
    with pytest.raises(ValueError, match="unknown preset"):
        generate("huge")
    with pytest.raises(ValueError, match="unknown options"):
        generate("tiny", colour="red")


def test_deterministic_by_seed() -> None:
    a, b, c = generate("medium", seed=5), generate("medium", seed=5), generate("medium", seed=6)
    assert a.model_dump() == b.model_dump()
    assert a.model_dump() != c.model_dump()


def test_every_job_has_a_feasible_option_and_must_runs_exist() -> None:
    for preset in ("city", "neighborhood", "medium"):
        p = generate(preset, seed=4)
        idx = compile_index(p)
        with_option = {int(idx.opt_job[o]) for o in range(len(idx.opt_job))
                       if len(idx.feasible_starts(o)) > 0}
        must = [j for j, job in enumerate(p.jobs) if job.must_run]
        assert set(must) <= with_option, preset
        assert len(with_option) >= 0.8 * len(p.jobs)
        hard_slo = [j for j in p.jobs if j.latency_slo_ms is not None and j.latency_per_ms is None]
        assert hard_slo, preset
    assert any(j.must_run for j in generate("city", seed=4).jobs)


def test_archetype_properties() -> None:
    p = generate("city", seed=11, forecast_error=0.0)
    nodes = {n.node_id: n for n in p.nodes}
    kinds = {n.kind for n in p.nodes}
    assert kinds == {"home", "streetlight", "regional_dc", "ev_site_pod", "vehicle", "offgrid"}
    hours = _local_hours(p)
    T = p.horizon.slots
    for nid, n in nodes.items():
        s = p.node_series[nid]
        if n.kind == "offgrid":
            assert n.grid_kw == 0 and s.headroom_kw == [0.0] * T
            assert n.can_sleep  # with no grid it must be able to power down at night
            # high latency: its explicit RTT beats no Berlin city node
            worst_city = max(p.scenario.latency.base_ms + 0.015 * 30, 3.0)
            assert min(p.latency_ms[nid].values()) > worst_city + 30
        if n.kind == "vehicle":
            av = np.array(s.available, dtype=bool)
            assert 0 < av.sum() < T
            overnight = av[hours < 5].all() and not av[(hours > 11) & (hours < 15)].any()
            office = av[(hours > 11) & (hours < 15)].all() and not av[hours < 5].any()
            assert overnight != office, nid
            # one parking window: one on-block (office) or one wrapped block (overnight)
            changes = int(np.abs(np.diff(av.astype(int))).sum())
            assert changes == (2 if overnight or office else -1)
        if n.kind == "streetlight":
            pv = np.array(s.pv_kw)
            assert pv.max() > 0
            assert 11.0 <= hours[int(np.argmax(pv))] <= 15.5  # solar noon in Berlin ~13:10 CEST
            assert n.grid_kw <= 0.1 and n.gpus == 1
        if n.kind == "regional_dc":
            assert n.power_factor >= 1.2 and n.demand_charge_per_kw > 0 and n.grid_kw == 10_000
        if n.kind == "home":
            assert n.battery_kwh == 13.5 and n.soc_min == 0.2 and n.feeder is not None
            assert max(s.headroom_kw) <= n.grid_kw  # type: ignore[type-var]


def test_ev_pod_headroom_dips_when_cars_charge() -> None:
    dips = 0
    for seed in range(4):
        p = generate("city", seed=seed)
        hours = _local_hours(p)
        for n in p.nodes:
            if n.kind != "ev_site_pod":
                continue
            head = np.array(p.node_series[n.node_id].headroom_kw, dtype=float)
            night = head[(hours >= 1) & (hours < 5)]
            busy = head[(hours >= 11) & (hours < 19)]
            assert head.max() <= n.grid_kw and head.min() >= 0
            assert night.mean() > busy.mean()  # charging sessions peak in the day
            dips += int(busy.min() < n.grid_kw - 300)  # at least a couple of cars at once
    assert dips >= 4


def test_pv_zero_at_night_and_below_rating() -> None:
    start = pd.Timestamp("2026-06-15T00:00:00+02:00")
    kwp = 7.0
    pv = pv_ac_kw(52.52, 13.40, kwp, 35.0, 180.0, start, 96, 15)
    hours = (np.arange(96) + 0.5) / 4
    # Berlin mid-June: sunrise ~04:43, sunset ~21:33 CEST
    assert (pv[(hours < 4.5) | (hours > 21.75)] == 0).all()
    assert (pv >= 0).all() and pv.max() <= kwp
    # clear-sky June noon on a 35° south plane: ~0.8-1.0 kW per kWp in, 14 % losses, warm cells
    assert 0.6 * kwp < pv.max() < 0.95 * kwp
    # forecast error keeps the bounds
    noisy = pv_ac_kw(52.52, 13.40, kwp, 35.0, 180.0, start, 96, 15, forecast_error=0.5,
                     rng=np.random.default_rng(0))
    assert (noisy[(hours < 4.5) | (hours > 21.75)] == 0).all() and noisy.max() <= kwp
    assert not np.allclose(noisy, pv)


def test_weather_file_scales_pv() -> None:
    names = [f.name for f in shipped_weather_files()]
    assert "723170TYA.CSV" in names
    clear = generate("tiny", seed=0, forecast_error=0.0)
    cloudy = generate("tiny", seed=0, forecast_error=0.0, weather="723170TYA.CSV")
    tot_clear = sum(sum(s.pv_kw or []) for s in clear.node_series.values())
    tot_w = sum(sum(s.pv_kw or []) for s in cloudy.node_series.values())
    assert tot_w != tot_clear and tot_w <= tot_clear * 1.2
    for n in cloudy.nodes:
        pv = cloudy.node_series[n.node_id].pv_kw or []
        assert min(pv) >= 0
    with pytest.raises(ValueError, match="not found"):
        generate("tiny", weather="nowhere.csv")


def test_user_weather_csv(tmp_path: Path) -> None:
    times = pd.date_range("2026-06-16T00:00:00+02:00", periods=24, freq="1h")
    f = tmp_path / "w.csv"
    pd.DataFrame({"time": [t.isoformat() for t in times], "ghi": [0.0] * 24,
                  "temp_air": [15.0] * 24}).to_csv(f, index=False)
    dark = generate("tiny", seed=0, forecast_error=0.0, weather=str(f))
    # GHI 0 all day: clearness 0 wherever the sun is up, so no PV (homes, streetlights)
    for n in dark.nodes:
        if n.kind in ("home", "streetlight"):
            assert max(dark.node_series[n.node_id].pv_kw or [0.0]) < 0.05


def test_prices_are_the_shipped_day_ahead_series() -> None:
    price_mwh, carbon = day_ahead_week()
    assert len(price_mwh) == 168 and 0 <= carbon.min() and carbon.max() < 1000
    p = generate("neighborhood", seed=0, day=2)  # Wednesday 2018-06-13 of the shipped week
    tf = p.tariffs["home_dynamic"]
    # 15-minute slots: slot 4h+k lies in hour h of day 2
    for h in (0, 7, 13, 19):
        assert tf.price[4 * h + 1] == pytest.approx(price_mwh[48 + h] / 1000
                                                    + HOUSEHOLD_SURCHARGE, abs=1e-5)
        assert tf.carbon_g_per_kwh[4 * h + 1] == pytest.approx(carbon[48 + h])
    assert p.horizon.start.isoformat() == "2026-06-17T00:00:00+02:00"


@pytest.mark.parametrize("name", ["neighborhood", "city"])
def test_shipped_bundles_validate_and_solve(name: str) -> None:
    p = read_bundle(DATASETS / name)
    assert len(p.nodes) <= 30 and len(p.jobs) <= 150 and p.horizon.slots == 96
    solvers = ["baseline"] + (["greedy"] if "greedy" in REGISTRY else [])
    for s in solvers:
        r = solve(p, s, time_limit=2, seed=0)
        assert r.status.value in ("feasible", "optimal"), (s, r.message)
        assert math.isfinite(r.objective or math.nan)


def test_cli_generate(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["generate", "--preset", "small", "--nodes", "4", "--jobs", "9",
                              "--slots", "24", "--seed", "3", "--out", str(tmp_path / "g")])
    assert res.exit_code == 0, res.output
    p = read_bundle(tmp_path / "g")
    assert (len(p.nodes), len(p.jobs), p.horizon.slots) == (4, 9, 24)
    assert p.model_dump() == generate("small", 4, 9, 24, seed=3).model_dump()
    res = runner.invoke(app, ["generate", "--preset", "nope", "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "unknown preset" in res.output
