"""Helpers shared by test modules (import as ``from helpers import ...``; tests/ is on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], *, timeout_s: float = 30.0, interval_s: float = 0.01, what: str = ""
) -> T:
    """Call ``predicate`` until it returns something truthy and return it; fail the test after ``timeout_s``.

    The timeout is a bound for a loaded machine, never a timing assertion: tests state what must
    eventually happen, and a test that waits fails with ``what`` it was waiting for.

    Args:
        predicate: Checked at once, then every ``interval_s`` seconds.
        timeout_s: How long to wait before failing the test.
        interval_s: Pause between checks (0: check again at once, for predicates that block themselves).
        what: What is awaited, for the failure message (default: the predicate's name).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            name = what or getattr(predicate, "__name__", repr(predicate))
            pytest.fail(f"waited {timeout_s:g} s for {name}; last result: {result!r}")
        time.sleep(interval_s)
