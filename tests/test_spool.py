"""The spool: crash-safe batch files, and every way the database can refuse a batch (nothing is lost)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from helpers import wait_until
from otel_llm_cost._logging import ERROR_COUNTS, reset_log_once
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.exporter import DuckDBSpanExporter
from otel_llm_cost.storage.journal import Spool, SpoolCorruptError
from otel_llm_cost.storage.rows import RowBatch, build_rows
from test_exporter import count, make_span


@pytest.fixture(autouse=True)
def _fresh_log_once() -> Iterator[None]:
    reset_log_once()
    yield
    reset_log_once()


def _batch(n: int = 3, *, spans: bool = True):  # type: ignore[no-untyped-def]
    return build_rows(
        [make_span() for _ in range(n)], enrich=None, capture_content=False, store_all_spans=spans
    )


def test_a_batch_round_trips_and_files_replay_in_write_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.pending() == []
    batches = [_batch(2), _batch(1, spans=False), _batch(3)]
    written = [spool.write(batch) for batch in batches]
    assert spool.pending() == written
    for path, batch in zip(written, batches, strict=True):
        back = Spool.read(path)
        assert back.calls.equals(batch.calls)
        assert (back.spans is None) == (batch.spans is None)
        if batch.spans is not None:
            assert back.spans is not None
            assert back.spans.equals(batch.spans)
    Spool.remove(written[0])
    Spool.remove(written[0])  # already gone: fine
    assert spool.pending() == written[1:]


def test_half_written_and_damaged_files_are_never_replayed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    good = spool.write(_batch())
    # What a writer killed mid-write leaves behind: a temporary file, ignored, removed once stale.
    tmp = spool.directory / ".tmp-00000000000000000001-1-00000000.batch"
    tmp.write_bytes(good.read_bytes()[:50])
    os.utime(tmp, (time.time() - 3600, time.time() - 3600))
    truncated = spool.directory / "00000000000000000002-1-00000000.batch"
    truncated.write_bytes(good.read_bytes()[:-10])
    assert spool.pending() == [truncated, good]
    assert not tmp.exists()
    with pytest.raises(SpoolCorruptError, match="truncated"):
        Spool.read(truncated)
    assert Spool.quarantine(truncated) == spool.directory / "quarantine" / truncated.name
    assert spool.pending() == [good]


def test_spool_write_failure_is_an_os_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(OSError):  # noqa: PT011 - NotADirectoryError or FileExistsError by platform
        Spool(blocker / "spool").write(_batch())


# -- the exporter when the database refuses a batch --------------------------------------------------

_HOLD = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print("held", flush=True)
    sys.stdin.readline()  # hold until the test says so
    con.close()
    """
)


@contextlib.contextmanager
def _reader_process_holding(path: Path) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdin is not None
        try:
            assert proc.stdout.readline().strip() == "held"
            yield proc
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write("\n")
                proc.stdin.flush()
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            proc.stdin = None  # closed above; Popen.__exit__ must not flush it again
            proc.wait(timeout=30)


def _waiting(exporter: DuckDBSpanExporter) -> int:
    """Batches accepted but not stored yet (journal files in the spool directory)."""
    assert exporter.spool is not None
    return len(exporter.spool.pending())


@pytest.mark.slow
def test_a_reader_holding_the_file_past_the_timeout_keeps_batches_waiting_then_stores_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "calls.duckdb"
    exporter = DuckDBSpanExporter(db, lock_timeout_s=0.3)
    assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
    assert exporter.force_flush()
    exporter._writer._lease.release()  # the next commit must reopen while the reader holds the file
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"), _reader_process_holding(db):
        assert exporter.export([make_span(), make_span()]) is SpanExportResult.SUCCESS
        assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
        assert exporter.uncommitted_rows == 3  # accepted without waiting for the file
        assert not exporter.force_flush(timeout_millis=1000)  # the file stays held
        assert _waiting(exporter) == 2
        # The writer gives up waiting for the file (lock_timeout_s), then retries.
        wait_until(
            lambda: ERROR_COUNTS["exporter.locked"],
            interval_s=0.05,
            what="the writer to find the file locked",
        )
    assert ERROR_COUNTS["exporter.locked"] >= 1
    assert len([r for r in caplog.records if "batches wait in" in r.getMessage()]) == 1  # logged once
    assert exporter.force_flush()  # the reader left
    assert _waiting(exporter) == 0
    assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert count(db) == 5


def test_a_reader_releasing_within_the_timeout_costs_nothing(tmp_path: Path) -> None:
    db = tmp_path / "calls.duckdb"
    exporter = DuckDBSpanExporter(db, lock_timeout_s=30)
    exporter.export([make_span()])
    assert exporter.force_flush()
    exporter._writer._lease.release()
    with _reader_process_holding(db) as proc:
        assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
        assert proc.stdin is not None
        proc.stdin.write("\n")  # the reader finishes while the writer is waiting for the file
        proc.stdin.flush()
        assert exporter.force_flush()
    assert ERROR_COUNTS["exporter.locked"] == 0
    assert _waiting(exporter) == 0
    exporter.shutdown()
    assert count(db) == 2


def test_an_unwritable_file_keeps_batches_waiting_and_stores_them_when_writable_again(
    tmp_path: Path,
) -> None:
    # Read-only simulated with the immutable attribute (chmod does not stop root, which runs this suite).
    if shutil.which("chattr") is None:
        pytest.skip("chattr not available")
    db = tmp_path / "calls.duckdb"
    _storage.connect(db).close()
    if subprocess.run(["chattr", "+i", str(db)], check=False, capture_output=True).returncode != 0:
        pytest.skip("this filesystem does not support the immutable attribute")
    try:
        exporter = DuckDBSpanExporter(db, lock_timeout_s=0.2)
        assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
        assert not exporter.force_flush(timeout_millis=500)
        assert _waiting(exporter) == 1
        assert ERROR_COUNTS["exporter.write"] >= 1
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert _waiting(exporter) == 0
    assert count(db) == 2


def test_a_corrupt_file_is_set_aside_and_batches_are_stored_in_a_fresh_one(tmp_path: Path) -> None:
    db = tmp_path / "calls.duckdb"
    db.write_bytes(b"\x00garbage" * 4096)
    exporter = DuckDBSpanExporter(db, lock_timeout_s=0.2)
    assert exporter.export([make_span(), make_span()]) is SpanExportResult.SUCCESS
    assert exporter.force_flush(timeout_millis=10_000)
    exporter.shutdown()
    assert _waiting(exporter) == 0
    assert count(db) == 2
    [aside] = tmp_path.glob("calls.duckdb.corrupt-*")
    assert aside.read_bytes() == b"\x00garbage" * 4096


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MiB tmpfs (needs root with CAP_SYS_ADMIN; skipped otherwise)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=False, capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_keeps_batches_waiting_elsewhere_and_stores_them_once_space_is_freed(
    tiny_disk: Path, tmp_path: Path
) -> None:
    db = tiny_disk / "calls.duckdb"
    _storage.connect(db).close()
    filler = tiny_disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as file:
        while True:
            file.write(b"\0" * 65536)
            file.flush()
    exporter = DuckDBSpanExporter(db, lock_timeout_s=0.2, spool_dir=tmp_path / "spool")
    spans = [make_span(start_ns=1_736_942_400_000_000_000 + i) for i in range(2000)]
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert not exporter.force_flush(timeout_millis=500)
    assert _waiting(exporter) == 1
    filler.unlink()
    assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
    # Waited for here, not by shutdown: shutdown's wait is the 0.2 s lock timeout, and an attempt that
    # began before the space was freed can take most of that to fail before the next one succeeds.
    assert exporter.force_flush(timeout_millis=30_000)
    exporter.shutdown()
    assert _waiting(exporter) == 0
    assert count(db) == 2001


def test_when_even_the_spool_cannot_be_written_the_loss_is_logged_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "blocker").write_text("")
    db = tmp_path / "blocker" / "calls.duckdb"  # under a file: DuckDB cannot create it
    exporter = DuckDBSpanExporter(db, lock_timeout_s=0.1, spool_dir=tmp_path / "blocker" / "spool")
    with caplog.at_level(logging.ERROR, logger="otel_llm_cost"):
        assert exporter.export([make_span()]) is SpanExportResult.FAILURE
        assert exporter.export([make_span()]) is SpanExportResult.FAILURE
    assert ERROR_COUNTS["exporter.spool_write"] == 2
    assert len([r for r in caplog.records if "being lost" in r.getMessage()]) == 1
    exporter.shutdown()


def test_spooled_batches_are_replayed_at_start_up(tmp_path: Path) -> None:
    db = tmp_path / "calls.duckdb"
    spool = Spool(f"{db}.spool")
    spool.write(_batch(2))
    spool.write(_batch(3))
    exporter = DuckDBSpanExporter(db)  # no export: the start-up replay alone must store them
    wait_until(lambda: not spool.pending(), interval_s=0.05, what="the start-up replay to empty the spool")
    assert spool.pending() == []
    exporter.shutdown()
    assert count(db) == 5
    assert count(db, _schema.SPANS_TABLE) == 5


def test_replaying_a_batch_twice_stores_it_once(tmp_path: Path) -> None:
    # A crash between the commit and the spool file's removal replays the batch again.
    db = tmp_path / "calls.duckdb"
    batch = _batch(4)
    spool = Spool(f"{db}.spool")
    spool.write(batch)
    spool.write(batch)
    exporter = DuckDBSpanExporter(db)
    assert exporter.force_flush()
    exporter.shutdown()
    assert count(db) == 4


def test_a_spooled_batch_the_database_rejects_is_quarantined_and_writes_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A batch spooled by a build whose columns no longer fit the table (here: text where a count
    # belongs) fails to commit for a reason no retry fixes. Replaying it on every export used to fail
    # every export and spool every new batch behind it, forever.
    db = tmp_path / "calls.duckdb"
    spool = Spool(f"{db}.spool")
    good = _batch(2, spans=False)
    calls = good.calls.set_column(
        good.calls.schema.get_field_index("input_tokens"), "input_tokens", pa.array(["many", "more"])
    )
    bad = spool.write(RowBatch(calls, None))
    later = spool.write(_batch(1, spans=False))
    exporter = DuckDBSpanExporter(db, lock_timeout_s=5)
    with caplog.at_level(logging.ERROR, logger="otel_llm_cost"):
        assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
        assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert spool.pending() == []
    assert not bad.exists()
    assert (spool.directory / "quarantine" / bad.name).exists()
    assert not later.exists()  # replayed: the batch after the bad one is not held back
    assert count(db) == 3
    assert ERROR_COUNTS["exporter.spool_rejected"] == 1
    assert len([r for r in caplog.records if "quarantine" in r.getMessage()]) == 1
