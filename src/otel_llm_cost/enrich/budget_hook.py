"""What the processor needs from budget checking: :class:`BudgetHook`, and where it gets one.

Budgets sit above this layer, so the processor never imports them. It asks the budgets it is given for
their hook: ``budgets[0].engine_for(budgets, sinks)`` (``otel_llm_cost.budgets.Budget.engine_for``
builds a ``BudgetEngine``, which implements :class:`BudgetHook`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from otel_llm_cost.exceptions import BudgetConfigError

__all__ = ["BudgetHook", "BudgetHookSource", "budget_hook_for"]


class BudgetHook(Protocol):
    """Checks budgets as telemetry flows; none of its methods raises into the telemetry path."""

    def check_call(
        self,
        attributes: Mapping[str, Any],
        *,
        trace_id: int | str | None = None,
        span_id: int | str | None = None,
        start_time_ns: int | None = None,
    ) -> object:
        """Check per-call budgets against one enriched, billable LLM span."""
        ...

    def on_commit(self, info: Any) -> None:
        """Evaluate window budgets after a ``DuckDBSpanExporter`` committed a batch (a commit listener)."""
        ...

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the alerts fired so far reached their sinks; True if that happened in time."""
        ...

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued, then stop."""
        ...


class BudgetHookSource(Protocol):
    """A budget: it builds the hook that checks a set of budgets (its own class's ``engine_for``)."""

    def engine_for(self, budgets: Sequence[Any], sinks: Any = None, /) -> BudgetHook:
        """The hook checking ``budgets`` and delivering alerts to ``sinks``."""
        ...


def budget_hook_for(budgets: Sequence[Any], sinks: Any) -> BudgetHook:
    """The hook the first of ``budgets`` builds for all of them.

    Raises:
        BudgetConfigError: the first item is not a budget (the hook checks the others).
    """
    first = budgets[0]
    if not callable(getattr(first, "engine_for", None)):
        raise BudgetConfigError(f"budgets: expected Budget objects, got {first!r}", field="budgets")
    source: BudgetHookSource = first
    return source.engine_for(budgets, sinks)
