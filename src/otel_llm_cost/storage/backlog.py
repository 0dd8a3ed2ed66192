"""The journaled batches the writer thread has not committed yet, in journal (= commit) order, and
when the writer may try again after a failed attempt."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from otel_llm_cost.storage.rows import RowBatch

__all__ = ["Backlog"]

# The writer commits up to this many rows of consecutive journaled batches in one transaction: large
# enough to amortise DuckDB's per-statement cost, small enough that a waiting reader is let in quickly
# (~70 ms of inserting).
_GROUP_ROWS = 16_384
# A journal file an earlier run left (its row count unknown until read) counts as this many rows.
_ROWS_OF_UNREAD_BATCH = 512
# Journaled batches kept in memory for the writer; beyond this they are read back from their files
# (the database is locked or slower than the application for a long time: disk holds the backlog).
_MEMORY_BYTES = 64 * 2**20
# Pauses between attempts while the file cannot be written (locked by a reader, read-only, full...).
_RETRY_FIRST_S = 0.05
_RETRY_MAX_S = 1.0


class Backlog:
    """Journal file -> its rows (kept in memory up to a cap, else ``None``: read back from the file),
    their size in memory and how many they are.

    Every method but :meth:`forget` expects the caller to hold ``cond``.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self._pending: dict[Path, tuple[RowBatch | None, int, int]] = {}
        self._bytes = 0
        self.retry_at = 0.0  # 0: try now, whatever the back-off
        self._retry_delay = _RETRY_FIRST_S

    def ready(self, now: float) -> bool:
        """Whether the writer should try to commit now."""
        return bool(self._pending) and now >= self.retry_at

    def attempt_failed(self) -> None:
        self.retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX_S)

    def attempt_succeeded(self) -> None:
        self._retry_delay = _RETRY_FIRST_S

    def __bool__(self) -> bool:
        return bool(self._pending)

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, path: Path) -> bool:
        return path in self._pending

    def last(self) -> Path | None:
        """The newest accepted batch's journal file."""
        return next(reversed(self._pending), None)

    def rows(self) -> int:
        """Rows waiting: exact for every batch accepted here, 512 for a file an earlier run left."""
        return sum(rows for _, _, rows in self._pending.values())

    def in_memory(self) -> list[RowBatch | None]:
        return [batch for batch, _, _ in self._pending.values()]

    def add(self, path: Path, batch: RowBatch) -> None:
        size = batch.calls.nbytes + (batch.spans.nbytes if batch.spans is not None else 0)
        # Counted as the rows it has either way: the receiver's backpressure subtracts them.
        rows = batch.calls.num_rows
        if self._bytes + size > _MEMORY_BYTES:
            self._pending[path] = (None, 0, rows)  # read back from its file when the writer gets to it
        else:
            self._pending[path] = (batch, size, rows)
            self._bytes += size

    def adopt(self, on_disk: list[Path]) -> None:
        """Add journal files this backlog does not know (left by an earlier run), in name order."""
        unknown = [path for path in on_disk if path not in self._pending]
        if unknown:
            merged = {**self._pending, **dict.fromkeys(unknown, (None, 0, _ROWS_OF_UNREAD_BATCH))}
            self._pending = dict(sorted(merged.items(), key=lambda item: item[0].name))

    def next_group(self) -> list[tuple[Path, RowBatch | None]]:
        """The oldest batches, up to ``_GROUP_ROWS`` rows (at least one batch)."""
        group: list[tuple[Path, RowBatch | None]] = []
        rows = 0
        for path, (batch, _, count) in self._pending.items():
            if group and rows + count > _GROUP_ROWS:
                break
            group.append((path, batch))
            rows += count
        return group

    def forget(self, paths: list[Path]) -> None:
        """Drop committed (or set aside) batches and wake anyone flushing (takes ``cond`` itself)."""
        if not paths:
            return
        with self.cond:
            for path in paths:
                _, size, _ = self._pending.pop(path, (None, 0, 0))
                self._bytes -= size
            self.cond.notify_all()
