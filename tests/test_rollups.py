"""Agent, workflow and session spans carry the totals of the billable calls below them."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from otel_llm_cost import record_llm_call
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.enrich.rollups import RollupTracker
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.query import CostStore
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

AGENT = {sc.GEN_AI_OPERATION_NAME: "invoke_agent", sc.GEN_AI_AGENT_NAME: "researcher"}


def chat(model: str, input_tokens: int, output_tokens: int, **extra: Any) -> dict[str, Any]:
    return {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        **extra,
    }


@pytest.fixture
def traced(pricebook: PriceBook) -> tuple[TracerProvider, InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(LLMCostSpanProcessor(SimpleSpanProcessor(exported), pricing=pricebook))
    return provider, exported


def by_name(exported: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exported.get_finished_spans()}


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def usd(value: Any) -> Decimal:
    return Decimal(repr(value))


def test_agent_totals_equal_the_sum_of_their_billable_calls(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exported = traced
    tracer = provider.get_tracer("app")
    with (
        tracer.start_as_current_span("session", attributes={sc.COST_SESSION_ID: "s-1"}),
        tracer.start_as_current_span("outer agent", attributes=AGENT),
    ):
        with tracer.start_as_current_span("tool"):
            tracer.start_span("call 1", attributes=chat("gpt-4o", 1000, 200)).end()
        with tracer.start_as_current_span(
            "inner agent",
            # The agent span claims totals of its own (its children's, repeated): never counted.
            attributes={**AGENT, sc.GEN_AI_USAGE_INPUT_TOKENS: 99_999, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 1},
        ):
            tracer.start_span("call 2", attributes=chat("gpt-4o-mini", 3000, 500)).end()
            record_llm_call(
                model="claude-sonnet-4-5", input_tokens=500, output_tokens=50, tracer_provider=provider
            )
        tracer.start_span("unknown model", attributes=chat("no-such-model-xyz", 10, 10)).end()
    spans = by_name(exported)
    calls = [attrs(spans[name]) for name in ("call 1", "call 2", "chat claude-sonnet-4-5")]
    inner, outer, session = attrs(spans["inner agent"]), attrs(spans["outer agent"]), attrs(spans["session"])

    inner_cost = sum((usd(c[sc.LLM_COST_USD]) for c in calls[1:]), Decimal(0))
    assert usd(inner[sc.AGENT_TOTAL_COST_USD]) == inner_cost
    assert inner[sc.AGENT_TOTAL_TOKENS] == 3500 + 550
    assert inner[sc.AGENT_LLM_CALLS] == 2
    assert inner[sc.AGENT_UNPRICED_CALLS] == 0
    assert inner[sc.LLM_COST_BILLABLE] is False  # its own claimed usage is an aggregate

    all_cost = sum((usd(c[sc.LLM_COST_USD]) for c in calls), Decimal(0))
    assert usd(outer[sc.AGENT_TOTAL_COST_USD]) == all_cost
    assert outer[sc.AGENT_TOTAL_TOKENS] == 1200 + 3500 + 550 + 20
    assert (outer[sc.AGENT_LLM_CALLS], outer[sc.AGENT_UNPRICED_CALLS]) == (4, 1)
    assert sc.LLM_COST_STATUS not in outer  # a plain agent span stays no call: never billable

    assert usd(session[sc.SESSION_TOTAL_COST_USD]) == all_cost
    assert (session[sc.SESSION_LLM_CALLS], session[sc.SESSION_AGENT_RUNS]) == (4, 2)
    assert session[sc.SESSION_TOTAL_TOKENS] == outer[sc.AGENT_TOTAL_TOKENS]
    assert sc.AGENT_TOTAL_TOKENS not in session
    assert not any(name.startswith(("agent.", "session.")) for name in attrs(spans["tool"]))


def test_rollups_match_what_the_duckdb_file_bills(pricebook: PriceBook, tmp_path: Path) -> None:
    # The OTLP side (an in-memory exporter here) and the DuckDB file wrapped by one processor: the
    # agent's totals are the sum of the billable rows of its trace.
    db = tmp_path / "calls.duckdb"
    otlp_side = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        LLMCostSpanProcessor(SimpleSpanProcessor(otlp_side), DuckDBSpanExporter(db), pricing=pricebook)
    )
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("agent", attributes={sc.OPENINFERENCE_SPAN_KIND: "AGENT"}):
        for n in range(1, 8):
            tracer.start_span(f"call {n}", attributes=chat("gpt-4o-mini", 1000 * n + 7, 31 * n)).end()
        record_llm_call(
            model="claude-sonnet-4-5",
            input_tokens=120,
            input_includes_cache=False,
            cache_write_tokens=2048,
            output_tokens=77,
            tracer_provider=provider,
        )
    provider.shutdown()
    agent = attrs(by_name(otlp_side)["agent"])
    with CostStore(db) as store:
        [billed] = store.sql(
            "SELECT sum(cost_usd) AS cost, sum(total_tokens) AS tokens, count(*) AS calls "
            "FROM llm_calls WHERE billable"
        )
    assert usd(agent[sc.AGENT_TOTAL_COST_USD]) == billed["cost"]
    assert (agent[sc.AGENT_TOTAL_TOKENS], agent[sc.AGENT_LLM_CALLS]) == (billed["tokens"], billed["calls"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5_000), st.integers(0, 900)), max_size=12))
def test_every_agent_total_is_the_sum_of_the_calls_below_it(
    traced: tuple[TracerProvider, InMemorySpanExporter], tree: list[tuple[int, int, int]]
) -> None:
    # Random trees: each entry opens a nested agent (depth grows) or adds a call at the current depth.
    provider, exported = traced
    exported.clear()
    tracer = provider.get_tracer("app")
    calls_below: list[list[str]] = []
    with contextlib.ExitStack() as stack:
        for index, (kind, input_tokens, output_tokens) in enumerate(tree):
            if kind % 3 == 0:
                stack.enter_context(tracer.start_as_current_span(f"agent {index}", attributes=AGENT))
                calls_below.append([])
            else:
                name = f"call {index}"
                tracer.start_span(name, attributes=chat("gpt-4o", input_tokens, output_tokens)).end()
                for below in calls_below:
                    below.append(name)
    spans = by_name(exported)
    agents = [name for name in spans if name.startswith("agent")]
    assert len(agents) == len(calls_below)
    for name, below in zip(sorted(agents, key=lambda n: int(n.split()[1])), calls_below, strict=True):
        agent = attrs(spans[name])
        expected = sum((usd(attrs(spans[c])[sc.LLM_COST_USD]) for c in below), Decimal(0))
        assert usd(agent[sc.AGENT_TOTAL_COST_USD]) == expected
        assert agent[sc.AGENT_TOTAL_TOKENS] == sum(attrs(spans[c])[sc.LLM_TOKENS_TOTAL] for c in below)
        assert agent[sc.AGENT_LLM_CALLS] == len(below)


def test_duplicate_records_of_one_call_count_once(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exported = traced
    tracer = provider.get_tracer("app")
    sdk = provider.get_tracer(sc.ANTHROPIC_SDK_SCOPE)
    call = chat("claude-sonnet-4-5", 1000, 100, **{sc.GEN_AI_PROVIDER_NAME: "anthropic"})
    with (
        tracer.start_as_current_span("agent", attributes=AGENT),
        tracer.start_as_current_span("instrumentation", attributes={**call, sc.GEN_AI_RESPONSE_ID: "r1"}),
    ):
        sdk.start_span("sdk", attributes={**call, sc.GEN_AI_RESPONSE_ID: "r1"}).end()
    spans = by_name(exported)
    billable = [s for s in spans.values() if attrs(s).get(sc.LLM_COST_BILLABLE) is True]
    assert len(billable) == 1
    agent = attrs(spans["agent"])
    assert agent[sc.AGENT_LLM_CALLS] == 1
    assert usd(agent[sc.AGENT_TOTAL_COST_USD]) == usd(attrs(billable[0])[sc.LLM_COST_USD])


def test_agent_with_only_unpriced_calls_has_no_cost_and_an_empty_agent_has_zero(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exported = traced
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("unpriced agent", attributes=AGENT):
        tracer.start_span("mystery", attributes=chat("no-such-model-xyz", 5, 5)).end()
    tracer.start_span("idle agent", attributes={sc.TRACELOOP_SPAN_KIND: "workflow"}).end()
    spans = by_name(exported)
    unpriced = attrs(spans["unpriced agent"])
    assert sc.AGENT_TOTAL_COST_USD not in unpriced  # unknown, never $0
    assert (unpriced[sc.AGENT_LLM_CALLS], unpriced[sc.AGENT_UNPRICED_CALLS]) == (1, 1)
    idle = attrs(spans["idle agent"])
    assert (idle[sc.AGENT_LLM_CALLS], idle[sc.AGENT_TOTAL_COST_USD], idle[sc.AGENT_TOTAL_TOKENS]) == (
        0,
        0.0,
        0,
    )


def test_finished_traces_are_evicted_and_orphans_are_bounded(pricebook: PriceBook) -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    processor = LLMCostSpanProcessor(SimpleSpanProcessor(exported), pricing=pricebook)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("agent", attributes=AGENT):
        tracer.start_span("call", attributes=chat("gpt-4o", 10, 10)).end()
    assert processor._rollups.tracked_traces == 0

    tracker = RollupTracker(capacity=3)
    for trace_id in range(1, 11):
        # A call whose (local) parent never ends here: its totals wait, at most `capacity` traces of them.
        parent = SpanContext(trace_id, 1, is_remote=False, trace_flags=TraceFlags(1))
        span = tracer.start_span(
            "orphan", context=set_span_in_context(NonRecordingSpan(parent)), attributes=chat("gpt-4o", 1, 1)
        )
        span.end()
        extra = {
            sc.LLM_COST_BILLABLE: True,
            sc.LLM_TOKENS_TOTAL: 2,
            sc.LLM_COST_STATUS: "priced",
            sc.LLM_COST_USD: 0.001,
        }
        assert tracker.span_ended(span, attrs(span), extra) is None
        assert tracker.tracked_traces <= 3
    assert tracker.tracked_traces == 3
    with pytest.raises(ValueError, match="positive"):
        RollupTracker(capacity=0)
