"""Decoding OTLP trace requests (protobuf and OTLP/JSON) into SDK ReadableSpans, without a server."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from typing import Any

import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from otel_llm_cost.collector.otlp import OTLPDecodeError, WireFormat, decode_spans, parse_request
from otel_llm_cost.collector.received import decode_for_storage
from otel_llm_cost.collector.responses import encode_export_response, encode_status

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def to_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as the spec defines it: proto3 JSON, except span and link ids in hex."""
    document = json_format.MessageToDict(request)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for message in (span, *span.get("links", [])):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in message:
                            message[key] = base64.b64decode(message[key]).hex()
    return json.dumps(document).encode()


def decode(body: bytes, wire_format: WireFormat) -> list[ReadableSpan]:
    result = decode_spans(parse_request(body, wire_format))
    assert result.rejected == 0, result.error_message
    return result.spans


def sdk_spans() -> Sequence[ReadableSpan]:
    """Spans from a real TracerProvider covering every field the decoder must carry."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource({"service.name": "checkout", "deployment": "eu"}, "https://r")
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("acme.llm", "1.2.3", schema_url="https://s", attributes={"scope.attr": 7})
    remote_parent = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
    )
    context = set_span_in_context(NonRecordingSpan(remote_parent))
    attributes: dict[str, Any] = {
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1200,
        "ratio": 0.25,
        "stream": False,
        "tags": ("a", "b"),
        "counts": (1, 2, 3),
        "payload": b"\x00\xffraw",
        "nested": {"k": "v", "list": (1, "two", 3.0), "inner": {"deep": True}},
        "empty": None,
    }
    with tracer.start_as_current_span("POST /checkout", context=context, kind=SpanKind.SERVER) as root:
        root.add_event("retry", {"attempt": 2}, timestamp=1_700_000_000_000_000_123)
        link = Link(remote_parent, {"link.kind": "follows"})
        with tracer.start_as_current_span(
            "chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=attributes, links=[link]
        ) as child:
            child.set_status(Status(StatusCode.ERROR, "rate limited"))
        root.set_status(Status(StatusCode.OK))
    provider.shutdown()
    return exporter.get_finished_spans()


# --------------------------------------------------------------------------------------------
# Fidelity
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wire_format", list(WireFormat))
def test_decoded_spans_re_encode_to_the_same_request(wire_format: WireFormat) -> None:
    original = encode_spans(sdk_spans())
    body = original.SerializeToString() if wire_format is WireFormat.PROTOBUF else to_otlp_json(original)

    decoded = decode(body, wire_format)

    assert encode_spans(decoded) == original


def test_decoded_span_fields_match_the_sdk_span() -> None:
    originals = sdk_spans()
    decoded = decode(encode_spans(originals).SerializeToString(), WireFormat.PROTOBUF)

    by_name = {span.name: span for span in decoded}
    child, root = by_name["chat gpt-4o-mini"], by_name["POST /checkout"]
    original_child = next(span for span in originals if span.name == child.name)
    assert child.context.trace_id == original_child.context.trace_id
    assert child.context.span_id == original_child.context.span_id
    assert child.context.trace_flags.sampled
    assert dict(child.attributes or {}) == dict(original_child.attributes or {})
    assert child.attributes["nested"] == {"k": "v", "list": (1, "two", 3.0), "inner": {"deep": True}}
    assert child.attributes["payload"] == b"\x00\xffraw"
    assert child.attributes["empty"] is None
    assert child.kind is SpanKind.CLIENT
    assert child.status.status_code is StatusCode.ERROR
    assert child.status.description == "rate limited"
    assert child.parent is not None
    assert child.parent.span_id == root.context.span_id
    assert not child.parent.is_remote
    assert root.parent is not None
    assert root.parent.is_remote
    assert root.parent.span_id == 0xB7AD6B7169203331
    assert root.context.trace_state == TraceState([("vendor", "v1"), ("other", "x")])
    assert root.status.status_code is StatusCode.OK
    assert [(e.name, e.timestamp, dict(e.attributes or {})) for e in root.events] == [
        ("retry", 1_700_000_000_000_000_123, {"attempt": 2})
    ]
    (link,) = child.links
    assert link.context.span_id == 0xB7AD6B7169203331
    assert link.context.is_remote
    assert dict(link.attributes or {}) == {"link.kind": "follows"}
    assert child.start_time == original_child.start_time
    assert child.end_time == original_child.end_time
    assert child.resource.attributes["service.name"] == "checkout"
    assert child.resource.schema_url == "https://r"
    assert child.resource is root.resource, "spans of one ResourceSpans share one Resource"
    scope = child.instrumentation_scope
    assert scope is not None
    assert (scope.name, scope.version, scope.schema_url) == ("acme.llm", "1.2.3", "https://s")
    assert dict(scope.attributes) == {"scope.attr": 7}


# A realistic OTLP/JSON body as the OpenTelemetry JS SDK's JSON serializer sends it: hex ids, enums as
# integers, 64-bit timestamps as decimal strings, small ints as JSON numbers, lowerCamelCase names.
JS_SDK_BODY = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": "checkout-node"}},
                    {"key": "telemetry.sdk.language", "value": {"stringValue": "nodejs"}},
                    {"key": "telemetry.sdk.name", "value": {"stringValue": "opentelemetry"}},
                    {"key": "telemetry.sdk.version", "value": {"stringValue": "1.30.1"}},
                ],
                "droppedAttributesCount": 0,
            },
            "scopeSpans": [
                {
                    "scope": {"name": "@traceloop/instrumentation-openai", "version": "0.11.1"},
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "parentSpanId": "eee19b7ec3c1b173",
                            "traceState": "",
                            "name": "openai.chat",
                            "kind": 3,
                            "startTimeUnixNano": "1731400000000000000",
                            "endTimeUnixNano": "1731400001250000000",
                            "attributes": [
                                {"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                                {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": 1200}},
                                {"key": "gen_ai.usage.completion_tokens", "value": {"intValue": "300"}},
                                {"key": "llm.is_streaming", "value": {"boolValue": False}},
                                {"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.2}},
                                {"key": "cost.feature", "value": {"stringValue": "cart-summary"}},
                                {
                                    "key": "llm.request.functions",
                                    "value": {"arrayValue": {"values": [{"stringValue": "lookup"}]}},
                                },
                            ],
                            "droppedAttributesCount": 0,
                            "events": [
                                {
                                    "timeUnixNano": "1731400000500000000",
                                    "name": "gen_ai.content.prompt",
                                    "attributes": [],
                                    "droppedAttributesCount": 0,
                                }
                            ],
                            "droppedEventsCount": 0,
                            "status": {"code": 0},
                            "links": [],
                            "droppedLinksCount": 0,
                            "flags": 257,
                        }
                    ],
                }
            ],
        }
    ]
}


def test_json_as_the_js_sdk_sends_it() -> None:
    (span,) = decode(json.dumps(JS_SDK_BODY).encode(), WireFormat.JSON)

    assert span.context.trace_id == 0x5B8EFFF798038103D269B633813FC60C
    assert span.context.span_id == 0xEEE19B7EC3C1B174
    assert span.parent is not None
    assert span.parent.span_id == 0xEEE19B7EC3C1B173
    assert not span.parent.is_remote
    assert span.kind is SpanKind.CLIENT
    assert span.start_time == 1_731_400_000_000_000_000
    assert span.end_time == 1_731_400_001_250_000_000
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.prompt_tokens": 1200,
        "gen_ai.usage.completion_tokens": 300,
        "llm.is_streaming": False,
        "gen_ai.request.temperature": 0.2,
        "cost.feature": "cart-summary",
        "llm.request.functions": ("lookup",),
    }
    assert [(e.name, e.timestamp) for e in span.events] == [
        ("gen_ai.content.prompt", 1_731_400_000_500_000_000)
    ]
    assert span.resource.attributes["service.name"] == "checkout-node"
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "@traceloop/instrumentation-openai"


def test_json_ignores_unknown_fields_and_accepts_snake_case_ids() -> None:
    body = {
        "resourceSpans": [
            {
                "futureField": {"x": 1},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "trace_id": "0af7651916cd43dd8448eb211c80319c",
                                "span_id": "b7ad6b7169203331",
                                "name": "s",
                                "someNewField": True,
                            }
                        ]
                    }
                ],
            }
        ]
    }
    (span,) = decode(json.dumps(body).encode(), WireFormat.JSON)
    assert span.context.span_id == 0xB7AD6B7169203331
    assert span.parent is None


def test_json_remote_parent_flags_and_error_status() -> None:
    body = json.loads(json.dumps(JS_SDK_BODY))
    span = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span.update(flags=0x301, kind=2, status={"code": 2, "message": "upstream 429"})

    (decoded,) = decode(json.dumps(body).encode(), WireFormat.JSON)

    assert decoded.parent is not None
    assert decoded.parent.is_remote
    assert decoded.kind is SpanKind.SERVER
    assert decoded.status.status_code is StatusCode.ERROR
    assert decoded.status.description == "upstream 429"


def test_empty_requests_are_valid() -> None:
    assert decode(b"", WireFormat.PROTOBUF) == []
    assert decode(b"{}", WireFormat.JSON) == []
    assert decode(b'{"resourceSpans": []}', WireFormat.JSON) == []


# Attribute values of every OTLP AnyValue type, nested (the SDK represents arrays as tuples).
_scalars = (
    st.text(max_size=20)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.binary(max_size=20)
    | st.none()
)
_any_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(attributes=st.dictionaries(st.text(min_size=1, max_size=12), _any_values, max_size=6))
def test_every_anyvalue_round_trips_through_protobuf_and_json(attributes: dict[str, Any]) -> None:
    span = ReadableSpan(
        "s",
        context=SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)),
        attributes=attributes,
        resource=Resource({}),
        start_time=1,
        end_time=2,
    )
    request = encode_spans([span])

    for body, wire_format in (
        (request.SerializeToString(), WireFormat.PROTOBUF),
        (to_otlp_json(request), WireFormat.JSON),
    ):
        (decoded,) = decode(body, wire_format)
        assert dict(decoded.attributes or {}) == attributes
        assert not any(isinstance(v, float) and math.isnan(v) for v in (decoded.attributes or {}).values())


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def _json_with_span(**fields: Any) -> bytes:
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "s"}
    span.update(fields)
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "invalid JSON body"),
        (b"\xff\xfe\x00garbage", "invalid JSON body"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"resourceSpans": "nope"}', "invalid OTLP/JSON body"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": [3]}]}]}]}', "invalid OTLP/JSON body"),
        (_json_with_span(traceId="W47/95gDgQPSabYzgT/GDA=="), "must be a hex string"),
        (_json_with_span(spanId="xyz0000000000000"), "spans[0].spanId must be a hex string"),
        (_json_with_span(traceId="5b8efff798038103d269b633813fc6"), "traceId must be 16 bytes"),
        (_json_with_span(parentSpanId="abc"), "parentSpanId must be a hex string"),
        (_json_with_span(startTimeUnixNano="yesterday"), "invalid OTLP/JSON body"),
    ],
)
def test_malformed_json_raises_a_decode_error(body: bytes, message: str) -> None:
    with pytest.raises(OTLPDecodeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_spans(parse_request(body, WireFormat.JSON))


def test_garbage_and_truncated_protobuf_raise_a_decode_error() -> None:
    body = encode_spans(sdk_spans()).SerializeToString()
    for bad in (b"\x00\x01garbage", b"not a protobuf", body[: len(body) // 2], body[:-3]):
        with pytest.raises(OTLPDecodeError, match="invalid OTLP protobuf body"):
            parse_request(bad, WireFormat.PROTOBUF)


def test_protobuf_id_of_the_wrong_length_raises_a_decode_error() -> None:
    request = encode_spans(sdk_spans())
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01\x02\x03"
    with pytest.raises(OTLPDecodeError, match=r"spans\[1\]\.spanId must be 8 bytes, got 3"):
        decode_spans(parse_request(request.SerializeToString(), WireFormat.PROTOBUF))


def test_all_zero_ids_reject_only_that_span() -> None:
    request = encode_spans(sdk_spans())
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = bytes(16)

    result = decode_spans(parse_request(request.SerializeToString(), WireFormat.PROTOBUF))

    assert result.rejected == 1
    assert [span.name for span in result.spans] == [spans[1].name]
    assert "spans[0]: traceId is all zeros" in result.error_message


def test_spans_without_ids_are_rejected() -> None:
    body = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [{"name": "no ids"}, {"traceId": "01" * 16, "name": "no span id"}]}]}
        ]
    }
    result = decode_spans(parse_request(json.dumps(body).encode(), WireFormat.JSON))
    assert result.rejected == 2
    assert "spans[0]: traceId is missing" in result.error_message
    assert "spans[1]: spanId is missing" in result.error_message


def test_rejection_messages_are_bounded() -> None:
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "00" * 16, "spanId": "01" * 8}] * 50}]}]}
    result = decode_spans(parse_request(json.dumps(body).encode(), WireFormat.JSON))
    assert result.rejected == 50
    assert result.spans == []
    assert result.error_message.startswith("50 span(s) rejected")
    assert result.error_message.endswith("and 45 more")


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------


def test_success_response_bodies() -> None:
    assert encode_export_response(WireFormat.JSON) == b"{}"
    assert encode_export_response(WireFormat.PROTOBUF) == b""
    partial = json.loads(
        encode_export_response(WireFormat.JSON, rejected=2, error_message="2 span(s) rejected")
    )
    assert partial == {"partialSuccess": {"rejectedSpans": "2", "errorMessage": "2 span(s) rejected"}}
    response = ExportTraceServiceResponse.FromString(
        encode_export_response(WireFormat.PROTOBUF, rejected=3, error_message="why")
    )
    assert (response.partial_success.rejected_spans, response.partial_success.error_message) == (3, "why")


def test_error_bodies_are_google_rpc_status() -> None:
    status = status_pb2.Status.FromString(encode_status(WireFormat.PROTOBUF, 400, "bad"))
    assert (status.code, status.message) == (code_pb2.INVALID_ARGUMENT, "bad")
    assert json.loads(encode_status(WireFormat.JSON, 401, "token")) == {
        "code": code_pb2.UNAUTHENTICATED,
        "message": "token",
    }


# --------------------------------------------------------------------------------------------
# Decoding straight for storage
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("all_spans", [True, False])
def test_spans_decoded_for_storage_carry_what_storage_reads(all_spans: bool) -> None:
    request = encode_spans(sdk_spans())
    full = {span.name: span for span in decode_spans(request).spans}

    light = decode_for_storage(request, all_spans=all_spans)

    assert light.rejected == 0
    for span in light.spans:
        sdk = full[span.name]
        assert span.context is not None
        assert sdk.context is not None
        assert span.resource is not None
        assert (span.context.trace_id, span.context.span_id) == (sdk.context.trace_id, sdk.context.span_id)
        assert span.context.trace_flags.sampled
        assert (span.parent and span.parent.span_id) == (sdk.parent and sdk.parent.span_id)
        assert (span.start_time, span.end_time, span.kind, span.status.status_code) == (
            sdk.start_time,
            sdk.end_time,
            sdk.kind,
            sdk.status.status_code,
        )
        assert span.status.description == sdk.status.description
        assert span.resource.attributes == sdk.resource.attributes
        assert span.instrumentation_scope == sdk.instrumentation_scope
    by_name = {span.name: span for span in light.spans}
    # The LLM call is decoded in full; the HTTP span only when every span is stored.
    assert dict(by_name["chat gpt-4o-mini"].attributes or {}) == dict(
        full["chat gpt-4o-mini"].attributes or {}
    )
    expected_root = dict(full["POST /checkout"].attributes or {}) if all_spans else {}
    assert dict(by_name["POST /checkout"].attributes or {}) == expected_root


def test_decoding_for_storage_rejects_and_raises_as_the_full_decoder_does() -> None:
    request = encode_spans(sdk_spans())
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = bytes(16)

    light = decode_for_storage(request, all_spans=False)

    assert light.rejected == 1
    assert "spans[0]: traceId is all zeros" in light.error_message
    assert [span.name for span in light.spans] == [spans[1].name]
    spans[1].parent_span_id = b"\x01\x02"
    with pytest.raises(OTLPDecodeError, match=r"spans\[1\]\.parentSpanId must be 8 bytes, got 2"):
        decode_for_storage(request, all_spans=False)
