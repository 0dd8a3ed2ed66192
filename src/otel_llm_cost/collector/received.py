"""Decode OTLP spans once, straight into what enrichment and the Arrow rows read.

The receiver used to rebuild every span as a full SDK ``ReadableSpan`` (22% of its CPU), enrich it
into a second copy (33%) and turn that into Arrow rows (16%): three Python passes over every
attribute. When spans go to storage, the enricher (``LLMCallEnricher.enrich``) and the row builder
(``storage.rows.build_rows``) read only a span's name, ids, parent id, resource (``service.name``),
scope name, attributes, start and end time, status and kind, so a :class:`ReceivedSpan` carries just
those, and:

- a span that cannot be an LLM call (no LLM attribute key, no LLM scope: the same pre-test the
  enricher applies) gets no attribute values decoded at all: it becomes a :class:`ReceivedSpan` with
  ids only, which the double-count guard needs to pass "contains an LLM call" from a child to its
  parent, and which storage then skips;
- resources and scopes are decoded once per group of spans sharing them, as the SDK shares them.

When every span is stored (``OTEL_LLM_COST_STORE_ALL_SPANS``) every span is decoded in full. The
validation is :mod:`otel_llm_cost.collector.otlp`'s: the same rejections, the same decode errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, cast

from opentelemetry.proto.trace.v1.trace_pb2 import Span as PBSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status, StatusCode, TraceFlags

from otel_llm_cost.collector.otlp import (
    KIND,
    DecodedSpans,
    attributes_of,
    check_id,
    is_remote,
    rejection,
    status_of,
)
from otel_llm_cost.enrich.enrichment import is_llm_candidate

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["ReceivedSpan", "SpanIds", "decode_for_storage"]

_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_NO_ATTRIBUTES: Final[Mapping[str, Any]] = MappingProxyType({})
_UNSET: Final = Status(StatusCode.UNSET)


class SpanIds:
    """The part of a ``SpanContext`` enrichment and storage read: ids, and sampled trace flags."""

    __slots__ = ("is_remote", "span_id", "trace_id")

    trace_flags: Final = _SAMPLED
    """Always sampled: exporters send only recorded spans (and batch processors drop unsampled ones)."""

    def __init__(self, trace_id: int, span_id: int, is_remote: bool = False) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.is_remote = is_remote

    @property
    def is_valid(self) -> bool:
        return bool(self.trace_id and self.span_id)


class ReceivedSpan:
    """A received span with the fields enrichment and storage read (not a full SDK ``ReadableSpan``).

    Hand it only to the receiver's storage pipeline (``build_processor``): events, links, dropped
    counts and trace state are not decoded.
    """

    __slots__ = (
        "attributes",
        "context",
        "end_time",
        "instrumentation_scope",
        "kind",
        "name",
        "parent",
        "resource",
        "start_time",
        "status",
    )

    def __init__(  # noqa: PLR0917 - one per received span: positional binding is the cheapest
        self,
        name: str,
        context: SpanIds,
        parent: SpanIds | None,
        resource: Resource,
        instrumentation_scope: InstrumentationScope,
        attributes: Mapping[str, Any],
        start_time: int,
        end_time: int,
        status: Status,
        kind: SpanKind,
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.resource = resource
        self.instrumentation_scope = instrumentation_scope
        self.attributes = attributes
        self.start_time = start_time
        self.end_time = end_time
        self.status = status
        self.kind = kind


def decode_for_storage(request: ExportTraceServiceRequest, *, all_spans: bool) -> DecodedSpans:
    """Every span of ``request`` as a :class:`ReceivedSpan`, attribute values only where needed.

    Args:
        request: A parsed request (``otlp.parse_request``).
        all_spans: Decode every span in full (every span is stored); else only possible LLM calls.

    Returns:
        The spans (typed as ``ReadableSpan`` for the processor interface) and the rejections.

    Raises:
        OTLPDecodeError: An id has the wrong length.
    """
    result = DecodedSpans()
    spans: list[Any] = result.spans
    for r, resource_spans in enumerate(request.resource_spans):
        resource = Resource(attributes_of(resource_spans.resource.attributes), resource_spans.schema_url)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            pb_scope = scope_spans.scope
            scope_name = pb_scope.name
            # An LLM scope makes every span of it a candidate; else one of its names must say so.
            llm_scope = is_llm_candidate(_NO_ATTRIBUTES, scope_name)
            scope = InstrumentationScope(
                scope_name,
                pb_scope.version or None,
                scope_spans.schema_url or None,
                attributes_of(pb_scope.attributes) if pb_scope.attributes else None,
            )
            for i, pb in enumerate(scope_spans.spans):
                ids = _ids(pb, r, s, i)
                if isinstance(ids, str):
                    rejection(result, ids)
                    continue
                attributes = attributes_of(pb.attributes) if all_spans or llm_scope else _call_attributes(pb)
                status = pb.status
                spans.append(
                    ReceivedSpan(
                        pb.name,
                        ids[0],
                        ids[1],
                        resource,
                        scope,
                        attributes,
                        pb.start_time_unix_nano,
                        pb.end_time_unix_nano,
                        status_of(status.code, status.message) if status.code else _UNSET,
                        KIND.get(pb.kind, SpanKind.INTERNAL),
                    )
                )
    return result


def _call_attributes(pb: PBSpan) -> Mapping[str, Any]:
    """The span's attributes if one of their names says it may be an LLM call (the enricher's
    pre-test), else none: a span that is no call keeps its values undecoded, and storage skips it
    (the guard needs its ids only)."""
    # One list of the key-value messages for both passes: the protobuf builds a wrapper object on
    # every access to an element, and that is most of the cost of decoding an attribute.
    key_values = list(pb.attributes)
    # is_llm_candidate reads only the names of the mapping it is given: one call for all of them.
    if is_llm_candidate(cast("Mapping[str, object]", [kv.key for kv in key_values]), None):
        return attributes_of(key_values)
    return _NO_ATTRIBUTES


def _ids(pb: PBSpan, r: int, s: int, i: int) -> tuple[SpanIds, SpanIds | None] | str:
    """The span's context and parent, or why the span is rejected."""
    raw_trace, raw_span = pb.trace_id, pb.span_id
    if len(raw_trace) != 16 or len(raw_span) != 8 or not any(raw_trace) or not any(raw_span):
        where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
        reason = check_id(raw_trace, 16, where, "traceId") or check_id(raw_span, 8, where, "spanId")
        if reason is not None:
            return reason
    trace_id = int.from_bytes(raw_trace, "big")
    parent = None
    raw_parent = pb.parent_span_id
    if raw_parent:
        if len(raw_parent) != 8:
            check_id(raw_parent, 8, f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]", "parentSpanId")
        parent_id = int.from_bytes(raw_parent, "big")
        # Some senders write eight zero bytes instead of leaving the field empty for a root span.
        if parent_id:
            parent = SpanIds(trace_id, parent_id, is_remote(pb.flags))
    return SpanIds(trace_id, int.from_bytes(raw_span, "big")), parent
