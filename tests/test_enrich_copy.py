"""enriched_copy keeps every part of the span; also the SDK fact that forces the copy.

These tests run against the newest SDK in /work/venv and, through tests/test_sdk_compat.py, the
oldest one pyproject.toml allows (they must not need tests/conftest.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_llm_cost.enrich.span_copy import enriched_copy, span_attributes


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "copy-test", "deployment.environment": "test"}),
        span_limits=SpanLimits(max_span_attributes=4, max_events=1, max_links=1),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def make_rich_span(provider: TracerProvider, exporter: InMemorySpanExporter) -> ReadableSpan:
    """A child span using every ReadableSpan field, with attributes, events and links dropped."""
    tracer = provider.get_tracer("copy.scope", "1.2.3", schema_url="https://opentelemetry.io/schemas/1.26.0")
    other = trace.SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=trace.TraceFlags(1))
    with tracer.start_as_current_span("parent"):
        span = tracer.start_span(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            attributes={
                "dropped": "oldest",
                "gen_ai.request.model": "gpt-4o",
                "a": 1,
                "b": [1, 2],
                "c": True,
            },
            links=[Link(other, {"link.attr": "x"}), Link(other)],
            start_time=1_700_000_000_000_000_000,
        )
        span.add_event("dropped (oldest)")
        span.add_event("kept", {"e": 1}, timestamp=1_700_000_000_500_000_000)
        span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end(end_time=1_700_000_001_000_000_000)
    finished = [s for s in exporter.get_finished_spans() if s.name == "chat gpt-4o"]
    assert len(finished) == 1
    return finished[0]


def test_copy_keeps_every_field_and_adds_attributes(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    original = make_rich_span(provider, exporter)
    assert (original.dropped_attributes, original.dropped_events, original.dropped_links) == (1, 1, 1)

    copy = enriched_copy(original, {"llm.cost_usd": 0.25, "a": 99})

    assert isinstance(copy, ReadableSpan)
    assert copy is not original
    assert copy.name == original.name
    assert copy.context == original.context
    assert copy.get_span_context() == original.get_span_context()
    assert copy.parent == original.parent
    assert copy.parent is not None
    assert copy.resource is original.resource
    assert copy.instrumentation_scope == original.instrumentation_scope
    assert copy.instrumentation_scope is not None
    assert copy.instrumentation_scope.schema_url == "https://opentelemetry.io/schemas/1.26.0"
    assert copy._instrumentation_info is original._instrumentation_info  # type: ignore[attr-defined]
    assert copy.events == original.events
    assert [e.name for e in copy.events] == ["kept"]
    assert copy.links == original.links
    assert copy.status.status_code is StatusCode.ERROR
    assert copy.status.description == "boom"
    assert copy.kind is SpanKind.CLIENT
    assert (copy.start_time, copy.end_time) == (original.start_time, original.end_time)
    assert (copy.dropped_attributes, copy.dropped_events, copy.dropped_links) == (1, 1, 1)
    expected = {**dict(original.attributes or {}), "llm.cost_usd": 0.25, "a": 99}
    assert dict(copy.attributes or {}) == expected
    # The original is untouched: non-LLM consumers and the SDK still see what was recorded.
    assert (original.attributes or {})["a"] == 1
    assert "llm.cost_usd" not in (original.attributes or {})


def test_added_attributes_are_not_subject_to_the_attribute_limit(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    original = make_rich_span(provider, exporter)
    extra = {f"llm.tokens.k{i}": i for i in range(20)}
    copy = enriched_copy(original, extra)
    attributes = copy.attributes or {}
    assert all(attributes[key] == value for key, value in extra.items())
    assert copy.dropped_attributes == original.dropped_attributes


def test_copy_is_read_only(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    copy = enriched_copy(make_rich_span(provider, exporter), {"x": 1})
    with pytest.raises(TypeError):
        copy.attributes["x"] = 2  # type: ignore[index]


def test_copy_serialises_like_a_span(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    original = make_rich_span(provider, exporter)
    copy = enriched_copy(original, {"llm.cost_usd": 0.25})

    as_json = json.loads(copy.to_json())
    assert as_json["attributes"]["llm.cost_usd"] == 0.25
    assert as_json["events"] == json.loads(original.to_json())["events"]

    # What an OTLP exporter sends, dropped counts included.
    proto_copy = encode_spans([copy]).resource_spans[0].scope_spans[0].spans[0]
    proto_original = encode_spans([original]).resource_spans[0].scope_spans[0].spans[0]
    assert proto_copy.dropped_attributes_count == proto_original.dropped_attributes_count == 1
    assert proto_copy.dropped_events_count == proto_original.dropped_events_count == 1
    assert proto_copy.dropped_links_count == proto_original.dropped_links_count == 1
    assert proto_copy.trace_id == proto_original.trace_id
    assert proto_copy.parent_span_id == proto_original.parent_span_id
    assert proto_copy.status == proto_original.status
    assert {a.key for a in proto_copy.attributes} == {a.key for a in proto_original.attributes} | {
        "llm.cost_usd"
    }


class _SetsAttributeLate(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        span.set_attribute("set.on_start", True)

    def _on_ending(self, span: Span) -> None:
        span.set_attribute("set.on_ending", True)

    def on_end(self, span: ReadableSpan) -> None:
        if isinstance(span, Span):
            span.set_attribute("set.on_end", True)


def test_sdk_fact_attributes_cannot_be_added_at_or_after_end(exporter: InMemorySpanExporter) -> None:
    """Why enrichment travels on a copy: at on_end a span no longer takes attributes (set_attribute
    after end() is dropped, and since SDK 1.43 the map is frozen); fails if a future SDK changes this."""
    provider = TracerProvider()
    provider.add_span_processor(_SetsAttributeLate())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("s").end()
    attributes = exporter.get_finished_spans()[0].attributes or {}
    assert attributes.get("set.on_start") is True
    assert "set.on_ending" not in attributes
    assert "set.on_end" not in attributes
    provider.shutdown()


class _VendorSpan(ReadableSpan):
    """A ReadableSpan subclass (as a vendor SDK might hand on): copied through the constructor."""


def _public_view(span: ReadableSpan) -> dict[str, object]:
    return {
        "name": span.name,
        "context": span.context,
        "parent": span.parent,
        "resource": span.resource,
        "scope": span.instrumentation_scope,
        "events": span.events,
        "links": span.links,
        "status": (span.status.status_code, span.status.description),
        "kind": span.kind,
        "times": (span.start_time, span.end_time),
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "attributes": dict(span.attributes or {}),
    }


def test_fast_field_copy_and_constructor_copy_agree(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # The SDK's own ReadableSpan is copied field by field (speed); anything else is rebuilt
    # through the public constructor. Both must give the same span.
    original = make_rich_span(provider, exporter)
    assert type(original) is ReadableSpan
    vendor = _VendorSpan(
        name=original.name,
        context=original.context,
        parent=original.parent,
        resource=original.resource,
        attributes=original.attributes,
        events=original.events,
        links=original.links,
        kind=original.kind,
        status=original.status,
        start_time=original.start_time,
        end_time=original.end_time,
        instrumentation_scope=original.instrumentation_scope,
    )

    fast = enriched_copy(original, {"llm.cost_usd": 0.25})
    rebuilt = enriched_copy(vendor, {"llm.cost_usd": 0.25})

    fast_view, rebuilt_view = _public_view(fast), _public_view(rebuilt)
    # The vendor span was built from public data: the SDK's dropped counts are not in it.
    assert fast_view.pop("dropped") == (1, 1, 1)
    assert rebuilt_view.pop("dropped") == (0, 0, 0)
    assert fast_view == rebuilt_view
    assert fast_view["attributes"] == {**dict(original.attributes or {}), "llm.cost_usd": 0.25}


def test_span_attributes_is_the_span_mapping_read_without_copying(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    original = make_rich_span(provider, exporter)
    view = span_attributes(original)
    assert dict(view) == dict(original.attributes or {})
    assert span_attributes(original) is view  # no copy per call
    plain = ReadableSpan(name="s", attributes={"a": 1})
    assert dict(span_attributes(plain)) == {"a": 1}
    assert dict(span_attributes(ReadableSpan(name="empty"))) == {}
