"""CostStore: the read/query API over the DuckDB file the exporter writes.

Every report returns small frozen dataclasses with exact :class:`~decimal.Decimal` money. Each result
also carries the rows it was built from, so analysts can continue in DuckDB or Arrow::

    store = CostStore("llm_costs.duckdb")
    rows = store.cost_by("feature", start, end)
    rows[0].total_cost_usd          # Decimal
    rows.arrow()                    # pyarrow.Table, the same rows the dataclasses were built from
    rows.relation().filter("call_count > 10").order("key")   # DuckDB relation over those rows
    rows.df()                       # pandas DataFrame (extra: otel-llm-cost[pandas]); .pl(): polars

Sharing the file with the exporting application (while any process holds a DuckDB file, no other
process can open it, not even read-only): a CostStore opened on a path holds the file only while
it runs queries. It opens the file for a query and keeps the handle while queries keep coming, then
closes it ``hold_idle_s`` (0.1 s) after the last one, and at the next query boundary after
``hold_max_s`` (1 s) of continuous holding it lets a waiting writer in. The exporter waits for the file
with backoff (``lock_timeout_s``, 5 s by default), so a notebook or ``otel-llm-cost report`` beside a
running app makes it wait a few ms at most and never spool. A connection passed in by the caller is used
as given, never closed.

Conventions: windows are half-open ``[start, end)`` on the call's start time and need timezone-aware
datetimes (``None`` means unbounded); only billable calls are summed; a call whose price is unknown is
counted in ``unpriced_calls`` and never contributes $0 silently (a group with no priced call reports
``total_cost_usd = None``).

CostStore is the shell: the reports come from :class:`~otel_llm_cost.query.reports.LedgerReports`,
execution and typed rows from :mod:`~otel_llm_cost.query.reader`, the dashboard's questions from
:class:`~otel_llm_cost.query.explore.ExploreReports`, the file or connection from
:mod:`~otel_llm_cost.query.access`, what-if and reprice from :mod:`~otel_llm_cost.query.repricing`.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import duckdb

from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.query import alert_sql as _alert_sql
from otel_llm_cost.query import repricing as _repricing
from otel_llm_cost.query import sql as _queries
from otel_llm_cost.query.access import ConnectionAccess, FileAccess, LakeAccess, StoreAccess
from otel_llm_cost.query.budget_protocol import BudgetStatusT, EvaluableBudget
from otel_llm_cost.query.explore import ExploreReports
from otel_llm_cost.query.reader import Reader
from otel_llm_cost.query.reports import LedgerReports
from otel_llm_cost.query.results import (
    AlertRow,
    RepriceResult,
    WhatIf,
)
from otel_llm_cost.query.tabular import Rows, Source
from otel_llm_cost.storage.lake import LakeTarget, is_lake_target

if TYPE_CHECKING:
    from otel_llm_cost.pricing import PriceBook

__all__ = ["CostStore"]


class CostStore(LedgerReports, ExploreReports):
    """Query LLM spend stored by :class:`~otel_llm_cost.exporter.DuckDBSpanExporter`.

    A store opened on a path holds the file only while queries run (see the module docstring), so an
    application can keep exporting to it meanwhile; a connection passed in is used as given.

    Args:
        path_or_connection: a DuckDB file path, a DuckLake target (``ducklake:postgres:dbname=llm
            host=db``: see docs/lake.md), or an open ``duckdb.DuckDBPyConnection`` (for example the
            one the exporter writes with, in the same process; CostStore then never closes it).
        read_only: open a path or a lake read-only (the default; several readers can share a file).
            Pass False to use :meth:`reprice`, or to read in the process that also writes the file
            (DuckDB refuses a read-only and a read-write handle on the same file in one process).
        hold_idle_s: keep the file open this long after a query for the next one (0: close after each).
        hold_max_s: after holding the file this long without a pause, step aside for a waiting writer
            before the next query.
        timeout_s: how long a query waits for a file the exporting application is writing.

    Raises:
        StorageError: the file does not exist or cannot be opened.
        SchemaVersionError: the file was written by a newer otel-llm-cost.
        ValueError: a negative hold or timeout.

    Example::

        with CostStore("llm_costs.duckdb") as store:
            for row in store.cost_by_model(start, end):
                print(row.key, row.total_cost_usd, row.unpriced_calls)
    """

    def __init__(
        self,
        path_or_connection: str | os.PathLike[str] | duckdb.DuckDBPyConnection,
        *,
        read_only: bool = True,
        hold_idle_s: float = 0.1,
        hold_max_s: float = 1.0,
        timeout_s: float = 10.0,
    ) -> None:
        limits = {"hold_idle_s": hold_idle_s, "hold_max_s": hold_max_s, "timeout_s": timeout_s}
        for name, value in limits.items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        self._access: StoreAccess
        if isinstance(path_or_connection, duckdb.DuckDBPyConnection):
            self._access = ConnectionAccess(path_or_connection)
        elif is_lake_target(path_or_connection):
            self._access = LakeAccess(LakeTarget(str(path_or_connection)), read_only=read_only)
            weakref.finalize(self, self._access.close)
        else:
            self._access = FileAccess(
                Path(path_or_connection),
                read_only=read_only,
                hold_idle_s=hold_idle_s,
                hold_max_s=hold_max_s,
                timeout_s=timeout_s,
            )
            # Release the file in the thread that drops the store, not in the holder's daemon thread:
            # if that thread dropped the last reference while the interpreter finalizes, the open
            # connection's destructor could not retake the GIL and duckdb aborts the process.
            weakref.finalize(self, self._access.close)
        self.path: Path | None = self._access.path
        #: The lake this store reads (None: a file or a connection).
        self.lake: LakeTarget | None = self._access.lake if isinstance(self._access, LakeAccess) else None
        self.read_only = read_only and (self.path is not None or isinstance(self._access, LakeAccess))
        self._reader = Reader(self._access)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the file now (a store on a path); a connection passed in stays open.

        A closed path-backed store refuses further queries.
        """
        self._access.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def interrupt(self, thread_id: int) -> bool:
        """Cancel the query the thread ``thread_id`` is running on this store (it raises StorageError).

        For callers that bound how long a question may take (the dashboard cuts a page off after a
        few seconds). Returns False when that thread runs no query now.
        """
        return self._access.interrupt(thread_id)

    @property
    def holds_file(self) -> bool:
        """True while a path-backed store has the file open (between queries it soon stops)."""
        return self._access.held

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the caller's connection (``CostStore(connection)`` only).

        A store opened on a path has no lasting connection; use :meth:`connect` for a block of queries.

        Raises:
            StorageError: the store was opened on a path.
        """
        return self._access.connection

    def connect(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        """Hold the store for a block of your own queries; yields a DuckDB cursor valid inside the block.

        On a path-backed store the file is held for the block (the exporting application waits
        meanwhile, so keep it short: under ``lock_timeout_s``, 5 s by default, or it spools); with a
        caller-owned connection this is that connection's cursor for this thread.

        Raises:
            StorageError: the file cannot be opened within ``timeout_s``, or the store is closed.
        """
        return self._access.connect()

    def sql(self, query: str, params: Sequence[object] | None = None) -> Rows[dict[str, Any]]:
        """Run any SQL on the store (read-only unless opened with ``read_only=False``).

        On a path-backed store each call may run on a freshly opened file, so session state (``SET``,
        temporary tables, attached databases) does not carry over to the next call: run such work in
        one ``with store.connect() as connection:`` block, or pass your own connection to CostStore.

        Args:
            query: SQL text; use ``?`` placeholders for values.
            params: the placeholder values.

        Returns:
            Rows of dicts (column name -> value); ``.arrow()`` / ``.relation()`` as for every report.

        Raises:
            QueryError: DuckDB rejected the query.
        """
        return self._reader.sql(query, params)

    # -- budgets -----------------------------------------------------------------------------------

    def check_budgets(
        self, budgets: Sequence[EvaluableBudget[BudgetStatusT]], at: datetime | None = None
    ) -> list[BudgetStatusT]:
        """Where every entity stands against each window budget at ``at`` (default now); read-only.

        Each budget evaluates itself (:meth:`otel_llm_cost.budgets.Budget.statuses`), all at the same
        instant, in one hold of the file: see :func:`otel_llm_cost.budgets.evaluate_budgets`.
        """
        when = datetime.now(UTC) if at is None else at
        with self.connect() as connection:
            return [status for budget in budgets for status in budget.statuses(connection, when)]

    def remaining(
        self, budget: EvaluableBudget[object], entity: str | None = None, at: datetime | None = None
    ) -> Decimal:
        """What ``entity`` may still spend under ``budget`` in the window containing ``at``.

        Delegates to :meth:`otel_llm_cost.budgets.Budget.remaining_usd`.
        """
        with self.connect() as connection:
            return budget.remaining_usd(connection, entity, at)

    # -- what-if and repricing ------------------------------------------------------------------

    def what_if(
        self,
        from_model: str,
        to_model: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        pricebook: PriceBook,
        to_provider: str | None = None,
    ) -> WhatIf:
        """What ``from_model``'s calls in ``[start, end)`` would have cost on ``to_model``.

        Each call is priced at ``to_model``'s price in force at the call's start time, with its own
        token mix (cache reads and writes included) and long-context tier. Calls are summed per price
        period and tier band in SQL, then priced once per group: exact, because prices are linear
        within a period and a tier, and fast (hundreds of price lookups, not one per call).

        Args:
            from_model: matched against the request model, response model and matched price entry.
            to_model: the model to price the calls on.
            start: inclusive, timezone-aware, or None.
            end: exclusive, timezone-aware, or None.
            pricebook: prices to use (``PriceBook.default()`` for the bundled ones).
            to_provider: provider of ``to_model`` when the model id alone is ambiguous.

        Raises:
            UnknownModelError: no price is known for ``to_model``.
            ValueError: a naive datetime or an empty window.
        """
        _queries.check_window(start, end)
        return _repricing.what_if(
            self._reader, from_model, to_model, start, end, pricebook=pricebook, to_provider=to_provider
        )

    def reprice(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        pricebook: PriceBook,
        include_priced: bool = False,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> RepriceResult:
        """Price stored calls again with ``pricebook``, at the price in force at each call's time.

        By default only calls stored as unpriced are considered (for example after adding a price for
        a fine-tuned or self-hosted model to the user price file); already-priced history is left alone
        unless ``include_priced=True``. Provider-reported costs are never recomputed. Idempotent: a
        second run changes nothing.

        Args:
            start: inclusive, timezone-aware, or None.
            end: exclusive, timezone-aware, or None.
            pricebook: the prices to apply.
            include_priced: also recompute calls that already have a price.
            dry_run: compute and report, write nothing.
            progress: called with the number of records just processed (for a progress display).

        Returns:
            How many records were examined and changed, and by how many dollars.

        Raises:
            StorageError: the store is read-only (open it with ``read_only=False``) or the update failed.
            ValueError: a naive datetime or an empty window.
        """
        _queries.check_window(start, end)
        if self.read_only and not dry_run:
            raise StorageError("reprice writes to the store: open it with CostStore(path, read_only=False)")
        return _repricing.reprice(
            self._reader,
            start,
            end,
            pricebook=pricebook,
            include_priced=include_priced,
            dry_run=dry_run,
            progress=progress,
        )

    # -- alert history -----------------------------------------------------------------------------

    def alerts(
        self,
        *,
        budget: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> Rows[AlertRow]:
        """The budget alerts recorded in this file, newest first (none before budgets first fired).

        Args:
            budget: only this budget's alerts.
            kind: only ``threshold``, ``forecast`` or ``unpriced`` alerts.
            since: only alerts fired at or after this timezone-aware time.
            limit: at most this many (the newest).

        Raises:
            ValueError: a negative limit or a naive ``since``.
        """
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        _queries.check_window(since, None)
        query = _alert_sql.alert_history(budget=budget, kind=kind, since=since, limit=limit)
        [(exists,)] = self._reader.execute(_alert_sql.alerts_table_exists()).rows
        if not exists:
            names, types = _alert_sql.ALERT_FIELDS, _alert_sql.ALERT_TYPES
            return Rows([], Source(self._access.caller_connection, query, names=names, types=types))
        return self._reader.rows(AlertRow, query)
