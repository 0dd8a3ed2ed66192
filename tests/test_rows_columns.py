"""Property: the column-at-a-time builders of the row tables give exactly what the row-at-a-time ones give.

``json_object_column`` encodes the JSON column a whole attribute at a time and joins the rows in Arrow;
``build_rows`` gathers and checks whole columns. Neither may change one stored byte: each is compared
with a plain row-by-row reference on odd input (NaN and infinities, integers beyond 64 bits, strings
holding quotes, commas, backslashes and "null", mixed types in one column, several attribute shapes
and key orders in one batch).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_llm_cost.storage.rows import build_rows
from otel_llm_cost.storage.values import json_object_column, to_array, to_arrays, to_json_bytes

_TRICKY_TEXT = st.sampled_from(
    ['a","b', 'x",', '",', "q\\", "null", "", "é", "\u2028", 'say "hi"', ",", "\x00"]
)
_TEXT = st.one_of(_TRICKY_TEXT, st.text(max_size=8))
_NUMBER = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
_OTHER = st.one_of(
    st.none(),
    st.tuples(_NUMBER, _TEXT),
    st.binary(max_size=4),
)
# A column of one kind (what the column-at-a-time path takes) or of any mix (what it hands back).
_COLUMN_KIND = st.sampled_from([_TEXT, _NUMBER, st.one_of(_TEXT, _NUMBER, _OTHER)])
_KEYS = st.lists(
    st.one_of(
        st.sampled_from(["gen_ai.request.max_tokens", "server.address", "null.key", 'k"ey', "k\\ey"]), _TEXT
    ),
    max_size=5,
    unique=True,
)


@st.composite
def _columns(draw: st.DrawFn) -> tuple[list[str], list[list[Any]], int]:
    """Up to 12 drawn rows, half the time repeated past 256 rows (smaller batches are encoded row by row)."""
    keys = draw(_KEYS)
    count = draw(st.integers(min_value=0, max_value=12))
    columns = [draw(st.lists(draw(_COLUMN_KIND), min_size=count, max_size=count)) for _ in keys]
    if count and draw(st.booleans()):
        times = -(-260 // count)
        columns, count = [values * times for values in columns], count * times
    return keys, columns, count


@given(_columns())
@example((["t", "null.key"], [[float("nan"), 1.5, True, 2**63] * 65, ["a", "b"] * 130], 260))
@example((["n", "s"], [[0.1, float("inf"), -7] * 90, ["annulled", "", "é,"] * 90], 270))
@settings(max_examples=400, deadline=None)
def test_json_column_equals_one_encoding_per_row(case: tuple[list[str], list[list[Any]], int]) -> None:
    keys, columns, count = case
    rows = [{key: values[row] for key, values in zip(keys, columns, strict=True)} for row in range(count)]
    expected = pa.array([to_json_bytes(row) for row in rows], pa.string())
    assert json_object_column(keys, columns, count).equals(expected)


def test_json_column_splits_strings_around_escaped_quotes() -> None:
    # An escaped quote followed by a comma looks like a delimiter: such a column is encoded row by row.
    values = ['x",', "y", '",', "q\\"]
    expected = [to_json_bytes({"k": value}).decode() for value in values]
    assert json_object_column(["k"], [values], len(values)).to_pylist() == expected


def _span(index: int, attributes: dict[str, Any]) -> ReadableSpan:
    start = 1_736_942_400_000_000_000 + index * 1_000
    return ReadableSpan(
        name=f"chat {index}",
        context=SpanContext(index + 1, index + 1, False, TraceFlags(1)),
        parent=SpanContext(7, index + 100, False) if index % 2 else None,
        resource=Resource.create({"service.name": f"svc-{index % 3}"}),
        attributes=attributes,
        kind=SpanKind.CLIENT,
        status=Status(StatusCode.ERROR, "boom") if index % 5 == 0 else Status(StatusCode.UNSET),
        start_time=start,
        end_time=start + 1_000_000,
    )


_ATTRIBUTE_NAMES = st.sampled_from(
    [
        "gen_ai.request.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "llm.tokens.input",
        "llm.tokens.output",
        "llm.tokens.total",
        "llm.cost_usd",
        "llm.cost.input_usd",
        "cost.feature",
        "cost.user_id",
        "cost.team",
        "user.id",
        "gen_ai.input.messages",
        "server.address",
        "custom.flag",
    ]
)
_VALUE = st.one_of(_TEXT, _NUMBER, _OTHER)


@st.composite
def _batch(draw: st.DrawFn) -> list[ReadableSpan]:
    """Spans sharing a few attribute shapes (as instrumentations do), some with odd values; half the
    time repeated (with their own ids) past 256 spans, where whole-column encodings take over."""
    shapes = draw(st.lists(st.lists(_ATTRIBUTE_NAMES, unique=True, max_size=8), min_size=1, max_size=3))
    drawn = []
    for index in range(draw(st.integers(min_value=1, max_value=20))):
        names = draw(st.sampled_from(shapes))
        attributes: dict[str, Any] = {
            "llm.cost.status": draw(st.sampled_from(["priced", "unpriced", "free"]))
        }
        for name in names:
            attributes[name] = draw(_VALUE) if draw(st.integers(0, 3)) == 0 else _plain(name, index)
        drawn.append(attributes)
    count = 300 if draw(st.booleans()) else len(drawn)
    return [_span(index, drawn[index % len(drawn)]) for index in range(count)]


def _plain(name: str, index: int) -> Any:
    """A realistic value for ``name``: most spans of a batch carry these."""
    if "tokens" in name:
        return 100 + index
    if "usd" in name:
        return 0.001 * index
    return f"value-{index % 4}"


def _tables(spans: list[ReadableSpan], *, capture_content: bool, store_all_spans: bool) -> list[pa.Table]:
    built = build_rows(
        spans,
        enrich=None,
        capture_content=capture_content,
        store_all_spans=store_all_spans,
        hash_user_id=lambda raw: "h:" + format(abs(hash(raw)) % 2**64, "032x"),
    )
    return [built.calls] + ([built.spans] if built.spans is not None else [])


def _assert_rows_match_parts(batch: list[ReadableSpan], part: int, **options: bool) -> None:
    """``batch`` converted whole gives the rows of its parts of ``part`` spans converted one by one."""
    together = _tables(batch, **options)
    parts = [_tables(batch[start : start + part], **options) for start in range(0, len(batch), part)]
    for position, table in enumerate(together):
        expected = pa.concat_tables([tables[position] for tables in parts])
        assert table.schema == expected.schema
        assert table.equals(expected)


@pytest.mark.slow
@pytest.mark.parametrize("store_all_spans", [False, True])
@given(batch=_batch(), capture_content=st.booleans())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_batch_stores_what_its_parts_store(
    batch: list[ReadableSpan], capture_content: bool, store_all_spans: bool
) -> None:
    """Whole-column work (gathers, checks, encodings) gives each row what converting its span alone
    (or in a part of 100, encoded row by row) gives."""
    part = 1 if len(batch) <= 20 else 100
    _assert_rows_match_parts(batch, part, capture_content=capture_content, store_all_spans=store_all_spans)


@pytest.mark.slow
def test_a_batch_over_a_block_stores_what_its_parts_store() -> None:
    """Past 2,048 calls a batch is converted a block at a time: the same rows as in parts of 100."""
    shapes = [
        {
            "llm.cost.status": "priced",
            "gen_ai.request.model": "m",
            "llm.tokens.input": 5,
            "server.address": 'a",',
        },
        {"llm.cost.status": "unpriced", "custom.flag": float("nan"), "cost.team": "t", "user.id": "alice"},
        {
            "llm.cost.status": "priced",
            "llm.cost_usd": 0.5,
            "gen_ai.usage.input_tokens": 2**70,
            "cost.user_id": "u",
        },
    ]
    batch = [_span(index, shapes[(index // 700) % len(shapes)]) for index in range(5000)]
    _assert_rows_match_parts(batch, 100, capture_content=False, store_all_spans=True)


_ARROW_TYPES = st.sampled_from(
    [pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.decimal128(18, 12), pa.timestamp("ns", tz="UTC")]
)
_ARRAY_VALUE = st.one_of(
    _VALUE,
    st.sampled_from([1_700_000_000_000_000_000, 10**6, 0.5, "12", "\ud800", 2**63, -(2**63)]),
)


def _converted(convert: Any) -> list[tuple[pa.DataType, list[Any]]] | type[BaseException]:
    """What ``convert()`` gives (types and values, timestamps as integers), or the type of its error."""
    try:
        arrays = convert()
    except Exception as exc:  # the row builder raises too: compared as such
        return type(exc)
    return [
        (array.type, (array.cast(pa.int64()) if pa.types.is_timestamp(array.type) else array).to_pylist())
        for array in arrays
    ]


@given(
    columns=st.lists(
        st.tuples(_ARROW_TYPES, st.one_of(st.none(), st.lists(_ARRAY_VALUE, min_size=3, max_size=3))),
        min_size=1,
        max_size=6,
    )
)
@settings(max_examples=300, deadline=None)
def test_columns_converted_together_equal_each_converted_alone(
    columns: list[tuple[pa.DataType, list[Any] | None]],
) -> None:
    """``to_arrays`` converts the columns of one type in one call and slices them apart: each array is
    what ``to_array`` gives its column alone (a value that does not fit one column nulls it there
    only), and a column ``to_array`` cannot convert makes both raise."""
    types = [arrow_type for arrow_type, _ in columns]
    alone = _converted(
        lambda: [pa.nulls(3, t) if values is None else to_array(values, t) for t, values in columns]
    )
    together = _converted(lambda: to_arrays([values for _, values in columns], types, 3))
    if isinstance(alone, type):
        assert isinstance(together, type)
    else:
        assert repr(together) == repr(alone)  # repr: NaN equals NaN, 1 differs from True
