"""Infeasibility that holds for every plan, found before any search, in user terms."""

from __future__ import annotations

import numpy as np

from optisched.domain import Problem
from optisched.index import Index, explain_job

__all__ = ["precheck"]


def precheck(problem: Problem, index: Index) -> str | None:
    """Infeasibility visible before any search, in user terms, or None.

    Finds must-run jobs without any eligible (node, start) and pinned jobs that
    run where their node is unavailable or that together exceed its capacity.
    """
    msgs = []
    no_option = np.diff(index.opt_job_ptr) == 0
    for j in np.nonzero(no_option & index.must_run & ~index.pinned)[0][:10]:
        msgs.append(explain_job(problem, index, int(j)) + " (it must run: give it a "
                    "drop_penalty to allow dropping)")
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
                msgs.append(f"pinned job {index.job_ids[j]} runs on node {index.node_ids[n]} in "
                            f"slot {t}, where the node is unavailable")
        over = use > index.capacity[:, None, :] + 1e-9
        if over.any():
            n, t, r = np.argwhere(over)[0]
            msgs.append(f"pinned jobs on node {index.node_ids[n]} use {use[n, t, r]:g} "
                        f"{index.resources[r]} in slot {t}, above its capacity "
                        f"{index.capacity[n, r]:g}")
    return "; ".join(msgs) if msgs else None
