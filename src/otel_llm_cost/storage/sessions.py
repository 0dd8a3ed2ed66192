"""The session table: one row of sums per session, which the breakdown by session reads instead of
grouping raw rows.

On 10M calls in 1.25M sessions, grouping a 30-day window by session is a hash aggregate of 1.2M groups
(0.36-0.57 s hot on 2 cores; count(*) alone ~360 ms). The hourly rollup (:mod:`.rollup`) cannot hold
sessions: a session key per hour is about one row per call, and adding them made the overview 2-3x
slower. This table keeps, for each session id, the first and last start time of its billable calls and
the partial sums the session breakdown shows (calls, unpriced and priced calls, spend, tokens by kind).
A window then takes the sessions lying wholly inside it as they are stored (no GROUP BY), and sums raw
rows only for the few sessions the window's edges cut (:mod:`otel_llm_cost.query.session_sql`).

Exactness rule, as the rollup's: the table covers exactly the ``llm_calls`` rows whose ``rowid`` is below
the watermark in ``llm_calls_sessions_state``; readers take the rows at or above it from ``llm_calls``
and read the watermark in the same transaction as the sums. Catching up adds the next rows' sums into
their sessions and moves the watermark in one transaction. The state also counts the rows covered: a
delete below the watermark makes the counts differ, readers then read raw rows and the writer starts
the table again. ``reprice`` sums again, in its transaction, the sessions whose rows it changed
(:func:`refresh`). Calls without a session id are not in the table (readers take them raw). Its own
state and layout, not the rollup's: a file that had the rollup before this table existed gets the
table on its next open (the DDL is idempotent) and its writer fills it without rebuilding the rollup.
"""

from __future__ import annotations

from typing import Final

import duckdb

from otel_llm_cost.storage import coverage
from otel_llm_cost.storage.coverage import CHUNK_ROWS, checked_watermark, read_state, rows_from
from otel_llm_cost.storage.rollup import DIMENSION_COLUMNS, PARTIAL_COLUMNS, partial_aggregates
from otel_llm_cost.storage.schema import CALLS_TABLE

__all__ = [
    "CREATE",
    "CREATE_SESSIONS",
    "CREATE_SESSIONS_STATE",
    "SESSIONS_LAYOUT",
    "SESSIONS_STATE_TABLE",
    "SESSIONS_TABLE",
    "SUM_COLUMNS",
    "catch_up",
    "pending_rows",
    "refresh",
    "watermark",
]

SESSIONS_TABLE: Final = "llm_calls_sessions"
SESSIONS_STATE_TABLE: Final = "llm_calls_sessions_state"
SESSIONS_LAYOUT: Final = 1
"""What the rows hold; a table of another layout is not read, and the writer starts it again."""

SUM_COLUMNS: Final = DIMENSION_COLUMNS
"""The partial sums kept per session: the rollup's columns of the same names, summed the same way."""
_TYPES: Final = {name: typ for name, typ, _ in PARTIAL_COLUMNS}
_BILLABLE: Final = "billable IS DISTINCT FROM false"

CREATE_SESSIONS: Final = (
    f"CREATE TABLE IF NOT EXISTS {SESSIONS_TABLE} (\n    session_id VARCHAR,\n"
    "    first_start TIMESTAMPTZ,\n    last_start TIMESTAMPTZ,\n    "
    + ",\n    ".join(f"{name} {_TYPES[name]}" for name in SUM_COLUMNS)
    + "\n)"
)
# covered_rowid: the watermark; covered_rows: the rows below it when they were summed; layout.
CREATE_SESSIONS_STATE: Final = (
    f"CREATE TABLE IF NOT EXISTS {SESSIONS_STATE_TABLE} "
    "(covered_rowid BIGINT, covered_rows BIGINT, layout INTEGER)"
)
CREATE: Final = (CREATE_SESSIONS, CREATE_SESSIONS_STATE)
"""The table and its state, created by every open of a writable file (idempotent)."""

_ROW_SUMS: Final = (
    f"SELECT session_id, min(start_time) AS first_start, max(start_time) AS last_start, "
    f"{partial_aggregates(SUM_COLUMNS)} FROM {CALLS_TABLE} "
    f"WHERE {_BILLABLE} AND session_id IS NOT NULL AND {{rows}} GROUP BY session_id"
)
# A sum of two partial sums; NULL (no value summed) only when both are.
_MERGED: Final = ", ".join(
    [
        "first_start = least(s.first_start, c.first_start)",
        "last_start = greatest(s.last_start, c.last_start)",
        *(f"{name} = COALESCE(s.{name} + c.{name}, s.{name}, c.{name})" for name in SUM_COLUMNS),
    ]
)


def _state(con: duckdb.DuckDBPyConnection) -> tuple[int, int] | None:
    """(watermark, rows covered); None when the table was written in another layout."""
    return read_state(con, SESSIONS_STATE_TABLE, SESSIONS_LAYOUT)


def watermark(con: duckdb.DuckDBPyConnection) -> int | None:
    """The rowid below which every ``llm_calls`` row is in the table (0: none is yet), or None when
    the table cannot be used (rows below the watermark were deleted since, or another layout).

    Raises:
        duckdb.CatalogException: the file has no session table (written before it existed; a lake).
    """
    return checked_watermark(con, _state(con))


def pending_rows(con: duckdb.DuckDBPyConnection) -> int:
    """How many ``llm_calls`` rows the table does not cover yet."""
    return rows_from(con, watermark(con) or 0)


def catch_up(con: duckdb.DuckDBPyConnection, *, max_rows: int | None = CHUNK_ROWS) -> int:
    """Add the next rows not covered yet (at most ``max_rows``; None: all) to their sessions, one
    transaction per chunk, and return how many rows were covered.

    Run, as the rollup's catch-up, by the writer that appends ``llm_calls`` rows, under its commit lock.
    """
    return coverage.catch_up(
        con,
        state_table=SESSIONS_STATE_TABLE,
        layout=SESSIONS_LAYOUT,
        reset=_forget,
        add_rows=_add_rows,
        max_rows=max_rows,
    )


def _forget(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DELETE FROM {SESSIONS_TABLE}")


def _add_rows(con: duckdb.DuckDBPyConnection, low: int, high: int) -> int:
    """Add the sums of the rows ``low <= rowid < high`` to their sessions; returns how many rows there are.

    Sessions seen before are updated in place; new ones are appended in order of their first call, so
    the table stays about sorted by time and a window's predicate skips row groups (zone maps).
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _sessions_chunk AS "
        + _ROW_SUMS.format(rows=f"rowid >= {int(low)} AND rowid < {int(high)}")
    )
    con.execute(
        f"UPDATE {SESSIONS_TABLE} s SET {_MERGED} FROM _sessions_chunk c WHERE s.session_id = c.session_id"
    )
    con.execute(
        f"INSERT INTO {SESSIONS_TABLE} SELECT c.* FROM _sessions_chunk c "
        f"ANTI JOIN {SESSIONS_TABLE} s ON s.session_id = c.session_id ORDER BY c.first_start"
    )
    con.execute("DROP TABLE _sessions_chunk")
    return coverage.rows_between(con, low, high)


def refresh(con: duckdb.DuckDBPyConnection, sessions_sql: str) -> None:
    """Sum again the sessions listed by ``sessions_sql`` (one column of session ids), in the caller's
    transaction, after stored rows of theirs were changed in place (``reprice``)."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = current_schema()",
        [SESSIONS_STATE_TABLE],
    ).fetchone()
    if not (row and row[0]):
        return  # a file without the table: nothing to keep right
    mark = watermark(con)
    if not mark:
        return  # unusable or empty anyway: the writer's next catch-up starts it again
    con.execute(f"CREATE OR REPLACE TEMP TABLE _sessions_changed AS SELECT DISTINCT * FROM ({sessions_sql})")
    con.execute(f"DELETE FROM {SESSIONS_TABLE} WHERE session_id IN (SELECT * FROM _sessions_changed)")
    rows = f"rowid < {int(mark)} AND session_id IN (SELECT * FROM _sessions_changed)"
    con.execute(f"INSERT INTO {SESSIONS_TABLE} {_ROW_SUMS.format(rows=rows)} ORDER BY first_start")
    con.execute("DROP TABLE _sessions_changed")
