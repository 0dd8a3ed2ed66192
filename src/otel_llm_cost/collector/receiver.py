"""Collector mode: an OTLP/HTTP trace receiver that enriches and stores what other processes export.

A DuckDB file has exactly one writer process (DESIGN.md fact 5). Applications with several processes
(gunicorn or uvicorn workers, Celery workers, services in other languages, an OpenTelemetry Collector)
export their spans with any standard OTLP/HTTP exporter to this receiver, which feeds them through the
same :class:`~otel_llm_cost.processor.LLMCostSpanProcessor` and
:class:`~otel_llm_cost.exporter.DuckDBSpanExporter` an in-process application uses.

The receiver follows the OTLP/HTTP specification for traces: ``POST /v1/traces`` with
``application/x-protobuf`` or ``application/json`` bodies, optionally gzip-compressed; a 200 answer
carries an ``ExportTraceServiceResponse`` (with ``partial_success`` when spans were rejected) and an
error answer a ``google.rpc.Status``, both in the encoding of the request. It is built on Starlette and
uvicorn (the ``serve`` extra), imported only when a receiver is created.

Example::

    from otel_llm_cost.collector.receiver import serve
    serve("llm_costs.duckdb", port=4318)  # blocks; SIGTERM or Ctrl-C flushes everything and returns
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import signal
import socket
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_llm_cost import _config
from otel_llm_cost._logging import log_once
from otel_llm_cost.collector.otlp import (
    DecodedSpans,
    OTLPDecodeError,
    WireFormat,
    decode_spans,
    encode_export_response,
    encode_status,
    parse_request,
)
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

# The receiver needs the `serve` extra. The core package never imports this module, so importing the
# server libraries here keeps them optional while giving one clear error where they are needed.
try:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import Response
    from starlette.routing import Route
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess without the extra
    raise ImportError(
        "the OTLP receiver needs the 'serve' extra: pip install 'otel-llm-cost[serve]' "
        f"(missing: {_exc.name or _exc})"
    ) from _exc

if TYPE_CHECKING:
    from otel_llm_cost.budgets.budget import Budget
    from otel_llm_cost.pricing.book import PriceBook

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PORT",
    "OTLPReceiver",
    "ReceiverStats",
    "build_processor",
    "serve",
]

_logger = logging.getLogger("otel_llm_cost.collector")

DEFAULT_HOST: Final = "127.0.0.1"
"""Loopback only: exposing the receiver is an explicit decision (see the security notes)."""
DEFAULT_PORT: Final = 4318
"""The OTLP/HTTP port, so exporters configured with their defaults reach the receiver."""
DEFAULT_MAX_BODY_BYTES: Final = 20 * 1024 * 1024
"""20 MiB, the OpenTelemetry Collector's default request size limit; applies after decompression too."""

TRACES_PATH: Final = "/v1/traces"

# The receiver's batch processor. Large export batches because DuckDB inserts thousands of rows per
# batch several times faster than hundreds (DESIGN.md fact 5); a deep queue to absorb bursts from many
# senders, with backpressure (503 + Retry-After) before it could overflow, since a full SDK queue
# silently drops spans.
RECEIVER_MAX_QUEUE_SIZE: Final = 131_072
RECEIVER_MAX_EXPORT_BATCH_SIZE: Final = 8_192
RECEIVER_SCHEDULE_DELAY_MILLIS: Final = 1_000

_BUSY_TIMEOUT_S: Final = 2.0
"""How long a request waits for queue room before 503; short, so the sender's retry (not its timeout)
handles a sustained overload and no request is accepted after its sender gave up on it."""
_RETRY_AFTER_S: Final = 1
_LISTEN_BACKLOG: Final = 2048
_POLL_S: Final = 0.01


@dataclass(slots=True)
class ReceiverStats:
    """Counters of what a receiver has seen since it started (read them after :meth:`OTLPReceiver.stop`)."""

    requests: int = 0
    spans_accepted: int = 0
    spans_rejected: int = 0
    responses: Counter[int] = field(default_factory=Counter)
    """Responses by HTTP status code."""


class _QueueProbe:
    """Reads how full a BatchSpanProcessor's queue is, to apply backpressure before it drops spans.

    The SDK has no public accessor (its queue-size gauge needs a MeterProvider), so this reads the
    private deque of ``opentelemetry.sdk._shared_internal.BatchProcessor`` (the SDK versions this
    package supports) and, if a future SDK moves it, disables backpressure with a log line rather
    than failing. A DuckDBSpanExporter behind it takes batches at once and commits them on its writer
    thread: its backlog of uncommitted rows counts against the same capacity, so a slow or locked
    database also answers 503 instead of growing the exporter's journal without bound.
    """

    def __init__(self, batch_processor: BatchSpanProcessor) -> None:
        inner = getattr(batch_processor, "_batch_processor", None)
        queue = getattr(inner, "_queue", None)
        capacity = getattr(inner, "_max_queue_size", None)
        exporter = getattr(batch_processor, "span_exporter", None)
        self.exporter: DuckDBSpanExporter | None = (
            exporter if isinstance(exporter, DuckDBSpanExporter) else None
        )
        self.queue: deque[Any] | None = queue if isinstance(queue, deque) else None
        self.capacity: int = capacity if isinstance(capacity, int) and capacity > 0 else 0
        if self.queue is None or not self.capacity:
            _logger.warning(
                "cannot read the BatchSpanProcessor queue of this opentelemetry-sdk version; "
                "the receiver runs without backpressure and the SDK may drop spans under overload"
            )
            self.queue = None

    @property
    def enabled(self) -> bool:
        return self.queue is not None

    def room(self, *, with_backlog: bool = True) -> int:
        """Free places in the queue, less the exporter's uncommitted rows unless ``with_backlog`` is False."""
        if self.queue is None:
            return self.capacity
        backlog = self.exporter.uncommitted_rows if self.exporter is not None and with_backlog else 0
        return self.capacity - len(self.queue) - backlog


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class OTLPReceiver:
    """An OTLP/HTTP trace receiver that hands every decoded span to a span processor.

    Each span of an accepted request is passed to ``processor.on_end`` before the 200 answer is sent,
    so a span that was acknowledged is in the processor's queue; :meth:`stop` (and SIGTERM/SIGINT under
    :meth:`serve_forever`) drains in-flight requests, then shuts the processor down, which flushes it.

    Args:
        processor: Receives the decoded spans; normally :func:`build_processor`'s result.
        host: Interface to bind. The default is loopback; bind a public interface only with a token.
        port: TCP port; 0 picks a free one (see :attr:`url`).
        token: When set, every request must carry ``Authorization: Bearer <token>`` (else 401).
        max_body_bytes: Largest request body accepted, before and after decompression (else 413).
        batch_processor: The ``BatchSpanProcessor`` behind ``processor``; when given, the receiver
            answers 503 with ``Retry-After`` instead of letting its queue overflow and drop spans.
        busy_timeout_s: How long a request waits for room in that queue before the 503.

    Raises:
        ValueError: A bad argument (empty token, non-positive size, port out of range).

    Attributes:
        app: The ASGI application (Starlette). Its lifespan shutdown shuts ``processor`` down, so it
            can also be served by another ASGI server, as a single process (one DuckDB writer).
        stats: Counters of requests and spans (:class:`ReceiverStats`).

    Example::

        with OTLPReceiver(processor, port=0) as receiver:
            ...  # exporters send to receiver.url
        # stopped and flushed here
    """

    def __init__(
        self,
        processor: SpanProcessor,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        batch_processor: BatchSpanProcessor | None = None,
        busy_timeout_s: float = _BUSY_TIMEOUT_S,
    ) -> None:
        if token is not None and not token.strip():
            raise ValueError("token must not be empty (leave it unset to disable authentication)")
        if max_body_bytes <= 0:
            raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port}")
        self._processor = processor
        self._host = host
        self._port = port
        self._token = token.encode("utf-8") if token is not None else None
        self._max_body_bytes = max_body_bytes
        self._busy_timeout_s = busy_timeout_s
        self._probe = _QueueProbe(batch_processor) if batch_processor is not None else None
        self.stats = ReceiverStats()
        self._admit_lock: asyncio.Lock | None = None
        self._shutdown_lock = threading.Lock()
        self._processor_shut_down = False
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self.app: Starlette = self._create_app()

    # ----------------------------------------------------------------------------------------
    # Lifecycle
    # ----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The traces endpoint, e.g. ``http://127.0.0.1:4318/v1/traces`` (the bound port once started)."""
        port = self._socket.getsockname()[1] if self._socket is not None else self._port
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{port}{TRACES_PATH}"

    def serve_forever(self) -> None:
        """Serve until SIGTERM or SIGINT (when called from the main thread) or :meth:`stop`.

        On the signal the receiver stops accepting connections, finishes the requests in flight, then
        shuts the processor down (flushing every accepted span) and returns.

        Raises:
            OSError: The address cannot be bound (for example the port is in use).
        """
        server = self._make_server()
        main_thread = threading.current_thread() is threading.main_thread()
        previous: dict[signal.Signals, Any] = {}
        if main_thread:
            # uvicorn re-raises the signal that stopped it once it has shut down; with the default
            # SIGTERM disposition that would kill the process before it returns here, so a graceful
            # stop ends in a normal return (exit status 0) instead.
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, _ignore_signal)
        try:
            server.run(sockets=[self._bound_socket()])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._shutdown_processor()
            self._close_socket()

    def start(self, timeout_s: float = 10.0) -> OTLPReceiver:
        """Serve from a background thread; return once the socket accepts connections.

        Args:
            timeout_s: How long to wait for the server to start.

        Returns:
            This receiver (for chaining and ``with``).

        Raises:
            OSError: The address cannot be bound.
            RuntimeError: The server did not start in time or failed while starting.
        """
        if self._thread is not None:
            raise RuntimeError("the receiver is already running")
        server = self._make_server()
        sock = self._bound_socket()

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # reported by start()/stop() on the caller's thread
                self._thread_error = exc

        self._thread = threading.Thread(target=run, name="otel-llm-cost-receiver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the OTLP receiver did not start: {self._thread_error!r}")
            time.sleep(_POLL_S)
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop serving: finish in-flight requests, then shut the processor down (flushing it).

        Args:
            timeout_s: How long to wait for the server thread.
        """
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._shutdown_processor()
        self._close_socket()

    def __enter__(self) -> OTLPReceiver:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _make_server(self) -> uvicorn.Server:
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            # Per-request access logs would be span-rate noise; errors still reach the log.
            access_log=False,
            # Leave the application's logging configuration alone (uvicorn's dictConfig would replace it).
            log_config=None,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        return self._server

    def _bound_socket(self) -> socket.socket:
        # Binding here rather than in uvicorn gives the caller the real port (port=0) and a plain
        # OSError for an address in use, before the event loop starts.
        if self._socket is None:
            family, kind, proto, _, address = socket.getaddrinfo(
                self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
                # Listening at once lets senders connect as soon as the URL is announced; the
                # kernel queues them until the event loop accepts (uvicorn's default backlog).
                sock.listen(_LISTEN_BACKLOG)
            except OSError:
                sock.close()
                raise
            self._socket = sock
        return self._socket

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()

    def _shutdown_processor(self) -> None:
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

    # ----------------------------------------------------------------------------------------
    # The ASGI application
    # ----------------------------------------------------------------------------------------

    def _create_app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            self._admit_lock = asyncio.Lock()
            yield
            # uvicorn runs this after the last in-flight request has been answered: flushing here
            # stores everything that was acknowledged, before the process exits.
            await run_in_threadpool(self._shutdown_processor)

        async def on_http_exception(request: Request, exc: Exception) -> Response:
            if not isinstance(exc, HTTPException):  # registered for HTTPException only
                raise exc
            wire_format = _wire_format(request.headers.get("content-type")) or WireFormat.JSON
            message = exc.detail
            if exc.status_code in (404, 405):
                message = (
                    f"{exc.detail}: {request.method} {request.url.path}; this receiver accepts "
                    f"POST {TRACES_PATH} only (traces; metrics and logs are not stored)"
                )
            return self._error(wire_format, exc.status_code, message, dict(exc.headers or {}))

        return Starlette(
            routes=[Route(TRACES_PATH, self._export_traces, methods=["POST"])],
            exception_handlers={HTTPException: on_http_exception},
            lifespan=lifespan,
        )

    async def _export_traces(self, request: Request) -> Response:
        self.stats.requests += 1
        requested_format = _wire_format(request.headers.get("content-type"))
        # Errors are answered in the request's encoding; JSON when it is not one we speak.
        wire_format = requested_format or WireFormat.JSON
        try:
            self._authorize(request.headers.get("authorization"))
            if requested_format is None:
                raise _HTTPError(
                    415,
                    f"unsupported Content-Type {request.headers.get('content-type')!r}: "
                    f"send {WireFormat.PROTOBUF.content_type} or {WireFormat.JSON.content_type}",
                )
            gzipped = _is_gzip(request.headers.get("content-encoding"))
            body = await self._read_body(request)
            # Decompression and decoding are CPU work: off the event loop, which keeps accepting.
            decoded = await run_in_threadpool(_decode, body, requested_format, gzipped, self._max_body_bytes)
            failed, failures = await self._accept(decoded.spans)
        except _HTTPError as exc:
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
        return _response(
            200,
            encode_export_response(wire_format, rejected=rejected, error_message="; ".join(errors)),
            wire_format,
        )

    def _authorize(self, header: str | None) -> None:
        if self._token is None:
            return
        scheme, _, credentials = (header or "").strip().partition(" ")
        # compare_digest: the comparison time does not reveal how much of a guessed token matched.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credentials.strip().encode("utf-8"), self._token
        ):
            raise _HTTPError(
                401,
                "missing or invalid bearer token (send 'Authorization: Bearer <token>')",
                {"WWW-Authenticate": 'Bearer realm="otel-llm-cost"'},
            )

    async def _read_body(self, request: Request) -> bytes:
        limit = self._max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise _HTTPError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise _HTTPError(413, f"request body exceeds the limit of {limit} bytes")
        except ClientDisconnect:
            # Nothing was accepted from this request; the answer is only for the log and the stats.
            raise _HTTPError(400, "the client disconnected before sending the whole body") from None
        return bytes(body)

    async def _accept(self, spans: Sequence[ReadableSpan]) -> tuple[int, list[str]]:
        """Hand the spans to the processor; returns how many it failed on, with the first reason."""
        if not spans:
            return 0, []
        if self._admit_lock is None:  # the lifespan startup creates it on the server's event loop
            self._admit_lock = asyncio.Lock()
        # One request at a time is admitted and emitted, so the room check cannot be raced by another
        # request filling the queue in between. Decoding, the expensive part, stays concurrent.
        async with self._admit_lock:
            probe = self._probe
            if probe is not None and probe.enabled:
                needed = min(len(spans), probe.capacity // 2)
                deadline = time.monotonic() + self._busy_timeout_s
                while probe.room() < needed:
                    if time.monotonic() > deadline:
                        raise _HTTPError(
                            503,
                            "the receiver is storing spans more slowly than they arrive; retry later",
                            {"Retry-After": str(_RETRY_AFTER_S)},
                        )
                    await asyncio.sleep(_POLL_S)
            return await run_in_threadpool(self._emit, spans)

    def _emit(self, spans: Sequence[ReadableSpan]) -> tuple[int, list[str]]:
        probe = self._probe if self._probe is not None and self._probe.enabled else None
        chunk = max(1, probe.capacity // 2) if probe is not None else len(spans)
        failed = 0
        reason: list[str] = []
        on_end = self._processor.on_end
        for start in range(0, len(spans), chunk):
            part = spans[start : start + chunk]
            # Only a request larger than half the queue gets here with too little room: it was
            # acknowledged to the admission check, so it waits for the queue rather than failing. Not
            # for the exporter's backlog, which a locked file keeps from shrinking: the queue drains
            # regardless (the exporter journals what it cannot commit), so this wait always ends.
            while probe is not None and probe.room(with_backlog=False) < len(part):
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
        return _response(status, encode_status(wire_format, status, message), wire_format, headers)


def _decode(body: bytes, wire_format: WireFormat, gzipped: bool, limit: int) -> DecodedSpans:
    if gzipped:
        body = _gunzip(body, limit)
    try:
        return decode_spans(parse_request(body, wire_format))
    except OTLPDecodeError as exc:
        raise _HTTPError(400, str(exc)) from None


def _response(
    status: int, body: bytes, wire_format: WireFormat, headers: dict[str, str] | None = None
) -> Response:
    return Response(body, status_code=status, media_type=wire_format.content_type, headers=headers)


def _wire_format(content_type: str | None) -> WireFormat | None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in ("application/x-protobuf", "application/protobuf"):
        return WireFormat.PROTOBUF
    if media_type == "application/json":
        return WireFormat.JSON
    return None


def _is_gzip(content_encoding: str | None) -> bool:
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return False
    if encoding == "gzip":
        return True
    raise _HTTPError(415, f"unsupported Content-Encoding {content_encoding!r}: send gzip or no encoding")


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip data, refusing to produce more than ``limit`` bytes (a small body can inflate
    to gigabytes: the limit must hold after decompression, not only on the wire)."""
    out = bytearray()
    while True:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += decompressor.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise _HTTPError(400, f"invalid gzip body: {exc}") from None
        if len(out) > limit or decompressor.unconsumed_tail:
            raise _HTTPError(413, f"decompressed request body exceeds the limit of {limit} bytes")
        if not decompressor.eof:
            raise _HTTPError(400, "invalid gzip body: truncated")
        # A gzip stream may hold several members (RFC 1952); decode them all, as gzip.decompress does.
        data = decompressor.unused_data
        if not data:
            return bytes(out)


def _ignore_signal(signum: int, frame: object) -> None:
    _logger.debug("signal %d received after shutdown began", signum)


# --------------------------------------------------------------------------------------------
# The standard pipeline
# --------------------------------------------------------------------------------------------


def build_processor(
    db_path: str | os.PathLike[str] | None = None,
    *,
    pricing: PriceBook | None = None,
    budgets: Sequence[Budget] = (),
) -> tuple[SpanProcessor, BatchSpanProcessor]:
    """The receiver's pipeline: ``LLMCostSpanProcessor(BatchSpanProcessor(DuckDBSpanExporter(db)))``.

    The same enrichment (usage normalisation, pricing, double-count guard, budgets) and the same
    writer as in-process use, with a batch processor sized for a receiver (large export batches, a
    deep queue).

    Args:
        db_path: The DuckDB file (default: ``OTEL_LLM_COST_DUCKDB_PATH``, else ``llm_costs.duckdb``).
        pricing: Price book (default: bundled prices plus ``OTEL_LLM_COST_PRICES``).
        budgets: Budgets to evaluate on received spans.

    Returns:
        The processor to give :class:`OTLPReceiver`, and the batch processor inside it (for backpressure).

    Raises:
        StorageError: The DuckDB file cannot be opened for writing.
    """
    path = db_path if db_path is not None else _config.DUCKDB_PATH.get()
    batch = BatchSpanProcessor(
        DuckDBSpanExporter(path),
        max_queue_size=RECEIVER_MAX_QUEUE_SIZE,
        max_export_batch_size=RECEIVER_MAX_EXPORT_BATCH_SIZE,
        schedule_delay_millis=RECEIVER_SCHEDULE_DELAY_MILLIS,
    )
    processor = LLMCostSpanProcessor(batch, pricing=pricing, budgets=budgets)
    return processor, batch


def serve(
    db_path: str | os.PathLike[str] | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    pricing: PriceBook | None = None,
    budgets: Sequence[Budget] = (),
    on_ready: Callable[[OTLPReceiver], None] | None = None,
) -> ReceiverStats:
    """Receive OTLP/HTTP traces, enrich and store them, until SIGTERM/SIGINT; then flush and return.

    Args:
        db_path: The DuckDB file (default: ``OTEL_LLM_COST_DUCKDB_PATH``, else ``llm_costs.duckdb``).
        host: Interface to bind (default loopback).
        port: TCP port (default 4318, the OTLP/HTTP port; 0 picks a free one).
        token: Bearer token required on every request (default: ``OTEL_LLM_COST_SERVE_TOKEN``, else none).
        max_body_bytes: Request size limit, before and after decompression.
        pricing: Price book (default: bundled prices plus ``OTEL_LLM_COST_PRICES``).
        budgets: Budgets to evaluate on received spans.
        on_ready: Called with the receiver once its socket is bound, before serving.

    Returns:
        What the receiver saw.

    Raises:
        ValueError: A bad argument.
        OSError: The address cannot be bound.
        StorageError: The DuckDB file cannot be opened for writing.
    """
    if token is None:
        token = _config.SERVE_TOKEN.get()
    processor, batch = build_processor(db_path, pricing=pricing, budgets=budgets)
    try:
        receiver = OTLPReceiver(
            processor,
            host=host,
            port=port,
            token=token,
            max_body_bytes=max_body_bytes,
            batch_processor=batch,
        )
        receiver._bound_socket()  # bind before announcing the URL
    except BaseException:
        processor.shutdown()
        raise
    if token is None and not _is_loopback(host):
        _logger.warning(
            "the receiver listens on %s without a token: anyone who can reach it can write cost data "
            "(set OTEL_LLM_COST_SERVE_TOKEN)",
            host,
        )
    if on_ready is not None:
        on_ready(receiver)
    if _config.USER_ID_HASH_KEY.get() is None:
        # The receiver hashes raw user ids (OpenInference user.id, Traceloop association properties)
        # with its own key; senders that hash in-process with attribution() use theirs. Without one
        # shared key the same user gets two ids and per-user budgets split.
        _logger.warning(
            "%s is not set: raw user ids received here are hashed with this machine's key, which "
            "differs from the senders' unless they share it; set the same secret everywhere",
            _config.USER_ID_HASH_KEY.name,
        )
    receiver.serve_forever()
    return receiver.stats


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")
