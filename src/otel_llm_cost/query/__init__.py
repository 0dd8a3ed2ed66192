"""Reading the ledger: SQL builders, typed results and CostStore."""

from otel_llm_cost.query.explore_results import CallDetail, Mover, SeriesPoint
from otel_llm_cost.query.results import (
    AlertRow,
    CallRow,
    CostRow,
    DailyCost,
    RepriceResult,
    Savings,
    Summary,
    WhatIf,
    WorkflowTotals,
)
from otel_llm_cost.query.session import SessionSummary
from otel_llm_cost.query.store import CostStore
from otel_llm_cost.query.tabular import Rows

__all__ = [
    "AlertRow",
    "CallDetail",
    "CallRow",
    "CostRow",
    "CostStore",
    "DailyCost",
    "Mover",
    "RepriceResult",
    "Rows",
    "Savings",
    "SeriesPoint",
    "SessionSummary",
    "Summary",
    "WhatIf",
    "WorkflowTotals",
]
