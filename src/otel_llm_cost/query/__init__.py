"""Reading the ledger: SQL builders, typed results and CostStore.

Names load on first use (module ``__getattr__``), so importing one light submodule of this
package does not load duckdb or pyarrow through the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_llm_cost._lazy import lazy_exports

if TYPE_CHECKING:
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
    from otel_llm_cost.query.runs import AgentRun
    from otel_llm_cost.query.session import SessionSummary
    from otel_llm_cost.query.store import CostStore
    from otel_llm_cost.query.tabular import Rows

_LOCATIONS = {
    "AgentRun": "otel_llm_cost.query.runs",
    "AlertRow": "otel_llm_cost.query.results",
    "CallDetail": "otel_llm_cost.query.explore_results",
    "CallRow": "otel_llm_cost.query.results",
    "CostRow": "otel_llm_cost.query.results",
    "CostStore": "otel_llm_cost.query.store",
    "DailyCost": "otel_llm_cost.query.results",
    "Mover": "otel_llm_cost.query.explore_results",
    "RepriceResult": "otel_llm_cost.query.results",
    "Rows": "otel_llm_cost.query.tabular",
    "Savings": "otel_llm_cost.query.results",
    "SeriesPoint": "otel_llm_cost.query.explore_results",
    "SessionSummary": "otel_llm_cost.query.session",
    "Summary": "otel_llm_cost.query.results",
    "WhatIf": "otel_llm_cost.query.results",
    "WorkflowTotals": "otel_llm_cost.query.results",
}

__all__ = [
    "AgentRun",
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


__getattr__, __dir__ = lazy_exports(globals(), _LOCATIONS)
