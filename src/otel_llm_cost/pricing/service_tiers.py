"""OpenAI service tiers: which price table a call's tier selects.

OpenAI serves a call at a service tier (``default``, ``flex``, ``priority``, Batch...) and bills each
tier at its own per-token prices: flex costs half the standard price, priority up to twice it. A span
names the tier in ``openai.response.service_tier`` (or the request's tier when no response tier was
recorded).

The rule:

- no tier, or ``default`` / ``auto`` / ``standard``: the standard price;
- any other tier: the price table for that tier, from genai-prices' per-tier prices (its
  ``price_variants``: ``service_tier=flex``, ``service_tier=priority``, ``processing=batch`` for the
  ``batch`` tier) or from our corrections; where neither has a price for that tier in force at the
  call's time, the call is unpriced with the reason (never the standard price, which would be wrong
  by the tier's factor);
- a price the user's price file sets applies to every tier (the file has no per-tier prices).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Final

from otel_llm_cost.pricing.rates import Card

__all__ = ["BATCH_TIER", "STANDARD_TIERS", "TierPrices", "price_context_for", "tier_of_variant"]

STANDARD_TIERS: Final = frozenset({"default", "auto", "standard"})
"""Tier names billed at the standard price (``auto`` is the request default; ``standard`` is
Anthropic's name for it)."""
BATCH_TIER: Final = "batch"
_SERVICE_TIER_KEY: Final = "service_tier"
_PROCESSING_KEY: Final = "processing"


def price_context_for(tier: str) -> dict[str, str]:
    """The genai-prices price context that selects ``tier``'s prices."""
    if tier == BATCH_TIER:
        return {_PROCESSING_KEY: BATCH_TIER}
    return {_SERVICE_TIER_KEY: tier}


def tier_of_variant(when: dict[str, str]) -> str | None:
    """The service tier a genai-prices price variant prices, or ``None`` for other variants."""
    if len(when) != 1:
        return None
    ((key, value),) = when.items()
    if key == _SERVICE_TIER_KEY and value not in STANDARD_TIERS:
        return value
    if key == _PROCESSING_KEY and value == BATCH_TIER:
        return BATCH_TIER
    return None


class TierPrices:
    """One service tier's prices over time: a card per period, ``None`` where no price is in force."""

    __slots__ = ("_bounds", "_cards", "_dates")

    def __init__(self, dates: tuple[date, ...], cards: tuple[Card | None, ...]) -> None:
        if len(cards) != len(dates) + 1:
            raise ValueError("a tier needs one card per period: len(cards) == len(dates) + 1")
        self._dates = dates
        self._bounds = tuple(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() for d in dates)
        self._cards = cards

    @classmethod
    def fixed(cls, card: Card) -> TierPrices:
        """The same card at any time."""
        return cls((), (card,))

    def card_at(self, at: datetime | None) -> Card | None:
        """The card in force at ``at`` (naive means UTC; ``None``: now), or ``None``."""
        moment = datetime.now(UTC) if at is None else (at if at.tzinfo else at.replace(tzinfo=UTC))
        return self._cards[bisect.bisect_right(self._bounds, moment.timestamp())]

    def first_priced(self) -> date | None:
        """The first day a price is in force (``None``: from the start, or never)."""
        for index, card in enumerate(self._cards):
            if card is not None:
                return self._dates[index - 1] if index > 0 else None
        return None

    def map(self, transform: Callable[[Card], Card]) -> TierPrices:
        return TierPrices(self._dates, tuple(None if c is None else transform(c) for c in self._cards))
