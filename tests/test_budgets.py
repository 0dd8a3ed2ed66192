"""Budget evaluation over real DuckDB files: thresholds fire once, windows are right in any zone.

Rows are written with the shared ``call()`` helper; ``commit()`` inserts them and hands the same Arrow
rows to ``BudgetEngine.on_commit``, as the DuckDB exporter does after each committed batch.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import call, calls_table, insert_calls
from otel_llm_cost._logging import ERROR_COUNTS, reset_log_once
from otel_llm_cost.budgets import (
    AlertKind,
    Budget,
    BudgetAlert,
    BudgetEngine,
    BudgetGuard,
    evaluate_budgets,
    remaining_budget,
)
from otel_llm_cost.conventions import names as semconv
from otel_llm_cost.enrich.attribution import UserIdHasher
from otel_llm_cost.exceptions import BudgetExceeded, StorageError
from otel_llm_cost.query import CostStore
from otel_llm_cost.storage import connect as _storage

NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class Commit:
    """What the exporter hands to commit listeners (``CommitInfo``): a cursor and the inserted rows."""

    connection: duckdb.DuckDBPyConnection
    rows: pa.Table


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = _storage.connect(tmp_path / "costs.duckdb")
    yield connection
    connection.close()


@pytest.fixture(autouse=True)
def _fresh_log_once() -> Iterator[None]:
    reset_log_once()
    yield
    reset_log_once()


def commit(con: duckdb.DuckDBPyConnection, engine: BudgetEngine, *rows: dict[str, Any]) -> None:
    insert_calls(con, rows)
    engine.on_commit(Commit(con, calls_table(rows)))


def keys(alerts: list[BudgetAlert]) -> list[tuple[str, str, str]]:
    return [(a.entity, a.kind.value, f"{a.threshold.normalize():f}") for a in alerts]


def stored(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute(
        "SELECT budget, entity, window_key, kind, threshold FROM budget_alerts ORDER BY ALL"
    ).fetchall()


# --- thresholds fire once ------------------------------------------------------------------------


def test_crossing_80_percent_twice_in_one_window_fires_once(con: duckdb.DuckDBPyConnection) -> None:
    got: list[BudgetAlert] = []
    engine = BudgetEngine(
        [Budget("org-daily", "org", "day", 100, thresholds=[0.8])],
        [got.append],
        clock=Clock(NOON),
        forecast=False,
    )
    commit(con, engine, call(org_id="org_1", cost_usd="81", start_time=NOON - timedelta(hours=2)))
    commit(con, engine, call(org_id="org_1", cost_usd="5", start_time=NOON - timedelta(hours=1)))
    commit(con, engine, call(org_id="org_1", cost_usd="1", start_time=NOON - timedelta(minutes=1)))

    assert keys(got) == [("org_1", "threshold", "0.8")]
    assert got[0].spent_usd == Decimal(81)
    assert got[0].percent == Decimal("81.00")
    assert got[0].window_start == datetime(2026, 11, 20, tzinfo=UTC)
    assert got[0].window_end == datetime(2026, 11, 21, tzinfo=UTC)
    assert len(stored(con)) == 1


def test_a_new_window_fires_again(con: duckdb.DuckDBPyConnection) -> None:
    got: list[BudgetAlert] = []
    clock = Clock(NOON)
    engine = BudgetEngine(
        [Budget("org-daily", "org", "day", 100, thresholds=[0.8])], [got.append], clock=clock
    )
    commit(con, engine, call(org_id="org_1", cost_usd="90", start_time=NOON))
    clock.now = NOON + timedelta(days=1)
    commit(con, engine, call(org_id="org_1", cost_usd="85", start_time=NOON + timedelta(days=1)))

    assert [a.window_start for a in got] == [
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(2026, 11, 21, tzinfo=UTC),
    ]
    assert got[1].spent_usd == Decimal(85)


def test_one_call_crossing_several_thresholds_delivers_the_highest_and_records_the_others_as_passed(
    con: duckdb.DuckDBPyConnection,
) -> None:
    got: list[BudgetAlert] = []
    engine = BudgetEngine([Budget.per_org_daily(100)], [got.append], clock=Clock(NOON))
    big = call(org_id="org_1", cost_usd="120", start_time=NOON - timedelta(minutes=5))
    commit(con, engine, big)
    commit(con, engine, call(org_id="org_1", cost_usd="1", start_time=NOON - timedelta(minutes=4)))

    # One notification for one event, not three in the same second.
    assert keys(got) == [("org_1", "threshold", "1")]
    # The call that crossed it is named, for the trace link.
    assert (got[0].span_id, got[0].trace_id) == (big["span_id"], big["trace_id"])
    # 50% and 80% are recorded as passed, so they never fire later in this window.
    recorded = dict(
        con.execute("SELECT threshold, message FROM budget_alerts WHERE kind = 'threshold'").fetchall()
    )
    assert sorted(recorded) == [Decimal("0.5"), Decimal("0.8"), Decimal("1")]
    assert "passed together with the 100% threshold" in recorded[Decimal("0.5")]
    assert "passed" not in recorded[Decimal("1")]


def test_thresholds_crossed_in_separate_batches_each_fire(con: duckdb.DuckDBPyConnection) -> None:
    got: list[BudgetAlert] = []
    engine = BudgetEngine([Budget.per_org_daily(100)], [got.append], clock=Clock(NOON), forecast=False)
    for minute, cost in enumerate(("55", "30", "20")):
        commit(con, engine, call(org_id="o", cost_usd=cost, start_time=NOON - timedelta(minutes=minute)))
    assert keys(got) == [("o", "threshold", "0.5"), ("o", "threshold", "0.8"), ("o", "threshold", "1")]


def test_spend_exactly_at_the_limit_fires_100_percent(con: duckdb.DuckDBPyConnection) -> None:
    got: list[BudgetAlert] = []
    engine = BudgetEngine(
        [Budget("user-daily", "user", "day", 1, thresholds=[1])], [got.append], clock=Clock(NOON)
    )
    # 0.1 + 0.2 + 0.7 is 1.0000000000000002 in floats; DECIMAL sums are exact.
    for cost in ("0.1", "0.2", "0.7"):
        commit(con, engine, call(user_id="h:u1", cost_usd=cost, start_time=NOON))

    assert keys(got) == [("h:u1", "threshold", "1")]
    assert got[0].spent_usd == got[0].limit_usd == Decimal(1)
    assert got[0].percent == Decimal("100.00")
    status = evaluate_budgets(con, engine.budgets, NOON)[0]
    assert status.over
    assert remaining_budget(con, engine.budgets[0], "h:u1", NOON) == 0


def test_a_restarted_engine_does_not_fire_again(con: duckdb.DuckDBPyConnection) -> None:
    budgets = [Budget.per_org_daily(100)]
    first: list[BudgetAlert] = []
    commit(con, BudgetEngine(budgets, [first.append], clock=Clock(NOON)), call(org_id="o", cost_usd=60))
    second: list[BudgetAlert] = []
    restarted = BudgetEngine(budgets, [second.append], clock=Clock(NOON))
    commit(con, restarted, call(org_id="o", cost_usd=1))
    commit(con, restarted, call(org_id="o", cost_usd=30))

    assert keys(first) == [("o", "threshold", "0.5")]
    assert keys(second) == [("o", "threshold", "0.8")]


def test_raising_a_threshold_or_the_limit_re_arms_it(con: duckdb.DuckDBPyConnection) -> None:
    got: list[BudgetAlert] = []
    commit(
        con,
        BudgetEngine([Budget("b", "org", "day", 100, [0.5])], [got.append], clock=Clock(NOON)),
        call(org_id="o", cost_usd=65),
    )
    raised = BudgetEngine([Budget("b", "org", "day", 100, [0.6])], [got.append], clock=Clock(NOON))
    commit(con, raised, call(org_id="o", cost_usd=0))
    bigger_limit = BudgetEngine([Budget("b", "org", "day", 120, [0.5])], [got.append], clock=Clock(NOON))
    commit(con, bigger_limit, call(org_id="o", cost_usd=0))
    same_again = BudgetEngine([Budget("b", "org", "day", 120, [0.5])], [got.append], clock=Clock(NOON))
    commit(con, same_again, call(org_id="o", cost_usd=0))

    assert [(a.threshold, a.limit_usd) for a in got] == [
        (Decimal("0.5"), Decimal(100)),
        (Decimal("0.6"), Decimal(100)),
        (Decimal("0.5"), Decimal(120)),
    ]


def test_only_entities_the_batch_touched_are_evaluated(con: duckdb.DuckDBPyConnection) -> None:
    # org_a is over, but was written before the engine existed and the batch only touches org_b.
    insert_calls(con, [call(org_id="org_a", cost_usd=200, start_time=NOON)])
    got: list[BudgetAlert] = []
    engine = BudgetEngine([Budget.per_org_daily(100)], [got.append], clock=Clock(NOON))
    commit(con, engine, call(org_id="org_b", cost_usd=1, start_time=NOON))
    assert got == []
    # The on-demand evaluation sees everyone.
    assert [(a.entity, a.threshold) for a in engine.evaluate(con, NOON)] == [("org_a", Decimal(1))]


def test_duplicates_and_aggregate_records_do_not_count(con: duckdb.DuckDBPyConnection) -> None:
    got: list[BudgetAlert] = []
    engine = BudgetEngine([Budget("org", "org", "day", 10, [1])], [got.append], clock=Clock(NOON))
    commit(
        con,
        engine,
        call(org_id="o", cost_usd=6, start_time=NOON),
        call(org_id="o", cost_usd=6, start_time=NOON, billable=False),
    )
    assert got == []
    assert evaluate_budgets(con, engine.budgets, NOON)[0].spent_usd == 6


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(costs=st.lists(st.decimals(min_value=0, max_value=40, places=2), min_size=1, max_size=8))
def test_each_crossed_threshold_fires_exactly_once_whatever_the_batches(
    con: duckdb.DuckDBPyConnection, costs: list[Decimal]
) -> None:
    con.execute("DELETE FROM llm_calls")
    con.execute("DELETE FROM budget_alerts")
    budget = Budget("b", "org", "day", 100)
    got: list[BudgetAlert] = []
    engine = BudgetEngine([budget], [got.append], clock=Clock(NOON), forecast=False)
    for i, cost in enumerate(costs):
        commit(con, engine, call(org_id="o", cost_usd=cost, start_time=NOON - timedelta(minutes=i)))
    total = sum(costs, Decimal(0))
    crossed = [t for t in budget.thresholds if total >= 100 * t]
    recorded = [row[4] for row in stored(con)]
    assert sorted(recorded) == crossed  # every crossed threshold recorded once, delivered or passed
    delivered = [a.threshold for a in got]
    assert len(set(delivered)) == len(delivered)
    assert not crossed or max(crossed) in delivered


# --- windows ------------------------------------------------------------------------------------


def test_day_window_west_of_utc_includes_the_evening(con: duckdb.DuckDBPyConnection) -> None:
    la = ZoneInfo("America/Los_Angeles")
    morning = datetime(2026, 11, 20, 9, 0, tzinfo=la)
    evening = datetime(2026, 11, 20, 20, 0, tzinfo=la)  # 04:00 UTC the next day
    budget = Budget("org-daily-la", "org", "day", 50, [1], tz="America/Los_Angeles")
    got: list[BudgetAlert] = []
    engine = BudgetEngine([budget], [got.append], clock=Clock(evening.astimezone(UTC)))
    commit(con, engine, call(org_id="o", cost_usd=30, start_time=morning.astimezone(UTC)))
    late_call = call(org_id="o", cost_usd=30, start_time=evening.astimezone(UTC))
    commit(con, engine, late_call)

    assert keys(got) == [("o", "threshold", "1")]
    assert got[0].window_start == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert got[0].span_id == late_call["span_id"]
    # The same calls in a UTC day budget fall on two days and never reach $50.
    utc_days = evaluate_budgets(con, [Budget("utc", "org", "day", 50)], evening)
    assert [s.spent_usd for s in utc_days] == [Decimal(30)]


@pytest.mark.parametrize(
    ("local_day", "hours"),
    [((2026, 3, 29), 23), ((2026, 10, 25), 25)],
    ids=["spring-forward-23h", "fall-back-25h"],
)
def test_dst_days_are_23_and_25_hours_long(
    con: duckdb.DuckDBPyConnection, local_day: tuple[int, int, int], hours: int
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    budget = Budget("berlin-daily", "org", "day", 100, tz="Europe/Berlin")
    midnight = datetime(*local_day, tzinfo=berlin)
    start, end = budget.window_at(midnight + timedelta(hours=12))
    assert start is not None
    assert end is not None
    assert start == midnight.astimezone(UTC)
    assert end - start == timedelta(hours=hours)

    first_moment, last_moment = start, end - timedelta(microseconds=1)
    insert_calls(
        con,
        [
            call(org_id="o", cost_usd=1, start_time=first_moment - timedelta(microseconds=1)),  # day before
            call(org_id="o", cost_usd=10, start_time=first_moment),
            call(org_id="o", cost_usd=20, start_time=last_moment),  # 23:59:59.999999 local
            call(org_id="o", cost_usd=100, start_time=end),  # next day
        ],
    )
    [status] = evaluate_budgets(con, [budget], last_moment)
    assert status.spent_usd == Decimal(30)
    assert status.window_end == end


def test_calendar_month_versus_rolling_30_days(con: duckdb.DuckDBPyConnection) -> None:
    at = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    insert_calls(
        con,
        [
            call(org_id="o", cost_usd=40, start_time=datetime(2026, 10, 25, tzinfo=UTC)),
            call(org_id="o", cost_usd=40, start_time=datetime(2026, 11, 5, tzinfo=UTC)),
            call(org_id="o", cost_usd=99, start_time=datetime(2026, 10, 20, tzinfo=UTC)),  # > 30 days ago
        ],
    )
    month = Budget("monthly", "org", "month", 50)
    rolling = Budget("rolling", "org", "rolling:30d", 50)
    statuses = {s.budget.name: s for s in evaluate_budgets(con, [month, rolling], at)}

    assert statuses["monthly"].spent_usd == Decimal(40)
    assert statuses["monthly"].window_start == datetime(2026, 11, 1, tzinfo=UTC)
    assert statuses["monthly"].window_end == datetime(2026, 12, 1, tzinfo=UTC)
    assert statuses["rolling"].spent_usd == Decimal(80)
    assert statuses["rolling"].window_start == at - timedelta(days=30)
    assert rolling.window == "rolling:720h"


def test_week_windows_start_on_monday_in_the_budget_zone() -> None:
    budget = Budget("weekly", "team", "week", 10, tz="Asia/Tokyo")
    start, end = budget.window_at(datetime(2026, 11, 22, 16, 0, tzinfo=UTC))  # Monday 01:00 in Tokyo
    assert start == datetime(2026, 11, 23, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert end == datetime(2026, 11, 30, tzinfo=ZoneInfo("Asia/Tokyo"))


def test_a_late_span_counts_in_the_window_of_its_start(con: duckdb.DuckDBPyConnection) -> None:
    got: list[BudgetAlert] = []
    engine = BudgetEngine([Budget("d", "org", "day", 10, [1])], [got.append], clock=Clock(NOON))
    yesterday = NOON - timedelta(days=1)
    commit(con, engine, call(org_id="o", cost_usd=6, start_time=yesterday))
    commit(con, engine, call(org_id="o", cost_usd=5, start_time=NOON))  # today: $5
    commit(con, engine, call(org_id="o", cost_usd=5, start_time=yesterday + timedelta(hours=1)))  # late

    assert [(a.window_start, a.spent_usd) for a in got] == [(datetime(2026, 11, 19, tzinfo=UTC), Decimal(11))]


def test_lifetime_session_budget(con: duckdb.DuckDBPyConnection) -> None:
    got: list[BudgetAlert] = []
    engine = BudgetEngine([Budget.per_session(10)], [got.append], clock=Clock(NOON))
    commit(con, engine, call(session_id="s1", cost_usd=4, start_time=NOON - timedelta(days=40)))
    commit(con, engine, call(session_id="s1", cost_usd=7, start_time=NOON))
    assert keys(got) == [("s1", "threshold", "1")]  # 50% and 80% passed in the same evaluation
    assert got[0].window_start is None
    assert got[0].window_key == "lifetime"
    assert "per-session budget" in got[0].message


# --- scopes and where --------------------------------------------------------------------------


def test_where_narrows_a_budget_to_one_org(con: duckdb.DuckDBPyConnection) -> None:
    got: list[BudgetAlert] = []
    budget = Budget("big-customer", "org", "day", 10, [1], where={"org": "org_123"})
    engine = BudgetEngine([budget], [got.append], clock=Clock(NOON))
    commit(con, engine, call(org_id="org_999", cost_usd=50), call(org_id="org_123", cost_usd=9))
    assert got == []
    commit(con, engine, call(org_id="org_123", cost_usd=1))
    assert keys(got) == [("org_123", "threshold", "1")]


def test_custom_tag_scope_and_global_scope(con: duckdb.DuckDBPyConnection) -> None:
    got: list[BudgetAlert] = []
    budgets = [Budget("team", "team", "day", 10, [1]), Budget("all", "global", "day", 25, [1])]
    engine = BudgetEngine(budgets, [got.append], clock=Clock(NOON))
    commit(
        con,
        engine,
        call(tags={"team": "search"}, cost_usd=12),
        call(tags={"team": "chat"}, cost_usd=9),
        call(cost_usd=4),
    )
    assert sorted((a.budget, a.entity) for a in got) == [("all", "*"), ("team", "search")]
    assert budgets[0].scope == "tag:team"


def test_where_on_users_matches_the_stored_hash(con: duckdb.DuckDBPyConnection) -> None:
    hasher = UserIdHasher(key=b"0123456789abcdef")
    budget = Budget("vip", "user", "day", 5, [1], where={"user": hasher.hash("u-42")})
    insert_calls(
        con, [call(user_id=hasher.hash("u-42"), cost_usd=6), call(user_id=hasher.hash("u-7"), cost_usd=9)]
    )
    [status] = evaluate_budgets(con, [budget], datetime(2025, 1, 15, 18, tzinfo=UTC))
    assert status.entity == hasher.hash("u-42")


# --- unpriced and forecast ----------------------------------------------------------------------


def test_unpriced_calls_raise_their_own_warning_once(con: duckdb.DuckDBPyConnection) -> None:
    got: list[BudgetAlert] = []
    engine = BudgetEngine([Budget.per_org_daily(100)], [got.append], clock=Clock(NOON))
    mystery = call(org_id="o", cost_usd=None, request_model="mystery-model", start_time=NOON)
    commit(con, engine, call(org_id="o", cost_usd=1, start_time=NOON), mystery)
    commit(con, engine, call(org_id="o", cost_usd=None, request_model="mystery-model", start_time=NOON))

    assert keys(got) == [("o", "unpriced", "0")]
    assert got[0].unpriced_calls == 1
    assert got[0].span_id == mystery["span_id"]
    assert "1 call to unknown models not counted" in got[0].message
    status = evaluate_budgets(con, engine.budgets, NOON)[0]
    assert (status.unpriced_calls, status.spent_usd) == (2, Decimal(1))


def test_forecast_uses_the_last_hour_rate_and_says_when(con: duckdb.DuckDBPyConnection) -> None:
    # Berlin is UTC+1 in November: noon UTC is 13:00 local, the day began at 23:00 UTC.
    budget = Budget("org-daily", "org", "day", 1000, tz="Europe/Berlin")
    got: list[BudgetAlert] = []
    engine = BudgetEngine([budget], [got.append], clock=Clock(NOON))
    commit(
        con,
        engine,
        call(org_id="org_123", cost_usd=300, start_time=NOON - timedelta(hours=9)),
        call(org_id="org_123", cost_usd=100, start_time=NOON - timedelta(minutes=45)),
        call(org_id="org_123", cost_usd=100, start_time=NOON - timedelta(minutes=15)),
    )
    # Recent rate: $200 in the last hour. $500 left -> 2.5 h -> 14:30 UTC = 15:30 Berlin.
    [forecast] = [a for a in got if a.kind is AlertKind.FORECAST]
    assert forecast.forecast_at == datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
    assert forecast.message.startswith(
        "org org_123 reaches its $1,000.00 daily budget 'org-daily' at about 15:30 Europe/Berlin"
    )
    status = evaluate_budgets(con, [budget], NOON)[0]
    assert status.recent_rate_usd_per_hour == Decimal(200)
    # Once per window, however often the commit listener runs.
    commit(con, engine, call(org_id="org_123", cost_usd=1, start_time=NOON))
    assert len([a for a in got if a.kind is AlertKind.FORECAST]) == 1


def test_no_forecast_without_15_minutes_of_evidence_then_the_clipped_lookback(
    con: duckdb.DuckDBPyConnection,
) -> None:
    budget = Budget("d", "org", "day", 1000)
    midnight = datetime(2026, 11, 20, tzinfo=UTC)
    insert_calls(con, [call(org_id="o", cost_usd=600, start_time=midnight + timedelta(minutes=5))])

    [early] = evaluate_budgets(con, [budget], midnight + timedelta(minutes=10))
    assert early.forecast_at is None
    assert early.recent_rate_usd_per_hour is None

    # 20 minutes into the day the lookback is [00:00, 00:20): $600 / 20 min = $1800/h; $400 left.
    [later] = evaluate_budgets(con, [budget], midnight + timedelta(minutes=20))
    assert later.recent_rate_usd_per_hour == Decimal(1800)
    assert later.rate_lookback == timedelta(minutes=20)
    assert later.forecast_at == midnight + timedelta(minutes=33, seconds=20)


def test_no_forecast_when_the_rate_does_not_reach_the_limit_before_the_window_ends(
    con: duckdb.DuckDBPyConnection,
) -> None:
    insert_calls(con, [call(org_id="o", cost_usd=10, start_time=NOON - timedelta(minutes=30))])
    [status] = evaluate_budgets(con, [Budget("d", "org", "day", 1000)], NOON)
    assert status.recent_rate_usd_per_hour == Decimal(10)
    assert status.forecast_at is None


# --- per-call budgets -----------------------------------------------------------------------------


def test_per_call_budget_fires_at_enrichment_once_and_is_recorded(con: duckdb.DuckDBPyConnection) -> None:
    got: list[BudgetAlert] = []
    engine = BudgetEngine(
        [Budget.per_call(1.00), Budget.per_org_daily(1000)], [got.append], clock=Clock(NOON)
    )
    attributes = {semconv.LLM_COST_USD: 1.000001, semconv.COST_ORG_ID: "o", semconv.LLM_COST_BILLABLE: True}
    fired = engine.check_call(attributes, trace_id=0xABC, span_id=0x1F, start_time_ns=1)
    again = engine.check_call(attributes, trace_id=0xABC, span_id=0x1F, start_time_ns=1)
    cheap = engine.check_call({semconv.LLM_COST_USD: 1.0}, trace_id=1, span_id=2)  # at the limit: within it
    duplicate = engine.check_call({semconv.LLM_COST_USD: 5.0, semconv.LLM_COST_BILLABLE: False}, span_id=3)

    assert keys(fired) == [("000000000000001f", "threshold", "1")]
    assert fired[0].trace_id == f"{0xABC:032x}"
    assert (again, cheap, duplicate) == ([], [], [])
    assert engine.flush(5)
    assert got == fired
    commit(con, engine)  # the next committed batch (even an empty one) records per-call alerts
    assert stored(con) == [("per_call", "000000000000001f", "call", "threshold", Decimal("1.000000"))]


def test_per_call_unpriced_warns_once_per_model() -> None:
    got: list[BudgetAlert] = []
    engine = BudgetEngine([Budget.per_call(1)], [got.append])
    for span_id in (1, 2):
        engine.check_call({semconv.GEN_AI_REQUEST_MODEL: "mystery"}, span_id=span_id)
    assert engine.flush(5)
    assert keys(got) == [("mystery", "unpriced", "0")]


def test_per_call_alerts_are_delivered_off_the_application_thread() -> None:
    # A pager that blocks must not block the request whose span ended: check_call returns while the
    # sink is still inside its first alert, and the worker delivers the rest in order once released.
    entered = threading.Event()
    release = threading.Event()
    delivered: list[tuple[BudgetAlert, bool, str]] = []

    def blocking_pager(alert: BudgetAlert) -> None:
        entered.set()
        released = release.wait(30)  # a synchronous delivery would wait here, inside check_call
        delivered.append((alert, released, threading.current_thread().name))

    engine = BudgetEngine([Budget.per_call(1)], [blocking_pager])
    first = engine.check_call({semconv.LLM_COST_USD: 2.0}, span_id=1)
    assert entered.wait(30)  # the sink runs, and is blocked...
    second = engine.check_call({semconv.LLM_COST_USD: 3.0}, span_id=2)  # ...yet calls still return
    assert delivered == []
    release.set()
    assert engine.flush(30)
    assert [(alert, released) for alert, released, _ in delivered] == [(*first, True), (*second, True)]
    assert all(name != threading.current_thread().name for _, _, name in delivered)
    engine.shutdown(5)


def test_a_full_per_call_alert_queue_drops_and_counts_never_blocks() -> None:
    entered = threading.Event()
    release = threading.Event()
    got: list[BudgetAlert] = []

    def blocking_pager(alert: BudgetAlert) -> None:
        entered.set()
        release.wait(30)
        got.append(alert)

    engine = BudgetEngine([Budget.per_call(1)], [blocking_pager], max_queued_alerts=2)
    fired = engine.check_call({semconv.LLM_COST_USD: 2.0}, span_id=1)
    assert entered.wait(30)  # the worker holds alert 1; the queue has room for 2 more
    for span_id in range(2, 6):
        fired += engine.check_call({semconv.LLM_COST_USD: 2.0}, span_id=span_id)
    assert len(fired) == 5  # every call fired (and is recorded in budget_alerts at the next commit)
    assert ERROR_COUNTS["budgets.alerts.queue_full"] == 2
    release.set()
    assert engine.flush(30)
    assert got == fired[:3]
    engine.shutdown(5)


def test_check_call_never_raises() -> None:
    engine = BudgetEngine([Budget.per_call(1)], [])
    assert engine.check_call(None, span_id=1) == []  # type: ignore[arg-type]
    assert ERROR_COUNTS["budgets.check_call"] == 1


def test_on_commit_never_raises_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    engine = BudgetEngine([Budget.per_org_daily(1)], [])
    closed = duckdb.connect()
    closed.close()
    for _ in range(2):
        engine.on_commit(Commit(closed, calls_table([call(org_id="o")])))
    assert ERROR_COUNTS["budgets.on_commit"] == 2
    assert sum("budget evaluation failed" in r.message for r in caplog.records) == 1


# --- two processes ------------------------------------------------------------------------------

_EVALUATE_IN_A_CHILD = textwrap.dedent(
    """
    import contextlib, json, sys
    from datetime import datetime
    from otel_llm_cost.storage import connect as _storage
    from otel_llm_cost.budgets import Budget, BudgetEngine

    path, at = sys.argv[1], datetime.fromisoformat(sys.argv[2])
    fired = []
    engine = BudgetEngine([Budget.per_org_daily(100)], [fired.append])
    for _ in range(3):  # take turns: open, evaluate, release the file for the other process
        with contextlib.closing(_storage.connect(path, timeout_s=60)) as con:
            engine.evaluate(con, at)
    print(json.dumps([[a.entity, a.kind.value, str(a.threshold)] for a in fired]))
    """
)


@pytest.mark.slow
def test_two_processes_evaluating_the_same_budget_fire_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    with contextlib.closing(_storage.connect(path)) as con:
        insert_calls(con, [call(org_id="o1", cost_usd=85, start_time=NOON), call(org_id="o2", cost_usd=55)])
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _EVALUATE_IN_A_CHILD, str(path), NOON.isoformat()],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]

    fired = [tuple(alert) for out in outputs for alert in json.loads(out)]
    assert sorted(fired) == [("o1", "threshold", "0.8")]  # 50% passed on the way: recorded, not delivered
    with contextlib.closing(_storage.connect(path, read_only=True)) as con:
        assert len(stored(con)) == 2


# --- enforcement --------------------------------------------------------------------------------


def test_guard_raises_with_the_numbers_once_the_limit_is_spent(con: duckdb.DuckDBPyConnection) -> None:
    hasher = UserIdHasher(key=b"0123456789abcdef")
    insert_calls(con, [call(user_id=hasher.hash("u-42"), cost_usd="49.99", start_time=NOON)])
    guard = BudgetGuard(con, [Budget.per_user_daily(50), Budget.per_call(1)], user_id_hasher=hasher)

    guard.check(user="u-42", at=NOON)  # $49.99 of $50: allowed
    assert guard.remaining("per_user_daily", user="u-42", at=NOON) == Decimal("0.01")

    insert_calls(con, [call(user_id=hasher.hash("u-42"), cost_usd="0.01", start_time=NOON)])
    with pytest.raises(BudgetExceeded) as caught:
        guard.check(user="u-42", at=NOON)
    error = caught.value
    assert (error.budget, error.entity) == ("per_user_daily", hasher.hash("u-42"))
    assert (error.spent_usd, error.limit_usd) == (Decimal(50), Decimal(50))
    assert error.window_end == datetime(2026, 11, 21, tzinfo=UTC)
    guard.check(user="u-7", at=NOON)  # another user is unaffected
    guard.check(org="org_1", at=NOON)  # no user given: the per-user budget does not apply


def test_guard_opens_a_path_and_global_budgets_apply_to_every_check(tmp_path: Path) -> None:
    path = tmp_path / "g.duckdb"
    with contextlib.closing(_storage.connect(path)) as con:
        insert_calls(con, [call(cost_usd=100, start_time=NOON)])
    guard = BudgetGuard(path, [Budget("all", "global", "month", 100)])
    try:
        with pytest.raises(BudgetExceeded):
            guard.check(at=NOON)
        assert guard.remaining("all", at=NOON) == 0
    finally:
        guard.close()


def test_remaining_budget_needs_an_entity_for_scoped_budgets(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="pass the entity"):
        remaining_budget(con, Budget.per_org_daily(10), None, NOON)
    assert remaining_budget(con, Budget.per_org_daily(10), "nobody", NOON) == 10
    with pytest.raises(ValueError, match="timezone-aware"):
        remaining_budget(con, Budget.per_org_daily(10), "o", datetime(2026, 1, 1))  # noqa: DTZ001


def test_a_tiny_rate_against_a_huge_limit_gives_no_forecast_and_no_error(
    con: duckdb.DuckDBPyConnection,
) -> None:
    insert_calls(con, [call(org_id="o", cost_usd="0.000001", start_time=NOON - timedelta(minutes=30))])
    [status] = evaluate_budgets(con, [Budget("d", "org", "month", 999_999_999)], NOON)
    assert status.recent_rate_usd_per_hour == Decimal("0.000001")
    assert status.forecast_at is None


def test_cost_store_answers_through_the_same_functions(con: duckdb.DuckDBPyConnection) -> None:
    from otel_llm_cost.query import CostStore  # noqa: PLC0415 - E's module, integration only

    insert_calls(con, [call(org_id="o", cost_usd=30, start_time=NOON)])
    store = CostStore(con)
    budget = Budget.per_org_daily(40)
    [status] = store.check_budgets([budget], NOON)
    assert (status.entity, status.spent_usd, status.percent) == ("o", Decimal(30), Decimal("75.00"))
    assert store.remaining(budget, "o", NOON) == Decimal(10)
    guard = BudgetGuard(store, [budget])
    guard.check(org="o", at=NOON)
    insert_calls(con, [call(org_id="o", cost_usd=10, start_time=NOON)])
    with pytest.raises(BudgetExceeded):
        guard.check(org="o", at=NOON)


@pytest.mark.parametrize("offset_us", [-1, 0], ids=["last-microsecond-of-the-day", "midnight"])
def test_a_commit_at_a_window_edge_lands_in_the_right_window(
    con: duckdb.DuckDBPyConnection, offset_us: int
) -> None:
    midnight = datetime(2026, 11, 21, tzinfo=UTC)
    started = midnight + timedelta(microseconds=offset_us)
    got: list[BudgetAlert] = []
    engine = BudgetEngine([Budget("d", "org", "day", 1, [1])], [got.append], clock=Clock(midnight))
    commit(con, engine, call(org_id="o", cost_usd=1, start_time=started))
    assert [a.window_start for a in got] == [datetime(2026, 11, 20 + (offset_us == 0), tzinfo=UTC)]


def test_rolling_window_alerts_on_commit_and_ignores_calls_older_than_the_window(
    con: duckdb.DuckDBPyConnection,
) -> None:
    got: list[BudgetAlert] = []
    engine = BudgetEngine([Budget("r", "org", "rolling:24h", 10, [1])], [got.append], clock=Clock(NOON))
    commit(con, engine, call(org_id="old", cost_usd=50, start_time=NOON - timedelta(hours=25)))
    assert got == []
    commit(
        con,
        engine,
        call(org_id="o", cost_usd=6, start_time=NOON - timedelta(hours=23)),
        call(org_id="o", cost_usd=4, start_time=NOON - timedelta(hours=1)),
    )
    assert keys(got) == [("o", "threshold", "1")]
    assert (got[0].window_start, got[0].window_end) == (NOON - timedelta(hours=24), NOON)
    assert got[0].window_key == "rolling:2026-11-20T00:00:00+00:00"


def test_budgets_count_exactly_what_the_reports_count(con: duckdb.DuckDBPyConnection) -> None:
    # Rows at the edges of the billable / unpriced rules: an older writer's NULL billable, a duplicate,
    # an unknown price, and a response-cache hit (NULL cost, no API spend: not "unpriced").
    insert_calls(
        con,
        [
            call(cost_usd="1.5", start_time=NOON),
            call(cost_usd="2", billable=None, start_time=NOON),
            call(cost_usd="4", billable=False, start_time=NOON),
            call(cost_usd=None, start_time=NOON),
            call(cost_usd=None, from_cache=True, start_time=NOON),
            call(cost_usd=None, from_cache=None, start_time=NOON),
        ],
    )
    [status] = evaluate_budgets(con, [Budget("all", "global", "day", 100)], NOON)
    summary = CostStore(con).summary(NOON - timedelta(hours=1), NOON + timedelta(hours=1))
    assert (status.spent_usd, status.calls, status.unpriced_calls) == (
        summary.cost_usd,
        summary.call_count,
        summary.unpriced_calls,
    )
    assert (status.spent_usd, status.unpriced_calls) == (Decimal("3.5"), 2)


def test_alert_messages_print_money_as_the_reports_do(con: duckdb.DuckDBPyConnection) -> None:
    got: list[BudgetAlert] = []
    engine = BudgetEngine([Budget("org-daily", "org", "day", 1000, [1])], [got.append], clock=Clock(NOON))
    commit(con, engine, call(org_id="o", cost_usd="1234.5", start_time=NOON))
    [alert] = got
    assert "has spent $1,234.50 of its $1,000.00 daily budget" in alert.message

    tiny = BudgetEngine([Budget.per_call("0.0005")], [])
    [alert] = tiny.check_call({semconv.LLM_COST_USD: 0.0007}, span_id=1)
    assert "has spent $0.0007 of its $0.0005 per-call budget" in alert.message


def test_a_database_without_our_tables_is_a_storage_error(tmp_path: Path) -> None:
    with contextlib.closing(duckdb.connect(str(tmp_path / "other.duckdb"))) as foreign:
        foreign.execute("CREATE TABLE invoices (id INTEGER)")
        with pytest.raises(StorageError, match="not an otel-llm-cost database"):
            evaluate_budgets(foreign, [Budget.per_org_daily(10)], NOON)
        with pytest.raises(StorageError, match="not an otel-llm-cost database"):
            BudgetGuard(foreign, [Budget.per_org_daily(10)]).check(org="o", at=NOON)
