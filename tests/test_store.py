"""CostStore reports over real DuckDB files built from llm_calls rows."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from conftest import BASE_TIME, CallsDB, call
from helpers import wait_until
from otel_llm_cost.budgets import Budget, BudgetGuard
from otel_llm_cost.exceptions import QueryError, StorageError, UnknownDimensionError
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.query import CostStore
from otel_llm_cost.query.alert_sql import ALERT_FIELDS
from otel_llm_cost.query.repricing import _usage_of
from otel_llm_cost.query.sql import half_open_window
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema

D = Decimal


@pytest.fixture
def store(calls_db: CallsDB) -> Iterator[CostStore]:
    calls_db.insert(
        call(feature="search", cost_usd="0.10", request_model="gpt-4o", user_id="u1", org_id="o1"),
        call(feature="search", cost_usd="0.05", request_model="gpt-4o-mini", user_id="u2", org_id="o1"),
        call(feature="chat", cost_usd="0.50", request_model="claude", provider="anthropic", user_id="u1"),
        call(feature="chat", cost_usd=None, request_model="mystery", provider="acme"),
        # A duplicate record of the chat call: never summed.
        call(feature="chat", cost_usd="0.50", request_model="claude", provider="anthropic", billable=False),
        call(feature=None, cost_usd="0.01", tags={"team": "growth", "role": "planner"}),
    )
    with CostStore(calls_db.path) as opened:
        yield opened


def test_cost_by_feature_sums_billable_calls_highest_first(store: CostStore) -> None:
    rows = store.cost_by("feature")
    assert [(r.key, r.total_cost_usd, r.call_count, r.unpriced_calls) for r in rows] == [
        ("chat", D("0.50"), 2, 1),
        ("search", D("0.15"), 2, 0),
        (None, D("0.01"), 1, 0),
    ]


def test_group_of_only_unpriced_calls_is_none_never_zero(store: CostStore) -> None:
    by_provider = {r.key: r for r in store.cost_by_provider()}
    assert by_provider["acme"].total_cost_usd is None
    assert by_provider["acme"].unpriced_calls == 1
    assert store.cost_by_model()[-1].key == "mystery"  # unknown cost sorts last


def test_custom_tag_and_role_dimensions_read_the_tags_map(store: CostStore) -> None:
    by_team = {r.key: r.total_cost_usd for r in store.cost_by("tag:team")}
    assert by_team == {"growth": D("0.01"), None: D("0.65")}
    assert ("planner", D("0.01")) in [(r.key, r.total_cost_usd) for r in store.cost_by("role")]


def test_tag_key_is_bound_not_pasted_into_sql(store: CostStore) -> None:
    hostile = "x'] IS NULL; DROP TABLE llm_calls; --"
    rows = store.cost_by(f"tag:{hostile}")
    assert [r.key for r in rows] == [None]
    assert store.summary().call_count == 5


@pytest.mark.parametrize("alias", ["user", "user_id"])
def test_dimension_aliases(store: CostStore, alias: str) -> None:
    assert store.cost_by(alias)[0] == store.cost_by("user")[0]


def test_unknown_dimension_lists_the_valid_ones(store: CostStore) -> None:
    with pytest.raises(UnknownDimensionError, match="valid: model, provider") as info:
        store.cost_by("cost_usd; DROP TABLE llm_calls")
    assert "tag:<key>" in str(info.value)


def test_naive_datetimes_are_refused(store: CostStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.cost_by_model(datetime(2025, 1, 1), datetime(2025, 2, 1, tzinfo=UTC))  # noqa: DTZ001
    with pytest.raises(ValueError, match="empty window"):
        store.summary(BASE_TIME, BASE_TIME)


def test_windows_are_half_open(calls_db: CallsDB) -> None:
    calls_db.insert(
        call(start_time=BASE_TIME, cost_usd="1"),
        call(start_time=BASE_TIME + timedelta(hours=1), cost_usd="2"),
    )
    with CostStore(calls_db.path) as store:
        assert store.summary(BASE_TIME, BASE_TIME + timedelta(hours=1)).cost_usd == D(1)
        assert store.summary(BASE_TIME + timedelta(microseconds=1), None).cost_usd == D(2)
        # Same instant written in another zone selects the same rows.
        berlin = BASE_TIME.astimezone(ZoneInfo("Europe/Berlin"))
        assert store.summary(berlin, None).cost_usd == D(3)


def test_summary_cache_hit_rate_and_input_share(calls_db: CallsDB) -> None:
    calls_db.insert(
        call(input_tokens=1000, cache_read_tokens=600, cache_write_tokens=200, cache_saved_usd="0.0015"),
        call(input_tokens=1000, cache_read_tokens=0, cache_write_tokens=200),
    )
    with CostStore(calls_db.path) as store:
        summary = store.summary()
    assert summary.cache_hit_rate == 600 / (600 + 400)
    assert summary.cache_input_share == 600 / 2000
    assert summary.cache_saved_usd == D("0.0015")


def test_summary_of_an_empty_window_is_zero_not_unknown(store: CostStore) -> None:
    empty = store.summary(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC))
    assert (empty.call_count, empty.cost_usd, empty.cache_hit_rate, empty.avg_cost_per_call_usd) == (
        0,
        D(0),
        0.0,
        None,
    )


def test_summary_counts_excluded_duplicates_and_response_cache_hits(calls_db: CallsDB) -> None:
    calls_db.insert(
        call(cost_usd="0.2"),
        call(cost_usd="0.2", billable=False),
        call(cost_usd=None, from_cache=True, input_tokens=0, output_tokens=0),
    )
    with CostStore(calls_db.path) as store:
        summary = store.summary()
    # A response-cache hit had no API spend: it is not "unpriced".
    assert (summary.call_count, summary.unpriced_calls, summary.excluded_records) == (2, 0, 1)
    assert (summary.from_cache_calls, summary.cost_usd) == (1, D("0.2"))


def test_workflow_totals_null_cost_when_a_step_is_unpriced(calls_db: CallsDB) -> None:
    steps = [
        call(workflow_id="wf", step="extract", cost_usd="0.3", duration_ms=100.0, cache_read_tokens=50),
        call(
            workflow_id="wf",
            step="classify",
            cost_usd=None,
            duration_ms=200.0,
            start_time=BASE_TIME + timedelta(seconds=1),
        ),
        call(
            workflow_id="wf",
            step="answer",
            cost_usd="0",
            from_cache=True,
            duration_ms=5.0,
            start_time=BASE_TIME + timedelta(seconds=2),
        ),
        call(workflow_id="other", cost_usd="9"),
    ]
    calls_db.insert(*reversed(steps))
    with CostStore(calls_db.path) as store:
        totals = store.workflow_totals("wf")
        ordered = store.steps_for_workflow("wf")
        missing = store.workflow_totals("nope")
    assert totals.cost_usd is None
    assert totals.known_cost_usd == D("0.3")
    assert (totals.step_count, totals.unpriced_steps, totals.cached_steps) == (3, 1, 1)
    assert totals.latency_ms == 305.0
    assert totals.cache_read_tokens == 50
    assert (totals.input_tokens, totals.total_tokens) == (3000, 3600)
    assert [s.step for s in ordered] == ["extract", "classify", "answer"]
    assert (missing.step_count, missing.cost_usd) == (0, D(0))


def test_session_summary_breakdowns_and_text(calls_db: CallsDB) -> None:
    calls_db.insert(
        call(session_id="s1", cost_usd="0.02", provider="openai", input_tokens=1500, output_tokens=500),
        call(
            session_id="s1",
            cost_usd="0.06",
            provider="anthropic",
            request_model="claude",
            start_time=BASE_TIME + timedelta(minutes=3),
            duration_ms=1000.0,
            input_tokens=1500,
            output_tokens=500,
        ),
        call(session_id="s2", cost_usd="5"),
    )
    with CostStore(calls_db.path) as store:
        session = store.session_summary("s1")
    assert session.duration == timedelta(minutes=3, seconds=1)
    assert session.avg_cost_per_call_usd == D("0.04")
    assert session.cost_per_1k_tokens_usd == D("0.02")
    assert [r.key for r in session.by_provider] == ["anthropic", "openai"]
    assert [r.key for r in session.by_model] == ["claude", "gpt-4o-mini"]
    assert "By provider" in session.format("detailed")
    assert str(session) == session.format()
    assert session.format("compact").startswith("session s1: $0.08, 2 calls")
    assert "cost / 1k tokens" in session.format("table")
    with pytest.raises(ValueError, match="unknown style"):
        session.format("fancy")  # type: ignore[arg-type]


def test_top_calls_and_sql(store: CostStore) -> None:
    top = store.top_calls(2)
    assert [c.cost_usd for c in top] == [D("0.50"), D("0.10")]
    assert top[0].start_time.tzinfo is not None
    rows = store.sql("SELECT count(*) AS n FROM llm_calls WHERE feature = ?", ["chat"])
    assert rows == [{"n": 3}]
    with pytest.raises(QueryError, match="syntax error"):
        store.sql("SELEC 1")
    with pytest.raises(ValueError, match="at least 1"):
        store.top_calls(0)


def test_results_offer_arrow_and_a_composable_relation(store: CostStore) -> None:
    rows = store.cost_by_model()
    table = rows.arrow()
    assert isinstance(table, pa.Table)
    assert table.column("total_cost_usd").type == pa.decimal128(38, 12)
    assert table.num_rows == len(rows)
    relation = rows.relation()
    assert relation.filter("call_count > 1").aggregate("count(*)").fetchall() == [(1,)]
    assert store.summary().arrow().num_rows == 1


def test_arrow_tables_match_what_duckdb_returns_for_the_same_sql(store: CostStore) -> None:
    results = [
        store.cost_by("feature"),
        store.daily_cost(BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=1), "Europe/Berlin"),
        store.summary(),
        store.top_calls(3),
        store.steps_for_workflow("none"),  # empty result: typed columns, no rows
        store.savings(),
    ]
    with store.connect() as connection:
        for result in results:
            query = result._require_source().query
            native = connection.sql(query.sql, params=list(query.params)).to_arrow_table()
            assert result.arrow().schema == native.schema
            assert result.arrow().equals(native)


def test_relation_is_a_snapshot_of_the_result(calls_db: CallsDB) -> None:
    calls_db.insert(call(cost_usd="1"))
    with CostStore(calls_db.path, hold_idle_s=0) as store:
        rows = store.cost_by("feature")
        calls_db.insert(call(cost_usd="2"))  # the store released the file: a writer gets in
        assert rows.relation().aggregate("sum(total_cost_usd)").fetchall() == [(D(1),)]
        assert store.summary().cost_usd == D(3)


def test_relation_on_a_callers_connection_joins_the_stored_calls(calls_db: CallsDB) -> None:
    calls_db.insert(call(feature="a", cost_usd="1"), call(feature="a", cost_usd="2"))
    connection = _storage.connect(calls_db.path)
    try:
        store = CostStore(connection)
        joined = store.cost_by("feature").relation().join(connection.table("llm_calls"), "key = feature")
        assert joined.aggregate("count(*)").fetchall() == [(2,)]
    finally:
        connection.close()


# -- holding the file only while querying ------------------------------------------------------------


def _released(store: CostStore) -> bool:
    return wait_until(lambda: not store.holds_file, what="the store to release the file")


def test_a_store_on_a_path_releases_the_file_after_its_queries(calls_db: CallsDB) -> None:
    calls_db.insert(call(cost_usd="1"))
    with CostStore(calls_db.path) as store:
        assert store.summary().cost_usd == D(1)
        assert _released(store)
        # A writer in this process can open the file (a held read-only handle would conflict with it).
        calls_db.insert(call(cost_usd="2"))
        assert store.summary().cost_usd == D(3)


def test_back_to_back_queries_share_one_open(calls_db: CallsDB) -> None:
    with CostStore(calls_db.path, hold_idle_s=60) as store:
        holder = store._access.holder
        assert holder is not None
        for _ in range(5):
            store.summary()
        assert holder.opens == 1
        assert store.holds_file
    assert not store.holds_file  # close() releases at once


def test_after_hold_max_the_store_steps_aside_before_the_next_query(calls_db: CallsDB) -> None:
    with CostStore(calls_db.path, hold_idle_s=60, hold_max_s=0) as store:
        holder = store._access.holder
        assert holder is not None
        store.summary()
        store.summary()
        assert holder.opens == 3  # the opening check, then a reopen before each query


def test_hold_idle_zero_closes_after_each_query(calls_db: CallsDB) -> None:
    with CostStore(calls_db.path, hold_idle_s=0) as store:
        store.cost_by_model()
        assert not store.holds_file
        with store.connect() as connection:
            assert store.holds_file
            assert connection.execute("SELECT count(*) FROM llm_calls").fetchone() == (0,)
        assert not store.holds_file


def test_a_path_store_has_no_lasting_connection_and_refuses_use_after_close(calls_db: CallsDB) -> None:
    store = CostStore(calls_db.path)
    with pytest.raises(StorageError, match=r"store\.connect\(\)"):
        _ = store.connection
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.summary()
    with pytest.raises(ValueError, match="hold_idle_s"):
        CostStore(calls_db.path, hold_idle_s=-1)


def test_budget_guard_on_a_path_does_not_keep_the_file(calls_db: CallsDB) -> None:
    calls_db.insert(call(org_id="o", cost_usd="5"))
    guard = BudgetGuard(calls_db.path, [Budget("month", "org", "month", 100)])
    try:
        assert guard.remaining("month", org="o", at=BASE_TIME + timedelta(hours=1)) == D(95)
        assert guard._owned is not None
        assert _released(guard._owned)  # type: ignore[arg-type]  # a CostStore
        # Nothing of the guard's is open: a read-only connection (another configuration) opens at once.
        _storage.connect(calls_db.path, read_only=True, timeout_s=0).close()
    finally:
        guard.close()


def test_read_only_store_refuses_writes_and_missing_file_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.duckdb"
    with pytest.raises(StorageError, match="no DuckDB file"):
        CostStore(missing)
    assert not missing.exists()


def test_store_over_an_existing_connection_leaves_it_open(calls_db: CallsDB) -> None:
    calls_db.insert(call(cost_usd="0.4"))
    connection = _storage.connect(calls_db.path)
    with CostStore(connection) as store:
        assert store.summary().cost_usd == D("0.4")
    assert connection.execute("SELECT 1").fetchone() == (1,)
    connection.close()


# -- savings, what-if, reprice ----------------------------------------------------------------------


def test_savings_counts_downgradable_calls(calls_db: CallsDB) -> None:
    calls_db.insert(
        call(
            cost_usd="0.3",
            cache_hit=True,
            cache_read_tokens=500,
            cache_saved_usd="0.0012",
            attributes='{"prompt.could_use_haiku": true}',
        ),
        call(cost_usd="0.2", attributes='{"model.recommendation": "claude-3-5-haiku-latest"}'),
        call(cost_usd="0.1", attributes='{"prompt.could_use_haiku": false}'),
    )
    with CostStore(calls_db.path) as store:
        savings = store.savings()
    assert (savings.downgradable_calls, savings.downgradable_cost_usd) == (2, D("0.5"))
    assert (savings.cache_saved_usd, savings.cache_read_tokens, savings.cache_hit_calls) == (
        D("0.0012"),
        500,
        1,
    )


def test_what_if_equals_pricing_every_call_on_the_target_model(
    calls_db: CallsDB, pricebook: PriceBook
) -> None:
    sonnet = dict(provider="anthropic", request_model="claude-sonnet-4-5")
    calls_db.insert(
        call(**sonnet, input_tokens=5000, cache_read_tokens=3000, cache_write_tokens=1000, output_tokens=400),
        call(**sonnet, input_tokens=900, output_tokens=100, start_time=BASE_TIME + timedelta(days=40)),
        # Above the 200k long-context threshold of sonnet: the tier price applies to the whole call.
        call(**sonnet, input_tokens=250_000, output_tokens=1000, cost_usd=None),
        call(
            **sonnet,
            input_tokens=100,
            cache_write_tokens=50,
            cache_write_1h_tokens=50,
            output_tokens=1,
            attributes='{"prompt.could_use_haiku": true}',
        ),
        call(request_model="gpt-4o", input_tokens=10_000, output_tokens=10),
    )
    with CostStore(calls_db.path) as store:
        result = store.what_if("claude-sonnet-4-5", "claude-sonnet-4-0", pricebook=pricebook)
        records = store.sql("SELECT * FROM llm_calls WHERE request_model = 'claude-sonnet-4-5'")
    expected = sum(
        pricebook.compute_cost(
            dataclasses.replace(_usage_of(r), request_model="claude-sonnet-4-0", response_model=None),
            at=r["start_time"],
        ).total_usd
        or D(0)
        for r in records
        if not r["cache_write_1h_tokens"]
    )
    assert (result.calls, result.unpriced_calls, result.downgradable_calls) == (4, 1, 1)
    assert result.actual_cost_usd == D("0.003")
    # 1-hour cache writes are priced at the 1h rate: add that call by hand.
    one_hour = pricebook.unit_prices("claude-sonnet-4-0", at=BASE_TIME)
    by_hand = (50 * one_hour.input_mtok + 50 * one_hour.cache_write_1h_mtok + 1 * one_hour.output_mtok) / D(
        1_000_000
    )
    assert result.projected_cost_usd == expected + by_hand


def test_what_if_unknown_target_model_raises(store: CostStore, pricebook: PriceBook) -> None:
    with pytest.raises(LookupError):
        store.what_if("gpt-4o", "no-such-model-xyz", pricebook=pricebook)


def _price_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text('[models."acme-coder-2-ft"]\ninput = 0.5\noutput = 1.5\n')
    return path


def test_reprice_prices_unpriced_rows_once_and_leaves_history(calls_db: CallsDB, tmp_path: Path) -> None:
    calls_db.insert(
        call(
            request_model="acme-coder-2-ft",
            provider=None,
            cost_usd=None,
            input_tokens=2000,
            output_tokens=1000,
        ),
        call(request_model="acme-coder-2-ft", provider=None, cost_usd=None, billable=False),
        call(request_model="still-unknown", cost_usd=None),
        call(request_model="acme-coder-2-ft", provider=None, cost_usd="7"),  # priced history
    )
    book = PriceBook.from_file(_price_file(tmp_path))
    with CostStore(calls_db.path, read_only=False) as store:
        dry = store.reprice(pricebook=book, dry_run=True)
        first = store.reprice(pricebook=book)
        second = store.reprice(pricebook=book)
        after = store.cost_by_model()
    assert (dry.rows_changed, dry.dry_run) == (2, True)
    assert (first.rows_examined, first.rows_changed, first.rows_newly_priced, first.rows_still_unpriced) == (
        3,
        2,
        2,
        1,
    )
    # 2000 * 0.5 / 1M + 1000 * 1.5 / 1M, plus the duplicate record at 1000 in / 200 out.
    assert first.usd_changed == D("0.0025") + D("0.0008")
    assert second.rows_changed == 0
    acme = next(r for r in after if r.key == "acme-coder-2-ft")
    assert acme.total_cost_usd == D("7.0025")  # the billable repriced call + untouched history
    assert acme.unpriced_calls == 0


def test_reprice_charges_one_hour_cache_writes_at_the_one_hour_rate(calls_db: CallsDB) -> None:
    # claude-opus-4: 10,000 tokens written to the 1-hour cache cost $30/MTok = $0.30 (Anthropic list
    # price; the 5-minute rate would give $0.1875).
    calls_db.insert(
        call(
            request_model="claude-opus-4",
            provider="anthropic",
            cost_usd=None,
            input_tokens=10_000,
            output_tokens=0,
            cache_write_tokens=10_000,
            cache_write_1h_tokens=10_000,
        )
    )
    with CostStore(calls_db.path, read_only=False) as store:
        store.reprice(pricebook=PriceBook())
        assert store.summary().cost_usd == D("0.30")


def test_reprice_include_priced_rewrites_history_only_when_asked(calls_db: CallsDB, tmp_path: Path) -> None:
    calls_db.insert(call(request_model="acme-coder-2-ft", provider=None, cost_usd="7"))
    book = PriceBook.from_file(_price_file(tmp_path))
    with CostStore(calls_db.path, read_only=False) as store:
        assert store.reprice(pricebook=book).rows_changed == 0
        result = store.reprice(pricebook=book, include_priced=True)
        assert store.summary().cost_usd == D("0.0008")
    assert result.usd_changed == D("0.0008") - D(7)


def test_reprice_needs_a_writable_store(calls_db: CallsDB, pricebook: PriceBook) -> None:
    with CostStore(calls_db.path) as store, pytest.raises(StorageError, match="read_only=False"):
        store.reprice(pricebook=pricebook)


def test_budget_delegations_read_the_same_rows(calls_db: CallsDB) -> None:
    now = datetime.now(UTC)
    calls_db.insert(call(org_id="o1", cost_usd="3", start_time=now - timedelta(minutes=1)))
    budget = Budget.per_org_daily(10)
    with CostStore(calls_db.path) as store:
        assert store.remaining(budget, "o1", at=now) == D(7)
        assert any(status.spent_usd == D(3) for status in store.check_budgets([budget], at=now))


def test_dropping_a_store_releases_the_file_at_once(calls_db: CallsDB) -> None:
    # Released by the thread that drops the store, not later by the holder's daemon thread (which
    # could otherwise run the connection's destructor while the interpreter finalizes: duckdb aborts).
    store = CostStore(calls_db.path, hold_idle_s=60)
    store.summary()
    holder = store._access.holder  # the store's file handle: observed, not driven
    assert holder is not None
    assert holder.held
    del store
    gc.collect()
    assert not holder.held  # although its 60 s idle hold has not elapsed


def _record_alert(path: Path, kind: str, threshold: str, fired_at: datetime) -> None:
    with contextlib.closing(_storage.connect(path)) as connection:
        connection.execute(_schema.CREATE_ALERTS)
        connection.execute(
            f"INSERT INTO {_schema.ALERTS_TABLE} (budget, entity, window_key, kind, threshold, limit_usd, "
            "spent_usd, fired_at, message) VALUES ('org-daily', 'o1', 'w', ?, ?, 100, 80, ?, 'm')",
            [kind, threshold, fired_at],
        )


def test_alerts_before_any_budget_fired_is_an_empty_history_with_its_columns(calls_db: CallsDB) -> None:
    with CostStore(calls_db.path) as store:
        history = store.alerts()
    assert list(history) == []
    assert history.arrow().column_names == list(ALERT_FIELDS)


def test_alerts_lists_the_history_newest_first_and_filters_it(calls_db: CallsDB) -> None:
    _record_alert(calls_db.path, "threshold", "0.5", BASE_TIME)
    _record_alert(calls_db.path, "threshold", "0.8", BASE_TIME + timedelta(hours=1))
    _record_alert(calls_db.path, "unpriced", "0", BASE_TIME + timedelta(hours=2))
    with CostStore(calls_db.path) as store:
        history = store.alerts()
        assert [(a.kind, a.threshold) for a in history] == [
            ("unpriced", D(0)),
            ("threshold", D("0.8")),
            ("threshold", D("0.5")),
        ]
        assert history[0].fired_at == BASE_TIME + timedelta(hours=2)
        assert history[0].fired_at.tzinfo is UTC
        assert history[0].limit_usd == D(100)
        assert [a.threshold for a in store.alerts(kind="threshold", limit=1)] == [D("0.8")]
        assert len(store.alerts(since=BASE_TIME + timedelta(hours=1))) == 2
        assert list(store.alerts(budget="another")) == []
        with pytest.raises(ValueError, match="naive"):
            store.alerts(since=datetime(2026, 1, 1))  # noqa: DTZ001 - the naive time is the point
        with pytest.raises(ValueError, match="limit"):
            store.alerts(limit=-1)


def test_half_open_window_counts_a_call_at_the_boundary_in_the_later_window(calls_db: CallsDB) -> None:
    assert half_open_window(None, None) == ((), ())
    assert half_open_window(BASE_TIME, None) == (("start_time >= ?",), (BASE_TIME,))
    calls_db.insert(call(cost_usd="1", start_time=BASE_TIME))
    with CostStore(calls_db.path) as store:
        assert store.summary(BASE_TIME - timedelta(hours=1), BASE_TIME).call_count == 0
        assert store.summary(BASE_TIME, BASE_TIME + timedelta(hours=1)).call_count == 1
