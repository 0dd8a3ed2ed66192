"""The names other modules imported from ``otel_llm_cost.budgets.budget`` before it was split up.

Import them from :mod:`otel_llm_cost.budgets` instead; this module only keeps the old path working for
the CLI, the collector and the package front until they do.
"""

from otel_llm_cost.budgets.alerts import AlertKind, BudgetAlert
from otel_llm_cost.budgets.engine import BudgetEngine
from otel_llm_cost.budgets.evaluation import BudgetStatus, evaluate_budgets, remaining_budget
from otel_llm_cost.budgets.forecast import FORECAST_LOOKBACK, FORECAST_MIN_EVIDENCE
from otel_llm_cost.budgets.guard import BudgetGuard
from otel_llm_cost.budgets.loader import load_budgets
from otel_llm_cost.budgets.model import Budget
from otel_llm_cost.budgets.sinks import AlertSink, LoggingSink, OTelLogSink, WebhookSink, webhook_payload

__all__ = [
    "FORECAST_LOOKBACK",
    "FORECAST_MIN_EVIDENCE",
    "AlertKind",
    "AlertSink",
    "Budget",
    "BudgetAlert",
    "BudgetEngine",
    "BudgetGuard",
    "BudgetStatus",
    "LoggingSink",
    "OTelLogSink",
    "WebhookSink",
    "evaluate_budgets",
    "load_budgets",
    "remaining_budget",
    "webhook_payload",
]
