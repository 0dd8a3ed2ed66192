"""The OTLP/HTTP receiver over real HTTP on 127.0.0.1: status codes, bodies, bad input, token,
backpressure and flushing. Spans land in an InMemorySpanExporter here; the DuckDB pipeline end to end
is in test_collector_pipeline.py."""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from google.rpc import code_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from helpers import wait_until
from otel_llm_cost.collector.receiver import OTLPReceiver, ReceiverPipeline

LIMIT = 64 * 1024
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def rpc_status(self) -> Any:
        if self.content_type == PROTOBUF:
            return status_pb2.Status.FromString(self.body)
        document = json.loads(self.body)
        return status_pb2.Status(code=document.get("code", 0), message=document.get("message", ""))


def request(
    url: str,
    body: bytes | Iterable[bytes] = b"",
    *,
    content_type: str | None = PROTOBUF,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    path: str | None = None,
) -> Reply:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    all_headers = dict(headers or {})
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    try:
        connection.request(
            method,
            path or parts.path,
            body=body,
            headers=all_headers,
            encode_chunked=not isinstance(body, bytes),
        )
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def make_spans(count: int, *, service: str = "svc", start_id: int = 1) -> list[ReadableSpan]:
    """Finished spans from a real TracerProvider (fresh per call, never the global one)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test.collector")
    for i in range(count):
        with tracer.start_as_current_span(f"span {start_id + i}", attributes={"i": start_id + i}):
            pass
    provider.shutdown()
    return list(exporter.get_finished_spans())


def protobuf_body(spans: Sequence[ReadableSpan]) -> bytes:
    return bytes(encode_spans(spans).SerializeToString())


@pytest.fixture
def memory() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def receiver(memory: InMemorySpanExporter) -> Iterator[OTLPReceiver]:
    with OTLPReceiver(SimpleSpanProcessor(memory), port=0, max_body_bytes=LIMIT) as started:
        yield started


def names(memory: InMemorySpanExporter) -> list[str]:
    return sorted(span.name for span in memory.get_finished_spans())


# --------------------------------------------------------------------------------------------
# Accepting spans
# --------------------------------------------------------------------------------------------


def test_the_sdk_otlp_exporter_delivers_spans(receiver: OTLPReceiver, memory: InMemorySpanExporter) -> None:
    spans = make_spans(20)
    exporter = OTLPSpanExporter(endpoint=receiver.url)

    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()

    received = {span.context.span_id: span for span in memory.get_finished_spans()}
    assert set(received) == {span.context.span_id for span in spans}
    for span in spans:
        assert dict(received[span.context.span_id].attributes or {}) == dict(span.attributes or {})
        assert received[span.context.span_id].resource.attributes["service.name"] == "svc"


def test_gzip_compressed_exports_are_accepted(receiver: OTLPReceiver, memory: InMemorySpanExporter) -> None:
    exporter = OTLPSpanExporter(endpoint=receiver.url, compression=Compression.Gzip)
    assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
    exporter.shutdown()
    json_body = json.dumps(
        {
            "resourceSpans": [
                {"scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "gz json"}]}]}
            ]
        }
    ).encode()

    reply = request(
        receiver.url, gzip.compress(json_body), content_type=JSON, headers={"Content-Encoding": "gzip"}
    )

    assert reply.status == 200
    assert json.loads(reply.body) == {}
    assert names(memory) == ["gz json", "span 1", "span 2", "span 3"]


def test_responses_use_the_request_encoding(receiver: OTLPReceiver) -> None:
    reply = request(receiver.url, protobuf_body(make_spans(1)))
    assert (reply.status, reply.content_type) == (200, PROTOBUF)
    assert ExportTraceServiceResponse.FromString(reply.body) == ExportTraceServiceResponse()

    reply = request(receiver.url, b'{"resourceSpans": []}', content_type="application/json; charset=utf-8")
    assert (reply.status, reply.content_type, reply.body) == (200, JSON, b"{}")


def test_invalid_spans_are_rejected_with_partial_success(
    receiver: OTLPReceiver, memory: InMemorySpanExporter
) -> None:
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {"traceId": "00" * 16, "spanId": "01" * 8, "name": "zero trace id"},
                            {"traceId": "0a" * 16, "spanId": "0b" * 8, "name": "valid"},
                        ]
                    }
                ]
            }
        ]
    }

    reply = request(receiver.url, json.dumps(body).encode(), content_type=JSON)

    assert reply.status == 200
    partial = json.loads(reply.body)["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "spans[0]: traceId is all zeros" in partial["errorMessage"]
    assert names(memory) == ["valid"]
    assert (receiver.stats.spans_accepted, receiver.stats.spans_rejected) == (1, 1)


# A realistic OTLP/JSON export as the OpenTelemetry JS SDK sends it (hex ids, integer enums, 64-bit
# integers as strings), carrying attribution set by the sending service as attributes and as baggage
# copied onto the span.
JS_EXPORT = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": "web-bff"}},
                    {"key": "telemetry.sdk.language", "value": {"stringValue": "nodejs"}},
                ]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "@opentelemetry/instrumentation-openai", "version": "0.1.0"},
                    "spans": [
                        {
                            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                            "spanId": "00f067aa0ba902b7",
                            "parentSpanId": "53995c3f42cd8ad8",
                            "name": "chat gpt-4o-mini",
                            "kind": 3,
                            "startTimeUnixNano": "1731400000000000000",
                            "endTimeUnixNano": "1731400000900000000",
                            "attributes": [
                                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1000"}},
                                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 200}},
                                {"key": "cost.feature", "value": {"stringValue": "search"}},
                                {"key": "cost.org_id", "value": {"stringValue": "org_7"}},
                            ],
                            "status": {"code": 1},
                            "flags": 769,
                        }
                    ],
                }
            ],
        }
    ]
}


def test_a_js_sdk_json_export_is_accepted(receiver: OTLPReceiver, memory: InMemorySpanExporter) -> None:
    reply = request(receiver.url, json.dumps(JS_EXPORT).encode(), content_type=JSON)

    assert (reply.status, reply.body) == (200, b"{}")
    (span,) = memory.get_finished_spans()
    assert span.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert span.parent is not None
    assert span.parent.is_remote
    assert span.attributes is not None
    assert span.attributes["cost.feature"] == "search"
    assert span.attributes["gen_ai.usage.input_tokens"] == 1000


# --------------------------------------------------------------------------------------------
# Bad input: the right 4xx, a message, and the server keeps serving without losing anything
# --------------------------------------------------------------------------------------------


def _valid_protobuf() -> bytes:
    return protobuf_body(make_spans(4, start_id=100))


def _bad_id_protobuf() -> bytes:
    request_message = encode_spans(make_spans(1))
    request_message.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x01" * 5
    return bytes(request_message.SerializeToString())


BAD_REQUESTS: dict[str, tuple[dict[str, Any], int, str]] = {
    "garbage protobuf": ({"body": b"\x00\x01 this is not protobuf"}, 400, "invalid OTLP protobuf body"),
    "truncated protobuf": ({"body": _valid_protobuf()[:-7]}, 400, "invalid OTLP protobuf body"),
    "id of the wrong length": ({"body": _bad_id_protobuf()}, 400, "traceId must be 16 bytes"),
    "invalid JSON": ({"body": b'{"resourceSpans": [', "content_type": JSON}, 400, "invalid JSON body"),
    "base64 ids in JSON": (
        {
            "body": json.dumps(
                {
                    "resourceSpans": [
                        {"scopeSpans": [{"spans": [{"traceId": "S/kvNXezTaajzpKdDg5HNg==", "spanId": "AA"}]}]}
                    ]
                }
            ).encode(),
            "content_type": JSON,
        },
        400,
        "must be a hex string",
    ),
    "unsupported content type": (
        {"body": b"hello", "content_type": "text/plain"},
        415,
        "unsupported Content-Type",
    ),
    "no content type": ({"body": b"hello", "content_type": None}, 415, "unsupported Content-Type"),
    "unsupported content encoding": (
        {"body": b"x", "headers": {"Content-Encoding": "br"}},
        415,
        "unsupported Content-Encoding",
    ),
    "invalid gzip": (
        {"body": b"not gzip", "headers": {"Content-Encoding": "gzip"}},
        400,
        "invalid gzip body",
    ),
    "truncated gzip": (
        {"body": gzip.compress(_valid_protobuf())[:-12], "headers": {"Content-Encoding": "gzip"}},
        400,
        "invalid gzip body",
    ),
    "body over the limit, streamed without a length": (
        {"body": [b"\x0a" * 16 * 1024] * 5},
        413,
        "exceeds the limit of 65536 bytes",
    ),
    "gzip bomb": (
        {"body": gzip.compress(bytes(50 * LIMIT)), "headers": {"Content-Encoding": "gzip"}},
        413,
        "decompressed request body exceeds the limit",
    ),
    "wrong method": ({"method": "GET"}, 405, "accepts POST /v1/traces only"),
    "other signal": ({"path": "/v1/metrics"}, 404, "accepts POST /v1/traces only"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_the_right_4xx_and_the_server_keeps_serving(
    case: str, receiver: OTLPReceiver, memory: InMemorySpanExporter
) -> None:
    kwargs, status, message = BAD_REQUESTS[case]
    assert request(receiver.url, protobuf_body(make_spans(2, start_id=1))).status == 200

    reply = request(receiver.url, **kwargs)

    assert reply.status == status, reply.body
    assert message in reply.rpc_status().message
    expected_type = kwargs.get("content_type", PROTOBUF) or JSON
    assert reply.content_type == (expected_type if expected_type in (PROTOBUF, JSON) else JSON)
    if status == 405:
        assert reply.headers["allow"] == "POST"
    assert request(receiver.url, protobuf_body(make_spans(2, start_id=3))).status == 200
    assert names(memory) == ["span 1", "span 2", "span 3", "span 4"]


def test_declared_length_over_the_limit_is_refused_before_reading(receiver: OTLPReceiver) -> None:
    parts = urlsplit(receiver.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.putrequest("POST", parts.path)
        connection.putheader("Content-Type", PROTOBUF)
        connection.putheader("Content-Length", str(10 * LIMIT))
        connection.endheaders()  # the body is never sent: the answer must not wait for it
        response = connection.getresponse()
        assert response.status == 413
        assert status_pb2.Status.FromString(response.read()).code == code_pb2.RESOURCE_EXHAUSTED
    finally:
        connection.close()
    assert request(receiver.url, protobuf_body(make_spans(1))).status == 200


# --------------------------------------------------------------------------------------------
# Token
# --------------------------------------------------------------------------------------------


@pytest.fixture
def token_receiver(memory: InMemorySpanExporter) -> Iterator[OTLPReceiver]:
    with OTLPReceiver(SimpleSpanProcessor(memory), port=0, token="s3cret-token") as started:
        yield started


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", "Bearer s3cret-token-and-more", "Basic s3cret-token", "s3cret-token"],
)
def test_requests_without_the_token_get_401(
    authorization: str | None, token_receiver: OTLPReceiver, memory: InMemorySpanExporter
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}

    reply = request(token_receiver.url, protobuf_body(make_spans(1)), headers=headers)

    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert reply.rpc_status().code == code_pb2.UNAUTHENTICATED
    assert memory.get_finished_spans() == ()


def test_the_token_lets_the_otlp_exporter_in(
    token_receiver: OTLPReceiver, memory: InMemorySpanExporter
) -> None:
    exporter = OTLPSpanExporter(endpoint=token_receiver.url, headers={"Authorization": "Bearer s3cret-token"})
    assert exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert request(token_receiver.url, headers={"authorization": "bearer s3cret-token"}).status == 200
    assert names(memory) == ["span 1", "span 2"]


def test_bad_constructor_arguments_raise_value_error(memory: InMemorySpanExporter) -> None:
    processor = SimpleSpanProcessor(memory)
    with pytest.raises(ValueError, match="token must not be empty"):
        OTLPReceiver(processor, token=" ")
    with pytest.raises(ValueError, match="max_body_bytes"):
        OTLPReceiver(processor, max_body_bytes=0)
    with pytest.raises(ValueError, match="port"):
        OTLPReceiver(processor, port=70000)


# --------------------------------------------------------------------------------------------
# Many senders, flushing, backpressure
# --------------------------------------------------------------------------------------------

SENDER = textwrap.dedent(
    """
    import sys
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    url, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    compression = Compression.Gzip if int(worker) % 2 else Compression.NoCompression
    provider = TracerProvider(resource=Resource({"service.name": f"worker-{worker}"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=url, compression=compression), max_export_batch_size=64)
    )
    tracer = provider.get_tracer("sender")
    for i in range(count):
        with tracer.start_as_current_span(f"w{worker}-{i}", attributes={"worker": worker, "i": i}):
            pass
    provider.shutdown()
    """
)


def run_senders(url: str, workers: int, count: int) -> None:
    """``workers`` processes, each exporting ``count`` spans with the SDK's OTLP/HTTP exporter."""
    processes = [
        subprocess.Popen([sys.executable, "-c", SENDER, url, str(worker), str(count)], stderr=subprocess.PIPE)
        for worker in range(workers)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()
        assert b"Failed to export" not in stderr, stderr.decode()


@pytest.mark.slow
def test_concurrent_exporters_from_four_processes_lose_nothing(memory: InMemorySpanExporter) -> None:
    pipeline = ReceiverPipeline(memory, max_queue_size=2048, max_export_batch_size=256)
    with OTLPReceiver(pipeline, port=0, pipeline=pipeline) as receiver:
        run_senders(receiver.url, workers=4, count=300)

    spans = memory.get_finished_spans()
    assert len(spans) == 1200
    assert len({span.context.span_id for span in spans}) == 1200
    assert {span.resource.attributes["service.name"] for span in spans} == {f"worker-{w}" for w in range(4)}


def test_stop_flushes_everything_acknowledged(memory: InMemorySpanExporter) -> None:
    # A schedule delay far longer than the test: only the shutdown flush can export these spans.
    pipeline = ReceiverPipeline(memory, schedule_delay_millis=600_000, max_export_batch_size=1000)
    receiver = OTLPReceiver(pipeline, port=0, pipeline=pipeline).start()
    for start in (1, 51, 101):
        assert request(receiver.url, protobuf_body(make_spans(50, start_id=start))).status == 200
    assert memory.get_finished_spans() == ()

    receiver.stop()

    assert len(memory.get_finished_spans()) == 150
    assert receiver.stats.spans_accepted == 150


class GatedExporter(SpanExporter):
    """Exports only once the gate opens, like a DuckDB file briefly held by another process."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.exported: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.gate.wait(30)
        self.exported.extend(spans)
        return SpanExportResult.SUCCESS


class SignallingGate(GatedExporter):
    """A GatedExporter that tells when a batch has reached it (and left the batch processor's queue)."""

    def __init__(self) -> None:
        super().__init__()
        self.exporting = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exporting.set()
        return super().export(spans)


def test_the_pipeline_counts_what_waits_and_logs_what_it_cannot_hold(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = SignallingGate()
    pipeline = ReceiverPipeline(
        exporter, max_queue_size=4, max_export_batch_size=4, schedule_delay_millis=600_000
    )
    spans = make_spans(9)
    try:
        for span in spans[:4]:
            pipeline.on_end(span)
        assert exporter.exporting.wait(30)  # a full batch left the queue; its export waits for the gate
        assert (pipeline.queued, pipeline.room()) == (0, 4)
        for span in spans[4:8]:
            pipeline.on_end(span)
        assert (pipeline.queued, pipeline.room()) == (4, 0)

        with caplog.at_level(logging.WARNING, logger="otel_llm_cost.collector"):
            pipeline.on_end(spans[8])  # no room: dropped here and logged, never silently by the SDK

        assert pipeline.queued == 4
        assert "the receiver's queue is full" in caplog.text
    finally:
        exporter.gate.set()
        pipeline.shutdown()
    assert [span.attributes["i"] for span in exporter.exported if span.attributes] == list(range(1, 9))
    assert pipeline.queued == 0


def retry_while_busy(url: str, body: bytes, *, interval_s: float) -> Reply:
    """Send ``body`` again while the answer is 503, as OTLP asks of a sender; the first other answer."""

    def answered() -> Reply | None:
        response = request(url, body)
        return response if response.status != 503 else None

    return wait_until(answered, interval_s=interval_s, what="an answer other than 503")


def test_a_full_queue_answers_503_instead_of_dropping_spans() -> None:
    exporter = GatedExporter()
    pipeline = ReceiverPipeline(exporter, max_queue_size=8, max_export_batch_size=4, schedule_delay_millis=5)
    receiver = OTLPReceiver(pipeline, port=0, pipeline=pipeline, busy_timeout_s=0.3).start()
    try:
        # 8 spans fill the queue once the exporter holds the first 4; 4 more fill it again.
        assert request(receiver.url, protobuf_body(make_spans(8, start_id=1))).status == 200
        assert request(receiver.url, protobuf_body(make_spans(4, start_id=9))).status == 200

        busy = request(receiver.url, protobuf_body(make_spans(4, start_id=13)))

        assert busy.status == 503
        assert busy.headers["retry-after"] == "1"
        assert busy.rpc_status().code == code_pb2.UNAVAILABLE
        exporter.gate.set()
        retry = retry_while_busy(receiver.url, protobuf_body(make_spans(4, start_id=13)), interval_s=0)
        assert retry.status == 200
    finally:
        exporter.gate.set()
        receiver.stop()

    assert sorted(span.attributes["i"] for span in exporter.exported if span.attributes) == list(range(1, 17))


@pytest.mark.slow
def test_the_receiver_module_explains_a_missing_serve_extra() -> None:
    script = "import sys; sys.modules['uvicorn'] = None; import otel_llm_cost.collector"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "pip install 'otel-llm-cost[serve]'" in result.stderr

    core = "import sys; sys.modules['uvicorn'] = sys.modules['starlette'] = None; import otel_llm_cost.cli"
    assert (
        subprocess.run([sys.executable, "-c", core], capture_output=True, timeout=60, check=False).returncode
        == 0
    )

    cli = (
        "import sys; sys.modules['starlette'] = None; from otel_llm_cost.cli import main; "
        "sys.exit(main(['serve', '--port', '0']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", cli], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "pip install 'otel-llm-cost[serve]'" in result.stderr
