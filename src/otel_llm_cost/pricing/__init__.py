"""Prices: exact Decimal costs from genai-prices data, our corrections and the user's overrides."""

from otel_llm_cost.pricing.book import (
    MONEY_QUANTUM,
    CostBreakdown,
    CostStatus,
    PriceBook,
    PriceTier,
    UnitPrices,
    provider_id_for,
)

__all__ = [
    "MONEY_QUANTUM",
    "CostBreakdown",
    "CostStatus",
    "PriceBook",
    "PriceTier",
    "UnitPrices",
    "provider_id_for",
]
