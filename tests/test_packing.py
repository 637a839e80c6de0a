"""The CP-SAT packing model (``optisched.formulations.packing``): capacity kept,
windows kept, drops allowed only where priced, surrogate cost by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from optisched.domain import Horizon, Job, Node, Problem, Scenario, Tariff
from optisched.formulations.packing import _start_costs, build_packing_model
from optisched.index import compile_index
from optisched.solvers.lns.packing import pack


def _problem(jobs: list[Job], gpus: float = 2.0, slots: int = 6) -> Problem:
    horizon = Horizon(start=datetime(2026, 6, 1, tzinfo=UTC), slot_minutes=60, slots=slots)
    prices = [0.1, 0.3, 0.2, 0.4, 0.1, 0.5][:slots]
    return Problem(
        scenario=Scenario(horizon=horizon),
        nodes=[Node(node_id="a", gpus=gpus)],
        jobs=jobs,
        tariffs={"default": Tariff(price=prices, export_price=[0.0] * slots,
                                     carbon_g_per_kwh=[0.0] * slots)},
    )


def _job(i: int, gpus: float, hours: int, **kw: object) -> Job:
    return Job(job_id=f"j{i}", gpus=gpus, duration_min=60.0 * hours, power_kw=1.0, **kw)


def test_packing_fits_exactly_full_capacity() -> None:
    # 3 jobs of 2 GPUs x 2 h on a 2-GPU node over 6 h: only back to back fits
    p = _problem([_job(i, 2.0, 2) for i in range(3)])
    idx = compile_index(p)
    [(node, start), *_] = pack(idx, time_limit=5.0).found
    assert (node == 0).all()
    assert sorted(start.tolist()) == [0, 2, 4]


def test_packing_infeasible_when_one_slot_too_many() -> None:
    # 4 jobs of 2 GPUs x 2 h need 8 h of the whole node: no packing in 6 h
    p = _problem([_job(i, 2.0, 2) for i in range(4)])
    assert pack(compile_index(p), time_limit=5.0).found == []


def test_packing_drops_only_droppable_jobs() -> None:
    jobs = [_job(i, 2.0, 2) for i in range(3)] + [_job(3, 2.0, 2, drop_penalty=5.0)]
    found = pack(compile_index(_problem(jobs)), time_limit=5.0).found
    assert found
    node, _ = found[-1]
    assert node[3] == -1 and (node[:3] == 0).all()


def test_packing_keeps_release_and_deadline() -> None:
    p = _problem([_job(0, 1.0, 2, release=datetime(2026, 6, 1, 3, tzinfo=UTC)),
                  _job(1, 1.0, 1, deadline=datetime(2026, 6, 1, 2, tzinfo=UTC))])
    for _node, start in pack(compile_index(p), time_limit=5.0).found:
        assert start[0] >= 3 and start[1] + 1 <= 2


def test_surrogate_cost_by_hand_and_cheapest_packing() -> None:
    # one 1-kW job of 2 h: cost at start s = price[s] + price[s+1] (Δ = 1 h)
    p = _problem([_job(0, 1.0, 2)])
    idx = compile_index(p)
    starts = idx.feasible_starts(0)
    assert _start_costs(idx, 0, starts) == pytest.approx([0.4, 0.5, 0.6, 0.5, 0.6])
    _, start = pack(idx, time_limit=5.0).found[-1]
    assert start[0] == 0  # the cheapest window 0.1 + 0.3
    pm = build_packing_model(idx)
    assert pm.money > 0 and len(pm.cost_terms) == 1


def test_list_schedule_packs_back_to_back_and_reports_partial() -> None:
    from optisched.solvers.lns.packing import list_schedule

    idx = compile_index(_problem([_job(i, 2.0, 2) for i in range(3)]))
    node, start, complete = list_schedule(idx, time_limit=2.0)
    assert complete and (node == 0).all() and sorted(start.tolist()) == [0, 2, 4]
    # one job too many: incomplete, the best pass places 3 of 4 within capacity
    idx = compile_index(_problem([_job(i, 2.0, 2) for i in range(4)]))
    node, start, complete = list_schedule(idx, time_limit=0.5)
    assert not complete and int((node >= 0).sum()) == 3
    placed = np.nonzero(node >= 0)[0]
    use = np.zeros(6)
    for j in placed:
        use[start[j]:start[j] + 2] += 2.0
    assert use.max() <= 2.0


def test_list_schedule_keeps_windows_and_drops_only_droppable() -> None:
    from optisched.solvers.lns.packing import list_schedule

    jobs = [_job(0, 2.0, 2, deadline=datetime(2026, 6, 1, 2, tzinfo=UTC)),
            _job(1, 2.0, 4), _job(2, 2.0, 2, drop_penalty=1.0)]
    node, start, complete = list_schedule(compile_index(_problem(jobs)), time_limit=1.0)
    assert complete
    assert start[0] == 0 and start[1] == 2 and node[2] == -1


def test_repair_moves_placed_jobs_to_make_room() -> None:
    from optisched.solvers.lns.packing import repair

    # X at 1-2 and Y at 4-5 leave slots 0 and 3 free: Z (2 slots) fits only if X moves
    idx = compile_index(_problem([_job(i, 2.0, 2) for i in range(3)]))
    node = np.array([0, 0, -1])
    start = np.array([1, 4, -1])
    node2, start2, complete = repair(idx, node, start, time_limit=10.0)
    assert complete and (node2 == 0).all()
    assert sorted(start2.tolist()) == [0, 2, 4]
    assert start[0] == 1  # the input is not modified
