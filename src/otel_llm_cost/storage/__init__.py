"""The ledger on disk: schema, rows, the file lease, the journal, the writers and the exporter.

Names load on first use (module ``__getattr__``), so importing one light submodule of this
package does not load duckdb or pyarrow through the others.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_llm_cost.storage.exporter import DuckDBSpanExporter

_LOCATIONS = {
    "DuckDBSpanExporter": "otel_llm_cost.storage.exporter",
}

__all__ = ["DuckDBSpanExporter"]


def __getattr__(name: str) -> Any:
    if name not in _LOCATIONS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_LOCATIONS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
