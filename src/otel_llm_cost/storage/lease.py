"""Holding a DuckDB file only while it is used, so that another process can take it in between.

DuckDB allows one read-write process per file, and a second process cannot even open it read-only
while the first holds it. Readers (``CostStore`` on a path) therefore open the file for a query and
release it soon after; the exporter's writer does the same on its side.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import duckdb

from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.storage import connect as _storage

__all__ = ["FileHolder"]

# A writer waiting for the file retries every 25-50 ms (_storage backoff cap); a reader that has held
# the file for hold_max_s stays out this long before reopening so that a waiting writer gets in.
_WRITER_GAP_S: Final = 0.06


class FileHolder:
    """The file handle of a path-backed CostStore: opened for queries, closed soon after the last one.

    Reopening costs ~15 ms, so back-to-back queries (a CLI report, a notebook cell) share one handle; a
    background thread closes it ``hold_idle_s`` after the last query ends. The thread exists only while
    the file is held.
    """

    def __init__(
        self, path: Path, *, read_only: bool, hold_idle_s: float, hold_max_s: float, timeout_s: float
    ) -> None:
        self.path = path
        self.read_only = read_only
        self.hold_idle_s = hold_idle_s
        self.hold_max_s = hold_max_s
        self.timeout_s = timeout_s
        self.opens = 0  # how many times the file was opened (tests and benchmarks read it)
        self._cond = threading.Condition()
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._active = 0
        self._held_since = 0.0
        self._last_use = 0.0
        self._closed = False
        self._closer: threading.Thread | None = None
        _LIVE_HOLDERS.add(self)

    @property
    def held(self) -> bool:
        """True while the file is open."""
        return self._connection is not None

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the file for one query or block of queries (opens the file if needed)."""
        with self._cond:
            if self._closed:
                raise StorageError(f"this CostStore on {self.path} is closed")
            if (
                self._connection is not None
                and self._active == 0
                and time.monotonic() - self._held_since >= self.hold_max_s
            ):
                self._close()
                time.sleep(_WRITER_GAP_S)  # under the lock: no other thread of ours reopens meanwhile
            if self._connection is None:
                self._open()
            assert self._connection is not None  # noqa: S101 - _open sets it or raises
            self._active += 1
            connection = self._connection
        try:
            cursor = connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        finally:
            with self._cond:
                self._active -= 1
                self._last_use = time.monotonic()
                if self._active == 0 and self.hold_idle_s == 0:
                    self._close()
                else:
                    self._cond.notify_all()

    def close(self) -> None:
        """Close the file now; later queries raise StorageError."""
        with self._cond:
            self._closed = True
            self._close()
            self._cond.notify_all()
            closer = self._closer
        _storage.join_release_thread(closer)  # no daemon thread may outlive close() at exit

    def _open(self) -> None:
        self._connection = _storage.connect(self.path, read_only=self.read_only, timeout_s=self.timeout_s)
        self.opens += 1
        self._held_since = self._last_use = time.monotonic()
        if self.hold_idle_s > 0 and (self._closer is None or not self._closer.is_alive()):
            self._closer = threading.Thread(
                target=_closer_loop,
                args=(weakref.ref(self),),
                name="otel-llm-cost-store-release",
                daemon=True,
            )
            self._closer.start()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _release_if_idle(self) -> bool:
        """Close the file when no query runs and none ran for hold_idle_s; False once nothing is held."""
        if self._connection is None:
            return False
        if self._active == 0:
            idle = time.monotonic() - self._last_use
            if idle >= self.hold_idle_s:
                self._close()
                return False
            self._cond.wait(self.hold_idle_s - idle)
        else:
            self._cond.wait()  # woken when a query ends
        return True


_LIVE_HOLDERS: weakref.WeakSet[FileHolder] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    # The closer thread is a daemon: without this, a handle still open at exit is never closed
    # (duckdb then reports leaked objects on stderr).
    for holder in list(_LIVE_HOLDERS):
        holder.close()


def _closer_loop(ref: weakref.ReferenceType[FileHolder]) -> None:
    while True:
        holder = ref()
        if holder is None:
            return
        with holder._cond:
            if holder._closer is not threading.current_thread() or not holder._release_if_idle():
                if holder._closer is threading.current_thread():
                    holder._closer = None
                return
        del holder
