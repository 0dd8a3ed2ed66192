"""Cost as OpenTelemetry metrics: what a real processor records equals what CostStore reports.

Each test builds a real TracerProvider and MeterProvider (an InMemoryMetricReader, or the
Prometheus exporter's reader scraped over HTTP) around the real LLMCostSpanProcessor feeding a
DuckDBSpanExporter on a tmp file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, NoOpMeterProvider, Observation
from opentelemetry.sdk.metrics import MeterProvider as SDKMeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm_cost._logging import ERROR_COUNTS
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich import metrics as metrics_module
from otel_llm_cost.enrich.attribution import UserIdHasher, attribution
from otel_llm_cost.enrich.metrics import CostMetrics, cost_metrics
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.query import CostStore
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

ROOT = Path(__file__).resolve().parent.parent
HASHER = UserIdHasher(key=b"metrics-test-key-0123456789abcdef")


def chat(model: str, input_tokens: int = 1000, output_tokens: int = 500, **extra: Any) -> dict[str, Any]:
    return {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        **extra,
    }


@dataclass
class App:
    """An instrumented application: spans go through the processor to DuckDB, metrics to ``reader``."""

    db: Path
    tracer_provider: TracerProvider
    meter_provider: SDKMeterProvider
    processor: LLMCostSpanProcessor

    def span(self, name: str, attributes: dict[str, Any], context: Any = None) -> trace.Span:
        return self.tracer_provider.get_tracer("app").start_span(name, attributes=attributes, context=context)

    def flush(self) -> None:
        assert self.processor.force_flush(30_000)


@contextlib.contextmanager
def app(tmp_path: Path, pricebook: PriceBook, reader: MetricReader, **kwargs: Any) -> Iterator[App]:
    db = tmp_path / "calls.duckdb"
    meter_provider = SDKMeterProvider(metric_readers=[reader])
    processor = LLMCostSpanProcessor(
        DuckDBSpanExporter(db),
        pricing=pricebook,
        user_id_hasher=HASHER,
        meter_provider=meter_provider,
        **kwargs,
    )
    tracer_provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: "checkout"}))
    tracer_provider.add_span_processor(processor)
    try:
        yield App(db, tracer_provider, meter_provider, processor)
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()


def emit_calls(application: App) -> None:
    """Calls across models and features, an unpriced one, a duplicate and a rollup."""
    for feature, model, n in (
        ("search", "gpt-4o", 3),
        ("search", "gpt-4o-mini", 2),
        ("summary", "gpt-4o", 4),
    ):
        with attribution(feature=feature, org_id="acme"):
            for i in range(n):
                application.span(f"{feature}-{model}-{i}", chat(model, 1000 + i * 137, 300 + i * 11)).end()
    with attribution(feature="summary", org_id="globex"):
        application.span("unknown", chat("no-such-model-xyz", 800, 200)).end()
        # The same response seen by two instrumentations: one billable call, one duplicate.
        application.span("first", chat("gpt-4o-mini", 2000, 100, **{sc.GEN_AI_RESPONSE_ID: "r-dup"})).end()
        application.span("again", chat("gpt-4o-mini", 2000, 100, **{sc.GEN_AI_RESPONSE_ID: "r-dup"})).end()
        # An agent span whose usage is the sum of its LLM children: a rollup, never billable.
        outer = application.span("agent", chat("gpt-4o", 3000, 900))
        parent = trace.set_span_in_context(outer)
        application.span("step-1", chat("gpt-4o", 1000, 300), context=parent).end()
        application.span("step-2", chat("gpt-4o", 2000, 600), context=parent).end()
        outer.end()


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = defaultdict(list)
    for resource_metrics in data.resource_metrics if data is not None else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                found[metric.name].extend(metric.data.data_points)
    return found


def totals_by(data_points: Sequence[Any], attribute: str) -> dict[Any, float]:
    totals: dict[Any, float] = defaultdict(float)
    for point in data_points:
        totals[point.attributes.get(attribute)] += point.value
    return dict(totals)


def test_collected_cost_equals_what_cost_store_reports_per_model_and_feature(
    pricebook: PriceBook, tmp_path: Path
) -> None:
    reader = InMemoryMetricReader()
    with app(tmp_path, pricebook, reader) as application:
        emit_calls(application)
        application.flush()
        found = points(reader)
    store = CostStore(application.db)
    for metric_attribute, dimension in ((sc.LLM_MODEL, "model"), (sc.COST_FEATURE, "feature")):
        collected = totals_by(found[sc.LLM_COST_METRIC], metric_attribute)
        stored = {row.key: row.total_cost_usd or Decimal(0) for row in store.cost_by(dimension)}
        assert set(collected) == set(stored)
        for key, cost in stored.items():
            assert collected[key] == pytest.approx(float(cost), rel=1e-12, abs=1e-15)
        calls = totals_by(found[sc.LLM_CALLS_METRIC], metric_attribute)
        assert calls == {row.key: row.call_count for row in store.cost_by(dimension)}
        unpriced = totals_by(found[sc.LLM_CALLS_UNPRICED_METRIC], metric_attribute)
        assert {k: v for k, v in unpriced.items() if v} == {
            row.key: row.unpriced_calls for row in store.cost_by(dimension) if row.unpriced_calls
        }
    # 9 + unknown + first + two steps billable; "again" (duplicate) and "agent" (rollup) are not.
    assert sum(p.value for p in found[sc.LLM_CALLS_METRIC]) == 13
    assert totals_by(found[sc.LLM_CALLS_UNPRICED_METRIC], sc.LLM_MODEL)["no-such-model-xyz"] == 1
    input_tokens = sum(p.value for p in found[sc.GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS])
    histogram_input = sum(
        p.sum for p in found[sc.GEN_AI_CLIENT_TOKEN_USAGE] if p.attributes[sc.GEN_AI_TOKEN_TYPE] == "input"
    )
    assert input_tokens == histogram_input == store.summary().input_tokens
    assert {p.attributes[sc.SERVICE_NAME] for p in found[sc.LLM_COST_METRIC]} == {"checkout"}


def test_every_attribute_set_is_from_the_bounded_set_and_user_ids_are_out_by_default(
    pricebook: PriceBook, tmp_path: Path
) -> None:
    reader = InMemoryMetricReader()
    with app(tmp_path, pricebook, reader) as application:
        with attribution(feature="search", user_id="alice@example.com", session_id="s-1"):
            application.span("call", chat("gpt-4o")).end()
        found = points(reader)
    allowed = {
        sc.LLM_MODEL,
        sc.GEN_AI_PROVIDER_NAME,
        sc.GEN_AI_OPERATION_NAME,
        sc.COST_FEATURE,
        sc.COST_AGENT,
        sc.COST_ORG_ID,
        sc.SERVICE_NAME,
        sc.LLM_COST_DEPLOYMENT,
        sc.LLM_COST_STATUS,
        sc.GEN_AI_TOKEN_TYPE,
        sc.GEN_AI_TOKEN_MODALITY,
    }
    assert found
    for data_points in found.values():
        for point in data_points:
            assert set(point.attributes) <= allowed
            assert "alice@example.com" not in point.attributes.values()


def test_user_and_session_ids_opted_in_are_the_keyed_hash_never_the_raw_id(
    pricebook: PriceBook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LLM_COST_METRICS_USER_IDS", "true")
    reader = InMemoryMetricReader()
    with app(tmp_path, pricebook, reader) as application:
        with attribution(feature="search", user_id="alice@example.com", session_id="s-1"):
            application.span("call", chat("gpt-4o")).end()
        found = points(reader)
    (point,) = found[sc.LLM_COST_METRIC]
    assert point.attributes[sc.COST_USER_ID] == HASHER.hash("alice@example.com")
    assert point.attributes[sc.COST_SESSION_ID] == "s-1"
    assert all("alice@example.com" not in p.attributes.values() for ps in found.values() for p in ps)


def test_a_spike_links_to_its_call_through_an_exemplar(pricebook: PriceBook, tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    with app(tmp_path, pricebook, reader) as application:
        span = application.span("call", chat("gpt-4o"))
        span.end()
        found = points(reader)
    context = span.get_span_context()
    for name in (sc.GEN_AI_CLIENT_TOKEN_USAGE, sc.LLM_COST_METRIC):
        exemplars = [e for p in found[name] for e in p.exemplars]
        assert exemplars, name
        assert {(e.trace_id, e.span_id) for e in exemplars} == {(context.trace_id, context.span_id)}


def test_span_carries_the_cost_names_other_tools_read(pricebook: PriceBook) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        LLMCostSpanProcessor(SimpleSpanProcessor(memory), pricing=pricebook, metrics=False)
    )
    tracer = provider.get_tracer("app")
    tracer.start_span("priced", attributes=chat("gpt-4o")).end()
    tracer.start_span(
        "reported",
        attributes=chat(
            "no-such-model-xyz", **{sc.GEN_AI_USAGE_COST: 0.02, sc.GEN_AI_USAGE_COST_SOURCE: "provider"}
        ),
    ).end()
    tracer.start_span("unpriced", attributes=chat("no-such-model-xyz")).end()
    tracer.start_span("http", attributes={"http.route": "/"}).end()
    spans = {s.name: dict(s.attributes or {}) for s in memory.get_finished_spans()}
    priced, reported = spans["priced"], spans["reported"]
    for attributes, source in ((priced, "local"), (reported, "provider")):
        total = attributes[sc.LLM_COST_USD]
        assert attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == total
        assert attributes[sc.OPERATION_COST] == total
        assert attributes[sc.GEN_AI_USAGE_COST] == total
        assert attributes[sc.GEN_AI_USAGE_COST_CURRENCY] == "USD"
        assert attributes[sc.GEN_AI_USAGE_COST_SOURCE] == source
    assert reported[sc.GEN_AI_USAGE_COST_AMOUNT] == 0.02
    for name in ("unpriced", "http"):
        assert not set(sc.COST_MIRROR_ATTRIBUTE_NAMES) & set(spans[name]) - {sc.GEN_AI_USAGE_COST}
    provider.shutdown()


def test_nothing_is_recorded_without_a_meter_provider_or_when_turned_off(
    pricebook: PriceBook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cost_metrics(NoOpMeterProvider(), None) is None
    assert cost_metrics(SDKMeterProvider(), False) is None
    monkeypatch.setenv("OTEL_LLM_COST_METRICS", "false")
    reader = InMemoryMetricReader()
    with app(tmp_path, pricebook, reader) as application:
        application.span("call", chat("gpt-4o")).end()
        application.flush()
        assert points(reader) == {}
    # No MeterProvider anywhere (the global one is the API's proxy): spans are priced as before.
    monkeypatch.delenv("OTEL_LLM_COST_METRICS")
    db = tmp_path / "plain.duckdb"
    processor = LLMCostSpanProcessor(DuckDBSpanExporter(db), pricing=pricebook)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.get_tracer("app").start_span("call", attributes=chat("gpt-4o")).end()
    assert processor.force_flush(30_000)
    provider.shutdown()
    assert CostStore(db).summary().cost_usd == Decimal("0.0075")
    assert not ERROR_COUNTS
    # Until the application sets a global MeterProvider nothing is even aggregated.
    recorder = processor._metrics
    assert recorder is not None
    assert not recorder._series
    assert not recorder._pending


class _Broken:
    def record(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("instrument broke")


class _BrokenMeter(Meter):
    """A Meter whose histogram raises and whose counter callbacks the test calls itself."""

    def __init__(self, *, fail_on_create: bool = False) -> None:
        super().__init__("broken")
        self.fail_on_create = fail_on_create
        self.callbacks: list[Any] = []

    def create_histogram(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail_on_create:
            raise RuntimeError("no histogram today")
        return _Broken()

    def create_observable_counter(self, name: str, callbacks: Any = None, *args: Any, **kwargs: Any) -> Any:
        self.callbacks.extend(callbacks or ())

    def create_counter(self, *args: Any, **kwargs: Any) -> Any: ...
    def create_up_down_counter(self, *args: Any, **kwargs: Any) -> Any: ...
    def create_gauge(self, *args: Any, **kwargs: Any) -> Any: ...
    def create_observable_gauge(self, *args: Any, **kwargs: Any) -> Any: ...
    def create_observable_up_down_counter(self, *args: Any, **kwargs: Any) -> Any: ...


class _BrokenProvider(MeterProvider):
    def __init__(self, meter: _BrokenMeter) -> None:
        self.meter = meter

    def get_meter(self, *args: Any, **kwargs: Any) -> Meter:
        return self.meter


def test_a_failing_instrument_is_logged_not_raised(pricebook: PriceBook) -> None:
    for meter in (_BrokenMeter(fail_on_create=True), _BrokenMeter()):
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(
            LLMCostSpanProcessor(
                SimpleSpanProcessor(memory), pricing=pricebook, meter_provider=_BrokenProvider(meter)
            )
        )
        provider.get_tracer("app").start_span("call", attributes=chat("gpt-4o")).end()
        for callback in meter.callbacks:
            observations = list(callback(CallbackOptions()))
            assert all(isinstance(o, Observation) for o in observations)
        (span,) = memory.get_finished_spans()
        assert (span.attributes or {})[sc.LLM_COST_USD] > 0
        provider.shutdown()
    assert ERROR_COUNTS["metrics.create"] == 1
    assert ERROR_COUNTS["metrics.histogram"] >= 1


def test_record_never_raises_on_a_malformed_span() -> None:
    metrics = CostMetrics(SDKMeterProvider().get_meter("t"))
    metrics.record(object(), {}, {})  # type: ignore[arg-type]
    assert ERROR_COUNTS["metrics.record"] == 1


# -- Prometheus -----------------------------------------------------------------------------------

_METRIC_NAME = re.compile(r"\b(?:gen_ai|llm)_[A-Za-z0-9_]+")


def example_metric_names() -> set[str]:
    dashboard = json.loads((ROOT / "examples" / "grafana-llm-cost.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", ())]
    rules = (ROOT / "examples" / "prometheus-alerts.yml").read_text(encoding="utf-8")
    names = {m for expr in exprs for m in _METRIC_NAME.findall(expr)} | set(_METRIC_NAME.findall(rules))
    # Label names share the prefixes; keep the metric names (label names appear after `by (` or `{`).
    labels = {sc.LLM_MODEL, sc.LLM_COST_STATUS, sc.GEN_AI_TOKEN_TYPE, sc.LLM_COST_DEPLOYMENT}
    labels |= {sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_TOKEN_MODALITY}
    return names - {name.replace(".", "_") for name in labels}


@pytest.fixture
def prometheus_app(pricebook: PriceBook, tmp_path: Path) -> Iterator[tuple[App, str]]:
    exporter = pytest.importorskip(
        "opentelemetry.exporter.prometheus", reason="opentelemetry-exporter-prometheus"
    )
    prometheus_client = pytest.importorskip("prometheus_client")
    reader = exporter.PrometheusMetricReader()
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1")
    try:
        with app(tmp_path, pricebook, reader) as application:
            yield application, f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def scrape(address: str) -> dict[str, list[Any]]:
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list[Any]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append(sample)
    return samples


def test_scraped_cost_equals_cost_store_and_examples_use_real_names(prometheus_app: tuple[App, str]) -> None:
    application, address = prometheus_app
    emit_calls(application)
    application.flush()
    samples = scrape(address)
    store = CostStore(application.db)
    scraped: dict[str, float] = defaultdict(float)
    for sample in samples["llm_cost_USD_total"]:
        scraped[sample.labels["llm_model"]] += sample.value
    for row in store.cost_by("model"):
        assert scraped[row.key] == pytest.approx(float(row.total_cost_usd or 0), rel=1e-12, abs=1e-15)
    missing = example_metric_names() - set(samples)
    assert not missing, f"the examples use metric names a real scrape does not have: {sorted(missing)}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_a_real_prometheus_scrapes_and_sums_the_spend(
    prometheus_app: tuple[App, str], tmp_path: Path
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("OTEL_LLM_COST_PROMETHEUS_REQUIRED") == "1":  # CI installs it
            pytest.fail("OTEL_LLM_COST_PROMETHEUS_REQUIRED=1 but the prometheus binary is not installed")
        pytest.skip("the prometheus binary is not installed (Debian: apt-get install prometheus)")
    application, address = prometheus_app
    emit_calls(application)
    application.flush()
    expected = float(CostStore(application.db).summary().cost_usd or 0)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n"
        f"    static_configs:\n      - targets: ['{address}']\n",
        encoding="utf-8",
    )
    web = f"127.0.0.1:{_free_port()}"
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={web}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        query = urllib.parse.urlencode({"query": "sum(llm_cost_USD_total)"})
        deadline, result = time.monotonic() + 60, []
        while time.monotonic() < deadline and not result:
            time.sleep(1)
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://{web}/api/v1/query?{query}", timeout=5) as response,
            ):
                result = json.loads(response.read())["data"]["result"]
        assert result, "Prometheus returned no sample within 60 s"
        assert float(result[0]["value"][1]) == pytest.approx(expected, rel=1e-9)
    finally:
        process.terminate()
        process.wait(10)


# -- Concurrency and bounds -------------------------------------------------------------------------


def ended_spans(count: int) -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app")
    for i in range(count):
        tracer.start_span(f"call-{i}").end()
    return list(exporter.get_finished_spans())


def call_figures(model: str, cost: float | None, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        sc.LLM_MODEL: model,
        sc.LLM_PROVIDER_NAME: "openai",
        sc.LLM_OPERATION: "chat",
        sc.LLM_COST_STATUS: "priced" if cost is not None else "unpriced",
        sc.LLM_COST_USD: cost,
        sc.LLM_TOKENS_INPUT: input_tokens,
        sc.LLM_TOKENS_OUTPUT: output_tokens,
        sc.LLM_TOKENS_CACHE_READ: 3,
    }


def test_calls_recorded_by_many_threads_while_a_reader_collects_are_each_counted_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A small queue bound: the recording threads drain it themselves too, while others go on adding.
    monkeypatch.setattr(metrics_module, "_MAX_PENDING", 4)
    reader = InMemoryMetricReader()
    provider = SDKMeterProvider(metric_readers=[reader])
    recorder = CostMetrics(provider.get_meter("otel_llm_cost"))
    threads_count, calls_per_thread = 8, 1_000
    spans = ended_spans(calls_per_thread)
    # Costs that are exact in binary: the float totals must equal exactly, in any order.
    calls = [
        call_figures(f"model-{i % 3}", None if i % 10 == 0 else 0.25, 7 + i % 5, 2)
        for i in range(calls_per_thread)
    ]
    start, done = threading.Barrier(threads_count + 1), threading.Event()

    def record_all() -> None:
        start.wait()
        for span, extra in zip(spans, calls, strict=True):
            recorder.record(span, {}, extra)

    def collect_until_done() -> None:
        start.wait()
        while not done.is_set():
            reader.collect()

    workers = [threading.Thread(target=record_all) for _ in range(threads_count)]
    collector = threading.Thread(target=collect_until_done)
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        for thread in (*workers, collector):
            thread.start()
        for thread in workers:
            thread.join(60)
    finally:
        sys.setswitchinterval(switch_interval)
        done.set()
        collector.join(60)
    found = points(reader)
    provider.shutdown()
    expected_calls = threads_count * calls_per_thread
    assert sum(p.value for p in found[sc.LLM_CALLS_METRIC]) == expected_calls
    unpriced = threads_count * sum(1 for c in calls if c[sc.LLM_COST_USD] is None)
    assert sum(p.value for p in found[sc.LLM_CALLS_UNPRICED_METRIC]) == unpriced
    assert sum(p.value for p in found[sc.LLM_COST_METRIC]) == 0.25 * (expected_calls - unpriced)
    input_tokens = threads_count * sum(c[sc.LLM_TOKENS_INPUT] for c in calls)
    assert sum(p.value for p in found[sc.GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS]) == input_tokens
    assert (
        sum(p.value for p in found[sc.GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS])
        == 3 * expected_calls
    )
    by_type: dict[str, int] = defaultdict(int)
    for point in found[sc.GEN_AI_CLIENT_TOKEN_USAGE]:
        by_type[point.attributes[sc.GEN_AI_TOKEN_TYPE]] += point.count
    assert by_type == {"input": expected_calls, "output": expected_calls}
    assert not ERROR_COUNTS


def test_without_a_collection_the_queue_stays_bounded_and_new_attribute_sets_overflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics_module, "_MAX_PENDING", 10)
    monkeypatch.setattr(metrics_module, "_MAX_SERIES", 5)
    reader = InMemoryMetricReader()
    provider = SDKMeterProvider(metric_readers=[reader])
    recorder = CostMetrics(provider.get_meter("otel_llm_cost"))
    spans = ended_spans(100)
    for i, span in enumerate(spans):
        recorder.record(span, {sc.COST_FEATURE: f"feature-{i}"}, call_figures("gpt-4o", 0.5, 10, 1))
        assert len(recorder._pending) < 10 * recorder._stride  # queued calls, flat
    found = points(reader)
    provider.shutdown()
    calls = {p.attributes.get(sc.COST_FEATURE, "overflow"): p.value for p in found[sc.LLM_CALLS_METRIC]}
    assert calls == {**{f"feature-{i}": 1 for i in range(5)}, "overflow": 95}
    (overflow,) = [p for p in found[sc.LLM_COST_METRIC] if sc.COST_FEATURE not in p.attributes]
    assert overflow.attributes == {sc.OTEL_METRIC_OVERFLOW: True}
    assert overflow.value == 47.5
    assert sum(p.count for p in found[sc.GEN_AI_CLIENT_TOKEN_USAGE]) == 200
    assert not ERROR_COUNTS


def test_a_call_with_an_unhashable_tag_is_logged_and_left_out_the_others_counted() -> None:
    reader = InMemoryMetricReader()
    provider = SDKMeterProvider(metric_readers=[reader])
    recorder = CostMetrics(provider.get_meter("otel_llm_cost"))
    first, second, third = ended_spans(3)
    recorder.record(first, {}, call_figures("gpt-4o", 0.5, 10, 1))
    recorder.record(second, {sc.COST_FEATURE: ["not", "hashable"]}, call_figures("gpt-4o", 0.5, 10, 1))
    recorder.record(third, {}, call_figures("gpt-4o", 0.25, 10, 1))
    found = points(reader)
    provider.shutdown()
    assert [p.value for p in found[sc.LLM_CALLS_METRIC]] == [2]
    assert [p.value for p in found[sc.LLM_COST_METRIC]] == [0.75]
    assert ERROR_COUNTS["metrics.record"] == 1
