"""Command-line interface: ``optisched validate | plan | evaluate | replan | simulate | solvers``
(and ``generate``, ``scenarios reduce``, ``bench``, ...).

Exit codes: 0 ok; 1 bad input (every error named by file, row, column, value) or
usage (an unknown flag, a missing or invalid option value, an output directory
that cannot be written); 2 infeasible or no solution; 3 internal error;
130 interrupted (Ctrl-C); 143 terminated by ``SIGTERM`` (129: ``SIGHUP``), after the
same clean-up as Ctrl-C (children stopped, temporary files removed, no half-written
output). Never a traceback for a user error.

With ``--json`` a command prints exactly one JSON document on standard output, on
success and on failure alike (:func:`emit_json`; a failure is
``{"ok": false, "error": KIND, "message": …, "errors": [{file, row, column, value,
message}, …]}`` with the exit code unchanged). Messages are never re-wrapped when
standard output or error is not a terminal.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from optisched.errors import BundleError, OutputError
from optisched.evaluate import evaluate
from optisched.io import read_bundle
from optisched.plan import COST_TERMS, Plan, Status, check_plan_dir, read_plan, write_plan
from optisched.shutdown import Terminated, exit_on_signals

EXIT_OK, EXIT_INPUT, EXIT_INFEASIBLE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
MAX_SEED = 2**31 - 1
"""Largest ``--seed`` (every solver takes a 32-bit signed seed)."""


def _usage_error_class() -> type[Exception]:
    """click's ``UsageError`` as bundled with typer (vendored by newer typers)."""
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == "UsageError":
            return cls
    raise ImportError("typer.BadParameter does not derive from click's UsageError")


_UsageError = _usage_error_class()


class _Commands(TyperGroup):
    """Usage errors exit 1 ("bad input or usage"), not click's 2, which here means infeasible;
    with ``--json`` among the arguments they are one JSON document on standard output."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except _UsageError as exc:
            exc.exit_code = EXIT_INPUT  # type: ignore[attr-defined]
            argv = args[1] if len(args) > 1 else kwargs.get("args", [])
            _usage_json(exc, list(argv or []))
            raise

    def invoke(self, ctx: Any) -> Any:
        argv = [*getattr(ctx, "_protected_args", []), *ctx.args]  # the group consumes them
        try:
            return super().invoke(ctx)
        except _UsageError as exc:
            exc.exit_code = EXIT_INPUT  # type: ignore[attr-defined]
            _usage_json(exc, argv)
            raise


def _usage_json(exc: Exception, argv: list[str]) -> None:
    """A usage error as the ``--json`` failure document (then exit 1)."""
    if "--json" not in argv:
        return
    param = getattr(exc, "param", None)
    name = None if param is None else (getattr(param, "opts", None) or [param.name])[0]
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    emit_json(_failure("usage", f"usage: {message}",
                       [{"file": None, "row": None, "column": name, "value": None,
                         "message": message}]))
    raise typer.Exit(EXIT_INPUT)


app = typer.Typer(
    name="optisched",
    help="Plan where and when AI jobs run on small, locally powered compute nodes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Commands,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_WIDE = 10_000
"""Console width when the output is not a terminal: lines and tables are never wrapped."""

F = TypeVar("F", bound=Callable[..., Any])


def emit_json(doc: Any) -> None:
    """Print one JSON document on standard output (``--json``); infinities as null."""
    sys.stdout.write(json.dumps(_json_safe(doc), indent=2, default=str, allow_nan=False)
                     + "\n")
    sys.stdout.flush()


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _failure(kind: str, message: str, errors: list[dict[str, Any]] | None = None,
             total: int | None = None) -> dict[str, Any]:
    """The ``--json`` failure document (the HTTP service's error body too)."""
    errors = errors or []
    return {"ok": False, "error": kind, "message": message, "errors": errors,
            "total_errors": len(errors) if total is None else total}


def _one(message: str, file: str | None = None) -> list[dict[str, Any]]:
    return [{"file": file, "row": None, "column": None, "value": None, "message": message}]


def _guard(fn: F) -> F:
    """Turn user errors into messages and exit codes, never tracebacks; with ``--json``
    the failure is one JSON document on standard output."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("as_json"):
            return _json_guard(fn, args, kwargs)
        try:
            return fn(*args, **kwargs)
        except BundleError as exc:
            err.print(f"[bold red]invalid input[/] ({exc.total} error"
                      f"{'s' if exc.total != 1 else ''}):")
            for e in exc.errors:
                _line(f"  {e}")
            if exc.total > len(exc.errors):
                _line(f"  ... and {exc.total - len(exc.errors)} more")
            raise typer.Exit(EXIT_INPUT) from None
        except ValidationError as exc:
            err.print(f"[bold red]invalid input[/] ({exc.title}):")
            for detail in exc.errors():
                where = ".".join(str(x) for x in detail["loc"])
                _line(f"  {where + ': ' if where else ''}"
                      f"{str(detail['msg']).removeprefix('Value error, ')}")
            raise typer.Exit(EXIT_INPUT) from None
        except (ValueError, OutputError, FileExistsError, FileNotFoundError,
                NotADirectoryError) as exc:
            err.print("[bold red]error:[/] ", end="")
            _line(str(exc))
            raise typer.Exit(EXIT_INPUT) from None
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Terminated as exc:
            err.print(str(exc))
            raise
        except OSError as exc:
            if exc.filename is None:
                raise _internal(exc) from None
            err.print("[bold red]error:[/] ", end="")
            _line(f"{exc.filename}: {exc.strerror or exc}")
            raise typer.Exit(EXIT_INPUT) from None
        except Exception as exc:  # pragma: no cover - internal errors
            raise _internal(exc) from None

    return wrapper  # type: ignore[return-value]


def _json_guard(fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """:func:`_guard` for ``--json``: every failure as :func:`_failure` on stdout."""
    try:
        return fn(*args, **kwargs)
    except BundleError as exc:
        n = exc.total
        doc = _failure("invalid_input", f"invalid input ({n} error{'s' if n != 1 else ''})",
                       [dataclasses.asdict(e) for e in exc.errors], n)
        if fn.__name__ == "validate":
            doc["valid"] = False
        emit_json(doc)
        raise typer.Exit(EXIT_INPUT) from None
    except ValidationError as exc:
        errors = [{"file": None, "row": None,
                   "column": ".".join(str(x) for x in d["loc"]) or None, "value": None,
                   "message": str(d["msg"]).removeprefix("Value error, ")}
                  for d in exc.errors()]
        emit_json(_failure("invalid_input", f"invalid input ({exc.title})", errors))
        raise typer.Exit(EXIT_INPUT) from None
    except (ValueError, OutputError, FileExistsError, FileNotFoundError,
            NotADirectoryError) as exc:
        path = getattr(exc, "path", None) or getattr(exc, "filename", None)
        emit_json(_failure("error", str(exc), _one(str(exc), None if path is None
                                                   else str(path))))
        raise typer.Exit(EXIT_INPUT) from None
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        emit_json(_failure("interrupted", "interrupted"))
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Terminated as exc:
        emit_json(_failure("terminated", str(exc)))
        raise
    except OSError as exc:
        if exc.filename is None:
            logging.getLogger("optisched").debug("internal error", exc_info=exc)
            emit_json(_failure("internal", f"internal error: {type(exc).__name__}: {exc}"))
            raise typer.Exit(EXIT_INTERNAL) from None
        text = f"{exc.filename}: {exc.strerror or exc}"
        emit_json(_failure("error", text, _one(str(exc.strerror or exc), str(exc.filename))))
        raise typer.Exit(EXIT_INPUT) from None
    except Exception as exc:  # pragma: no cover - internal errors
        logging.getLogger("optisched").debug("internal error", exc_info=exc)
        emit_json(_failure("internal", f"internal error: {type(exc).__name__}: {exc} "
                           "(please report it)"))
        raise typer.Exit(EXIT_INTERNAL) from None


def _internal(exc: BaseException) -> typer.Exit:
    logging.getLogger("optisched").debug("internal error", exc_info=exc)
    err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
              "(rerun with -v for details; please report it)", highlight=False)
    return typer.Exit(EXIT_INTERNAL)


def _line(text: str) -> None:
    """One message line on stderr, not re-wrapped (so it stays one grep-able line)."""
    err.print(text, markup=False, highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------- option checks


def _seconds(value: float | None) -> float | None:
    """``--time-limit`` and the like: a finite number of seconds > 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value!r} is not valid; expected a finite number of "
                                 "seconds > 0")
    return value


def _seconds_or_zero(value: float) -> float:
    """``replan --time-limit``: finite and >= 0 (0 = repair only, no local search)."""
    if not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"{value!r} is not valid; expected a finite number of "
                                 "seconds >= 0 (0: repair only)")
    return value


def _gap(value: float | None) -> float | None:
    """``--mip-gap``: a relative gap in [0, 1)."""
    if value is not None and not (0.0 <= value < 1.0):
        raise typer.BadParameter(f"{value!r} is not valid; expected a relative gap in [0, 1)")
    return value


def _nonnegative(value: float) -> float:
    """A finite number >= 0 (``--kill-slack``)."""
    if not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"{value!r} is not valid; expected a finite number >= 0")
    return value


def _positive(value: float) -> float:
    """A finite number > 0 (``--kill-factor``)."""
    if not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value!r} is not valid; expected a finite number > 0")
    return value


_SEED_HELP = f"Random seed, 0 … {MAX_SEED}."
_THREADS_HELP = "Threads (>= 1; default: the solver's own)."
_TIME_HELP = "Seconds (a finite number > 0)."


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for console in (out, err):  # piped or redirected: never wrap a message or a table
        console.soft_wrap = True
        if not console.is_terminal:
            console.width = _WIDE


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
    t.add_row(r"time \[s]", _fmt(plan.timings.get("total"), 3))
    return t


@app.command()
@_guard
def validate(
    bundle: Annotated[Path, typer.Argument(help="Input bundle directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check an input bundle; list every error with file, row, column and value."""
    problem = read_bundle(bundle)
    info = {"ok": True, "valid": True, "nodes": len(problem.nodes), "jobs": len(problem.jobs),
            "slots": problem.horizon.slots, "slot_minutes": problem.horizon.slot_minutes}
    if as_json:
        emit_json(info)
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
    time_limit: Annotated[float | None, typer.Option("--time-limit", help=_TIME_HELP,
                                                     callback=_seconds)] = None,
    mip_gap: Annotated[float | None, typer.Option("--mip-gap", help="Relative gap in [0, 1).",
                                                  callback=_gap)] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help=_SEED_HELP)] = 0,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help=_THREADS_HELP)
                       ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable: the summary, the "
                                          "plan directory and the assignments as one JSON "
                                          "document.")] = False,
    pyomo_solver: Annotated[str | None, typer.Option(
        "--pyomo-solver", help="Pyomo solver for --solver pyomo (appsi_highs, cbc, glpk, "
        "scip, gurobi, cplex ...); the same as --option pyomo_solver=NAME.")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", help="A solver option KEY=VALUE (repeatable; `optisched solvers "
        "--options` lists them).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                        help="No live progress on stderr.")] = False,
    deterministic: Annotated[bool, typer.Option(
        "--deterministic", help="Work limits instead of wall-clock limits, one thread, fixed "
        "seeds: repeated runs write byte-identical plan files (--time-limit becomes a work "
        "budget and is not kept; docs/reproducibility.md).")] = False,
) -> None:
    """Plan a bundle and write assignments.csv, node_series.csv and summary.json."""
    from optisched.progress import ProgressDisplay
    from optisched.solvers import REGISTRY, default_solver, solve
    from optisched.solvers.options import parse_assignments

    name = solver or default_solver()
    if name not in REGISTRY:
        raise ValueError(f"unknown solver {name!r}; registered: {', '.join(REGISTRY)}")
    given: dict[str, Any] = parse_assignments(option or [])
    if pyomo_solver is not None:
        given["pyomo_solver"] = pyomo_solver
    params = REGISTRY[name].parse_options(given)  # a bad option fails before the bundle is read
    if name == "pyomo" and REGISTRY[name].available():
        from optisched.solvers.pyomo_solver import require_pyomo_solver  # imports Pyomo

        require_pyomo_solver(getattr(params, "pyomo_solver", ""))
    problem = read_bundle(bundle)
    check_plan_dir(out_dir)  # an output that cannot be written fails before the solve
    if quiet or as_json:
        result = solve(problem, name, time_limit=time_limit, mip_gap=mip_gap, seed=seed,
                       threads=threads, options=params, deterministic=deterministic)
    else:
        with ProgressDisplay(err, solver=name) as show:
            result = solve(problem, name, time_limit=time_limit, mip_gap=mip_gap, seed=seed,
                           threads=threads, callback=show, options=params,
                           deterministic=deterministic)
    write_plan(problem, result, out_dir)
    if as_json:
        doc = result.to_document(problem)
        emit_json({"ok": result.status.has_plan, **result.summary(problem),
                   "plan_dir": str(out_dir), "assignments": doc["assignments"]})
    else:
        out.print(_summary_table(result, f"plan of {bundle} -> {out_dir}"))
        if result.message:
            err.print(result.message, markup=False, highlight=False)
    if result.status in (Status.INFEASIBLE, Status.NO_SOLUTION):
        if (result.status is Status.INFEASIBLE and "drop_penalty" not in result.message
                and result.info.get("dropping_helps", True)):
            err.print("hint: jobs with a drop_penalty may be left out; give must-run jobs one "
                      "to get the dropped-jobs relaxation")
        if result.status is Status.NO_SOLUTION:
            err.print("hint: no plan was found within the limits, which does not prove the "
                      "problem infeasible; try a longer --time-limit or --solver lns, highs or "
                      "cpsat, or give must-run jobs a drop_penalty")
        raise typer.Exit(EXIT_INFEASIBLE)
    if result.status is Status.ERROR:
        raise typer.Exit(EXIT_INTERNAL)


@app.command("evaluate")
@_guard
def evaluate_cmd(
    bundle: Annotated[Path, typer.Argument(help="Input bundle directory.")],
    plan_dir: Annotated[Path, typer.Argument(help="Plan directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    actuals: Annotated[Path | None, typer.Option(
        "--actuals", help="Beyond SPEC v1: also price the plan on actual data: a directory "
        "with node_series.csv / prices.csv / feeders.csv, or one of such day directories "
        "(docs/algorithms/scenarios.md).")] = None,
) -> None:
    """Check a plan against every constraint and recompute its cost."""
    problem = read_bundle(bundle)
    p = read_plan(problem, plan_dir)
    ev = evaluate(problem, p)
    claimed = p.objective
    agrees = (claimed is not None and math.isfinite(ev.objective)
              and abs(claimed - ev.objective) <= 1e-6 * max(1.0, abs(ev.objective)))
    result: dict[str, Any] = {
        "feasible": ev.feasible, "objective": ev.objective if ev.costs else None,
        "summary_objective": claimed, "objective_matches_summary": agrees,
        "costs": ev.costs, "violations": [str(v) for v in ev.violations],
        "violation_counts": ev.counts, **ev.risk}
    if actuals is not None and p.flows is not None:
        result["actuals"] = _on_actuals(bundle, problem, p, actuals)
    if as_json:
        emit_json({"ok": bool(ev.feasible and agrees), **result})
    else:
        t = Table(title=f"evaluation of {plan_dir}")
        t.add_column("item")
        t.add_column("value", justify="right")
        t.add_row("feasible", "[green]yes[/]" if ev.feasible else "[red]no[/]")
        t.add_row("objective", _fmt(result["objective"]))
        t.add_row("summary.json objective", _fmt(claimed))
        for k in COST_TERMS:
            if ev.costs.get(k):
                t.add_row(f"  {k}", _fmt(ev.costs[k]))
        if ev.risk:
            t.add_row("expected cost", _fmt(ev.risk["expected_cost"]))
            t.add_row(f"CVaR_{ev.risk['cvar_alpha']:g}", _fmt(ev.risk["cvar"]))
            for sid, c in ev.risk["scenario_costs"].items():
                t.add_row(f"  scenario {sid}", _fmt(c))
        for day in result.get("actuals", {}).get("days", []):
            t.add_row(f"realized on {day['day']}", _fmt(day["realized"]["cost"]))
            t.add_row(f"settled on {day['day']}", _fmt(day["settled"]["cost"]))
        if "actuals" in result and len(result["actuals"]["days"]) > 1:
            t.add_row("mean realized", _fmt(result["actuals"]["mean_realized"]))
        out.print(t)
        for v in ev.violations:
            err.print(f"  {v}", markup=False, highlight=False)
        if ev.costs and not agrees:
            err.print("summary.json objective differs from the recomputed cost")
    if not ev.feasible or not agrees:
        raise typer.Exit(EXIT_INFEASIBLE)


def _on_actuals(bundle: Path, problem: Any, plan: Plan, actuals: Path) -> dict[str, Any]:
    """Realized and settled cost of ``plan`` on every actual day under ``actuals``."""
    from optisched.actuals import realized, settled
    from optisched.simulate import read_actuals

    files = ("node_series.csv", "prices.csv", "feeders.csv")
    if any((actuals / f).is_file() for f in files):
        dirs = [actuals]
    else:
        dirs = sorted(d for d in actuals.iterdir()
                      if d.is_dir() and any((d / f).is_file() for f in files)) \
            if actuals.is_dir() else []
        if not dirs:
            raise ValueError(f"{actuals}: no node_series.csv, prices.csv or feeders.csv, "
                             "nor a directory holding them")
    weights = ([sc.weight for sc in problem.scenarios.values()] if problem.scenarios
               else None)
    days: list[dict[str, Any]] = []
    for d in dirs:
        actual = read_actuals(bundle, d)
        days.append({"day": d.name, "realized": realized(actual, plan).as_dict(),
                     "settled": settled(actual, plan, weights).as_dict()})

    def mean(key: str) -> float | None:
        vals = [day[key]["cost"] for day in days]
        return None if any(v is None for v in vals) else float(sum(vals) / len(vals))

    return {"days": days, "mean_realized": mean("realized"), "mean_settled": mean("settled")}


@app.command()
@_guard
def bound(
    bundle: Annotated[Path, typer.Argument(help="Input bundle directory.")],
    time_limit: Annotated[float | None, typer.Option("--time-limit", help=_TIME_HELP,
                                                     callback=_seconds)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Lower bound on the optimal cost: the LP relaxation of the exact MILP."""
    from optisched.bounds import lp_bound_result

    problem = read_bundle(bundle)
    res = lp_bound_result(problem, time_limit=time_limit)
    info = {"bound": res.bound if math.isfinite(res.bound) else None, "status": res.status,
            "seconds": round(res.seconds, 6), "columns": res.columns, "rows": res.rows}
    if as_json:
        emit_json({"ok": res.bound != math.inf, **info})
    else:
        out.print(f"LP bound: {_fmt(res.bound)} ({res.status}, {res.columns} columns, "
                  f"{res.rows} rows, {res.seconds:.3f} s)")
    if res.bound == math.inf:
        err.print("the LP relaxation is infeasible, so is the problem")
        raise typer.Exit(EXIT_INFEASIBLE)


@app.command()
@_guard
def report(
    bundle: Annotated[Path, typer.Argument(help="Input bundle directory.")],
    plan_dir: Annotated[Path, typer.Argument(help="Plan directory.")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path(
        "report.html"),
    png: Annotated[Path | None, typer.Option("--png", help="Also write the figures as PNG "
                                             "files into this directory.")] = None,
    top: Annotated[int, typer.Option("--top", min=0, help="Nodes shown individually in the "
                                     "static figures (--static, --png).")] = 5,
    compare: Annotated[Path | None, typer.Option(
        "--compare", help="Another plan directory of the same bundle to compare with "
        "(default: the baseline solver's plan, computed now).")] = None,
    no_compare: Annotated[bool, typer.Option("--no-compare", help="No comparison section "
                                             "(do not run the baseline).")] = False,
    static: Annotated[bool, typer.Option("--static", help="Embedded PNG figures instead of "
                                         "interactive plotly ones (small page, no "
                                         "JavaScript figures).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                        help="No progress on stderr.")] = False,
) -> None:
    """Write a self-contained HTML report of a plan, compared with another plan or the baseline."""
    from optisched.progress import StepProgress
    from optisched.report import REPORT_STEPS, Comparison, write_report
    from optisched.solvers import solve

    if compare is not None and no_compare:
        raise ValueError("--compare and --no-compare exclude each other")

    def run(step: Callable[[str], None]) -> None:
        step("read bundle and plan")
        problem = read_bundle(bundle)
        p = read_plan(problem, plan_dir)
        if p.flows is None:
            err.print(f"plan {plan_dir} has status {p.status.value}: nothing to draw",
                      highlight=False)
            raise typer.Exit(EXIT_INFEASIBLE)
        other: Comparison | None = None
        if compare is not None:
            step("read comparison plan")
            other = Comparison(read_plan(problem, compare), str(compare))
        elif not no_compare:
            step("baseline plan")
            base = solve(problem, "baseline")
            if base.flows is None:
                err.print(f"baseline found no plan ({base.status.value}); no comparison",
                          highlight=False)
            else:
                other = Comparison(base, "baseline")
        write_report(problem, p, out_file, png_dir=png, top=top, compare=other,
                     interactive=not static, progress=step)

    if quiet:
        run(lambda _name: None)
    else:
        with StepProgress(err, total=len(REPORT_STEPS) + 2, title="report") as show:
            run(show)
    out.print(f"report written to {out_file}"
              + (f"; PNG figures in {png}" if png is not None else ""), highlight=False)


@app.command()
@_guard
def diff(
    plan_a: Annotated[Path, typer.Argument(help="Plan directory A.")],
    plan_b: Annotated[Path, typer.Argument(help="Plan directory B.")],
    bundle: Annotated[Path | None, typer.Option("--bundle", help="Input bundle: recompute "
                                                "costs with the evaluator.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Compare two plans: cost terms side by side (B − A) and the jobs that moved."""
    from optisched.diff import diff_plans, read_record, record_of

    if bundle is None:
        ra, rb = read_record(plan_a), read_record(plan_b)
    else:
        problem = read_bundle(bundle)
        ra = record_of(problem, read_plan(problem, plan_a), str(plan_a))
        rb = record_of(problem, read_plan(problem, plan_b), str(plan_b))
    d = diff_plans(ra, rb)
    if as_json:
        emit_json({"ok": True, **d.to_dict()})
        return
    t = Table(title=f"costs ({d.source}): A = {plan_a}, B = {plan_b}")
    for c in ("term", "A", "B", "B − A"):
        t.add_column(c, justify="left" if c == "term" else "right")
    for k in d.costs_a:
        t.add_row(k + (" (subtracted)" if k == "export_revenue" else ""), _fmt(d.costs_a[k]),
                  _fmt(d.costs_b[k]), _fmt(d.delta[k]))
    t.add_row("objective", _fmt(d.objective_a), _fmt(d.objective_b), _fmt(d.objective_delta),
              style="bold")
    out.print(t)
    if not d.changes:
        out.print(f"no job moved ({d.unchanged} placed identically)")
        return
    m = Table(title=f"{len(d.changes)} job(s) changed, {d.unchanged} unchanged")
    for c in ("job", "change", "node A", "start A", "node B", "start B"):
        m.add_column(c)
    for ch in d.changes:
        m.add_row(ch.job_id, ch.change, ch.node_a or "-", "-" if ch.start_a is None
                  else str(ch.start_a), ch.node_b or "-",
                  "-" if ch.start_b is None else str(ch.start_b))
    out.print(m)


@app.command()
@_guard
def replan(
    plan_dir: Annotated[Path, typer.Argument(help="Current plan directory.")],
    bundle: Annotated[Path, typer.Argument(help="Input bundle the plan is for.")],
    events: Annotated[Path, typer.Option("--events", "-e", help="Events CSV (format: "
                                         "docs/events.md).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output directory: plan/, "
                                          "bundle/, steps.csv, changes.jsonl, ledger.csv "
                                          "and ledger_jobs.csv.")],
    time_limit: Annotated[float, typer.Option(
        "--time-limit", help="Seconds of local search per update (finite, >= 0; 0: repair "
        "only).", callback=_seconds_or_zero)] = 0.2,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help=_SEED_HELP)] = 0,
) -> None:
    """Apply an events CSV to a plan, one update per event time; write the final plan.

    Beside the plan and bundle: steps.csv (one row per update), changes.jsonl (the
    change set of each update, one JSON line per update), ledger.csv and
    ledger_jobs.csv (the executed slots and the jobs that left; docs/replan.md).
    """
    from optisched.events import check_events, read_events, step_error
    from optisched.io import write_bundle
    from optisched.replan import ReplanError, Replanner

    problem = read_bundle(bundle)
    current = read_plan(problem, plan_dir)
    steps = read_events(events)
    check_events(steps, problem, str(events))
    mine = ("plan", "bundle", "steps.csv", "changes.jsonl", "ledger.csv", "ledger_jobs.csv")
    if out_dir.exists() and any(p.name not in mine
                                and not p.name.startswith(".") for p in out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} holds other files; choose an empty or new directory")
    rp = Replanner(problem, seed=seed, time_limit=time_limit, plan=current)
    rows, changes = [], []
    failed = ""
    for step in steps:
        try:
            result = step.apply(rp)
        except ReplanError as exc:  # no plan keeps the running jobs: the plan in force stays
            failed = str(exc)
            rows.append(f"{step.time.isoformat()},no_solution,,{rp.problem.horizon.slots},"
                        f"{len(rp.problem.jobs)},\"{failed.replace(chr(34), chr(39))}\"")
            break
        except ValueError as exc:  # what only the rolled problem shows (a job that ended)
            raise BundleError([step_error(step, str(events), exc)]) from None
        rows.append(f"{step.time.isoformat()},{result.status.value},"
                    f"{'' if result.objective is None else repr(result.objective)},"
                    f"{rp.problem.horizon.slots},{len(rp.problem.jobs)},"
                    f"\"{result.message.replace(chr(34), chr(39))}\"")
        changes.append(json.dumps({"time": step.time.isoformat(),
                                   "changes": rp.last_changes.to_list()}))
        if not result.status.has_plan:
            break
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bundle(rp.problem, out_dir / "bundle")
    write_plan(rp.problem, rp.plan, out_dir / "plan")
    (out_dir / "steps.csv").write_text("time,status,objective,slots,jobs,message\n"
                                       + "".join(r + "\n" for r in rows), encoding="utf-8")
    (out_dir / "changes.jsonl").write_text("".join(c + "\n" for c in changes),
                                           encoding="utf-8")
    rp.write_ledger(out_dir / "ledger.csv")
    out.print(_summary_table(rp.plan, f"replan of {plan_dir} ({len(steps)} updates) -> "
                             f"{out_dir}"))
    if rp.plan.message:
        err.print(rp.plan.message, markup=False, highlight=False)
    if failed:
        err.print(failed, markup=False, highlight=False)
        raise typer.Exit(EXIT_INFEASIBLE)
    if rp.plan.status in (Status.INFEASIBLE, Status.NO_SOLUTION):
        raise typer.Exit(EXIT_INFEASIBLE)
    if rp.plan.status is Status.ERROR:
        raise typer.Exit(EXIT_INTERNAL)


@app.command()
@_guard
def simulate(
    bundle: Annotated[Path, typer.Argument(help="Input bundle: the day, with its first "
                                           "forecast.")],
    actuals: Annotated[Path, typer.Option("--actuals", help="Directory with the actual "
                                          "node_series.csv and/or prices.csv.")],
    forecasts: Annotated[Path, typer.Option("--forecasts", help="Forecasts CSV with issue "
                                            "times (issued_at,time,node_id,pv_kw / "
                                            "issued_at,time,tariff,price).")],
    replan_every: Annotated[int, typer.Option("--replan-every", min=1,
                                              help="Slots between re-plans (arrivals "
                                              "re-plan in between).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output directory: "
                                          "simulation.json, ledger.csv, cost.png.")],
    solver: Annotated[str, typer.Option("--solver", "-s", help="Re-planner's solver.")
                      ] = "greedy",
    time_limit: Annotated[float, typer.Option(
        "--time-limit", help="Seconds of local search per re-plan (>= 0).",
        callback=_seconds_or_zero)] = 0.5,
    plan_once_time_limit: Annotated[float, typer.Option(
        "--plan-once-time-limit", help="Budget of the plan made once [s].",
        callback=_seconds_or_zero)] = 5.0,
    pf_solver: Annotated[str, typer.Option("--pf-solver", help="Perfect-foresight solver.")
                         ] = "lns",
    pf_time_limit: Annotated[float, typer.Option(
        "--pf-time-limit", help="Budget of each of the two perfect-foresight solves [s].",
        callback=_seconds_or_zero)] = 30.0,
    jobs_known: Annotated[bool, typer.Option(
        "--jobs-known", help="Hand every job to the re-planner at the start (they still "
        "wait for their release).")] = False,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help=_SEED_HELP)] = 0,
) -> None:
    """Closed loop over the bundle's day: plan on forecasts, re-plan, settle on actuals.

    Reports the realized cost against planning once on the forecast and against
    perfect foresight (docs/replan.md).
    """
    from optisched.simulate import run_files

    sim = run_files(bundle, actuals, forecasts, replan_every, out_dir, solver=solver,
                    time_limit=time_limit, plan_once_time_limit=plan_once_time_limit,
                    pf_solver=pf_solver, pf_time_limit=pf_time_limit,
                    jobs_known_ahead=jobs_known, seed=seed)
    t = Table(title=f"simulation of {bundle} (re-plan every {replan_every} slots) -> {out_dir}",
              header_style="bold")
    t.add_column("schedule")
    t.add_column("cost on the actuals", justify="right")
    t.add_column("feasible")
    t.add_row("re-planned (realized)", _fmt(sim.realized_cost), str(sim.feasible["realized"]))
    t.add_row("planned once on the forecast", _fmt(sim.plan_once_cost),
              str(sim.feasible["plan_once"]))
    t.add_row(f"perfect foresight ({sim.perfect_foresight_source})",
              _fmt(sim.perfect_foresight_cost), str(sim.feasible["perfect_foresight"]))
    out.print(t)
    out.print(f"{len(sim.updates)} re-plans; files: simulation.json, ledger.csv, cost.png")


@app.command("generate")
@_guard
def generate_cmd(
    preset: Annotated[str, typer.Option("--preset", help="tiny, small, medium, large, xl, "
                                        "neighborhood, city, tight.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write.")],
    nodes: Annotated[int | None, typer.Option("--nodes", min=1, help="Number of nodes.")
                     ] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", min=0, help="Number of jobs.")] = None,
    slots: Annotated[int | None, typer.Option("--slots", min=1, help="Number of slots.")
                     ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help=_SEED_HELP)] = 0,
    weather: Annotated[str | None, typer.Option(
        "--weather", help="Weather CSV (time, ghi, temp_air) or a pvlib-shipped TMY3 file "
        "name such as 723170TYA.CSV; default clear sky.")] = None,
    resources: Annotated[int | None, typer.Option(
        "--resources", help="--preset tight: resources per machine (1-4; default 1).")] = None,
    scenarios: Annotated[int | None, typer.Option(
        "--scenarios", min=1, help="Beyond SPEC v1: K scenarios of PV and prices "
        "(scenarios.csv and scenario columns; docs/algorithms/scenarios.md).")] = None,
    actuals: Annotated[int, typer.Option(
        "--actuals", min=0, help="With --scenarios: N held-out actual days in "
        "OUT/actuals/day-000 ... (bundles of one outcome each).")] = 0,
) -> None:
    """Generate a realistic scenario bundle (Berlin metro area, real solar/price/load data)."""
    from optisched.generate import generate
    from optisched.generate.scenarios import draw_scenarios
    from optisched.io import write_bundle

    kw: dict[str, Any] = {} if weather is None else {"weather": weather}
    if resources is not None:
        kw["n_resources"] = resources
    if actuals and scenarios is None:
        raise ValueError("--actuals needs --scenarios")
    problem = generate(preset, n_nodes=nodes, n_jobs=jobs, n_slots=slots, seed=seed, **kw)
    days: list[Any] = []
    if scenarios is not None:
        problem, days = draw_scenarios(problem, scenarios, seed=seed, actuals=actuals)
    write_bundle(problem, out_dir)
    for d, day in enumerate(days):
        write_bundle(day, out_dir / "actuals" / f"day-{d:03d}")
    more = (f", {len(problem.scenarios)} scenarios" if problem.scenarios else "") + (
        f", {len(days)} actual days" if days else "")
    out.print(f"[green]wrote[/] {out_dir}: {len(problem.nodes)} nodes, {len(problem.jobs)} "
              f"jobs, {problem.horizon.slots} slots of {problem.horizon.slot_minutes} min{more}")


scenarios_app = typer.Typer(help="Scenarios of a bundle (beyond SPEC v1).", no_args_is_help=True)
app.add_typer(scenarios_app, name="scenarios")


@scenarios_app.command("reduce")
@_guard
def scenarios_reduce_cmd(
    bundle: Annotated[Path, typer.Argument(help="Input bundle directory (with scenarios.csv).")],
    to: Annotated[int, typer.Option("--to", min=1, help="Scenarios to keep.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write.")],
) -> None:
    """Keep K scenarios by fast forward selection (dropped weights go to the nearest)."""
    from optisched.io import write_bundle
    from optisched.scenarios import reduce_scenarios

    problem = read_bundle(bundle)
    if not problem.scenarios:
        raise ValueError(f"{bundle} has no scenarios (no scenarios.csv)")
    reduced = reduce_scenarios(problem, to)
    write_bundle(reduced, out_dir)
    kept = ", ".join(f"{sid} ({sc.weight:.4g})" for sid, sc in reduced.scenarios.items())
    out.print(f"[green]wrote[/] {out_dir}: kept {len(reduced.scenarios)} of "
              f"{len(problem.scenarios)} scenarios: {kept}")


@app.command("import-icon")
@_guard
def import_icon_cmd(
    instance_dir: Annotated[Path, typer.Argument(help="ICON 2014 instance directory "
                                                 "(instance.txt, forecast.txt[, actual.txt]).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write.")],
    prices: Annotated[str, typer.Option("--prices", help="forecast or actual.")] = "forecast",
) -> None:
    """Import a CSPLib prob059 (ICON 2014 energy-cost aware scheduling) instance as a bundle."""
    from optisched.icon import read_icon
    from optisched.io import write_bundle

    problem = read_icon(instance_dir, prices=prices)
    write_bundle(problem, out_dir)
    out.print(f"[green]wrote[/] {out_dir}: {len(problem.nodes)} machines, {len(problem.jobs)} "
              f"tasks, {problem.horizon.slots} slots of {problem.horizon.slot_minutes} min")


@app.command("export-icon")
@_guard
def export_icon_cmd(
    bundle: Annotated[Path, typer.Argument(help="ICON-shaped input bundle (from import-icon "
                                           "or generate --preset tight).")],
    plan_dir: Annotated[Path, typer.Argument(help="Plan directory of that bundle.")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="ICON solution file to write.")],
    instance_dir: Annotated[Path | None, typer.Option(
        "--instance", help="Also write the bundle as ICON instance.txt and forecast.txt into "
        "this directory (for the challenge's checker).")] = None,
) -> None:
    """Write a plan as an ICON 2014 (CSPLib prob059) solution file: on/off events, task starts."""
    from optisched.icon import check_icon_shape, icon_solution, write_icon, write_icon_solution

    problem = read_bundle(bundle)
    check_icon_shape(problem, bundle)  # before the plan: a foreign bundle is named as such
    p = read_plan(problem, plan_dir)
    solution = icon_solution(problem, p, bundle=bundle, plan_dir=plan_dir)
    ev = evaluate(problem, p)
    if not ev.feasible:
        err.print(f"plan {plan_dir} is not feasible; no solution written:", highlight=False)
        for v in ev.violations[:10]:
            err.print(f"  {v}", markup=False, highlight=False)
        raise typer.Exit(EXIT_INFEASIBLE)
    write_icon_solution(solution, out_file)
    if instance_dir is not None:
        write_icon(problem, instance_dir)
    out.print(f"[green]wrote[/] {out_file}: {len(solution.machines)} machines, "
              f"{sum(len(e) for e in solution.machines.values())} on/off events, "
              f"{len(solution.tasks)} tasks; ICON cost {_fmt(ev.objective, 10)}"
              + ("" if instance_dir is None else f"; instance in {instance_dir}"),
              highlight=False)


@app.command()
def solvers(
    show_options: Annotated[bool, typer.Option(
        "--options", help="List each solver's options: type, default, unit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List registered solvers, whether their packages are installed, and their options."""
    from optisched.solvers import REGISTRY, default_solver

    default = default_solver()
    if as_json:
        doc = [{"name": name, "available": spec.available(), "exact": spec.exact,
                "default": name == default, "description": spec.description,
                "options": [o.__dict__ for o in spec.options.describe()]}
               for name, spec in REGISTRY.items()]
        emit_json(doc)
        return
    t = Table(title="solvers")
    for c in ("name", "available", "exact", "description"):
        t.add_column(c)
    for name, spec in REGISTRY.items():
        t.add_row(name + (" (default)" if name == default else ""),
                  "yes" if spec.available() else "no", "yes" if spec.exact else "no",
                  spec.description)
    out.print(t)
    if not show_options:
        return
    for name, spec in REGISTRY.items():
        docs = spec.options.describe()
        if not docs:
            out.print(f"{name}: no options")
            continue
        ot = Table(title=f"{name} options (--solver {name} --option KEY=VALUE)")
        for c in ("option", "type", "default", r"meaning \[unit]"):
            ot.add_column(c, overflow="fold")
        for o in docs:
            ot.add_row(*(escape(v) for v in (o.name, o.type, o.default, o.doc)))
        out.print(ot)


@app.command()
@_guard
def bench(
    suite: Annotated[str, typer.Option("--suite", help="scale, datasets, icon, features, micro, "
                                       "uncertainty.")],
    solvers: Annotated[str, typer.Option("--solvers", help="Comma-separated solver names "
                                         "(lp-bound: the LP relaxation bound).")],
    time_limit: Annotated[float, typer.Option("--time-limit", help="Seconds per run (a finite "
                                              "number > 0).", callback=_seconds)],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    repeat: Annotated[int, typer.Option("--repeat", min=1,
                                        help="Runs per (instance, solver).")] = 1,
    jobs: Annotated[int, typer.Option("--jobs", min=1,
                                      help="Runs at a time (1: honest timings).")] = 1,
    sizes: Annotated[str | None, typer.Option("--sizes", help="scale suite rungs, e.g. "
                                              "tiny,small,medium.")] = None,
    instances: Annotated[str | None, typer.Option(
        "--instances", help="Only instances matching these comma-separated shell patterns.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help=_SEED_HELP)] = 0,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help=_THREADS_HELP)
                       ] = None,
    lp_bound: Annotated[bool, typer.Option("--lp-bound", help="Also run the LP bound.")] = False,
    lp_time_limit: Annotated[float | None, typer.Option(
        "--lp-time-limit", help="Seconds for --lp-bound (finite, > 0; default max(60, "
        "--time-limit)).", callback=_seconds)] = None,
    kill_factor: Annotated[float, typer.Option("--kill-factor", callback=_positive,
                                               help="A run is killed after kill-factor × "
                                               "time-limit + kill-slack seconds (> 0).")
                           ] = 2.0,
    kill_slack: Annotated[float, typer.Option("--kill-slack", callback=_nonnegative,
                                              help="Seconds (finite, >= 0).")] = 30.0,
    keep_plans: Annotated[bool, typer.Option("--keep-plans")] = False,
    update_benchmarks: Annotated[Path | None, typer.Option(
        "--update-benchmarks", help="Replace this suite's marked section of a Markdown file "
        "(e.g. BENCHMARKS.md).")] = None,
    scenarios: Annotated[int, typer.Option(
        "--scenarios", min=1, help="--suite uncertainty: scenarios per instance.")] = 10,
    days: Annotated[int, typer.Option(
        "--days", min=1, help="--suite uncertainty: held-out actual days.")] = 20,
) -> None:
    """Compare solvers on a suite: CSV, Markdown table and PNG plots in --out."""
    from optisched.bench import BenchConfig, run_bench
    from optisched.bench.report import update_benchmarks as _update

    if suite == "uncertainty":  # beyond SPEC v1: two-stage vs deterministic on actuals
        from optisched.bench.uncertainty import run_uncertainty

        md = run_uncertainty(
            out_dir, [s.strip() for s in solvers.split(",") if s.strip()], time_limit,
            sizes=[s.strip() for s in sizes.split(",") if s.strip()] if sizes else None,
            scenarios=scenarios, days=days, seed=seed,
            command=" ".join(["optisched", *sys.argv[1:]]))
        out.print(md, markup=False, highlight=False, soft_wrap=True)
        if update_benchmarks is not None:
            _update(update_benchmarks, suite, md)
        return

    cfg = BenchConfig(
        suite=suite, solvers=[s.strip() for s in solvers.split(",") if s.strip()],
        time_limit=time_limit, repeat=repeat, jobs=jobs,
        sizes=[s.strip() for s in sizes.split(",") if s.strip()] if sizes else None,
        instances=[s.strip() for s in instances.split(",") if s.strip()] if instances else None,
        seed=seed, threads=threads, kill_factor=kill_factor, kill_slack=kill_slack,
        lp_bound=lp_bound, lp_time_limit=lp_time_limit, keep_plans=keep_plans,
        command=(" ".join(["optisched", *sys.argv[1:]])
                 if Path(sys.argv[0]).name == "optisched" else None),
    )
    result = run_bench(cfg, out_dir)
    out.print(result.markdown, markup=False, highlight=False, soft_wrap=True)
    if update_benchmarks is not None:
        _update(update_benchmarks, suite, result.markdown)
        err.print(f"updated the {suite} section of {update_benchmarks}")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Port (0: a free one, named on stderr).")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1,
                                         help="Solver worker processes.")] = 2,
    state: Annotated[Path, typer.Option("--state", help="Directory of the SQLite state "
                                        "(solves and sessions survive a restart).")
                     ] = Path("optisched-state"),
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", help="Bearer tokens, one per line (or set OPTISCHED_TOKEN).")] = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="No token (refused unless --host is a loopback address).")] = False,
    max_body: Annotated[int, typer.Option("--max-body", min=1024,
                                          help="Largest request body [bytes] (413 above).")
                        ] = 32 * 1024 * 1024,
    max_time_limit: Annotated[float, typer.Option(
        "--max-time-limit", callback=_seconds, help="Cap on every time limit [s].")] = 300.0,
    default_time_limit: Annotated[float, typer.Option(
        "--default-time-limit", callback=_seconds,
        help="Time limit of a solve that gives none [s].")] = 10.0,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning.")
                         ] = "info",
) -> None:
    """Serve the HTTP/JSON API (docs/service.md): solves, evaluation, re-planning sessions."""
    try:  # the service's packages are an optional extra
        from optisched.service.config import ConfigError, ServiceConfig, read_tokens
        from optisched.service.server import serve as run_server
    except ImportError as exc:
        err.print(f"error: optisched serve needs the service extra ({exc.name} is missing): "
                  'pip install "optisched[service]"', markup=False, highlight=False)
        raise typer.Exit(EXIT_INPUT) from None
    try:
        tokens = [] if no_auth else read_tokens(token_file)
        cfg = ServiceConfig(host=host, port=port, workers=workers, state_dir=state,
                            tokens=tokens, auth=not no_auth, max_body_bytes=max_body,
                            max_time_limit=max_time_limit or 300.0,
                            default_time_limit=default_time_limit or 10.0)
        cfg.check()
    except ConfigError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_INPUT) from None
    try:
        run_server(cfg, log_level=log_level)
    except OSError as exc:
        err.print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}",
                  markup=False, highlight=False)
        raise typer.Exit(EXIT_INPUT) from None


def main() -> None:
    """Console-script entry point (``SIGTERM``/``SIGHUP`` end it through ``finally:``
    blocks: :func:`optisched.shutdown.exit_on_signals`)."""
    exit_on_signals()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
