"""Typed options of every solver, and the one parser that checks them.

Each solver declares its options as a frozen dataclass derived from
:class:`SolverOptions`, next to its registry entry
(:mod:`optisched.solvers.registry`). The class docstring's ``Attributes``
section is the documentation of every option (type, default, unit in
brackets); ``optisched solvers --options`` prints it. Nothing here imports a
solver backend, so options can be listed and checked without HiGHS or OR-Tools.

An unknown key, a value of the wrong type or one out of range is an
:class:`OptionError` naming the solver, the key and the valid keys (the CLI
turns it into exit code 1). Values may be given typed (Python API) or as text
(``--option KEY=VALUE`` on the command line, parsed by the option's type).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, get_origin

__all__ = [
    "LNS_KINDS",
    "BaselineOptions",
    "CpsatOptions",
    "DistributedOptions",
    "GreedyOptions",
    "HighsOptions",
    "LnsOptions",
    "OptionDoc",
    "OptionError",
    "PyomoOptions",
    "SolverOptions",
    "parse_assignments",
]

T = TypeVar("T", bound="SolverOptions")

LNS_KINDS = ("window", "feeder", "region", "worst_nodes", "random_nodes", "expensive",
             "penalty", "random_jobs", "lp", "machine", "time_band", "local")
"""Neighbourhood kinds of ``lns`` (``docs/algorithms/lns.md``)."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class OptionError(ValueError):
    """An unknown, mistyped or out-of-range solver option.

    Attributes
    ----------
    solver : str
        The solver the option was given to.
    key : str
        The option's name as given.
    valid : list of str
        The solver's option names.
    """

    def __init__(self, solver: str, key: str, problem: str, valid: list[str]) -> None:
        self.solver, self.key, self.valid = solver, key, valid
        keys = ", ".join(valid) if valid else "none (this solver takes no options)"
        super().__init__(f"solver {solver!r}: option {key!r} {problem}; valid options: {keys}")


@dataclass(frozen=True)
class OptionDoc:
    """One documented option: what ``optisched solvers --options`` prints.

    Attributes
    ----------
    name : str
        The key.
    type : str
        Its type as written in the class docstring.
    default : str
        Its default, as text.
    doc : str
        What it does, unit in brackets.
    """

    name: str
    type: str
    default: str
    doc: str


@dataclass(frozen=True)
class SolverOptions:
    """Options of a solver that takes none (the base of every options class)."""

    @classmethod
    def keys(cls) -> list[str]:
        """The option names, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def describe(cls) -> list[OptionDoc]:
        """Every option with its type, default and documentation (from the docstring)."""
        docs = _attribute_docs(cls.__doc__ or "")
        out = []
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:  # pragma: no cover - every option has a default
                default = "required"
            typ, doc = docs.get(f.name, (str(f.type), ""))
            out.append(OptionDoc(f.name, typ, _show(default), doc))
        return out

    @classmethod
    def from_mapping(cls: type[T], values: Mapping[str, Any], solver: str) -> T:
        """Options from ``{key: value}``; text values are parsed by the option's type.

        Raises
        ------
        OptionError
            An unknown key, a value that does not parse or has the wrong type, or
            one outside its range (:meth:`check`).
        """
        hints = typing.get_type_hints(cls)
        valid = cls.keys()
        kwargs: dict[str, Any] = {}
        for key, raw in values.items():
            if key not in valid:
                raise OptionError(solver, key, "is unknown", valid)
            try:
                kwargs[key] = _coerce(raw, hints[key])
            except (TypeError, ValueError) as exc:
                raise OptionError(solver, key, f"= {raw!r}: {exc}", valid) from None
        opts = cls(**kwargs)
        problem = opts.check()
        if problem is not None:
            key, why = problem
            raise OptionError(solver, key, f"= {values.get(key)!r}: {why}", valid)
        return opts

    def check(self) -> tuple[str, str] | None:
        """``(key, why)`` of the first option out of its range, or None."""
        return None

    def changed(self) -> dict[str, Any]:
        """The options that differ from their defaults (for logs and summaries)."""
        base = type(self)()
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(base, f.name)}


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["key=value", …]`` (the CLI's repeated ``--option``) as a dict of text values.

    Raises
    ------
    ValueError
        An item without ``=`` or with an empty key.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--option {item!r}: expected KEY=VALUE")
        out[key] = value.strip()
    return out


# ------------------------------------------------------------------ the solvers' options


@dataclass(frozen=True)
class BaselineOptions(SolverOptions):
    """``baseline`` takes no options."""


@dataclass(frozen=True)
class GreedyOptions(SolverOptions):
    """Options of ``greedy`` (``docs/algorithms/greedy.md``).

    Attributes
    ----------
    iterations : int or None
        Cap on local-search moves [moves]; None: until the time limit (default 1 s).
        With a cap, runs are reproducible.
    candidates : int or None
        Most eligible nodes scored per job in construction [nodes]; None: 128, or 32
        above a million (job, node) options. More are scored only when none fits.
    improve : bool
        Run the local search after construction.
    second_start : bool
        The multi-start of small instances (earliest-start and baseline constructions).
    repair : bool
        When construction leaves must-run jobs out, run the feasibility engine (ejection
        chains, overload search, exact packing on small instances, restarts;
        ``docs/algorithms/greedy.md`` §7) instead of giving up.
    repair_time_limit : float or None
        Budget of the feasibility engine [s]; None: what is left of the time limit, or
        10 s when no time limit is given. The local search gets what the engine leaves
        (at least 1 s without a time limit).
    repair_steps : int or None
        Cap on the feasibility engine's work [steps: a repair step, an overload-search
        iteration, a job constructed by a restart]; None: no cap, except 100,000 when
        ``iterations`` is given. With a cap the engine ends by it rather than by the clock,
        so the run is reproducible.
    """

    iterations: int | None = None
    candidates: int | None = None
    improve: bool = True
    second_start: bool = True
    repair: bool = True
    repair_time_limit: float | None = None
    repair_steps: int | None = None

    def check(self) -> tuple[str, str] | None:
        if self.iterations is not None and self.iterations < 0:
            return "iterations", "must be ≥ 0"
        if self.candidates is not None and self.candidates < 1:
            return "candidates", "must be ≥ 1"
        if self.repair_time_limit is not None and not (
                self.repair_time_limit >= 0 and math.isfinite(self.repair_time_limit)):
            return "repair_time_limit", "must be a finite number ≥ 0 [s]"
        if self.repair_steps is not None and self.repair_steps < 0:
            return "repair_steps", "must be ≥ 0"
        return None


@dataclass(frozen=True)
class HighsOptions(SolverOptions):
    """Options of ``highs`` (``docs/formulations/milp.md``).

    Attributes
    ----------
    greedy_start : bool
        Without a ``warm_start`` plan, warm-start HiGHS from the ``greedy`` plan (else
        ``baseline``'s), computed in min(10 s, 0.1·time_limit).
    log : bool
        Show HiGHS's own output.
    presolve_rule_off : int or None
        HiGHS ``presolve_rule_off`` bit mask; None: 1040384 above 50,000 columns
        (``../shared/SOLVER-NOTES.md``: presolve 88-97 s → 12 s on a 165k-column model).
    explain : bool
        On an infeasible model, run the elastic relaxation that names the jobs, nodes,
        slots and constraints at fault.
    isolate : bool or None
        Run HiGHS in a child process that is stopped at the deadline (HiGHS's root
        heuristics do not look at the clock); None: from
        :data:`~optisched.solvers.highs.ISOLATE_INTEGERS` integer columns. Never for
        deterministic runs (they are bounded by nodes, not time).
    """

    greedy_start: bool = True
    log: bool = False
    presolve_rule_off: int | None = None
    explain: bool = True
    isolate: bool | None = None


@dataclass(frozen=True)
class PyomoOptions(SolverOptions):
    """Options of ``pyomo`` (``docs/formulations/milp.md``).

    Attributes
    ----------
    pyomo_solver : str
        Pyomo solver name: appsi_highs, cbc, glpk, scip, gurobi, cplex, … (CLI
        ``--pyomo-solver``).
    log : bool
        Show the solver's own output.
    """

    pyomo_solver: str = "appsi_highs"
    log: bool = False

    def check(self) -> tuple[str, str] | None:
        if not self.pyomo_solver.strip():
            return "pyomo_solver", "must name a Pyomo solver"
        return None


@dataclass(frozen=True)
class CpsatOptions(SolverOptions):
    """Options of ``cpsat`` (``docs/formulations/cpsat.md``).

    Attributes
    ----------
    variant : {"starts", "intervals"}
        Start literals per (option, start) or interval variables per option.
    workers : int or None
        CP-SAT ``num_workers``; None: ``threads`` or 2, at most the cores.
    hint : bool
        Without a ``warm_start`` plan, hint the ``greedy`` plan (else ``baseline``'s).
    hint_time : float or None
        Budget of the hint's solver [s], taken from the time limit; None:
        min(2 s, 0.1·time_limit).
    cpsat_params : dict
        CP-SAT parameters set by attribute assignment after the defaults (CLI: a JSON
        object, e.g. ``cpsat_params={"num_workers": 1}``).
    log_search_progress : bool
        Log CP-SAT's search through :mod:`logging` (INFO).
    explain : bool
        On an infeasible model, re-solve with assumptions to name the conflicting jobs,
        nodes and feeders.
    """

    variant: Literal["starts", "intervals"] = "starts"
    workers: int | None = None
    hint: bool = True
    hint_time: float | None = None
    cpsat_params: dict[str, Any] = field(default_factory=dict)
    log_search_progress: bool = False
    explain: bool = True

    def check(self) -> tuple[str, str] | None:
        if self.workers is not None and self.workers < 1:
            return "workers", "must be ≥ 1"
        if self.hint_time is not None and not (self.hint_time >= 0 and
                                               math.isfinite(self.hint_time)):
            return "hint_time", "must be a finite number ≥ 0"
        return None


@dataclass(frozen=True)
class LnsOptions(SolverOptions):
    """Options of ``lns`` (``docs/algorithms/lns.md``).

    Attributes
    ----------
    max_iterations : int or None
        Stop after this many neighbourhoods [iterations]; None: until the time limit.
        With a cap the search (and its greedy start) is reproducible and the
        restricted master is off.
    sub_solver : {"highs", "cpsat", "greedy", "cpsat-pack"} or None
        Solver of the sub-problems; None: the CP-SAT interval model with on/off states
        (``cpsat-pack``) on neighbourhoods whose nodes are all linear (no PV, battery,
        demand charge or finite feeder headroom) when ortools is installed, else
        ``highs``, else ``cpsat``, else ``greedy``.
    sub_time_limit : float or None
        Limit of one sub-solve [s]; None: time_limit / 20 clipped to [1 s, 3 s].
    size : float or None
        First neighbourhood size [freed jobs]; None: min(8, jobs).
    kinds : tuple of str
        Neighbourhood kinds to use (comma-separated on the CLI), from window, feeder,
        region, worst_nodes, random_nodes, expensive, penalty, random_jobs, lp, machine,
        time_band, local (greedy's local search from the incumbent; only when every node is
        linear and without ``max_iterations``).
    lp_bound : bool or "auto"
        Compute the LP (or another scalable) bound in a child process; "auto": when the
        time limit is ≥ 10 s.
    bound_method : {"lp", "colgen", "aggregate", "implicit"} or None
        The child's bound; None: "lp" up to 300,000 start columns, "colgen" up to
        2,000,000, beyond "aggregate" (class-aggregated LP) when every node is linear,
        else "implicit" (column generation without the full model); with None the
        class-aggregated LP also runs first when every node is linear.
    restricted_master : bool
        After the LP, solve the MILP over the LP's support in the child process.
    greedy_time_limit : float or None
        Budget of the greedy start [s]; None: 0.05·time_limit clipped to [0.2 s, 10 s],
        or min(0.4·time_limit, max(24 s, 0.1·time_limit)) when every node is linear (no
        PV, battery, demand charge or finite feeder headroom: the ICON class; greedy goes
        on inside the search as the kind ``local``).
    packing_time_limit : float or None
        Budget of the packing start when greedy and baseline find no plan [s];
        None: max(1 s, 0.4·time_limit).
    sub_scenarios : int or None
        With more scenarios than this, each sub-problem keeps only this many of them
        (fast forward selection, the dropped ones' weights moved to the kept), and every
        spliced plan is re-dispatched and priced on all scenarios before it is taken;
        None: 3. Without scenarios it has no effect.
    improved_bound : bool
        The midpoint passes and the job LP's capacity prices of the Lagrangian bound at
        the start and the end (``docs/algorithms/lns.md`` §5); the plain Lagrangian bound
        at the start plan's load is computed either way. ``distributed`` turns it off in
        its sub-solves (their bound is the partition's share; with ``max_iterations`` the
        end's runs without a clock).
    """

    max_iterations: int | None = None
    sub_solver: Literal["highs", "cpsat", "greedy", "cpsat-pack"] | None = None
    sub_time_limit: float | None = None
    size: float | None = None
    kinds: tuple[str, ...] = LNS_KINDS
    lp_bound: bool | Literal["auto"] = "auto"
    bound_method: Literal["lp", "colgen", "aggregate", "implicit"] | None = None
    restricted_master: bool = True
    greedy_time_limit: float | None = None
    packing_time_limit: float | None = None
    sub_scenarios: int | None = None
    improved_bound: bool = True

    def check(self) -> tuple[str, str] | None:
        if self.max_iterations is not None and self.max_iterations < 0:
            return "max_iterations", "must be ≥ 0"
        if self.sub_scenarios is not None and self.sub_scenarios < 1:
            return "sub_scenarios", "must be ≥ 1"
        for key in ("sub_time_limit", "greedy_time_limit", "packing_time_limit"):
            v = getattr(self, key)
            if v is not None and not (v > 0 and math.isfinite(v)):
                return key, "must be a finite number > 0 [s]"
        if self.size is not None and not (self.size >= 1 and math.isfinite(self.size)):
            return "size", "must be a finite number ≥ 1 [freed jobs]"
        bad = [k for k in self.kinds if k not in LNS_KINDS]
        if bad or not self.kinds:
            return "kinds", (f"unknown kind {bad[0]!r}" if bad else "needs at least one kind") \
                + f"; kinds are {', '.join(LNS_KINDS)}"
        return None


@dataclass(frozen=True)
class DistributedOptions(SolverOptions):
    """Options of ``distributed`` (``docs/algorithms/distributed.md``).

    Attributes
    ----------
    backend : {"auto", "ray", "processes"}
        Engine of the sub-solves: ``ray`` (Ray actors; ``pip install "optisched[ray]"``),
        ``processes`` (a local spawned process pool), ``auto``: Ray when installed and
        either a cluster address is given or the problem has at least 20,000 jobs, else
        the process pool (a local Ray takes about 9 s to start). One partition runs
        inline.
    partitions : int or None
        Number of node partitions [partitions]; None: 1 below 200 jobs, else
        max(workers, ceil(jobs / 5000)). Never more than the dispatch groups (a coupled
        feeder is one).
    ray_address : str or None
        Address of a Ray cluster to join (e.g. ``ray://head:10001`` or ``auto``); None:
        the ``RAY_ADDRESS`` environment variable, else a local Ray started for the solve
        and shut down after it.
    sub_solver : {"auto", "lns", "greedy"}
        Solver of each partition: ``greedy`` (with ``greedy_moves`` local-search moves)
        then, for ``lns``, the LNS from that plan for ``sub_iterations`` iterations;
        ``auto``: ``lns`` on partitions of at most 150 nodes, else ``greedy`` (the LNS's
        own Lagrangian bounds dispatch every node of its problem several times, which on
        500 battery nodes takes longer than its search).
    workers : int or None
        Parallel workers [processes or Ray actors]; None: the cores (the cluster's CPUs
        when joining one).
    rounds : int or None
        Coordination rounds [rounds]; None: until the time limit or until no move and no
        partition improves. With a cap the plan is reproducible on every backend.
    deterministic : bool
        True: every sub-solve ends by its work caps (``greedy_moves``, ``sub_iterations``),
        with a safety limit (a first solve's: its slot of 0.9 of the time left, planned when
        a worker is free for it; a round's: twice its share of the time left), and the plan does not
        depend on machine speed or backend when the caps bind first and the run ends by
        ``rounds`` or convergence (the LNS's sub-MILPs still stop at time limits: exactly
        reproducible with ``sub_solver="greedy"``). False: sub-solves get shares of the
        remaining time (anytime, not reproducible).
    sub_iterations : int
        LNS iterations of each sub-solve in deterministic mode [iterations].
    greedy_moves : int
        Local-search moves of each greedy sub-solve [moves].
    moves_per_pair : int
        Most jobs moved in each direction between a pair of partitions in one round
        [jobs].
    bound : bool
        Compute the global Lagrangian bound: each partition's share in its first solve's
        task, after its plan (``docs/algorithms/distributed.md`` §5).
    bound_rounds : int
        Dispatch passes of each partition's share after the first, each at a reference
        load halfway to the relaxed load of the last [passes].
    bound_iterations : int
        Subgradient steps of the capacity prices in each partition's share, over all its
        passes [steps]; the passes after the first and the steps stop when half the first
        solve's budget is used, or near the time limit.
    repair_waves : int
        Repair waves after the first solves [waves]: the dropped droppable jobs that fit
        the resources the plan leaves free on a node they may use are added to the
        partitions of those nodes, which are solved again from their plans; a re-solve is
        kept only when it is cheaper and drops no job its plan ran (0: none). The waves
        stop earlier when no dropped job has room or no re-solve fits the time left.
    make_room : bool
        In each repair wave, also move running jobs off the nodes that dropped jobs
        without room may use, to free places in their partitions where those jobs may not
        go, and add the dropped jobs in the room left (``docs/algorithms/distributed.md``
        §3).
    """

    backend: Literal["auto", "ray", "processes"] = "auto"
    partitions: int | None = None
    ray_address: str | None = None
    sub_solver: Literal["auto", "lns", "greedy"] = "auto"
    workers: int | None = None
    rounds: int | None = None
    deterministic: bool = True
    sub_iterations: int = 20
    greedy_moves: int = 50
    moves_per_pair: int = 200
    bound: bool = True
    bound_rounds: int = 3
    bound_iterations: int = 40
    repair_waves: int = 4
    make_room: bool = True

    def check(self) -> tuple[str, str] | None:
        for key in ("partitions", "workers"):
            v = getattr(self, key)
            if v is not None and v < 1:
                return key, "must be ≥ 1"
        if self.rounds is not None and self.rounds < 0:
            return "rounds", "must be ≥ 0"
        for key in ("sub_iterations", "greedy_moves", "bound_rounds", "bound_iterations",
                    "repair_waves"):
            if getattr(self, key) < 0:
                return key, "must be ≥ 0"
        if self.moves_per_pair < 1:
            return "moves_per_pair", "must be ≥ 1"
        if self.ray_address is not None and not self.ray_address.strip():
            return "ray_address", "must name a Ray cluster address"
        return None


# ------------------------------------------------------------------ parsing


def _attribute_docs(doc: str) -> dict[str, tuple[str, str]]:
    """``{name: (type, text)}`` from a numpydoc ``Attributes`` section."""
    lines = doc.expandtabs().splitlines()
    out: dict[str, tuple[str, str]] = {}
    try:
        at = next(i for i, ln in enumerate(lines) if ln.strip() == "Attributes")
    except StopIteration:
        return out
    body = lines[at + 2:]
    base = None
    name = None
    for ln in body:
        if not ln.strip():
            continue
        indent = len(ln) - len(ln.lstrip())
        if base is None:
            base = indent
        if indent < base:
            break
        m = re.match(r"^(\w+) : (.+)$", ln.strip())
        if indent == base and m:
            name = m.group(1)
            out[name] = (m.group(2).strip(), "")
        elif name is not None:
            typ, text = out[name]
            out[name] = (typ, (text + " " + ln.strip()).strip())
    return out


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _coerce(raw: Any, typ: Any) -> Any:
    """``raw`` as a value of type ``typ`` (text is parsed; typed values are checked)."""
    origin = get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        members = get_args(typ)
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("none", "null")):
            if type(None) in members:
                return None
        errors = []
        for m in members:
            if m is type(None):
                continue
            try:
                return _coerce(raw, m)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError(" or ".join(errors))
    if origin is Literal:
        choices = get_args(typ)
        for c in choices:
            if raw == c or (isinstance(raw, str) and isinstance(c, str) and raw.strip() == c):
                return c
        raise ValueError("expected one of " + ", ".join(repr(c) for c in choices))
    if typ is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ValueError("expected true or false")
    if typ is int:
        if isinstance(raw, bool):
            raise ValueError("expected an integer")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                raise ValueError("expected an integer") from None
        raise ValueError("expected an integer")
    if typ is float:
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        if isinstance(raw, int | float):
            v = float(raw)
        elif isinstance(raw, str):
            try:
                v = float(raw.strip())
            except ValueError:
                raise ValueError("expected a number") from None
        else:
            raise ValueError("expected a number")
        if math.isnan(v):
            raise ValueError("expected a number, not nan")
        return v
    if typ is str:
        if isinstance(raw, str):
            return raw
        raise ValueError("expected text")
    if origin is tuple:
        item = get_args(typ)[0]
        seq = [s for s in raw.split(",") if s.strip()] if isinstance(raw, str) else raw
        if not isinstance(seq, list | tuple):
            raise ValueError("expected a list")
        return tuple(_coerce(s.strip() if isinstance(s, str) else s, item) for s in seq)
    if origin is dict:
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError("expected a JSON object") from None
        if not isinstance(raw, dict):
            raise ValueError("expected a JSON object")
        return dict(raw)
    raise TypeError(f"unsupported option type {typ!r}")  # pragma: no cover
