"""Infeasibility messages name the constraint that fails (issue 15, "Misleading messages").

Table-driven like ``tests/test_bad_input.py``: each case is a small problem that no plan
can satisfy, the fragments every solver's message must hold, the fragments it must not
(the false blame the issue reported), and whether the CLI may suggest a ``drop_penalty``.
The simple cases are proven before any search (:mod:`optisched.precheck`), so every
solver says the same; status ``infeasible`` comes only with such a proof (or a solver's
own: the MILP, CP-SAT).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optisched import Feeder, Horizon, Job, Node, Problem, Scenario, Tariff
from optisched.cli import EXIT_INFEASIBLE, EXIT_INPUT, app
from optisched.dispatch import dispatch
from optisched.domain import BatteryOptions
from optisched.icon import read_icon
from optisched.index import compile_index
from optisched.io import read_bundle, write_bundle
from optisched.plan import Status
from optisched.precheck import prove_infeasible
from optisched.solvers import REGISTRY, solve

ROOT = Path(__file__).resolve().parents[1]
SOLVERS = tuple(s for s in REGISTRY if REGISTRY[s].available())
runner = CliRunner()
T = 6
HZ = Horizon(start="2026-06-01T00:00:00+00:00", slot_minutes=60, slots=T)
JOB = Job(job_id="j1", gpus=1, duration_min=60, power_kw=0.1)


def _problem(nodes: list[Node], jobs: list[Job] | None = None, terminal: str = "initial",
             feeders: dict[str, Feeder] | None = None) -> Problem:
    return Problem(scenario=Scenario(horizon=HZ, battery=BatteryOptions(terminal=terminal)),
                   nodes=nodes, jobs=[JOB] if jobs is None else jobs,
                   tariffs={"default": Tariff.constant(T, price=0.25)}, feeders=feeders or {})


def island(grid_kw: float = 0.0) -> Problem:
    """Idle 0.2 kW, no pv, no grid, 5 kWh in the battery: 1.2 kWh over 6 h is there, but the
    terminal rule wants it back (the issue's "[power_balance] node island slot 0 … 0.2 kW")."""
    return _problem([Node(node_id="island", gpus=1, idle_kw=0.2, grid_kw=grid_kw,
                          battery_kwh=10, soc_init=0.5)])


def dark(grid_kw: float = 0.0) -> Problem:
    """Idle 1 kW, no pv, no grid, no battery."""
    return _problem([Node(node_id="dark", gpus=1, idle_kw=1.0, grid_kw=grid_kw),
                     Node(node_id="spare", gpus=1, can_sleep=True)])


def drained() -> Problem:
    """Idle 1 kW from a battery holding 2 kWh, no grid, terminal rule free."""
    return _problem([Node(node_id="bat", gpus=1, idle_kw=1.0, grid_kw=0, battery_kwh=10,
                          soc_init=0.2)], terminal="free")


def feeder(headroom: float = 8.0) -> Problem:
    """Two nodes that cannot sleep (5 kW idle each, unlimited grid) on an 8 kW feeder."""
    return _problem([Node(node_id="a", gpus=1, idle_kw=5.0, feeder="f"),
                     Node(node_id="b", gpus=1, idle_kw=5.0, feeder="f"),
                     Node(node_id="c", gpus=1, idle_kw=0.1)],
                    feeders={"f": Feeder(headroom_kw=[headroom] * T)})


def island_job() -> Problem:
    """A node that may sleep, no grid, 5 kWh in the battery, a must-run 1.2 kWh job."""
    return _problem([Node(node_id="island", gpus=1, can_sleep=True, grid_kw=0,
                          battery_kwh=10, soc_init=0.5)],
                    [Job(job_id="j1", gpus=1, duration_min=120, power_kw=0.6)])


@dataclass(frozen=True)
class Case:
    """An infeasible problem and what its message must (``expect``) and must not
    (``absent``) say; ``hint``: the CLI's drop_penalty hint is right."""

    id: str
    problem: Callable[[], Problem]
    expect: tuple[str, ...]
    absent: tuple[str, ...] = ()
    hint: bool = False
    solvers: tuple[str, ...] = SOLVERS


CASES = [
    Case("idle beyond pv + headroom", dark,
         ("[power_balance] node dark", "idle draw", "exceeds pv 0 kW + grid headroom 0 kW"),
         ("[feeder]", "[battery", "node spare")),
    Case("battery terminal rule", island,
         ("[battery_terminal] node island", "terminal rule 'initial'", "1.26316 kWh"),
         ("[power_balance]", "soc_init − soc_min = 5")),
    Case("battery runs empty", drained,
         ("[battery_energy] node bat", "by slot 1", "above soc_min"),
         ("[power_balance]", "terminal")),
    Case("feeder below the idle draw", feeder,
         ("[feeder] feeder f", "nodes a, b", "10 kW", "feeder headroom 8 kW"),
         ("[power_balance]", "a, b, c")),
    Case("terminal rule with a must-run job", island_job,
         ("[battery_terminal] node island", "terminal rule 'initial'"),
         ("[power_balance]",), hint=True, solvers=("highs", "pyomo")),
]


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_message_names_the_failing_constraint(case: Case, solver: str) -> None:
    if solver not in case.solvers:
        pytest.skip(f"{solver} does not prove this case")
    plan = solve(case.problem(), solver, time_limit=10, seed=0)
    assert plan.status is Status.INFEASIBLE, plan.message
    for want in case.expect:
        assert want in plan.message, plan.message
    for bad in case.absent:
        assert bad not in plan.message, plan.message


@pytest.mark.parametrize("solver", ["lns", "greedy", "highs"])
@pytest.mark.parametrize("case", CASES[:4], ids=[c.id for c in CASES[:4]])
def test_cli_hints_only_what_can_help(tmp_path: Path, case: Case, solver: str) -> None:
    bundle = tmp_path / "b"
    write_bundle(case.problem(), bundle)
    res = runner.invoke(app, ["plan", str(bundle), "--out", str(tmp_path / "p"), "--solver",
                              solver, "--time-limit", "5", "-q"])
    assert res.exit_code == EXIT_INFEASIBLE, res.output
    assert case.expect[0] in res.output
    assert ("drop_penalty" in res.output) is case.hint, res.output
    assert "longer --time-limit" not in res.output  # it is infeasible, not hard
    assert "Traceback" not in res.output


def test_cli_hint_stays_where_dropping_helps(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    write_bundle(island_job(), bundle)
    res = runner.invoke(app, ["plan", str(bundle), "--out", str(tmp_path / "p"), "--solver",
                              "highs", "--time-limit", "10", "-q"])
    assert res.exit_code == EXIT_INFEASIBLE, res.output
    assert "[battery_terminal] node island" in res.output
    assert "drop_penalty" in res.output


def test_dispatch_energy_message_agrees_with_the_terminal_rule() -> None:
    """greedy's message came from the dispatch: "needing 1.2 kWh … more than they can
    deliver (soc_init − soc_min = 5 kWh …)" contradicted itself under terminal 'initial'."""
    p = island_job()
    idx = compile_index(p)
    res = dispatch(idx, np.array([0]), np.array([0]))
    assert not res.feasible
    assert "needing 1.2 kWh from batteries" in res.message, res.message
    assert "terminal rule 'initial'" in res.message and "stored back" in res.message
    assert "soc_init − soc_min" not in res.message
    free = p.model_copy(update={"scenario": p.scenario.model_copy(
        update={"battery": BatteryOptions(terminal="free")})})
    assert dispatch(compile_index(free), np.array([0]), np.array([0])).feasible


def test_pyomo_solver_that_is_not_there_is_a_usage_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["plan", str(ROOT / "datasets" / "tiny"), "--out",
                              str(tmp_path / "p"), "--solver", "pyomo", "--pyomo-solver",
                              "nosuch"])
    assert res.exit_code == EXIT_INPUT, res.output
    assert "'nosuch'" in res.output and "available: appsi_highs" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "p").exists()


@pytest.mark.parametrize("make", [lambda: island(0.5), lambda: dark(1.0), lambda: feeder(10.0)],
                         ids=["island with 0.5 kW grid", "dark with 1 kW grid", "feeder 10 kW"])
def test_no_proof_where_a_plan_exists(make: Callable[[], Problem]) -> None:
    p = make()
    assert prove_infeasible(p, compile_index(p)) == []
    assert solve(p, "highs", time_limit=10).status is Status.OPTIMAL


@pytest.mark.parametrize("name", ["tiny", "neighborhood", "city", "icon/sample01",
                                  "icon/sample04"])
def test_no_proof_on_the_shipped_datasets(name: str) -> None:
    path = ROOT / "datasets" / name
    p = read_icon(path) if name.startswith("icon/") else read_bundle(path)
    assert prove_infeasible(p, compile_index(p)) == []
