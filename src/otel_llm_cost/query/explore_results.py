"""The typed results of the exploring reports (:mod:`~otel_llm_cost.query.explore`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from otel_llm_cost.query.tabular import Source, Tabular

__all__ = ["CallDetail", "Mover", "SeriesPoint"]


@dataclass(frozen=True, slots=True)
class SeriesPoint(Tabular):
    """Spend of one group on one local day (``CostStore.spend_series``).

    Attributes:
        day: the calendar day in the report's zone.
        rank: the group's place by spend over the whole window (1 = most); ``top + 1`` for the others.
        key: the group's value; ``None`` for calls without one and for the summed others (rank top + 1).
        total_cost_usd: priced spend; ``None`` when every call of that day and group is unpriced.
        call_count: billable calls.
        unpriced_calls: calls whose price is unknown.
    """

    day: date
    rank: int
    key: str | None
    total_cost_usd: Decimal | None
    call_count: int
    unpriced_calls: int
    _source: Source | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Mover(Tabular):
    """A group's spend in a window against the window of the same length just before it.

    A cost is ``None`` when every call of the group in that window is unpriced (never a silent $0).
    """

    key: str | None
    cost_usd: Decimal | None
    previous_cost_usd: Decimal | None
    call_count: int
    previous_call_count: int
    unpriced_calls: int
    _source: Source | None = field(default=None, repr=False, compare=False)

    @property
    def change_usd(self) -> Decimal:
        """This window's priced spend minus the previous window's."""
        return (self.cost_usd or Decimal(0)) - (self.previous_cost_usd or Decimal(0))


@dataclass(frozen=True, slots=True)
class CallDetail(Tabular):
    """One stored call in full: tokens, cost by kind, the price's source, why it is unpriced, ids."""

    span_id: str
    trace_id: str
    start_time: datetime
    end_time: datetime | None
    latency_ms: float | None
    model: str | None
    provider: str | None
    feature: str | None
    agent: str | None
    user_id: str | None
    org_id: str | None
    session_id: str | None
    workflow_id: str | None
    workflow_label: str | None
    step: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    total_tokens: int | None
    cost_usd: Decimal | None
    cost_status: str | None
    cost_reason: str | None
    from_cache: bool | None
    request_model: str | None
    response_model: str | None
    upstream_model: str | None
    deployment: str | None
    service_name: str | None
    operation: str | None
    convention: str | None
    status_code: str | None
    reasoning_tokens: int | None
    cache_write_1h_tokens: int | None
    input_cost_usd: Decimal | None
    cache_read_cost_usd: Decimal | None
    cache_write_cost_usd: Decimal | None
    output_cost_usd: Decimal | None
    price_source: str | None
    external_cost_usd: Decimal | None
    cache_saved_usd: Decimal | None
    billable: bool | None
    duplicate_of: str | None
    parent_span_id: str | None
    tags: dict[str, str] | None
    _source: Source | None = field(default=None, repr=False, compare=False)

    @property
    def request_cost_usd(self) -> Decimal | None:
        """The part of the cost not charged per token (a per-request fee): total minus the token parts."""
        if self.cost_usd is None:
            return None
        parts = (
            self.input_cost_usd,
            self.cache_read_cost_usd,
            self.cache_write_cost_usd,
            self.output_cost_usd,
        )
        return self.cost_usd - sum((p for p in parts if p is not None), Decimal(0))
