"""The hourly rollup: every report read from it equals the same report over the raw rows, whatever was
inserted, in any order, rolled up in any number of steps, deleted or repriced since."""

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
from otel_llm_cost.query.dimensions import resolve_dimension
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import rollup as _rollup
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

T0 = datetime(2025, 3, 7, tzinfo=UTC)  # the US DST change (9 March) falls inside
SPAN = timedelta(days=20)  # whole weeks inside: users are summed per week too
WINDOW_EDGES = st.one_of(
    st.none(),
    st.integers(0, int(SPAN.total_seconds())).map(lambda s: T0 + timedelta(seconds=s)),
    st.integers(0, 20 * 24).map(lambda h: T0 + timedelta(hours=h)),  # whole hours and days
)

rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "start_time": st.integers(0, int(SPAN.total_seconds()) - 1).map(
                lambda s: T0 + timedelta(seconds=s)
            ),
            "cost_usd": st.one_of(st.none(), st.decimals(Decimal(0), Decimal(3), places=6)),
            "request_model": st.sampled_from(["gpt-4o", "claude-x", "gemini"]),
            "provider": st.sampled_from(["openai", "anthropic", None]),
            "feature": st.sampled_from(["a", "b", None]),
            "user_id": st.sampled_from(["h:1", "h:2", None]),
            "billable": st.sampled_from([True, True, False, None]),
            "from_cache": st.booleans(),
            "cache_hit": st.booleans(),
            "input_tokens": st.integers(0, 5000),
            "cache_read_tokens": st.integers(0, 100),
            "duration_ms": st.integers(1, 5000).map(float),  # whole ms: DOUBLE sums exact in any order
            "tags": st.sampled_from([{}, {"team": "x"}, {"team": "y", "role": "r"}]),
            "attributes": st.sampled_from(["{}", '{"prompt.could_use_haiku": true}']),
        }
    ),
    max_size=30,
)


def _reports(store: CostStore, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "summary": store.summary(start, end),
        "savings": store.savings(start, end),
        **{f"by {d}": list(store.cost_by(d, start, end)) for d in ("model", "provider", "user", "tag:team")},
        "breakdown": list(store.breakdown("role", start, end, limit=2)),
    }
    if start is not None and end is not None:
        for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
            answers[f"daily {zone}"] = list(store.daily_cost(start, end, zone))
        answers["series"] = list(store.spend_series("model", start, end, "America/New_York", top=1))
        answers["series tag"] = list(store.spend_series("tag:team", start, end, top=1))
        answers["movers"] = list(store.movers("feature", start, end, limit=3))
    return answers


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.tuples(rows_strategy, st.integers(0, 12)), min_size=1, max_size=4),
    start=WINDOW_EDGES,
    end=WINDOW_EDGES,
)
def test_every_report_from_the_rollup_equals_the_raw_answer(
    batches: list[tuple[list[dict[str, Any]], int]], start: datetime | None, end: datetime | None
) -> None:
    if start is not None and end is not None and not start < end:
        start, end = (end, start) if end < start else (start, None)
    with twin_stores() as (rolled, rolled_store, raw, raw_store):
        for rows, rolled_up in batches:
            insert_second_long_calls(rolled, rows)
            insert_second_long_calls(raw, rows)
            _rollup.catch_up(rolled, max_rows=rolled_up)  # partly: some rows stay above the watermark
        assert _reports(rolled_store, start, end) == _reports(raw_store, start, end)


def _some_calls(n: int = 40) -> list[dict[str, Any]]:
    return [
        {
            "start_time": T0 + timedelta(minutes=797 * i),
            "user_id": ("h:1", "h:2", None)[i % 3],
            "cost_usd": None if i % 7 == 0 else Decimal(i) / 100,
            "request_model": ("gpt-4o", "acme-coder-2-ft")[i % 2],
            "feature": ("a", "b", None)[i % 3],
            "tags": ({}, {"team": "x"})[i % 2],
        }
        for i in range(n)
    ]


def test_reports_read_the_rollup_once_it_has_caught_up() -> None:
    with twin_stores() as (rolled, rolled_store, raw, raw_store):
        insert_second_long_calls(rolled, _some_calls())
        insert_second_long_calls(raw, _some_calls())
        assert _rollup.catch_up(rolled, max_rows=None) == 40
        assert _rollup.pending_rows(rolled) == 0
        summary = rolled_store.summary(T0, T0 + SPAN)
        assert _rollup.ROLLUP_TABLE in summary._source.query.sql  # type: ignore[union-attr]
        assert summary == raw_store.summary(T0, T0 + SPAN)
        assert _rollup.ROLLUP_TABLE not in raw_store.summary(T0, T0 + SPAN)._source.query.sql  # type: ignore[union-attr]


def test_a_delete_under_the_watermark_makes_reports_read_raw_rows_until_the_writer_rolls_up_again() -> None:
    with twin_stores() as (rolled, rolled_store, raw, raw_store):
        for connection in (rolled, raw):
            insert_second_long_calls(connection, _some_calls())
        _rollup.catch_up(rolled, max_rows=None)
        for connection in (rolled, raw):
            connection.execute("DELETE FROM llm_calls WHERE feature = 'a'")
        assert _rollup.watermark(rolled) is None
        assert _reports(rolled_store, T0, T0 + SPAN) == _reports(raw_store, T0, T0 + SPAN)
        _rollup.catch_up(rolled, max_rows=None)  # starts again from the first row
        assert _rollup.watermark(rolled)
        assert _reports(rolled_store, T0, T0 + SPAN) == _reports(raw_store, T0, T0 + SPAN)


def test_reprice_keeps_the_rollup_exact(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."acme-coder-2-ft"]\ninput = 0.5\noutput = 1.5\n')
    rows = [{**row, "provider": None} for row in _some_calls()]
    paths = (tmp_path / "rolled.duckdb", tmp_path / "raw.duckdb")
    for path in paths:
        with contextlib.closing(_storage.connect(path)) as connection:
            insert_second_long_calls(connection, rows)
    with contextlib.closing(_storage.connect(paths[0])) as connection:
        _rollup.catch_up(connection, max_rows=None)
    answers = []
    for path in paths:
        with CostStore(path, read_only=False) as store:
            assert store.reprice(pricebook=PriceBook.from_file(prices)).rows_changed > 0
            answers.append(_reports(store, T0, T0 + SPAN))
    assert answers[0] == answers[1]
    with CostStore(paths[0]) as store:
        assert _rollup.ROLLUP_TABLE in store.summary(T0, T0 + SPAN)._source.query.sql  # type: ignore[union-attr]


def test_the_exporting_writer_rolls_up_when_idle(tmp_path: Path) -> None:
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
                    f"{sc.COST_PREFIX}feature": "search",
                }
            )
    exporter.force_flush()

    def released() -> duckdb.DuckDBPyConnection | None:
        # Plain duckdb, not our connect(): a reader asking for the file would make the writer release it
        # at once, without rolling up.
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.Error:
            return None

    try:
        with contextlib.closing(wait_until(released, what="the writer releasing the file")) as connection:
            assert _rollup.pending_rows(connection) == 0
            assert _rollup.watermark(connection)
    finally:
        provider.shutdown()
    with CostStore(path) as store:
        by_feature = store.cost_by("feature")
        assert _rollup.ROLLUP_TABLE in by_feature._source.query.sql  # type: ignore[union-attr]
        assert [(r.key, r.call_count) for r in by_feature] == [("search", 20)]


def test_a_file_from_before_the_rollup_is_read_raw_and_gets_it_on_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with contextlib.closing(_storage.connect(path)) as connection:
        insert_second_long_calls(connection, _some_calls())
        for table in (_rollup.ROLLUP_TABLE, _rollup.ROLLUP_STATE_TABLE):
            connection.execute(f"DROP TABLE {table}")
    with CostStore(path) as store:
        assert store.summary().call_count == 40
    with contextlib.closing(_storage.connect(path)) as connection:
        assert _rollup.has_rollup(connection)
        assert _rollup.catch_up(connection, max_rows=None) == 40


@pytest.mark.parametrize("name", [n for n in _rollup.ROLLUP_DIMENSIONS if n])
def test_rolled_up_dimensions_are_grouped_by_the_reports_own_expressions(name: str) -> None:
    assert _rollup.ROLLUP_DIMENSIONS[name][0] == resolve_dimension(name).expression


def test_the_rollup_counts_the_same_downgradable_calls_as_the_savings_report() -> None:
    rows = [
        {"start_time": T0, "attributes": '{"prompt.could_use_haiku": true}'},
        {"start_time": T0, "attributes": '{"model.recommendation": "gpt-4o-mini"}'},
        {"start_time": T0, "attributes": '{"model.recommendation": "keep_current"}'},
        {"start_time": T0, "attributes": "{}"},
    ]
    with twin_stores() as (rolled, rolled_store, raw, raw_store):
        insert_second_long_calls(rolled, rows)
        insert_second_long_calls(raw, rows)
        _rollup.catch_up(rolled, max_rows=None)
        assert rolled_store.savings().downgradable_calls == raw_store.savings().downgradable_calls == 2
