"""The solver registry: every solver by name, with its module, its needs and its options.

Each solver is registered with the module and function that implement it,
imported lazily, so a missing optional backend only disables its solver, and
with the class of its typed options (:mod:`optisched.solvers.options`), so
options are checked before any backend is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optisched.solvers.base import SolverFunction
from optisched.solvers.options import (
    BaselineOptions,
    CpsatOptions,
    DistributedOptions,
    GreedyOptions,
    HighsOptions,
    LnsOptions,
    OptionError,
    PyomoOptions,
    SolverOptions,
)

__all__ = [
    "DEFAULT_SOLVER_ORDER",
    "REGISTRY",
    "SolverSpec",
    "available_solvers",
    "default_solver",
    "register",
]


@dataclass(frozen=True)
class SolverSpec:
    """A registered solver.

    Attributes
    ----------
    name : str
        Registry name (``--solver``).
    module, function : str
        Where the :class:`~optisched.solvers.base.SolverFunction` lives.
    description : str
        One line for ``optisched solvers``.
    requires : tuple of str
        Importable packages it needs.
    exact : bool
        Whether it can prove optimality.
    options : type of SolverOptions
        Its typed options.
    """

    name: str
    module: str
    function: str
    description: str
    requires: tuple[str, ...] = ()
    exact: bool = False
    options: type[SolverOptions] = SolverOptions

    def available(self) -> bool:
        """True when every required package can be imported."""
        return all(importlib.util.find_spec(p) is not None for p in self.requires)

    def load(self) -> SolverFunction:
        """Import and return the solver function."""
        fn: SolverFunction = getattr(importlib.import_module(self.module), self.function)
        return fn

    def parse_options(self, values: SolverOptions | Mapping[str, Any] | None) -> SolverOptions:
        """This solver's options from a mapping (typed or text values) or an instance.

        Raises
        ------
        OptionError
            An unknown key, a mistyped value, or options of another solver.
        """
        if values is None:
            return self.options()
        if isinstance(values, SolverOptions):
            if isinstance(values, self.options):
                bad = values.check()
                if bad is not None:
                    raise OptionError(self.name, bad[0], f"= {getattr(values, bad[0])!r}: "
                                      f"{bad[1]}", self.options.keys())
                return values
            raise OptionError(self.name, type(values).__name__,
                              f"are not {self.options.__name__}", self.options.keys())
        return self.options.from_mapping(values, self.name)


REGISTRY: dict[str, SolverSpec] = {}


def register(spec: SolverSpec) -> None:
    """Add (or replace) a solver in the registry."""
    REGISTRY[spec.name] = spec


register(SolverSpec("baseline", "optisched.solvers.baseline", "solve_baseline",
                    "reference: earliest feasible placement, battery idle, grid covers the rest",
                    options=BaselineOptions))
register(SolverSpec("greedy", "optisched.solvers.greedy", "solve_greedy",
                    "marginal-cost insertion + exact dispatch + local search (anytime, "
                    "default 1 s)", requires=("highspy",), options=GreedyOptions))
register(SolverSpec("highs", "optisched.solvers.highs", "solve_highs",
                    "exact MILP (vectorized build) solved by HiGHS, greedy warm start",
                    requires=("highspy",), exact=True, options=HighsOptions))
register(SolverSpec("pyomo", "optisched.solvers.pyomo_solver", "solve_pyomo",
                    "the same exact MILP as a Pyomo model, any Pyomo solver (--pyomo-solver)",
                    requires=("pyomo", "highspy"), exact=True, options=PyomoOptions))
register(SolverSpec("cpsat", "optisched.solvers.cpsat", "solve_cpsat",
                    "CP-SAT (OR-Tools) on a scaled integer relaxation, flows re-dispatched "
                    "exactly", requires=("ortools",), exact=True, options=CpsatOptions))
register(SolverSpec("lns", "optisched.solvers.lns", "solve_lns",
                    "adaptive large-neighbourhood search: greedy start, exact sub-MILPs "
                    "(HiGHS), Lagrangian/LP bound", requires=("highspy",), options=LnsOptions))
register(SolverSpec("distributed", "optisched.solvers.distributed", "solve_distributed",
                    "decomposed: node partitions solved in parallel (Ray or processes), "
                    "coordination rounds, per-partition bound", requires=("highspy",),
                    options=DistributedOptions))


def available_solvers() -> list[str]:
    """Names of registered solvers whose packages are installed."""
    return [name for name, spec in REGISTRY.items() if spec.available()]


DEFAULT_SOLVER_ORDER = ("lns", "greedy", "baseline")


def default_solver() -> str:
    """The best registered solver: ``lns``, else ``greedy``, else ``baseline``."""
    for name in DEFAULT_SOLVER_ORDER:
        if name in REGISTRY and REGISTRY[name].available():
            return name
    return "baseline"
