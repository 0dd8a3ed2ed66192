"""Where spend stands against window budgets: exact SQL over the stored ``llm_calls`` rows.

Each window's total is the stored total of calls that *started* in it, so late spans count in the
window of their start time and totals survive restarts. Read-only: recording and delivering alerts is
the engine's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

import duckdb

from otel_llm_cost.budgets import sql as _budget_sql
from otel_llm_cost.budgets.forecast import FORECAST_LOOKBACK, FORECAST_MIN_EVIDENCE, forecast, recent_span
from otel_llm_cost.budgets.spec import BudgetSpec
from otel_llm_cost.budgets.windows import Window, aware, window_containing
from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.storage.lake import cursor_of
from otel_llm_cost.storage.schema import CALLS_TABLE

__all__ = [
    "BudgetStatus",
    "evaluate_budgets",
    "percent_of",
    "remaining_budget",
    "status_of",
    "statuses_for_window",
]

PERCENT_QUANTUM: Final = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where one entity stands against one budget in one window.

    Attributes:
        budget: The budget.
        entity: The scope value (``*`` for a global budget).
        window_start: Start of the window (UTC), None for lifetime budgets.
        window_end: Exclusive end (UTC), None for lifetime budgets.
        spent_usd: Exact sum of ``cost_usd`` over billable calls that started in the window.
        calls: Billable calls in the window (priced or not).
        unpriced_calls: Calls to models with unknown prices: not counted in ``spent_usd``.
        recent_rate_usd_per_hour: Spend rate over the forecast lookback (calendar windows containing
            the evaluation time, with enough evidence; else None).
        forecast_at: When spend reaches the limit at that rate, if before the window ends.
        window_key: Identity of the window in ``budget_alerts``.
        rate_lookback: The span of time the recent rate was measured over.
    """

    budget: BudgetSpec
    entity: str
    window_start: datetime | None
    window_end: datetime | None
    spent_usd: Decimal
    calls: int
    unpriced_calls: int
    recent_rate_usd_per_hour: Decimal | None
    forecast_at: datetime | None
    window_key: str
    rate_lookback: timedelta | None = None

    @property
    def limit_usd(self) -> Decimal:
        """The budget's limit."""
        return self.budget.limit_usd

    @property
    def percent(self) -> Decimal:
        """``spent / limit * 100``, to 2 places."""
        return percent_of(self.spent_usd, self.budget.limit_usd)

    @property
    def remaining_usd(self) -> Decimal:
        """What is left before the limit (0 when at or over it)."""
        return max(Decimal(0), self.budget.limit_usd - self.spent_usd)

    @property
    def over(self) -> bool:
        """True when spend has reached the limit (exactly at the limit counts as over)."""
        return self.spent_usd >= self.budget.limit_usd


def percent_of(spent: Decimal, limit: Decimal) -> Decimal:
    """``spent / limit * 100`` to 2 places (half up)."""
    return (spent * 100 / limit).quantize(PERCENT_QUANTUM, rounding=ROUND_HALF_UP)


def _fetch_calls(cursor: duckdb.DuckDBPyConnection, sql: str, params: list[object]) -> list[Any]:
    try:
        return cursor.execute(sql, params).fetchall()
    except duckdb.CatalogException as exc:
        # Checked only on failure: the common case pays nothing. A foreign DuckDB file deserves a
        # sentence, not "Table with name llm_calls does not exist".
        [(found,)] = cursor.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [CALLS_TABLE]
        ).fetchall()
        if not found:
            raise StorageError(
                f"not an otel-llm-cost database (it has no {CALLS_TABLE} table; "
                "point --db / the store at the file the DuckDBSpanExporter writes)"
            ) from exc
        raise


def statuses_for_window(  # noqa: PLR0917 - called positionally from the engine and guard
    cursor: duckdb.DuckDBPyConnection,
    budget: BudgetSpec,
    window: Window,
    entities: Sequence[str] | None,
    at: datetime,
    lookback: timedelta = FORECAST_LOOKBACK,
    min_evidence: timedelta = FORECAST_MIN_EVIDENCE,
) -> list[BudgetStatus]:
    """The status of each entity with spend in ``window`` (of ``entities`` only, when given)."""
    recent = recent_span(budget, window, at, lookback)
    sql, params = _budget_sql.spend_sql(
        budget.scope,
        budget.where,
        window_start=window.start,
        window_end=window.end,
        entities=entities,
        recent_start=recent[0] if recent else None,
        recent_end=recent[1] if recent else None,
    )
    statuses = []
    for entity, spent, calls, unpriced, recent_spend in _fetch_calls(cursor, sql, params):
        spent_usd = Decimal(spent)
        outlook = forecast(budget, window, at, recent, spent_usd, Decimal(recent_spend), min_evidence)
        statuses.append(
            BudgetStatus(
                budget=budget,
                entity=str(entity),
                window_start=window.start,
                window_end=window.end,
                spent_usd=spent_usd,
                calls=int(calls),
                unpriced_calls=int(unpriced),
                recent_rate_usd_per_hour=outlook.rate_usd_per_hour,
                forecast_at=outlook.reaches_limit_at,
                window_key=window.key,
                rate_lookback=outlook.lookback,
            )
        )
    return statuses


def evaluate_budgets(
    connection: duckdb.DuckDBPyConnection,
    budgets: Sequence[BudgetSpec],
    at: datetime | None = None,
    *,
    forecast_lookback: timedelta = FORECAST_LOOKBACK,
) -> list[BudgetStatus]:
    """Where every entity with spend stands, for each window budget, in the window containing ``at``.

    Read-only: nothing is recorded or delivered (use :meth:`BudgetEngine.evaluate` for that).
    Per-call budgets have no window and are skipped. Each window's total is the stored total of calls
    that *started* in it.

    Args:
        connection: An open DuckDB connection (a cursor is taken, so a shared one is safe).
        budgets: The budgets to evaluate.
        at: The instant whose windows are evaluated (timezone-aware; default now). For rolling windows
            it is the window's end; for calendar windows it also drives the forecast.
        forecast_lookback: How far back the recent rate looks (default :data:`FORECAST_LOOKBACK`).

    Returns:
        One :class:`BudgetStatus` per (budget, entity), in budget order then by descending spend.

    Raises:
        ValueError: ``at`` is naive.
        StorageError: the database has no ``llm_calls`` table (not an otel-llm-cost database).
        duckdb.Error: the query failed otherwise.
    """
    when = datetime.now(UTC) if at is None else aware(at)
    cursor = cursor_of(connection)
    try:
        result: list[BudgetStatus] = []
        for budget in budgets:
            if budget.is_per_call:
                continue
            window = window_containing(budget, when)
            statuses = statuses_for_window(cursor, budget, window, None, when, forecast_lookback)
            statuses.sort(key=lambda s: (-s.spent_usd, s.entity))
            result.extend(statuses)
        return result
    finally:
        cursor.close()


def remaining_budget(
    connection: duckdb.DuckDBPyConnection,
    budget: BudgetSpec,
    entity: str | None = None,
    at: datetime | None = None,
) -> Decimal:
    """What ``entity`` may still spend under ``budget`` in the window containing ``at``.

    Args:
        connection: An open DuckDB connection.
        budget: A window budget (for a per-call budget the answer is its limit).
        entity: The scope value as stored (hashed for ``user``); ignored for ``global`` budgets.
        at: Timezone-aware instant (default now).

    Returns:
        ``limit - spent``, never below 0.

    Raises:
        ValueError: ``entity`` is missing for a non-global budget, or ``at`` is naive.
        StorageError: the database has no ``llm_calls`` table (not an otel-llm-cost database).
    """
    if budget.is_per_call:
        return budget.limit_usd
    status = status_of(connection, budget, entity, at)
    return status.remaining_usd


def status_of(
    connection: duckdb.DuckDBPyConnection,
    budget: BudgetSpec,
    entity: str | None,
    at: datetime | None,
) -> BudgetStatus:
    """Where ``entity`` (ignored for a global budget) stands in the window containing ``at``.

    Raises:
        ValueError: ``entity`` is missing for a non-global budget, or ``at`` is naive.
    """
    when = datetime.now(UTC) if at is None else aware(at)
    if budget.scope == "global":
        entity = "*"
    elif entity is None:
        raise ValueError(f"budget {budget.name!r} is per {budget.scope}: pass the entity to check")
    window = window_containing(budget, when)
    cursor = cursor_of(connection)
    try:
        found = statuses_for_window(cursor, budget, window, [entity], when)
    finally:
        cursor.close()
    if found:
        return found[0]
    return BudgetStatus(budget, entity, window.start, window.end, Decimal(0), 0, 0, None, None, window.key)
