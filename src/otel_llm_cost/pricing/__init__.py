"""Prices: exact Decimal costs from genai-prices data, our corrections and the user's overrides.

Names load on first use (module ``__getattr__``), so importing one light submodule of this
package does not load duckdb or pyarrow through the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_llm_cost._lazy import lazy_exports

if TYPE_CHECKING:
    from otel_llm_cost._money import MONEY_QUANTUM
    from otel_llm_cost.pricing.book import PriceBook
    from otel_llm_cost.pricing.ids import provider_id_for
    from otel_llm_cost.pricing.results import CostBreakdown, CostStatus, PriceTier, UnitPrices

_LOCATIONS = {
    "CostBreakdown": "otel_llm_cost.pricing.results",
    "CostStatus": "otel_llm_cost.pricing.results",
    "MONEY_QUANTUM": "otel_llm_cost._money",
    "PriceBook": "otel_llm_cost.pricing.book",
    "PriceTier": "otel_llm_cost.pricing.results",
    "UnitPrices": "otel_llm_cost.pricing.results",
    "provider_id_for": "otel_llm_cost.pricing.ids",
}

__all__ = [
    "MONEY_QUANTUM",
    "CostBreakdown",
    "CostStatus",
    "PriceBook",
    "PriceTier",
    "UnitPrices",
    "provider_id_for",
]


__getattr__, __dir__ = lazy_exports(globals(), _LOCATIONS)
