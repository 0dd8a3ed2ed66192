"""No raw user id leaves the process or reaches a table: every copy handed on and every stored row
carries the keyed hash only, whatever convention named the user."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.attribution import UserIdHasher, attribution
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

HASHER = UserIdHasher(key=b"privacy-test-key-0123456789abcdef")
RAW = "alice@example.com"
# An integer id long enough that random trace ids and timestamps in the file never contain its digits.
RAW_INT = 73_519_286_404_117
CHAT: dict[str, Any] = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
    sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
}
# Every user-identifying name, each on a span of its own (and all of them together on one more).
USER_KEYS = sorted(sc.USER_ID_ATTRIBUTE_NAMES)


def everything_stored(db: Path) -> str:
    """Every value of every row of every table, as text."""
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        tables = [_schema.CALLS_TABLE, _schema.SPANS_TABLE]
        return "\n".join(str(con.sql(f"SELECT * FROM {table}").fetchall()) for table in tables)


@pytest.fixture
def pipeline(
    pricebook: PriceBook, tmp_path: Path
) -> tuple[TracerProvider, LLMCostSpanProcessor, InMemorySpanExporter, Path]:
    db = tmp_path / "calls.duckdb"
    wrapped = InMemorySpanExporter()
    processor = LLMCostSpanProcessor(
        SimpleSpanProcessor(wrapped),
        DuckDBSpanExporter(db, store_all_spans=True),
        pricing=pricebook,
        user_id_hasher=HASHER,
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return provider, processor, wrapped, db


def test_no_raw_user_id_is_handed_on_or_stored(
    pipeline: tuple[TracerProvider, LLMCostSpanProcessor, InMemorySpanExporter, Path],
) -> None:
    provider, processor, wrapped, db = pipeline
    tracer = provider.get_tracer("app")
    for index, key in enumerate(USER_KEYS):
        tracer.start_span(
            f"llm-{key}", attributes={**CHAT, sc.GEN_AI_RESPONSE_ID: f"r-{index}", key: RAW}
        ).end()
        tracer.start_span(f"plain-{key}", attributes={"http.route": "/chat", key: RAW}).end()
    tracer.start_span("llm-all", attributes={**CHAT, **dict.fromkeys(USER_KEYS, RAW)}).end()
    tracer.start_span(
        "llm-int", attributes={**CHAT, sc.GEN_AI_RESPONSE_ID: "r-int", sc.USER_ID: RAW_INT}
    ).end()
    assert processor.force_flush(30_000)
    provider.shutdown()

    spans = wrapped.get_finished_spans()
    assert len(spans) == 2 * len(USER_KEYS) + 2
    for span in spans:
        attributes = dict(span.attributes or {})
        assert RAW not in json.dumps(attributes, default=str), span.name
        assert RAW_INT not in attributes.values(), span.name
        for key in USER_KEYS:
            if key in attributes:
                assert attributes[key] == HASHER.hash(RAW if span.name != "llm-int" else str(RAW_INT)), (
                    span.name,
                    key,
                )
    by_name = {span.name: span for span in spans}
    # An LLM span named the user by any of the id attributes: that is its cost.user_id.
    for key in sc.USER_ID_SOURCE_NAMES:
        assert (by_name[f"llm-{key}"].attributes or {})[sc.COST_USER_ID] == HASHER.hash(RAW), key

    stored = everything_stored(db)
    assert RAW not in stored
    assert str(RAW_INT) not in stored.replace(HASHER.hash(str(RAW_INT)), "")
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        users = dict(con.sql(f"SELECT span_name, user_id FROM {_schema.CALLS_TABLE}").fetchall())
    for key in sc.USER_ID_SOURCE_NAMES:
        assert users[f"llm-{key}"] == HASHER.hash(RAW), key


class Recorder(SpanProcessor):
    def __init__(self) -> None:
        self.ended: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


def test_spans_without_raw_user_ids_are_handed_on_as_the_same_object(pricebook: PriceBook) -> None:
    seen, handed_on = Recorder(), Recorder()
    provider = TracerProvider()
    provider.add_span_processor(seen)  # what the SDK hands every processor
    provider.add_span_processor(LLMCostSpanProcessor(handed_on, pricing=pricebook, user_id_hasher=HASHER))
    tracer = provider.get_tracer("app")
    tracer.start_span("plain", attributes={"http.route": "/chat"}).end()
    with attribution(user_id=RAW, user_id_hasher=HASHER):
        tracer.start_span("tagged").end()  # cost.user_id is hashed on start: nothing to replace
    tracer.start_span("raw", attributes={sc.COST_USER_ID: RAW}).end()
    provider.shutdown()
    assert handed_on.ended[0] is seen.ended[0]
    assert handed_on.ended[1] is seen.ended[1]
    assert (handed_on.ended[1].attributes or {})[sc.COST_USER_ID] == HASHER.hash(RAW)
    assert handed_on.ended[2] is not seen.ended[2]
    assert (handed_on.ended[2].attributes or {})[sc.COST_USER_ID] == HASHER.hash(RAW)
    assert (seen.ended[2].attributes or {})[sc.COST_USER_ID] == RAW  # the application's span is untouched


def test_exporter_alone_stores_no_raw_user_id(pricebook: PriceBook, tmp_path: Path) -> None:
    # Spans nothing enriched (OTEL_TRACES_EXPORTER=duckdb, the OTLP receiver): the exporter hashes.
    db = tmp_path / "calls.duckdb"
    provider = TracerProvider()
    exporter = DuckDBSpanExporter(db, store_all_spans=True, pricing=pricebook, user_id_hasher=HASHER)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app")
    for index, key in enumerate(USER_KEYS):
        tracer.start_span(
            f"llm-{key}", attributes={**CHAT, sc.GEN_AI_RESPONSE_ID: f"r-{index}", key: RAW}
        ).end()
        tracer.start_span(f"plain-{key}", attributes={"http.route": "/chat", key: RAW}).end()
    provider.shutdown()
    assert RAW not in everything_stored(db)
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        users = dict(con.sql(f"SELECT span_name, user_id FROM {_schema.CALLS_TABLE}").fetchall())
    assert len(users) == len(USER_KEYS)
    for key in sc.USER_ID_SOURCE_NAMES:
        assert users[f"llm-{key}"] == HASHER.hash(RAW), key


# The eleven prompt-like names found stored, then others of the same kinds.
CONTENT_NAMES = [
    "ai.prompt.messages",
    "ai.response.text",
    "gen_ai.request.messages",
    "gen_ai.choice",
    "gen_ai.user.message",
    "gen_ai.tool.definitions",
    "llm.prompt",
    "mlflow.spanInputs",
    "lmnr.span.input",
    "input",
    "output",
    "mlflow.spanOutputs",
    "ai.toolCall.args",
    "myapp.user_query",
    "agent.final_output",
    "rag.retrieved_documents",
    "gen_ai.prompt.0.content",
    "llm.input_messages.0.message.content",
]
# Metadata that looks close and must stay.
METADATA_NAMES = [
    "gen_ai.output.type",
    "input.mime_type",
    "gen_ai.request.choice.count",
    "gen_ai.response.finish_reasons",
    "llm.prompt_template.version",
    "http.route",
    "messaging.message.id",
    sc.PROMPT_COULD_USE_HAIKU,
    sc.MODEL_RECOMMENDATION,
]


@pytest.mark.parametrize("capture_content", [False, True])
def test_prompt_and_completion_text_is_dropped_unless_captured(
    pricebook: PriceBook, tmp_path: Path, capture_content: bool
) -> None:
    db = tmp_path / "calls.duckdb"
    provider = TracerProvider()
    exporter = DuckDBSpanExporter(
        db, store_all_spans=True, capture_content=capture_content, pricing=pricebook, user_id_hasher=HASHER
    )
    provider.add_span_processor(LLMCostSpanProcessor(SimpleSpanProcessor(exporter), pricing=pricebook))
    tracer = provider.get_tracer("app")
    texts = {name: f"SECRET-TEXT-{index}" for index, name in enumerate(CONTENT_NAMES)}
    metadata = {name: f"meta-{index}" for index, name in enumerate(METADATA_NAMES)}
    tracer.start_span("llm", attributes={**CHAT, **texts, **metadata}).end()
    tracer.start_span("plain", attributes={**texts, **metadata}).end()
    provider.shutdown()
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        stored = [
            json.loads(value)
            for (value,) in con.sql(
                f"SELECT attributes FROM {_schema.CALLS_TABLE} "
                f"UNION ALL SELECT attributes FROM {_schema.SPANS_TABLE}"
            ).fetchall()
        ]
    assert len(stored) == 3  # the call, and both spans in the spans table
    for attributes in stored:
        for name in CONTENT_NAMES:
            assert (name in attributes) is capture_content, name
        for name in METADATA_NAMES:
            assert attributes.get(name) == metadata[name], name
    if not capture_content:
        assert "SECRET-TEXT" not in everything_stored(db)
