"""Nothing the processor meets on the telemetry path raises into the application.

Each failure is fed for real (random attributes through a real TracerProvider, a price book and a
wrapped processor that fail) and the test asserts it was logged once, counted, and that the span
still reached the exporters.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm_cost._logging import ERROR_COUNTS
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.conventions.usage import Usage
from otel_llm_cost.enrich import attribution as attribution_module
from otel_llm_cost.enrich.attribution import UserIdHasher
from otel_llm_cost.enrich.enrichment import compute_enrichment
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.pricing import CostBreakdown, PriceBook

HASHER = UserIdHasher(key=b"never-raises-key-0123456789")
LLM_ATTRIBUTES: dict[str, Any] = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
    sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
}

# Keys the recognisers and the enrichment read, so random values land where they can hurt.
KNOWN_KEYS = [
    *sorted(
        value
        for name, value in vars(sc).items()
        if name.isupper() and isinstance(value, str) and not value.endswith(".")
    ),
    "traceloop.association.properties.user_id",
    "traceloop.association.properties.x-y",
]

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["gpt-4o", "claude-sonnet-4-5", "", "NaN", "-5", "1e400", "openai", "provider"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))
ATTRIBUTE_MAPS = st.dictionaries(
    st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=20)), VALUES, max_size=12
)
SCOPES = st.sampled_from(
    [
        "app",
        sc.ANTHROPIC_SDK_SCOPE,
        sc.OPENLIT_ANTHROPIC_SCOPE,
        "openinference.instrumentation.openai",
        "opentelemetry.instrumentation.openai_v2",
    ]
)


def _valid_attribute(value: Any) -> bool:
    """What the SDK itself accepts (it drops the rest, with a warning, before we see it)."""
    if value is None:
        return False
    if isinstance(value, list):
        kinds = {type(v) for v in value if v is not None}
        return len(kinds) <= 1 and (not kinds or kinds <= {bool, int, float, str})
    return isinstance(value, bool | int | float | str)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attributes=ATTRIBUTE_MAPS, scope=SCOPES)
def test_random_attributes_never_raise_and_every_span_is_exported(
    pricebook: PriceBook, attributes: dict[str, Any], scope: str
) -> None:
    attributes = {k: v for k, v in attributes.items() if _valid_attribute(v) and abs(_magnitude(v)) < 2**63}
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        LLMCostSpanProcessor(SimpleSpanProcessor(exporter), pricing=pricebook, user_id_hasher=HASHER)
    )
    with attribution_module.attribution(feature="f"):
        provider.get_tracer(scope).start_span("s", attributes=attributes).end()
    (sent,) = exporter.get_finished_spans()
    sent_attributes = sent.attributes or {}
    # Invariants hold for what the processor wrote, not for what the application put there.
    written = {k: v for k, v in sent_attributes.items() if k not in attributes}
    if "cost.feature" not in attributes:
        assert written["cost.feature"] == "f"
    cost = written.get(sc.LLM_COST_USD)
    if cost is not None:
        assert isinstance(cost, float)
        assert math.isfinite(cost)
        assert cost >= 0
        assert written[sc.LLM_COST_STATUS] in {"priced", "reported", "free"}
    for key in (sc.LLM_TOKENS_INPUT, sc.LLM_TOKENS_OUTPUT, sc.LLM_TOKENS_TOTAL):
        tokens = written.get(key)
        assert tokens is None or (isinstance(tokens, int) and tokens >= 0)
    if sc.LLM_COST_STATUS in written:
        assert written[sc.LLM_COST_STATUS] in {"priced", "unpriced", "reported", "free", "invalid"}
        # Read from the span: the app may have set llm.cost.billable itself (the copy overrides it).
        assert isinstance(sent_attributes[sc.LLM_COST_BILLABLE], bool)
    provider.shutdown()


def _magnitude(value: Any) -> float:
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return max((_magnitude(v) for v in value), default=0.0)
    return 0.0


@given(attributes=ATTRIBUTE_MAPS, scope=st.one_of(st.none(), SCOPES), start=st.integers(-(2**70), 2**70))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_compute_enrichment_never_raises_on_any_mapping(
    pricebook: PriceBook, attributes: dict[str, Any], scope: str | None, start: int
) -> None:
    # The exporter calls it on spans decoded from anywhere: any values, any start time.
    extra = compute_enrichment(
        attributes, scope_name=scope, start_time_ns=start, pricebook=pricebook, hasher=HASHER
    )
    assert extra is None or isinstance(extra, dict)


class FailingPriceBook(PriceBook):
    """A dependency failure: the price book itself raises."""

    def compute_cost(
        self, usage: Usage, *, at: datetime | None = None, reported_cost_usd: Decimal | None = None
    ) -> CostBreakdown:
        raise RuntimeError("price data corrupted")


def test_pricing_failure_passes_the_span_partially_enriched_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        LLMCostSpanProcessor(SimpleSpanProcessor(exporter), pricing=FailingPriceBook(), user_id_hasher=HASHER)
    )
    with caplog.at_level(logging.ERROR, logger="otel_llm_cost"):
        for _ in range(3):
            provider.get_tracer("app").start_span("chat", attributes=LLM_ATTRIBUTES).end()
    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    for span in spans:
        attributes = span.attributes or {}
        assert attributes[sc.LLM_TOKENS_INPUT] == 1000
        assert attributes[sc.LLM_COST_STATUS] == "unpriced"
        assert attributes[sc.LLM_COST_REASON] == "pricing error: RuntimeError"
        assert sc.LLM_COST_USD not in attributes
    assert ERROR_COUNTS["enrich.compute_cost"] == 3
    assert [r.getMessage() for r in caplog.records].count(
        "pricing an LLM span failed: RuntimeError('price data corrupted') "
        "(further occurrences of 'enrich.compute_cost' are counted, not logged)"
    ) == 1
    provider.shutdown()


class RaisingProcessor(SpanProcessor):
    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        raise ValueError("on_start bug")

    def on_end(self, span: ReadableSpan) -> None:
        raise ValueError("on_end bug")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        raise ValueError("flush bug")

    def shutdown(self) -> None:
        raise ValueError("shutdown bug")


def test_a_failing_wrapped_processor_does_not_stop_the_others(
    pricebook: PriceBook, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    processor = LLMCostSpanProcessor(
        RaisingProcessor(), SimpleSpanProcessor(exporter), pricing=pricebook, user_id_hasher=HASHER
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with caplog.at_level(logging.ERROR, logger="otel_llm_cost"):
        provider.get_tracer("app").start_span("plain").end()
        provider.get_tracer("app").start_span("chat", attributes=LLM_ATTRIBUTES).end()
        assert processor.force_flush(1000) is False
        provider.shutdown()
    assert [s.name for s in exporter.get_finished_spans()] == ["plain", "chat"]
    assert ERROR_COUNTS["processor.wrapped.on_start"] == 2
    assert ERROR_COUNTS["processor.wrapped.on_end"] == 2
    assert ERROR_COUNTS["processor.wrapped.force_flush"] == 1
    assert ERROR_COUNTS["processor.wrapped.shutdown"] == 1
    assert sum("on_end bug" in r.getMessage() for r in caplog.records) == 1


class RaisingHasher(UserIdHasher):
    def hash(self, raw: str) -> str:
        raise RuntimeError("hasher bug")


def test_a_failure_while_tagging_on_start_is_swallowed(pricebook: PriceBook) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        LLMCostSpanProcessor(
            SimpleSpanProcessor(exporter), pricing=pricebook, user_id_hasher=RaisingHasher(key=b"k" * 16)
        )
    )
    # A raw user id from an upstream service must be hashed on start: the hasher fails.
    ctx = baggage.set_baggage("cost.user_id", "raw", Context())
    provider.get_tracer("app").start_span("s", context=ctx).end()
    (sent,) = exporter.get_finished_spans()
    assert "cost.user_id" not in (sent.attributes or {})
    assert ERROR_COUNTS["processor.on_start"] == 1
    provider.shutdown()
