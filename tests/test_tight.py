"""The tight ICON-class generator: feasible by construction, as tight as asked, deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optisched.bench.suites import TIGHT_SIZES, load_suite, tight_resources
from optisched.cli import app
from optisched.domain import Problem
from optisched.evaluate import evaluate
from optisched.generate import generate
from optisched.generate.tight import ICON_PRICE_CURVES, icon_price_curves, tight_problem
from optisched.io import read_bundle, write_bundle
from optisched.plan import Plan


def _usage(problem: Problem, hidden: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Use per (machine, slot, resource) of the hidden plan and the capacities, from the
    problem's fields (no optisched code)."""
    R = 1 + len(problem.nodes[0].resources)
    names = [f"r{r}" for r in range(1, R)]
    q, T = problem.horizon.slot_minutes, problem.horizon.slots
    use = np.zeros((len(problem.nodes), T, R))
    for j, job in enumerate(problem.jobs):
        d = int(job.duration_min // q)
        s, m = int(hidden.start[j]), int(hidden.node[j])
        use[m, s:s + d] += [job.gpus, *(job.resources.get(n, 0.0) for n in names)]
    cap = np.array([[n.gpus, *(n.resources[r] for r in names)] for n in problem.nodes])
    return use, cap


@pytest.mark.parametrize(("jobs", "nodes", "resources", "seed"), [
    (200, 10, 1, 0), (200, 10, 4, 7), (1000, 50, 3, 2), (5000, 100, 4, 1), (7, 3, 2, 5),
])
def test_hidden_plan_is_feasible(jobs: int, nodes: int, resources: int, seed: int) -> None:
    problem, hidden = tight_problem(jobs, nodes, n_resources=resources, seed=seed)
    assert (len(problem.jobs), len(problem.nodes), problem.horizon.slots) == (jobs, nodes, 288)
    assert problem.horizon.slot_minutes == 5
    assert all(j.must_run and j.drop_penalty is None and j.tardiness_per_hour is None
               for j in problem.jobs)
    assert all(n.can_sleep and not n.initially_on and n.end_off and n.idle_kw > 0
               for n in problem.nodes)
    assert all(len(n.resources) == resources - 1 for n in problem.nodes)
    ev = evaluate(problem, hidden)
    assert ev.feasible, ev.violations[:5]
    assert hidden.objective == pytest.approx(ev.objective, rel=1e-9)
    assert (hidden.node >= 0).all()
    # every window lies inside the day and holds the hidden placement
    hz = problem.horizon
    for j, job in enumerate(problem.jobs):
        assert job.release is not None and job.deadline is not None
        rel, dl = hz.slot_position(job.release), hz.slot_position(job.deadline)
        d = job.duration_min / hz.slot_minutes
        assert 0 <= rel <= hidden.start[j] and hidden.start[j] + d <= dl <= hz.slots


@pytest.mark.parametrize(("tightness", "seed"), [((0.80, 0.95), 3), ((0.90, 0.93), 4)])
def test_hidden_plan_reaches_the_tightness_asked(tightness: tuple[float, float],
                                                 seed: int) -> None:
    problem, hidden = tight_problem(600, 20, n_resources=3, seed=seed, tightness=tightness)
    use, cap = _usage(problem, hidden)
    frac = use / cap[:, None, :]
    assert frac.max() <= 1.0
    b0, b1 = np.array(hidden.info["busy_start"]), np.array(hidden.info["busy_end"])
    t = np.arange(problem.horizon.slots)
    busy = (t[None, :] >= b0[:, None]) & (t[None, :] < b1[:, None])
    assert busy.sum() > 0.5 * busy.size  # busy periods cover 50-100 % of the day
    # every slot of a busy period uses lo..hi of every resource, up to one unit per lane
    slack = (np.array(hidden.info["lanes"])[:, None] / cap)[:, None, :]
    lo, hi = tightness
    inside = frac[busy]
    assert (inside >= lo - np.broadcast_to(slack, frac.shape)[busy] - 1e-12).all()
    assert (inside <= hi + np.broadcast_to(slack, frac.shape)[busy] + 1e-12).all()
    assert inside.mean() == pytest.approx((lo + hi) / 2, abs=0.02)
    assert (frac[~busy] == 0).all()
    # the machines are on exactly in their busy periods in the hidden plan
    assert hidden.flows is not None and (hidden.flows.on == busy).all()


def test_deterministic_for_a_seed() -> None:
    a, ha = tight_problem(300, 12, n_resources=2, seed=11)
    b, hb = tight_problem(300, 12, n_resources=2, seed=11)
    c, _ = tight_problem(300, 12, n_resources=2, seed=12)
    assert a.model_dump() == b.model_dump()
    assert (ha.node == hb.node).all() and (ha.start == hb.start).all()
    assert a.model_dump() != c.model_dump()


def test_bundle_round_trip_and_preset(tmp_path: Path) -> None:
    problem, _ = tight_problem(1000, 50, n_resources=3, seed=2)
    write_bundle(problem, tmp_path / "b")
    assert read_bundle(tmp_path / "b").model_dump() == problem.model_dump()
    # the preset and the CLI give the same problem
    assert generate("tight", n_nodes=50, n_jobs=1000, seed=2,
                    n_resources=3).model_dump() == problem.model_dump()
    res = CliRunner().invoke(app, ["generate", "--preset", "tight", "--jobs", "1000", "--nodes",
                                   "50", "--resources", "3", "--seed", "2", "--out",
                                   str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert read_bundle(tmp_path / "c").model_dump() == problem.model_dump()
    with pytest.raises(ValueError, match="unknown options"):
        generate("tight", weather="723170TYA.CSV")
    with pytest.raises(ValueError, match="unknown options"):
        generate("city", n_resources=2)


def test_prices_are_the_icon_forecasts() -> None:
    curves = icon_price_curves()
    assert tuple(curves) == ICON_PRICE_CURVES and all(c.shape == (288,) for c in curves.values())
    sample01 = Path(__file__).resolve().parents[1] / "datasets" / "icon" / "sample01"
    lines = (sample01 / "forecast.txt").read_text().split("\n")[1:]
    assert curves["sample01"].tolist() == [float(x.split()[1]) for x in lines if x.strip()]
    problem, _ = tight_problem(20, 2, seed=0, prices="sample01")
    assert problem.tariffs["icon"].price == curves["sample01"].tolist()
    hourly, _ = tight_problem(20, 2, seed=0, slots=24, prices="sample01")
    assert hourly.tariffs["icon"].price[0] == curves["sample01"][6]  # mid-slot sample


@pytest.mark.parametrize(("kw", "match"), [
    ({"n_nodes": 0}, "n_nodes"), ({"slots": 100}, "divide 1440"),
    ({"tightness": (0.9, 0.8)}, "tightness"), ({"prices": "sample10"}, "price curve"),
    ({"n_jobs": 400, "n_nodes": 1, "lanes": (1, 1)}, "one lane"),
    ({"capacity": (5, 5), "lanes": (8, 8)}, "too small"),
])
def test_bad_arguments(kw: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"n_jobs": 50, "n_nodes": 2, **kw}
    with pytest.raises(ValueError, match=match):
        tight_problem(**args)  # type: ignore[arg-type]


def test_suite_rungs_and_names() -> None:
    insts, notes = load_suite("tight")
    assert not notes and len(insts) == 30
    assert [i.name for i in insts[:2]] == ["tight-200x10-s0", "tight-200x10-s1"]
    assert {i.size for i in insts} == set(TIGHT_SIZES)
    small, _ = load_suite("tight", sizes=["200x10"], seed=3)
    assert [i.name for i in small] == [f"tight-200x10-s{s}" for s in range(3, 13)]
    p = small[1].build()
    assert (len(p.jobs), len(p.nodes)) == (200, 10)
    assert 1 + len(p.nodes[0].resources) == tight_resources("200x10", 4) == 1
    assert tight_resources("5000x100", 4) == 4
    with pytest.raises(ValueError, match="tight rungs"):
        load_suite("tight", sizes=["200x20"])


def test_bench_runs_the_suite(tmp_path: Path) -> None:
    from optisched.bench import BenchConfig, run_bench

    res = run_bench(BenchConfig("tight", ["greedy"], time_limit=1.0, sizes=["200x10"],
                                instances=["tight-200x10-s0"], plots=False,
                                show_progress=False), tmp_path / "out")
    assert [r["instance"] for r in res.rows] == ["tight-200x10-s0"]
    assert res.rows[0]["status"] in ("feasible", "no_solution")
    assert (tmp_path / "out" / "instances" / "tight-200x10-s0" / "jobs.csv").is_file()
