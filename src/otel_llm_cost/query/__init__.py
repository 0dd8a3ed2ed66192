"""Reading the ledger: SQL builders, typed results and CostStore."""

from otel_llm_cost.query.store import CostStore

__all__ = ["CostStore"]
