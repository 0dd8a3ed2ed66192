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

from opentelemetry.sdk.trace import ReadableSpan

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


class _Named:
    """What storage reads of a span's scope or status, with its text cleaned."""

    __slots__ = ("description", "name", "status_code", "version")

    def __init__(self, source: Any, **texts: Any) -> None:
        self.name = getattr(source, "name", None)
        self.version = getattr(source, "version", None)
        self.status_code = getattr(source, "status_code", None)
        self.description = getattr(source, "description", None)
        for field, text in texts.items():
            setattr(self, field, text)


class _Resource:
    __slots__ = ("attributes", "schema_url")

    def __init__(self, attributes: Mapping[str, Any], schema_url: str) -> None:
        self.attributes = attributes
        self.schema_url = schema_url


class CleanedSpan:
    """The fields of a span that storage reads, every string in them UTF-8 encodable."""

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

    def __init__(self, span: ReadableSpan) -> None:
        self.name = clean_value(span.name)
        self.context = span.context
        self.parent = span.parent
        resource = span.resource
        self.resource = (
            _Resource(clean_value(resource.attributes), resource.schema_url) if resource is not None else None
        )
        scope = span.instrumentation_scope
        self.instrumentation_scope = (
            _Named(scope, name=clean_value(scope.name)) if scope is not None else None
        )
        self.attributes = clean_value(span.attributes or {})
        self.start_time = span.start_time
        self.end_time = span.end_time
        status = span.status
        self.status = _Named(status, description=clean_value(status.description))
        self.kind = span.kind


def cleaned_span(span: ReadableSpan) -> CleanedSpan | None:
    """``span`` with its lone surrogates replaced, or ``None`` when it has none (or cannot be read)."""
    try:
        cleaned = CleanedSpan(span)
        scope = span.instrumentation_scope
        resource = span.resource
        changed = (
            cleaned.name is not span.name
            or cleaned.attributes is not (span.attributes or cleaned.attributes)
            or (resource is not None and cleaned.resource.attributes is not resource.attributes)
            or (scope is not None and cleaned.instrumentation_scope.name is not scope.name)  # type: ignore[union-attr]
            or cleaned.status.description is not span.status.description
        )
    except Exception:  # a span that cannot even be read: the caller drops it, as before
        return None
    return cleaned if changed else None
