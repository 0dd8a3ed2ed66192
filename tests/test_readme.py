"""The README and the docs document what the code does: their tables are checked against the code."""

from __future__ import annotations

import re
from pathlib import Path

from otel_llm_cost import _config
from otel_llm_cost.storage import schema as _schema

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONFIGURATION = (ROOT / "docs" / "reference" / "configuration.md").read_text(encoding="utf-8")
SCHEMA = (ROOT / "docs" / "reference" / "schema.md").read_text(encoding="utf-8")
ALL_PAGES = "\n".join(
    page.read_text(encoding="utf-8") for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
)


def test_every_environment_variable_is_documented_with_its_meaning() -> None:
    for var in _config.ALL_VARIABLES:
        row = next(
            (line for line in CONFIGURATION.splitlines() if line.startswith(f"| `{var.name}` |")), None
        )
        assert row is not None, f"{var.name} is missing from docs/reference/configuration.md"
        assert var.doc in row


def test_no_undeclared_environment_variable_is_documented() -> None:
    declared = {var.name for var in _config.ALL_VARIABLES} | {"OTEL_LLM_COST_OLDEST_SDK_PYTHON"}
    documented = set(re.findall(r"OTEL_LLM_COST_[A-Z0-9_]+", ALL_PAGES))
    assert documented <= declared


def test_llm_calls_schema_table_matches_the_schema() -> None:
    table = "\n".join(f"| `{name}` | {typ} | {meaning} |" for name, typ, meaning in _schema.CALL_COLUMNS)
    assert table in SCHEMA


def test_readme_test_command_is_what_ci_runs() -> None:
    quick_start = (
        README.split("## Quick start on a fresh machine", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    )
    test_command = quick_start.strip().splitlines()[1].split("#", 1)[0].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_readme_stays_a_front_door() -> None:
    # Guides and reference live in docs/; the README says what the package is, how to start and where
    # to read on.
    assert len(README.splitlines()) <= 250, "move the new material into a page under docs/ and link it"
