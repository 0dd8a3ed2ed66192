"""Every exception otel-llm-cost raises on purpose.

The pure core (usage normalisation, pricing, aggregation, budget evaluation) raises these; the
OpenTelemetry-facing edge (span processor hooks, export, alert delivery) catches them, logs once and
degrades instead of raising into the application.
"""

from __future__ import annotations

__all__ = [
    "BudgetConfigError",
    "BudgetExceeded",
    "OtelLLMCostError",
    "PriceFileError",
    "QueryError",
    "SchemaVersionError",
    "StorageError",
    "UnknownDimensionError",
    "UnknownModelError",
]


class OtelLLMCostError(Exception):
    """Base class of every exception raised by otel-llm-cost."""


class PriceFileError(OtelLLMCostError, ValueError):
    """A user price file is malformed; the message names the file, the entry and the field."""


class UnknownModelError(OtelLLMCostError, LookupError):
    """No price is known for a model (the processor records it as `unpriced`, never as $0)."""


class SchemaVersionError(OtelLLMCostError):
    """A DuckDB file was written by a newer otel-llm-cost than this one and cannot be opened safely."""


class StorageError(OtelLLMCostError):
    """The DuckDB file cannot be opened or written (locked, read-only, full or corrupt)."""


class UnknownDimensionError(OtelLLMCostError, ValueError):
    """A report was asked to group by a dimension that does not exist."""


class BudgetConfigError(OtelLLMCostError, ValueError):
    """A budget definition or budget file is malformed; the message names the line and field."""


class BudgetExceeded(OtelLLMCostError):  # noqa: N818 - the name says what happened, as users expect
    """Raised by opt-in enforcement when a hard budget limit is already spent.

    Attributes carry the numbers so callers can report them: ``budget``, ``entity``, ``spent_usd``,
    ``limit_usd``.
    """


class QueryError(OtelLLMCostError, ValueError):
    """SQL given to ``CostStore.sql`` or ``otel-llm-cost query`` was rejected by DuckDB."""
