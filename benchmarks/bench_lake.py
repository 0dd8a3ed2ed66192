"""DuckLake target: ingest (1 and 4 writer processes) and CostStore reports before/after `lake maintain`.

Needs the `lake` extra (duckdb 1.5 with the DuckLake wheels) and a PostgreSQL server; each run creates
its own catalog databases on it and its data under a temporary directory.

    PGHOST=127.0.0.1 PGPORT=55432 PGUSER=postgres \
        python benchmarks/bench_lake.py --spans 20000 --calls 1000000

Ingest: each writer process builds ``--spans`` LLM spans up front (untimed), streams them through
``DuckDBSpanExporter("ducklake:...").export`` in batches of 512 and times until ``shutdown()`` returns
(every batch committed). Commit latency is the time of each lake commit (lock, anti-join, insert,
catalog commit). Floor: the same rows, built beforehand, inserted by one process as raw Arrow inserts of
``OTEL_LLM_COST_LAKE_BATCH_ROWS`` rows per commit (no lock, no duplicate check).

Reports: ``--calls`` synthetic calls (benchmarks/gen_calls.py) in a local DuckDB file, and the same rows
copied into a lake in commits of 10,000 rows (as writers leave it: one Parquet file per commit), then
each report's best of ``--repeat`` on the lake before and after ``lake maintain`` beside the file.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from gen_calls import END_EPOCH_S, generate
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from otel_llm_cost import CostStore, DuckDBSpanExporter
from otel_llm_cost.storage import commit as _commit
from otel_llm_cost.storage.lake import LakeTarget, open_lake
from otel_llm_cost.storage.lake_ops import maintain

_RESOURCE = Resource.create({"service.name": "bench"})
_SCOPE = InstrumentationScope("opentelemetry.instrumentation.openai_v2")
_names = itertools.count()


def _spans(first: int, count: int) -> list[ReadableSpan]:
    start = 1_767_225_600_000_000_000
    return [
        ReadableSpan(
            name="chat gpt-4o",
            context=SpanContext((0xBE << 64) + i + 1, i + 1, is_remote=False, trace_flags=TraceFlags(1)),
            resource=_RESOURCE,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": ("gpt-4o", "gpt-4o-mini")[i % 2],
                "gen_ai.usage.input_tokens": 100 + i % 997,
                "gen_ai.usage.output_tokens": 10 + i % 101,
                "cost.feature": ("search", "chat", "summarise")[i % 3],
            },
            kind=SpanKind.CLIENT,
            start_time=start + i * 1_000_000,
            end_time=start + i * 1_000_000 + 250_000_000,
            instrumentation_scope=_SCOPE,
        )
        for i in range(first, first + count)
    ]


def _new_lake(root: Path) -> LakeTarget:
    name = f"bench_{os.getpid()}_{next(_names)}"
    with psycopg.connect("dbname=postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return LakeTarget(f"ducklake:postgres:dbname={name}", str(root / name) + "/")


def child(target: str, data_path: str, first: int, count: int) -> None:
    """One writer process: prints its spans/s and its commit latencies."""
    latencies: list[float] = []
    original = _commit.Committer.commit_group

    def timed(self: Any, cursor: Any, loaded: Any) -> None:
        began = time.perf_counter()
        original(self, cursor, loaded)
        latencies.append(time.perf_counter() - began)

    _commit.Committer.commit_group = timed  # type: ignore[method-assign]
    spans = _spans(first, count)
    with tempfile.TemporaryDirectory() as journal:
        exporter = DuckDBSpanExporter(target, data_path=data_path, spool_dir=journal)
        began = time.perf_counter()
        for low in range(0, count, 512):
            exporter.export(spans[low : low + 512])
        exporter.shutdown()
        elapsed = time.perf_counter() - began
    print(f"{count / elapsed:.0f} {' '.join(f'{x:.4f}' for x in latencies)}", flush=True)


def ingest(root: Path, writers: int, spans: int) -> None:
    lake = _new_lake(root)
    began = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                lake.target,
                str(lake.data_path),
                str(k * spans),
                str(spans),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(writers)
    ]
    outputs = [p.communicate()[0].split() for p in procs]
    wall = time.perf_counter() - began
    latencies = sorted(float(x) for out in outputs for x in out[1:])
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    print(
        f"  {writers} writer(s) x {spans:,} spans: {writers * spans / wall:,.0f} spans/s in total "
        f"(per writer {', '.join(out[0] for out in outputs)} spans/s, incl. start-up); "
        f"{len(latencies)} commits, latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms"
    )
    with contextlib.closing(open_lake(lake, create=False)) as con:
        stored = con.execute("SELECT count(*) FROM llm_calls").fetchall()[0][0]
    assert stored == writers * spans, stored


def raw_floor(root: Path, spans: int, batch_rows: int) -> None:
    from otel_llm_cost.storage.convert import BatchConverter  # noqa: PLC0415
    from otel_llm_cost.storage.enricher import default_enricher  # noqa: PLC0415

    converter = BatchConverter(default_enricher(), capture_content=False, store_all_spans=False)
    tables = [
        converter.convert(_spans(low, min(batch_rows, spans - low)))[0].calls
        for low in range(0, spans, batch_rows)
    ]
    lake = _new_lake(root)
    with contextlib.closing(open_lake(lake, create=True)) as con:
        latencies = []
        began = time.perf_counter()
        for rows in tables:  # noqa: B007 - read by name by DuckDB's replacement scan
            start = time.perf_counter()
            con.execute("INSERT INTO llm_calls BY NAME SELECT * FROM rows")
            latencies.append(time.perf_counter() - start)
        wall = time.perf_counter() - began
    print(
        f"  floor, raw Arrow insert of the same rows, {batch_rows:,} per commit, 1 process: "
        f"{spans / wall:,.0f} rows/s; commit p50 {statistics.median(latencies) * 1000:.0f} ms"
    )


def _best(call: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - began)
    return best


def _reports(store: CostStore) -> dict[str, Callable[[], object]]:
    end = datetime.fromtimestamp(END_EPOCH_S, UTC)
    month, day = end - timedelta(days=30), end - timedelta(days=1)
    return {
        "summary (30 days)": lambda: store.summary(month, end),
        "cost_by_model (30 days)": lambda: store.cost_by_model(month, end),
        "cost_by feature (30 days)": lambda: store.cost_by("feature", month, end),
        "daily_cost (30 days)": lambda: store.daily_cost(month, end),
        "cost_by_model (last day)": lambda: store.cost_by_model(day, end),
        "summary (last day)": lambda: store.summary(day, end),
    }


def reports(root: Path, calls: int, repeat: int) -> None:
    file = root / "calls.duckdb"
    generate(file, calls, 30, roll_up=False)  # raw rows on both sides (a lake has no rollup)
    lake = _new_lake(root)
    began = time.perf_counter()
    with contextlib.closing(open_lake(lake, create=True)) as con:
        con.execute(f"ATTACH '{file}' AS src (READ_ONLY)")
        for low in range(0, calls, 10_000):  # one commit per 10,000 rows, as the writers leave it
            con.execute(
                # gen_calls writes in start-time order, so row ids are time order.
                "INSERT INTO llm_calls BY NAME SELECT * FROM src.llm_calls WHERE rowid >= ? AND rowid < ?",
                [low, low + 10_000],
            )
    filled_s = time.perf_counter() - began
    print(f"  lake filled with {calls:,} calls in {calls // 10_000} commits ({filled_s:.0f} s)")
    with CostStore(file) as on_file, CostStore(lake.target) as on_lake:
        file_times = {name: _best(call, repeat) for name, call in _reports(on_file).items()}
        before = {name: _best(call, repeat) for name, call in _reports(on_lake).items()}
    result = maintain(lake, snapshots_older_than=timedelta(0))
    print(
        f"  maintain: {result.seconds:.1f} s, llm_calls files {result.files_before} -> {result.files_after}"
    )
    with CostStore(lake.target) as on_lake:
        after = {name: _best(call, repeat) for name, call in _reports(on_lake).items()}
    print(f"  {'report':28} {'file ms':>9} {'lake ms':>9} {'ratio':>6} {'after ms':>9} {'ratio':>6}")
    for name, on_file_s in file_times.items():
        print(
            f"  {name:28} {on_file_s * 1000:9.1f} {before[name] * 1000:9.1f} {before[name] / on_file_s:6.1f} "
            f"{after[name] * 1000:9.1f} {after[name] / on_file_s:6.1f}"
        )


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=20_000, help="spans per writer process")
    parser.add_argument("--calls", type=int, default=1_000_000, help="calls for the report comparison")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lake-") as tmp:
        root = Path(tmp)
        if not args.skip_ingest:
            print("ingest (DuckDBSpanExporter on a lake):")
            raw_floor(root, args.spans, int(os.environ.get("OTEL_LLM_COST_LAKE_BATCH_ROWS", "10000")))
            for writers in (1, 4):
                ingest(root, writers, args.spans)
        print(f"reports on {args.calls:,} calls (best of {args.repeat}):")
        reports(root, args.calls, args.repeat)


if __name__ == "__main__":
    main()
