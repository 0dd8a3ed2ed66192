"""An append-only spool of Arrow batches: the exporter's journal, and where batches wait for the database.

One file per batch: the ``llm_calls`` rows and (optionally) the ``spans`` rows as two Arrow IPC
streams behind a small header, written to a temporary name and renamed into place (``durable``: with
the file and the directory fsynced first). A reader therefore sees a batch completely or not at all,
even after kill -9 (or a power cut, when durable). File names sort in write order
(``<time_ns>-<pid>-<token>-<seq>.batch``), which is the replay order. Replays are idempotent (the
storage layer skips span ids already stored), so a batch replayed twice, or by two processes sharing
the spool, is stored once.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import struct
import time
from pathlib import Path
from typing import Final

import pyarrow as pa

from otel_llm_cost.storage.rows import RowBatch

__all__ = ["QUARANTINE_DIR", "Spool", "SpoolCorruptError"]

_MAGIC: Final = b"OLCSPOOL1"
_HEADER: Final = struct.Struct("<QQ")  # byte lengths of the calls stream and the spans stream
_SUFFIX: Final = ".batch"
_TMP_PREFIX: Final = ".tmp-"
# A temporary file this old belongs to a writer that died mid-write (a live write takes milliseconds).
_STALE_TMP_S: Final = 600.0
#: Subfolder of the spool for batches that are never replayed automatically.
QUARANTINE_DIR: Final = "quarantine"


class SpoolCorruptError(Exception):
    """A spool file cannot be decoded (it is moved aside, never replayed)."""


def _ipc_bytes(table: pa.Table | None) -> pa.Buffer | bytes:
    """The IPC stream of ``table``, as Arrow's own buffer (written to the file without a copy)."""
    if table is None:
        return b""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform/filesystem allows opening a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Spool:
    """Batches waiting for the database, in a directory (created on first write)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._seq = itertools.count()
        #: Names this Spool object's files: another exporter of the same process on the same spool
        #: directory leaves them to their writer (see ``owner``).
        self.token = secrets.token_hex(4)

    def write(self, batch: RowBatch, *, durable: bool = True) -> Path:
        """Append one batch; visible to readers complete or not at all (written aside, then renamed).

        Args:
            batch: The rows.
            durable: fsync the file and the directory, so that the batch survives a power cut too.
                Without it the batch survives the process being killed (the kernel keeps what was
                written), not an operating-system crash: the exporter's journal of batches it accepted,
                committed to DuckDB moments later, does not pay two fsyncs per batch.

        Raises:
            OSError: The spool directory cannot be written (read-only, full...).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        calls = _ipc_bytes(batch.calls)
        spans = _ipc_bytes(batch.spans)
        name = f"{time.time_ns():020d}-{os.getpid()}-{self.token}-{next(self._seq):08d}{_SUFFIX}"
        tmp = self.directory / f"{_TMP_PREFIX}{name}"
        try:
            with open(tmp, "wb") as file:
                file.write(_MAGIC)
                file.write(_HEADER.pack(len(calls), len(spans)))
                file.write(calls)
                file.write(spans)
                if durable:
                    file.flush()
                    os.fsync(file.fileno())
            final = self.directory / name
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        if durable:
            _fsync_dir(self.directory)
        return final

    def pending(self) -> list[Path]:
        """Spooled batches, oldest first (empty when the directory does not exist)."""
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return []
        batches = []
        now = time.time()
        for entry in entries:
            if entry.name.endswith(_SUFFIX) and not entry.name.startswith(_TMP_PREFIX):
                batches.append(Path(entry.path))
            elif entry.name.startswith(_TMP_PREFIX):
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime > _STALE_TMP_S:
                        os.unlink(entry.path)
        return sorted(batches, key=lambda path: path.name)

    def renew_token(self) -> None:
        """A new ``token`` for the files written from now on (in a forked child)."""
        self.token = secrets.token_hex(4)

    @staticmethod
    def owner(path: Path) -> str | None:
        """The ``token`` of the Spool that wrote ``path`` (None for files of older versions)."""
        parts = path.name.split("-")
        return parts[2] if len(parts) == 4 else None

    @staticmethod
    def read(path: Path) -> RowBatch:
        """Decode one spooled batch.

        Raises:
            FileNotFoundError: Another process replayed and removed it meanwhile.
            SpoolCorruptError: The file is not a complete spool batch.
        """
        data = path.read_bytes()
        header_end = len(_MAGIC) + _HEADER.size
        if len(data) < header_end or not data.startswith(_MAGIC):
            raise SpoolCorruptError(f"{path} is not an otel-llm-cost spool batch")
        calls_len, spans_len = _HEADER.unpack_from(data, len(_MAGIC))
        if header_end + calls_len + spans_len != len(data):
            raise SpoolCorruptError(f"{path} is truncated or has trailing bytes")
        try:
            calls = pa.ipc.open_stream(data[header_end : header_end + calls_len]).read_all()
            spans = pa.ipc.open_stream(data[header_end + calls_len :]).read_all() if spans_len else None
        except (pa.ArrowInvalid, OSError) as exc:
            raise SpoolCorruptError(f"{path}: {exc}") from exc
        return RowBatch(calls, spans)

    @staticmethod
    def remove(path: Path) -> None:
        """Forget a batch once the database committed it (already gone is fine)."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    @staticmethod
    def quarantine(path: Path) -> Path:
        """Move a batch that must not be replayed again into the spool's ``quarantine/`` subfolder.

        For a file that cannot be decoded, or that the database rejects (a type or constraint error,
        e.g. after a schema change): replaying it on every export would block every later batch.
        It keeps its name, so moving it back into the spool directory replays it.

        Returns:
            Where the file now is.
        """
        folder = path.parent / QUARANTINE_DIR
        folder.mkdir(exist_ok=True)
        target = folder / path.name
        with contextlib.suppress(FileNotFoundError):  # another process sharing the spool moved it
            os.replace(path, target)
        return target
