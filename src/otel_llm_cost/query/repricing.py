"""Pricing stored calls again: what-if on another model, and reprice with a new price book.

Both read token counts from the store and price them in Python with a
:class:`~otel_llm_cost.pricing.book.PriceBook`; the store's public methods (``CostStore.what_if``,
``CostStore.reprice``) validate and document, these functions do the work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import duckdb
import pyarrow as pa

from otel_llm_cost._money import EPOCH, TOKENS_PER_MILLION, money_arrow_type, quantize_usd
from otel_llm_cost.conventions.usage import Usage
from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.query import pricing_sql as _queries
from otel_llm_cost.query.reader import Reader
from otel_llm_cost.query.results import RepriceResult, WhatIf
from otel_llm_cost.storage import rollup as _rollup
from otel_llm_cost.storage import sessions as _sessions
from otel_llm_cost.storage.schema import CALL_COLUMNS, CALLS_TABLE, MONEY_TYPE

if TYPE_CHECKING:
    from otel_llm_cost.pricing import CostBreakdown, PriceBook, PriceTier, UnitPrices

__all__ = ["reprice", "what_if"]

_ZERO: Final = Decimal(0)
_MONEY_COLUMNS: Final = frozenset(name for name, sql_type, _ in CALL_COLUMNS if sql_type == MONEY_TYPE)
# What makes a record "changed": its money, status or price source (not the free-text reason).
_REPRICE_COMPARED: Final = (
    "cost_usd",
    "input_cost_usd",
    "cache_read_cost_usd",
    "cache_write_cost_usd",
    "output_cost_usd",
    "cost_status",
    "price_source",
)
_REPRICED_TABLE: Final = "_repriced_calls"


def what_if(
    reader: Reader,
    from_model: str,
    to_model: str,
    start: datetime | None,
    end: datetime | None,
    *,
    pricebook: PriceBook,
    to_provider: str | None,
) -> WhatIf:
    """``CostStore.what_if`` (see there); the window is already checked."""
    now = datetime.now(UTC)
    probes = [pricebook.unit_prices(to_model, to_provider, at=end or now)]
    if start is not None:
        probes.append(pricebook.unit_prices(to_model, to_provider, at=start))
    thresholds = frozenset(t.above_input_tokens for p in probes for t in p.tiers)
    slot_minutes = 30 if any(p.time_of_day_pricing for p in probes) else 24 * 60
    while True:
        _source, records = reader.records(
            _queries.what_if_groups(
                from_model, start, end, thresholds=tuple(sorted(thresholds)), slot_minutes=slot_minutes
            )
        )
        priced = _price_groups(records, pricebook, to_model, to_provider, tuple(sorted(thresholds)))
        if priced.thresholds_seen <= thresholds:
            break
        # A price period in the window has a tier boundary the grouping did not split on.
        thresholds |= priced.thresholds_seen
    return WhatIf(
        from_model=from_model,
        to_model=to_model,
        start=start,
        end=end,
        calls=sum(r["calls"] for r in records),
        unpriced_calls=sum(r["calls"] for r in records if not r["priced"]),
        actual_cost_usd=sum((r["cost_usd"] for r in records if r["priced"]), _ZERO),
        projected_cost_usd=priced.total_usd,
        projected_priced_cost_usd=priced.priced_usd,
        downgradable_calls=sum(r["downgradable_calls"] for r in records),
        price_lookups=priced.lookups,
    )


def reprice(
    reader: Reader,
    start: datetime | None,
    end: datetime | None,
    *,
    pricebook: PriceBook,
    include_priced: bool,
    dry_run: bool,
    progress: Callable[[int], None] | None,
) -> RepriceResult:
    """``CostStore.reprice`` (see there); the window and the store's writability are already checked."""
    _source, records = reader.records(_queries.reprice_candidates(start, end, include_priced=include_priced))
    changes = _Changes()
    memo: dict[tuple[Usage, datetime], CostBreakdown] = {}
    for index, record in enumerate(records, 1):
        usage = _usage_of(record)
        # Prices change at UTC midnight or on the half hour (time-of-day prices), never inside a slot.
        slot = _half_hour_floor(record["start_time"])
        breakdown = memo.get((usage, slot))
        if breakdown is None:
            breakdown = pricebook.compute_cost(usage, at=slot)
            memo[(usage, slot)] = breakdown
        changes.add(record, _reprice_values(record, breakdown))
        if progress is not None and (index % 1000 == 0 or index == len(records)):
            progress(1000 if index % 1000 == 0 else index % 1000)
    if changes.rows and not dry_run:
        _apply(reader, changes.rows)
    return RepriceResult(
        rows_examined=len(records),
        rows_changed=len(changes.rows),
        rows_newly_priced=changes.newly_priced,
        rows_still_unpriced=changes.still_unpriced,
        usd_changed=changes.usd_changed,
        dry_run=dry_run,
    )


class _Changes:
    """The records a reprice rewrites, and its tallies."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.newly_priced = 0
        self.still_unpriced = 0
        self.usd_changed = _ZERO

    def add(self, record: Mapping[str, Any], new: dict[str, Any]) -> None:
        if new["cost_usd"] is None:
            self.still_unpriced += 1
        if any(new[col] != record[col] for col in _REPRICE_COMPARED):
            self.rows.append({"span_id": record["span_id"], "trace_id": record["trace_id"], **new})
            if record["cost_usd"] is None and new["cost_usd"] is not None:
                self.newly_priced += 1
            self.usd_changed += (new["cost_usd"] or _ZERO) - (record["cost_usd"] or _ZERO)


def _apply(reader: Reader, changed: list[dict[str, Any]]) -> None:
    money = money_arrow_type()
    schema = pa.schema(
        [("span_id", pa.string()), ("trace_id", pa.string())]
        + [(col, money if col in _MONEY_COLUMNS else pa.string()) for col in _queries.REPRICE_UPDATED]
    )
    table = pa.Table.from_pylist(changed, schema=schema)
    # The file is held for the UPDATE only, not while Python prices the candidates: a reprice of
    # many rows must not make the exporting application spool. On a lake it commits under the
    # writers' commit lock, as every writer of a lake does.
    with reader.access.writing(), reader.access.connect() as connection:
        connection.register(_REPRICED_TABLE, table)
        try:
            connection.begin()
            connection.execute(_queries.reprice_update(_REPRICED_TABLE))
            _rollup.refresh_days(
                connection,
                f"SELECT DISTINCT epoch_us(start_time) // {_rollup.DAY_US} * {_rollup.DAY_US} "
                f"FROM {CALLS_TABLE} t SEMI JOIN {_REPRICED_TABLE} n "
                "ON t.span_id = n.span_id AND t.trace_id = n.trace_id",
            )
            _sessions.refresh(
                connection,
                f"SELECT t.session_id FROM {CALLS_TABLE} t SEMI JOIN {_REPRICED_TABLE} n "
                "ON t.span_id = n.span_id AND t.trace_id = n.trace_id WHERE t.session_id IS NOT NULL",
            )
            connection.commit()
        except duckdb.Error as exc:
            connection.rollback()
            where = reader.access.path or "the store"
            raise StorageError(f"reprice could not update {where}: {exc}") from exc
        finally:
            connection.unregister(_REPRICED_TABLE)


def _half_hour_floor(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return value.replace(minute=value.minute - value.minute % 30, second=0, microsecond=0)


def _usage_of(record: Mapping[str, Any]) -> Usage:
    def count(name: str) -> int:
        return int(record[name] or 0)

    return Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_read_tokens=count("cache_read_tokens"),
        cache_write_tokens=count("cache_write_tokens"),
        cache_write_1h_tokens=count("cache_write_1h_tokens"),
        reasoning_tokens=count("reasoning_tokens"),
        request_model=record["request_model"],
        response_model=record["response_model"],
        provider=record["provider"],
        operation=record["operation"],
        convention=record["convention"] or "gen_ai",
        # A record stored without token counts stays unpriced ("no usage reported"), never $0.
        usage_reported=record["input_tokens"] is not None or record["output_tokens"] is not None,
        service_tier=record["service_tier"].strip().lower() if record["service_tier"] else None,
    )


def _reprice_values(record: Mapping[str, Any], breakdown: CostBreakdown) -> dict[str, Any]:
    return {
        "cost_usd": breakdown.total_usd,
        "input_cost_usd": breakdown.input_usd,
        "cache_read_cost_usd": breakdown.cache_read_usd,
        "cache_write_cost_usd": breakdown.cache_write_usd,
        "output_cost_usd": breakdown.output_usd,
        "cost_status": str(breakdown.status),
        "cost_reason": breakdown.reason,
        "price_source": breakdown.source,
        "cache_saved_usd": breakdown.cache_saved_usd,
        "upstream_model": breakdown.model_id or record["upstream_model"],
        "deployment": breakdown.deployment or record["deployment"],
    }


@dataclass(frozen=True, slots=True)
class _PricedGroups:
    total_usd: Decimal
    priced_usd: Decimal
    lookups: int
    thresholds_seen: frozenset[int]


def _price_groups(
    records: Sequence[Mapping[str, Any]],
    pricebook: PriceBook,
    model: str,
    provider: str | None,
    thresholds: tuple[int, ...],
) -> _PricedGroups:
    total = priced = _ZERO
    lookups = 0
    seen: set[int] = set()
    prices: UnitPrices | None = None
    for record in records:
        at = EPOCH + timedelta(microseconds=record["slot_us"])
        if prices is None or not _in_force(prices, at):
            prices = pricebook.unit_prices(model, provider, at=at)
            lookups += 1
            seen.update(t.above_input_tokens for t in prices.tiers)
        band = record["band"]
        # The call's input exceeds thresholds[band - 1]: the highest tier at or below it applies.
        crossed = thresholds[band - 1] if band else None
        tier = max(
            (t for t in prices.tiers if crossed is not None and t.above_input_tokens <= crossed),
            key=lambda t: t.above_input_tokens,
            default=None,
        )
        rates: UnitPrices | PriceTier = tier if tier is not None else prices
        cost = (
            record["uncached_input_tokens"] * rates.input_mtok
            + record["cache_read_tokens"] * rates.cache_read_mtok
            + record["cache_write_5m_tokens"] * rates.cache_write_5m_mtok
            + record["cache_write_1h_tokens"] * rates.cache_write_1h_mtok
            + record["output_tokens"] * rates.output_mtok
        ) / TOKENS_PER_MILLION + prices.request_usd * record["calls"]
        total += cost
        if record["priced"]:
            priced += cost
    return _PricedGroups(quantize_usd(total), quantize_usd(priced), lookups, frozenset(seen))


def _in_force(prices: UnitPrices, at: datetime) -> bool:
    if prices.time_of_day_pricing:
        return False
    day = at.date()
    return (prices.valid_from is None or prices.valid_from <= day) and (
        prices.valid_until is None or day < prices.valid_until
    )
