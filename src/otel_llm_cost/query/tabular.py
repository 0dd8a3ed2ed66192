"""How every report result reaches Arrow, DuckDB and pandas: the rows it was built from, kept beside it.

Reports fetch plain tuples (one execution of a prepared statement) and build the Arrow table only when
an analyst asks for it, from the same rows and the DuckDB column types of the result.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, overload

import duckdb
import pyarrow as pa

if TYPE_CHECKING:
    from otel_llm_cost.query.sql import Query

__all__ = ["Rows", "Source", "Tabular", "arrow_type"]

T = TypeVar("T")


class Source:
    """The SQL that produced a result, its rows as plain tuples (or its columns as lists) with their
    DuckDB column names and types, and the caller's connection if any; the Arrow table is built on
    first use (or given, for free SQL).
    """

    __slots__ = ("_columns", "_rows", "_table", "connection", "names", "query", "types")

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection | None,
        query: Query,
        *,
        names: Sequence[str] = (),
        types: Sequence[str] = (),
        rows: list[tuple[Any, ...]] | None = None,
        columns: list[list[Any]] | None = None,
        table: pa.Table | None = None,
    ) -> None:
        self.connection = connection
        self.query = query
        self.names = tuple(names)
        self.types = tuple(types)
        self._rows = rows if rows is not None or columns is not None else []
        self._columns = columns
        self._table = table

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            self._rows = list(zip(*self._columns, strict=True)) if self._columns else []
        return self._rows

    @property
    def columns(self) -> list[Sequence[Any]]:
        """One sequence of values per column."""
        if self._columns is not None:
            return list(self._columns)
        if not self.rows:
            return [() for _ in self.names]
        return list(zip(*self.rows, strict=True))

    @property
    def table(self) -> pa.Table:
        if self._table is None:
            self._table = pa.table(
                {
                    name: pa.array(values, type=arrow_type(duck_type))
                    for name, duck_type, values in zip(self.names, self.types, self.columns, strict=True)
                }
            )
        return self._table


# DuckDB's names of report column types. storage/rows.py keeps its own map for the types of the stored
# columns (other names: TIMESTAMPTZ, JSON, MAP; nanosecond timestamps), private to storage.
_ARROW_TYPES: Final[Mapping[str, pa.DataType]] = {
    "BIGINT": pa.int64(),
    "HUGEINT": pa.decimal128(38, 0),  # token sums: cannot overflow (DuckDB's own Arrow type for it)
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="Etc/UTC"),  # as DuckDB names the session zone
    "TIMESTAMPTZ": pa.timestamp("us", tz="Etc/UTC"),  # the schema's spelling (an empty alert history)
}
_DECIMAL_TYPE: Final = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")


def arrow_type(duck_type: str) -> pa.DataType | None:
    """The Arrow type DuckDB itself gives a report column (None: let pyarrow infer it)."""
    known = _ARROW_TYPES.get(duck_type)
    if known is not None:
        return known
    decimal = _DECIMAL_TYPE.fullmatch(duck_type)
    return pa.decimal128(int(decimal[1]), int(decimal[2])) if decimal else None


def _require_optional(module: str, method: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f".{method}() needs {module}, which is not installed: pip install 'otel-llm-cost[{module}]'"
        ) from exc


class Tabular:
    """Analyst access shared by every result: Arrow table, DuckDB relation, pandas or polars frame."""

    __slots__ = ()
    _source: Source | None

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
        """The result as a pandas DataFrame (money columns hold ``Decimal``).

        Raises:
            ImportError: pandas is not installed (``pip install 'otel-llm-cost[pandas]'``).
        """
        table = self._require_source().table
        _require_optional("pandas", "df")
        return table.to_pandas()

    def pl(self) -> Any:
        """The result as a polars DataFrame (money columns keep their exact ``Decimal`` type).

        Raises:
            ImportError: polars is not installed (``pip install 'otel-llm-cost[polars]'``).
        """
        table = self._require_source().table
        polars = _require_optional("polars", "pl")
        return polars.from_arrow(table)

    def _require_source(self) -> Source:
        if self._source is None:
            raise ValueError("this result was built by hand, not read from a CostStore")
        return self._source


class Rows(Tabular, Sequence[T], Generic[T]):
    """An immutable sequence of typed result rows.

    Plus :meth:`arrow`, :meth:`relation`, :meth:`df` and :meth:`pl` over the same rows.
    """

    __slots__ = ("_items", "_source")

    def __init__(self, items: Sequence[T], source: Source | None = None) -> None:
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
