"""otel-llm-cost: know what your LLM calls cost, from the OpenTelemetry spans you already emit.

The public surface; everything else is internal. See the README for a tour.

Names are loaded on first use (module ``__getattr__``): ``import otel_llm_cost`` in an application
loads neither duckdb, pyarrow nor the genai-prices data; they load when a store, an exporter or a
price is first needed (``benchmarks/bench_import.py`` measures it).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Registers the exporter's default enricher (cheap: the enrich layer loads when an exporter first needs it).
import otel_llm_cost.exporter as _exporter  # noqa: F401

if TYPE_CHECKING:
    from otel_llm_cost._configure import configure
    from otel_llm_cost.budgets import Budget, BudgetAlert, BudgetGuard, load_budgets
    from otel_llm_cost.conventions.usage import Usage, normalize_usage
    from otel_llm_cost.enrich.attribution import UserIdHasher, attribution, hash_user_id
    from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
    from otel_llm_cost.exceptions import BudgetExceeded
    from otel_llm_cost.exporter import DuckDBSpanExporter
    from otel_llm_cost.pricing import CostBreakdown, PriceBook
    from otel_llm_cost.query import CostStore
    from otel_llm_cost.recording import record_llm_call, record_llm_usage, records_llm_usage

_LOCATIONS = {
    "Budget": "otel_llm_cost.budgets",
    "BudgetAlert": "otel_llm_cost.budgets",
    "BudgetExceeded": "otel_llm_cost.exceptions",
    "BudgetGuard": "otel_llm_cost.budgets",
    "CostBreakdown": "otel_llm_cost.pricing",
    "CostStore": "otel_llm_cost.query",
    "DuckDBSpanExporter": "otel_llm_cost.exporter",
    "LLMCostSpanProcessor": "otel_llm_cost.enrich.processor",
    "PriceBook": "otel_llm_cost.pricing",
    "Usage": "otel_llm_cost.conventions.usage",
    "UserIdHasher": "otel_llm_cost.enrich.attribution",
    "attribution": "otel_llm_cost.enrich.attribution",
    "configure": "otel_llm_cost._configure",
    "hash_user_id": "otel_llm_cost.enrich.attribution",
    "load_budgets": "otel_llm_cost.budgets",
    "normalize_usage": "otel_llm_cost.conventions.usage",
    "record_llm_call": "otel_llm_cost.recording",
    "record_llm_usage": "otel_llm_cost.recording",
    "records_llm_usage": "otel_llm_cost.recording",
}

__all__ = [
    "Budget",
    "BudgetAlert",
    "BudgetExceeded",
    "BudgetGuard",
    "CostBreakdown",
    "CostStore",
    "DuckDBSpanExporter",
    "LLMCostSpanProcessor",
    "PriceBook",
    "Usage",
    "UserIdHasher",
    "__version__",
    "attribution",
    "configure",
    "hash_user_id",
    "load_budgets",
    "normalize_usage",
    "record_llm_call",
    "record_llm_usage",
    "records_llm_usage",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 - importlib.metadata is slow to import

        value: Any = version("otel-llm-cost")
    elif name in _LOCATIONS:
        value = getattr(import_module(_LOCATIONS[name]), name)
    else:
        raise AttributeError(f"module 'otel_llm_cost' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
