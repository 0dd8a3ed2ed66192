"""What storage needs from enrichment, as a Protocol: storage never imports ``enrich`` or ``pricing``.

The exporter receives a :class:`SpanEnricher` (its ``enricher=`` argument). OpenTelemetry
auto-configuration builds the exporter with no arguments (``OTEL_TRACES_EXPORTER=duckdb`` loads the
``opentelemetry_traces_exporter`` entry point ``otel_llm_cost.exporter:DuckDBSpanExporter``), so a
default is needed too: the front module ``otel_llm_cost.exporter`` registers the enrich layer's
factory here with :func:`set_default_enricher_factory` when it is imported. ``otel_llm_cost/__init__``
imports it, and any import of an ``otel_llm_cost`` submodule runs that first, so the default is always
registered before an exporter can be built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from opentelemetry.sdk.trace import ReadableSpan

from otel_llm_cost.exceptions import StorageError

__all__ = ["EnricherFactory", "SpanEnricher", "default_enricher", "set_default_enricher_factory"]


class SpanEnricher(Protocol):
    """Turns spans nothing enriched into LLM-call rows, and hashes user ids before they are stored."""

    def enrich(self, spans: Sequence[ReadableSpan]) -> Sequence[Mapping[str, Any] | None]:
        """Per span of ``spans`` (none carries ``llm.cost.status``): the attributes to add, or None.

        Called once per batch with the spans in batch order; None means "not an LLM call". Decides
        billability across the batch (the double-count guard), so never called twice for one span.
        """
        ...

    def hash_user_id(self, raw: str) -> str:
        """The stored form of a user id (a keyed hash): no raw user id is ever stored."""
        ...


EnricherFactory = Callable[..., SpanEnricher]
"""``factory(pricing=..., user_id_hasher=..., dedup_capacity=...)``: each ``None`` means the default."""

_default_factory: EnricherFactory | None = None


def set_default_enricher_factory(factory: EnricherFactory) -> None:
    """Register how an exporter built without ``enricher=`` gets one (done by ``otel_llm_cost.exporter``)."""
    global _default_factory  # noqa: PLW0603 - the one registration slot
    _default_factory = factory


def default_enricher(**options: Any) -> SpanEnricher:
    """A new enricher from the registered factory.

    Raises:
        StorageError: Nothing registered one (``otel_llm_cost.exporter`` was never imported).
        ValueError: An option the factory rejects.
    """
    if _default_factory is None:
        raise StorageError("no span enricher registered: import otel_llm_cost.exporter first")
    return _default_factory(**options)
