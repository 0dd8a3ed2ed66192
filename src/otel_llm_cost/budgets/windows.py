"""Budget windows: parsing a window spec, and the ``[start, end)`` window that contains an instant.

Calendar windows (day, ISO week, month) are cut at local midnights of the budget's time zone; rolling
windows end at the evaluation instant; lifetime and per-call windows are unbounded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from otel_llm_cost._money import EPOCH
from otel_llm_cost.budgets.spec import BudgetSpec
from otel_llm_cost.exceptions import BudgetConfigError

__all__ = ["Window", "aware", "canonical_window", "from_epoch_us", "window_containing"]

_WINDOW_ALIASES: Final[Mapping[str, str]] = {
    "call": "call",
    "per_call": "call",
    "session": "lifetime",
    "lifetime": "lifetime",
    "day": "day",
    "daily": "day",
    "week": "week",
    "weekly": "week",
    "month": "month",
    "monthly": "month",
}
_ROLLING: Final = re.compile(r"^(?:rolling[:_ ]?)?(\d+)\s*([hd])$")
_WINDOW_HELP: Final = "call, session, lifetime, day, week, month, rolling:<N>h or rolling:<N>d"
_MAX_ROLLING_HOURS: Final = 24 * 366


def canonical_window(window: object) -> tuple[str, int | None]:
    """``(canonical window, rolling hours or None)`` for a window spec such as ``daily`` or ``rolling:24h``.

    Raises:
        BudgetConfigError: not a known window, or a rolling window outside 1 hour to 366 days.
    """
    if not isinstance(window, str):
        raise BudgetConfigError(f"window: expected one of {_WINDOW_HELP}, got {window!r}", field="window")
    text = window.strip().lower()
    if text in _WINDOW_ALIASES:
        return _WINDOW_ALIASES[text], None
    match = _ROLLING.match(text)
    if match:
        hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1)
        if hours <= 0 or hours > _MAX_ROLLING_HOURS:
            raise BudgetConfigError(
                f"window: a rolling window must be 1 hour to 366 days, got {window!r}", field="window"
            )
        return f"rolling:{hours}h", hours
    raise BudgetConfigError(f"window: expected one of {_WINDOW_HELP}, got {window!r}", field="window")


def aware(at: datetime) -> datetime:
    """``at`` in UTC.

    Raises:
        ValueError: ``at`` is naive.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is needed, got {at!r} (use datetime.now(UTC))")
    return at.astimezone(UTC)


def from_epoch_us(epoch_us: int) -> datetime:
    """The UTC instant ``epoch_us`` microseconds after the Unix epoch."""
    return EPOCH + timedelta(microseconds=epoch_us)


@dataclass(frozen=True, slots=True)
class Window:
    """One window of a budget: its identity in ``budget_alerts`` and its UTC bounds (None: unbounded)."""

    key: str
    start: datetime | None
    end: datetime | None

    def contains(self, instant: datetime) -> bool:
        """Whether ``instant`` is in ``[start, end)``."""
        return (self.start is None or self.start <= instant) and (self.end is None or instant < self.end)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    # A wall-clock midnight that does not exist (a DST jump at 00:00) resolves with the pre-jump offset,
    # which is the instant the day really starts.
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def window_containing(budget: BudgetSpec, at: datetime) -> Window:
    """The window of ``budget`` that contains the UTC instant ``at``."""
    if budget.window == "call":
        return Window("call", None, None)
    if budget.window == "lifetime":
        return Window("lifetime", None, None)
    if budget.rolling_hours is not None:
        span = timedelta(hours=budget.rolling_hours)
        # Rolling windows have no natural identity; alerts are de-duplicated per N-hour period aligned
        # to the Unix epoch, so a budget that stays over fires again at most once per period.
        period = int(span.total_seconds())
        bucket = datetime.fromtimestamp(math.floor(at.timestamp() / period) * period, UTC)
        return Window(f"rolling:{bucket.isoformat()}", at - span, at)
    local = at.astimezone(budget.zone).date()
    if budget.window == "day":
        first, after = local, local + timedelta(days=1)
    elif budget.window == "week":
        first = local - timedelta(days=local.weekday())
        after = first + timedelta(days=7)
    else:
        first = local.replace(day=1)
        after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    start = _local_midnight(first, budget.zone)
    end = _local_midnight(after, budget.zone)
    # An instant just before a nonexistent midnight can land on the wrong side; step once.
    if at < start:
        return window_containing(budget, start - timedelta(microseconds=1))
    if at >= end:
        return window_containing(budget, end)
    return Window(start.isoformat(), start, end)
