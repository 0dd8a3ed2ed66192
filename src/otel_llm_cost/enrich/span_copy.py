"""The enriched span copy: the ReadableSpan the wrapped processors receive, carrying the cost attributes.

A processor cannot add attributes to a span at or after ``end()``: opentelemetry-sdk 1.40-1.45 marks
the span ended before ``_on_ending``/``on_end`` run (``set_attribute`` is then dropped) and, since
1.43, freezes the attribute map. Cost attributes therefore travel on a copy. This is the one module
that depends on ReadableSpan's layout (through ``otel_llm_cost._private_api``) and is tested against
the oldest and newest supported SDK (tests/test_sdk_compat.py, tests/test_enrich_copy.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue

from otel_llm_cost import _private_api

__all__ = ["enriched_copy", "span_attributes"]

_NO_ATTRIBUTES: Final[Mapping[str, AttributeValue]] = MappingProxyType({})


class _EnrichedSpan(ReadableSpan):
    """A ReadableSpan whose attributes are the original's plus the enrichment.

    The dropped counts are carried over explicitly: ReadableSpan derives them from its
    BoundedAttributes/BoundedList containers, which a copy built from public data does not have.
    """

    def __init__(self, original: ReadableSpan, attributes: dict[str, AttributeValue]) -> None:
        super().__init__(
            name=original.name,
            context=original.context,
            parent=original.parent,
            resource=original.resource,
            attributes=attributes,
            events=original.events,
            links=original.links,
            kind=original.kind,
            instrumentation_info=_private_api.deprecated_instrumentation_info(original),
            status=original.status,
            start_time=original.start_time,
            end_time=original.end_time,
            instrumentation_scope=original.instrumentation_scope,
        )
        self._dropped = (original.dropped_attributes, original.dropped_events, original.dropped_links)

    @property
    def dropped_attributes(self) -> int:
        return self._dropped[0]

    @property
    def dropped_events(self) -> int:
        return self._dropped[1]

    @property
    def dropped_links(self) -> int:
        return self._dropped[2]


def enriched_copy(span: ReadableSpan, extra: Mapping[str, AttributeValue]) -> ReadableSpan:
    """A copy of ``span`` with ``extra`` attributes added (overriding same-named ones).

    Everything else is kept: name, context, parent, resource, scope, events, links, status,
    kind, start/end times and the dropped attribute/event/link counts. Added attributes are not
    subject to the span's attribute-count limit (they are the point of the copy).

    Args:
        span: The ended span as the SDK handed it to ``on_end``.
        extra: Attributes to add, typically from :func:`compute_enrichment`.

    Returns:
        A new :class:`~opentelemetry.sdk.trace.ReadableSpan`.
    """
    return _enriched_copy_of(span, dict(span.attributes or {}), extra)


def _enriched_copy_of(
    span: ReadableSpan, attributes: dict[str, AttributeValue], extra: Mapping[str, AttributeValue]
) -> ReadableSpan:
    """:func:`enriched_copy` reusing ``attributes``, a private plain-dict copy of the span's (mutated)."""
    attributes.update(extra)
    state = _private_api.readable_span_fields(span)
    if state is not None:
        # What the SDK hands on_end: copy its fields wholesale (~0.7 us) instead of rebuilding it
        # through the constructor and the public properties (~3 us: events and links are copied
        # under a lock). tests/test_enrich_copy.py checks every field on the oldest and newest SDK.
        fields = state.copy()  # a dict's own copy: one block copy, no insertion per field
        fields["_attributes"] = attributes
        fields["_dropped"] = _private_api.dropped_counts(state)
        copy: _EnrichedSpan = object.__new__(_EnrichedSpan)
        copy.__dict__ = fields
        return copy
    return _EnrichedSpan(span, attributes)


def span_attributes(span: ReadableSpan) -> Mapping[str, AttributeValue]:
    """A span's attributes as a read-only mapping, without the SDK's per-lookup cost.

    ``ReadableSpan.attributes`` is a MappingProxyType over the SDK's BoundedAttributes, whose
    lookups run Python code (a miss raises and catches KeyError) and whose ``dict()`` copy costs
    ~1.5 us for ten attributes. Its inner dict no longer changes once the span has ended (``end()``
    freezes it since SDK 1.43, and ``set_attribute`` after ``end()`` is dropped before that), so it
    is read directly. Callers must not mutate the result; on a span still running (``on_start``)
    it may change under them, so use it there for point lookups only.

    Args:
        span: The span (ended, or for point lookups a running one).

    Returns:
        The attribute mapping (the span's own dict when the SDK layout allows, else ``span.attributes``).
    """
    own = _private_api.span_attribute_dict(span)
    if own is not None:
        return own
    return span.attributes or _NO_ATTRIBUTES
