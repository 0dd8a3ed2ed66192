"""Spans/s through the OTLP receiver from concurrent exporter processes, against in-process export.

Both paths store the same LLM spans through LLMCostSpanProcessor -> BatchSpanProcessor ->
DuckDBSpanExporter into a fresh DuckDB file, and the clock stops only once every row is committed
(receiver stopped, processor shut down):

- receiver: ``--workers`` processes each build ``--spans`` finished spans, wait for a start signal, then
  export them with the SDK's ``OTLPSpanExporter`` (HTTP/protobuf) in batches of 512, as the SDK's
  BatchSpanProcessor would; one receiver decodes, enriches and stores them;
- in-process: the same number of spans, built beforehand in this process, go through ``on_end`` of the
  same pipeline (same batch sizes), as an application exporting directly to DuckDB would.

Span creation is excluded from both clocks. The CPU time of the receiver process is printed too: on a
machine with fewer cores than exporter processes, the senders' own OTLP encoding competes with the
receiver for CPU, and the wall-clock ratio measures that as well. Run::

    /work/venv/bin/python benchmarks/bench_collector.py [--workers 4] [--spans 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm_cost.collector.receiver import OTLPReceiver, build_processor
from otel_llm_cost.storage import connect as _storage

MAKE_SPANS = textwrap.dedent(
    """
    def make_spans(worker, count):
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource({"service.name": f"worker-{worker}"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
        models = ("gpt-4o-mini", "gpt-4o", "claude-sonnet-4-0")
        for i in range(count):
            attributes = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic" if i % 3 == 2 else "openai",
                "gen_ai.request.model": models[i % 3],
                "gen_ai.response.id": f"resp-{worker}-{i}",
                "gen_ai.usage.input_tokens": 800 + i % 500,
                "gen_ai.usage.output_tokens": 100 + i % 300,
                "gen_ai.usage.cache_read.input_tokens": (i % 4) * 100,
                "cost.feature": f"feature-{i % 7}",
                "cost.org_id": f"org-{i % 11}",
                "server.address": "api.example.com",
            }
            with tracer.start_as_current_span("chat " + models[i % 3], attributes=attributes):
                pass
        provider.shutdown()
        return list(exporter.get_finished_spans())
    """
)

CLIENT = MAKE_SPANS + textwrap.dedent(
    """
    import sys
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    url, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    spans = make_spans(worker, count)
    exporter = OTLPSpanExporter(endpoint=url, timeout=60)
    print("ready", flush=True)
    sys.stdin.readline()
    failed = 0
    for start in range(0, len(spans), 512):
        if exporter.export(spans[start : start + 512]) is not SpanExportResult.SUCCESS:
            failed += 1
    exporter.shutdown()
    print(f"done failed_batches={failed}", flush=True)
    """
)


def make_spans(worker: int, count: int) -> list[ReadableSpan]:
    namespace: dict[str, object] = {
        "Resource": Resource,
        "TracerProvider": TracerProvider,
        "SimpleSpanProcessor": SimpleSpanProcessor,
        "InMemorySpanExporter": InMemorySpanExporter,
    }
    exec(MAKE_SPANS, namespace)  # noqa: S102 - the same generator the client processes run
    spans: list[ReadableSpan] = namespace["make_spans"](worker, count)  # type: ignore[operator]
    return spans


def stored_rows(db: Path) -> int:
    with contextlib.closing(_storage.connect(db, read_only=True)) as connection:
        row = connection.execute("SELECT count(*) FROM llm_calls").fetchone()
    return int(row[0]) if row else 0


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_receiver(db: Path, workers: int, count: int) -> tuple[float, int]:
    processor, pipeline = build_processor(db)
    receiver = OTLPReceiver(processor, port=0, pipeline=pipeline).start()
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, receiver.url, str(w), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    for client in clients:
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    cpu_started = time.process_time()
    for client in clients:
        assert client.stdin is not None
        client.stdin.write("go\n")
        client.stdin.flush()
    for client in clients:
        out, _ = client.communicate(timeout=600)
        assert "failed_batches=0" in out, out
    receiver.stop()  # drains requests, flushes the batch processor, commits the last rows
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    total = workers * count
    print(f"  receiver stats: {receiver.stats}")
    print(
        f"  receiver process CPU: {cpu:.2f} s = {cpu / total * 1e6:.0f} us/span; exporter processes "
        f"(span creation + OTLP encoding + HTTP, whole lifetime): {children_cpu_s():.2f} s"
    )
    return elapsed, stored_rows(db)


def bench_in_process(db: Path, workers: int, count: int) -> tuple[float, int]:
    spans = [span for w in range(workers) for span in make_spans(w, count)]
    processor, _ = build_processor(db)
    started = time.perf_counter()
    cpu_started = time.process_time()
    for span in spans:
        processor.on_end(span)
    processor.shutdown()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(f"  in-process CPU: {cpu:.2f} s = {cpu / len(spans) * 1e6:.0f} us/span")
    return elapsed, stored_rows(db)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--spans", type=int, default=20_000, help="spans per worker")
    args = parser.parse_args()
    total = args.workers * args.spans
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.workers} exporter processes x {args.spans} LLM spans = {total} spans")
        receiver_s, receiver_rows = bench_receiver(Path(tmp) / "receiver.duckdb", args.workers, args.spans)
        print(f"receiver:   {receiver_rows} rows in {receiver_s:.2f} s = {total / receiver_s:,.0f} spans/s")
        local_s, local_rows = bench_in_process(Path(tmp) / "local.duckdb", args.workers, args.spans)
        print(f"in-process: {local_rows} rows in {local_s:.2f} s = {total / local_s:,.0f} spans/s")
    assert receiver_rows == local_rows == total, "every span must be stored exactly once"
    ratio = local_s / receiver_s
    print(f"receiver / in-process throughput: {ratio:.2f} (wall clock, both ending with every row committed)")


if __name__ == "__main__":
    main()
