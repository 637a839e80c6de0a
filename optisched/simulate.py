"""Closed-loop simulation: plan on forecasts, re-plan as they are re-issued, settle on actuals.

``optisched simulate BUNDLE --actuals DIR --forecasts FILE --replan-every K --out DIR``
runs one day (the bundle's horizon) the way a scheduler lives it:

1. **Plan** at the start with a :class:`~optisched.replan.Replanner` on the
   forecasts known then (the bundle's own series, with the forecasts issued at or
   before the start laid over them) and the jobs released by then.
2. **Re-plan** every ``K`` slots, and at every slot in which jobs arrive (a job is
   known from its ``release``: it is handed over at the first slot boundary at or
   after it), with the latest forecast issued by then for every slot from ``now``
   on (PV per node, import price per tariff) and the state of charge measured in
   the settlement.
3. **Settle** every slot on the actual PV and prices (``--actuals``): the plan's
   job placement and on/off state are kept, and so is its battery set-point
   (charge or discharge power, clipped to the battery's actual state of charge and
   limits); PV serves the load first, the grid the rest within the headroom, a
   surplus is exported when that pays (up to the export limit) and PV that would
   be curtailed charges the battery when it can; the battery discharges beyond its
   set-point (or charges less) only when the headroom would otherwise be exceeded.
   Given the battery power, these are the cheapest flows of the slot
   (:func:`settle_slot`).
4. **Price** the realized day with the evaluator on the actual data
   (:func:`optisched.evaluate.evaluate` of :meth:`Replanner.executed` with the
   actual series and the settled flows), and compare it with

   * **plan once**: one plan at the start on the first forecast, with every job of
     the day known, never re-planned, settled the same way;
   * **perfect foresight**: the day planned on the actuals with every job known,
     by ``--pf-solver`` (default ``lns``) at a generous budget, once from scratch
     and once warm-started from the realized placement; the cheapest of those, the
     realized schedule itself and the settled plan-once schedule (when it keeps
     every constraint of the day) is reported, so it never costs more than either
     (``perfect_foresight_source`` says which).

Files: the forecasts CSV has columns ``issued_at,time`` and either
``node_id,pv_kw`` or ``tariff,price`` (both kinds may share a file, empty cells
where a kind does not apply); ``--actuals`` holds ``node_series.csv`` and/or
``prices.csv`` in the bundle's format (they replace the bundle's). Outputs:
``simulation.json`` (``realized_cost``, ``plan_once_cost``,
``perfect_foresight_cost``, costs by term, the updates and the settled ledger),
``ledger.csv`` (the settled slots, columns of :data:`optisched.ledger.SLOT_COLUMNS`)
and ``cost.png`` (cumulative cost over the day). ``docs/replan.md`` has the details.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from optisched.arrays import FloatArray
from optisched.atomic import write_dir_atomically
from optisched.domain import Job, NodeSeries, Problem, Tariff
from optisched.errors import BundleError, InputError
from optisched.evaluate import evaluate
from optisched.index import Index, compile_index
from optisched.io import read_bundle
from optisched.ledger import Ledger, runs_by_slot, slot_costs
from optisched.plan import COST_TERMS, Flows, Plan
from optisched.replan import ReplanError, Replanner
from optisched.solvers import solve

__all__ = [
    "FORECAST_COLUMNS",
    "Forecasts",
    "Simulation",
    "mean_set_point",
    "read_actuals",
    "read_forecasts",
    "settle_plan",
    "settle_slot",
    "simulate",
]

log = logging.getLogger(__name__)

FORECAST_COLUMNS = ("issued_at", "time", "node_id", "pv_kw", "tariff", "price")
"""Columns of the forecasts CSV (``x_`` columns are ignored)."""
SIM_FILES = ("simulation.json", "ledger.csv", "cost.png")
"""Files :meth:`Simulation.write` puts in its directory."""


# ---------------------------------------------------------------------- forecasts


@dataclass(frozen=True)
class Forecasts:
    """Forecasts with their issue times.

    Attributes
    ----------
    pv : DataFrame
        Columns ``issued_at, time, node_id, pv_kw`` (times tz-aware).
    price : DataFrame
        Columns ``issued_at, time, tariff, price``.
    """

    pv: pd.DataFrame
    price: pd.DataFrame

    def issues(self) -> list[datetime]:
        """Every issue time, ascending."""
        ts = set(self.pv["issued_at"]) | set(self.price["issued_at"])
        return sorted(t.to_pydatetime() if isinstance(t, pd.Timestamp) else t for t in ts)

    def latest(self, now: datetime, start: datetime, end: datetime
               ) -> tuple[dict[str, pd.Series], dict[str, pd.Series]]:
        """The newest value issued at or before ``now`` for every slot in ``[start, end)``.

        Returns
        -------
        (pv, prices)
            ``node_id -> Series`` and ``tariff -> Series`` keyed by slot time.
        """
        def pick(df: pd.DataFrame, key: str, col: str) -> dict[str, pd.Series]:
            sel = df[(df["issued_at"] <= now) & (df["time"] >= start) & (df["time"] < end)]
            if sel.empty:
                return {}
            sel = sel.sort_values("issued_at").groupby([key, "time"], sort=True).last()
            return {str(k): grp.droplevel(0)[col].astype(float)
                    for k, grp in sel.groupby(level=0)}
        return pick(self.pv, "node_id", "pv_kw"), pick(self.price, "tariff", "price")

    def write(self, path: str | Path) -> Path:
        """Write both kinds into one CSV (the format :func:`read_forecasts` reads)."""
        pv = self.pv.assign(tariff="", price="")
        pr = self.price.assign(node_id="", pv_kw="")
        df = pd.concat([pv, pr], ignore_index=True)[list(FORECAST_COLUMNS)]
        for c in ("issued_at", "time"):
            df[c] = [t.isoformat() for t in df[c]]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")
        return path


def read_forecasts(path: str | Path, problem: Problem) -> Forecasts:
    """Read a forecasts CSV for ``problem`` (its nodes, tariffs and slot grid).

    Raises
    ------
    BundleError
        Every bad cell, named by file, row (header = 1), column and value: unknown
        columns, times without offset or off the slot grid, unknown node or tariff,
        a PV value that is not a number >= 0, a price that is not finite, a row with
        neither or both kinds.
    """
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise BundleError([InputError(name, None, None, None, "forecasts file not found")])
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    df.columns = [c.strip() for c in df.columns]
    errors: list[InputError] = []
    for c in df.columns:
        if c not in FORECAST_COLUMNS and not c.startswith("x_"):
            errors.append(InputError(name, 1, c, None, "unknown column; known: "
                                     + ", ".join(FORECAST_COLUMNS)))
    for c in ("issued_at", "time"):
        if c not in df.columns:
            errors.append(InputError(name, 1, c, None, "required column is missing"))
    if errors:
        raise BundleError(errors)
    hz = problem.horizon
    nodes = {n.node_id for n in problem.nodes}
    tariffs = set(problem.tariffs)
    pv_rows: list[tuple[datetime, datetime, str, float]] = []
    pr_rows: list[tuple[datetime, datetime, str, float]] = []

    def cell(row: dict[str, str], c: str) -> str:
        return row.get(c, "").strip()

    def when(r: int, c: str, v: str, grid: bool) -> datetime | None:
        try:
            t = datetime.fromisoformat(v)
        except ValueError:
            errors.append(InputError(name, r, c, v, "not an ISO 8601 time, e.g. "
                                     "2026-06-01T08:00:00+00:00"))
            return None
        if t.utcoffset() is None:
            errors.append(InputError(name, r, c, v, "needs a UTC offset, e.g. +00:00"))
            return None
        if grid:
            pos = hz.slot_position(t)
            if abs(pos - round(pos)) > 1e-9:
                errors.append(InputError(name, r, c, v, f"must lie on the slot grid "
                                         f"({hz.slot_minutes}-minute slots from "
                                         f"{hz.start.isoformat()})"))
                return None
        return t

    for i, row in enumerate(df.to_dict("records")):
        r = i + 2
        issued = when(r, "issued_at", cell(row, "issued_at"), False)
        t = when(r, "time", cell(row, "time"), True)
        nid, tariff = cell(row, "node_id"), cell(row, "tariff")
        pv, price = cell(row, "pv_kw"), cell(row, "price")
        is_pv, is_price = bool(nid or pv), bool(tariff or price)
        if is_pv == is_price:
            errors.append(InputError(name, r, "node_id" if not is_pv else "tariff",
                                     None, "a row holds either node_id and pv_kw or "
                                     "tariff and price"))
            continue
        key, col, value, known = ((nid, "pv_kw", pv, nodes) if is_pv
                                  else (tariff, "price", price, tariffs))
        kcol = "node_id" if is_pv else "tariff"
        bad = False
        if key not in known:
            errors.append(InputError(name, r, kcol, key, f"unknown {kcol}"))
            bad = True
        try:
            x = float(value)
        except ValueError:
            x = math.nan
        if not math.isfinite(x) or (is_pv and x < 0):
            errors.append(InputError(name, r, col, value, "must be a finite number"
                                     + (" >= 0 [kW]" if is_pv else " [money/kWh]")))
            bad = True
        if bad or issued is None or t is None:
            continue
        (pv_rows if is_pv else pr_rows).append((issued, t, key, x))
    if errors:
        raise BundleError(errors)

    def frame(rows: list[tuple[datetime, datetime, str, float]], key: str, col: str
              ) -> pd.DataFrame:
        out = pd.DataFrame(rows, columns=["issued_at", "time", key, col])
        for c in ("issued_at", "time"):
            out[c] = pd.to_datetime(out[c], utc=True)
        return out

    return Forecasts(frame(pv_rows, "node_id", "pv_kw"), frame(pr_rows, "tariff", "price"))


def read_actuals(bundle: str | Path, actuals: str | Path) -> Problem:
    """The bundle with its ``node_series.csv``, ``prices.csv`` and/or ``feeders.csv``
    replaced by ``actuals``'; without scenarios (beyond SPEC v1: the bundle's
    ``scenarios.csv`` is left out, the actual day is one outcome).

    Raises
    ------
    BundleError
        As :func:`optisched.io.read_bundle` (errors name the actuals' file); no
        ``node_series.csv`` nor ``prices.csv`` in ``actuals``.
    """
    bundle, actuals = Path(bundle), Path(actuals)
    files = [f for f in ("node_series.csv", "prices.csv", "feeders.csv")
             if (actuals / f).is_file()]
    if not files:
        raise BundleError([InputError(str(actuals), None, None, None,
                                      "needs node_series.csv and/or prices.csv")])
    with tempfile.TemporaryDirectory(prefix="optisched-actuals-") as tmp:
        d = Path(tmp) / "bundle"
        shutil.copytree(bundle, d)
        (d / "scenarios.csv").unlink(missing_ok=True)
        for f in files:
            shutil.copyfile(actuals / f, d / f)
        try:
            return read_bundle(d)
        except BundleError as exc:
            errs = [InputError(str(actuals / Path(e.file).name) if Path(e.file).name in files
                               else str(bundle / Path(e.file).name), e.row, e.column, e.value,
                               e.message) for e in exc.errors]
            raise BundleError(errs, exc.total) from None


def _with_forecast(problem: Problem, forecasts: Forecasts, now: datetime,
                   jobs: list[Job] | None = None) -> Problem:
    """``problem`` with the forecasts issued by ``now`` laid over its PV and prices."""
    hz = problem.horizon
    pv, prices = forecasts.latest(now, hz.start, hz.end)
    series = dict(problem.node_series)
    for nid, s in pv.items():
        base = series.get(nid, NodeSeries())
        vals = list(base.pv_kw) if base.pv_kw is not None else [0.0] * hz.slots
        for t, v in s.items():
            vals[round(hz.slot_position(t.to_pydatetime()))] = float(v)
        series[nid] = base.model_copy(update={"pv_kw": vals})
    tariffs = dict(problem.tariffs)
    for name, s in prices.items():
        tf = tariffs[name]
        vals = list(tf.price)
        for t, v in s.items():
            vals[round(hz.slot_position(t.to_pydatetime()))] = float(v)
        tariffs[name] = Tariff(price=vals, export_price=tf.export_price,
                               carbon_g_per_kwh=tf.carbon_g_per_kwh)
    return problem.model_copy(update={"node_series": series, "tariffs": tariffs,
                                      **({"jobs": jobs} if jobs is not None else {})})


# ---------------------------------------------------------------------- settlement


def settle_slot(index: Index, t: int, load: FloatArray, charge: FloatArray,
                discharge: FloatArray, soc: FloatArray) -> dict[str, FloatArray]:
    """Flows of slot ``t`` of every node on the data of ``index`` (the actuals).

    Parameters
    ----------
    index : Index
        The actual problem (its PV, headroom, prices, battery parameters).
    t : int
        Slot.
    load : (N,) float
        The plan's load in the slot [kW] (its jobs and on/off state are kept).
    charge, discharge : (N,) float
        The plan's battery set-point [kW].
    soc : (N,) float
        Actual state of charge at the start of the slot [kWh].

    Returns
    -------
    dict name -> (N,) float
        ``pv_used``, ``grid_import``, ``grid_export``, ``charge``, ``discharge``,
        ``soc`` (end of slot) and ``unserved`` (load neither PV, grid nor battery could
        supply within the headroom [kW]; imported beyond the headroom, so the
        evaluator reports it).

    Notes
    -----
    The battery set-point is clipped to the actual state of charge and limits.
    When the load cannot be met within the headroom, the battery charges less and
    then discharges more. The rest is the cheapest way to serve the slot given the
    battery power: PV first (the grid first when importing is paid), the grid up to
    the headroom, and further supply from a source cheaper than the export price
    exported (up to the export limit); PV left over charges the battery when it is
    not discharging (it would be curtailed otherwise).
    """
    dt = index.dt
    has = index.battery_kwh > 0
    ec, ed = index.eff_charge, index.eff_discharge
    lo, hi = index.soc_min, index.soc_max
    C = np.where(has, index.charge_kw, 0.0)
    D = np.where(has, index.discharge_kw, 0.0)
    room_up = np.maximum(hi - soc, 0.0) / (dt * np.maximum(ec, 1e-12))
    room_down = np.maximum(soc - lo, 0.0) * ed / dt
    c = np.minimum(np.minimum(charge, C), room_up)
    d = np.minimum(np.minimum(discharge, D), room_down)
    pv, H, X = index.pv[:, t], index.headroom[:, t], index.export_kw
    ci, e = index.import_cost[:, t], index.export_price[:, t]
    # load beyond PV + headroom: charge less, then discharge more
    short = np.maximum(load + c - d - pv - H, 0.0)
    cut = np.minimum(c, short)
    c -= cut
    short -= cut
    more = np.where(c <= 0, np.minimum(np.maximum(np.minimum(D, room_down) - d, 0.0), short), 0.0)
    d += more
    need = load + c - d
    # a battery surplus the export limit cannot take: discharge less
    over = np.maximum(-need - X, 0.0)
    d -= np.minimum(over, d)
    need = load + c - d
    surplus = np.maximum(-need, 0.0)
    need = np.maximum(need, 0.0)
    grid_first = ci < 0
    imp = np.where(grid_first, np.minimum(need, H), np.minimum(np.maximum(need - pv, 0.0), H))
    pv_load = np.where(grid_first, np.minimum(need - imp, pv), np.minimum(need, pv))
    unserved = np.maximum(need - imp - pv_load, 0.0)
    imp = imp + unserved  # beyond the headroom: reported by the evaluator
    # export: the battery's surplus first, then PV (paid), then grid cheaper than the price
    x_left = np.maximum(X - surplus, 0.0)
    pv_x = np.where(e > 0, np.minimum(pv - pv_load, x_left), 0.0)
    x_left -= pv_x
    grid_x = np.where(e > ci, np.minimum(np.maximum(H - imp, 0.0), x_left), 0.0)
    exp = surplus + pv_x + grid_x
    imp = imp + grid_x
    used = pv_load + pv_x
    # PV left over (curtailed otherwise) charges the battery
    left = np.maximum(pv - used, 0.0)
    room = np.maximum(room_up - c, 0.0)
    extra = np.where(d <= 0, np.minimum(np.minimum(left, np.maximum(C - c, 0.0)), room), 0.0)
    c += extra
    used = used + extra
    soc1 = np.where(has, soc + dt * (ec * c - d / ed), soc)
    return {"pv_used": used, "grid_import": imp, "grid_export": exp, "charge": c,
            "discharge": d, "soc": soc1, "unserved": unserved}


def _settle(index: Index, flows_of: Any, T: int) -> tuple[Flows, float]:
    """Settle every slot: ``flows_of(t)`` gives the plan's (load, on, charge, discharge)."""
    N = index.N
    out = Flows.zeros(N, T)
    soc = index.soc_init.copy()
    unserved = 0.0
    for t in range(T):
        load, on, c, d = flows_of(t, soc)
        f = settle_slot(index, t, load, c, d, soc)
        out.on[:, t], out.load[:, t] = on, load
        for name in ("pv_used", "grid_import", "grid_export", "charge", "discharge", "soc"):
            getattr(out, name)[:, t] = f[name]
        soc = f["soc"]
        unserved += float(f["unserved"].sum()) * index.dt
    return out, unserved


def mean_set_point(flows: Flows, weights: Any = None) -> tuple[FloatArray, FloatArray]:
    """The battery set-point of a plan: charge and discharge [kW], each ``(N, T)``; with
    several scenarios (beyond SPEC v1) their probability-weighted mean (``weights``,
    default equal)."""
    if flows.S == 1:
        return flows.charge, flows.discharge
    w = np.full(flows.S, 1.0 / flows.S) if weights is None else np.asarray(weights, dtype=float)
    parts = flows.scenario_flows()
    return (np.einsum("s,snt->nt", w, np.array([p.charge for p in parts])),
            np.einsum("s,snt->nt", w, np.array([p.discharge for p in parts])))


def settle_plan(index: Index, on: Any, load: FloatArray, charge: FloatArray,
                discharge: FloatArray) -> Flows:
    """A whole plan settled slot by slot on ``index`` (the actuals, :func:`settle_slot`).

    Parameters
    ----------
    index : Index
        The actual problem.
    on : (N, T) bool
        The plan's on/off states (kept).
    load : (N, T) float
        The plan's load [kW] (kept).
    charge, discharge : (N, T) float
        The plan's battery set-point [kW].

    Returns
    -------
    Flows
        The settled flows (one scenario).
    """

    def flows_of(t: int, _soc: FloatArray) -> tuple[Any, ...]:
        return load[:, t], on[:, t], charge[:, t], discharge[:, t]

    return _settle(index, flows_of, index.T)[0]


# ---------------------------------------------------------------------- the loop


@dataclass
class Simulation:
    """What :func:`simulate` found.

    Attributes
    ----------
    realized_cost, plan_once_cost, perfect_foresight_cost : float
        Cost of the day on the actuals [money] (SPEC §3, by the evaluator).
    perfect_foresight_source : str
        ``lns`` (from scratch), ``lns-warm`` (from the realized placement) or
        ``realized`` (nothing cheaper was found).
    costs : dict strategy -> dict term -> float
        Cost terms of ``realized``, ``plan_once`` and ``perfect_foresight``.
    feasible : dict strategy -> bool
        Whether the evaluator accepts each schedule on the actuals (a settled
        schedule may break the terminal battery rule or need import beyond the
        headroom when the actuals fall short of the forecast).
    violations : dict strategy -> list of str
        The first violations of each.
    unserved_kwh : dict strategy -> float
        Energy the settlement had to import beyond the headroom.
    per_slot : dict strategy -> list of float
        Cost of each slot (energy − export + carbon + degradation + switching) [money].
    updates : list of dict
        One per re-plan: time, objective, latency, jobs handed over, changes by kind.
    ledger : DataFrame
        The realized day, settled, one row per slot and node
        (:data:`optisched.ledger.SLOT_COLUMNS`).
    meta : dict
        Arguments and timings.
    """

    realized_cost: float
    plan_once_cost: float
    perfect_foresight_cost: float
    perfect_foresight_source: str
    costs: dict[str, dict[str, float]]
    feasible: dict[str, bool]
    violations: dict[str, list[str]]
    unserved_kwh: dict[str, float]
    per_slot: dict[str, list[float]]
    updates: list[dict[str, Any]]
    ledger: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, ledger: bool = True) -> dict[str, Any]:
        """JSON-ready content of ``simulation.json``."""
        d: dict[str, Any] = {
            "realized_cost": self.realized_cost, "plan_once_cost": self.plan_once_cost,
            "perfect_foresight_cost": self.perfect_foresight_cost,
            "perfect_foresight_source": self.perfect_foresight_source,
            "costs": self.costs, "feasible": self.feasible, "violations": self.violations,
            "unserved_kwh": self.unserved_kwh, "per_slot": self.per_slot,
            "updates": self.updates, "meta": self.meta,
        }
        if ledger:
            led = self.ledger.copy()
            led["time"] = [t.isoformat() for t in led["time"]]
            d["ledger"] = json.loads(led.to_json(orient="records"))
        return d

    def figure(self) -> Figure:
        """Cumulative cost over the day of the three schedules."""
        fig = Figure(figsize=(9, 4.5), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        times = pd.to_datetime(sorted(set(self.ledger["time"])))
        labels = {"realized": f"re-planned every {self.meta.get('replan_every')} slots "
                              f"(realized {self.realized_cost:.2f})",
                  "plan_once": f"planned once on the forecast ({self.plan_once_cost:.2f})",
                  "perfect_foresight": f"perfect foresight ({self.perfect_foresight_cost:.2f})"}
        for key, style in (("plan_once", ":"), ("realized", "-"), ("perfect_foresight", "--")):
            ax.step(times, np.cumsum(self.per_slot[key]), style, where="post", label=labels[key])
        ax.set_ylabel("cumulative energy and switching cost [money]")
        ax.set_title("Cost over the day on the actual PV and prices "
                     "(job costs are added at the end)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        return fig

    def write(self, out: str | Path) -> Path:
        """Write ``simulation.json``, ``ledger.csv`` and ``cost.png`` into ``out`` (atomically)."""
        def fill(tmp: Path) -> None:
            (tmp / "simulation.json").write_text(json.dumps(self.to_dict(), indent=1),
                                                 encoding="utf-8")
            led = self.ledger.copy()
            led["time"] = [t.isoformat() for t in led["time"]]
            led.to_csv(tmp / "ledger.csv", index=False, float_format="%.10g",
                       lineterminator="\n")
            self.figure().savefig(tmp / "cost.png")
        return write_dir_atomically(out, fill, allowed=SIM_FILES)


def _priced(problem: Problem, plan: Plan) -> tuple[dict[str, float], float, bool, list[str],
                                                    list[float]]:
    """Cost terms, objective, feasibility, first violations and per-slot costs of a plan."""
    index = compile_index(problem)
    ev = evaluate(problem, plan, index)
    assert plan.flows is not None
    sc = slot_costs(index, plan.flows, index.T)
    per = (sc["energy"] - sc["export_revenue"] + sc["carbon"] + sc["degradation"]
           + sc["switching"]).sum(axis=0)
    return (ev.costs, float(ev.objective), bool(ev.feasible),
            [str(v) for v in ev.violations[:5]], [float(x) for x in per])


def simulate(problem: Problem, actual: Problem, forecasts: Forecasts, replan_every: int, *,
             solver: str = "greedy", time_limit: float = 0.5, iterations: int | None = None,
             plan_once_time_limit: float = 5.0, pf_solver: str = "lns",
             pf_time_limit: float = 30.0, pf_options: Mapping[str, Any] | None = None,
             jobs_known_ahead: bool = False, seed: int = 0) -> Simulation:
    """Run the closed loop over ``problem``'s horizon (see the module docstring).

    Parameters
    ----------
    problem : Problem
        The bundle: nodes, jobs (known from their ``release``), and the series as
        forecast before the first issue.
    actual : Problem
        The same with the actual PV and prices (:func:`read_actuals`).
    forecasts : Forecasts
        Forecast issues (:func:`read_forecasts`).
    replan_every : int
        Slots between re-plans (``K >= 1``); arrivals re-plan in between.
    solver : str
        The re-planner's solver (and the plan-once solver).
    time_limit : float
        Local-search budget of each re-plan [s].
    iterations : int, optional
        Cap on local-search moves per re-plan (reproducible runs).
    plan_once_time_limit : float
        Budget of the plan made once [s].
    pf_solver : str
        Solver of perfect foresight (default ``lns``).
    pf_time_limit : float
        Budget of each perfect-foresight solve [s] (two solves: from scratch and
        warm-started from the realized placement).
    pf_options : mapping, optional
        Options of the perfect-foresight solver (e.g. ``{"max_iterations": 50}`` for a
        reproducible ``lns``).
    jobs_known_ahead : bool
        Hand every job to the re-planner at the start (they still cannot start
        before their release): separates the value of re-planning on new forecasts
        from the cost of learning about jobs only when they arrive.
    seed : int
        Random seed.

    Returns
    -------
    Simulation
        Costs of the three schedules, the updates and the settled ledger.

    Raises
    ------
    ValueError
        ``replan_every < 1``, or ``actual`` has other nodes or another horizon.
    """
    if replan_every < 1:
        raise ValueError(f"replan_every must be at least 1 slot, got {replan_every}")
    hz = problem.horizon
    if ([n.node_id for n in actual.nodes] != [n.node_id for n in problem.nodes]
            or actual.horizon != hz):
        raise ValueError("the actuals must have the bundle's nodes and horizon")
    T = hz.slots
    t_start = time.perf_counter()
    ix_act = compile_index(actual)
    weights = [sc.weight for sc in problem.scenarios.values()] or None
    known = [j for j in problem.jobs if jobs_known_ahead or j.release is None
             or j.release <= hz.start]
    later = sorted((j for j in problem.jobs if j not in known),
                   key=lambda j: j.release or hz.start)
    first = _with_forecast(problem, forecasts, hz.start, jobs=known)
    rp = Replanner(first, solver=solver, seed=seed, time_limit=time_limit,
                   iterations=iterations)
    updates: list[dict[str, Any]] = []
    realized = Flows.zeros(ix_act.N, T)
    soc = ix_act.soc_init.copy()
    unserved = 0.0
    batt = [n.node_id for n in problem.nodes if n.battery_kwh > 0]
    for t in range(T):
        now = hz.time_of(t)
        arrived = [j for j in later if j.release is not None and j.release <= now]
        if t > 0 and (t % replan_every == 0 or arrived):
            later = [j for j in later if j not in arrived]
            pv, prices = forecasts.latest(now, now, hz.end)
            pos = {n: i for i, n in enumerate(ix_act.node_ids)}
            t0 = time.perf_counter()
            row: dict[str, Any] = {"time": now.isoformat(), "arrived": [j.job_id for j in arrived]}
            try:
                plan = rp.update(now, new_jobs=arrived, pv=pv,
                                 # a problem with scenarios may have no shared tariffs
                                 prices=prices if prices or problem.tariffs else None,
                                 soc={n: float(soc[pos[n]]) for n in batt})
                row.update(objective=plan.objective, remaining_cost=rp.remaining_cost,
                           changes={k: len(rp.last_changes.of_kind(k)) for k in
                                    ("added", "moved", "started", "restarted", "dropped",
                                     "rejected")})
            except ReplanError as exc:  # the plan in force stays
                row["error"] = str(exc)
            row["latency_ms"] = 1000 * (time.perf_counter() - t0)
            updates.append(row)
        f = rp.plan.flows
        assert f is not None
        s = t - rp.offset
        charge, discharge = mean_set_point(f, weights)
        out = settle_slot(ix_act, t, f.load[:, s], charge[:, s], discharge[:, s], soc)
        realized.on[:, t], realized.load[:, t] = f.on[:, s], f.load[:, s]
        for name in ("pv_used", "grid_import", "grid_export", "charge", "discharge", "soc"):
            getattr(realized, name)[:, t] = out[name]
        soc = out["soc"]
        unserved += float(out["unserved"].sum()) * hz.dt_hours
    # the realized day on the actuals (jobs never handed over count as dropped)
    ex_p, ex_plan = rp.executed()
    jobs = [*ex_p.jobs, *later]
    real_p = ex_p.model_copy(update={"node_series": actual.node_series, "tariffs": actual.tariffs,
                                     "feeders": actual.feeders, "jobs": jobs,
                                     "scenarios": {}})
    real_plan = Plan(solver=ex_plan.solver, status=ex_plan.status,
                     job_ids=[j.job_id for j in jobs], node_ids=ex_plan.node_ids,
                     node=np.concatenate([ex_plan.node, np.full(len(later), -1)]).astype(np.int64),
                     start=np.concatenate([ex_plan.start, np.zeros(len(later))]).astype(np.int64),
                     flows=realized)
    r_costs, r_cost, r_ok, r_viol, r_slots = _priced(real_p, real_plan)
    real_ix = compile_index(real_p)
    led = Ledger(real_ix.node_ids, real_ix.demand_charge)
    led.record_slots(real_ix, realized, [hz.time_of(t) for t in range(T)], 0,
                     runs_by_slot(real_ix, real_plan.node, real_plan.start, T), {})
    # plan once, on the first forecast with every job known
    all_first = _with_forecast(problem, forecasts, hz.start)
    once = solve(all_first, solver, time_limit=plan_once_time_limit, seed=seed)
    if not once.status.has_plan or once.flows is None:
        raise ValueError(f"the plan made once has no solution: {once.message}")
    of = once.flows
    once_c, once_d = mean_set_point(of, weights)

    def once_flows(t: int, _soc: FloatArray) -> tuple[Any, ...]:
        return of.load[:, t], of.on[:, t], once_c[:, t], once_d[:, t]

    once_settled, once_unserved = _settle(ix_act, once_flows, T)
    once_real = Plan(solver=once.solver, status=once.status, job_ids=once.job_ids,
                     node_ids=once.node_ids, node=once.node, start=once.start,
                     flows=once_settled)
    o_costs, o_cost, o_ok, o_viol, o_slots = _priced(actual, once_real)
    # perfect foresight: the day on the actuals, from scratch and from the realized placement
    cands: list[tuple[float, str, dict[str, float], bool, list[str], list[float]]] = []
    pf = solve(actual, pf_solver, time_limit=pf_time_limit, seed=seed, options=pf_options)
    if pf.status.has_plan and pf.flows is not None:
        c, obj, ok, viol, per = _priced(actual, pf)
        if ok:
            cands.append((obj, pf_solver, c, ok, viol, per))
    warm = _placement_of(actual, real_p, real_plan)
    try:
        pfw = solve(actual, pf_solver, time_limit=pf_time_limit, seed=seed, warm_start=warm,
                    options=pf_options)
        if pfw.status.has_plan and pfw.flows is not None:
            c, obj, ok, viol, per = _priced(actual, pfw)
            if ok:
                cands.append((obj, f"{pf_solver}-warm", c, ok, viol, per))
    except (ValueError, TypeError) as exc:  # the realized placement is not a plan of the day
        log.info("perfect foresight not warm-started: %s", exc)
    cands.append((r_cost, "realized", r_costs, r_ok, r_viol, r_slots))
    if o_ok:  # the plan made once, settled, is a plan of the actual day too
        cands.append((o_cost, "plan_once", o_costs, o_ok, o_viol, o_slots))
    best = min(cands, key=lambda x: x[0])
    return Simulation(
        realized_cost=r_cost, plan_once_cost=o_cost, perfect_foresight_cost=best[0],
        perfect_foresight_source=best[1],
        costs={"realized": r_costs, "plan_once": o_costs, "perfect_foresight": best[2]},
        feasible={"realized": r_ok, "plan_once": o_ok, "perfect_foresight": best[3]},
        violations={"realized": r_viol, "plan_once": o_viol, "perfect_foresight": best[4]},
        unserved_kwh={"realized": unserved, "plan_once": once_unserved,
                      "perfect_foresight": 0.0},
        per_slot={"realized": r_slots, "plan_once": o_slots, "perfect_foresight": best[5]},
        updates=updates, ledger=led.slots,
        meta={"replan_every": replan_every, "solver": solver, "time_limit": time_limit,
              "iterations": iterations, "plan_once_time_limit": plan_once_time_limit,
              "pf_solver": pf_solver, "pf_time_limit": pf_time_limit,
              "pf_options": dict(pf_options or {}), "jobs_known_ahead": jobs_known_ahead,
              "seed": seed,
              "slots": T, "slot_minutes": hz.slot_minutes, "start": hz.start.isoformat(),
              "forecast_issues": [t.isoformat() for t in forecasts.issues()],
              "jobs": len(problem.jobs), "nodes": len(problem.nodes),
              "seconds": time.perf_counter() - t_start,
              "cost_terms": list(COST_TERMS)},
    )


def _placement_of(actual: Problem, real_p: Problem, real_plan: Plan) -> Plan:
    """The realized placement as a plan of ``actual`` (no flows: the solver dispatches it).

    A job takes the node and start of its last run (``job_id`` or ``job_id#n``); a job
    that did not run is dropped.
    """
    where: dict[str, tuple[int, int]] = {}
    for j, job in enumerate(real_p.jobs):
        n = int(real_plan.node[j])
        if n >= 0:
            where[job.job_id.split("#")[0]] = (n, int(real_plan.start[j]))
    J = len(actual.jobs)
    node = np.full(J, -1, dtype=np.int64)
    start = np.zeros(J, dtype=np.int64)
    for j, job in enumerate(actual.jobs):
        if job.job_id in where:
            node[j], start[j] = where[job.job_id]
    return Plan(solver="realized", status=real_plan.status, job_ids=[j.job_id for j in
                                                                     actual.jobs],
                node_ids=[n.node_id for n in actual.nodes], node=node, start=start)


def run_files(bundle: str | Path, actuals: str | Path, forecasts: str | Path, replan_every: int,
              out: str | Path, **kwargs: Any) -> Simulation:
    """:func:`simulate` from files, and :meth:`Simulation.write` into ``out``."""
    problem = read_bundle(bundle)
    actual = read_actuals(bundle, actuals)
    fc = read_forecasts(forecasts, problem)
    sim = simulate(problem, actual, fc, replan_every, **kwargs)
    sim.write(out)
    return sim


def summary(sim: Simulation) -> Mapping[str, Any]:
    """The headline numbers (for the CLI)."""
    return {"realized_cost": sim.realized_cost, "plan_once_cost": sim.plan_once_cost,
            "perfect_foresight_cost": sim.perfect_foresight_cost,
            "perfect_foresight_source": sim.perfect_foresight_source,
            "updates": len(sim.updates), "feasible": sim.feasible}
