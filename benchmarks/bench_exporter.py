"""End-to-end DuckDBSpanExporter throughput against a raw DuckDB insert of the same rows.

For each batch size: build ``--spans`` enriched ReadableSpans (as LLMCostSpanProcessor leaves them) up
front, untimed, then stream them through ``DuckDBSpanExporter.export`` in batches the
BatchSpanProcessor would make, into a fresh file, and time every ``export`` call plus the final
``shutdown()`` (which waits for the writer thread to commit everything and checkpoints). Building the
spans first matters: the exporter's writer thread commits in the background, and any untimed work
between two exports would hide its cost. Then, into another fresh file, insert the very same rows from
Arrow tables prepared beforehand (untimed ``build_rows``): one INSERT per batch on one connection with
the exporter's connection settings, no idempotency check, paying its final checkpoint at ``close()``.
The pre-built spans are frozen out of the garbage collector (``gc.freeze()``): an application never
holds a million spans, and rescanning them would bill both sides for the benchmark's own memory.

The raw insert stores the rows as durably as the exporter (its final checkpoint counts) but builds no
rows: building them (``build_rows``, Python) is most of the exporter's CPU, so the time of that build is
printed too, and the ratio of building + raw insert run one after the other (what the exporter does,
minus its journal, duplicate check, file releases and the overlap of its two threads), and the floor of
any build in Python over ReadableSpans (``build_floor``).

Figures are wall clock and process CPU time (all threads, DuckDB's included): on a shared machine the
CPU figure is the steadier one. RSS is printed every 10% of the stream, with the phase's peak (reset at
its start): compare them with the RSS once the spans are built, which they include.

    /work/venv/bin/python benchmarks/bench_exporter.py                 # 1M spans, batches of 512 and 8192
    /work/venv/bin/python benchmarks/bench_exporter.py --spans 100000 --batch 512
    /work/venv/bin/python benchmarks/bench_exporter.py --spans 200000 --stages   # CPU of each step
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import operator
import os
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import journaled as exporter_module
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.columns import CALLS_ARROW_SCHEMA
from otel_llm_cost.storage.commit import Committer
from otel_llm_cost.storage.convert import BatchConverter
from otel_llm_cost.storage.exporter import DuckDBSpanExporter
from otel_llm_cost.storage.journal import Spool
from otel_llm_cost.storage.lease import WriterLease
from otel_llm_cost.storage.rows import build_rows

RESOURCE = Resource.create({sc.SERVICE_NAME: "bench-service", "deployment.environment": "prod"})
SCOPES = [
    InstrumentationScope("opentelemetry.instrumentation.openai_v2"),
    InstrumentationScope("openinference"),
]
MODELS = [
    ("openai", "gpt-4o-mini", 0.15, 0.6),
    ("anthropic", "claude-sonnet-4-0", 3.0, 15.0),
    ("openai", "gpt-4o", 2.5, 10),
]
START_NS = 1_736_942_400_000_000_000


def _status(path: str = "/proc/self/status") -> str:
    try:
        fields = dict(line.split(":", 1) for line in Path(path).read_text().splitlines() if ":" in line)
    except OSError:
        return "rss n/a"
    return f"rss {fields['VmRSS'].strip()}, peak {fields['VmHWM'].strip()}"


def make_spans(n: int, offset: int, rng: random.Random) -> list[ReadableSpan]:
    """``n`` enriched LLM spans with realistic, varied attributes, in start-time order."""
    spans = []
    for i in range(offset, offset + n):
        provider, model, in_price, out_price = MODELS[i % len(MODELS)]
        input_tokens = rng.randint(200, 20_000)
        output_tokens = rng.randint(20, 2_000)
        cache_read = input_tokens // 2 if i % 3 == 0 else 0
        cost_in = (input_tokens - cache_read) * in_price / 1e6
        cost_cache = cache_read * in_price / 10 / 1e6
        cost_out = output_tokens * out_price / 1e6
        total = round(cost_in + cost_cache + cost_out, 12)
        attributes = {
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_PROVIDER_NAME: provider,
            sc.GEN_AI_REQUEST_MODEL: model,
            sc.GEN_AI_RESPONSE_MODEL: model,
            sc.GEN_AI_RESPONSE_ID: f"resp_{i:012d}",
            sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
            "gen_ai.request.max_tokens": 4096,
            "gen_ai.request.temperature": 0.2,
            "server.address": f"api.{provider}.com",
            sc.LLM_MODEL: model,
            sc.LLM_PROVIDER_NAME: provider,
            sc.LLM_OPERATION: "chat",
            sc.LLM_CONVENTION: "gen_ai",
            sc.LLM_TOKENS_INPUT: input_tokens,
            sc.LLM_TOKENS_OUTPUT: output_tokens,
            sc.LLM_TOKENS_TOTAL: input_tokens + output_tokens,
            sc.LLM_TOKENS_CACHE_READ: cache_read,
            sc.LLM_TOKENS_CACHE_WRITE: 0,
            sc.LLM_TOKENS_REASONING: 0,
            sc.LLM_COST_USD: total,
            sc.GEN_AI_USAGE_COST_MIRROR: total,
            sc.LLM_COST_INPUT_USD: round(cost_in, 12),
            sc.LLM_COST_CACHE_READ_USD: round(cost_cache, 12),
            sc.LLM_COST_CACHE_WRITE_USD: 0.0,
            sc.LLM_COST_OUTPUT_USD: round(cost_out, 12),
            sc.LLM_COST_STATUS: "priced",
            sc.LLM_COST_SOURCE: "genai-prices 0.2.3",
            sc.LLM_COST_MODEL_ID: model,
            sc.LLM_COST_BILLABLE: True,
            sc.LLM_CACHE_HIT: cache_read > 0,
            sc.LLM_CACHE_TOKENS_SAVED: cache_read,
            sc.COST_FEATURE: f"feature-{i % 7}",
            sc.COST_USER_ID: f"h:{i % 5000:032x}",
            sc.COST_ORG_ID: f"org-{i % 50}",
            sc.COST_SESSION_ID: f"s-{i // 20}",
            sc.COST_WORKFLOW_ID: f"wf-{i // 100}",
            sc.COST_STEP: ("plan", "extract", "answer")[i % 3],
            "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"..."}]}]',
        }
        start = START_NS + i * 1_000_000
        spans.append(
            ReadableSpan(
                name=f"chat {model}",
                context=SpanContext(rng.getrandbits(128), rng.getrandbits(64), False, TraceFlags(1)),
                parent=None,
                resource=RESOURCE,
                attributes=attributes,
                kind=SpanKind.CLIENT,
                status=Status(StatusCode.UNSET),
                start_time=start,
                end_time=start + rng.randint(200, 9_000) * 1_000_000,
                instrumentation_scope=SCOPES[i % 2],
            )
        )
    return spans


def batches(total: int, size: int, seed: int) -> list[list[ReadableSpan]]:
    rng = random.Random(seed)
    return [make_spans(min(size, total - offset), offset, rng) for offset in range(0, total, size)]


class Clock:
    """Wall and process-CPU seconds accumulated over the timed sections only."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu


def _reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


class Stages:
    """``--stages``: the CPU time (of the thread running it) and count of each step of the exporter,
    and why each release of the file happened, by wrapping the steps' methods for this run."""

    STEPS: Final = (
        ("build rows", BatchConverter, "convert"),
        ("journal", Spool, "write"),
        ("inserts", Committer, "commit_group"),
        ("releases", WriterLease, "release"),
        ("acquire (opening)", WriterLease, "acquire"),
    )

    def __init__(self) -> None:
        self.cpu = dict.fromkeys((name for name, _, _ in self.STEPS), 0.0)
        self.calls = dict.fromkeys(self.cpu, 0)
        self.reasons: list[str] = []
        for name, owner, method in self.STEPS:
            setattr(owner, method, self._timed(name, getattr(owner, method)))
        due = WriterLease.due

        def why(lease: WriterLease, now: float) -> bool:
            if due(lease, now):
                timer = lease._timer
                self.reasons.append(
                    "idle" if timer.idle_left(now) <= 0 else "held" if timer.held_too_long(now) else "reader"
                )
                return True
            return False

        WriterLease.due = why  # type: ignore[method-assign]

    def _timed(self, name: str, method: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.cpu[name] += time.thread_time() - cpu
                self.calls[name] += 1

        return timed

    def report(self, spans: int) -> str:
        steps = ", ".join(
            f"{name} {self.cpu[name] / spans * 1e6:.1f} us ({self.calls[name]}x)" for name in self.cpu
        )
        reasons = ", ".join(f"{self.reasons.count(why)} {why}" for why in sorted(set(self.reasons)))
        return f"  exporter stages, CPU per span: {steps}; releases due: {reasons or 'none'}"


def run_exporter(path: Path, stream: list[list[ReadableSpan]]) -> Clock:
    _reset_peak_rss()
    exporter = DuckDBSpanExporter(path, lock_timeout_s=30)
    clock = Clock()
    total = sum(map(len, stream))
    done = 0
    report_every = max(total // 10, 1)
    next_report = report_every
    for batch in stream:
        with clock.timed():
            exporter.export(batch)
        done += len(batch)
        if done >= next_report:
            print(f"    exporter {done:>9,} spans accepted  {done / clock.wall:>9,.0f} spans/s  {_status()}")
            next_report += report_every
    accepting = clock.wall
    with clock.timed():
        exporter.shutdown()  # waits for every batch to be committed, releases (checkpoints) the file
    drain = clock.wall - accepting
    print(f"    export() calls {accepting:.1f} s, then shutdown() {drain:.1f} s  {_status()}")
    return clock


def run_raw(path: Path, tables: list[Any]) -> Clock:
    _reset_peak_rss()
    clock = Clock()
    con = _storage.connect(path)
    for setting in exporter_module._WRITER_SETTINGS:  # the exporter's connection settings
        con.execute(setting)
    insert = f"INSERT INTO {_schema.CALLS_TABLE} BY NAME SELECT * FROM {{rows}}"
    try:
        for prepared in tables:
            with clock.timed():  # the exporter's statement, without its duplicate check
                _storage._execute_over(con, prepared, insert)
    finally:
        with clock.timed():
            con.close()  # the final checkpoint counts, as it does for the exporter's shutdown()
    print(f"    raw done  {_status()}")
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument(
        "--batch", type=int, action="append", help="batch size (repeatable; default 512 and 8192)"
    )
    parser.add_argument("--stages", action="store_true", help="print the CPU of each exporter step")
    args = parser.parse_args()
    sizes = args.batch or [512, 8192]
    print(f"{args.spans:,} enriched LLM spans per run; load average {_load()}; {_status()}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            print(f"batch size {size}:")
            stream = batches(args.spans, size, seed=size)
            gc.freeze()
            print(f"    {args.spans:,} spans built  {_status()}")
            stages = Stages() if args.stages else None
            e2e = run_exporter(Path(tmp) / f"exporter-{size}.duckdb", stream)
            if stages is not None:
                print(stages.report(args.spans))
            build = Clock()
            with build.timed():  # what export() does to each batch before journaling it
                tables = [
                    build_rows(batch, enrich=None, capture_content=False, store_all_spans=False).calls
                    for batch in stream
                ]
            floor = build_floor(stream)
            del stream
            gc.unfreeze()
            gc.collect()
            raw = run_raw(Path(tmp) / f"raw-{size}.duckdb", tables)
            del tables
            print(
                f"  end-to-end export {args.spans / e2e.wall:>9,.0f} spans/s ({e2e.wall:.1f} s wall, "
                f"{e2e.cpu / args.spans * 1e6:.1f} us CPU/span)   "
                f"raw Arrow insert {args.spans / raw.wall:>9,.0f} rows/s ({raw.wall:.1f} s wall, "
                f"{raw.cpu / args.spans * 1e6:.1f} us CPU/row)"
            )
            print(
                f"  ratio {raw.wall / e2e.wall:.2f} wall, {raw.cpu / e2e.cpu:.2f} CPU   "
                f"load average {_load()}"
            )
            print(
                f"  of which building the rows (build_rows alone, untimed above) "
                f"{build.cpu / args.spans * 1e6:.1f} us CPU/span; building + raw insert, one after the "
                f"other: ratio {(raw.wall + build.wall) / e2e.wall:.2f} wall, "
                f"{(raw.cpu + build.cpu) / e2e.cpu:.2f} CPU"
            )
            print(
                f"  floor of building them in Python (each span's attributes, one gather of the column "
                f"names, an Arrow array per column) {floor.cpu / args.spans * 1e6:.1f} us CPU/span"
            )


def build_floor(stream: list[list[ReadableSpan]]) -> Clock:
    """What no ``build_rows`` in Python can undercut: read each span's attributes, gather the values of
    the names that feed columns in one ``itemgetter`` call per span, and convert each column to Arrow
    (span ids, times, status, the JSON column and every check left out)."""
    clock = Clock()
    keys = stream[0][0].attributes or {}
    columns = [
        (column, next(name for name in names if name in keys))
        for column, names in _schema.COLUMN_ATTRIBUTES
        if any(name in keys for name in names)
    ]
    pick = operator.itemgetter(*(name for _, name in columns))
    types = [CALLS_ARROW_SCHEMA.field(column).type for column, _ in columns]
    types = [pa.float64() if pa.types.is_decimal(arrow_type) else arrow_type for arrow_type in types]
    with clock.timed():
        for batch in stream:
            picked = zip(*map(pick, [span.attributes for span in batch]), strict=True)
            for values, arrow_type in zip(picked, types, strict=True):
                pa.array(values, arrow_type)
    return clock


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
