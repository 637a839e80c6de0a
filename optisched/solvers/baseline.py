"""``baseline``: earliest feasible placement, battery idle, grid covers the rest.

A plain reference to measure the real solvers against; it optimizes nothing.

Jobs are taken pinned first, then by release slot, then in file order. Each goes
to the (node, start) with the earliest feasible start (ties: node order) such that
resources fit, and the node's import ``load − pv`` stays within headroom and its
feeder's net import within the feeder headroom, with the battery idle. A job
that fits nowhere is dropped when it may be, else there is no plan (status
``no_solution``: a heuristic proves no infeasibility).
Sleeping nodes are on exactly when a job runs; other nodes whenever available.
With several scenarios (beyond SPEC v1) the checks use the least PV and headroom of
any scenario and export only where every scenario pays for it, so the placement fits
every scenario; each scenario gets its own idle-battery flows.
"""

from __future__ import annotations

import numpy as np

from optisched.domain import Problem
from optisched.index import Index, explain_job
from optisched.plan import Plan, Status
from optisched.solvers.base import SolveOptions, idle_flows, plan_from_placement

__all__ = ["solve_baseline"]

_TOL = 1e-9


def solve_baseline(problem: Problem, index: Index, options: SolveOptions) -> Plan:
    """Earliest-feasible placement with an idle battery (see module docstring)."""
    N, T, J = index.N, index.T, index.J
    node = np.full(J, -1, dtype=np.int64)
    start = np.zeros(J, dtype=np.int64)
    use = np.zeros((N, T, len(index.resources)))
    jobs_kw = np.zeros((N, T))
    busy = np.zeros((N, T), dtype=np.int64)
    base_on = index.always_on
    fixed_load = index.idle_floor_kw
    sc = index.scenarios
    # the worst scenario for every check (index.headroom is already the least of them)
    pv_lo = index.pv if index.S == 1 else sc.pv.min(axis=0)
    paid = np.asarray(index.export_price > 0 if index.S == 1
                      else (sc.export_price > 0).all(axis=0), dtype=bool)
    # import headroom left per node, with idle nodes' own load already counted
    over = fixed_load - pv_lo - index.headroom
    if (over > _TOL).any():
        n, t = np.argwhere(over > _TOL)[0]
        return Plan.empty(problem, "baseline", Status.NO_SOLUTION,
                          f"node {index.node_ids[n]} slot {t}: idle load {fixed_load[n, t]:g} kW "
                          f"exceeds pv {pv_lo[n, t]:g} kW + headroom {index.headroom[n, t]:g} "
                          "kW with the battery idle")
    base_self = np.minimum(pv_lo, fixed_load)
    base_net = fixed_load - base_self - np.where(
        paid, np.minimum(pv_lo - base_self, index.export_kw[:, None]), 0.0)
    for f, fid in enumerate(index.feeder_ids):
        net = base_net[index.feeder_of == f].sum(axis=0)
        short = np.nonzero(net > index.feeder_headroom[f] + 1e-6)[0]
        if short.size:
            t = int(short[0])
            return Plan.empty(problem, "baseline", Status.NO_SOLUTION,
                              f"feeder {fid} slot {t}: idle load of nodes that cannot sleep "
                              f"needs {net[t]:g} kW net import, above the feeder headroom "
                              f"{index.feeder_headroom[f, t]:g} kW with batteries idle")
    order = sorted(range(J), key=lambda j: (index.pinned_node[j] < 0, index.release[j], j))

    def feeder_ok(n: int, a: int, b: int, extra_kw: float) -> bool:
        """Feeder net import (import − export, battery idle) with the candidate added."""
        f = int(index.feeder_of[n])
        if f < 0:
            return True
        members = np.nonzero(index.feeder_of == f)[0]
        on = (base_on | (busy > 0))[members, a:b]
        jk = jobs_kw[members, a:b].copy()
        k = int(np.nonzero(members == n)[0][0])
        on[k] = True
        jk[k] += extra_kw
        load = on * index.idle_kw[members, None] + jk
        pv = pv_lo[members, a:b]
        self_use = np.minimum(pv, load)
        export = np.where(paid[members, a:b],
                          np.minimum(pv - self_use, index.export_kw[members, None]), 0.0)
        net = (load - self_use - export).sum(axis=0)
        return bool((net <= index.feeder_headroom[f, a:b] + 1e-6).all())

    for j in order:
        best: tuple[int, int, int] | None = None
        for o in index.options_of(j):
            n = int(index.opt_node[o])
            for s in index.feasible_starts(o):
                s = int(s)
                if best is not None and s >= best[0]:
                    break
                a, b = index.occupied(o, s)
                if (use[n, a:b] + index.usage[j] > index.capacity[n] + _TOL).any():
                    continue
                load = index.idle_kw[n] + jobs_kw[n, a:b] + index.opt_power[o]  # node on
                imp = np.maximum(0.0, load - pv_lo[n, a:b])
                if (imp > index.headroom[n, a:b] + 1e-6).any():
                    continue
                if not feeder_ok(n, a, b, float(index.opt_power[o])):
                    continue
                best = (s, n, int(o))
                break
        if best is None and index.pinned[j]:
            # a pinned job never moves and is never dropped (its drop penalty notwithstanding)
            return Plan.empty(problem, "baseline", Status.NO_SOLUTION,
                              f"pinned job {index.job_ids[j]}: its node "
                              f"{index.node_ids[int(index.pinned_node[j])]} cannot supply it "
                              "with the battery idle (the baseline never uses the battery)")
        if best is None:
            if index.must_run[j]:
                if index.opt_job_ptr[j + 1] == index.opt_job_ptr[j]:  # no option at all: proven
                    return Plan.empty(problem, "baseline", Status.INFEASIBLE,
                                      explain_job(problem, index, j))
                return Plan.empty(problem, "baseline", Status.NO_SOLUTION,
                                  f"job {index.job_ids[j]}: no eligible (node, start) has enough "
                                  "free capacity, grid headroom or feeder headroom with the "
                                  "battery idle")
            continue
        s, n, o = best
        a, b = index.occupied(o, s)
        node[j], start[j] = n, s
        use[n, a:b] += index.usage[j]
        jobs_kw[n, a:b] += index.opt_power[o]
        busy[n, a:b] += 1
    on = base_on | (busy > 0)
    flows = idle_flows(index, on, on * index.idle_kw[:, None] + jobs_kw)
    return plan_from_placement(problem, index, "baseline", Status.FEASIBLE, node, start, flows)
