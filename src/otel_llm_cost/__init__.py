"""otel-llm-cost: know what your LLM calls cost, from the OpenTelemetry spans you already emit.

The public surface; everything else is internal. See the README for a tour.
"""

from importlib.metadata import version as _version

from otel_llm_cost._configure import configure
from otel_llm_cost.budgets import Budget, BudgetAlert, BudgetGuard, load_budgets
from otel_llm_cost.conventions.usage import Usage, normalize_usage
from otel_llm_cost.enrich.attribution import UserIdHasher, attribution
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.exceptions import BudgetExceeded
from otel_llm_cost.exporter import DuckDBSpanExporter
from otel_llm_cost.pricing import CostBreakdown, PriceBook
from otel_llm_cost.query import CostStore
from otel_llm_cost.recording import record_llm_call, record_llm_usage, records_llm_usage

__version__ = _version("otel-llm-cost")

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
    "load_budgets",
    "normalize_usage",
    "record_llm_call",
    "record_llm_usage",
    "records_llm_usage",
]
