"""The receiver's storing stage: a request's spans are journaled before the 200, as one batch."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from helpers import wait_until
from otel_llm_cost import CostStore
from otel_llm_cost.collector.heap import RECEIVER_GC_THRESHOLDS
from otel_llm_cost.collector.receiver import OTLPReceiver, build_processor
from otel_llm_cost.collector.storing import StoringPipeline
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.exporter import DuckDBSpanExporter
from test_collector import protobuf_body, request
from test_collector_pipeline import LLM_ATTRIBUTES, query, serve_process
from test_exporter import make_span
from test_spool import _reader_process_holding


def llm_spans(count: int, first: int = 1) -> list[ReadableSpan]:
    return [
        make_span({**LLM_ATTRIBUTES, sc.GEN_AI_RESPONSE_ID: f"r-{i}"}, span_id=i, trace_id=i)
        for i in range(first, first + count)
    ]


@pytest.mark.slow
def test_serve_killed_right_after_a_200_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "served.duckdb"
    with serve_process("--db", str(db)) as (process, url, _):
        reply = request(url, protobuf_body(llm_spans(40)))
        assert reply.status == 200
        process.kill()  # SIGKILL: no flush, no shutdown hook
        process.wait(timeout=30)

    # The next writer on the file commits what the killed receiver had journaled.
    exporter = DuckDBSpanExporter(db)
    assert exporter.force_flush(30_000)
    exporter.shutdown()
    assert query(db, "SELECT count(*), count(DISTINCT response_id) FROM llm_calls") == [(40, 40)]


def test_each_request_is_stored_as_one_batch_and_counted_in_the_room(tmp_path: Path) -> None:
    db = tmp_path / "costs.duckdb"
    processor, pipeline = build_processor(db)
    assert isinstance(pipeline, StoringPipeline)
    with OTLPReceiver(processor, port=0, pipeline=pipeline) as receiver:
        assert request(receiver.url, protobuf_body(llm_spans(30))).status == 200
        # Answered: nothing waits in a queue any more; the rows are the writer's (or committed).
        assert pipeline.queued == 0
        assert pipeline.room() == pipeline.capacity - pipeline.span_exporter.uncommitted_rows
        assert request(receiver.url, protobuf_body(llm_spans(10, first=31))).status == 200
    assert receiver.stats.spans_accepted == 40
    assert query(db, "SELECT count(*) FROM llm_calls WHERE billable") == [(40,)]


def test_spans_handed_over_after_shutdown_are_logged_not_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "costs.duckdb"
    pipeline = StoringPipeline(DuckDBSpanExporter(db), capacity=100)
    assert pipeline.store(llm_spans(3))
    pipeline.shutdown()
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost.collector"):
        assert not pipeline.store(llm_spans(2, first=4))  # never raises
        pipeline.on_end(llm_spans(1, first=6)[0])
    assert "after the receiver's pipeline shut down" in caplog.text
    assert pipeline.queued == 0
    assert query(db, "SELECT count(*) FROM llm_calls") == [(3,)]


def test_a_request_the_exporter_does_not_take_is_answered_503_for_the_sender_to_retry(tmp_path: Path) -> None:
    db = tmp_path / "costs.duckdb"
    processor, pipeline = build_processor(db)
    with OTLPReceiver(processor, port=0, pipeline=pipeline) as receiver:
        assert request(receiver.url, protobuf_body(llm_spans(5))).status == 200
        pipeline.span_exporter.shutdown()  # from now on export() refuses every batch
        refused = request(receiver.url, protobuf_body(llm_spans(5, first=6)))
        assert refused.status == 503
        assert refused.headers["retry-after"]
    assert receiver.stats.spans_accepted == 5
    assert receiver.stats.responses[503] == 1
    assert query(db, "SELECT count(*) FROM llm_calls") == [(5,)]


def test_the_receivers_pipeline_given_only_as_the_processor_still_stores_requests_with_backpressure(
    tmp_path: Path,
) -> None:
    db = tmp_path / "costs.duckdb"
    processor, pipeline = build_processor(db)
    batches: list[int] = []
    export = pipeline.span_exporter.export
    pipeline.span_exporter.export = lambda spans: batches.append(len(spans)) or export(spans)  # type: ignore[method-assign]
    with OTLPReceiver(processor, port=0) as receiver:  # no pipeline= argument
        assert request(receiver.url, protobuf_body(llm_spans(30))).status == 200
        ready = request(receiver.url, method="GET", path="/ready", content_type=None)
    assert json.loads(ready.body)["capacity"] == pipeline.capacity
    assert batches == [30]  # one batch for the request, not one per span
    assert query(db, "SELECT count(*) FROM llm_calls") == [(30,)]


def test_a_storing_pipeline_needs_a_positive_capacity(tmp_path: Path) -> None:
    exporter = DuckDBSpanExporter(tmp_path / "costs.duckdb")
    try:
        with pytest.raises(ValueError, match="capacity must be positive"):
            StoringPipeline(exporter, capacity=0)
    finally:
        exporter.shutdown()


def test_settle_heap_freezes_the_start_up_heap_and_sets_the_receivers_thresholds() -> None:
    # In a process of its own: the settings are process-wide, and only `serve`'s process takes them.
    code = (
        "import gc\n"
        "from otel_llm_cost.collector.heap import settle_heap\n"
        "before = gc.get_threshold()\n"
        "settle_heap()\n"
        "print(before, gc.get_threshold(), gc.get_freeze_count() > 1000)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split(")", 1)[1].strip() == f"{RECEIVER_GC_THRESHOLDS} True"


@pytest.mark.slow
def test_a_reader_gets_the_file_while_the_receiver_keeps_storing(tmp_path: Path) -> None:
    db = tmp_path / "served.duckdb"
    with serve_process("--db", str(db)) as (process, url, _):
        assert request(url, protobuf_body(llm_spans(20))).status == 200
        wait_until(db.is_file, timeout_s=30, what="the receiver to create its file")
        # Requests keep coming, so the receiver never lets go for being idle, and it holds the file
        # for up to ten seconds; a reader asks for it and is let in within its own 2 s timeout.
        done = threading.Event()

        def send() -> None:
            first = 21
            while not done.is_set():
                assert request(url, protobuf_body(llm_spans(5, first=first))).status == 200
                first += 5
                time.sleep(0.05)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            with CostStore(db, timeout_s=2.0) as store:
                assert store.summary().call_count >= 20
        finally:
            done.set()
            sender.join()
        assert process.poll() is None


@pytest.mark.slow
def test_requests_queued_behind_a_busy_one_are_answered_503_within_the_busy_timeout(tmp_path: Path) -> None:
    db = tmp_path / "costs.duckdb"
    _storage.connect(db).close()
    exporter = DuckDBSpanExporter(db, lock_timeout_s=0.1)
    pipeline = StoringPipeline(exporter, capacity=40)
    busy_timeout_s = 0.5
    senders = 12
    with (
        _reader_process_holding(db),  # nothing is committed: the room stays at zero
        OTLPReceiver(pipeline, port=0, pipeline=pipeline, busy_timeout_s=busy_timeout_s) as receiver,
    ):
        assert request(receiver.url, protobuf_body(llm_spans(40))).status == 200
        assert pipeline.room() == 0
        bodies = [protobuf_body(llm_spans(5, first=100 + 10 * n)) for n in range(senders)]
        started = time.monotonic()
        with ThreadPoolExecutor(senders) as pool:
            replies = list(pool.map(lambda body: request(receiver.url, body), bodies))
        waited = time.monotonic() - started
        # Each request waits for room for the busy timeout from its arrival, not after every request
        # in front of it has waited its own (12 x 0.5 s one after the other): a sender is told to
        # come back later within the time the documentation gives, and none gives up first.
        assert [reply.status for reply in replies] == [503] * senders
        assert all(reply.headers["retry-after"] for reply in replies)
        assert waited < senders * busy_timeout_s / 2


_MEASURED_RECEIVER = """
import sys
from otel_llm_cost.collector.receiver import OTLPReceiver, build_processor

def high_water_kib():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))

processor, pipeline = build_processor(sys.argv[1])
with OTLPReceiver(processor, port=0, pipeline=pipeline, max_body_bytes=64 * 2**20) as receiver:
    before = high_water_kib()
    print(receiver.url, flush=True)
    sys.stdin.readline()
    print(high_water_kib() - before, flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak memory from /proc")
def test_a_large_request_is_stored_in_parts_not_with_all_its_rows_alive_at_once(tmp_path: Path) -> None:
    db = tmp_path / "costs.duckdb"
    spans = [
        make_span({**LLM_ATTRIBUTES, sc.GEN_AI_RESPONSE_ID: f"r-{i}", "app.note": "n" * 100}, span_id=i)
        for i in range(1, 100_001)
    ]
    body = protobuf_body(spans)
    del spans
    with subprocess.Popen(
        [sys.executable, "-c", _MEASURED_RECEIVER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as receiver:
        assert receiver.stdin is not None
        assert receiver.stdout is not None
        url = receiver.stdout.readline().strip()
        assert request(url, body).status == 200
        receiver.stdin.write("\n")
        receiver.stdin.flush()
        added_bytes = int(receiver.stdout.readline()) * 1024
    assert receiver.returncode == 0
    # The decoded request stays alive until it is answered (about 11 times its 39 MB body); one
    # batch of 100,000 rows on top of it took 28 times the body.
    assert added_bytes < 18 * len(body)
    assert query(db, "SELECT count(*), count(DISTINCT response_id) FROM llm_calls") == [(100_000, 100_000)]
