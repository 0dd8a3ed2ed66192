"""The picodollar rates of a model whose plain calls cost the same per token at every date and count.

:meth:`PriceBook.plain_cost_pico <otel_llm_cost.pricing.book.PriceBook.plain_cost_pico>` prices one
:class:`~otel_llm_cost.conventions.usage.Usage`. The span path, reading a span through a plan kept for
its shape, has the model, provider, tier and counts without a ``Usage``; for a price with one card
(no dated periods) and no long-context tiers, the amounts are these rates times the counts, exactly
what ``plain_cost_pico`` gives for any plain usage of that model (no cache tokens, counts below
:data:`EXACT_TOKENS_LIMIT`). Any other price: ``None``, and the caller prices a ``Usage``.
"""

from __future__ import annotations

from typing import Final

from otel_llm_cost.pricing.book import PriceBook
from otel_llm_cost.pricing.rates import _EXACT_TOKENS_LIMIT
from otel_llm_cost.pricing.results import CostBreakdown
from otel_llm_cost.pricing.service_tiers import STANDARD_TIERS

__all__ = ["EXACT_TOKENS_LIMIT", "plain_rates_pico"]

EXACT_TOKENS_LIMIT: Final = _EXACT_TOKENS_LIMIT
"""Input and output counts must be below this for the rates to give the exact amounts."""


def plain_rates_pico(
    book: object, model: str | None, provider: str | None, service_tier: str | None
) -> tuple[int, int, CostBreakdown] | None:
    """(input, output) picodollars per token and the price's labels, or ``None`` (see the module)."""
    if type(book) is not PriceBook:  # a subclass may price differently: plain_cost_pico says None too
        return None
    resolved = book._lookup(model, provider)
    schedule = resolved.schedule
    if schedule is None or schedule.fixed is None:
        return None
    if not (service_tier is None or service_tier in STANDARD_TIERS or resolved.service_tiers is None):
        return None
    card = schedule.fixed
    pico = card.base_io_pico
    if pico is None or card.tiers:
        return None
    return pico[0], pico[1], resolved.outcome
