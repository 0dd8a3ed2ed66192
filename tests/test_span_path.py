"""The shortcuts of the span path give exactly what the long way gives.

Each shortcut (the plain span handed on after one name test, rates kept with 12 decimal places, the
start time converted only for a dated price, remembered user-id hashes, the metrics' idle test) is
checked against the result of the general path on real spans, real prices and real Decimals.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm_cost._money import MONEY_CONTEXT, MONEY_QUANTUM
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.conventions.usage import Usage
from otel_llm_cost.enrich.attribution import UserIdHasher, attribution
from otel_llm_cost.enrich.metrics import CostMetrics
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.enrich.user_id import is_hashed_user_id
from otel_llm_cost.pricing import CostBreakdown, CostStatus, PriceBook
from otel_llm_cost.pricing.rates import Card, Rates, charge

HASHER = UserIdHasher(key=b"span-path-test-key-0123456789abc")
LABELS = CostBreakdown(status=CostStatus.PRICED, total_usd=None, source="test", model_id="m")


def _rates(input_rate: Decimal, output_rate: Decimal) -> Rates:
    return Rates(input_rate, input_rate / 10, input_rate, input_rate * 2, output_rate, Decimal(0))


def _quantized(amount: Decimal) -> Decimal:
    return MONEY_CONTEXT.quantize(amount, MONEY_QUANTUM)


# Per-token rates as price files give them (USD per 1M tokens / 1M), and some with more than 12 places.
RATES = st.sampled_from(
    [
        *(Decimal("0.0000025"), Decimal("0.00001"), Decimal("0.000000075"), Decimal("0.00000000375")),
        *(Decimal(0), Decimal("0.0000000000001"), Decimal("0.00000123456789012345"), Decimal("1.5E-7")),
    ]
)
TOKENS = st.one_of(st.integers(0, 2_000_000), st.sampled_from([2**50 - 1, 2**50, 2**62]))


@settings(max_examples=300, deadline=None)
@given(input_rate=RATES, output_rate=RATES, input_tokens=TOKENS, output_tokens=TOKENS)
def test_the_common_call_costs_the_quantized_products_to_the_last_digit_and_exponent(
    input_rate: Decimal, output_rate: Decimal, input_tokens: int, output_tokens: int
) -> None:
    card = Card(_rates(input_rate, output_rate))
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, request_model="m")
    cost = charge(usage, LABELS, card)
    input_usd = _quantized(MONEY_CONTEXT.multiply(input_rate, input_tokens))
    output_usd = _quantized(MONEY_CONTEXT.multiply(output_rate, output_tokens))
    total = _quantized(
        MONEY_CONTEXT.add(
            MONEY_CONTEXT.multiply(input_rate, input_tokens),
            MONEY_CONTEXT.multiply(output_rate, output_tokens),
        )
    )
    # repr compares the exponent too: Decimal("0.003") == Decimal("0.003000000000") but is not the same.
    assert (repr(cost.total_usd), repr(cost.input_usd), repr(cost.output_usd)) == (
        repr(total),
        repr(input_usd),
        repr(output_usd),
    )
    assert card.base_io_money_places is None or input_rate == _quantized(input_rate)


class _DoublingBook(PriceBook):
    """A subclass that prices its own way: the span path must still go through its compute_cost."""

    def compute_cost(
        self, usage: Any, *, at: datetime | None = None, reported_cost_usd: Decimal | None = None
    ) -> CostBreakdown:
        cost = super().compute_cost(usage, at=at, reported_cost_usd=reported_cost_usd)
        total = cost.total_usd
        return CostBreakdown(status=cost.status, total_usd=None if total is None else total * 2)


@pytest.mark.parametrize("model", ["gpt-4o", "o3", "claude-sonnet-4-20250514", "no-such-model"])
def test_pricing_at_a_start_in_nanoseconds_equals_pricing_at_its_datetime(model: str) -> None:
    book = PriceBook()
    rng = random.Random(7)  # noqa: S311 - reproducible test data, not secrets
    for _ in range(50):
        start_ns = rng.randrange(1_600_000_000, 1_800_000_000) * 10**9 + rng.randrange(10**9)
        usage = Usage(
            input_tokens=rng.randrange(10**6), output_tokens=rng.randrange(10**5), request_model=model
        )
        at = datetime.fromtimestamp(start_ns / 1e9, tz=UTC)
        assert repr(book.compute_cost_at_ns(usage, start_ns)) == repr(book.compute_cost(usage, at=at))
    usage = Usage(input_tokens=1000, output_tokens=10, request_model="gpt-4o")
    assert _DoublingBook().compute_cost_at_ns(usage, None).total_usd == Decimal("0.0052")


def _pipeline() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        LLMCostSpanProcessor(
            SimpleSpanProcessor(exporter), pricing=PriceBook(), user_id_hasher=HASHER, metrics=False
        )
    )
    return provider, exporter


def test_spans_of_an_attribution_block_go_on_as_they_are_unless_they_carry_a_raw_id() -> None:
    provider, exporter = _pipeline()
    tracer = provider.get_tracer("app")
    with attribution(feature="search", user_id="u-42", user_id_hasher=HASHER):
        plain = tracer.start_span("GET /items", attributes={"http.route": "/items"})
        plain.end()
        raw = tracer.start_span("GET /me", attributes={"enduser.id": "u-7"})
        raw.end()
        call = tracer.start_span("chat", attributes={sc.GEN_AI_REQUEST_MODEL: "gpt-4o"})
        call.set_attributes({sc.GEN_AI_USAGE_INPUT_TOKENS: 10, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 5})
        call.end()
    forwarded = {span.name: span for span in exporter.get_finished_spans()}
    hashed = HASHER.hash("u-42")
    # The SDK hands on_end a fresh ReadableSpan per call: "as it is" means no enriched copy.
    assert type(forwarded["GET /items"]).__name__ == "ReadableSpan"
    assert forwarded["GET /items"].attributes == {
        "http.route": "/items",
        sc.COST_FEATURE: "search",
        sc.COST_USER_ID: hashed,
    }
    assert type(forwarded["GET /me"]).__name__ == "_EnrichedSpan"
    assert forwarded["GET /me"].attributes["enduser.id"] == HASHER.hash("u-7")
    assert forwarded["chat"].attributes[sc.LLM_COST_STATUS] == "priced"
    assert forwarded["chat"].attributes[sc.COST_USER_ID] == hashed


def test_a_span_setting_a_tag_itself_keeps_its_own_value() -> None:
    provider, exporter = _pipeline()
    with attribution(feature="search", agent="planner"):
        provider.get_tracer("app").start_span("job", attributes={sc.COST_FEATURE: "batch"}).end()
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {sc.COST_FEATURE: "batch", sc.COST_AGENT: "planner"}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.text(max_size=40), st.from_regex(r"h:[0-9a-f]{32}", fullmatch=True)), max_size=60)
)
def test_the_remembered_hashes_answer_as_the_pattern_does(values: list[str]) -> None:
    for value in values * 2:  # the second pass answers from memory
        expected = (
            len(value) == 34 and value.startswith("h:") and all(c in "0123456789abcdef" for c in value[2:])
        )
        assert is_hashed_user_id(value) is expected


def test_metrics_stay_idle_until_a_global_meter_provider_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = metrics_internal._ProxyMeterProvider()
    reader = InMemoryMetricReader()
    real = MeterProvider(metric_readers=[reader])
    recorder = CostMetrics(real.get_meter("otel_llm_cost"), _idle_while=proxy)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    span = provider.get_tracer("app").start_span("chat")
    span.end()
    extra = {sc.LLM_MODEL: "gpt-4o", sc.LLM_COST_USD: 0.5, sc.LLM_TOKENS_INPUT: 10, sc.LLM_TOKENS_OUTPUT: 2}
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER", None)
    recorder.record(span, {}, extra)
    assert not recorder._series
    # The application sets its provider (set_meter_provider sets this module global).
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER", real)
    recorder.record(span, {}, extra)
    points = [
        point.value
        for metric in reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics
        if metric.name == sc.LLM_COST_METRIC
        for point in metric.data.data_points
    ]
    assert points == [0.5]
    real.shutdown()
