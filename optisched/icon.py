"""Importer for ICON 2014 energy-cost aware scheduling instances (CSPLib prob059).

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from optisched.domain import Horizon, Job, Node, Problem, Scenario, Tariff

__all__ = ["ICON_START", "IconFormatError", "read_icon", "read_prices"]

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
