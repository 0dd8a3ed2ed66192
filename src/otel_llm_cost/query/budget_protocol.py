"""What :class:`~otel_llm_cost.query.store.CostStore` needs from a budget: :class:`EvaluableBudget`.

Budgets sit above the query layer: the store does not import them, it calls the methods of the
budgets it is given (``otel_llm_cost.budgets.Budget`` implements this Protocol).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeVar

import duckdb

__all__ = ["BudgetStatusT", "EvaluableBudget"]

_Status_co = TypeVar("_Status_co", covariant=True)

BudgetStatusT = TypeVar("BudgetStatusT")
"""The status type a budget reports (``otel_llm_cost.budgets.BudgetStatus`` for ``Budget``)."""


class EvaluableBudget(Protocol[_Status_co]):
    """A budget that evaluates itself over an open DuckDB connection."""

    def statuses(
        self, connection: duckdb.DuckDBPyConnection, at: datetime | None = None
    ) -> Sequence[_Status_co]:
        """Where every entity with spend stands in the window containing ``at`` (default now)."""
        ...

    def remaining_usd(
        self, connection: duckdb.DuckDBPyConnection, entity: str | None = None, at: datetime | None = None
    ) -> Decimal:
        """What ``entity`` may still spend in the window containing ``at`` (default now)."""
        ...
