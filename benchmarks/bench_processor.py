"""Added cost of LLMCostSpanProcessor per span, against a bare TracerProvider in the same run.

Both pipelines export through SimpleSpanProcessor to a no-op exporter, so the difference is what
the processor adds (attribution on start, recognition, normalisation, pricing, the enriched copy
and the double-count guard on end). Time is this process's CPU time (other processes on a busy
machine do not count), the two pipelines run in alternating chunks of 10,000 spans so they see
the same conditions, and each figure is the median over chunks.

    python benchmarks/bench_processor.py [--spans 100000] [--chunk 10000] [--breakdown]

Targets (issue 19): <= 1 us added per non-LLM span, <= 15 us per LLM span (stretch 10), and inside
an ``attribution()`` block with 4 tags <= 3 us more than outside it.

``--breakdown`` also times each stage of the processor on one ended span, in isolation (best of
several rounds): where an LLM span's microseconds go. Isolated stages add up to less than the
pipeline figure, which also pays for the call layers and a larger working set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import timeit
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm_cost.conventions.usage import normalize_usage
from otel_llm_cost.enrich.attribution import UserIdHasher, attribution, span_tags
from otel_llm_cost.enrich.enrichment import _enrichment, is_llm_candidate
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.enrich.span_copy import _enriched_copy_of, span_attributes
from otel_llm_cost.enrich.span_plan import span_plan
from otel_llm_cost.pricing import PriceBook

HTTP_ATTRIBUTES: dict[str, Any] = {
    "http.request.method": "GET",
    "http.route": "/api/items/{id}",
    "http.response.status_code": 200,
    "url.scheme": "https",
    "server.address": "api.internal",
    "server.port": 443,
}
# As opentelemetry-instrumentation-openai-v2 records a chat call (tests/fixtures/spans).
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


class NoopExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def bare_provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(NoopExporter()))
    return provider


def cost_provider(pricebook: PriceBook) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(
        LLMCostSpanProcessor(
            SimpleSpanProcessor(NoopExporter()),
            pricing=pricebook,
            user_id_hasher=UserIdHasher(key=b"benchmark-key-0123456789"),
        )
    )
    return provider


def per_span_us(provider: TracerProvider, attribute_sets: list[dict[str, Any]], tagged: bool) -> float:
    tracer = provider.get_tracer("bench")
    start_span = tracer.start_span
    block = attribution(feature="search", agent="planner", user_id="u-42", workflow_id="wf-1")
    if tagged:
        block.__enter__()
    try:
        begin = time.process_time_ns()
        for attributes in attribute_sets:
            start_span("span", attributes=attributes).end()
        elapsed = time.process_time_ns() - begin
    finally:
        if tagged:
            block.__exit__(None, None, None)
    return elapsed / len(attribute_sets) / 1000


def interleaved(
    bare: TracerProvider, enriched: TracerProvider, spans: list[dict[str, Any]], tagged: bool, chunk: int
) -> tuple[float, float]:
    """Median us/span of each pipeline, alternating chunks of ``chunk`` spans."""
    base: list[float] = []
    with_cost: list[float] = []
    for offset in range(0, len(spans), chunk):
        part = spans[offset : offset + chunk]
        base.append(per_span_us(bare, part, tagged))
        with_cost.append(per_span_us(enriched, part, tagged))
    return statistics.median(base), statistics.median(with_cost)


def _best_us(func: Callable[[], object], calls: int = 20_000, rounds: int = 5) -> float:
    return min(timeit.repeat(func, number=calls, repeat=rounds, timer=time.process_time)) / calls * 1e6


def breakdown(pricebook: PriceBook) -> list[tuple[str, float]]:
    """us per stage, each timed alone on one ended span (private functions: what on_end calls)."""
    hasher = UserIdHasher(key=b"benchmark-key-0123456789")
    finished = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(finished))
    tracer = provider.get_tracer("bench")
    tracer.start_span("chat", attributes={**LLM_ATTRIBUTES, "gen_ai.response.id": "chatcmpl-0"}).end()
    tracer.start_span("GET", attributes=HTTP_ATTRIBUTES).end()
    llm_span, http_span = finished.get_finished_spans()
    processor = LLMCostSpanProcessor(
        SimpleSpanProcessor(NoopExporter()), pricing=pricebook, user_id_hasher=hasher
    )
    attributes = span_attributes(llm_span)
    usage = normalize_usage(attributes, "bench")
    assert usage is not None
    at = datetime.fromtimestamp((llm_span.start_time or 0) / 1e9, tz=UTC)
    extra = _enrichment(attributes, "bench", llm_span.start_time, pricebook, hasher)
    assert extra is not None
    live = tracer.start_span("live", attributes=HTTP_ATTRIBUTES)
    with attribution(feature="search", agent="planner", user_id="u-42", workflow_id="wf-1"):
        tags = dict(span_tags(None, hasher))
        tag_lookup = _best_us(lambda: span_tags(None, hasher))
    ids = iter(range(1, 10**9))

    def guard() -> None:
        n = next(ids)
        processor._calls._guard.llm_span_ended(
            trace_id=n, span_id=n, parent_span_id=None, start_ns=1, end_ns=2, native_sdk=False,
            response_id=None, input_tokens=1200, output_tokens=300, aggregate=False,
        )  # fmt: skip

    enrichment = _best_us(lambda: _enrichment(attributes, "bench", llm_span.start_time, pricebook, hasher))
    normalize = _best_us(lambda: normalize_usage(attributes, "bench"))
    # The usual call is enriched in one pass from what the plan kept for its shape reads; other
    # calls read their Usage through the plan (normalize_usage: no plan, or a value it does not read).
    planned = _best_us(lambda: span_plan(attributes, "bench").read_usage(attributes, "bench"))
    # The common call is priced in whole picodollars; compute_cost is the general path (cache tokens...).
    cost = _best_us(lambda: pricebook.plain_cost_pico(usage, llm_span.start_time))
    general = _best_us(lambda: pricebook.compute_cost(usage, at=at))
    return [
        ("on_end, non-LLM span (whole)", _best_us(lambda: processor.on_end(http_span)) - _best_us(
            lambda: processor.wrapped[0].on_end(http_span))),
        ("on_start: attribution lookup, no tags", _best_us(lambda: span_tags(None, hasher))),
        ("on_start: attribution lookup, 4 tags", tag_lookup),
        ("on_start: SDK set_attributes, 4 tags", _best_us(lambda: live.set_attributes(tags))),
        ("LLM: span_attributes + is_llm_candidate", _best_us(
            lambda: is_llm_candidate(span_attributes(llm_span), "bench"))),
        ("LLM: attributes to add, whole (the usual call: one pass)", enrichment),
        ("LLM: usage read through the span shape's plan (other calls)", planned),
        ("LLM: normalize_usage (no plan, for reference)", normalize),
        ("LLM: plain_cost_pico (a Usage's plain price, for reference)", cost),
        ("LLM: compute_cost (general path, for reference)", general),
        ("LLM: double-count guard", _best_us(guard)),
        ("LLM: enriched copy", _best_us(lambda: _enriched_copy_of(llm_span, dict(attributes), extra))),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--breakdown", action="store_true", help="also time each stage alone")
    args = parser.parse_args(argv)

    pricebook = PriceBook.default()
    http = [dict(HTTP_ATTRIBUTES) for _ in range(args.spans)]
    # A distinct response id per call, as in production (no span is a duplicate of another).
    llm = [{**LLM_ATTRIBUTES, "gen_ai.response.id": f"chatcmpl-{n}"} for n in range(args.spans)]
    bare, enriched = bare_provider(), cost_provider(pricebook)
    per_span_us(enriched, llm[:2000], tagged=False)  # warm the price cache and the code paths

    rows = []
    for label, spans, tagged in (
        ("non-LLM span", http, False),
        ("non-LLM span in attribution(4 tags)", http, True),
        ("LLM span", llm, False),
        ("LLM span in attribution(4 tags)", llm, True),
    ):
        base, with_cost = interleaved(bare, enriched, spans, tagged, args.chunk)
        rows.append((label, base, with_cost, with_cost - base))

    print(
        f"{args.spans:,} spans per case, CPU time, median of chunks of {args.chunk:,}; "
        "SimpleSpanProcessor + no-op exporter"
    )
    print(f"{'case':<38}{'bare us/span':>14}{'with processor':>16}{'added us':>10}{'ratio':>8}")
    for label, base, with_cost, added in rows:
        print(f"{label:<38}{base:>14.2f}{with_cost:>16.2f}{added:>10.2f}{with_cost / base:>8.2f}")
    added = {label: value for label, _, _, value in rows}
    print(
        "inside attribution(4 tags), added beyond the same span outside it: "
        f"non-LLM {added['non-LLM span in attribution(4 tags)'] - added['non-LLM span']:.2f} us, "
        f"LLM {added['LLM span in attribution(4 tags)'] - added['LLM span']:.2f} us"
    )
    print("targets: added <= 1 us per non-LLM span, <= 15 us per LLM span (stretch 10), <= 3 us more in tags")
    if args.breakdown:
        print("stages, each alone on one ended span (CPU time, best of 5 rounds of 20,000):")
        for label, us in breakdown(pricebook):
            print(f"  {label:<62}{us:>8.2f} us")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"load average (1/5/15 min) after the run: {load}, on {os.cpu_count()} CPUs")
    bare.shutdown()
    enriched.shutdown()


if __name__ == "__main__":
    main()
