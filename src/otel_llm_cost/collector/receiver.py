"""Collector mode: an OTLP/HTTP trace receiver that enriches and stores what other processes export.

A DuckDB file has exactly one read-write process: a second process cannot even open it read-only
while the writer holds it. Applications with several processes (gunicorn or uvicorn workers, Celery
workers, services in other languages, an OpenTelemetry Collector) export their spans with any standard
OTLP/HTTP exporter to this receiver, which enriches them as an in-process ``LLMCostSpanProcessor``
would and stores them with the same ``DuckDBSpanExporter`` (the same rows for the same spans).

This module is the server's lifecycle (socket, uvicorn, signals, draining); the request handling is in
:mod:`otel_llm_cost.collector.handler`, the decoding straight into what storage reads in
:mod:`otel_llm_cost.collector.received`, the storing stage with its backpressure counters in
:mod:`otel_llm_cost.collector.storing` (built by :mod:`~otel_llm_cost.collector.pipeline`), the read
deadlines and connection cap in :mod:`otel_llm_cost.collector.connections`.

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

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.sdk.trace import SpanProcessor

from otel_llm_cost import _config

# The receiver needs the `serve` extra. The core package never imports this module, so importing the
# server libraries here keeps them optional while giving one clear error where they are needed.
try:
    import uvicorn
    from starlette.applications import Starlette
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess without the extra
    raise ImportError(
        "the OTLP receiver needs the 'serve' extra: pip install 'otel-llm-cost[serve]' "
        f"(missing: {_exc.name or _exc})"
    ) from _exc

from otel_llm_cost.collector.connections import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_TIMEOUT_S,
    ConnectionGuard,
    check_exposure,
    is_loopback,
)
from otel_llm_cost.collector.handler import TRACES_PATH, ReceiverStats, TraceHandler
from otel_llm_cost.collector.heap import settle_heap
from otel_llm_cost.collector.pipeline import AdmissionPipeline, ReceiverPipeline, build_processor

if TYPE_CHECKING:
    from otel_llm_cost.budgets import Budget
    from otel_llm_cost.collector.dashboard import DashboardOptions
    from otel_llm_cost.pricing import PriceBook

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_PORT",
    "DEFAULT_READ_TIMEOUT_S",
    "OTLPReceiver",
    "ReceiverPipeline",
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

_BUSY_TIMEOUT_S: Final = 2.0
"""How long a request waits for queue room before 503; short, so the sender's retry (not its timeout)
handles a sustained overload and no request is accepted after its sender gave up on it."""
_LISTEN_BACKLOG: Final = 2048
_POLL_S: Final = 0.01


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
        pipeline: The pipeline behind ``processor`` (``build_processor``; default: ``processor`` when
            it is one): the receiver answers 503 with ``Retry-After`` instead of dropping spans.
        busy_timeout_s: How long from its arrival a request waits for room in that pipeline before the 503.
        insecure: Allow a non-loopback ``host`` without a token (anyone who reaches it can write
            cost data): for a private network or an authenticating proxy in front.
        read_timeout_s: A request's headers must arrive within this long of the connection opening
            (or of the previous response), then its body within this long of its headers; else
            the connection is closed.
        max_connections: Connections open at once; one more is closed when accepted.

    Raises:
        ValueError: A bad argument (empty token, non-positive size, timeout or connection cap, port
            out of range), or a
            non-loopback ``host`` without a token and without ``insecure``.

    Attributes:
        app: The ASGI application (Starlette). Its lifespan shutdown shuts ``processor`` down, so it
            can also be served by another ASGI server, as a single process (one DuckDB writer).
        stats: Counters of requests and spans (:class:`ReceiverStats`).
        connections: The read deadlines and connection cap, with their counters
            (:class:`~otel_llm_cost.collector.connections.ConnectionGuard`).

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
        pipeline: AdmissionPipeline | None = None,
        busy_timeout_s: float = _BUSY_TIMEOUT_S,
        insecure: bool = False,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if token is not None and not token.strip():
            raise ValueError("token must not be empty (leave it unset to disable authentication)")
        check_exposure(host, token, insecure=insecure)
        if max_body_bytes <= 0:
            raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port}")
        self._host = host
        self._port = port
        self.connections: ConnectionGuard = ConnectionGuard(
            read_timeout_s=read_timeout_s, max_connections=max_connections
        )
        self._handler = TraceHandler(
            processor,
            token=token.encode("utf-8") if token is not None else None,
            max_body_bytes=max_body_bytes,
            pipeline=pipeline,
            busy_timeout_s=busy_timeout_s,
        )
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self.app: Starlette = self._handler.app
        self.stats: ReceiverStats = self._handler.stats

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
            self._handler.shutdown_processor()
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
        self._handler.shutdown_processor()
        self._close_socket()

    def __enter__(self) -> OTLPReceiver:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _make_server(self) -> uvicorn.Server:
        config = uvicorn.Config(
            self.connections.middleware(self.app),
            http=self.connections.protocol_class(),
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


def _ignore_signal(signum: int, frame: object) -> None:
    _logger.debug("signal %d received after shutdown began", signum)


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
    insecure: bool = False,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    dashboard: DashboardOptions | None = None,
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
        insecure: Allow a non-loopback ``host`` without a token.
        read_timeout_s: Deadline for a request's headers, then for its body (slow clients are closed).
        max_connections: Connections open at once.
        dashboard: Also serve the dashboard's pages at ``/ui/`` (loopback clients only), reading the
            file this receiver writes (:mod:`otel_llm_cost.collector.dashboard`).

    Returns:
        What the receiver saw.

    Raises:
        ValueError: A bad argument, or a non-loopback ``host`` without a token nor ``insecure``
            (checked before the database is opened).
        OSError: The address cannot be bound.
        StorageError: The DuckDB file cannot be opened for writing.
    """
    if token is None:
        token = _config.SERVE_TOKEN.get()
    check_exposure(host, token, insecure=insecure)  # before the database is opened
    processor, pipeline = build_processor(db_path, pricing=pricing, budgets=budgets)
    try:
        receiver = OTLPReceiver(
            processor,
            host=host,
            port=port,
            token=token,
            max_body_bytes=max_body_bytes,
            pipeline=pipeline,
            insecure=insecure,
            read_timeout_s=read_timeout_s,
            max_connections=max_connections,
        )
        if dashboard is not None:
            from otel_llm_cost.collector.dashboard import mount_dashboard  # noqa: PLC0415 - the ui pages

            pipeline.after_shutdown(mount_dashboard(receiver.app, db_path, dashboard).close)
        receiver._bound_socket()  # bind before announcing the URL
    except BaseException:
        processor.shutdown()
        raise
    if token is None and not is_loopback(host):
        _logger.warning(
            "the receiver listens on %s without a token: anyone who can reach it can write cost data "
            "(set OTEL_LLM_COST_SERVE_TOKEN)",
            host,
        )
    if on_ready is not None:
        on_ready(receiver)
    _warn_without_shared_user_id_key()
    settle_heap()  # this process only receives from now on
    receiver.serve_forever()
    return receiver.stats


def _warn_without_shared_user_id_key() -> None:
    if _config.USER_ID_HASH_KEY.get() is None:
        # The receiver hashes raw user ids (OpenInference user.id, Traceloop association properties)
        # with its own key; senders that hash in-process with attribution() use theirs. Without one
        # shared key the same user gets two ids and per-user budgets split.
        _logger.warning(
            "%s is not set: raw user ids received here are hashed with this machine's key, which "
            "differs from the senders' unless they share it; set the same secret everywhere",
            _config.USER_ID_HASH_KEY.name,
        )
