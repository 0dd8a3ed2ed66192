"""The ``budget_alerts`` table: which alerts are new, the calls that triggered them, storing them.

The table's primary key is the de-duplication: an alert fires once per (budget, entity, window, kind,
threshold, limit), whichever process or restart evaluates it. When one evaluation finds several
thresholds crossed for the same entity and window (one batch took spend from 40% to 120%), only the
highest is delivered; the lower ones are recorded with a message saying they were passed, so they
never fire later either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb

from otel_llm_cost._money import SUM_PRECISION, money_arrow_type, quantize_usd
from otel_llm_cost.budgets import sql as _budget_sql
from otel_llm_cost.budgets.alerts import AlertKind, BudgetAlert
from otel_llm_cost.budgets.evaluation import BudgetStatus
from otel_llm_cost.budgets.messages import build_alert
from otel_llm_cost.storage.lake import is_lake_connection
from otel_llm_cost.storage.schema import ALERTS_TABLE, CREATE_ALERTS

__all__ = ["ensure_table", "fire_new", "record_alerts"]


def fire_new(
    connection: duckdb.DuckDBPyConnection,
    statuses: Sequence[BudgetStatus],
    *,
    forecast: bool,
    clock: Callable[[], datetime],
) -> list[BudgetAlert]:
    """Record the alerts ``statuses`` (one budget, one window) call for; return those new to
    ``budget_alerts``, stamped ``fired_at=clock()``."""
    wanted = [
        (status, kind, threshold) for status in statuses for kind, threshold in _candidates(status, forecast)
    ]
    if not wanted:
        return []
    ensure_table(connection)
    budget = statuses[0].budget
    # Skip what already fired before looking for triggering spans (the INSERT below stays the guard).
    existing = set(
        connection.execute(
            f"SELECT entity, window_key, kind, threshold FROM {ALERTS_TABLE} WHERE budget = ? "
            "AND limit_usd = ? AND list_contains(?, entity) AND list_contains(?, window_key)",
            [
                budget.name,
                budget.limit_usd,
                sorted({s.entity for s, _, _ in wanted}),
                sorted({s.window_key for s, _, _ in wanted}),
            ],
        ).fetchall()
    )
    fresh = [
        (status, kind, threshold)
        for status, kind, threshold in wanted
        if (status.entity, status.window_key, kind.value, threshold) not in existing
    ]
    triggers = _triggers(connection, [(s, t) for s, k, t in fresh if k is AlertKind.THRESHOLD])
    alerts = []
    for status, kind, threshold in fresh:
        if kind is AlertKind.THRESHOLD:
            trace_id, span_id = triggers.get((status.entity, threshold), (None, None))
        elif kind is AlertKind.UNPRICED:
            trace_id, span_id = _unpriced_trigger(connection, status)
        else:
            trace_id, span_id = None, None
        alerts.append(build_alert(kind, status, threshold, trace_id, span_id, clock()))
    alerts, passed = _highest_threshold_first(alerts)
    inserted = record_alerts(connection, [*alerts, *passed])
    delivered = {id(alert) for alert in alerts}
    return [alert for alert in inserted if id(alert) in delivered]


def _highest_threshold_first(alerts: Sequence[BudgetAlert]) -> tuple[list[BudgetAlert], list[BudgetAlert]]:
    """Split the threshold alerts one evaluation found: per (entity, window), the highest threshold is
    delivered; the lower ones it passed on the way are recorded as passed (so they never fire later)."""
    highest: dict[tuple[str, str], Decimal] = {}
    for alert in alerts:
        if alert.kind is AlertKind.THRESHOLD:
            key = (alert.entity, alert.window_key)
            highest[key] = max(highest.get(key, alert.threshold), alert.threshold)
    deliver: list[BudgetAlert] = []
    passed: list[BudgetAlert] = []
    for alert in alerts:
        top = highest.get((alert.entity, alert.window_key))
        if alert.kind is AlertKind.THRESHOLD and top is not None and alert.threshold < top:
            note = f" [passed together with the {top * 100:g}% threshold: not delivered]"
            passed.append(dataclasses.replace(alert, message=alert.message + note))
        else:
            deliver.append(alert)
    return deliver, passed


def _candidates(status: BudgetStatus, forecast: bool) -> list[tuple[AlertKind, Decimal]]:
    budget = status.budget
    found = [
        (AlertKind.THRESHOLD, threshold)
        for threshold in budget.thresholds
        if status.spent_usd >= budget.limit_usd * threshold
    ]
    if forecast and status.forecast_at is not None:
        found.append((AlertKind.FORECAST, Decimal(1)))
    if status.unpriced_calls > 0:
        found.append((AlertKind.UNPRICED, Decimal(0)))
    return found


def _unpriced_trigger(
    connection: duckdb.DuckDBPyConnection, status: BudgetStatus
) -> tuple[str | None, str | None]:
    budget = status.budget
    sql, params = _budget_sql.first_unpriced_sql(
        budget.scope,
        budget.where,
        window_start=status.window_start,
        window_end=status.window_end,
        entity=status.entity,
    )
    # fetchall, not fetchone: DuckDB 2.0 refuses the next statement while a result is unfinished.
    rows = connection.execute(sql, params).fetchall()
    return (rows[0][1], rows[0][0]) if rows else (None, None)


def _triggers(
    connection: duckdb.DuckDBPyConnection, wanted: Sequence[tuple[BudgetStatus, Decimal]]
) -> dict[tuple[str, Decimal], tuple[str | None, str | None]]:
    """The call that crossed each (entity, threshold): one query for the whole window."""
    if not wanted:
        return {}
    first = wanted[0][0]
    budget = first.budget
    sql, params = _budget_sql.triggers_sql(
        budget.scope,
        budget.where,
        window_start=first.window_start,
        window_end=first.window_end,
        entities=[status.entity for status, _ in wanted],
        amounts=[quantize_usd(budget.limit_usd * t) for _, t in wanted],
    )
    found: dict[tuple[str, Decimal], tuple[str | None, str | None]] = {}
    for index, span_id, trace_id in connection.execute(sql, params).fetchall():
        status, threshold = wanted[index]
        found[(status.entity, threshold)] = (trace_id, span_id)
    return found


def ensure_table(connection: duckdb.DuckDBPyConnection) -> None:
    """Create ``budget_alerts`` if missing: storage creates it, a connection handed in may predate it."""
    # Only a handful of statements reach here (when some alert is due), so the check is cheap. A lake
    # has it from its creation (without the key DuckLake refuses).
    if not is_lake_connection(connection):
        connection.execute(CREATE_ALERTS)


def record_alerts(connection: duckdb.DuckDBPyConnection, alerts: Sequence[BudgetAlert]) -> list[BudgetAlert]:
    """Insert alerts; return those this call inserted (the others had already fired somewhere)."""
    if not alerts:
        return []
    ensure_table(connection)
    # Arrow, not bound parameters: an alert storm (thousands of users crossing at once) binds in ms.
    relation = f"_otel_llm_cost_alerts_{threading.get_ident()}"
    # A lake has no keys: an anti-join, exact because lake writers record alerts under the commit lock.
    lake = is_lake_connection(connection)
    connection.register(relation, _alerts_table(alerts))
    try:
        for attempt in range(3):
            try:
                returned = _insert_lake(connection, relation) if lake else _insert(connection, relation)
                break
            except duckdb.TransactionException:
                # Another thread of this process inserted a same-key row concurrently; the retry
                # sees it committed and ON CONFLICT skips it.
                if attempt == 2:
                    raise
    finally:
        connection.unregister(relation)
    inserted = {(b, e, w, k, Decimal(t)) for b, e, w, k, t in returned}
    return [a for a in alerts if (a.budget, a.entity, a.window_key, a.kind.value, a.threshold) in inserted]


def _insert(connection: duckdb.DuckDBPyConnection, relation: str) -> list[Any]:
    return connection.execute(_budget_sql.insert_alerts_sql(relation)).fetchall()


def _insert_lake(connection: duckdb.DuckDBPyConnection, relation: str) -> list[Any]:
    select, insert = _budget_sql.new_alerts_sql(relation)
    connection.execute("BEGIN TRANSACTION")
    try:
        returned = connection.execute(select).fetchall()
        if returned:
            connection.execute(insert)
        connection.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            connection.execute("ROLLBACK")
        raise
    return returned


def _alerts_table(alerts: Sequence[BudgetAlert]) -> Any:
    import pyarrow as pa  # noqa: PLC0415 - only needed when an alert fires

    now = datetime.now(UTC)
    money = money_arrow_type(SUM_PRECISION)
    instant = pa.timestamp("us", tz="UTC")
    columns: list[tuple[str, Any, list[Any]]] = [
        ("budget", pa.string(), [a.budget for a in alerts]),
        ("entity", pa.string(), [a.entity for a in alerts]),
        ("window_key", pa.string(), [a.window_key for a in alerts]),
        ("kind", pa.string(), [a.kind.value for a in alerts]),
        ("threshold", pa.decimal128(9, 6), [a.threshold for a in alerts]),
        ("limit_usd", money, [a.limit_usd for a in alerts]),
        ("scope", pa.string(), [a.scope for a in alerts]),
        ("window_spec", pa.string(), [a.window for a in alerts]),
        ("window_start", instant, [a.window_start for a in alerts]),
        ("window_end", instant, [a.window_end for a in alerts]),
        ("tz", pa.string(), [a.tz for a in alerts]),
        ("spent_usd", money, [a.spent_usd for a in alerts]),
        ("percent", pa.decimal128(12, 2), [a.percent for a in alerts]),
        ("unpriced_calls", pa.int64(), [a.unpriced_calls for a in alerts]),
        ("forecast_at", instant, [a.forecast_at for a in alerts]),
        ("trace_id", pa.string(), [a.trace_id for a in alerts]),
        ("span_id", pa.string(), [a.span_id for a in alerts]),
        ("message", pa.string(), [a.message for a in alerts]),
        ("fired_at", instant, [a.fired_at or now for a in alerts]),
    ]
    return pa.table({name: pa.array(values, type=typ) for name, typ, values in columns})
