"""Noticing an application whose LLM SDK makes no spans, and instrumenting what is installed."""

from __future__ import annotations

import logging
import sys
import types

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_llm_cost.enrich.instrument import LLMSpanWatch, instrument_installed


def _provider_with(watch: LLMSpanWatch) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(watch)
    return provider


def test_an_imported_sdk_without_llm_spans_is_reported_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", types.ModuleType("anthropic"))
    tracer = _provider_with(LLMSpanWatch(spans=5, seconds=0)).get_tracer("app")
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        for _ in range(20):
            tracer.start_span("GET /").end()
    warnings = [r for r in caplog.records if "none of the first spans was an LLM call" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("anthropic imported")


def test_an_llm_span_ends_the_watch_silently(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "openai", types.ModuleType("openai"))
    tracer = _provider_with(LLMSpanWatch(spans=5, seconds=0)).get_tracer("app")
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        tracer.start_span("chat", attributes={"gen_ai.request.model": "gpt-4o"}).end()
        for _ in range(20):
            tracer.start_span("GET /").end()
    assert "LLM call" not in caplog.text


def test_no_sdk_imported_no_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delitem(sys.modules, "openai", raising=False)
    monkeypatch.delitem(sys.modules, "anthropic", raising=False)
    tracer = _provider_with(LLMSpanWatch(spans=1, seconds=0)).get_tracer("app")
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        for _ in range(5):
            tracer.start_span("GET /").end()
    assert "LLM call" not in caplog.text


def test_the_watch_waits_for_its_time_as_well_as_its_span_count(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "openai", types.ModuleType("openai"))
    tracer = _provider_with(LLMSpanWatch(spans=1, seconds=3600)).get_tracer("app")
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        for _ in range(50):
            tracer.start_span("startup work").end()
    assert "LLM call" not in caplog.text


def test_instrument_installed_instruments_nothing_without_the_sdks() -> None:
    # This environment has neither openai nor anthropic; the record environment runs the real case
    # (tests/recording/test_wiring.py).
    if any(name in sys.modules or _importable(name) for name in ("openai", "anthropic")):
        pytest.skip("an LLM SDK is installed here: tests/recording/test_wiring.py covers it")
    assert instrument_installed(TracerProvider()) == []


def _importable(name: str) -> bool:
    import importlib.util  # noqa: PLC0415

    return importlib.util.find_spec(name) is not None
