"""Spans/s through the OTLP receiver from concurrent exporter processes, beside its floor.

Both paths store the same LLM spans through LLMCostSpanProcessor -> BatchSpanProcessor ->
DuckDBSpanExporter into a fresh DuckDB file, and the clock stops only once every row is committed
(receiver stopped, processor shut down):

- receiver: ``--workers`` processes each build ``--spans`` finished spans, wait for a start signal, then
  export them with the SDK's ``OTLPSpanExporter`` (HTTP/protobuf) in batches of 512, as the SDK's
  BatchSpanProcessor would; one receiver decodes, enriches and stores them;
- floor: the same senders against a receiver that only decodes the protobuf and inserts the token
  columns (ids, model, input/output tokens) with one Arrow insert per request: the least any receiver
  storing these calls must do, measured in the same run;
- in-process: the same number of spans, built beforehand in this process, go through ``on_end`` of
  ``LLMCostSpanProcessor(BatchSpanProcessor(DuckDBSpanExporter))``, as an application exporting
  directly to DuckDB would.

Span creation is excluded from every clock. The CPU time of the receiver process is printed too: on a
machine with fewer cores than exporter processes, the senders' own OTLP encoding competes with the
receiver for CPU, and the wall-clock ratio measures that as well. Run::

    python benchmarks/bench_collector.py [--workers 4] [--spans 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import resource
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import uvicorn
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from otel_llm_cost import LLMCostSpanProcessor
from otel_llm_cost.collector.heap import settle_heap
from otel_llm_cost.collector.otlp import WireFormat, parse_request
from otel_llm_cost.collector.received import decode_for_storage
from otel_llm_cost.collector.receiver import OTLPReceiver, build_processor
from otel_llm_cost.enrich.llm_call import LLMCallEnricher
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.exporter import DuckDBSpanExporter
from otel_llm_cost.storage.rows import build_rows

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


def run_clients(url: str, workers: int, count: int, stop: Callable[[], None]) -> tuple[float, float]:
    """Wall and process CPU seconds from the start signal until ``stop()`` returned."""
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, url, str(w), str(count)],
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
    stop()
    return time.perf_counter() - started, time.process_time() - cpu_started


def bench_receiver(db: Path, workers: int, count: int) -> tuple[float, float, int]:
    processor, pipeline = build_processor(db)
    receiver = OTLPReceiver(processor, port=0, pipeline=pipeline).start()
    with serve_heap():
        # stop() drains requests, flushes the pipeline, commits the last rows.
        elapsed, cpu = run_clients(receiver.url, workers, count, receiver.stop)
    print(f"  receiver stats: {receiver.stats}")
    return elapsed, cpu, stored_rows(db)


@contextlib.contextmanager
def serve_heap() -> Iterator[None]:
    """The garbage-collector settings ``otel-llm-cost serve`` runs with, then this process's again."""
    thresholds = gc.get_threshold()
    settle_heap()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


FLOOR_KEYS = frozenset({"gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"})


def _floor_rows(body: bytes) -> pa.Table:
    request = ExportTraceServiceRequest.FromString(body)
    span_ids: list[str] = []
    trace_ids: list[str] = []
    models: list[Any] = []
    inputs: list[Any] = []
    outputs: list[Any] = []
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                span_ids.append(span.span_id.hex())
                trace_ids.append(span.trace_id.hex())
                found = {kv.key: kv.value for kv in span.attributes if kv.key in FLOOR_KEYS}
                model = found.get("gen_ai.request.model")
                models.append(model.string_value if model is not None else None)
                tokens = found.get("gen_ai.usage.input_tokens")
                inputs.append(tokens.int_value if tokens is not None else None)
                tokens = found.get("gen_ai.usage.output_tokens")
                outputs.append(tokens.int_value if tokens is not None else None)
    return pa.table(
        {
            "span_id": span_ids,
            "trace_id": trace_ids,
            "request_model": models,
            "input_tokens": pa.array(inputs, pa.int64()),
            "output_tokens": pa.array(outputs, pa.int64()),
        }
    )


def bench_floor(db: Path, workers: int, count: int) -> tuple[float, float, int]:
    """A decode-and-insert receiver on the same HTTP stack: protobuf -> token columns -> one Arrow insert."""
    connection = duckdb.connect(str(db))
    connection.execute(
        "CREATE TABLE llm_calls (span_id VARCHAR, trace_id VARCHAR, request_model VARCHAR, "
        "input_tokens BIGINT, output_tokens BIGINT)"
    )
    lock = threading.Lock()

    def insert(body: bytes) -> None:
        rows = _floor_rows(body)
        with lock:
            connection.register("batch", rows)
            connection.execute("INSERT INTO llm_calls SELECT * FROM batch")
            connection.unregister("batch")

    async def traces(request: Request) -> Response:
        await run_in_threadpool(insert, await request.body())
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, access_log=False, log_config=None, lifespan="off"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join()

    url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1/traces"
    elapsed, cpu = run_clients(url, workers, count, stop)
    rows = connection.execute("SELECT count(*) FROM llm_calls").fetchone()
    connection.close()
    return elapsed, cpu, int(rows[0]) if rows else 0


def bench_in_process(db: Path, workers: int, count: int) -> tuple[float, int]:
    spans = [span for w in range(workers) for span in make_spans(w, count)]
    processor = LLMCostSpanProcessor(
        BatchSpanProcessor(
            DuckDBSpanExporter(db), max_queue_size=max(len(spans), 8192), max_export_batch_size=8192
        )
    )
    started = time.perf_counter()
    cpu_started = time.process_time()
    for span in spans:
        processor.on_end(span)
    processor.shutdown()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(f"  in-process CPU: {cpu:.2f} s = {cpu / len(spans) * 1e6:.0f} us/span")
    return elapsed, stored_rows(db)


def bench_stages(workers: int, count: int, db: Path) -> None:
    """CPU per span of each stage of the receiver's work, on one thread (no HTTP, no senders)."""
    spans = [span for w in range(workers) for span in make_spans(w, count)]
    bodies = [encode_spans(spans[i : i + 512]).SerializeToString() for i in range(0, len(spans), 512)]
    processor, pipeline = build_processor(db)
    enricher = LLMCallEnricher(pricing=PriceBook.default())
    clock = time.process_time
    with serve_heap():
        started = clock()
        requests = [parse_request(body, WireFormat.PROTOBUF) for body in bodies]
        parsed = clock()
        batches = [decode_for_storage(request, all_spans=False).spans for request in requests]
        decoded = clock()
        extras = [enricher.enrich(batch) for batch in batches]
        enriched = clock()
        for batch, extra in zip(batches, extras, strict=True):
            build_rows(batch, enrich=lambda _, e=extra: e, capture_content=False, store_all_spans=False)
        built = clock()
        for batch in batches:  # enriched again by the pipeline's own enricher: a fresh guard
            pipeline.store(batch)
        processor.shutdown()
        stored = clock()
    per_span = 1e6 / len(spans)
    print(f"stages on one thread, CPU per span ({len(spans)} LLM spans, requests of 512):")
    for name, cpu in (
        ("parse the protobuf", parsed - started),
        ("decode for storage", decoded - parsed),
        ("enrich (normalise, price, double-count guard)", enriched - decoded),
        ("Arrow rows", built - enriched),
        ("store: enrich + rows + journal + commit", stored - built),
    ):
        print(f"  {name:<48} {cpu * per_span:6.1f} us")


def report(name: str, elapsed: float, cpu: float, rows: int, total: int) -> None:
    print(
        f"{name:<10} {rows} rows in {elapsed:.2f} s = {total / elapsed:>7,.0f} spans/s; "
        f"receiver process CPU {cpu:.2f} s = {cpu / total * 1e6:.0f} us/span"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--spans", type=int, default=20_000, help="spans per worker")
    parser.add_argument("--stages", action="store_true", help="only the CPU of each stage, on one thread")
    args = parser.parse_args()
    total = args.workers * args.spans
    if args.stages:
        with tempfile.TemporaryDirectory() as tmp:
            bench_stages(args.workers, args.spans, Path(tmp) / "stages.duckdb")
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.workers} exporter processes x {args.spans} LLM spans = {total} spans")
        receiver = bench_receiver(Path(tmp) / "receiver.duckdb", args.workers, args.spans)
        report("receiver:", *receiver, total)
        floor = bench_floor(Path(tmp) / "floor.duckdb", args.workers, args.spans)
        report("floor:", *floor, total)
        local_s, local_rows = bench_in_process(Path(tmp) / "local.duckdb", args.workers, args.spans)
        print(f"in-process: {local_rows} rows in {local_s:.2f} s = {total / local_s:,.0f} spans/s")
    print(f"sender processes' CPU (span creation, OTLP encoding, HTTP; all runs): {children_cpu_s():.2f} s")
    assert receiver[2] == floor[2] == local_rows == total, "every span must be stored exactly once"
    print(
        f"receiver / floor: throughput {floor[0] / receiver[0]:.2f}x, "
        f"CPU per span {receiver[1] / floor[1]:.2f}x the floor's"
    )
    print(f"receiver / in-process throughput: {local_s / receiver[0]:.2f}")


if __name__ == "__main__":
    main()
