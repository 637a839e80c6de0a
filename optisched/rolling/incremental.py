"""Incremental index updates of the re-planner, each equal to the compiled index.

:func:`append_jobs`, :func:`drop_jobs`, :func:`with_node_rows` and
:func:`roll_index` give the index of the next problem from the current one (the
tests compare them with the compiled index field by field): eligibility, windows
and durations are still decided only by :mod:`optisched.index`, here applied to
the new jobs or nodes alone.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from optisched.arrays import BoolArray, IntArray
from optisched.domain import Job, Node, NodeSeries, Problem
from optisched.index import Index, compile_index, slots_needed, sparse_max_tables

__all__ = ["append_jobs", "drop_jobs", "roll_index", "with_node_rows"]

_JOB_FIELDS = ("usage", "job_power", "release", "deadline", "hard_deadline", "tardiness_rate",
               "drop_penalty", "pinned_node", "pinned_start", "latency_ms", "duration_min",
               "latency_slo", "latency_rate")
"""Index fields with one row per job."""
_OPT_FIELDS = ("opt_node", "opt_dur", "opt_power", "opt_latency_cost", "opt_earliest",
               "opt_latest")
"""Option fields other than ``opt_job`` (rows follow their job)."""
_NODE_ROWS = ("pv", "headroom", "price", "export_price", "carbon", "import_cost")
"""Node × slot data fields that do not decide eligibility."""


def _jobs_only(problem: Problem, jobs: list[Job]) -> Problem:
    """``problem`` with ``jobs`` and only what eligibility reads (nodes, availability, latency).

    Unvalidated (``model_construct``); only for :func:`compile_index` of the jobs' rows.
    """
    series = {nid: NodeSeries.model_construct(pv_kw=None, headroom_kw=None, available=s.available)
              for nid, s in problem.node_series.items() if s.available is not None}
    return Problem.model_construct(scenario=problem.scenario, nodes=problem.nodes, jobs=jobs,
                                   node_series=series, tariffs={}, feeders={},
                                   latency_ms=problem.latency_ms, regions=problem.regions)


def append_jobs(index: Index, problem: Problem, new: list[Job]) -> Index | None:
    """The index of ``problem`` (= the indexed problem + ``new`` jobs at the end), or None.

    The new jobs' rows come from :func:`compile_index` of the new jobs alone; None
    when they bring a resource the index does not know (compile the whole problem).
    """
    if not new:
        return index
    if index.S > 1:  # beyond SPEC v1: scenario views cache job fields; compile
        return None
    part = compile_index(_jobs_only(problem, new))
    if part.resources != index.resources:
        return None
    J0, O0 = index.J, index.opt_job.size
    upd: dict[str, Any] = {f: np.concatenate([getattr(index, f), getattr(part, f)])
                           for f in (*_JOB_FIELDS, *_OPT_FIELDS)}
    upd["opt_job"] = np.concatenate([index.opt_job, part.opt_job + J0])
    upd["opt_job_ptr"] = np.concatenate([index.opt_job_ptr[:-1], part.opt_job_ptr + O0])
    upd["job_ids"] = [*index.job_ids, *part.job_ids]
    upd["job_pos"] = {j: i for i, j in enumerate(upd["job_ids"])}
    return dataclasses.replace(index, **upd)


def drop_jobs(index: Index, keep: BoolArray, problem: Problem) -> Index | None:
    """The index without the jobs where ``keep`` is False, or None.

    None when a removed job alone uses a resource no node has (the compiled index
    would no longer list it): compile the whole problem then.
    """
    if keep.all():
        return index
    if index.S > 1:  # beyond SPEC v1: scenario views cache job fields; compile
        return None
    node_res = {r for n in problem.nodes for r in n.resources} | {"gpus"}
    left_res = node_res | {r for j in problem.jobs for r in j.resources}
    if any(r not in left_res for r in index.resources):
        return None
    upd: dict[str, Any] = {f: getattr(index, f)[keep] for f in _JOB_FIELDS}
    okeep = keep[index.opt_job]
    for f in _OPT_FIELDS:
        upd[f] = getattr(index, f)[okeep]
    newpos = np.cumsum(keep) - 1
    upd["opt_job"] = newpos[index.opt_job[okeep]].astype(np.int64)
    counts = np.bincount(upd["opt_job"], minlength=int(keep.sum()))
    upd["opt_job_ptr"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    upd["job_ids"] = [j for j, k in zip(index.job_ids, keep, strict=True) if k]
    upd["job_pos"] = {j: i for i, j in enumerate(upd["job_ids"])}
    return dataclasses.replace(index, **upd)


def with_node_rows(index: Index, problem: Problem, rows: IntArray) -> Index:
    """The index with the data rows (PV, headroom, prices, carbon) of nodes ``rows`` and the
    feeder headroom taken from ``problem`` (availability and every job field unchanged).

    The rows come from :func:`compile_index` of those nodes alone, without jobs.
    """
    if rows.size == 0 and not problem.feeders:
        return index
    nodes: list[Node] = [problem.nodes[int(i)] for i in rows]
    sub = Problem.model_construct(
        scenario=problem.scenario, nodes=nodes, jobs=[],
        node_series={n.node_id: problem.node_series[n.node_id] for n in nodes
                     if n.node_id in problem.node_series},
        tariffs=problem.tariffs, feeders=problem.feeders, latency_ms={}, regions={})
    part = compile_index(sub)
    upd: dict[str, Any] = {}
    for f in _NODE_ROWS:
        arr = getattr(index, f).copy()
        arr[rows] = getattr(part, f)
        upd[f] = arr
    upd["feeder_headroom"] = part.feeder_headroom
    return dataclasses.replace(index, **upd)


_EPS = 1e-9
"""The index's tolerance on slot positions (:mod:`optisched.index`)."""


def roll_index(old: Index, problem: Problem, k: int) -> Index | None:
    """The index of ``problem``, the problem of ``old`` rolled by ``k`` slots, or None.

    ``problem`` keeps a subset of ``old``'s jobs in their order (some now pinned where
    they run) and may append new ones; its horizon starts ``k`` slots later and may
    have another length. The node part is compiled without jobs; the kept jobs'
    rows are ``old``'s with their windows moved (release ``max(0, r − k)``, deadline
    and pins from the jobs' times, the window end capped by the new horizon) and
    their options filtered by the new windows and availability, as
    :func:`~optisched.index.compile_index` decides them; a job whose window grows at
    its end (the horizon got longer than the rest of the old one) keeps its options
    with the longer window, and is compiled alone when that could give it a new one
    (its window was too short for its duration on some node, or a node is not always
    available);
    arrivals are appended (:func:`append_jobs`). None when that cannot be the
    compiled index: a job that lost its pin, a pin without its option, a node
    available where it was not, other resources.
    """
    if old.S > 1 or problem.scenarios:  # beyond SPEC v1: compile
        return None
    hz = problem.horizon
    T2 = hz.slots
    old_pos = old.job_pos
    kept = [j for j in problem.jobs if j.job_id in old_pos]
    new = [j for j in problem.jobs if j.job_id not in old_pos]
    kept_ids = {j.job_id for j in kept}
    if [j.job_id for j in kept] != [jid for jid in old.job_ids if jid in kept_ids]:
        return None  # reordered
    ki = np.array([old_pos[j.job_id] for j in kept], dtype=np.int64)
    J = ki.size
    if J == 0:
        return None  # nothing kept: the compile is cheap
    newpos = np.full(old.J, -1, dtype=np.int64)
    newpos[ki] = np.arange(J)
    nodes_ix = compile_index(Problem.model_construct(**{**dict(problem), "jobs": []}))
    if nodes_ix.resources != old.resources:
        return None  # a resource only jobs name: compile
    T_ov = max(0, min(T2, old.T - k))
    if (nodes_ix.available[:, :T_ov] & ~old.available[:, k:k + T_ov]).any():
        return None  # a node is available where it was not: options may appear
    base = {f: getattr(old, f)[ki] for f in _JOB_FIELDS}
    # the kept jobs' times in the new horizon
    release = np.maximum(base["release"] - k, 0)
    deadline = np.array([math.inf if j.deadline is None else hz.slot_position(j.deadline)
                         for j in kept], dtype=float).reshape(J)
    pinned_node = np.full(J, -1, dtype=np.int64)
    pinned_start = np.zeros(J, dtype=np.int64)
    for i, j in enumerate(kept):
        if j.pinned_node is not None and j.pinned_start is not None:
            pinned_node[i] = nodes_ix.node_pos[j.pinned_node]
            pinned_start[i] = round(hz.slot_position(j.pinned_start))
    if ((base["pinned_node"] >= 0) & (pinned_node < 0)).any():
        return None  # a pin was lifted (a restart): compile
    hard = base["hard_deadline"]
    end_cap = np.where(hard & np.isfinite(deadline),
                       np.floor(np.minimum(deadline, T2) + _EPS), T2).astype(np.int64)
    old_cap = np.where(hard & np.isfinite(base["deadline"]),
                       np.floor(np.minimum(base["deadline"], old.T) + _EPS), old.T
                       ).astype(np.int64)
    # a window that grows at its end may gain options where the old window was too short
    # for the job's duration there, or on a node not always available: such jobs are
    # compiled alone; the others keep their options with the longer window
    grow = (pinned_node < 0) & (end_cap > old_cap - k)
    partial: BoolArray = np.asarray(~nodes_ix.available.all(axis=1) | ~old.available.all(axis=1))
    alone = np.zeros(J, dtype=bool)
    gj = np.nonzero(grow)[0]
    if gj.size:
        dur = slots_needed(base["duration_min"][gj][:, None], old.slot_minutes,
                           old.speed[None, :])
        has = np.zeros((gj.size, old.N), dtype=bool)
        gpos = np.full(J, -1, dtype=np.int64)
        gpos[gj] = np.arange(gj.size)
        sel = (newpos[old.opt_job] >= 0)
        sel[sel] = gpos[newpos[old.opt_job][sel]] >= 0
        has[gpos[newpos[old.opt_job[sel]]], old.opt_node[sel]] = True
        short = (old_cap[gj] - base["release"][gj])[:, None] - dur < 0
        alone[gj] = (~has & (short | partial[None, :])).any(axis=1)
    # options: the pinned one for pinned jobs, the rest by the new windows and availability
    alive = newpos[old.opt_job] >= 0  # options of kept jobs
    oj = np.maximum(newpos[old.opt_job], 0)
    on, od = old.opt_node, old.opt_dur
    pin = pinned_node[oj] >= 0
    earliest = np.where(pin, pinned_start[oj], release[oj])
    latest = np.where(pin, pinned_start[oj], end_cap[oj] - od)
    ok = alive & np.where(pin, on == pinned_node[oj], latest >= earliest) & ~alone[oj]
    now_partial: BoolArray = np.asarray(~nodes_ix.available.all(axis=1))
    chk = np.nonzero(ok & ~pin & now_partial[on])[0]
    if chk.size:
        ok[chk] = _window_max(nodes_ix.avail_run, on[chk], earliest[chk], latest[chk]) >= od[chk]
    if (np.bincount(oj[ok & pin], minlength=J) != (pinned_node >= 0)).any():
        return None  # a pinned job without its option there
    upd: dict[str, Any] = {f: getattr(old, f)[ok] for f in _OPT_FIELDS}
    upd["opt_earliest"] = earliest[ok].astype(np.int64)
    upd["opt_latest"] = latest[ok].astype(np.int64)
    upd["opt_job"] = oj[ok]
    if alone.any():
        aj = np.nonzero(alone)[0]
        part = compile_index(_jobs_only(problem, [kept[int(i)] for i in aj]))
        if part.resources != old.resources:
            return None
        upd = {f: np.concatenate([upd[f], getattr(part, f)]) for f in (*_OPT_FIELDS, "opt_job")
               } | {"opt_job": np.concatenate([upd["opt_job"], aj[part.opt_job]])}
        order = np.lexsort((upd["opt_node"], upd["opt_job"]))
        upd = {f: v[order] for f, v in upd.items()}
    counts = np.bincount(upd["opt_job"], minlength=J)
    upd["opt_job_ptr"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    upd.update(release=release.astype(np.int64), deadline=deadline, pinned_node=pinned_node,
               pinned_start=pinned_start)
    ids = [j.job_id for j in kept]
    job_part: dict[str, Any] = {**base, "job_ids": ids,
                                "job_pos": {jid: i for i, jid in enumerate(ids)}, **upd}
    node_fields = {f.name for f in dataclasses.fields(Index)} - set(job_part) - {"resources"}
    rolled = dataclasses.replace(old, **job_part,
                                 **{f: getattr(nodes_ix, f) for f in node_fields})
    return append_jobs(rolled, problem, new)


def _window_max(run: IntArray, node: IntArray, lo: IntArray, hi: IntArray) -> IntArray:
    """Max of ``run[node, lo..hi]`` per query (inclusive), -1 when empty (as the index's)."""
    out = np.full(node.shape, -1, dtype=np.int64)
    good = hi >= lo
    if not good.any():
        return out
    tables = sparse_max_tables(run, run.shape[1])
    length = (hi[good] - lo[good] + 1).astype(np.int64)
    lvl = np.floor(np.log2(length)).astype(np.int64)
    res = np.empty(length.shape, dtype=np.int64)
    n_all, a_all, b_all = node[good], lo[good], hi[good]
    for lev in np.unique(lvl):
        m = lvl == lev
        tab = tables[int(lev)]
        res[m] = np.maximum(tab[n_all[m], a_all[m]], tab[n_all[m], b_all[m] - (1 << int(lev)) + 1])
    out[good] = res
    return out
