"""The bound child of :class:`~optisched.bounds.process.BoundProcess`.

``python -m optisched.bounds.child REQUEST.pickle OUT.txt`` reads a
:class:`~optisched.bounds.process.BoundRequest` and writes its bound and the method that
computed it to ``OUT.txt`` (:func:`~optisched.bounds.files.write_value`): the LP
relaxation (one thread; its start columns go to ``placement.npz`` beside it), the
column-generation bound, the class-aggregated LP or the implicit column-generation
bound (these three rewritten after every iteration that improves them). With
``aggregate_first`` and every node linear, the class-aggregated LP runs first (it takes
seconds where the LP takes minutes) and the request's method after it (not ``colgen``,
nor ``lp`` above :data:`LP_AFTER_AGGREGATE_MAX_COLUMNS` start columns, once the aggregated
LP has converged); the file always holds the larger value.
:class:`~optisched.bounds.process.ChildProcess` runs it through the guard of
:mod:`optisched.bounds.guard`, so it ends with its caller and removes its directory.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from optisched.bounds.aggregate import aggregate_bound, linear_nodes
from optisched.bounds.colgen import colgen_bound
from optisched.bounds.files import read_value, write_value
from optisched.bounds.implicit import implicit_colgen_bound
from optisched.bounds.lp import lp_bound_result
from optisched.bounds.pricing import start_column_count
from optisched.bounds.process import PLACEMENT_FILE, BoundRequest, read_request
from optisched.index import Index, compile_index

__all__ = ["AGGREGATE_FIRST_SHARE", "METHODS", "compute_bound", "main"]

METHODS = ("lp", "colgen", "aggregate", "implicit")
"""Bound methods of :class:`~optisched.bounds.process.BoundRequest`."""
LP_AFTER_AGGREGATE_MAX_COLUMNS = 100_000
"""Above this many start columns a converged aggregated LP ends the child on linear nodes
where the request asked for ``lp`` (tight 200 × 10, 205-224 k columns: the LP did not
finish in 300 s; ICON sample04, 58 k: not in 240 s either, but smaller LPs do)."""
AGGREGATE_FIRST_SHARE = 0.5
"""Share of the time limit the class-aggregated LP may take before the request's method
(``aggregate_first``)."""


def _writer(out: Path, source: str) -> Callable[[float, float], None]:
    """A progress callback writing every finite bound above the file's value."""

    def progress(bound: float, elapsed: float) -> None:
        old = read_value(out)
        if math.isfinite(bound) and not (bound <= old):
            write_value(out, bound, source)

    return progress


def _run(request: BoundRequest, index: Index, method: str, time_limit: float,
         out: Path) -> tuple[float, bool]:
    """One method's bound [money], its improvements written to ``out``, and whether it
    converged (only the class-aggregated LP says so; the others: False)."""
    progress = _writer(out, method)
    if method == "colgen":
        return float(colgen_bound(request.problem, index, time_limit=time_limit,
                                  progress=progress).bound), False
    if method == "aggregate":
        agg = aggregate_bound(index, time_limit=time_limit, progress=progress)
        return float(agg.bound), bool(agg.converged)
    if method == "implicit":
        return float(implicit_colgen_bound(index, time_limit=time_limit,
                                           progress=progress).bound), False
    if method != "lp":
        raise ValueError(f"unknown bound method {method!r}; known: {', '.join(METHODS)}")
    return float(lp_bound_result(request.problem, index, time_limit=time_limit, threads=1,
                                 placement_path=str(out.with_name(PLACEMENT_FILE))).bound), False


def compute_bound(request: BoundRequest, out: Path) -> float:
    """Compute the bound of ``request``, writing it (when finite) to ``out`` [money].

    Returns the request's method's bound (``aggregate_first``: not the aggregated one,
    which is only written when larger; but for ``colgen`` on linear nodes the converged
    aggregated LP's, and column generation does not run).
    """
    t0 = time.perf_counter()
    limit = float(request.time_limit)
    index = compile_index(request.problem)
    if (request.aggregate_first and request.method != "aggregate"
            and linear_nodes(index).all()):
        agg, converged = _run(request, index, "aggregate", AGGREGATE_FIRST_SHARE * limit, out)
        if converged and (request.method == "colgen" or (
                request.method == "lp"
                and start_column_count(index) > LP_AFTER_AGGREGATE_MAX_COLUMNS)):
            # the full model's LP or column generation does not pass it within these
            # budgets on linear nodes and takes gigabytes (ICON sample08: 4.66 GB, below
            # the Lagrangian value after 300 s; tight 200 × 10: the LP unfinished after
            # 300 s at 2.6-3.0 GB, colgen 8,518 after 240 s against 15,454): stop here
            return agg
    value, _ = _run(request, index, request.method,
                 max(0.1, limit - (time.perf_counter() - t0)), out)
    _writer(out, request.method)(value, 0.0)
    return value


def main(argv: list[str]) -> int:
    """Entry point: ``REQUEST.pickle OUT.txt``."""
    request, out = read_request(argv)
    compute_bound(request, out)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as the child of BoundProcess
    raise SystemExit(main(sys.argv[1:]))
