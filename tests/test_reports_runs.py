"""Agent runs, conversations, token splits, the session call list and latency, exact on a known dataset."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import duckdb
import pytest
from opentelemetry.sdk.trace import TracerProvider

from conftest import BASE_TIME, CallsDB, call
from otel_llm_cost.cli.main import main
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.query import CostStore
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

T1, T2 = "a" * 32, "b" * 32
MINUTE = timedelta(minutes=1)


@pytest.fixture
def db(calls_db: CallsDB) -> Path:
    calls_db.insert(
        # planner, trace 1: two priced calls, one reading 400 tokens from the prompt cache.
        call(
            agent="planner",
            trace_id=T1,
            cost_usd="0.01",
            session_id="s-1",
            conversation_id="c-1",
            cache_read_tokens=400,
            cache_write_tokens=100,
            time_to_first_token_ms=120.0,
        ),
        call(
            agent="planner",
            trace_id=T1,
            cost_usd="0.02",
            session_id="s-1",
            conversation_id="c-1",
            start_time=BASE_TIME + MINUTE,
            provider="azure",
            duration_ms=1000.0,
        ),
        # writer, trace 1: a reasoning model.
        call(
            agent="writer",
            trace_id=T1,
            cost_usd="0.05",
            session_id="s-1",
            conversation_id="c-1",
            request_model="o3",
            output_tokens=700,
            reasoning_tokens=500,
            start_time=BASE_TIME + timedelta(seconds=30),
        ),
        # planner again, trace 2: its price is unknown.
        call(
            agent="planner",
            trace_id=T2,
            cost_usd=None,
            request_model="mystery",
            conversation_id="c-2",
            start_time=BASE_TIME + 10 * MINUTE,
        ),
        # Not an agent's call; and a duplicate record, never counted.
        call(cost_usd="1", conversation_id="c-2", start_time=BASE_TIME + 20 * MINUTE),
        call(agent="planner", trace_id=T1, cost_usd="9", billable=False),
    )
    return calls_db.path


def test_agent_runs_one_row_per_agent_and_trace(db: Path) -> None:
    with CostStore(db) as store:
        runs = store.agent_runs()
        planner_only = store.agent_runs(agent="planner", limit=1)
        later = store.agent_runs(BASE_TIME + 5 * MINUTE, None)
    assert [(r.agent, r.trace_id, r.started_at) for r in runs] == [
        ("planner", T1, BASE_TIME),
        ("writer", T1, BASE_TIME + timedelta(seconds=30)),
        ("planner", T2, BASE_TIME + 10 * MINUTE),
    ]
    first, writer, unpriced = runs
    assert (first.call_count, first.total_cost_usd, first.unpriced_calls) == (2, D("0.03"), 0)
    assert (first.input_tokens, first.output_tokens, first.total_tokens) == (2000, 400, 2400)
    assert (first.cache_read_tokens, first.cache_write_tokens) == (400, 100)
    assert first.cache_hit_rate == 0.8
    assert first.ended_at == BASE_TIME + MINUTE + timedelta(seconds=1)
    assert first.latency_ms == 1800.0
    assert (writer.reasoning_tokens, writer.output_tokens, writer.total_cost_usd) == (500, 700, D("0.05"))
    assert (unpriced.total_cost_usd, unpriced.unpriced_calls) == (None, 1)
    assert [(r.agent, r.trace_id) for r in planner_only] == [("planner", T1)]
    assert [r.trace_id for r in later] == [T2]
    with pytest.raises(ValueError, match="limit"):
        CostStore(db).agent_runs(limit=0)


def test_conversation_dimension_with_token_split_and_cache_hit_rate(db: Path) -> None:
    with CostStore(db) as store:
        rows = store.cost_by("conversation")
        alias = store.cost_by("conversation_id")
    assert rows == alias
    assert [(r.key, r.total_cost_usd, r.call_count, r.unpriced_calls) for r in rows] == [
        ("c-2", D("1"), 2, 1),
        ("c-1", D("0.08"), 3, 0),
    ]
    c1 = rows[1]
    assert (c1.input_tokens, c1.output_tokens, c1.reasoning_tokens) == (3000, 1100, 500)
    assert (c1.cache_read_tokens, c1.cache_write_tokens, c1.total_tokens) == (400, 100, 4100)
    assert c1.cache_hit_rate == 0.8
    assert c1.cache_input_share == pytest.approx(400 / 3000)
    assert c1.provider is None  # only model rows name their providers


def test_model_rows_name_their_providers(db: Path) -> None:
    with CostStore(db) as store:
        models = {r.key: r.provider for r in store.cost_by_model()}
    assert models == {"gpt-4o-mini": "azure, openai", "o3": "openai", "mystery": "openai"}


def test_session_summary_lists_calls_and_flags_unpriced_in_the_average(calls_db: CallsDB) -> None:
    calls_db.insert(
        call(session_id="s", cost_usd="0.03", provider="openai", start_time=BASE_TIME),
        call(session_id="s", cost_usd=None, request_model="mystery", start_time=BASE_TIME + MINUTE),
        call(
            session_id="s",
            cost_usd="0.06",
            provider="anthropic",
            request_model="claude-haiku-4-5",
            start_time=BASE_TIME + 2 * MINUTE,
            input_tokens=10,
            output_tokens=5,
        ),
    )
    with CostStore(calls_db.path) as store:
        session = store.session_summary("s")
        empty = store.session_summary("nobody")
    # Over all three calls (ExLLM's Cost.Session): $0.09 / 3, with one unpriced call flagged.
    assert session.avg_cost_per_call_usd == D("0.03")
    assert session.unpriced_calls == 1
    assert [(c.start_time, c.model, c.provider, c.total_tokens, c.cost_usd) for c in session.calls] == [
        (BASE_TIME, "gpt-4o-mini", "openai", 1200, D("0.03")),
        (BASE_TIME + MINUTE, "mystery", "openai", 1200, None),
        (BASE_TIME + 2 * MINUTE, "claude-haiku-4-5", "anthropic", 15, D("0.06")),
    ]
    text = session.format("detailed")
    # One money format per output: three places here, which the smallest figure (per 1k tokens) needs.
    assert "per call  $0.030 (+1 unpriced)" in text
    assert re.search(r"^claude-haiku-4-5\s+anthropic\s+\$0\.060\s+1\s+15$", text, re.MULTILINE)
    assert re.search(r"^2025-01-15T12:01:00\+00:00\s+mystery\s+openai\s+1,000\s+200\s+unpriced$", text, re.M)
    assert (empty.avg_cost_per_call_usd, list(empty.calls)) == (None, [])
    for style in ("detailed", "compact", "table"):
        assert empty.format(style) == "session nobody: no calls recorded"  # type: ignore[arg-type]


def test_latency_and_time_to_first_token_reach_steps_and_calls(db: Path) -> None:
    with CostStore(db) as store:
        top = store.top_calls(10)
    first = next(c for c in top if c.time_to_first_token_ms is not None)
    assert (first.time_to_first_token_ms, first.latency_ms, first.conversation_id) == (120.0, 800.0, "c-1")


def test_openlit_time_to_first_token_is_stored_in_ms(tmp_path: Path, pricebook: PriceBook) -> None:
    db = tmp_path / "ttft.duckdb"
    provider = TracerProvider()
    provider.add_span_processor(LLMCostSpanProcessor(DuckDBSpanExporter(db), pricing=pricebook))
    provider.get_tracer("openlit.otel.tracing").start_span(
        "chat gpt-4o",
        attributes={
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 10,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
            sc.GEN_AI_SERVER_TIME_TO_FIRST_TOKEN: 0.25,  # seconds
            sc.GEN_AI_CONVERSATION_ID: "conv-otel",
        },
    ).end()
    provider.shutdown()
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        row = con.execute(
            f"SELECT time_to_first_token_ms, conversation_id FROM {_schema.CALLS_TABLE}"
        ).fetchone()
    assert row == (250.0, "conv-otel")


def test_a_version_1_file_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    new_columns = ("conversation_id", "time_to_first_token_ms", "unbilled_cost_usd", "service_tier")
    with contextlib.closing(duckdb.connect(str(path))) as con:
        con.execute(_schema.CREATE_META)
        con.execute("INSERT INTO otel_llm_cost_meta VALUES ('schema_version', '1')")
        v1 = [f"{name} {sql_type}" for name, sql_type, _ in _schema.CALL_COLUMNS if name not in new_columns]
        con.execute(f"CREATE TABLE {_schema.CALLS_TABLE} ({', '.join(v1)})")
        con.execute(
            f"INSERT INTO {_schema.CALLS_TABLE} (span_id, billable) VALUES ('0000000000000001', true)"
        )
    with contextlib.closing(_storage.connect(path, read_only=True)) as con:
        assert _storage.schema_version(con) == _schema.SCHEMA_VERSION == 2
        names = [r[0] for r in con.execute(f"DESCRIBE {_schema.CALLS_TABLE}").fetchall()]
        rows = con.execute(f"SELECT span_id, conversation_id FROM {_schema.CALLS_TABLE}").fetchall()
    assert tuple(names) == _schema.CALL_COLUMN_NAMES
    assert rows == [("0000000000000001", None)]


def test_cli_agents_and_by_conversation(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agents", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^planner\s+2025-01-15T12:00:00\+00:00\s+2\s+2,000\s+400\s+\$0\.03\s+80\.0%", out, re.M)
    assert re.search(r"^planner\s+2025-01-15T12:10:00\+00:00\s+1\s+1,000\s+200\s+unpriced", out, re.M)
    assert main(["agents", "--db", str(db), "--format", "json", "--agent", "writer"]) == 0
    [writer] = json.loads(capsys.readouterr().out)
    assert (writer["total_cost_usd"], writer["reasoning_tokens"], writer["trace_id"]) == (
        "0.050000000000",
        500,
        T1,
    )
    assert main(["report", "--db", str(db), "--by", "conversation", "--format", "json"]) == 0
    by = json.loads(capsys.readouterr().out)["by"]["conversation"]
    assert [(r["key"], r["call_count"], r["cache_read_tokens"], r["cache_hit_rate"]) for r in by] == [
        ("c-2", 2, 0, 0.0),
        ("c-1", 3, 400, 0.8),
    ]
