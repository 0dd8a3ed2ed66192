"""Reports fetched column by column (Arrow) and the session report summed from its calls give exactly
the values, Python types and column types of the SQL they replace, read row by row from DuckDB."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import call, insert_calls
from otel_llm_cost.query import CostStore
from otel_llm_cost.query import sql as _sql
from otel_llm_cost.query.columns import build_all, many_values
from otel_llm_cost.query.dimensions import resolve_dimension
from otel_llm_cost.query.results import CostRow
from otel_llm_cost.storage import connect as _storage

T0 = datetime(2025, 3, 7, tzinfo=UTC)

calls_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "session_id": st.sampled_from(["s", "s", "t", None]),
            "start_time": st.integers(0, 3600).map(lambda s: T0 + timedelta(seconds=s)),
            "end_time": st.one_of(st.none(), st.integers(0, 7200).map(lambda s: T0 + timedelta(seconds=s))),
            "cost_usd": st.one_of(st.none(), st.decimals(Decimal(0), Decimal(9), places=12)),
            "cache_saved_usd": st.one_of(st.none(), st.decimals(Decimal(0), Decimal(1), places=12)),
            "request_model": st.sampled_from(["gpt-4o", "claude-x", None]),
            "response_model": st.sampled_from([None, None, "gpt-4o-2024", "claude-x"]),
            "provider": st.sampled_from(["openai", "anthropic", "Azure", None]),
            "billable": st.sampled_from([True, True, False, None]),
            "from_cache": st.sampled_from([False, True, None]),
            "cache_hit": st.sampled_from([False, True, None]),
            "input_tokens": st.one_of(st.none(), st.integers(0, 10**6)),
            "output_tokens": st.one_of(st.none(), st.integers(0, 10**4)),
            "total_tokens": st.one_of(st.none(), st.integers(0, 10**6)),
            "cache_read_tokens": st.one_of(st.none(), st.integers(0, 1000)),
            "reasoning_tokens": st.one_of(st.none(), st.integers(0, 1000)),
            "duration_ms": st.one_of(st.none(), st.integers(0, 10**5).map(float)),  # whole ms: exact sums
        }
    ),
    max_size=25,
)


@contextlib.contextmanager
def _memory_store() -> Iterator[tuple[duckdb.DuckDBPyConnection, CostStore]]:
    connection = duckdb.connect()
    _storage.ensure_schema(connection)
    connection.execute("SET TimeZone = 'UTC'")
    try:
        yield connection, CostStore(connection)
    finally:
        connection.close()


def _fetched(
    connection: duckdb.DuckDBPyConnection, query: _sql.Query
) -> tuple[list[str], list[dict[str, Any]]]:
    """Column types and rows (timestamps as UTC) of ``query``, read with ``fetchall``."""
    cursor = connection.cursor()
    cursor.execute(query.sql, list(query.params))
    names = [column[0] for column in cursor.description or []]
    types = [str(column[1]) for column in cursor.description or []]
    rows = [
        {n: v.astimezone(UTC) if isinstance(v, datetime) else v for n, v in zip(names, row, strict=True)}
        for row in cursor.fetchall()
    ]
    return types, rows


def _values(result: Any) -> dict[str, Any]:
    return {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "_source"}


def _same(actual: Any, expected: Any) -> bool:
    """Equal, of the same type, and (Decimals) with the same digits and exponent."""
    return repr(actual) == repr(expected)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=calls_strategy)
def test_session_summary_equals_the_sql_it_replaces(rows: list[dict[str, Any]]) -> None:
    with _memory_store() as (connection, store):
        # call() derives end_time from duration_ms, which may be None here: set it afterwards.
        insert_calls(connection, [{**call(**{**row, "duration_ms": 1.0}), **row} for row in rows])
        session = store.session_summary("s")

        types, [totals] = _fetched(connection, _sql.totals(session_id="s"))
        assert _same({n: getattr(session.totals, n) for n in totals}, totals)
        assert session.totals._source is not None
        assert list(session.totals._source.types) == types
        for name, breakdown in (("provider", session.by_provider), ("model", session.by_model)):
            query = _sql.cost_by(resolve_dimension(name), None, None, session_id="s")
            types, expected = _fetched(connection, query)
            assert _same([_values(row) for row in breakdown], expected)
            assert breakdown._source is not None
            assert list(breakdown._source.types) == types
        query = _sql.Query(
            f"SELECT {_sql.CALL_COLUMNS_OUT} FROM llm_calls WHERE {_sql.BILLABLE} AND session_id = 's' "
            "ORDER BY start_time, span_id"
        )
        types, expected = _fetched(connection, query)
        assert _same([_values(c) for c in session.calls], expected)
        assert session.calls._source is not None
        assert list(session.calls._source.types) == types  # the two columns read for the totals left out


def test_a_session_without_calls_reads_zero_as_the_sql_does() -> None:
    with _memory_store() as (connection, store):
        insert_calls(connection, [call(session_id="other")])
        session = store.session_summary("nobody")
        _, [totals] = _fetched(connection, _sql.totals(session_id="nobody"))
    assert _same({n: getattr(session.totals, n) for n in totals}, totals)
    assert str(session.totals.cost_usd) == "0E-12"
    assert (list(session.by_provider), list(session.by_model), list(session.calls)) == ([], [], [])


def test_session_latency_is_the_exact_sum_of_fractional_durations() -> None:
    durations = [0.1, 0.2, 0.3, 1e-3, 1234.5678]
    with _memory_store() as (connection, store):
        insert_calls(connection, [call(session_id="s", duration_ms=d) for d in durations])
        latency = store.session_summary("s").totals.latency_ms
    assert latency == sum(Decimal(d) for d in durations).__float__()  # correctly rounded
    assert latency == pytest.approx(sum(durations), rel=1e-15)


def test_cost_by_fetched_as_arrow_equals_fetchall_token_sums_beyond_int64_included() -> None:
    rows = [
        call(user_id="big", input_tokens=2**62, output_tokens=2**62, total_tokens=2**62, cost_usd="1.5"),
        call(user_id="big", input_tokens=2**62, output_tokens=2**62, total_tokens=2**62, cost_usd=None),
        call(user_id=None, cost_usd="0.000000000001", tags={"team": "x"}),
        call(user_id="free", cost_usd=None, from_cache=True),
        call(user_id="lost", cost_usd=None, tags={"team": "y"}),
        call(user_id="lost", cost_usd=None, billable=False),
    ]
    with _memory_store() as (connection, store):
        insert_calls(connection, rows)
        for dimension in ("user", "tag:team", "session", "org", "model", "feature"):
            resolved = resolve_dimension(dimension)
            assert many_values(resolved) == (dimension not in {"model", "feature"})
            answer = store.cost_by(dimension)
            types, expected = _fetched(connection, _sql.cost_by(resolved, None, None))
            assert _same([_values(row) for row in answer], expected)
            assert answer._source is not None
            assert list(answer._source.types) == types
        big = store.cost_by("user")[0]
    assert (big.key, big.input_tokens, big.total_tokens) == ("big", 2**63, 2**63)
    assert big.total_cost_usd == Decimal("1.5")


@settings(max_examples=40, deadline=None)
@given(
    costs=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", None]),
            st.one_of(st.none(), st.decimals(Decimal("-999999"), Decimal("999999"), places=12)),
        ),
        max_size=12,
    )
)
def test_cost_by_money_read_through_arrow_keeps_every_digit_and_exponent(
    costs: list[tuple[str | None, Decimal | None]],
) -> None:
    with _memory_store() as (connection, store):
        insert_calls(connection, [call(user_id=user, cost_usd=cost) for user, cost in costs])
        answer = store.cost_by("user")
        _, expected = _fetched(connection, _sql.cost_by(resolve_dimension("user"), None, None))
    assert _same([_values(row) for row in answer], expected)


@dataclasses.dataclass(frozen=True)
class _Unslotted:
    a: int
    _source: object = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Checked:
    a: int
    _source: object = None

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError("negative")


def test_build_all_makes_the_objects_the_constructor_makes() -> None:
    columns: list[list[Any]] = [["x", None], [Decimal("1.5"), None], [3, 0], [1, 0], [0, 0]]
    columns += [[1, 2], [3, 4], [0, 0], [0, 0], [0, 0], ["openai", None]]
    built = build_all(CostRow, columns, "source")
    expected = [CostRow(*values, _source="source") for values in zip(*columns, strict=True)]  # type: ignore[arg-type]
    assert built == expected
    assert [hash(b) for b in built] == [hash(e) for e in expected]
    assert [b._source for b in built] == ["source", "source"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        built[0].key = "y"  # type: ignore[misc]
    assert build_all(_Unslotted, [[1, 2]], None) == [_Unslotted(1), _Unslotted(2)]
    with pytest.raises(ValueError, match="negative"):
        build_all(_Checked, [[1, -1]], None)  # __post_init__ still runs
    with pytest.raises(ValueError, match="columns"):
        build_all(CostRow, columns[:3], None)
    assert build_all(CostRow, [[] for _ in columns], None) == []
