"""CostStore: the read/query API over the DuckDB file the exporter writes.

Every report returns small frozen dataclasses with exact :class:`~decimal.Decimal` money. Each result
also carries what produced it, so analysts can continue in DuckDB or Arrow::

    store = CostStore("llm_costs.duckdb")
    rows = store.cost_by("feature", start, end)
    rows[0].total_cost_usd          # Decimal
    rows.arrow()                    # pyarrow.Table, the same rows the dataclasses were built from
    rows.relation().filter("call_count > 10").order("key")   # lazy DuckDB relation, re-runs the SQL
    rows.df()                       # pandas DataFrame (needs pandas)

Conventions: windows are half-open ``[start, end)`` on the call's start time and need timezone-aware
datetimes (``None`` means unbounded); only billable calls are summed; a call whose price is unknown is
counted in ``unpriced_calls`` and never contributes $0 silently (a group with no priced call reports
``total_cost_usd = None``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar, overload

import duckdb
import pyarrow as pa

from otel_llm_cost import _output, _queries
from otel_llm_cost._queries import Query
from otel_llm_cost.exceptions import QueryError, StorageError

__all__ = [
    "CallRow",
    "CostRow",
    "CostStore",
    "DailyCost",
    "Rows",
    "SessionSummary",
    "Summary",
    "WorkflowTotals",
]

T = TypeVar("T")

_ZERO = Decimal(0)
_THOUSAND = Decimal(1000)


@dataclass(frozen=True, slots=True)
class _Source:
    """The SQL that produced a result and the Arrow table it was read from (one execution)."""

    connection: duckdb.DuckDBPyConnection
    query: Query
    table: pa.Table


class _Tabular:
    """Analyst access shared by every result: Arrow table, lazy DuckDB relation, pandas frame."""

    __slots__ = ()
    _source: _Source | None

    def arrow(self) -> pa.Table:
        """The result as a ``pyarrow.Table`` (the same execution the dataclass fields came from)."""
        return self._require_source().table

    def relation(self) -> duckdb.DuckDBPyRelation:
        """The producing SQL as a lazy DuckDB relation: compose it (filter, join, aggregate) in DuckDB.

        It re-runs against the current data when fetched, so it may include calls stored since.
        """
        source = self._require_source()
        return source.connection.sql(source.query.sql, params=list(source.query.params))

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


def _open(path: str | os.PathLike[str], read_only: bool) -> duckdb.DuckDBPyConnection:
    """The single place CostStore opens a file."""
    return duckdb.connect(os.fspath(path), read_only=read_only)


class CostStore:
    """Query LLM spend stored by :class:`~otel_llm_cost.exporter.DuckDBSpanExporter`.

    Args:
        path_or_connection: a DuckDB file path, or an open ``duckdb.DuckDBPyConnection`` (for example the
            one the exporter writes with, in the same process; CostStore then never closes it).
        read_only: open a path read-only (the default; several readers can share a file). Pass False to
            use :meth:`reprice`, or to read in the process that also writes the file (DuckDB refuses a
            read-only and a read-write handle on the same file in one process).

    Raises:
        StorageError: the file does not exist or cannot be opened.

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
    ) -> None:
        if isinstance(path_or_connection, duckdb.DuckDBPyConnection):
            self._connection = path_or_connection
            self._owned = False
            self.path: Path | None = None
        else:
            self.path = Path(path_or_connection)
            if not self.path.is_file():
                raise StorageError(f"no DuckDB file at {self.path}")
            self._connection = _open(self.path, read_only)
            self._owned = True
        self.read_only = read_only and self._owned
        self._local = threading.local()

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection if CostStore opened it (a connection passed in stays open)."""
        if self._owned:
            self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the store (DuckDB refuses concurrent calls on one connection)."""
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._connection.cursor()
            self._local.cursor = cursor
        return cursor

    def _fetch(self, query: Query) -> tuple[_Source, list[dict[str, Any]]]:
        connection = self.connection
        try:
            table = connection.sql(query.sql, params=list(query.params)).to_arrow_table()
        except duckdb.Error as exc:
            raise StorageError(f"query failed on {self.path or 'the connection'}: {exc}") from exc
        return _Source(connection, query, table), table.to_pylist()

    def _rows(self, cls: Callable[..., T], query: Query) -> Rows[T]:
        source, records = self._fetch(query)
        return Rows([_build(cls, record, source) for record in records], source)

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
        return self._summary(_queries.totals(start, end), start, end)

    def _summary(self, query: Query, start: datetime | None, end: datetime | None) -> Summary:
        source, records = self._fetch(query)
        record = records[0]
        if record["cost_usd"] is None and record["unpriced_calls"] == 0:
            record["cost_usd"] = _ZERO  # nothing in scope: a true zero, not an unknown
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

        Args:
            query: SQL text; use ``?`` placeholders for values.
            params: the placeholder values.

        Returns:
            Rows of dicts (column name -> value); ``.arrow()`` / ``.relation()`` as for every report.

        Raises:
            QueryError: DuckDB rejected the query.
        """
        connection = self.connection
        bound = Query(query, tuple(params or ()))
        try:
            relation = connection.sql(query, params=list(bound.params))
            if relation is None:  # a statement without a result (SET, INSERT... on a writable store)
                return Rows([], _Source(connection, bound, pa.table({})))
            table = relation.to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(f"query failed: {exc}") from exc
        records = [
            {k: _utc(v) if isinstance(v, datetime) and v.tzinfo else v for k, v in r.items()}
            for r in table.to_pylist()
        ]
        return Rows(records, _Source(connection, bound, table))
