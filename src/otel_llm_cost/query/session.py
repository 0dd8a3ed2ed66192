"""One session's report (``CostStore.session_summary``) and its text.

The text lives beside the result because ``SessionSummary.format`` prints itself; the report renderers
(:mod:`otel_llm_cost.query.output`) offer it as ``format_session`` too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Literal

from otel_llm_cost.query.results import CallRow, CostRow, Summary
from otel_llm_cost.query.tabular import Rows
from otel_llm_cost.query.text import (
    format_duration,
    format_int,
    format_pct,
    format_usd,
    render_table,
    usd_places,
)

__all__ = ["SessionSummary", "SummaryStyle", "format_session"]

SummaryStyle = Literal["detailed", "compact", "table"]


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One session (``cost.session_id``): duration, totals and where its money went."""

    session_id: str
    totals: Summary
    by_provider: Rows[CostRow]
    by_model: Rows[CostRow]
    calls: Rows[CallRow] = field(default_factory=lambda: Rows([]))

    STYLES: ClassVar[tuple[str, ...]] = ("detailed", "compact", "table")

    @property
    def started_at(self) -> datetime | None:
        return self.totals.first_start

    @property
    def ended_at(self) -> datetime | None:
        return self.totals.last_end

    @property
    def duration(self) -> timedelta:
        """First call's start to last call's end (zero for an unknown session)."""
        if self.started_at is None or self.ended_at is None:
            return timedelta(0)
        return self.ended_at - self.started_at

    @property
    def avg_cost_per_call_usd(self) -> Decimal | None:
        """Known cost over ALL calls, unpriced ones included (see ``unpriced_calls``); ``None`` without calls.

        With unpriced calls the true average is higher: the text marks such a figure with ``+``.
        """
        if not self.totals.call_count:
            return None
        known = self.totals.cost_usd if self.totals.cost_usd is not None else Decimal(0)
        return known / self.totals.call_count

    @property
    def unpriced_calls(self) -> int:
        return self.totals.unpriced_calls

    @property
    def cost_per_1k_tokens_usd(self) -> Decimal | None:
        return self.totals.cost_per_1k_tokens_usd

    def format(self, style: SummaryStyle = "detailed") -> str:
        """Printable text: ``detailed`` (multi-line with breakdowns), ``compact`` (one line) or ``table``.

        Raises:
            ValueError: unknown style.
        """
        return format_session(self, style)

    def __str__(self) -> str:
        return self.format("detailed")


def _breakdown_rows(rows: Iterable[Any], places: int, *, with_provider: bool = False) -> list[list[str]]:
    return [
        [
            row.key or "(none)",
            *([row.provider or "-"] if with_provider else []),
            format_usd(row.total_cost_usd, row.unpriced_calls, places),
            format_int(row.call_count),
            format_int(row.total_tokens),
        ]
        for row in rows
    ]


def _call_rows(calls: Iterable[CallRow], places: int) -> list[list[str]]:
    return [
        [
            call.start_time.isoformat(timespec="seconds"),
            call.model or "-",
            call.provider or "-",
            format_int(call.input_tokens or 0),
            format_int(call.output_tokens or 0),
            format_usd(call.cost_usd, places=places),
        ]
        for call in calls
    ]


def _session_places(summary: SessionSummary) -> int:
    breakdowns = [*summary.by_provider, *summary.by_model]
    return usd_places(
        [
            summary.totals.cost_usd,
            summary.avg_cost_per_call_usd,
            summary.cost_per_1k_tokens_usd,
            *(row.total_cost_usd for row in breakdowns),
            *(call.cost_usd for call in summary.calls),
        ]
    )


def format_session(summary: SessionSummary, style: str, *, fancy: bool = False) -> str:
    """Text for ``SessionSummary.format`` (see there)."""
    totals = summary.totals
    if style not in SessionSummary.STYLES:
        raise ValueError(f"unknown style {style!r}; use detailed, compact or table")
    if not totals.call_count:
        return f"session {summary.session_id}: no calls recorded"
    places = _session_places(summary)
    cost = format_usd(totals.cost_usd, totals.unpriced_calls, places)
    # Over every call; with unpriced calls it is a lower bound, flagged as such.
    per_call = format_usd(summary.avg_cost_per_call_usd, totals.unpriced_calls, places)
    per_1k = format_usd(summary.cost_per_1k_tokens_usd, places=places)
    if style == "compact":
        return (
            f"session {summary.session_id}: {cost}, {totals.call_count} calls, "
            f"{totals.total_tokens:,} tokens, {format_duration(summary.duration)}, "
            f"{per_call}/call, {per_1k}/1k tokens"
        )
    if style == "table":
        fields = [
            ("session", summary.session_id),
            ("started", summary.started_at.isoformat() if summary.started_at else ""),
            ("duration", format_duration(summary.duration)),
            ("calls", format_int(totals.call_count)),
            ("unpriced calls", format_int(totals.unpriced_calls)),
            ("cost", cost),
            ("avg cost / call", per_call),
            ("cost / 1k tokens", per_1k),
            ("input tokens", format_int(totals.input_tokens)),
            ("output tokens", format_int(totals.output_tokens)),
            ("cache hit rate", format_pct(totals.cache_hit_rate)),
        ]
        return render_table(["field", "value"], fields, align="ll", fancy=fancy)
    return _detailed(summary, cost, per_call, per_1k, fancy=fancy, places=places)


def _detailed(
    summary: SessionSummary, cost: str, per_call: str, per_1k: str, *, fancy: bool, places: int
) -> str:
    totals = summary.totals
    lines = [
        f"Session {summary.session_id}",
        f"  started   {summary.started_at.isoformat() if summary.started_at else '-'}",
        f"  duration  {format_duration(summary.duration)}",
        f"  calls     {totals.call_count:,} ({totals.unpriced_calls} unpriced)",
        f"  cost      {cost}",
        f"  per call  {per_call}    per 1k tokens  {per_1k}",
        f"  tokens    {totals.input_tokens:,} in ({totals.cache_read_tokens:,} from cache), "
        f"{totals.output_tokens:,} out",
        "",
        "By provider",
        render_table(
            ["provider", "cost", "calls", "tokens"], _breakdown_rows(summary.by_provider, places), fancy=fancy
        ),
        "",
        "By model",
        render_table(
            ["model", "provider", "cost", "calls", "tokens"],
            _breakdown_rows(summary.by_model, places, with_provider=True),
            align="llrrr",
            fancy=fancy,
        ),
        "",
        "Calls",
        render_table(
            ["time", "model", "provider", "input", "output", "cost"],
            _call_rows(summary.calls, places),
            align="lllrrr",
            fancy=fancy,
        ),
    ]
    return "\n".join(lines)
