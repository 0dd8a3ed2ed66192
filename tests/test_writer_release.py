"""The writer's releases: checkpoints in bounded memory, loses no row, leaves the next opening unchanged."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pytest

from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.journaled import _WRITER_SETTINGS
from otel_llm_cost.storage.lease import WriterLease
from otel_llm_cost.storage.rows import build_rows
from test_exporter import count, make_span

START = 1_736_942_400_000_000_000
BATCH = 8192
MIB = 2**20


def _rss_and_peak_mib() -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) >> 10, int(fields["VmHWM"].split()[0]) >> 10


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM back to the current RSS


@pytest.mark.slow
def test_releases_up_to_a_full_row_group_stay_in_their_memory_bound_and_store_every_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        _reset_peak()
    except OSError:
        pytest.skip("needs Linux's /proc/self/clear_refs to measure a peak")
    db = tmp_path / "calls.duckdb"
    # 16 MiB: rewriting a full row group of these rows takes ~90 MiB when unbounded.
    lease = WriterLease(
        db,
        hold_idle_s=0.0,
        hold_max_s=60.0,
        settings=_WRITER_SETTINGS,
        on_open=lambda: None,
        checkpoint_extra_bytes=16 * MIB,
    )
    spans = [make_span(start_ns=START + i) for i in range(BATCH)]
    template = build_rows(spans, enrich=None, capture_content=False, store_all_spans=False).calls
    span_id = template.schema.get_field_index("span_id")
    limits: set[str] = set()
    jumps: list[int] = []
    caplog.set_level(logging.WARNING, logger="otel_llm_cost")
    # 16 x 8,192 rows, released after each batch as an idle writer does: each checkpoint merges the
    # batch into the row group before it, and one of them rewrites a full row group (122,880 rows).
    for batch in range(16):
        ids = pa.array([f"{batch:04x}{row:012x}" for row in range(BATCH)], pa.string())
        rows = template.set_column(span_id, "span_id", ids)
        with lease.lock:
            connection = lease.acquire(5.0)
            row = connection.execute("SELECT current_setting('memory_limit')").fetchone()
            assert row is not None
            limits.add(row[0])
            _storage.insert_new_rows(connection, _schema.CALLS_TABLE, rows)
            _reset_peak()
            before, _ = _rss_and_peak_mib()
            lease.release()
            jumps.append(_rss_and_peak_mib()[1] - before)
        assert not lease.held
        assert count(db) == (batch + 1) * BATCH  # committed, checkpointed, seen by the next opener
    assert max(jumps) < 48, jumps  # the bound plus DuckDB's own allocations, far from ~90
    # The limit set for each release's checkpoint went with its connection: every opening inserted
    # under DuckDB's default.
    assert len(limits) == 1
    assert [record.getMessage() for record in caplog.records] == []
