"""Documented import path and ``opentelemetry_traces_exporter`` entry point of the DuckDB exporter."""

from otel_llm_cost.storage.exporter import (
    CHECKPOINT_THRESHOLD,
    CommitInfo,
    CommitListener,
    DuckDBSpanExporter,
)

__all__ = ["CHECKPOINT_THRESHOLD", "CommitInfo", "CommitListener", "DuckDBSpanExporter"]
