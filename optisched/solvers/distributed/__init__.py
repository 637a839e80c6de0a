"""``distributed``: decomposed solving on Ray or a local process pool.

The algorithm (``docs/algorithms/distributed.md`` has the full statement and measured
figures):

1. **Partition** the nodes (:mod:`~optisched.solvers.distributed.partition`): whole
   dispatch groups (a coupled feeder never spans partitions, so each partition's exact
   dispatch is exact for the whole plan), nodes of one user region together (latency
   SLOs keep most jobs local), balanced by capacity and node count.
2. **Coarse assignment** of jobs to partitions (:mod:`~optisched.solvers.distributed.coarse`):
   a transportation LP over aggregate capacity per partition and time block and every
   job's cheapest placement per partition at marginal prices, solved by HiGHS.
3. **Sub-solves in parallel**: every partition as a problem of its own
   (:func:`~optisched.solvers.distributed.partition.sub_problem`, its index sliced from the
   global one), solved by ``greedy`` then ``lns`` within work caps
   (:class:`~optisched.solvers.distributed.worker.PartitionWorker`).
4. **Coordination rounds** (:mod:`~optisched.solvers.distributed.coordinate`): jobs are
   priced at the marginal prices of the current plan on every other partition; disjoint
   pairs of partitions with the largest estimated gains exchange their movers and are
   re-solved, kept when their exact cost falls (a distributed LNS over partition pairs);
   the other partitions get an LNS round of their own. Until ``rounds``, convergence or
   the time limit.
5. **Assembly and bound**: the partitions' placements and flows form the global plan
   (no feeder spans partitions, so no dispatch across them is needed); ``solve()``
   verifies it with the evaluator. The global bound relaxes the mobile jobs'
   assignment rows, so it decomposes by partition: each partition's first-solve task,
   right after its plan and within a share of the budget, bounds its own problem with the
   Lagrangian bound of :mod:`optisched.bounds.lagrangian` (dispatch duals, capacity
   prices, midpoint passes); the driver adds the job-free parts and takes each job's
   minimum over partitions. Nothing of the bound runs after the plan but that sum (and
   more capacity steps in the time the rounds leave).

Engines (:mod:`~optisched.solvers.distributed.backends`): Ray actors (problem and index
put in the object store once), a spawned process pool, or inline for one partition.

Determinism: partitions, coarse LP, seeds (from ``seed``, round and partition) and the
work caps of the sub-solves do not depend on time or on the engine, and results are
merged in partition order; so the same input, seed and options give the same plan on
Ray, on the process pool and inline, with any number of workers, whenever the run ends
by ``rounds`` or by convergence (a run cut by the time limit depends on machine speed).

Options: :class:`~optisched.solvers.options.DistributedOptions`.
"""

from __future__ import annotations

from optisched.solvers.distributed.search import DEFAULT_TIME_LIMIT, solve_distributed

__all__ = ["DEFAULT_TIME_LIMIT", "solve_distributed"]
