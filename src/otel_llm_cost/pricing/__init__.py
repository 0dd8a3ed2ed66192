"""Prices: exact Decimal costs from genai-prices data, our corrections and the user's overrides.

Names load on first use (module ``__getattr__``), so importing one light submodule of this
package does not load duckdb or pyarrow through the others.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name not in _LOCATIONS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_LOCATIONS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
