"""Budgets: rules, evaluation, alerts that fire once per period, forecasts and alert delivery."""

from otel_llm_cost.budgets.budget import (
    FORECAST_LOOKBACK,
    FORECAST_MIN_EVIDENCE,
    AlertKind,
    AlertSink,
    Budget,
    BudgetAlert,
    BudgetEngine,
    BudgetGuard,
    BudgetStatus,
    LoggingSink,
    OTelLogSink,
    WebhookSink,
    evaluate_budgets,
    load_budgets,
    remaining_budget,
    webhook_payload,
)

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
