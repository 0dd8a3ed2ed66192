"""Reading the ledger: SQL builders, typed results and CostStore."""

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
from otel_llm_cost.query.runs import AgentRun
from otel_llm_cost.query.session import SessionSummary
from otel_llm_cost.query.store import CostStore
from otel_llm_cost.query.tabular import Rows

__all__ = [
    "AgentRun",
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
