"""The shortcuts of the span path give exactly what the long way gives.

Each shortcut (the plain span handed on after one name test, rates kept with 12 decimal places, the
start time converted only for a dated price, remembered user-id hashes, the metrics' idle test) is
checked against the result of the general path on real spans, real prices and real Decimals.
"""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
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
from otel_llm_cost.conventions.usage import Usage, normalize_usage
from otel_llm_cost.enrich.attribution import UserIdHasher, attribution
from otel_llm_cost.enrich.enrichment import compute_enrichment
from otel_llm_cost.enrich.metrics import CostMetrics
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.enrich.user_id import is_hashed_user_id
from otel_llm_cost.pricing import CostBreakdown, CostStatus, PriceBook
from otel_llm_cost.pricing.rates import Card, Rates, charge
from otel_llm_cost.pricing.results import new_priced

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


def _recorded_span_attributes() -> list[tuple[dict[str, Any], str]]:
    out = []
    for path in sorted((Path(__file__).parent / "fixtures" / "spans").glob("*.json")):
        for span in json.loads(path.read_text())["spans"]:
            attributes = {k: tuple(v) if isinstance(v, list) else v for k, v in span["attributes"].items()}
            out.append((attributes, span["scope"]["name"]))
    return out


RECORDED_SPANS = _recorded_span_attributes()


def test_normalised_usage_is_an_ordinary_frozen_usage() -> None:
    # Usage is built as a draft with the same slots and turned into a Usage by __class__ assignment.
    seen = 0
    for attributes, scope in RECORDED_SPANS:
        usage = normalize_usage(attributes, scope)
        if usage is None:
            continue
        seen += 1
        rebuilt = Usage(**{f.name: getattr(usage, f.name) for f in dataclasses.fields(Usage)})
        assert type(usage) is Usage
        assert usage == rebuilt
        assert hash(usage) == hash(rebuilt)
        assert repr(usage) == repr(rebuilt)
        with pytest.raises(dataclasses.FrozenInstanceError):
            usage.input_tokens = 1  # type: ignore[misc]
    assert seen >= 30


def test_a_priced_breakdown_is_an_ordinary_frozen_cost_breakdown() -> None:
    labels = CostBreakdown(
        status=CostStatus.UNPRICED, total_usd=None, source="s", model_id="m", provider_id="p", reason="r",
        deployment="d",
    )  # fmt: skip
    amounts = [Decimal(n).scaleb(-12) for n in range(1, 8)]
    priced = new_priced(*amounts, labels)
    expected = CostBreakdown(
        status=CostStatus.PRICED, total_usd=amounts[0], input_usd=amounts[1], cache_read_usd=amounts[2],
        cache_write_usd=amounts[3], output_usd=amounts[4], cache_saved_usd=amounts[5], source="s",
        model_id="m", provider_id="p", reason=None, deployment="d", request_usd=amounts[6],
    )  # fmt: skip
    assert type(priced) is CostBreakdown
    assert (priced, hash(priced), repr(priced)) == (expected, hash(expected), repr(expected))
    with pytest.raises(dataclasses.FrozenInstanceError):
        priced.total_usd = None  # type: ignore[misc]


class _GeneralPathBook:
    """The PriceBook's prices without its picodollar shortcut: what the enrichment writes for any
    other pricer (compute_cost_at_ns, then the CostBreakdown converted attribute by attribute)."""

    def __init__(self, book: PriceBook) -> None:
        self._book = book

    def compute_cost(self, usage: Usage, *, at: Any = None, reported_cost_usd: Any = None) -> CostBreakdown:
        return self._book.compute_cost(usage, at=at, reported_cost_usd=reported_cost_usd)

    def compute_cost_at_ns(self, usage: Usage, start_ns: int | None, reported: Any = None) -> CostBreakdown:
        return self._book.compute_cost_at_ns(usage, start_ns, reported)


BOOK = PriceBook()
MODELS = st.sampled_from(
    [
        *("gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-mini", "o3", "claude-sonnet-4-20250514", "gemini-2.5-pro"),
        *("claude-3-5-haiku-latest", "text-embedding-3-small", "sonar", "no-such-model"),
    ]
)
COUNTS = st.one_of(st.integers(0, 3_000_000), st.sampled_from([2**50 - 1, 2**50, 2**53, 10**15]))


@settings(max_examples=400, deadline=None)
@given(
    model=MODELS,
    system=st.sampled_from(["openai", "anthropic", "gcp.gemini", "perplexity", None]),
    input_tokens=COUNTS,
    output_tokens=COUNTS,
    cache_read=st.one_of(st.just(0), st.integers(0, 5000)),
    tier=st.sampled_from([None, "default", "flex", "priority"]),
    start_s=st.integers(1_650_000_000, 1_800_000_000),
)
def test_the_picodollar_shortcut_writes_what_the_general_path_writes(
    *, model: str, system: str | None, input_tokens: int, output_tokens: int, cache_read: int,
    tier: str | None, start_s: int,
) -> None:  # fmt: skip
    attributes: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
    }
    if system is not None:
        attributes[sc.GEN_AI_SYSTEM] = system
    if cache_read:
        attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = min(cache_read, input_tokens)
    if tier is not None:
        attributes[sc.GEN_AI_OPENAI_REQUEST_SERVICE_TIER] = tier
    start_ns = start_s * 10**9
    fast = compute_enrichment(
        attributes, scope_name=None, start_time_ns=start_ns, pricebook=BOOK, hasher=HASHER
    )
    slow = compute_enrichment(
        attributes, scope_name=None, start_time_ns=start_ns, pricebook=_GeneralPathBook(BOOK), hasher=HASHER
    )
    # Same names, same order, same values and types (0.0 is not 0, and a float must be the same float).
    assert fast is not None
    assert slow is not None
    assert [(name, type(value), value) for name, value in fast.items()] == [
        (name, type(value), value) for name, value in slow.items()
    ]


def test_the_common_call_takes_the_picodollar_shortcut() -> None:
    usage = Usage(input_tokens=1200, output_tokens=300, request_model="gpt-4o", provider="openai")
    quote = BOOK.plain_cost_pico(usage, None)
    assert quote is not None
    cost = BOOK.compute_cost_at_ns(usage, None)
    assert (Decimal(quote[0]).scaleb(-12), Decimal(quote[1]).scaleb(-12)) == (cost.input_usd, cost.output_usd)
    # Cache tokens, a dated price or a subclass: the general path.
    assert (
        BOOK.plain_cost_pico(Usage(input_tokens=1200, cache_read_tokens=1000, request_model="gpt-4o"), None)
        is None
    )
    assert _DoublingBook().plain_cost_pico(usage, None) is None
