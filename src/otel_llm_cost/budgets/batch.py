"""Which windows and entities a committed batch of ``llm_calls`` rows touched.

After a commit only those are evaluated: a batch of a thousand calls from three orgs costs three
queries per budget, not one per org that ever spent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from otel_llm_cost.budgets.scopes import SCOPE_COLUMNS
from otel_llm_cost.budgets.spec import BudgetSpec
from otel_llm_cost.budgets.windows import Window, from_epoch_us, window_containing

__all__ = ["BatchColumns", "batch_columns", "touched"]


@dataclass(slots=True)
class BatchColumns:
    """A committed batch's columns, converted to Python lists once, on first use."""

    table: Any
    cache: dict[str, list[Any]]
    start_us: list[int]

    def column(self, name: str) -> list[Any]:
        """The column as a list (all None when the batch has no such column)."""
        if name not in self.cache:
            self.cache[name] = (
                self.table.column(name).to_pylist()
                if name in self.table.column_names
                else [None] * len(self.start_us)
            )
        return self.cache[name]


def batch_columns(rows: Any) -> BatchColumns:
    """The columns of ``rows`` (a ``pyarrow.Table`` of ``llm_calls`` rows), start times in epoch us."""
    import pyarrow as pa  # noqa: PLC0415 - only needed once a batch arrives
    import pyarrow.compute as pc  # noqa: PLC0415

    start = rows.column("start_time")
    unit = getattr(start.type, "unit", "us")
    ints = pc.cast(start, pa.int64()).to_pylist()
    # Integer arithmetic: a float division could move a call across a window boundary by a microsecond.
    if unit == "ns":
        start_us = [v // 1000 if isinstance(v, int) else 0 for v in ints]
    else:
        scale = {"s": 1_000_000, "ms": 1000, "us": 1}[unit]
        start_us = [v * scale if isinstance(v, int) else 0 for v in ints]
    return BatchColumns(rows, {}, start_us)


def _value_getter(columns: BatchColumns, scope: str) -> Callable[[int], str | None]:
    if scope == "global":
        return lambda _i: "*"
    if scope.startswith("tag:"):
        key = scope[4:]
        tags = columns.column("tags")

        def tag_value(i: int) -> str | None:
            entries = tags[i]
            if not entries:
                return None
            items = entries.items() if isinstance(entries, dict) else entries
            for k, v in items:
                if k == key:
                    return str(v) if v is not None else None
            return None

        return tag_value
    lists = [columns.column(name) for name in SCOPE_COLUMNS[scope]]

    def value(i: int) -> str | None:
        for values in lists:
            if values[i] is not None:
                return str(values[i])
        return None

    return value


def touched(
    budget: BudgetSpec, columns: BatchColumns, now: datetime
) -> list[tuple[Window, set[str], datetime]]:
    """The windows of ``budget`` a committed batch touched: ``(window, entities, evaluation instant)``."""
    entity_of = _value_getter(columns, budget.scope)
    filters = {key: _value_getter(columns, key) for key in budget.where}
    billable = columns.column("billable")
    rows_by_time = sorted(range(len(columns.start_us)), key=columns.start_us.__getitem__)
    latest = max(columns.start_us) if columns.start_us else 0
    # A rolling window ends now, or just after the newest call when the sender's clock runs ahead.
    rolling_at = max(now, from_epoch_us(latest + 1))
    rolling = window_containing(budget, rolling_at) if budget.rolling_hours is not None else None
    result: dict[str, tuple[Window, set[str], datetime]] = {}
    current: Window | None = None
    for i in rows_by_time:
        if billable[i] is False:
            continue
        entity = entity_of(i)
        if entity is None or any(getter(i) not in budget.where[key] for key, getter in filters.items()):
            continue
        instant = from_epoch_us(columns.start_us[i])
        if rolling is not None:
            if rolling.start is None or instant < rolling.start:
                continue
            window, at = rolling, rolling_at
        else:
            if current is None or not current.contains(instant):
                current = window_containing(budget, instant)
            window = current
            at = now
        entry = result.setdefault(window.key, (window, set(), at))
        entry[1].add(entity)
    return list(result.values())
