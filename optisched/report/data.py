"""The data of a report: the plan evaluated, its cost attributed to nodes and jobs
(:func:`optisched.viz.node_costs`, :func:`~optisched.viz.job_costs`), the GPUs in use,
the highlighted nodes (:class:`Context`), and the jobs packed on GPU lanes."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from optisched import viz
from optisched.arrays import FloatArray
from optisched.domain import Problem
from optisched.evaluate import Evaluation, resource_usage
from optisched.index import Index
from optisched.plan import Plan
from optisched.report.format import Clock

__all__ = ["FLOW", "KIND_COLOURS", "MAX_LANES", "Context", "context_of", "job_lanes"]


MAX_LANES = 64
"""GPU lanes drawn per node in the node view; wider nodes are drawn in GPU units."""


KIND_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
                "#999999", "#332288", "#882255"]


FLOW = {"pv": ("PV used", "#E69F00"), "discharge": ("battery discharge", "#009E73"),
        "import": ("grid import", "#0072B2"), "charge": ("battery charge", "#56B4E9"),
        "export": ("grid export", "#CC79A7")}


@dataclass
class Context:
    """What every section reads: the plan evaluated and attributed, the clock, the kinds."""

    problem: Problem
    plan: Plan
    index: Index
    ev: Evaluation
    nc: viz.NodeCosts
    jc: viz.JobCosts
    clock: Clock
    kinds: list[str]
    kind_colour: dict[str, str]
    gpu_h: FloatArray
    used: FloatArray  # (N, T) GPUs in use
    highlights: dict[str, list[int]]


def context_of(problem: Problem, plan: Plan, index: Index, ev: Evaluation,
               step: Callable[[str], None]) -> Context:
    step("attribute costs")
    nc = viz.node_costs(problem, plan, index)
    jc = viz.job_costs(problem, plan, index, nc)
    kinds = [n.kind or "(no kind)" for n in problem.nodes]
    order = sorted(set(kinds))
    return Context(problem=problem, plan=plan, index=index, ev=ev, nc=nc, jc=jc,
                   clock=Clock(problem), kinds=kinds,
                   kind_colour={k: KIND_COLOURS[i % len(KIND_COLOURS)]
                                for i, k in enumerate(order)},
                   gpu_h=viz.gpu_hours(index, plan),
                   used=resource_usage(index, plan.node, plan.start, index.usage[:, 0]),
                   highlights=viz.highlight_nodes(problem, plan, index))


def job_lanes(ctx: Context) -> dict[int, list[list[float]]]:
    """Per node: [job, first slot, end slot, first lane, lanes] with jobs packed on GPU lanes."""
    idx, plan = ctx.index, ctx.plan
    per: dict[int, list[tuple[int, int, int]]] = {}
    for jj in np.nonzero(plan.node >= 0)[0].tolist():
        n = int(plan.node[jj])
        s = int(plan.start[jj])
        lo, hi = max(0, s), min(idx.T, s + int(idx.duration(jj, n)))
        if hi > lo:
            per.setdefault(n, []).append((jj, lo, hi))
    out: dict[int, list[list[float]]] = {}
    for n, items in per.items():
        cap = float(idx.capacity[n, 0])
        unit = 1.0 if cap <= MAX_LANES else cap / MAX_LANES  # GPUs per drawn lane
        L = max(1, math.ceil(cap / unit))
        free_at = np.zeros(L + 64, dtype=np.int64)  # end slot of the lane's last job
        placed: list[list[float]] = []
        for j, a, b in sorted(items, key=lambda x: (x[1], -float(idx.usage[x[0], 0]), x[0])):
            need = max(1, math.ceil(float(idx.usage[j, 0]) / unit - 1e-9))
            ok = free_at <= a
            lane: int = -1
            run = 0
            for q in range(len(ok)):
                run = run + 1 if ok[q] else 0
                if run >= need:
                    lane = q - need + 1
                    break
            if lane < 0:  # fractional overlaps: stack above
                lane = len(free_at)
                free_at = np.concatenate([free_at, np.zeros(need, dtype=np.int64)])
            free_at[lane:lane + need] = b
            placed.append([float(j), float(a), float(b), lane * unit, need * unit])
        out[n] = placed
    return out
