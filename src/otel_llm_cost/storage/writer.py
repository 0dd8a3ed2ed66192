"""The exporter's one writer interface, and the write-health state both writers share.

Two implementations: :class:`~otel_llm_cost.storage.journaled.JournaledWriter` (a path: batches are
journaled and a writer thread commits several per transaction) and
:class:`~otel_llm_cost.storage.direct.DirectWriter` (a connection the caller owns: ``export`` commits).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from opentelemetry.sdk.trace.export import SpanExportResult

from otel_llm_cost._logging import log_once
from otel_llm_cost.exceptions import StorageLockedError
from otel_llm_cost.storage.rows import RowBatch

__all__ = ["WriteHealth", "Writer"]

_logger = logging.getLogger("otel_llm_cost.exporter")


class Writer(Protocol):
    """Where the exporter hands its row batches."""

    @property
    def uncommitted_rows(self) -> int:
        """Rows accepted and not committed yet."""
        ...

    def batch_coming(self) -> bool:
        """Rows for a batch are about to be built (the file is not idle meanwhile); False: refused."""
        ...

    def accept(self, batch: RowBatch) -> SpanExportResult:
        """Store (or journal) one batch; never raises."""
        ...

    def flush(self, timeout_s: float) -> bool:
        """Commit everything accepted so far; False when something is left after ``timeout_s``."""
        ...

    def shutdown(self) -> None:
        """Commit what was accepted (bounded wait), release the file; later batches are refused."""
        ...


class WriteHealth:
    """Whether the database could not be written lately (then attempts are quick), logged once per kind.

    Args:
        path: The DuckDB file or lake, for messages (``None``: a connection of unknown file).
        waiting_in: Where batches wait meanwhile, for messages (``None``: not said).
    """

    __slots__ = ("degraded", "path", "waiting_in")

    def __init__(self, path: Path | str | None, waiting_in: Path | None) -> None:
        self.path = path
        self.waiting_in = waiting_in
        self.degraded = False

    def failed(self, exc: Exception) -> None:
        """A write failed: lock errors switch to quick attempts until the file is free."""
        self.degraded = True
        key = "exporter.locked" if isinstance(exc, StorageLockedError) else "exporter.write"
        if self.waiting_in is not None:
            log_once(
                _logger,
                key,
                logging.WARNING,
                "DuckDB write to %s failed: %s; batches wait in %s and are stored once it is writable",
                self.path,
                exc,
                self.waiting_in,
            )
        else:
            log_once(_logger, key, logging.WARNING, "DuckDB write to %s failed: %s", self.path, exc)

    def succeeded(self, what: str) -> None:
        """A write succeeded (``what`` waited meanwhile, for the recovery message)."""
        if self.degraded:
            _logger.info("DuckDB file %s is writable again; %s", self.path, what)
        self.degraded = False
