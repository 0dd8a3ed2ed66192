"""The lake's commit lock: a PostgreSQL advisory lock in the catalog's database.

DuckLake has no PRIMARY KEY or UNIQUE constraints, and two writers appending at once do not conflict,
so an "is this span stored yet?" anti-join in each writer's transaction would let two writers both
store a span both were handed (an OTLP client retrying against another collector, a journal replayed
by a second process). Every writer therefore commits while holding one session-level advisory lock:
the anti-join then sees every earlier commit, and the span is stored once. Budget alerts are recorded
under the same lock, so an alert fires once across writers. The lock belongs to the PostgreSQL session:
a writer killed with -9 loses its connection and the server releases the lock at once.

Serialising commits costs little because the writer batches (thousands of rows per commit, a commit
every second or so per process): measured with ``benchmarks/bench_lake.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

from otel_llm_cost.exceptions import StorageError, StorageLockedError

__all__ = ["CommitLock"]

# One lock per catalog database: every otel-llm-cost writer of the lake takes the same key.
_KEY = int.from_bytes(hashlib.sha256(b"otel_llm_cost.lake.commit").digest()[:8], "big", signed=True)


class CommitLock:
    """The advisory lock, on a connection of its own (opened on first use, reopened after a failure).

    Args:
        dsn: The catalog's libpq connection string (credentials from libpq's environment and files).
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: Any = None

    @contextlib.contextmanager
    def held(self, timeout_s: float) -> Iterator[None]:
        """Hold the lock inside the block, waiting up to ``timeout_s`` for it.

        Raises:
            StorageLockedError: Another writer held it past ``timeout_s``.
            StorageError: The catalog cannot be reached (or psycopg is not installed).
        """
        connection = self._connect()
        try:
            connection.execute(f"SET lock_timeout = {max(1, int(timeout_s * 1000))}")
            connection.execute("SELECT pg_advisory_lock(%s)", (_KEY,))
        except Exception as exc:
            self.close()
            if "lock timeout" in str(exc):
                raise StorageLockedError(
                    f"another writer held the lake's commit lock for {timeout_s:g} s"
                ) from exc
            raise StorageError(f"cannot take the lake's commit lock: {exc}") from exc
        try:
            yield
        finally:
            try:
                connection.execute("SELECT pg_advisory_unlock(%s)", (_KEY,))
            except Exception:
                self.close()  # closing the session releases the lock too

    def _connect(self) -> Any:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        try:
            import psycopg  # noqa: PLC0415 - only writers of a lake need it (the `lake` extra)
        except ImportError as exc:
            raise StorageError("writing to a lake needs psycopg: install otel-llm-cost[lake]") from exc
        try:
            self._connection = psycopg.connect(self._dsn, autocommit=True)
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to the lake's catalog: {exc}") from exc
        return self._connection

    def close(self) -> None:
        """Close the lock's connection (the lock, if held, goes with it)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()
