"""Attribute values as they are stored: the JSON column's one encoding, Arrow arrays that null misfits."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from otel_llm_cost._money import MONEY_QUANTUM
from otel_llm_cost.storage.clean_text import clean_value

__all__ = [
    "json_object_column",
    "tag_map_array",
    "tag_value",
    "to_array",
    "to_arrays",
    "to_json_bytes",
    "to_json_rows",
]

# Largest magnitude DECIMAL(18,12) holds: 6 integer digits.
_MONEY_LIMIT: Final = 1e6


def _json_default(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


# The fallback for what orjson refuses (an int beyond 64 bits, a lone surrogate): ASCII escapes keep
# any string encodable.
_ENCODER: Final = json.JSONEncoder(allow_nan=False, separators=(",", ":"), default=_json_default)


def _finite(value: object) -> object:
    """``value`` with NaN/Infinity (alone or inside a sequence) as strings: they are not JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, tuple | list):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


def to_json_bytes(value: object) -> bytes:
    """The one JSON encoding of stored attributes: compact UTF-8, NaN/Infinity kept as strings.

    orjson: 0.2 us for a span's remaining attributes against 2.4 us for the standard library
    (measured with ``benchmarks/bench_exporter.py``, where it is a tenth of the export thread's work).
    """
    try:
        encoded = orjson.dumps(value, default=_json_default)
    except TypeError:  # orjson.JSONEncodeError is one
        # What orjson refuses: an int beyond 64 bits, or a lone surrogate, which the standard library
        # would write as an escape that no JSON reader (DuckDB included) accepts: U+FFFD instead.
        return _ENCODER.encode(_finite(clean_value(value))).encode()
    if b"null" in encoded:
        # orjson writes NaN and Infinity as null (so would a None, or text containing "null"): keep
        # the non-finite numbers readable, as strings.
        return orjson.dumps(_finite(value), default=_json_default)
    return encoded


def to_json_rows(keys: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[bytes]:
    """``to_json_bytes`` of ``dict(zip(keys, values))`` for each row's values: one comprehension over the
    batch, each row that needs more than plain orjson (see :func:`to_json_bytes`) redone alone."""
    objects = [dict(zip(keys, values, strict=True)) for values in rows]
    dumps, default = orjson.dumps, _json_default
    try:
        encoded = [dumps(value, default=default) for value in objects]
    except TypeError:
        return [to_json_bytes(value) for value in objects]
    for row in [row for row, text in enumerate(encoded) if b"null" in text]:
        encoded[row] = to_json_bytes(objects[row])
    return encoded


def json_object_column(keys: Sequence[str], columns: Sequence[Sequence[Any]], count: int) -> pa.Array:
    """:func:`to_json_rows` of ``count`` rows given as one value list per key (column-major), as an
    Arrow string array: the same bytes, built a column at a time in C.

    Each attribute's values are encoded a whole column at a time (strings with nothing to escape are
    their own text, integers Arrow's digits, other numbers one ``orjson.dumps`` split at its commas)
    and joined with the names into each row's object in Arrow: 0.8 us a span of five attributes
    against 2 us for a dict and an ``orjson.dumps`` per span (8,192 rows). A column of anything else
    (mixed types, sequences, a string with something to escape), and any batch under 256 rows, takes
    :func:`to_json_rows`.
    """

    def rows() -> list[bytes]:
        return to_json_rows(keys, zip(*columns, strict=True) if keys else itertools.repeat((), count))

    if count < _COLUMNAR_MIN_ROWS or not keys or not all(type(key) is str for key in keys):
        return pa.array(rows(), pa.string())
    parts: list[pa.Array | pa.Scalar] = []
    closing = b""  # what ends the previous value: its closing quote when it was a string
    maybe_null = False
    try:
        for key, values in zip(keys, columns, strict=True):
            column = _split_column(values)
            if column is None:
                return pa.array(rows(), pa.string())
            pieces, quoted, has_null = column
            opening = b'"' if quoted else b""
            name = orjson.dumps(key)
            maybe_null = maybe_null or has_null or b"null" in name
            parts += (
                pa.scalar(closing + (b"," if parts else b"{") + name + b":" + opening, pa.binary()),
                pieces,
            )
            closing = opening
    except TypeError:  # what orjson refuses (an int beyond 64 bits, a lone surrogate): row by row
        return pa.array(rows(), pa.string())
    parts.append(pa.scalar(closing + b"}", pa.binary()))
    joined = pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.binary()))
    # to_json_bytes redoes a row holding "null" (NaN/Infinity are kept as strings). No name or value
    # holding it, no row does: a value is never next to text that could complete the word.
    redo = pc.match_substring(joined, "null") if maybe_null else None
    if redo is not None and pc.any(redo).as_py():
        encoded = joined.to_pylist()
        for row in pc.indices_nonzero(redo).to_pylist():
            encoded[row] = to_json_bytes(
                {key: values[row] for key, values in zip(keys, columns, strict=True)}
            )
        return pa.array(encoded, pa.string())
    return joined.cast(pa.string())


# The Arrow calls cost ~0.1 ms a batch whatever its size: below ~200 rows a dict per row is cheaper.
_COLUMNAR_MIN_ROWS: Final = 256
_NUMBER_TYPES: Final = frozenset({int, float, bool})


def _split_column(values: Sequence[Any]) -> tuple[pa.Array, bool, bool] | None:
    """Each value's JSON as a binary array, whether they are strings (then without their quotes) and
    whether one may hold "null"; None when no whole-column route gives each value's encoding exactly."""
    types = set(map(type, values))
    if types == {str}:
        encoded = orjson.dumps(values)
        if b"\\" in encoded:  # something escaped: a value's encoding is not its text
            return None
        return pa.array(values, pa.binary()), True, b"null" in encoded  # its UTF-8 text, quoted
    if types == {int}:
        with contextlib.suppress(OverflowError):  # beyond 64 bits signed: orjson decides below
            # An integer's JSON is its decimal digits, as Arrow writes them.
            return pa.array(values, pa.int64()).cast(pa.string()).cast(pa.binary()), False, False
    if not types <= _NUMBER_TYPES:
        return None
    # Numbers hold no comma: the column's encoding splits back into each value's.
    encoded = orjson.dumps(values)
    pieces = pc.split_pattern(pa.array([encoded[1:-1]], pa.binary()), b",").flatten()
    return (pieces, False, b"null" in encoded) if len(pieces) == len(values) else None


def _to_json(value: object) -> str:
    return to_json_bytes(value).decode()


_MISFIT: Final = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError)


def to_array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    try:
        return _fits(values, arrow_type)
    except _MISFIT:
        if pa.types.is_decimal(arrow_type):
            return pa.array([_money(value) for value in values], arrow_type)
        return pa.array([_coerce(value, arrow_type) for value in values], arrow_type)


def _fits(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    """``values`` as an array of ``arrow_type``, raising when one does not fit."""
    if pa.types.is_decimal(arrow_type):
        # Arrow's float64 -> decimal cast rounds to the nearest 12-place value, exactly what
        # Decimal(value).quantize(1e-12) gives (checked by a property test), in C.
        return pc.cast(pa.array(values, pa.float64()), arrow_type)
    return pa.array(values, arrow_type)


def to_arrays(
    columns: Sequence[Sequence[Any] | pa.Array | None], types: Sequence[pa.DataType], count: int
) -> list[pa.Array]:
    """:func:`to_array` of each column of ``count`` values (None: all NULL; an array: kept as it is).

    The columns of one type are converted together and sliced apart (value by value, the same
    conversion): each ``pa.array`` call costs ~4 us whatever its length, 0.3 us a span at batches of
    512 when made per column. When a value of the type does not fit, each column is converted alone.
    """
    arrays: list[pa.Array | None] = [values if isinstance(values, pa.Array) else None for values in columns]
    by_type: dict[pa.DataType, list[int]] = {}
    for position, arrow_type in enumerate(types):
        if arrays[position] is None:
            by_type.setdefault(arrow_type, []).append(position)
    for arrow_type, positions in by_type.items():
        together: list[Any] = []
        for position in positions:
            values = columns[position]
            together += itertools.repeat(None, count) if values is None else values
        try:
            if len(together) != count * len(positions):
                raise ValueError("a column of another length")  # from_arrays will say which
            whole = _fits(together, arrow_type)
        except (*_MISFIT, ValueError):
            for position in positions:
                values = columns[position]
                arrays[position] = (
                    pa.nulls(count, arrow_type) if values is None else to_array(values, arrow_type)
                )
        else:
            for part, position in enumerate(positions):
                arrays[position] = whole.slice(part * count, count)
    return arrays


def _money(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(value if isinstance(value, str) else float(value))  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError, OverflowError):
        return None
    if not amount.is_finite() or abs(amount) >= Decimal(int(_MONEY_LIMIT)):
        return None
    return amount.quantize(MONEY_QUANTUM)


def _coerce(value: object, arrow_type: pa.DataType) -> object:
    """Slow path: the value if it fits ``arrow_type`` (converting obvious cases), else None."""
    try:
        pa.array([value], arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        pass
    else:
        return value
    if pa.types.is_string(arrow_type):
        return str(value)
    if pa.types.is_integer(arrow_type) and isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            return None
        return number if -(2**63) <= number < 2**63 else None
    return None


_TAGS_TYPE: Final = pa.map_(pa.string(), pa.string())


def tag_map_array(names: Sequence[str], values: list[str], rows: int) -> pa.Array:
    """The ``tags`` MAP column of ``rows`` rows, each with ``names`` (in order) and ``values`` (row-major).

    Built from its flat keys, values and offsets: converting a list of (key, value) lists per row cost
    2.4 us per row of six tags, against 0.9 us this way (8,192 rows, on the 2-core build machine).
    """
    width = len(names)
    if not width:
        offsets = pa.array(itertools.repeat(0, rows + 1), pa.int32(), size=rows + 1)
        return pa.MapArray.from_arrays(offsets, pa.array([], pa.string()), pa.array([], pa.string()))
    offsets = pa.array(range(0, rows * width + 1, width), pa.int32())
    keys = pa.array(names, pa.string()).take(pa.array(list(range(width)) * rows, pa.int32()))
    return pa.MapArray.from_arrays(offsets, keys, pa.array(values, pa.string()))


def tag_value(value: object) -> str:
    return value if isinstance(value, str) else _to_json(value)
