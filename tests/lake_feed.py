"""LLM spans with fixed ids for the lake tests, and a writer process that exports a range of them.

Run as a script: ``python lake_feed.py TARGET DATA_PATH JOURNAL FIRST COUNT BATCH`` exports spans
``FIRST .. FIRST+COUNT-1`` in batches of ``BATCH`` through a DuckDBSpanExporter on the lake, prints
``progress N`` after each batch and ``done`` after shutdown. A 7th argument ``budget`` adds a global
lifetime budget of $1 (alerts at 50% and 100%), printing ``alert NAME KIND THRESHOLD`` per delivered alert.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
_MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-0", "no-such-model-xyz")
_FEATURES = ("search", "chat", "summarise")
_RESOURCE = Resource.create({"service.name": "lake-test"})
_SCOPE = InstrumentationScope("opentelemetry.instrumentation.openai_v2")


def span(index: int) -> ReadableSpan:
    """Span ``index``: its own trace, a start time ``index`` seconds after 2026-01-01."""
    model = _MODELS[index % len(_MODELS)]
    start = START_NS + index * 1_000_000_000
    return ReadableSpan(
        name=f"chat {model}",
        context=SpanContext(
            (0x1A4E << 64) + index + 1, index + 1, is_remote=False, trace_flags=TraceFlags(1)
        ),
        resource=_RESOURCE,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic" if model.startswith("claude") else "openai",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": 100 + index % 997,
            "gen_ai.usage.output_tokens": 10 + index % 101,
            "cost.feature": _FEATURES[index % len(_FEATURES)],
        },
        kind=SpanKind.CLIENT,
        start_time=start,
        end_time=start + 250_000_000,
        instrumentation_scope=_SCOPE,
    )


def batches(first: int, count: int, size: int) -> Iterator[list[ReadableSpan]]:
    for low in range(first, first + count, size):
        yield [span(i) for i in range(low, min(low + size, first + count))]


def _budget_engine() -> object:
    from otel_llm_cost import Budget  # noqa: PLC0415 - the child imports it, not the tests

    def announce(alert: object) -> None:
        text = f"alert {alert.budget} {alert.kind.value} {alert.threshold:.2f}"  # type: ignore[attr-defined]
        print(text, flush=True)

    return Budget.engine_for(
        [Budget("all", "global", "lifetime", 1, thresholds=(0.5, 1.0))], sinks=[announce]
    )


def main(argv: list[str]) -> int:
    from otel_llm_cost import DuckDBSpanExporter  # noqa: PLC0415 - the child imports it, not the tests

    target, data_path, journal, first, count, size, *budget = argv
    exporter = DuckDBSpanExporter(target, data_path=data_path, spool_dir=journal)
    if budget:
        exporter.add_commit_listener(_budget_engine().on_commit)
    sent = 0
    for batch in batches(int(first), int(count), int(size)):
        exporter.export(batch)
        sent += len(batch)
        print(f"progress {sent}", flush=True)
    exporter.shutdown()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
