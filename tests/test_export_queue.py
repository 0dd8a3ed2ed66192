"""The default wiring: an exporter given to LLMCostSpanProcessor, its export queue, and counted drops."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm_cost import DuckDBSpanExporter, LLMCostSpanProcessor
from otel_llm_cost.cli.main import main as cli_main
from otel_llm_cost.enrich.export_queue import ExportQueue
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.storage.drops import read_drops

LLM = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
}

_HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS held (x INT)")
print("held", flush=True)
sys.stdin.read()
"""


def _end_llm_spans(provider: TracerProvider, count: int, prefix: str) -> None:
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    for n in range(count):
        tracer.start_span("chat", attributes={**LLM, "gen_ai.response.id": f"{prefix}-{n}"}).end()


def _stored(db: Path) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM llm_calls").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def test_a_duckdb_exporter_is_fed_by_the_export_queue_and_others_by_the_sdk(
    tmp_path: Path, pricebook: PriceBook
) -> None:
    exporter = DuckDBSpanExporter(tmp_path / "c.duckdb")
    processor = LLMCostSpanProcessor(exporter, InMemorySpanExporter(), pricing=pricebook)
    try:
        queue, other = processor.wrapped
        assert isinstance(queue, ExportQueue)
        assert queue.span_exporter is exporter
        assert queue.max_queue_size > 2048
        assert queue.max_batch_size == 8192
        assert isinstance(other, BatchSpanProcessor)
    finally:
        processor.shutdown()


@pytest.mark.slow
def test_sixteen_threads_store_every_call_with_the_default_wiring(
    tmp_path: Path, pricebook: PriceBook
) -> None:
    # The SDK's BatchSpanProcessor (queue 2,048) dropped about a fifth of such a burst.
    db = tmp_path / "c.duckdb"
    exporter = DuckDBSpanExporter(db, lock_timeout_s=30)
    provider = TracerProvider()
    processor = LLMCostSpanProcessor(exporter, pricing=pricebook)
    provider.add_span_processor(processor)
    threads = [threading.Thread(target=_end_llm_spans, args=(provider, 2_500, f"t{n}")) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.shutdown()
    queue = processor.wrapped[0]
    assert isinstance(queue, ExportQueue)
    assert (queue.dropped_spans, exporter.dropped_calls) == (0, 0)
    assert _stored(db) == 40_000


@pytest.mark.slow
def test_a_queue_that_stays_full_drops_counts_and_logs(
    tmp_path: Path, pricebook: PriceBook, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "c.duckdb"
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        # Another process holds the file and the journal cannot be written: the first export waits
        # lock_timeout_s for the file, a stalled writer.
        exporter = DuckDBSpanExporter(db, spool_dir=not_a_dir / "spool", lock_timeout_s=2)
        queue = ExportQueue(exporter, max_queue_size=64, max_batch_size=32, block_s=0.05)
        provider = TracerProvider()
        reader = InMemoryMetricReader()
        provider.add_span_processor(
            LLMCostSpanProcessor(queue, pricing=pricebook, meter_provider=MeterProvider([reader]))
        )
        with caplog.at_level(logging.ERROR, logger="otel_llm_cost.enrich.export_queue"):
            _end_llm_spans(provider, 1_000, "stalled")
            provider.shutdown()
        assert holder.stdin is not None
        holder.stdin.close()
    dropped = queue.dropped_calls
    assert 0 < dropped < 1_000
    assert queue.dropped_spans == dropped  # every span was an LLM call
    errors = [r.getMessage() for r in caplog.records if r.name == "otel_llm_cost.enrich.export_queue"]
    assert len(errors) == 1  # once per interval, not once per span
    assert "LLM calls" in errors[0]
    assert "dropped" in errors[0]
    assert exporter.dropped_calls == dropped
    assert read_drops(db).calls == dropped
    data = reader.get_metrics_data()
    assert data is not None
    observed = [
        point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "llm.calls.dropped"
        for point in metric.data.data_points
    ]
    assert observed == [dropped]


def test_status_shows_the_calls_dropped_for_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "c.duckdb"
    exporter = DuckDBSpanExporter(db)
    exporter.record_dropped(7, 9)
    exporter.record_dropped(3, 3)
    exporter.shutdown()
    assert (exporter.dropped_calls, exporter.dropped_spans) == (10, 12)
    assert cli_main(["status", "--db", str(db)]) == 1
    out = capsys.readouterr().out
    assert "10 LLM calls" in out
    assert "12 spans" in out


def test_status_of_a_file_without_drops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.duckdb"
    assert cli_main(["status", "--db", str(db)]) == 0
    assert "no LLM calls dropped" in capsys.readouterr().out


def test_bad_sizes_raise() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        ExportQueue(InMemorySpanExporter(), max_queue_size=10, max_batch_size=20)
    with pytest.raises(ValueError, match="block_s"):
        ExportQueue(InMemorySpanExporter(), block_s=-1)


def test_force_flush_exports_a_partial_batch() -> None:
    exported = InMemorySpanExporter()
    queue = ExportQueue(exported, schedule_delay_s=60)
    provider = TracerProvider()
    provider.add_span_processor(queue)
    provider.get_tracer("t").start_span("one").end()
    assert queue.force_flush(5_000)
    assert [span.name for span in exported.get_finished_spans()] == ["one"]
    provider.shutdown()
