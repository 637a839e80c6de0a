"""The package's structure: no import cycles, layers that only import downwards.

Every import of every module under ``optisched/`` is read from its source (module level
and inside functions alike), so a cycle hidden by a function-local import fails too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "optisched"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The project module ``name`` refers to (a package's ``__init__`` for a package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Project modules imported anywhere in ``module``'s source."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base]) if base else ".".join(up)
            # `from optisched.x import y` may name the submodule optisched.x.y
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        for t in targets:
            if t == "optisched" or t.startswith("optisched."):
                r = _resolve(t)
                if r is not None and r != module:
                    out.add(r)
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def _cycles() -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_the_import_walk_sees_function_level_imports(tmp_path: Path) -> None:
    # the walker must see an import inside a function body, not only at module level
    src = "def f():\n    from optisched.domain import Problem\n    return Problem\n"
    tree = ast.parse(src)
    names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert names == ["optisched.domain"]
    assert "optisched.domain" in GRAPH["optisched.index"]


def test_no_import_cycles() -> None:
    cycles = _cycles()
    assert not cycles, "import cycles: " + "; ".join(" ↔ ".join(c) for c in cycles)


def _imports_under(package: str) -> dict[str, set[str]]:
    return {m: deps for m, deps in GRAPH.items()
            if m == package or m.startswith(package + ".")}


@pytest.mark.parametrize(("lower", "forbidden"), [
    ("optisched.bounds", ("optisched.solvers", "optisched.bench", "optisched.cli",
                          "optisched.replan", "optisched.report")),
    ("optisched.formulations", ("optisched.solvers", "optisched.bounds", "optisched.bench",
                                "optisched.cli", "optisched.replan", "optisched.dispatch")),
    ("optisched.backends", ("optisched.solvers", "optisched.bounds", "optisched.formulations",
                            "optisched.dispatch", "optisched.index")),
    ("optisched.evaluate", ("optisched.solvers", "optisched.bounds", "optisched.formulations",
                            "optisched.backends", "optisched.dispatch")),
    ("optisched.domain", ("optisched.io", "optisched.index", "optisched.solvers",
                          "optisched.evaluate", "optisched.plan")),
    ("optisched.io", ("optisched.index", "optisched.solvers", "optisched.evaluate")),
    ("optisched.index", ("optisched.solvers", "optisched.evaluate", "optisched.dispatch",
                         "optisched.formulations", "optisched.io")),
    ("optisched.solvers", ("optisched.bench", "optisched.cli", "optisched.replan",
                           "optisched.report", "optisched.viz")),
])
def test_layers_import_only_downwards(lower: str, forbidden: tuple[str, ...]) -> None:
    bad = sorted((m, d) for m, deps in _imports_under(lower).items() for d in deps
                 if any(d == f or d.startswith(f + ".") for f in forbidden))
    assert not bad, f"{lower} imports upwards: {bad}"


def test_no_benchmark_script_under_solvers() -> None:
    assert not [m for m in MODULES if m.startswith("optisched.solvers.") and "bench" in m]


def test_highs_is_handed_models_in_one_place() -> None:
    # one HiGHS adapter: passModel and Highs() appear in code only in backends/highs.py
    found = []
    for m, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in ("passModel", "Highs"):
                    found.append(m)
    assert sorted(set(found)) == ["optisched.backends.highs"]


def test_the_dispatch_lp_is_built_in_one_place() -> None:
    # the flows LP (SPEC §2 constraints 5-7): its builder is called, never rewritten
    builders = [m for m, path in MODULES.items()
                if "def build_dispatch_lp" in path.read_text(encoding="utf-8")]
    assert builders == ["optisched.formulations.dispatch_lp"]
    users = {m for m, path in MODULES.items()
             if "build_dispatch_lp(" in path.read_text(encoding="utf-8")} - set(builders)
    assert {"optisched.dispatch", "optisched.bounds.lagrangian"} <= users


def test_array_aliases_are_defined_once() -> None:
    defining = []
    for m, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id in ("FloatArray", "IntArray",
                                                            "BoolArray") for t in targets):
                    defining.append(m)
    assert sorted(set(defining)) == ["optisched.arrays"]


def test_the_public_api() -> None:
    import subprocess
    import sys

    import optisched
    from optisched import Progress, Replanner, SolveOptions, lp_bound  # noqa: F401

    for name in optisched.__all__:
        assert getattr(optisched, name) is not None
    assert "Index" not in optisched.__all__ and "compile_index" not in optisched.__all__
    # the lazy names keep `import optisched` free of solver backends
    code = "import sys, optisched; print('highspy' in sys.modules, 'ortools' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
