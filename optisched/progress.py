"""Live progress of a long solve in the terminal (rich), driven by solver callbacks.

A solver reports through ``options.report(...)`` with a
:class:`~optisched.solvers.base.Progress` (elapsed, incumbent objective, bound,
message) whenever it has a new incumbent or bound. :class:`ProgressDisplay` is
such a callback: used as a context manager it keeps a rich ``Live`` panel with
the incumbent, bound, gap, elapsed time and the solver's last message, and
prints a one-line summary when the solve ends. Library calls stay silent: only
a caller that passes a callback sees anything.

Example::

    from rich.console import Console
    from optisched.progress import ProgressDisplay
    with ProgressDisplay(Console(stderr=True), solver="lns") as show:
        plan = optisched.solve(problem, "lns", time_limit=60, callback=show)
"""

from __future__ import annotations

import math
import threading
import time
from types import TracebackType

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table

from optisched.plan import relative_gap
from optisched.solvers.base import Progress

__all__ = ["ProgressDisplay", "ProgressState", "StepProgress", "format_gap"]


def format_gap(gap: float | None) -> str:
    """A relative gap as a percentage, ``–`` when unknown."""
    return "–" if gap is None else f"{100.0 * gap:.2f} %"


def _money(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:,.6g}"


class ProgressState:
    """What the display shows: the latest report and the best values seen.

    Attributes
    ----------
    reports : int
        Number of reports received.
    elapsed : float
        Solver time of the latest report [s].
    objective : float or None
        Best (lowest) incumbent objective reported [money].
    bound : float or None
        Best (highest) lower bound reported [money].
    message : str
        The latest non-empty message.
    """

    def __init__(self) -> None:
        self.reports = 0
        self.elapsed = 0.0
        self.objective: float | None = None
        self.bound: float | None = None
        self.message = ""

    def update(self, p: Progress) -> None:
        """Fold one report in: keep the best incumbent and the best bound."""
        self.reports += 1
        self.elapsed = max(self.elapsed, float(p.elapsed))
        if p.objective is not None and math.isfinite(p.objective):
            self.objective = (p.objective if self.objective is None
                              else min(self.objective, p.objective))
        if p.bound is not None and math.isfinite(p.bound):
            self.bound = p.bound if self.bound is None else max(self.bound, p.bound)
        if p.message:
            self.message = p.message

    @property
    def gap(self) -> float | None:
        """Relative gap of the best incumbent and bound (None without both)."""
        return relative_gap(self.objective, self.bound)


class ProgressDisplay:
    """A rich ``Live`` panel fed by solver progress reports (a ``Progress`` callback).

    Parameters
    ----------
    console : rich.console.Console, optional
        Where to draw; default a console on standard error.
    solver : str
        Name shown in the title.
    refresh_per_second : float
        Redraw rate of the live panel [1/s] (the wall clock keeps ticking between
        reports).
    transient : bool
        Remove the panel at the end (a one-line summary is printed instead when
        at least one report arrived).
    """

    def __init__(self, console: Console | None = None, solver: str = "",
                 refresh_per_second: float = 4.0, transient: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.solver = solver
        self.state = ProgressState()
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self._wall = 0.0  # seconds from __enter__ to __exit__
        self._live = Live(console=self.console, get_renderable=self.render,
                          refresh_per_second=refresh_per_second, transient=transient,
                          redirect_stdout=False, redirect_stderr=False)

    def __call__(self, p: Progress) -> None:
        """Receive one report (thread-safe); redraw when live."""
        with self._lock:
            self.state.update(p)
        if self._live.is_started:
            self._live.refresh()

    def render(self) -> RenderableType:
        """The panel: incumbent, bound, gap, elapsed and the last message."""
        with self._lock:
            s = self.state
            t = Table(title=f"solving{' with ' + self.solver if self.solver else ''}",
                      show_header=False, title_justify="left", box=None, padding=(0, 1))
            t.add_column("item", style="bold")
            t.add_column("value", justify="right")
            wall = time.perf_counter() - self._t0
            if not s.reports:
                t.add_row("elapsed", f"{wall:.1f} s")
                t.add_row("status", "waiting for the solver's first report")
                return t
            t.add_row("incumbent", _money(s.objective))
            t.add_row("bound", _money(s.bound))
            t.add_row("gap", format_gap(s.gap))
            t.add_row("elapsed", f"{max(wall, s.elapsed):.1f} s")
            t.add_row("reports", str(s.reports))
            if s.message:
                t.add_row("last", s.message)
            return t

    def summary_line(self) -> str:
        """One line with the final state, e.g. ``lns: 12 progress reports, best 10.5, bound 9.8 …``.

        The time is the later of the last report's and the display's wall clock [s].
        """
        s = self.state
        name = f"{self.solver}: " if self.solver else ""
        return (f"{name}{s.reports} progress report{'s' if s.reports != 1 else ''}, "
                f"best {_money(s.objective)}, bound {_money(s.bound)}, gap {format_gap(s.gap)}, "
                f"{max(s.elapsed, self._wall):.1f} s")

    def __enter__(self) -> ProgressDisplay:
        self._t0 = time.perf_counter()
        self._live.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._wall = time.perf_counter() - self._t0
        self._live.stop()
        if self.state.reports and self._live.transient:
            self.console.print(self.summary_line(), highlight=False, markup=False)


class StepProgress:
    """A rich progress bar over the named steps of a long task (e.g. building a report).

    Call the instance with each step's name as it starts; used as a context
    manager it draws a transient bar (spinner, step name, done/total, elapsed) on
    its console and prints one summary line at the end, e.g. ``report: 11 steps
    in 1.4 s``.

    Parameters
    ----------
    console : rich.console.Console, optional
        Where to draw; default a console on standard error.
    total : int
        Number of steps expected.
    title : str
        What is being done (first word of the summary line).
    """

    def __init__(self, console: Console | None = None, total: int = 1,
                 title: str = "working") -> None:
        self.console = console or Console(stderr=True)
        self.title = title
        self.total = max(1, int(total))
        self.steps: list[tuple[str, float]] = []  # (name, start time [s from enter])
        self._t0 = time.perf_counter()
        self._wall = 0.0
        self._bar = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=self.console, transient=True)
        self._task = self._bar.add_task(title, total=self.total)

    def __call__(self, name: str) -> None:
        """Start step ``name`` (the previous one is done)."""
        now = time.perf_counter() - self._t0
        done = len(self.steps)
        self.steps.append((name, now))
        self._bar.update(self._task, completed=min(done, self.total),
                         description=f"{self.title}: {name}")

    def durations(self) -> list[tuple[str, float]]:
        """Each step's name and duration [s] (the last one up to the end)."""
        end = self._wall or time.perf_counter() - self._t0
        out = []
        for k, (name, t) in enumerate(self.steps):
            t1 = self.steps[k + 1][1] if k + 1 < len(self.steps) else end
            out.append((name, t1 - t))
        return out

    def summary_line(self) -> str:
        """One line: ``TITLE: N steps in S s (slowest: NAME S s)``."""
        d = self.durations()
        slow = max(d, key=lambda x: x[1]) if d else None
        tail = f" (slowest: {slow[0]} {slow[1]:.1f} s)" if slow else ""
        return f"{self.title}: {len(d)} steps in {self._wall:.1f} s{tail}"

    def __enter__(self) -> StepProgress:
        self._t0 = time.perf_counter()
        if self.console.is_terminal:  # a pipe or a log file gets the summary line only
            self._bar.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._wall = time.perf_counter() - self._t0
        self._bar.update(self._task, completed=self.total)
        if self._bar.live.is_started:
            self._bar.stop()
        if exc_type is None:
            self.console.print(self.summary_line(), highlight=False, markup=False)
