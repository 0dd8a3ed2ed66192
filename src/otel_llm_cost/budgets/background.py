"""A bounded queue drained by one daemon thread: how alerts leave the telemetry path without waiting.

Used for per-call alerts (found on the application's thread) and by the webhook sink (network I/O).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from otel_llm_cost._logging import log_once

__all__ = ["BackgroundQueue"]

_logger = logging.getLogger("otel_llm_cost.budgets")

_T = TypeVar("_T")


class BackgroundQueue(Generic[_T]):
    """A bounded queue drained by one daemon thread that calls ``handle(item)`` for each item.

    :meth:`put` never blocks and never raises: when the queue is full or shut down the item is dropped,
    logged once and counted (``ERROR_COUNTS["<log_key>.queue_full"]`` / ``"<log_key>.closed"``).

    Args:
        handle: Called on the worker thread for each item; an exception is logged, never propagated.
        label: Names the queue in log messages (``webhook https://...``).
        log_key: Prefix of the deduplicated log / error-count keys.
        thread_name: Name of the worker thread.
        max_size: Items waiting before new ones are dropped.
    """

    def __init__(
        self, handle: Callable[[_T], object], *, label: str, log_key: str, thread_name: str, max_size: int
    ) -> None:
        self._handle = handle
        self._label = label
        self._log_key = log_key
        self._thread_name = thread_name
        self._max_size = max_size
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._pid = -1
        self._queue: queue.Queue[_T | None] = queue.Queue(max_size)
        self._thread: threading.Thread | None = None
        self._closed = False
        self.abandoned = threading.Event()
        """Set when :meth:`shutdown` timed out: a long-running ``handle`` may watch it to give up early."""

    def put(self, item: _T) -> bool:
        """Queue ``item`` and return at once; False when it was dropped (queue full or shut down)."""
        with self._lock:
            if self._closed:
                log_once(
                    _logger,
                    f"{self._log_key}.closed",
                    logging.WARNING,
                    "%s is shut down; alert not sent",
                    self._label,
                )
                return False
            self._ensure_worker()
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                log_once(
                    _logger,
                    f"{self._log_key}.queue_full",
                    logging.WARNING,
                    "%s is behind (%d alerts queued); alert dropped",
                    self._label,
                    self._max_size,
                )
                return False
            self._pending += 1
        return True

    def _ensure_worker(self) -> None:
        # Threads do not survive fork(): a child starts its own worker and queue (as the SDK's
        # BatchSpanProcessor does), dropping what the parent had queued, which the parent still handles.
        if self._pid != os.getpid() or self._thread is None:
            self._pid = os.getpid()
            self._queue = queue.Queue(self._max_size)
            self._pending = 0
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self.abandoned.is_set():
                return  # shut down, or abandoned after the shutdown timeout (the rest is dropped)
            try:
                self._handle(item)
            except Exception as exc:  # the worker must survive anything
                log_once(
                    _logger,
                    f"{self._log_key}.worker",
                    logging.WARNING,
                    "%s worker error: %r",
                    self._label,
                    exc,
                )
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued item was handled; True if that happened within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            if self._pid != os.getpid():
                return True
            while self._pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Handle what is queued within ``timeout_s``, then stop the worker; True if all was handled.

        After the timeout the worker abandons the rest and exits on its own (it is a daemon thread).
        """
        with self._lock:
            self._closed = True
            thread = self._thread if self._pid == os.getpid() else None
        if thread is None:
            return True
        done = self.flush(timeout_s)
        if not done:
            self.abandoned.set()
        # When full, the abandon flag drains the queue instead.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if done:
            thread.join(timeout_s)
        return done
