"""lns on problems with jobs that can never run (found by the re-planner's 48-hour loop)."""

from __future__ import annotations

from optisched import evaluate, solve
from optisched.domain import Job
from optisched.generate.random_problems import random_problem


def test_lns_with_a_droppable_job_that_fits_no_node() -> None:
    # a droppable job eligible nowhere gave neighbourhoods without nodes: the evaluator's
    # messages reduced an empty array and splice indexed it (ValueError/IndexError)
    for seed in (1, 2, 3):
        p = random_problem(seed, n_nodes=4, n_jobs=10, slots=12, sleep=True, feeders=True)
        nofit = Job(job_id="nofit", gpus=1000, duration_min=60, power_kw=1.0, drop_penalty=5.0)
        q = p.model_copy(update={"jobs": [*p.jobs, nofit]})
        plan = solve(q, "lns", time_limit=30, seed=seed, max_iterations=15, lp_bound=False)
        assert plan.status.has_plan, plan.message
        assert plan.node[-1] == -1 and evaluate(q, plan).feasible
