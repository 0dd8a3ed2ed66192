"""The breakdown by session from the session table (:mod:`otel_llm_cost.storage.sessions`): the raw
report's rows, columns, types and order, without grouping a window's millions of rows by session.

The window ``[start, end)`` splits the sessions into two disjoint sets:

- sessions whose stored calls all start inside the window (the table's first and last start) and that
  have no row at or above the watermark: their table row *is* their answer, read as stored, sorted, and
  cut to the first ``limit`` (no GROUP BY over them);
- every other session in the window: those the window's edges cut (their raw rows below the watermark,
  read only in the time range where such sessions end or begin), those with rows at or above the
  watermark (their table row plus those rows) and the calls without a session (raw). These few groups
  are summed from partial rows as the rollup's reports sum theirs.

The two sets share no key, so the union sorted and cut again is the raw answer's first ``limit`` rows (a
Hypothesis test compares them). Filters other than the window are not served here: the raw SQL runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import duckdb

from otel_llm_cost.query.sql import BILLABLE, TOKEN_KINDS, Query, half_open_window
from otel_llm_cost.storage import sessions as _sessions
from otel_llm_cost.storage.rollup import partial_aggregates
from otel_llm_cost.storage.schema import CALLS_TABLE

__all__ = ["breakdown"]

_ORDER: Final = "ORDER BY total_cost_usd DESC NULLS LAST, call_count DESC, key NULLS LAST"
_KNOWN: Final = "CASE WHEN {p} > 0 THEN {c} WHEN COALESCE({u}, 0) = 0 THEN 0 END"


def _report_columns(wrap: str) -> str:
    """The raw ``cost_by`` columns from partial sums (``wrap``: ``"{}"`` for one stored row,
    ``"sum({})"`` over several partial rows)."""
    w = wrap.format
    tokens = ", ".join(f"CAST(COALESCE({w(t)}, 0) AS HUGEINT) AS {t}" for t in TOKEN_KINDS)
    return (
        f"{_KNOWN.format(p=w('priced_calls'), c=w('cost_usd'), u=w('unpriced_calls'))} AS total_cost_usd, "
        f"CAST(COALESCE({w('total_tokens')}, 0) AS HUGEINT) AS total_tokens, "
        f"CAST(COALESCE({w('call_count')}, 0) AS BIGINT) AS call_count, "
        f"CAST(COALESCE({w('unpriced_calls')}, 0) AS BIGINT) AS unpriced_calls, {tokens}, NULL AS provider"
    )


_SUMS: Final = ", ".join(_sessions.SUM_COLUMNS)
_RAW_PARTIALS: Final = f"session_id, {partial_aggregates(_sessions.SUM_COLUMNS)}"


_MAX_TOUCHED: Final = 65_536
"""Sessions with rows above the watermark beyond which the raw SQL runs (the table lags far behind)."""
# The sessions with rows above the watermark, handed to the SQL as a list: as a subquery, DuckDB
# estimated it at millions of rows and built its hash table on the 1.2M stored sessions instead
# (1.1 s for 33,000 sessions, against 50 ms).
_TOUCHED: Final = "(SELECT unnest(CAST(? AS VARCHAR[])) AS session_id)"


def _plan_facts(
    connection: duckdb.DuckDBPyConnection, mark: int, start: datetime | None, end: datetime | None
) -> tuple[int, datetime | None, datetime | None]:
    """(sessions with rows at or above the watermark, last start of the sessions the window's start cuts,
    first start of those its end cuts that begin inside it); None where no session is cut. The cut
    sessions' raw rows in the window lie between these and the edge, so their reads skip the rest."""
    table = _sessions.SESSIONS_TABLE
    selects = [f"(SELECT count(DISTINCT session_id) FROM {CALLS_TABLE} WHERE rowid >= ?)"]
    params: list[object] = [mark]
    if start is not None:
        selects.append(f"(SELECT max(last_start) FROM {table} WHERE first_start < ? AND last_start >= ?)")
        params.extend([start, start])
    else:
        selects.append("NULL")
    if end is not None:
        begins = "" if start is None else " AND first_start >= ?"
        selects.append(
            f"(SELECT min(first_start) FROM {table} WHERE first_start < ? AND last_start >= ?{begins})"
        )
        params.extend([end, end, *([] if start is None else [start])])
    else:
        selects.append("NULL")
    row = connection.execute(f"SELECT {', '.join(selects)}", params).fetchone()
    return (int(row[0]), row[1], row[2]) if row else (0, None, None)


class _Union:
    """SELECTs of partial rows (session_id and the sums) and their parameters, to be summed by session."""

    def __init__(self) -> None:
        self.selects: list[str] = []
        self.params: list[object] = []

    def add(self, sql: str, *params: object) -> None:
        self.selects.append(sql)
        self.params.extend(params)


def _add_cut(
    parts: _Union,
    raw: str,
    mark: int,
    window: tuple[datetime | None, datetime | None],
    cut: tuple[datetime | None, datetime | None],
) -> None:
    """The raw rows below the watermark of the sessions the window's edges cut, between each edge and
    the farthest start of the sessions it cuts."""
    (start, end), (cut_left, cut_right) = window, cut
    window_params = [p for p in window if p is not None]
    sessions = f"SELECT session_id FROM {_sessions.SESSIONS_TABLE} WHERE first_start < ? AND last_start >= ?"
    if cut_left is not None:  # begun before the window: up to the last start of such sessions
        parts.add(
            f"{raw} AND rowid < ? AND start_time <= ? AND session_id IN ({sessions}) GROUP BY session_id",
            *window_params,
            mark,
            cut_left,
            start,
            start,
        )
    if cut_right is not None:  # begun inside it and going on after it: from the first start of such
        begins = "" if start is None else " AND first_start >= ?"
        parts.add(
            f"{raw} AND rowid < ? AND start_time >= ? AND session_id IN ({sessions}{begins}) "
            "GROUP BY session_id",
            *window_params,
            mark,
            cut_right,
            end,
            end,
            *([] if start is None else [start]),
        )


def breakdown(
    start: datetime | None, end: datetime | None, limit: int | None, connection: duckdb.DuckDBPyConnection
) -> Query | None:
    """``sql.cost_by(session, start, end)`` (with ``LIMIT limit``) from the session table, or None when
    the table cannot answer (none in the file, rows deleted under its watermark, or more than
    :data:`_MAX_TOUCHED` sessions with rows above it).

    Runs in the report's transaction: it reads the watermark, the sessions with rows above it and where
    the cut sessions lie, so that the SQL reads only what it needs.
    """
    mark = _sessions.watermark(connection)
    if not mark:
        return None
    touched, cut_left, cut_right = _plan_facts(connection, mark, start, end)
    if touched > _MAX_TOUCHED:
        return None
    inside, inside_params = half_open_window(start, end, "first_start")
    if end is not None:
        inside = (*inside[:-1], "last_start < ?")
    inside_sql = f"SELECT * FROM {_sessions.SESSIONS_TABLE} WHERE {' AND '.join(inside) or 'true'}"
    in_window, window_params = half_open_window(start, end)
    raw = f"SELECT {_RAW_PARTIALS} FROM {CALLS_TABLE} WHERE {' AND '.join([BILLABLE, *in_window])}"
    whole, whole_params = (
        f"SELECT session_id AS key, {_report_columns('{}')} FROM ({inside_sql})",
        [*inside_params],
    )
    parts = _Union()
    # Calls without a session are never in the table: all of them are read raw, whatever their rowid.
    parts.add(f"{raw} AND session_id IS NULL GROUP BY session_id", *window_params)
    if touched:  # sessions with rows above the watermark: their stored row (when inside) plus those rows
        ids = [
            row[0]
            for row in connection.execute(
                f"SELECT DISTINCT session_id FROM {CALLS_TABLE} WHERE rowid >= ? AND session_id IS NOT NULL",
                [mark],
            ).fetchall()
        ]
        whole += f" ANTI JOIN {_TOUCHED} p USING (session_id)"
        whole_params.append(ids)
        parts.add(f"SELECT session_id, {_SUMS} FROM ({inside_sql}) SEMI JOIN {_TOUCHED} p USING (session_id)")
        parts.params.extend([*inside_params, ids])
        parts.add(
            f"{raw} AND rowid >= ? AND session_id IS NOT NULL GROUP BY session_id", *window_params, mark
        )
    _add_cut(parts, raw, mark, (start, end), (cut_left, cut_right))
    limit_sql, limit_params = ("", []) if limit is None else (" LIMIT ?", [limit])
    grouped = (
        f"SELECT session_id AS key, {_report_columns('sum({})')} "
        f"FROM ({' UNION ALL '.join(parts.selects)}) GROUP BY session_id"
    )
    sql = f"SELECT * FROM ({whole} {_ORDER}{limit_sql}) UNION ALL {grouped} {_ORDER}{limit_sql}"
    return Query(sql, (*whole_params, *limit_params, *parts.params, *limit_params))
