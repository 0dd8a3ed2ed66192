"""DuckDBSpanExporter: typed rows, content policy, idempotency, listeners, lifecycle, threads (real files)."""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import hypothesis.strategies as st
import pyarrow as pa
import pytest
from hypothesis import given, settings
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_llm_cost._logging import ERROR_COUNTS, reset_log_once
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.exporter import CommitInfo, DuckDBSpanExporter
from otel_llm_cost.storage.rows import build_rows, is_content_attribute

_ids = itertools.count(1)
START_NS = 1_736_942_400_123_456_789  # 2025-01-15T12:00:00.123456789Z
_ROUNDED_US = 1_000 if int(duckdb.__version__.split(".")[0]) >= 2 else 0
RESOURCE = Resource.create({sc.SERVICE_NAME: "checkout"})  # built once: Resource.create runs detectors


def enriched_attributes(**extra: Any) -> dict[str, Any]:
    """What LLMCostSpanProcessor leaves on a priced Anthropic chat span."""
    attributes: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "anthropic",
        sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-0",
        sc.GEN_AI_RESPONSE_MODEL: "claude-sonnet-4-20250514",
        sc.GEN_AI_RESPONSE_ID: "msg_01",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 1200,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
        "gen_ai.request.temperature": 0.2,
        sc.LLM_MODEL: "claude-sonnet-4-20250514",
        sc.LLM_PROVIDER_NAME: "anthropic",
        sc.LLM_OPERATION: "chat",
        sc.LLM_CONVENTION: "gen_ai",
        sc.LLM_TOKENS_INPUT: 1200,
        sc.LLM_TOKENS_OUTPUT: 300,
        sc.LLM_TOKENS_TOTAL: 1500,
        sc.LLM_TOKENS_CACHE_READ: 1000,
        sc.LLM_TOKENS_CACHE_WRITE: 100,
        sc.LLM_TOKENS_CACHE_WRITE_1H: 40,
        sc.LLM_TOKENS_REASONING: 50,
        sc.LLM_COST_USD: 0.005232,
        sc.GEN_AI_USAGE_COST_MIRROR: 0.005232,
        sc.LLM_COST_INPUT_USD: 0.0003,
        sc.LLM_COST_CACHE_READ_USD: 0.0003,
        sc.LLM_COST_CACHE_WRITE_USD: 0.000432,
        sc.LLM_COST_OUTPUT_USD: 0.0045,
        sc.LLM_COST_STATUS: "priced",
        sc.LLM_COST_SOURCE: "genai-prices 0.2.3",
        sc.LLM_COST_MODEL_ID: "claude-sonnet-4-0",
        sc.LLM_COST_PROVIDER_ID: "anthropic",
        sc.LLM_COST_BILLABLE: True,
        sc.LLM_CACHE_HIT: True,
        sc.LLM_CACHE_TOKENS_SAVED: 1000,
        sc.LLM_CACHE_COST_SAVED_USD: 0.0027,
        sc.COST_FEATURE: "document_analysis",
        sc.COST_AGENT: "researcher",
        sc.COST_USER_ID: "h:0123456789abcdef0123456789abcdef",
        sc.COST_ORG_ID: "org_123",
        sc.COST_SESSION_ID: "s-1",
        sc.COST_WORKFLOW_ID: "wf-9",
        sc.COST_WORKFLOW_LABEL: "invoice",
        sc.COST_STEP: "extract",
        "cost.team": "search",
        sc.GEN_AI_REQUEST_STREAM: True,
    }
    attributes.update(extra)
    return attributes


def make_span(
    attributes: Mapping[str, Any] | None = None,
    *,
    name: str = "chat claude-sonnet-4-0",
    span_id: int | None = None,
    trace_id: int | None = None,
    parent_id: int | None = None,
    start_ns: int = START_NS,
    duration_ns: int = 1_500_000_000,
    status: Status | None = None,
) -> ReadableSpan:
    """A finished span as the SDK hands it to exporters (no provider needed)."""
    n = next(_ids)
    context = SpanContext(
        trace_id or (0xABC << 64) + n, span_id or n, is_remote=False, trace_flags=TraceFlags(1)
    )
    parent = SpanContext(context.trace_id, parent_id, is_remote=False) if parent_id else None
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent,
        resource=RESOURCE,
        attributes=dict(enriched_attributes() if attributes is None else attributes),
        kind=SpanKind.CLIENT,
        status=status or Status(StatusCode.UNSET),
        start_time=start_ns,
        end_time=start_ns + duration_ns,
        instrumentation_scope=InstrumentationScope("opentelemetry.instrumentation.anthropic"),
    )


def read_calls(path: Path) -> list[dict[str, Any]]:
    with contextlib.closing(_storage.connect(path, read_only=True)) as con:
        table = con.sql(
            f"SELECT * REPLACE (epoch_ns(start_time) AS start_time, epoch_ns(end_time) AS end_time) "
            f"FROM {_schema.CALLS_TABLE} ORDER BY start_time, span_id"
        ).to_arrow_table()
    return table.to_pylist()


def count(path: Path, table: str = _schema.CALLS_TABLE) -> int:
    with contextlib.closing(_storage.connect(path, read_only=True)) as con:
        row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "calls.duckdb"


@pytest.fixture
def exporter(db: Path) -> Iterator[DuckDBSpanExporter]:
    exp = DuckDBSpanExporter(db, lock_timeout_s=5)
    yield exp
    exp.shutdown()


@pytest.fixture(autouse=True)
def _fresh_log_once() -> Iterator[None]:
    reset_log_once()
    yield
    reset_log_once()


def test_an_enriched_span_becomes_one_typed_row_with_every_column(
    exporter: DuckDBSpanExporter, db: Path
) -> None:
    span = make_span(parent_id=0x42, status=Status(StatusCode.ERROR, "rate limited"))
    assert exporter.export([span]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    [row] = read_calls(db)
    assert row == {
        "span_id": f"{span.context.span_id:016x}",
        "trace_id": f"{span.context.trace_id:032x}",
        "parent_span_id": "0000000000000042",
        "service_name": "checkout",
        "scope_name": "opentelemetry.instrumentation.anthropic",
        "span_name": "chat claude-sonnet-4-0",
        # DuckDB keeps microseconds: duckdb 2.0 rounds nanoseconds, 1.5 truncates them.
        "start_time": 1_736_942_400_123_456_000 + _ROUNDED_US,
        "end_time": 1_736_942_401_623_456_000 + _ROUNDED_US,
        "duration_ms": 1500.0,
        "status_code": "ERROR",
        "status_message": "rate limited",
        "operation": "chat",
        "provider": "anthropic",
        "request_model": "claude-sonnet-4-0",
        "response_model": "claude-sonnet-4-20250514",
        "upstream_model": "claude-sonnet-4-0",
        "deployment": None,
        "convention": "gen_ai",
        "input_tokens": 1200,
        "output_tokens": 300,
        "total_tokens": 1500,
        "cache_read_tokens": 1000,
        "cache_write_tokens": 100,
        "cache_write_1h_tokens": 40,
        "reasoning_tokens": 50,
        "cost_usd": Decimal("0.005232000000"),
        "input_cost_usd": Decimal("0.000300000000"),
        "cache_read_cost_usd": Decimal("0.000300000000"),
        "cache_write_cost_usd": Decimal("0.000432000000"),
        "output_cost_usd": Decimal("0.004500000000"),
        "cost_status": "priced",
        "cost_reason": None,
        "price_source": "genai-prices 0.2.3",
        "external_cost_usd": None,
        "billable": True,
        "duplicate_of": None,
        "cache_hit": True,
        "cache_tokens_saved": 1000,
        "cache_saved_usd": Decimal("0.002700000000"),
        "feature": "document_analysis",
        "agent": "researcher",
        "user_id": "h:0123456789abcdef0123456789abcdef",
        "org_id": "org_123",
        "session_id": "s-1",
        "workflow_id": "wf-9",
        "workflow_label": "invoice",
        "step": "extract",
        "tags": [("team", "search")],
        "response_id": "msg_01",
        "streaming": True,
        "from_cache": None,
        "attributes": row["attributes"],
        "conversation_id": None,
        "time_to_first_token_ms": None,
        "unbilled_cost_usd": None,
        "service_tier": None,
    }
    # Remaining attributes only: what became a column is not repeated.
    assert json.loads(row["attributes"]) == {
        sc.GEN_AI_USAGE_INPUT_TOKENS: 1200,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
        "gen_ai.request.temperature": 0.2,
        sc.LLM_COST_PROVIDER_ID: "anthropic",
    }


def test_unpriced_call_keeps_null_cost_and_its_reason(exporter: DuckDBSpanExporter, db: Path) -> None:
    attributes = enriched_attributes(**{sc.LLM_COST_STATUS: "unpriced", sc.LLM_COST_REASON: "unknown model"})
    for name in (sc.LLM_COST_USD, sc.GEN_AI_USAGE_COST_MIRROR, sc.LLM_COST_INPUT_USD, sc.LLM_COST_OUTPUT_USD):
        del attributes[name]
    exporter.export([make_span(attributes)])
    [row] = read_calls(db)
    assert (row["cost_usd"], row["output_cost_usd"], row["cost_status"], row["cost_reason"]) == (
        None,
        None,
        "unpriced",
        "unknown model",
    )


def test_duplicate_record_is_stored_not_billable(exporter: DuckDBSpanExporter, db: Path) -> None:
    attributes = enriched_attributes(
        **{sc.LLM_COST_BILLABLE: False, sc.LLM_COST_DUPLICATE_OF: "00000000000000aa"}
    )
    exporter.export([make_span(attributes)])
    [row] = read_calls(db)
    assert (row["billable"], row["duplicate_of"]) == (False, "00000000000000aa")


@settings(max_examples=300, deadline=None)
@given(st.decimals(min_value=0, max_value=Decimal("999.999999999999"), places=12))
def test_float_cost_attribute_round_trips_to_the_exact_decimal(cost: Decimal) -> None:
    # semconv: llm.cost_usd is a float; storage re-reads it as DECIMAL(18,12), exact below $1000.
    batch = build_rows(
        [make_span(enriched_attributes(**{sc.LLM_COST_USD: float(cost)}))],
        enrich=None,
        capture_content=False,
        store_all_spans=False,
    )
    assert batch.calls["cost_usd"].to_pylist() == [cost]


def test_values_that_do_not_fit_their_column_become_null_without_losing_the_batch(
    exporter: DuckDBSpanExporter, db: Path
) -> None:
    odd = enriched_attributes(
        **{
            sc.LLM_TOKENS_INPUT: "12",  # numeric string: kept as the number
            sc.LLM_TOKENS_OUTPUT: "many",
            sc.LLM_TOKENS_TOTAL: 2**70,
            sc.LLM_COST_USD: 5e6,  # beyond DECIMAL(18,12)
            sc.LLM_COST_OUTPUT_USD: float("nan"),
            "custom.ratio": float("inf"),
        }
    )
    assert exporter.export([make_span(odd), make_span()]) is SpanExportResult.SUCCESS
    first, second = read_calls(db)
    assert (first["input_tokens"], first["output_tokens"], first["total_tokens"]) == (12, None, None)
    assert (first["cost_usd"], first["output_cost_usd"]) == (None, None)
    # Stored, not dropped: flagged invalid with the first rule it broke.
    assert first["cost_status"] == "invalid"
    assert first["cost_reason"].startswith("invalid: output_tokens 'many'")
    assert json.loads(first["attributes"])["custom.ratio"] == "inf"
    assert second["cost_usd"] == Decimal("0.005232000000")


CONTENT = {
    "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"my password is x"}]}]',
    "gen_ai.output.messages": "[]",
    "gen_ai.system_instructions": "be nice",
    "gen_ai.prompt.0.content": "hello",
    "gen_ai.prompt.0.role": "user",
    "gen_ai.completion.0.content": "hi",
    "llm.input_messages.0.message.content": "hello",
    "llm.output_messages.0.message.content": "hi",
    "input.value": "hello",
    "output.value": "hi",
    "traceloop.entity.input": "{}",
}


@pytest.mark.parametrize("capture_content", [False, True])
def test_prompt_and_completion_text_is_dropped_unless_opted_in(db: Path, capture_content: bool) -> None:
    exporter = DuckDBSpanExporter(db, capture_content=capture_content, store_all_spans=True)
    exporter.export([make_span(enriched_attributes(**CONTENT, **{sc.USER_ID: "alice@example.com"}))])
    exporter.shutdown()
    [row] = read_calls(db)
    stored = json.loads(row["attributes"])
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        [(span_attributes,)] = con.execute(f"SELECT attributes FROM {_schema.SPANS_TABLE}").fetchall()
    for attributes in (stored, json.loads(span_attributes)):
        kept = {name for name in CONTENT if name in attributes}
        assert kept == (set(CONTENT) if capture_content else set())
        assert sc.USER_ID not in attributes  # raw user ids never reach storage
    assert "gen_ai.usage.input_tokens" in stored  # counts are not content


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("gen_ai.prompt", True),
        ("gen_ai.prompt.3.content", True),
        ("gen_ai.usage.prompt_tokens", False),
        ("llm.prompts.0.prompt.text", True),
        ("llm.token_count.prompt", False),
        ("input.value", True),
        ("input.mime_type", False),
        ("gen_ai.request.model", False),
    ],
)
def test_content_attribute_names(name: str, content: bool) -> None:
    assert is_content_attribute(name) is content


def test_re_exporting_a_batch_never_duplicates_rows(exporter: DuckDBSpanExporter, db: Path) -> None:
    spans = [make_span(start_ns=START_NS + i * 1_000_000) for i in range(50)]
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export([*spans[10:20], make_span()]) is SpanExportResult.SUCCESS
    assert exporter.export(spans + spans) is SpanExportResult.SUCCESS  # duplicates inside one batch too
    exporter.shutdown()
    assert count(db) == 51


def test_non_llm_spans_go_only_to_the_spans_table_when_asked(db: Path) -> None:
    exporter = DuckDBSpanExporter(db, store_all_spans=True)
    http = make_span({"http.request.method": "GET"}, name="GET /", parent_id=7)
    llm = make_span()
    exporter.export([http, llm])
    exporter.shutdown()
    assert count(db, _schema.CALLS_TABLE) == 1
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        rows = con.execute(
            f"SELECT span_name, kind, parent_span_id FROM {_schema.SPANS_TABLE} ORDER BY 1"
        ).fetchall()
    assert rows == [("GET /", "CLIENT", "0000000000000007"), ("chat claude-sonnet-4-0", "CLIENT", None)]


def test_spans_table_stays_empty_by_default(exporter: DuckDBSpanExporter, db: Path) -> None:
    exporter.export([make_span({"http.request.method": "GET"}), make_span()])
    exporter.shutdown()
    assert (count(db, _schema.CALLS_TABLE), count(db, _schema.SPANS_TABLE)) == (1, 0)


def test_commit_listener_sees_the_rows_it_committed_and_a_usable_cursor(
    exporter: DuckDBSpanExporter, db: Path
) -> None:
    seen: list[tuple[list[str], int]] = []

    def listener(info: CommitInfo) -> None:
        stored = info.connection.execute(f"SELECT count(*) FROM {_schema.CALLS_TABLE}").fetchone()
        assert stored is not None
        seen.append((info.rows["span_id"].to_pylist(), stored[0]))

    exporter.add_commit_listener(listener)
    spans = [make_span(), make_span()]
    exporter.export(spans)
    assert exporter.force_flush()  # the writer thread commits; one commit each here
    exporter.export([spans[0], make_span(span_id=0xBEEF)])  # one already stored
    assert exporter.force_flush()
    assert seen == [
        ([f"{s.context.span_id:016x}" for s in spans], 2),
        (["000000000000beef"], 3),
    ]
    assert isinstance(exporter.export([]), SpanExportResult)


def test_a_failing_listener_is_logged_once_and_never_raised(
    exporter: DuckDBSpanExporter, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(info: CommitInfo) -> None:
        raise RuntimeError("budget sink down")

    calls: list[int] = []
    exporter.add_commit_listener(broken)
    exporter.add_commit_listener(lambda info: calls.append(info.rows.num_rows))
    with caplog.at_level(logging.ERROR, logger="otel_llm_cost"):
        assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
        assert exporter.force_flush()
        assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
        assert exporter.force_flush()
    assert calls == [1, 1]
    assert ERROR_COUNTS["exporter.commit_listener"] == 2
    assert len([r for r in caplog.records if "budget sink down" in r.getMessage()]) == 1
    assert count(db) == 2


def test_shutdown_is_idempotent_and_export_after_it_fails(db: Path) -> None:
    exporter = DuckDBSpanExporter(db)
    assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    exporter.shutdown()
    assert exporter.export([make_span()]) is SpanExportResult.FAILURE
    assert exporter.force_flush() is True
    assert count(db) == 1


def test_the_file_is_released_between_bursts_so_other_connections_can_open_it(db: Path) -> None:
    exporter = DuckDBSpanExporter(db, hold_idle_s=0.05)
    exporter.export([make_span()])
    # A different configuration than the exporter's read-write connection is refused while it holds
    # the file; opening read-only succeeds once the closer thread has released it.
    with contextlib.closing(_storage.connect(db, read_only=True, timeout_s=10)) as con:
        assert con.execute(f"SELECT count(*) FROM {_schema.CALLS_TABLE}").fetchone() == (1,)
    assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert count(db) == 2


def test_concurrent_exports_from_many_threads(db: Path) -> None:
    exporter = DuckDBSpanExporter(db)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # export() on every application thread
    tracer = provider.get_tracer("test")

    def work(thread: int) -> None:
        for i in range(25):
            with tracer.start_as_current_span(f"chat {thread}-{i}", attributes=enriched_attributes()):
                pass

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.shutdown()
    assert count(db) == 200
    assert not ERROR_COUNTS


def test_works_behind_a_batch_span_processor_with_a_caller_owned_connection(tmp_path: Path) -> None:
    con = _storage.connect(tmp_path / "owned.duckdb")
    exporter = DuckDBSpanExporter(connection=con)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64))
    tracer = provider.get_tracer("test")
    for i in range(300):
        with tracer.start_as_current_span(f"chat {i}", attributes=enriched_attributes()):
            pass
    provider.shutdown()
    assert con.execute(f"SELECT count(*) FROM {_schema.CALLS_TABLE}").fetchone() == (300,)
    assert con.execute("SELECT 1").fetchone() == (1,)  # still open: the caller owns it
    con.close()


def test_defaults_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LLM_COST_DUCKDB_PATH", str(tmp_path / "env.duckdb"))
    monkeypatch.setenv("OTEL_LLM_COST_STORE_ALL_SPANS", "true")
    monkeypatch.setenv("OTEL_LLM_COST_CAPTURE_CONTENT", "yes")
    monkeypatch.setenv("OTEL_LLM_COST_LOCK_TIMEOUT_SECONDS", "0.25")
    monkeypatch.setenv("OTEL_LLM_COST_SPOOL_DIR", str(tmp_path / "spool"))
    exporter = DuckDBSpanExporter()
    assert exporter.path == tmp_path / "env.duckdb"
    assert (exporter.store_all_spans, exporter.capture_content, exporter.lock_timeout_s) == (True, True, 0.25)
    assert exporter.spool is not None
    assert exporter.spool.directory == tmp_path / "spool"
    # An explicit argument beats the environment.
    explicit = DuckDBSpanExporter(tmp_path / "arg.duckdb", store_all_spans=False, lock_timeout_s=2)
    assert (explicit.path, explicit.store_all_spans, explicit.lock_timeout_s) == (
        tmp_path / "arg.duckdb",
        False,
        2,
    )
    assert explicit.spool is not None
    assert explicit.spool.directory == tmp_path / "spool"
    exporter.shutdown()
    explicit.shutdown()


def test_bad_arguments_raise_at_construction(tmp_path: Path) -> None:
    con = _storage.connect(tmp_path / "x.duckdb")
    with pytest.raises(ValueError, match="either a path or a connection"):
        DuckDBSpanExporter(tmp_path / "y.duckdb", connection=con)
    with pytest.raises(ValueError, match="lock_timeout_s"):
        DuckDBSpanExporter(tmp_path / "y.duckdb", lock_timeout_s=-1)
    con.close()


def test_rows_table_matches_the_schema_contract() -> None:
    batch = build_rows([make_span()], enrich=None, capture_content=False, store_all_spans=True)
    assert batch.calls.column_names == list(_schema.CALL_COLUMN_NAMES)
    assert batch.spans is not None
    assert batch.spans.column_names == [name for name, _, _ in _schema.SPAN_COLUMNS]
    assert isinstance(batch.calls, pa.Table)


def test_a_batch_mixing_attribute_name_sets_keeps_each_span_its_own_values() -> None:
    # Rows are gathered per set of attribute names (one plan per instrumentation's shape): spans of
    # different shapes interleaved in one batch must still get their own values, in span order.
    minimal = {sc.LLM_COST_STATUS: "unpriced", sc.GEN_AI_SYSTEM: "openai", "cost.team": 7}
    other_convention = enriched_attributes(**{sc.LLM_COST_BILLABLE: False, "extra.key": "x"})
    del other_convention[sc.LLM_PROVIDER_NAME]  # provider now comes from gen_ai.provider.name
    spans = [make_span(), make_span(minimal), make_span(other_convention), make_span()]
    calls = build_rows(spans, enrich=None, capture_content=False, store_all_spans=False).calls
    assert calls["span_id"].to_pylist() == [f"{span.context.span_id:016x}" for span in spans]
    assert calls["billable"].to_pylist() == [True, True, False, True]  # absent means billable
    assert calls["provider"].to_pylist() == ["anthropic", "openai", "anthropic", "anthropic"]
    assert calls["input_tokens"].to_pylist() == [1200, None, 1200, 1200]
    assert calls["tags"].to_pylist() == [[("team", "search")], [("team", "7")]] + [[("team", "search")]] * 2
    documents = [json.loads(text) for text in calls["attributes"].to_pylist()]
    assert documents[1] == {}
    assert documents[2]["extra.key"] == "x"
    assert "extra.key" not in documents[0]


def test_spans_sharing_a_span_id_in_different_traces_are_both_rows_and_a_repeat_is_one() -> None:
    # Span ids are checked for uniqueness in one pass first; a collision falls back to (trace, span).
    first, other_trace = make_span(span_id=77, trace_id=1), make_span(span_id=77, trace_id=2)
    spans = [first, other_trace, make_span(), first]
    calls = build_rows(spans, enrich=None, capture_content=False, store_all_spans=False).calls
    assert calls["trace_id"].to_pylist()[:2] == [f"{1:032x}", f"{2:032x}"]
    assert calls["span_id"].to_pylist() == [f"{77:016x}", f"{77:016x}", f"{spans[2].context.span_id:016x}"]


def test_tags_of_every_type_and_user_id_tags_are_stored_as_text_and_hashed() -> None:
    # Tags are built as one MAP column from the batch's values: non-text values become JSON text,
    # user-id tags their keyed hash, in every row of a run and across runs of other attribute names.
    tagged = enriched_attributes(**{"cost.team": 7, "cost.ratio": 0.25, "cost.userId": "alice"})
    calls = build_rows(
        [make_span(tagged), make_span(), make_span(tagged)],
        enrich=None,
        capture_content=False,
        store_all_spans=False,
        hash_user_id=lambda raw: f"h:{raw}",
    ).calls
    expected = [("team", "7"), ("ratio", "0.25"), ("userId", "h:alice")]
    assert [dict(row) for row in calls["tags"].to_pylist()] == [
        {"team": "search", **dict(expected)},
        {"team": "search"},
        {"team": "search", **dict(expected)},
    ]


class _Unreadable(ReadableSpan):
    """A span whose attributes cannot be read."""

    def __init__(self, span: ReadableSpan) -> None:
        super().__init__(
            name=span.name, context=span.context, start_time=span.start_time, end_time=span.end_time
        )

    @property
    def attributes(self) -> Any:
        raise RuntimeError("attributes cannot be read")


def test_building_rows_leaves_the_garbage_collector_as_the_application_set_it(tmp_path: Path) -> None:
    # The garbage collector is process-wide and the application's: exporting never switches it.
    exporter = DuckDBSpanExporter(tmp_path / "gc.duckdb")
    try:
        assert gc.isenabled()
        assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
        assert gc.isenabled()
        gc.disable()
        try:
            assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
            assert not gc.isenabled()
        finally:
            gc.enable()
        # A span that cannot be converted: the batch is converted again around it, GC still restored.
        assert exporter.export([_Unreadable(make_span()), make_span()]) is SpanExportResult.FAILURE
        assert gc.isenabled()
    finally:
        exporter.shutdown()


def test_a_none_value_falls_through_to_the_next_source_name() -> None:
    # Attributes built as a plain dict (an enriched copy, spans priced here) may hold None: the column
    # takes the next name in priority order, as it would if the attribute were absent.
    attributes = enriched_attributes(
        **{sc.LLM_PROVIDER_NAME: None, sc.GEN_AI_REQUEST_MODEL: None, sc.LLM_COST_BILLABLE: None}
    )
    spans = [make_span(attributes), make_span()]
    calls = build_rows(spans, enrich=None, capture_content=False, store_all_spans=False).calls
    assert calls["provider"].to_pylist() == ["anthropic", "anthropic"]  # from gen_ai.provider.name
    assert calls["request_model"].to_pylist() == ["claude-sonnet-4-20250514", "claude-sonnet-4-0"]
    assert calls["billable"].to_pylist() == [True, True]


def test_duration_is_null_when_the_span_has_no_end_time() -> None:
    ended = make_span(duration_ns=2_500_000)
    open_span = ReadableSpan(
        name="chat",
        context=SpanContext(1, 99, is_remote=False),
        attributes=enriched_attributes(),
        start_time=START_NS,
        end_time=None,
    )
    calls = build_rows([ended, open_span], enrich=None, capture_content=False, store_all_spans=False).calls
    assert calls["duration_ms"].to_pylist() == [2.5, None]
    assert calls["service_name"].to_pylist() == [
        "checkout",
        open_span.resource.attributes.get(sc.SERVICE_NAME),
    ]


def _checkpoint_threshold(con: Any) -> str:
    row = con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
    assert row is not None
    return str(row[0])


def test_files_the_exporter_opens_checkpoint_at_release_not_every_16mb(db: Path) -> None:
    exporter = DuckDBSpanExporter(db, hold_idle_s=0.05)
    seen: list[str] = []
    exporter.add_commit_listener(lambda info: seen.append(_checkpoint_threshold(info.connection)))
    assert exporter.export([make_span() for _ in range(50)]) is SpanExportResult.SUCCESS
    assert exporter.force_flush()
    assert seen == ["953.6 MiB"]  # DuckDB shows CHECKPOINT_THRESHOLD ('1GB') in MiB
    # Releasing the file checkpoints it: a reader then opens a compact file with no WAL to replay.
    with contextlib.closing(_storage.connect(db, read_only=True, timeout_s=10)) as con:
        assert con.execute(f"SELECT count(*) FROM {_schema.CALLS_TABLE}").fetchone() == (50,)
    wal = Path(f"{db}.wal")
    assert not wal.exists() or wal.stat().st_size == 0
    exporter.shutdown()


def test_a_caller_owned_connection_keeps_its_checkpoint_setting(tmp_path: Path) -> None:
    con = _storage.connect(tmp_path / "owned.duckdb")
    before = _checkpoint_threshold(con)
    exporter = DuckDBSpanExporter(connection=con)
    assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
    assert _checkpoint_threshold(con) == before
    exporter.shutdown()
    con.close()


def test_json_columns_keep_their_exact_text() -> None:
    # The stored JSON text is what users' SQL (json_extract, LIKE) runs against: compact separators,
    # UTF-8 text, NaN/Infinity as strings (not JSON otherwise), sequences as arrays, in span order.
    odd = enriched_attributes(
        **{
            "custom.nan": float("nan"),
            "custom.inf": float("-inf"),
            "custom.list": (1.5, float("inf"), 2.0),
            "custom.label": 'caf\u00e9 "q"',  # not "custom.text": text is content
            "custom.bools": (True, False),
            "cost.ratio": 0.25,
            "cost.flag": True,
        }
    )
    plain = {"http.request.method": "GET", "n": 3, "xs": ("a", "b")}
    batch = build_rows(
        [make_span(odd), make_span(plain)], enrich=None, capture_content=False, store_all_spans=True
    )
    extra = (
        '"custom.nan":"nan","custom.inf":"-inf","custom.list":[1.5,"inf",2.0],'
        '"custom.label":"caf\u00e9 \\"q\\"","custom.bools":[true,false]'
    )
    assert batch.calls["attributes"].to_pylist() == [
        '{"gen_ai.usage.input_tokens":1200,"gen_ai.usage.output_tokens":300,"gen_ai.request.temperature":0.2,'
        '"llm.cost.provider_id":"anthropic",' + extra + "}"
    ]
    assert batch.calls["tags"].to_pylist() == [[("team", "search"), ("ratio", "0.25"), ("flag", "true")]]
    assert batch.spans is not None
    stored = batch.spans["attributes"].to_pylist()
    assert stored[0].startswith('{"gen_ai.operation.name":"chat","gen_ai.provider.name":"anthropic",')
    assert stored[0].endswith(
        ',"gen_ai.request.stream":true,' + extra + ',"cost.ratio":0.25,"cost.flag":true}'
    )
    assert stored[1] == '{"http.request.method":"GET","n":3,"xs":["a","b"]}'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2**70, "1180591620717411303424"),  # beyond 64 bits: orjson refuses, the standard library writes it
        # Not UTF-8 encodable, and an escape of it is JSON that no reader (DuckDB included) accepts.
        ("lone \ud800", '"lone \\ufffd"'),  # U+FFFD instead, escaped
        ("nullable", '"nullable"'),  # "null" in the text alone changes nothing
        ((None, float("nan")), '[null,"nan"]'),
    ],
)
def test_json_column_stores_what_the_fast_encoder_refuses(value: Any, text: str) -> None:
    spans = [make_span({**enriched_attributes(), "custom.value": value})]
    batch = build_rows(spans, enrich=None, capture_content=False, store_all_spans=True)
    assert batch.calls["attributes"].to_pylist()[0].endswith(f'"custom.value":{text}}}')
    assert batch.spans is not None
    assert batch.spans["attributes"].to_pylist()[0].endswith(f'"custom.value":{text}}}')


def test_a_span_that_cannot_become_a_row_is_dropped_alone_logged_and_counted(
    exporter: DuckDBSpanExporter, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A hand-built ReadableSpan (a bridge, another processor's copy) may break assumptions the SDK's
    # own spans keep, here a missing status. Converting rows for the batch fails; only that span
    # may be lost, never the batch around it, and never silently.
    broken = ReadableSpan(
        name="chat",
        context=SpanContext(0xABC, 0xDEF, is_remote=False),
        attributes=enriched_attributes(),
        start_time=START_NS,
        end_time=START_NS + 1,
        status=None,  # type: ignore[arg-type]
    )
    good = [make_span(start_ns=START_NS + i) for i in range(5)]
    with caplog.at_level(logging.ERROR, logger="otel_llm_cost"):
        result = exporter.export([*good[:2], broken, *good[2:]])
    assert result is SpanExportResult.FAILURE  # not everything was stored
    assert count(db) == 5
    assert ERROR_COUNTS["exporter.build_rows"] == 1
    assert ERROR_COUNTS["exporter.span_dropped"] == 1
    assert len([r for r in caplog.records if "could not convert" in r.getMessage()]) == 1
    assert exporter.export([make_span()]) is SpanExportResult.SUCCESS  # and the next batch is fine


def test_text_utf8_cannot_encode_is_stored_with_a_replacement_character_not_dropped(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A lone surrogate ("\udc80" from a surrogateescape decode) in any text a row holds: a column, the
    # JSON attributes, a tag, the span's name; one span enriched in-process, one nothing enriched.
    bad = "bad \udc80 text"
    enriched = make_span(
        enriched_attributes(**{sc.COST_FEATURE: bad, "custom.note": bad, "cost.team": bad}), name=bad
    )
    raw_attributes = {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o" + bad,
        sc.GEN_AI_USAGE_INPUT_TOKENS: 10,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
    }
    raw = make_span(raw_attributes, name="chat gpt-4o", start_ns=START_NS + 1)
    good = [make_span(start_ns=START_NS + 2 + i) for i in range(3)]
    exporter = DuckDBSpanExporter(db, store_all_spans=True)
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        assert exporter.export([enriched, raw, *good]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert ERROR_COUNTS["exporter.span_dropped"] == 0
    assert "lone surrogate" in caplog.text
    clean = "bad \ufffd text"
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        rows = con.execute(
            f"SELECT span_name, feature, tags['team'], attributes->>'$.\"custom.note\"', request_model, "
            f"billable FROM {_schema.CALLS_TABLE} ORDER BY start_time"
        ).fetchall()
        names = con.execute(f"SELECT span_name FROM {_schema.SPANS_TABLE} ORDER BY start_time").fetchall()
    assert rows[0] == (clean, clean, clean, clean, "claude-sonnet-4-0", True)
    # The span nothing enriched keeps its one verdict of the double-count guard: billable.
    assert rows[1][4:] == ("gpt-4o" + clean, True)
    assert len(rows) == 5
    assert names[0] == (clean,)


def test_a_lone_surrogate_in_the_json_attributes_does_not_cost_the_batch(db: Path) -> None:
    # Only the JSON column holds it: the rows build, and an escaped lone surrogate there made DuckDB
    # refuse the whole insert, so the batch went to quarantine. 300 spans: the column-wise JSON path.
    spans = [make_span(start_ns=START_NS + i) for i in range(300)]
    spans[150] = make_span(enriched_attributes(**{"custom.note": "x \ud800"}), start_ns=START_NS + 150)
    exporter = DuckDBSpanExporter(db)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert count(db) == 300
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        notes = con.execute(
            f"SELECT attributes->>'$.\"custom.note\"' FROM {_schema.CALLS_TABLE} "
            "WHERE attributes LIKE '%note%'"
        ).fetchall()
    assert notes == [("x \ufffd",)]


def test_a_span_lasting_longer_than_a_float_holds_exactly_is_stored_with_its_batch(db: Path) -> None:
    # 2**53 ns is about 104 days: only hand-built spans get there, and they must not cost the batch.
    exporter = DuckDBSpanExporter(db, store_all_spans=True)
    long = make_span(start_ns=0, duration_ns=2**60 + 1)
    http = make_span({"http.request.method": "GET"}, name="GET /", start_ns=0, duration_ns=2**60 + 1)
    assert exporter.export([long, http, make_span()]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert count(db) == 2
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        [(calls_duration,)] = con.execute(
            f"SELECT duration_ms FROM {_schema.CALLS_TABLE} WHERE start_time = to_timestamp(0)"
        ).fetchall()
        [(spans_duration,)] = con.execute(
            f"SELECT duration_ms FROM {_schema.SPANS_TABLE} WHERE span_name = 'GET /'"
        ).fetchall()
    assert calls_duration == spans_duration == (2**60 + 1) / 1e6
