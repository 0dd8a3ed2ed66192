"""Alert sinks against real endpoints: a webhook server on 127.0.0.1, logging, OpenTelemetry logs.

No wall-clock assertions: the non-blocking promise is checked by ordering (the export path returned
while the server was provably still holding the request).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_llm_cost._logging import ERROR_COUNTS, reset_log_once
from otel_llm_cost.budgets import (
    Budget,
    BudgetAlert,
    BudgetEngine,
    LoggingSink,
    OTelLogSink,
    WebhookSink,
)
from otel_llm_cost.budgets.sinks import deliver
from otel_llm_cost.conventions import names as semconv
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LLM_CALL = {
    semconv.GEN_AI_OPERATION_NAME: "chat",
    semconv.GEN_AI_PROVIDER_NAME: "openai",
    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
    semconv.GEN_AI_USAGE_INPUT_TOKENS: 100_000,
    semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 10_000,
    semconv.COST_ORG_ID: "org_1",
}


@pytest.fixture(autouse=True)
def _fresh_log_once() -> Iterator[None]:
    reset_log_once()
    yield
    reset_log_once()


@dataclass
class Endpoint:
    """A real HTTP server: ``respond(n)`` gives the status of the n-th POST (0-based)."""

    respond: Callable[[int], int] = lambda _n: 204
    release: threading.Event = field(default_factory=threading.Event)
    hold: bool = False
    arrived: threading.Event = field(default_factory=threading.Event)
    responded: threading.Event = field(default_factory=threading.Event)
    attempts: int = 0
    delivered: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    state = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            n = state.attempts
            state.attempts += 1
            state.arrived.set()
            if state.hold:
                state.release.wait(30)
            status = state.respond(n)
            if status < 300:
                state.delivered.append(json.loads(body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            state.responded.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


def fire_one(sinks: list[Any], span_id: int = 0x1F) -> BudgetAlert:
    """Fire one real alert (a per-call budget crossed) and deliver it to ``sinks`` as the engine does."""
    engine = BudgetEngine([Budget.per_call(1)], [])
    [alert] = engine.check_call({semconv.LLM_COST_USD: 2.5}, trace_id=0xABC, span_id=span_id)
    deliver(alert, sinks)
    return alert


def test_webhook_that_fails_twice_then_succeeds_receives_the_alert_exactly_once(endpoint: Endpoint) -> None:
    endpoint.respond = lambda n: 503 if n < 2 else 204
    sink = WebhookSink(endpoint.url, backoff_s=0.01, max_attempts=5)
    alert = fire_one([sink])

    assert sink.shutdown(timeout_s=30)
    assert endpoint.attempts == 3
    assert len(endpoint.delivered) == 1
    payload = endpoint.delivered[0]
    assert payload["type"] == "otel_llm_cost.budget_alert"
    assert payload["text"] == alert.message
    assert payload["alert"]["spent_usd"] == "2.500000000000"
    assert payload["alert"]["limit_usd"] == "1"
    assert payload["alert"]["span_id"] == "000000000000001f"
    assert payload["alert"]["kind"] == "threshold"


def test_webhook_does_not_retry_a_client_error(endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    endpoint.respond = lambda _n: 400
    sink = WebhookSink(endpoint.url, backoff_s=0.01)
    fire_one([sink])
    assert sink.flush(30)
    assert endpoint.attempts == 1
    assert ERROR_COUNTS["budgets.webhook.failed"] == 1
    assert any("HTTP 400" in r.getMessage() for r in caplog.records)


def test_a_hanging_webhook_does_not_hold_up_export(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.hold = True
    sink = WebhookSink(endpoint.url, timeout_s=30)
    engine = BudgetEngine([Budget("org", "org", "day", "0.01", [1])], [sink])
    exporter = DuckDBSpanExporter(tmp_path / "c.duckdb", pricing=PriceBook.default())
    exporter.add_commit_listener(engine.on_commit)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # export() runs inside span.end()
    with provider.get_tracer("test").start_as_current_span("chat gpt-4o", attributes=LLM_CALL):
        pass
    # export() returned: the batch is committed and the alert recorded. The server may or may not have
    # the POST yet, but it cannot have answered: it holds every request until `release` is set below.
    assert not endpoint.responded.is_set()
    assert endpoint.arrived.wait(30)
    assert not endpoint.responded.is_set()
    endpoint.release.set()
    assert engine.flush(30)
    assert [p["alert"]["entity"] for p in endpoint.delivered] == ["org_1"]
    provider.shutdown()
    engine.shutdown(5)


def test_webhook_queue_is_bounded_and_shutdown_gives_up_after_its_timeout(endpoint: Endpoint) -> None:
    endpoint.hold = True
    sink = WebhookSink(endpoint.url, timeout_s=30, max_queue_size=1)
    fire_one([sink], span_id=1)
    assert endpoint.arrived.wait(30)  # the worker is now blocked inside the first POST
    assert sink.enqueue(b"{}")  # waits in the queue
    assert not sink.enqueue(b"{}")  # queue full: dropped, counted, returned at once
    assert ERROR_COUNTS["budgets.webhook.queue_full"] == 1

    assert sink.shutdown(timeout_s=0.05) is False
    assert not sink.enqueue(b"{}")  # closed
    endpoint.release.set()


def test_webhook_rejects_a_bad_url() -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookSink("ftp://example.com/hook")
    with pytest.raises(ValueError, match="max_attempts"):
        WebhookSink("http://127.0.0.1/hook", max_attempts=0)


def test_webhook_url_from_the_environment_is_a_default_sink(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LLM_COST_WEBHOOK_URL", endpoint.url)
    engine = BudgetEngine([Budget.per_call(1)])
    engine.check_call({semconv.LLM_COST_USD: 3.0}, span_id=7)
    engine.shutdown(30)
    assert [p["alert"]["span_id"] for p in endpoint.delivered] == ["0000000000000007"]


def test_a_failing_sink_is_logged_once_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    def broken(alert: BudgetAlert) -> None:
        raise RuntimeError("sink down")

    got: list[BudgetAlert] = []
    fire_one([broken, got.append], span_id=1)
    fire_one([broken, got.append], span_id=2)

    assert len(got) == 2
    assert (
        ERROR_COUNTS[
            "budgets.sink.test_a_failing_sink_is_logged_once_and_the_others_still_run.<locals>.broken"
        ]
        == 2
    )
    assert sum("sink down" in r.getMessage() for r in caplog.records) == 1


def test_logging_sink_logs_the_message_with_structured_extra(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost.budgets"):
        alert = fire_one([LoggingSink()])
    [record] = [r for r in caplog.records if r.name == "otel_llm_cost.budgets"]
    assert record.getMessage() == alert.message
    assert record.budget_alert["limit_usd"] == "1"  # type: ignore[attr-defined]


def test_otel_log_sink_emits_a_record_linked_to_the_triggering_span() -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    alert = fire_one([OTelLogSink(provider)])
    [finished] = exporter.get_finished_logs()
    record = getattr(finished, "log_record", finished)
    assert record.body == alert.message
    assert record.trace_id == 0xABC
    assert record.span_id == 0x1F
    assert record.severity_text == "WARN"
    assert record.attributes is not None
    assert record.attributes[semconv.BUDGET_NAME] == "per_call"
    assert record.attributes[semconv.BUDGET_SPENT_USD] == "2.500000000000"
    provider.shutdown()
