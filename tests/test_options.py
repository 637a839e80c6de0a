"""Typed solver options: checked keys and values, documented, and used by the runs."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from optisched.cli import app
from optisched.generate.random_problems import random_problem
from optisched.solvers import REGISTRY, OptionError, solve
from optisched.solvers.options import (
    CpsatOptions,
    GreedyOptions,
    LnsOptions,
    SolverOptions,
    parse_assignments,
)

runner = CliRunner()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_option_is_documented_with_a_type(name: str) -> None:
    cls = REGISTRY[name].options
    docs = {d.name: d for d in cls.describe()}
    assert set(docs) == {f.name for f in dataclasses.fields(cls)}
    for d in docs.values():
        assert d.doc and d.type, f"{name}.{d.name} has no docstring entry"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_an_unknown_option_names_the_solver_the_key_and_the_valid_keys(name: str) -> None:
    spec = REGISTRY[name]
    with pytest.raises(OptionError) as info:
        spec.parse_options({"no_such_option": 1})
    msg = str(info.value)
    assert f"solver {name!r}" in msg and "'no_such_option' is unknown" in msg
    for key in spec.options.keys():
        assert key in msg
    assert info.value.valid == spec.options.keys()


def test_text_values_are_parsed_by_the_option_type() -> None:
    o = LnsOptions.from_mapping({"max_iterations": "5", "lp_bound": "false",
                                 "kinds": "window,lp", "sub_time_limit": "2.5",
                                 "bound_method": "colgen", "sub_solver": "none"}, "lns")
    assert o == LnsOptions(max_iterations=5, lp_bound=False, kinds=("window", "lp"),
                           sub_time_limit=2.5, bound_method="colgen", sub_solver=None)
    assert LnsOptions.from_mapping({"lp_bound": "auto"}, "lns").lp_bound == "auto"
    c = CpsatOptions.from_mapping({"cpsat_params": '{"num_workers": 1}', "workers": "2"},
                                  "cpsat")
    assert c.cpsat_params == {"num_workers": 1} and c.workers == 2


@pytest.mark.parametrize(("values", "fragment"), [
    ({"iterations": "abc"}, "expected an integer"),
    ({"iterations": 1.5}, "expected an integer"),
    ({"iterations": True}, "expected an integer"),
    ({"improve": "maybe"}, "expected true or false"),
    ({"iterations": -1}, "must be ≥ 0"),
    ({"candidates": 0}, "must be ≥ 1"),
])
def test_mistyped_or_out_of_range_values_are_errors(values: dict[str, object],
                                                    fragment: str) -> None:
    with pytest.raises(OptionError, match=fragment):
        GreedyOptions.from_mapping(values, "greedy")


@pytest.mark.parametrize(("values", "fragment"), [
    ({"kinds": "window,nope"}, "unknown kind 'nope'"),
    ({"sub_time_limit": "nan"}, "not nan"),
    ({"sub_time_limit": "-1"}, "finite number > 0"),
    ({"sub_solver": "gurobi"}, "expected one of"),
    ({"lp_bound": "sometimes"}, "expected true or false or expected one of 'auto'"),
])
def test_lns_values_out_of_range(values: dict[str, object], fragment: str) -> None:
    with pytest.raises(OptionError, match=fragment):
        LnsOptions.from_mapping(values, "lns")


def test_options_of_another_solver_are_refused() -> None:
    p = random_problem(0, n_nodes=2, n_jobs=2, slots=4)
    with pytest.raises(OptionError, match="GreedyOptions"):
        solve(p, "lns", options=GreedyOptions())
    with pytest.raises(OptionError, match="beside an options object"):
        solve(p, "lns", options=LnsOptions(), size=3)


def test_parse_assignments() -> None:
    assert parse_assignments(["a=1", " b = x=y "]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_assignments(["novalue"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_assignments(["=3"])


def test_a_valid_option_changes_the_run() -> None:
    p = random_problem(1, n_nodes=3, n_jobs=6, slots=8)
    with_search = solve(p, "greedy", time_limit=1, iterations=20)
    without = solve(p, "greedy", options=GreedyOptions(improve=False))
    assert "moves_tried" in with_search.info and "moves_tried" not in without.info
    one = solve(p, "lns", time_limit=5, options={"max_iterations": 1, "lp_bound": False})
    assert one.info["iterations"] <= 1
    assert SolverOptions().changed() == {} and LnsOptions(size=3).changed() == {"size": 3}


def test_cli_rejects_an_unknown_option_with_exit_1(tmp_path: object) -> None:
    res = runner.invoke(app, ["plan", "datasets/tiny", "--out", f"{tmp_path}/p", "--solver",
                              "lns", "--option", "no_such_option=1"])
    assert res.exit_code == 1
    text = " ".join(res.output.split())
    assert "'no_such_option' is unknown" in text and "max_iterations" in text
    assert "Traceback" not in res.output


def test_cli_rejects_a_bad_value_and_a_missing_equals_sign(tmp_path: object) -> None:
    for opt in ("max_iterations=x", "max_iterations"):
        res = runner.invoke(app, ["plan", "datasets/tiny", "--out", f"{tmp_path}/p",
                                  "--solver", "lns", "--option", opt])
        assert res.exit_code == 1, res.output
        assert "Traceback" not in res.output


def test_cli_option_changes_the_run(tmp_path: object) -> None:
    res = runner.invoke(app, ["plan", "datasets/tiny", "--out", f"{tmp_path}/p", "--solver",
                              "greedy", "--option", "improve=false", "--json"])
    assert res.exit_code == 0, res.output
    off = json.loads(res.stdout)
    assert off["solver"] == "greedy"
    res = runner.invoke(app, ["plan", "datasets/tiny", "--out", f"{tmp_path}/q", "--solver",
                              "greedy", "--option", "iterations=50", "--json"])
    on = json.loads(res.stdout)
    assert on["objective"] <= off["objective"] + 1e-9


def test_cli_lists_every_option() -> None:
    res = runner.invoke(app, ["solvers", "--json"])
    assert res.exit_code == 0
    doc = {s["name"]: s for s in json.loads(res.stdout)}
    assert set(doc) == set(REGISTRY)
    for name, spec in REGISTRY.items():
        assert [o["name"] for o in doc[name]["options"]] == spec.options.keys()
    res = runner.invoke(app, ["solvers", "--options"])
    assert res.exit_code == 0 and "max_iterations" in res.output and "[s]" in res.output


def test_distributed_options_are_checked() -> None:
    from optisched.solvers.options import DistributedOptions

    o = DistributedOptions.from_mapping({"backend": "processes", "partitions": "4",
                                         "rounds": "2", "ray_address": "auto",
                                         "sub_solver": "greedy"}, "distributed")
    assert o == DistributedOptions(backend="processes", partitions=4, rounds=2,
                                   ray_address="auto", sub_solver="greedy")
    for bad in ({"partitions": 0}, {"backend": "mpi"}, {"moves_per_pair": 0},
                {"ray_address": " "}):
        with pytest.raises(OptionError):
            DistributedOptions.from_mapping(bad, "distributed")
