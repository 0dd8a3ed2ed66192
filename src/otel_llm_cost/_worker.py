"""The loop of a background thread that works for an object without keeping it alive.

The exporter's writer, the lake writer and the export queue each run a daemon thread that holds
only a weak reference to its owner, so an owner the application drops (never shut down) is collected
and its thread ends. An unexpected error in a step is logged once and the loop goes on after a pause:
a bug must not end the thread and strand the batches waiting for it.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

from otel_llm_cost._logging import log_once

__all__ = ["step_while_alive"]

T = TypeVar("T")


def step_while_alive(
    ref: weakref.ReferenceType[T],
    step: Callable[[T], bool],
    *,
    logger: logging.Logger,
    log_key: str,
    what: str,
    pause_s: float,
) -> None:
    """Call ``step(owner)`` until it returns False or the owner is gone (never raises).

    Args:
        ref: Weak reference to the owner.
        step: One unit of work; False ends the loop.
        logger: Where an error in a step is logged (once per ``log_key``, then counted).
        log_key: The log-once key.
        what: Names the thread in the message (``"<what> error: <exc>"``).
        pause_s: How long to wait after an error before the next step.
    """
    while True:
        owner = ref()
        if owner is None:
            return
        try:
            if not step(owner):
                return
        except Exception as exc:
            log_once(logger, log_key, logging.ERROR, "%s error: %r", what, exc)
            time.sleep(pause_s)
        del owner
