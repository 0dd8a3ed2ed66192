"""One call recorded as the roots of two traces is billed once (issue 12, item 1).

OpenInference's span of the Anthropic SDK's ``messages.stream()`` helper is current only while
``stream()`` runs; the HTTP request and the SDK's own span happen later, in ``__enter__``, so outside a
parent span the two spans of one call are roots of two traces, and the OpenInference span carries no
response id. The spans below are the recorded ones (tests/fixtures/spans/
openinference-anthropic__anthropic_messages_stream_helper.json, real anthropic + OpenInference), sent
through a real TracerProvider, the processor (or the exporter alone, or the OTLP receiver) and a real
DuckDB file.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import format_span_id

from otel_llm_cost.collector.receiver import OTLPReceiver, build_processor
from otel_llm_cost.conventions.usage import normalize_usage
from otel_llm_cost.enrich.dedup import DoubleCountGuard, Verdict
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.query import CostStore
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

FIXTURE = (
    Path(__file__).parent
    / "fixtures"
    / "spans"
    / "openinference-anthropic__anthropic_messages_stream_helper.json"
)
T0 = 1_764_900_000_000_000_000
MS = 1_000_000


@dataclass(frozen=True)
class Recorded:
    scope: str
    scope_version: str
    name: str
    attributes: Mapping[str, Any]


def _recorded() -> dict[str, Recorded]:
    fixture = json.loads(FIXTURE.read_text())
    spans = {}
    for span in fixture["spans"]:
        assert span["parent_span_id"] is None, "the helper's two spans are roots"
        kind = "sdk" if span["scope"]["name"] == "com.anthropic.sdk.python" else "openinference"
        attributes = {k: tuple(v) if isinstance(v, list) else v for k, v in span["attributes"].items()}
        spans[kind] = Recorded(span["scope"]["name"], span["scope"]["version"], span["name"], attributes)
    assert (
        spans["sdk"].attributes["gen_ai.usage.input_tokens"]
        == spans["openinference"].attributes["llm.token_count.prompt"]
    )
    return spans


SPANS = _recorded()


def one_call_usd(pricebook: PriceBook) -> Decimal:
    usage = normalize_usage(SPANS["sdk"].attributes, SPANS["sdk"].scope)
    assert usage is not None
    total = pricebook.compute_cost(usage).total_usd
    assert total is not None
    assert total > 0
    return total


@dataclass
class Emitter:
    provider: TracerProvider

    def span(self, kind: str, start: int, end: int, **overrides: Any) -> str:
        """End one recorded span as a root (no current span) with the given times; its hex span id."""
        recorded = SPANS[kind]
        tracer = self.provider.get_tracer(recorded.scope, recorded.scope_version)
        span = tracer.start_span(
            recorded.name, attributes={**recorded.attributes, **overrides}, start_time=start
        )
        span.end(end_time=end)
        return format_span_id(span.get_span_context().span_id)

    def helper_call(self, first_to_end: str, offset: int = 0) -> dict[str, str]:
        """The two spans of one ``messages.stream()`` call: OpenInference's starts in ``stream()``, the
        SDK's in ``__enter__``; ``first_to_end`` ends first, the other 1 ms later."""
        second = "openinference" if first_to_end == "sdk" else "sdk"
        starts = {"openinference": T0 + offset, "sdk": T0 + offset + MS // 2}
        return {
            first_to_end: self.span(first_to_end, starts[first_to_end], T0 + offset + 30 * MS),
            second: self.span(second, starts[second], T0 + offset + 31 * MS),
        }


def rows(db: Path) -> dict[str, dict[str, Any]]:
    with duckdb.connect(str(db), read_only=True) as con:
        cursor = con.execute("SELECT * FROM llm_calls")
        names = [column[0] for column in cursor.description]
        return {row[names.index("span_id")]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def _processor_path(db: Path, pricebook: PriceBook, resource: Resource) -> TracerProvider:
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(LLMCostSpanProcessor(DuckDBSpanExporter(db), pricing=pricebook))
    return provider


def _exporter_path(db: Path, pricebook: PriceBook, resource: Resource) -> TracerProvider:
    # No processor: the exporter enriches what nothing enriched (OTEL_TRACES_EXPORTER=duckdb).
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(DuckDBSpanExporter(db, pricing=pricebook)))
    return provider


PATHS: dict[str, Callable[[Path, PriceBook, Resource], TracerProvider]] = {
    "processor": _processor_path,
    "exporter": _exporter_path,
}
RESOURCE = Resource({"service.name": "chat-api", "service.instance.id": "pod-1"})


@contextlib.contextmanager
def pipeline(tmp_path: Path, pricebook: PriceBook, path: str = "processor") -> Iterator[Emitter]:
    provider = PATHS[path](tmp_path / "calls.duckdb", pricebook, RESOURCE)
    try:
        yield Emitter(provider)
    finally:
        provider.shutdown()


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("first_to_end", ["sdk", "openinference"])
def test_the_stream_helpers_two_root_spans_are_billed_once(
    tmp_path: Path, pricebook: PriceBook, path: str, first_to_end: str
) -> None:
    with pipeline(tmp_path, pricebook, path) as emit:
        ids = emit.helper_call(first_to_end)
    second = "openinference" if first_to_end == "sdk" else "sdk"
    stored = rows(tmp_path / "calls.duckdb")
    assert stored.keys() == set(ids.values())
    billable = [row for row in stored.values() if row["billable"]]
    assert [row["span_id"] for row in billable] == [ids[first_to_end]], "the first span to end stays billable"
    duplicate = stored[ids[second]]
    assert duplicate["duplicate_of"] == ids[first_to_end]
    assert duplicate["input_tokens"] == billable[0]["input_tokens"]
    summary = CostStore(tmp_path / "calls.duckdb").summary()
    assert summary.call_count == 1
    assert summary.cost_usd == one_call_usd(pricebook)


def test_two_such_calls_at_once_are_billed_twice(tmp_path: Path, pricebook: PriceBook) -> None:
    # Two threads make the same call at the same moment: four root spans with one model and one set of
    # counts. Each billable span absorbs one span of the other convention, so two calls are billed.
    with pipeline(tmp_path, pricebook) as emit:
        threads = [
            threading.Thread(target=emit.helper_call, args=(first,), kwargs={"offset": n * MS // 10})
            for n, first in enumerate(("sdk", "openinference"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    stored = rows(tmp_path / "calls.duckdb")
    assert len(stored) == 4
    assert sum(row["billable"] for row in stored.values()) == 2
    summary = CostStore(tmp_path / "calls.duckdb").summary()
    assert (summary.call_count, summary.cost_usd) == (2, 2 * one_call_usd(pricebook))


# Two root spans of one model with equal counts that are NOT one call, or not shown to be.
NOT_ONE_CALL: dict[str, Callable[[Emitter], None]] = {
    # Two identical calls made at once by two threads through one instrumentation: same convention.
    "same convention, OpenInference": lambda emit: [
        emit.span("openinference", T0, T0 + 30 * MS),
        emit.span("openinference", T0 + MS, T0 + 31 * MS),
    ],
    "same convention, Anthropic SDK": lambda emit: [
        emit.span("sdk", T0, T0 + 30 * MS),
        emit.span("sdk", T0 + MS, T0 + 31 * MS, **{"gen_ai.response.id": "msg_other"}),
    ],
    "times do not overlap": lambda emit: [
        emit.span("sdk", T0, T0 + 30 * MS),
        emit.span("openinference", T0 + 40 * MS, T0 + 70 * MS),
    ],
    "another model": lambda emit: [
        emit.span("sdk", T0 + MS, T0 + 30 * MS),
        emit.span(
            "openinference",
            T0,
            T0 + 31 * MS,
            **{
                "llm.model_name": "claude-sonnet-4-5-20250929",
                "llm.request.model_name": "claude-sonnet-4-5",
                "llm.response.model_name": "claude-sonnet-4-5-20250929",
            },
        ),
    ],
    "other counts": lambda emit: [
        emit.span("sdk", T0 + MS, T0 + 30 * MS),
        emit.span("openinference", T0, T0 + 31 * MS, **{"llm.token_count.completion": 211}),
    ],
}


@pytest.mark.parametrize("scenario", sorted(NOT_ONE_CALL))
def test_root_spans_that_are_not_shown_to_be_one_call_are_billed_separately(
    tmp_path: Path, pricebook: PriceBook, scenario: str
) -> None:
    with pipeline(tmp_path, pricebook) as emit:
        NOT_ONE_CALL[scenario](emit)
    stored = rows(tmp_path / "calls.duckdb")
    assert len(stored) == 2
    assert all(row["billable"] for row in stored.values())
    assert all(row["duplicate_of"] is None for row in stored.values())


def test_root_spans_of_two_processes_are_billed_separately(tmp_path: Path, pricebook: PriceBook) -> None:
    # One processor behind two providers with different resources: two processes as far as the spans
    # tell (as two services sending to one receiver would be).
    processor = LLMCostSpanProcessor(DuckDBSpanExporter(tmp_path / "calls.duckdb"), pricing=pricebook)
    providers = [TracerProvider(resource=Resource({"service.name": "chat-api", "service.instance.id": pod}))
                 for pod in ("pod-1", "pod-2")]  # fmt: skip
    for provider in providers:
        provider.add_span_processor(processor)
    Emitter(providers[0]).span("sdk", T0 + MS, T0 + 30 * MS)
    Emitter(providers[1]).span("openinference", T0, T0 + 31 * MS)
    processor.shutdown()
    stored = rows(tmp_path / "calls.duckdb")
    assert [row["billable"] for row in stored.values()] == [True, True]


def test_a_root_span_and_a_child_span_of_another_trace_are_billed_separately(
    tmp_path: Path, pricebook: PriceBook
) -> None:
    # Inside a request span the two spans of a call share one trace and the in-trace rules pair them;
    # a child span is never paired with a root of another trace.
    with pipeline(tmp_path, pricebook) as emit:
        tracer = emit.provider.get_tracer("app")
        with tracer.start_as_current_span("POST /chat", start_time=T0 - MS, end_on_exit=False) as request:
            emit.span("openinference", T0, T0 + 31 * MS)
        request.end(end_time=T0 + 32 * MS)
        emit.span("sdk", T0 + MS, T0 + 30 * MS)
    stored = rows(tmp_path / "calls.duckdb")
    assert [row["billable"] for row in stored.values()] == [True, True]


@pytest.mark.slow
def test_the_receiver_pairs_them_as_the_in_process_path_does(tmp_path: Path, pricebook: PriceBook) -> None:
    # Each span goes to the receiver in its own request (SimpleSpanProcessor): the resource is decoded
    # once per request, so "same process" must be judged by the resource's content, not its identity.
    local_db, served_db = tmp_path / "local.duckdb", tmp_path / "served.duckdb"
    processor, receiver_pipeline = build_processor(served_db)
    with OTLPReceiver(processor, port=0, pipeline=receiver_pipeline) as receiver:
        provider = _processor_path(local_db, pricebook, RESOURCE)
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.url)))
        emit = Emitter(provider)
        first = emit.helper_call("sdk")
        second = emit.helper_call("openinference", offset=100 * MS)
        provider.shutdown()
    local, served = rows(local_db), rows(served_db)
    assert served.keys() == local.keys() == {*first.values(), *second.values()}
    for span_id, row in local.items():
        assert (served[span_id]["billable"], served[span_id]["duplicate_of"]) == (
            row["billable"],
            row["duplicate_of"],
        )
    assert {span_id for span_id, row in served.items() if row["billable"]} == {
        first["sdk"],
        second["openinference"],
    }


# -- the guard alone --------------------------------------------------------------------------------


GUARD_RESOURCE = Resource({"service.name": "a"})


def root(guard: DoubleCountGuard, span_id: int, *, openinference: bool, **overrides: Any) -> Verdict:
    convention = "openinference" if openinference else "anthropic_sdk"
    fields: dict[str, Any] = {
        "trace_id": span_id,  # each root span is its own trace
        "span_id": span_id,
        "parent_span_id": None,
        "start_ns": 1_000,
        "end_ns": 2_000,
        "native_sdk": not openinference,
        "response_id": None,
        "input_tokens": 100,
        "output_tokens": 20,
        "aggregate": False,
        "root": (GUARD_RESOURCE, {"llm.cost.model_id": "claude-haiku-4-5", "llm.convention": convention}),
    }
    fields.update(overrides)
    return guard.llm_span_ended(**fields)


def test_guard_pairs_root_spans_of_two_conventions_in_either_end_order() -> None:
    guard = DoubleCountGuard(100)
    assert root(guard, 1, openinference=False, response_id="msg_1") == Verdict(True, None)
    assert root(guard, 2, openinference=True, start_ns=900, end_ns=2_100) == Verdict(False, format_span_id(1))
    assert root(guard, 3, openinference=True) == Verdict(True, None)
    assert root(guard, 4, openinference=False, end_ns=1_500) == Verdict(False, format_span_id(3))
    # The pair's response id now points at the billable span: the same span re-sent is not billed again.
    assert root(guard, 5, openinference=False, response_id="msg_1", start_ns=9_000, end_ns=9_500) == Verdict(
        False, format_span_id(1)
    )


def test_guard_leaves_roots_without_model_or_usage_alone() -> None:
    guard = DoubleCountGuard(100)
    assert root(guard, 1, openinference=False, root=None).billable
    assert root(guard, 2, openinference=True, root=None).billable
    assert root(guard, 3, openinference=False, input_tokens=None, output_tokens=None).billable
    assert root(guard, 4, openinference=True, input_tokens=None, output_tokens=None).billable
    # A root LLM span that is an ancestor or an aggregate is decided by the in-trace rules.
    assert root(guard, 5, openinference=False).billable
    assert root(guard, 6, openinference=True, aggregate=True) == Verdict(False, None)
    assert not root(guard, 7, openinference=True).billable  # span 5 absorbs it
    # Without a model there is no evidence of one call.
    assert root(guard, 8, openinference=False, root=(GUARD_RESOURCE, {})).billable
    assert root(
        guard, 9, openinference=True, root=(GUARD_RESOURCE, {"llm.convention": "openinference"})
    ).billable


def test_guard_memory_for_root_pairs_is_bounded_by_capacity() -> None:
    guard = DoubleCountGuard(10)
    for n in range(1, 1_000):
        assert root(guard, n, openinference=False, input_tokens=n).billable
    # Only the most recent 10 are remembered: an old one is forgotten (over-counted, never under).
    assert root(guard, 5_000, openinference=True, input_tokens=1).billable
    assert not root(guard, 5_001, openinference=True, input_tokens=998).billable


def test_guard_pairs_many_identical_roots_one_to_one_within_a_bound() -> None:
    guard = DoubleCountGuard(1_000)
    verdicts = [root(guard, n, openinference=n % 2 == 0) for n in range(1, 201)]
    assert sum(verdict.billable for verdict in verdicts) == 100


def test_guard_pairs_exactly_one_to_one_under_threads() -> None:
    # Eight threads each make 500 identical calls (same process, model, counts, overlapping times),
    # each call ending one span of each convention kind: whatever the interleaving, 4,000 are billable.
    guard = DoubleCountGuard(10_000)
    ids = iter(range(1, 10**6))
    lock = threading.Lock()
    billable: list[int] = []

    def calls(thread: int) -> None:
        count = 0
        for n in range(500):
            for openinference in (n % 2 == thread % 2, n % 2 != thread % 2):
                with lock:
                    span_id = next(ids)
                count += root(guard, span_id, openinference=openinference).billable
        billable.append(count)

    threads = [threading.Thread(target=calls, args=(n,)) for n in range(8)]
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads as finely as the interpreter allows
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert sum(billable) == 4_000
