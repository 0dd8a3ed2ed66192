"""The package's layers, checked over its import graph: a change that breaks a direction fails here.

Reading order of the pipeline, lowest layer first:

    exceptions, _config, _logging,       (base: everything may import them)
    _private_api, _lazy, _worker         (private API uses; lazy re-exports; the background-thread loop)
    conventions, _money                  attribute names, usage normalisation, how money is represented
    pricing                              prices -> Decimal costs
    storage | enrich                     rows on disk | the enriched span (neither imports the other)
    query                                reading the ledger
    budgets                              rules, alerts, forecasts
    collector, cli, configure            the edges (nothing imports cli)

Every import counts, at module level or inside a function, and under ``if TYPE_CHECKING`` too: a
lower layer that needs a higher one's behaviour receives it (a parameter, a Protocol), it does not
import it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "otel_llm_cost"
SRC = Path(__file__).resolve().parent.parent / "src" / PACKAGE

BASE = frozenset({"exceptions", "_config", "_logging", "_private_api", "_lazy", "_worker"})
_LOWER: dict[str, frozenset[str]] = {
    "base": frozenset(),
    "_money": frozenset({"base"}),
    "conventions": frozenset({"base"}),
    "pricing": frozenset({"base", "_money", "conventions"}),
    "storage": frozenset({"base", "_money", "conventions"}),
    "enrich": frozenset({"base", "_money", "conventions", "pricing"}),
    "query": frozenset({"base", "_money", "conventions", "pricing", "storage", "enrich"}),
}
_LOWER["budgets"] = _LOWER["query"] | {"query"}
# The dashboard reads through the query API and budgets; the receiver (serve --ui) and the CLI mount it.
_LOWER["ui"] = _LOWER["budgets"] | {"budgets"}
_LOWER["collector"] = _LOWER["budgets"] | {"budgets", "ui"}
# The package's own front: __init__ (re-exports), configure(), the thin documented-path modules.
_LOWER["front"] = _LOWER["collector"] | {"collector"}
_LOWER["cli"] = _LOWER["front"] | {"collector", "front"}
FRONT_MODULES = frozenset({"__init__", "_configure", "exporter", "recording", "store", "processor", "usage"})


def layer_of(module: str) -> str:
    """``otel_llm_cost.storage.rows`` -> ``storage``; the base modules -> ``base``."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    if head in BASE:
        return "base"
    if head == "__main__":
        return "cli"  # `python -m otel_llm_cost` is the CLI's second entry point
    if head in FRONT_MODULES:
        return "front"
    return head


def module_name(path: Path) -> str:
    relative = path.relative_to(SRC.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1 and path.parent != SRC:
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """Every ``otel_llm_cost`` module ``path`` imports, with its line."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: str) -> Iterator[tuple[int, str]]:
    """The ``otel_llm_cost`` modules ``source`` (a module of ``package``) imports, with their lines;
    ``from X import name`` counts ``X.name`` when that is a module."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith(PACKAGE):
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                yield node.lineno, candidate if _is_module(candidate) else target


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (SRC / relative).with_suffix(".py").exists() or (SRC / relative / "__init__.py").exists()


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_import_points_down_the_layers() -> None:
    wrong = []
    for path in _sources():
        here = module_name(path)
        source_layer = layer_of(here)
        assert source_layer in _LOWER, f"{here}: no layer is declared for {source_layer!r}"
        for line, target in imports_of(path):
            target_layer = layer_of(target)
            if target_layer == source_layer or target_layer in _LOWER[source_layer]:
                continue
            wrong.append(f"{path.relative_to(SRC)}:{line}: {source_layer} imports {target} ({target_layer})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_module_imports_the_cli() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{line}"
        for path in _sources()
        if layer_of(module_name(path)) != "cli"
        for line, target in imports_of(path)
        if layer_of(target) == "cli"
    ]
    assert not offenders


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for path in _sources():
        here = module_name(path)
        graph[here] = {target for _, target in imports_of(path) if target != here}
    # A package's __init__ importing its own modules is re-exporting, not a cycle.
    for name, targets in graph.items():
        graph[name] = {t for t in targets if not (t.startswith(name + ".") and _is_package(name))}
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _is_package(name: str) -> bool:
    return (SRC / Path(*name.split(".")[1:]) / "__init__.py").exists() or name == PACKAGE


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("otel_llm_cost.storage.rows", "storage"),
        ("otel_llm_cost._logging", "base"),
        ("otel_llm_cost", "front"),
        ("otel_llm_cost.exporter", "front"),
        ("otel_llm_cost.__main__", "cli"),
    ],
)
def test_layer_names(module: str, layer: str) -> None:
    assert layer_of(module) == layer


def test_the_checker_sees_a_wrong_direction() -> None:
    """The check itself can fail: a storage module importing pricing and enrich is reported."""
    source = "from otel_llm_cost.pricing import book\nimport otel_llm_cost.enrich.dedup\nfrom . import rows\n"
    targets = [target for _, target in imports_in(source, "otel_llm_cost.storage")]
    assert targets == [
        "otel_llm_cost.pricing.book",
        "otel_llm_cost.enrich.dedup",
        "otel_llm_cost.storage.rows",
    ]
    assert [layer_of(t) in _LOWER["storage"] for t in targets[:2]] == [False, False]


# Size limits that keep each room readable: a module that outgrows them wants splitting by role.
MODULE_LINES = 400
CLASS_LINES = 300
FUNCTION_LINES = 60
# The one table of attribute names (every convention we read, every name we write) is a list of
# constants, not logic: one place to look beats the line limit there.
TABLE_MODULES = frozenset({"conventions/names.py"})


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> int:
    """Lines of ``node`` from its first statement after the docstring to its end."""
    body = node.body
    first = body[0]
    has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if has_docstring and isinstance(first.value.value, str) and len(body) > 1:
        first = body[1]
    return (node.end_lineno or first.lineno) - first.lineno + 1


def test_modules_classes_and_functions_stay_small() -> None:
    too_big = []
    for path in _sources():
        text = path.read_text()
        name = path.relative_to(SRC)
        if text.count("\n") > MODULE_LINES and str(name) not in TABLE_MODULES:
            too_big.append(f"{name}: {text.count(chr(10))} lines > {MODULE_LINES}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                limit = CLASS_LINES
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                limit = FUNCTION_LINES
            else:
                continue
            if (lines := _code_lines(node)) > limit:
                too_big.append(f"{name}:{node.lineno}: {node.name} has {lines} lines of code > {limit}")
    assert not too_big, "\n".join(too_big)
