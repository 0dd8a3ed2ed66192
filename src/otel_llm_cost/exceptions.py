"""Every exception otel-llm-cost raises on purpose.

The pure core (usage normalisation, pricing, aggregation, budget evaluation) raises these; the
OpenTelemetry-facing edge (span processor hooks, export, alert delivery) catches them, logs once and
degrades instead of raising into the application.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "BudgetConfigError",
    "BudgetExceeded",
    "OtelLLMCostError",
    "PriceFileError",
    "QueryError",
    "SchemaVersionError",
    "StorageCorruptError",
    "StorageError",
    "StorageLockedError",
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
    """A budget definition or budget file is malformed; the message names the line and field.

    Attributes: ``field`` (the offending field, when known) and ``line`` (1-based line in the budgets
    file, when the error came from one).
    """

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.line = line


class BudgetExceeded(OtelLLMCostError):
    """Raised by opt-in enforcement when a hard budget limit is already spent.

    Attributes carry the numbers so callers can report them: ``budget`` (the budget's name), ``entity``
    (the scope value, e.g. an org id; ``"*"`` for a global budget), ``spent_usd`` and ``limit_usd``
    (``Decimal``), and ``window_end`` (``datetime`` when the window resets, ``None`` for lifetime budgets).
    """

    def __init__(
        self,
        budget: str,
        entity: str,
        spent_usd: Decimal,
        limit_usd: Decimal,
        *,
        window_end: datetime | None = None,
    ) -> None:
        super().__init__(
            f"budget {budget!r} exceeded for {entity}: ${spent_usd:.2f} spent of ${limit_usd:.2f}"
        )
        self.budget = budget
        self.entity = entity
        self.spent_usd = spent_usd
        self.limit_usd = limit_usd
        self.window_end = window_end

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only window_end would be lost by the default pickling of exceptions.
        return (
            _rebuild_budget_exceeded,
            (self.budget, self.entity, self.spent_usd, self.limit_usd, self.window_end),
        )


def _rebuild_budget_exceeded(
    budget: str, entity: str, spent_usd: Decimal, limit_usd: Decimal, window_end: datetime | None
) -> BudgetExceeded:
    return BudgetExceeded(budget, entity, spent_usd, limit_usd, window_end=window_end)


class QueryError(OtelLLMCostError, ValueError):
    """SQL given to ``CostStore.sql`` or ``otel-llm-cost query`` was rejected by DuckDB."""


class StorageCorruptError(StorageError):
    """The DuckDB file is damaged (truncated, overwritten, not a database): it can never be opened.

    An exporter writing to it sets it aside under a dated name and continues into a fresh file.
    """


class StorageLockedError(StorageError):
    """Another process (or a connection with another configuration) held the DuckDB file past the timeout.

    Worth retrying later, unlike the other :class:`StorageError` cases: the exporter spools the batch
    and switches to one quick attempt per batch until the file is free.
    """
