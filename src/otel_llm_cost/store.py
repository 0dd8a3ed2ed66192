"""Documented import path of the query API; it lives in ``otel_llm_cost.query``."""

from otel_llm_cost.query import (
    AlertRow,
    CallRow,
    CostRow,
    CostStore,
    DailyCost,
    RepriceResult,
    Rows,
    Savings,
    SessionSummary,
    Summary,
    WhatIf,
    WorkflowTotals,
)

__all__ = [
    "AlertRow",
    "CallRow",
    "CostRow",
    "CostStore",
    "DailyCost",
    "RepriceResult",
    "Rows",
    "Savings",
    "SessionSummary",
    "Summary",
    "WhatIf",
    "WorkflowTotals",
]
