"""Proofs that no plan exists, and the exact packing model where it is small.

The feasibility engine says ``infeasible`` only with one of these proofs; a search that
merely fails says ``no_solution``. Each proof argues from a *relaxation* of SPEC §2:
if the relaxation has no solution, neither has the problem.

* :func:`power_proof` — a must-run job whose draw alone does not fit on any eligible
  node: in every start window there is a slot with
  ``idle_kw + p_o > headroom + pv + discharge_kw`` (the node must be on while the job
  runs, and its import, PV and battery discharge together cannot exceed that).
* :func:`timetable_proof` — compulsory parts (Lahrichi 1982; "timetabling" in
  cumulative propagation): a must-run job with a single eligible node runs there in
  every slot between its latest feasible start and its earliest feasible end, whatever
  the plan; pinned jobs run where they are pinned. When those compulsory uses exceed a
  capacity in some slot, no plan exists.
* :func:`exact_packing` — CP-SAT's packing model
  (:func:`optisched.formulations.packing.build_packing_model`: assignment, eligibility,
  start windows and resources per node and slot, no power), which is a relaxation of
  the problem: INFEASIBLE is a proof (only when every usage and capacity is a multiple of
  ``1 / RES_SCALE``, so that the model's integer scaling is exact); a packing it finds
  is applied to the state through the construction's checks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from optisched.index import Index
from optisched.solvers.greedy.scan import Scorer
from optisched.solvers.greedy.state import GreedyState

__all__ = ["ExactVerdict", "exact_packing", "power_proof", "prove_infeasible",
           "start_pairs", "timetable_proof"]

log = logging.getLogger(__name__)

_TOL = 1e-6
"""Tolerance of the proofs [resource units, kW]: a proof needs a clear violation."""
_NAMED = 5
"""Jobs named in a proof message."""


def start_pairs(index: Index) -> int:
    """Number of (option, start) pairs in the start windows: the time-indexed model's size."""
    return int(np.maximum(0, index.opt_latest - index.opt_earliest + 1).sum())


def prove_infeasible(index: Index) -> str | None:
    """The cheap, vectorized proofs (:func:`power_proof`, :func:`timetable_proof`), or None."""
    return power_proof(index) or timetable_proof(index)


def power_proof(index: Index) -> str | None:
    """A must-run job that cannot draw its power on any eligible node (module docstring)."""
    ix = index
    if ix.opt_job.size == 0 or not np.isfinite(ix.headroom).any():
        return None
    limit = ix.headroom + ix.pv + ix.discharge_kw[:, None] - ix.idle_kw[:, None]  # (N, T)
    limit = np.where(ix.available, limit, np.inf)
    suspect = np.nonzero(ix.opt_power > limit.min(axis=1)[ix.opt_node] + _TOL)[0]
    if suspect.size == 0:
        return None
    bad_opt = np.zeros(ix.opt_job.size, dtype=bool)
    for o in suspect.tolist():
        n, d = int(ix.opt_node[o]), int(ix.opt_dur[o])
        starts = ix.feasible_starts(o)
        if starts.size == 0:
            bad_opt[o] = True
            continue
        over = np.concatenate([[0], np.cumsum(ix.opt_power[o] > limit[n] + _TOL)])
        ends = np.minimum(starts + d, ix.T)
        lo = np.maximum(starts, 0)
        bad_opt[o] = bool(((over[ends] - over[lo]) > 0).all())
    counts = np.bincount(ix.opt_job[bad_opt], minlength=ix.J)
    stuck = np.nonzero(ix.must_run & ~ix.pinned & (counts == np.diff(ix.opt_job_ptr))
                       & (counts > 0))[0]
    if stuck.size == 0:
        return None
    j = int(stuck[0])
    o = int(ix.opt_job_ptr[j])
    return (f"job {ix.job_ids[j]}: on each of its {counts[j]} eligible node(s) its draw "
            f"({ix.opt_power[o]:g} kW on {ix.node_ids[int(ix.opt_node[o])]}) plus the node's "
            "idle draw exceeds grid headroom + PV + battery discharge in some slot of every "
            "start window; it must run" + (f" ({stuck.size - 1} more such jobs)"
                                          if stuck.size > 1 else ""))


def timetable_proof(index: Index) -> str | None:
    """Compulsory parts of single-node must-run jobs and pinned jobs over a capacity."""
    ix = index
    counts = np.diff(ix.opt_job_ptr)
    single = np.nonzero((ix.must_run | ix.pinned) & (counts == 1))[0]
    if single.size == 0:
        return None
    o = ix.opt_job_ptr[single]
    n = ix.opt_node[o]
    d = ix.opt_dur[o]
    first = ix.opt_earliest[o].copy()
    last = ix.opt_latest[o].copy()
    partial = np.asarray(~ix.available.all(axis=1))[n] & ~ix.pinned[single]
    for k in np.nonzero(partial)[0].tolist():  # availability narrows the window
        st = ix.feasible_starts(int(o[k]))
        if st.size == 0:
            continue
        first[k], last[k] = int(st[0]), int(st[-1])
    a = np.clip(last, 0, ix.T)
    b = np.clip(first + d, 0, ix.T)
    has = b > a
    if not has.any():
        return None
    single, n, a, b = single[has], n[has], a[has], b[has]
    R = len(ix.resources)
    diff = np.zeros((ix.N, ix.T + 1, R))
    np.add.at(diff, (n, a), ix.usage[single])
    np.add.at(diff, (n, b), -ix.usage[single])
    comp = np.cumsum(diff, axis=1)[:, :ix.T]
    over = comp > ix.capacity[:, None, :] + _TOL
    if not over.any():
        return None
    nn, t, r = (int(v) for v in np.argwhere(over)[0])
    who = single[(n == nn) & (a <= t) & (b > t)]
    names = ", ".join(ix.job_ids[int(j)] for j in who[:_NAMED])
    if who.size > _NAMED:
        names += f" and {who.size - _NAMED} more"
    return (f"jobs {names} can only run on node {ix.node_ids[nn]} and, whatever their start "
            f"in their windows, all run in slot {t}: together they use {comp[nn, t, r]:g} "
            f"{ix.resources[r]}, above its capacity {ix.capacity[nn, r]:g}; they must run")


@dataclass
class ExactVerdict:
    """What :func:`exact_packing` found.

    Attributes
    ----------
    status : str
        ``"packed"`` (a packing was applied), ``"infeasible"`` (proof), ``"unknown"``
        (no answer within the budget, or an infeasibility that the model's rounding may
        have caused), ``"skipped"`` (too large, or ortools missing).
    proof : str or None
        The proof message when ``status == "infeasible"``.
    seconds : float
        Time spent [s].
    """

    status: str
    proof: str | None = None
    seconds: float = 0.0


def exact_packing(state: GreedyState, scorer: Scorer, *, time_limit: float, seed: int = 0,
                  max_starts: int = 200_000, deterministic: bool = False) -> ExactVerdict:
    """Solve CP-SAT's packing model of the whole problem; apply a packing or prove none exists.

    A packing found is applied in start order through the construction's checks
    (:meth:`Scorer.fits`: power and feeders too): jobs it cannot place that way stay out
    for the repair rounds. The state is left as before when the packing leaves more
    must-run jobs out than the state did.

    Parameters
    ----------
    state : GreedyState
        The placement (changed in place when a packing is applied).
    scorer : Scorer
        Scores insertions into ``state``.
    time_limit : float
        CP-SAT's budget [s] (one worker, ``seed``).
    seed : int
        CP-SAT's random seed.
    max_starts : int
        Skip models with more (option, start) pairs than this.
    deterministic : bool
        Limit CP-SAT by its deterministic time (``max_deterministic_time =
        time_limit``) rather than the clock, so that the answer does not depend on the
        machine's speed or load.
    """
    t0 = time.perf_counter()
    ix = state.index
    if start_pairs(ix) > max_starts or time_limit <= 0.05:
        return ExactVerdict("skipped")
    try:  # ortools is imported only here: it costs start-up time greedy rarely needs
        from ortools.sat.python import cp_model

        from optisched.formulations.packing import (
            RES_SCALE,
            build_packing_model,
            extract_packing,
        )
    except ImportError:  # pragma: no cover - ortools is a dependency
        return ExactVerdict("skipped")
    pm = build_packing_model(ix, objective=False)
    solver = cp_model.CpSolver()
    if deterministic:
        solver.parameters.max_deterministic_time = max(0.05, float(time_limit))
    else:
        solver.parameters.max_time_in_seconds = max(0.05, float(time_limit))
    solver.parameters.random_seed = int(seed)
    solver.parameters.num_workers = 1
    code = solver.solve(pm.model)
    log.info("exact packing: %s in %.2f s", solver.status_name(code), time.perf_counter() - t0)
    if code == cp_model.INFEASIBLE:
        exact = all(np.allclose(a * RES_SCALE, np.round(a * RES_SCALE), rtol=0, atol=1e-6)
                    for a in (ix.usage, ix.capacity))
        if not exact:
            return ExactVerdict("unknown", seconds=time.perf_counter() - t0)
        return ExactVerdict(
            "infeasible",
            "CP-SAT proves that the must-run jobs cannot be packed: no assignment to eligible "
            "nodes and start slots in their windows keeps every node's resource use within "
            "its capacity in every slot (power left aside)",
            time.perf_counter() - t0)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return ExactVerdict("unknown", seconds=time.perf_counter() - t0)
    node, start = extract_packing(pm, solver)
    before = state.snapshot()
    left_before = int(((before.opt < 0) & ix.must_run).sum())
    state.reset()
    pinned = np.nonzero(ix.pinned & (np.diff(ix.opt_job_ptr) > 0))[0]
    state.place_many(pinned, ix.opt_job_ptr[pinned], ix.pinned_start[pinned])
    todo = np.nonzero((node >= 0) & ~ix.pinned)[0]
    for j in todo[np.argsort(start[todo], kind="stable")].tolist():
        o = ix.find_option(j, int(node[j]))
        if o >= 0 and scorer.fits(j, o, int(start[j])):
            state.place(j, o, int(start[j]))
    left = int(((state.opt < 0) & ix.must_run).sum())
    if left > left_before:
        state.restore(before)
        return ExactVerdict("unknown", seconds=time.perf_counter() - t0)
    return ExactVerdict("packed", seconds=time.perf_counter() - t0)
