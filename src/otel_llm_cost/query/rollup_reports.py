"""The reports' final SQL over partial rows (:mod:`~otel_llm_cost.query.rollup_sql`): each builder gives
the same columns, types and order as the raw report of the same name in :mod:`~otel_llm_cost.query.sql`,
:mod:`~otel_llm_cost.query.explore_sql` or :mod:`~otel_llm_cost.query.pricing_sql`, or None when the
rollup cannot answer (then the raw SQL runs).

Combining partial rows: counts and sums add up; a group's spend is the sum of its priced partial spend
when it has a priced call, $0 when it has none and no unpriced call either, unknown (NULL) otherwise,
which is what ``COALESCE(sum(cost_usd), CASE WHEN <unpriced> = 0 THEN 0 END)`` gives over raw rows.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Final

from otel_llm_cost.query.dimensions import Dimension
from otel_llm_cost.query.explore_sql import ranked_per_day
from otel_llm_cost.query.rollup_sql import grain_of, partials, zone_aligned
from otel_llm_cost.query.sql import TOKEN_KINDS, Query, day_range, every_day
from otel_llm_cost.storage.rollup import DIMENSION_COLUMNS

__all__ = ["cost_by", "daily_cost", "movers", "savings", "spend_series", "totals"]

_MODEL_DIMENSIONS: Final = frozenset({"model", "upstream_model", "deployment"})


def _known_cost(flt: str = "") -> str:
    return (
        f"CASE WHEN sum(priced_calls){flt} > 0 THEN sum(cost_usd){flt} "
        f"WHEN COALESCE(sum(unpriced_calls){flt}, 0) = 0 THEN 0 END"
    )


def _count(column: str, flt: str = "") -> str:
    return f"CAST(COALESCE(sum({column}){flt}, 0) AS BIGINT)"


def _tokens(column: str) -> str:
    return f"CAST(COALESCE(sum({column}), 0) AS HUGEINT)"


_TOTAL_COLUMNS: Final = (
    "call_count",
    "unpriced_calls",
    "priced_calls",
    "cost_usd",
    *TOKEN_KINDS,
    "total_tokens",
    "priced_tokens",
    "cache_saved_usd",
    "cache_hit_calls",
    "from_cache_calls",
    "latency_ms",
    "first_start",
    "last_end",
    "excluded_records",
)


def totals(start: datetime | None, end: datetime | None, watermark: int | None) -> Query | None:
    """``sql.totals(start, end, count_excluded=True)`` (the summary) from the rollup."""
    source = partials(None, _TOTAL_COLUMNS, watermark)
    if source is None:
        return None
    rows, params = source.sql(start, end)
    sql = (
        f"SELECT {_count('call_count')} AS call_count, {_count('unpriced_calls')} AS unpriced_calls, "
        f"{_known_cost()} AS cost_usd, "
        + ", ".join(f"{_tokens(c)} AS {c}" for c in (*TOKEN_KINDS, "total_tokens", "priced_tokens"))
        + ", COALESCE(sum(cache_saved_usd), 0) AS cache_saved_usd, "
        f"{_count('cache_hit_calls')} AS cache_hit_calls, {_count('from_cache_calls')} AS from_cache_calls, "
        "COALESCE(sum(latency_ms), 0) AS latency_ms, min(first_start) AS first_start, "
        f"max(last_end) AS last_end, {_count('excluded_records')} AS excluded_records FROM ({rows})"
    )
    return Query(sql, params)


def savings(start: datetime | None, end: datetime | None, watermark: int | None) -> Query | None:
    """``pricing_sql.savings(start, end)`` from the rollup."""
    columns = (
        "call_count",
        "cache_saved_usd",
        "cache_read_tokens",
        "cache_hit_calls",
        "downgradable_calls",
        "downgradable_cost_usd",
    )
    source = partials(None, columns, watermark)
    if source is None:
        return None
    rows, params = source.sql(start, end)
    sql = (
        f"SELECT {_count('call_count')} AS call_count, "
        "COALESCE(sum(cache_saved_usd), 0) AS cache_saved_usd, "
        f"{_tokens('cache_read_tokens')} AS cache_read_tokens, "
        f"{_count('cache_hit_calls')} AS cache_hit_calls, "
        f"{_count('downgradable_calls')} AS downgradable_calls, "
        f"COALESCE(sum(downgradable_cost_usd), 0) AS downgradable_cost_usd FROM ({rows})"
    )
    return Query(sql, params)


def cost_by(
    dimension: Dimension,
    start: datetime | None,
    end: datetime | None,
    watermark: int | None,
    limit: int | None = None,
) -> Query | None:
    """``sql.cost_by(dimension, start, end)`` (with ``LIMIT limit``) from the rollup."""
    source = partials(dimension, DIMENSION_COLUMNS, watermark)
    if source is None:
        return None
    rows, params = source.sql(start, end)
    providers = (
        "string_agg(DISTINCT provider, ', ' ORDER BY provider)"
        if dimension.name in _MODEL_DIMENSIONS
        else "NULL"
    )
    sql = (
        f"SELECT key, {_known_cost()} AS total_cost_usd, {_tokens('total_tokens')} AS total_tokens, "
        f"{_count('call_count')} AS call_count, {_count('unpriced_calls')} AS unpriced_calls, "
        + ", ".join(f"{_tokens(c)} AS {c}" for c in TOKEN_KINDS)
        + f", {providers} AS provider FROM ({rows}) GROUP BY key HAVING sum(call_count) > 0 "
        "ORDER BY total_cost_usd DESC NULLS LAST, call_count DESC, key NULLS LAST"
    )
    if limit is not None:
        return Query(f"{sql} LIMIT ?", (*params, limit))
    return Query(sql, params)


_DAY_COLUMNS: Final = ("call_count", "unpriced_calls", "priced_calls", "cost_usd", "total_tokens")


def daily_cost(start: datetime, end: datetime, tz: zoneinfo.ZoneInfo, watermark: int | None) -> Query | None:
    """``sql.daily_cost(start, end, tz)`` from the rollup (when the zone's days are whole hours)."""
    source = partials(None, _DAY_COLUMNS, watermark, bucketed=True)
    if source is None or not zone_aligned(start, end, tz, source.grain):
        return None
    rows, params = source.sql(start, end)
    first_day, n_days = day_range(start, end, tz)
    sql = (
        "WITH per_day AS ("
        "  SELECT CAST(timezone(?, timezone('UTC', make_timestamp(bucket_us))) AS DATE) AS day, "
        "   CASE WHEN sum(priced_calls) > 0 THEN sum(cost_usd) END AS cost_usd, "
        "   sum(unpriced_calls) AS unpriced_calls, sum(call_count) AS call_count, "
        f"  sum(total_tokens) AS total_tokens FROM ({rows}) GROUP BY 1)"
    )
    sql = every_day(sql)
    return Query(sql, (tz.key, *params, first_day, n_days))


_SERIES_COLUMNS: Final = ("call_count", "unpriced_calls", "priced_calls", "cost_usd")


def spend_series(  # noqa: PLR0917 - the raw builder's arguments, then the watermark (functools.partial)
    dimension: Dimension,
    start: datetime,
    end: datetime,
    tz: zoneinfo.ZoneInfo,
    top: int,
    watermark: int | None,
) -> Query | None:
    """``explore_sql.spend_series(dimension, start, end, tz, top=top)`` from the rollup."""
    source = partials(dimension, _SERIES_COLUMNS, watermark, bucketed=True)
    if source is None or not zone_aligned(start, end, tz, grain_of(source.name)):
        return None
    rows, params = source.sql(start, end)
    first_day, _ = day_range(start, end, tz)
    sql = (
        "WITH base AS ("
        "  SELECT bucket_us, key, CASE WHEN sum(priced_calls) > 0 THEN sum(cost_usd) END AS cost_usd, "
        "   sum(call_count) AS call_count, sum(unpriced_calls) AS unpriced_calls "
        f"  FROM ({rows}) GROUP BY ALL HAVING sum(call_count) > 0)"
    )
    sql = ranked_per_day(sql, "bucket_us")
    return Query(sql, (*params, tz.key, top, top + 1, top, first_day))


def movers(
    dimension: Dimension, start: datetime, end: datetime, limit: int, watermark: int | None
) -> Query | None:
    """``explore_sql.movers(dimension, start, end, limit)`` from the rollup."""
    source = partials(dimension, _SERIES_COLUMNS, watermark)
    if source is None:
        return None
    previous_sql, previous_params = source.sql(start - (end - start), start)
    current_sql, current_params = source.sql(start, end)
    now, before = " FILTER (WHERE current)", " FILTER (WHERE NOT current)"
    sql = (
        f"SELECT * FROM (SELECT key, {_known_cost(now)} AS cost_usd, "
        f"{_known_cost(before)} AS previous_cost_usd, "
        f" {_count('call_count', now)} AS call_count, {_count('call_count', before)} AS previous_call_count, "
        f" {_count('unpriced_calls', now)} AS unpriced_calls "
        f"FROM (SELECT *, false AS current FROM ({previous_sql}) UNION ALL "
        f"SELECT *, true AS current FROM ({current_sql})) GROUP BY key HAVING sum(call_count) > 0) "
        "ORDER BY abs(COALESCE(cost_usd, 0) - COALESCE(previous_cost_usd, 0)) DESC, key NULLS LAST LIMIT ?"
    )
    return Query(sql, (*previous_params, *current_params, limit))
