"""The documentation in ``docs/`` stays in step with the code and with SPEC v1.

- ``docs/contract/input.md`` documents exactly the columns the reader accepts
  (``optisched.io.COLUMNS``, ``USER_PREFIXES``, ``SCENARIO_KEYS``), and every
  column of SPEC §1 (``../shared/SPEC.md``, when present beside the repository).
- ``docs/contract/cost.md`` documents every term of ``optisched.plan.COST_TERMS``.
- The "constraint | name | function" tables of ``docs/formulations/milp.md`` and
  ``cpsat.md`` list exactly the ``define_*`` functions of their modules.
- Relative links between the Markdown files resolve.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from optisched.io import BEYOND_SPEC_FILES, BUNDLE_FILES, COLUMNS, SCENARIO_KEYS, USER_PREFIXES
from optisched.plan import COST_TERMS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONTRACT = DOCS / "contract"
SPEC = ROOT.parent / "shared" / "SPEC.md"

_TICKED = re.compile(r"`([^`]+)`")
_FILE = re.compile(r"[a-z_]+\.(?:csv|toml)")

Table = list[list[str]]


# ----------------------------------------------------------------------------- Markdown helpers


def _cells(line: str) -> list[str]:
    """Cells of a Markdown table row; ``\\|`` and a ``|`` inside backticks do not split."""
    cells, cur, ticked = [], "", False
    for ch in line.strip().strip("|").replace("\\|", "\0"):
        if ch == "`":
            ticked = not ticked
        if ch == "\0":
            cur += "|"
        elif ch == "|" and not ticked:
            cells.append(cur.strip())
            cur = ""
        else:
            cur += ch
    cells.append(cur.strip())
    return cells


def _sections(text: str, level: int) -> dict[str, str]:
    """Body of every heading of exactly ``level`` (``#`` count), by heading text."""
    marker = "#" * level + " "
    out: dict[str, str] = {}
    title: str | None = None
    body: list[str] = []
    fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        heading = not fence and re.match(r"#+ ", line)
        if heading and line.startswith(marker):
            if title is not None:
                out[title] = "\n".join(body)
            title, body = line[len(marker):].strip(), []
        elif heading and len(heading.group(0)) - 1 < level:
            if title is not None:
                out[title] = "\n".join(body)
            title, body = None, []
        elif title is not None:
            body.append(line)
    if title is not None:
        out[title] = "\n".join(body)
    return out


def _tables(text: str) -> list[Table]:
    """Every Markdown table of ``text``: header row first, separator row dropped."""
    tables: list[Table] = []
    rows: Table = []
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("|"):
            rows.append(_cells(line))
            continue
        if len(rows) >= 2 and set(rows[1][0]) <= set("-: "):
            tables.append([rows[0], *rows[2:]])
        rows = []
    return tables


def _names(cell: str) -> set[str]:
    """Column names written in backticks in a cell (``a``, ``b`` or ``a``,``b``)."""
    return {n.strip() for tick in _TICKED.findall(cell) for n in tick.split(",") if n.strip()}


def _split_patterns(names: set[str]) -> tuple[set[str], set[str]]:
    """Plain names, and prefixes of patterns such as ``res_<name>`` (-> ``res_``)."""
    plain = {n for n in names if "<" not in n}
    prefixes = {n.split("<", 1)[0] for n in names if "<" in n}
    return plain, prefixes


# ------------------------------------------------------------------------- docs/contract/input.md


def _documented_inputs() -> dict[str, set[str]]:
    """Column names (CSV files) or ``section.key`` names (scenario.toml) per bundle file."""
    text = (CONTRACT / "input.md").read_text(encoding="utf-8")
    out: dict[str, set[str]] = {}
    for title, body in _sections(text, 2).items():
        files = _FILE.findall(title)
        if len(files) != 1:
            continue
        first = "key" if files[0].endswith(".toml") else "column"
        names: set[str] = set()
        for table in _tables(body):
            if table[0][0].lower() == first:
                for row in table[1:]:
                    names |= _names(row[0])
        out[files[0]] = names
    return out


def test_every_bundle_file_has_a_section() -> None:
    documented = _documented_inputs()
    assert set(documented) == set(BUNDLE_FILES)
    assert all(documented.values()), "a file section without a column table"


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_input_columns_match_the_reader(name: str) -> None:
    plain, prefixes = _split_patterns(_documented_inputs()[name])
    accepted = set(COLUMNS[name])
    undocumented = accepted - plain
    unknown = plain - accepted
    assert not undocumented, f"{name}: accepted by optisched.io but not in input.md: " \
        f"{sorted(undocumented)}"
    assert not unknown, f"{name}: in input.md but not accepted by optisched.io: {sorted(unknown)}"
    assert prefixes == set(USER_PREFIXES[name]), f"{name}: documented column patterns " \
        f"{sorted(prefixes)} != accepted prefixes {sorted(USER_PREFIXES[name])}"


def test_scenario_keys_match_the_reader() -> None:
    documented = _documented_inputs()["scenario.toml"]
    accepted = {f"{section}.{key}" for section, keys in SCENARIO_KEYS.items() for key in keys}
    assert documented == accepted


def test_input_tables_give_default_and_meaning() -> None:
    text = (CONTRACT / "input.md").read_text(encoding="utf-8")
    for title, body in _sections(text, 2).items():
        for table in _tables(body):
            if table[0][0].lower() not in ("column", "key"):
                continue
            assert [h.lower().split()[0] for h in table[0][:3]] == [table[0][0].lower(),
                                                                  "default", "meaning"], title
            for row in table[1:]:
                assert len(row) == len(table[0]) and all(row), f"{title}: incomplete row {row}"


# ----------------------------------------------------------------------------- SPEC §1


def _spec_text() -> str:
    if not SPEC.is_file():
        pytest.skip(f"SPEC not found at {SPEC} (it lives beside the repository, not in it)")
    return SPEC.read_text(encoding="utf-8")


def _spec_section(text: str, number: int) -> str:
    for title, body in _sections(text, 2).items():
        if title.startswith(f"{number}."):
            return body
    raise AssertionError(f"SPEC has no section {number}")


def _spec_inputs() -> dict[str, set[str]]:
    """Column names per CSV file and ``section.key`` of scenario.toml, from SPEC §1."""
    s1 = _spec_section(_spec_text(), 1)
    out: dict[str, set[str]] = {}
    intro = s1.split("\n### ", 1)[0]
    for table in _tables(intro):
        for row in table[1:]:
            out.update({f: set() for f in _FILE.findall(row[0])})
    for title, body in _sections(s1, 3).items():
        files = _FILE.findall(title)
        if not files:
            continue
        if files[0].endswith(".toml"):
            section = ""
            for line in re.findall(r"```toml\n(.*?)```", body, re.S)[0].splitlines():
                line = line.split("#", 1)[0].strip()
                if m := re.fullmatch(r"\[(\w+)\]", line):
                    section = m.group(1)
                elif m := re.match(r"(\w+)\s*=", line):
                    out[files[0]].add(f"{section}.{m.group(1)}")
            continue
        for table in _tables(body):
            if table[0][0].lower() == "column":
                for row in table[1:]:
                    out[files[0]] |= _names(row[0])
        prose = "\n".join(line for line in body.splitlines() if not line.startswith("|"))
        explicit = {m.end(): m.group(1) for m in re.finditer(r"([a-z_]+\.csv):\s*", prose)}
        for m in _TICKED.finditer(prose):
            if "," in m.group(1):
                out[explicit.get(m.start(), files[0])] |= _names(m.group(0))
    return out


def test_spec_files_are_the_bundle_files() -> None:
    # scenarios.csv is a deliberate extension beyond SPEC v1 (CHANGELOG, input.md)
    assert set(_spec_inputs()) == set(BUNDLE_FILES) - set(BEYOND_SPEC_FILES)


def test_every_spec_column_is_documented() -> None:
    spec = _spec_inputs()
    documented = _documented_inputs()
    assert len(spec["nodes.csv"]) > 20 and len(spec["jobs.csv"]) > 10, "SPEC tables not parsed"
    for name, columns in spec.items():
        assert columns, f"no columns of {name} parsed from SPEC §1"
        spec_plain, spec_prefixes = _split_patterns(columns)
        doc_plain, doc_prefixes = _split_patterns(documented[name])
        missing = spec_plain - doc_plain
        assert not missing, f"{name}: SPEC §1 columns missing from input.md: {sorted(missing)}"
        assert spec_prefixes <= doc_prefixes, f"{name}: SPEC column patterns " \
            f"{sorted(spec_prefixes - doc_prefixes)} missing from input.md"


def test_spec_cost_terms_are_the_code_terms() -> None:
    s3 = _spec_section(_spec_text(), 3)
    terms = [re.sub(r"\s*\(.*\)$", "", row[0]) for table in _tables(s3)
             if table[0][0].lower() == "term" for row in table[1:]]
    assert terms == list(COST_TERMS)


# ----------------------------------------------------------------------------- cost.md


def test_every_cost_term_is_documented() -> None:
    text = (CONTRACT / "cost.md").read_text(encoding="utf-8")
    body = _sections(text, 2)["Terms"]
    documented = [n for table in _tables(body) if table[0][0].lower() == "term"
                  for row in table[1:] for n in _TICKED.findall(row[0])]
    assert documented == list(COST_TERMS)


# ----------------------------------------------------------------------------- math docs


def _module(path: str) -> ast.Module:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"))


def _defines(path: str) -> set[str]:
    return {node.name for node in _module(path).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("define_")}


def _function_table(doc: str) -> tuple[set[str], set[str]]:
    """``define_*`` functions and names of the "constraint | name | function" tables."""
    text = (DOCS / "formulations" / doc).read_text(encoding="utf-8")
    functions: set[str] = set()
    names: set[str] = set()
    for table in _tables(text):
        header = [h.lower() for h in table[0]]
        fcol = next((k for k, h in enumerate(header) if "function" in h), None)
        if fcol is None or "name" not in header:
            continue
        ncol = header.index("name")
        for row in table[1:]:
            functions |= {f for f in _TICKED.findall(row[fcol]) if f.startswith("define_")}
            names |= set(_TICKED.findall(row[ncol]))
    assert functions, f"{doc}: no constraint | name | function table found"
    return functions, names


@pytest.mark.parametrize(("doc", "module"), [
    ("milp.md", "optisched/formulations/milp.py"),
    ("cpsat.md", "optisched/formulations/cpsat.py"),
    ("packing.md", "optisched/formulations/packing.py"),
])
def test_formulation_tables_list_the_define_functions(doc: str, module: str) -> None:
    documented, _ = _function_table(doc)
    code = _defines(module)
    assert code, f"{module} has no define_* functions"
    assert not code - documented, f"{doc} lacks {sorted(code - documented)}"
    assert not documented - code, f"{doc} names functions {module} lacks: " \
        f"{sorted(documented - code)}"


def test_milp_table_names_are_the_row_families() -> None:
    families: tuple[str, ...] = ()
    for node in _module("optisched/formulations/milp.py").body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FAMILIES"
                                                for t in node.targets):
            families = ast.literal_eval(node.value)
    assert families
    _, names = _function_table("milp.md")
    assert names - {"objective"} == set(families)


def test_pyomo_build_has_the_same_define_functions() -> None:
    assert _defines("optisched/formulations/milp_pyomo.py") == \
        _defines("optisched/formulations/milp.py")


# ----------------------------------------------------------------------------- links


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def _markdown_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "CHANGELOG.md",
             *sorted(DOCS.rglob("*.md")), *sorted((ROOT / "datasets").rglob("*.md"))]
    return [f for f in files if f.is_file()]


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists() or not dest.resolve().is_relative_to(ROOT):
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)}: broken links {broken}"


def test_readme_links_the_contract_not_shared() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/contract/" in readme
    assert "../shared/SPEC.md" not in readme
