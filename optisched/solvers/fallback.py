"""The plan of an exact solver whose own model gives none: greedy on the time left.

``highs``, ``pyomo`` and ``cpsat`` solve a model; when it cannot be built or run in the
time left, or it ends without a plan, the batch must still run if a plan exists
(a scheduler that sometimes returns nothing is unusable). :func:`fallback_plan` gives
``greedy`` — construction, then its feasibility engine
(:mod:`optisched.solvers.greedy.feasibility`), which repairs tightly packed instances
that construction leaves jobs out of — what is left of the caller's time limit, and
returns its plan under the caller's name with status ``feasible`` (never ``optimal``),
``info["fallback"] = "greedy"`` and a message that says why.

Measured before it existed (``python -m optisched.bench.time_limits``, 2026-12-01, load
8-9 on 2 cores): on ICON samples 02-04 ``pyomo`` returned ``no_solution`` after
0.00-0.01 s of a 10 s limit (its model does not fit), ``cpsat`` after 0.13-1.1 s, and
``highs`` on sample03 after 4.1 s, where ``greedy`` finds a plan in 2-5 s.
"""

from __future__ import annotations

import logging
import math
import time

from optisched.domain import Problem
from optisched.index import Index
from optisched.plan import Plan, Status
from optisched.solvers.base import SolveOptions, deterministic_params, plan_from_placement
from optisched.solvers.greedy import run_greedy
from optisched.solvers.options import GreedyOptions

__all__ = ["MIN_FALLBACK", "fallback_plan"]

log = logging.getLogger(__name__)

MIN_FALLBACK = 0.05
"""Fewest seconds left for which greedy is still tried [s]."""


def fallback_plan(problem: Problem, index: Index, options: SolveOptions, *, name: str,
                  why: str, seconds: float) -> Plan:
    """Greedy's plan within ``seconds`` [s], labelled as solver ``name``; else no plan.

    Parameters
    ----------
    problem, index
        The problem and its compiled index.
    options
        The caller's options (seed, threads, deterministic).
    name
        The calling solver's name (the plan's ``solver``).
    why
        Why the caller has no plan of its own; starts the message.
    seconds
        Time left for greedy [s]; in deterministic mode greedy ends by moves instead
        (:func:`~optisched.solvers.base.deterministic_params` of the caller's limit).

    Returns
    -------
    Plan
        Status ``feasible`` with ``info["fallback"] = "greedy"``, or ``no_solution``
        (message ``why`` and greedy's reason) when greedy finds none either.
    """
    limit: float | None
    if options.deterministic:
        params, limit = deterministic_params(GreedyOptions(), options.time_limit)
    elif not math.isfinite(seconds):  # no time limit: greedy's defaults
        params, limit = GreedyOptions(), None
    elif seconds >= MIN_FALLBACK:
        params, limit = GreedyOptions(repair_time_limit=seconds), seconds
    else:
        return Plan.empty(problem, name, Status.NO_SOLUTION, why + "; no time left for greedy")
    sub = SolveOptions(time_limit=limit, seed=options.seed, threads=options.threads,
                       params=params, deterministic=options.deterministic,
                       started=time.perf_counter())
    greedy = run_greedy(problem, index, sub)
    if not greedy.status.has_plan or greedy.flows is None:
        log.info("%s: fallback greedy found no plan either (%s)", name, greedy.message)
        return Plan.empty(problem, name, Status.NO_SOLUTION,
                          f"{why}; greedy found no plan either: {greedy.message}")
    plan = plan_from_placement(problem, index, name, Status.FEASIBLE, greedy.node,
                               greedy.start, greedy.flows,
                               message=f"{why}; plan of greedy (the fallback, "
                                       f"{greedy.timings.get('solve', 0.0):.2g} s)")
    plan.objective = greedy.objective
    plan.info = {"fallback": "greedy"}
    return plan
