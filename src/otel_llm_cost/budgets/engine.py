"""The budget engine: evaluates budgets as telemetry flows and delivers each alert once to every sink.

Per-call budgets are checked as each LLM span is enriched (:meth:`BudgetEngine.check_call`), window
budgets when the DuckDB exporter commits a batch (:meth:`BudgetEngine.on_commit`), always with SQL over
the stored rows, so totals are exact, survive restarts and put late spans in the window of their start
time. Fired alerts are stored in ``budget_alerts`` (see :mod:`otel_llm_cost.budgets.recording`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import duckdb

from otel_llm_cost import _config
from otel_llm_cost._logging import log_once
from otel_llm_cost.budgets.alerts import AlertKind, BudgetAlert
from otel_llm_cost.budgets.background import BackgroundQueue
from otel_llm_cost.budgets.batch import batch_columns, touched
from otel_llm_cost.budgets.calls import CallChecker
from otel_llm_cost.budgets.evaluation import BudgetStatus, statuses_for_window
from otel_llm_cost.budgets.recording import fire_new, record_alerts
from otel_llm_cost.budgets.sinks import (
    AlertSink,
    LoggingSink,
    WebhookSink,
    deliver,
    shutdown_sinks,
)
from otel_llm_cost.budgets.spec import BudgetSpec, validated_budgets
from otel_llm_cost.budgets.windows import aware, window_containing
from otel_llm_cost.conventions import names as semconv
from otel_llm_cost.storage.lake import cursor_of

__all__ = ["BudgetEngine", "CommitInfoLike"]

_logger = logging.getLogger("otel_llm_cost.budgets")

_PENDING_RECORDS_MAX: Final = 10_000


class CommitInfoLike(Protocol):
    """What :meth:`BudgetEngine.on_commit` needs from the exporter's ``CommitInfo``."""

    @property
    def connection(self) -> duckdb.DuckDBPyConnection: ...

    @property
    def rows(self) -> Any: ...  # pyarrow.Table of the inserted llm_calls rows


class BudgetEngine:
    """Evaluates budgets as telemetry flows and delivers each alert once to every sink.

    Built by :class:`~otel_llm_cost.processor.LLMCostSpanProcessor` when it is given ``budgets``; it
    calls :meth:`check_call` for each billable LLM span and registers :meth:`on_commit` with every
    :class:`~otel_llm_cost.exporter.DuckDBSpanExporter` it wraps. Usable alone too, e.g. from cron with
    :meth:`evaluate`.

    Args:
        budgets: The budgets (names must be unique).
        sinks: Where alerts go: callables taking a :class:`BudgetAlert` (``LoggingSink``,
            ``WebhookSink``, ``OTelLogSink`` or any function). Default: a :class:`LoggingSink`, plus a
            :class:`WebhookSink` when ``OTEL_LLM_COST_WEBHOOK_URL`` is set.
        clock: Returns the current time (timezone-aware); for tests and replays.
        forecast: Set False to disable burn-rate forecast alerts.
        max_queued_alerts: Per-call alerts waiting for the delivery thread before new ones are dropped
            (logged once and counted as ``budgets.alerts.queue_full``; they are still recorded in
            ``budget_alerts``).

    Raises:
        BudgetConfigError: two budgets share a name, or an item is not a :class:`Budget`.
        ValueError: ``max_queued_alerts`` < 1.
    """

    def __init__(
        self,
        budgets: Sequence[BudgetSpec],
        sinks: Sequence[AlertSink] | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        forecast: bool = True,
        max_queued_alerts: int = 1000,
    ) -> None:
        if max_queued_alerts < 1:
            raise ValueError(f"max_queued_alerts: must be >= 1, got {max_queued_alerts!r}")
        self._set(budgets)
        self._sinks: tuple[AlertSink, ...] = tuple(sinks) if sinks is not None else _default_sinks()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._forecast = forecast
        self._lock = threading.Lock()
        self._calls = CallChecker(self._clock)
        self._pending: list[BudgetAlert] = []
        # check_call runs in on_end, on the application's thread: a sink that blocks (a pager, a user
        # callable) must not block the request, so per-call alerts are handed to a worker thread.
        self._call_alerts: BackgroundQueue[BudgetAlert] = BackgroundQueue(
            self._deliver,
            label="per-call budget alert delivery",
            log_key="budgets.alerts",
            thread_name="otel-llm-cost-alerts",
            max_size=max_queued_alerts,
        )

    def _deliver(self, alert: BudgetAlert) -> None:
        deliver(alert, self._sinks)

    @property
    def budgets(self) -> tuple[BudgetSpec, ...]:
        """The current budgets (an immutable snapshot)."""
        return self._snapshot[0]

    @property
    def sinks(self) -> tuple[AlertSink, ...]:
        """The alert sinks, in delivery order."""
        return self._sinks

    def set_budgets(self, budgets: Sequence[BudgetSpec]) -> None:
        """Swap in a new set of budgets atomically (evaluations in flight finish with the old set).

        Raises:
            BudgetConfigError: as for the constructor.
        """
        self._set(budgets)

    def _set(self, budgets: Sequence[BudgetSpec]) -> None:
        validated = validated_budgets(budgets)
        per_call = [b for b in validated if b.is_per_call]
        # Below this float cost no per-call threshold can be reached; the margin absorbs the float
        # rounding of llm.cost_usd, so the exact Decimal check still decides every close call.
        floor = min((float(b.limit_usd * b.thresholds[0]) for b in per_call), default=math.inf)
        # One tuple assignment: a concurrent check_call sees the old snapshot or the new, never a mix.
        self._snapshot = (validated, floor * (1 - 1e-9), bool(per_call))

    def check_call(
        self,
        attributes: Mapping[str, Any],
        *,
        trace_id: int | str | None = None,
        span_id: int | str | None = None,
        start_time_ns: int | None = None,
    ) -> list[BudgetAlert]:
        """Check per-call budgets against one enriched LLM span; queue what fired for delivery.

        Never raises and never waits on a sink: the alerts are delivered to the sinks by a background
        thread (:meth:`flush` waits for it), and recorded in ``budget_alerts`` at the next
        :meth:`on_commit`. A failure is logged once and counted. Cheap when there are no per-call budgets.

        Args:
            attributes: The span's attributes including the enrichment (``llm.cost_usd``, ``cost.*``).
            trace_id: The span's trace id (int or hex).
            span_id: The span's id (int or hex); the entity of per-call alerts.
            start_time_ns: The span's start (epoch ns), reported as the alert's window.

        Returns:
            The alerts this call fired (queued for delivery).
        """
        budgets, fast_floor, has_per_call = self._snapshot
        if not has_per_call:
            return []
        raw_cost = attributes.get(semconv.LLM_COST_USD) if isinstance(attributes, Mapping) else None
        if isinstance(raw_cost, float | int) and raw_cost < fast_floor:
            return []  # the common case: a call far below every per-call limit
        try:
            return self._check_call(budgets, attributes, trace_id, span_id, start_time_ns)
        except Exception as exc:
            log_once(_logger, "budgets.check_call", logging.WARNING, "per-call budget check failed: %r", exc)
            return []

    def _check_call(
        self,
        budgets: tuple[BudgetSpec, ...],
        attributes: Mapping[str, Any],
        trace_id: int | str | None,
        span_id: int | str | None,
        start_time_ns: int | None,
    ) -> list[BudgetAlert]:
        fired = self._calls.check(budgets, attributes, trace_id, span_id, start_time_ns)
        if fired:
            with self._lock:
                room = _PENDING_RECORDS_MAX - len(self._pending)
                self._pending.extend(a for a in fired[:room] if a.kind is AlertKind.THRESHOLD)
            for alert in fired:
                self._call_alerts.put(alert)
        return fired

    # Window budgets -----------------------------------------------------------------------------

    def on_commit(self, info: CommitInfoLike) -> None:
        """Evaluate window budgets for the entities and windows a committed batch touched.

        Registered with ``DuckDBSpanExporter.add_commit_listener``. Never raises: failures are logged
        once and counted. Also records per-call alerts delivered since the last commit.

        Args:
            info: The exporter's commit info: ``connection`` (a cursor valid during the call) and
                ``rows`` (a ``pyarrow.Table`` of the inserted ``llm_calls`` rows).
        """
        try:
            self._on_commit(info.connection, info.rows)
        except Exception as exc:
            log_once(_logger, "budgets.on_commit", logging.WARNING, "budget evaluation failed: %r", exc)

    def _on_commit(self, connection: duckdb.DuckDBPyConnection, rows: Any) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        if pending:
            record_alerts(connection, pending)
        budgets = [b for b in self._snapshot[0] if not b.is_per_call]
        if not budgets or rows is None or rows.num_rows == 0:
            return
        now = aware(self._clock())
        columns = batch_columns(rows)
        fired: list[BudgetAlert] = []
        for budget in budgets:
            for window, entities, at in touched(budget, columns, now):
                statuses = statuses_for_window(connection, budget, window, sorted(entities), at)
                fired.extend(self._fire(connection, statuses))
        for alert in fired:
            deliver(alert, self._sinks)

    def evaluate(
        self, connection: duckdb.DuckDBPyConnection, at: datetime | None = None
    ) -> list[BudgetAlert]:
        """Evaluate every window budget for every entity at ``at``; record and deliver new alerts.

        For cron jobs and ``otel-llm-cost budgets check --fire``. Unlike the telemetry hooks this
        raises: it runs where an error should be seen.

        Args:
            connection: A read-write DuckDB connection.
            at: Timezone-aware instant (default: the engine's clock).

        Returns:
            The alerts that fired now (not those already in ``budget_alerts``).

        Raises:
            ValueError: ``at`` is naive.
            duckdb.Error: the database could not be read or written.
        """
        when = aware(self._clock() if at is None else at)
        cursor = cursor_of(connection)
        try:
            fired: list[BudgetAlert] = []
            for budget in self._snapshot[0]:
                if budget.is_per_call:
                    continue
                window = window_containing(budget, when)
                fired.extend(self._fire(cursor, statuses_for_window(cursor, budget, window, None, when)))
        finally:
            cursor.close()
        for alert in fired:
            deliver(alert, self._sinks)
        return fired

    def _fire(
        self, connection: duckdb.DuckDBPyConnection, statuses: Sequence[BudgetStatus]
    ) -> list[BudgetAlert]:
        return fire_new(connection, statuses, forecast=self._forecast, clock=self._clock)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until queued per-call alerts reached the sinks and sinks with a queue (webhooks) sent them.

        Returns:
            True if everything was delivered within ``timeout_s`` (shared by all the waits).
        """
        deadline = time.monotonic() + timeout_s
        ok = self._call_alerts.flush(timeout_s)
        for sink in self._sinks:
            flush = getattr(sink, "flush", None)
            if callable(flush):
                try:
                    ok = bool(flush(max(0.0, deadline - time.monotonic()))) and ok
                except Exception as exc:
                    log_once(_logger, "budgets.flush", logging.WARNING, "alert sink flush failed: %r", exc)
                    ok = False
        return ok

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Deliver queued per-call alerts, then flush and stop background sinks (webhook threads).

        Waits at most ``timeout_s`` in total; what is still queued then is dropped. Never raises.
        """
        deadline = time.monotonic() + timeout_s
        self._call_alerts.shutdown(timeout_s)
        shutdown_sinks(self._sinks, max(0.0, deadline - time.monotonic()))


def _default_sinks() -> tuple[AlertSink, ...]:
    url = _config.WEBHOOK_URL.get()
    if url:
        try:
            return (LoggingSink(), WebhookSink(url))
        except ValueError as exc:  # a bad environment value is logged, never fatal
            _logger.error("ignoring %s=%r: %s", _config.WEBHOOK_URL.name, url, exc)
    return (LoggingSink(),)
