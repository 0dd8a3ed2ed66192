"""The ledger on disk: schema, rows, the file lease, the journal, the writers and the exporter."""

from otel_llm_cost.storage.exporter import DuckDBSpanExporter

__all__ = ["DuckDBSpanExporter"]
