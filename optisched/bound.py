"""Lower bound on the optimum: the LP relaxation of the exact MILP.

:func:`lp_bound` builds the same model as the ``highs`` solver
(:func:`optisched.formulations.milp.build_milp`), drops integrality and solves
the LP with HiGHS. Every plan of the problem costs at least this much, so any
plan can be reported with a gap ``(objective − bound) / |objective|``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from optisched.backends import highs as hs
from optisched.domain import Problem
from optisched.index import Index, compile_index
from optisched.plan import Plan, Status

if TYPE_CHECKING:
    from optisched.formulations.milp import MilpModel

FloatArray = npt.NDArray[np.float64]

__all__ = ["BoundProcess", "BoundResult", "dual_value", "implied_upper_bounds", "lp_bound",
           "lp_bound_result", "read_placement", "restricted_master"]

DEFAULT_LP_SOLVER = "ipm"
"""HiGHS LP method: interior point, without crossover. On the 100 x 20 x 96 benchmark
instances it took 80-100 s with crossover where dual simplex had not finished after
120 s (``formulations/milp.md``); without crossover, 10.5 s on generate medium seed 0
(33 k columns, one core)."""


@dataclass(frozen=True)
class BoundResult:
    """Result of :func:`lp_bound_result`.

    Attributes
    ----------
    bound : float
        LP optimum [money]; ``inf`` when the LP is infeasible (then so is the
        problem), ``-inf`` when it was not solved in time.
    status : str
        HiGHS model status.
    seconds : float
        Build + solve time [s].
    columns, rows : int
        Model size.
    """

    bound: float
    status: str
    seconds: float
    columns: int
    rows: int


def lp_bound_result(problem: Problem, index: Index | None = None,
                    time_limit: float | None = None, solver: str = DEFAULT_LP_SOLVER,
                    threads: int | None = None, crossover: bool = False,
                    placement_path: str | None = None) -> BoundResult:
    """LP relaxation of the exact MILP with status and timing (see :func:`lp_bound`).

    Without ``crossover`` (the default) the interior-point solution is not turned into
    a basic one; the bound is then :func:`dual_value` of its duals, a weak-duality
    bound that holds whatever their accuracy (equal to the LP value within 1e-8
    relative on the medium and ICON instances, at half the time).

    With ``placement_path``, an optimal LP's start columns with value above
    :data:`PLACEMENT_MIN` are saved there (``numpy.savez``: ``job``, ``node``,
    ``start``, ``value``), written atomically, for LP-guided neighbourhoods.
    """
    from optisched.formulations.milp import build_milp

    t0 = time.perf_counter()
    index = index or compile_index(problem)
    model = build_milp(index)
    h = hs.load(model)
    hs.configure(h, solver=solver, crossover=crossover, threads=threads, time_limit=time_limit)
    ran = hs.run(h, pool_threads=threads)
    if ran.optimal:
        sol = hs.solution(h)
        bound = (dual_value(model, index, sol.row_duals()) if sol.dual_valid
                 else hs.info(h).objective)
        if placement_path is not None and sol.value_valid:
            _save_placement(model, sol.primal(), placement_path)
    elif ran.empty:
        bound = 0.0
    elif ran.infeasible:
        bound = math.inf
    else:
        bound = -math.inf
    return BoundResult(bound, ran.text, time.perf_counter() - t0,
                       model.n_cols, model.n_rows)


def lp_bound(problem: Problem, index: Index | None = None,
             time_limit: float | None = None) -> float:
    """Lower bound on the optimal cost from the LP relaxation of the exact MILP.

    Parameters
    ----------
    problem : Problem
        The problem.
    index : Index, optional
        Its compiled index.
    time_limit : float, optional
        Seconds for the LP solve.

    Returns
    -------
    float
        The bound [money]; ``inf`` when even the relaxation is infeasible,
        ``-inf`` (no bound) when the LP was not solved within ``time_limit``.
    """
    return lp_bound_result(problem, index, time_limit).bound


FULL_MILP_GAP = 0.03
"""Relative gap between the incumbent and the LP above which the bound child solves the
full MILP (for its dual bound) instead of the restricted master."""
PLACEMENT_MIN = 1e-3
"""Smallest LP value of a start column kept by ``placement_path`` of :func:`lp_bound_result`."""


def _save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """``numpy.savez`` written atomically (:func:`optisched.atomic.write_file_atomically`)."""
    import io

    from optisched.atomic import write_file_atomically

    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    write_file_atomically(path, buf.getvalue())


def _save_placement(model: MilpModel, col_value: FloatArray, path: str) -> None:
    v = col_value[model.x]
    keep = v > PLACEMENT_MIN
    sets = model.sets
    _save_npz(path, job=sets.x_job[keep], node=sets.x_node[keep], start=sets.x_start[keep],
              value=v[keep])


def read_placement(path: str) -> tuple[np.ndarray, ...] | None:
    """``(job, node, start, value)`` saved by :func:`lp_bound_result`, None when absent."""
    try:
        with np.load(path) as z:
            return tuple(np.asarray(z[k]) for k in ("job", "node", "start", "value"))
    except (OSError, ValueError, KeyError):
        return None


def implied_upper_bounds(model: MilpModel, index: Index) -> FloatArray:
    """Column upper bounds of ``model`` with every infinite one replaced by a finite,
    implied one [kW].

    Power balance gives ``import = load + charge + export − pv_used − discharge ≤
    load + charge + export``, and a node's load is at most
    ``U_n = idle_n + Σ_{o on n} P_o`` (every eligible job at once), so
    ``import_nt ≤ U_n + charge_kw_n + export_kw_n`` and ``peak_n`` (the largest
    import) obeys the same bound in every feasible solution. Adding these bounds
    leaves the feasible set unchanged, so a bound of the bounded LP is one of the
    problem (:func:`dual_value` needs finite bounds).
    """
    ub = model.col_ub.copy()
    load = index.idle_kw + np.bincount(index.opt_node, weights=index.opt_power,
                                       minlength=index.N)
    cap = load + index.charge_kw + index.export_kw
    imp = model.grid_import
    ub[imp] = np.minimum(ub[imp], cap[:, None])
    ub[model.peak] = np.minimum(ub[model.peak], cap)
    return ub


def dual_value(model: MilpModel, index: Index, row_dual: npt.ArrayLike,
               keep_assignment: bool = True) -> float:
    """A lower bound on the MILP optimum from any row multipliers (Lagrangian dual) [money].

    For the LP ``min c·x, lo ≤ A x ≤ hi, l ≤ x ≤ u`` (bounds ``u`` from
    :func:`implied_upper_bounds`) and any ``y``, clipped to the sign its finite row
    bounds allow (``y_i ≤ 0`` where ``lo_i = −∞``, ``y_i ≥ 0`` where ``hi_i = ∞``),
    every feasible ``x`` has
    ``c·x = y·Ax + d·x ≥ Σ_i min(y_i lo_i, y_i hi_i) + Σ_k min(d_k l_k, d_k u_k)``
    with ``d = c − Aᵀy``: weak duality, valid whatever ``y`` is (an interior-point
    iterate, the duals of a restricted master, …), and equal to the LP optimum at
    optimal duals.

    With ``keep_assignment`` the ``assignment`` rows are not dualized: their ``y``
    is set to 0 and each job's columns (starts and drop) are minimised over the
    simplex ``Σ x + drop = 1`` instead of the box, i.e. the job contributes
    ``min(min_k d_k, d_drop)`` (must-run jobs: ``min_k d_k``; ``+∞`` without columns).
    This is the Lagrangian bound of column generation (Farley's bound); it is never
    weaker than the box version when ``y`` ignores the assignment rows.

    Parameters
    ----------
    model : MilpModel
        The model (``build_milp``); integrality is ignored.
    index : Index
        Its compiled index.
    row_dual : array_like, shape (n_rows,)
        Multipliers, HiGHS's sign convention (``c − Aᵀy`` are the reduced costs).
    keep_assignment : bool
        Minimise each job over its simplex (see above).

    Returns
    -------
    float
        The bound [money]; ``inf`` when a must-run job has no column.
    """
    y = np.array(row_dual, dtype=float, copy=True)
    lo, hi = model.row_lo, model.row_hi
    y = np.where(np.isneginf(lo), np.minimum(y, 0.0), y)
    y = np.where(np.isposinf(hi), np.maximum(y, 0.0), y)
    y[~np.isfinite(y)] = 0.0
    in_assign = np.zeros(model.n_rows, dtype=bool)
    if keep_assignment:
        for blk in model.blocks:
            if blk.family == "assignment":
                in_assign[blk.start:blk.start + blk.size] = True
        y[in_assign] = 0.0
    with np.errstate(invalid="ignore"):
        rows = np.where(y > 0, y * lo, np.where(y < 0, y * hi, 0.0))
    value = float(rows.sum())
    d = model.cost - model.A.T @ y
    lb = model.col_lb
    ub = implied_upper_bounds(model, index)
    box = np.ones(model.n_cols, dtype=bool)
    if keep_assignment and in_assign.any():
        x_free = model.x[~model.sets.x_fixed]
        jobs = model.sets.x_job[~model.sets.x_fixed]
        best = np.full(index.J, np.inf)
        np.minimum.at(best, jobs, d[x_free])
        has_drop = model.drop >= 0
        best[has_drop] = np.minimum(best[has_drop], d[model.drop[has_drop]])
        free_jobs = ~index.pinned
        value += float(best[free_jobs].sum())
        box[x_free] = False
        box[model.drop[has_drop]] = False
    with np.errstate(invalid="ignore"):
        cols = np.where(d > 0, d * lb, np.where(d < 0, d * ub, 0.0))
    value += float(cols[box].sum())
    return value if not math.isnan(value) else -math.inf


class BoundProcess:
    """A lower bound computed in a child Python process beside the caller.

    The child is ``python -m optisched.bound CHILD_IN CHILD_OUT`` (a plain
    subprocess, not ``multiprocessing``): it never re-imports the caller's main
    module, so a script without an ``if __name__ == "__main__"`` guard works, HiGHS's
    process-global settings are not shared, and the caller keeps its core. The
    problem goes to the child as a pickle file; the bound comes back as a text file
    written atomically. A failed child means no bound, never an error.

    Parameters
    ----------
    problem : Problem
        The problem.
    time_limit : float
        Seconds for the child's solve.
    method : {"lp", "colgen"}
        :func:`lp_bound_result`, or the column-generation bound of
        :mod:`optisched.colgen` (for models too large for the LP).
    restricted : bool
        After the LP (method ``"lp"``), solve the *restricted master* in the child
        until ``time_limit`` (:func:`restricted_master`): the MILP over the LP's
        support, its neighbours and the caller's incumbent (:meth:`share_incumbent`);
        its improving plans are read with :meth:`restricted_solution`.
    """

    def __init__(self, problem: Problem, time_limit: float, method: str = "lp",
                 restricted: bool = False) -> None:
        import pickle
        import subprocess
        import sys
        import tempfile
        from pathlib import Path

        self.dir = tempfile.TemporaryDirectory(prefix="optisched-bound-")
        d = Path(self.dir.name)
        self.out = d / "bound.txt"
        with open(d / "in.pickle", "wb") as fh:
            # the child ends its MILP a little before the caller's deadline, so that
            # its last bound and plan are written before the caller reads them
            margin = min(5.0, 0.05 * float(time_limit))
            pickle.dump((problem, float(time_limit), method,
                         time.time() + float(time_limit) - margin if restricted else None), fh,
                        protocol=pickle.HIGHEST_PROTOCOL)
        self.incumbent = d / "incumbent.npz"
        self._rm_seen = 0.0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "optisched.bound", str(d / "in.pickle"), str(self.out)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.value: float | None = None
        self.done = False
        self.placement: tuple[np.ndarray, ...] | None = None
        """The LP's start columns ``(job, node, start, value)`` once it has ended
        (method ``"lp"`` and an optimal LP only)."""

    def poll(self, wait: float = 0.0) -> float | None:
        """The best bound the child has written so far, None before the first.

        Waits up to ``wait`` [s] for the child to end (:attr:`done`); a child that
        improves its bound over time (``colgen``) rewrites the file, and every read
        keeps the largest value.
        """
        if self.done:
            return self.value
        end = time.perf_counter() + max(0.0, wait)
        while self.proc.poll() is None and time.perf_counter() < end:
            time.sleep(min(0.05, max(0.0, end - time.perf_counter())))
        try:
            v = float(self.out.read_text())
        except (OSError, ValueError):
            v = math.nan
        if math.isfinite(v) and (self.value is None or v > self.value):
            self.value = v
        if self.placement is None:
            self.placement = read_placement(str(self.out.with_name("placement.npz")))
        if self.proc.poll() is not None:
            self.done = True
        return self.value

    def share_incumbent(self, node: np.ndarray, start: np.ndarray) -> None:
        """Give the child the caller's best placement (warm start of the restricted master)."""
        if self.done:
            return
        _save_npz(self.incumbent, node=np.asarray(node), start=np.asarray(start))

    def restricted_solution(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The child's newest restricted-master placement ``(node, start)`` not yet read."""
        path = self.out.with_name("restricted.npz")
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return None
        if mtime <= self._rm_seen:
            return None
        try:
            with np.load(path) as z:
                got = np.asarray(z["node"]), np.asarray(z["start"])
        except (OSError, ValueError, KeyError):
            return None
        self._rm_seen = mtime
        return got

    def stop(self) -> None:
        """Terminate the child if it still runs, and remove its files."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2.0)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.done = True
        self.dir.cleanup()


def _child_main(argv: list[str]) -> int:
    """Entry point of :class:`BoundProcess`'s child: ``IN.pickle OUT.txt``."""
    import pickle
    from pathlib import Path

    from optisched.atomic import write_file_atomically

    src, dst = argv
    with open(src, "rb") as fh:
        problem, time_limit, method, rm_deadline = pickle.load(fh)
    if method == "colgen":
        from optisched.colgen import colgen_bound

        def progress(bound: float, elapsed: float) -> None:
            if math.isfinite(bound):
                write_file_atomically(dst, repr(float(bound)))

        value = float(colgen_bound(problem, time_limit=time_limit, progress=progress).bound)
    else:
        place = str(Path(dst).with_name("placement.npz"))
        value = float(lp_bound_result(problem, time_limit=time_limit, threads=1,
                                      placement_path=place).bound)
    if math.isfinite(value):
        write_file_atomically(dst, repr(value))
    placement = read_placement(str(Path(dst).with_name("placement.npz")))
    if rm_deadline is not None and placement is not None and math.isfinite(value):
        out = Path(dst).with_name("restricted.npz")

        def found(node: np.ndarray, start: np.ndarray) -> None:
            _save_npz(out, node=node, start=start)

        def proven(bound: float) -> None:
            if bound > value:
                write_file_atomically(dst, repr(float(bound)))

        restricted_master(problem, placement, Path(dst).with_name("incumbent.npz"),
                          rm_deadline - time.time(), found, lp_value=value, proven=proven)
    return 0


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

    Columns of jobs not pinned: every start column with LP value > :data:`PLACEMENT_MIN`,
    the same option one slot earlier and later, and the incumbent's placement read from
    ``incumbent_path`` (written by :meth:`BoundProcess.share_incumbent`; waited for up
    to 5 s), which is also the warm start. Every solution of this restricted model is a
    plan of the problem (its columns are a subset); ``found(node, start)`` receives each
    improving one (node = -1: dropped). Runs until ``time_limit`` [s], one thread.
    A price-and-branch heuristic; the LP's support is where an optimum usually lies
    when the LP gap is small (medium instances: 0.8 %).
    """
    from optisched.formulations.milp import build_milp
    from optisched.solvers.base import SolveOptions
    from optisched.solvers.highs import placement_from_solution, run_highs
    from optisched.solvers.options import HighsOptions

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
            from optisched.evaluate import evaluate

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
    from optisched.solvers.base import dispatched_plan

    end = time.perf_counter() + wait
    while True:
        try:
            with np.load(path) as z:
                node, start = np.asarray(z["node"]), np.asarray(z["start"])
            break
        except (OSError, ValueError, KeyError):
            if time.perf_counter() >= end:
                return None
            time.sleep(0.1)
    return dispatched_plan(index, "lns", node, start)


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


if __name__ == "__main__":  # pragma: no cover - run as the child of BoundProcess
    import sys

    raise SystemExit(_child_main(sys.argv[1:]))
