"""Benchmark outputs: derived columns, CSV, Markdown, plots, ``BENCHMARKS.md``.

Derived per instance, over every run of it (all solvers, all repeats):

``best_bound``
    The largest proven lower bound [money] any run reported (solvers' own
    bounds and the ``lp-bound`` pseudo-solver). A bound above a verified plan's
    objective (beyond 1e-6 relative) is impossible; it is reported in the notes
    and not used. Likewise an ``infeasible`` claim on an instance that another
    run found a verified plan for is reported in the notes.
``best_objective``
    The lowest objective of a verified plan [money].
``gap_best_bound``
    ``(objective − best_bound) / max(|objective|, 1e-9)`` of a verified run
    (:func:`optisched.plan.relative_gap`), None without a bound.
``obj_ratio``
    The objective relative to the best one, shifted so that it is defined for
    zero and negative costs: ``1 + (objective − best) / max(|best|, 1e-9)``
    (equal to ``objective / best`` when ``best > 0``); ``inf`` for a run
    without a verified plan. This is the ratio of the performance profile.

Plots (PNG, matplotlib Agg): ``objective_vs_time.png`` (the progress reports of
every run, one panel per instance, best bound dashed), ``gap_by_size.png`` (gap
to the best bound per instance, instances ordered by J × N × T) and
``performance_profile.png`` (Dolan & Moré 2002, "Benchmarking optimization
software with performance profiles", Math. Program. 91: the share of instances
on which a solver's ``obj_ratio`` is within a factor τ of the best).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from optisched.atomic import write_file_atomically
from optisched.bench.results import LP_BOUND, RUN_COLUMNS, BenchResult, machine_line
from optisched.plan import relative_gap

__all__ = [
    "DERIVED_COLUMNS",
    "benchmark_section",
    "derive",
    "finish",
    "markdown_table",
    "performance_profile",
    "plot_gap_by_size",
    "plot_objective_vs_time",
    "plot_performance_profile",
    "rebuild",
    "update_benchmarks",
]

DERIVED_COLUMNS = ("best_bound", "best_objective", "gap_best_bound", "obj_ratio")

FAILED = ("error", "crash", "timeout")


def _f(v: Any) -> float | None:
    """A float from a record value (CSV strings included), None when empty."""
    if v is None or v == "":
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if not math.isnan(x) else None


def _verified(r: dict[str, Any]) -> bool:
    v = r.get("verified")
    return v is True or str(v).lower() == "true"


def _size_key(r: dict[str, Any]) -> tuple[float, str]:
    dims = [_f(r.get(k)) or 0.0 for k in ("n_jobs", "n_nodes", "n_slots")]
    return dims[0] * dims[1] * dims[2], str(r.get("instance"))


# --------------------------------------------------------------------------- derived


def derive(rows: list[dict[str, Any]], order: list[str] | None = None,
           instances: list[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Add :data:`DERIVED_COLUMNS` to every record; sort by size, instance, solver, repeat.

    Instances of equal size keep their position in ``instances`` (the suite's
    order), then sort by name; solvers sort by their position in ``order``
    (e.g. the command line), then by name.

    Returns
    -------
    rows : list of dict
        New records.
    notes : list of str
        Bounds that exceed a verified objective (not used as best bound).
    """
    notes: list[str] = []
    by_inst: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_inst[str(r["instance"])].append(dict(r))
    out: list[dict[str, Any]] = []
    for inst, rs in by_inst.items():
        objs = [_f(r.get("objective")) for r in rs if _verified(r)]
        finite = [o for o in objs if o is not None]
        best_obj = min(finite) if finite else None
        bounds: list[float] = []
        for r in rs:
            b = _f(r.get("bound"))
            if b is None or str(r.get("status")) in FAILED:
                continue
            if best_obj is not None and b > best_obj + 1e-6 * max(1.0, abs(best_obj)):
                notes.append(f"{inst}: bound {b:.9g} of {r['solver']} (repeat {r.get('repeat')})"
                             f" exceeds the verified objective {best_obj:.9g}; not used")
                continue
            bounds.append(b)
        best_bound = max(bounds) if bounds else None
        if best_obj is not None:
            for r in rs:
                if r.get("status") == "infeasible":
                    notes.append(f"{inst}: {r['solver']} (repeat {r.get('repeat')}) reported "
                                 f"infeasible, but a verified plan of cost {best_obj:.9g} exists")
        for r in rs:
            obj = _f(r.get("objective")) if _verified(r) else None
            r["best_bound"] = best_bound
            r["best_objective"] = best_obj
            r["gap_best_bound"] = relative_gap(obj, best_bound) if obj is not None else None
            if r.get("status") in ("unavailable", "bound") or r.get("solver") == LP_BOUND:
                r["obj_ratio"] = None
            elif obj is None or best_obj is None:
                r["obj_ratio"] = math.inf
            else:
                r["obj_ratio"] = 1.0 + (obj - best_obj) / max(abs(best_obj), 1e-9)
            out.append(r)
    rank = {s: k for k, s in enumerate(order or [])}
    irank = {s: k for k, s in enumerate(instances or [])}
    out.sort(key=lambda r: (_size_key(r)[0], irank.get(str(r["instance"]), len(irank)),
                            str(r["instance"]), rank.get(str(r.get("solver")), len(rank)),
                            str(r.get("solver")), int(r.get("repeat") or 0)))
    return out, notes


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: Iterable[str]) -> None:
    cols = list(columns)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else
                            repr(r[k]) if isinstance(r.get(k), float) else r[k]) for k in cols})
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- markdown


def _num(v: float | None, digits: int = 6) -> str:
    if v is None:
        return "–"
    if math.isinf(v):
        return "inf"
    return f"{v:.{digits}g}"


def _secs(v: float | None) -> str:
    return "–" if v is None else (f"{v:.2f}" if v < 100 else f"{v:.0f}")


def _med(vals: list[float | None]) -> float | None:
    xs = [v for v in vals if v is not None]
    return statistics.median(xs) if xs else None


def _groups(rows: list[dict[str, Any]]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault((str(r["instance"]), str(r["solver"])), []).append(r)
    return [(i, s, rs) for (i, s), rs in out.items()]


def _status_text(rs: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for r in rs:
        counts[str(r.get("status"))] = counts.get(str(r.get("status")), 0) + 1
    if len(rs) == 1:
        return next(iter(counts))
    return ", ".join(f"{k} {v}/{len(rs)}" for k, v in counts.items())


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One Markdown table, a row per (instance, solver) (medians over repeats).

    Rows keep the order of ``rows`` (as sorted by :func:`derive`).

    Columns: instance, size J×N×T, solver, status, objective (median of verified
    runs) [money], bound (largest own bound) [money], gap to the instance's best
    bound, first plan [s], solver time [s], wall time of the process [s], CPU
    [s], peak memory [MiB].
    """
    head = ("| instance | J×N×T | solver | status | objective | bound | gap to best bound "
            "| first plan [s] | solver time [s] | wall [s] | CPU [s] | peak mem [MiB] |")
    lines = [head, "|" + "---|" * 12]
    last = None
    for inst, solver, rs in _groups(rows):
        r0 = rs[0]
        dims = "×".join(str(int(_f(r0.get(k)) or 0)) for k in ("n_jobs", "n_nodes", "n_slots"))
        ok = [r for r in rs if _verified(r)]
        obj = _med([_f(r.get("objective")) for r in ok])
        bounds = [b for b in (_f(r.get("bound")) for r in rs) if b is not None]
        bound = max(bounds) if bounds else None
        best = _f(r0.get("best_bound"))
        gap = relative_gap(obj, best) if obj is not None else None
        first = _med([_f(r.get("first_feasible_s")) for r in ok])
        name = inst if inst != last else ""
        last = inst
        mem = [m for m in (_f(r.get("peak_mem_mb")) for r in rs) if m is not None]
        lines.append(
            f"| {name} | {dims if name else ''} | {solver} | {_status_text(rs)} | {_num(obj)} "
            f"| {_num(bound)} | {'–' if gap is None else f'{100 * gap:.2f} %'} "
            f"| {_secs(first)} | {_secs(_med([_f(r.get('solver_total_s')) for r in rs]))} "
            f"| {_secs(_med([_f(r.get('wall_s')) for r in rs]))} "
            f"| {_secs(_med([_f(r.get('cpu_s')) for r in rs]))} "
            f"| {'–' if not mem else f'{max(mem):.0f}'} |")
    return "\n".join(lines) + "\n"


def benchmark_section(meta: dict[str, Any], rows: list[dict[str, Any]], notes: list[str]) -> str:
    """The Markdown report of one benchmark: command, machine, versions, table, notes."""
    v = meta.get("versions", {})
    cfg = meta.get("config", {})
    lines = [
        f"Suite `{meta.get('suite')}`, run {meta.get('started')} – {meta.get('finished')} UTC.",
        "",
        f"Command: `{meta.get('command')}`",
        "",
        f"Machine: {machine_line(meta['machine'])}." if "machine" in meta else "",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        f"Time limit {cfg.get('time_limit')} s per run, {cfg.get('repeat')} repeat(s), "
        f"{cfg.get('jobs')} run(s) at a time, threads "
        f"{cfg.get('threads') if cfg.get('threads') is not None else 'solver default'}; every "
        "run in its own process, every plan checked by the evaluator (a rejected plan is "
        "status `error`). Gap = (objective − best bound of the instance over all runs) / "
        "|objective|. Wall time includes interpreter start and imports; peak memory is the "
        "worker process's maximum resident set.",
        "",
        _load_line(rows),
        markdown_table(rows),
    ]
    failed = [r for r in rows if r.get("status") in FAILED]
    if failed:
        lines += ["Failed runs:", ""]
        for r in failed:
            msg = " ".join(str(r.get("message") or "").split())
            msg = msg if len(msg) <= 200 else msg[:197] + "..."
            lines.append(f"- {r['instance']} / {r['solver']} (repeat {r.get('repeat')}): "
                         f"{r['status']}: {msg.replace('|', '/')}")
        lines.append("")
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def _load_line(rows: list[dict[str, Any]]) -> str:
    loads = [x for x in (_f(r.get("load_avg")) for r in rows) if x is not None]
    if not loads:
        return ""
    return (f"Machine load (1-min load average at the start of each run): {min(loads):.1f} – "
            f"{max(loads):.1f}; a CPU time well below the wall time means the run waited for "
            "a core (other processes on the machine).\n")


_MARK = "<!-- bench:{suite}:{end} -->"


def update_benchmarks(path: str | os.PathLike[str], suite: str, text: str) -> Path:
    """Replace the marked section of ``suite`` in a Markdown file (or append one).

    The section lies between ``<!-- bench:SUITE:start -->`` and
    ``<!-- bench:SUITE:end -->``; everything outside the markers is kept.
    """
    path = Path(path)
    start, end = _MARK.format(suite=suite, end="start"), _MARK.format(suite=suite, end="end")
    block = f"{start}\n{text.rstrip()}\n{end}"
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    pat = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pat.search(old):
        new = pat.sub(lambda _m: block, old, count=1)
    else:
        new = (old.rstrip() + "\n\n" if old.strip() else "") + \
            f"## Results: suite `{suite}`\n\n{block}\n"
    return write_file_atomically(path, new if new.endswith("\n") else new + "\n")


# --------------------------------------------------------------------------- plots


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _colours(solvers: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {s: cmap(k % 10) for k, s in enumerate(solvers)}


def _solvers(rows: list[dict[str, Any]]) -> list[str]:
    """Solvers that ran (not the lp-bound pseudo-solver, not unavailable ones)."""
    return list(dict.fromkeys(str(r["solver"]) for r in rows if r.get("solver") != LP_BOUND
                              and r.get("status") != "unavailable"))


def _instances(rows: list[dict[str, Any]]) -> list[str]:
    """Instances in the order of the (derived, sorted) records."""
    return list(dict.fromkeys(str(r["instance"]) for r in rows))


def _read_progress(out: Path, r: dict[str, Any]) -> list[tuple[float, float]]:
    p = out / "progress" / f"{r['instance']}__{r['solver']}__r{r.get('repeat', 0)}.jsonl"
    pts: list[tuple[float, float]] = []
    if not p.is_file():
        return pts
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue  # a killed run may leave half a line
        if d.get("objective") is not None:
            pts.append((float(d["elapsed"]), float(d["objective"])))
    return pts


def plot_objective_vs_time(out: Path, rows: list[dict[str, Any]], path: Path) -> Path:
    """Objective of every progress report vs time, one panel per instance.

    Progress objectives are the solvers' own incumbents (a solver working on a
    scaled model reports its scaled objective converted back); the final point
    (circle) is the evaluator's objective of the verified plan at the solver's
    total time. The best bound of the instance is dashed.
    """
    insts = _instances(rows)
    solvers = _solvers(rows)
    col = _colours(solvers)
    n = max(1, len(insts))
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = _figure(5.0 * ncols, 3.4 * nrows)
    for k, inst in enumerate(insts):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        rs = [r for r in rows if r["instance"] == inst and r.get("solver") != LP_BOUND]
        for s in solvers:
            for r in (x for x in rs if x["solver"] == s):
                pts = _read_progress(out, r)
                obj = _f(r.get("objective")) if _verified(r) else None
                end = _f(r.get("solver_total_s"))
                label = s if int(r.get("repeat") or 0) == 0 else None
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    xs2, ys2 = list(xs), list(ys)
                    if end is not None and end > xs2[-1]:
                        xs2.append(end)
                        ys2.append(ys2[-1])
                    ax.step(xs2, ys2, where="post", color=col[s], label=label, lw=1.4)
                    label = None
                if obj is not None and end is not None:
                    ax.plot([end], [obj], "o", color=col[s], label=label, ms=5)
        bb = _f(rs[0].get("best_bound")) if rs else None
        if bb is not None:
            ax.axhline(bb, color="0.3", ls="--", lw=1, label="best bound")
        ax.set_title(inst, fontsize=9)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xlabel("time [s]", fontsize=8)
        ax.set_ylabel("objective [money]", fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_gap_by_size(rows: list[dict[str, Any]], path: Path) -> Path:
    """Gap to the best bound [%] per instance (ordered by J × N × T) and solver.

    Median over repeats; a run without a verified plan is an ``x`` on the top
    edge, an instance without any bound has no points.
    """
    insts = _instances(rows)
    solvers = _solvers(rows)
    col = _colours(solvers)
    fig = _figure(max(6.0, 1.3 * len(insts) + 2), 4.0)
    ax = fig.add_subplot(1, 1, 1)
    gaps_all: list[float] = []
    pts: dict[str, list[tuple[int, float | None, bool]]] = defaultdict(list)
    for i, inst in enumerate(insts):
        for s in solvers:
            rs = [r for r in rows if r["instance"] == inst and r["solver"] == s]
            if not rs or all(r.get("status") == "unavailable" for r in rs):
                continue
            g = _med([_f(r.get("gap_best_bound")) for r in rs if _verified(r)])
            failed = not any(_verified(r) for r in rs)
            if g is not None:
                gaps_all.append(100 * g)
            pts[s].append((i, None if g is None else 100 * g, failed))
    top = max([*gaps_all, 1.0]) * 1.15
    w = 0.8 / max(1, len(solvers))
    for k, s in enumerate(solvers):
        xs = [i - 0.4 + w * (k + 0.5) for i, g, f in pts[s] if g is not None]
        ys = [g for _, g, f in pts[s] if g is not None]
        ax.bar(xs, ys, width=w, color=col[s], label=s)
        fx = [i - 0.4 + w * (k + 0.5) for i, g, f in pts[s] if f]
        if fx:
            ax.plot(fx, [top] * len(fx), "x", color=col[s], ms=8, mew=2)
    labels = []
    for inst in insts:
        r0 = next(r for r in rows if r["instance"] == inst)
        dims = "×".join(str(int(_f(r0.get(k)) or 0)) for k in ("n_jobs", "n_nodes", "n_slots"))
        labels.append(f"{inst}\n{dims}")
    ax.set_xticks(range(len(insts)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylim(0, top * 1.05)
    ax.set_ylabel("gap to best bound [%]")
    ax.set_title("gap by instance size (x on top: no verified plan)", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return path


def performance_profile(rows: list[dict[str, Any]]) -> tuple[list[float],
                                                             dict[str, list[float]]]:
    """Dolan-Moré profile on :data:`obj_ratio` (median over repeats; failures inf).

    Returns
    -------
    taus : list of float
        Grid of ratios τ ≥ 1.
    rho : dict of str to list of float
        Per solver, the share of instances with ratio ≤ τ.
    """
    insts = _instances(rows)
    solvers = _solvers(rows)
    ratio: dict[str, list[float]] = {s: [] for s in solvers}
    for inst in insts:
        for s in solvers:
            rs = [r for r in rows if r["instance"] == inst and r["solver"] == s]
            vals = [_f(r.get("obj_ratio")) for r in rs]
            xs = [v for v in vals if v is not None]
            ratio[s].append(statistics.median(xs) if xs else math.inf)
    finite = [v for vs in ratio.values() for v in vs if math.isfinite(v)]
    hi = max([*finite, 1.0])
    hi = max(hi * 1.05, 1.01)
    n = 200
    taus = [1.0 * (hi / 1.0) ** (k / (n - 1)) for k in range(n)]
    taus[0] = 1.0
    n_inst = max(1, len(insts))
    rho = {s: [sum(1 for v in ratio[s] if v <= t + 1e-12) / n_inst for t in taus]
           for s in solvers}
    return taus, rho


def plot_performance_profile(rows: list[dict[str, Any]], path: Path) -> Path:
    """Dolan-Moré performance profile on the objective ratio to the best plan."""
    taus, rho = performance_profile(rows)
    col = _colours(list(rho))
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    for s, ys in rho.items():
        ax.step(taus, ys, where="post", color=col[s], label=s, lw=1.6)
    if taus[-1] > 10.0:
        ax.set_xscale("log")
    ax.set_xlim(1.0, taus[-1])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ: objective within a factor τ of the best (shifted ratio)")
    ax.set_ylabel("share of instances")
    ax.set_title("performance profile (Dolan & Moré 2002)", fontsize=9)
    if rho:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    return path


# --------------------------------------------------------------------------- finish


def finish(out: Path, rows: list[dict[str, Any]], notes: list[str], meta: dict[str, Any],
           plots: bool = True) -> BenchResult:
    """Write ``results.csv``, ``results.md``, ``meta.json`` and the plots.

    Returns
    -------
    optisched.bench.results.BenchResult
    """
    order = [LP_BOUND, *meta.get("config", {}).get("solvers", [])]
    final, bound_notes = derive(rows, order, meta.get("instances"))
    meta = {**meta, "runner_notes": list(notes)}
    notes = [*notes, *bound_notes]
    meta["notes"] = notes
    files: dict[str, Path] = {"runs_csv": out / "runs.csv"}
    files["results_csv"] = out / "results.csv"
    _write_csv(files["results_csv"], final, (*RUN_COLUMNS, *DERIVED_COLUMNS))
    section = benchmark_section(meta, final, notes)
    md = f"# Benchmark: suite `{meta.get('suite')}`\n\n" + section
    files["markdown"] = write_file_atomically(out / "results.md", md)
    files["meta"] = write_file_atomically(out / "meta.json",
                                          json.dumps(meta, indent=2, default=str) + "\n")
    if plots and final:
        files["objective_vs_time"] = plot_objective_vs_time(out, final,
                                                            out / "objective_vs_time.png")
        files["gap_by_size"] = plot_gap_by_size(final, out / "gap_by_size.png")
        files["performance_profile"] = plot_performance_profile(
            final, out / "performance_profile.png")
    return BenchResult(out=out, rows=final, notes=notes, files=files, markdown=section)


def rebuild(out: str | os.PathLike[str], plots: bool = True) -> BenchResult:
    """Redo every derived output of a benchmark directory from ``runs.csv`` and ``meta.json``.

    Useful after an interrupted benchmark (the journal holds every finished
    run) or after a change of the report.

    Returns
    -------
    optisched.bench.results.BenchResult
    """
    out = Path(out)
    with open(out / "runs.csv", newline="", encoding="utf-8") as fh:
        rows: list[dict[str, Any]] = [dict(r) for r in csv.DictReader(fh)]
    meta_file = out / "meta.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    notes = list(meta.get("runner_notes", []))
    return finish(out, rows, notes, meta, plots=plots)
