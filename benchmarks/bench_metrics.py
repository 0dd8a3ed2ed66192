"""Added cost of recording metrics per span: the processor with a MeterProvider against metrics off.

Three pipelines in the same run, each exporting through SimpleSpanProcessor to a no-op exporter:
a bare TracerProvider (the floor), LLMCostSpanProcessor with ``metrics=False``, and the same with
an SDK MeterProvider (an InMemoryMetricReader). They run in alternating chunks of spans so they see
the same conditions; time is this process's CPU time and each figure the median over chunks.
LLM spans are tagged by an ``attribution`` block and spread over a few models and features.

The counters are pre-aggregated on the span thread and observed when a reader collects; the
histogram's two measurements per call are recorded by the collecting thread. That deferred part is
timed too (one ``collect()`` after each chunk, divided by the chunk's spans).

    python benchmarks/bench_metrics.py [--spans 60000] [--chunk 5000]

Targets: <= 3 us added per LLM span on the span thread, nothing per non-LLM span.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from bench_processor import HTTP_ATTRIBUTES, LLM_ATTRIBUTES, NoopExporter, per_span_us
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_llm_cost.enrich.attribution import UserIdHasher
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--spans", type=int, default=60_000)
    parser.add_argument("--chunk", type=int, default=5_000)
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
        for offset in range(0, len(spans), args.chunk):
            part = spans[offset : offset + args.chunk]
            for name, tracer_provider in pipelines.items():
                figures[name].append(per_span_us(tracer_provider, part, tagged=True))
            begin = time.process_time_ns()
            reader.collect()
            collect_us.append((time.process_time_ns() - begin) / len(part) / 1000)
        medians = {name: statistics.median(values) for name, values in figures.items()}
        print(f"{kind} spans ({args.spans:,}, chunks of {args.chunk:,}), CPU us per span:")
        for name, value in medians.items():
            print(f"  {name:<30} {value:8.2f}")
        added = medians["processor, metrics on"] - medians["processor, metrics off"]
        print(f"  {'added by metrics (span thread)':<30} {added:8.2f}")
        print(f"  {'collection, per span (reader)':<30} {statistics.median(collect_us):8.2f}")
    meter_provider.shutdown()


if __name__ == "__main__":
    main()
