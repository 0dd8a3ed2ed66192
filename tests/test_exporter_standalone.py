"""DuckDBSpanExporter without the processor (``OTEL_TRACES_EXPORTER=duckdb opentelemetry-instrument``).

Spans arrive as the instrumentations emit them (recorded in tests/fixtures/spans by
tests/recording/record.py) and the exporter normalises, prices and deduplicates them itself.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm_cost._logging import reset_log_once
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.attribution import UserIdHasher
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

FIXTURES = Path(__file__).parent / "fixtures" / "spans"
HASHER = UserIdHasher(key=b"standalone-test-key-0123456789")


def fixture_spans(name: str) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = json.loads((FIXTURES / f"{name}.json").read_text())["spans"]
    return spans


def stored_calls(db: Path) -> list[dict[str, Any]]:
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        table = con.sql(f"SELECT * FROM {_schema.CALLS_TABLE} ORDER BY end_time, span_id").to_arrow_table()
    return table.to_pylist()


@pytest.fixture(autouse=True)
def _fresh_log_once() -> Iterator[None]:
    reset_log_once()
    yield
    reset_log_once()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "calls.duckdb"


@pytest.fixture
def provider(db: Path, pricebook: PriceBook) -> Iterator[TracerProvider]:
    """A fresh provider exporting straight to DuckDB, as auto-configuration wires it (no processor)."""
    provider = TracerProvider(resource=Resource({sc.SERVICE_NAME: "standalone"}))
    provider.add_span_processor(
        SimpleSpanProcessor(DuckDBSpanExporter(db, pricing=pricebook, user_id_hasher=HASHER))
    )
    yield provider
    provider.shutdown()


def test_an_unpriced_call_never_takes_another_tools_cost(provider: TracerProvider, db: Path) -> None:
    # OpenLIT writes its own price table's figure (or 0) into gen_ai.usage.cost; for a model we cannot
    # price that figure must not become our cost (it would be summed as spend), only external_cost_usd.
    [recorded] = fixture_spans("openlit-openai__openai_chat")
    tracer = provider.get_tracer(recorded["scope"]["name"])
    for cost in (0.5, 0):
        attributes = {
            **recorded["attributes"],
            sc.GEN_AI_REQUEST_MODEL: "acme-llm-9000",
            sc.GEN_AI_RESPONSE_MODEL: "acme-llm-9000",
            sc.GEN_AI_RESPONSE_ID: f"resp-{cost}",
            sc.GEN_AI_USAGE_COST: cost,
        }
        tracer.start_span(recorded["name"], attributes=attributes).end()
    provider.shutdown()
    rows = stored_calls(db)
    assert [(r["cost_usd"], r["cost_status"], r["external_cost_usd"]) for r in rows] == [
        (None, "unpriced", Decimal("0.5")),
        (None, "unpriced", Decimal(0)),
    ]
    assert all(sc.GEN_AI_USAGE_COST not in json.loads(r["attributes"]) for r in rows)


USER_ID_SPELLINGS = {
    sc.TRACELOOP_ASSOCIATION_PREFIX + "userId": "bob@example.com",
    sc.TRACELOOP_ASSOCIATION_PREFIX + "user.id": "carol@example.com",
    sc.TRACELOOP_ASSOCIATION_PREFIX + "enduser.id": "dave@example.com",
}


def stored_span_attributes(db: Path) -> dict[str, dict[str, Any]]:
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        rows = con.execute(f"SELECT span_name, attributes FROM {_schema.SPANS_TABLE}").fetchall()
    return {name: json.loads(text) for name, text in rows}


def test_raw_user_ids_never_reach_either_table(db: Path, pricebook: PriceBook) -> None:
    # A raw cost.user_id set directly on a non-LLM span, and user ids passed to Traceloop's association
    # properties under the spellings apps use: only keyed hashes may be stored, in any column.
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(
            DuckDBSpanExporter(db, pricing=pricebook, user_id_hasher=HASHER, store_all_spans=True)
        )
    )
    [_, traceloop_span] = fixture_spans("traceloop-anthropic__anthropic_messages")
    provider.get_tracer("app").start_span(
        "handle request", attributes={sc.COST_USER_ID: "alice@example.com", **USER_ID_SPELLINGS}
    ).end()
    provider.get_tracer(traceloop_span["scope"]["name"]).start_span(
        traceloop_span["name"], attributes={**traceloop_span["attributes"], **USER_ID_SPELLINGS}
    ).end()
    provider.shutdown()
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        everything = str(con.execute(f"SELECT * FROM {_schema.CALLS_TABLE}").fetchall()) + str(
            con.execute(f"SELECT * FROM {_schema.SPANS_TABLE}").fetchall()
        )
    for raw in ("alice", "bob", "carol", "dave"):
        assert raw not in everything
    assert stored_span_attributes(db)["handle request"][sc.COST_USER_ID] == HASHER.hash("alice@example.com")
    [call] = stored_calls(db)
    # Whatever the enrichment maps an association key to, a user-id tag holds the hash.
    for key, value in call["tags"]:
        assert value.startswith("h:"), (key, value)


def record_call(provider: TracerProvider, name: str) -> None:
    """Replay one recorded call as the libraries emit it: the instrumentation's span is started
    first and ends last; the Anthropic SDK's span is its child (OpenInference) or, when the recording
    has it as a root (Traceloop), a root of its own; an app span wraps them."""
    sdk, instrumentation = fixture_spans(name)
    assert sdk["scope"]["name"] == sc.ANTHROPIC_SDK_SCOPE
    app = provider.get_tracer("app").start_span("handle request")
    outer_context = trace.set_span_in_context(app)
    outer = provider.get_tracer(instrumentation["scope"]["name"]).start_span(
        instrumentation["name"], context=outer_context, attributes=instrumentation["attributes"]
    )
    inner_context = trace.set_span_in_context(outer) if sdk["parent_span_id"] else None
    provider.get_tracer(sdk["scope"]["name"]).start_span(
        sdk["name"], context=inner_context, attributes=sdk["attributes"]
    ).end()
    outer.end()
    app.end()


DOUBLE_RECORDED = [
    "openinference-anthropic__anthropic_messages",
    "openinference-anthropic__anthropic_messages_stream",
    "traceloop-anthropic__anthropic_messages",
    "traceloop-anthropic__anthropic_messages_stream",
]


@pytest.mark.parametrize("name", DOUBLE_RECORDED)
@pytest.mark.parametrize("delivery", ["span by span", "one batch, latest end first"])
def test_a_call_recorded_by_two_libraries_is_billed_once(
    name: str, delivery: str, db: Path, pricebook: PriceBook
) -> None:
    # Without the processor the exporter prices spans itself, so it must also mark the second record
    # of a call (the SDK's own span next to the instrumentation's) as the processor would.
    exporter = DuckDBSpanExporter(db, pricing=pricebook, user_id_hasher=HASHER)
    provider = TracerProvider()
    if delivery == "span by span":
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        record_call(provider, name)
    else:
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        record_call(provider, name)
        # The guard decides in end order, whatever order the batch comes in.
        assert exporter.export(memory.get_finished_spans()[::-1]) is SpanExportResult.SUCCESS
    provider.shutdown()
    exporter.shutdown()
    first, second = stored_calls(db)  # in end order: the SDK's span ends first
    assert first["scope_name"] == sc.ANTHROPIC_SDK_SCOPE
    assert (first["billable"], first["duplicate_of"]) == (True, None)
    assert (second["billable"], second["duplicate_of"]) == (False, first["span_id"])
    assert first["cost_status"] == second["cost_status"] == "priced"


def test_a_span_wrapping_llm_calls_is_not_billed_on_top(db: Path, pricebook: PriceBook) -> None:
    # An agent-level span that reports the usage of the calls inside it (no aggregate span kind, so
    # only its position tells), with a plain app span in between.
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(DuckDBSpanExporter(db, pricing=pricebook, user_id_hasher=HASHER))
    )
    [sdk, _] = fixture_spans("openinference-anthropic__anthropic_messages")
    agent_attributes = {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "anthropic",
        sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-5",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 2 * sdk["attributes"][sc.GEN_AI_USAGE_INPUT_TOKENS],
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 2 * sdk["attributes"][sc.GEN_AI_USAGE_OUTPUT_TOKENS],
    }
    agent = provider.get_tracer("my.agent").start_span("agent run", attributes=agent_attributes)
    step = provider.get_tracer("app").start_span("step", context=trace.set_span_in_context(agent))
    for call in range(2):
        provider.get_tracer(sdk["scope"]["name"]).start_span(
            sdk["name"],
            context=trace.set_span_in_context(step),
            attributes={**sdk["attributes"], sc.GEN_AI_RESPONSE_ID: f"msg_{call}"},
        ).end()
    step.end()
    agent.end()
    provider.shutdown()
    rows = stored_calls(db)
    assert [(r["span_name"], r["billable"], r["duplicate_of"]) for r in rows] == [
        (sdk["name"], True, None),
        (sdk["name"], True, None),
        ("agent run", False, None),
    ]
