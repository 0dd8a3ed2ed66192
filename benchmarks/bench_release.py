"""What releasing the DuckDB file costs the exporter's writer: the checkpoint that closing runs.

Appends ``--rows`` enriched ``llm_calls`` rows (built untimed from the spans of
``benchmarks/bench_exporter.py``) in batches of ``--batch`` on a connection with the writer's settings,
and closes the file after every ``--every`` batches, as the writer does when it releases the file
(after ``hold_idle_s`` without a batch: one release per batch when the application ends a few
thousand spans a second; after ``hold_max_s`` of continuous writing: every few batches). Each closing
first bounds the checkpoint's memory as the writer does (``--unbounded``: not). Prints the CPU per row
of the inserts and of the closes, the longest close, the largest RSS jump during a close (Linux), and
the row groups and size of the file.

    python benchmarks/bench_release.py                    # the writer's release after every batch
    python benchmarks/bench_release.py --unbounded        # the same without the memory bound
    python benchmarks/bench_release.py --every 1000       # one checkpoint, at the end
    python benchmarks/bench_release.py --no-merge         # checkpoints that merge no row groups
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_exporter import batches

from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import journaled, lease
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.rows import build_rows


def _rss_mib() -> tuple[int, int]:
    """(RSS, peak RSS since the last reset) in MiB; zeros where /proc is missing."""
    with contextlib.suppress(OSError, KeyError):
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) >> 10, int(fields["VmHWM"].split()[0]) >> 10
    return 0, 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--every", type=int, default=1, help="close after this many batches")
    parser.add_argument("--unbounded", action="store_true", help="no memory bound on the checkpoint")
    parser.add_argument("--no-merge", action="store_true", help="SET max_vacuum_tasks = 0")
    args = parser.parse_args()
    tables = []
    for offset in range(0, args.rows, 65_536):  # spans built a slice at a time: only rows are kept
        for spans in batches(min(65_536, args.rows - offset), args.batch, seed=offset):
            tables.append(build_rows(spans, enrich=None, capture_content=False, store_all_spans=False).calls)
    print(
        f"{args.rows:,} rows in batches of {args.batch}, closing every {args.every}; load {os.getloadavg()}"
    )
    insert_cpu = close_cpu = longest = 0.0
    jump = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "release.duckdb"
        con: duckdb.DuckDBPyConnection | None = None
        for number, rows in enumerate(tables, 1):
            if con is None:
                con = _storage.connect(path)
                for setting in journaled._WRITER_SETTINGS:
                    con.execute(setting)
                if args.no_merge:
                    con.execute("SET max_vacuum_tasks = 0")
            cpu = time.process_time()
            _storage.insert_new_rows(con, _schema.CALLS_TABLE, rows)
            insert_cpu += time.process_time() - cpu
            if number % args.every and number != len(tables):
                continue
            if not args.unbounded:  # as WriterLease.release does
                row = con.execute(lease._MEMORY_HELD).fetchone()
                held = int(row[0] or 0) if row else 0
                con.execute(f"SET memory_limit = '{held + lease._CHECKPOINT_EXTRA_BYTES}B'")
            with contextlib.suppress(OSError):
                Path("/proc/self/clear_refs").write_text("5")
            before = _rss_mib()[0]
            wall, cpu = time.perf_counter(), time.process_time()
            con.close()
            con = None
            close_cpu += time.process_time() - cpu
            longest = max(longest, time.perf_counter() - wall)
            jump = max(jump, _rss_mib()[1] - before)
        check = duckdb.connect(str(path), read_only=True)
        row = check.execute(
            f"SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('{_schema.CALLS_TABLE}')"
        ).fetchone()
        check.close()
        size = path.stat().st_size >> 20
    rows_total = sum(table.num_rows for table in tables)
    print(
        f"  inserts {insert_cpu / rows_total * 1e6:.1f} us CPU/row, "
        f"closes {close_cpu / rows_total * 1e6:.1f} us CPU/row "
        f"(longest {longest:.2f} s, RSS jump up to {jump} MiB); "
        f"{row[0] if row else '?'} row groups, {size} MiB; load {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
