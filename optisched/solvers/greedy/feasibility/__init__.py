"""The feasibility engine: a plan whenever one can be found, ``infeasible`` only with a proof.

When the greedy's construction leaves must-run work out (tightly packed fleets: ICON
2014-class instances at 80-90 % resource use), the engine repairs the placement
instead of giving up. It is shared: ``greedy`` calls it after construction, and
``lns`` (its start) and the re-planner (its repair) can call it on any
:class:`~optisched.solvers.greedy.state.GreedyState`.

Entry points:

* :func:`repair_placement` — place the must-run jobs a partial placement leaves out,
  within a deadline and/or a step cap; returns a :class:`RepairResult` (complete, or
  what was left out and why, or a proof).
* :func:`prove_infeasible` — cheap vectorized proofs that no plan exists (power of a
  single job, compulsory parts of single-node jobs).
* :class:`EjectionChain` — the repair step itself (ejection chains with a depth
  limit, all or nothing), for callers that drive their own loop.
* :class:`ConflictSearch` — the overload (min-conflicts) search.

Modules: :mod:`.eject` (the repair step), :mod:`.conflicts` (the overload search),
:mod:`.orders` (difficulty orders), :mod:`.engine` (cycles, exact packing, restarts),
:mod:`.proof` (proofs).
``docs/algorithms/greedy.md`` §7 states the algorithm and its guarantees.
"""

from optisched.solvers.greedy.feasibility.conflicts import ConflictSearch
from optisched.solvers.greedy.feasibility.eject import (
    EjectionChain,
    Journal,
    StepLimits,
    job_weights,
)
from optisched.solvers.greedy.feasibility.engine import (
    LEVELS,
    RepairResult,
    repair_placement,
)
from optisched.solvers.greedy.feasibility.orders import (
    ORDER_KINDS,
    difficulty,
    difficulty_order,
)
from optisched.solvers.greedy.feasibility.proof import (
    ExactVerdict,
    exact_packing,
    power_proof,
    prove_infeasible,
    timetable_proof,
)

__all__ = [
    "LEVELS",
    "ORDER_KINDS",
    "ConflictSearch",
    "EjectionChain",
    "ExactVerdict",
    "Journal",
    "RepairResult",
    "StepLimits",
    "difficulty",
    "difficulty_order",
    "exact_packing",
    "job_weights",
    "power_proof",
    "prove_infeasible",
    "repair_placement",
    "timetable_proof",
]
