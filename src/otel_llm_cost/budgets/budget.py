"""Budgets: limits per call, session, user, org, feature, model, custom tag or globally, per window.

A :class:`Budget` is a rule; a :class:`BudgetAlert` is what fires when spend crosses one of its
thresholds. :class:`BudgetEngine` evaluates budgets as telemetry flows: per-call budgets as each LLM span
is enriched (:meth:`BudgetEngine.check_call`), window budgets when the DuckDB exporter commits a batch
(:meth:`BudgetEngine.on_commit`), always with SQL over the stored rows, so totals are exact, survive
restarts and put late spans in the window of their start time. Fired alerts are stored in the
``budget_alerts`` table, whose primary key is the de-duplication: an alert fires once per (budget, entity,
window, kind, threshold, limit), whichever process or restart evaluates it.

Example::

    from otel_llm_cost.budgets.budget import Budget, BudgetEngine, evaluate_budgets

    budgets = [Budget.per_call(1.00), Budget.per_org_daily(1000, tz="Europe/Berlin")]
    for status in evaluate_budgets(connection, budgets):
        print(status.budget.name, status.entity, status.spent_usd, status.percent)
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import os
import re
import threading
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from otel_llm_cost import _config
from otel_llm_cost._logging import log_once
from otel_llm_cost.budgets import sql as _budget_sql
from otel_llm_cost.budgets.sinks import (
    AlertSink,
    BackgroundQueue,
    LoggingSink,
    OTelLogSink,
    WebhookSink,
    deliver,
    shutdown_sinks,
    webhook_payload,
)
from otel_llm_cost.conventions import names as semconv
from otel_llm_cost.exceptions import BudgetConfigError, BudgetExceeded, StorageError
from otel_llm_cost.query.output import format_usd
from otel_llm_cost.storage.schema import CALLS_TABLE, COLUMN_ATTRIBUTES, CREATE_ALERTS

__all__ = [
    "FORECAST_LOOKBACK",
    "FORECAST_MIN_EVIDENCE",
    "AlertKind",
    "AlertSink",
    "Budget",
    "BudgetAlert",
    "BudgetEngine",
    "BudgetGuard",
    "BudgetStatus",
    "LoggingSink",
    "OTelLogSink",
    "WebhookSink",
    "evaluate_budgets",
    "load_budgets",
    "remaining_budget",
    "webhook_payload",
]

_logger = logging.getLogger("otel_llm_cost.budgets")

FORECAST_LOOKBACK: Final = timedelta(hours=1)
"""The forecast's *recent rate* is the spend of calls that started in the last hour of the window
(``[max(window_start, at - 1h), at)``) divided by that span of time."""

FORECAST_MIN_EVIDENCE: Final = timedelta(minutes=15)
"""No forecast until the recent-rate span covers at least this much time: a window's first minutes
extrapolate one expensive call into a false alarm."""

_ONE: Final = Decimal(1)
_THRESHOLD_QUANTUM: Final = Decimal("0.000001")  # DECIMAL(9,6) in budget_alerts
_MONEY_QUANTUM: Final = Decimal("1e-12")
_PERCENT_QUANTUM: Final = Decimal("0.01")
_MAX_LIMIT: Final = Decimal("1e12")  # keeps limit x threshold exact at 12 places in 28 digits
_MAX_THRESHOLD: Final = Decimal(1000)
_RECENT_CALLS_REMEMBERED: Final = 10_000
_PENDING_RECORDS_MAX: Final = 10_000

_SCOPE_ALIASES: Final[Mapping[str, str]] = {
    "span": "call",
    "session_id": "session",
    "user_id": "user",
    "org_id": "org",
    "workflow_id": "workflow",
    "service_name": "service",
}

# Where on_commit finds each scope in a batch of llm_calls rows (first non-null wins).
_SCOPE_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    "call": ("span_id",),
    "session": ("session_id",),
    "user": ("user_id",),
    "org": ("org_id",),
    "feature": ("feature",),
    "agent": ("agent",),
    "workflow": ("workflow_id",),
    "workflow_label": ("workflow_label",),
    "step": ("step",),
    "model": ("response_model", "request_model"),
    "provider": ("provider",),
    "service": ("service_name",),
}

_COLUMN_ATTRIBUTES: Final[Mapping[str, tuple[str, ...]]] = dict(COLUMN_ATTRIBUTES)
# Where check_call finds each scope on an enriched span: the attributes that fill those columns, in
# the order the exporter tries them (_rows is the one table), so a `where` selects the same calls
# per call as over stored rows (e.g. provider: the normalised llm.provider_name before gen_ai.system).
_SCOPE_ATTRIBUTES: Final[Mapping[str, tuple[str, ...]]] = {
    scope: tuple(name for column in columns for name in _COLUMN_ATTRIBUTES.get(column, ()))
    for scope, columns in _SCOPE_COLUMNS.items()
}

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


class AlertKind(enum.StrEnum):
    """What a :class:`BudgetAlert` reports."""

    THRESHOLD = "threshold"
    """Spend reached ``threshold`` x limit."""
    FORECAST = "forecast"
    """At the recent rate, spend reaches the limit before the calendar window ends."""
    UNPRICED = "unpriced"
    """Calls to models with unknown prices are in scope and are not counted in ``spent_usd``."""


def _to_decimal(value: object, field_name: str) -> Decimal:
    if isinstance(value, bool):
        raise BudgetConfigError(f"{field_name}: expected a number, got {value!r}", field=field_name)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float | str):
        try:
            # str() first: Decimal(0.1) would carry the float's binary error into the limit.
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise BudgetConfigError(
                f"{field_name}: expected a number, got {value!r}", field=field_name
            ) from None
    else:
        raise BudgetConfigError(f"{field_name}: expected a number, got {value!r}", field=field_name)
    if not result.is_finite():
        raise BudgetConfigError(f"{field_name}: must be finite, got {value!r}", field=field_name)
    return result


def _canonical_scope(scope: object, field_name: str = "scope") -> str:
    if not isinstance(scope, str) or not scope.strip():
        raise BudgetConfigError(f"{field_name}: expected a scope name, got {scope!r}", field=field_name)
    name = scope.strip()
    name = _SCOPE_ALIASES.get(name, name)
    if name in _budget_sql.BUILTIN_SCOPES:
        return name
    key = name[4:] if name.startswith("tag:") else name
    key = key.removeprefix(semconv.COST_PREFIX)
    if not _budget_sql.TAG_KEY_PATTERN.match(key):
        raise BudgetConfigError(
            f"{field_name}: {scope!r} is neither a built-in scope "
            f"({', '.join(_budget_sql.BUILTIN_SCOPES)}) nor a valid custom tag key "
            "(letters, digits, _ . -)",
            field=field_name,
        )
    return f"tag:{key}"


def _canonical_window(window: object) -> tuple[str, int | None]:
    if not isinstance(window, str):
        raise BudgetConfigError(f"window: expected one of {_WINDOW_HELP}, got {window!r}", field="window")
    text = window.strip().lower()
    if text in _WINDOW_ALIASES:
        return _WINDOW_ALIASES[text], None
    match = _ROLLING.match(text)
    if match:
        hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1)
        if hours <= 0 or hours > 24 * 366:
            raise BudgetConfigError(
                f"window: a rolling window must be 1 hour to 366 days, got {window!r}", field="window"
            )
        return f"rolling:{hours}h", hours
    raise BudgetConfigError(f"window: expected one of {_WINDOW_HELP}, got {window!r}", field="window")


def _normalized_where(where: Mapping[str, str | Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    if where is not None and not isinstance(where, Mapping):
        raise BudgetConfigError(
            f"where: expected a mapping such as {{'org': 'org_1'}}, got {where!r}", field="where"
        )
    normalized_where: dict[str, tuple[str, ...]] = {}
    for key, values in (where or {}).items():
        where_scope = _canonical_scope(key, "where")
        if where_scope in ("global", "call"):
            raise BudgetConfigError(f"where: cannot filter on {key!r}", field="where")
        if isinstance(values, str):
            values_tuple: tuple[str, ...] = (values,)
        elif isinstance(values, Sequence) and values and all(isinstance(v, str) for v in values):
            values_tuple = tuple(values)
        else:
            raise BudgetConfigError(
                f"where: {key!r} must be a string or a non-empty list of strings, got {values!r}",
                field="where",
            )
        normalized_where[where_scope] = values_tuple
    return normalized_where


@dataclass(frozen=True, slots=True, init=False)
class Budget:
    """A spending limit for a scope over a window, with alert thresholds.

    Args:
        name: Unique name; alerts and the ``budget_alerts`` table refer to it.
        scope: What the limit applies to, each value separately: ``call``, ``session``, ``user``,
            ``org``, ``feature``, ``agent``, ``workflow``, ``workflow_label``, ``step``, ``model``,
            ``provider``, ``service``, ``global`` (everything together), or any custom tag key
            (``team`` or ``tag:team`` reads ``cost.team`` / ``tags['team']``).
        window: ``call`` (each call alone; only with scope ``call``), ``session`` / ``lifetime``
            (all time, e.g. a session's lifetime), ``day``, ``week`` (ISO, from Monday), ``month``
            (calendar windows in ``tz``), or ``rolling:<N>h`` / ``rolling:<N>d`` (the last N hours).
        limit_usd: The limit in USD; any of Decimal, int, str or float (read via ``Decimal(str(x))``).
        thresholds: Fractions of the limit that fire an alert (``1.0`` = 100%; above 1 allowed).
        tz: IANA time zone of calendar windows (``Europe/Berlin``); ignored by other windows.
        where: Narrows the budget to calls whose scope values match, e.g. ``{"org": "org_123"}`` or
            ``{"feature": ["search", "chat"]}`` (any of). User ids are stored as a keyed hash, so a
            ``user`` filter must hold the hashed id:
            ``otel_llm_cost.enrich.attribution.default_user_id_hasher().hash("u-42")`` (the processor's key).

    Raises:
        BudgetConfigError: (a ``ValueError``) for any invalid argument; the message names the field.
    """

    name: str
    scope: str
    window: str
    limit_usd: Decimal
    thresholds: tuple[Decimal, ...]
    tz: str
    where: Mapping[str, tuple[str, ...]]
    _rolling_hours: int | None = field(repr=False, compare=False)
    _zone: ZoneInfo = field(repr=False, compare=False)

    def __init__(  # noqa: PLR0917 - the issue's documented signature is positional
        self,
        name: str,
        scope: str,
        window: str,
        limit_usd: Decimal | int | float | str,
        thresholds: Iterable[Decimal | int | float | str] = (0.5, 0.8, 1.0),
        tz: str = "UTC",
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise BudgetConfigError(f"name: expected a non-empty string, got {name!r}", field="name")
        canonical_scope = _canonical_scope(scope)
        canonical_window, rolling_hours = _canonical_window(window)
        if (canonical_scope == "call") != (canonical_window == "call"):
            raise BudgetConfigError(
                f"window: scope 'call' goes with window 'call' and only with it "
                f"(got scope {scope!r}, window {window!r})",
                field="window",
            )
        limit = _to_decimal(limit_usd, "limit_usd")
        if limit <= 0 or limit >= _MAX_LIMIT:
            raise BudgetConfigError(
                f"limit_usd: must be > 0 and < 1e12, got {limit_usd!r}", field="limit_usd"
            )
        if limit != limit.quantize(_MONEY_QUANTUM):
            raise BudgetConfigError(
                f"limit_usd: at most 12 decimal places (the stored precision), got {limit_usd!r}",
                field="limit_usd",
            )
        if isinstance(thresholds, str | bytes):
            raise BudgetConfigError("thresholds: expected a list of fractions", field="thresholds")
        try:
            raw_thresholds = list(thresholds)
        except TypeError:
            raise BudgetConfigError(
                f"thresholds: expected a list of fractions, got {thresholds!r}", field="thresholds"
            ) from None
        parsed: set[Decimal] = set()
        for raw in raw_thresholds:
            value = _to_decimal(raw, "thresholds")
            if value <= 0 or value > _MAX_THRESHOLD:
                raise BudgetConfigError(
                    f"thresholds: each must be a fraction of the limit > 0 (1.0 = 100%), got {raw!r}",
                    field="thresholds",
                )
            parsed.add(value.quantize(_THRESHOLD_QUANTUM).normalize())
        if not parsed:
            raise BudgetConfigError("thresholds: at least one is needed", field="thresholds")
        if not isinstance(tz, str):
            raise BudgetConfigError(f"tz: expected an IANA zone name, got {tz!r}", field="tz")
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise BudgetConfigError(
                f"tz: unknown IANA time zone {tz!r} (e.g. 'Europe/Berlin')", field="tz"
            ) from None
        normalized_where = _normalized_where(where)
        set_ = object.__setattr__
        set_(self, "name", name.strip())
        set_(self, "scope", canonical_scope)
        set_(self, "window", canonical_window)
        set_(self, "limit_usd", limit)
        set_(self, "thresholds", tuple(sorted(parsed)))
        set_(self, "tz", tz)
        set_(self, "where", normalized_where)
        set_(self, "_rolling_hours", rolling_hours)
        set_(self, "_zone", zone)

    def __hash__(self) -> int:
        # ``where`` is a dict; hash its sorted items so budgets can live in sets and dict keys.
        return hash(
            (
                self.name,
                self.scope,
                self.window,
                self.limit_usd,
                self.thresholds,
                self.tz,
                tuple(sorted(self.where.items())),
            )
        )

    # Presets ---------------------------------------------------------------------------------

    @classmethod
    def per_call(
        cls,
        limit_usd: Decimal | int | float | str,
        *,
        name: str = "per_call",
        thresholds: Iterable[Decimal | int | float | str] = (1.0,),
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> Budget:
        """A limit on each single call (only 100% by default: a call crosses all its thresholds at once).

        Example: ``Budget.per_call(1.00)`` alerts on any call that costs $1 or more.
        """
        return cls(name, "call", "call", limit_usd, thresholds, "UTC", where)

    @classmethod
    def per_session(
        cls,
        limit_usd: Decimal | int | float | str,
        *,
        name: str = "per_session",
        thresholds: Iterable[Decimal | int | float | str] = (0.5, 0.8, 1.0),
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> Budget:
        """A limit on each session's total over its lifetime (``cost.session_id``)."""
        return cls(name, "session", "lifetime", limit_usd, thresholds, "UTC", where)

    @classmethod
    def per_user_daily(
        cls,
        limit_usd: Decimal | int | float | str,
        *,
        name: str = "per_user_daily",
        tz: str = "UTC",
        thresholds: Iterable[Decimal | int | float | str] = (0.5, 0.8, 1.0),
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> Budget:
        """A limit on each user's spend per calendar day in ``tz`` (users are keyed by hashed id)."""
        return cls(name, "user", "day", limit_usd, thresholds, tz, where)

    @classmethod
    def per_org_daily(
        cls,
        limit_usd: Decimal | int | float | str,
        *,
        name: str = "per_org_daily",
        tz: str = "UTC",
        thresholds: Iterable[Decimal | int | float | str] = (0.5, 0.8, 1.0),
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> Budget:
        """A limit on each org's spend per calendar day in ``tz``."""
        return cls(name, "org", "day", limit_usd, thresholds, tz, where)

    # Windows ---------------------------------------------------------------------------------

    @property
    def is_per_call(self) -> bool:
        """True for per-call budgets (checked at enrichment, not over stored rows)."""
        return self.window == "call"

    @property
    def is_calendar(self) -> bool:
        """True for day / week / month windows (the ones with a burn-rate forecast)."""
        return self.window in ("day", "week", "month")

    def window_at(self, at: datetime) -> tuple[datetime | None, datetime | None]:
        """The ``[start, end)`` UTC bounds of the window containing ``at`` (None: unbounded side).

        Raises:
            ValueError: ``at`` is a naive datetime.
        """
        win = _window_containing(self, _aware(at))
        return win.start, win.end

    def describe_window(self) -> str:
        """``daily``, ``weekly``, ``monthly``, ``24-hour rolling``, ``lifetime`` or ``per-call``."""
        if self.window in ("day", "week", "month"):
            return {"day": "daily", "week": "weekly", "month": "monthly"}[self.window]
        if self._rolling_hours is not None:
            hours = self._rolling_hours
            return f"{hours // 24}-day rolling" if hours % 24 == 0 else f"{hours}-hour rolling"
        return (
            "per-session"
            if self.window == "lifetime" and self.scope == "session"
            else ("lifetime" if self.window == "lifetime" else "per-call")
        )

    def matches(self, values: Callable[[str], str | None]) -> bool:
        """Whether a call whose scope values ``values(scope)`` returns satisfies ``where``."""
        return all(values(key) in allowed for key, allowed in self.where.items())


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is needed, got {at!r} (use datetime.now(UTC))")
    return at.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class _Window:
    key: str
    start: datetime | None
    end: datetime | None

    def contains(self, instant: datetime) -> bool:
        return (self.start is None or self.start <= instant) and (self.end is None or instant < self.end)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    # A wall-clock midnight that does not exist (a DST jump at 00:00) resolves with the pre-jump offset,
    # which is the instant the day really starts.
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def _window_containing(budget: Budget, at: datetime) -> _Window:
    if budget.window == "call":
        return _Window("call", None, None)
    if budget.window == "lifetime":
        return _Window("lifetime", None, None)
    if budget._rolling_hours is not None:
        span = timedelta(hours=budget._rolling_hours)
        # Rolling windows have no natural identity; alerts are de-duplicated per N-hour period aligned
        # to the Unix epoch, so a budget that stays over fires again at most once per period.
        period = int(span.total_seconds())
        bucket = datetime.fromtimestamp(math.floor(at.timestamp() / period) * period, UTC)
        return _Window(f"rolling:{bucket.isoformat()}", at - span, at)
    local = at.astimezone(budget._zone).date()
    if budget.window == "day":
        first, after = local, local + timedelta(days=1)
    elif budget.window == "week":
        first = local - timedelta(days=local.weekday())
        after = first + timedelta(days=7)
    else:
        first = local.replace(day=1)
        after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    start = _local_midnight(first, budget._zone)
    end = _local_midnight(after, budget._zone)
    # An instant just before a nonexistent midnight can land on the wrong side; step once.
    if at < start:
        return _window_containing(budget, start - timedelta(microseconds=1))
    if at >= end:
        return _window_containing(budget, end)
    return _Window(start.isoformat(), start, end)


# Results ---------------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where one entity stands against one budget in one window.

    Attributes:
        budget: The budget.
        entity: The scope value (``*`` for a global budget).
        window_start: Start of the window (UTC), None for lifetime budgets.
        window_end: Exclusive end (UTC), None for lifetime budgets.
        spent_usd: Exact sum of ``cost_usd`` over billable calls that started in the window.
        calls: Billable calls in the window (priced or not).
        unpriced_calls: Calls to models with unknown prices: not counted in ``spent_usd``.
        recent_rate_usd_per_hour: Spend rate over the forecast lookback (calendar windows containing
            the evaluation time, with enough evidence; else None).
        forecast_at: When spend reaches the limit at that rate, if before the window ends.
        window_key: Identity of the window in ``budget_alerts``.
        rate_lookback: The span of time the recent rate was measured over.
    """

    budget: Budget
    entity: str
    window_start: datetime | None
    window_end: datetime | None
    spent_usd: Decimal
    calls: int
    unpriced_calls: int
    recent_rate_usd_per_hour: Decimal | None
    forecast_at: datetime | None
    window_key: str
    rate_lookback: timedelta | None = None

    @property
    def limit_usd(self) -> Decimal:
        """The budget's limit."""
        return self.budget.limit_usd

    @property
    def percent(self) -> Decimal:
        """``spent / limit * 100``, to 2 places."""
        return _percent(self.spent_usd, self.budget.limit_usd)

    @property
    def remaining_usd(self) -> Decimal:
        """What is left before the limit (0 when at or over it)."""
        return max(Decimal(0), self.budget.limit_usd - self.spent_usd)

    @property
    def over(self) -> bool:
        """True when spend has reached the limit (exactly at the limit counts as over)."""
        return self.spent_usd >= self.budget.limit_usd


def _percent(spent: Decimal, limit: Decimal) -> Decimal:
    return (spent * 100 / limit).quantize(_PERCENT_QUANTUM, rounding=ROUND_HALF_UP)


def _pct(fraction: Decimal) -> str:
    return f"{(fraction * 100).normalize():f}%"


def _who(budget: Budget, entity: str) -> str:
    if budget.scope == "global":
        return "all calls"
    if budget.scope == "call":
        return f"call {entity}"
    label = budget.scope[4:] if budget.scope.startswith("tag:") else budget.scope
    return f"{label} {entity}"


def _window_phrase(budget: Budget, start: datetime | None) -> str:
    if start is None or not budget.is_calendar:
        return ""
    local = start.astimezone(budget._zone)
    return f" for the {budget.window} starting {local:%Y-%m-%d %H:%M} {budget.tz}"


def _alert_message(
    kind: AlertKind,
    status: BudgetStatus,
    threshold: Decimal,
) -> str:
    budget = status.budget
    who = _who(budget, status.entity)
    limit = f"{format_usd(budget.limit_usd)} {budget.describe_window()} budget {budget.name!r}"
    if kind is AlertKind.FORECAST:
        assert status.forecast_at is not None  # noqa: S101 - callers only build forecasts with a time
        assert status.recent_rate_usd_per_hour is not None  # noqa: S101
        local = status.forecast_at.astimezone(budget._zone)
        return (
            f"{who} reaches its {limit} at about {local:%H:%M} {budget.tz} "
            f"({format_usd(status.spent_usd)} spent; {format_usd(status.recent_rate_usd_per_hour)}/h "
            f"over the last {_lookback_minutes(status)} min)"
        )
    if kind is AlertKind.UNPRICED:
        return (
            f"{who}, {limit}: {status.unpriced_calls} call{'' if status.unpriced_calls == 1 else 's'} "
            "to unknown models not counted "
            f"({format_usd(status.spent_usd)} priced spend){_window_phrase(budget, status.window_start)}"
        )
    return (
        f"{who} has spent {format_usd(status.spent_usd)} of its {limit} "
        f"({status.percent}%, threshold {_pct(threshold)}){_window_phrase(budget, status.window_start)}"
    )


def _lookback_minutes(status: BudgetStatus) -> int:
    lookback = status.rate_lookback or FORECAST_LOOKBACK
    return int(lookback.total_seconds() // 60)


# Evaluation over stored rows ------------------------------------------------------------------


class CommitInfoLike(Protocol):
    """What :meth:`BudgetEngine.on_commit` needs from the exporter's ``CommitInfo``."""

    @property
    def connection(self) -> duckdb.DuckDBPyConnection: ...

    @property
    def rows(self) -> Any: ...  # pyarrow.Table of the inserted llm_calls rows


def _recent_span(
    budget: Budget, window: _Window, at: datetime, lookback: timedelta
) -> tuple[datetime, datetime] | None:
    if not budget.is_calendar or window.start is None or not window.contains(at):
        return None
    start = max(window.start, at - lookback)
    return start, at


def _fetch_calls(cursor: duckdb.DuckDBPyConnection, sql: str, params: list[object]) -> list[Any]:
    try:
        return cursor.execute(sql, params).fetchall()
    except duckdb.CatalogException as exc:
        # Checked only on failure: the common case pays nothing. A foreign DuckDB file deserves a
        # sentence, not "Table with name llm_calls does not exist".
        [(found,)] = cursor.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [CALLS_TABLE]
        ).fetchall()
        if not found:
            raise StorageError(
                f"not an otel-llm-cost database (it has no {CALLS_TABLE} table; "
                "point --db / the store at the file the DuckDBSpanExporter writes)"
            ) from exc
        raise


def _statuses_for_window(  # noqa: PLR0917 - private helper called positionally from three places
    cursor: duckdb.DuckDBPyConnection,
    budget: Budget,
    window: _Window,
    entities: Sequence[str] | None,
    at: datetime,
    lookback: timedelta = FORECAST_LOOKBACK,
    min_evidence: timedelta = FORECAST_MIN_EVIDENCE,
) -> list[BudgetStatus]:
    recent = _recent_span(budget, window, at, lookback)
    sql, params = _budget_sql.spend_sql(
        budget.scope,
        budget.where,
        window_start=window.start,
        window_end=window.end,
        entities=entities,
        recent_start=recent[0] if recent else None,
        recent_end=recent[1] if recent else None,
    )
    statuses = []
    for entity, spent, calls, unpriced, recent_spend in _fetch_calls(cursor, sql, params):
        spent_d = Decimal(spent)
        rate: Decimal | None = None
        forecast_at: datetime | None = None
        lookback_s = 0.0
        if recent is not None:
            lookback_s = (recent[1] - recent[0]).total_seconds()
            if lookback_s >= min_evidence.total_seconds():
                rate = (Decimal(recent_spend) * 3600 / Decimal(repr(lookback_s))).quantize(_MONEY_QUANTUM)
                if rate > 0 and spent_d < budget.limit_usd and window.end is not None:
                    seconds_left = (budget.limit_usd - spent_d) / rate * 3600
                    # Compare before building a timedelta: a tiny rate gives an out-of-range date.
                    if seconds_left < Decimal(repr((window.end - at).total_seconds())):
                        forecast_at = at + timedelta(seconds=float(seconds_left))
        status = BudgetStatus(
            budget=budget,
            entity=str(entity),
            window_start=window.start,
            window_end=window.end,
            spent_usd=spent_d,
            calls=int(calls),
            unpriced_calls=int(unpriced),
            recent_rate_usd_per_hour=rate,
            forecast_at=forecast_at,
            window_key=window.key,
            rate_lookback=timedelta(seconds=lookback_s) if rate is not None else None,
        )
        statuses.append(status)
    return statuses


def evaluate_budgets(
    connection: duckdb.DuckDBPyConnection,
    budgets: Sequence[Budget],
    at: datetime | None = None,
    *,
    forecast_lookback: timedelta = FORECAST_LOOKBACK,
) -> list[BudgetStatus]:
    """Where every entity with spend stands, for each window budget, in the window containing ``at``.

    Read-only: nothing is recorded or delivered (use :meth:`BudgetEngine.evaluate` for that).
    Per-call budgets have no window and are skipped. Each window's total is the stored total of calls
    that *started* in it.

    Args:
        connection: An open DuckDB connection (a cursor is taken, so a shared one is safe).
        budgets: The budgets to evaluate.
        at: The instant whose windows are evaluated (timezone-aware; default now). For rolling windows
            it is the window's end; for calendar windows it also drives the forecast.
        forecast_lookback: How far back the recent rate looks (default :data:`FORECAST_LOOKBACK`).

    Returns:
        One :class:`BudgetStatus` per (budget, entity), in budget order then by descending spend.

    Raises:
        ValueError: ``at`` is naive.
        StorageError: the database has no ``llm_calls`` table (not an otel-llm-cost database).
        duckdb.Error: the query failed otherwise.
    """
    when = datetime.now(UTC) if at is None else _aware(at)
    cursor = connection.cursor()
    try:
        result: list[BudgetStatus] = []
        for budget in budgets:
            if budget.is_per_call:
                continue
            window = _window_containing(budget, when)
            statuses = _statuses_for_window(cursor, budget, window, None, when, forecast_lookback)
            statuses.sort(key=lambda s: (-s.spent_usd, s.entity))
            result.extend(statuses)
        return result
    finally:
        cursor.close()


def remaining_budget(
    connection: duckdb.DuckDBPyConnection,
    budget: Budget,
    entity: str | None = None,
    at: datetime | None = None,
) -> Decimal:
    """What ``entity`` may still spend under ``budget`` in the window containing ``at``.

    Args:
        connection: An open DuckDB connection.
        budget: A window budget (for a per-call budget the answer is its limit).
        entity: The scope value as stored (hashed for ``user``); ignored for ``global`` budgets.
        at: Timezone-aware instant (default now).

    Returns:
        ``limit - spent``, never below 0.

    Raises:
        ValueError: ``entity`` is missing for a non-global budget, or ``at`` is naive.
        StorageError: the database has no ``llm_calls`` table (not an otel-llm-cost database).
    """
    if budget.is_per_call:
        return budget.limit_usd
    status = _status_of(connection, budget, entity, at)
    return status.remaining_usd


def _status_of(
    connection: duckdb.DuckDBPyConnection,
    budget: Budget,
    entity: str | None,
    at: datetime | None,
) -> BudgetStatus:
    when = datetime.now(UTC) if at is None else _aware(at)
    if budget.scope == "global":
        entity = "*"
    elif entity is None:
        raise ValueError(f"budget {budget.name!r} is per {budget.scope}: pass the entity to check")
    window = _window_containing(budget, when)
    cursor = connection.cursor()
    try:
        found = _statuses_for_window(cursor, budget, window, [entity], when)
    finally:
        cursor.close()
    if found:
        return found[0]
    return BudgetStatus(budget, entity, window.start, window.end, Decimal(0), 0, 0, None, None, window.key)


# The engine ------------------------------------------------------------------------------------


def _hex_id(value: object, width: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:0{width}x}" if value else None
    if isinstance(value, str) and value:
        return value.lower()
    return None


def _attribute_str(attributes: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _scope_from_attributes(attributes: Mapping[str, Any], scope: str) -> str | None:
    if scope.startswith("tag:"):
        return _attribute_str(attributes, (semconv.COST_PREFIX + scope[4:],))
    return _attribute_str(attributes, _SCOPE_ATTRIBUTES.get(scope, ()))


class BudgetEngine:
    """Evaluates budgets as telemetry flows and delivers each alert once to every sink.

    Built by :class:`~otel_llm_cost.processor.LLMCostSpanProcessor` when it is given ``budgets``; it
    calls :meth:`check_call` for each billable LLM span and registers :meth:`on_commit` with every
    :class:`~otel_llm_cost.exporter.DuckDBSpanExporter` it wraps. Usable alone too, e.g. from cron with
    :meth:`evaluate`.

    Args:
        budgets: The budgets (names must be unique).
        sinks: Where alerts go: callables taking a :class:`BudgetAlert` (``LoggingSink``,
            ``WebhookSink``, ``OTelLogSink`` or any function). Default: a :class:`LoggingSink`, plus a
            :class:`WebhookSink` when ``OTEL_LLM_COST_WEBHOOK_URL`` is set.
        clock: Returns the current time (timezone-aware); for tests and replays.
        forecast: Set False to disable burn-rate forecast alerts.
        max_queued_alerts: Per-call alerts waiting for the delivery thread before new ones are dropped
            (logged once and counted as ``budgets.alerts.queue_full``; they are still recorded in
            ``budget_alerts``).

    Raises:
        BudgetConfigError: two budgets share a name, or an item is not a :class:`Budget`.
        ValueError: ``max_queued_alerts`` < 1.
    """

    def __init__(
        self,
        budgets: Sequence[Budget],
        sinks: Sequence[AlertSink] | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        forecast: bool = True,
        max_queued_alerts: int = 1000,
    ) -> None:
        if max_queued_alerts < 1:
            raise ValueError(f"max_queued_alerts: must be >= 1, got {max_queued_alerts!r}")
        self._set(budgets)
        self._sinks: tuple[AlertSink, ...] = tuple(sinks) if sinks is not None else _default_sinks()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._forecast = forecast
        self._lock = threading.Lock()
        self._recent_calls: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._pending: list[BudgetAlert] = []
        # check_call runs in on_end, on the application's thread: a sink that blocks (a pager, a user
        # callable) must not block the request, so per-call alerts are handed to a worker thread.
        self._call_alerts: BackgroundQueue[BudgetAlert] = BackgroundQueue(
            self._deliver,
            label="per-call budget alert delivery",
            log_key="budgets.alerts",
            thread_name="otel-llm-cost-alerts",
            max_size=max_queued_alerts,
        )

    def _deliver(self, alert: BudgetAlert) -> None:
        deliver(alert, self._sinks)

    @property
    def budgets(self) -> tuple[Budget, ...]:
        """The current budgets (an immutable snapshot)."""
        return self._snapshot[0]

    @property
    def sinks(self) -> tuple[AlertSink, ...]:
        """The alert sinks, in delivery order."""
        return self._sinks

    def set_budgets(self, budgets: Sequence[Budget]) -> None:
        """Swap in a new set of budgets atomically (evaluations in flight finish with the old set).

        Raises:
            BudgetConfigError: as for the constructor.
        """
        self._set(budgets)

    def _set(self, budgets: Sequence[Budget]) -> None:
        validated = _validated(budgets)
        per_call = [b for b in validated if b.is_per_call]
        # Below this float cost no per-call threshold can be reached; the margin absorbs the float
        # rounding of llm.cost_usd, so the exact Decimal check still decides every close call.
        floor = min((float(b.limit_usd * b.thresholds[0]) for b in per_call), default=math.inf)
        # One tuple assignment: a concurrent check_call sees the old snapshot or the new, never a mix.
        self._snapshot = (validated, floor * (1 - 1e-9), bool(per_call))

    # Per-call ---------------------------------------------------------------------------------

    def check_call(
        self,
        attributes: Mapping[str, Any],
        *,
        trace_id: int | str | None = None,
        span_id: int | str | None = None,
        start_time_ns: int | None = None,
    ) -> list[BudgetAlert]:
        """Check per-call budgets against one enriched LLM span; queue what fired for delivery.

        Never raises and never waits on a sink: the alerts are delivered to the sinks by a background
        thread (:meth:`flush` waits for it), and recorded in ``budget_alerts`` at the next
        :meth:`on_commit`. A failure is logged once and counted. Cheap when there are no per-call budgets.

        Args:
            attributes: The span's attributes including the enrichment (``llm.cost_usd``, ``cost.*``).
            trace_id: The span's trace id (int or hex).
            span_id: The span's id (int or hex); the entity of per-call alerts.
            start_time_ns: The span's start (epoch ns), reported as the alert's window.

        Returns:
            The alerts this call fired (queued for delivery).
        """
        budgets, fast_floor, has_per_call = self._snapshot
        if not has_per_call:
            return []
        raw_cost = attributes.get(semconv.LLM_COST_USD) if isinstance(attributes, Mapping) else None
        if isinstance(raw_cost, float | int) and raw_cost < fast_floor:
            return []  # the common case: a call far below every per-call limit
        try:
            return self._check_call(budgets, attributes, trace_id, span_id, start_time_ns)
        except Exception as exc:
            log_once(_logger, "budgets.check_call", logging.WARNING, "per-call budget check failed: %r", exc)
            return []

    def _check_call(
        self,
        budgets: tuple[Budget, ...],
        attributes: Mapping[str, Any],
        trace_id: int | str | None,
        span_id: int | str | None,
        start_time_ns: int | None,
    ) -> list[BudgetAlert]:
        if attributes.get(semconv.LLM_COST_BILLABLE) is False:
            return []
        span_hex = _hex_id(span_id, 16)
        trace_hex = _hex_id(trace_id, 32)
        raw_cost = attributes.get(semconv.LLM_COST_USD)
        cost: Decimal | None = None
        if isinstance(raw_cost, int | float) and not isinstance(raw_cost, bool) and math.isfinite(raw_cost):
            cost = Decimal(repr(raw_cost)).quantize(_MONEY_QUANTUM)
        started = datetime.fromtimestamp(start_time_ns / 1e9, UTC) if isinstance(start_time_ns, int) else None
        fired: list[BudgetAlert] = []
        for budget in budgets:
            if not budget.is_per_call:
                continue
            if not budget.matches(lambda key: _scope_from_attributes(attributes, key)):
                continue
            if cost is None:
                # One warning per (budget, model) per process: per call it would flood the log.
                model = _scope_from_attributes(attributes, "model") or "unknown"
                if not self._remember((budget.name, f"unpriced:{model}")):
                    continue
                status = BudgetStatus(budget, model, None, None, Decimal(0), 1, 1, None, None, "call")
                fired.append(self._build(AlertKind.UNPRICED, status, Decimal(0), trace_hex, span_hex))
                continue
            entity = span_hex or "unknown"
            if span_hex is not None and not self._remember((budget.name, span_hex)):
                continue
            status = BudgetStatus(budget, entity, started, None, cost, 1, 0, None, None, "call")
            fired.extend(
                self._build(AlertKind.THRESHOLD, status, threshold, trace_hex, span_hex)
                for threshold in budget.thresholds
                if cost >= budget.limit_usd * threshold
            )
        if fired:
            with self._lock:
                room = _PENDING_RECORDS_MAX - len(self._pending)
                self._pending.extend(a for a in fired[:room] if a.kind is AlertKind.THRESHOLD)
            for alert in fired:
                self._call_alerts.put(alert)
        return fired

    def _remember(self, key: tuple[str, str]) -> bool:
        """False when ``key`` was seen recently (bounded memory, oldest forgotten first)."""
        with self._lock:
            if key in self._recent_calls:
                return False
            self._recent_calls[key] = None
            if len(self._recent_calls) > _RECENT_CALLS_REMEMBERED:
                self._recent_calls.popitem(last=False)
            return True

    def _build(
        self,
        kind: AlertKind,
        status: BudgetStatus,
        threshold: Decimal,
        trace_id: str | None,
        span_id: str | None,
    ) -> BudgetAlert:
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
            message=_alert_message(kind, status, threshold),
            trace_id=trace_id,
            span_id=span_id,
            unpriced_calls=status.unpriced_calls,
            forecast_at=status.forecast_at if kind is AlertKind.FORECAST else None,
            tz=budget.tz,
            window_key=status.window_key,
            fired_at=self._clock(),
        )

    # Window budgets -----------------------------------------------------------------------------

    def on_commit(self, info: CommitInfoLike) -> None:
        """Evaluate window budgets for the entities and windows a committed batch touched.

        Registered with ``DuckDBSpanExporter.add_commit_listener``. Never raises: failures are logged
        once and counted. Also records per-call alerts delivered since the last commit.

        Args:
            info: The exporter's commit info: ``connection`` (a cursor valid during the call) and
                ``rows`` (a ``pyarrow.Table`` of the inserted ``llm_calls`` rows).
        """
        try:
            self._on_commit(info.connection, info.rows)
        except Exception as exc:
            log_once(_logger, "budgets.on_commit", logging.WARNING, "budget evaluation failed: %r", exc)

    def _on_commit(self, connection: duckdb.DuckDBPyConnection, rows: Any) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        if pending:
            self._record(connection, pending)
        budgets = [b for b in self._snapshot[0] if not b.is_per_call]
        if not budgets or rows is None or rows.num_rows == 0:
            return
        now = _aware(self._clock())
        columns = _batch_columns(rows)
        fired: list[BudgetAlert] = []
        for budget in budgets:
            for window, entities, at in _touched(budget, columns, now):
                statuses = _statuses_for_window(connection, budget, window, sorted(entities), at)
                fired.extend(self._fire(connection, statuses))
        for alert in fired:
            deliver(alert, self._sinks)

    def evaluate(
        self, connection: duckdb.DuckDBPyConnection, at: datetime | None = None
    ) -> list[BudgetAlert]:
        """Evaluate every window budget for every entity at ``at``; record and deliver new alerts.

        For cron jobs and ``otel-llm-cost budgets check --fire``. Unlike the telemetry hooks this
        raises: it runs where an error should be seen.

        Args:
            connection: A read-write DuckDB connection.
            at: Timezone-aware instant (default: the engine's clock).

        Returns:
            The alerts that fired now (not those already in ``budget_alerts``).

        Raises:
            ValueError: ``at`` is naive.
            duckdb.Error: the database could not be read or written.
        """
        when = _aware(self._clock() if at is None else at)
        cursor = connection.cursor()
        try:
            fired: list[BudgetAlert] = []
            for budget in self._snapshot[0]:
                if budget.is_per_call:
                    continue
                window = _window_containing(budget, when)
                fired.extend(self._fire(cursor, _statuses_for_window(cursor, budget, window, None, when)))
        finally:
            cursor.close()
        for alert in fired:
            deliver(alert, self._sinks)
        return fired

    def _candidates(self, status: BudgetStatus) -> list[tuple[AlertKind, Decimal]]:
        budget = status.budget
        found = [
            (AlertKind.THRESHOLD, threshold)
            for threshold in budget.thresholds
            if status.spent_usd >= budget.limit_usd * threshold
        ]
        if self._forecast and status.forecast_at is not None:
            found.append((AlertKind.FORECAST, _ONE))
        if status.unpriced_calls > 0:
            found.append((AlertKind.UNPRICED, Decimal(0)))
        return found

    def _fire(
        self, connection: duckdb.DuckDBPyConnection, statuses: Sequence[BudgetStatus]
    ) -> list[BudgetAlert]:
        wanted = [
            (status, kind, threshold) for status in statuses for kind, threshold in self._candidates(status)
        ]
        if not wanted:
            return []
        self._ensure_table(connection)
        budget = statuses[0].budget
        # Skip what already fired before looking for triggering spans (the INSERT below stays the guard).
        existing = set(
            connection.execute(
                "SELECT entity, window_key, kind, threshold FROM budget_alerts WHERE budget = ? "
                "AND limit_usd = ? AND list_contains(?, entity) AND list_contains(?, window_key)",
                [
                    budget.name,
                    budget.limit_usd,
                    sorted({s.entity for s, _, _ in wanted}),
                    sorted({s.window_key for s, _, _ in wanted}),
                ],
            ).fetchall()
        )
        fresh = [
            (status, kind, threshold)
            for status, kind, threshold in wanted
            if (status.entity, status.window_key, kind.value, threshold) not in existing
        ]
        triggers = self._triggers(connection, [(s, t) for s, k, t in fresh if k is AlertKind.THRESHOLD])
        alerts = []
        for status, kind, threshold in fresh:
            if kind is AlertKind.THRESHOLD:
                trace_id, span_id = triggers.get((status.entity, threshold), (None, None))
            elif kind is AlertKind.UNPRICED:
                trace_id, span_id = self._unpriced_trigger(connection, status)
            else:
                trace_id, span_id = None, None
            alerts.append(self._build(kind, status, threshold, trace_id, span_id))
        return self._record(connection, alerts)

    @staticmethod
    def _unpriced_trigger(
        connection: duckdb.DuckDBPyConnection, status: BudgetStatus
    ) -> tuple[str | None, str | None]:
        budget = status.budget
        sql, params = _budget_sql.first_unpriced_sql(
            budget.scope,
            budget.where,
            window_start=status.window_start,
            window_end=status.window_end,
            entity=status.entity,
        )
        # fetchall, not fetchone: DuckDB 2.0 refuses the next statement while a result is unfinished.
        rows = connection.execute(sql, params).fetchall()
        return (rows[0][1], rows[0][0]) if rows else (None, None)

    @staticmethod
    def _triggers(
        connection: duckdb.DuckDBPyConnection, wanted: Sequence[tuple[BudgetStatus, Decimal]]
    ) -> dict[tuple[str, Decimal], tuple[str | None, str | None]]:
        """The call that crossed each (entity, threshold): one query for the whole window."""
        if not wanted:
            return {}
        first = wanted[0][0]
        budget = first.budget
        sql, params = _budget_sql.triggers_sql(
            budget.scope,
            budget.where,
            window_start=first.window_start,
            window_end=first.window_end,
            entities=[status.entity for status, _ in wanted],
            amounts=[(budget.limit_usd * t).quantize(_MONEY_QUANTUM) for _, t in wanted],
        )
        found: dict[tuple[str, Decimal], tuple[str | None, str | None]] = {}
        for index, span_id, trace_id in connection.execute(sql, params).fetchall():
            status, threshold = wanted[index]
            found[(status.entity, threshold)] = (trace_id, span_id)
        return found

    @staticmethod
    def _ensure_table(connection: duckdb.DuckDBPyConnection) -> None:
        # _storage.connect creates budget_alerts; a connection handed in by the user may predate it.
        # Only a handful of statements reach here (when some alert is due), so the check is cheap.
        connection.execute(CREATE_ALERTS)

    def _record(
        self, connection: duckdb.DuckDBPyConnection, alerts: Sequence[BudgetAlert]
    ) -> list[BudgetAlert]:
        """Insert alerts; return those this call inserted (the others had already fired somewhere)."""
        if not alerts:
            return []
        self._ensure_table(connection)
        # Arrow, not bound parameters: an alert storm (thousands of users crossing at once) binds in ms.
        relation = f"_otel_llm_cost_alerts_{threading.get_ident()}"
        connection.register(relation, _alerts_table(alerts))
        try:
            for attempt in range(3):
                try:
                    returned = connection.execute(_budget_sql.insert_alerts_sql(relation)).fetchall()
                    break
                except duckdb.TransactionException:
                    # Another thread of this process inserted a same-key row concurrently; the retry
                    # sees it committed and ON CONFLICT skips it.
                    if attempt == 2:
                        raise
        finally:
            connection.unregister(relation)
        inserted = {(b, e, w, k, Decimal(t)) for b, e, w, k, t in returned}
        return [
            a for a in alerts if (a.budget, a.entity, a.window_key, a.kind.value, a.threshold) in inserted
        ]

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until queued per-call alerts reached the sinks and sinks with a queue (webhooks) sent them.

        Returns:
            True if everything was delivered within ``timeout_s`` (shared by all the waits).
        """
        deadline = time.monotonic() + timeout_s
        ok = self._call_alerts.flush(timeout_s)
        for sink in self._sinks:
            flush = getattr(sink, "flush", None)
            if callable(flush):
                try:
                    ok = bool(flush(max(0.0, deadline - time.monotonic()))) and ok
                except Exception as exc:
                    log_once(_logger, "budgets.flush", logging.WARNING, "alert sink flush failed: %r", exc)
                    ok = False
        return ok

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Deliver queued per-call alerts, then flush and stop background sinks (webhook threads).

        Waits at most ``timeout_s`` in total; what is still queued then is dropped. Never raises.
        """
        deadline = time.monotonic() + timeout_s
        self._call_alerts.shutdown(timeout_s)
        shutdown_sinks(self._sinks, max(0.0, deadline - time.monotonic()))


def _default_sinks() -> tuple[AlertSink, ...]:
    url = _config.WEBHOOK_URL.get()
    if url:
        try:
            return (LoggingSink(), WebhookSink(url))
        except ValueError as exc:  # a bad environment value is logged, never fatal
            _logger.error("ignoring %s=%r: %s", _config.WEBHOOK_URL.name, url, exc)
    return (LoggingSink(),)


def _alerts_table(alerts: Sequence[BudgetAlert]) -> Any:
    import pyarrow as pa  # noqa: PLC0415 - only needed when an alert fires

    now = datetime.now(UTC)
    money = pa.decimal128(38, 12)
    instant = pa.timestamp("us", tz="UTC")
    columns: list[tuple[str, Any, list[Any]]] = [
        ("budget", pa.string(), [a.budget for a in alerts]),
        ("entity", pa.string(), [a.entity for a in alerts]),
        ("window_key", pa.string(), [a.window_key for a in alerts]),
        ("kind", pa.string(), [a.kind.value for a in alerts]),
        ("threshold", pa.decimal128(9, 6), [a.threshold for a in alerts]),
        ("limit_usd", money, [a.limit_usd for a in alerts]),
        ("scope", pa.string(), [a.scope for a in alerts]),
        ("window_spec", pa.string(), [a.window for a in alerts]),
        ("window_start", instant, [a.window_start for a in alerts]),
        ("window_end", instant, [a.window_end for a in alerts]),
        ("tz", pa.string(), [a.tz for a in alerts]),
        ("spent_usd", money, [a.spent_usd for a in alerts]),
        ("percent", pa.decimal128(12, 2), [a.percent for a in alerts]),
        ("unpriced_calls", pa.int64(), [a.unpriced_calls for a in alerts]),
        ("forecast_at", instant, [a.forecast_at for a in alerts]),
        ("trace_id", pa.string(), [a.trace_id for a in alerts]),
        ("span_id", pa.string(), [a.span_id for a in alerts]),
        ("message", pa.string(), [a.message for a in alerts]),
        ("fired_at", instant, [a.fired_at or now for a in alerts]),
    ]
    return pa.table({name: pa.array(values, type=typ) for name, typ, values in columns})


def _validated(budgets: Sequence[Budget]) -> tuple[Budget, ...]:
    result = tuple(budgets)
    seen: set[str] = set()
    for budget in result:
        if not isinstance(budget, Budget):
            raise BudgetConfigError(f"budgets: expected Budget objects, got {budget!r}", field="budgets")
        if budget.name in seen:
            raise BudgetConfigError(
                f"name: two budgets are named {budget.name!r}; alerts are keyed by name", field="name"
            )
        seen.add(budget.name)
    return result


# Batch rows -> touched (window, entities) ---------------------------------------------------------


@dataclass(slots=True)
class _BatchColumns:
    table: Any
    cache: dict[str, list[Any]]
    start_us: list[int]

    def column(self, name: str) -> list[Any]:
        if name not in self.cache:
            self.cache[name] = (
                self.table.column(name).to_pylist()
                if name in self.table.column_names
                else [None] * len(self.start_us)
            )
        return self.cache[name]


def _batch_columns(rows: Any) -> _BatchColumns:
    import pyarrow as pa  # noqa: PLC0415 - only needed once a batch arrives
    import pyarrow.compute as pc  # noqa: PLC0415

    start = rows.column("start_time")
    unit = getattr(start.type, "unit", "us")
    ints = pc.cast(start, pa.int64()).to_pylist()
    # Integer arithmetic: a float division could move a call across a window boundary by a microsecond.
    if unit == "ns":
        start_us = [v // 1000 if isinstance(v, int) else 0 for v in ints]
    else:
        scale = {"s": 1_000_000, "ms": 1000, "us": 1}[unit]
        start_us = [v * scale if isinstance(v, int) else 0 for v in ints]
    return _BatchColumns(rows, {}, start_us)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _from_us(epoch_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=epoch_us)


def _value_getter(columns: _BatchColumns, scope: str) -> Callable[[int], str | None]:
    if scope == "global":
        return lambda _i: "*"
    if scope.startswith("tag:"):
        key = scope[4:]
        tags = columns.column("tags")

        def tag_value(i: int) -> str | None:
            entries = tags[i]
            if not entries:
                return None
            items = entries.items() if isinstance(entries, dict) else entries
            for k, v in items:
                if k == key:
                    return str(v) if v is not None else None
            return None

        return tag_value
    lists = [columns.column(name) for name in _SCOPE_COLUMNS[scope]]

    def value(i: int) -> str | None:
        for values in lists:
            if values[i] is not None:
                return str(values[i])
        return None

    return value


def _touched(
    budget: Budget, columns: _BatchColumns, now: datetime
) -> list[tuple[_Window, set[str], datetime]]:
    entity_of = _value_getter(columns, budget.scope)
    filters = {key: _value_getter(columns, key) for key in budget.where}
    billable = columns.column("billable")
    rows_by_time = sorted(range(len(columns.start_us)), key=columns.start_us.__getitem__)
    latest = max(columns.start_us) if columns.start_us else 0
    # A rolling window ends now, or just after the newest call when the sender's clock runs ahead.
    rolling_at = max(now, _from_us(latest + 1))
    rolling = _window_containing(budget, rolling_at) if budget._rolling_hours is not None else None
    result: dict[str, tuple[_Window, set[str], datetime]] = {}
    current: _Window | None = None
    for i in rows_by_time:
        if billable[i] is False:
            continue
        entity = entity_of(i)
        if entity is None or any(getter(i) not in budget.where[key] for key, getter in filters.items()):
            continue
        instant = _from_us(columns.start_us[i])
        if rolling is not None:
            if rolling.start is None or instant < rolling.start:
                continue
            window, at = rolling, rolling_at
        else:
            if current is None or not current.contains(instant):
                current = _window_containing(budget, instant)
            window = current
            at = now
        entry = result.setdefault(window.key, (window, set(), at))
        entry[1].add(entity)
    return list(result.values())


# Enforcement ---------------------------------------------------------------------------------------


class _Hasher(Protocol):
    def hash(self, raw: str) -> str: ...


class BudgetGuard:
    """Opt-in enforcement: call :meth:`check` before an LLM call to refuse it when a limit is spent.

    Reads the stored spend with SQL each time (exact, shared with every writer of the file). Given a
    path, the guard holds the file only while a check runs (and ~0.1 s after, for the next check), like
    a path-backed ``CostStore``: the exporting application, in this process or another, keeps writing.
    Given a ``CostStore`` it queries through the store; given a connection, it uses it as is.

    Args:
        store_or_path: A ``CostStore``, a DuckDB connection, or a file path (created, with the tables,
            if missing).
        budgets: The budgets to enforce (per-call budgets are ignored: the cost is known only after).
        user_id_hasher: Hashes raw user ids passed as ``user=``. Default: the process-wide hasher
            (``otel_llm_cost.enrich.attribution.default_user_id_hasher()``), which an
            ``LLMCostSpanProcessor(user_id_hasher=...)`` in this process registers, so the guard looks
            up the same keyed hash the processor writes. In another process, pass the same key (or set
            ``OTEL_LLM_COST_USER_ID_KEY`` in both).

    Raises:
        TypeError: ``store_or_path`` is none of those.
        StorageError: the file cannot be opened.

    Example::

        guard = BudgetGuard(store, [Budget.per_user_daily(50)])
        guard.check(user="u-42")   # raises BudgetExceeded once u-42 spent $50 today
    """

    def __init__(
        self,
        store_or_path: object,
        budgets: Sequence[Budget],
        *,
        user_id_hasher: _Hasher | None = None,
    ) -> None:
        self._budgets = _validated(budgets)
        self._owned: _Connectable | None = None
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._store: _Connectable | None = None
        if isinstance(store_or_path, duckdb.DuckDBPyConnection):
            self._connection = store_or_path
        elif isinstance(store_or_path, str | os.PathLike):
            self._owned = self._store = _open_store(store_or_path)
        else:
            if not callable(getattr(store_or_path, "connect", None)):
                raise TypeError(
                    "store_or_path: expected a CostStore, a DuckDB connection or a path, "
                    f"got {store_or_path!r}"
                )
            self._store = store_or_path  # type: ignore[assignment]  # a CostStore (checked above)
        self._hasher = user_id_hasher

    def _connect(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        if self._store is not None:
            return self._store.connect()
        assert self._connection is not None  # noqa: S101 - set whenever there is no store
        return contextlib.nullcontext(self._connection)

    def _hash_user(self, raw: str) -> str:
        hasher = self._hasher
        if hasher is None:
            # Resolved at each check, not once: a processor built after the guard still sets the key.
            from otel_llm_cost.enrich.attribution import default_user_id_hasher  # noqa: PLC0415 - import cycle

            hasher = default_user_id_hasher()
        return hasher.hash(raw)

    def statuses(self, *, at: datetime | None = None, **entities: str) -> list[BudgetStatus]:
        """The status of every budget that applies to ``entities`` (scope name -> raw value).

        A budget applies when it is global or its scope is among ``entities``, and every ``where`` key
        it has is among ``entities`` with an allowed value. ``user`` values are hashed first.
        """
        values = {_canonical_scope(k, "entity"): v for k, v in entities.items()}
        if "user" in values:
            values["user"] = self._hash_user(values["user"])
        applicable = [
            budget
            for budget in self._budgets
            if not budget.is_per_call
            and (budget.scope == "global" or budget.scope in values)
            and budget.matches(values.get)
        ]
        if not applicable:
            return []
        with self._connect() as connection:
            return [_status_of(connection, budget, values.get(budget.scope), at) for budget in applicable]

    def check(self, *, at: datetime | None = None, **entities: str) -> None:
        """Raise :class:`BudgetExceeded` if any applicable budget is already spent.

        Args:
            at: Timezone-aware instant (default now).
            **entities: Scope values of the call about to be made, e.g. ``user="u-42", org="org_1"``.

        Raises:
            BudgetExceeded: with ``budget``, ``entity``, ``spent_usd``, ``limit_usd``, ``window_end``
                of the first budget found spent (spend exactly at the limit counts as spent).
            StorageError: the database has no ``llm_calls`` table (not an otel-llm-cost database).
        """
        for status in self.statuses(at=at, **entities):
            if status.over:
                raise BudgetExceeded(
                    status.budget.name,
                    status.entity,
                    status.spent_usd,
                    status.limit_usd,
                    window_end=status.window_end,
                )

    def remaining(self, budget: Budget | str, *, at: datetime | None = None, **entities: str) -> Decimal:
        """What may still be spent under ``budget`` (a Budget or its name) by ``entities``.

        Raises:
            KeyError: no budget has that name.
            ValueError: the budget's scope value is missing from ``entities``.
        """
        chosen = budget if isinstance(budget, Budget) else {b.name: b for b in self._budgets}[budget]
        values = {_canonical_scope(k, "entity"): v for k, v in entities.items()}
        if "user" in values:
            values["user"] = self._hash_user(values["user"])
        with self._connect() as connection:
            return remaining_budget(connection, chosen, values.get(chosen.scope), at)

    def close(self) -> None:
        """Release the file the guard opened itself (nothing to do when given a store or connection)."""
        if self._owned is not None:
            self._owned.close()
            self._owned = None


class _Connectable(Protocol):
    """What BudgetGuard needs from a CostStore."""

    def connect(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]: ...

    def close(self) -> None: ...


def _open_store(path: str | os.PathLike[str]) -> _Connectable:
    # Imported here: store imports this module, and storage pulls in the exporter's dependencies.
    from otel_llm_cost.query.store import CostStore  # noqa: PLC0415
    from otel_llm_cost.storage import connect as _storage  # noqa: PLC0415

    if not os.path.exists(path):
        _storage.connect(path).close()  # a guard set up before the first export creates the file
    # Read-write: in the exporting process it then shares the exporter's DuckDB instance (a read-only
    # handle would conflict with it, DESIGN.md fact 5).
    return CostStore(path, read_only=False)


# Budget files -------------------------------------------------------------------------------------

_BUDGET_FIELDS: Final = ("name", "preset", "scope", "window", "limit_usd", "thresholds", "tz", "where")
_DEFAULT_FIELDS: Final = ("tz", "thresholds")
_PRESETS: Final[Mapping[str, Callable[..., Budget]]] = {
    "per_call": Budget.per_call,
    "per_session": Budget.per_session,
    "per_user_daily": Budget.per_user_daily,
    "per_org_daily": Budget.per_org_daily,
}


def load_budgets(path: str | os.PathLike[str]) -> list[Budget]:
    """Read budgets from a TOML file.

    The file has one ``[[budget]]`` table per budget (fields as :class:`Budget`, or ``preset =
    "per_org_daily"`` plus ``limit_usd`` and optional overrides) and an optional ``[defaults]`` table
    (``tz``, ``thresholds``)::

        [defaults]
        tz = "Europe/Berlin"

        [[budget]]
        preset = "per_org_daily"
        limit_usd = "1000"

        [[budget]]
        name = "search-feature-weekly"
        scope = "feature"
        window = "week"
        limit_usd = 250
        where = { feature = "search" }

    Args:
        path: The file.

    Returns:
        The budgets, in file order.

    Raises:
        BudgetConfigError: the file is not valid TOML or a budget is invalid; the message names the
            file, the line and the field.
        OSError: the file cannot be read.
    """
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc))
        raise BudgetConfigError(f"{file}, line {line}: invalid TOML: {exc}", line=line) from None
    locator = _TomlLocator(text)
    unknown = sorted(set(data) - {"budget", "defaults"})
    if unknown:
        line = locator.top_level(unknown[0])
        raise BudgetConfigError(
            f"{file}, line {line}: unknown table {unknown[0]!r} (expected [[budget]] and [defaults])",
            field=unknown[0],
            line=line,
        )
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise BudgetConfigError(f"{file}: [defaults] must be a table", field="defaults")
    for key in defaults:
        if key not in _DEFAULT_FIELDS:
            line = locator.default_key(key)
            raise BudgetConfigError(
                f"{file}, line {line}: [defaults] field {key!r} is not allowed (only tz, thresholds)",
                field=key,
                line=line,
            )
    entries = data.get("budget", [])
    if not isinstance(entries, list):
        raise BudgetConfigError(f"{file}: 'budget' must be an array of tables ([[budget]])", field="budget")
    budgets: list[Budget] = []
    names: dict[str, int] = {}
    for index, entry in enumerate(entries):
        try:
            budget = _budget_from_table(entry, defaults)
        except BudgetConfigError as exc:
            line = locator.budget_key(index, exc.field)
            label = entry.get("name") or entry.get("preset") if isinstance(entry, dict) else None
            what = f"budget #{index + 1}" + (f" ({label!r})" if label else "")
            raise BudgetConfigError(
                f"{file}, line {line}: {what}: {exc}", field=exc.field, line=line
            ) from None
        if budget.name in names:
            line = locator.budget_key(index, "name")
            raise BudgetConfigError(
                f"{file}, line {line}: budget #{index + 1}: field 'name': {budget.name!r} is already used "
                f"by budget #{names[budget.name] + 1}",
                field="name",
                line=line,
            )
        names[budget.name] = index
        budgets.append(budget)
    return budgets


def _budget_from_table(entry: object, defaults: Mapping[str, Any]) -> Budget:
    if not isinstance(entry, dict):
        raise BudgetConfigError("expected a table", field=None)
    for key in entry:
        if key not in _BUDGET_FIELDS:
            raise BudgetConfigError(
                f"field {key!r}: unknown field (expected one of {', '.join(_BUDGET_FIELDS)})", field=key
            )
    if "limit_usd" not in entry:
        raise BudgetConfigError("field 'limit_usd': missing", field="limit_usd")
    options: dict[str, Any] = {k: v for k, v in defaults.items()}
    options.update({k: entry[k] for k in ("thresholds", "tz", "where") if k in entry})
    try:
        preset = entry.get("preset")
        if preset is not None:
            if preset not in _PRESETS:
                raise BudgetConfigError(
                    f"unknown preset {preset!r} (expected one of {', '.join(_PRESETS)})", field="preset"
                )
            for key in ("scope", "window"):
                if key in entry:
                    raise BudgetConfigError(f"a preset fixes {key}; remove it", field=key)
            if "name" in entry:
                options["name"] = entry["name"]
            if preset in ("per_call", "per_session"):
                options.pop("tz", None)
            if preset == "per_call" and "thresholds" not in entry:
                # A call crosses all its thresholds at once; the window budgets' defaults would triple it.
                options.pop("thresholds", None)
            return _PRESETS[preset](entry["limit_usd"], **options)
        for key in ("name", "scope", "window"):
            if key not in entry:
                raise BudgetConfigError("missing (or give a preset)", field=key)
        return Budget(entry["name"], entry["scope"], entry["window"], entry["limit_usd"], **options)
    except BudgetConfigError as exc:
        if exc.field and not str(exc).startswith("field "):
            raise BudgetConfigError(
                f"field {exc.field!r}: {_strip_field(str(exc), exc.field)}", field=exc.field
            ) from None
        raise


def _strip_field(message: str, name: str) -> str:
    return message.removeprefix(f"{name}: ")


def _line_from_message(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


class _TomlLocator:
    """Finds the line of a budget table or key in the file's text (tomllib reports none for values)."""

    _HEADER = re.compile(r"^\s*\[\[\s*budget\s*\]\]")
    _TABLE = re.compile(r"^\s*\[")

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self._headers = [i for i, line in enumerate(self._lines) if self._HEADER.match(line)]

    def _find_key(self, start: int, end: int, key: str) -> int | None:
        pattern = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*[=.]")
        sub_table = re.compile(rf"^\s*\[\s*budget\s*\.\s*{re.escape(key)}\s*\]")
        for i in range(start, end):
            if pattern.match(self._lines[i]) or sub_table.match(self._lines[i]):
                return i + 1
        return None

    def budget_key(self, index: int, key: str | None) -> int | None:
        if index >= len(self._headers):
            return None
        start = self._headers[index]
        end = self._headers[index + 1] if index + 1 < len(self._headers) else len(self._lines)
        # A budget's keys end at the next table header other than its own [budget.where] sub-table.
        for i in range(start + 1, end):
            line = self._lines[i]
            if self._TABLE.match(line) and not re.match(r"^\s*\[\s*budget\s*\.", line):
                end = i
                break
        if key is not None:
            found = self._find_key(start + 1, end, key)
            if found is not None:
                return found
        return start + 1

    def default_key(self, key: str) -> int | None:
        for i, line in enumerate(self._lines):
            if re.match(r"^\s*\[\s*defaults\s*\]", line):
                end = next(
                    (j for j in range(i + 1, len(self._lines)) if self._TABLE.match(self._lines[j])),
                    len(self._lines),
                )
                return self._find_key(i + 1, end, key) or i + 1
        return None

    def top_level(self, key: str) -> int | None:
        for i, line in enumerate(self._lines):
            if re.match(rf"^\s*\[+\s*{re.escape(key)}\b", line) or re.match(
                rf"^\s*{re.escape(key)}\s*=", line
            ):
                return i + 1
        return None
