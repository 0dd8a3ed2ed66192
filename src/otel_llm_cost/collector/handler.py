"""The receiver's ASGI application: ``POST /v1/traces`` decoded, admitted and handed to a processor.

Admission is where backpressure happens: a request waits briefly for room in the receiver's pipeline
and is answered 503 with ``Retry-After`` when none comes, so the sender retries instead of a queue
dropping what was already acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from otel_llm_cost._logging import log_once
from otel_llm_cost.collector.http import (
    Decoder,
    RequestError,
    decode_body,
    is_gzip,
    response,
    wire_format_of,
)
from otel_llm_cost.collector.otlp import WireFormat, decode_spans
from otel_llm_cost.collector.pipeline import AdmissionPipeline
from otel_llm_cost.collector.received import decode_for_storage
from otel_llm_cost.collector.responses import encode_export_response, encode_status
from otel_llm_cost.collector.storing import StoringPipeline
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

__all__ = ["HEALTH_PATH", "READY_PATH", "TRACES_PATH", "ReceiverStats", "TraceHandler"]

_logger = logging.getLogger("otel_llm_cost.collector")

TRACES_PATH: Final = "/v1/traces"
HEALTH_PATH: Final = "/health"
"""Liveness: 200 while the server answers at all."""
READY_PATH: Final = "/ready"
"""Readiness: 200 while an ordinary export would be accepted, 503 (with the backlog) otherwise."""

_READY_ROOM: Final = 512
"""Room an ordinary export needs: the SDK's BatchSpanProcessor sends batches of at most 512 spans."""

_RETRY_AFTER_S: Final = 1
_POLL_S: Final = 0.01


@dataclass(slots=True)
class ReceiverStats:
    """Counters of what a receiver has seen since it started (read them after :meth:`OTLPReceiver.stop`)."""

    requests: int = 0
    spans_accepted: int = 0
    spans_rejected: int = 0
    responses: Counter[int] = field(default_factory=Counter)
    """Responses by HTTP status code."""


class TraceHandler:
    """Answers OTLP/HTTP trace exports and hands every accepted span to ``processor.on_end``.

    Each span of an accepted request reaches ``processor.on_end`` before the 200 answer is sent. The
    application's lifespan shutdown (after the last in-flight request) shuts the processor down once.
    """

    def __init__(
        self,
        processor: SpanProcessor,
        *,
        token: bytes | None,
        max_body_bytes: int,
        pipeline: AdmissionPipeline | None,
        busy_timeout_s: float,
    ) -> None:
        self._processor = processor
        self._token = token
        self._max_body_bytes = max_body_bytes
        if pipeline is None and isinstance(processor, AdmissionPipeline):
            pipeline = processor  # the receiver's pipeline given alone: it still brings its backpressure
        self._pipeline = pipeline
        self._decode = _decoder_for(processor, pipeline)
        # A storing pipeline takes a request's spans as one batch; any other processor span by span.
        storing = pipeline if isinstance(pipeline, StoringPipeline) and processor is pipeline else None
        self._store = storing.store if storing is not None else None
        self._busy_timeout_s = busy_timeout_s
        self.stats = ReceiverStats()
        self._admit_lock: asyncio.Lock | None = None
        self._shutdown_lock = threading.Lock()
        self._processor_shut_down = False
        self._stopping = False
        self.app: Starlette = self._create_app()

    def shutdown_processor(self) -> None:
        """Shut the processor down (flushing it) the first time only; never raises."""
        with self._shutdown_lock:
            if self._processor_shut_down:
                return
            self._processor_shut_down = True
        try:
            self._processor.shutdown()
        except Exception as exc:
            log_once(
                _logger, "collector.shutdown", logging.ERROR, "flushing the span processor failed: %r", exc
            )

    def _create_app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            self._admit_lock = asyncio.Lock()
            yield
            self._stopping = True
            # uvicorn runs this after the last in-flight request has been answered: flushing here
            # stores everything that was acknowledged, before the process exits.
            await run_in_threadpool(self.shutdown_processor)

        async def on_http_exception(request: Request, exc: Exception) -> Response:
            if not isinstance(exc, HTTPException):  # registered for HTTPException only
                raise exc
            wire_format = wire_format_of(request.headers.get("content-type")) or WireFormat.JSON
            message = exc.detail
            if exc.status_code in (404, 405):
                message = (
                    f"{exc.detail}: {request.method} {request.url.path}; this receiver accepts "
                    f"POST {TRACES_PATH} only (traces; metrics and logs are not stored), "
                    f"and GET {HEALTH_PATH} and {READY_PATH} for orchestrators"
                )
            return self._error(wire_format, exc.status_code, message, dict(exc.headers or {}))

        return Starlette(
            routes=[
                Route(TRACES_PATH, self._export_traces, methods=["POST"]),
                Route(HEALTH_PATH, self._health, methods=["GET", "HEAD"]),
                Route(READY_PATH, self._ready, methods=["GET", "HEAD"]),
            ],
            exception_handlers={HTTPException: on_http_exception},
            lifespan=lifespan,
        )

    async def _export_traces(self, request: Request) -> Response:
        self.stats.requests += 1
        requested_format = wire_format_of(request.headers.get("content-type"))
        # Errors are answered in the request's encoding; JSON when it is not one we speak.
        wire_format = requested_format or WireFormat.JSON
        try:
            self._authorize(request.headers.get("authorization"))
            if requested_format is None:
                raise RequestError(
                    415,
                    f"unsupported Content-Type {request.headers.get('content-type')!r}: "
                    f"send {WireFormat.PROTOBUF.content_type} or {WireFormat.JSON.content_type}",
                )
            gzipped = is_gzip(request.headers.get("content-encoding"))
            body = await self._read_body(request)
            # Decompression and decoding are CPU work: off the event loop, which keeps accepting.
            decoded = await run_in_threadpool(
                decode_body, body, requested_format, gzipped, self._max_body_bytes, self._decode
            )
            failed, failures = await self._accept(decoded.spans)
        except RequestError as exc:
            return self._error(wire_format, exc.status, exc.message, exc.headers)
        rejected = decoded.rejected + failed
        errors = [decoded.error_message] if decoded.rejected else []
        errors.extend(failures)
        self.stats.spans_accepted += len(decoded.spans) - failed
        self.stats.spans_rejected += rejected
        if rejected:
            log_once(
                _logger,
                "collector.rejected",
                logging.WARNING,
                "rejected spans from an OTLP request: %s",
                "; ".join(errors),
            )
        self.stats.responses[200] += 1
        body = encode_export_response(wire_format, rejected=rejected, error_message="; ".join(errors))
        return response(200, body, wire_format)

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _ready(self, request: Request) -> Response:
        """Whether an export of ordinary size would be accepted now, with the numbers behind it."""
        pipeline = self._pipeline
        report: dict[str, object] = {}
        ready = not self._stopping and not self._processor_shut_down
        if pipeline is not None:
            room = pipeline.room()
            report.update(
                capacity=pipeline.capacity,
                queued=pipeline.queued,
                uncommitted_rows=pipeline.backlog,
                room=room,
            )
            ready = ready and room >= min(_READY_ROOM, pipeline.capacity // 2)
        report["status"] = "ready" if ready else ("stopping" if self._stopping else "busy")
        return JSONResponse(report, status_code=200 if ready else 503)

    def _authorize(self, header: str | None) -> None:
        if self._token is None:
            return
        scheme, _, credentials = (header or "").strip().partition(" ")
        # compare_digest: the comparison time does not reveal how much of a guessed token matched.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credentials.strip().encode("utf-8"), self._token
        ):
            raise RequestError(
                401,
                "missing or invalid bearer token (send 'Authorization: Bearer <token>')",
                {"WWW-Authenticate": 'Bearer realm="otel-llm-cost"'},
            )

    async def _read_body(self, request: Request) -> bytes:
        limit = self._max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise RequestError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise RequestError(413, f"request body exceeds the limit of {limit} bytes")
        except ClientDisconnect:
            # Nothing was accepted from this request; the answer is only for the log and the stats.
            raise RequestError(400, "the client disconnected before sending the whole body") from None
        return bytes(body)

    async def _accept(self, spans: Sequence[ReadableSpan]) -> tuple[int, list[str]]:
        """Hand the spans to the processor; returns how many it failed on, with the first reason."""
        if not spans:
            return 0, []
        if self._admit_lock is None:  # the lifespan startup creates it on the server's event loop
            self._admit_lock = asyncio.Lock()
        # The busy timeout runs from the request's arrival, the wait for the lock included: requests
        # queued behind one waiting for room are answered 503 once theirs is up, not one timeout each
        # after another.
        deadline = time.monotonic() + self._busy_timeout_s
        # One request at a time is admitted and emitted, so the room check cannot be raced by another
        # request filling the queue in between. Decoding, the expensive part, stays concurrent.
        async with self._admit_lock:
            pipeline = self._pipeline
            if pipeline is not None:
                needed = min(len(spans), pipeline.capacity // 2)
                while pipeline.room() < needed:
                    if time.monotonic() > deadline:
                        raise RequestError(
                            503,
                            "the receiver is storing spans more slowly than they arrive; retry later",
                            {"Retry-After": str(_RETRY_AFTER_S)},
                        )
                    await asyncio.sleep(_POLL_S)
            return await run_in_threadpool(self._emit, spans)

    def _emit(self, spans: Sequence[ReadableSpan]) -> tuple[int, list[str]]:
        if self._store is not None:
            if not self._store(spans):  # never raises
                raise RequestError(
                    503,
                    "the receiver could not store the spans; retry later",
                    {"Retry-After": str(_RETRY_AFTER_S)},
                )
            return 0, []
        pipeline = self._pipeline
        chunk = max(1, pipeline.capacity // 2) if pipeline is not None else len(spans)
        failed = 0
        reason: list[str] = []
        on_end = self._processor.on_end
        for start in range(0, len(spans), chunk):
            part = spans[start : start + chunk]
            # Only a request larger than half the queue gets here with too little room: it was
            # acknowledged to the admission check, so it waits for the queue rather than failing. Not
            # for the exporter's backlog, which a locked file keeps from shrinking: the queue drains
            # regardless (the exporter journals what it cannot commit), so this wait always ends.
            while pipeline is not None and pipeline.room(with_backlog=False) < len(part):
                time.sleep(_POLL_S)
            for span in part:
                try:
                    on_end(span)
                except Exception as exc:  # the processor promises not to raise; count it if it does
                    failed += 1
                    if not reason:
                        reason.append(f"span processor failed: {exc!r}")
                    log_once(_logger, "collector.on_end", logging.ERROR, "span processor raised: %r", exc)
        return failed, reason

    def _error(self, wire_format: WireFormat, status: int, message: str, headers: dict[str, str]) -> Response:
        self.stats.responses[status] += 1
        # A misconfigured sender repeats the same mistake at its export rate: log each status once.
        log_once(
            _logger,
            f"collector.http_{status}",
            logging.WARNING,
            "OTLP request answered %d: %s",
            status,
            message,
        )
        return response(status, encode_status(wire_format, status, message), wire_format, headers)


def _decoder_for(processor: SpanProcessor, pipeline: AdmissionPipeline | None) -> Decoder:
    """Light spans, LLM calls only, when spans go straight to storage; else full SDK spans."""
    if pipeline is not None and processor is pipeline:
        exporter = pipeline.span_exporter
        if isinstance(exporter, DuckDBSpanExporter):
            # Storage reads only what a ReceivedSpan carries; non-LLM spans only when all are stored.
            return functools.partial(decode_for_storage, all_spans=exporter.store_all_spans)
    return decode_spans
