"""Running the query builders' SQL on a store and turning the rows into typed results.

One execution of a prepared statement per report, rows fetched as plain tuples: ``connection.sql(...)``
would bind the query once to describe it and again to run it (1-5 ms more per report). Reports that may
return many rows (one per user) pay that to fetch Arrow instead (see :mod:`.columns`). Timestamps come
back in the session's zone and are handed out as UTC datetimes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from otel_llm_cost.exceptions import QueryError, StorageError
from otel_llm_cost.query.access import StoreAccess
from otel_llm_cost.query.columns import build_all, fetch_columns
from otel_llm_cost.query.sql import Query
from otel_llm_cost.query.tabular import Rows, Source
from otel_llm_cost.storage.rollup import watermark

__all__ = ["Planned", "Reader", "Rolled", "first_line", "typed_rows", "utc"]

T = TypeVar("T")
Rolled = Callable[[int | None], Query | None]
# Given the connection in the report's transaction: the SQL over a derived table (None: the raw SQL).
Planned = Callable[[duckdb.DuckDBPyConnection], Query | None]


def first_line(exc: BaseException) -> str:
    """DuckDB messages run over several lines (hints, a caret under the SQL); errors here are one line."""
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


class Reader:
    """Executes :class:`~otel_llm_cost.query.sql.Query` objects through a store's access."""

    def __init__(self, access: StoreAccess) -> None:
        self.access = access

    def execute(
        self,
        query: Query,
        rolled: Rolled | None = None,
        *,
        planned: Planned | None = None,
        columnar: bool = False,
    ) -> Source:
        """The query's rows with their column names and DuckDB types.

        ``rolled(watermark)`` gives the same question's SQL over the rollup (None: it cannot answer);
        it is asked only when the file has a rollup, and both run in one transaction (one snapshot).
        ``planned(connection)`` does the same for a derived table that first reads its own state.
        ``columnar``: fetch Arrow and convert a column at a time (see :mod:`.columns`), for reports
        that may return many rows.
        """
        columns = None
        with self.access.connect() as connection:
            began = False
            try:
                if rolled is not None:
                    planned = _over_rollup(rolled)
                if planned is not None:
                    query, began = _choose(connection, query, planned)
                if columnar:
                    names, types, columns, rows = fetch_columns(connection, query)
                else:
                    connection.execute(query.sql, list(query.params))
                    description = connection.description or []
                    names = [column[0] for column in description]
                    types = [str(column[1]) for column in description]
                    rows = connection.fetchall()
                if began:
                    connection.execute("COMMIT")
            except duckdb.Error as exc:
                if began:
                    with contextlib.suppress(duckdb.Error):
                        connection.execute("ROLLBACK")
                where = self.access.path or "the connection"
                raise StorageError(f"query failed on {where}: {first_line(exc)}") from exc
        return Source(
            self.access.caller_connection, query, names=names, types=types, rows=rows, columns=columns
        )

    def records(self, query: Query, rolled: Rolled | None = None) -> tuple[Source, list[dict[str, Any]]]:
        """The rows as dicts (column name -> value), with their source."""
        source = self.execute(query, rolled)
        return source, [dict(zip(source.names, row, strict=True)) for row in source.rows]

    def rows(
        self,
        cls: Callable[..., T],
        query: Query,
        rolled: Rolled | None = None,
        *,
        planned: Planned | None = None,
        columnar: bool = False,
    ) -> Rows[T]:
        """One ``cls`` (a result dataclass) per row; its fields are picked from the columns by name.

        ``planned`` and ``columnar``: see :meth:`execute`.
        """
        return typed_rows(cls, self.execute(query, rolled, planned=planned, columnar=columnar))

    def one(self, cls: Callable[..., T], query: Query, rolled: Rolled | None = None, **extra: Any) -> T:
        """A ``cls`` from the query's single row plus ``extra`` fields (a report's window, say)."""
        source, records = self.records(query, rolled)
        return build(cls, {**records[0], **extra}, source)

    def sql(self, query: str, params: Sequence[object] | None = None) -> Rows[dict[str, Any]]:
        """Any SQL, as ``CostStore.sql``: Arrow straight from DuckDB (it can return any type)."""
        bound = Query(query, tuple(params or ()))
        with self.access.connect() as connection:
            try:
                relation = connection.sql(query, params=list(bound.params))
                # A statement without a result (SET, INSERT... on a writable store) returns None.
                table = pa.table({}) if relation is None else relation.to_arrow_table()
            except duckdb.Error as exc:
                raise QueryError(f"query failed: {first_line(exc)}") from exc
        records = [
            {k: utc(v) if isinstance(v, datetime) and v.tzinfo else v for k, v in r.items()}
            for r in table.to_pylist()
        ]
        return Rows(records, Source(self.access.caller_connection, bound, table=table))


def typed_rows(cls: Callable[..., T], source: Source) -> Rows[T]:
    """One ``cls`` (a result dataclass) per row of ``source``: its fields picked from the columns by
    name, timestamps made UTC datetimes."""
    names = [f.name for f in fields(cls) if f.name != "_source"]  # type: ignore[arg-type]
    by_name = dict(zip(source.names, source.columns, strict=True))
    timestamps = {n for n, t in zip(source.names, source.types, strict=True) if t.startswith("TIMESTAMP")}
    columns = [[utc(v) for v in by_name[n]] if n in timestamps else by_name[n] for n in names]
    return Rows(build_all(cls, columns, source), source)


def _over_rollup(rolled: Rolled) -> Planned:
    return lambda connection: rolled(watermark(connection))


def _choose(connection: duckdb.DuckDBPyConnection, raw: Query, plan: Planned) -> tuple[Query, bool]:
    """The derived table's SQL when the file has one that can answer, else ``raw``; and whether a
    transaction was begun (the watermark and the sums must come from one snapshot)."""
    try:
        connection.execute("BEGIN TRANSACTION")
    except duckdb.TransactionException:  # the caller's own transaction on its connection
        began = False
    else:
        began = True
    try:
        query = plan(connection)
    except duckdb.Error:  # a file written before the table existed, or a lake
        if began:
            connection.execute("ROLLBACK")
        return raw, False
    if query is None and began:
        connection.execute("COMMIT")
        return raw, False
    return (raw if query is None else query), began


def build(cls: Callable[..., T], record: dict[str, Any], source: Source) -> T:
    """A result dataclass from one record: its fields picked by name, timestamps made UTC."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]  # always a result dataclass
    values = {}
    for key, value in record.items():
        if key not in names:
            continue
        values[key] = utc(value) if isinstance(value, datetime) else value
    return cls(**values, _source=source)
