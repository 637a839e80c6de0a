"""A plan judged on what actually happened (beyond SPEC v1, ``docs/algorithms/scenarios.md``).

A plan's first stage (job placement, node on/off) is kept; its flows are settled on an
*actual* problem (the bundle with the actual PV and prices in place, no scenarios) in
two ways:

* :func:`realized` — the recourse re-optimized on the actual day by the exact
  dispatch (:func:`optisched.dispatch.dispatch` with the plan's on/off states): the
  textbook value ``Q(x, ξ)`` of the first stage ``x`` on the outcome ``ξ``;
* :func:`settled` — the simulator's slot-by-slot settlement
  (:func:`optisched.simulate.settle_slot`): the plan's battery set-point (the
  probability-weighted mean over its scenarios) kept where the actual state of charge
  allows, PV and grid in merit order, no look-ahead.

``optisched evaluate BUNDLE PLAN --actuals DIR`` reports both.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from optisched.dispatch import dispatch
from optisched.domain import Problem
from optisched.evaluate import evaluate
from optisched.index import Index, compile_index
from optisched.plan import Plan
from optisched.simulate import mean_set_point, settle_plan

__all__ = ["Realized", "realized", "settled"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Realized:
    """The cost of a plan on an actual day.

    Attributes
    ----------
    cost : float
        Objective of SPEC §3 on the actual day [money]; inf when the first stage has no
        feasible flows there.
    feasible : bool
        The settled plan meets every constraint on the actual day.
    costs : dict of str to float
        Its cost terms [money].
    violations : list of str
        The first violations (at most 5) or why no flows exist.
    plan : Plan or None
        The plan with its settled flows.
    """

    cost: float
    feasible: bool
    costs: dict[str, float] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    plan: Plan | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (no plan)."""
        return {"cost": self.cost if math.isfinite(self.cost) else None,
                "feasible": self.feasible, "costs": self.costs, "violations": self.violations}


def _check(actual: Problem, plan: Plan) -> None:
    if actual.scenarios:
        raise ValueError("an actual day has no scenarios")
    if (list(plan.job_ids) != [j.job_id for j in actual.jobs]
            or list(plan.node_ids) != [n.node_id for n in actual.nodes]):
        raise ValueError("the plan is not one of the actual problem's jobs and nodes")


def _priced(actual: Problem, index: Index, plan: Plan) -> Realized:
    ev = evaluate(actual, plan, index)
    return Realized(float(ev.objective), bool(ev.feasible), ev.costs,
                    [str(v) for v in ev.violations[:5]], plan)


def realized(actual: Problem, plan: Plan, index: Index | None = None) -> Realized:
    """The plan's first stage with the recourse re-optimized on ``actual`` (exact dispatch).

    Parameters
    ----------
    actual : Problem
        The actual day: the plan's jobs and nodes, no scenarios.
    plan : Plan
        A plan with flows (of any number of scenarios).
    index : Index, optional
        ``compile_index(actual)``, when the caller has it.
    """
    _check(actual, plan)
    assert plan.flows is not None
    index = index or compile_index(actual)
    res = dispatch(index, plan.node, plan.start, plan.flows.on)
    if not res.feasible or res.flows is None:
        log.info("realized: no feasible flows on the actuals: %s", res.message)
        return Realized(math.inf, False, violations=[res.message])
    p = Plan(solver=plan.solver, status=plan.status, job_ids=list(plan.job_ids),
             node_ids=list(plan.node_ids), node=plan.node.copy(), start=plan.start.copy(),
             flows=res.flows)
    return _priced(actual, index, p)


def settled(actual: Problem, plan: Plan, weights: Any = None,
            index: Index | None = None) -> Realized:
    """The plan settled slot by slot on ``actual`` by the simulator's rules.

    Parameters
    ----------
    actual : Problem
        The actual day.
    plan : Plan
        A plan with flows.
    weights : (S,) float, optional
        Probabilities of the plan's scenarios (the battery set-point is their weighted
        mean); default equal.
    index : Index, optional
        ``compile_index(actual)``.
    """
    _check(actual, plan)
    f = plan.flows
    assert f is not None
    index = index or compile_index(actual)
    charge, discharge = mean_set_point(f, weights)
    flows = settle_plan(index, f.on, f.load, charge, discharge)
    p = Plan(solver=plan.solver, status=plan.status, job_ids=list(plan.job_ids),
             node_ids=list(plan.node_ids), node=plan.node.copy(), start=plan.start.copy(),
             flows=flows)
    return _priced(actual, index, p)
