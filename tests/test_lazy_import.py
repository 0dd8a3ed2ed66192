"""Importing the package (and building the processor) loads neither the database nor the price data."""

from __future__ import annotations

import subprocess
import sys

import pytest

import otel_llm_cost

HEAVY = ("duckdb", "pyarrow", "genai_prices")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [m for m in run.stdout.strip().split(",") if m]


def test_importing_the_package_loads_no_database_or_price_data() -> None:
    assert _loaded_after("import otel_llm_cost") == []


def test_building_the_processor_loads_no_database_or_price_data() -> None:
    code = (
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "from otel_llm_cost import LLMCostSpanProcessor, attribution\n"
        "LLMCostSpanProcessor(SimpleSpanProcessor(InMemorySpanExporter()))\n"
        "with attribution(feature='f'):\n    pass\n"
    )
    assert _loaded_after(code) == []


def test_pricing_an_llm_span_loads_the_price_data_on_first_use() -> None:
    code = (
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "from otel_llm_cost import LLMCostSpanProcessor\n"
        "memory = InMemorySpanExporter()\n"
        "provider = TracerProvider()\n"
        "provider.add_span_processor(LLMCostSpanProcessor(SimpleSpanProcessor(memory)))\n"
        "attributes = {'gen_ai.request.model': 'gpt-4o', 'gen_ai.usage.input_tokens': 1000,\n"
        "              'gen_ai.usage.output_tokens': 500, 'gen_ai.operation.name': 'chat'}\n"
        "provider.get_tracer('t').start_span('chat gpt-4o', attributes=attributes).end()\n"
        "assert memory.get_finished_spans()[0].attributes['llm.cost.status'] == 'priced'\n"
    )
    assert "genai_prices" in _loaded_after(code)


def test_every_public_name_imports_and_the_exporter_gets_its_default_enricher(tmp_path: object) -> None:
    code = (
        "from otel_llm_cost import *\n"
        "import otel_llm_cost\n"
        "missing = [n for n in otel_llm_cost.__all__ if not hasattr(otel_llm_cost, n)]\n"
        "assert not missing, missing\n"
        "from otel_llm_cost.storage import DuckDBSpanExporter as Direct\n"
        f"exporter = Direct({str(tmp_path) + '/x.duckdb'!r})\n"
        "exporter.shutdown()\n"
    )
    assert set(_loaded_after(code)) >= {"duckdb"}


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NotAName"):
        otel_llm_cost.NotAName  # type: ignore[attr-defined]  # noqa: B018
    assert sorted(otel_llm_cost.__all__) == otel_llm_cost.__all__
    assert set(otel_llm_cost.__all__) <= set(dir(otel_llm_cost))
