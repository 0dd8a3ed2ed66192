"""The processor's budget hook: per-call budgets on each billable LLM span, window budgets on commit."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id

from otel_llm_cost.budgets import Budget, BudgetAlert, BudgetGuard
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich import attribution as attribution_module
from otel_llm_cost.enrich.attribution import UserIdHasher
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.exceptions import BudgetExceeded
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

HASHER = UserIdHasher(key=b"budget-hook-key-0123456789")
CALL: dict[str, Any] = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
    sc.GEN_AI_RESPONSE_ID: "chatcmpl-1",
    sc.GEN_AI_USAGE_INPUT_TOKENS: 100_000,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 10_000,
}


def test_per_call_budget_fires_once_per_billable_call(pricebook: PriceBook) -> None:
    alerts: list[BudgetAlert] = []
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        LLMCostSpanProcessor(
            SimpleSpanProcessor(exporter),
            pricing=pricebook,
            budgets=[Budget.per_call("0.01")],
            alert_sinks=[alerts.append],
            user_id_hasher=HASHER,
        )
    )
    tracer = provider.get_tracer("app")
    tracer.start_span("first", attributes=CALL).end()
    # The same call recorded a second time (same response id): marked, and not alerted again.
    tracer.start_span("duplicate", attributes=CALL).end()
    cheap = {
        **CALL,
        sc.GEN_AI_RESPONSE_ID: "c2",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 1,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 1,
    }
    tracer.start_span("cheap", attributes=cheap).end()
    provider.shutdown()

    first = next(s for s in exporter.get_finished_spans() if s.name == "first")
    assert first.context is not None
    assert len(alerts) == 1
    assert alerts[0].budget == "per_call"
    assert alerts[0].span_id == format_span_id(first.context.span_id)
    assert alerts[0].spent_usd >= alerts[0].limit_usd


def test_force_flush_waits_for_per_call_alerts_to_reach_the_sinks(pricebook: PriceBook) -> None:
    # Per-call alerts are delivered by a background thread; a slow sink (a pager, a webhook) must
    # still have the alert once force_flush returns, as the OTel contract promises for spans.
    alerts: list[BudgetAlert] = []

    def slow_sink(alert: BudgetAlert) -> None:
        time.sleep(0.3)
        alerts.append(alert)

    processor = LLMCostSpanProcessor(
        SimpleSpanProcessor(InMemorySpanExporter()),
        pricing=pricebook,
        budgets=[Budget.per_call("0.01")],
        alert_sinks=[slow_sink],
        user_id_hasher=HASHER,
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.get_tracer("app").start_span("call", attributes=CALL).end()

    assert processor.force_flush(30_000) is True
    assert [a.budget for a in alerts] == ["per_call"]
    provider.shutdown()


def test_window_budgets_are_evaluated_after_each_duckdb_commit(pricebook: PriceBook, tmp_path: Path) -> None:
    alerts: list[BudgetAlert] = []
    path = tmp_path / "costs.duckdb"
    processor = LLMCostSpanProcessor(
        DuckDBSpanExporter(path),
        pricing=pricebook,
        budgets=[Budget.per_user_daily("0.01")],
        alert_sinks=[alerts.append],
        user_id_hasher=HASHER,
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with attribution_module.attribution(user_id="u-1"):
        provider.get_tracer("app").start_span("call", attributes=CALL).end()
    assert processor.force_flush(30_000)
    provider.shutdown()

    assert [a.budget for a in alerts if a.threshold == 1] == ["per_user_daily"]
    assert alerts[0].entity == HASHER.hash("u-1")
    with contextlib.closing(_storage.connect(path, read_only=True)) as connection:
        stored = connection.execute(f"SELECT count(*) FROM {_schema.ALERTS_TABLE}").fetchone()
    assert stored is not None
    assert stored[0] >= 1


def test_guard_hashes_users_with_the_processors_key(pricebook: PriceBook, tmp_path: Path) -> None:
    # The processor was given its own key; a guard built without one must look up the same hash,
    # or it reads $0 for every user and never refuses a call.
    path = tmp_path / "costs.duckdb"
    processor = LLMCostSpanProcessor(DuckDBSpanExporter(path), pricing=pricebook, user_id_hasher=HASHER)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with attribution_module.attribution(user_id="u-1"):
        provider.get_tracer("app").start_span("call", attributes=CALL).end()
    assert processor.force_flush(30_000)

    guard = BudgetGuard(path, [Budget.per_user_daily("0.01")])
    try:
        with pytest.raises(BudgetExceeded) as caught:
            guard.check(user="u-1")
        assert caught.value.entity == HASHER.hash("u-1")
        guard.check(user="u-2")
    finally:
        guard.close()
        provider.shutdown()


def test_per_call_and_window_budgets_read_the_provider_as_stored(
    pricebook: PriceBook, tmp_path: Path
) -> None:
    # A legacy span names its provider "Anthropic" in gen_ai.system; the stored provider column holds
    # the normalised llm.provider_name. The same `where` must select the call in both kinds of budget.
    legacy = {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_SYSTEM: "Anthropic",
        sc.GEN_AI_REQUEST_MODEL: "claude-3-5-sonnet-20241022",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 100_000,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 10_000,
    }
    alerts: list[BudgetAlert] = []
    only_anthropic = {"provider": "anthropic"}
    processor = LLMCostSpanProcessor(
        DuckDBSpanExporter(tmp_path / "costs.duckdb"),
        pricing=pricebook,
        budgets=[
            Budget.per_call("0.01", where=only_anthropic),
            Budget("anthropic-daily", "global", "day", "0.01", thresholds=[1], where=only_anthropic),
        ],
        alert_sinks=[alerts.append],
        user_id_hasher=HASHER,
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.get_tracer("app").start_span("call", attributes=legacy).end()
    assert processor.force_flush(30_000)
    provider.shutdown()

    assert sorted(a.budget for a in alerts if a.kind == "threshold") == ["anthropic-daily", "per_call"]
