"""Real-time re-planning: a :class:`Replanner` holds the current plan and updates it.

A scheduler calls :meth:`Replanner.update` whenever something changes. The update

1. **rolls the horizon** to ``now`` (a slot boundary of the current horizon): the
   new problem starts at ``now``, keeps the slot length and has the *remaining*
   slots ``T' = T − k`` (``k`` slots elapsed); nothing is invented past the end of
   the data the scheduler gave. For a horizon of constant length, start a new
   :class:`Replanner` from a fresh problem;
2. carries the **state** over: each node's on/off state before ``now``
   (``initially_on``) and battery state of charge (``soc_init``) come from the
   current plan at slot ``k − 1``, or from a measured ``soc``;
3. **pins running jobs**: a job of the current plan with ``start < k < start + d``
   gets ``pinned_node``/``pinned_start`` (its start may lie before ``now``; only
   its remaining slots are in the new horizon) and never moves again; jobs that
   ended by ``now``, finished or were cancelled leave the problem. A running job
   on a node that goes out is restarted from scratch (unpinned, full duration);
4. applies new jobs, forecasts (PV, import price, headroom) and node outages and
   returns;
5. **warm-starts** the greedy solver: every job not yet started keeps its
   (node, start) when that still fits, the rest are inserted by marginal cost
   (repair), then a short local search improves the plan (improve).

``optisched replan PLAN_DIR BUNDLE --events events.csv --out DIR`` applies an
events CSV (format: :func:`read_events`) and writes the final plan and bundle.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from optisched.domain import Feeder, Job, NodeSeries, Problem, Scenario, Tariff
from optisched.evaluate import cost_terms, objective_of
from optisched.events import EVENT_KINDS, Events, check_event_times, read_events
from optisched.index import compile_index
from optisched.plan import Plan, Status
from optisched.precheck import precheck
from optisched.solvers.base import SolveOptions
from optisched.solvers.options import GreedyOptions

__all__ = ["EVENT_KINDS", "Events", "Replanner", "check_event_times", "read_events"]

log = logging.getLogger(__name__)

class Replanner:
    """Holds the current plan of a problem and re-plans it as things change.

    Parameters
    ----------
    problem : Problem
        The problem at the start.
    solver : str
        Registered solver; ``greedy`` (default) warm-starts from the current plan,
        any other solver re-solves from scratch.
    seed : int
        Random seed of the local search.
    time_limit : float
        Local-search budget of each update [s] (0 = repair only).
    plan : Plan, optional
        The current plan (e.g. read from a plan directory); solved when omitted.
    iterations : int, optional
        Cap on local-search moves per update (makes updates reproducible).

    Attributes
    ----------
    problem : Problem
        The current (rolled) problem.
    plan : Plan
        The current plan for it.
    """

    def __init__(self, problem: Problem, solver: str = "greedy", seed: int = 0,
                 time_limit: float = 0.05, plan: Plan | None = None,
                 iterations: int | None = None) -> None:
        self.solver = solver
        self.seed = seed
        self.time_limit = time_limit
        self.iterations = iterations
        self.problem = problem
        self.offset = 0
        """Slots rolled since ``problem`` was given."""
        T = problem.horizon.slots
        self._avail0 = {n.node_id: list(problem.node_series[n.node_id].available or [True] * T)
                        if n.node_id in problem.node_series else [True] * T
                        for n in problem.nodes}
        self._index: Any = None
        self.plan = plan if plan is not None else self._solve(problem, None)

    # ------------------------------------------------------------------ solving
    def _solve(self, problem: Problem, hint_ids: dict[str, tuple[str, int]] | None,
               trusted: bool = False, same_data: bool = False) -> Plan:
        t0 = time.perf_counter()
        if self.solver != "greedy":
            from optisched.solvers import solve

            self._index = None
            return solve(problem, self.solver, time_limit=self.time_limit, seed=self.seed)
        from optisched.solvers.greedy import run_greedy

        index = compile_index(problem)
        why = precheck(problem, index)
        if why is not None:
            return Plan.empty(problem, "greedy", Status.INFEASIBLE, why)
        hint = None
        if hint_ids:
            hint = {index.job_pos[j]: (index.node_pos[n], s) for j, (n, s) in hint_ids.items()
                    if j in index.job_pos and n in index.node_pos}
        prev = self.plan.flows if same_data and self.plan.status.has_plan else None
        params = GreedyOptions(iterations=self.iterations)
        plan = run_greedy(problem, index, SolveOptions(time_limit=self.time_limit,
                                                       seed=self.seed, params=params),
                          hint=hint, trusted=trusted, prev_flows=prev)
        self._index = index
        if plan.status.has_plan and plan.flows is not None:
            plan.costs = cost_terms(index, plan)
            plan.objective = objective_of(plan.costs)
        plan.timings["total"] = time.perf_counter() - t0
        return plan

    # ------------------------------------------------------------------ update
    def update(
        self,
        now: datetime,
        *,
        new_jobs: Iterable[Job] = (),
        cancelled: Iterable[str] = (),
        finished: Iterable[str] = (),
        soc: Mapping[str, float] | None = None,
        pv: Mapping[str, Sequence[float | None]] | None = None,
        prices: Mapping[str, Sequence[float | None]] | None = None,
        headroom: Mapping[str, Sequence[float | None]] | None = None,
        outages: Mapping[str, datetime | None] | Iterable[str] = (),
        returns: Iterable[str] = (),
    ) -> Plan:
        """Roll the horizon to ``now``, apply what changed and return the new plan.

        Parameters
        ----------
        now : datetime
            A slot boundary of the current horizon (``start ≤ now < end``).
        new_jobs : iterable of Job
            Jobs that arrived (release defaults to ``now``).
        cancelled, finished : iterable of str
            Job ids to remove (a finished job frees its node from ``now`` on).
        soc : mapping node_id -> float, optional
            Measured battery state of charge [kWh], clipped to [soc_min, soc_max].
        pv, headroom : mapping node_id -> sequence, optional
            New forecasts over the new horizon (``T'`` values [kW]; None keeps the
            current value; ``headroom`` inf = unlimited).
        prices : mapping tariff -> sequence, optional
            New import prices over the new horizon [money/kWh]; None keeps.
        outages : mapping node_id -> datetime or None, or iterable of node_id
            Nodes out from ``now`` until the given time (None or a plain id: to the
            end of the horizon).
        returns : iterable of node_id
            Nodes back in service from ``now`` (undo an outage).

        Returns
        -------
        Plan
            The new plan (also :attr:`plan`); :attr:`problem` is the new problem.

        Raises
        ------
        ValueError
            ``now`` off the slot grid or outside the horizon, unknown ids, or a
            forecast of the wrong length.
        """
        outages = dict(outages) if isinstance(outages, Mapping) else list(outages)
        returns = set(returns)
        problem, hint = self._next_problem(
            now, list(new_jobs), set(cancelled), set(finished), dict(soc or {}), pv or {},
            prices or {}, headroom or {}, outages, returns)
        # old placements still fit together unless availability or headroom changed
        trusted = not (outages or returns or pv or headroom)
        same_data = trusted and not (soc or prices) and problem.horizon.start == (
            self.problem.horizon.start)
        plan = self._solve(problem, hint, trusted, same_data)
        self.offset += round(self.problem.horizon.slot_position(now))
        self.problem, self.plan = problem, plan
        return plan

    def _next_problem(
        self, now: datetime, new_jobs: list[Job], cancelled: set[str], finished: set[str],
        soc: dict[str, float], pv: Mapping[str, Sequence[float | None]],
        prices: Mapping[str, Sequence[float | None]],
        headroom: Mapping[str, Sequence[float | None]],
        outages: Mapping[str, datetime | None] | Iterable[str], returns: set[str],
    ) -> tuple[Problem, dict[str, tuple[str, int]]]:
        old, plan = self.problem, self.plan
        hz = old.horizon
        pos = hz.slot_position(now)
        k = round(pos)
        if abs(pos - k) > 1e-9:
            raise ValueError(f"now={now.isoformat()} is not on the slot grid "
                             f"({hz.slot_minutes}-minute slots from {hz.start.isoformat()})")
        if not 0 <= k < hz.slots:
            raise ValueError(f"now={now.isoformat()} lies outside the horizon "
                             f"[{hz.start.isoformat()}, {hz.end.isoformat()})")
        T2 = hz.slots - k
        node_ids = [n.node_id for n in old.nodes]
        node_pos = {nid: i for i, nid in enumerate(node_ids)}
        job_ids = {j.job_id for j in old.jobs}
        for nid in [*soc, *pv, *headroom, *returns, *outages]:
            if nid not in node_pos:
                raise ValueError(f"unknown node_id {nid!r}")
        for jid in cancelled | finished:
            if jid not in job_ids:
                raise ValueError(f"unknown job_id {jid!r}")
        for t in prices:
            if t not in old.tariffs:
                raise ValueError(f"unknown tariff {t!r}")
        for name, m in (("pv", pv), ("headroom", headroom), ("prices", prices)):
            for key, seq in m.items():
                if len(seq) != T2:
                    raise ValueError(f"{name} for {key!r} has {len(seq)} values; the new horizon "
                                     f"from {now.isoformat()} has {T2} slots")
        out_until: dict[str, int] = {}
        items = outages.items() if isinstance(outages, Mapping) else ((o, None) for o in outages)
        for nid, until in items:
            if until is None:
                out_until[nid] = T2
            else:
                up = (until - now).total_seconds() / 60.0 / hz.slot_minutes
                out_until[nid] = max(0, min(T2, math.ceil(up - 1e-9)))

        # ---- series
        flows = plan.flows if plan.status.has_plan else None
        series: dict[str, NodeSeries] = {}
        for node in old.nodes:
            ns = old.node_series.get(node.node_id)
            pv_l = list(ns.pv_kw[k:]) if ns is not None and ns.pv_kw is not None else None
            hr_l = (list(ns.headroom_kw[k:]) if ns is not None and ns.headroom_kw is not None
                    else None)
            av_l = (list(ns.available[k:]) if ns is not None and ns.available is not None
                    else None)
            nid = node.node_id
            if nid in pv:
                base = pv_l or [0.0] * T2
                pv_l = [b if v is None else float(v) for b, v in zip(base, pv[nid], strict=True)]
            if nid in headroom:
                hbase: list[float | None] = list(hr_l) if hr_l is not None else [None] * T2
                hr_l = [b if v is None else float(v)
                        for b, v in zip(hbase, headroom[nid], strict=True)]
            if nid in returns:
                # back in service: the availability of the original data again
                a0 = self.offset + k
                av_l = list(self._avail0[nid][a0:a0 + T2])
            if nid in out_until:
                av_l = list(av_l) if av_l is not None else [True] * T2
                for slot in range(out_until[nid]):
                    av_l[slot] = False
            if pv_l is not None or hr_l is not None or av_l is not None:
                series[nid] = NodeSeries(pv_kw=pv_l, headroom_kw=hr_l, available=av_l)
        tariffs = {}
        for name, tf in old.tariffs.items():
            price = list(tf.price[k:])
            if name in prices:
                price = [b if v is None else float(v)
                         for b, v in zip(price, prices[name], strict=True)]
            tariffs[name] = Tariff(price=price, export_price=list(tf.export_price[k:]),
                                   carbon_g_per_kwh=list(tf.carbon_g_per_kwh[k:]))
        feeders = {f: Feeder(headroom_kw=list(fd.headroom_kw[k:])) for f, fd in old.feeders.items()}

        # ---- nodes: state before now
        nodes = []
        for i, node in enumerate(old.nodes):
            upd: dict[str, Any] = {}
            if k > 0 and flows is not None:
                upd["initially_on"] = bool(flows.on[i, k - 1])
            E = node.battery_kwh
            if E > 0:
                kwh = None
                if node.node_id in soc:
                    kwh = float(soc[node.node_id])
                elif k > 0 and flows is not None:
                    kwh = float(flows.soc[i, k - 1])
                if kwh is not None:
                    frac = min(max(kwh / E, node.soc_min), node.soc_max)
                    upd["soc_init"] = frac
            nodes.append(node.model_copy(update=upd) if upd else node)
        new_av = {nid: np.asarray(series[nid].available if nid in series and
                                  series[nid].available is not None else [True] * T2, dtype=bool)
                  for nid in node_ids}

        # ---- jobs
        old_index = None
        if flows is not None:
            old_index = self._index if self._index is not None else compile_index(old)
        jobs: list[Job] = []
        hint: dict[str, tuple[str, int]] = {}
        dur = np.zeros(len(old.jobs), dtype=np.int64)
        if old_index is not None:
            runs = np.nonzero(plan.node >= 0)[0]
            dur[runs] = old_index.duration(runs, plan.node[runs])
        for j, job in enumerate(old.jobs):
            if job.job_id in cancelled or job.job_id in finished:
                continue
            n = int(plan.node[j]) if plan.status.has_plan else -1
            if n < 0 or old_index is None:
                jobs.append(job)
                continue
            s = int(plan.start[j])
            d = int(dur[j])
            nid = node_ids[n]
            if s < k:
                if s + d <= k:
                    continue  # done
                if not new_av[nid][: s + d - k].all():
                    # its node went out: restart from scratch
                    jobs.append(job.model_copy(update={"pinned_node": None, "pinned_start": None,
                                                       "release": now}))
                    continue
                jobs.append(job.model_copy(update={"pinned_node": nid,
                                                   "pinned_start": hz.time_of(s)}))
            else:
                jobs.append(job)
                hint[job.job_id] = (nid, s - k)
        known = {j.job_id for j in jobs}
        for nj in new_jobs:
            if nj.job_id in known or nj.job_id in job_ids:
                raise ValueError(f"new job {nj.job_id!r}: job_id already used")
            known.add(nj.job_id)
            jobs.append(nj)
        scenario = Scenario(horizon=hz.model_copy(update={"start": now, "slots": T2}),
                            objective=old.scenario.objective, battery=old.scenario.battery,
                            latency=old.scenario.latency)
        parts = dict(scenario=scenario, nodes=nodes, jobs=jobs, node_series=series,
                     tariffs=tariffs, feeders=feeders, latency_ms=old.latency_ms,
                     regions=old.regions)
        if pv or headroom or prices or out_until or returns or soc:
            problem = Problem(**parts)
        else:
            # only the job set changed: every part is already validated except the
            # new jobs' cross-references, checked here as Problem.issues() would
            problem = Problem.model_construct(**parts)  # type: ignore[arg-type]
            bad = [i for i in Problem.model_construct(
                scenario=scenario, nodes=nodes, jobs=new_jobs, node_series={}, tariffs={},
                feeders={}, latency_ms={}, regions={}).issues()
                if i.table == "jobs.csv"]
            if bad:
                raise ValueError("; ".join(f"job {i.key}: {i.column}={i.value!r}: {i.message}"
                                           for i in bad))
        return problem, hint
