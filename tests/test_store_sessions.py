"""The session table: the breakdown by session read from it equals the same report over the raw rows,
whatever was inserted, caught up in any number of steps, deleted or repriced since, for any window."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from conftest import insert_second_long_calls, twin_stores
from helpers import wait_until
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.query import CostStore
from otel_llm_cost.query.results import CostRow
from otel_llm_cost.query.tabular import Rows
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import rollup as _rollup
from otel_llm_cost.storage import sessions as _sessions
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

T0 = datetime(2025, 3, 7, tzinfo=UTC)
SPAN = timedelta(days=6)
SESSIONS = ["s1", "s2", "s3", "s4", "s5", "s6", None]
# Session -> (its first possible start in hours after T0, how long its calls go on in seconds): minutes,
# hours, days and the whole span, so that windows hold some sessions whole and cut others.
SESSION_TIMES = {
    "s1": (10, 600),
    "s2": (30, 900),
    "s3": (50, 3 * 3600),
    "s4": (80, 20 * 3600),
    "s5": (20, 30 * 3600),
    "s6": (0, int(SPAN.total_seconds()) - 1),
    None: (0, int(SPAN.total_seconds()) - 1),
}
WINDOW_EDGES = st.one_of(
    st.none(),
    st.integers(0, int(SPAN.total_seconds())).map(lambda s: T0 + timedelta(seconds=s)),
    st.integers(0, 6 * 24).map(lambda h: T0 + timedelta(hours=h)),
    # Near where sessions begin, so that edges fall inside them and beside them.
    st.tuples(st.sampled_from([10, 20, 30, 50, 80]), st.integers(-1800, 6 * 3600)).map(
        lambda p: T0 + timedelta(hours=p[0], seconds=p[1])
    ),
)


@st.composite
def _row(draw: st.DrawFn) -> dict[str, Any]:
    session = draw(st.sampled_from(SESSIONS))
    first, length = SESSION_TIMES[session]
    offset = min(first * 3600 + draw(st.integers(0, length)), int(SPAN.total_seconds()) - 1)
    return {
        "session_id": session,
        "start_time": T0 + timedelta(seconds=offset),
        "cost_usd": draw(st.one_of(st.none(), st.decimals(Decimal(0), Decimal(3), places=6))),
        "feature": draw(st.sampled_from(["a", "b", None])),
        "billable": draw(st.sampled_from([True, True, False, None])),
        "from_cache": draw(st.booleans()),
        "input_tokens": draw(st.integers(0, 5000)),
        "output_tokens": draw(st.integers(0, 500)),
        "cache_read_tokens": draw(st.integers(0, 100)),
        "reasoning_tokens": draw(st.integers(0, 50)),
    }


# A batch: rows to insert, then how many rows to catch up (0: none), then whether to delete some rows.
batches_strategy = st.lists(
    st.tuples(st.lists(_row(), min_size=3, max_size=25), st.integers(0, 30), st.booleans()),
    min_size=1,
    max_size=4,
)


def _from_table(rows: Rows[CostRow]) -> bool:
    return _sessions.SESSIONS_TABLE in rows._source.query.sql  # type: ignore[union-attr]


def _breakdowns(
    store: CostStore, start: datetime | None, end: datetime | None
) -> dict[str, tuple[list[CostRow], object]]:
    answers = {}
    for limit in (None, 1, 3):
        rows = store.breakdown("session", start, end, limit=limit)
        answers[f"limit {limit}"] = (list(rows), rows.arrow().schema if len(rows) else None)
    return answers


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches_strategy, data=st.data())
def test_the_breakdown_by_session_from_the_table_equals_the_raw_answer(
    batches: list[tuple[list[dict[str, Any]], int, bool]], data: st.DataObject
) -> None:
    # Edges on or beside the calls' own start times too: inside sessions, at their first or last call.
    times = [row["start_time"] for rows, _, _ in batches for row in rows]
    beside = st.sampled_from(times or [T0]).flatmap(
        lambda t: st.integers(-1, 1).map(lambda d: t + timedelta(microseconds=d))
    )
    start, end = data.draw(st.one_of(WINDOW_EDGES, beside)), data.draw(st.one_of(WINDOW_EDGES, beside))
    if start is not None and end is not None and not start < end:
        start, end = (end, start) if end < start else (start, None)
    with twin_stores() as (summed, summed_store, raw, raw_store):
        for rows, caught_up, delete in batches:
            for connection in (summed, raw):
                insert_second_long_calls(connection, rows)
                if delete:  # under the watermark or above it, as it falls
                    connection.execute("DELETE FROM llm_calls WHERE feature = 'a' AND input_tokens % 2 = 0")
            _sessions.catch_up(summed, max_rows=caught_up)  # partly: some rows stay above the watermark
            assert _breakdowns(summed_store, start, end) == _breakdowns(raw_store, start, end)
        mark = _sessions.watermark(summed)
        assert _from_table(summed_store.breakdown("session", start, end)) == bool(mark)
        assert not _from_table(raw_store.breakdown("session", start, end))


@pytest.mark.slow
def test_every_window_over_sessions_cut_at_either_edge_or_both_equals_the_raw_answer() -> None:
    def at(session: str | None, hour: float, cost: str | None = "1") -> dict[str, Any]:
        start = T0 + timedelta(hours=hour)
        return {
            "session_id": session,
            "start_time": start,
            "cost_usd": None if cost is None else Decimal(cost),
        }

    rows = [
        *(at("short", h, "5") for h in (10, 10.1, 10.2)),
        *(at("day", h) for h in (8, 20, 31)),  # goes on over the short one and the next
        *(at("week", h, "0.5") for h in (1, 60, 140)),  # spans every window below
        *(at("late", h, "3") for h in (30, 30.5)),
        at("unpriced", 15, None),
        *(at(None, h, "2") for h in (9, 25, 50)),
    ]
    more = [at("short", 10.3, "0.25"), at("late", 45), at("new", 12, "9"), at(None, 11)]
    edges = sorted({r["start_time"] + timedelta(microseconds=d) for r in rows + more for d in (-1, 0, 1)})
    windows = [(None, None)] + [
        (a, b) for a in (None, *edges[::3]) for b in (*edges[1::3], None) if not b or not a or a < b
    ]
    with twin_stores() as (summed, summed_store, raw, raw_store):
        for connection in (summed, raw):
            insert_second_long_calls(connection, rows)
        _sessions.catch_up(summed, max_rows=None)
        for connection in (summed, raw):
            insert_second_long_calls(connection, more)  # above the watermark
        for start, end in windows:
            assert _breakdowns(summed_store, start, end) == _breakdowns(raw_store, start, end), (start, end)
        assert _from_table(summed_store.breakdown("session", edges[3], edges[-3]))


def _some_calls(n: int = 40) -> list[dict[str, Any]]:
    return [
        {
            "start_time": T0 + timedelta(minutes=97 * i),
            "session_id": ("s1", "s2", "s3", None)[i % 4],
            "cost_usd": None if i % 7 == 0 else Decimal(i) / 100,
            "request_model": ("gpt-4o", "acme-coder-2-ft")[i % 2],
            "provider": None,
            "feature": ("a", "b", None)[i % 3],
        }
        for i in range(n)
    ]


WINDOWS = [(None, None), (T0 + timedelta(hours=5), T0 + timedelta(hours=40)), (T0 + timedelta(days=1), None)]


def test_the_page_reads_whole_sessions_from_the_table_once_it_has_caught_up() -> None:
    with twin_stores() as (summed, summed_store, raw, raw_store):
        for connection in (summed, raw):
            insert_second_long_calls(connection, _some_calls())
        assert not _from_table(summed_store.breakdown("session"))  # nothing covered yet: raw rows
        assert _sessions.catch_up(summed, max_rows=None) == 40
        assert _sessions.pending_rows(summed) == 0
        for start, end in WINDOWS:
            rows = summed_store.breakdown("session", start, end, limit=2)
            assert _from_table(rows)
            assert list(rows) == list(raw_store.breakdown("session", start, end, limit=2))
        # Filters other than the window read raw rows.
        filtered = summed_store.breakdown("session", filters={"feature": "a"})
        assert not _from_table(filtered)
        assert list(filtered) == list(raw_store.breakdown("session", filters={"feature": "a"}))


def test_a_delete_under_the_watermark_makes_the_page_read_raw_rows_until_the_writer_sums_again() -> None:
    with twin_stores() as (summed, summed_store, raw, raw_store):
        for connection in (summed, raw):
            insert_second_long_calls(connection, _some_calls())
        _sessions.catch_up(summed, max_rows=None)
        for connection in (summed, raw):
            connection.execute("DELETE FROM llm_calls WHERE feature = 'a'")
        assert _sessions.watermark(summed) is None
        assert not _from_table(summed_store.breakdown("session"))
        assert _breakdowns(summed_store, None, None) == _breakdowns(raw_store, None, None)
        _sessions.catch_up(summed, max_rows=None)  # starts again from the first row
        assert _from_table(summed_store.breakdown("session"))
        for start, end in WINDOWS:
            assert _breakdowns(summed_store, start, end) == _breakdowns(raw_store, start, end)


@pytest.mark.slow
def test_a_table_far_behind_its_file_is_left_for_raw_rows() -> None:
    with twin_stores() as (summed, summed_store, raw, raw_store):
        for connection in (summed, raw):
            insert_second_long_calls(connection, _some_calls(4))
        _sessions.catch_up(summed, max_rows=None)
        for connection in (summed, raw):  # a new session on each of 65,537 rows above the watermark
            connection.execute(
                "INSERT INTO llm_calls SELECT c.* REPLACE ('n' || i AS session_id, 'x' || i AS span_id) "
                "FROM (SELECT * FROM llm_calls LIMIT 1) c, range(65537) AS t(i)"
            )
        rows = summed_store.breakdown("session", limit=3)
        assert not _from_table(rows)
        assert list(rows) == list(raw_store.breakdown("session", limit=3))
        _sessions.catch_up(summed, max_rows=None)
        assert _from_table(summed_store.breakdown("session", limit=3))


def test_reprice_keeps_the_session_table_exact(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."acme-coder-2-ft"]\ninput = 0.5\noutput = 1.5\n')
    paths = (tmp_path / "summed.duckdb", tmp_path / "raw.duckdb")
    for path in paths:
        with contextlib.closing(_storage.connect(path)) as connection:
            insert_second_long_calls(connection, _some_calls())
    with contextlib.closing(_storage.connect(paths[0])) as connection:
        _sessions.catch_up(connection, max_rows=30)  # ten rows above the watermark
    answers = []
    for path in paths:
        with CostStore(path, read_only=False) as store:
            before = list(store.breakdown("session"))
            assert store.reprice(pricebook=PriceBook.from_file(prices)).rows_changed > 0
            assert list(store.breakdown("session")) != before
            answers.append([_breakdowns(store, start, end) for start, end in WINDOWS])
    assert answers[0] == answers[1]
    with CostStore(paths[0]) as store:
        assert _from_table(store.breakdown("session"))


def test_a_file_from_before_the_session_table_gets_it_and_a_table_of_another_layout_is_built_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.duckdb"
    with contextlib.closing(_storage.connect(path)) as connection:
        insert_second_long_calls(connection, _some_calls())
        _rollup.catch_up(connection, max_rows=None)
        for table in (_sessions.SESSIONS_TABLE, _sessions.SESSIONS_STATE_TABLE):
            connection.execute(f"DROP TABLE {table}")
    with CostStore(path) as store:  # read-only: the file keeps its tables, the page reads raw rows
        rows = store.breakdown("session")
        assert not _from_table(rows)
        assert sum(r.call_count for r in rows) == 40
    with contextlib.closing(_storage.connect(path)) as connection:
        assert _sessions.catch_up(connection, max_rows=None) == 40
        assert _rollup.pending_rows(connection) == 0  # the rollup was not built again
        connection.execute(f"UPDATE {_sessions.SESSIONS_STATE_TABLE} SET layout = layout + 1")
    with CostStore(path) as store:
        assert not _from_table(store.breakdown("session"))
    with contextlib.closing(_storage.connect(path)) as connection:
        assert _sessions.watermark(connection) is None
        assert _sessions.catch_up(connection, max_rows=None) == 40
        assert _sessions.watermark(connection)
    with CostStore(path) as store:
        rows = store.breakdown("session")
        assert _from_table(rows)
        assert sum(r.call_count for r in rows) == 40


def test_the_exporting_writer_keeps_the_session_table_when_idle(tmp_path: Path) -> None:
    path = tmp_path / "app.duckdb"
    exporter = DuckDBSpanExporter(path, hold_idle_s=0.05)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for i in range(20):
        with tracer.start_as_current_span("chat") as span:
            span.set_attributes(
                {
                    sc.GEN_AI_OPERATION_NAME: "chat",
                    sc.GEN_AI_PROVIDER_NAME: "openai",
                    sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                    sc.LLM_TOKENS_INPUT: 100 + i,
                    sc.LLM_TOKENS_OUTPUT: 10,
                    sc.LLM_COST_USD: 0.001,
                    f"{sc.COST_PREFIX}session_id": f"chat-{i % 3}",
                }
            )
    exporter.force_flush()

    def released() -> duckdb.DuckDBPyConnection | None:
        # Plain duckdb, not our connect(): a reader asking for the file would make the writer release it
        # at once, without catching up.
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.Error:
            return None

    try:
        with contextlib.closing(wait_until(released, what="the writer releasing the file")) as connection:
            assert _sessions.pending_rows(connection) == 0
            assert _sessions.watermark(connection)
    finally:
        provider.shutdown()
    with CostStore(path) as store:
        rows = store.breakdown("session")
        assert _from_table(rows)
        assert sorted((r.key, r.call_count) for r in rows) == [("chat-0", 7), ("chat-1", 7), ("chat-2", 6)]
        assert list(rows) == list(store.cost_by("session"))  # raw rows


def test_calls_without_a_session_above_the_watermark_are_counted() -> None:
    # Hypothesis found it on duckdb 1.5: with only session-less rows above the watermark, the table's
    # plan saw no pending session and left those rows out.
    at = datetime(2025, 3, 7, 10, tzinfo=UTC)
    rows = [{"session_id": "s1", "start_time": at, "cost_usd": None}] * 4
    rows.append({"session_id": None, "start_time": at - timedelta(hours=10), "cost_usd": None})
    with twin_stores() as (summed, summed_store, raw, raw_store):
        for connection in (summed, raw):
            insert_second_long_calls(connection, rows)
        assert _sessions.catch_up(summed, max_rows=4) == 4
        assert _from_table(summed_store.breakdown("session", None, None))
        assert _breakdowns(summed_store, None, None) == _breakdowns(raw_store, None, None)
        assert [row.key for row in summed_store.breakdown("session", None, None)] == ["s1", None]
