"""Where budget alerts go: Python logging, any callable, a webhook, an OpenTelemetry log record.

A sink is any callable taking a :class:`~otel_llm_cost.budgets.BudgetAlert`. Delivery runs on the
telemetry path (the exporter's thread after a commit; per-call alerts on the engine's own worker thread,
never the application's), so :func:`deliver` never raises: a failing sink is logged once, counted, and
the other sinks still run. The webhook only enqueues; a background thread does the network I/O.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeAlias

from otel_llm_cost._logging import log_once
from otel_llm_cost.budgets.alerts import BudgetAlert
from otel_llm_cost.budgets.background import BackgroundQueue
from otel_llm_cost.conventions import names as semconv

__all__ = [
    "WEBHOOK_PAYLOAD_TYPE",
    "AlertSink",
    "LoggingSink",
    "OTelLogSink",
    "WebhookSink",
    "deliver",
    "shutdown_sinks",
    "webhook_payload",
]

_logger = logging.getLogger("otel_llm_cost.budgets")

AlertSink: TypeAlias = Callable[[BudgetAlert], object]
"""Anything callable with one :class:`BudgetAlert`; its return value is ignored."""

WEBHOOK_PAYLOAD_TYPE: Final = "otel_llm_cost.budget_alert"
_PAYLOAD_VERSION: Final = 1
_RETRY_STATUSES: Final = frozenset({408, 425, 429, 500, 502, 503, 504})


def _sink_name(sink: object) -> str:
    return getattr(sink, "__qualname__", None) or type(sink).__qualname__


def deliver(alert: BudgetAlert, sinks: Sequence[AlertSink]) -> None:
    """Hand ``alert`` to every sink in order; a sink that raises is logged once and skipped."""
    for sink in sinks:
        try:
            sink(alert)
        except Exception as exc:
            log_once(
                _logger,
                f"budgets.sink.{_sink_name(sink)}",
                logging.WARNING,
                "budget alert sink %s failed: %r",
                _sink_name(sink),
                exc,
            )


def shutdown_sinks(sinks: Sequence[AlertSink], timeout_s: float) -> None:
    """Call ``shutdown(timeout_s)`` on every sink that has one, sharing one deadline; never raises."""
    deadline = time.monotonic() + timeout_s
    for sink in sinks:
        shutdown = getattr(sink, "shutdown", None)
        if not callable(shutdown):
            continue
        try:
            shutdown(max(0.0, deadline - time.monotonic()))
        except Exception as exc:
            log_once(_logger, "budgets.sink.shutdown", logging.WARNING, "alert sink shutdown failed: %r", exc)


class LoggingSink:
    """Log each alert with Python :mod:`logging` (the default sink).

    The record's message is the alert's text; ``record.budget_alert`` holds :meth:`BudgetAlert.to_dict`
    for structured handlers.

    Args:
        logger: Where to log (default ``logging.getLogger("otel_llm_cost.budgets")``).
        level: Level of threshold, forecast and unpriced alerts (default WARNING).
    """

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.WARNING) -> None:
        self._logger = logger or _logger
        self._level = level

    def __call__(self, alert: BudgetAlert) -> None:
        """Log ``alert``."""
        self._logger.log(self._level, "%s", alert.message, extra={"budget_alert": alert.to_dict()})


def webhook_payload(alert: BudgetAlert) -> dict[str, Any]:
    """The JSON body a :class:`WebhookSink` POSTs for ``alert``.

    ``text`` is the human-readable message (so Slack and Mattermost incoming webhooks display it as is);
    ``alert`` holds every field with money as decimal strings.
    """
    return {
        "type": WEBHOOK_PAYLOAD_TYPE,
        "version": _PAYLOAD_VERSION,
        "text": alert.message,
        "alert": alert.to_dict(),
    }


class WebhookSink:
    """POST each alert as JSON to a URL, from a background thread with a bounded queue.

    Calling the sink only enqueues (it never waits on the network, so the export path is not slowed
    by a slow or hanging endpoint). The worker POSTs with a per-attempt timeout and retries connection
    errors, timeouts and HTTP 408/425/429/5xx with exponential backoff (``backoff_s``, doubled per
    retry, capped at ``max_backoff_s``); other 4xx answers are not retried. When the queue is full the
    alert is dropped and counted (``ERROR_COUNTS["budgets.webhook.queue_full"]``): the alert is still in
    ``budget_alerts`` and ``otel-llm-cost alerts`` shows it.

    Args:
        url: ``http://`` or ``https://`` URL.
        timeout_s: Per-attempt timeout (connect and read).
        max_attempts: Attempts per alert, including the first.
        backoff_s: Wait before the first retry.
        max_backoff_s: Longest wait between retries.
        max_queue_size: Alerts waiting for delivery before new ones are dropped.
        headers: Extra request headers (e.g. ``Authorization``).

    Raises:
        ValueError: a bad URL or non-positive number.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_queue_size: int = 1000,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url: expected an http:// or https:// URL, got {url!r}")
        if not timeout_s > 0 or not backoff_s >= 0 or not max_backoff_s >= 0:
            raise ValueError("timeout_s must be > 0; backoff_s and max_backoff_s >= 0")
        if max_attempts < 1 or max_queue_size < 1:
            raise ValueError("max_attempts and max_queue_size must be >= 1")
        self.url = url
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._headers = {"Content-Type": "application/json", "User-Agent": "otel-llm-cost", **(headers or {})}
        self._queue: BackgroundQueue[bytes] = BackgroundQueue(
            self._deliver,
            label=f"webhook {url}",
            log_key="budgets.webhook",
            thread_name="otel-llm-cost-webhook",
            max_size=max_queue_size,
        )

    def __call__(self, alert: BudgetAlert) -> None:
        """Enqueue ``alert`` for delivery and return at once."""
        self.enqueue(json.dumps(webhook_payload(alert)).encode())

    def enqueue(self, body: bytes) -> bool:
        """Queue a JSON body; False when it was dropped (queue full or sink shut down)."""
        return self._queue.put(body)

    def _deliver(self, body: bytes) -> None:
        for attempt in range(self._max_attempts):
            error = self._post(body)
            if error is None:
                return
            retryable, reason = error
            if not retryable or attempt + 1 == self._max_attempts:
                log_once(
                    _logger,
                    "budgets.webhook.failed",
                    logging.WARNING,
                    "webhook %s: alert not delivered after %d attempt(s): %s",
                    self.url,
                    attempt + 1,
                    reason,
                )
                return
            delay = min(self._max_backoff_s, self._backoff_s * (2**attempt))
            if self._queue.abandoned.wait(delay):
                return

    def _post(self, body: bytes) -> tuple[bool, str] | None:
        """None on success, else (retryable, reason)."""
        request = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")  # noqa: S310 - scheme checked in __init__
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:  # noqa: S310
                response.read()
                return None
        except urllib.error.HTTPError as exc:
            return exc.code in _RETRY_STATUSES, f"HTTP {exc.code}"
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            return True, repr(exc)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued alert was delivered or given up; True if that happened in time."""
        return self._queue.flush(timeout_s)

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Deliver what is queued within ``timeout_s``, then stop the worker; True if all was sent.

        After the timeout the worker abandons the rest (retries included) and exits on its own.
        """
        return self._queue.shutdown(timeout_s)


class OTelLogSink:
    """Emit each alert as an OpenTelemetry log record correlated with the call that crossed the threshold.

    Why a log record and not a span event: an ended span accepts no events (nor attributes: in
    opentelemetry-sdk 1.40-1.45 a span is marked ended before any processor's ``on_end`` runs, and
    since 1.43 its attribute map is frozen). Window alerts fire when a batch is committed, long after
    the triggering span ended, and
    per-call alerts are found in the processor's ``on_end``, which the SDK calls once the span is
    already marked ended, with a read-only ``ReadableSpan`` snapshot.
    A log record can still carry that span's trace and span id, so backends link the alert to the
    trace, and it flows through the application's LoggerProvider to any log exporter.

    The record: severity WARN, body = the alert's message, event name ``llm.budget.alert``, attributes
    ``llm.budget.*`` (see :mod:`otel_llm_cost.conventions.names`), context = the triggering span when known.

    Args:
        logger_provider: The provider to emit with (default: the global one, resolved at each emit).
    """

    def __init__(self, logger_provider: Any | None = None) -> None:
        from opentelemetry import _logs  # noqa: PLC0415 - only users of this sink need the logs API

        self._logger = _logs.get_logger("otel_llm_cost.budgets", logger_provider=logger_provider)

    def __call__(self, alert: BudgetAlert) -> None:
        """Emit ``alert`` as a log record."""
        from opentelemetry import context as otel_context  # noqa: PLC0415
        from opentelemetry import trace  # noqa: PLC0415
        from opentelemetry._logs import LogRecord, SeverityNumber  # noqa: PLC0415

        ctx = otel_context.Context()
        if alert.trace_id and alert.span_id:
            span_context = trace.SpanContext(
                trace_id=int(alert.trace_id, 16),
                span_id=int(alert.span_id, 16),
                is_remote=True,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            )
            ctx = trace.set_span_in_context(trace.NonRecordingSpan(span_context), ctx)
        attributes: dict[str, str | int] = {
            semconv.BUDGET_NAME: alert.budget,
            semconv.BUDGET_SCOPE: alert.scope,
            semconv.BUDGET_ENTITY: alert.entity,
            semconv.BUDGET_WINDOW: alert.window,
            semconv.BUDGET_ALERT_KIND: alert.kind.value,
            semconv.BUDGET_THRESHOLD: str(alert.threshold),
            semconv.BUDGET_SPENT_USD: str(alert.spent_usd),
            semconv.BUDGET_LIMIT_USD: str(alert.limit_usd),
            semconv.BUDGET_PERCENT: str(alert.percent),
            semconv.BUDGET_UNPRICED_CALLS: alert.unpriced_calls,
        }
        for name, value in (
            (semconv.BUDGET_WINDOW_START, alert.window_start),
            (semconv.BUDGET_WINDOW_END, alert.window_end),
            (semconv.BUDGET_FORECAST_AT, alert.forecast_at),
        ):
            if value is not None:
                attributes[name] = value.isoformat()
        record = LogRecord(
            timestamp=time.time_ns(),
            context=ctx,
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            body=alert.message,
            attributes=attributes,
            event_name=semconv.BUDGET_ALERT_EVENT_NAME,
        )
        self._logger.emit(record)
