"""optisched: where and when AI jobs run on a grid of small, locally powered compute nodes.

The contract is the SPEC (input bundle, constraints, cost, plan files). Typical use::

    import optisched
    problem = optisched.read_bundle("datasets/tiny")
    plan = optisched.solve(problem, solver="baseline")
    report = optisched.evaluate(problem, plan)
    optisched.write_plan(problem, plan, "plan/")
"""

from __future__ import annotations

import logging

from optisched.domain import (
    Feeder,
    Horizon,
    Job,
    Node,
    NodeSeries,
    Problem,
    Region,
    Scenario,
    Tariff,
)
from optisched.errors import BundleError, InputError
from optisched.evaluate import Evaluation, Violation, evaluate
from optisched.index import Index, compile_index
from optisched.io import read_bundle, write_bundle
from optisched.plan import Flows, Plan, Status, read_plan, write_plan
from optisched.solvers import available_solvers, solve

__version__ = "0.1.0.dev0"

__all__ = [
    "BundleError",
    "Evaluation",
    "Feeder",
    "Flows",
    "Horizon",
    "Index",
    "InputError",
    "Job",
    "Node",
    "NodeSeries",
    "Plan",
    "Problem",
    "Region",
    "Scenario",
    "Status",
    "Tariff",
    "Violation",
    "__version__",
    "available_solvers",
    "compile_index",
    "evaluate",
    "read_bundle",
    "read_plan",
    "solve",
    "write_bundle",
    "write_plan",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
