"""The bound child of ``lns``: the bound, then the restricted master.

``python -m optisched.solvers.lns.bound_child REQUEST.pickle OUT.txt``
(:class:`~optisched.solvers.lns.restricted.RestrictedMasterProcess`) computes the bound
of :mod:`optisched.bounds.child` and then, when the LP was solved and left its start
columns, runs :func:`~optisched.solvers.lns.restricted.restricted_master` until the
request's deadline: improving placements go to ``restricted.npz``, a full MILP's
proven bound (when higher) to ``OUT.txt``. Like every child of
:class:`~optisched.bounds.process.ChildProcess` it runs under the guard of
:mod:`optisched.bounds.guard` (it ends with its caller, taking its directory along).
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from optisched.bounds.child import compute_bound
from optisched.bounds.files import read_value, save_npz, write_value
from optisched.bounds.lp import read_placement
from optisched.bounds.process import PLACEMENT_FILE, read_request
from optisched.solvers.lns.restricted import INCUMBENT_FILE, RESTRICTED_FILE, restricted_master

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Entry point: ``REQUEST.pickle OUT.txt``."""
    request, out = read_request(argv)
    value = compute_bound(request, out)
    placement = read_placement(str(out.with_name(PLACEMENT_FILE)))
    deadline = getattr(request, "deadline", None)
    if deadline is None or placement is None or not math.isfinite(value):
        return 0

    def found(node: np.ndarray, start: np.ndarray) -> None:
        save_npz(out.with_name(RESTRICTED_FILE), node=node, start=start)

    def proven(bound: float) -> None:
        if bound > value and not (bound <= read_value(out)):
            write_value(out, bound, "milp")

    restricted_master(request.problem, placement, out.with_name(INCUMBENT_FILE),
                      deadline - time.time(), found, lp_value=value, proven=proven)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as the child of RestrictedMasterProcess
    raise SystemExit(main(sys.argv[1:]))
