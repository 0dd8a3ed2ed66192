"""The aggregation SQL behind :class:`~otel_llm_cost.store.CostStore` and the CLI reports.

Pure: every function builds a :class:`Query` (SQL text plus bound parameters) and runs nothing, so the
same text can be timed against hand-written SQL (benchmarks/bench_store.py) and read in one place.

Rules every query here follows:
- Only billable rows are summed: the same LLM call is often recorded twice (the Anthropic SDK emits its
  own span next to an instrumentation's, agent and workflow spans repeat their children's totals), and
  the extra records are stored with ``billable = false``.
- Windows are half-open ``[start, end)`` on ``start_time``, bound as TIMESTAMPTZ parameters; the
  predicate is built in one place, :func:`half_open_window` (budgets use it too).
- Money is summed as DECIMAL; the sum is NULL when every call of a group is unpriced, so such a
  group reads "unknown", never $0. Unpriced calls are counted beside the money.
- SQL text is assembled only from the fixed dimension table below; every value (including a custom tag
  key) is a bound parameter.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

from otel_llm_cost._money import MONEY_SCALE, SUM_PRECISION
from otel_llm_cost.query.dimensions import (
    DIMENSIONS,
    MODEL_EXPR,
    TAG_PREFIX,
    Dimension,
    resolve_dimension,
)
from otel_llm_cost.storage.schema import CALLS_TABLE

__all__ = [
    "BILLABLE",
    "CALL_COLUMNS_OUT",
    "DIMENSIONS",
    "GROUP_AGGREGATES",
    "KNOWN_COST",
    "TAG_PREFIX",
    "TOKEN_SPLIT",
    "UNPRICED",
    "Dimension",
    "Query",
    "billable_where",
    "check_window",
    "cost_by",
    "daily_cost",
    "day_range",
    "export_calls",
    "half_open_window",
    "resolve_dimension",
    "resolve_timezone",
    "top_calls",
    "totals",
    "workflow_steps",
]

BILLABLE: Final = "billable IS DISTINCT FROM false"
# Unknown price; a call answered from an application response cache had no API spend, so its NULL
# cost is not "unknown". Budgets (_budget_sql) use the same one.
UNPRICED: Final = "cost_usd IS NULL AND from_cache IS NOT TRUE"
_UNPRICED_COUNT: Final = f"count(*) FILTER (WHERE {UNPRICED})"
# The known spend, or NULL when every call of the group is unpriced (never a silent $0).
_KNOWN_COST: Final = f"COALESCE(sum(cost_usd), CASE WHEN {_UNPRICED_COUNT} = 0 THEN 0 END)"

KNOWN_COST: Final = _KNOWN_COST
"""SQL aggregate: the known spend of a group, NULL when every call of it is unpriced."""


@dataclass(frozen=True, slots=True)
class Query:
    """SQL text and its positional parameters."""

    sql: str
    params: tuple[object, ...] = ()


def check_window(start: datetime | None, end: datetime | None) -> None:
    """Raise ValueError unless both bounds are timezone-aware (or None) and start < end."""
    for label, value in (("start", start), ("end", end)):
        if value is None:
            continue
        if not isinstance(value, datetime):
            raise TypeError(f"{label} must be a datetime, not {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{label}={value.isoformat()} is naive; pass a timezone-aware datetime")
    if start is not None and end is not None and not start < end:
        raise ValueError(f"empty window: start {start.isoformat()} is not before end {end.isoformat()}")


def resolve_timezone(tz: str | zoneinfo.ZoneInfo) -> zoneinfo.ZoneInfo:
    """The IANA zone for ``tz``; raises ValueError for a name the zone database does not know."""
    if isinstance(tz, zoneinfo.ZoneInfo):
        return tz
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)") from exc


def half_open_window(
    start: datetime | None, end: datetime | None, column: str = "start_time"
) -> tuple[tuple[str, ...], tuple[object, ...]]:
    """The conditions (to AND together) and parameters of the half-open window ``[start, end)``.

    A call belongs to the window its start time falls in: ``start`` inclusive, ``end`` exclusive, so
    adjacent windows (days, weeks, budget periods) count every call exactly once. ``None`` leaves that
    side unbounded (no condition).

    Example::

        conditions, params = half_open_window(start, None)   # (("start_time >= ?",), (start,))
        sql = " AND ".join(["billable", *conditions])
    """
    conditions: list[str] = []
    params: list[object] = []
    if start is not None:
        conditions.append(f"{column} >= ?")
        params.append(start)
    if end is not None:
        conditions.append(f"{column} < ?")
        params.append(end)
    return tuple(conditions), tuple(params)


def billable_where(
    start: datetime | None, end: datetime | None, extra: tuple[tuple[str, tuple[object, ...]], ...] = ()
) -> tuple[str, tuple[object, ...]]:
    """WHERE text and parameters: billable calls in ``[start, end)`` that meet every ``extra`` condition."""
    window, window_params = half_open_window(start, end)
    conditions = [BILLABLE, *window]
    params: list[object] = list(window_params)
    for condition, values in extra:
        conditions.append(condition)
        params.extend(values)
    return " AND ".join(conditions), tuple(params)


TOKEN_KINDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
"""The token columns a breakdown splits its tokens into."""
TOKEN_SPLIT: Final = ", ".join(f"CAST(COALESCE(sum({col}), 0) AS HUGEINT) AS {col}" for col in TOKEN_KINDS)
"""The token sums of a group by kind (input includes cache reads and writes; output includes reasoning)."""

GROUP_AGGREGATES: Final = (
    f"{_KNOWN_COST} AS total_cost_usd, "
    "CAST(COALESCE(sum(total_tokens), 0) AS HUGEINT) AS total_tokens, "
    "count(*) AS call_count, "
    f"{_UNPRICED_COUNT} AS unpriced_calls, {TOKEN_SPLIT}"
)
# Model rows name their provider(s); other groupings leave it NULL.
_MODEL_DIMENSIONS: Final = frozenset({"model", "upstream_model", "deployment"})
_PROVIDERS: Final = "string_agg(DISTINCT provider, ', ' ORDER BY provider)"


def cost_by(
    dimension: Dimension,
    start: datetime | None,
    end: datetime | None,
    *,
    session_id: str | None = None,
    conditions: tuple[tuple[str, tuple[object, ...]], ...] = (),
) -> Query:
    """Rows of (key, total_cost_usd, total_tokens, call_count, unpriced_calls), highest cost first.

    ``where`` adds conditions (SQL text, its parameters), as :func:`billable_where` takes them.
    """
    extra = (("session_id = ?", (session_id,)),) if session_id is not None else ()
    where, where_params = billable_where(start, end, extra + conditions)
    sql = (
        f"SELECT {dimension.expression} AS key, {GROUP_AGGREGATES}, "
        f"{_PROVIDERS if dimension.name in _MODEL_DIMENSIONS else 'NULL'} AS provider "
        f"FROM {CALLS_TABLE} WHERE {where} GROUP BY ALL "
        "ORDER BY total_cost_usd DESC NULLS LAST, call_count DESC, key NULLS LAST"
    )
    return Query(sql, dimension.params + where_params)


def totals(
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    workflow_id: str | None = None,
    session_id: str | None = None,
    count_excluded: bool = False,
    conditions: tuple[tuple[str, tuple[object, ...]], ...] = (),
) -> Query:
    """One row of totals over the window (and workflow or session, when given).

    Columns: call_count, unpriced_calls, cost_usd (known part; NULL when nothing is priced),
    the token sums, cache_saved_usd, cache_hit_calls, from_cache_calls, latency_ms, first_start,
    last_end, excluded_records (with ``count_excluded``: non-billable records in the same scope, shown
    so double counting is visibly avoided; 0 otherwise).
    """
    extra: list[tuple[str, tuple[object, ...]]] = []
    if workflow_id is not None:
        extra.append(("workflow_id = ?", (workflow_id,)))
    if session_id is not None:
        extra.append(("session_id = ?", (session_id,)))
    where, params = billable_where(start, end, (*extra, *conditions))
    excluded_where = where.replace(BILLABLE, "billable = false", 1)
    tokens = ", ".join(
        f"CAST(COALESCE(sum({col}), 0) AS HUGEINT) AS {col}"
        for col in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "total_tokens",
        )
    )
    sql = (
        f"SELECT count(*) AS call_count, {_UNPRICED_COUNT} AS unpriced_calls, "
        f"{_KNOWN_COST} AS cost_usd, {tokens}, "
        "CAST(COALESCE(sum(total_tokens) FILTER (WHERE cost_usd IS NOT NULL), 0) AS HUGEINT) "
        "AS priced_tokens, "
        "COALESCE(sum(cache_saved_usd), 0) AS cache_saved_usd, "
        "count(*) FILTER (WHERE cache_hit) AS cache_hit_calls, "
        "count(*) FILTER (WHERE from_cache) AS from_cache_calls, "
        "COALESCE(sum(duration_ms), 0) AS latency_ms, "
        "min(start_time) AS first_start, max(end_time) AS last_end, "
        # A second (cheap, count-only) scan; only summary() asks for it.
        + (f"(SELECT count(*) FROM {CALLS_TABLE} WHERE {excluded_where})" if count_excluded else "0")
        + f" AS excluded_records FROM {CALLS_TABLE} WHERE {where}"
    )
    return Query(sql, params + params if count_excluded else params)


CALL_COLUMNS_OUT: Final = (
    "span_id, trace_id, start_time, end_time, duration_ms AS latency_ms, "
    f"{MODEL_EXPR} AS model, provider, feature, agent, user_id, org_id, session_id, workflow_id, "
    "workflow_label, step, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
    "total_tokens, cost_usd, cost_status, cost_reason, from_cache, reasoning_tokens, "
    "time_to_first_token_ms, conversation_id, parent_span_id"
)


def workflow_steps(workflow_id: str) -> Query:
    """One row per billable call of a workflow, in start order."""
    where, params = billable_where(None, None, (("workflow_id = ?", (workflow_id,)),))
    sql = f"SELECT {CALL_COLUMNS_OUT} FROM {CALLS_TABLE} WHERE {where} ORDER BY start_time, span_id"
    return Query(sql, params)


def top_calls(
    n: int,
    start: datetime | None,
    end: datetime | None,
    conditions: tuple[tuple[str, tuple[object, ...]], ...] = (),
) -> Query:
    """The ``n`` most expensive billable calls (unpriced calls cannot rank and are left out)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    where, params = billable_where(start, end, conditions)
    sql = (
        f"SELECT {CALL_COLUMNS_OUT} FROM {CALLS_TABLE} WHERE {where} AND cost_usd IS NOT NULL "
        "ORDER BY cost_usd DESC, start_time LIMIT ?"
    )
    return Query(sql, (*params, n))


def day_range(start: datetime, end: datetime, tz: zoneinfo.ZoneInfo) -> tuple[date, int]:
    """First local calendar day touched by ``[start, end)`` and how many days the window touches."""
    first = start.astimezone(tz).date()
    # end is exclusive: a window ending exactly at local midnight does not touch that day.
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    return first, (last - first).days + 1


# Every UTC offset in the zone database since 1900 is a multiple of 15 minutes, and DST switches
# happen on such boundaries, so no 15-minute UTC bucket straddles a local midnight. Summing per
# bucket first (integer arithmetic) and converting only the few bucket starts to local days keeps
# the costly ICU time-zone conversion off the 10M-row scan.
_BUCKET_US: Final = 15 * 60 * 1_000_000
# A day without calls reads $0 in the type of a sum of money, so every row of the column has one type.
_SUM_TYPE: Final = f"DECIMAL({SUM_PRECISION},{MONEY_SCALE})"


def every_day(with_per_day: str) -> str:
    """``with_per_day`` (a ``WITH`` clause ending in a ``per_day`` table of day, cost_usd,
    unpriced_calls, call_count, total_tokens) completed into one row per day of the window, days
    without calls as 0. Takes two more parameters after the clause's own: the first day, the number
    of days."""
    return (
        f"{with_per_day}, days AS ("
        "  SELECT CAST(? AS DATE) + CAST(i AS INTEGER) AS day FROM range(?) AS r(i)"
        ") "
        "SELECT days.day, "
        f"  CASE WHEN per_day.day IS NULL THEN CAST(0 AS {_SUM_TYPE}) "
        "    ELSE COALESCE(per_day.cost_usd, CASE WHEN per_day.unpriced_calls = 0 THEN 0 END) END "
        "    AS total_cost_usd, "
        "  CAST(COALESCE(per_day.total_tokens, 0) AS HUGEINT) AS total_tokens, "
        "  CAST(COALESCE(per_day.call_count, 0) AS BIGINT) AS call_count, "
        "  CAST(COALESCE(per_day.unpriced_calls, 0) AS BIGINT) AS unpriced_calls "
        "FROM days LEFT JOIN per_day ON per_day.day = days.day ORDER BY days.day"
    )


def daily_cost(
    start: datetime,
    end: datetime,
    tz: zoneinfo.ZoneInfo,
    conditions: tuple[tuple[str, tuple[object, ...]], ...] = (),
) -> Query:
    """One row per local calendar day touched by ``[start, end)``, days without calls included as 0."""
    first_day, n_days = day_range(start, end, tz)
    where_sql, params = billable_where(start, end, conditions)
    sql = (
        f"WITH buckets AS ("
        f"  SELECT epoch_us(start_time) // {_BUCKET_US} AS bucket, sum(cost_usd) AS cost_usd, "
        f"   {_UNPRICED_COUNT} AS unpriced_calls, count(*) AS call_count, "
        "   COALESCE(sum(total_tokens), 0) AS total_tokens "
        f"  FROM {CALLS_TABLE} WHERE {where_sql} GROUP BY 1"
        "), per_day AS ("
        f"  SELECT CAST(timezone(?, timezone('UTC', make_timestamp(bucket * {_BUCKET_US}))) AS DATE) AS day, "
        "   sum(cost_usd) AS cost_usd, sum(unpriced_calls) AS unpriced_calls, sum(call_count) AS call_count, "
        "   sum(total_tokens) AS total_tokens "
        "  FROM buckets GROUP BY 1)"
    )
    sql = every_day(sql)
    return Query(sql, (*params, tz.key, first_day, n_days))


def export_calls(
    start: datetime | None,
    end: datetime | None,
    *,
    include_non_billable: bool = False,
    conditions: tuple[tuple[str, tuple[object, ...]], ...] = (),
) -> Query:
    """Every stored column of the calls in the window, in start order (the finance export)."""
    where, params = billable_where(start, end, conditions)
    if include_non_billable:
        where = where.replace(BILLABLE, "true", 1)
    return Query(f"SELECT * FROM {CALLS_TABLE} WHERE {where} ORDER BY start_time, span_id", params)
