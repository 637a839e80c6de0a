"""The scenario generator's forecast-error model (issue 19, beyond SPEC v1): PV per weather
cell correlated by distance, price errors that are the shipped week's real day-to-day
changes, household-load errors carried into home and feeder headroom.

Expected values are recomputed by hand from the shipped series and the formulas of
``optisched.generate.scenarios``.
"""

from __future__ import annotations

import numpy as np
import pytest

from optisched.generate import generate
from optisched.generate.archetypes import FEEDER_SHARE_KW
from optisched.generate.data import day_ahead_week
from optisched.generate.prices import HOUSEHOLD_SURCHARGE
from optisched.generate.scenarios import (
    CELL_RADIUS_KM,
    draw_outcome,
    draw_scenarios,
    weather_cells,
)
from optisched.geo import great_circle_km


def test_weather_cells_group_nodes_by_district() -> None:
    base = generate("city", seed=1)
    names, cell_of, dist = weather_cells(base)
    by_id = {n.node_id: n for n in base.nodes}
    for nid, c in cell_of.items():
        n = by_id[nid]
        centre = base.regions[n.region] if n.region in base.regions else None
        near = centre is not None and great_circle_km(n.lat, n.lon, centre.lat,
                                                      centre.lon) <= CELL_RADIUS_KM
        # a node near its district's centre is in that district's cell, any other node
        # (regional sites 25-110 km out, the off-grid node) in a cell of its own
        assert names[c] == (n.region if near else nid)
    assert "regional_dc01" in names and "offgrid01" in names
    assert np.allclose(dist, dist.T) and np.allclose(np.diag(dist), 0.0)
    # two homes of one district share the cell; the cell count is below the node count
    assert len(names) < len(base.nodes)


def _midday_clearness(draws: int, seed: int) -> tuple[dict[str, int], np.ndarray, list[str]]:
    """Clearness ``pv'/pv`` at the slot of 12:00-12:15 of every node with PV, per draw."""
    base = generate("city", seed=1)
    _, cell_of, _ = weather_cells(base)
    nodes = [n for n, s in base.node_series.items() if s.pv_kw and s.pv_kw[48] > 0.05]
    rng = np.random.default_rng(seed)
    k = []
    for _ in range(draws):
        series = draw_outcome(base, rng)[0]
        k.append([series[n].pv_kw[48] / base.node_series[n].pv_kw[48] for n in nodes])
    return cell_of, np.array(k), nodes


def test_pv_errors_are_shared_within_a_cell_and_correlated_by_distance() -> None:
    cell_of, k, nodes = _midday_clearness(300, seed=7)
    base = generate("city", seed=1)
    by_id = {n.node_id: n for n in base.nodes}
    same = [(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1:]
            if cell_of[a] == cell_of[b]]
    assert same, "the city has two PV nodes in one district"
    for a, b in same:  # one clearness factor per cell (up to the 4-decimal rounding of PV)
        ia, ib = nodes.index(a), nodes.index(b)
        assert np.allclose(k[:, ia], k[:, ib], atol=2e-3)
    corr = np.corrcoef(k.T)
    pairs = []
    for i, a in enumerate(nodes):
        for j in range(i + 1, len(nodes)):
            b = nodes[j]
            if cell_of[a] != cell_of[b]:
                na, nb = by_id[a], by_id[b]
                pairs.append((float(great_circle_km(na.lat, na.lon, nb.lat, nb.lon)),
                              float(corr[i, j])))
    pairs.sort()
    near, far = pairs[: len(pairs) // 4], pairs[-len(pairs) // 4:]
    # different cells are not one factor, and nearer cells move together more than far ones
    assert max(c for _, c in pairs) < 0.99
    assert np.mean([c for _, c in near]) > np.mean([c for _, c in far]) + 0.05
    assert min(c for _, c in pairs) > -0.2
    assert (k >= 0).all() and (k <= 1 + 1e-6).all()


def test_price_errors_are_real_day_to_day_changes() -> None:
    base = generate("neighborhood", seed=1)
    fc = np.array(base.tariffs["home_dynamic"].price)
    price, carbon = day_ahead_week()  # hourly, 168 values from Monday 2018-06-11
    days = price.reshape(7, 24) / 1000.0  # €/kWh
    cdays = carbon.reshape(7, 24)
    hour = np.arange(96) // 4  # 15-minute slots from local midnight
    changes = [(days[d + 1] - days[d])[hour] for d in range(6)]
    cchanges = [(cdays[d + 1] - cdays[d])[hour] for d in range(6)]
    # forecast = the generated day's day-ahead price plus the household surcharge
    assert np.all(fc - HOUSEHOLD_SURCHARGE > -0.01)
    rng = np.random.default_rng(3)
    signs = set()
    for _ in range(40):
        _, tariffs, _ = draw_outcome(base, rng)
        err = np.array(tariffs["home_dynamic"].price) - fc
        cerr = np.array(tariffs["home_dynamic"].carbon_g_per_kwh) - np.array(
            base.tariffs["home_dynamic"].carbon_g_per_kwh)
        hit = [(d, sg) for d in range(6) for sg in (1.0, -1.0)
               if np.allclose(err, sg * changes[d], atol=2e-5)]
        assert len(hit) >= 1, "the error is ± one of the week's six day-to-day changes"
        d, sg = hit[0]
        signs.add(sg)
        floor = -np.array(base.tariffs["home_dynamic"].carbon_g_per_kwh)  # clipped at 0
        assert np.allclose(cerr, np.maximum(sg * cchanges[d], floor), atol=1e-6)
        assert tariffs["home_dynamic"].export_price == base.tariffs["home_dynamic"].export_price
    assert signs == {1.0, -1.0}
    # the Sunday trough is in the data: Saturday→Sunday at 14:00 falls by 32.5 €/MWh
    assert changes[5][56] == pytest.approx((0.1 - 32.6) / 1000.0, abs=2e-4)


def test_headroom_errors_move_homes_and_their_feeder_together() -> None:
    base = generate("neighborhood", seed=1)
    p, _ = draw_scenarios(base, 3, seed=5)
    grid = {n.node_id: n.grid_kw for n in base.nodes}
    homes = [n.node_id for n in base.nodes if n.kind == "home"]
    assert p.issues() == []
    (fname, forecast), = base.feeders.items()
    for _, _, v in p.scenario_problems():
        change = np.zeros(base.horizon.slots)
        moved = False
        for h in homes:
            old = grid[h] - np.array(base.node_series[h].headroom_kw)
            new = grid[h] - np.array(v.node_series[h].headroom_kw)
            assert (new >= -1e-9).all() and (new <= grid[h] + 1e-9).all()
            moved |= not np.allclose(new, old)
            # the feeder's share of a home: FEEDER_SHARE_KW minus its load, at least 0
            change += (np.clip(FEEDER_SHARE_KW - new, 0, None)
                       - np.clip(FEEDER_SHARE_KW - old, 0, None))
        assert moved
        want = np.clip(np.array(forecast.headroom_kw) + change, 0, None)
        assert np.allclose(v.feeders[fname].headroom_kw, want, atol=homes.__len__() * 1e-4)


def test_feeders_only_in_scenarios_validate_and_a_missing_one_is_located() -> None:
    base = generate("neighborhood", seed=1)
    p, _ = draw_scenarios(base, 2, seed=0)
    assert not p.feeders and all(sc.feeders for sc in p.scenarios.values())
    assert p.issues() == []
    sid = next(iter(p.scenarios))
    broken = p.model_copy(update={"scenarios": {
        **p.scenarios, sid: p.scenarios[sid].model_copy(update={"feeders": {}})}})
    bad = broken.issues()
    assert bad and all(i.table == "nodes.csv" and i.column == "feeder" and i.scenario == sid
                       for i in bad)
