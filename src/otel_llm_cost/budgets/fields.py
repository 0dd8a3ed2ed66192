"""Parsing a budget's limit, thresholds and time zone; each error names the field it is about."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from otel_llm_cost._money import MONEY_QUANTUM
from otel_llm_cost.exceptions import BudgetConfigError

__all__ = ["parse_limit", "parse_thresholds", "parse_zone"]

_THRESHOLD_QUANTUM: Final = Decimal("0.000001")  # DECIMAL(9,6) in budget_alerts
_MAX_LIMIT: Final = Decimal("1e12")  # keeps limit x threshold exact at 12 places in 28 digits
_MAX_THRESHOLD: Final = Decimal(1000)


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


def parse_limit(limit_usd: object) -> Decimal:
    """The limit as a Decimal: > 0, < 1e12, at most 12 decimal places (the stored precision)."""
    limit = _to_decimal(limit_usd, "limit_usd")
    if limit <= 0 or limit >= _MAX_LIMIT:
        raise BudgetConfigError(f"limit_usd: must be > 0 and < 1e12, got {limit_usd!r}", field="limit_usd")
    if limit != limit.quantize(MONEY_QUANTUM):
        raise BudgetConfigError(
            f"limit_usd: at most 12 decimal places (the stored precision), got {limit_usd!r}",
            field="limit_usd",
        )
    return limit


def parse_thresholds(thresholds: Iterable[object]) -> tuple[Decimal, ...]:
    """Distinct fractions of the limit (> 0, at most 1000), sorted, at the stored 6 places."""
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
    return tuple(sorted(parsed))


def parse_zone(tz: object) -> ZoneInfo:
    """The IANA time zone named ``tz``."""
    if not isinstance(tz, str):
        raise BudgetConfigError(f"tz: expected an IANA zone name, got {tz!r}", field="tz")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BudgetConfigError(
            f"tz: unknown IANA time zone {tz!r} (e.g. 'Europe/Berlin')", field="tz"
        ) from None
