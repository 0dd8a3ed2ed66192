"""Bounding how long a page may query: past the limit its running query is interrupted and the page
says so, instead of hanging the browser (a ten-year window on a huge file, a dimension with a million
groups)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import duckdb

from otel_llm_cost.exceptions import OtelLLMCostError
from otel_llm_cost.query.store import CostStore

__all__ = ["PageTimeout", "run_bounded"]

T = TypeVar("T")
_RETRY_S = 0.05


class PageTimeout(Exception):
    """The page's queries ran past the limit and were cancelled."""


def run_bounded(store: CostStore, timeout_s: float, work: Callable[[], T]) -> T:
    """``work()`` in this thread; after ``timeout_s`` its queries on ``store`` are interrupted.

    Interruption is retried until ``work`` returns, so a page that runs several queries cannot start
    a new one after the deadline.

    Raises:
        PageTimeout: the deadline passed.
    """
    ident = threading.get_ident()
    expired, done = threading.Event(), threading.Event()

    def cut() -> None:
        if done.wait(timeout_s):
            return
        expired.set()
        while not done.is_set():
            store.interrupt(ident)
            done.wait(_RETRY_S)

    watcher = threading.Thread(target=cut, name="otel-llm-cost-ui-deadline", daemon=True)
    watcher.start()
    try:
        result = work()
    except (OtelLLMCostError, duckdb.Error) as exc:
        if expired.is_set():
            raise PageTimeout(f"the page took longer than {timeout_s:g} s and was stopped") from exc
        raise
    finally:
        done.set()
        watcher.join()
    if expired.is_set():
        raise PageTimeout(f"the page took longer than {timeout_s:g} s and was stopped")
    return result
