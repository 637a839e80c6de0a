"""The restricted master of ``lns``: the MILP over the LP's support, beside the search.

After the LP bound, the bound child (:mod:`optisched.solvers.lns.bound_child`) keeps
solving :func:`restricted_master` until the caller's deadline and hands every
improving placement back; :class:`RestrictedMasterProcess` is the caller's side
(:class:`~optisched.bounds.process.BoundProcess` plus the incumbent it shares and the
plans it reads back). It lives here, not in :mod:`optisched.bounds`, because it
solves MILPs with the ``highs`` solver.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from optisched.bounds.files import load_npz, save_npz
from optisched.bounds.process import BoundProcess, BoundRequest
from optisched.domain import Problem
from optisched.evaluate import evaluate
from optisched.formulations.milp import MilpModel, build_milp
from optisched.index import Index, compile_index
from optisched.plan import Plan, Status
from optisched.solvers.base import SolveOptions, dispatched_plan
from optisched.solvers.highs import placement_from_solution, run_highs
from optisched.solvers.options import HighsOptions

__all__ = [
    "FULL_MILP_GAP",
    "INCUMBENT_FILE",
    "RESTRICTED_FILE",
    "RestrictedMasterProcess",
    "RestrictedRequest",
    "restricted_master",
]

FULL_MILP_GAP = 0.03
"""Relative gap between the incumbent and the LP above which the bound child solves the
full MILP (for its dual bound) instead of the restricted master."""
INCUMBENT_FILE = "incumbent.npz"
"""The caller's best placement (``node``, ``start``), in the child's directory."""
RESTRICTED_FILE = "restricted.npz"
"""The restricted master's newest improving placement (``node``, ``start``)."""


@dataclass(frozen=True)
class RestrictedRequest(BoundRequest):
    """A :class:`~optisched.bounds.process.BoundRequest` followed by the restricted master.

    Attributes
    ----------
    deadline : float or None
        ``time.time()`` at which the restricted master ends.
    """

    deadline: float | None = None


class RestrictedMasterProcess(BoundProcess):
    """The LP bound in a child process, then the restricted master until ``time_limit``.

    Parameters
    ----------
    problem : Problem
        The problem.
    time_limit : float
        Seconds for the child (bound and restricted master).
    method : {"lp", "colgen"}
        The bound; the restricted master needs the LP's start columns, so it runs
        after ``"lp"`` only.
    """

    child_module = "optisched.solvers.lns.bound_child"

    def __init__(self, problem: Problem, time_limit: float, method: str = "lp",
                 aggregate_first: bool = False) -> None:
        super().__init__(problem, time_limit, method, aggregate_first)
        self.incumbent = self.path(INCUMBENT_FILE)
        self._rm_seen = 0.0

    def _request(self, request: BoundRequest) -> BoundRequest:
        # the child ends its MILP a little before the caller's deadline, so that its
        # last bound and plan are written before the caller reads them
        margin = min(5.0, 0.05 * request.time_limit)
        return RestrictedRequest(request.problem, request.time_limit, request.method,
                                 request.aggregate_first,
                                 deadline=time.time() + request.time_limit - margin)

    def share_incumbent(self, node: np.ndarray, start: np.ndarray) -> None:
        """Give the child the caller's best placement (warm start of the restricted master)."""
        if self.done:
            return
        save_npz(self.incumbent, node=np.asarray(node), start=np.asarray(start))

    def restricted_solution(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The child's newest restricted-master placement ``(node, start)`` not yet read."""
        path = self.path(RESTRICTED_FILE)
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return None
        if mtime <= self._rm_seen:
            return None
        got = load_npz(path, ("node", "start"))
        if got is None:
            return None
        self._rm_seen = mtime
        return got[0], got[1]


def restricted_master(problem: Problem, placement: tuple[np.ndarray, ...],
                      incumbent_path: os.PathLike[str] | str, time_limit: float,
                      found: Callable[[np.ndarray, np.ndarray], None],
                      lp_value: float | None = None,
                      proven: Callable[[float], None] | None = None) -> None:
    """The MILP over the LP's support columns, reporting every improving placement.

    Rounds, each warm-started from the newest incumbent (the caller keeps improving it)
    with that incumbent's columns added, each given half of the time left (all of it
    below 20 s); a round that proves its restricted model optimal early frees the core
    for the next at once. When after the first round the incumbent is still more than
    :data:`FULL_MILP_GAP` above ``lp_value`` [money], the LP bound itself is likely weak
    (sleeping nodes with idle draw, tight packing: ICON samples 6-22 %), so the rest of
    the time goes to the **full** MILP: its plans are reported the same way and its
    final dual bound, a proven bound of the problem, goes to ``proven`` (ICON sample01:
    HiGHS raises 2314.3 to 2407.9 in 400 s).

    Columns of jobs not pinned: every start column with LP value >
    :data:`~optisched.bounds.lp.PLACEMENT_MIN`, the same option one slot earlier and later,
    and the incumbent's placement read from ``incumbent_path`` (written by
    :meth:`RestrictedMasterProcess.share_incumbent`; waited for up to 5 s), which is also
    the warm start. Every solution of this restricted model is a
    plan of the problem (its columns are a subset); ``found(node, start)`` receives each
    improving one (node = -1: dropped). Runs until ``time_limit`` [s], one thread.
    A price-and-branch heuristic; the LP's support is where an optimum usually lies
    when the LP gap is small (medium instances: 0.8 %).
    """
    t_end = time.perf_counter() + time_limit
    index = compile_index(problem)
    full = False
    phase = 0
    exhausted: bytes | None = None  # incumbent whose restricted model was solved to optimality
    while True:
        left = t_end - time.perf_counter()
        if left < 0.5:
            return
        warm = _read_incumbent(index, incumbent_path, wait=5.0 if phase == 0 else 0.0)
        if phase > 0 and warm is not None and lp_value is not None and math.isfinite(lp_value):
            obj = evaluate(problem, warm, index).objective
            full = obj - lp_value > FULL_MILP_GAP * max(1.0, abs(obj))
        key = None if warm is None else warm.node.tobytes() + warm.start.tobytes()
        if not full and key is not None and key == exhausted:
            time.sleep(min(0.5, left))  # same model, same optimum: wait for a new incumbent
            continue
        if full:
            model = build_milp(index)
        else:
            model = build_milp(index, allowed=_support_columns(index, placement, warm))
            left = left / 2.0 if left > 20.0 else left

        def on_solution(x: np.ndarray, model: MilpModel = model) -> None:
            n_, s_, _ = placement_from_solution(index, model, x)
            found(n_, s_)

        plan = run_highs(problem, index, SolveOptions(
            time_limit=left, seed=phase, threads=1, mip_gap=1e-6, warm_start=warm,
            params=HighsOptions(greedy_start=False, explain=False)), name="lns", model=model,
            on_solution=on_solution)
        phase += 1
        if not full and plan.status is Status.OPTIMAL:
            exhausted = key
        if full:
            if proven is not None and plan.bound is not None and math.isfinite(plan.bound):
                proven(float(plan.bound))
            return


def _read_incumbent(index: Index, path: os.PathLike[str] | str, wait: float) -> Plan | None:
    """The incumbent placement shared by the caller, with exact flows; None if absent."""
    end = time.perf_counter() + wait
    while True:
        got = load_npz(path, ("node", "start"))
        if got is not None:
            break
        if time.perf_counter() >= end:
            return None
        time.sleep(0.1)
    return dispatched_plan(index, "lns", got[0], got[1])


def _support_columns(index: Index, placement: tuple[np.ndarray, ...], warm: Plan | None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(option, start)``: the LP's support, one slot either side, and ``warm``'s columns."""
    job, node, start, _ = placement
    jobs = [np.repeat(job, 3)]
    nodes = [np.repeat(node, 3)]
    starts = [(start[:, None] + np.array([-1, 0, 1])).reshape(-1)]
    if warm is not None:
        placed = np.nonzero(warm.node >= 0)[0]
        jobs.append(placed)
        nodes.append(warm.node[placed])
        starts.append(warm.start[placed])
    j_all, n_all, s_all = (np.concatenate(a) for a in (jobs, nodes, starts))
    opts = np.array([index.find_option(int(j), int(n)) for j, n in zip(j_all, n_all,
                                                                        strict=True)],
                    dtype=np.int64)
    ok = opts >= 0
    return opts[ok], s_all[ok]
