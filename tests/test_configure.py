"""configure(): one call wires a provider so LLM spans are priced and stored."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_llm_cost import configure
from otel_llm_cost.exceptions import BudgetConfigError

LLM_ATTRIBUTES = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 500,
}


def _stored_costs(db: Path) -> list[tuple[str, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT request_model, CAST(cost_usd AS VARCHAR) FROM llm_calls").fetchall()


def test_configure_prices_and_stores_spans_of_the_given_provider(tmp_path: Path) -> None:
    db = tmp_path / "costs.duckdb"
    provider = configure(db, tracer_provider=TracerProvider(), otlp=False, set_global=False)
    with provider.get_tracer("t").start_as_current_span("chat gpt-4o") as span:
        span.set_attributes(LLM_ATTRIBUTES)
    provider.shutdown()
    assert _stored_costs(db) == [("gpt-4o", "0.007500000000")]  # OpenAI list price: $2.50 / $10 per 1M


def _run(script: str, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        check=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path / "config")},
    )


@pytest.mark.slow
def test_configure_enriches_the_global_provider_already_in_use(tmp_path: Path) -> None:
    # As under opentelemetry-instrument: instrumentations hold the global provider, so configure()
    # must add its processor there rather than to a new provider nobody uses.
    _run(
        f"""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from otel_llm_cost import configure
        trace.set_tracer_provider(TracerProvider())
        tracer = trace.get_tracer("instrumentation")
        returned = configure("costs.duckdb", otlp=False)
        assert returned is trace.get_tracer_provider()
        with tracer.start_as_current_span("chat") as span:
            span.set_attributes({LLM_ATTRIBUTES!r})
        returned.shutdown()
        """,
        tmp_path,
    )
    assert _stored_costs(tmp_path / "costs.duckdb") == [("gpt-4o", "0.007500000000")]


@pytest.mark.slow
def test_configure_installs_a_new_global_provider_when_none_is_set(tmp_path: Path) -> None:
    _run(
        f"""
        from opentelemetry import trace
        from otel_llm_cost import configure
        provider = configure("costs.duckdb", otlp=False)
        assert trace.get_tracer_provider() is provider
        with trace.get_tracer("app").start_as_current_span("chat") as span:
            span.set_attributes({LLM_ATTRIBUTES!r})
        provider.shutdown()
        """,
        tmp_path,
    )
    assert len(_stored_costs(tmp_path / "costs.duckdb")) == 1


def test_malformed_budgets_file_from_the_environment_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "budgets.toml"
    bad.write_text("[[budget]]\nname = \n")
    monkeypatch.setenv("OTEL_LLM_COST_BUDGETS", str(bad))
    with caplog.at_level(logging.ERROR, logger="otel_llm_cost"):
        provider = configure(
            tmp_path / "c.duckdb", tracer_provider=TracerProvider(), otlp=False, set_global=False
        )
    provider.shutdown()
    assert any("OTEL_LLM_COST_BUDGETS" in record.getMessage() for record in caplog.records)


def test_malformed_budgets_file_given_as_argument_raises(tmp_path: Path) -> None:
    bad = tmp_path / "budgets.toml"
    bad.write_text("[[budget]]\nname = \n")
    with pytest.raises(BudgetConfigError):
        configure(
            tmp_path / "c.duckdb", tracer_provider=TracerProvider(), budgets=bad, otlp=False, set_global=False
        )
