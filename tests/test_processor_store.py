"""LLMCostSpanProcessor -> DuckDBSpanExporter -> CostStore: what a real pipeline stores and reports."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.attribution import UserIdHasher, attribution
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.query import CostStore
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

HASHER = UserIdHasher(key=b"processor-store-key-0123456789")
CHAT: dict[str, Any] = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
    sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
}


def stored_calls(db: Path) -> dict[str, dict[str, Any]]:
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        table = con.sql(f"SELECT * FROM {_schema.CALLS_TABLE}").to_arrow_table()
    return {row["span_name"]: row for row in table.to_pylist()}


def test_call_answered_from_the_response_cache_costs_nothing(pricebook: PriceBook, tmp_path: Path) -> None:
    # Issue 5: a step served from the application's response cache made no API call, so no spend;
    # its token counts (what the cached answer once cost to produce) are kept.
    db = tmp_path / "calls.duckdb"
    processor = LLMCostSpanProcessor(DuckDBSpanExporter(db), pricing=pricebook, user_id_hasher=HASHER)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("app")
    with attribution(workflow_id="wf-1", step="extract"):
        tracer.start_span("fresh", attributes={**CHAT, sc.GEN_AI_RESPONSE_ID: "r-1"}).end()
    with attribution(workflow_id="wf-1", step="summarise"):
        tracer.start_span(
            "cached", attributes={**CHAT, sc.GEN_AI_RESPONSE_ID: "r-2", sc.LLM_RESPONSE_FROM_CACHE: True}
        ).end()
    assert processor.force_flush(30_000)
    provider.shutdown()

    rows = stored_calls(db)
    cached, fresh = rows["cached"], rows["fresh"]
    assert cached["from_cache"] is True
    assert cached["cost_status"] == "free"
    assert cached["cost_usd"] == Decimal(0)
    assert cached["cost_reason"] == "response cache"
    assert cached["input_tokens"] == 1000
    assert cached["output_tokens"] == 500
    assert fresh["cost_status"] == "priced"
    assert fresh["cost_usd"] == Decimal("0.0075")  # gpt-4o list price, 1000 in / 500 out

    totals = CostStore(db).workflow_totals("wf-1")
    assert totals.step_count == 2
    assert totals.cached_steps == 1
    assert totals.unpriced_steps == 0
    assert totals.cost_usd == Decimal("0.0075")
