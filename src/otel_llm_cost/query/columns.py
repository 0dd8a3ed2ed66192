"""Report rows fetched column by column: Arrow from DuckDB, then typed results built a column at a time.

A grouped report can return tens of thousands of rows (``cost_by("user")``: one per user). Fetched as
tuples, DuckDB makes each HUGEINT and DECIMAL value a Python object one at a time: 10,000 ``CostRow``
rows took 43 ms to fetch, twice the query. Fetched as Arrow, pyarrow converts a column in one pass,
and the HUGEINT token sums become ``int`` through a checked cast to int64 (about 5 ms for all the
columns). Building frozen dataclasses costs again: their ``__init__`` sets every field through
``object.__setattr__`` (18 ms for 10,000 ``CostRow``); setting the slots one column at a time through
their descriptors builds the same objects in 6 ms.

Asking DuckDB for Arrow binds the query twice (once to describe the result, once to run it), which
costs 1-5 ms, so only reports that may return many rows fetch this way: grouped by a dimension with
about as many values as users, sessions or calls, or by a custom tag, whose values nobody knows.
"""

from __future__ import annotations

import dataclasses
import re
from collections import deque
from collections.abc import Callable, Sequence
from decimal import Decimal
from itertools import repeat
from typing import Any, Final, TypeVar

import duckdb
import pyarrow as pa

from otel_llm_cost.query.dimensions import TAG_VALUE, Dimension
from otel_llm_cost.query.sql import Query

__all__ = ["build_all", "fetch_columns", "many_values"]

T = TypeVar("T")

# DuckDB column types whose Arrow values pyarrow turns into the very Python values ``fetchall`` gives.
_PLAIN_TYPES: Final = frozenset(
    {
        "VARCHAR",
        "BIGINT",
        "INTEGER",
        "SMALLINT",
        "TINYINT",
        "DOUBLE",
        "BOOLEAN",
        "DATE",
        "TIMESTAMP WITH TIME ZONE",
        '"NULL"',
        "NULL",
    }
)
_DECIMAL: Final = re.compile(r"DECIMAL\(\d+,\s*\d+\)")


_FEW_VALUES: Final = frozenset(
    (
        "model",
        "provider",
        "upstream_model",
        "deployment",
        "service",
        "feature",
        "agent",
        "workflow_label",
        "step",
    )
)


def many_values(dimension: Dimension) -> bool:
    """Whether a report grouped by ``dimension`` may return many rows (then :func:`fetch_columns`)."""
    return dimension.expression == TAG_VALUE or dimension.name not in _FEW_VALUES


def _convertible(duck_type: str) -> bool:
    return duck_type in _PLAIN_TYPES or duck_type == "HUGEINT" or _DECIMAL.fullmatch(duck_type) is not None


def _python(column: pa.ChunkedArray, duck_type: str) -> list[Any]:
    """The column's values as ``fetchall`` gives them (HUGEINT: ``int``; DECIMAL: exact ``Decimal``)."""
    if duck_type == "HUGEINT":  # Arrow carries it as decimal128(38, 0)
        try:
            values: list[Any] = column.cast(pa.int64()).to_pylist()  # checked: raises beyond int64
            return values
        except pa.ArrowInvalid:
            return [None if value is None else int(value) for value in column.to_pylist()]
    if _DECIMAL.fullmatch(duck_type):
        # Through text: pyarrow prints every digit and the exponent, so Decimal(text) has the digits and
        # exponent fetchall gives (Decimal('0E-12') for a zero sum), in a third of to_pylist's time.
        return [None if text is None else Decimal(text) for text in column.cast(pa.string()).to_pylist()]
    plain: list[Any] = column.to_pylist()
    return plain


def fetch_columns(
    connection: duckdb.DuckDBPyConnection, query: Query
) -> tuple[list[str], list[str], list[list[Any]] | None, list[tuple[Any, ...]] | None]:
    """Run ``query``: its column names, DuckDB types, and either its columns or (a type Arrow would
    give differently, such as a MAP) its rows as tuples."""
    # duckdb 2.0 refuses sql() while a result of execute() is left unread (the rollup's fetchone);
    # complete() finishes it. duckdb 1.5 has no complete() and no such rule.
    complete = getattr(connection, "complete", None)
    if complete is not None:
        complete()
    relation = connection.sql(query.sql, params=list(query.params))
    if relation is None:
        raise duckdb.InvalidInputException("a report query returned no result")
    names, types = list(relation.columns), [str(t) for t in relation.types]
    if not all(_convertible(t) for t in types):
        return names, types, None, relation.fetchall()
    table = relation.to_arrow_table()
    return names, types, [_python(table.column(i), t) for i, t in enumerate(types)], None


def build_all(cls: Callable[..., T], columns: Sequence[Sequence[Any]], source: object) -> list[T]:
    """``[cls(*values, _source=source) for values in zip(*columns)]``: ``columns`` hold every field but the
    last, ``_source``, in order. Set a column at a time when ``cls`` is a slotted dataclass without
    ``__post_init__`` (the result types are)."""
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]  # a result dataclass
    if fields[-1:] != ["_source"] or len(fields) != len(columns) + 1:
        raise ValueError(f"{len(columns)} columns for the fields {fields}")
    count = len(columns[0]) if columns else 0
    if any(len(column) != count for column in columns):
        raise ValueError("columns of different lengths")
    if not hasattr(cls, "__slots__") or hasattr(cls, "__post_init__"):
        return [cls(*values, _source=source) for values in zip(*columns, strict=True)]
    new: Any = object.__new__
    items = [new(cls) for _ in range(count)]
    for name, column in zip(fields, (*columns, repeat(source, count)), strict=True):
        deque(map(getattr(cls, name).__set__, items, column), maxlen=0)
    return items
