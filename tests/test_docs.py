"""The docs stay true to the code: generated tables are current, paths import, links land, snippets run."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from test_budget_config import EXAMPLE_FILE

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
GENERATOR = ROOT / "docs" / "generate.py"
_FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blocks(lang: str) -> list[tuple[str, str]]:
    """(``page: first line``, code) of every fenced block in ``lang``, across the README and docs."""
    found = []
    for page in PAGES:
        for match in _FENCE.finditer(page.read_text(encoding="utf-8")):
            if match["lang"] == lang:
                code = match["code"]
                found.append((f"{page.relative_to(ROOT)}: {code.splitlines()[0]}", code))
    return found


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["XDG_CONFIG_HOME"] = str(cwd / "config")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False)


# ---------------------------------------------------------------------------------------- generated


def test_generated_reference_tables_match_the_code() -> None:
    stale = _load_generator().stale_pages()
    assert not stale, (
        f"{', '.join(str(p.relative_to(ROOT)) for p in stale)} out of date: run `python docs/generate.py`"
    )


@pytest.mark.slow
def test_generator_check_fails_naming_the_command_until_the_page_is_regenerated(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    page = tmp_path / "docs" / "reference" / "configuration.md"
    page.write_text(page.read_text(encoding="utf-8").replace("| `OTEL_LLM_COST_DUCKDB_PATH` |", "| `X` |"))
    check = _run([sys.executable, str(tmp_path / "docs" / "generate.py"), "--check"], tmp_path)
    assert check.returncode == 1
    assert "docs/reference/configuration.md is out of date: run `python docs/generate.py`" in check.stderr

    assert _run([sys.executable, str(tmp_path / "docs" / "generate.py")], tmp_path).returncode == 0
    assert page.read_text(encoding="utf-8") == (ROOT / "docs" / "reference" / "configuration.md").read_text(
        encoding="utf-8"
    )
    assert _run([sys.executable, str(tmp_path / "docs" / "generate.py"), "--check"], tmp_path).returncode == 0


def test_cli_reference_lists_every_command_and_flag() -> None:
    reference = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    for command in ("report", "workflow", "session", "top", "query", "export", "savings", "reprice", "demo"):
        assert f"## `otel-llm-cost {command}`" in reference
    for heading in (
        "`otel-llm-cost budgets status`",
        "`otel-llm-cost budgets check`",
        "`otel-llm-cost serve`",
    ):
        assert heading in reference
    assert "| `--max-body-bytes N` |" in reference
    assert "| `--limit LIMIT` | `50` | newest N alerts (default: 50) |" in reference


# ---------------------------------------------------------------------------------------- paths, links


# Dotted names in the docs that are not Python paths.
_NOT_PATHS = {"otel_llm_cost.budget_alert"}  # the "type" field of the webhook payload


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        try:
            for name in parts[split:]:
                target = getattr(target, name)
        except AttributeError:
            return False
        return True
    return False


def test_every_otel_llm_cost_path_in_the_docs_imports() -> None:
    text = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    dotted = set(re.findall(r"\botel_llm_cost(?:\.[A-Za-z_][A-Za-z0-9_]*)+", text)) - _NOT_PATHS
    for module, names in re.findall(r"from (otel_llm_cost[\w.]*) import ([\w, ]+)", text):
        dotted |= {f"{module}.{name.strip()}" for name in names.split(",") if name.strip()}
    assert "otel_llm_cost.storage.connect.connect" in dotted
    unresolved = sorted(path for path in dotted if not _resolves(path))
    assert not unresolved, f"these paths in README.md or docs/ do not import: {unresolved}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_point_at_existing_pages_and_headings() -> None:
    broken = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
                continue
            if anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.*)$", _FENCE.sub("", linked.read_text(encoding="utf-8")), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken


def test_docs_never_point_outside_the_repository() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "DESIGN.md" not in text, page
        assert "STYLE.md" not in text, page


# ---------------------------------------------------------------------------------------- examples


def test_budgets_example_is_the_file_the_budget_tests_load() -> None:
    (documented,) = [code for where, code in _blocks("toml") if "budgets.toml" in where]
    assert documented == EXAMPLE_FILE


def test_price_file_example_is_the_tested_fixture() -> None:
    (documented,) = [code for where, code in _blocks("toml") if "prices.toml" in where]
    fixture = (ROOT / "tests" / "fixtures" / "prices" / "prices.toml").read_text(encoding="utf-8")
    # Only comments and the free-text note differ.
    parsed, tested = tomllib.loads(documented), tomllib.loads(fixture)
    for entry in (parsed, tested):
        entry["models"]["ft:gpt-4o-mini-2024-07-18:acme::abc123"].pop("note")
    assert parsed == tested


# Python blocks that are parts of a larger program (imports or variables left out, `...` bodies, a
# `return` from the caller's function): they are only parsed. Every other block runs as written.
FRAGMENTS = {
    "README.md: provider = TracerProvider()": "imports left out",
    "README.md: from otel_llm_cost import Budget, CostStore, DuckDBSpanExporter, LLMCostSpanProcessor, "
    "attribution": "continues the block before it (provider, start, end)",
    'docs/processor.md: with attribution(feature="document_analysis", agent="researcher", user_id="u-42", '
    'org_id="org_123",': "imports left out",
    'docs/query.md: rows = store.cost_by("user", start, end)': (
        "continues the block before it; df() needs pandas"
    ),
    'docs/query.md: with CostStore("llm_costs.duckdb", read_only=False) as store:': "imports left out",
    "docs/budgets.md: from otel_llm_cost import Budget, LLMCostSpanProcessor": "imports left out",
    "docs/budgets.md: from otel_llm_cost.budgets import BudgetGuard": "a return from the caller's function",
    "docs/collector.md: # gunicorn.conf.py": "a gunicorn configuration file",
    "docs/metrics.md: from opentelemetry import metrics": "exports to an OTLP endpoint (retries for seconds)",
    "docs/lake.md: from otel_llm_cost import CostStore, DuckDBSpanExporter": (
        "needs a PostgreSQL server and the lake extra (tests/test_lake.py runs the same calls)"
    ),
    "docs/metrics.md: from opentelemetry.exporter.prometheus import PrometheusMetricReader": (
        "serves Prometheus on a fixed port (9464)"
    ),
}
PYTHON_BLOCKS = _blocks("python")
# Blocks that start with the pip line of the SDKs they need (docs/instrumentations.md, "Wiring your
# application") run in the record environment, where those SDKs are installed: tests/recording/test_wiring.py.
NEEDS_RECORD_ENVIRONMENT = "# pip install otel-llm-cost "


def test_every_python_block_parses_and_fragments_are_listed() -> None:
    for where, code in PYTHON_BLOCKS:
        ast.parse(code, filename=where)
    assert set(FRAGMENTS) <= {where for where, _ in PYTHON_BLOCKS}, (
        "a listed fragment is gone: update FRAGMENTS"
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory as the snippets expect it: demo traffic in llm_costs.duckdb and the example prices.toml."""
    path = tmp_path_factory.mktemp("snippets")
    demo = _run([sys.executable, "-m", "otel_llm_cost", "demo", "--db", "llm_costs.duckdb"], path)
    assert demo.returncode == 0, demo.stderr
    (prices,) = [code for where, code in _blocks("toml") if "prices.toml" in where]
    (path / "prices.toml").write_text(prices, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "code",
    [
        code
        for where, code in PYTHON_BLOCKS
        if where not in FRAGMENTS and not code.startswith(NEEDS_RECORD_ENVIRONMENT)
    ],
    ids=lambda code: code.splitlines()[0],
)
def test_python_block_runs_as_written(code: str, workdir: Path) -> None:
    script = workdir / "snippet.py"
    script.write_text(code, encoding="utf-8")
    result = _run([sys.executable, str(script)], workdir)
    assert result.returncode == 0, result.stderr
