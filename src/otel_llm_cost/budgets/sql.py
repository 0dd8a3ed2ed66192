"""SQL builders for budget evaluation over ``llm_calls`` (pure: strings and parameter lists, no I/O).

Every identifier placed in SQL comes from a fixed table here or from a tag key that
:class:`~otel_llm_cost.budgets.Budget` validated against ``TAG_KEY_PATTERN``; every value is a bound
parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

# Spend that counts against a budget is what the reports count: one rule for both, kept in query.sql.
from otel_llm_cost.query.sql import BILLABLE, UNPRICED
from otel_llm_cost.storage.schema import ALERT_COLUMNS, ALERT_KEY_COLUMNS, ALERTS_TABLE, CALLS_TABLE

__all__ = [
    "BUILTIN_SCOPES",
    "TAG_KEY_PATTERN",
    "first_unpriced_sql",
    "insert_alerts_sql",
    "scope_expression",
    "spend_sql",
    "triggers_sql",
]

#: Scope name -> SQL expression over ``llm_calls`` giving the entity a budget is kept per.
BUILTIN_SCOPES: Final[Mapping[str, str]] = {
    "call": "span_id",
    "session": "session_id",
    "user": "user_id",
    "org": "org_id",
    "feature": "feature",
    "agent": "agent",
    "workflow": "workflow_id",
    "workflow_label": "workflow_label",
    "step": "step",
    # What the caller asked for or got; the price entry (upstream_model) is NULL for unknown models.
    "model": "coalesce(response_model, request_model)",
    "provider": "provider",
    "service": "service_name",
    "global": "'*'",
}

#: Custom tag keys (``cost.<key>`` on spans, ``tags['<key>']`` in storage) allowed in scopes.
TAG_KEY_PATTERN: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")


def scope_expression(scope: str) -> str:
    """The SQL expression for a canonical scope (``org``, ``tag:team``...)."""
    if scope.startswith("tag:"):
        key = scope[4:]
        if not TAG_KEY_PATTERN.match(key):  # pragma: no cover - Budget validated it already
            raise ValueError(f"invalid tag key {key!r}")
        return f"tags['{key}']"
    return BUILTIN_SCOPES[scope]


def spend_sql(
    scope: str,
    where: Mapping[str, Sequence[str]],
    *,
    window_start: datetime | None,
    window_end: datetime | None,
    entities: Sequence[str] | None,
    recent_start: datetime | None,
    recent_end: datetime | None,
) -> tuple[str, list[object]]:
    """Spend per entity in one window: ``(entity, spent, calls, unpriced, recent)``.

    ``spent`` is the exact DECIMAL sum of priced billable calls; ``recent`` the part of it that started
    in ``[recent_start, recent_end)`` (the forecast's recent rate; 0 when those are None).
    """
    expr = scope_expression(scope)
    sql = [
        f"SELECT {expr} AS entity,",
        "  coalesce(sum(cost_usd), 0) AS spent,",
        "  count(*) AS calls,",
        f"  count(*) FILTER (WHERE {UNPRICED}) AS unpriced,",
        # No span_id here: reading it for every row tripled the cost of a month-long window.
        "  coalesce(sum(cost_usd) FILTER (WHERE start_time >= ? AND start_time < ?), 0) AS recent",
        f"FROM {CALLS_TABLE}",
        f"WHERE {BILLABLE} AND {expr} IS NOT NULL",
    ]
    params: list[object] = [recent_start, recent_end]
    filters, filter_params = _filters(where, window_start, window_end, expr, entities)
    sql.extend(filters)
    params.extend(filter_params)
    sql.append("GROUP BY 1")
    return "\n".join(sql), params


def first_unpriced_sql(
    scope: str,
    where: Mapping[str, Sequence[str]],
    *,
    window_start: datetime | None,
    window_end: datetime | None,
    entity: str,
) -> tuple[str, list[object]]:
    """The first unpriced call of ``entity`` in the window: ``(span_id, trace_id)``."""
    expr = scope_expression(scope)
    filters, params = _filters(where, window_start, window_end, expr, [entity])
    sql = "\n".join(
        [
            f"SELECT span_id, trace_id FROM {CALLS_TABLE}",
            f"WHERE {BILLABLE} AND {expr} IS NOT NULL AND {UNPRICED}",
            *filters,
            "ORDER BY start_time, span_id LIMIT 1",
        ]
    )
    return sql, params


def triggers_sql(
    scope: str,
    where: Mapping[str, Sequence[str]],
    *,
    window_start: datetime | None,
    window_end: datetime | None,
    entities: Sequence[str],
    amounts: Sequence[object],
) -> tuple[str, list[object]]:
    """For each ``(entities[i], amounts[i])``: the first call (start-time order) at which the entity's
    running spend in the window reached the amount. Rows: ``(i, span_id, trace_id)``; one query per window.
    """
    expr = scope_expression(scope)
    filters, params = _filters(where, window_start, window_end, expr, sorted(set(entities)))
    sql = "\n".join(
        [
            "WITH targets AS (",
            "  SELECT unnest(?::INTEGER[]) AS idx, unnest(?::VARCHAR[]) AS entity,",
            "         unnest(?::DECIMAL(38,12)[]) AS amount",
            "), running AS (",
            f"  SELECT {expr} AS entity, span_id, trace_id, start_time,",
            f"    sum(coalesce(cost_usd, 0)) OVER (PARTITION BY {expr} ORDER BY start_time, span_id",
            "      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running",
            f"  FROM {CALLS_TABLE}",
            f"  WHERE {BILLABLE} AND {expr} IS NOT NULL",
            *("  " + f for f in filters),
            ")",
            "SELECT t.idx,",
            "  min_by(r.span_id, struct_pack(a := r.start_time, b := r.span_id)),",
            "  min_by(r.trace_id, struct_pack(a := r.start_time, b := r.span_id))",
            "FROM targets t JOIN running r ON r.entity = t.entity AND r.running >= t.amount",
            "GROUP BY t.idx",
        ]
    )
    return sql, [list(range(len(entities))), list(entities), [str(a) for a in amounts], *params]


def _filters(
    where: Mapping[str, Sequence[str]],
    window_start: datetime | None,
    window_end: datetime | None,
    expr: str,
    entities: Sequence[str] | None,
) -> tuple[list[str], list[object]]:
    sql: list[str] = []
    params: list[object] = []
    if window_start is not None:
        sql.append("AND start_time >= ?")
        params.append(window_start)
    if window_end is not None:
        sql.append("AND start_time < ?")
        params.append(window_end)
    if entities is not None:
        sql.append(f"AND list_contains(?, {expr})")
        params.append(list(entities))
    for key, values in sorted(where.items()):
        sql.append(f"AND list_contains(?, {scope_expression(key)})")
        params.append(list(values))
    return sql, params


_ALERT_COLUMN_NAMES: Final = tuple(name for name, _, _ in ALERT_COLUMNS)


def new_alerts_sql(relation: str) -> tuple[str, str]:
    """For a DuckLake, which has no keys (nor RETURNING): the keys of the rows of ``relation`` not
    stored yet, and the insert of those rows (an anti-join on the key columns), to run in one
    transaction. Exact only while no other writer inserts meanwhile: lake writers record alerts under
    the lake's commit lock (see ``storage/lake_lock.py``)."""
    same_key = " AND ".join(f"a.{column} = r.{column}" for column in ALERT_KEY_COLUMNS)
    fresh = f"FROM {relation} r WHERE NOT EXISTS (SELECT 1 FROM {ALERTS_TABLE} a WHERE {same_key})"
    return (
        f"SELECT budget, entity, window_key, kind, threshold {fresh}",
        f"INSERT INTO {ALERTS_TABLE} ({', '.join(_ALERT_COLUMN_NAMES)}) SELECT * {fresh}",
    )


def insert_alerts_sql(relation: str) -> str:
    """Insert the alert rows of ``relation`` (a registered Arrow table in ``ALERT_COLUMNS`` order);
    returns the key of each row actually inserted: the primary key conflict is the de-duplication."""
    return (
        f"INSERT INTO {ALERTS_TABLE} ({', '.join(_ALERT_COLUMN_NAMES)}) SELECT * FROM {relation} "
        "ON CONFLICT DO NOTHING RETURNING budget, entity, window_key, kind, threshold"
    )
