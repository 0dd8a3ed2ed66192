"""record_llm_call, records_llm_usage: a hand-recorded call is priced and stored like an instrumented one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider

from conftest import BASE_TIME
from otel_llm_cost import configure, record_llm_call, record_llm_usage, records_llm_usage
from otel_llm_cost._logging import reset_log_once
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.attribution import UserIdHasher, attribution
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

HASHER = UserIdHasher(key=b"recording-test-key-0123456789ab")
SONNET = "claude-sonnet-4-5"
NO_PROVIDER = "record_llm_call: no TracerProvider is set (call otel_llm_cost.configure()); nothing recorded"


@pytest.fixture(autouse=True)
def _fresh_log_once() -> Iterator[None]:
    reset_log_once()
    yield
    reset_log_once()


@pytest.fixture
def pipeline(tmp_path: Path, pricebook: PriceBook) -> Iterator[tuple[TracerProvider, Path]]:
    db = tmp_path / "calls.duckdb"
    provider = TracerProvider()
    provider.add_span_processor(
        LLMCostSpanProcessor(DuckDBSpanExporter(db), pricing=pricebook, user_id_hasher=HASHER)
    )
    yield provider, db
    provider.shutdown()


def stored_rows(provider: TracerProvider, db: Path) -> list[dict[str, Any]]:
    assert provider.force_flush(30_000)
    with contextlib.closing(_storage.connect(db, read_only=False)) as con:
        table = con.sql(f"SELECT * FROM {_schema.CALLS_TABLE} ORDER BY start_time").to_arrow_table()
    return table.to_pylist()


def stored(provider: TracerProvider, db: Path) -> dict[str, dict[str, Any]]:
    return {row["span_name"]: row for row in stored_rows(provider, db)}


def test_anthropic_exclusive_input_is_not_undercharged(pipeline: tuple[TracerProvider, Path]) -> None:
    # The Anthropic API's usage.input_tokens (500) leaves the 400 cache-read tokens out. Read as an
    # inclusive count (what a hand-made gen_ai.* span says) the call is charged $0.004065; the
    # call's real price is $0.005265: 500 input x $3/M + 400 cache reads x $0.30/M + 243 output x $15/M.
    provider, db = pipeline
    usage = {"model": SONNET, "provider": "anthropic", "output_tokens": 243, "cache_read_tokens": 400}
    with attribution(step="exclusive"):
        record_llm_call(input_tokens=500, input_includes_cache=False, tracer_provider=provider, **usage)
    with attribution(step="inclusive"):
        record_llm_call(input_tokens=900, input_includes_cache=True, tracer_provider=provider, **usage)
    provider.get_tracer("hand-made").start_span(
        "hand-made",
        attributes={
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_PROVIDER_NAME: "anthropic",
            sc.GEN_AI_REQUEST_MODEL: SONNET,
            sc.GEN_AI_USAGE_INPUT_TOKENS: 500,  # exclusive count on a span that promises inclusive ones
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 400,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 243,
        },
    ).end()
    rows = stored_rows(provider, db)
    by_step = {row["step"]: row for row in rows}
    assert by_step["exclusive"]["cost_usd"] == Decimal("0.005265")
    assert by_step["inclusive"]["cost_usd"] == Decimal("0.005265")
    assert by_step[None]["cost_usd"] == Decimal("0.004065")
    assert by_step["exclusive"]["input_tokens"] == 900
    assert by_step["exclusive"]["cache_read_tokens"] == 400


def test_recorded_call_is_stored_like_an_instrumented_one(pipeline: tuple[TracerProvider, Path]) -> None:
    provider, db = pipeline
    tracer = provider.get_tracer("openai-instrumentation")
    start = BASE_TIME
    with attribution(feature="search"):
        tracer.start_span(
            "instrumented",
            attributes={
                sc.GEN_AI_OPERATION_NAME: "chat",
                sc.GEN_AI_PROVIDER_NAME: "openai",
                sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
                sc.GEN_AI_RESPONSE_MODEL: "gpt-4o",
                sc.GEN_AI_USAGE_INPUT_TOKENS: 1200,
                sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1024,
                sc.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
                sc.GEN_AI_RESPONSE_ID: "resp-instrumented",
            },
            start_time=int(start.timestamp() * 1e9),
        ).end(end_time=int((start + timedelta(milliseconds=800)).timestamp() * 1e9))
        context = record_llm_call(
            model="gpt-4o",
            provider="openai",
            input_tokens=1200,
            input_includes_cache=True,
            cache_read_tokens=1024,
            output_tokens=300,
            start=start,
            latency_ms=800,
            response_id="resp-recorded",
            tracer_provider=provider,
            user_id="u-42",
        )
    assert context is not None
    rows = stored(provider, db)
    recorded, instrumented = rows["chat gpt-4o"], rows["instrumented"]
    same = (
        "cost_usd",
        "input_cost_usd",
        "cache_read_cost_usd",
        "output_cost_usd",
        "cost_status",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "total_tokens",
        "billable",
        "cache_hit",
        "provider",
        "request_model",
        "response_model",
        "feature",
        "start_time",
        "duration_ms",
    )
    assert {k: recorded[k] for k in same} == {k: instrumented[k] for k in same}
    assert recorded["cost_usd"] > 0
    assert recorded["billable"] is True
    assert recorded["duration_ms"] == 800.0
    assert recorded["span_id"] == f"{context.span_id:016x}"
    assert recorded["scope_name"] == sc.RECORDING_SCOPE
    assert recorded["response_id"] == "resp-recorded"
    assert recorded["user_id"] == HASHER.hash("u-42")
    assert "u-42" not in str(recorded)


def test_recorded_call_keeps_its_optional_counts_and_timing(pipeline: tuple[TracerProvider, Path]) -> None:
    provider, db = pipeline
    record_llm_call(
        model=SONNET,
        provider="anthropic",
        input_tokens=100,
        input_includes_cache=False,
        cache_write_tokens=2000,
        cache_write_1h_tokens=500,
        output_tokens=400,
        reasoning_tokens=150,
        latency_ms=1500,
        time_to_first_token_ms=320.5,
        tracer_provider=provider,
        conversation_id="conv-9",
    )
    [row] = stored(provider, db).values()
    assert (row["input_tokens"], row["cache_write_tokens"], row["cache_write_1h_tokens"]) == (2100, 2000, 500)
    assert (row["output_tokens"], row["reasoning_tokens"]) == (400, 150)
    assert row["duration_ms"] == 1500.0
    assert row["time_to_first_token_ms"] == 320.5
    assert row["conversation_id"] == "conv-9"
    assert row["cost_status"] == "priced"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cache_read_tokens": 10}, "input_includes_cache"),
        ({"cache_read_tokens": 2000, "input_includes_cache": True}, "cannot include"),
        ({"input_tokens": -1}, "an int from 0 to 10"),
        ({"output_tokens": 1.5}, "an int from 0 to 10"),
        ({"input_tokens": True}, "an int from 0 to 10"),
        ({"model": ""}, "model"),
        ({"reasoning_tokens": 20}, "reasoning_tokens"),
        ({"cache_write_tokens": 5, "cache_write_1h_tokens": 6, "input_includes_cache": False}, "1h"),
        ({"latency_ms": -3}, "latency_ms"),
        ({"start": BASE_TIME.replace(tzinfo=None)}, "timezone-aware"),
        ({"start": BASE_TIME, "end": BASE_TIME + timedelta(seconds=1), "latency_ms": 5}, "at most two"),
        ({"start": BASE_TIME, "end": BASE_TIME - timedelta(seconds=1)}, "before start"),
        ({"input_includes_cache": "yes"}, "True or False"),
        ({"input_tokens": 10**13}, "an int from 0 to 10"),
        ({"start": datetime(1, 1, 1, tzinfo=UTC)}, "between 1970 and 2262"),
        ({"latency_ms": 1e300}, "between 1970 and 2262"),
        ({"feature": 3}, "must be a str"),
        ({"bad key": "x"}, "identifier"),
    ],
)
def test_bad_arguments_raise_value_error(overrides: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"model": "gpt-4o", "input_tokens": 100, "output_tokens": 10}
    arguments.update(overrides)
    with pytest.raises(ValueError, match=message):
        record_llm_call(tracer_provider=TracerProvider(), **arguments)


def test_a_tracer_provider_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="TracerProvider"):
        record_llm_call(model="gpt-4o", input_tokens=1, output_tokens=1, tracer_provider=object())  # type: ignore[arg-type]


def test_without_a_provider_nothing_is_recorded_and_it_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost.recording"):
        for _ in range(3):
            assert (
                record_llm_call(
                    model="gpt-4o", input_tokens=1, output_tokens=1, tracer_provider=NoOpTracerProvider()
                )
                is None
            )
    messages = [r.getMessage() for r in caplog.records if "no TracerProvider" in r.getMessage()]
    assert len(messages) == 1
    assert messages[0].startswith(NO_PROVIDER)


def test_records_llm_usage_records_and_strips_the_entry(pricebook: PriceBook) -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(LLMCostSpanProcessor(SimpleSpanProcessor(exported), pricing=pricebook))
    usage = {"model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100, "tracer_provider": provider}

    @records_llm_usage
    def answer(question: str) -> dict[str, Any]:
        return {"answer": question.upper(), "llm_usage": usage}

    @records_llm_usage
    async def answer_async(question: str) -> dict[str, Any]:
        return {"answer": question, "llm_usage": usage}

    with attribution(agent="helper"):
        assert answer("hi") == {"answer": "HI"}
        assert asyncio.run(answer_async("yo")) == {"answer": "yo"}
    assert record_llm_usage("no mapping") == "no mapping"
    assert record_llm_usage({"plain": 1}) == {"plain": 1}
    spans = exported.get_finished_spans()
    assert len(spans) == 2
    for span in spans:
        attributes = span.attributes or {}
        assert attributes[sc.LLM_COST_USD] == pytest.approx(0.0035)
        assert attributes[sc.COST_AGENT] == "helper"


def test_a_bad_llm_usage_entry_is_logged_and_stripped_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    @records_llm_usage
    def broken() -> dict[str, Any]:
        return {"answer": 42, "llm_usage": {"model": "gpt-4o", "input_tokens": -5, "output_tokens": 1}}

    with caplog.at_level(logging.ERROR, logger="otel_llm_cost.recording"):
        assert broken() == {"answer": 42}
        assert record_llm_usage({"llm_usage": "not a mapping"}) == {}
    assert any("could not record llm_usage" in r.getMessage() for r in caplog.records)


def test_configure_provider_records_into_its_file(tmp_path: Path) -> None:
    db = tmp_path / "configured.duckdb"
    provider = configure(db, otlp=False, set_global=False, budgets=[])
    record_llm_call(model="gpt-4o", input_tokens=1000, output_tokens=100, tracer_provider=provider)
    rows = stored(provider, db)
    provider.shutdown()
    assert [row["cost_usd"] for row in rows.values()] == [Decimal("0.0035")]


_GLOBAL_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
    from otel_llm_cost import configure, record_llm_call, CostStore
    assert record_llm_call(model="gpt-4o", input_tokens=1, output_tokens=1) is None
    assert record_llm_call(model="gpt-4o", input_tokens=1, output_tokens=1) is None
    provider = configure(sys.argv[1], otlp=False, budgets=[])
    assert record_llm_call(model="gpt-4o", input_tokens=1000, output_tokens=100) is not None
    provider.shutdown()
    with CostStore(sys.argv[1]) as store:
        print("stored", store.summary().call_count, store.summary().cost_usd)
    """
)


@pytest.mark.slow
def test_global_provider_from_configure_and_none_before_it(tmp_path: Path) -> None:
    db = tmp_path / "global.duckdb"
    done = subprocess.run(
        [sys.executable, "-c", _GLOBAL_SCRIPT, str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith(NO_PROVIDER) for line in lines) == 1
    assert lines[-1] == "stored 1 0.003500000000"
