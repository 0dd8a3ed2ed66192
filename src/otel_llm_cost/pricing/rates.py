"""Compiled prices and what they charge: per-token Decimal rates, by long-context tier and price period.

A :class:`Card` holds the rates of one price period (base rates and long-context tiers); a
:class:`Schedule` says which card is in force when. :func:`charge` prices one call against a card:
the per-call hot path, a handful of Decimal operations in our own decimal context.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from otel_llm_cost._money import MONEY_CONTEXT, MONEY_QUANTUM, MONEY_SCALE, TOKENS_PER_MILLION
from otel_llm_cost.pricing.results import CostBreakdown, new_priced

if TYPE_CHECKING:
    from otel_llm_cost.conventions.usage import Usage

__all__ = ["ZERO", "Card", "Rates", "Schedule", "charge", "per_million", "per_token", "plain_pico"]

_CTX: Final = MONEY_CONTEXT
ZERO: Final = Decimal(0)
_ZERO_MONEY: Final = _CTX.quantize(ZERO, MONEY_QUANTUM)
"""What a zero token count costs once quantized (``0E-12``), as the general path computes it."""


class Rates(NamedTuple):
    """USD per token (per request for ``request``) actually charged for each kind."""

    input: Decimal
    cache_read: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    output: Decimal
    request: Decimal

    def scaled(self, multiplier: Decimal) -> Rates:
        return Rates(*(_CTX.multiply(rate, multiplier) for rate in self))


# Token counts below this, times a rate below _MAX_EXACT_RATE held with 12 places, fit the money
# context's 40 digits exactly (2**50 * 10**20 < 10**36).
_EXACT_TOKENS_LIMIT: Final = 1 << 50
_MAX_EXACT_RATE: Final = Decimal(10) ** 8


def _money_places_io(rates: Rates) -> tuple[Decimal, Decimal] | None:
    """The input and output rates written with exactly 12 decimal places, when that is exact.

    A rate so written times a token count is already the quantized amount (same value, same
    exponent, so the same Decimal): :func:`charge` then skips three quantize operations.
    """
    try:
        scaled = (_CTX.quantize(rates.input, MONEY_QUANTUM), _CTX.quantize(rates.output, MONEY_QUANTUM))
    except ArithmeticError:
        return None
    if scaled != (rates.input, rates.output) or not all(abs(rate) < _MAX_EXACT_RATE for rate in scaled):
        return None
    return scaled


@dataclass(frozen=True, slots=True)
class Card:
    """The rates of one price period: base rates plus long-context tiers."""

    base: Rates
    tiers: tuple[tuple[int, Rates], ...] = ()
    """``(threshold, rates)`` in DECREASING threshold order: the first with input > threshold wins."""
    base_io_money_places: tuple[Decimal, Decimal] | None = field(init=False, repr=False, compare=False)
    """``base``'s input and output rates with 12 decimal places (``None``: not exact so)."""
    base_io_pico: tuple[int, int] | None = field(init=False, repr=False, compare=False)
    """The same rates as whole picodollars per token, when there is no per-request fee either."""

    def __post_init__(self) -> None:
        exact = _money_places_io(self.base)
        object.__setattr__(self, "base_io_money_places", exact)
        pico = None
        if exact is not None and not self.base.request:
            pico = (int(exact[0].scaleb(MONEY_SCALE, _CTX)), int(exact[1].scaleb(MONEY_SCALE, _CTX)))
        object.__setattr__(self, "base_io_pico", pico)

    def rates_for(self, input_tokens: int) -> Rates:
        for threshold, rates in self.tiers:
            if input_tokens > threshold:
                return rates
        return self.base

    def map(self, transform: Callable[[Rates], Rates]) -> Card:
        return Card(transform(self.base), tuple((t, transform(r)) for t, r in self.tiers))


class Schedule:
    """Which card is in force when: fixed, by UTC start date (bisect), or by genai-prices' own
    constraint objects (time-of-day off-peak prices)."""

    __slots__ = ("_bounds", "_cards", "_conditions", "_dates", "fixed")

    def __init__(
        self,
        *,
        fixed: Card | None = None,
        dates: tuple[date, ...] = (),
        cards: tuple[Card, ...] = (),
        conditions: tuple[tuple[Any, Card], ...] = (),
    ) -> None:
        self.fixed = fixed
        self._dates = dates
        self._bounds = tuple(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() for d in dates)
        self._cards = cards
        self._conditions = conditions

    def card_at(self, at: datetime | None) -> Card:
        if self.fixed is not None:
            return self.fixed
        if self._conditions:
            return self._card_by_condition(at or datetime.now(tz=UTC))
        ts = time.time() if at is None else _timestamp(at)
        return self._cards[bisect.bisect_right(self._bounds, ts)]

    def _card_by_condition(self, at: datetime) -> Card:
        # Same rule as genai-prices ModelInfo.get_prices: the last active price wins, else the first.
        for constraint, card in reversed(self._conditions):
            if constraint is None or constraint.active(at):
                found: Card = card
                return found
        return self._conditions[0][1]

    def validity(self, at: datetime | None) -> tuple[date | None, date | None]:
        if self.fixed is not None or self._conditions:
            return None, None
        ts = time.time() if at is None else _timestamp(at)
        index = bisect.bisect_right(self._bounds, ts)
        valid_from = self._dates[index - 1] if index > 0 else None
        valid_until = self._dates[index] if index < len(self._dates) else None
        return valid_from, valid_until

    @property
    def time_of_day(self) -> bool:
        return bool(self._conditions)

    def map(self, transform: Callable[[Card], Card]) -> Schedule:
        return Schedule(
            fixed=transform(self.fixed) if self.fixed is not None else None,
            dates=self._dates,
            cards=tuple(transform(card) for card in self._cards),
            conditions=tuple((constraint, transform(card)) for constraint, card in self._conditions),
        )


def _timestamp(at: datetime) -> float:
    # genai-prices treats a naive timestamp as UTC; so do we (datetime.timestamp() would use local time).
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


def per_token(price_mtok: Decimal) -> Decimal:
    """USD per token from USD per 1M tokens."""
    return _CTX.divide(price_mtok, TOKENS_PER_MILLION)


def per_million(rates: Rates) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
    """USD per 1M tokens of input, cache read, 5m and 1h cache write and output, for display."""

    def mtok(rate: Decimal) -> Decimal:
        value = _CTX.multiply(rate, TOKENS_PER_MILLION).normalize(_CTX)
        # normalize() writes 10 as 1E+1; show plain digits.
        return value.quantize(Decimal(1)) if value == value.to_integral_value() else value

    return (
        mtok(rates.input),
        mtok(rates.cache_read),
        mtok(rates.cache_write_5m),
        mtok(rates.cache_write_1h),
        mtok(rates.output),
    )


def charge(usage: Usage, labels: CostBreakdown, card: Card) -> CostBreakdown:
    """What ``usage`` costs at ``card``'s rates, quantized, labelled with ``labels``' source and ids.

    Raises:
        ValueError: A negative token count.
        ArithmeticError: Token counts beyond what the decimal context holds.
    """
    input_tokens = usage.input_tokens
    rates = card.rates_for(input_tokens) if card.tiers else card.base

    cache_read = usage.cache_read_tokens
    cache_write = usage.cache_write_tokens
    cache_write_1h = usage.cache_write_1h_tokens
    output_tokens = usage.output_tokens
    if (input_tokens | cache_read | cache_write | cache_write_1h | output_tokens) < 0:
        raise ValueError("negative token count")
    uncached = input_tokens - cache_read - cache_write
    uncached = max(uncached, 0)  # Usage guarantees >= 0; never charge negative tokens anyway
    request = rates.request
    if not (cache_read or cache_write or request):
        return _charge_plain(card, rates, uncached, output_tokens, labels)
    mul = _CTX.multiply
    quantize = _CTX.quantize
    q = MONEY_QUANTUM
    input_usd = mul(rates.input, uncached)
    output_usd = mul(rates.output, output_tokens)
    cache_read_usd = mul(rates.cache_read, cache_read)
    if cache_write_1h:
        cache_write_usd = _CTX.add(
            mul(rates.cache_write_5m, cache_write - cache_write_1h),
            mul(rates.cache_write_1h, cache_write_1h),
        )
    else:
        cache_write_usd = mul(rates.cache_write_5m, cache_write)
    add = _CTX.add
    total = add(add(add(input_usd, cache_read_usd), add(cache_write_usd, output_usd)), request)
    return new_priced(
        quantize(total, q),
        quantize(input_usd, q),
        quantize(cache_read_usd, q),
        quantize(cache_write_usd, q),
        quantize(output_usd, q),
        quantize(mul(_CTX.subtract(rates.input, rates.cache_read), cache_read), q),
        quantize(request, q),
        labels,
    )


def _charge_plain(
    card: Card, rates: Rates, uncached: int, output_tokens: int, labels: CostBreakdown
) -> CostBreakdown:
    """:func:`charge` for the common call: no cache tokens, no per-request fee.

    The Decimal operations that would only add zeros are skipped (~1.3 us of ~3.5); the quantized
    figures are the same.
    """
    mul = _CTX.multiply
    exact = card.base_io_money_places if rates is card.base else None
    if exact is not None and (uncached | output_tokens) < _EXACT_TOKENS_LIMIT:
        # Rates with at most 12 decimal places, written with exactly 12: the products are the
        # quantized amounts already (same value, same exponent), and so is their sum.
        input_usd = mul(exact[0], uncached)
        output_usd = mul(exact[1], output_tokens)
        total = _CTX.add(input_usd, output_usd)
    else:
        quantize = _CTX.quantize
        input_raw = mul(rates.input, uncached)
        output_raw = mul(rates.output, output_tokens)
        total = quantize(_CTX.add(input_raw, output_raw), MONEY_QUANTUM)
        input_usd = quantize(input_raw, MONEY_QUANTUM)
        output_usd = quantize(output_raw, MONEY_QUANTUM)
    return new_priced(
        total, input_usd, _ZERO_MONEY, _ZERO_MONEY, output_usd, _ZERO_MONEY, _ZERO_MONEY, labels
    )


def plain_pico(usage: Usage, card: Card) -> tuple[int, int] | None:
    """The input and output cost of ``usage`` at ``card`` in whole picodollars, or ``None``.

    Only for the common call that :func:`charge` prices through its exact shortcut (no cache tokens,
    no per-request fee, the base rates in force, each written exactly with 12 decimal places): its
    quantized amounts are these integers times 10**-12, so the span path can turn them into floats
    without building Decimals (``n / 1e12`` is the float nearest the amount, as ``float(Decimal)`` is,
    while ``n`` < 2**53). ``None``: price it with :func:`charge`.
    """
    pico = card.base_io_pico
    if pico is None or usage.cache_read_tokens or usage.cache_write_tokens or usage.cache_write_1h_tokens:
        return None
    input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
    if card.tiers and card.rates_for(input_tokens) is not card.base:
        return None
    if not 0 <= (input_tokens | output_tokens) < _EXACT_TOKENS_LIMIT:
        return None
    return pico[0] * input_tokens, pico[1] * output_tokens
