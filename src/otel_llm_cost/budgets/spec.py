"""What the helpers of this package read from a budget: :class:`BudgetSpec`.

:class:`~otel_llm_cost.budgets.Budget` implements it. Windows, evaluation, alert messages and the engine
take this Protocol rather than the class, so the ``Budget`` model sits above them and offers their
behaviour as methods (``statuses``, ``remaining_usd``, ``engine_for``): the query and enrich layers call
those methods on the budgets they are given and never import this package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from otel_llm_cost.exceptions import BudgetConfigError

__all__ = ["BudgetSpec", "validated_budgets"]


@runtime_checkable
class BudgetSpec(Protocol):
    """A validated budget rule: scope, window, limit, thresholds (see ``Budget`` for the meaning)."""

    @property
    def name(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def window(self) -> str: ...
    @property
    def limit_usd(self) -> Decimal: ...
    @property
    def thresholds(self) -> tuple[Decimal, ...]: ...
    @property
    def tz(self) -> str: ...
    @property
    def where(self) -> Mapping[str, tuple[str, ...]]: ...
    @property
    def zone(self) -> ZoneInfo: ...
    @property
    def rolling_hours(self) -> int | None: ...
    @property
    def is_per_call(self) -> bool: ...
    @property
    def is_calendar(self) -> bool: ...
    def describe_window(self) -> str: ...
    def matches(self, values: Callable[[str], str | None]) -> bool: ...


def validated_budgets(budgets: Sequence[BudgetSpec]) -> tuple[BudgetSpec, ...]:
    """``budgets`` as a tuple, checked: budgets only, and unique names (alerts are keyed by name).

    Raises:
        BudgetConfigError: an item is not a budget, or two budgets share a name.
    """
    result = tuple(budgets)
    seen: set[str] = set()
    for budget in result:
        if not isinstance(budget, BudgetSpec):
            raise BudgetConfigError(f"budgets: expected Budget objects, got {budget!r}", field="budgets")
        if budget.name in seen:
            raise BudgetConfigError(
                f"name: two budgets are named {budget.name!r}; alerts are keyed by name", field="name"
            )
        seen.add(budget.name)
    return result
