"""The receiver stores what the in-process path stores: the same spans, fed both ways, give the same
rows, column by column.

One TracerProvider sends every span two ways: ``LLMCostSpanProcessor -> DuckDBSpanExporter`` in this
process, and the OTLP/HTTP exporter -> ``OTLPReceiver(build_processor(...))``, whose spans are decoded
straight into what storage reads and enriched by the exporter. The spans cover the decisions that
depend on more than one span (an SDK span next to an instrumentation's, an agent span above a tool
span above a call), user ids that must be hashed, unpriced models, error statuses and spans that are
no LLM call at all.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from otel_llm_cost.budgets import Budget
from otel_llm_cost.collector.receiver import OTLPReceiver, build_processor
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.attribution import attribution
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

START_NS = 1_764_900_000_000_000_000


def gen_ai(model: str, input_tokens: int, output_tokens: int, **extra: Any) -> dict[str, Any]:
    return {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        **extra,
    }


def emit(provider: TracerProvider) -> None:
    """Spans a real application would end, in the order it would end them."""
    openai = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    anthropic_instrumentation = provider.get_tracer("opentelemetry.instrumentation.anthropic")
    anthropic_sdk = provider.get_tracer(sc.ANTHROPIC_SDK_SCOPE)
    app = provider.get_tracer("app")
    t = START_NS

    def tick() -> int:
        nonlocal t
        t += 1_000_000
        return t

    with (
        attribution(feature="search", user_id="u-42", org_id="org_1", session_id="s-1", team="blue"),
        app.start_as_current_span("GET /search", start_time=tick(), end_on_exit=False) as request,
    ):
        span = openai.start_span(
            "chat gpt-4o-mini",
            start_time=tick(),
            attributes=gen_ai(
                "gpt-4o-mini",
                1200,
                300,
                **{
                    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 800,
                    sc.GEN_AI_RESPONSE_ID: "chatcmpl-1",
                    "gen_ai.response.finish_reasons": ("stop",),
                    "server.port": 443,
                    "temperature": 0.2,
                    "flag": True,
                },
            ),
        )
        span.end(end_time=tick())
        db = app.start_span("SELECT", start_time=tick(), attributes={"db.system": "postgresql"})
        db.end(end_time=tick())
        request.end(end_time=tick())
    # An instrumentation's span wrapping the Anthropic SDK's own span of the same call.
    claude = {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "anthropic",
        sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-0",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 5000,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 700,
    }
    with anthropic_instrumentation.start_as_current_span(
        "chat claude", start_time=tick(), attributes=claude, end_on_exit=False
    ) as outer:
        inner = anthropic_sdk.start_span("messages.create", start_time=tick(), attributes=claude)
        inner.end(end_time=tick())
    outer.end(end_time=tick())
    # A span whose usage repeats the call it contains, through a tool span that is no LLM call: only
    # the tool span can tell the double-count guard that the outer span contains a call.
    with openai.start_as_current_span(
        "invoke_agent researcher",
        start_time=tick(),
        attributes=gen_ai("gpt-4o", 450, 60),
        end_on_exit=False,
    ) as agent:
        with app.start_as_current_span("tool lookup", start_time=tick(), end_on_exit=False) as tool:
            call = openai.start_span("chat gpt-4o", start_time=tick(), attributes=gen_ai("gpt-4o", 400, 50))
            call.end(end_time=tick())
        tool.end(end_time=tick())
    agent.end(end_time=tick())
    # OpenInference with a raw user id (hashed before storage), and Traceloop association properties.
    phoenix = provider.get_tracer("openinference.instrumentation.openai")
    span = phoenix.start_span(
        "ChatCompletion",
        start_time=tick(),
        attributes={
            sc.OPENINFERENCE_SPAN_KIND: "LLM",
            sc.LLM_MODEL_NAME: "gpt-4o-mini",
            sc.LLM_PROVIDER: "openai",
            sc.LLM_TOKEN_COUNT_PROMPT: 90,
            sc.LLM_TOKEN_COUNT_COMPLETION: 10,
            sc.USER_ID: "alice@example.com",
            sc.SESSION_ID: "sess-9",
        },
    )
    span.end(end_time=tick())
    traceloop = provider.get_tracer("opentelemetry.instrumentation.openai.v1")
    span = traceloop.start_span(
        "openai.chat",
        start_time=tick(),
        attributes={
            **gen_ai("gpt-4o-mini", 10, 5),
            sc.TRACELOOP_ASSOCIATION_PREFIX + "customer_id": "cust-7",
            sc.TRACELOOP_ASSOCIATION_PREFIX + "workflow_id": "wf-3",
        },
    )
    span.end(end_time=tick())
    # A model no price list knows, and a failed call.
    span = openai.start_span("chat mystery", start_time=tick(), attributes=gen_ai("mystery-model-9", 10, 10))
    span.end(end_time=tick())
    span = openai.start_span("chat gpt-4o-mini", start_time=tick(), attributes=gen_ai("gpt-4o-mini", 10, 0))
    span.set_status(Status(StatusCode.ERROR, "rate limited"))
    span.end(end_time=tick())


def rows(db: Path) -> tuple[list[str], dict[str, tuple[Any, ...]]]:
    with contextlib.closing(_storage.connect(db, read_only=True)) as connection:
        cursor = connection.execute("SELECT * FROM llm_calls ORDER BY span_id")
        columns = [column[0] for column in cursor.description]
        return columns, {row[0]: row for row in cursor.fetchall()}


@pytest.mark.slow
def test_the_receiver_stores_exactly_what_the_in_process_path_stores(tmp_path: Path) -> None:
    local_db, served_db = tmp_path / "local.duckdb", tmp_path / "served.duckdb"
    processor, pipeline = build_processor(served_db)
    with OTLPReceiver(processor, port=0, pipeline=pipeline) as receiver:
        provider = TracerProvider(resource=Resource({"service.name": "api", "deployment.environment": "t"}))
        provider.add_span_processor(LLMCostSpanProcessor(SimpleSpanProcessor(DuckDBSpanExporter(local_db))))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.url)))
        emit(provider)
        provider.shutdown()

    columns, local = rows(local_db)
    served_columns, served = rows(served_db)
    assert served_columns == columns
    assert len(local) == 9, "every LLM span stored; the request, db and tool spans are no calls"
    assert served.keys() == local.keys()
    for span_id, expected in local.items():
        for column, want, got in zip(columns, expected, served[span_id], strict=True):
            assert got == want, f"span {span_id} ({expected[columns.index('span_name')]}): {column}"
    # The scenario exercises what it claims: a duplicate, an aggregate, hashed ids, unpriced, error.
    by_name = {row[columns.index("span_name")]: row for row in served.values()}
    billable = columns.index("billable")
    assert by_name["chat claude"][billable] is False
    assert by_name["messages.create"][billable] is True
    assert by_name["invoke_agent researcher"][billable] is False
    assert by_name["chat gpt-4o"][billable] is True
    user_ids = {row[columns.index("user_id")] for row in served.values()} - {None}
    assert user_ids
    assert not {"u-42", "alice@example.com"} & user_ids
    assert by_name["chat mystery"][columns.index("cost_status")] == "unpriced"
    statuses = [
        (row[columns.index("status_code")], row[columns.index("status_message")]) for row in served.values()
    ]
    assert statuses.count(("ERROR", "rate limited")) == 1


@pytest.mark.slow
def test_the_receiver_checks_per_call_budgets_on_the_calls_it_enriches(tmp_path: Path) -> None:
    db = tmp_path / "served.duckdb"
    processor, pipeline = build_processor(db, budgets=[Budget.per_call("0.000001")])
    with OTLPReceiver(processor, port=0, pipeline=pipeline) as receiver:
        provider = TracerProvider(resource=Resource({"service.name": "api"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.url)))
        tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
        with tracer.start_as_current_span("chat", attributes=gen_ai("gpt-4o-mini", 1000, 200)) as span:
            span_id = f"{span.get_span_context().span_id:016x}"
        with tracer.start_as_current_span("chat", attributes=gen_ai("mystery-model-9", 10, 10)):
            pass
        provider.shutdown()

    with contextlib.closing(_storage.connect(db, read_only=True)) as connection:
        alerts = connection.execute("SELECT budget, scope, entity FROM budget_alerts").fetchall()
    assert alerts == [("per_call", "call", span_id)]
