"""The exporter's journal and writer thread: what export() accepted is committed, together, and seen."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from helpers import wait_until
from otel_llm_cost import CostStore, LLMCostSpanProcessor
from otel_llm_cost._logging import ERROR_COUNTS
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.storage import backlog as backlog_module
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.exporter import CommitInfo, DuckDBSpanExporter
from otel_llm_cost.storage.rows import build_rows
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
    wait_until(lambda: ERROR_COUNTS["exporter.locked"], what="the writer to find the file locked")
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


@pytest.mark.slow
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
    monkeypatch.setattr(backlog_module, "_MEMORY_BYTES", 0)  # keep none of them in memory
    db = _new_file(tmp_path)
    exporter = DuckDBSpanExporter(db, lock_timeout_s=0.1)
    with _reader_process_holding(db) as reader:
        for n in range(4):
            exporter.export([make_span(start_ns=START + n * 10 + i) for i in range(10)])
        assert all(batch is None for batch in exporter._writer._backlog.in_memory())
        # Counted as the rows they are: the receiver's backpressure (503) subtracts them from its room.
        assert exporter.uncommitted_rows == 40
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
        exporter.shutdown()  # gives up on the held file after about lock_timeout_s
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


@pytest.mark.slow
def test_two_exporters_of_one_process_on_one_file_store_each_span_once(tmp_path: Path) -> None:
    # They share one DuckDB database in the process (no file lock between them): one flushing while
    # the other writes must neither commit the other's journal at the same time nor double it.
    db = tmp_path / "calls.duckdb"
    first, second = DuckDBSpanExporter(db), DuckDBSpanExporter(db)
    stop = threading.Event()

    def flush_the_second() -> None:
        while not stop.is_set():
            second.force_flush(2000)

    flusher = threading.Thread(target=flush_the_second)
    flusher.start()
    try:
        for n in range(100):
            first.export([make_span(start_ns=START + n * 100 + i) for i in range(100)])
            second.export([make_span(start_ns=START + 20_000 + n * 10 + i) for i in range(10)])
    finally:
        stop.set()
        flusher.join()
    assert first.force_flush()
    assert second.force_flush()
    first.shutdown()
    second.shutdown()
    with contextlib.closing(duckdb.connect(str(db), read_only=True)) as con:
        assert con.execute("SELECT count(*), count(DISTINCT span_id) FROM llm_calls").fetchone() == (
            11_000,
            11_000,
        )


@pytest.mark.slow
def test_a_file_that_fails_at_once_is_retried_with_pauses_not_in_a_loop(tmp_path: Path) -> None:
    db = tmp_path / "calls.duckdb"
    db.mkdir()  # fails on open at once, unlike a lock wait (and is not a damaged file to set aside)
    exporter = DuckDBSpanExporter(db, lock_timeout_s=0.5)
    exporter.export([make_span()])
    assert not exporter.force_flush(timeout_millis=2000)
    # Pauses of 50 ms doubling to 1 s: about 6 attempts; a retry loop without them made ~570 in 3 s.
    assert ERROR_COUNTS["exporter.write"] < 40
    exporter.shutdown()


@pytest.mark.slow
def test_a_reader_in_another_process_sees_the_backlog_accepted_before_it_asked(tmp_path: Path) -> None:
    db = _new_file(tmp_path)
    exporter = DuckDBSpanExporter(db, hold_idle_s=60, hold_max_s=60)  # only a reader makes it let go
    exporter.export([make_span(start_ns=START)])
    assert exporter.force_flush()  # the writer now holds the file
    with exporter._writer._lease.lock:  # the writer is busy meanwhile: the next batches wait for it
        for n in range(1, 4):
            assert exporter.export([make_span(start_ns=START + n)]) is SpanExportResult.SUCCESS
        assert exporter.uncommitted_rows == 3
    reader = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from otel_llm_cost.storage import connect as _storage; "
            "con = _storage.connect(sys.argv[1], read_only=True, timeout_s=30); "
            "print(con.execute('SELECT count(*) FROM llm_calls').fetchone()[0])",
            str(db),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.strip() == "4"
    exporter.shutdown()


def test_export_racing_shutdown_never_restarts_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "calls.duckdb"
    exporter = DuckDBSpanExporter(db)
    exporter.export([make_span()])
    exporter.shutdown()
    assert exporter.force_flush() is True  # nothing was left
    # A batch that got past export()'s first check while shutdown() ran: journaled, not accepted.
    batch = build_rows([make_span()], enrich=None, capture_content=False, store_all_spans=False)
    assert exporter.spool is not None
    writer = exporter._writer
    assert writer.accept(batch) is SpanExportResult.FAILURE
    assert writer._thread is None or not writer._thread.is_alive()
    assert not writer._lease.held
    assert len(exporter.spool.pending()) == 1  # the next exporter on the file stores it
    successor = DuckDBSpanExporter(db)
    assert successor.force_flush()
    successor.shutdown()
    assert count(db) == 2
