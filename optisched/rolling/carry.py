"""The previous plan's dispatch of a node kept across a roll: :func:`carry_flows`.

A battery node whose data, load and on-state over the shared slots did not change
keeps the flows of the plan in force; its few new slots are filled by a rule and
its final state of charge is shifted to the rolled problem's terminal target by
:func:`top_up` (short) or :func:`draw_down` (the plan stores more than asked).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optisched.arrays import FloatArray, IntArray
from optisched.index import Index
from optisched.plan import Flows

__all__ = ["NodeFlows", "carry_flows", "draw_down", "top_up"]

_SOC_TOL = 1e-7
"""Tolerance of carried state-of-charge bounds [kWh]."""
_FLOW_TOL = 1e-9


@dataclass
class NodeFlows:
    """Flows of one node over a horizon (each ``(T,)``), battery parameters and limits.

    The mutable working copy of :func:`carry_flows` and :func:`top_up`.
    """

    load: FloatArray
    pv: FloatArray
    headroom: FloatArray
    import_cost: FloatArray
    export_price: FloatArray
    pv_used: FloatArray
    grid_import: FloatArray
    grid_export: FloatArray
    charge: FloatArray
    discharge: FloatArray
    soc: FloatArray


def carry_flows(index: Index, rows: IntArray, old: Flows, k: int, load: FloatArray
                ) -> tuple[IntArray, dict[str, FloatArray]]:
    """The previous plan's dispatch of nodes ``rows``, carried into the new horizon.

    Parameters
    ----------
    index : Index
        The new problem's index.
    rows : (R,) int
        Node positions whose data, load and on-state over the shared slots are
        unchanged.
    old : Flows
        The previous plan's flows; its slots ``k .. k+T_ov−1`` are the new slots
        ``0 .. T_ov−1`` (``T_ov = min(T, old slots − k)``).
    k : int
        Slots rolled.
    load : (N, T) float
        Load of the new plan.

    Returns
    -------
    kept : (R',) int
        The rows whose flows could be carried.
    flows : dict name -> (R', T) float
        Their ``pv_used``, ``grid_import``, ``grid_export``, ``charge``,
        ``discharge`` and ``soc``: the carried flows; in the slots past ``T_ov`` PV
        first, the grid for the rest, PV left over stored when that is worth more
        than exporting it (else exported when paid), the battery otherwise idle; the
        state of charge recomputed from the new ``soc_init`` and shifted to the
        terminal rule (:func:`top_up` when short, :func:`draw_down` when the
        previous plan stored more than the rolled problem asks for). A row is left
        out when a bound breaks (headroom in a new slot, soc limits) or the top-up
        cannot reach the terminal state: it is then dispatched again.
    """
    T = index.T
    T_ov = max(0, min(T, old.on.shape[1] - k))
    R = rows.size
    fl = {name: np.zeros((R, T)) for name in ("pv_used", "grid_import", "grid_export",
                                              "charge", "discharge")}
    for name, arr in fl.items():
        arr[:, :T_ov] = getattr(old, name)[rows, k:k + T_ov]
    ok = np.ones(R, dtype=bool)
    if T_ov < T:  # new slots: battery idle
        L, P = load[rows, T_ov:], index.pv[rows, T_ov:]
        used = np.minimum(P, L)
        imp = L - used
        ok &= ~(imp > index.headroom[rows, T_ov:] + 1e-7).any(axis=1)
        exp = np.where(index.export_price[rows, T_ov:] > 0,
                       np.minimum(P - used, index.export_kw[rows][:, None]), 0.0)
        # PV left over (curtailed, or exported for less than it saves when stored: the
        # cheapest import it can displace, after the round trip) charges the battery,
        # within its power limit and the room left at the end of the shared slots; a
        # charge beyond the terminal target is then drawn down where it saves most
        spare = P - used
        eff = index.eff_charge[rows] * index.eff_discharge[rows]
        least = index.import_cost[rows].min(axis=1, initial=np.inf) * eff
        worth = (index.battery_kwh[rows] > 0)[:, None] & (
            index.export_price[rows, T_ov:] < least[:, None])
        ch = np.where(worth, np.minimum(spare, index.charge_kw[rows][:, None]), 0.0)
        dt = index.dt
        step0 = dt * (index.eff_charge[rows][:, None] * fl["charge"][:, :T_ov]
                      - fl["discharge"][:, :T_ov] / index.eff_discharge[rows][:, None])
        room = index.soc_max[rows] - (index.soc_init[rows] + step0.sum(axis=1))
        for t in range(ch.shape[1]):  # the few new slots: cap by the room left
            ch[:, t] = np.clip(np.minimum(ch[:, t], room / (dt * index.eff_charge[rows])),
                               0.0, None)
            room = room - dt * index.eff_charge[rows] * ch[:, t]
        exp = np.minimum(exp, spare - ch)
        fl["charge"][:, T_ov:] = ch
        fl["pv_used"][:, T_ov:] = used + exp + ch
        fl["grid_import"][:, T_ov:] = imp
        fl["grid_export"][:, T_ov:] = exp
    dt = index.dt
    step = dt * (index.eff_charge[rows][:, None] * fl["charge"]
                 - fl["discharge"] / index.eff_discharge[rows][:, None])
    soc = index.soc_init[rows][:, None] + np.cumsum(step, axis=1)
    batt = index.battery_kwh[rows] > 0
    ok &= ~batt | (((soc >= index.soc_min[rows][:, None] - _SOC_TOL)
                    & (soc <= index.soc_max[rows][:, None] + _SOC_TOL)).all(axis=1))
    fl["soc"] = soc
    if index.terminal_initial:
        diff = index.soc_init[rows] - soc[:, -1]
        for r in np.nonzero(ok & batt & (np.abs(diff) > _SOC_TOL))[0].tolist():
            n = int(rows[r])
            f = NodeFlows(load=load[n], pv=index.pv[n], headroom=index.headroom[n],
                          import_cost=index.import_cost[n], export_price=index.export_price[n],
                          pv_used=fl["pv_used"][r], grid_import=fl["grid_import"][r],
                          grid_export=fl["grid_export"][r], charge=fl["charge"][r],
                          discharge=fl["discharge"][r], soc=fl["soc"][r])
            if diff[r] > 0:
                ok[r] = top_up(index, n, f, float(diff[r]))
            else:
                draw_down(index, n, f, float(-diff[r]))
    keep = np.nonzero(ok)[0]
    return rows[keep], {name: arr[keep] for name, arr in fl.items()}


def _soc(index: Index, n: int, f: NodeFlows) -> None:
    """Recompute ``f.soc`` from ``soc_init`` and the battery flows (SPEC §2.6 dynamics)."""
    dt = index.dt
    step = dt * (index.eff_charge[n] * f.charge - f.discharge / index.eff_discharge[n])
    f.soc[:] = index.soc_init[n] + np.cumsum(step)


def draw_down(index: Index, n: int, f: NodeFlows, excess: float) -> None:
    """Lower the final state of charge of node ``n`` by up to ``excess`` kWh where it saves money.

    The mirror of :func:`top_up`: a plan made for a higher terminal target stores
    more than the rolled problem asks for. The most valuable cuts first, each
    limited by the soc floor of every later slot: charging less at ``t`` (the
    supply freed: less import, more export, or curtailed PV) lowers the charge by
    ``Δ·eff_c`` per kW and is worth ``v / eff_c`` per kWh; discharging more where
    the battery does not charge (displacing import, or exported) lowers it by
    ``Δ/eff_d`` per kW and is worth ``(v − degradation)·eff_d`` per kWh, for the
    value ``v`` of what the energy displaces (import cost, export price, 0 for
    curtailed PV). Cuts worth nothing are not made.
    """
    _shift(index, n, f, -excess)


def top_up(index: Index, n: int, f: NodeFlows, short: float) -> bool:
    """Raise the final state of charge of node ``n`` by ``short`` kWh at the least cost, in place.

    The cheapest raises first, each limited by the soc ceiling of every later slot:
    discharging less at slot ``t`` (the load then served by spare PV, exported PV
    or the grid within headroom) raises the charge by ``Δ/eff_d`` per kW, charging
    more (only where the battery does not discharge) by ``Δ·eff_c`` per kW. Cost
    per kWh raised: ``(q − degradation)·eff_d`` and ``q / eff_c`` for a source of
    price ``q`` (0 for PV that would be curtailed, the export price for PV that
    would be exported, the import cost for the grid; a node with a demand charge
    imports no more than its current peak).

    Measured on the re-planner's rolls (bench problem 1,000 × 100 × 96, hourly
    rolls over a day) :func:`top_up` and :func:`draw_down` reproduce the exact
    dispatch's cost to 1e-3 money; a node they cannot fix is dispatched again.

    Returns
    -------
    bool
        Whether the full ``short`` was raised (``f`` is then feasible again).
    """
    _shift(index, n, f, short)
    return bool(float(index.soc_init[n] - f.soc[-1]) <= _SOC_TOL
                and (f.soc <= index.soc_max[n] + _SOC_TOL).all())


def _shift(index: Index, n: int, f: NodeFlows, amount: float) -> None:
    """Raise (``amount > 0``) or lower the final state of charge by ``|amount|`` kWh, in place.

    See :func:`top_up` and :func:`draw_down`. Sources (raise) or sinks (lower) per
    slot, with their price or value and the kW they have left, are kept in arrays;
    candidates ``(cost, slot, mode, source)`` are tried cheapest (most valuable)
    first, later slots first on ties.
    """
    dt = index.dt
    ec, ed = float(index.eff_charge[n]), float(index.eff_discharge[n])
    deg = float(index.degradation[n])
    C, D = float(index.charge_kw[n]), float(index.discharge_kw[n])
    lo, hi = float(index.soc_min[n]), float(index.soc_max[n])
    T = f.soc.size
    q, e = f.import_cost, f.export_price
    up = amount > 0
    if up:
        lim = f.headroom.copy()
        if float(index.demand_charge[n]) > 0:
            lim = np.minimum(lim, f.grid_import.max(initial=0.0))
        # sources of extra supply: spare PV (free), exported PV, grid within headroom
        price = [np.zeros(T), e, q]
        left_kw = [np.maximum(f.pv - f.pv_used, 0.0), f.grid_export.copy(),
                   np.maximum(lim - f.grid_import, 0.0)]
        # mode 0: discharge less ((p − deg)·eff_d per kWh), mode 1: charge more (p / eff_c)
        cost = [lambda p: (p - deg) * ed, lambda p: p / ec]
    else:
        X = float(index.export_kw[n])
        # sinks of freed supply: less import, more (paid) export, curtailed PV
        price = [q, e, np.zeros(T)]
        left_kw = [f.grid_import.copy(), np.where(e > 0, np.maximum(X - f.grid_export, 0.0), 0.0),
                   f.pv_used.copy()]
        # mode 0: discharge more (worth (v − deg)·eff_d), mode 1: charge less (v / eff_c)
        cost = [lambda p: -(p - deg) * ed, lambda p: -p / ec]
    rows = []
    for src in range(3):
        for mode in range(2):
            if not up and mode == 0 and src == 2:
                continue  # discharging into curtailment is worth nothing
            c = cost[mode](price[src])
            ok = left_kw[src] > _FLOW_TOL
            if (up and mode == 0) or (not up and mode == 1):  # cuts an existing flow
                ok &= (f.discharge if up else f.charge) > _FLOW_TOL
            at = np.nonzero(ok)[0]
            rows.append(np.stack([c[at], at.astype(float), np.full(at.size, mode),
                                  np.full(at.size, src)], axis=1))
    cand = np.concatenate(rows) if rows else np.zeros((0, 4))
    if not up:
        cand = cand[cand[:, 0] < 0]  # only cuts that save money
    order = np.lexsort((-cand[:, 1], cand[:, 0]))
    left = abs(amount)
    for r in order.tolist():
        if left <= _SOC_TOL:
            break
        t, mode, src = int(cand[r, 1]), int(cand[r, 2]), int(cand[r, 3])
        room = (hi - float(f.soc[t:].max())) if up else (float(f.soc[t:].min()) - lo)
        kw_src = float(left_kw[src][t])
        if room <= _SOC_TOL or kw_src <= _FLOW_TOL:
            continue
        if up and mode == 0:      # discharge less
            per_kw, cap = dt / ed, float(f.discharge[t])
        elif up:                  # charge more, where it does not discharge
            per_kw, cap = dt * ec, C - float(f.charge[t]) if f.discharge[t] <= _FLOW_TOL else 0.0
        elif mode == 0:           # discharge more, where it does not charge
            per_kw, cap = dt / ed, D - float(f.discharge[t]) if f.charge[t] <= _FLOW_TOL else 0.0
        else:                     # charge less
            per_kw, cap = dt * ec, float(f.charge[t])
        kw = min(cap, kw_src, min(left, room) / per_kw)
        if kw <= _FLOW_TOL:
            continue
        if mode == 0:
            f.discharge[t] += -kw if up else kw
        else:
            f.charge[t] += kw if up else -kw
        # the other side of the power balance
        if up:
            if src == 0:
                f.pv_used[t] += kw
            elif src == 1:
                f.grid_export[t] -= kw
            else:
                f.grid_import[t] += kw
        elif src == 0:
            f.grid_import[t] -= kw
        elif src == 1:
            f.grid_export[t] += kw
        else:
            f.pv_used[t] -= kw
        left_kw[src][t] -= kw
        step = kw * per_kw
        f.soc[t:] += step if up else -step
        left -= step
    _soc(index, n, f)
