"""Every use of another library's private API, in one place, so an upgrade has one module to check.

# --- opentelemetry-sdk (ReadableSpan internals) -------------------------------------------------
Private uses, each checked on the oldest and newest supported SDK by tests/test_sdk_compat.py and
tests/test_enrich_copy.py:

- ``ReadableSpan._attributes`` (a dict, or a ``BoundedAttributes`` whose ``._dict`` holds the
  values): read directly on the span path; the public ``attributes`` property runs Python code on
  every lookup (a miss raises and catches KeyError) and its ``dict()`` copy costs ~1.5 us.
- ``ReadableSpan.__dict__``: the fields of a span the SDK built, copied wholesale into the enriched
  copy (~0.7 us against ~3 us through the constructor and public properties).
- ``ReadableSpan._instrumentation_info``: deprecated since SDK 1.11 but still part of the span; read
  privately to avoid the DeprecationWarning of the public property.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["deprecated_instrumentation_info", "readable_span_fields", "span_attribute_dict"]


def span_attribute_dict(span: ReadableSpan) -> dict[str, Any] | None:
    """The span's own attribute dict (do not mutate), or None when the SDK layout is not the known one.

    Safe to read once the span has ended: ``end()`` freezes the map since SDK 1.43, and
    ``set_attribute`` after ``end()`` is dropped before that.
    """
    raw = getattr(span, "_attributes", None)
    if type(raw) is dict:
        return raw
    inner = getattr(raw, "_dict", None)
    if isinstance(inner, dict):  # an OrderedDict once SDK 1.40-1.42 reaches the attribute limit
        return inner
    return None


def readable_span_fields(span: ReadableSpan) -> dict[str, Any] | None:
    """The instance fields of a plain SDK ``ReadableSpan`` (None for a subclass or another layout)."""
    state: dict[str, Any] | None = getattr(span, "__dict__", None)
    if type(span) is ReadableSpan and state is not None and "_attributes" in state:
        return state
    return None


def deprecated_instrumentation_info(span: ReadableSpan) -> Any:
    """``span.instrumentation_info`` without its DeprecationWarning."""
    return getattr(span, "_instrumentation_info", None)
