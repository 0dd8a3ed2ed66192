"""The exporter's journal and writer thread: what export() accepted is committed, together, and seen."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_llm_cost import CostStore, LLMCostSpanProcessor, _storage
from otel_llm_cost import exporter as exporter_module
from otel_llm_cost._logging import ERROR_COUNTS
from otel_llm_cost.exporter import CommitInfo, DuckDBSpanExporter
from otel_llm_cost.pricing import PriceBook
from test_exporter import count, make_span
from test_spool import _reader_process_holding

START = 1_736_942_400_000_000_000


def _new_file(tmp_path: Path) -> Path:
    db = tmp_path / "calls.duckdb"
    _storage.connect(db).close()  # a reader process can only hold a file that exists
    return db


def _release_reader(reader: object) -> None:
    """Let the reader process go, once the writer has failed to get the file at least once: every
    batch exported so far is then waiting for the writer's next attempt, which takes them together."""
    deadline = time.monotonic() + 30
    while not ERROR_COUNTS["exporter.locked"] and time.monotonic() < deadline:
        time.sleep(0.01)
    stdin = getattr(reader, "stdin", None)
    assert stdin is not None
    stdin.write("\n")
    stdin.flush()


def test_a_store_in_the_same_process_sees_every_batch_export_accepted(tmp_path: Path) -> None:
    db = tmp_path / "calls.duckdb"
    exporter = DuckDBSpanExporter(db)
    for n in range(5):
        assert exporter.export([make_span(start_ns=START + n * 10 + i) for i in range(10)]) is (
            SpanExportResult.SUCCESS
        )
    # No flush: the store's connection first lets this process's exporter on the file commit.
    assert CostStore(db).summary().call_count == 50
    exporter.shutdown()


def test_batches_waiting_for_the_file_are_committed_in_one_transaction(tmp_path: Path) -> None:
    db = _new_file(tmp_path)
    exporter = DuckDBSpanExporter(db, lock_timeout_s=0.1)
    commits: list[list[str]] = []
    exporter.add_commit_listener(lambda info: commits.append(info.rows["span_id"].to_pylist()))
    batches = [[make_span(start_ns=START + n * 10 + i) for i in range(10)] for n in range(3)]
    with _reader_process_holding(db) as reader:
        for batch in batches:
            assert exporter.export(batch) is SpanExportResult.SUCCESS
        assert exporter.uncommitted_rows == 30
        _release_reader(reader)
        assert exporter.force_flush()
    assert commits == [[f"{span.context.span_id:016x}" for batch in batches for span in batch]]
    assert exporter.uncommitted_rows == 0
    exporter.shutdown()
    assert count(db) == 30


@pytest.mark.parametrize("listener", [False, True], ids=["one-statement", "with-listener"])
def test_a_span_in_two_batches_committed_together_is_stored_once(tmp_path: Path, listener: bool) -> None:
    db = _new_file(tmp_path)
    exporter = DuckDBSpanExporter(db, lock_timeout_s=0.1)
    inserted: list[int] = []
    if listener:
        exporter.add_commit_listener(lambda info: inserted.append(info.rows.num_rows))
    a, b, c = (make_span(start_ns=START + i) for i in range(3))
    with _reader_process_holding(db) as reader:
        exporter.export([a, b])
        exporter.export([b, c])  # a retried span, in the same group as its first export
        _release_reader(reader)
        assert exporter.force_flush()
    exporter.shutdown()
    assert count(db) == 3
    assert inserted == ([3] if listener else [])


def test_batches_beyond_the_memory_cap_are_read_back_from_their_journal_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exporter_module, "_MEMORY_BYTES", 0)  # keep none of them in memory
    db = _new_file(tmp_path)
    exporter = DuckDBSpanExporter(db, lock_timeout_s=0.1)
    with _reader_process_holding(db) as reader:
        for n in range(4):
            exporter.export([make_span(start_ns=START + n * 10 + i) for i in range(10)])
        assert all(batch is None for batch, _ in exporter._pending.values())
        assert exporter.uncommitted_rows == 4 * 512  # estimated: the files are not read to count them
        _release_reader(reader)
        assert exporter.force_flush()
    exporter.shutdown()
    assert count(db) == 40
    assert not ERROR_COUNTS["exporter.spool_corrupt"]


def test_shutdown_with_the_file_held_leaves_the_batches_to_the_next_exporter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = _new_file(tmp_path)
    exporter = DuckDBSpanExporter(db, lock_timeout_s=0.2)
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"), _reader_process_holding(db):
        assert exporter.export([make_span(start_ns=START + i) for i in range(7)]) is SpanExportResult.SUCCESS
        started = time.monotonic()
        exporter.shutdown()
        assert time.monotonic() - started < 10  # bounded by lock_timeout_s, plus the writer's last try
    assert exporter.export([make_span()]) is SpanExportResult.FAILURE
    assert [r for r in caplog.records if "before shutdown" in r.getMessage()]
    assert exporter.spool is not None
    assert len(exporter.spool.pending()) == 1
    successor = DuckDBSpanExporter(db)
    assert successor.force_flush()
    successor.shutdown()
    assert count(db) == 7


def test_processor_force_flush_waits_for_the_exporters_commit(tmp_path: Path, pricebook: PriceBook) -> None:
    exporter = DuckDBSpanExporter(tmp_path / "calls.duckdb")
    processor = LLMCostSpanProcessor(exporter, pricing=pricebook)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("app")
    for _ in range(20):
        tracer.start_span(
            "chat",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 10,
            },
        ).end()
    committed: list[int] = []
    exporter.add_commit_listener(lambda info: committed.append(info.rows.num_rows))
    assert processor.force_flush(30_000)
    assert exporter.uncommitted_rows == 0
    assert sum(committed) == 20
    provider.shutdown()


def test_a_commit_listener_may_open_the_file_through_storage_without_deadlock(tmp_path: Path) -> None:
    # The writer thread runs listeners while it holds the file; a listener opening the same file
    # (read-write: it shares the writer's DuckDB instance) must not wait for the writer's own backlog.
    db = tmp_path / "calls.duckdb"
    exporter = DuckDBSpanExporter(db)
    seen: list[int] = []

    def listener(info: CommitInfo) -> None:
        with _storage.connect(db, timeout_s=5) as con:
            row = con.execute("SELECT count(*) FROM llm_calls").fetchone()
            assert row is not None
            seen.append(row[0])

    exporter.add_commit_listener(listener)
    exporter.export([make_span()])
    assert exporter.force_flush(20_000)
    exporter.shutdown()
    assert seen == [1]
