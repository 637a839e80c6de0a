"""The child of :func:`optisched.solvers.highs.isolated_run`.

``python -m optisched.solvers.highs_child REQUEST.pickle OUT`` (through
:class:`~optisched.bounds.process.ChildProcess`, so it ends with its caller) reads an
:class:`~optisched.solvers.highs.IsolatedRequest`, runs
:func:`~optisched.solvers.highs.milp_run` and writes every improving solution to
:data:`~optisched.solvers.highs.ISOLATED_INCUMBENT` and the run's
:class:`~optisched.solvers.highs.MilpRun` to :data:`~optisched.solvers.highs.ISOLATED_RESULT`
beside ``OUT`` (each atomically). The time the child took to start is taken off HiGHS's
time limit; the watchdog's deadline is the caller's, read on the wall clock.
"""

from __future__ import annotations

import pickle
import sys
import time

import numpy as np

from optisched.atomic import write_file_atomically
from optisched.backends import highs as hs
from optisched.bounds.files import save_npz
from optisched.bounds.process import read_request
from optisched.solvers.base import SolveOptions
from optisched.solvers.highs import (
    ISOLATED_INCUMBENT,
    ISOLATED_RESULT,
    IsolatedRequest,
    milp_run,
)

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Entry point: ``REQUEST.pickle OUT``."""
    request, out = read_request(argv)
    assert isinstance(request, IsolatedRequest)
    late = max(0.0, time.time() - request.sent)
    deadline = time.perf_counter() + (request.deadline - time.time())
    incumbent = out.with_name(ISOLATED_INCUMBENT)

    def improving(e: hs.MipEvent) -> None:
        save_npz(incumbent, x=e.solution(), objective=np.asarray(e.objective),
                 bound=np.asarray(e.bound))

    options = SolveOptions(seed=request.seed, threads=request.threads)
    run = milp_run(request.model, options, request.params,
                   max(0.01, request.remaining - late), request.gap, request.warm_x,
                   deadline, improving)
    write_file_atomically(out.with_name(ISOLATED_RESULT), pickle.dumps(run))
    return 0


if __name__ == "__main__":  # pragma: no cover - run as the child of isolated_run
    raise SystemExit(main(sys.argv[1:]))
