"""The bound child of :class:`~optisched.bounds.process.BoundProcess`.

``python -m optisched.bounds.child REQUEST.pickle OUT.txt`` reads a
:class:`~optisched.bounds.process.BoundRequest` and writes its bound to ``OUT.txt``:
the LP relaxation (one thread; its start columns go to ``placement.npz`` beside it)
or the column-generation bound (rewritten after every iteration that improves it).
:class:`~optisched.bounds.process.ChildProcess` runs it through the guard of
:mod:`optisched.bounds.guard`, so it ends with its caller and removes its directory.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from optisched.bounds.colgen import colgen_bound
from optisched.bounds.files import write_value
from optisched.bounds.lp import lp_bound_result
from optisched.bounds.process import PLACEMENT_FILE, BoundRequest, read_request

__all__ = ["compute_bound", "main"]


def compute_bound(request: BoundRequest, out: Path) -> float:
    """Compute the bound of ``request``, writing it (when finite) to ``out`` [money]."""
    if request.method == "colgen":

        def progress(bound: float, elapsed: float) -> None:
            if math.isfinite(bound):
                write_value(out, bound)

        value = float(colgen_bound(request.problem, time_limit=request.time_limit,
                                   progress=progress).bound)
    else:
        value = float(lp_bound_result(request.problem, time_limit=request.time_limit,
                                      threads=1,
                                      placement_path=str(out.with_name(PLACEMENT_FILE))).bound)
    if math.isfinite(value):
        write_value(out, value)
    return value


def main(argv: list[str]) -> int:
    """Entry point: ``REQUEST.pickle OUT.txt``."""
    request, out = read_request(argv)
    compute_bound(request, out)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as the child of BoundProcess
    raise SystemExit(main(sys.argv[1:]))
