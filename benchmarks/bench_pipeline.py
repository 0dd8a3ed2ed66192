"""Application threads -> LLMCostSpanProcessor -> DuckDB, with the default wiring, against its floors.

The default wiring is the README's one line, ``LLMCostSpanProcessor(DuckDBSpanExporter(path))``: the
processor chooses what feeds the exporter. Each case ends ``--threads`` x ``--spans`` LLM spans (as
opentelemetry-instrumentation-openai-v2 records a chat call, each with its own response id, inside an
``attribution()`` block of 4 tags) as fast as the threads can, then shuts the provider down (which
stores everything accepted) and counts the rows in the file. Printed per case:

- spans/s from the first span to the last row committed (wall clock), stored and lost rows;
- the application threads' CPU per span (``time.thread_time`` summed over them);
- RSS sampled every 0.25 s while streaming: median (the steady state) and peak, and their ratio;
- the floors in the same run: the same threads ending the same spans on a bare TracerProvider (no-op
  exporter), and a raw Arrow insert of the very rows the pipeline stored, read back from its file and
  inserted into a fresh file in batches of 8,192 with the exporter's connection settings (the final
  checkpoint at ``close()`` counted), as ``benchmarks/bench_exporter.py`` does;
- the ratio to the raw insert, beside the bare SDK's own ratio to it (no processor and nothing stored
  can do better than the bare SDK), and the ratio to the bare SDK.

    python benchmarks/bench_pipeline.py                          # 16 x 10,000, then 1 x 1,000,000
    python benchmarks/bench_pipeline.py --case 16x10000 --case 4x25000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from otel_llm_cost import DuckDBSpanExporter, LLMCostSpanProcessor, attribution
from otel_llm_cost.enrich.attribution import UserIdHasher
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import journaled as _journaled
from otel_llm_cost.storage import schema as _schema

LLM_ATTRIBUTES: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.response.finish_reasons": ("stop",),
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "server.address": "api.openai.com",
}
RAW_BATCH = 8192


class NoopExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _rss_kib() -> int:
    with contextlib.suppress(OSError, KeyError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@contextlib.contextmanager
def rss_sampler(samples: list[int], every_s: float = 0.25) -> Iterator[None]:
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every_s):
            samples.append(_rss_kib())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_threads(provider: TracerProvider, threads: int, spans: int) -> tuple[float, float]:
    """End ``threads`` x ``spans`` LLM spans; (wall seconds, app-thread CPU seconds)."""
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    cpu: list[float] = []
    barrier = threading.Barrier(threads + 1)

    def work(worker: int) -> None:
        barrier.wait()
        begin = time.thread_time()
        # Attributes built as the spans end, as an application would (~1 us each, in both pipelines):
        # a million prepared up front would dwarf the memory being measured.
        with attribution(feature="search", agent="planner", user_id=f"u-{worker}", workflow_id="wf-1"):
            for n in range(spans):
                attributes = {**LLM_ATTRIBUTES, "gen_ai.response.id": f"chatcmpl-{worker}-{n}"}
                tracer.start_span("chat gpt-4o", attributes=attributes).end()
        cpu.append(time.thread_time() - begin)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in workers:
        thread.join()
    return time.perf_counter() - start, sum(cpu)


def run_pipeline(path: Path, threads: int, spans: int, pricebook: PriceBook) -> dict[str, float]:
    provider = TracerProvider()
    provider.add_span_processor(
        LLMCostSpanProcessor(
            DuckDBSpanExporter(path, lock_timeout_s=30),
            pricing=pricebook,
            user_id_hasher=UserIdHasher(key=b"benchmark-key-0123456789"),
        )
    )
    samples: list[int] = []
    with rss_sampler(samples):
        start = time.perf_counter()
        ended_s, app_cpu = run_threads(provider, threads, spans)
        provider.shutdown()  # stores everything accepted, releases the file
        wall = time.perf_counter() - start
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute(f"SELECT count(*) FROM {_schema.CALLS_TABLE}").fetchone()
        stored = int(row[0]) if row else 0
    finally:
        con.close()
    return {
        "wall": wall,
        "ended_s": ended_s,
        "app_cpu": app_cpu,
        "stored": stored,
        "rss_median": statistics.median(samples) if samples else _rss_kib(),
        "rss_peak": max(samples) if samples else _rss_kib(),
    }


def run_bare(threads: int, spans: int) -> float:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(NoopExporter()))
    wall, _ = run_threads(provider, threads, spans)
    provider.shutdown()
    return wall


def run_raw(source: Path, target: Path) -> float:
    """Seconds to insert the rows stored in ``source`` into a fresh ``target`` from Arrow, untimed read."""
    con = duckdb.connect(str(source), read_only=True)
    try:
        table = con.sql(f"SELECT * FROM {_schema.CALLS_TABLE}").to_arrow_table()
    finally:
        con.close()
    batches = [table.slice(offset, RAW_BATCH) for offset in range(0, table.num_rows, RAW_BATCH)]
    raw = _storage.connect(target)
    for setting in _journaled._WRITER_SETTINGS:
        raw.execute(setting)
    insert = f"INSERT INTO {_schema.CALLS_TABLE} BY NAME SELECT * FROM {{rows}}"
    start = time.perf_counter()
    try:
        for batch in batches:
            _storage._execute_over(raw, batch, insert)
    finally:
        raw.close()
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", action="append", help="THREADSxSPANS (default 16x10000 and 1x1000000)")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare-SDK floor")
    args = parser.parse_args(argv)
    cases = [tuple(int(part) for part in case.split("x")) for case in args.case or ["16x10000", "1x1000000"]]
    pricebook = PriceBook.default()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs; default wiring")
    with tempfile.TemporaryDirectory() as tmp:
        for threads, spans in cases:
            total = threads * spans
            label = f"{threads} threads x {spans:,}"
            result = run_pipeline(Path(tmp) / f"p-{threads}.duckdb", threads, spans, pricebook)
            raw_s = run_raw(Path(tmp) / f"p-{threads}.duckdb", Path(tmp) / f"raw-{threads}.duckdb")
            stored = int(result["stored"])
            rate = total / result["wall"]
            raw_rate = stored / raw_s if raw_s else float("nan")
            print(f"{label}: {rate:,.0f} spans/s end to end ({result['wall']:.1f} s; threads done "
                  f"after {result['ended_s']:.1f} s), stored {stored:,}, lost {total - stored:,} "
                  f"({(total - stored) / total:.1%})")  # fmt: skip
            print(f"    app-thread CPU {result['app_cpu'] / total * 1e6:.1f} us/span; RSS median "
                  f"{result['rss_median'] / 1024:.0f} MiB, peak {result['rss_peak'] / 1024:.0f} MiB "
                  f"(peak/median {result['rss_peak'] / max(result['rss_median'], 1):.2f})")  # fmt: skip
            floors = f"    floors: raw Arrow insert of the stored rows {raw_rate:,.0f} rows/s"
            ratios = f"    ratio to the raw insert {rate / raw_rate:.2f}"
            if not args.no_bare:
                bare_rate = total / run_bare(threads, spans)
                floors += f"; bare SDK, same threads and spans {bare_rate:,.0f} spans/s"
                # The bare SDK alone, with nothing stored, bounds the first ratio from above.
                ratios += f" (bare SDK alone: {bare_rate / raw_rate:.2f})"
                ratios += f"; to the bare SDK {rate / bare_rate:.2f}"
            print(floors)
            print(f"{ratios}   load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
