"""Building a :class:`~otel_llm_cost.budgets.BudgetAlert` from a status: its fields and its message."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from otel_llm_cost.budgets.alerts import AlertKind, BudgetAlert
from otel_llm_cost.budgets.evaluation import BudgetStatus
from otel_llm_cost.budgets.forecast import FORECAST_LOOKBACK
from otel_llm_cost.budgets.spec import BudgetSpec
from otel_llm_cost.query.output import format_usd, usd_places

__all__ = ["alert_message", "build_alert"]


def build_alert(  # noqa: PLR0917 - the alert's parts, positionally from three places
    kind: AlertKind,
    status: BudgetStatus,
    threshold: Decimal,
    trace_id: str | None,
    span_id: str | None,
    fired_at: datetime,
) -> BudgetAlert:
    """The alert of ``kind`` for ``status`` crossing ``threshold``, fired at ``fired_at``."""
    budget = status.budget
    return BudgetAlert(
        budget=budget.name,
        scope=budget.scope,
        entity=status.entity,
        window=budget.window,
        window_start=status.window_start,
        window_end=status.window_end,
        threshold=threshold,
        spent_usd=status.spent_usd,
        limit_usd=budget.limit_usd,
        percent=status.percent,
        kind=kind,
        message=alert_message(kind, status, threshold),
        trace_id=trace_id,
        span_id=span_id,
        unpriced_calls=status.unpriced_calls,
        forecast_at=status.forecast_at if kind is AlertKind.FORECAST else None,
        tz=budget.tz,
        window_key=status.window_key,
        fired_at=fired_at,
    )


def _pct(fraction: Decimal) -> str:
    return f"{(fraction * 100).normalize():f}%"


def _who(budget: BudgetSpec, entity: str) -> str:
    if budget.scope == "global":
        return "all calls"
    if budget.scope == "call":
        return f"call {entity}"
    label = budget.scope[4:] if budget.scope.startswith("tag:") else budget.scope
    return f"{label} {entity}"


def _window_phrase(budget: BudgetSpec, start: datetime | None) -> str:
    if start is None or not budget.is_calendar:
        return ""
    local = start.astimezone(budget.zone)
    return f" for the {budget.window} starting {local:%Y-%m-%d %H:%M} {budget.tz}"


def alert_message(kind: AlertKind, status: BudgetStatus, threshold: Decimal) -> str:
    """The alert's human-readable text, as delivered."""
    budget = status.budget
    who = _who(budget, status.entity)
    # One format for every amount of the message: "$0.0144 of its $0.0100", never "$0.01 of $0.01".
    places = usd_places([budget.limit_usd, status.spent_usd, status.recent_rate_usd_per_hour])

    def usd(value: Decimal | None) -> str:
        return format_usd(value, places=places)

    limit = f"{usd(budget.limit_usd)} {budget.describe_window()} budget {budget.name!r}"
    if kind is AlertKind.FORECAST:
        assert status.forecast_at is not None  # noqa: S101 - callers only build forecasts with a time
        assert status.recent_rate_usd_per_hour is not None  # noqa: S101
        local = status.forecast_at.astimezone(budget.zone)
        return (
            f"{who} reaches its {limit} at about {local:%H:%M} {budget.tz} "
            f"({usd(status.spent_usd)} spent; {usd(status.recent_rate_usd_per_hour)}/h "
            f"over the last {_lookback_minutes(status)} min)"
        )
    if kind is AlertKind.UNPRICED:
        return (
            f"{who}, {limit}: {status.unpriced_calls} call{'' if status.unpriced_calls == 1 else 's'} "
            "to unknown models not counted "
            f"({usd(status.spent_usd)} priced spend){_window_phrase(budget, status.window_start)}"
        )
    return (
        f"{who} has spent {usd(status.spent_usd)} of its {limit} "
        f"({status.percent}%, threshold {_pct(threshold)}){_window_phrase(budget, status.window_start)}"
    )


def _lookback_minutes(status: BudgetStatus) -> int:
    lookback = status.rate_lookback or FORECAST_LOOKBACK
    return int(lookback.total_seconds() // 60)
