"""Budgets: rules, evaluation, alerts that fire once per period, forecasts and alert delivery.

Names load on first use (module ``__getattr__``), so importing one light submodule of this
package does not load duckdb or pyarrow through the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_llm_cost._lazy import lazy_exports

if TYPE_CHECKING:
    from otel_llm_cost.budgets.alerts import AlertKind, BudgetAlert
    from otel_llm_cost.budgets.engine import BudgetEngine
    from otel_llm_cost.budgets.evaluation import BudgetStatus, evaluate_budgets, remaining_budget
    from otel_llm_cost.budgets.forecast import FORECAST_LOOKBACK, FORECAST_MIN_EVIDENCE
    from otel_llm_cost.budgets.guard import BudgetGuard
    from otel_llm_cost.budgets.loader import load_budgets
    from otel_llm_cost.budgets.model import Budget
    from otel_llm_cost.budgets.sinks import AlertSink, LoggingSink, OTelLogSink, WebhookSink, webhook_payload

_LOCATIONS = {
    "AlertKind": "otel_llm_cost.budgets.alerts",
    "AlertSink": "otel_llm_cost.budgets.sinks",
    "Budget": "otel_llm_cost.budgets.model",
    "BudgetAlert": "otel_llm_cost.budgets.alerts",
    "BudgetEngine": "otel_llm_cost.budgets.engine",
    "BudgetGuard": "otel_llm_cost.budgets.guard",
    "BudgetStatus": "otel_llm_cost.budgets.evaluation",
    "FORECAST_LOOKBACK": "otel_llm_cost.budgets.forecast",
    "FORECAST_MIN_EVIDENCE": "otel_llm_cost.budgets.forecast",
    "LoggingSink": "otel_llm_cost.budgets.sinks",
    "OTelLogSink": "otel_llm_cost.budgets.sinks",
    "WebhookSink": "otel_llm_cost.budgets.sinks",
    "evaluate_budgets": "otel_llm_cost.budgets.evaluation",
    "load_budgets": "otel_llm_cost.budgets.loader",
    "remaining_budget": "otel_llm_cost.budgets.evaluation",
    "webhook_payload": "otel_llm_cost.budgets.sinks",
}

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


__getattr__, __dir__ = lazy_exports(globals(), _LOCATIONS)
