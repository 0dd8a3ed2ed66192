"""Prices: exact Decimal costs from genai-prices data, our corrections and the user's overrides."""

from otel_llm_cost._money import MONEY_QUANTUM
from otel_llm_cost.pricing.book import PriceBook
from otel_llm_cost.pricing.ids import provider_id_for
from otel_llm_cost.pricing.results import CostBreakdown, CostStatus, PriceTier, UnitPrices

__all__ = [
    "MONEY_QUANTUM",
    "CostBreakdown",
    "CostStatus",
    "PriceBook",
    "PriceTier",
    "UnitPrices",
    "provider_id_for",
]
