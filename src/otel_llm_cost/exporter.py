"""Documented import path and ``opentelemetry_traces_exporter`` entry point of the DuckDB exporter.

Importing it also wires the storage layer to the enrich layer: ``DuckDBSpanExporter()`` built with no
arguments (as OpenTelemetry auto-configuration does) prices and deduplicates raw LLM spans through the
enricher registered here. ``otel_llm_cost/__init__`` imports this module, so it is always registered.
"""

from otel_llm_cost.enrich.llm_call import make_span_enricher
from otel_llm_cost.storage.enricher import set_default_enricher_factory
from otel_llm_cost.storage.exporter import (
    CHECKPOINT_THRESHOLD,
    CommitInfo,
    CommitListener,
    DuckDBSpanExporter,
)

set_default_enricher_factory(make_span_enricher)

__all__ = ["CHECKPOINT_THRESHOLD", "CommitInfo", "CommitListener", "DuckDBSpanExporter"]
