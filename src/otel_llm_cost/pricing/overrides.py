"""A user price-file entry applied to compiled rates: its written prices, discount, multiplier and tiers."""

from __future__ import annotations

from decimal import Decimal

from otel_llm_cost.pricing.price_file import PriceEntry, PriceOverrides
from otel_llm_cost.pricing.rates import ZERO, Card, Rates, per_token

__all__ = ["EntryTransform", "override_rates", "own_rates", "scale_card"]


def scale_card(card: Card, multiplier: Decimal) -> Card:
    """Every rate of ``card`` times ``multiplier`` (a provider discount)."""
    return card.map(lambda rates: rates.scaled(multiplier))


class EntryTransform:
    """Applies one price-file entry to a card: written prices replace inherited ones, the
    provider discount scales inherited ones, the entry's multiplier scales everything."""

    __slots__ = ("_discount", "_entry")

    def __init__(self, entry: PriceEntry, discount: Decimal | None) -> None:
        self._entry = entry
        self._discount = discount

    def __call__(self, card: Card | None) -> Card:
        """The entry's card over ``card`` (``None``: an entry with no upstream price of its own)."""
        entry = self._entry
        if card is None:
            if (
                entry.prices.input is None or entry.prices.output is None
            ):  # pragma: no cover - validated at load
                raise RuntimeError(f"{entry.where} needs input and output prices")
            card = Card(own_rates(entry.prices))
        elif self._discount is not None:
            card = scale_card(card, self._discount)
        card = card.map(lambda rates: override_rates(rates, entry.prices))
        if entry.tiers:
            base = card.base
            card = Card(
                base,
                tuple(
                    (tier.above_input_tokens, override_rates(base, tier.prices))
                    for tier in reversed(entry.tiers)
                ),
            )
        if entry.multiplier is not None:
            card = scale_card(card, entry.multiplier)
        return card


def own_rates(prices: PriceOverrides) -> Rates:
    """The rates of prices written with no upstream price: unwritten cache prices follow the input's.

    Raises:
        ValueError: ``prices`` has no input or no output price.
    """
    if prices.input is None or prices.output is None:
        raise ValueError("input and output prices are required")
    input_rate = per_token(prices.input)
    cache_write = per_token(prices.cache_write) if prices.cache_write is not None else input_rate
    return Rates(
        input=input_rate,
        cache_read=per_token(prices.cache_read) if prices.cache_read is not None else input_rate,
        cache_write_5m=cache_write,
        cache_write_1h=per_token(prices.cache_write_1h) if prices.cache_write_1h is not None else cache_write,
        output=per_token(prices.output),
        request=ZERO,
    )


def override_rates(rates: Rates, prices: PriceOverrides) -> Rates:
    """Replace the written kinds. A kind charged at its fallback's price (cache reads at the input
    price when a model has no cache discount, 1h writes at the write price) keeps following that
    fallback, as genai-prices charges a kind without a price of its own."""
    if prices.is_empty():
        return rates
    input_rate = per_token(prices.input) if prices.input is not None else rates.input
    if prices.cache_read is not None:
        cache_read = per_token(prices.cache_read)
    else:
        cache_read = input_rate if rates.cache_read == rates.input else rates.cache_read
    if prices.cache_write is not None:
        cache_write_5m = per_token(prices.cache_write)
    else:
        cache_write_5m = input_rate if rates.cache_write_5m == rates.input else rates.cache_write_5m
    if prices.cache_write_1h is not None:
        cache_write_1h = per_token(prices.cache_write_1h)
    else:
        cache_write_1h = (
            cache_write_5m if rates.cache_write_1h == rates.cache_write_5m else rates.cache_write_1h
        )
    return Rates(
        input=input_rate,
        cache_read=cache_read,
        cache_write_5m=cache_write_5m,
        cache_write_1h=cache_write_1h,
        output=per_token(prices.output) if prices.output is not None else rates.output,
        request=rates.request,
    )
