"""The house's shape: layers that point one way (the import-linter contracts in pyproject.toml, which `make lint`
runs) and no module that imports itself round a cycle."""

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("assets", "resources", "pipelines", "warehouse")


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each a set of modules importing each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_module_is_part_of_an_import_cycle():
    assert import_cycles(grimp.build_graph(*PACKAGES)) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for importer, imported in (("a.x", "a.y"), ("a.y", "a.z"), ("a.z", "a.x"), ("a.z", "a.w")):
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph) == [["a.x", "a.y", "a.z"]]


def test_the_layers_contracts_are_kept():
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_only_pipelines_mentions_pipelines():
    """No module below the wiring names it, not even in a lazy import inside a function."""
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for package in ("assets", "resources", "warehouse")
                 for path in (ROOT / package).rglob("*.py")
                 for number, line in enumerate(path.read_text().splitlines(), start=1)
                 if "pipelines" in line.split("#")[0] and ("import" in line or "pipelines." in line)]
    assert offenders == []


# Sizes a newcomer can hold in their head: a module, a function, and an asset definition, which should read like a
# recipe (read → compute → write) with the computing done by plain functions elsewhere. `make lint` checks them.
MODULE_LINES = 400
FUNCTION_LINES = 80
DEFINITION_FUNCTION_LINES = 50


def oversized(root: Path) -> list[str]:
    """Every module over MODULE_LINES lines and every function over its limit (DEFINITION_FUNCTION_LINES in an
    `assets/*/defs.py`, FUNCTION_LINES elsewhere), with its size."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text()
            name = path.relative_to(root)
            if (lines := len(text.splitlines())) > MODULE_LINES:
                found.append(f"{name}: {lines} lines (at most {MODULE_LINES})")
            in_definitions = name.parts[0] == "assets" and path.name == "defs.py"
            limit = DEFINITION_FUNCTION_LINES if in_definitions else FUNCTION_LINES
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    size = node.end_lineno - node.lineno + 1
                    if size > limit:
                        found.append(f"{name}:{node.lineno} {node.name}: {size} lines (at most {limit})")
    return found


def test_no_module_or_function_outgrows_its_limit():
    assert oversized(ROOT) == []


def test_the_size_check_finds_what_outgrows_it(tmp_path):
    defs = tmp_path / "assets" / "x" / "defs.py"
    defs.parent.mkdir(parents=True)
    body = "\n".join(f"    a{n} = {n}" for n in range(DEFINITION_FUNCTION_LINES))
    defs.write_text(f"def asset():\n{body}\n")
    long_module = tmp_path / "resources" / "long.py"
    long_module.parent.mkdir()
    long_module.write_text("x = 1\n" * (MODULE_LINES + 1))
    for package in ("pipelines", "warehouse"):
        (tmp_path / package).mkdir()
    assert oversized(tmp_path) == [f"assets/x/defs.py:1 asset: {DEFINITION_FUNCTION_LINES + 1} lines (at most 50)",
                                   f"resources/long.py: {MODULE_LINES + 1} lines (at most {MODULE_LINES})"]
