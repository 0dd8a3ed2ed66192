"""The SQL behind the reports that price calls again: cache savings, what-if and reprice.

Pure, as :mod:`otel_llm_cost.query.sql` (whose rules hold here too): every function builds a
:class:`~otel_llm_cost.query.sql.Query` or an SQL string and runs nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from otel_llm_cost.query.sql import BILLABLE, Query, billable_where, half_open_window
from otel_llm_cost.storage.rollup import DOWNGRADABLE_SQL
from otel_llm_cost.storage.schema import CALLS_TABLE

__all__ = [
    "REPRICE_COLUMNS",
    "REPRICE_UPDATED",
    "reprice_candidates",
    "reprice_update",
    "savings",
    "unpriced_models",
    "what_if_groups",
]


# A downgradable call carries the app's hint in its attributes JSON; defined once, with the rollup
# that counts the same calls.
_DOWNGRADABLE: Final = DOWNGRADABLE_SQL


def savings(
    start: datetime | None,
    end: datetime | None,
    conditions: tuple[tuple[str, tuple[object, ...]], ...] = (),
) -> Query:
    """One row: what prompt caching saved, and the calls the app tagged as downgradable."""
    where, params = billable_where(start, end, conditions)
    sql = (
        "SELECT count(*) AS call_count, "
        "COALESCE(sum(cache_saved_usd), 0) AS cache_saved_usd, "
        "CAST(COALESCE(sum(cache_read_tokens), 0) AS HUGEINT) AS cache_read_tokens, "
        "count(*) FILTER (WHERE cache_hit) AS cache_hit_calls, "
        "count(*) FILTER (WHERE downgradable) AS downgradable_calls, "
        "COALESCE(sum(cost_usd) FILTER (WHERE downgradable), 0) AS downgradable_cost_usd "
        f"FROM (SELECT *, {_DOWNGRADABLE} AS downgradable FROM {CALLS_TABLE} WHERE {where})"
    )
    return Query(sql, params)


_MODEL_MATCH: Final = "(request_model = ? OR response_model = ? OR upstream_model = ?)"


def what_if_groups(
    model: str,
    start: datetime | None,
    end: datetime | None,
    *,
    thresholds: tuple[int, ...],
    slot_minutes: int,
) -> Query:
    """Token sums of ``model``'s calls per price slot, tier band and priced/unpriced.

    Prices are linear in tokens within one price period and one long-context tier, so summing the
    tokens of each (UTC time slot, tier band) group and multiplying by its unit prices gives exactly
    the per-call sum with a few hundred price lookups instead of one per call. ``slot_minutes`` is
    1440 (prices change at UTC midnight) or 30 (time-of-day prices change on the half hour);
    ``band`` counts the tier thresholds a call's input exceeds.
    """
    where, params = billable_where(start, end, ((_MODEL_MATCH, (model, model, model)),))
    slot_us = slot_minutes * 60 * 1_000_000
    # How many tier thresholds the call's input exceeds; the SQL text depends only on their count.
    band = " + ".join(["0"] + ["CAST(COALESCE(input_tokens, 0) > ? AS INTEGER)"] * len(thresholds))
    sql = (
        f"SELECT epoch_us(start_time) // {slot_us} * {slot_us} AS slot_us, "
        f"{band} AS band, "
        "cost_usd IS NOT NULL AS priced, "
        "count(*) AS calls, sum(cost_usd) AS cost_usd, "
        "CAST(COALESCE(sum(COALESCE(input_tokens, 0) - COALESCE(cache_read_tokens, 0) "
        "- COALESCE(cache_write_tokens, 0)), 0) AS HUGEINT) "
        "AS uncached_input_tokens, "
        "CAST(COALESCE(sum(cache_read_tokens), 0) AS HUGEINT) AS cache_read_tokens, "
        # Writers may leave the 1-hour part NULL: then every cache write is a 5-minute one.
        "CAST(COALESCE(sum(COALESCE(cache_write_tokens, 0) - COALESCE(cache_write_1h_tokens, 0)), 0) "
        "AS HUGEINT) "
        "AS cache_write_5m_tokens, "
        "CAST(COALESCE(sum(cache_write_1h_tokens), 0) AS HUGEINT) AS cache_write_1h_tokens, "
        "CAST(COALESCE(sum(output_tokens), 0) AS HUGEINT) AS output_tokens, "
        f"count(*) FILTER (WHERE {_DOWNGRADABLE}) AS downgradable_calls "
        f"FROM {CALLS_TABLE} WHERE {where} GROUP BY ALL ORDER BY slot_us"
    )
    return Query(sql, (*thresholds, *params))


# What reprice rewrites: the money, its status and where the price came from.
REPRICE_UPDATED: Final = (
    "cost_usd",
    "input_cost_usd",
    "cache_read_cost_usd",
    "cache_write_cost_usd",
    "output_cost_usd",
    "cost_status",
    "cost_reason",
    "price_source",
    "cache_saved_usd",
    "upstream_model",
    "deployment",
)
# What reprice reads: the call's identity and usage, then the values it may rewrite (to compare).
REPRICE_COLUMNS: Final = (
    "span_id",
    "trace_id",
    "start_time",
    "request_model",
    "response_model",
    "provider",
    "operation",
    "convention",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "service_tier",
    *REPRICE_UPDATED,
)


def reprice_candidates(start: datetime | None, end: datetime | None, *, include_priced: bool) -> Query:
    """Stored records to price again: unpriced ones, or (``include_priced``) every list-priced one.

    Provider-reported costs are never recomputed: the provider's figure is the bill. Non-billable
    records are included so a duplicate record keeps the same price as the call it duplicates.
    """
    window, params = half_open_window(start, end)
    conditions = ["cost_status IS DISTINCT FROM 'reported'", *window]
    if not include_priced:
        conditions.append("cost_usd IS NULL")
    sql = (
        f"SELECT {', '.join(REPRICE_COLUMNS)} FROM {CALLS_TABLE} "
        f"WHERE {' AND '.join(conditions)} ORDER BY start_time"
    )
    return Query(sql, params)


def reprice_update(source_table: str) -> str:
    """UPDATE llm_calls from a registered table of (span_id, trace_id, REPRICE_UPDATED...) rows."""
    assignments = ", ".join(f"{col} = new.{col}" for col in REPRICE_UPDATED)
    return (
        f"UPDATE {CALLS_TABLE} SET {assignments} FROM {source_table} AS new "
        f"WHERE {CALLS_TABLE}.span_id = new.span_id AND {CALLS_TABLE}.trace_id = new.trace_id"
    )


def unpriced_models() -> Query:
    """Billable calls stored as unpriced, by (model, provider, service tier): how many, when, and why."""
    sql = (
        "SELECT COALESCE(response_model, request_model) AS model, provider, service_tier, "
        "count(*) AS calls, min(start_time) AS first_seen, max(start_time) AS last_seen, "
        "min(cost_reason) AS reason, "
        "count(*) FILTER (WHERE input_tokens IS NULL AND output_tokens IS NULL) AS without_usage "
        f"FROM {CALLS_TABLE} WHERE {BILLABLE} AND cost_status = ? "
        "GROUP BY ALL ORDER BY calls DESC, model NULLS LAST, provider NULLS LAST"
    )
    return Query(sql, ("unpriced",))
