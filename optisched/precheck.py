"""Infeasibility that holds for every plan, found before any search, in user terms.

Each proof names the constraint family that fails (``docs/contract/problem.md``) and the
node, slot, feeder or job. The load every plan must serve, the *certain load*, is the
idle draw of nodes that cannot sleep (they are on wherever available) plus the draw of
pinned must-run jobs; no plan can serve less, so if that load cannot be supplied, no plan
exists:

* ``assignment``: a must-run job without any eligible (node, start);
* ``capacity`` / availability: pinned jobs that overlap beyond a node's capacity or run
  where their node is unavailable;
* ``power_balance``: in some slot the certain load exceeds pv + grid headroom + the
  battery's discharge limit;
* ``battery_energy``: the battery runs below ``soc_min`` even when it charges all it can
  (up to ``charge_kw`` and ``soc_max``, from pv and headroom the certain load leaves
  over) and discharges only what the certain load needs beyond pv + headroom — the
  highest state of charge any plan can have in every slot;
* ``battery_terminal``: that highest state of charge ends below ``soc_init`` under the
  terminal rule ``initial``;
* ``feeder``: in some slot the certain load of a feeder's nodes needs more net import
  than the feeder's headroom, however much pv, battery discharge and export offset it;
* energy over the horizon (``battery_terminal`` or ``power_balance``): the certain load's
  energy exceeds the node's pv and headroom energy plus what its battery can give net:
  nothing under the terminal rule ``initial``, else ``eff_discharge · (soc_init −
  soc_min)`` (from the balance, ``Σ (discharge − charge)·Δ ≤ eff_discharge · (soc_init −
  soc_end)``).

Loads that depend on where jobs go are left to the solvers' own explanations (the
elastic relaxation of ``highs``, the assumption core of ``cpsat``).

Status ``infeasible`` before a search comes only with such a proof
(:func:`prove_infeasible`); :attr:`Infeasibility.dropping_helps` says whether giving
must-run jobs a ``drop_penalty`` could help (it cannot when the idle draw alone is the
cause).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optisched.arrays import FloatArray
from optisched.domain import Problem
from optisched.index import Index, explain_job

__all__ = ["Infeasibility", "certain_load", "precheck", "prove_infeasible"]

TOL = 1e-6
"""Absolute tolerance of the proofs [kW, kWh]: a shortfall below it proves nothing."""
MAX_ITEMS = 10
"""Most proofs reported per constraint family."""


@dataclass(frozen=True)
class Infeasibility:
    """One proof that no plan exists.

    Attributes
    ----------
    constraint : str
        The failing family: ``assignment``, ``capacity``, ``availability``,
        ``power_balance``, ``battery_energy``, ``battery_terminal`` or ``feeder``.
    message : str
        What fails, with the numbers, in user terms (starts with ``[constraint]``).
    dropping_helps : bool
        Whether letting must-run jobs be dropped could remove the cause.
    subject : str
        The node, feeder or job it is about (``""``: several).
    """

    constraint: str
    message: str
    dropping_helps: bool
    subject: str = ""


def certain_load(index: Index, pinned: bool = True) -> FloatArray:
    """The load every plan serves ``(N, T)`` [kW]: idle draw of nodes that cannot sleep
    where available, plus (``pinned``) the idle draw and power of pinned must-run jobs."""
    load = np.where(index.available & ~index.can_sleep[:, None], index.idle_kw[:, None], 0.0)
    if not pinned:
        return np.asarray(load)
    running = np.zeros_like(load, dtype=bool)
    for j in np.nonzero(index.pinned & index.must_run)[0]:
        n, s = int(index.pinned_node[j]), int(index.pinned_start[j])
        a, b = max(0, s), min(index.T, s + int(index.duration(int(j), n)))
        load[n, a:b] += index.job_power[j] * index.power_factor[n]
        running[n, a:b] = True
    load += np.where(running & index.can_sleep[:, None], index.idle_kw[:, None], 0.0)
    return np.asarray(load)


def _slots(ts: np.ndarray) -> str:
    shown = ", ".join(str(int(t)) for t in ts[:8])
    return f"slot {shown}" if ts.size == 1 else f"slots {shown}{' …' if ts.size > 8 else ''}"


def _what(idle_only: bool, nodes: str = "node") -> str:
    if idle_only:
        return f"the idle draw (the {nodes} cannot sleep)"
    return "the idle draw and pinned must-run jobs"


def _node_proofs(index: Index, load: FloatArray, idle: FloatArray) -> list[Infeasibility]:
    """``power_balance``, ``battery_energy`` and ``battery_terminal`` of every node."""
    out: list[Infeasibility] = []
    dt = index.dt
    for n in range(index.N):
        L = load[n]
        if not (L > TOL).any():
            continue
        name = index.node_ids[n]
        idle_only = bool(np.allclose(L, idle[n]))
        what = _what(idle_only)
        has_batt = index.battery_kwh[n] > 0
        pv, head = index.pv[n], index.headroom[n]
        deficit = np.maximum(L - pv - head, 0.0)  # what only the battery can give [kW]
        dmax = float(index.discharge_kw[n]) if has_batt else 0.0
        bad = np.nonzero(deficit > dmax + TOL)[0]
        if bad.size:
            t = int(bad[0])
            batt = (f" + battery discharge limit {dmax:.6g} kW" if has_batt
                    else " (no battery)")
            out.append(Infeasibility(
                "power_balance",
                f"[power_balance] node {name} {_slots(bad)}: {what} of {L[t]:.6g} kW exceeds "
                f"pv {pv[t]:.6g} kW + grid headroom {head[t]:.6g} kW{batt} (slot {t})",
                not idle_only, name))
            continue
        if not has_batt or not (deficit > TOL).any():
            continue
        ec, ed = float(index.eff_charge[n]), float(index.eff_discharge[n])
        charge = np.minimum(float(index.charge_kw[n]), np.maximum(pv + head - L, 0.0))
        lo, hi, s0 = float(index.soc_min[n]), float(index.soc_max[n]), float(index.soc_init[n])
        soc = s0
        for t in range(index.T):  # the highest state of charge any plan can have
            soc = min(hi, soc + dt * ec * float(charge[t])) - dt * float(deficit[t]) / ed
            if soc < lo - TOL:
                need = float(deficit[: t + 1].sum()) * dt
                got = float(dt * ec * charge[: t + 1].sum())
                out.append(Infeasibility(
                    "battery_energy",
                    f"[battery_energy] node {name}: by slot {t}, {what} needs {need:.6g} kWh "
                    f"from the battery beyond pv + grid headroom ({need / ed:.6g} kWh out of it "
                    f"at discharge efficiency {ed:g}), more than the {s0 - lo:.6g} kWh above "
                    f"soc_min it starts with plus the {got:.6g} kWh it can store from what pv "
                    "and headroom leave over", not idle_only, name))
                break
        else:
            if index.terminal_initial and soc < s0 - TOL:
                need = float(deficit.sum()) * dt / ed
                got = float(dt * ec * charge.sum())
                out.append(Infeasibility(
                    "battery_terminal",
                    f"[battery_terminal] node {name}: the terminal rule 'initial' makes the "
                    f"battery end at or above its initial {s0:.6g} kWh, but {what} takes "
                    f"{need:.6g} kWh out of it beyond pv + grid headroom and at most "
                    f"{min(got, hi - lo):.6g} kWh can be stored back from what pv and headroom "
                    f"leave over (it ends at most {max(soc, 0.0):.6g} kWh)", not idle_only, name))
    return out


def _energy_proofs(index: Index, load: FloatArray, idle: FloatArray,
                   skip: set[str]) -> list[Infeasibility]:
    """Energy of the certain load over the horizon (``battery_terminal`` / ``power_balance``)
    of every node not in ``skip``: a check that also holds where the per-slot simulation of
    :func:`_node_proofs` cannot run (no battery)."""
    out: list[Infeasibility] = []
    dt = index.dt
    for n in range(index.N):
        name = index.node_ids[n]
        need = float(load[n].sum()) * dt
        if name in skip or need <= TOL:
            continue
        supply = float(np.sum(index.pv[n] + index.headroom[n])) * dt
        if not np.isfinite(supply):
            continue
        has_batt = index.battery_kwh[n] > 0
        free = (float(index.eff_discharge[n]) * float(index.soc_init[n] - index.soc_min[n])
                if has_batt else 0.0)
        terminal = has_batt and index.terminal_initial
        if need <= supply + (0.0 if terminal else free) + TOL:
            continue
        idle_only = bool(np.allclose(load[n], idle[n]))
        what = _what(idle_only)
        if terminal and need <= supply + free + TOL:
            out.append(Infeasibility(
                "battery_terminal",
                f"[battery_terminal] node {name}: {what} needs {need:.6g} kWh over the horizon "
                f"but pv and grid headroom give at most {supply:.6g} kWh; the battery could give "
                f"the rest ({free:.6g} kWh above soc_min), but the terminal rule 'initial' makes "
                f"it end at or above its initial {float(index.soc_init[n]):.6g} kWh, so it "
                "gives nothing net", not idle_only, name))
        else:
            batt = (f" and the battery at most {free if not terminal else 0.0:.6g} kWh net "
                    f"(terminal rule {'initial' if index.terminal_initial else 'free'})"
                    if has_batt else "")
            out.append(Infeasibility(
                "power_balance",
                f"[power_balance] node {name}: {what} needs {need:.6g} kWh over the horizon, "
                f"more than pv and grid headroom give ({supply:.6g} kWh){batt}", not idle_only,
                name))
    return out


def _feeder_proofs(index: Index, load: FloatArray, idle: FloatArray) -> list[Infeasibility]:
    """``feeder``: the least net import of a feeder's nodes above its headroom."""
    out: list[Infeasibility] = []
    has_batt = index.battery_kwh > 0
    dmax = np.where(has_batt, index.discharge_kw, 0.0)
    least = np.maximum(load - index.pv - dmax[:, None], -index.export_kw[:, None])
    for f, fid in enumerate(index.feeder_ids):
        members = np.nonzero(index.feeder_of == f)[0]
        lim = index.feeder_headroom[f]
        if not members.size or not np.isfinite(lim).any():
            continue
        need = least[members].sum(axis=0)
        bad = np.nonzero(np.isfinite(lim) & (need > lim + TOL))[0]
        if not bad.size:
            continue
        t = int(bad[0])
        idle_only = bool(np.allclose(load[members][:, bad], idle[members][:, bad]))
        who = [index.node_ids[int(n)] for n in members if load[n, t] > TOL]
        out.append(Infeasibility(
            "feeder",
            f"[feeder] feeder {fid} {_slots(bad)}: {_what(idle_only, 'nodes')} of its nodes "
            f"{', '.join(who[:8])}{' …' if len(who) > 8 else ''} needs at least {need[t]:.6g} "
            f"kW of net import beyond their pv and battery discharge, above the feeder "
            f"headroom {lim[t]:.6g} kW (slot {t})", not idle_only, fid))
    return out


def prove_infeasible(problem: Problem, index: Index) -> list[Infeasibility]:
    """Every proof that no plan exists (see the module docstring); empty when none is found.

    Parameters
    ----------
    problem, index : Problem, Index
        The problem and its compiled index.
    """
    out: list[Infeasibility] = []
    no_option = np.diff(index.opt_job_ptr) == 0
    for j in np.nonzero(no_option & index.must_run & ~index.pinned)[0][:MAX_ITEMS]:
        out.append(Infeasibility("assignment", explain_job(problem, index, int(j))
                                 + " (it must run: give it a drop_penalty to allow dropping)",
                                 True))
    pj = np.nonzero(index.pinned)[0]
    if pj.size:
        use = np.zeros((index.N, index.T, len(index.resources)))
        for j in pj:
            n, s = int(index.pinned_node[j]), int(index.pinned_start[j])
            d = int(index.duration(int(j), n))
            a, b = max(0, s), min(index.T, s + d)
            use[n, a:b] += index.usage[j]
            if b > a and not index.available[n, a:b].all():
                t = a + int(np.argmin(index.available[n, a:b]))
                out.append(Infeasibility(
                    "availability", f"pinned job {index.job_ids[j]} runs on node "
                    f"{index.node_ids[n]} in slot {t}, where the node is unavailable", True))
        over = use > index.capacity[:, None, :] + 1e-9
        if over.any():
            n, t, r = np.argwhere(over)[0]
            out.append(Infeasibility(
                "capacity", f"pinned jobs on node {index.node_ids[n]} use {use[n, t, r]:g} "
                f"{index.resources[r]} in slot {t}, above its capacity "
                f"{index.capacity[n, r]:g}", True))
    idle = certain_load(index, pinned=False)
    load = certain_load(index)
    nodes = _node_proofs(index, load, idle)
    nodes += _energy_proofs(index, load, idle, {p.subject for p in nodes})
    out += nodes[:MAX_ITEMS]
    out += _feeder_proofs(index, load, idle)[:MAX_ITEMS]
    return out


def precheck(problem: Problem, index: Index) -> str | None:
    """Infeasibility visible before any search, in user terms, or None.

    The messages of :func:`prove_infeasible`, joined by ``"; "``.
    """
    proofs = prove_infeasible(problem, index)
    return "; ".join(p.message for p in proofs) if proofs else None
