"""Command-line interface: ``optisched validate | plan | evaluate | solvers``.

Exit codes: 0 ok, 1 bad input (every error named by file, row, column, value),
2 infeasible or no solution, 3 internal error. Never a traceback for a user error.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from optisched.errors import BundleError
from optisched.evaluate import evaluate
from optisched.io import read_bundle
from optisched.plan import COST_TERMS, Plan, Status, read_plan, write_plan

EXIT_OK, EXIT_INPUT, EXIT_INFEASIBLE, EXIT_INTERNAL = 0, 1, 2, 3

app = typer.Typer(
    name="optisched",
    help="Plan where and when AI jobs run on small, locally powered compute nodes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def _guard(fn: F) -> F:
    """Turn user errors into messages and exit codes, never tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BundleError as exc:
            err.print(f"[bold red]invalid input[/] ({exc.total} error"
                      f"{'s' if exc.total != 1 else ''}):")
            for e in exc.errors:
                err.print(f"  {e}", markup=False, highlight=False)
            if exc.total > len(exc.errors):
                err.print(f"  ... and {exc.total - len(exc.errors)} more")
            raise typer.Exit(EXIT_INPUT) from None
        except (ValueError, FileExistsError, FileNotFoundError, NotADirectoryError) as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(EXIT_INPUT) from None
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # pragma: no cover - internal errors
            logging.getLogger("optisched").debug("internal error", exc_info=True)
            err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
                      "(rerun with -v for details; please report it)", highlight=False)
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _fmt(v: float | None, digits: int = 6) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:,.{digits}g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"


def _summary_table(plan: Plan, title: str) -> Table:
    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("item")
    t.add_column("value", justify="right")
    t.add_row("solver", plan.solver)
    t.add_row("status", plan.status.value)
    t.add_row("objective", _fmt(plan.objective))
    t.add_row("bound", _fmt(plan.bound))
    gap = plan.gap
    t.add_row("gap", "-" if gap is None else f"{100 * gap:.3f} %")
    for k in COST_TERMS:
        if plan.costs.get(k):
            t.add_row(f"  {k}", _fmt(plan.costs[k]))
    t.add_row("time [s]", _fmt(plan.timings.get("total"), 3))
    return t


@app.command()
@_guard
def validate(
    bundle: Annotated[Path, typer.Argument(help="Input bundle directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check an input bundle; list every error with file, row, column and value."""
    problem = read_bundle(bundle)
    info = {"valid": True, "nodes": len(problem.nodes), "jobs": len(problem.jobs),
            "slots": problem.horizon.slots, "slot_minutes": problem.horizon.slot_minutes}
    if as_json:
        out.print_json(json.dumps(info))
    else:
        out.print(f"[green]valid[/]: {info['nodes']} nodes, {info['jobs']} jobs, "
                  f"{info['slots']} slots of {info['slot_minutes']} min")


@app.command()
@_guard
def plan(
    bundle: Annotated[Path, typer.Argument(help="Input bundle directory.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Plan directory to write.")],
    solver: Annotated[str | None, typer.Option("--solver", "-s",
                                               help="Solver name (see `optisched solvers`).")
                      ] = None,
    time_limit: Annotated[float | None, typer.Option("--time-limit", help="Seconds.")] = None,
    mip_gap: Annotated[float | None, typer.Option("--mip-gap", help="Relative gap.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    threads: Annotated[int | None, typer.Option("--threads")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
) -> None:
    """Plan a bundle and write assignments.csv, node_series.csv and summary.json."""
    from optisched.solvers import solve

    problem = read_bundle(bundle)
    result = solve(problem, solver, time_limit=time_limit, mip_gap=mip_gap, seed=seed,
                   threads=threads)
    write_plan(problem, result, out_dir)
    if as_json:
        out.print_json(json.dumps(result.summary(problem)))
    else:
        out.print(_summary_table(result, f"plan of {bundle} -> {out_dir}"))
        if result.message:
            err.print(result.message, markup=False, highlight=False)
    if result.status in (Status.INFEASIBLE, Status.NO_SOLUTION):
        if result.status is Status.INFEASIBLE and "drop_penalty" not in result.message:
            err.print("hint: jobs with a drop_penalty may be left out; give must-run jobs one "
                      "to get the dropped-jobs relaxation")
        raise typer.Exit(EXIT_INFEASIBLE)
    if result.status is Status.ERROR:
        raise typer.Exit(EXIT_INTERNAL)


@app.command("evaluate")
@_guard
def evaluate_cmd(
    bundle: Annotated[Path, typer.Argument(help="Input bundle directory.")],
    plan_dir: Annotated[Path, typer.Argument(help="Plan directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check a plan against every constraint and recompute its cost."""
    problem = read_bundle(bundle)
    p = read_plan(problem, plan_dir)
    ev = evaluate(problem, p)
    claimed = p.objective
    agrees = (claimed is not None and math.isfinite(ev.objective)
              and abs(claimed - ev.objective) <= 1e-6 * max(1.0, abs(ev.objective)))
    result = {"feasible": ev.feasible, "objective": ev.objective if ev.costs else None,
              "summary_objective": claimed, "objective_matches_summary": agrees,
              "costs": ev.costs, "violations": [str(v) for v in ev.violations],
              "violation_counts": ev.counts}
    if as_json:
        out.print_json(json.dumps(result, default=str))
    else:
        t = Table(title=f"evaluation of {plan_dir}")
        t.add_column("item")
        t.add_column("value", justify="right")
        t.add_row("feasible", "[green]yes[/]" if ev.feasible else "[red]no[/]")
        t.add_row("objective", _fmt(result["objective"]))  # type: ignore[arg-type]
        t.add_row("summary.json objective", _fmt(claimed))
        for k in COST_TERMS:
            if ev.costs.get(k):
                t.add_row(f"  {k}", _fmt(ev.costs[k]))
        out.print(t)
        for v in ev.violations:
            err.print(f"  {v}", markup=False, highlight=False)
        if ev.costs and not agrees:
            err.print("summary.json objective differs from the recomputed cost")
    if not ev.feasible or not agrees:
        raise typer.Exit(EXIT_INFEASIBLE)


@app.command()
def solvers() -> None:
    """List registered solvers and whether their packages are installed."""
    from optisched.solvers import REGISTRY, default_solver

    t = Table(title="solvers")
    for c in ("name", "available", "exact", "description"):
        t.add_column(c)
    default = default_solver()
    for name, spec in REGISTRY.items():
        t.add_row(name + (" (default)" if name == default else ""),
                  "yes" if spec.available() else "no", "yes" if spec.exact else "no",
                  spec.description)
    out.print(t)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
