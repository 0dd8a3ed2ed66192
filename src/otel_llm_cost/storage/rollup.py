"""The rollup: per-hour (or per-day) partial sums of ``llm_calls`` that reports read instead of raw rows.

On 10M calls a 30-day report reads every row: grouping them by user alone took 270 ms on 2 cores, however
the SQL is written. The rollup keeps, for each UTC hour and each grouping dimension value, the partial
sums those reports combine (calls, unpriced calls, spend, tokens by kind, cache figures, latency,
first/last time), so a 30-day report reads a few thousand rows instead of ten million.

Exactness rule: the rollup covers exactly the ``llm_calls`` rows whose ``rowid`` is below the watermark
stored in ``llm_calls_rollup_state``. DuckDB gives appended rows increasing rowids when their transaction
commits, so rows the rollup has not seen yet are the rows at or above the watermark: a report sums the
rollup's whole buckets inside its window, plus the raw rows of the window's ragged edges, plus the raw
rows at or above the watermark, and reads the watermark in the same transaction as the sums. Catching up
appends the partial sums of the next rows (by rowid) and moves the watermark, in one transaction; rows
are appended, never merged, so a bucket may have several rows per key and readers sum them.

Whatever rewrites stored rows in place (``reprice``) calls :func:`invalidate` in its transaction; the
rollup then catches up again from the first row. Sessions, conversations and workflows are not rolled
up: they have about as many values as calls, and their reports read few rows by id anyway.
"""

from __future__ import annotations

from typing import Final

import duckdb

from otel_llm_cost.conventions.names import MODEL_RECOMMENDATION, PROMPT_COULD_USE_HAIKU
from otel_llm_cost.storage import coverage
from otel_llm_cost.storage.coverage import CHUNK_ROWS, checked_watermark, read_state, rows_from
from otel_llm_cost.storage.schema import CALLS_TABLE

__all__ = [
    "COARSE",
    "CREATE_ROLLUP",
    "CREATE_ROLLUP_STATE",
    "DAY_US",
    "DIMENSION_COLUMNS",
    "DOWNGRADABLE_SQL",
    "HOUR_US",
    "PARTIAL_COLUMNS",
    "ROLLUP_DIMENSIONS",
    "ROLLUP_LAYOUT",
    "ROLLUP_STATE_TABLE",
    "ROLLUP_TABLE",
    "TAG_GRAIN_US",
    "UNPRICED",
    "WEEK_US",
    "catch_up",
    "has_rollup",
    "partial_aggregates",
    "pending_rows",
    "refresh_days",
    "watermark",
]

ROLLUP_TABLE: Final = "llm_calls_rollup"
ROLLUP_STATE_TABLE: Final = "llm_calls_rollup_state"
HOUR_US: Final = 3_600_000_000
DAY_US: Final = 24 * HOUR_US

# A call whose price is unknown (a call answered from an application response cache had no API spend).
UNPRICED: Final = "cost_usd IS NULL AND from_cache IS NOT TRUE"
_BILLABLE: Final = "billable IS DISTINCT FROM false"

# Rolled-up dimension -> (SQL over llm_calls, bucket width in microseconds, rows carry the provider).
# Users have about as many values per hour as calls, so they are summed per UTC day; everything else
# per UTC hour, which every whole-hour time zone's local days are made of.
ROLLUP_DIMENSIONS: Final[dict[str, tuple[str, int, bool]]] = {
    "": ("NULL", HOUR_US, False),  # the totals
    "model": ("COALESCE(response_model, request_model)", HOUR_US, True),
    "upstream_model": ("upstream_model", HOUR_US, True),
    "deployment": ("deployment", HOUR_US, True),
    "provider": ("provider", HOUR_US, False),
    "service": ("service_name", HOUR_US, False),
    "feature": ("feature", HOUR_US, False),
    "agent": ("agent", HOUR_US, False),
    "org": ("org_id", HOUR_US, False),
    "workflow_label": ("workflow_label", HOUR_US, False),
    "step": ("step", HOUR_US, False),
    "user": ("user_id", DAY_US, False),
}
WEEK_US: Final = 7 * DAY_US
# Dimension -> (its name for week rows, their width). A 30-day report by user then combines ~10 rows per
# user (whole weeks, the days beside them) instead of 30; reports per local day use the day rows.
COARSE: Final[dict[str, tuple[str, int]]] = {"user": ("user@week", WEEK_US)}
TAG_GRAIN_US: Final = DAY_US
"""Custom tags (``tag:<key>``) are summed per UTC day: their number of values is unknown."""

# (column, type, aggregate over raw rows). Summing these again over any set of partial rows gives the
# aggregate over the union of their raw rows; NULL sums stay NULL when every value was NULL. Token sums
# of one bucket and key fit in BIGINT (reports sum them as HUGEINT): a third less to read and add than
# HUGEINT when a report combines 300,000 user-day rows.
PARTIAL_COLUMNS: Final[tuple[tuple[str, str, str], ...]] = (
    ("call_count", "BIGINT", "count(*)"),
    ("unpriced_calls", "BIGINT", f"count(*) FILTER (WHERE {UNPRICED})"),
    ("priced_calls", "BIGINT", "count(cost_usd)"),
    ("cost_usd", "DECIMAL(38,12)", "sum(cost_usd)"),
    ("input_tokens", "BIGINT", "sum(input_tokens)"),
    ("output_tokens", "BIGINT", "sum(output_tokens)"),
    ("cache_read_tokens", "BIGINT", "sum(cache_read_tokens)"),
    ("cache_write_tokens", "BIGINT", "sum(cache_write_tokens)"),
    ("reasoning_tokens", "BIGINT", "sum(reasoning_tokens)"),
    ("total_tokens", "BIGINT", "sum(total_tokens)"),
    ("priced_tokens", "BIGINT", "sum(total_tokens) FILTER (WHERE cost_usd IS NOT NULL)"),
    ("cache_saved_usd", "DECIMAL(38,12)", "sum(cache_saved_usd)"),
    ("cache_hit_calls", "BIGINT", "count(*) FILTER (WHERE cache_hit)"),
    ("from_cache_calls", "BIGINT", "count(*) FILTER (WHERE from_cache)"),
    ("latency_ms", "DOUBLE", "sum(duration_ms)"),
    ("first_start", "TIMESTAMPTZ", "min(start_time)"),
    ("last_end", "TIMESTAMPTZ", "max(end_time)"),
)

# What grouped reports read; the other partial columns are kept for the totals rows only.
DIMENSION_COLUMNS: Final = (
    "call_count",
    "unpriced_calls",
    "priced_calls",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
)

CREATE_ROLLUP: Final = (
    f"CREATE TABLE IF NOT EXISTS {ROLLUP_TABLE} (\n    upto_rowid BIGINT,\n    bucket_us BIGINT,\n"
    "    dimension VARCHAR,\n"
    "    key VARCHAR,\n    provider VARCHAR,\n    "
    + ",\n    ".join(f"{name} {typ}" for name, typ, _ in PARTIAL_COLUMNS)
    + ",\n    excluded_records BIGINT,\n    downgradable_calls BIGINT,\n"
    "    downgradable_cost_usd DECIMAL(38,12)\n)"
)
# covered_rowid: the watermark; covered_rows: how many rows were below it when they were rolled up (a
# delete below the watermark makes the rollup wrong: readers see the count differ and read raw rows).
# layout: what the rows hold (ROLLUP_LAYOUT); a rollup of another layout is not read, and the writer
# starts it again from the first row.
CREATE_ROLLUP_STATE: Final = (
    f"CREATE TABLE IF NOT EXISTS {ROLLUP_STATE_TABLE} "
    "(covered_rowid BIGINT, covered_rows BIGINT, layout INTEGER)"
)
ROLLUP_LAYOUT: Final = 1

# A downgradable call carries the app's hint in its attributes JSON (flat attribute names as keys).
# The substring test first keeps JSON parsing off the rows that cannot match (almost all of them).
# A `model.recommendation` names a model to move to; empty or "keep the current one" values are not
# recommendations (apps write them on every call they evaluated).
_NOT_RECOMMENDATIONS: Final = ("", "keep_current", "keep", "current", "none", "no_change", "null")
DOWNGRADABLE_SQL: Final = (
    f"(CASE WHEN contains(CAST(attributes AS VARCHAR), '{PROMPT_COULD_USE_HAIKU}') "
    f"OR contains(CAST(attributes AS VARCHAR), '{MODEL_RECOMMENDATION}') "
    f"THEN COALESCE(TRY_CAST(json_extract_string(attributes, '$.\"{PROMPT_COULD_USE_HAIKU}\"') AS BOOLEAN), "
    f"false) OR COALESCE(lower(trim(json_extract_string(attributes, '$.\"{MODEL_RECOMMENDATION}\"'))) "
    "NOT IN (" + ", ".join(f"'{value}'" for value in _NOT_RECOMMENDATIONS) + "), false) ELSE false END)"
)
"""Whether a call is marked downgradable by the app (savings reports count them)."""


def partial_aggregates(columns: tuple[str, ...] | None = None) -> str:
    """The partial aggregates over raw billable rows, named as the rollup's columns (``columns``: only
    those; None: all)."""
    return ", ".join(
        f"{aggregate} AS {name}"
        for name, _, aggregate in PARTIAL_COLUMNS
        if columns is None or name in columns
    )


def _dimension_aggregates() -> str:
    return ", ".join(
        aggregate if name in DIMENSION_COLUMNS else "NULL" for name, _, aggregate in PARTIAL_COLUMNS
    )


def _bucket(grain_us: int) -> str:
    return f"epoch_us(start_time) // {grain_us} * {grain_us}"


def _chunk_sql(
    rows: str = "rowid >= $1 AND rowid < $2", upto: str = "$2", *, fine: bool = True, coarse: bool = True
) -> str:
    """INSERT the partial sums of the ``llm_calls`` rows meeting ``rows``, marked as covering ``upto``
    (``fine``: the hour and day rows; ``coarse``: the week rows)."""
    aggregates = partial_aggregates()
    dimension_aggregates = _dimension_aggregates()
    no_hint = "0, NULL"
    parts = [
        # Totals also count the app's downgradable hints (savings)...
        f"SELECT {_bucket(HOUR_US)}, '', NULL, NULL, {aggregates}, 0, "
        f"count(*) FILTER (WHERE {DOWNGRADABLE_SQL}), sum(cost_usd) FILTER (WHERE {DOWNGRADABLE_SQL}) "
        f"FROM chunk WHERE {_BILLABLE} GROUP BY 1",
        # ... and, in rows of their own, the records that are not billable (duplicates, agent totals).
        f"SELECT {_bucket(HOUR_US)}, '', NULL, NULL, "
        + ", ".join(
            "0" if aggregate.startswith("count(") else f"CAST(NULL AS {typ})"
            for _, typ, aggregate in PARTIAL_COLUMNS
        )
        + f", count(*), {no_hint} FROM chunk WHERE billable = false GROUP BY 1",
    ]
    for name, (expression, grain, with_provider) in ROLLUP_DIMENSIONS.items():
        if name == "":
            continue
        parts.append(
            f"SELECT {_bucket(grain)}, '{name}', {expression}, {'provider' if with_provider else 'NULL'}, "
            f"{dimension_aggregates}, 0, {no_hint} FROM chunk WHERE {_BILLABLE} GROUP BY 1, 3, 4"
        )
    weeks = [
        f"SELECT {_bucket(width)}, '{coarse_name}', {ROLLUP_DIMENSIONS[name][0]}, NULL, "
        f"{dimension_aggregates}, 0, {no_hint} FROM chunk WHERE {_BILLABLE} GROUP BY 1, 3"
        for name, (coarse_name, width) in COARSE.items()
    ]
    if not fine:
        parts = []
    parts.extend(weeks if coarse else [])
    if fine:
        parts.append(
            f"SELECT {_bucket(TAG_GRAIN_US)}, 'tag:' || entry.key, entry.value, NULL, "
            f"{dimension_aggregates}, 0, {no_hint} "
            f"FROM (SELECT *, unnest(map_entries(tags)) AS entry FROM chunk WHERE {_BILLABLE}) "
            "WHERE entry.value IS NOT NULL GROUP BY 1, 2, 3"
        )
    return (
        f"INSERT INTO {ROLLUP_TABLE} WITH chunk AS (SELECT * FROM {CALLS_TABLE} "
        f"WHERE {rows}) SELECT {upto}, * FROM (" + " UNION ALL ".join(parts) + ")"
    )


_CHUNK_SQL: Final = _chunk_sql()
# The rows of the time range ``$2 <= start < $3`` (epoch microseconds) below the watermark ``$1``.
_RANGE: Final = "rowid < $1 AND epoch_us(start_time) >= $2 AND epoch_us(start_time) < $3"
_DAYS_SQL: Final = _chunk_sql(_RANGE, "$1", coarse=False)
_WEEKS_SQL: Final = _chunk_sql(_RANGE, "$1", fine=False)
_COARSE_NAMES: Final = tuple(name for name, _ in COARSE.values())


def has_rollup(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the file has the rollup tables (files written before they existed get them on open)."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = current_schema()",
        [ROLLUP_STATE_TABLE],
    ).fetchone()
    return bool(row and row[0])


def _state(con: duckdb.DuckDBPyConnection) -> tuple[int, int] | None:
    """(watermark, rows covered); None when the rollup was written in another layout."""
    return read_state(con, ROLLUP_STATE_TABLE, ROLLUP_LAYOUT)


def watermark(con: duckdb.DuckDBPyConnection) -> int | None:
    """The rowid below which every ``llm_calls`` row is in the rollup (0: none is yet), or None when
    the rollup cannot be used: rows below the watermark were deleted since they were rolled up.

    Raises:
        duckdb.CatalogException: the file has no rollup (written before it existed; a lake).
    """
    return checked_watermark(con, _state(con))


def pending_rows(con: duckdb.DuckDBPyConnection) -> int:
    """How many ``llm_calls`` rows the rollup does not cover yet."""
    return rows_from(con, watermark(con) or 0)


def catch_up(con: duckdb.DuckDBPyConnection, *, max_rows: int | None = CHUNK_ROWS) -> int:
    """Roll up the next rows not covered yet (at most ``max_rows``; None: all), one transaction each.

    Run on a read-write connection by the writer that appends ``llm_calls`` rows (under its commit lock,
    so that no other append of this process runs meanwhile). Returns the rows rolled up.
    """
    return coverage.catch_up(
        con,
        state_table=ROLLUP_STATE_TABLE,
        layout=ROLLUP_LAYOUT,
        reset=_forget,
        add_rows=_add_rows,
        max_rows=max_rows,
    )


def _add_rows(con: duckdb.DuckDBPyConnection, low: int, high: int) -> int:
    """Append the partial sums of the rows ``low <= rowid < high``; returns how many rows there are."""
    con.execute(_CHUNK_SQL, [low, high])
    _merge_touched(con, high)
    return coverage.rows_between(con, low, high)


_MERGED_COLUMNS: Final = (
    ", ".join(
        f"{'min' if name == 'first_start' else 'max' if name == 'last_end' else 'sum'}({name})"
        for name in (*(name for name, _, _ in PARTIAL_COLUMNS), "excluded_records", "downgradable_calls")
    )
    + ", sum(downgradable_cost_usd)"
)


def _merge_touched(con: duckdb.DuckDBPyConnection, high: int) -> None:
    """One row per bucket, dimension and key again where the chunk up to ``high`` added to a bucket that
    earlier chunks had rows in.

    A chunk ends at a row count, not at a bucket boundary, so the buckets it shares with the previous
    chunk would otherwise hold two rows per key (for users: the rollup twice its size). Only the
    chunk's time span is read (zone maps on bucket_us), not the whole rollup.
    """
    span = con.execute(
        f"SELECT min(bucket_us), max(bucket_us) FROM {ROLLUP_TABLE} WHERE upto_rowid = ?", [high]
    ).fetchone()
    if span is None or span[0] is None:
        return
    in_span = f"bucket_us BETWEEN {int(span[0])} AND {int(span[1])}"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _rollup_touched AS SELECT DISTINCT n.bucket_us, n.dimension "
        f"FROM {ROLLUP_TABLE} n SEMI JOIN (SELECT bucket_us, dimension FROM {ROLLUP_TABLE} "
        f"WHERE upto_rowid < {int(high)} AND {in_span}) o "
        f"ON n.bucket_us = o.bucket_us AND n.dimension = o.dimension WHERE n.upto_rowid = {int(high)}"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _rollup_merged AS SELECT {int(high)} AS upto_rowid, r.bucket_us, "
        f"r.dimension, key, provider, {_MERGED_COLUMNS} FROM {ROLLUP_TABLE} r JOIN _rollup_touched t "
        f"ON r.bucket_us = t.bucket_us AND r.dimension = t.dimension WHERE r.{in_span} "
        "GROUP BY r.bucket_us, r.dimension, key, provider"
    )
    con.execute(
        f"DELETE FROM {ROLLUP_TABLE} r USING _rollup_touched t "
        f"WHERE r.bucket_us = t.bucket_us AND r.dimension = t.dimension AND r.{in_span}"
    )
    con.execute(f"INSERT INTO {ROLLUP_TABLE} SELECT * FROM _rollup_merged")
    con.execute("DROP TABLE _rollup_merged")
    con.execute("DROP TABLE _rollup_touched")


def _forget(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DELETE FROM {ROLLUP_TABLE}")
    con.execute(f"DELETE FROM {ROLLUP_STATE_TABLE}")


def refresh_days(con: duckdb.DuckDBPyConnection, days_sql: str) -> None:
    """Sum again the UTC days listed by ``days_sql`` (one column of day-start epoch microseconds), in
    the caller's transaction, after stored rows of those days were changed in place (``reprice``)."""
    if not has_rollup(con):
        return
    mark = watermark(con)
    if mark is None:
        return  # unusable anyway: the writer's next catch-up starts again
    days = [int(row[0]) for row in con.execute(days_sql).fetchall() if row[0] is not None]
    coarse = ", ".join(f"'{name}'" for name in _COARSE_NAMES)
    for day in days:
        con.execute(
            f"DELETE FROM {ROLLUP_TABLE} "
            f"WHERE bucket_us >= ? AND bucket_us < ? AND dimension NOT IN ({coarse})",
            [day, day + DAY_US],
        )
        if mark:
            con.execute(_DAYS_SQL, [mark, day, day + DAY_US])
    for week in sorted({day // WEEK_US * WEEK_US for day in days}):
        con.execute(f"DELETE FROM {ROLLUP_TABLE} WHERE bucket_us = ? AND dimension IN ({coarse})", [week])
        if mark:
            con.execute(_WEEKS_SQL, [mark, week, week + WEEK_US])
