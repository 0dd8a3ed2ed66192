"""Collector mode end to end: OTLP exporters in other processes -> receiver -> LLMCostSpanProcessor ->
BatchSpanProcessor -> DuckDBSpanExporter -> rows in a real DuckDB file, and the `serve` command."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# pytest puts tests/ on sys.path (rootdir-relative, no package): share the HTTP helpers.
from helpers import wait_until
from otel_llm_cost.collector.receiver import OTLPReceiver, ReceiverPipeline, build_processor
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.attribution import attribution
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.exporter import DuckDBSpanExporter
from test_collector import JS_EXPORT, protobuf_body, request, retry_while_busy
from test_exporter import make_span
from test_spool import _reader_process_holding

LLM_ATTRIBUTES: dict[str, Any] = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 200,
}

LLM_SENDER = textwrap.dedent(
    """
    import sys
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    url, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
        "cost.feature": f"feature-{worker}",
    }
    provider = TracerProvider(resource=Resource({"service.name": f"worker-{worker}"}))
    compression = Compression.Gzip if int(worker) % 2 else Compression.NoCompression
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=url, compression=compression), max_export_batch_size=100)
    )
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    for i in range(count):
        with tracer.start_as_current_span(
            "chat gpt-4o-mini", attributes={**attributes, "gen_ai.response.id": f"chatcmpl-{worker}-{i}"}
        ):
            pass
    provider.shutdown()
    """
)


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(_storage.connect(db, read_only=True)) as connection:
        return connection.execute(sql).fetchall()


@pytest.mark.slow
def test_four_exporter_processes_store_exactly_every_call(tmp_path: Path) -> None:
    db = tmp_path / "costs.duckdb"
    processor, pipeline = build_processor(db)
    with OTLPReceiver(processor, port=0, pipeline=pipeline) as receiver:
        senders = [
            subprocess.Popen(
                [sys.executable, "-c", LLM_SENDER, receiver.url, str(w), "250"], stderr=subprocess.PIPE
            )
            for w in range(4)
        ]
        for sender in senders:
            _, stderr = sender.communicate(timeout=120)
            assert sender.returncode == 0, stderr.decode()
            assert b"Failed to export" not in stderr, stderr.decode()

    rows = query(
        db,
        "SELECT service_name, feature, count(*), count(DISTINCT span_id), count(*) FILTER (WHERE billable), "
        "sum(cost_usd), min(cost_status), max(cost_status) FROM llm_calls GROUP BY ALL ORDER BY service_name",
    )
    assert [row[:5] for row in rows] == [(f"worker-{w}", f"feature-{w}", 250, 250, 250) for w in range(4)]
    per_worker_cost = {row[5] for row in rows}
    assert len(per_worker_cost) == 1, "identical calls cost the same in every worker"
    assert per_worker_cost.pop() > Decimal(0)
    assert {(row[6], row[7]) for row in rows} == {("priced", "priced")}
    assert receiver.stats.spans_accepted == 1000


def test_attribution_set_by_the_sender_is_kept_and_not_enriched_twice(tmp_path: Path) -> None:
    db = tmp_path / "costs.duckdb"
    processor, pipeline = build_processor(db)
    sent = InMemorySpanExporter()
    with OTLPReceiver(processor, port=0, pipeline=pipeline) as receiver:
        # The sending service enriches in process too, and exports what it enriched over OTLP.
        provider = TracerProvider(resource=Resource({"service.name": "api"}))
        exporter = OTLPSpanExporter(endpoint=receiver.url)
        provider.add_span_processor(
            LLMCostSpanProcessor(BatchSpanProcessor(exporter), BatchSpanProcessor(sent))
        )
        tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
        with (
            attribution(feature="search", user_id="u-42", session_id="s-1"),
            tracer.start_as_current_span("chat", attributes={**LLM_ATTRIBUTES, sc.GEN_AI_RESPONSE_ID: "r-1"}),
        ):
            pass
        # W3C baggage propagated from an upstream service, copied onto the span by the sender.
        token = otel_context.attach(baggage.set_baggage("cost.org_id", "org_9"))
        try:
            with tracer.start_as_current_span(
                "chat", attributes={**LLM_ATTRIBUTES, sc.GEN_AI_RESPONSE_ID: "r-2"}
            ):
                pass
        finally:
            otel_context.detach(token)
        provider.shutdown()

    sender_costs = sorted(
        Decimal(str(span.attributes[sc.LLM_COST_USD])) for span in sent.get_finished_spans()
    )
    rows = query(
        db,
        "SELECT response_id, feature, user_id, session_id, org_id, cost_usd, billable FROM llm_calls "
        "ORDER BY response_id",
    )
    assert [row[0] for row in rows] == ["r-1", "r-2"]
    r1, r2 = rows
    assert (r1[1], r1[3]) == ("search", "s-1")
    assert r1[2] is not None
    assert r1[2] != "u-42", "user ids reach storage hashed, never raw"
    assert r2[4] == "org_9"
    assert sorted(row[5] for row in rows) == sender_costs
    assert all(row[6] for row in rows)


def test_a_json_export_from_another_language_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "costs.duckdb"
    processor, pipeline = build_processor(db)
    with OTLPReceiver(processor, port=0, pipeline=pipeline) as receiver:
        reply = request(receiver.url, json.dumps(JS_EXPORT).encode(), content_type="application/json")
        assert (reply.status, reply.body) == (200, b"{}")

    ((span_id, trace_id, parent, service, model, tokens, feature, org, status, cost),) = query(
        db,
        "SELECT span_id, trace_id, parent_span_id, service_name, request_model, input_tokens, feature, "
        "org_id, cost_status, cost_usd FROM llm_calls",
    )
    assert (span_id, trace_id, parent) == (
        "00f067aa0ba902b7",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "53995c3f42cd8ad8",
    )
    assert (service, model, tokens, feature, org, status) == (
        "web-bff",
        "gpt-4o-mini",
        1000,
        "search",
        "org_7",
        "priced",
    )
    assert cost > Decimal(0)


# --------------------------------------------------------------------------------------------
# The `serve` command
# --------------------------------------------------------------------------------------------


_BANNER = "receiving OTLP traces on http://127.0.0.1:"


class StderrReader:
    """The only reader of a process's stderr: a thread that keeps every line.

    A second reader of the same pipe loses lines: ``communicate()`` reads the raw descriptor, so the
    lines a text-mode reader had already buffered (the warnings right after the banner) were never
    seen by it.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._lock:
                self._lines.append(line)

    def banner_url(self) -> str | None:
        """The URL the server announced, once it has (None before, and after the stream ended without it)."""
        with self._lock:
            announced = next((line for line in self._lines if _BANNER in line), None)
        return announced.rsplit(" ", 1)[1].strip() if announced is not None else None

    def ended(self) -> bool:
        return not self._thread.is_alive()

    def text(self, timeout_s: float = 60) -> str:
        """Everything written to the stream, once it has been closed (the process exited)."""
        self._thread.join(timeout_s)
        with self._lock:
            return "".join(self._lines)


@contextlib.contextmanager
def serve_process(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str, StderrReader]]:
    """`otel-llm-cost serve --port 0 ...` in a subprocess; yields it, its announced URL, its stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_llm_cost", "serve", "--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert process.stderr is not None
        stderr = StderrReader(process.stderr)
        # Warnings (e.g. a new user-id key) may precede the banner; a dead server ends the stream.
        wait_until(
            lambda: stderr.banner_url() or stderr.ended(), timeout_s=60, what="serve to announce its URL"
        )
        url = stderr.banner_url()
        if url is None:
            pytest.fail("serve never announced its URL:\n" + stderr.text())
        yield process, url, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.slow
def test_serve_stores_everything_acknowledged_when_sigterm_arrives(tmp_path: Path) -> None:
    db = tmp_path / "served.duckdb"
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[[budget]]\npreset = "per_org_daily"\nlimit_usd = "0.000001"\n')
    with serve_process(
        "--db", str(db), "--budgets", str(budgets), env={"OTEL_LLM_COST_SERVE_TOKEN": "tok-123"}
    ) as (process, url, output):
        assert request(url, b"").status == 401
        provider = TracerProvider(resource=Resource({"service.name": "api"}))
        exporter = OTLPSpanExporter(endpoint=url, headers={"Authorization": "Bearer tok-123"})
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
        for i in range(30):
            attributes = {**LLM_ATTRIBUTES, sc.GEN_AI_RESPONSE_ID: f"r-{i}", sc.COST_ORG_ID: "org_1"}
            with tracer.start_as_current_span("chat", attributes=attributes):
                pass
        provider.shutdown()  # every span acknowledged by the receiver, none stored yet (1 s batch delay)

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        stderr = output.text()

    assert process.returncode == 0, stderr
    assert "30 span(s) accepted" in stderr
    # No shared user-id key: the operator is told that hashes here will not match the senders'.
    assert "OTEL_LLM_COST_USER_ID_KEY is not set" in stderr
    assert query(db, "SELECT count(*), count(DISTINCT response_id) FROM llm_calls") == [(30, 30)]
    alerts = query(db, "SELECT budget, entity FROM budget_alerts")
    assert ("per_org_daily", "org_1") in alerts


@pytest.mark.slow
def test_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    with OTLPReceiver(BatchSpanProcessor(InMemorySpanExporter()), port=0) as busy:
        port = busy.url.split(":")[2].split("/")[0]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "otel_llm_cost",
                "serve",
                "--db",
                str(tmp_path / "x.duckdb"),
                "--port",
                port,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert "Address already in use" in result.stderr


@pytest.mark.slow
def test_a_database_that_cannot_be_written_answers_503_once_the_exporters_backlog_fills(
    tmp_path: Path,
) -> None:
    # The exporter takes batches at once and commits them on its writer thread: while a reader holds
    # the file, what it accepted waits uncommitted, and that backlog counts against the queue's room.
    db = tmp_path / "calls.duckdb"
    _storage.connect(db).close()
    exporter = DuckDBSpanExporter(db, lock_timeout_s=0.1)
    pipeline = ReceiverPipeline(exporter, max_queue_size=8, max_export_batch_size=4, schedule_delay_millis=5)
    spans = [make_span(start_ns=1_736_942_400_000_000_000 + i) for i in range(16)]
    receiver = OTLPReceiver(pipeline, port=0, pipeline=pipeline, busy_timeout_s=0.3).start()
    try:
        with _reader_process_holding(db) as reader:
            assert request(receiver.url, protobuf_body(spans[:8])).status == 200
            # The pipeline hands them over; the file stays held.
            wait_until(lambda: exporter.uncommitted_rows >= 8, what="8 rows waiting to be committed")
            busy = request(receiver.url, protobuf_body(spans[8:]))
            assert busy.status == 503
            assert reader.stdin is not None
            reader.stdin.write("\n")  # the reader leaves
            reader.stdin.flush()
            retry = retry_while_busy(receiver.url, protobuf_body(spans[8:]), interval_s=0.1)
            assert retry.status == 200
    finally:
        receiver.stop()
    assert exporter.uncommitted_rows == 0
    assert query(db, "SELECT count(*) FROM llm_calls") == [(16,)]
