"""The query API the dashboard reads through: filtered breakdowns, spend series, movers, one call, the
calls of a filter, and cancelling a running query. Checked against the established reports."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from otel_llm_cost.exceptions import StorageError, UnknownDimensionError
from otel_llm_cost.query.store import CostStore
from ui_helpers import write_demo_file

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 16, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_file(tmp_path_factory.mktemp("ui-query") / "demo.duckdb")


@pytest.fixture
def store(demo: Path) -> CostStore:
    with CostStore(demo) as opened:
        yield opened


def test_breakdown_without_filters_is_cost_by(store: CostStore) -> None:
    for dimension in ("model", "feature", "user", "tag:role"):
        assert list(store.breakdown(dimension, START, END)) == list(store.cost_by(dimension, START, END))


def test_breakdown_filters_combine_as_and(store: CostStore) -> None:
    model = store.cost_by("model", START, END)[0].key
    feature = store.cost_by("feature", START, END)[0].key
    rows = store.breakdown("org", START, END, {"model": model, "feature": feature})
    expected = store.sql(
        "SELECT org_id AS key, sum(cost_usd) AS cost, count(*) AS calls FROM llm_calls "
        "WHERE billable IS DISTINCT FROM false AND start_time >= ? AND start_time < ? "
        "AND COALESCE(response_model, request_model) = ? AND feature = ? GROUP BY 1",
        [START, END, model, feature],
    )
    assert {r.key: (r.total_cost_usd, r.call_count) for r in rows} == {
        e["key"]: (e["cost"], e["calls"]) for e in expected
    }


def test_a_none_filter_matches_calls_without_the_value(store: CostStore) -> None:
    rows = store.breakdown("model", START, END, {"workflow": None})
    without = store.sql(
        "SELECT count(*) AS n FROM llm_calls WHERE billable IS DISTINCT FROM false AND workflow_id IS NULL "
        "AND start_time >= ? AND start_time < ?",
        [START, END],
    )[0]["n"]
    assert sum(r.call_count for r in rows) == without


def test_breakdown_limit_keeps_the_highest_spend(store: CostStore) -> None:
    assert list(store.breakdown("user", START, END, limit=3)) == list(store.cost_by("user", START, END))[:3]
    with pytest.raises(ValueError, match="limit"):
        store.breakdown("user", START, END, limit=0)


def test_unknown_filter_dimension_is_refused(store: CostStore) -> None:
    with pytest.raises(UnknownDimensionError, match="valid"):
        store.breakdown("model", START, END, {"colour": "red"})


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_spend_series_adds_up_per_day_and_per_group(store: CostStore, zone: str) -> None:
    points = store.spend_series("model", START, END, zone, top=3)
    per_day: dict[object, Decimal] = defaultdict(Decimal)
    per_key: dict[object, Decimal] = defaultdict(Decimal)
    calls_per_day: dict[object, int] = defaultdict(int)
    for p in points:
        per_day[p.day] += p.total_cost_usd or 0
        calls_per_day[p.day] += p.call_count
        per_key[p.key if p.rank <= 3 else "(other)"] += p.total_cost_usd or 0
    days = store.daily_cost(START, END, zone)
    # A day whose calls are all unpriced reads None there and adds nothing here.
    assert {d.day: d.total_cost_usd or 0 for d in days if d.call_count} == dict(per_day)
    assert {d.day: d.call_count for d in days if d.call_count} == dict(calls_per_day)
    groups = list(store.cost_by("model", START, END))
    for rank, row in enumerate(groups[:3], start=1):
        assert per_key[row.key] == (row.total_cost_usd or 0), rank
    assert per_key["(other)"] == sum((r.total_cost_usd or 0 for r in groups[3:]), Decimal(0))


def test_movers_compare_with_the_previous_window(store: CostStore) -> None:
    start, end = datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC)
    now = {r.key: r.total_cost_usd for r in store.cost_by("feature", start, end)}
    before = {r.key: r.total_cost_usd for r in store.cost_by("feature", start - timedelta(days=7), start)}
    movers = store.movers("feature", start, end, limit=10)
    assert movers
    for m in movers:
        assert m.cost_usd == now.get(m.key, Decimal(0) if m.key in before else None)
        assert m.previous_cost_usd == before.get(m.key, Decimal(0) if m.key in now else None)
    changes = [abs(m.change_usd) for m in movers]
    assert changes == sorted(changes, reverse=True)


def test_call_detail_parts_add_up_to_the_cost(store: CostStore) -> None:
    top = store.top_calls(5, START, END)
    for row in top:
        detail = store.call_detail(row.span_id)
        assert detail is not None
        assert detail.cost_usd == row.cost_usd
        parts = [detail.input_cost_usd, detail.cache_read_cost_usd, detail.cache_write_cost_usd]
        assert sum(p or 0 for p in [*parts, detail.output_cost_usd]) + detail.request_cost_usd == row.cost_usd
        assert detail.price_source
        assert detail.trace_id == row.trace_id
    assert store.call_detail("0000000000000000") is None


def test_calls_of_a_session_match_its_summary(store: CostStore) -> None:
    session = next(r.key for r in store.cost_by("session") if r.key)
    calls = store.calls(filters={"session": session})
    summary = store.session_summary(session)
    assert len(calls) == summary.totals.call_count
    assert sum(c.cost_usd or 0 for c in calls) == (summary.totals.cost_usd or 0)
    assert [c.start_time for c in calls] == sorted((c.start_time for c in calls), reverse=True)


def test_interrupt_cancels_the_running_query_of_a_thread(demo: Path) -> None:
    with CostStore(demo) as store:
        assert store.interrupt(threading.get_ident()) is False  # nothing runs
        errors: list[BaseException] = []
        ident: list[int] = []

        def slow() -> None:
            ident.append(threading.get_ident())
            try:
                store.sql("SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b")
            except Exception as exc:
                errors.append(exc)

        worker = threading.Thread(target=slow)
        worker.start()
        deadline = time.monotonic() + 20
        interrupted = False
        # An interrupt that arrives before the query starts is ignored by DuckDB: repeat until it stops.
        while worker.is_alive() and time.monotonic() < deadline:
            interrupted |= bool(ident) and store.interrupt(ident[0])
            time.sleep(0.02)
        worker.join(5)
        assert interrupted
        assert not worker.is_alive()
        assert errors
        assert "interrupt" in str(errors[0]).lower()


def test_interrupt_needs_no_running_query_to_be_safe(demo: Path) -> None:
    with CostStore(demo) as store:
        store.summary()
        assert store.interrupt(threading.get_ident()) is False
        assert store.summary().call_count > 0
    with pytest.raises(StorageError):
        store.summary()
