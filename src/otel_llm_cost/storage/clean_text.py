"""A span whose text UTF-8 cannot encode, with that text made storable.

A Python string may hold a lone surrogate: a byte decoded with ``errors="surrogateescape"`` (file
names, some request headers), or half of an emoji cut by slicing a UTF-16 buffer. UTF-8 has no
encoding for it, so Arrow refuses the whole column holding it. The batch converter finds the span at
fault by halving its batch; :func:`cleaned_span` gives it the same span with each lone surrogate
replaced by U+FFFD (the Unicode replacement character), so the call is stored instead of dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Status

__all__ = ["clean_value", "cleaned_span"]


def _clean_text(text: str) -> str:
    # Through UTF-16: a lone surrogate becomes U+FFFD; a pair of them becomes the character it encodes.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def clean_value(value: Any) -> Any:
    """``value`` with every string in it (sequences and mappings included) UTF-8 encodable; ``value``
    itself when nothing in it needed a change."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return _clean_text(value)
        return value
    if isinstance(value, (tuple, list)):
        items = [clean_value(item) for item in value]
        changed = any(new is not old for new, old in zip(items, value, strict=True))
        return type(value)(items) if changed else value
    if isinstance(value, Mapping):
        pairs = [(clean_value(key), clean_value(item)) for key, item in value.items()]
        changed = any(
            new_key is not key or new is not item
            for (new_key, new), (key, item) in zip(pairs, value.items(), strict=True)
        )
        return dict(pairs) if changed else value
    return value


def cleaned_span(span: ReadableSpan) -> ReadableSpan | None:
    """``span`` with its lone surrogates replaced, or ``None`` when it has none (or cannot be read).

    The copy has what storage reads (names, ids, resource, scope, attributes, times, status, kind);
    events and links, which storage never reads, are left out.
    """
    try:
        name = clean_value(span.name)
        original = span.attributes or {}
        attributes = clean_value(original)
        resource = span.resource
        if resource is not None and (cleaned := clean_value(resource.attributes)) is not resource.attributes:
            resource = Resource(cleaned, resource.schema_url)
        scope = span.instrumentation_scope
        if scope is not None and (scope_name := clean_value(scope.name)) is not scope.name:
            scope = InstrumentationScope(scope_name, scope.version, scope.schema_url, scope.attributes)
        status = span.status
        if (description := clean_value(status.description)) is not status.description:
            status = Status(status.status_code, description)
        changed = (
            name is not span.name
            or attributes is not original
            or resource is not span.resource
            or scope is not span.instrumentation_scope
            or status is not span.status
        )
        if not changed:
            return None
        return ReadableSpan(
            name=name,
            context=span.context,
            parent=span.parent,
            resource=resource,
            attributes=attributes,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=scope,
        )
    except Exception:  # a span that cannot even be read: the caller drops it, as before
        return None
