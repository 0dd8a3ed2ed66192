"""The SQL behind the dashboard's questions: filtered breakdowns, spend over time by a dimension, biggest
movers against the previous window, one call in full, the calls matching a filter.

Pure, as :mod:`~otel_llm_cost.query.sql`: each function builds a :class:`~otel_llm_cost.query.sql.Query`
and runs nothing. A filter is ``dimension = value`` on the validated dimension expressions of
:func:`~otel_llm_cost.query.sql.resolve_dimension` (``None`` as value matches calls without one); every
value is a bound parameter.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Final

from otel_llm_cost.query.sql import (
    CALL_COLUMNS_OUT,
    UNPRICED,
    Dimension,
    Query,
    billable_where,
    day_range,
)
from otel_llm_cost.storage.schema import CALLS_TABLE

__all__ = ["Conditions", "call_detail", "calls", "movers", "spend_series"]

Conditions = tuple[tuple[str, tuple[object, ...]], ...]

# 15-minute UTC buckets never straddle a local midnight (every UTC offset since 1900 is a multiple of
# 15 minutes), so the per-bucket sums are converted to local days cheaply, as daily_cost does.
_BUCKET_US: Final = 15 * 60 * 1_000_000
_UNPRICED_COUNT: Final = f"count(*) FILTER (WHERE {UNPRICED})"

CALL_DETAIL_COLUMNS: Final = (
    f"{CALL_COLUMNS_OUT}, request_model, response_model, upstream_model, deployment, service_name, "
    "operation, convention, status_code, reasoning_tokens, cache_write_1h_tokens, input_cost_usd, "
    "cache_read_cost_usd, cache_write_cost_usd, output_cost_usd, price_source, external_cost_usd, "
    "cache_saved_usd, billable, duplicate_of, parent_span_id, tags"
)


def ranked_per_day(with_base: str, bucket_start_us: str) -> str:
    """``with_base`` (a ``WITH`` clause ending in a ``base`` table of bucket, key, cost_usd,
    call_count, unpriced_calls) completed into ``spend_series``' rows: per local day, the ``top``
    groups by spend under their rank, the rest summed under ``top + 1`` with a NULL key.
    ``bucket_start_us`` is the SQL of a bucket's start in epoch microseconds. Takes five more
    parameters after the clause's own: the zone, top, top + 1, top, the first day."""
    return (
        f"{with_base}, ranked AS ("
        "  SELECT key, row_number() OVER (ORDER BY sum(cost_usd) DESC NULLS LAST, sum(call_count) DESC, "
        "   key NULLS LAST) AS r FROM base GROUP BY key"
        "), per_day AS ("
        f"  SELECT CAST(timezone(?, timezone('UTC', make_timestamp({bucket_start_us}))) AS DATE) AS day, "
        "   CASE WHEN r <= ? THEN r ELSE ? END AS rank, CASE WHEN r <= ? THEN base.key END AS key, "
        "   sum(cost_usd) AS cost_usd, sum(call_count) AS call_count, sum(unpriced_calls) AS unpriced_calls "
        "  FROM base JOIN ranked ON ranked.key IS NOT DISTINCT FROM base.key GROUP BY ALL"
        ") "
        "SELECT day, CAST(rank AS INTEGER) AS rank, key, "
        "  COALESCE(cost_usd, CASE WHEN unpriced_calls = 0 THEN 0 END) AS total_cost_usd, "
        "  CAST(call_count AS BIGINT) AS call_count, CAST(unpriced_calls AS BIGINT) AS unpriced_calls "
        "FROM per_day WHERE day >= ? ORDER BY day, rank"
    )


def spend_series(
    dimension: Dimension,
    start: datetime,
    end: datetime,
    tz: zoneinfo.ZoneInfo,
    *,
    top: int,
    where: Conditions = (),
) -> Query:
    """Per local day and group: the ``top`` groups by spend keep their key (``rank`` 1..top), the rest
    are summed under ``rank = top + 1`` with a NULL key. Days without calls have no row."""
    first_day, _ = day_range(start, end, tz)
    where_sql, params = billable_where(start, end, where)
    sql = (
        "WITH base AS ("
        f"  SELECT epoch_us(start_time) // {_BUCKET_US} AS bucket, {dimension.expression} AS key, "
        f"   sum(cost_usd) AS cost_usd, count(*) AS call_count, {_UNPRICED_COUNT} AS unpriced_calls "
        f"  FROM {CALLS_TABLE} WHERE {where_sql} GROUP BY ALL)"
    )
    sql = ranked_per_day(sql, f"bucket * {_BUCKET_US}")
    return Query(sql, (*dimension.params, *params, tz.key, top, top + 1, top, first_day))


def _known_cost(condition: str) -> str:
    """The priced spend of the rows meeting ``condition``; NULL when all of them are unpriced."""
    unpriced = f"count(*) FILTER (WHERE {condition} AND {UNPRICED})"
    return f"COALESCE(sum(cost_usd) FILTER (WHERE {condition}), CASE WHEN {unpriced} = 0 THEN 0 END)"


def movers(dimension: Dimension, start: datetime, end: datetime, limit: int, where: Conditions = ()) -> Query:
    """Groups whose spend changed most between ``[start - (end - start), start)`` and ``[start, end)``."""
    previous_start = start - (end - start)
    where_sql, params = billable_where(previous_start, end, where)
    current, previous = "start_time >= ?", "start_time < ?"
    sql = (
        f"SELECT * FROM (SELECT {dimension.expression} AS key, "
        f" {_known_cost(current)} AS cost_usd, "
        f" {_known_cost(previous)} AS previous_cost_usd, "
        f" count(*) FILTER (WHERE {current}) AS call_count, "
        f" count(*) FILTER (WHERE {previous}) AS previous_call_count, "
        f" count(*) FILTER (WHERE {current} AND {UNPRICED}) AS unpriced_calls "
        f"FROM {CALLS_TABLE} WHERE {where_sql} GROUP BY ALL) "
        "ORDER BY abs(COALESCE(cost_usd, 0) - COALESCE(previous_cost_usd, 0)) DESC, key NULLS LAST LIMIT ?"
    )
    return Query(sql, (*dimension.params, *(start,) * 7, *params, limit))


def call_detail(span_id: str) -> Query:
    """Every column the drill-down shows for the record with ``span_id``."""
    return Query(f"SELECT {CALL_DETAIL_COLUMNS} FROM {CALLS_TABLE} WHERE span_id = ? LIMIT 1", (span_id,))


def calls(start: datetime | None, end: datetime | None, limit: int, where: Conditions = ()) -> Query:
    """The newest ``limit`` billable calls matching the filter, newest first."""
    where_sql, params = billable_where(start, end, where)
    sql = (
        f"SELECT {CALL_COLUMNS_OUT} FROM {CALLS_TABLE} WHERE {where_sql} "
        "ORDER BY start_time DESC, span_id LIMIT ?"
    )
    return Query(sql, (*params, limit))
