"""Report, figures and live progress: sections, valid PNGs, hand-checked numbers."""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import sys
import textwrap
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle, StepPatch
from rich.console import Console
from typer.testing import CliRunner

import optisched
from optisched import viz
from optisched.cli import EXIT_INFEASIBLE, EXIT_OK, app
from optisched.diff import node_energy_delta
from optisched.domain import Horizon, Job, Node, Problem, Scenario, Tariff
from optisched.evaluate import evaluate, job_load
from optisched.index import compile_index
from optisched.plan import COST_TERMS, Plan, Status, write_plan
from optisched.progress import ProgressDisplay, ProgressState, StepProgress
from optisched.report import (
    FIGURES,
    REPORT_STEPS,
    SECTIONS,
    Comparison,
    fmt_number,
    render_report,
    report_timezone,
)
from optisched.solvers import REGISTRY, SolverSpec
from optisched.solvers.base import Progress, idle_flows, plan_from_placement

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny() -> tuple[Problem, Plan]:
    problem = optisched.read_bundle(Path(__file__).resolve().parents[1] / "datasets" / "tiny")
    plan = optisched.solve(problem, "baseline")
    assert plan.status.has_plan
    return problem, plan


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk (PNG spec: first chunk after the signature)."""
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return int(w), int(h)


def _check_png(data: bytes) -> None:
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 3000  # a drawn figure, not an empty canvas
    w, h = _png_size(data)
    assert w >= 300 and h >= 100
    assert data.rstrip()[-8:-4] == b"IEND"


# --------------------------------------------------------------------------- report


def test_static_report_has_every_section_and_valid_images(tiny: tuple[Problem, Plan]) -> None:
    problem, plan = tiny
    rep = render_report(problem, plan, top=2, interactive=False)
    page = rep.html
    for sid, _ in SECTIONS:
        assert page.count(f'<section id="{sid}">') == 1, sid
    imgs = re.findall(r'<img id="fig-([a-z]+)"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"',
                      page)
    assert sorted(name for name, _ in imgs) == sorted(FIGURES)
    for name, b64 in imgs:
        data = base64.b64decode(b64, validate=True)
        _check_png(data)
        assert data == rep.images[name]
    # self-contained: nothing fetched from elsewhere, no plotly bundle in a static page
    assert "<link" not in page and not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script src" not in page and "plotly.js v" not in page
    # the node table lists every node and the job table every job
    for n in problem.nodes:
        assert f"<td>{n.node_id}</td>" in page
    for j in problem.jobs:
        assert f"<td>{j.job_id}</td>" in page


def _report_data(page: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert m is not None
    return dict(json.loads(m.group(1).replace("<\\/", "</")))


def test_interactive_report_inlines_plotly_once_and_draws_every_figure(
        tiny: tuple[Problem, Plan]) -> None:
    problem, plan = tiny
    rep = render_report(problem, plan)
    page = rep.html
    assert rep.images == {}  # no matplotlib work for an interactive page without --png
    for sid, _ in SECTIONS:
        assert page.count(f'<section id="{sid}">') == 1, sid
    assert page.count("* plotly.js v") == 1  # the bundle, inlined exactly once
    outside = re.sub(r"<script>/\*\*\s*\* plotly\.js.*?</script>", "", page, flags=re.S)
    assert "plotly.js" not in outside
    assert "<link" not in outside and not re.search(r'(src|href)="(https?:)?//', outside)
    assert "<script src" not in page
    data = _report_data(page)
    figs = data["figs"]
    for fid in ("fig-costs", "fig-map", "fig-fleet", "fig-busy", "fig-heat", "fig-feeders",
                "fig-prices"):
        assert fid in figs, fid
    for fid in figs:
        assert f'<div class="fig" id="{fid}"></div>' in page
    for fid in ("nv-power", "nv-battery", "nv-jobs"):
        assert f'id="{fid}"' in page
    assert [n["id"] for n in data["nodes"]] == [n.node_id for n in problem.nodes]
    # the x axis is local wall-clock time of the scenario (tiny starts 08:00 +00:00, hourly)
    assert data["x"][0] == "2026-06-01 08:00" and data["x"][-1] == "2026-06-01 16:00"
    assert data["zone"] == "UTC+00:00"
    # every node and job in the tables, no exponent notation anywhere in a cell
    for n in problem.nodes:
        assert f"<td>{n.node_id}</td>" in page
    for j in problem.jobs:
        assert f"<td>{j.job_id}</td>" in page
    cells = re.findall(r'<td class="n"[^>]*>([^<]*)</td>', page)
    assert cells and not [c for c in cells if re.search(r"\d[eE][-+]?\d", c)]


def test_report_times_are_in_the_scenario_zone(tiny_dir: Path) -> None:
    problem = optisched.read_bundle(tiny_dir)
    shifted = problem.model_copy(deep=True)
    shifted.scenario.horizon.start = problem.horizon.start.astimezone(
        timezone(timedelta(hours=2)))  # the same instant, written as +02:00
    assert report_timezone(shifted).utcoffset(None) == timedelta(hours=2)
    plan = optisched.solve(shifted, "baseline")
    page = render_report(shifted, plan).html
    data = _report_data(page)
    assert data["x"][0] == "2026-06-01 10:00" and data["zone"] == "UTC+02:00"
    # j5 is pinned at 07:00 UTC (= 09:00 +02:00), one hour before the horizon
    row = re.search(r"<tr><td>j5</td>(.*?)</tr>", page)
    assert row is not None and ">09:00<" in row.group(1) and ">11:00<" in row.group(1)


def test_report_flags_a_plan_the_evaluator_rejects(tiny: tuple[Problem, Plan]) -> None:
    problem, plan = tiny
    bad = Plan(**{**plan.__dict__, "flows": plan.flows.copy() if plan.flows else None})
    assert bad.flows is not None
    bad.flows.grid_import[0, 0] += 1.0  # breaks the power balance of home1 in slot 0
    page = render_report(problem, bad, top=1).html
    assert "INFEASIBLE" in page and "power_balance" in page and "home1 slot 0" in page
    assert "differs from the evaluator" in page  # summary objective no longer matches


def test_report_cli_writes_html_and_pngs(tiny_dir: Path, tmp_path: Path) -> None:
    plan_dir = tmp_path / "P"
    r = runner.invoke(app, ["plan", str(tiny_dir), "--out", str(plan_dir), "-s", "baseline",
                            "--quiet"])
    assert r.exit_code == EXIT_OK, r.output
    html = tmp_path / "out" / "report.html"
    pngs = tmp_path / "png"
    r = runner.invoke(app, ["report", str(tiny_dir), str(plan_dir), "--out", str(html),
                            "--png", str(pngs), "--top", "1"])
    assert r.exit_code == EXIT_OK, r.output
    page = html.read_text(encoding="utf-8")
    assert all(f'id="{sid}"' in page for sid, _ in SECTIONS)
    assert "report: " in r.output and " steps in " in r.output  # the progress summary line
    assert 'id="compare-costs"' in page and "baseline (baseline)" in page  # default comparison
    assert sorted(p.name for p in pngs.iterdir()) == sorted(f"{f}.png" for f in FIGURES)
    for p in pngs.iterdir():
        _check_png(p.read_bytes())
    # atomic write: no temporary file left next to the report
    assert [p.name for p in html.parent.iterdir()] == ["report.html"]


def test_report_cli_refuses_plan_without_solution(tiny_dir: Path, tiny: tuple[Problem, Plan],
                                                  tmp_path: Path) -> None:
    problem, _ = tiny
    empty = Plan.empty(problem, "baseline", Status.INFEASIBLE, "made up")
    write_plan(problem, empty, tmp_path / "P")
    r = runner.invoke(app, ["report", str(tiny_dir), str(tmp_path / "P"), "--out",
                            str(tmp_path / "r.html")])
    assert r.exit_code == EXIT_INFEASIBLE
    assert "infeasible" in r.output and not (tmp_path / "r.html").exists()


# --------------------------------------------------------------------------- numbers


def test_node_costs_add_up_to_the_evaluator(tiny: tuple[Problem, Plan]) -> None:
    problem, plan = tiny
    index = compile_index(problem)
    nc = viz.node_costs(problem, plan, index)
    ev = evaluate(problem, plan, index)
    assert nc.total.sum() + nc.drop == pytest.approx(ev.objective, rel=1e-9)
    for k in viz.NODE_TERMS:
        assert nc.terms[k].sum() == pytest.approx(ev.costs[k], rel=1e-9, abs=1e-12)
    r = index.node_pos["regional1"]
    # regional1: demand 0.5/kW x peak import. The baseline runs j3 (2.0 kW x power_factor
    # 1.3) alone there in slot 2 with idle 1.0 kW and no PV: peak 3.6 kW -> 1.8.
    assert nc.peak_import_kw[r] == pytest.approx(3.6)
    assert nc.terms["demand"][r] == pytest.approx(1.8)
    # j2 runs on regional1: latency 25 ms (latency.csv) vs SLO 10 ms at 0.01/ms -> 0.15
    assert plan.node[index.job_pos["j2"]] == r
    assert nc.terms["latency"][r] == pytest.approx(0.15)
    assert viz.top_nodes(problem, plan, 1, index) == [int(np.argmax(nc.total))]


def _one_node_problem(drop_penalty: float, long_job_min: float) -> Problem:
    """One 1-GPU node, flat price 0.2/kWh, 4 one-hour slots; job b (1 kW, 1 h) may be dropped."""
    return Problem(
        scenario=Scenario(horizon=Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60,
                                          slots=4)),
        nodes=[Node(node_id="n1", gpus=1)],
        jobs=[Job(job_id="a", gpus=1, duration_min=long_job_min, power_kw=2.0),
              Job(job_id="b", gpus=1, duration_min=60, power_kw=1.0, drop_penalty=drop_penalty)],
        tariffs={"default": Tariff.constant(4, price=0.2)},
    )


def _plan_a_only(problem: Problem) -> Plan:
    index = compile_index(problem)
    node = np.array([0, -1])
    start = np.array([0, 0])
    on = np.ones((1, 4), dtype=bool)
    flows = idle_flows(index, on, job_load(index, node, start))
    return plan_from_placement(problem, index, "hand", Status.FEASIBLE, node, start, flows)


@pytest.mark.parametrize(("penalty", "cheaper"), [(0.1, True), (0.5, False)])
def test_dropped_job_reason_compares_penalty_and_estimate(penalty: float, cheaper: bool) -> None:
    problem = _one_node_problem(penalty, long_job_min=120)
    plan = _plan_a_only(problem)
    assert evaluate(problem, plan).feasible
    out = {o.job_id: o for o in viz.job_outcomes(problem, plan)}
    b = out["b"]
    # a occupies slots 0-1; b fits in slot 2 or 3: 1 kW x 1 h x 0.2/kWh = 0.2
    assert b.status == "dropped" and b.drop_cost == penalty
    assert b.run_estimate == pytest.approx(0.2)
    assert b.reason.startswith("cheaper to drop") is cheaper
    assert out["a"].reason == "on time, within SLO" and out["a"].paid == 0.0


def test_slo_summary_draws_what_jobs_paid() -> None:
    problem = _one_node_problem(0.1, long_job_min=120)
    fig = viz.slo_summary(problem, _plan_a_only(problem))
    bars = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    assert len(bars) == 1 and bars[0].get_width() == pytest.approx(0.1)  # b's drop penalty
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["b (dropped)"]


def test_dropped_job_without_free_capacity() -> None:
    problem = _one_node_problem(0.1, long_job_min=240)  # a fills all four slots
    out = {o.job_id: o for o in viz.job_outcomes(problem, _plan_a_only(problem))}
    assert out["b"].run_estimate is None
    assert "no eligible (node, start) has free resources" in out["b"].reason


# --------------------------------------------------------------------------- figures


def test_cost_breakdown_bars_are_the_evaluator_terms(tiny: tuple[Problem, Plan]) -> None:
    problem, plan = tiny
    fig = viz.cost_breakdown(problem, plan)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    bars = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    assert len(bars) == len(COST_TERMS)
    ev = evaluate(problem, plan)
    for bar, k in zip(bars, COST_TERMS, strict=True):
        want = -ev.costs[k] if k == "export_revenue" else ev.costs[k]
        assert bar.get_height() == pytest.approx(want)


def test_battery_figure_has_reserve_and_max(tiny: tuple[Problem, Plan]) -> None:
    problem, plan = tiny
    fig = viz.battery_soc(problem, plan, node="home1")
    (ax,) = fig.axes
    lines = [a for a in ax.get_children() if isinstance(a, Line2D) and a.get_label()[0] != "_"]
    by = {ln.get_label(): ln for ln in lines}
    assert set(by) == {"state of charge", "reserve (soc_min)", "max (soc_max)", "initial"}
    # home1: 10 kWh, soc_init 0.5, soc_min 0.2, soc_max 1.0 (datasets/tiny/nodes.csv)
    soc = np.asarray(by["state of charge"].get_ydata())
    assert soc.shape == (problem.horizon.slots + 1,) and soc[0] == pytest.approx(5.0)
    assert np.asarray(by["reserve (soc_min)"].get_ydata())[0] == pytest.approx(2.0)
    assert np.asarray(by["max (soc_max)"].get_ydata())[0] == pytest.approx(10.0)
    # regional1 has no battery: an axes saying so
    fig = viz.battery_soc(problem, plan, node="regional1")
    assert any("no battery" in t.get_text() for t in fig.axes[0].texts)


def test_feeder_figure_sums_member_nodes(tiny: tuple[Problem, Plan]) -> None:
    problem, plan = tiny
    fig = viz.feeder_load(problem, plan)
    (ax,) = fig.axes  # one feeder: f1 = home1 + street1
    steps = {p.get_label(): p for p in ax.patches if isinstance(p, StepPatch)}
    f = plan.flows
    assert f is not None
    idx = compile_index(problem)
    members = [idx.node_pos["home1"], idx.node_pos["street1"]]
    net = (f.grid_import - f.grid_export)[members].sum(axis=0)
    np.testing.assert_allclose(steps["net import"].get_data().values, net)
    np.testing.assert_allclose(steps["feeder headroom"].get_data().values, 2.5)
    assert "excess" not in steps  # the evaluator accepts the plan


def test_energy_stack_and_grids(tiny: tuple[Problem, Plan]) -> None:
    problem, plan = tiny
    f = plan.flows
    assert f is not None
    n = compile_index(problem).node_pos["home1"]
    fig = viz.energy_stack(problem, plan, node="home1")
    (ax,) = fig.axes
    steps = [p for p in ax.patches if isinstance(p, StepPatch)]
    nonzero = sum(bool(np.any(a[n] > 0)) for a in (f.pv_used, f.discharge, f.grid_import,
                                                    f.charge, f.grid_export))
    assert len(steps) == nonzero + 1  # one per non-zero flow, plus the load line
    load = next(p for p in steps if p.get_label() == "load")
    np.testing.assert_allclose(load.get_data().values, f.load[n])
    assert len(viz.per_node_figure("energy", problem, plan, nodes=[None, "home1", 2]).axes) == 3
    # price figure: a twin carbon axis per row
    assert len(viz.per_node_figure("prices", problem, plan, nodes=[None, "home1"]).axes) == 4
    fig = viz.gantt(problem, plan)
    labels = sorted(t.get_text() for t in fig.axes[0].texts)
    assert labels == sorted(j.job_id for j in problem.jobs)  # every job runs in the baseline
    assert any(isinstance(c, PolyCollection) for c in fig.axes[0].collections)
    with pytest.raises(ValueError, match="unknown node"):
        viz.energy_stack(problem, plan, node="nope")


# --------------------------------------------------------------------------- progress


def _fake_events() -> list[Progress]:
    return [Progress(0.5, 120.0, None, "construction"), Progress(1.0, 110.0, 100.0, "round 1"),
            Progress(1.5, 115.0, 105.0, "")]


def test_progress_state_keeps_best_incumbent_and_bound() -> None:
    s = ProgressState()
    for p in _fake_events():
        s.update(p)
    assert (s.reports, s.objective, s.bound, s.message) == (3, 110.0, 105.0, "round 1")
    assert s.gap == pytest.approx((110.0 - 105.0) / 110.0)


def test_progress_display_renders_to_a_console() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100, color_system=None)
    with ProgressDisplay(console, solver="fake") as show:
        for p in _fake_events():
            show(p)
        live = Console(record=True, width=100, file=io.StringIO())
        live.print(show.render())
        panel = live.export_text()
    assert "solving with fake" in panel and "4.55 %" in panel and "110" in panel
    assert "round 1" in panel
    assert "fake: 3 progress reports, best 110, bound 105, gap 4.55 %" in buf.getvalue()
    # no report, not a terminal: nothing at all
    quiet = io.StringIO()
    with ProgressDisplay(Console(file=quiet, force_terminal=False), solver="x"):
        pass
    assert quiet.getvalue() == ""


_FAKE_SOLVER = textwrap.dedent('''
    from optisched.solvers.baseline import solve_baseline

    def solve_fake(problem, index, options):
        plan = solve_baseline(problem, index, options)
        options.report(0.0, 9.0, 8.0, "fake round")
        return plan
''')


def test_plan_cli_shows_progress_unless_quiet(tiny_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fake_progress_solver.py").write_text(_FAKE_SOLVER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fake_progress_solver", raising=False)
    monkeypatch.setitem(REGISTRY, "fake", SolverSpec("fake", "fake_progress_solver",
                                                     "solve_fake", "test"))
    r = runner.invoke(app, ["plan", str(tiny_dir), "--out", str(tmp_path / "A"), "-s", "fake"])
    assert r.exit_code == EXIT_OK, r.output
    assert "fake: 1 progress report, best 9, bound 8, gap 11.11 %" in r.output
    r = runner.invoke(app, ["plan", str(tiny_dir), "--out", str(tmp_path / "B"), "-s", "fake",
                            "--quiet"])
    assert r.exit_code == EXIT_OK and "progress report" not in r.output
    r = runner.invoke(app, ["plan", str(tiny_dir), "--out", str(tmp_path / "C"), "-s", "fake",
                            "--json"])
    assert r.exit_code == EXIT_OK and "progress report" not in r.output


# --------------------------------------------------------------------------- report v2


@pytest.mark.parametrize(("value", "text"), [
    (8.32667e-16, "0"), (-3e-9, "0"), (0.0, "0"), (1234.56, "1,235"), (-20000.4, "-20,000"),
    (12.345, "12.3"), (1.5, "1.50"), (0.0123, "0.0123"), (0.400000, "0.4"), (None, "–"),
    (float("nan"), "–"), (float("inf"), "–"),
])
def test_numbers_are_formatted_for_people(value: float | None, text: str) -> None:
    assert fmt_number(value) == text


def test_job_costs_add_up_and_follow_the_attribution_rule(tiny: tuple[Problem, Plan]) -> None:
    problem, plan = tiny
    index = compile_index(problem)
    jc = viz.job_costs(problem, plan, index)
    ev = evaluate(problem, plan, index)
    assert jc.total.sum() + jc.overhead.sum() == pytest.approx(ev.objective, rel=1e-9)
    r = index.node_pos["regional1"]
    j3, j5 = index.job_pos["j3"], index.job_pos["j5"]
    # regional1 has speed 2: j3 (2.0 kW, 2 h) runs 1 one-hour slot at power_factor 1.3 =
    # 2.6 kWh; j5 (1.0 kW, 4 h -> 2 slots) is pinned at 07:00, one slot before the horizon:
    # only its slot in the horizon counts, 1.3 kW x 1 h = 1.3 kWh
    assert plan.node[j3] == r and plan.node[j5] == r
    assert jc.energy_kwh[j3] == pytest.approx(2.6)
    assert jc.energy_kwh[j5] == pytest.approx(1.3)
    nc = viz.node_costs(problem, plan, index)
    f = plan.flows
    assert f is not None
    rate = ((nc.terms["energy"][r] + nc.terms["carbon"][r] + nc.terms["degradation"][r])
            / (index.dt * f.load[r].sum()))
    assert jc.rate[r] == pytest.approx(rate)
    assert jc.energy_cost[j3] == pytest.approx(2.6 * rate)
    assert jc.latency[index.job_pos["j2"]] == pytest.approx(0.15)  # 25 ms vs SLO 10 at 0.01/ms
    assert (jc.overhead[[index.node_pos["home1"]]] <= nc.total[index.node_pos["home1"]] + 1e-9
            ).all()


def test_highlights_pick_nodes_that_matter(tiny: tuple[Problem, Plan]) -> None:
    problem, plan = tiny
    index = compile_index(problem)
    picks = viz.highlight_nodes(problem, plan, index, k=10)
    assert set(picks) == {key for key, _ in viz.HIGHLIGHTS}
    nc = viz.node_costs(problem, plan, index)
    f = plan.flows
    assert f is not None
    busy = viz.gpu_hours(index, plan)
    assert picks["busiest"] == sorted((n for n in range(index.N) if nc.jobs[n] > 0),
                                      key=lambda n: (-busy[n], index.node_ids[n]))
    # battery users have a battery and discharged something; nobody without jobs is "busy"
    assert all(index.battery_kwh[n] > 0 and f.discharge[n].sum() > 0 for n in picks["battery"])
    assert all(nc.jobs[n] > 0 for n in picks["busiest"])
    assert picks["expensive"][0] == int(np.argmax(nc.total))


def test_report_compares_with_another_plan_through_diff(tiny: tuple[Problem, Plan]) -> None:
    problem, plan = tiny
    other = optisched.solve(problem, "greedy", time_limit=1, seed=0)
    page = render_report(problem, plan, compare=Comparison(other, "greedy-run")).html
    assert 'id="compare-costs"' in page and "this − greedy-run" in page
    d = node_energy_delta(problem, other, plan)
    f_a, f_b = other.flows, plan.flows
    assert f_a is not None and f_b is not None
    np.testing.assert_allclose(d.energy_delta, (f_b.load.sum(axis=1) - f_a.load.sum(axis=1))
                               * problem.horizon.dt_hours)
    assert d.jobs_a.sum() == int((other.node >= 0).sum())
    none = render_report(problem, plan).html
    assert "No comparison" in none


def test_slo_section_says_no_violations_instead_of_an_empty_box() -> None:
    problem = _one_node_problem(5.0, long_job_min=60)
    index = compile_index(problem)
    node, start = np.array([0, 0]), np.array([0, 1])
    on = np.ones((1, 4), dtype=bool)
    flows = idle_flows(index, on, job_load(index, node, start))
    plan = plan_from_placement(problem, index, "hand", Status.FEASIBLE, node, start, flows)
    assert evaluate(problem, plan).feasible
    page = render_report(problem, plan).html
    assert 'id="slo-none"' in page and "No violations" in page
    assert "fig-slo" not in _report_data(page)["figs"]
    paid = render_report(problem, _plan_a_only(_one_node_problem(0.1, 120))).html
    assert "fig-slo" in _report_data(paid)["figs"]


def test_report_cli_compare_options(tiny_dir: Path, tmp_path: Path) -> None:
    for name, solver in (("A", "baseline"), ("B", "greedy")):
        r = runner.invoke(app, ["plan", str(tiny_dir), "--out", str(tmp_path / name), "-s",
                                solver, "--quiet", "--time-limit", "1"])
        assert r.exit_code == EXIT_OK, r.output
    html = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(tiny_dir), str(tmp_path / "B"), "--out", str(html),
                            "--compare", str(tmp_path / "A"), "-q"])
    assert r.exit_code == EXIT_OK, r.output
    page = html.read_text(encoding="utf-8")
    assert f"this − {tmp_path / 'A'}" in page and "steps in" not in r.output
    r = runner.invoke(app, ["report", str(tiny_dir), str(tmp_path / "B"), "--out", str(html),
                            "--no-compare", "--static", "-q"])
    assert r.exit_code == EXIT_OK, r.output
    page = html.read_text(encoding="utf-8")
    assert "No comparison" in page and "plotly.js v" not in page and "<img id=" in page
    r = runner.invoke(app, ["report", str(tiny_dir), str(tmp_path / "B"), "--out", str(html),
                            "--no-compare", "--compare", str(tmp_path / "A")])
    assert r.exit_code == 1 and "exclude each other" in r.output


def test_step_progress_counts_steps_and_prints_a_summary() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=100)
    with StepProgress(console, total=len(REPORT_STEPS), title="report") as step:
        render_report(*_tiny_pair(), progress=step)
    assert [name for name, _ in step.durations()] == list(REPORT_STEPS)
    assert all(d >= 0 for _, d in step.durations())
    assert buf.getvalue().startswith(f"report: {len(REPORT_STEPS)} steps in ")


def _tiny_pair() -> tuple[Problem, Plan]:
    problem = optisched.read_bundle(Path(__file__).resolve().parents[1] / "datasets" / "tiny")
    return problem, optisched.solve(problem, "baseline")
