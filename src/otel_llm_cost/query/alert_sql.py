"""The SQL that reads the history of fired budget alerts (``budget_alerts``); pure, as the report SQL.

Budgets write that table; reading it belongs to the query API, so that the CLI and applications list
alerts through ``CostStore.alerts`` rather than their own SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from otel_llm_cost.query.sql import Query
from otel_llm_cost.storage.schema import ALERT_COLUMNS, ALERTS_TABLE

__all__ = ["ALERT_FIELDS", "ALERT_TYPES", "alert_history", "alerts_table_exists"]

ALERT_FIELDS: Final = (
    "fired_at",
    "budget",
    "scope",
    "entity",
    "kind",
    "threshold",
    "spent_usd",
    "limit_usd",
    "percent",
    "unpriced_calls",
    "window_start",
    "window_end",
    "forecast_at",
    "trace_id",
    "span_id",
    "message",
)
"""The columns of an alert as reports show it, in display order (the table's key ``window_key`` aside)."""

_DECLARED: Final = {name: sql_type.removesuffix(" NOT NULL") for name, sql_type, _ in ALERT_COLUMNS}
ALERT_TYPES: Final = tuple(_DECLARED[name] for name in ALERT_FIELDS)
"""DuckDB types of :data:`ALERT_FIELDS` as the schema declares them."""


def alerts_table_exists() -> Query:
    """One row, one count: 1 once budgets have recorded an alert in this file (the table is created then)."""
    return Query("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", (ALERTS_TABLE,))


def alert_history(*, budget: str | None, kind: str | None, since: datetime | None, limit: int) -> Query:
    """The newest ``limit`` alerts fired at or after ``since``, of one budget or kind when given."""
    conditions: list[str] = []
    params: list[object] = []
    for condition, value in (("budget = ?", budget), ("kind = ?", kind), ("fired_at >= ?", since)):
        if value is not None:
            conditions.append(condition)
            params.append(value)
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    sql = (
        f"SELECT {', '.join(ALERT_FIELDS)} FROM {ALERTS_TABLE} {where}"
        "ORDER BY fired_at DESC, budget, entity, kind, threshold DESC LIMIT ?"
    )
    return Query(sql, (*params, limit))
