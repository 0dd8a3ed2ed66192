"""genai-prices' model prices compiled into our :class:`~otel_llm_cost.pricing.rates.Schedule`.

A schedule holds per-token Decimal rates for each price period and long-context tier of one model
entry, for the token kinds a normalised Usage carries, so that pricing a call never goes back to
genai-prices (its ``calc_price`` costs ~100 us a call). The test suite checks the compiled prices
against ``genai_prices.calc_price`` for real models.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from otel_llm_cost._money import MONEY_CONTEXT
from otel_llm_cost._private_api import genai_model_price_value
from otel_llm_cost.pricing.rates import ZERO, Card, Rates, Schedule, per_token
from otel_llm_cost.pricing.service_tiers import TierPrices, price_context_for, tier_of_variant

if TYPE_CHECKING:
    from genai_prices import types as gp_types

__all__ = ["compile_schedule", "compile_service_tiers"]

_REQUESTS_PER_KCOUNT: Final = Decimal(1000)


def compile_schedule(model: gp_types.ModelInfo) -> Schedule | None:
    """The schedule of ``model``'s prices, or ``None`` when a price period has no token price at all
    (so the model is reported unpriced instead of costing a silent 0)."""
    from genai_prices.types import ModelPrice, StartDateConstraint  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

    if isinstance(model.prices, ModelPrice):
        card = _compile_card(model.prices)
        return Schedule(fixed=card) if card is not None else None
    conditional = list(model.prices)
    if not conditional:
        return None
    cards = [_compile_card(c.prices) for c in conditional]
    if any(card is None for card in cards):
        return None
    checked = [card for card in cards if card is not None]
    if all(c.constraint is None or isinstance(c.constraint, StartDateConstraint) for c in conditional):
        dates = tuple(
            sorted(
                {
                    c.constraint.start_date
                    for c in conditional
                    if isinstance(c.constraint, StartDateConstraint)
                }
            )
        )
        # Evaluate genai-prices' own rule once per interval between start dates.
        probes = [datetime(1970, 1, 1, tzinfo=UTC)] + [
            datetime(d.year, d.month, d.day, tzinfo=UTC) for d in dates
        ]
        segment_cards = tuple(checked[_active_index(conditional, probe)] for probe in probes)
        if len(dates) == 0:
            return Schedule(fixed=segment_cards[0])
        return Schedule(dates=dates, cards=segment_cards)
    return Schedule(
        conditions=tuple((c.constraint, card) for c, card in zip(conditional, checked, strict=True))
    )


def compile_service_tiers(model: gp_types.ModelInfo) -> dict[str, TierPrices]:
    """Per service tier (``flex``, ``priority``, ``batch``...), ``model``'s prices for calls at that tier.

    A tier's prices are what genai-prices' own ``ModelInfo.get_prices`` resolves with that tier's
    price context, in each period between the start dates of the model's prices and of its price
    variants. A period in which no price variant of the tier is in force has no card: genai-prices
    would charge the standard price there, which is wrong by the tier's factor. Tiers whose prices
    depend on the time of day are left out (unpriced).
    """
    from genai_prices.types import StartDateConstraint  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

    variants = model.price_variants or ()
    by_tier: dict[str, list[gp_types.PriceVariant]] = {}
    for variant in variants:
        tier = tier_of_variant(variant.when)
        if tier is not None:
            by_tier.setdefault(tier, []).append(variant)
    conditional = [] if not isinstance(model.prices, list) else list(model.prices)
    constraints = [c.constraint for c in conditional if c.constraint is not None]
    out: dict[str, TierPrices] = {}
    for tier, tier_variants in by_tier.items():
        tier_constraints = constraints + [v.constraint for v in tier_variants if v.constraint is not None]
        if not all(isinstance(c, StartDateConstraint) for c in tier_constraints):
            continue
        dates = tuple(sorted({c.start_date for c in tier_constraints if isinstance(c, StartDateConstraint)}))
        probes = [datetime(1970, 1, 1, tzinfo=UTC)] + [
            datetime(d.year, d.month, d.day, tzinfo=UTC) for d in dates
        ]
        context = price_context_for(tier)
        cards: list[Card | None] = []
        for probe in probes:
            in_force = any(v.constraint is None or v.constraint.active(probe) for v in tier_variants)
            cards.append(_compile_card(model.get_prices(probe, context)) if in_force else None)
        out[tier] = TierPrices(dates, tuple(cards))
    return out


def _active_index(conditional: Sequence[gp_types.ConditionalPrice], at: datetime) -> int:
    # genai-prices' ModelInfo.get_prices: the last active price wins, else the first.
    for index in range(len(conditional) - 1, -1, -1):
        constraint = conditional[index].constraint
        if constraint is None or constraint.active(at):
            return index
    return 0


def _compile_card(model_price: gp_types.ModelPrice) -> Card | None:
    """Turn one genai-prices ModelPrice into rates for the kinds a normalised Usage carries.

    genai-prices charges a token at the most specific unit the model prices (its "leaf" rule):
    cache reads fall back to the input price when the model has no cache-read price, 1-hour cache
    writes to the cache-write price, cache writes to the input price. Units our Usage never
    reports (audio, images, web searches) are 0 there too. Returns ``None`` for an entry with no
    token price at all.
    """
    from genai_prices.types import TieredPrices  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

    def get(key: str) -> Decimal | TieredPrices | None:
        return genai_model_price_value(model_price, key)

    input_price = get("input_mtok")
    output_price = get("output_mtok")
    if input_price is None and output_price is None:
        return None
    cache_read = _first(get("cache_read_mtok"), input_price)
    cache_write = _first(get("cache_write_mtok"), input_price)
    # genai-prices only uses a 5m-specific price when usage reports 5m tokens separately; no
    # bundled model has one today, and when one does it is the right price for the 5m part.
    cache_write_5m = _first(get("cache_write_5m_mtok"), cache_write)
    cache_write_1h = _first(get("cache_write_1h_mtok"), cache_write)
    by_kind = (input_price, cache_read, cache_write_5m, cache_write_1h, output_price)
    request_k = get("requests_kcount")
    request = (
        MONEY_CONTEXT.divide(request_k, _REQUESTS_PER_KCOUNT) if isinstance(request_k, Decimal) else ZERO
    )

    thresholds = sorted(
        {tier.start for price in by_kind if isinstance(price, TieredPrices) for tier in price.tiers}
    )

    def rates_at(threshold: int | None) -> Rates:
        return Rates(
            input=_price_at(input_price, threshold),
            cache_read=_price_at(cache_read, threshold),
            cache_write_5m=_price_at(cache_write_5m, threshold),
            cache_write_1h=_price_at(cache_write_1h, threshold),
            output=_price_at(output_price, threshold),
            request=request,
        )

    tiers = tuple((threshold, rates_at(threshold)) for threshold in reversed(thresholds))
    return Card(rates_at(None), tiers)


def _price_at(price: Decimal | gp_types.TieredPrices | None, threshold: int | None) -> Decimal:
    """The per-token rate of ``price`` for a call whose input is above ``threshold`` (``None``: base)."""
    if price is None:
        return ZERO
    if isinstance(price, Decimal):
        return per_token(price)
    applicable = price.base
    if threshold is not None:
        for tier in price.tiers:
            if tier.start <= threshold:
                applicable = tier.price
    return per_token(applicable)


def _first(
    value: Decimal | gp_types.TieredPrices | None, fallback: Decimal | gp_types.TieredPrices | None
) -> Decimal | gp_types.TieredPrices | None:
    # Not `or`: a price of exactly 0 (free cache reads) is a price, not a missing one.
    return value if value is not None else fallback
