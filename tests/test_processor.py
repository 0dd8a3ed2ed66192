"""LLMCostSpanProcessor through a real TracerProvider: what wrapped processors and exporters receive.

LLM span attributes come from the recorded fixtures in tests/fixtures/spans (real SDKs and
instrumentations against a fake provider server). Must not need tests/conftest.py (this module
also runs under the oldest supported SDK, see tests/test_sdk_compat.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.conventions.usage import normalize_usage
from otel_llm_cost.enrich.attribution import UserIdHasher, attribution
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.pricing import PriceBook

FIXTURES = Path(__file__).parent / "fixtures" / "spans"
KEY = b"processor-test-key-0123456789"


def hashed(raw: str) -> str:
    return "h:" + hmac.new(KEY, raw.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Recorded:
    scope: str
    name: str
    span_id: str
    parent_span_id: str | None
    attributes: dict[str, Any]


def fixture_spans(name: str) -> list[Recorded]:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    return [
        Recorded(s["scope"]["name"], s["name"], s["span_id"], s["parent_span_id"], s["attributes"])
        for s in data["spans"]
    ]


class Recorder(SpanProcessor):
    """Keeps the exact objects a processor receives (identity matters here)."""

    def __init__(self) -> None:
        self.ending: list[Span] = []
        self.started: list[Span] = []
        self.ended: list[ReadableSpan] = []
        self.flush_timeouts: list[int] = []
        self.shut_down = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started.append(span)

    def _on_ending(self, span: Span) -> None:
        self.ending.append(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flush_timeouts.append(timeout_millis)
        return True

    def shutdown(self) -> None:
        self.shut_down = True


@dataclass
class Pipeline:
    provider: TracerProvider
    processor: LLMCostSpanProcessor
    exporter: InMemorySpanExporter
    wrapped: Recorder
    beside: Recorder
    """Registered on the provider next to ours: receives the original span objects."""

    def tracer(self, scope: str = "app") -> trace.Tracer:
        return self.provider.get_tracer(scope)

    def exported(self, name: str | None = None) -> list[ReadableSpan]:
        spans = self.exporter.get_finished_spans()
        return [s for s in spans if name is None or s.name == name]

    def only(self, name: str) -> Mapping[str, Any]:
        spans = self.exported(name)
        assert len(spans) == 1, [s.name for s in self.exported()]
        return spans[0].attributes or {}

    def replay(self, recorded: Recorded, *, start_time: int | None = None) -> None:
        self.tracer(recorded.scope).start_span(
            recorded.name, attributes=recorded.attributes, start_time=start_time
        ).end()


@pytest.fixture
def pipeline(pricebook: PriceBook) -> Iterator[Pipeline]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    wrapped = Recorder()
    processor = LLMCostSpanProcessor(
        SimpleSpanProcessor(exporter), wrapped, pricing=pricebook, user_id_hasher=UserIdHasher(key=KEY)
    )
    beside = Recorder()
    provider.add_span_processor(processor)
    provider.add_span_processor(beside)
    yield Pipeline(provider, processor, exporter, wrapped, beside)
    provider.shutdown()


# --- forwarding ---------------------------------------------------------------------------------


def test_non_llm_span_is_forwarded_as_the_same_object(pipeline: Pipeline) -> None:
    pipeline.tracer().start_span("GET /health", attributes={"http.request.method": "GET"}).end()
    assert len(pipeline.wrapped.ended) == 1
    assert pipeline.wrapped.ended[0] is pipeline.beside.ended[0]


def test_span_priced_by_an_untrusted_sender_is_priced_again_from_its_counts(pipeline: Pipeline) -> None:
    # What the collector receives from a service that runs its own LLMCostSpanProcessor (or claims to).
    (recorded,) = fixture_spans("otel-genai-openai-v2__openai_chat")
    upstream = {**recorded.attributes, sc.LLM_COST_STATUS: "priced", sc.LLM_COST_USD: 0.5}
    pipeline.tracer(recorded.scope).start_span("llm", attributes=upstream).end()
    pipeline.tracer(recorded.scope).start_span("raw", attributes=recorded.attributes).end()
    assert pipeline.only("llm")[sc.LLM_COST_USD] == pipeline.only("raw")[sc.LLM_COST_USD] != 0.5


def test_span_enriched_by_a_trusted_sender_is_forwarded_as_is(
    monkeypatch: pytest.MonkeyPatch, pricebook: PriceBook
) -> None:
    monkeypatch.setenv("OTEL_LLM_COST_TRUSTED_SENDERS", "other, billing")
    provider = TracerProvider(resource=Resource.create({"service.name": "billing"}))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(LLMCostSpanProcessor(SimpleSpanProcessor(exporter), pricing=pricebook))
    beside = Recorder()
    provider.add_span_processor(beside)
    (recorded,) = fixture_spans("otel-genai-openai-v2__openai_chat")
    upstream = {**recorded.attributes, sc.LLM_COST_STATUS: "priced", sc.LLM_COST_USD: 0.5}
    provider.get_tracer(recorded.scope).start_span("llm", attributes=upstream).end()
    provider.shutdown()
    [sent] = exporter.get_finished_spans()
    assert sent is beside.ended[0]
    assert (sent.attributes or {})[sc.LLM_COST_USD] == 0.5


def test_llm_span_reaches_every_wrapped_processor_enriched(pipeline: Pipeline, pricebook: PriceBook) -> None:
    (recorded,) = fixture_spans("otel-genai-openai-v2__openai_chat")
    start = 1_750_000_000_000_000_000
    pipeline.replay(recorded, start_time=start)

    (sent,) = pipeline.exported(recorded.name)
    # Every wrapped processor receives the same enriched copy.
    assert pipeline.wrapped.ended[0] is sent
    assert sent is not pipeline.beside.ended[0]
    attributes = sent.attributes or {}
    for key, value in recorded.attributes.items():
        expected = tuple(value) if isinstance(value, list) else value
        assert attributes[key] == expected
    usage = normalize_usage(recorded.attributes, recorded.scope)
    assert usage is not None
    cost = pricebook.compute_cost(usage, at=datetime.fromtimestamp(start / 1e9, tz=UTC))
    assert cost.total_usd is not None
    assert attributes[sc.LLM_TOKENS_INPUT] == usage.input_tokens
    assert attributes[sc.LLM_TOKENS_OUTPUT] == usage.output_tokens
    assert attributes[sc.LLM_TOKENS_TOTAL] == usage.input_tokens + usage.output_tokens
    assert attributes[sc.LLM_TOKENS_CACHE_READ] == usage.cache_read_tokens
    assert attributes[sc.LLM_TOKENS_REASONING] == usage.reasoning_tokens
    assert attributes[sc.LLM_COST_USD] == float(cost.total_usd)
    assert attributes[sc.GEN_AI_USAGE_COST] == float(cost.total_usd)
    assert attributes[sc.LLM_COST_STATUS] == "priced"
    assert attributes[sc.LLM_COST_SOURCE] == cost.source
    assert attributes[sc.LLM_COST_MODEL_ID] == cost.model_id
    assert attributes[sc.LLM_COST_BILLABLE] is True
    parts = (
        sc.LLM_COST_INPUT_USD,
        sc.LLM_COST_CACHE_READ_USD,
        sc.LLM_COST_CACHE_WRITE_USD,
        sc.LLM_COST_OUTPUT_USD,
    )
    assert sum(float(attributes.get(name, 0.0)) for name in parts) == pytest.approx(float(cost.total_usd))
    # The span recorded by the SDK itself is untouched.
    assert sc.LLM_COST_USD not in (pipeline.beside.ended[0].attributes or {})


def test_response_model_is_priced_before_request_model(pipeline: Pipeline) -> None:
    pipeline.tracer().start_span(
        "chat",
        attributes={
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
        },
    ).end()
    attributes = pipeline.only("chat")
    assert attributes[sc.LLM_MODEL] == "gpt-4o-mini-2024-07-18"
    assert "mini" in str(attributes[sc.LLM_COST_MODEL_ID])


def test_unknown_model_is_unpriced_with_a_reason_never_zero(pipeline: Pipeline) -> None:
    pipeline.tracer().start_span(
        "chat",
        attributes={
            sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_REQUEST_MODEL: "no-such-model-xyz",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 10,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
        },
    ).end()
    attributes = pipeline.only("chat")
    assert attributes[sc.LLM_COST_STATUS] == "unpriced"
    assert attributes[sc.LLM_COST_REASON]
    assert sc.LLM_COST_USD not in attributes
    assert sc.GEN_AI_USAGE_COST not in attributes
    assert attributes[sc.LLM_TOKENS_INPUT] == 10


def test_streaming_without_usage_is_unpriced_without_token_counts(pipeline: Pipeline) -> None:
    (recorded,) = fixture_spans("otel-genai-openai-v2__openai_chat_stream_no_usage")
    pipeline.replay(recorded)
    attributes = pipeline.only(recorded.name)
    assert attributes[sc.LLM_COST_STATUS] == "unpriced"
    assert sc.LLM_TOKENS_INPUT not in attributes
    assert sc.LLM_COST_USD not in attributes


def test_provider_reported_cost_is_used_as_reported(pipeline: Pipeline) -> None:
    pipeline.tracer().start_span(
        "chat",
        attributes={
            sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
            sc.GEN_AI_USAGE_COST: 0.0123,
            sc.GEN_AI_USAGE_COST_SOURCE: "provider",
        },
    ).end()
    attributes = pipeline.only("chat")
    assert attributes[sc.LLM_COST_STATUS] == "reported"
    assert attributes[sc.LLM_COST_USD] == pytest.approx(0.0123)
    assert sc.LLM_COST_EXTERNAL_USD not in attributes


def test_cost_computed_by_another_instrumentation_is_kept_apart_not_trusted(pipeline: Pipeline) -> None:
    (recorded,) = fixture_spans("openlit-openai__openai_chat")
    pipeline.replay(recorded)
    attributes = pipeline.only(recorded.name)
    assert attributes[sc.LLM_COST_EXTERNAL_USD] == float(recorded.attributes[sc.GEN_AI_USAGE_COST])
    assert attributes[sc.LLM_COST_STATUS] == "priced"
    # The mirror now carries our figure.
    assert attributes[sc.GEN_AI_USAGE_COST] == attributes[sc.LLM_COST_USD]

    pipeline.tracer("openinference.instrumentation.openai").start_span(
        "oi",
        attributes={
            sc.OPENINFERENCE_SPAN_KIND: "LLM",
            sc.LLM_MODEL_NAME: "gpt-4o",
            sc.LLM_PROVIDER: "openai",
            sc.LLM_TOKEN_COUNT_PROMPT: 100,
            sc.LLM_TOKEN_COUNT_COMPLETION: 10,
            sc.LLM_COST_TOTAL: 0.5,
        },
    ).end()
    assert pipeline.only("oi")[sc.LLM_COST_EXTERNAL_USD] == 0.5


def test_cache_impact_is_written(pipeline: Pipeline) -> None:
    (recorded,) = fixture_spans("anthropic-sdk__anthropic_messages")
    pipeline.replay(recorded)
    attributes = pipeline.only(recorded.name)
    assert attributes[sc.LLM_CACHE_HIT] is True
    assert attributes[sc.LLM_CACHE_TOKENS_SAVED] == attributes[sc.LLM_TOKENS_CACHE_READ] == 2000
    assert attributes[sc.LLM_TOKENS_CACHE_WRITE] == 700
    assert attributes[sc.LLM_TOKENS_CACHE_WRITE_1H] == 300
    assert attributes[sc.LLM_CACHE_COST_SAVED_USD] > 0


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_every_recorded_llm_span_is_recognised_and_enriched(pipeline: Pipeline, name: str) -> None:
    for recorded in fixture_spans(name):
        pipeline.replay(recorded)
    for sent, recorded in zip(pipeline.exported(), fixture_spans(name), strict=True):
        attributes = sent.attributes or {}
        expected_llm = normalize_usage(recorded.attributes, recorded.scope) is not None
        assert (sc.LLM_COST_STATUS in attributes) is expected_llm, recorded.name


# --- attribution ----------------------------------------------------------------------------------


def test_attribution_tags_every_span_and_hashes_the_user(pipeline: Pipeline) -> None:
    with attribution(feature="search", user_id="u-42", org_id="org-1", tenant_tier="gold"):
        pipeline.tracer().start_span("GET /").end()
    attributes = pipeline.only("GET /")
    assert attributes["cost.feature"] == "search"
    assert attributes["cost.org_id"] == "org-1"
    assert attributes["cost.tenant_tier"] == "gold"
    assert attributes["cost.user_id"] == hashed("u-42")
    assert "u-42" not in json.dumps(dict(attributes))


def test_tags_already_on_the_span_win_and_nesting_merges(pipeline: Pipeline) -> None:
    with attribution(feature="outer", agent="a"), attribution(feature="inner"):
        pipeline.tracer().start_span("inner").end()
        pipeline.tracer().start_span("own", attributes={"cost.feature": "explicit"}).end()
    assert pipeline.only("inner")["cost.feature"] == "inner"
    assert pipeline.only("inner")["cost.agent"] == "a"
    assert pipeline.only("own")["cost.feature"] == "explicit"


def test_no_attribution_means_no_cost_attributes(pipeline: Pipeline) -> None:
    pipeline.tracer().start_span("plain").end()
    assert not [k for k in pipeline.only("plain") if k.startswith("cost.")]


def test_attribution_follows_threads_with_copied_context_and_asyncio_tasks(pipeline: Pipeline) -> None:
    tracer = pipeline.tracer()

    def in_thread() -> None:
        tracer.start_span("thread").end()

    async def step(name: str) -> None:
        with attribution(step=name):
            await asyncio.sleep(0)
            tracer.start_span(f"task-{name}").end()

    async def main() -> None:
        await asyncio.gather(step("a"), step("b"))

    with attribution(workflow_id="wf-1"):
        worker = threading.Thread(target=contextvars.copy_context().run, args=(in_thread,))
        worker.start()
        worker.join()
        asyncio.run(main())
    assert pipeline.only("thread")["cost.workflow_id"] == "wf-1"
    assert pipeline.only("task-a")["cost.step"] == "a"
    assert pipeline.only("task-b")["cost.step"] == "b"
    assert pipeline.only("task-b")["cost.workflow_id"] == "wf-1"


def test_tags_cross_a_w3c_propagation_boundary(pipeline: Pipeline, pricebook: PriceBook) -> None:
    propagator = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    carrier: dict[str, str] = {}
    with attribution(feature="checkout", user_id="u-7"), pipeline.tracer().start_as_current_span("client"):
        propagator.inject(carrier)
    assert "u-7" not in carrier["baggage"]

    # Another service: its own provider and processor, a context rebuilt from the headers only.
    other_exporter = InMemorySpanExporter()
    other = TracerProvider()
    other.add_span_processor(
        LLMCostSpanProcessor(
            SimpleSpanProcessor(other_exporter),
            pricing=pricebook,
            user_id_hasher=UserIdHasher(key=b"other-k"),
        )
    )
    # As a server instrumentation does: extract from the headers alone and make it current.
    token = context.attach(propagator.extract(carrier, context=Context()))
    try:
        with other.get_tracer("server").start_as_current_span("server"):
            other.get_tracer("server").start_span("db").end()
    finally:
        context.detach(token)
    other.shutdown()
    assert len(other_exporter.get_finished_spans()) == 2
    for span in other_exporter.get_finished_spans():
        attributes = span.attributes or {}
        assert attributes["cost.feature"] == "checkout"
        # Hashed once, upstream, with the upstream key; not re-hashed downstream.
        assert attributes["cost.user_id"] == hashed("u-7")
    client = pipeline.exported("client")[0]
    server = other_exporter.get_finished_spans()[-1]
    assert server.context is not None
    assert client.context is not None
    assert server.context.trace_id == client.context.trace_id


def test_raw_user_id_in_upstream_baggage_is_hashed(pipeline: Pipeline) -> None:
    ctx = baggage.set_baggage("cost.user_id", "raw-id", Context())
    pipeline.tracer().start_span("s", context=ctx).end()
    assert pipeline.only("s")["cost.user_id"] == hashed("raw-id")


def test_openinference_and_traceloop_ids_are_mapped_onto_cost_tags(pipeline: Pipeline) -> None:
    (recorded,) = fixture_spans("openinference-openai__openai_chat")
    pipeline.tracer(recorded.scope).start_span(
        "oi", attributes={**recorded.attributes, sc.SESSION_ID: "sess-1", sc.USER_ID: "alice"}
    ).end()
    attributes = pipeline.only("oi")
    assert attributes["cost.session_id"] == "sess-1"
    assert attributes["cost.user_id"] == hashed("alice")

    (recorded,) = fixture_spans("traceloop-openai__openai_chat")
    with attribution(feature="from-context"):
        pipeline.tracer(recorded.scope).start_span(
            "tl",
            attributes={
                **recorded.attributes,
                "traceloop.association.properties.user_id": "bob",
                "traceloop.association.properties.feature": "ignored: context tag wins",
                "traceloop.association.properties.chat_id": "c-9",
            },
        ).end()
    attributes = pipeline.only("tl")
    assert attributes["cost.user_id"] == hashed("bob")
    assert attributes["cost.chat_id"] == "c-9"
    assert attributes["cost.feature"] == "from-context"


@pytest.mark.parametrize("key", ["userId", "user.id", "enduser.id"])
def test_traceloop_user_id_spellings_are_hashed_into_cost_user_id(pipeline: Pipeline, key: str) -> None:
    # Association properties are free-form: apps spell the user id in several ways, and each one
    # is personal data that must reach cost.* only as the hash.
    (recorded,) = fixture_spans("traceloop-openai__openai_chat")
    prefix = sc.TRACELOOP_ASSOCIATION_PREFIX
    pipeline.tracer(recorded.scope).start_span(
        "tl", attributes={**recorded.attributes, prefix + key: "dave", prefix + "chat_id": "c-1"}
    ).end()
    attributes = pipeline.only("tl")
    assert attributes["cost.user_id"] == hashed("dave")
    assert attributes["cost.chat_id"] == "c-1"
    added = {name: value for name, value in attributes.items() if not name.startswith(prefix)}
    assert "dave" not in added.values()
    assert [name for name in added if name.startswith("cost.") and "user" in name] == ["cost.user_id"]


def test_non_string_user_id_set_directly_on_an_llm_span_is_hashed(pipeline: Pipeline) -> None:
    (recorded,) = fixture_spans("otel-genai-openai-v2__openai_chat")
    span = pipeline.tracer(recorded.scope).start_span("llm", attributes=recorded.attributes)
    span.set_attribute("cost.user_id", 4242)
    span.end()
    attributes = pipeline.only("llm")
    assert attributes["cost.user_id"] == hashed("4242")
    assert 4242 not in attributes.values()


def test_raw_user_id_set_directly_on_an_llm_span_is_hashed_in_the_copy(pipeline: Pipeline) -> None:
    (recorded,) = fixture_spans("otel-genai-openai-v2__openai_chat")
    span = pipeline.tracer(recorded.scope).start_span("llm", attributes=recorded.attributes)
    span.set_attribute("cost.user_id", "carol")
    span.end()
    assert pipeline.only("llm")["cost.user_id"] == hashed("carol")


# --- double counting ----------------------------------------------------------------------------


def test_openinference_span_wrapping_the_anthropic_sdk_span_is_not_billed_twice(pipeline: Pipeline) -> None:
    sdk_span, oi_span = fixture_spans("openinference-anthropic__anthropic_messages")
    assert sdk_span.parent_span_id == oi_span.span_id
    outer = pipeline.tracer(oi_span.scope).start_span(oi_span.name, attributes=oi_span.attributes)
    inner_ctx = trace.set_span_in_context(outer)
    pipeline.tracer(sdk_span.scope).start_span(
        sdk_span.name, attributes=sdk_span.attributes, context=inner_ctx
    ).end()
    outer.end()
    inner, wrapper = pipeline.only(sdk_span.name), pipeline.only(oi_span.name)
    assert inner[sc.LLM_COST_BILLABLE] is True
    assert wrapper[sc.LLM_COST_BILLABLE] is False
    inner_span = pipeline.exported(sdk_span.name)[0]
    assert inner_span.context is not None
    assert wrapper[sc.LLM_COST_DUPLICATE_OF] == format_span_id(inner_span.context.span_id)


def test_llm_span_with_usage_wrapping_a_stream_without_usage_stays_billable_and_priced(
    pipeline: Pipeline,
) -> None:
    # OpenInference records the usage; the inner stream ran without include_usage. Were the wrapper
    # marked an ancestor, the only priced span of the call would be dropped from the totals.
    (outer_recorded,) = fixture_spans("openinference-openai__openai_chat")
    (inner_recorded,) = fixture_spans("otel-genai-openai-v2__openai_chat_stream_no_usage")
    outer = pipeline.tracer(outer_recorded.scope).start_span("outer", attributes=outer_recorded.attributes)
    pipeline.tracer(inner_recorded.scope).start_span(
        "inner", attributes=inner_recorded.attributes, context=trace.set_span_in_context(outer)
    ).end()
    outer.end()
    inner, wrapper = pipeline.only("inner"), pipeline.only("outer")
    assert inner[sc.LLM_COST_STATUS] == "unpriced"
    assert wrapper[sc.LLM_COST_STATUS] == "priced"
    assert wrapper[sc.LLM_COST_BILLABLE] is True
    assert wrapper[sc.LLM_COST_USD] > 0


def test_traceloop_and_sdk_sibling_spans_with_one_response_id_bill_once(pipeline: Pipeline) -> None:
    recorded = fixture_spans("traceloop-anthropic__anthropic_messages")
    for span in recorded:
        pipeline.replay(span)
    verdicts = [(s.attributes or {}).get(sc.LLM_COST_BILLABLE) for s in pipeline.exported()]
    assert verdicts == [True, False]
    first = pipeline.exported()[0]
    assert first.context is not None
    assert (pipeline.exported()[1].attributes or {})[sc.LLM_COST_DUPLICATE_OF] == format_span_id(
        first.context.span_id
    )


def test_the_same_raw_span_handed_over_twice_is_never_its_own_duplicate(pipeline: Pipeline) -> None:
    # A raw span re-sent to the collector (a retried OTLP batch) reaches on_end a second time with
    # the same ids and response id: it is the same call, billable both times, not a duplicate of itself.
    recorded = fixture_spans("traceloop-anthropic__anthropic_messages")[0]
    pipeline.replay(recorded)
    (span,) = pipeline.exported()
    raw = pipeline.beside.ended[0]
    assert sc.LLM_COST_STATUS not in (raw.attributes or {})
    pipeline.processor.on_end(raw)
    first, again = pipeline.exported()
    assert first.context == again.context == span.context
    for attributes in (first.attributes or {}, again.attributes or {}):
        assert attributes[sc.LLM_COST_BILLABLE] is True
        assert sc.LLM_COST_DUPLICATE_OF not in attributes


def test_agent_span_above_llm_spans_is_not_billable(pipeline: Pipeline) -> None:
    (recorded,) = fixture_spans("otel-genai-openai-v2__openai_chat")
    tracer = pipeline.tracer()
    with (
        tracer.start_as_current_span(
            "invoke_agent researcher",
            attributes={
                sc.GEN_AI_OPERATION_NAME: "invoke_agent",
                sc.GEN_AI_PROVIDER_NAME: "openai",
                sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
                sc.GEN_AI_USAGE_INPUT_TOKENS: 9999,
                sc.GEN_AI_USAGE_OUTPUT_TOKENS: 999,
            },
        ),
        tracer.start_as_current_span("tool step"),
    ):
        pipeline.tracer(recorded.scope).start_span("llm-1", attributes=recorded.attributes).end()
    assert pipeline.only("llm-1")[sc.LLM_COST_BILLABLE] is True
    assert pipeline.only("invoke_agent researcher")[sc.LLM_COST_BILLABLE] is False
    assert sc.LLM_COST_DUPLICATE_OF not in pipeline.only("invoke_agent researcher")


def test_concurrent_threads_bill_each_call_exactly_once(pipeline: Pipeline) -> None:
    (recorded,) = fixture_spans("otel-genai-openai-v2__openai_chat")
    tracer = pipeline.tracer(recorded.scope)
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for call in range(40):
            attributes = {**recorded.attributes, sc.GEN_AI_RESPONSE_ID: f"resp-{n}-{call}"}
            # Each call recorded twice, as an instrumentation plus the provider SDK would.
            tracer.start_span("a", attributes=attributes).end()
            tracer.start_span("b", attributes=attributes).end()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    billable: dict[str, int] = {}
    for span in pipeline.exported():
        attributes = span.attributes or {}
        response_id = str(attributes[sc.GEN_AI_RESPONSE_ID])
        billable[response_id] = billable.get(response_id, 0) + bool(attributes[sc.LLM_COST_BILLABLE])
    assert len(billable) == 8 * 40
    assert set(billable.values()) == {1}


# --- wiring ---------------------------------------------------------------------------------------


def test_exporters_are_wrapped_in_a_batch_processor_and_flushed(pricebook: PriceBook) -> None:
    exporter = InMemorySpanExporter()
    processor = LLMCostSpanProcessor(exporter, pricing=pricebook, user_id_hasher=UserIdHasher(key=KEY))
    (batch,) = processor.wrapped
    assert isinstance(batch, BatchSpanProcessor)
    assert batch.span_exporter is exporter
    provider = TracerProvider()
    provider.add_span_processor(processor)
    (recorded,) = fixture_spans("otel-genai-openai-v2__openai_chat")
    provider.get_tracer(recorded.scope).start_span("llm", attributes=recorded.attributes).end()
    assert processor.force_flush(10_000) is True
    (sent,) = exporter.get_finished_spans()
    assert sc.LLM_COST_USD in (sent.attributes or {})
    provider.shutdown()


def test_bad_price_file_in_the_environment_does_not_stop_the_processor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "prices.toml"
    bad.write_text("this is not TOML [")
    monkeypatch.setenv("OTEL_LLM_COST_PRICES", str(bad))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    with caplog.at_level(logging.ERROR, logger="otel_llm_cost"):
        processor = LLMCostSpanProcessor(SimpleSpanProcessor(exporter), user_id_hasher=UserIdHasher(key=KEY))
        provider.add_span_processor(processor)
        (recorded,) = fixture_spans("otel-genai-openai-v2__openai_chat")
        # Prices load on the first LLM span: that is when the bad file is reported.
        provider.get_tracer(recorded.scope).start_span("llm", attributes=recorded.attributes).end()
    assert "OTEL_LLM_COST_PRICES" in caplog.text
    provider.shutdown()
    (sent,) = exporter.get_finished_spans()
    assert (sent.attributes or {})[sc.LLM_COST_STATUS] == "priced"

    # An explicit argument is a configuration error and raises.
    with pytest.raises(ValueError, match=r"prices\.toml"):
        LLMCostSpanProcessor(pricing=PriceBook.from_file(bad))


def test_wrapping_something_else_is_refused(pricebook: PriceBook) -> None:
    with pytest.raises(TypeError, match="SpanProcessors or SpanExporters"):
        LLMCostSpanProcessor(object(), pricing=pricebook)  # type: ignore[arg-type]


def test_on_start_on_ending_force_flush_and_shutdown_are_delegated(pipeline: Pipeline) -> None:
    span = pipeline.tracer().start_span("s")
    span.end()
    assert pipeline.wrapped.started == [span]
    assert pipeline.wrapped.ending == [span]
    assert pipeline.processor.force_flush(5_000) is True
    assert 0 < pipeline.wrapped.flush_timeouts[0] <= 5_000
    pipeline.processor.shutdown()
    assert pipeline.wrapped.shut_down


def test_force_flush_reports_an_exhausted_deadline(pipeline: Pipeline) -> None:
    assert pipeline.processor.force_flush(0) is False
    assert pipeline.wrapped.flush_timeouts == []
