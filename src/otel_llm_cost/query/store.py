"""CostStore: the read/query API over the DuckDB file the exporter writes.

Every report returns small frozen dataclasses with exact :class:`~decimal.Decimal` money. Each result
also carries the rows it was built from, so analysts can continue in DuckDB or Arrow::

    store = CostStore("llm_costs.duckdb")
    rows = store.cost_by("feature", start, end)
    rows[0].total_cost_usd          # Decimal
    rows.arrow()                    # pyarrow.Table, the same rows the dataclasses were built from
    rows.relation().filter("call_count > 10").order("key")   # DuckDB relation over those rows
    rows.df()                       # pandas DataFrame (needs pandas)

Sharing the file with the exporting application (DESIGN.md fact 5: while any process holds a DuckDB
file, no other process can open it read-write): a CostStore opened on a path holds the file only while
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
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Literal, Self, TypeVar, overload

import duckdb
import pyarrow as pa

from otel_llm_cost.conventions.usage import Usage
from otel_llm_cost.exceptions import QueryError, StorageError
from otel_llm_cost.pricing.book import MONEY_QUANTUM, CostBreakdown, PriceTier, UnitPrices
from otel_llm_cost.query import output as _output
from otel_llm_cost.query import sql as _queries
from otel_llm_cost.query.budget_protocol import BudgetStatusT, EvaluableBudget
from otel_llm_cost.query.sql import Query
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.lease import FileHolder

if TYPE_CHECKING:
    from otel_llm_cost.pricing.book import PriceBook

__all__ = [
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

T = TypeVar("T")

_ZERO = Decimal(0)
_THOUSAND = Decimal(1000)


class _Source:
    """The SQL that produced a result, its rows, and the caller's connection if any.

    Reports fetch plain tuples (one execution of a prepared statement: ``connection.sql(...)`` would
    bind the query once to describe it and again to run it, ~1.5 ms per report) and build the Arrow
    table only when asked, from the same rows and the result's DuckDB column types.
    """

    __slots__ = ("_table", "connection", "names", "query", "rows", "types")

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection | None,
        query: Query,
        *,
        names: Sequence[str] = (),
        types: Sequence[str] = (),
        rows: list[tuple[Any, ...]] | None = None,
        table: pa.Table | None = None,
    ) -> None:
        self.connection = connection
        self.query = query
        self.names = tuple(names)
        self.types = tuple(types)
        self.rows = rows if rows is not None else []
        self._table = table

    @property
    def table(self) -> pa.Table:
        if self._table is None:
            columns = list(zip(*self.rows, strict=True)) if self.rows else [() for _ in self.names]
            self._table = pa.table(
                {
                    name: pa.array(values, type=_arrow_type(duck_type))
                    for name, duck_type, values in zip(self.names, self.types, columns, strict=True)
                }
            )
        return self._table


_ARROW_TYPES: Final[Mapping[str, pa.DataType]] = {
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="Etc/UTC"),  # as DuckDB names the session zone
}
_DECIMAL_TYPE: Final = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")


def _arrow_type(duck_type: str) -> pa.DataType | None:
    """The Arrow type DuckDB itself gives a report column (None: let pyarrow infer it)."""
    known = _ARROW_TYPES.get(duck_type)
    if known is not None:
        return known
    decimal = _DECIMAL_TYPE.fullmatch(duck_type)
    return pa.decimal128(int(decimal[1]), int(decimal[2])) if decimal else None


class _Tabular:
    """Analyst access shared by every result: Arrow table, DuckDB relation, pandas frame."""

    __slots__ = ()
    _source: _Source | None

    def arrow(self) -> pa.Table:
        """The result as a ``pyarrow.Table`` (the same execution the dataclass fields came from)."""
        return self._require_source().table

    def relation(self) -> duckdb.DuckDBPyRelation:
        """The result's rows as a DuckDB relation: compose it (filter, join, aggregate) in DuckDB.

        It is a snapshot, the rows of :meth:`arrow`, so it agrees with the dataclasses and does not
        re-read the store: a path-backed CostStore does not keep the file open after the query (that
        would stop the exporting application from writing). With a caller-owned connection
        (``CostStore(connection)``) the relation lives on that connection, so it can be joined with
        ``connection.table("llm_calls")``; otherwise on a private in-memory DuckDB.
        """
        source = self._require_source()
        connection = source.connection if source.connection is not None else duckdb.connect()
        return connection.from_arrow(source.table)

    def df(self) -> Any:
        """The result as a pandas DataFrame.

        Raises:
            ImportError: pandas is not installed.
        """
        return self._require_source().table.to_pandas()

    def _require_source(self) -> _Source:
        if self._source is None:
            raise ValueError("this result was built by hand, not read from a CostStore")
        return self._source


class Rows(_Tabular, Sequence[T], Generic[T]):
    """An immutable sequence of typed result rows, plus :meth:`arrow`, :meth:`relation` and :meth:`df`."""

    __slots__ = ("_items", "_source")

    def __init__(self, items: Sequence[T], source: _Source | None = None) -> None:
        self._items: tuple[T, ...] = tuple(items)
        self._source = source

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...
    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Rows):
            return self._items == other._items
        if isinstance(other, list | tuple):
            return self._items == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Rows({list(self._items)!r})"


@dataclass(frozen=True, slots=True)
class CostRow(_Tabular):
    """Spend of one group (a model, a feature, a user...) in a window.

    Attributes:
        key: the group's value (``None`` for calls without it, e.g. no feature tag).
        total_cost_usd: sum over the group's priced calls; ``None`` when none of them is priced.
        total_tokens: input + output tokens of every call in the group.
        call_count: billable calls.
        unpriced_calls: calls whose price is unknown (not included in ``total_cost_usd``).
    """

    key: str | None
    total_cost_usd: Decimal | None
    total_tokens: int
    call_count: int
    unpriced_calls: int
    _source: _Source | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class DailyCost(_Tabular):
    """Spend of one calendar day in the requested time zone (days without calls have zero everything)."""

    day: date
    total_cost_usd: Decimal | None
    total_tokens: int
    call_count: int
    unpriced_calls: int
    _source: _Source | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class CallRow(_Tabular):
    """One billable LLM call (a workflow step, or a row of ``top_calls``)."""

    span_id: str
    trace_id: str
    start_time: datetime
    end_time: datetime | None
    latency_ms: float | None
    model: str | None
    provider: str | None
    feature: str | None
    agent: str | None
    user_id: str | None
    org_id: str | None
    session_id: str | None
    workflow_id: str | None
    workflow_label: str | None
    step: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    total_tokens: int | None
    cost_usd: Decimal | None
    cost_status: str | None
    cost_reason: str | None
    from_cache: bool | None
    _source: _Source | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Summary(_Tabular):
    """Totals over a window (``CostStore.summary``), a session or a workflow.

    Attributes:
        cost_usd: spend of the priced calls (``None`` if there are calls and none is priced).
        unpriced_calls: calls whose price is unknown, not in ``cost_usd``.
        priced_tokens: tokens of the priced calls (the denominator of ``cost_per_1k_tokens_usd``).
        cache_saved_usd: what prompt-cache reads saved against the full input price.
        excluded_records: non-billable records in scope (duplicate records of a call, agent totals).
    """

    start: datetime | None
    end: datetime | None
    call_count: int
    unpriced_calls: int
    cost_usd: Decimal | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    total_tokens: int
    priced_tokens: int
    cache_saved_usd: Decimal
    cache_hit_calls: int
    from_cache_calls: int
    latency_ms: float
    first_start: datetime | None
    last_end: datetime | None
    excluded_records: int
    _source: _Source | None = field(default=None, repr=False, compare=False)

    @property
    def priced_calls(self) -> int:
        return self.call_count - self.unpriced_calls

    @property
    def cache_hit_rate(self) -> float:
        """cache_read / (cache_read + cache_write) tokens; 0 when both are 0."""
        denominator = self.cache_read_tokens + self.cache_write_tokens
        return self.cache_read_tokens / denominator if denominator else 0.0

    @property
    def cache_input_share(self) -> float:
        """Share of input tokens served from the prompt cache (cache_read / input); 0 without input."""
        return self.cache_read_tokens / self.input_tokens if self.input_tokens else 0.0

    @property
    def avg_cost_per_call_usd(self) -> Decimal | None:
        """Average over priced calls; ``None`` when no call is priced."""
        if self.cost_usd is None or not self.priced_calls:
            return None
        return self.cost_usd / self.priced_calls

    @property
    def cost_per_1k_tokens_usd(self) -> Decimal | None:
        """Spend per 1,000 tokens of priced calls; ``None`` when no priced call used tokens."""
        if self.cost_usd is None or not self.priced_tokens:
            return None
        return self.cost_usd * _THOUSAND / self.priced_tokens


@dataclass(frozen=True, slots=True)
class WorkflowTotals(_Tabular):
    """Totals of one workflow run (every billable call tagged with its ``workflow_id``).

    Attributes:
        cost_usd: the workflow's cost, ``None`` if any step is unpriced (see ``known_cost_usd``).
        known_cost_usd: the sum over priced steps.
        latency_ms: sum of step latencies (not wall-clock: steps may overlap).
        cached_steps: steps served from an application response cache (no API spend).
    """

    workflow_id: str
    step_count: int
    unpriced_steps: int
    cost_usd: Decimal | None
    known_cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    total_tokens: int
    latency_ms: float
    cached_steps: int
    started_at: datetime | None
    ended_at: datetime | None
    _source: _Source | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Savings(_Tabular):
    """What prompt caching saved in a window, and the calls the app tagged as downgradable.

    Attributes:
        cache_saved_usd: cache-read tokens priced at the full input price, minus what they cost.
        downgradable_calls: calls whose span says a cheaper model would do (``prompt.could_use_haiku``
            or ``model.recommendation``); ``downgradable_cost_usd`` is what they cost.
    """

    start: datetime | None
    end: datetime | None
    call_count: int
    cache_saved_usd: Decimal
    cache_read_tokens: int
    cache_hit_calls: int
    downgradable_calls: int
    downgradable_cost_usd: Decimal
    _source: _Source | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class WhatIf:
    """The same calls priced on another model, at that model's price at each call's time.

    Attributes:
        calls: calls of ``from_model`` in the window; ``unpriced_calls`` of them have no actual cost.
        actual_cost_usd: what the priced ones cost.
        projected_cost_usd: what all of them would have cost on ``to_model``.
        projected_priced_cost_usd: the same for the priced ones only (compare with ``actual_cost_usd``).
        downgradable_calls: calls the app tagged as fit for a cheaper model.
    """

    from_model: str
    to_model: str
    start: datetime | None
    end: datetime | None
    calls: int
    unpriced_calls: int
    actual_cost_usd: Decimal
    projected_cost_usd: Decimal
    projected_priced_cost_usd: Decimal
    downgradable_calls: int
    price_lookups: int

    @property
    def difference_usd(self) -> Decimal:
        """Actual minus projected over the priced calls: positive means ``to_model`` is cheaper."""
        return self.actual_cost_usd - self.projected_priced_cost_usd


@dataclass(frozen=True, slots=True)
class RepriceResult:
    """What :meth:`CostStore.reprice` changed (or, with ``dry_run``, would change)."""

    rows_examined: int
    rows_changed: int
    rows_newly_priced: int
    rows_still_unpriced: int
    usd_changed: Decimal
    """New minus old cost over the changed rows (an unpriced row counts as 0 before)."""
    dry_run: bool


SummaryStyle = Literal["detailed", "compact", "table"]


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One session (``cost.session_id``): duration, totals and where its money went."""

    session_id: str
    totals: Summary
    by_provider: Rows[CostRow]
    by_model: Rows[CostRow]

    STYLES: ClassVar[tuple[str, ...]] = ("detailed", "compact", "table")

    @property
    def started_at(self) -> datetime | None:
        return self.totals.first_start

    @property
    def ended_at(self) -> datetime | None:
        return self.totals.last_end

    @property
    def duration(self) -> timedelta:
        """First call's start to last call's end (zero for an unknown session)."""
        if self.started_at is None or self.ended_at is None:
            return timedelta(0)
        return self.ended_at - self.started_at

    @property
    def avg_cost_per_call_usd(self) -> Decimal | None:
        return self.totals.avg_cost_per_call_usd

    @property
    def cost_per_1k_tokens_usd(self) -> Decimal | None:
        return self.totals.cost_per_1k_tokens_usd

    def format(self, style: SummaryStyle = "detailed") -> str:
        """Printable text: ``detailed`` (multi-line with breakdowns), ``compact`` (one line) or ``table``.

        Raises:
            ValueError: unknown style.
        """
        return _output.format_session(self, style)

    def __str__(self) -> str:
        return self.format("detailed")


def _first_line(exc: BaseException) -> str:
    """DuckDB messages run over several lines (hints, a caret under the SQL); errors here are one line."""
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _build(cls: Callable[..., T], record: dict[str, Any], source: _Source) -> T:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]  # always a result dataclass
    values = {}
    for key, value in record.items():
        if key not in names:
            continue
        values[key] = _utc(value) if isinstance(value, datetime) else value
    return cls(**values, _source=source)


class CostStore:
    """Query LLM spend stored by :class:`~otel_llm_cost.exporter.DuckDBSpanExporter`.

    A store opened on a path holds the file only while queries run (see the module docstring), so an
    application can keep exporting to it meanwhile; a connection passed in is used as given.

    Args:
        path_or_connection: a DuckDB file path, or an open ``duckdb.DuckDBPyConnection`` (for example the
            one the exporter writes with, in the same process; CostStore then never closes it).
        read_only: open a path read-only (the default; several readers can share a file). Pass False to
            use :meth:`reprice`, or to read in the process that also writes the file (DuckDB refuses a
            read-only and a read-write handle on the same file in one process).
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
        for name, value in (
            ("hold_idle_s", hold_idle_s),
            ("hold_max_s", hold_max_s),
            ("timeout_s", timeout_s),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        self._holder: FileHolder | None = None
        self._connection: duckdb.DuckDBPyConnection | None = None
        if isinstance(path_or_connection, duckdb.DuckDBPyConnection):
            self._connection = path_or_connection
            self.path: Path | None = None
        else:
            self.path = Path(path_or_connection)
            # An exporter of this process may have accepted batches for a file it has not created yet.
            _storage.commit_pending(self.path, timeout_s)
            if not self.path.is_file():
                raise StorageError(f"no DuckDB file at {self.path}")
            self._holder = FileHolder(
                self.path,
                read_only=read_only,
                hold_idle_s=hold_idle_s,
                hold_max_s=hold_max_s,
                timeout_s=timeout_s,
            )
            # Release the file in the thread that drops the store, not in the holder's daemon thread:
            # if that thread dropped the last reference while the interpreter finalizes, the open
            # connection's destructor could not retake the GIL and duckdb aborts the process.
            weakref.finalize(self, self._holder.close)
            # Open once now: a missing table or a newer schema is reported here, not at the first report.
            with self._holder.cursor():
                pass
        self.read_only = read_only and self._holder is not None
        self._local = threading.local()

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the file now (a store on a path); a connection passed in stays open.

        A closed path-backed store refuses further queries.
        """
        if self._holder is not None:
            self._holder.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def holds_file(self) -> bool:
        """True while a path-backed store has the file open (between queries it soon stops)."""
        return self._holder is not None and self._holder.held

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the caller's connection (``CostStore(connection)`` only).

        A store opened on a path has no lasting connection; use :meth:`connect` for a block of queries.

        Raises:
            StorageError: the store was opened on a path.
        """
        if self._connection is None:
            raise StorageError(
                "a CostStore opened on a path holds the file only while it queries: "
                "use `with store.connect() as connection:` for your own SQL"
            )
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._connection.cursor()
            self._local.cursor = cursor
        return cursor

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Hold the store for a block of your own queries; yields a DuckDB cursor valid inside the block.

        On a path-backed store the file is held for the block (the exporting application waits
        meanwhile, so keep it short: under ``lock_timeout_s``, 5 s by default, or it spools); with a
        caller-owned connection this is that connection's cursor for this thread.

        Raises:
            StorageError: the file cannot be opened within ``timeout_s``, or the store is closed.
        """
        if self._holder is None:
            yield self.connection
            return
        with self._holder.cursor() as cursor:
            yield cursor

    def _fetch(self, query: Query) -> tuple[_Source, list[dict[str, Any]]]:
        source = self._execute(query)
        return source, [dict(zip(source.names, row, strict=True)) for row in source.rows]

    def _execute(self, query: Query) -> _Source:
        with self.connect() as connection:
            try:
                connection.execute(query.sql, list(query.params))
                description = connection.description or []
                rows = connection.fetchall()
            except duckdb.Error as exc:
                raise StorageError(
                    f"query failed on {self.path or 'the connection'}: {_first_line(exc)}"
                ) from exc
        return _Source(
            self._connection,
            query,
            names=[column[0] for column in description],
            types=[str(column[1]) for column in description],
            rows=rows,
        )

    def _rows(self, cls: Callable[..., T], query: Query) -> Rows[T]:
        source = self._execute(query)
        names = [f.name for f in fields(cls) if f.name != "_source"]  # type: ignore[arg-type]
        # Column-wise: pick the dataclass's columns by name, make timestamps UTC datetimes, zip back.
        by_name = dict(zip(source.names, zip(*source.rows, strict=True), strict=False)) if source.rows else {}
        if not by_name:
            return Rows([], source)
        timestamps = {n for n, t in zip(source.names, source.types, strict=True) if t.startswith("TIMESTAMP")}
        columns = [[_utc(v) for v in by_name[n]] if n in timestamps else by_name[n] for n in names]
        return Rows([cls(*values, _source=source) for values in zip(*columns, strict=True)], source)

    # -- reports ---------------------------------------------------------------------------------

    def cost_by(
        self, dimension: str, start: datetime | None = None, end: datetime | None = None
    ) -> Rows[CostRow]:
        """Spend grouped by ``dimension`` over ``[start, end)``, highest cost first.

        Args:
            dimension: one of ``model, provider, upstream_model, deployment (resource), service, feature,
                agent, user, org, session, workflow, workflow_label, step, role, task`` (aliases such as
                ``user_id`` work) or ``tag:<key>`` for a custom ``cost.<key>`` tag.
            start: inclusive lower bound (timezone-aware), or None.
            end: exclusive upper bound (timezone-aware), or None.

        Returns:
            Rows of :class:`CostRow`; groups with no priced call sort last.

        Raises:
            UnknownDimensionError: the dimension is not known (the message lists the valid ones).
            ValueError: a naive datetime or an empty window.
        """
        resolved = _queries.resolve_dimension(dimension)
        _queries.check_window(start, end)
        return self._rows(CostRow, _queries.cost_by(resolved, start, end))

    def cost_by_model(self, start: datetime | None = None, end: datetime | None = None) -> Rows[CostRow]:
        """``cost_by("model", start, end)``."""
        return self.cost_by("model", start, end)

    def cost_by_provider(self, start: datetime | None = None, end: datetime | None = None) -> Rows[CostRow]:
        """``cost_by("provider", start, end)``."""
        return self.cost_by("provider", start, end)

    def cost_by_workflow_label(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> Rows[CostRow]:
        """``cost_by("workflow_label", start, end)``: what each kind of workflow costs."""
        return self.cost_by("workflow_label", start, end)

    def daily_cost(self, start: datetime, end: datetime, tz: str = "UTC") -> Rows[DailyCost]:
        """One row per calendar day in ``tz`` touched by ``[start, end)``, days without calls as zero.

        A day's row sums the calls of that local day that fall inside the window, so the rows always
        add up to the window's total, across DST changes too (23- and 25-hour days).

        Args:
            start: inclusive, timezone-aware.
            end: exclusive, timezone-aware.
            tz: IANA time zone name for the day boundaries (default UTC).

        Raises:
            ValueError: naive datetimes, an empty window or an unknown time zone.
        """
        _queries.check_window(start, end)
        if start is None or end is None:
            raise ValueError("daily_cost needs both start and end")
        zone = _queries.resolve_timezone(tz)
        return self._rows(DailyCost, _queries.daily_cost(start, end, zone))

    def summary(self, start: datetime | None = None, end: datetime | None = None) -> Summary:
        """Totals over ``[start, end)``: calls, spend, tokens, cache hit rate and cache savings.

        Raises:
            ValueError: a naive datetime or an empty window.
        """
        _queries.check_window(start, end)
        return self._summary(_queries.totals(start, end, count_excluded=True), start, end)

    def _summary(self, query: Query, start: datetime | None, end: datetime | None) -> Summary:
        source, records = self._fetch(query)
        record = records[0]
        return _build(Summary, {**record, "start": start, "end": end}, source)

    def workflow_totals(self, workflow_id: str) -> WorkflowTotals:
        """Totals of one workflow: tokens by kind, cost, latency sum, step count, cached steps.

        ``cost_usd`` is ``None`` when any step is unpriced; ``known_cost_usd`` is the priced part.
        An unknown workflow id gives ``step_count == 0``.
        """
        source, records = self._fetch(_queries.totals(workflow_id=workflow_id))
        record = records[0]
        known = record["cost_usd"] if record["cost_usd"] is not None else _ZERO
        return WorkflowTotals(
            workflow_id=workflow_id,
            step_count=record["call_count"],
            unpriced_steps=record["unpriced_calls"],
            cost_usd=known if record["unpriced_calls"] == 0 else None,
            known_cost_usd=known,
            input_tokens=record["input_tokens"],
            output_tokens=record["output_tokens"],
            cache_read_tokens=record["cache_read_tokens"],
            cache_write_tokens=record["cache_write_tokens"],
            total_tokens=record["total_tokens"],
            latency_ms=record["latency_ms"],
            cached_steps=record["from_cache_calls"],
            started_at=_utc(record["first_start"]),
            ended_at=_utc(record["last_end"]),
            _source=source,
        )

    def steps_for_workflow(self, workflow_id: str) -> Rows[CallRow]:
        """The workflow's billable calls in start order (ties broken by span id)."""
        return self._rows(CallRow, _queries.workflow_steps(workflow_id))

    def session_summary(self, session_id: str) -> SessionSummary:
        """Duration, totals, provider and model breakdowns of one session.

        ``str(result)`` or ``result.format("compact" | "table")`` prints it.
        """
        totals = self._summary(_queries.totals(session_id=session_id), None, None)
        by_provider = self._rows(
            CostRow,
            _queries.cost_by(_queries.resolve_dimension("provider"), None, None, session_id=session_id),
        )
        by_model = self._rows(
            CostRow, _queries.cost_by(_queries.resolve_dimension("model"), None, None, session_id=session_id)
        )
        return SessionSummary(session_id, totals, by_provider, by_model)

    def top_calls(
        self, n: int = 10, start: datetime | None = None, end: datetime | None = None
    ) -> Rows[CallRow]:
        """The ``n`` most expensive priced calls in ``[start, end)``.

        Raises:
            ValueError: ``n < 1``, a naive datetime or an empty window.
        """
        _queries.check_window(start, end)
        return self._rows(CallRow, _queries.top_calls(n, start, end))

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
        bound = Query(query, tuple(params or ()))
        with self.connect() as connection:
            try:
                relation = connection.sql(query, params=list(bound.params))
                # A statement without a result (SET, INSERT... on a writable store) returns None.
                # Arbitrary SQL can return any type: Arrow straight from DuckDB, not rebuilt from rows.
                table = pa.table({}) if relation is None else relation.to_arrow_table()
            except duckdb.Error as exc:
                raise QueryError(f"query failed: {_first_line(exc)}") from exc
        records = [
            {k: _utc(v) if isinstance(v, datetime) and v.tzinfo else v for k, v in r.items()}
            for r in table.to_pylist()
        ]
        return Rows(records, _Source(self._connection, bound, table=table))

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

    # -- savings and repricing -------------------------------------------------------------------

    def savings(self, start: datetime | None = None, end: datetime | None = None) -> Savings:
        """What prompt caching saved in ``[start, end)``, and how many calls the app marked downgradable.

        Raises:
            ValueError: a naive datetime or an empty window.
        """
        _queries.check_window(start, end)
        source, records = self._fetch(_queries.savings(start, end))
        return _build(Savings, {**records[0], "start": start, "end": end}, source)

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
        now = datetime.now(UTC)
        probes = [pricebook.unit_prices(to_model, to_provider, at=end or now)]
        if start is not None:
            probes.append(pricebook.unit_prices(to_model, to_provider, at=start))
        thresholds = frozenset(t.above_input_tokens for p in probes for t in p.tiers)
        slot_minutes = 30 if any(p.time_of_day_pricing for p in probes) else 24 * 60
        while True:
            _source, records = self._fetch(
                _queries.what_if_groups(
                    from_model, start, end, thresholds=tuple(sorted(thresholds)), slot_minutes=slot_minutes
                )
            )
            priced = _price_groups(records, pricebook, to_model, to_provider, tuple(sorted(thresholds)))
            if priced.thresholds_seen <= thresholds:
                break
            # A price period in the window has a tier boundary the grouping did not split on.
            thresholds |= priced.thresholds_seen
        unpriced = sum(r["calls"] for r in records if not r["priced"])
        return WhatIf(
            from_model=from_model,
            to_model=to_model,
            start=start,
            end=end,
            calls=sum(r["calls"] for r in records),
            unpriced_calls=unpriced,
            actual_cost_usd=sum((r["cost_usd"] for r in records if r["priced"]), _ZERO),
            projected_cost_usd=priced.total_usd,
            projected_priced_cost_usd=priced.priced_usd,
            downgradable_calls=sum(r["downgradable_calls"] for r in records),
            price_lookups=priced.lookups,
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
        _source, records = self._fetch(_queries.reprice_candidates(start, end, include_priced=include_priced))
        memo: dict[tuple[Usage, datetime], CostBreakdown] = {}
        changed: list[dict[str, Any]] = []
        newly_priced = still_unpriced = 0
        usd_changed = _ZERO
        for index, record in enumerate(records, 1):
            usage = _usage_of(record)
            # Prices change at UTC midnight or on the half hour (time-of-day prices), never inside a slot.
            slot = _half_hour_floor(record["start_time"])
            breakdown = memo.get((usage, slot))
            if breakdown is None:
                breakdown = pricebook.compute_cost(usage, at=slot)
                memo[(usage, slot)] = breakdown
            new = _reprice_values(record, breakdown)
            if new["cost_usd"] is None:
                still_unpriced += 1
            if any(new[col] != record[col] for col in _REPRICE_COMPARED):
                changed.append({"span_id": record["span_id"], "trace_id": record["trace_id"], **new})
                if record["cost_usd"] is None and new["cost_usd"] is not None:
                    newly_priced += 1
                usd_changed += (new["cost_usd"] or _ZERO) - (record["cost_usd"] or _ZERO)
            if progress is not None and (index % 1000 == 0 or index == len(records)):
                progress(1000 if index % 1000 == 0 else index % 1000)
        if changed and not dry_run:
            self._apply_reprice(changed)
        return RepriceResult(
            rows_examined=len(records),
            rows_changed=len(changed),
            rows_newly_priced=newly_priced,
            rows_still_unpriced=still_unpriced,
            usd_changed=usd_changed,
            dry_run=dry_run,
        )

    def _apply_reprice(self, changed: list[dict[str, Any]]) -> None:
        money = pa.decimal128(18, 12)
        schema = pa.schema(
            [("span_id", pa.string()), ("trace_id", pa.string())]
            + [(col, money if col in _MONEY_COLUMNS else pa.string()) for col in _queries.REPRICE_UPDATED]
        )
        table = pa.Table.from_pylist(changed, schema=schema)
        # The file is held for the UPDATE only, not while Python prices the candidates: a reprice of
        # many rows must not make the exporting application spool.
        with self.connect() as connection:
            connection.register("_repriced_calls", table)
            try:
                connection.begin()
                connection.execute(_queries.reprice_update("_repriced_calls"))
                connection.commit()
            except duckdb.Error as exc:
                connection.rollback()
                raise StorageError(f"reprice could not update {self.path or 'the store'}: {exc}") from exc
            finally:
                connection.unregister("_repriced_calls")


_MONEY_COLUMNS: Final = frozenset(
    (
        "cost_usd",
        "input_cost_usd",
        "cache_read_cost_usd",
        "cache_write_cost_usd",
        "output_cost_usd",
        "cache_saved_usd",
    )
)
# What makes a record "changed": its money, status or price source (not the free-text reason).
_REPRICE_COMPARED: Final = (
    "cost_usd",
    "input_cost_usd",
    "cache_read_cost_usd",
    "cache_write_cost_usd",
    "output_cost_usd",
    "cost_status",
    "price_source",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLION = Decimal(1_000_000)


def _half_hour_floor(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return value.replace(minute=value.minute - value.minute % 30, second=0, microsecond=0)


def _usage_of(record: Mapping[str, Any]) -> Usage:
    def count(name: str) -> int:
        return int(record[name] or 0)

    return Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_read_tokens=count("cache_read_tokens"),
        cache_write_tokens=count("cache_write_tokens"),
        cache_write_1h_tokens=count("cache_write_1h_tokens"),
        reasoning_tokens=count("reasoning_tokens"),
        request_model=record["request_model"],
        response_model=record["response_model"],
        provider=record["provider"],
        operation=record["operation"],
        convention=record["convention"] or "gen_ai",
        # A record stored without token counts stays unpriced ("no usage reported"), never $0.
        usage_reported=record["input_tokens"] is not None or record["output_tokens"] is not None,
    )


def _reprice_values(record: Mapping[str, Any], breakdown: CostBreakdown) -> dict[str, Any]:
    return {
        "cost_usd": breakdown.total_usd,
        "input_cost_usd": breakdown.input_usd,
        "cache_read_cost_usd": breakdown.cache_read_usd,
        "cache_write_cost_usd": breakdown.cache_write_usd,
        "output_cost_usd": breakdown.output_usd,
        "cost_status": str(breakdown.status),
        "cost_reason": breakdown.reason,
        "price_source": breakdown.source,
        "cache_saved_usd": breakdown.cache_saved_usd,
        "upstream_model": breakdown.model_id or record["upstream_model"],
        "deployment": breakdown.deployment or record["deployment"],
    }


@dataclass(frozen=True, slots=True)
class _PricedGroups:
    total_usd: Decimal
    priced_usd: Decimal
    lookups: int
    thresholds_seen: frozenset[int]


def _price_groups(
    records: Sequence[Mapping[str, Any]],
    pricebook: PriceBook,
    model: str,
    provider: str | None,
    thresholds: tuple[int, ...],
) -> _PricedGroups:
    total = priced = _ZERO
    lookups = 0
    seen: set[int] = set()
    prices: UnitPrices | None = None
    for record in records:
        at = _EPOCH + timedelta(microseconds=record["slot_us"])
        if prices is None or not _in_force(prices, at):
            prices = pricebook.unit_prices(model, provider, at=at)
            lookups += 1
            seen.update(t.above_input_tokens for t in prices.tiers)
        band = record["band"]
        # The call's input exceeds thresholds[band - 1]: the highest tier at or below it applies.
        crossed = thresholds[band - 1] if band else None
        tier = max(
            (t for t in prices.tiers if crossed is not None and t.above_input_tokens <= crossed),
            key=lambda t: t.above_input_tokens,
            default=None,
        )
        rates: UnitPrices | PriceTier = tier if tier is not None else prices
        cost = (
            record["uncached_input_tokens"] * rates.input_mtok
            + record["cache_read_tokens"] * rates.cache_read_mtok
            + record["cache_write_5m_tokens"] * rates.cache_write_5m_mtok
            + record["cache_write_1h_tokens"] * rates.cache_write_1h_mtok
            + record["output_tokens"] * rates.output_mtok
        ) / _MILLION + prices.request_usd * record["calls"]
        total += cost
        if record["priced"]:
            priced += cost
    return _PricedGroups(
        total.quantize(MONEY_QUANTUM), priced.quantize(MONEY_QUANTUM), lookups, frozenset(seen)
    )


def _in_force(prices: UnitPrices, at: datetime) -> bool:
    if prices.time_of_day_pricing:
        return False
    day = at.date()
    return (prices.valid_from is None or prices.valid_from <= day) and (
        prices.valid_until is None or day < prices.valid_until
    )
