"""ICON 2014 energy-cost aware scheduling (CSPLib prob059): instances in, solutions out.

:func:`read_icon` imports an instance; :func:`write_icon` writes an ICON-shaped
problem back as ``instance.txt``/``forecast.txt``; :func:`icon_solution` and
:func:`write_icon_solution` turn a plan into the challenge's solution file, and
:func:`read_icon_solution` reads one.

Format (H. Simonis, B. O'Sullivan, D. Mehta, B. Hurley, M. De Cauwer, "Energy-Cost
Aware Scheduling/Forecasting Competition", 2014; ``../shared/icon/README.md``):

``instance.txt`` (whitespace separated): q (minutes per slot); number of
resources R; number of machines M; per machine ``id idle up down`` then R
capacities; number of tasks J; per task ``id duration earliest_start latest_end
power`` then R usages. ``forecast.txt`` / ``actual.txt``: ``1440/q`` then
``index price`` lines.

Mapping onto SPEC §1 (one day of ``1440/q`` slots of ``q`` minutes):

- machine m → node ``m<id>``: ``can_sleep = true``, ``initially_on = false``,
  ``end_off = true``, ``idle_kw = idle``, ``startup_cost = up``,
  ``shutdown_cost = down``, no PV, no battery, unlimited grid, no export;
  resource 0 → ``gpus``, resource r ≥ 1 → ``res_r<r>``.
- task t → must-run job ``t<id>`` with ``duration_min = duration · q``,
  ``power_kw = power``, release = earliest_start, hard deadline = latest_end.
- the price series → the one tariff ``icon`` (price per slot, no export price, no carbon).

Scale factor: 1. Reading an ICON power rate as kW and an ICON price as money per
kWh, SPEC's energy term ``Σ Δ · price · import`` with ``Δ = q/60`` and
``import = on · idle + Σ running power`` is exactly the ICON cost of equations
12-16 (task energy ``power · q/60 · Σ price`` over its slots, idle cost
``idle · price · q/60`` per on slot), and SPEC's switching term is the ICON
start-up and shut-down cost; every other SPEC term is zero.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from optisched.arrays import BoolArray
from optisched.atomic import write_file_atomically
from optisched.domain import Horizon, Job, Node, Problem, Scenario, Tariff
from optisched.plan import Plan

__all__ = [
    "ICON_START",
    "IconFormatError",
    "IconSolution",
    "check_icon_shape",
    "icon_solution",
    "read_icon",
    "read_icon_solution",
    "read_prices",
    "write_icon",
    "write_icon_solution",
]

ICON_START = datetime(2014, 1, 1, tzinfo=UTC)
"""Horizon start given to imported instances (ICON times are slots since midnight)."""


class IconFormatError(ValueError):
    """A malformed ICON file: names the file, line, field and value."""


@dataclass
class _Tokens:
    path: Path
    items: list[tuple[int, str]]
    pos: int = 0

    @classmethod
    def read(cls, path: Path) -> _Tokens:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise IconFormatError(f"{path}: file not found") from None
        except UnicodeDecodeError as exc:
            raise IconFormatError(f"{path}: not a text file ({exc.reason})") from None
        items = [(k + 1, tok) for k, line in enumerate(text.splitlines()) for tok in line.split()]
        return cls(path, items)

    def _next(self, field: str, expect: str) -> tuple[int, str]:
        if self.pos >= len(self.items):
            last = self.items[-1][0] if self.items else 1
            raise IconFormatError(f"{self.path}:{last}: unexpected end of file, expected "
                                  f"field {field!r} ({expect})")
        item = self.items[self.pos]
        self.pos += 1
        return item

    def integer(self, field: str, lo: int | None = None, hi: int | None = None) -> int:
        line, tok = self._next(field, "an integer")
        try:
            v = int(tok)
        except ValueError:
            raise IconFormatError(f"{self.path}:{line}: field {field!r}: {tok!r} is not an "
                                  "integer") from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            rng = f"{'' if lo is None else lo}..{'' if hi is None else hi}"
            raise IconFormatError(f"{self.path}:{line}: field {field!r}: {v} outside the "
                                  f"valid range {rng}")
        return v

    def number(self, field: str, lo: float | None = None) -> float:
        line, tok = self._next(field, "a number")
        try:
            v = float(tok)
        except ValueError:
            raise IconFormatError(f"{self.path}:{line}: field {field!r}: {tok!r} is not a "
                                  "number") from None
        if not math.isfinite(v) or (lo is not None and v < lo):
            raise IconFormatError(f"{self.path}:{line}: field {field!r}: {tok!r} must be a "
                                  f"finite number{'' if lo is None else f' >= {lo:g}'}")
        return v

    def line(self) -> int:
        """Line of the next token (or of the last one)."""
        if self.pos < len(self.items):
            return self.items[self.pos][0]
        return self.items[-1][0] if self.items else 1

    def end(self) -> None:
        if self.pos < len(self.items):
            line, tok = self.items[self.pos]
            raise IconFormatError(f"{self.path}:{line}: unexpected extra value {tok!r} after "
                                  "the last record")


def read_prices(path: str | os.PathLike[str], slots: int) -> list[float]:
    """Read a ``forecast.txt``/``actual.txt`` price file.

    Parameters
    ----------
    path : path-like
        The file.
    slots : int
        Expected number of slots (``1440 / q``).

    Returns
    -------
    list of float
        Price per slot [money per unit energy].
    """
    tk = _Tokens.read(Path(path))
    tk.integer("slots", lo=slots, hi=slots)
    prices = []
    for t in range(slots):
        tk.integer("index", lo=t, hi=t)
        prices.append(tk.number("price"))
    tk.end()
    return prices


def read_icon(instance_dir: str | os.PathLike[str], prices: str = "forecast") -> Problem:
    """Read an ICON 2014 instance directory as a :class:`~optisched.domain.Problem`.

    Parameters
    ----------
    instance_dir : path-like
        Directory with ``instance.txt`` and ``forecast.txt`` (and ``actual.txt``).
    prices : {"forecast", "actual"}
        Which price file becomes the tariff.

    Raises
    ------
    IconFormatError
        A malformed file, naming file, line, field and value.
    """
    if prices not in ("forecast", "actual"):
        raise IconFormatError(f"--prices must be forecast or actual, got {prices!r}")
    d = Path(instance_dir)
    if not d.is_dir():
        raise IconFormatError(f"{d}: not a directory")
    tk = _Tokens.read(d / "instance.txt")
    q = tk.integer("q (minutes per slot)", lo=1, hi=1440)
    if 1440 % q:
        raise IconFormatError(f"{tk.path}:1: field 'q (minutes per slot)': {q} does not "
                              "divide 1440")
    T = 1440 // q
    R = tk.integer("number of resources", lo=1)
    M = tk.integer("number of machines", lo=1)
    nodes: list[Node] = []
    for _ in range(M):
        line = tk.line()
        mid = tk.integer("machine id", lo=0)
        idle = tk.number("machine idle", lo=0.0)
        up = tk.number("machine up", lo=0.0)
        down = tk.number("machine down", lo=0.0)
        caps = [tk.number(f"machine {mid} capacity of resource {r}", lo=0.0) for r in range(R)]
        if any(n.node_id == f"m{mid}" for n in nodes):
            raise IconFormatError(f"{tk.path}:{line}: field 'machine id': {mid} is a duplicate")
        nodes.append(Node(
            node_id=f"m{mid}", kind="icon_machine", gpus=caps[0],
            resources={f"r{r}": caps[r] for r in range(1, R)}, idle_kw=idle, can_sleep=True,
            initially_on=False, end_off=True, startup_cost=up, shutdown_cost=down,
            tariff="icon",
        ))
    J = tk.integer("number of tasks", lo=0)
    start = ICON_START
    jobs: list[Job] = []
    for _ in range(J):
        line = tk.line()
        tid = tk.integer("task id", lo=0)
        dur = tk.integer(f"task {tid} duration", lo=1, hi=T)
        est = tk.integer(f"task {tid} earliest_start", lo=0, hi=T - 1)
        lend = tk.integer(f"task {tid} latest_end", lo=1, hi=T)
        power = tk.number(f"task {tid} power", lo=0.0)
        use = [tk.number(f"task {tid} usage of resource {r}", lo=0.0) for r in range(R)]
        if est + dur > lend:
            raise IconFormatError(f"{tk.path}:{line}: task {tid}: earliest_start {est} + "
                                  f"duration {dur} > latest_end {lend}: no feasible start")
        if any(j.job_id == f"t{tid}" for j in jobs):
            raise IconFormatError(f"{tk.path}:{line}: field 'task id': {tid} is a duplicate")
        jobs.append(Job(
            job_id=f"t{tid}", kind="icon_task", gpus=use[0],
            resources={f"r{r}": use[r] for r in range(1, R)}, duration_min=float(dur * q),
            power_kw=power, release=start + timedelta(minutes=est * q),
            deadline=start + timedelta(minutes=lend * q),
        ))
    tk.end()
    price = read_prices(d / f"{prices}.txt", T)
    scenario = Scenario(horizon=Horizon(start=start, slot_minutes=q, slots=T))
    try:
        return Problem(scenario=scenario, nodes=nodes, jobs=jobs,
                       tariffs={"icon": Tariff(price=price, export_price=[0.0] * T,
                                               carbon_g_per_kwh=[0.0] * T)})
    except ValueError as exc:
        raise IconFormatError(f"{tk.path}: {exc}") from None


# --------------------------------------------------------------------------- export

_MACHINE_ID = re.compile(r"m(0|[1-9][0-9]*)")
_TASK_ID = re.compile(r"t(0|[1-9][0-9]*)")

_SHAPE_HINT = ("export-icon needs an ICON-shaped bundle, as `optisched import-icon` or "
               "`optisched generate --preset tight` write it")


def check_icon_shape(problem: Problem, source: str | os.PathLike[str] = "bundle"
                     ) -> tuple[list[int], list[int]]:
    """Check that a problem has the shape of an imported ICON instance; return its ids.

    ICON-shaped: a one-day horizon (``slots × slot_minutes = 1440``); nodes ``m<id>``
    that may sleep, start off, end off, run at speed 1 and have no battery, PV or
    unavailable slots; the
    same further resources ``r1 … r<R-1>`` on every node (resource 0 is ``gpus``);
    jobs ``t<id>`` that must run, with hard deadlines and no pin (SPEC §1 fields an
    import sets, see the module docstring).

    Parameters
    ----------
    problem : Problem
        The problem (e.g. read from a bundle).
    source : path-like
        The bundle directory, named in the errors.

    Returns
    -------
    machine_ids, task_ids : list of int
        The ICON id of every node and job, in the problem's order.

    Raises
    ------
    IconFormatError
        Naming the bundle file, the node or job and what is not ICON-shaped.
    """
    src = Path(source)
    hz = problem.horizon
    if hz.slots * hz.slot_minutes != 1440:
        raise IconFormatError(f"{src / 'scenario.toml'}: the horizon is {hz.slots} slots of "
                              f"{hz.slot_minutes} min, not one day (1440 min); {_SHAPE_HINT}")
    extra = sorted({r for n in problem.nodes for r in n.resources})
    want = [f"r{r}" for r in range(1, len(extra) + 1)]
    machine_ids: list[int] = []
    for n in problem.nodes:
        m = _MACHINE_ID.fullmatch(n.node_id)
        why = ("its id is not m<integer> (no leading zeros)" if m is None
               else _not_a_machine(problem, n, want))
        if why:
            raise IconFormatError(f"{src / 'nodes.csv'}: node {n.node_id!r} is not an ICON "
                                  f"machine: {why}; {_SHAPE_HINT}")
        assert m is not None
        machine_ids.append(int(m.group(1)))
    task_ids: list[int] = []
    for j in problem.jobs:
        t = _TASK_ID.fullmatch(j.job_id)
        why = ("its id is not t<integer> (no leading zeros)" if t is None
               else _not_a_task(j, want))
        if why:
            raise IconFormatError(f"{src / 'jobs.csv'}: job {j.job_id!r} is not an ICON task: "
                                  f"{why}; {_SHAPE_HINT}")
        assert t is not None
        task_ids.append(int(t.group(1)))
    # ids are unique: node and job ids are, and the patterns allow no leading zeros
    return machine_ids, task_ids


def _not_a_machine(problem: Problem, n: Node, resources: list[str]) -> str:
    """Why node ``n`` is no ICON machine ("" when it is one)."""
    if not n.can_sleep or n.initially_on or not n.end_off:
        return "it cannot sleep, starts on or need not end off"
    if n.speed != 1.0:
        return f"speed {n.speed:g} (ICON durations are for speed 1)"
    if n.battery_kwh > 0:
        return "it has a battery"
    ser = problem.node_series.get(n.node_id)
    if ser is not None and (any(v > 0 for v in ser.pv_kw or [])
                            or not all(ser.available or [True])):
        return "node_series.csv gives it PV or unavailable slots"
    if set(n.resources) != set(resources):
        return f"its resources are {sorted(n.resources)}, expected {resources}"
    return ""


def _not_a_task(j: Job, resources: list[str]) -> str:
    """Why job ``j`` is no ICON task ("" when it is one)."""
    if not j.must_run:
        return "it has a drop_penalty (every ICON task must run)"
    if j.tardiness_per_hour is not None:
        return "it has a soft deadline"
    if j.pinned:
        return "it is pinned"
    if set(j.resources) - set(resources):
        return f"it uses resources {sorted(set(j.resources) - set(resources))} no machine has"
    return ""


@dataclass(frozen=True)
class IconSolution:
    """An ICON 2014 solution (challenge note, section 2.6.3).

    Attributes
    ----------
    machines : dict of int to list of (int, int)
        Machine id → its on/off events ``(action, period)`` in file order:
        action 1 = switched on at the start of ``period`` (on in it, off before),
        0 = switched off after ``period`` (on in it, off in the next).
    tasks : dict of int to (int, int)
        Task id → ``(machine id, start period)``.
    """

    machines: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    tasks: dict[int, tuple[int, int]] = field(default_factory=dict)

    def on(self, machine: int, slots: int) -> BoolArray:
        """On state of ``machine`` in every period ``0 … slots-1`` from its events.

        Raises
        ------
        ValueError
            Events that do not alternate on, off, on … (machines start off), lie
            outside the day or leave the machine on after the last period.
        """
        state: BoolArray = np.zeros(slots, dtype=bool)
        on_since: int | None = None
        last = -1
        for action, t in self.machines.get(machine, []):
            if not 0 <= t < slots or t < last:
                raise ValueError(f"machine {machine}: event ({action}, {t}) outside the day or "
                                 "out of order")
            if action == 1 and on_since is None:
                on_since = t
            elif action == 0 and on_since is not None:
                state[on_since: t + 1] = True
                on_since = None
            else:
                raise ValueError(f"machine {machine}: event ({action}, {t}) does not alternate "
                                 "on/off (machines are off before the first period)")
            last = t
        if on_since is not None:
            raise ValueError(f"machine {machine}: on after the last period (it must end off)")
        return state


def icon_solution(problem: Problem, plan: Plan, bundle: str | os.PathLike[str] = "bundle",
                  plan_dir: str | os.PathLike[str] = "plan") -> IconSolution:
    """The ICON solution of a plan of an ICON-shaped problem.

    Machine and task ids are mapped back to ICON's (``m<id>`` → id, ``t<id>`` →
    id); a machine's on/off events come from the plan's ``on`` series (on at
    ``t`` after off at ``t − 1`` → ``1 t``; on at ``t`` and off at ``t + 1`` →
    ``0 t``), so the file's start-up, shut-down and idle costs are the plan's.

    Parameters
    ----------
    problem : Problem
        ICON-shaped (:func:`check_icon_shape`).
    plan : Plan
        A plan of it that schedules every job.
    bundle, plan_dir : path-like
        Named in the errors.

    Raises
    ------
    IconFormatError
        Not ICON-shaped, no plan, or a job left out.
    """
    machine_ids, task_ids = check_icon_shape(problem, bundle)
    pdir = Path(plan_dir)
    if not plan.status.has_plan or plan.flows is None:
        raise IconFormatError(f"{pdir / 'summary.json'}: the plan has status "
                              f"{plan.status.value}: no solution to export")
    dropped = np.nonzero(plan.node < 0)[0]
    if dropped.size:
        raise IconFormatError(f"{pdir / 'assignments.csv'}: job {plan.job_ids[int(dropped[0])]!r} "
                              f"is dropped ({dropped.size} in all); an ICON solution schedules "
                              "every task")
    on = np.asarray(plan.flows.on, dtype=bool)
    padded = np.zeros((on.shape[0], on.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = on
    step = np.diff(padded, axis=1)            # +1: switched on at t; -1: off from t (index t+1)
    machines: dict[int, list[tuple[int, int]]] = {}
    for k, mid in enumerate(machine_ids):
        ups = np.nonzero(step[k] == 1)[0]
        downs = np.nonzero(step[k] == -1)[0] - 1
        events = [(1, int(a)) for a in ups] + [(0, int(b)) for b in downs]
        machines[mid] = sorted(events, key=lambda e: (e[1], -e[0]))
    tasks = {tid: (machine_ids[int(plan.node[j])], int(plan.start[j]))
             for j, tid in enumerate(task_ids)}
    return IconSolution(machines=machines, tasks=tasks)


def write_icon_solution(solution: IconSolution, path: str | os.PathLike[str]) -> Path:
    """Write an ICON solution file (challenge note, section 2.6.3), atomically.

    Format (whitespace-separated integers, one record a line as in the note's
    example): the number of machines; per machine its id, the number of its
    on/off events, then one ``action period`` line per event (1 = on, 0 = off);
    then the number of tasks and one ``task machine start`` line per task.

    What was confirmed, and from where: the layout above, the meaning of the
    actions and the example solution (``1 0`` / ``0 287`` for a machine on all
    day) are in the challenge note (Simonis et al. 2014, ``iconchallenge.pdf`` of
    CSPLib prob059, sections 2.5 and 2.6.3, read from the csplib/csplib
    repository). That an off event names the *last period the machine is on*
    follows from the note's model (z_mt: "shuts down after time period t: active
    at t, not at t+1") and its example (a machine on until the end of the day is
    switched off at 287, the last period); a published ICON entry (OptaPlanner
    based) writes it the same way. Not confirmed: the challenge's own checker
    program (not available to us), e.g. whether it wants a machine's id and its
    event count on one line (the note's text) or two (its example; both read the
    same as whitespace-separated tokens), or events in time order (we write them
    so).
    """
    lines = [str(len(solution.machines))]
    for mid, events in solution.machines.items():
        lines.append(str(mid))
        lines.append(str(len(events)))
        lines.extend(f"{a} {t}" for a, t in events)
    lines.append(str(len(solution.tasks)))
    lines.extend(f"{tid} {m} {s}" for tid, (m, s) in solution.tasks.items())
    return write_file_atomically(path, "\n".join(lines) + "\n")


def read_icon_solution(path: str | os.PathLike[str]) -> IconSolution:
    """Read an ICON solution file (the format :func:`write_icon_solution` writes).

    Raises
    ------
    IconFormatError
        A malformed file, naming file, line, field and value.
    """
    tk = _Tokens.read(Path(path))
    machines: dict[int, list[tuple[int, int]]] = {}
    for _ in range(tk.integer("number of machines", lo=0)):
        line = tk.line()
        mid = tk.integer("machine id", lo=0)
        if mid in machines:
            raise IconFormatError(f"{tk.path}:{line}: field 'machine id': {mid} is a duplicate")
        events = []
        for _ in range(tk.integer(f"machine {mid} number of events", lo=0)):
            action = tk.integer(f"machine {mid} event action (1 on, 0 off)", lo=0, hi=1)
            events.append((action, tk.integer(f"machine {mid} event period", lo=0)))
        machines[mid] = events
    tasks: dict[int, tuple[int, int]] = {}
    for _ in range(tk.integer("number of tasks", lo=0)):
        line = tk.line()
        tid = tk.integer("task id", lo=0)
        if tid in tasks:
            raise IconFormatError(f"{tk.path}:{line}: field 'task id': {tid} is a duplicate")
        tasks[tid] = (tk.integer(f"task {tid} machine", lo=0),
                      tk.integer(f"task {tid} start", lo=0))
    tk.end()
    return IconSolution(machines=machines, tasks=tasks)


def _num(v: float) -> str:
    """A number as ICON files write it: an integer when it is one, else the shortest repr."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 2**53 else repr(float(v))


def write_icon(problem: Problem, out_dir: str | os.PathLike[str]) -> Path:
    """Write an ICON-shaped problem as ``instance.txt`` and ``forecast.txt``.

    The inverse of :func:`read_icon` (``read_icon(write_icon(p, d))`` equals ``p``
    for a problem in the importer's conventions, e.g. one of
    :func:`optisched.generate.tight.tight_problem`), so generated instances can be
    given to other ICON solvers and checkers.

    Raises
    ------
    IconFormatError
        Not ICON-shaped (:func:`check_icon_shape`), several tariffs, or times off
        the slot grid.
    """
    machine_ids, task_ids = check_icon_shape(problem, "problem")
    hz = problem.horizon
    q, T = hz.slot_minutes, hz.slots
    extra = sorted({r for n in problem.nodes for r in n.resources}, key=lambda r: int(r[1:]))
    tariffs = {n.tariff for n in problem.nodes}
    if len(tariffs) != 1:
        raise IconFormatError(f"problem: ICON has one price series; nodes use tariffs "
                              f"{sorted(tariffs)}")
    price = problem.tariffs[tariffs.pop()].price
    lines = [str(q), str(1 + len(extra)), str(len(problem.nodes))]
    for mid, n in zip(machine_ids, problem.nodes, strict=True):
        lines.append(f"{mid} {_num(n.idle_kw)} {_num(n.startup_cost)} {_num(n.shutdown_cost)}")
        lines.append(" ".join(_num(v) for v in (n.gpus, *(n.resources[r] for r in extra))))
    lines.append(str(len(problem.jobs)))
    for tid, j in zip(task_ids, problem.jobs, strict=True):
        d = j.duration_min / q
        rel = 0.0 if j.release is None else hz.slot_position(j.release)
        end = float(T) if j.deadline is None else hz.slot_position(j.deadline)
        if not (d.is_integer() and float(rel).is_integer() and float(end).is_integer()):
            raise IconFormatError(f"problem: job {j.job_id!r}: duration, release or deadline "
                                  f"is not a whole number of {q}-minute slots")
        lines.append(f"{tid} {int(d)} {int(rel)} {int(end)} {_num(j.power_kw)}")
        lines.append(" ".join(_num(v) for v in (j.gpus, *(j.resources.get(r, 0.0)
                                                          for r in extra))))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_file_atomically(out / "instance.txt", "\n".join(lines) + "\n")
    write_file_atomically(out / "forecast.txt", "\n".join(
        [str(T), *(f"{t} {_num(p)}" for t, p in enumerate(price))]) + "\n")
    return out
