"""Decode OTLP trace export requests (protobuf and JSON) into SDK ``ReadableSpan`` objects.

The receiver feeds decoded spans to the same :class:`~opentelemetry.sdk.trace.SpanProcessor` chain an
in-process application uses, so every decoded span must look like one the SDK produced: a
:class:`~opentelemetry.sdk.resources.Resource` and an
:class:`~opentelemetry.sdk.util.instrumentation.InstrumentationScope` shared by the spans that share
them on the wire, a sampled :class:`~opentelemetry.trace.SpanContext`, a remote-aware parent, events,
links, status, kind, and attributes of every OTLP ``AnyValue`` type (arrays become tuples, key-value
lists become dicts, bytes stay bytes, an empty value becomes ``None``).

Two kinds of bad input are told apart, as the OTLP/HTTP specification asks:

- a request that cannot be decoded at all (corrupt or truncated protobuf, invalid JSON, an id that is
  not hex or has the wrong length) raises :class:`OTLPDecodeError`; the server answers 400;
- a well-formed span whose trace or span id is missing or all zeros (an invalid span context) is
  *rejected* on its own and counted, so the rest of the request is still accepted (``partial_success``).

Pure: no I/O, no global state.
"""

from __future__ import annotations

import base64
import enum
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

# protobuf ships no type information (types-protobuf is not a dependency).
from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PBSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.util.types import AnyValue as AttributeValue

from otel_llm_cost.exceptions import OtelLLMCostError

__all__ = [
    "KIND",
    "DecodedSpans",
    "OTLPDecodeError",
    "WireFormat",
    "attributes_of",
    "check_id",
    "decode_spans",
    "is_remote",
    "parse_request",
    "rejection",
    "status_of",
]


class OTLPDecodeError(OtelLLMCostError, ValueError):
    """The request body is not a decodable OTLP ``ExportTraceServiceRequest`` (the server answers 400)."""


class WireFormat(enum.Enum):
    """The two OTLP/HTTP encodings; responses use the encoding of the request (OTLP/HTTP spec)."""

    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"

    @property
    def content_type(self) -> str:
        return self.value


@dataclass(slots=True)
class DecodedSpans:
    """The spans of one request, and what was rejected from it."""

    spans: list[ReadableSpan] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    """The first few rejection reasons (bounded), for ``partial_success.error_message``."""

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        shown = "; ".join(self.errors)
        more = self.rejected - len(self.errors)
        suffix = f"; and {more} more" if more > 0 else ""
        return f"{self.rejected} span(s) rejected: {shown}{suffix}"


_MAX_ERRORS: Final = 5
_TRACE_ID_BYTES: Final = 16
_SPAN_ID_BYTES: Final = 8
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]*")

# OTLP SpanFlags (trace.proto): the low byte is the W3C trace flags; bit 8 says whether bit 9 is known;
# bit 9 says the parent (or linked) context was remote.
_TRACE_FLAGS_MASK: Final = 0xFF
_HAS_IS_REMOTE_MASK: Final = 0x100
_IS_REMOTE_MASK: Final = 0x200

KIND: Final[dict[int, SpanKind]] = {
    # SPAN_KIND_UNSPECIFIED: "implementations MAY assume SpanKind to be INTERNAL" (trace.proto).
    PBSpan.SPAN_KIND_UNSPECIFIED: SpanKind.INTERNAL,
    PBSpan.SPAN_KIND_INTERNAL: SpanKind.INTERNAL,
    PBSpan.SPAN_KIND_SERVER: SpanKind.SERVER,
    PBSpan.SPAN_KIND_CLIENT: SpanKind.CLIENT,
    PBSpan.SPAN_KIND_PRODUCER: SpanKind.PRODUCER,
    PBSpan.SPAN_KIND_CONSUMER: SpanKind.CONSUMER,
}
_UNSET: Final = Status(StatusCode.UNSET)
_OK: Final = Status(StatusCode.OK)

# Span and link ids are hex strings in OTLP/JSON, unlike the base64 that proto3 JSON uses for bytes
# (OTLP spec, "JSON Protobuf Encoding"). Both spellings of the field names are accepted, as
# json_format accepts both for every other field.
_SPAN_ID_FIELDS: Final = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
_LINK_ID_FIELDS: Final = ("traceId", "trace_id", "spanId", "span_id")


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def parse_request(body: bytes, wire_format: WireFormat) -> ExportTraceServiceRequest:
    """Parse an (already decompressed) request body.

    Args:
        body: The HTTP request body.
        wire_format: The encoding named by the request's Content-Type.

    Returns:
        The protobuf request message.

    Raises:
        OTLPDecodeError: The body is not a valid request in that encoding.
    """
    if wire_format is WireFormat.PROTOBUF:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise OTLPDecodeError(f"invalid OTLP protobuf body: {exc}") from None
        return request
    return _parse_json(body)


def _parse_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise OTLPDecodeError(f"invalid JSON body: {exc}") from None
    if not isinstance(document, dict):
        raise OTLPDecodeError("invalid OTLP/JSON body: expected a JSON object at the top level")
    _hex_ids_to_base64(document)
    request = ExportTraceServiceRequest()
    try:
        # Unknown fields MUST be ignored by OTLP/JSON receivers (OTLP spec, "JSON Protobuf Encoding").
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, TypeError, ValueError) as exc:
        raise OTLPDecodeError(f"invalid OTLP/JSON body: {exc}") from None
    return request


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite the hex ids of spans and links in place into the base64 that json_format expects."""
    for r, resource_spans in _dicts(_field(document, "resourceSpans", "resource_spans")):
        for s, scope_spans in _dicts(_field(resource_spans, "scopeSpans", "scope_spans")):
            for i, span in _dicts(_field(scope_spans, "spans")):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                _rewrite_ids(span, _SPAN_ID_FIELDS, where)
                for k, link in _dicts(_field(span, "links")):
                    _rewrite_ids(link, _LINK_ID_FIELDS, f"{where}.links[{k}]")


def _field(message: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in message:
            return message[name]
    return None


def _dicts(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    # Anything that is not a list of objects is left for json_format to reject with its own message.
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield index, item


def _rewrite_ids(message: dict[str, Any], names: Sequence[str], where: str) -> None:
    for name in names:
        value = message.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not _HEX_RE.fullmatch(value) or len(value) % 2:
            raise OTLPDecodeError(
                f"invalid OTLP/JSON body: {where}.{name} must be a hex string "
                f"(OTLP/JSON encodes trace and span ids as hex, not base64), got {value!r:.60}"
            )
        message[name] = base64.b64encode(bytes.fromhex(value)).decode("ascii")


# --------------------------------------------------------------------------------------------
# Conversion into SDK spans
# --------------------------------------------------------------------------------------------


def decode_spans(request: ExportTraceServiceRequest) -> DecodedSpans:
    """Convert every span of a request into a ``ReadableSpan``.

    Args:
        request: A parsed request (see :func:`parse_request`).

    Returns:
        The decoded spans, with the count and first reasons of spans rejected for a missing or
        all-zero trace or span id.

    Raises:
        OTLPDecodeError: An id has the wrong length: the body is malformed, not merely invalid.
    """
    result = DecodedSpans()
    for r, resource_spans in enumerate(request.resource_spans):
        resource = Resource(
            attributes_of(resource_spans.resource.attributes), schema_url=resource_spans.schema_url
        )
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            pb_scope = scope_spans.scope
            scope = InstrumentationScope(
                pb_scope.name,
                pb_scope.version or None,
                scope_spans.schema_url or None,
                attributes_of(pb_scope.attributes) if pb_scope.attributes else None,
            )
            for i, pb_span in enumerate(scope_spans.spans):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                span = _span(pb_span, resource, scope, where)
                if isinstance(span, str):
                    rejection(result, span)
                else:
                    result.spans.append(span)
    return result


def _span(pb: PBSpan, resource: Resource, scope: InstrumentationScope, where: str) -> ReadableSpan | str:
    """The decoded span, or the reason it is rejected."""
    reason = check_id(pb.trace_id, _TRACE_ID_BYTES, where, "traceId") or check_id(
        pb.span_id, _SPAN_ID_BYTES, where, "spanId"
    )
    if reason is not None:
        return reason
    trace_id = int.from_bytes(pb.trace_id, "big")
    span_id = int.from_bytes(pb.span_id, "big")
    trace_state = _trace_state(pb.trace_state)
    parent: SpanContext | None = None
    if pb.parent_span_id:
        parent_id = _id(pb.parent_span_id, _SPAN_ID_BYTES, where, "parentSpanId")
        # Some senders write eight zero bytes instead of leaving the field empty for a root span.
        if parent_id:
            parent = SpanContext(
                trace_id,
                parent_id,
                is_remote=is_remote(pb.flags),
                trace_flags=_SAMPLED,
                trace_state=trace_state,
            )
    return ReadableSpan(
        name=pb.name,
        # Exporters only send recorded spans, and the Python encoder leaves the trace-flags byte empty;
        # the span is marked sampled because BatchSpanProcessor.on_end silently drops unsampled spans.
        context=SpanContext(
            trace_id, span_id, is_remote=False, trace_flags=_flags(pb.flags), trace_state=trace_state
        ),
        parent=parent,
        resource=resource,
        attributes=attributes_of(pb.attributes),
        events=tuple(
            Event(event.name, attributes_of(event.attributes), event.time_unix_nano) for event in pb.events
        ),
        links=tuple(_link(link, f"{where}.links[{k}]") for k, link in enumerate(pb.links)),
        kind=KIND.get(pb.kind, SpanKind.INTERNAL),
        status=status_of(pb.status.code, pb.status.message),
        start_time=pb.start_time_unix_nano,
        end_time=pb.end_time_unix_nano,
        instrumentation_scope=scope,
    )


_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)


def rejection(result: DecodedSpans, reason: str) -> None:
    """Count one rejected span in ``result``, keeping the first few reasons."""
    result.rejected += 1
    if len(result.errors) < _MAX_ERRORS:
        result.errors.append(reason)


def check_id(raw: bytes, size: int, where: str, name: str) -> str | None:
    """Why ``raw`` makes an invalid span context (missing, all zeros), or None when it is valid.

    A missing or all-zero id makes an invalid span context: that span is rejected. An id of another
    length means the body itself is malformed.

    Raises:
        OTLPDecodeError: The id has the wrong length.
    """
    if not raw:
        return f"{where}: {name} is missing"
    if len(raw) != size:
        raise OTLPDecodeError(f"invalid OTLP body: {where}.{name} must be {size} bytes, got {len(raw)}")
    if not any(raw):
        kind = "trace" if size == _TRACE_ID_BYTES else "span"
        return f"{where}: {name} is all zeros (an invalid {kind} id)"
    return None


def _flags(flags: int) -> TraceFlags:
    return TraceFlags((flags & _TRACE_FLAGS_MASK) | TraceFlags.SAMPLED)


def is_remote(flags: int) -> bool:
    """Whether OTLP span flags say the parent (or linked) context was remote."""
    return bool(flags & _HAS_IS_REMOTE_MASK and flags & _IS_REMOTE_MASK)


def _id(raw: bytes, size: int, where: str, name: str) -> int:
    if len(raw) != size:
        raise OTLPDecodeError(f"invalid OTLP body: {where}.{name} must be {size} bytes, got {len(raw)}")
    return int.from_bytes(raw, "big")


def _trace_state(raw: str) -> TraceState:
    if not raw:
        return TraceState()
    return TraceState.from_header([raw])


def _link(pb: PBSpan.Link, where: str) -> Link:
    context = SpanContext(
        _id(pb.trace_id, _TRACE_ID_BYTES, where, "traceId"),
        _id(pb.span_id, _SPAN_ID_BYTES, where, "spanId"),
        is_remote=is_remote(pb.flags),
        trace_flags=TraceFlags(pb.flags & _TRACE_FLAGS_MASK),
        trace_state=_trace_state(pb.trace_state),
    )
    return Link(context, attributes_of(pb.attributes) if pb.attributes else None)


def status_of(code: int, message: str) -> Status:
    """The SDK status for an OTLP status code and message."""
    if code == StatusCode.ERROR.value:
        return Status(StatusCode.ERROR, message or None)
    if code == StatusCode.OK.value:
        return _OK
    # UNSET, and codes from a newer proto version this SDK has no name for.
    return _UNSET


def attributes_of(key_values: Sequence[KeyValue]) -> dict[str, AttributeValue]:
    """OTLP key-values as an attribute dict (later duplicates win, as in the SDK's own map)."""
    out: dict[str, AttributeValue] = {}
    scalar = _SCALAR_KINDS
    for kv in key_values:
        value = kv.value
        kind = value.WhichOneof("value")
        # Scalars read in one getattr: every attribute of every received span passes here.
        out[kv.key] = getattr(value, kind) if kind in scalar else _value(value)
    return out


_SCALAR_KINDS: Final = frozenset({"string_value", "int_value", "double_value", "bool_value", "bytes_value"})


def _value(value: AnyValue) -> AttributeValue:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value
    # An empty AnyValue is the OTLP encoding of a null / empty value.
    return None
