"""What a careful user checks before installing: licence, classifiers, declared dependencies."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_API_MODULES = {"sdk", "trace", "context", "baggage", "metrics", "propagate", "util", "-logs"}
# Rows that cover several distributions, or helpers no user chooses a version of.
_NOT_IN_TABLE = {
    "pytz",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-proto",
    "googleapis-common-protos",
}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> set[str]:
    names = {_requirement_name(r) for r in PYPROJECT["dependencies"]}
    for extra in PYPROJECT["optional-dependencies"].values():
        names |= {_requirement_name(r) for r in extra}
    return names


def test_license_file_is_mit_with_the_contributors_as_holders() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert PYPROJECT["license"] == "MIT"
    assert text.startswith("MIT License")
    assert "otel-llm-cost contributors" in text


def test_python_classifiers_are_the_versions_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    claimed = {c.rsplit(" :: ", 1)[1] for c in PYPROJECT["classifiers"] if re.search(r"Python :: 3\.\d+$", c)}
    # CI runs the suite with the runner's python3; each claimed minor version needs its own run.
    assert claimed == {f"{sys.version_info.major}.{sys.version_info.minor}"} or all(
        f"python{version}" in ci for version in claimed
    )
    assert claimed, "at least one tested Python version is claimed"


def test_every_third_party_import_is_declared() -> None:
    distributions = packages_distributions()
    stdlib = sys.stdlib_module_names
    missing: dict[str, str] = {}
    declared = _declared()
    for path in (ROOT / "src" / "otel_llm_cost").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in stdlib or top == "otel_llm_cost":
                    continue
                if top == "opentelemetry":  # a namespace package shared by many distributions
                    dist = _opentelemetry_distribution(module)
                elif module.startswith(("google.protobuf", "google.rpc")):
                    dist = "protobuf" if module.startswith("google.protobuf") else "googleapis-common-protos"
                else:
                    dist = distributions.get(top, [top])[0]
                if dist.lower().replace("_", "-") not in declared:
                    missing[module] = str(path.relative_to(ROOT))
    assert not missing


def _opentelemetry_distribution(module: str) -> str:
    parts = module.replace("_", "-").split(".")[1:]
    if not parts or parts[0] in _API_MODULES:
        return "opentelemetry-sdk"  # opentelemetry-api comes with it
    declared = _declared()
    # opentelemetry.exporter.otlp.proto.http -> opentelemetry-exporter-otlp-proto-http: the longest
    # dotted prefix that names a declared distribution.
    for length in range(len(parts), 0, -1):
        name = "-".join(["opentelemetry", *parts[:length]])
        if name in declared:
            return name
    return module


def test_the_grpc_exporter_is_not_a_dependency() -> None:
    names = {_requirement_name(r) for r in PYPROJECT["dependencies"]}
    assert "opentelemetry-exporter-otlp" not in names
    assert "opentelemetry-exporter-otlp-proto-http" in names


def test_supported_versions_table_states_the_declared_ranges() -> None:
    table = (ROOT / "docs" / "development.md").read_text()
    for requirement in PYPROJECT["dependencies"]:
        name = _requirement_name(requirement)
        bounds = re.findall(r"(>=|<)\s*([\d.]+)", requirement)
        if name in _NOT_IN_TABLE:
            continue
        row = next((line for line in table.splitlines() if line.startswith(f"| {name}")), None)
        assert row is not None, name
        assert ", ".join(f"{op} {v}" for op, v in bounds) in row, (name, row)
