"""``lns``: adaptive large-neighbourhood search around exact sub-MILPs.

The algorithm (``docs/algorithms/lns.md`` has the full statement):

1. **Start.** ``options.warm_start`` when given (a :class:`Plan` of
   this problem), else the ``greedy`` plan (``baseline`` when greedy is missing or
   fails). A start without flows gets the exact dispatch. When neither heuristic
   finds a plan, the search runs on the *penalty problem* (must-run jobs droppable at
   a large penalty ``M``) until every must-run job is placed (else ``no_solution``).
2. **Bound.** The Lagrangian bound of :mod:`optisched.bounds.lagrangian` (at the start
   plan's load and, at the end, at the best plan's load, each improved by midpoint
   rounds and capacity subgradient steps), and the LP relaxation
   (:func:`optisched.bounds.lp_bound`) in a child process when the model is small
   enough for the budget. The best is kept.
3. **Loop** until the time limit, ``max_iterations`` or a proof of optimality: pick
   a neighbourhood kind by roulette over adaptive weights, build a neighbourhood
   (nodes ``S``, freed jobs ``F``) of the current size, build it as a sub-problem
   (:mod:`optisched.solvers.lns.subproblem`: other jobs on ``S`` pinned, feeder headroom
   reduced by the incumbent net import of the feeder's nodes outside ``S``), solve it
   with the sub-solver (``highs``, warm-started from the incumbent; ``cpsat`` or
   ``greedy`` when asked or when ``highs`` is not registered) within a time limit
   that never exceeds the remaining budget, splice its placement and flows of ``S``
   back, price the whole plan with :func:`optisched.evaluate.evaluate` and accept it
   when it is feasible and strictly cheaper (then ``S`` and its coupled feeders are
   re-dispatched exactly by :func:`optisched.dispatch.dispatch_load` and the cheaper
   verified version kept).
4. **Adaptation.** A kind's weight moves towards its reward (relative improvement
   per second, or per iteration when ``max_iterations`` is set so runs are
   reproducible); the neighbourhood size grows after a sub-solve proven optimal
   and shrinks after one cut by its time limit.

Options: :class:`~optisched.solvers.options.LnsOptions`.

The package by role: :mod:`~optisched.solvers.lns.search` (the loop and
:func:`solve_lns`), :mod:`~optisched.solvers.lns.start` (start plans, the penalty
problem), :mod:`~optisched.solvers.lns.packing` (packings for tight instances),
:mod:`~optisched.solvers.lns.neighbourhoods` (which nodes and jobs are freed),
:mod:`~optisched.solvers.lns.subproblem` (a neighbourhood as a problem, its solve and
splice), :mod:`~optisched.solvers.lns.restricted` (the restricted master beside the
search) and :mod:`~optisched.solvers.lns.bound_child` (its child process).
"""

from __future__ import annotations

from optisched.solvers.lns.neighbourhoods import KINDS
from optisched.solvers.lns.search import DEFAULT_TIME_LIMIT, solve_lns

__all__ = ["DEFAULT_TIME_LIMIT", "KINDS", "solve_lns"]
