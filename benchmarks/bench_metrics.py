"""Added cost of recording metrics per span: the processor with a MeterProvider against metrics off.

Three pipelines in the same run, each exporting through SimpleSpanProcessor to a no-op exporter:
a bare TracerProvider (the floor), LLMCostSpanProcessor with ``metrics=False``, and the same with
an SDK MeterProvider (an InMemoryMetricReader). They run in alternating chunks of spans (the two
processor pipelines in swapped order every other chunk) so they see the same conditions; time is
this process's CPU time (one thread: the no-op export and the in-memory reader start none), each
figure the median over chunks, and the added cost the median of each chunk's own difference. LLM
spans are tagged by an ``attribution`` block and spread over a few models and features.

The span thread only queues each call's attribute values and figures; the collecting thread finds
their series, adds the calls up (the counters are observed when a reader collects) and records the
histogram's two measurements per call. That deferred part is timed too (one ``collect()`` after each
chunk, divided by the chunk's spans). On a loaded machine the pipelines' difference moves by up to
a microsecond from run to run, so ``CostMetrics.record`` is also timed where the processor calls it
(less an empty call timed there), and alone, on the calls the processor enriched, beside an empty
call. Last, the memory the queue holds per call until a collection (what one collection frees).

    python benchmarks/bench_metrics.py [--spans 60000] [--chunk 2000]

Targets: <= 3 us added per LLM span on the span thread, nothing per non-LLM span.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

from bench_processor import HTTP_ATTRIBUTES, LLM_ATTRIBUTES, NoopExporter, per_span_us
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from otel_llm_cost.enrich.attribution import UserIdHasher
from otel_llm_cost.enrich.metrics import CostMetrics
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.pricing import PriceBook

MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini")


def provider(pricebook: PriceBook | None, meter_provider: MeterProvider | None) -> TracerProvider:
    tracer_provider = TracerProvider()
    if pricebook is None:
        tracer_provider.add_span_processor(SimpleSpanProcessor(NoopExporter()))
        return tracer_provider
    tracer_provider.add_span_processor(
        LLMCostSpanProcessor(
            SimpleSpanProcessor(NoopExporter()),
            pricing=pricebook,
            user_id_hasher=UserIdHasher(key=b"benchmark-key-0123456789"),
            meter_provider=meter_provider,
            metrics=meter_provider is not None,
        )
    )
    return tracer_provider


def llm_spans(count: int) -> list[dict[str, Any]]:
    return [
        {
            **LLM_ATTRIBUTES,
            "gen_ai.request.model": MODELS[i % len(MODELS)],
            "gen_ai.response.model": MODELS[i % len(MODELS)],
            "gen_ai.response.id": f"chatcmpl-{i}",
            "gen_ai.usage.input_tokens": 1000 + i % 500,
        }
        for i in range(count)
    ]


class CapturingExporter(NoopExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def recorder_alone_us(
    pricebook: PriceBook, spans: list[dict[str, Any]], rounds: int = 5
) -> tuple[float, float]:
    """Best us per call of ``CostMetrics.record`` on real enriched calls, and of an empty call (floor).

    The enriched spans' attributes hold everything the processor hands the recorder (its enrichment
    and the span's own tags), so they stand in for both mappings.
    """
    exporter = CapturingExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(
        LLMCostSpanProcessor(SimpleSpanProcessor(exporter), pricing=pricebook, metrics=False)
    )
    per_span_us(tracer_provider, spans, tagged=True)
    calls = [(span, dict(span.attributes or {})) for span in exporter.spans]
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    record = CostMetrics(meter_provider.get_meter("bench")).record

    def nothing(span: ReadableSpan, attributes: Any, extra: Any) -> None:
        pass

    best: dict[Any, float] = {}
    for _ in range(rounds):
        for func in (nothing, record):
            begin = time.process_time_ns()
            for span, attributes in calls:
                func(span, attributes, attributes)
            elapsed = (time.process_time_ns() - begin) / len(calls) / 1000
            best[func] = min(best.get(func, elapsed), elapsed)
            reader.collect()
    meter_provider.shutdown()
    return best[record], best[nothing]


def record_in_pipeline_us(
    pricebook: PriceBook,
    meter_provider: MeterProvider,
    reader: InMemoryMetricReader,
    spans: list[dict[str, Any]],
) -> float:
    """Median us per call of ``CostMetrics.record`` timed where the processor calls it.

    Each call is timed with the thread's CPU clock, less the same clock around an empty call made in
    the same place by a second pipeline (alternating chunks): the recorder's own cost with the caches
    as the rest of the span path leaves them. On a loaded machine the pipelines' difference moves by
    up to a microsecond from run to run; this moves by a few hundredths.
    """
    clock = time.thread_time_ns
    pipelines = [provider(pricebook, meter_provider), provider(pricebook, meter_provider)]
    totals = [0, 0]
    for index, tracer_provider in enumerate(pipelines):
        # The recorder the processor holds (private: a benchmark may reach in to time it in place).
        recorder = tracer_provider._active_span_processor._span_processors[0]._metrics
        inner = recorder.record if index == 0 else (lambda span, attributes, extra: None)

        def timed(span: Any, attributes: Any, extra: Any, inner: Any = inner, index: int = index) -> None:
            begin = clock()
            inner(span, attributes, extra)
            totals[index] += clock() - begin

        recorder.record = timed
    added: list[float] = []
    for offset in range(0, len(spans), 2_000):
        part = spans[offset : offset + 2_000]
        before = list(totals)
        for tracer_provider in pipelines:
            per_span_us(tracer_provider, part, tagged=True)
        reader.collect()
        added.append(((totals[0] - before[0]) - (totals[1] - before[1])) / len(part) / 1000)
    return statistics.median(added)


def queued_bytes_per_call(pricebook: PriceBook, spans: list[dict[str, Any]]) -> float:
    """Memory the queue holds per call until a collection: what one collection frees, per call."""
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    tracer_provider = provider(pricebook, meter_provider)
    per_span_us(tracer_provider, spans[:100], tagged=True)
    reader.collect()  # the series exist and the SDK's storage is warm before measuring
    tracemalloc.start()
    try:
        per_span_us(tracer_provider, spans, tagged=True)
        gc.collect()
        queued = tracemalloc.get_traced_memory()[0]
        reader.collect()
        gc.collect()
        return (queued - tracemalloc.get_traced_memory()[0]) / len(spans)
    finally:
        tracemalloc.stop()
        meter_provider.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--spans", type=int, default=60_000)
    parser.add_argument("--chunk", type=int, default=2_000)
    args = parser.parse_args()

    pricebook = PriceBook()
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    pipelines = {
        "floor (bare TracerProvider)": provider(None, None),
        "processor, metrics off": provider(pricebook, None),
        "processor, metrics on": provider(pricebook, meter_provider),
    }
    for kind, spans in (("LLM", llm_spans(args.spans)), ("non-LLM", [HTTP_ATTRIBUTES] * args.spans)):
        figures: dict[str, list[float]] = {name: [] for name in pipelines}
        collect_us: list[float] = []
        for index, offset in enumerate(range(0, len(spans), args.chunk)):
            part = spans[offset : offset + args.chunk]
            # The floor runs first, right after the collection; the two processor pipelines swap
            # places every other chunk. A fixed order charged the pipeline in the last slot, or in
            # the one after the collection, 1-3 us/span more (measured with the recorder a no-op).
            floor, off, on = pipelines.items()
            for name, tracer_provider in (floor, on, off) if index % 2 else (floor, off, on):
                figures[name].append(per_span_us(tracer_provider, part, tagged=True))
            begin = time.process_time_ns()
            reader.collect()
            collect_us.append((time.process_time_ns() - begin) / len(part) / 1000)
        medians = {name: statistics.median(values) for name, values in figures.items()}
        print(f"{kind} spans ({args.spans:,}, chunks of {args.chunk:,}), CPU us per span:")
        for name, value in medians.items():
            print(f"  {name:<30} {value:8.2f}")
        # The median of each chunk's own difference: both pipelines ran that chunk back to back, so
        # a load change on the machine between chunks cancels out.
        added = statistics.median(
            on - off
            for on, off in zip(
                figures["processor, metrics on"], figures["processor, metrics off"], strict=True
            )
        )
        print(f"  {'added by metrics (span thread)':<30} {added:8.2f}")
        print(f"  {'collection, per span (reader)':<30} {statistics.median(collect_us):8.2f}")
    in_pipeline_us = record_in_pipeline_us(
        pricebook, meter_provider, reader, llm_spans(min(args.spans, 40_000))
    )
    print(
        "CostMetrics.record timed where the processor calls it (less an empty call there), CPU us per call:"
    )
    print(f"  {'record, in the pipeline':<30} {in_pipeline_us:8.2f}")
    record_us, floor_us = recorder_alone_us(pricebook, llm_spans(min(args.spans, 10_000)))
    print("CostMetrics.record alone, on the same calls' enriched attributes (best of 5), CPU us per call:")
    print(f"  {'empty call (floor)':<30} {floor_us:8.2f}")
    print(f"  {'record':<30} {record_us:8.2f}")
    queued = queued_bytes_per_call(pricebook, llm_spans(min(args.spans, 20_000)))
    print(f"Queued until a collection: {queued:.0f} bytes per LLM call")
    meter_provider.shutdown()


if __name__ == "__main__":
    main()
