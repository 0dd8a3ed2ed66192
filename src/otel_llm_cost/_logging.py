"""Deduplicated logging and failure counters for the never-raise telemetry paths.

The span pipeline (``on_start``/``on_end``/export/alert delivery) must never raise into the
application, so failures there are swallowed. Swallowing silently would hide real bugs and
logging every occurrence would flood the application's log at span rate, so each distinct
failure *key* is logged once per process and every occurrence is counted in ``ERROR_COUNTS``
(tests and diagnostics read the counter).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

__all__ = ["ERROR_COUNTS", "log_once", "reset_log_once"]

#: Every swallowed failure, counted by the key passed to :func:`log_once`.
ERROR_COUNTS: Counter[str] = Counter()

_seen: set[str] = set()
_lock = threading.Lock()


def log_once(logger: logging.Logger, key: str, level: int, msg: str, *args: Any) -> None:
    """Count a swallowed failure and log it the first time its key is seen in this process.

    Safe inside ``except`` blocks of paths that must not break the application: the standard
    ``logging`` machinery reports handler/formatting errors itself instead of raising.

    Args:
        logger: The logger to write to (normally the calling module's logger).
        key: Identifies the kind of failure (e.g. ``"processor.on_end"``); later calls with the
            same key are counted but not logged.
        level: A ``logging`` level such as ``logging.WARNING``.
        msg: A %-style message; ``exc_info`` is not added, pass details through ``args``.
        *args: Arguments for ``msg``.
    """
    with _lock:
        ERROR_COUNTS[key] += 1
        first = key not in _seen
        if first:
            _seen.add(key)
    if first:
        logger.log(level, msg + " (further occurrences of %r are counted, not logged)", *args, key)


def reset_log_once() -> None:
    """Forget which keys were logged and zero ``ERROR_COUNTS`` (for tests)."""
    with _lock:
        _seen.clear()
        ERROR_COUNTS.clear()
