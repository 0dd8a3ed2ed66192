"""The zero-code path: ``opentelemetry-instrument`` with ``OTEL_TRACES_EXPORTER=duckdb`` keeps attribution."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from test_exporter import read_calls

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")

_APP = textwrap.dedent(
    """
    from opentelemetry import baggage, context, trace
    from otel_llm_cost import attribution

    tracer = trace.get_tracer("my.app")
    llm = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
    }
    with attribution(feature="search", user_id="u-42"):
        tracer.start_span("chat gpt-4o-mini", attributes=llm).end()
    token = context.attach(baggage.set_baggage("cost.feature", "from-baggage"))
    tracer.start_span("chat gpt-4o-mini", attributes=llm).end()
    context.detach(token)
    """
)


def _entry_points_from_pyproject(directory: Path) -> Path:
    """A dist-info holding the entry points pyproject.toml declares, for an environment whose
    otel-llm-cost metadata predates them (an editable install); the hook runs once either way."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = project["entry-points"]
    info = directory / "otel_llm_cost_entry_points-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: otel-llm-cost-entry-points\nVersion: 0\n")
    text = "".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in entries.items())
        for group, entries in groups.items()
        if group == "opentelemetry_pre_instrument"
    )
    (info / "entry_points.txt").write_text(text)
    return directory


def _run(tmp_path: Path, **extra: str) -> list[dict[str, object]]:
    app = tmp_path / "app.py"
    app.write_text(_APP)
    db = tmp_path / "auto.duckdb"
    paths = [str(_entry_points_from_pyproject(tmp_path / "meta")), os.environ.get("PYTHONPATH", "")]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "OTEL_TRACES_EXPORTER": "duckdb",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_LLM_COST_DUCKDB_PATH": str(db),
        "OTEL_LLM_COST_USER_ID_KEY": "0123456789abcdef",
        **extra,
    }
    result = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(app)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return sorted(read_calls(db), key=lambda row: str(row["start_time"]))


@pytest.mark.slow
def test_attribution_and_baggage_reach_the_stored_calls_with_zero_code(tmp_path: Path) -> None:
    first, second = _run(tmp_path)
    assert first["feature"] == "search"
    assert str(first["user_id"]).startswith("h:")
    assert "u-42" not in str(first["user_id"])
    assert second["feature"] == "from-baggage"
    assert first["cost_status"] == "priced"


@pytest.mark.slow
def test_the_hook_can_be_turned_off(tmp_path: Path) -> None:
    rows = _run(tmp_path, OTEL_LLM_COST_AUTO_ATTRIBUTION="false")
    assert [row["feature"] for row in rows] == [None, None]
