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

from otel_llm_cost.query.sql import BILLABLE, Query, half_open_window
from otel_llm_cost.storage import sessions as _sessions
from otel_llm_cost.storage.rollup import partial_aggregates
from otel_llm_cost.storage.schema import CALLS_TABLE

__all__ = ["breakdown"]

_TOKENS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_ORDER: Final = "ORDER BY total_cost_usd DESC NULLS LAST, call_count DESC, key NULLS LAST"
_KNOWN: Final = "CASE WHEN {p} > 0 THEN {c} WHEN COALESCE({u}, 0) = 0 THEN 0 END"


def _report_columns(wrap: str) -> str:
    """The raw ``cost_by`` columns from partial sums (``wrap``: ``"{}"`` for one stored row,
    ``"sum({})"`` over several partial rows)."""
    w = wrap.format
    tokens = ", ".join(f"CAST(COALESCE({w(t)}, 0) AS HUGEINT) AS {t}" for t in _TOKENS)
    return (
        f"{_KNOWN.format(p=w('priced_calls'), c=w('cost_usd'), u=w('unpriced_calls'))} AS total_cost_usd, "
        f"CAST(COALESCE({w('total_tokens')}, 0) AS HUGEINT) AS total_tokens, "
        f"CAST(COALESCE({w('call_count')}, 0) AS BIGINT) AS call_count, "
        f"CAST(COALESCE({w('unpriced_calls')}, 0) AS BIGINT) AS unpriced_calls, {tokens}, NULL AS provider"
    )


_SUMS: Final = ", ".join(_sessions.SUM_COLUMNS)
_RAW_PARTIALS: Final = f"session_id, {partial_aggregates(_sessions.SUM_COLUMNS)}"


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


def breakdown(
    start: datetime | None, end: datetime | None, limit: int | None, connection: duckdb.DuckDBPyConnection
) -> Query | None:
    """``sql.cost_by(session, start, end)`` (with ``LIMIT limit``) from the session table, or None when
    the table cannot answer (none in the file, or rows deleted under its watermark).

    Runs in the report's transaction: it reads the watermark, whether rows lie above it and where the
    cut sessions lie, so that the SQL reads only what it needs.
    """
    mark = _sessions.watermark(connection)
    if not mark:
        return None
    touched, cut_left, cut_right = _plan_facts(connection, mark, start, end)
    inside, inside_params = half_open_window(start, end, "first_start")
    if end is not None:
        inside = (*inside[:-1], "last_start < ?")
    inside_sql = f"SELECT * FROM {_sessions.SESSIONS_TABLE} WHERE {' AND '.join(inside) or 'true'}"
    in_window, window_params = half_open_window(start, end)
    raw = f"SELECT {_RAW_PARTIALS} FROM {CALLS_TABLE} WHERE {' AND '.join([BILLABLE, *in_window])}"
    pending = f"(SELECT DISTINCT session_id FROM {CALLS_TABLE} WHERE rowid >= ? AND session_id IS NOT NULL)"
    whole = f"SELECT session_id AS key, {_report_columns('{}')} FROM ({inside_sql})"
    whole_params: list[object] = [*inside_params]
    if limit is not None:  # the first ones, and one more for each session that may be taken out below
        whole += f" {_ORDER} LIMIT ?"
        whole_params.append(limit + touched)
    parts = _Union()
    parts.add(f"{raw} AND rowid < ? AND session_id IS NULL GROUP BY session_id", *window_params, mark)
    if touched:  # sessions with rows above the watermark: their row (when inside) plus those rows
        whole = f"SELECT * FROM ({whole}) w ANTI JOIN {pending} p ON w.key = p.session_id"
        whole_params.append(mark)
        parts.add(f"SELECT session_id, {_SUMS} FROM ({inside_sql}) SEMI JOIN {pending} p USING (session_id)")
        parts.params.extend([*inside_params, mark])
        parts.add(f"{raw} AND rowid >= ? GROUP BY session_id", *window_params, mark)
    sessions = f"SELECT session_id FROM {_sessions.SESSIONS_TABLE} WHERE first_start < ? AND last_start >= ?"
    if cut_left is not None:  # begun before the window: their rows up to the last one's last start
        parts.add(
            f"{raw} AND rowid < ? AND start_time <= ? AND session_id IN ({sessions}) GROUP BY session_id",
            *window_params,
            mark,
            cut_left,
            start,
            start,
        )
    if cut_right is not None:  # begun inside it and going on after it: from the first one's start
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
    grouped = (
        f"SELECT session_id AS key, {_report_columns('sum({})')} "
        f"FROM ({' UNION ALL '.join(parts.selects)}) GROUP BY session_id"
    )
    limit_sql, limit_params = ("", []) if limit is None else (" LIMIT ?", [limit])
    sql = f"SELECT * FROM ({whole}) UNION ALL {grouped} {_ORDER}{limit_sql}"
    return Query(sql, (*whole_params, *parts.params, *limit_params))
