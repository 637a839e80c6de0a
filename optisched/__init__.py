"""optisched: where and when AI jobs run on a grid of small, locally powered compute nodes.

The contract (input bundle, constraints, cost, plan files) is stated in
``docs/contract/``. Typical use::

    import optisched
    problem = optisched.read_bundle("datasets/tiny")
    plan = optisched.solve(problem, solver="lns", time_limit=10, max_iterations=50)
    report = optisched.evaluate(problem, plan)
    optisched.write_plan(problem, plan, "plan/")

    replanner = optisched.Replanner(problem)          # real-time re-planning
    bound = optisched.lp_bound(problem)               # a proven lower bound [money]

The public API is :data:`__all__`; everything else (``optisched.index.Index``,
``optisched.index.compile_index``, …) is internal and may change. ``Replanner`` and
``lp_bound`` are imported on first use, so ``import optisched`` does not load the
solver backends.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

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
from optisched.io import read_bundle, write_bundle
from optisched.plan import Flows, Plan, Status, read_plan, write_plan
from optisched.solvers import OptionError, Progress, SolveOptions, available_solvers, solve
from optisched.solvers.options import (
    BaselineOptions,
    CpsatOptions,
    GreedyOptions,
    HighsOptions,
    LnsOptions,
    PyomoOptions,
    SolverOptions,
)

if TYPE_CHECKING:
    from optisched.bounds import lp_bound
    from optisched.replan import Replanner

__version__ = "0.1.0.dev0"

__all__ = [
    "BaselineOptions",
    "BundleError",
    "CpsatOptions",
    "Evaluation",
    "Feeder",
    "Flows",
    "GreedyOptions",
    "HighsOptions",
    "Horizon",
    "InputError",
    "Job",
    "LnsOptions",
    "Node",
    "NodeSeries",
    "OptionError",
    "Plan",
    "Problem",
    "Progress",
    "PyomoOptions",
    "Region",
    "Replanner",
    "Scenario",
    "SolveOptions",
    "SolverOptions",
    "Status",
    "Tariff",
    "Violation",
    "__version__",
    "available_solvers",
    "evaluate",
    "lp_bound",
    "read_bundle",
    "read_plan",
    "solve",
    "write_bundle",
    "write_plan",
]

_LAZY = {"Replanner": "optisched.replan", "lp_bound": "optisched.bounds"}
"""Public names imported on first use: they load HiGHS and the greedy solver."""


def __getattr__(name: str) -> Any:
    """Import :data:`_LAZY` names on first access (PEP 562)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'optisched' has no attribute {name!r}")


logging.getLogger(__name__).addHandler(logging.NullHandler())
