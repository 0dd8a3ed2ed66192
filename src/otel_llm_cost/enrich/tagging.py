"""AttributionSpanProcessor: only the attribution half of the processor, for the zero-code path.

Under ``opentelemetry-instrument`` with ``OTEL_TRACES_EXPORTER=duckdb`` the SDK's auto-configuration
builds the pipeline (``BatchSpanProcessor(DuckDBSpanExporter())``): the exporter prices and
deduplicates the raw spans itself, but nothing copied ``attribution()`` blocks or W3C baggage onto
the spans. This processor does that in ``on_start`` (where attributes can still be set), so the
exporter stores feature, user, org... with zero code.
"""

from __future__ import annotations

import logging

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_llm_cost._logging import log_once
from otel_llm_cost.enrich.attribution import UserIdHasher, default_user_id_hasher, span_tags
from otel_llm_cost.enrich.span_copy import span_attributes

__all__ = ["AttributionSpanProcessor"]

_logger = logging.getLogger("otel_llm_cost.processor")


class AttributionSpanProcessor(SpanProcessor):
    """Copies the context's attribution tags (``attribution()`` and ``cost.*`` baggage) onto each span.

    Args:
        user_id_hasher: Hashes user ids (default: the process default, from the environment).
    """

    def __init__(self, user_id_hasher: UserIdHasher | None = None) -> None:
        self._hasher = user_id_hasher if user_id_hasher is not None else default_user_id_hasher()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Add the missing ``cost.*`` tags to ``span`` (never raises)."""
        try:
            tags = span_tags(parent_context, self._hasher)
            if tags:
                present = span_attributes(span)
                missing = {name: value for name, value in tags if name not in present}
                if missing:
                    span.set_attributes(missing)
        except Exception as exc:
            log_once(_logger, "tagging.on_start", logging.ERROR, "attribution tagging failed: %r", exc)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing: the exporter prices the ended span."""

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered."""
        return True
