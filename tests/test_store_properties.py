"""Aggregation laws: groups add up to the total; single days add up to the multi-day total (DST too)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CallsDB, call
from otel_llm_cost.query import CostStore
from otel_llm_cost.query import sql as _queries

# Spring-forward and fall-back weeks in two zones, plus plain UTC.
ZONES = ("UTC", "America/New_York", "Europe/Berlin")
PERIOD_START = datetime(2025, 3, 5, tzinfo=UTC)
PERIOD = timedelta(days=30)  # covers 9 March (US) and 30 March (EU) 2025

money = st.decimals(min_value=Decimal(0), max_value=Decimal(5), places=6)
calls = st.lists(
    st.fixed_dictionaries(
        {
            "start_time": st.integers(0, int(PERIOD.total_seconds()) - 1).map(
                lambda s: PERIOD_START + timedelta(seconds=s)
            ),
            "cost_usd": st.one_of(st.none(), money),
            "feature": st.sampled_from(["a", "b", "c", None]),
            "billable": st.booleans(),
            "tags": st.sampled_from([{}, {"team": "x"}, {"team": "y"}]),
        }
    ),
    max_size=40,
)

_settings = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _known(value: Decimal | None) -> Decimal:
    return value if value is not None else Decimal(0)


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> CallsDB:
    return CallsDB(Path(tmp_path_factory.mktemp("props")) / "props.duckdb")


@pytest.mark.slow
@_settings
@given(rows=calls, dimension=st.sampled_from(["feature", "tag:team", "model", "day"]))
def test_group_totals_sum_to_the_grand_total(
    shared_db: CallsDB, rows: list[dict[str, object]], dimension: str
) -> None:
    shared_db.replace(call(**row) for row in rows)
    with CostStore(shared_db.path) as store:
        summary = store.summary()
        groups = (
            store.daily_cost(PERIOD_START, PERIOD_START + PERIOD)
            if dimension == "day"
            else store.cost_by(dimension)
        )
    assert sum((_known(g.total_cost_usd) for g in groups), Decimal(0)) == _known(summary.cost_usd)
    assert sum(g.call_count for g in groups) == summary.call_count
    assert sum(g.unpriced_calls for g in groups) == summary.unpriced_calls
    expected = sum(
        (Decimal(str(r["cost_usd"])) for r in rows if r["billable"] and r["cost_usd"] is not None), Decimal(0)
    )
    assert _known(summary.cost_usd) == expected


@pytest.mark.slow
@_settings
@given(
    rows=calls,
    zone=st.sampled_from(ZONES),
    # Up to 8 days from anywhere in the period: the asked-for day windows stay few per example.
    offsets=st.tuples(st.integers(0, 29 * 24), st.integers(1, 8 * 24)),
)
def test_single_days_sum_to_the_multi_day_total(
    shared_db: CallsDB, rows: list[dict[str, object]], zone: str, offsets: tuple[int, int]
) -> None:
    shared_db.replace(call(**row) for row in rows)
    start = PERIOD_START + timedelta(hours=offsets[0])
    end = min(start + timedelta(hours=offsets[1]), PERIOD_START + PERIOD)
    tz = ZoneInfo(zone)
    with CostStore(shared_db.path) as store:
        days = store.daily_cost(start, end, zone)
        total = store.summary(start, end)
        # Each day, asked for on its own (its local midnight-to-midnight window clipped to the range).
        singles = Decimal(0)
        for day in days:
            day_start = max(start, datetime.combine(day.day, datetime.min.time(), tz))
            day_end = min(end, datetime.combine(day.day + timedelta(days=1), datetime.min.time(), tz))
            single = store.summary(day_start, day_end)
            assert _known(single.cost_usd) == _known(day.total_cost_usd)
            singles += _known(single.cost_usd)
    assert singles == _known(total.cost_usd)
    assert sum(d.call_count for d in days) == total.call_count
    first, count = _queries.day_range(start, end, tz)
    assert [d.day for d in days] == [first + timedelta(days=i) for i in range(count)]


@pytest.mark.parametrize(
    ("zone", "transition_day", "hours"),
    [
        ("America/New_York", date(2025, 3, 9), 23),
        ("Europe/Berlin", date(2025, 3, 30), 23),
        ("America/New_York", date(2025, 11, 2), 25),
        ("Europe/Berlin", date(2025, 10, 26), 25),
    ],
)
def test_daily_cost_across_a_dst_change(
    calls_db: CallsDB, zone: str, transition_day: date, hours: int
) -> None:
    tz = ZoneInfo(zone)
    day_start = datetime.combine(transition_day, datetime.min.time(), tz).astimezone(UTC)
    next_start = datetime.combine(transition_day + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC)
    assert (next_start - day_start) == timedelta(hours=hours)  # really a 23- or 25-hour day
    # One call per real hour from an hour before the day to an hour after it.
    moments = [day_start + timedelta(hours=h) for h in range(-1, hours + 1)]
    calls_db.insert(*(call(start_time=m, cost_usd="1") for m in moments))
    with CostStore(calls_db.path) as store:
        days = store.daily_cost(day_start - timedelta(days=1), next_start + timedelta(days=1), zone)
    assert [(d.day, d.total_cost_usd, d.call_count) for d in days] == [
        (transition_day - timedelta(days=1), Decimal(1), 1),
        (transition_day, Decimal(hours), hours),
        (transition_day + timedelta(days=1), Decimal(1), 1),
    ]


def test_daily_cost_includes_empty_days_as_zero_and_rejects_unknown_zones(calls_db: CallsDB) -> None:
    calls_db.insert(call(start_time=PERIOD_START + timedelta(days=2), cost_usd=None))
    with CostStore(calls_db.path) as store:
        days = store.daily_cost(PERIOD_START, PERIOD_START + timedelta(days=3))
        with pytest.raises(ValueError, match="unknown time zone"):
            store.daily_cost(PERIOD_START, PERIOD_START + timedelta(days=3), "Mars/Olympus")
    assert [(d.total_cost_usd, d.unpriced_calls) for d in days] == [
        (Decimal(0), 0),
        (Decimal(0), 0),
        (None, 1),
    ]
