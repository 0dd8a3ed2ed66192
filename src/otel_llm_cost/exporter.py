"""Documented import path and ``opentelemetry_traces_exporter`` entry point of the DuckDB exporter.

Importing it also wires the storage layer to the enrich layer: ``DuckDBSpanExporter()`` built with no
arguments (as OpenTelemetry auto-configuration does) prices and deduplicates raw LLM spans through the
enricher registered here. ``otel_llm_cost/__init__`` imports this module, so it is always registered;
the enrich layer (and the price data) load when the first exporter needs an enricher, and duckdb when
the exporter class is first looked up.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from otel_llm_cost.storage.enricher import set_default_enricher_factory

if TYPE_CHECKING:
    from otel_llm_cost.storage.enricher import SpanEnricher
    from otel_llm_cost.storage.exporter import (
        CHECKPOINT_THRESHOLD,
        CommitInfo,
        CommitListener,
        DuckDBSpanExporter,
    )


def _make_span_enricher(**options: Any) -> SpanEnricher:
    from otel_llm_cost.enrich.llm_call import make_span_enricher  # noqa: PLC0415 - loaded on first use

    return make_span_enricher(**options)


set_default_enricher_factory(_make_span_enricher)

__all__ = ["CHECKPOINT_THRESHOLD", "CommitInfo", "CommitListener", "DuckDBSpanExporter"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'otel_llm_cost.exporter' has no attribute {name!r}")
    value = getattr(import_module("otel_llm_cost.storage.exporter"), name)
    globals()[name] = value
    return value
