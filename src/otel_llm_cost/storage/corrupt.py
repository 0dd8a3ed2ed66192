"""A damaged DuckDB file (truncated, overwritten, not a database at all): told apart from a busy one,
and set aside by the writer so that exporting goes on into a fresh file.

Without this, every batch waits in the journal for a file that will never open again. DuckDB says
which case it is when the file is opened: "is not a valid DuckDB database file" (random bytes, an
empty or foreign file), "Could not read enough bytes" (truncated), "Corrupt database file" (a
checksum mismatch). A file another process holds fails with a lock error instead, and is never
touched; nor is a file of another DuckDB version, which a newer or older DuckDB can still read.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeGuard

import duckdb

from otel_llm_cost._logging import ERROR_COUNTS
from otel_llm_cost.exceptions import StorageCorruptError, StorageError

__all__ = ["file_identity", "is_corrupt_error", "open_error", "set_aside"]

_logger = logging.getLogger("otel_llm_cost.exporter")

_CORRUPT_MESSAGES: Final = (
    "is not a valid DuckDB database file",
    "Could not read enough bytes from file",
    "Corrupt database file",
)


def is_corrupt_error(exc: BaseException) -> TypeGuard[duckdb.Error]:
    """True when DuckDB could not open a file because its content is damaged (not locked, not missing)."""
    return isinstance(exc, duckdb.Error) and any(message in str(exc) for message in _CORRUPT_MESSAGES)


def open_error(path: str, exc: duckdb.Error) -> StorageError:
    """The error to raise for a file DuckDB would not open (not a lock error)."""
    if is_corrupt_error(exc):
        return StorageCorruptError(
            f"DuckDB file {path!r} is damaged and cannot be opened ({exc}). Restore it from a backup "
            "or move it away; an exporter writing to it sets it aside as "
            f"{os.path.basename(path)}.corrupt-<time> and starts a fresh file."
        )
    return StorageError(f"cannot open DuckDB file {path!r}: {exc}")


def file_identity(path: Path) -> tuple[int, int] | None:
    """Which file ``path`` names now (device, inode), or None when there is none."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def set_aside(path: Path, error: BaseException, identity: tuple[int, int] | None) -> Path | None:
    """Rename a damaged ``path`` (and its ``.wal``) to ``<name>.corrupt-<UTC time>``; log what to do.

    Args:
        path: The damaged file.
        error: What DuckDB said about it.
        identity: :func:`file_identity` of the file that failed. Another process may have set it
            aside and created a fresh file meanwhile: a file with another identity is left alone.

    Returns:
        The new name, or None when ``path`` is no longer the file that failed.
    """
    if identity is None or file_identity(path) != identity:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    wal = Path(f"{path}.wal")
    if wal.exists():
        os.replace(wal, Path(f"{target}.wal"))
    ERROR_COUNTS["exporter.corrupt_file"] += 1
    _logger.error(
        "DuckDB file %s is damaged and cannot be opened (%s). It was set aside as %s; exporting "
        "continues into a fresh file at %s, and the batches waiting in the journal are stored there. "
        "The rows of the damaged file are not in the new one: restore them from a backup if you have "
        "one (otel-llm-cost's reports only read the new file).",
        path,
        error.__cause__ or error,
        target,
        path,
    )
    return target
