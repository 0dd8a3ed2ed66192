"""The typed results of CostStore's reports: frozen dataclasses with exact Decimal money.

Each result read from a store also carries the rows it was built from (see
:mod:`otel_llm_cost.query.tabular`), so ``.arrow()``, ``.relation()`` and ``.df()`` continue in Arrow,
DuckDB or pandas. Conventions: a call whose price is unknown is counted in ``unpriced_calls`` and never
adds $0 silently (a group with no priced call has ``total_cost_usd = None``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Self

from otel_llm_cost.query.tabular import Source, Tabular

__all__ = [
    "AlertRow",
    "CallRow",
    "CostRow",
    "DailyCost",
    "RepriceResult",
    "Savings",
    "Summary",
    "WhatIf",
    "WorkflowTotals",
]

_ZERO = Decimal(0)
_THOUSAND = Decimal(1000)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class CostRow(Tabular):
    """Spend of one group (a model, a feature, a user...) in a window.

    Attributes:
        key: the group's value (``None`` for calls without it, e.g. no feature tag).
        total_cost_usd: sum over the group's priced calls; ``None`` when none of them is priced.
        total_tokens: input + output tokens of every call in the group.
        call_count: billable calls.
        unpriced_calls: calls whose price is unknown (not included in ``total_cost_usd``).
        input_tokens: all input, cache reads and writes included.
        output_tokens: all output, reasoning included.
        cache_read_tokens, cache_write_tokens, reasoning_tokens: the parts of those.
        provider: on model rows, the provider(s) that served the model (``None`` elsewhere).
    """

    key: str | None
    total_cost_usd: Decimal | None
    total_tokens: int
    call_count: int
    unpriced_calls: int
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    provider: str | None = None
    _source: Source | None = field(default=None, repr=False, compare=False)

    @property
    def cache_hit_rate(self) -> float:
        """cache_read / (cache_read + cache_write) tokens, as in ``Summary``; 0 when both are 0."""
        denominator = self.cache_read_tokens + self.cache_write_tokens
        return self.cache_read_tokens / denominator if denominator else 0.0

    @property
    def cache_input_share(self) -> float:
        """Share of the group's input tokens read from the prompt cache; 0 without input."""
        return self.cache_read_tokens / self.input_tokens if self.input_tokens else 0.0


@dataclass(frozen=True, slots=True)
class DailyCost(Tabular):
    """Spend of one calendar day in the requested time zone (days without calls have zero everything)."""

    day: date
    total_cost_usd: Decimal | None
    total_tokens: int
    call_count: int
    unpriced_calls: int
    _source: Source | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class CallRow(Tabular):
    """One billable LLM call (a workflow step, or a row of ``top_calls``)."""

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
    reasoning_tokens: int | None = None
    time_to_first_token_ms: float | None = None
    conversation_id: str | None = None
    parent_span_id: str | None = None
    _source: Source | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Summary(Tabular):
    """Totals over a window (``CostStore.summary``), a session or a workflow.

    Attributes:
        cost_usd: spend of the priced calls (``None`` if there are calls and none is priced).
        unpriced_calls: calls whose price is unknown, not in ``cost_usd``.
        priced_tokens: tokens of the priced calls (the denominator of ``cost_per_1k_tokens_usd``).
        cache_saved_usd: what prompt-cache reads saved against the full input price.
        excluded_records: non-billable records in scope (duplicate records of a call, agent totals).
    """

    start: datetime | None
    end: datetime | None
    call_count: int
    unpriced_calls: int
    cost_usd: Decimal | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    total_tokens: int
    priced_tokens: int
    cache_saved_usd: Decimal
    cache_hit_calls: int
    from_cache_calls: int
    latency_ms: float
    first_start: datetime | None
    last_end: datetime | None
    excluded_records: int
    _source: Source | None = field(default=None, repr=False, compare=False)

    @property
    def priced_calls(self) -> int:
        return self.call_count - self.unpriced_calls

    @property
    def cache_hit_rate(self) -> float:
        """cache_read / (cache_read + cache_write) tokens; 0 when both are 0."""
        denominator = self.cache_read_tokens + self.cache_write_tokens
        return self.cache_read_tokens / denominator if denominator else 0.0

    @property
    def cache_input_share(self) -> float:
        """Share of input tokens served from the prompt cache (cache_read / input); 0 without input."""
        return self.cache_read_tokens / self.input_tokens if self.input_tokens else 0.0

    @property
    def avg_cost_per_call_usd(self) -> Decimal | None:
        """Average over priced calls; ``None`` when no call is priced."""
        if self.cost_usd is None or not self.priced_calls:
            return None
        return self.cost_usd / self.priced_calls

    @property
    def cost_per_1k_tokens_usd(self) -> Decimal | None:
        """Spend per 1,000 tokens of priced calls; ``None`` when no priced call used tokens."""
        if self.cost_usd is None or not self.priced_tokens:
            return None
        return self.cost_usd * _THOUSAND / self.priced_tokens


@dataclass(frozen=True, slots=True)
class WorkflowTotals(Tabular):
    """Totals of one workflow run (every billable call tagged with its ``workflow_id``).

    Attributes:
        cost_usd: the workflow's cost, ``None`` if any step is unpriced (see ``known_cost_usd``).
        known_cost_usd: the sum over priced steps.
        latency_ms: sum of step latencies (not wall-clock: steps may overlap).
        cached_steps: steps served from an application response cache (no API spend).
    """

    workflow_id: str
    step_count: int
    unpriced_steps: int
    cost_usd: Decimal | None
    known_cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    total_tokens: int
    latency_ms: float
    cached_steps: int
    started_at: datetime | None
    ended_at: datetime | None
    _source: Source | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_totals(cls, workflow_id: str, totals: Mapping[str, Any], source: Source | None = None) -> Self:
        """The workflow's totals from a row of the totals query (its calls are the workflow's steps)."""
        known = totals["cost_usd"] if totals["cost_usd"] is not None else _ZERO
        return cls(
            workflow_id=workflow_id,
            step_count=totals["call_count"],
            unpriced_steps=totals["unpriced_calls"],
            cost_usd=known if totals["unpriced_calls"] == 0 else None,
            known_cost_usd=known,
            input_tokens=totals["input_tokens"],
            output_tokens=totals["output_tokens"],
            cache_read_tokens=totals["cache_read_tokens"],
            cache_write_tokens=totals["cache_write_tokens"],
            total_tokens=totals["total_tokens"],
            latency_ms=totals["latency_ms"],
            cached_steps=totals["from_cache_calls"],
            started_at=_utc(totals["first_start"]),
            ended_at=_utc(totals["last_end"]),
            _source=source,
        )


@dataclass(frozen=True, slots=True)
class Savings(Tabular):
    """What prompt caching saved in a window, and the calls the app tagged as downgradable.

    Attributes:
        cache_saved_usd: cache-read tokens priced at the full input price, minus what they cost.
        downgradable_calls: calls whose span says a cheaper model would do (``prompt.could_use_haiku``
            or a ``model.recommendation`` naming a model: empty and ``keep_current``-like values are
            not recommendations); ``downgradable_cost_usd`` is what they cost.
    """

    start: datetime | None
    end: datetime | None
    call_count: int
    cache_saved_usd: Decimal
    cache_read_tokens: int
    cache_hit_calls: int
    downgradable_calls: int
    downgradable_cost_usd: Decimal
    _source: Source | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class WhatIf:
    """The same calls priced on another model, at that model's price at each call's time.

    Attributes:
        calls: calls of ``from_model`` in the window; ``unpriced_calls`` of them have no actual cost.
        actual_cost_usd: what the priced ones cost.
        projected_cost_usd: what all of them would have cost on ``to_model``.
        projected_priced_cost_usd: the same for the priced ones only (compare with ``actual_cost_usd``).
        downgradable_calls: calls the app tagged as fit for a cheaper model.
    """

    from_model: str
    to_model: str
    start: datetime | None
    end: datetime | None
    calls: int
    unpriced_calls: int
    actual_cost_usd: Decimal
    projected_cost_usd: Decimal
    projected_priced_cost_usd: Decimal
    downgradable_calls: int
    price_lookups: int

    @property
    def difference_usd(self) -> Decimal:
        """Actual minus projected over the priced calls: positive means ``to_model`` is cheaper."""
        return self.actual_cost_usd - self.projected_priced_cost_usd


@dataclass(frozen=True, slots=True)
class RepriceResult:
    """What :meth:`CostStore.reprice` changed (or, with ``dry_run``, would change)."""

    rows_examined: int
    rows_changed: int
    rows_newly_priced: int
    rows_still_unpriced: int
    usd_changed: Decimal
    """New minus old cost over the changed rows (an unpriced row counts as 0 before)."""
    dry_run: bool


@dataclass(frozen=True, slots=True)
class AlertRow(Tabular):
    """One fired budget alert, as recorded in ``budget_alerts`` (``CostStore.alerts``).

    Attributes:
        kind: ``threshold``, ``forecast`` or ``unpriced``.
        threshold: fraction of the limit that fired (``1`` = 100%); 0 for an unpriced alert.
        window_end: exclusive; ``window_start`` and ``window_end`` are None for lifetime and per-call budgets.
        trace_id: with ``span_id``, the call that crossed the threshold.
    """

    fired_at: datetime
    budget: str
    scope: str | None
    entity: str
    kind: str
    threshold: Decimal
    spent_usd: Decimal | None
    limit_usd: Decimal
    percent: Decimal | None
    unpriced_calls: int | None
    window_start: datetime | None
    window_end: datetime | None
    forecast_at: datetime | None
    trace_id: str | None
    span_id: str | None
    message: str | None
    _source: Source | None = field(default=None, repr=False, compare=False)
