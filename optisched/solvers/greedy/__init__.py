"""``greedy``: vectorized marginal-cost insertion, exact dispatch and local search.

The algorithm (``docs/algorithms/greedy.md`` has the full statement):

1. **Order.** Pinned jobs first (they are fixed), then must-run jobs before
   droppable ones; within each, least *slack* first (the widest start window of
   the job over its eligible nodes, ``opt_latest − opt_earliest`` [slots]), then
   larger reference energy ``power_kw · duration_min / 60`` [kWh] first, then
   larger drop penalty first, then file order.
2. **Construction.** For each job, every eligible (node, start) pair is scored at
   once in numpy over ``(K options × T slots)`` arrays: the marginal energy cost
   of the added load given the node's current load, PV surplus, export and an
   estimate of what the battery can still shift; the switching cost of waking a
   sleeping node (idle draw in the newly-on slots, start-up and shut-down); the
   latency and tardiness cost. Window sums use prefix sums over slots. Windows
   that break capacity (every resource), availability, the node's grid headroom
   or the feeder headroom are excluded. The cheapest pair wins; a droppable job
   is dropped when its penalty is lower; a must-run job that fits nowhere is left
   for the feasibility engine.
2b. **Feasibility engine** (:mod:`~optisched.solvers.greedy.feasibility`), when
   construction left must-run jobs out: ejection chains, an overload
   (min-conflicts) search, CP-SAT's packing model on small instances and
   restarts in difficulty orders, within the time limit. ``no_solution`` when its
   budget is spent (the message names what was left out and why), ``infeasible``
   only with a proof.
3. **Dispatch.** :func:`optisched.dispatch.dispatch_load` gives the exact
   cost-optimal flows for the placement, per dispatch group (a coupled feeder or
   a single node).
4. **Local search** until ``time_limit`` (default 1 s) or ``iterations`` moves:
   relocate a job (re-insert it at its best estimated place), hop it to a random
   other node, shift it on its node, swap two jobs between nodes, insert a
   dropped job, drop an optional job, keep a sleeping node on across a short gap
   (or stop doing so), and empty a lightly used sleeping node; ruin and recreate
   up to 6 related jobs (by shared node and window, by a window of slots, by two
   nodes) and wake a sleeping node for the jobs it takes
   (:mod:`~optisched.solvers.greedy.ruin`). A move is kept only when the exact
   objective (re-dispatched affected groups + switching + latency + tardiness +
   drop, the evaluator's objective) falls. The incumbent is always a complete plan.

Options: :class:`~optisched.solvers.options.GreedyOptions` (``iterations``,
``candidates``, ``improve``, ``second_start``, ``repair``, ``repair_time_limit``,
``repair_steps``).

Determinism: same input, seed and options give the same plan when the search
ends by ``iterations`` or by running out of improving moves; a search cut by
``time_limit`` depends on machine speed.

Modules, by role:

- :mod:`~optisched.solvers.greedy.state`: :class:`GreedyState`, the placement and
  everything derived from it (loads, capacity use, on-state, dispatch, objective);
- :mod:`~optisched.solvers.greedy.scan`: :class:`Scorer`, the vectorized scoring of
  a job's (node, start) candidates (step 2);
- :mod:`~optisched.solvers.greedy.construct`: job order, construction, insertion,
  repair (steps 1-2);
- :mod:`~optisched.solvers.greedy.moves`: the eight single-job and node moves and
  ``try_move``;
- :mod:`~optisched.solvers.greedy.ruin`: the ruin-and-recreate and wake moves;
- :mod:`~optisched.solvers.greedy.search`: the local search (step 4) and
  :class:`GreedySearch`;
- :mod:`~optisched.solvers.greedy.feasibility`: the feasibility engine
  (:func:`repair_placement`, step 2b), also for ``lns`` and the re-planner;
- :mod:`~optisched.solvers.greedy.run`: :func:`solve_greedy` (the registry entry),
  :func:`run_greedy`, the multi-start.
"""

from __future__ import annotations

from optisched.solvers.greedy.construct import job_order
from optisched.solvers.greedy.feasibility import RepairResult, repair_placement
from optisched.solvers.greedy.run import DEFAULT_TIME_LIMIT, run_greedy, solve_greedy
from optisched.solvers.greedy.scan import DEFAULT_CANDIDATES, LARGE_CANDIDATES, Best, Scorer
from optisched.solvers.greedy.search import GreedySearch
from optisched.solvers.greedy.state import GreedyState

__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_TIME_LIMIT",
    "LARGE_CANDIDATES",
    "Best",
    "GreedySearch",
    "GreedyState",
    "RepairResult",
    "Scorer",
    "job_order",
    "repair_placement",
    "run_greedy",
    "solve_greedy",
]
