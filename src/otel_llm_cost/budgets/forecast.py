"""Burn-rate forecasts: the recent spend rate of a calendar window, and when it reaches the limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from otel_llm_cost._money import MONEY_QUANTUM
from otel_llm_cost.budgets.spec import BudgetSpec
from otel_llm_cost.budgets.windows import Window

__all__ = ["FORECAST_LOOKBACK", "FORECAST_MIN_EVIDENCE", "Forecast", "forecast", "recent_span"]

FORECAST_LOOKBACK: Final = timedelta(hours=1)
"""The forecast's *recent rate* is the spend of calls that started in the last hour of the window
(``[max(window_start, at - 1h), at)``) divided by that span of time."""

FORECAST_MIN_EVIDENCE: Final = timedelta(minutes=15)
"""No forecast until the recent-rate span covers at least this much time: a window's first minutes
extrapolate one expensive call into a false alarm."""

_SECONDS_PER_HOUR: Final = 3600


@dataclass(frozen=True, slots=True)
class Forecast:
    """A recent rate (None without enough evidence), when it reaches the limit, the span it covers."""

    rate_usd_per_hour: Decimal | None = None
    reaches_limit_at: datetime | None = None
    lookback: timedelta | None = None


def recent_span(
    budget: BudgetSpec, window: Window, at: datetime, lookback: timedelta
) -> tuple[datetime, datetime] | None:
    """The ``[start, at)`` span the recent rate is measured over; None when there is no forecast
    (not a calendar window, or ``at`` is outside it)."""
    if not budget.is_calendar or window.start is None or not window.contains(at):
        return None
    return max(window.start, at - lookback), at


def forecast(  # noqa: PLR0917 - one call site; every value is needed
    budget: BudgetSpec,
    window: Window,
    at: datetime,
    recent: tuple[datetime, datetime] | None,
    spent: Decimal,
    recent_spend: Decimal,
    min_evidence: timedelta = FORECAST_MIN_EVIDENCE,
) -> Forecast:
    """The forecast of one entity given its spend in the window and in the ``recent`` span."""
    if recent is None:
        return Forecast()
    lookback_s = (recent[1] - recent[0]).total_seconds()
    if lookback_s < min_evidence.total_seconds():
        return Forecast()
    rate = (recent_spend * _SECONDS_PER_HOUR / Decimal(repr(lookback_s))).quantize(MONEY_QUANTUM)
    reaches: datetime | None = None
    if rate > 0 and spent < budget.limit_usd and window.end is not None:
        seconds_left = (budget.limit_usd - spent) / rate * _SECONDS_PER_HOUR
        # Compare before building a timedelta: a tiny rate gives an out-of-range date.
        if seconds_left < Decimal(repr((window.end - at).total_seconds())):
            reaches = at + timedelta(seconds=float(seconds_left))
    return Forecast(rate, reaches, timedelta(seconds=lookback_s))
