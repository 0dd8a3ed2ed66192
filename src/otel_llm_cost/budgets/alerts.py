"""What fires: :class:`BudgetAlert` and its :class:`AlertKind` (plain data, delivered to the sinks)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

__all__ = ["AlertKind", "BudgetAlert"]


class AlertKind(enum.StrEnum):
    """What a :class:`BudgetAlert` reports."""

    THRESHOLD = "threshold"
    """Spend reached ``threshold`` x limit."""
    FORECAST = "forecast"
    """At the recent rate, spend reaches the limit before the calendar window ends."""
    UNPRICED = "unpriced"
    """Calls to models with unknown prices are in scope and are not counted in ``spent_usd``."""


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """One fired alert: what crossed, by how much, in which window, and which call did it.

    Attributes:
        budget: The budget's name.
        scope: The budget's scope (``org``, ``user``, ``tag:team``...).
        entity: The scope value (org id, hashed user id, span id for per-call; ``*`` for global).
        window: The budget's window (``day``, ``rolling:24h``...).
        window_start: Start of the window (UTC), None for lifetime and per-call budgets.
        window_end: Exclusive end of the window (UTC), None for lifetime and per-call budgets.
        threshold: Fraction of the limit that was reached (0 for ``unpriced``; 1 for ``forecast``).
        spent_usd: Priced billable spend in the window when it fired.
        limit_usd: The budget's limit.
        percent: ``spent_usd / limit_usd * 100`` to 2 places.
        kind: ``threshold``, ``forecast`` or ``unpriced``.
        message: Human-readable text, as delivered.
        trace_id: Trace of the call that crossed the threshold (32 hex digits), when known.
        span_id: Span of that call (16 hex digits), when known.
        unpriced_calls: Calls in the window whose price is unknown (not counted in ``spent_usd``).
        forecast_at: For ``forecast`` alerts, when the limit will be reached at the recent rate.
        tz: Time zone of the budget's calendar windows.
        window_key: Identity of the window in ``budget_alerts``.
        fired_at: When the alert was recorded.
    """

    budget: str
    scope: str
    entity: str
    window: str
    window_start: datetime | None
    window_end: datetime | None
    threshold: Decimal
    spent_usd: Decimal
    limit_usd: Decimal
    percent: Decimal
    kind: AlertKind
    message: str
    trace_id: str | None = None
    span_id: str | None = None
    unpriced_calls: int = 0
    forecast_at: datetime | None = None
    tz: str = "UTC"
    window_key: str = ""
    fired_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str, str, str, Decimal]:
        """The de-duplication key (with the limit, which is part of the stored key too)."""
        return (self.budget, self.entity, self.window_key, self.kind.value, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: money and fractions as decimal strings, times as ISO 8601 UTC."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.astimezone(UTC).isoformat()

        return {
            "budget": self.budget,
            "scope": self.scope,
            "entity": self.entity,
            "window": self.window,
            "window_start": iso(self.window_start),
            "window_end": iso(self.window_end),
            "tz": self.tz,
            "kind": self.kind.value,
            "threshold": str(self.threshold),
            "spent_usd": str(self.spent_usd),
            "limit_usd": str(self.limit_usd),
            "percent": str(self.percent),
            "unpriced_calls": self.unpriced_calls,
            "forecast_at": iso(self.forecast_at),
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "message": self.message,
            "fired_at": iso(self.fired_at),
        }
