"""Working with the scenarios of a problem (beyond SPEC v1): reduction and the mean forecast.

* :func:`reduce_scenarios` keeps ``k`` scenarios by **fast forward selection**
  (Heitsch & Römisch, *Scenario reduction algorithms in stochastic programming*,
  Comput. Optim. Appl. 24, 187-206, 2003, algorithm 2.4) and gives each dropped
  scenario's weight to its nearest kept one.
* :func:`mean_forecast` is the *expected-value problem*: every uncertain series the
  probability-weighted mean of the scenarios (availability: available in every
  scenario), without scenarios. A plan made on it is the deterministic plan whose
  expected result is the EEV of ``docs/algorithms/scenarios.md``.
* :func:`scenario_distances` is the distance the reduction uses.

``optisched scenarios reduce BUNDLE --to K --out DIR`` is the command line of the first.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from optisched.arrays import FloatArray
from optisched.domain import Feeder, NodeSeries, Problem, ScenarioData, Tariff

__all__ = ["forward_selection", "mean_forecast", "reduce_scenarios", "scenario_distances",
           "window_scenarios"]

log = logging.getLogger(__name__)


def _series_blocks(problem: Problem) -> list[FloatArray]:
    """The uncertain series of every scenario as blocks ``(S, m)``, one block per kind
    (PV, headroom, availability, price, export price, carbon, feeder headroom)."""
    views = [p for _, _, p in problem.scenario_problems()]
    T = problem.horizon.slots
    nodes = [n.node_id for n in problem.nodes]

    def node_block(col: str, default: float) -> FloatArray:
        rows = []
        for v in views:
            row = []
            for nid in nodes:
                s = v.node_series.get(nid)
                seq = None if s is None else getattr(s, col)
                row.append(np.full(T, default) if seq is None else
                           np.asarray(seq, dtype=float))
            rows.append(np.concatenate(row) if row else np.zeros(0))
        return np.asarray(rows, dtype=float)

    def tariff_block(col: str) -> FloatArray:
        names = sorted({t for v in views for t in v.tariffs})
        return np.asarray([np.concatenate([np.asarray(getattr(v.tariffs[t], col), dtype=float)
                                           if t in v.tariffs else np.zeros(T) for t in names])
                           if names else np.zeros(0) for v in views], dtype=float)

    names_f = sorted({f for v in views for f in v.feeders})
    feeders = np.asarray([np.concatenate([np.asarray(v.feeders[f].headroom_kw, dtype=float)
                                          if f in v.feeders else np.zeros(T) for f in names_f])
                          if names_f else np.zeros(0) for v in views], dtype=float)
    return [node_block("pv_kw", 0.0), node_block("headroom_kw", math.inf),
            node_block("available", 1.0), tariff_block("price"), tariff_block("export_price"),
            tariff_block("carbon_g_per_kwh"), feeders]


def scenario_distances(problem: Problem) -> FloatArray:
    """Distances between the scenarios of ``problem``.

    Each kind of series (PV, headroom, availability, price, export price, carbon,
    feeder headroom) is one block of values per scenario; a block is divided by the
    root-mean-square of its values' standard deviations over the scenarios (a block
    the same in every scenario is left out; infinite headroom counts as equal), and
    the distance is the Euclidean distance of the concatenated scaled blocks.

    Returns
    -------
    (S, S) float
        Symmetric, zero diagonal [-].
    """
    parts = []
    for block in _series_blocks(problem):
        if block.size == 0:
            continue
        b = np.where(np.isfinite(block), block, 0.0)
        sd = float(np.sqrt(np.mean(b.std(axis=0) ** 2)))
        if sd > 0:
            parts.append(b / sd)
    S = len(problem.scenarios) or 1
    if not parts:
        return np.zeros((S, S))
    x = np.concatenate(parts, axis=1)
    diff = x[:, None, :] - x[None, :, :]
    return np.asarray(np.sqrt((diff ** 2).sum(axis=2)))


def forward_selection(dist: FloatArray, weight: FloatArray, k: int) -> tuple[list[int], FloatArray]:
    """Fast forward selection of ``k`` of ``S`` scenarios.

    Start with none kept; add, one at a time, the scenario ``u`` minimizing
    ``Σ_{i not kept} w_i · min_{j ∈ kept ∪ {u}} d_ij``. Every scenario not kept gives its
    weight to its nearest kept one (ties: the first kept in scenario order).

    Parameters
    ----------
    dist : (S, S) float
        Distances [-].
    weight : (S,) float
        Probabilities.
    k : int
        Scenarios to keep, ``1 <= k <= S``.

    Returns
    -------
    kept : list of int
        Kept scenarios in scenario order.
    new_weight : (k,) float
        Their weights (summing to the sum of ``weight``).
    """
    d = np.asarray(dist, dtype=float)
    w = np.asarray(weight, dtype=float)
    S = len(w)
    if not 1 <= k <= S:
        raise ValueError(f"can keep 1 to {S} scenarios, not {k}")
    nearest = np.full(S, math.inf)  # distance of each scenario to the kept set
    kept: list[int] = []
    for _ in range(k):
        free = np.ones(S, dtype=bool)
        free[kept] = False
        m = np.minimum(nearest[:, None], d)  # (i, u): distance of i with u kept too
        cost = np.where(free[:, None], w[:, None] * np.where(np.isfinite(m), m, 0.0),
                        0.0).sum(axis=0)
        cost[~free] = math.inf
        u = int(np.argmin(cost))
        kept.append(u)
        nearest = np.minimum(nearest, d[:, u])
    kept.sort()
    to = np.asarray(kept)[np.argmin(d[:, kept], axis=1)]
    to[kept] = kept
    new = np.array([float(w[to == j].sum()) for j in kept])
    return kept, new


def reduce_scenarios(problem: Problem, k: int) -> Problem:
    """``problem`` with ``k`` of its scenarios kept by fast forward selection
    (:func:`forward_selection` on :func:`scenario_distances`).

    The kept scenarios' series are unchanged; their weights take those of the dropped
    ones. ``k`` at least the number of scenarios returns ``problem`` itself.

    Raises
    ------
    ValueError
        ``k < 1``.
    """
    S = len(problem.scenarios)
    if k < 1:
        raise ValueError(f"--to must be at least 1, not {k}")
    if k >= S:
        return problem
    ids = list(problem.scenarios)
    w = np.array([sc.weight for sc in problem.scenarios.values()])
    kept, new = forward_selection(scenario_distances(problem), w, k)
    new = new / new.sum()  # keeps the sum at 1 to rounding
    log.info("scenario reduction: kept %s of %d", [ids[j] for j in kept], S)
    scen = {ids[j]: problem.scenarios[ids[j]].model_copy(update={"weight": float(nw)})
            for j, nw in zip(kept, new, strict=True)}
    return problem.model_copy(update={"scenarios": scen})


def mean_forecast(problem: Problem) -> Problem:
    """The expected-value problem of ``problem``: no scenarios, every PV, headroom, price,
    export price, carbon and feeder-headroom series the probability-weighted mean of the
    scenarios', availability true where every scenario has it. A problem without
    scenarios is returned as it is."""
    if not problem.scenarios:
        return problem
    views = problem.scenario_problems()
    T = problem.horizon.slots

    def mean(seqs: Sequence[tuple[float, Sequence[float | None] | None]],
             default: float) -> list[float]:
        """Weighted mean; a missing series or value is ``default``."""
        acc = np.zeros(T)
        for w, seq in seqs:
            acc += w * (np.full(T, default) if seq is None else
                        np.array([default if v is None else v for v in seq], dtype=float))
        return [float(v) for v in acc]

    grid_kw = {n.node_id: n.grid_kw for n in problem.nodes}

    series: dict[str, NodeSeries] = {}
    for nid in sorted({n for _, _, v in views for n in v.node_series}):
        got = [(w, v.node_series.get(nid)) for _, w, v in views]
        cols: dict[str, list[float] | list[bool] | None] = {}
        for col, default in (("pv_kw", 0.0), ("headroom_kw", grid_kw.get(nid, math.inf))):
            if all(s is None or getattr(s, col) is None for _, s in got):
                cols[col] = None
            else:
                cols[col] = mean([(w, None if s is None else getattr(s, col)) for w, s in got],
                                 default)
        av = [None if s is None else s.available for _, s in got]
        cols["available"] = (None if all(a is None for a in av) else
                             [all(a is None or a[t] for a in av) for t in range(T)])
        series[nid] = NodeSeries(**cols)
    tariffs = {name: Tariff(
        price=mean([(w, v.tariffs[name].price) for _, w, v in views], 0.0),
        export_price=mean([(w, v.tariffs[name].export_price) for _, w, v in views], 0.0),
        carbon_g_per_kwh=mean([(w, v.tariffs[name].carbon_g_per_kwh) for _, w, v in views],
                              0.0))
        for name in sorted({t for _, _, v in views for t in v.tariffs})}
    feeders = {name: Feeder(headroom_kw=mean([(w, v.feeders[name].headroom_kw)
                                              for _, w, v in views], math.inf))
               for name in sorted({f for _, _, v in views for f in v.feeders})}
    return problem.model_copy(update={"scenarios": {}, "node_series": series,
                                      "tariffs": tariffs, "feeders": feeders})



def window_scenarios(problem: Problem, k: int, slots: int) -> dict[str, ScenarioData]:
    """The scenarios of ``problem`` on the window of ``slots`` slots from slot ``k`` (the
    re-planner's roll; built without validation, the values were checked when read).

    Raises
    ------
    ValueError
        The window reaches past the scenarios' series (a scenario's series cannot be
        extended by an update).
    """
    if not problem.scenarios:
        return {}
    T = problem.horizon.slots
    if k < 0 or k + slots > T:
        raise ValueError(f"the scenarios' series cover slots 0-{T - 1} of the plan in force; "
                         f"the new horizon needs slots {k}-{k + slots - 1}: a problem with "
                         "scenarios cannot be extended beyond its scenarios' data")

    def cut(seq: Sequence[Any]) -> list[Any]:
        return list(seq[k:k + slots])

    def opt(seq: Sequence[Any] | None) -> list[Any] | None:
        return None if seq is None else cut(seq)

    out = {}
    for sid, sc in problem.scenarios.items():
        series = None if sc.node_series is None else {
            nid: NodeSeries.model_construct(pv_kw=opt(v.pv_kw), headroom_kw=opt(v.headroom_kw),
                                            available=opt(v.available))
            for nid, v in sc.node_series.items()}
        tariffs = None if sc.tariffs is None else {
            name: Tariff.model_construct(price=cut(v.price), export_price=cut(v.export_price),
                                         carbon_g_per_kwh=cut(v.carbon_g_per_kwh))
            for name, v in sc.tariffs.items()}
        feeders = None if sc.feeders is None else {
            name: Feeder.model_construct(headroom_kw=cut(v.headroom_kw))
            for name, v in sc.feeders.items()}
        out[sid] = ScenarioData.model_construct(weight=sc.weight, node_series=series,
                                                tariffs=tariffs, feeders=feeders)
    return out
