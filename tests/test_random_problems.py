"""The seeded generators of :mod:`optisched.generate.random_problems` draw exactly the instances
they drew before the move (``random_problem`` from ``tests/_problems.py``,
``bench_problem`` from ``optisched/solvers/greedy_bench.py``).

The fingerprints are SHA-256 hashes of ``Problem.model_dump_json()``, computed with
the old modules before they moved, when infinities were still dumped as ``null``
(``model_dump_json`` now writes them as ``"Infinity"`` so that the JSON reads back;
:func:`_fingerprint` rebuilds the bytes of that time from the same instance). Tests and
recorded benchmark figures depend on these exact instances: a changed hash means a draw
moved, was added or was dropped.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pydantic_core
import pytest

import optisched.generate
from optisched.domain import Problem
from optisched.generate.random_problems import START, bench_problem, random_problem


def _fingerprint(problem: Problem) -> str:
    # the JSON of model_dump_json() as it was (infinities as null), of the same instance;
    # without the fields beyond SPEC v1 added since (scenarios, the CVaR options: defaults)
    assert not problem.scenarios and problem.scenario.objective.cvar_weight == 0
    dump = problem.model_dump(exclude={"scenarios": True, "scenario": {
        "objective": {"cvar_alpha", "cvar_weight"}}})
    return hashlib.sha256(pydantic_core.to_json(dump, inf_nan_mode="null")).hexdigest()


BENCH_CASES: list[tuple[tuple[int, ...], dict[str, Any], str]] = [
    ((20, 5), {}, "b1428abf4ac498186fd8549315b5e05dae888a102b664998c98ae2c74b461175"),
    ((50, 10), {"slots": 48, "seed": 2, "slot_minutes": 30},
     "1354ebccdab9ab5f25a98d397bf5c7ea2c421a30e42e7f1be66e9fedfab2e823"),
    ((100, 20), {"slots": 96, "seed": 1},
     "50977f9ac794af776272ae8558987aa50480f799e608e06e07618ed1cb2e4956"),
]

RANDOM_CASES: list[tuple[int, dict[str, Any], str]] = [
    (0, {}, "e599fd528668733d7914b1c852b345a8d2ed62e199cb38c79ee3f3c72584b867"),
    (3, {"n_nodes": 3, "n_jobs": 4, "slots": 8, "batteries": True, "feeders": True},
     "292fc04790133194258c9c6f6c468a88da990a965abc7e0dbacc2611edd52bbd"),
    (7, {"n_nodes": 5, "n_jobs": 9, "slots": 12, "slot_minutes": 30, "battery_share": 0.9,
         "feeders": True, "negative_prices": True, "demand_charge": True, "export": False,
         "carbon": True, "degradation": True, "sleep": True, "droppable": False,
         "tight_headroom": True, "terminal": "free"},
     "47c350867d0fccf18c993e5bfaab5006d01d6daf337e9b974d683003b1bb9299"),
    # the fallback instance of the lns and cpsat benchmarks (medium size)
    (1, {"n_nodes": 20, "n_jobs": 100, "slots": 96, "slot_minutes": 15, "feeders": True,
         "demand_charge": True, "sleep": True, "negative_prices": False},
     "d18225d4065dffca7b8e25e547eec2cc6576cff78226d5d32cef3f8dc326d8ac"),
]


@pytest.mark.parametrize(("args", "kwargs", "expected"), BENCH_CASES)
def test_bench_problem_draws_the_instances_it_drew_before_the_move(
        args: tuple[int, ...], kwargs: dict[str, Any], expected: str) -> None:
    assert _fingerprint(bench_problem(*args, **kwargs)) == expected


@pytest.mark.parametrize(("seed", "kwargs", "expected"), RANDOM_CASES)
def test_random_problem_draws_the_instances_it_drew_before_the_move(
        seed: int, kwargs: dict[str, Any], expected: str) -> None:
    assert _fingerprint(random_problem(seed, **kwargs)) == expected


def test_generators_are_exported_from_the_generate_package() -> None:
    assert optisched.generate.bench_problem is bench_problem
    assert optisched.generate.random_problem is random_problem
    assert random_problem(0).horizon.start == bench_problem(1, 1).horizon.start
    assert bench_problem(1, 1).horizon.start.isoformat() == START
