"""The ledger on disk: schema, rows, the file lease, the journal, the writers and the exporter.

Names load on first use (module ``__getattr__``), so importing one light submodule of this
package does not load duckdb or pyarrow through the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_llm_cost._lazy import lazy_exports

if TYPE_CHECKING:
    from otel_llm_cost.storage.exporter import DuckDBSpanExporter

_LOCATIONS = {
    "DuckDBSpanExporter": "otel_llm_cost.storage.exporter",
}

__all__ = ["DuckDBSpanExporter"]


__getattr__, __dir__ = lazy_exports(globals(), _LOCATIONS)
