"""Property: whatever attributes an LLM-looking span carries, it becomes one row obeying the row rules.

Arbitrary attribute sets (wrong types, negatives, NaN/inf, bool-as-int, huge values, unicode, quotes and
newlines in model names, several conventions at once, figures claimed by an upstream processor) go
through a real TracerProvider, the processor and the DuckDB exporter into a real file.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator

from otel_llm_cost import DuckDBSpanExporter, LLMCostSpanProcessor
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.storage.invariants import COST_STATUSES, MAX_TOKEN_COUNT

_COUNT_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.usage.total_tokens",
    "llm.usage.total_tokens",
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "llm.token_count.total",
    "llm.token_count.prompt_details.cache_read",
    "llm.token_count.completion_details.reasoning",
    "llm.tokens.input",
    "llm.tokens.output",
    "llm.tokens.total",
    "llm.tokens.cache_read",
    "llm.tokens.cache_write",
    "llm.tokens.reasoning",
)
_TEXT_KEYS = (
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.provider.name",
    "gen_ai.system",
    "llm.model_name",
    "llm.provider",
    "openinference.span.kind",
    "traceloop.span.kind",
    "llm.request.type",
    "cost.user_id",
    "user.id",
    "openai.response.service_tier",
)
_CLAIM_KEYS = (
    "llm.cost.status",
    "llm.cost_usd",
    "llm.cost.input_usd",
    "gen_ai.usage.cost",
    "gen_ai.usage.cost.source",
    "llm.cost.billable",
    "llm.response.from_cache",
)
_MODELS = (
    "gpt-4o",
    "claude-sonnet-4-20250514",
    "text-embedding-3-small",
    "myres/gpt-4o",
    'we"ird\nmodel',
    "ü",
)

_numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=0, max_value=5000),
    st.sampled_from([0, 1, 10**12, 10**12 + 1, 2**63 - 1, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
)
_texts = st.one_of(st.sampled_from(_MODELS), st.text(max_size=20), st.integers(), st.booleans())
_claims = st.one_of(
    st.sampled_from(["priced", "unpriced", "reported", "free", "invalid", "bogus", "provider"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.integers(min_value=-(10**9), max_value=10**9),
)
_attribute_sets = st.fixed_dictionaries(
    {"gen_ai.operation.name": st.sampled_from(["chat", "text_completion", "embeddings", "generate_content"])},
    optional={
        **dict.fromkeys(_COUNT_KEYS, _numbers),
        **dict.fromkeys(_TEXT_KEYS, _texts),
        **dict.fromkeys(_CLAIM_KEYS, _claims),
    },
)


class _CountingIds(IdGenerator):
    """Hypothesis seeds the global ``random`` per example, so the SDK's random ids would repeat."""

    def __init__(self) -> None:
        self._next = itertools.count(1)

    def generate_span_id(self) -> int:
        return next(self._next)

    def generate_trace_id(self) -> int:
        return next(self._next)


def _check_row(row: dict[str, Any], attributes: dict[str, Any]) -> None:
    assert row["user_id"] is None or "user" in str(attributes) or "cost." in str(attributes)
    counts = [
        row[name]
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
            "reasoning_tokens",
        )
    ]
    assert all(value is None or 0 <= value <= MAX_TOKEN_COUNT for value in counts), row
    inputs, outputs, total = row["input_tokens"], row["output_tokens"], row["total_tokens"]
    assert total == (None if inputs is None or outputs is None else inputs + outputs), row
    if inputs is not None:
        assert (row["cache_read_tokens"] or 0) + (row["cache_write_tokens"] or 0) <= inputs, row
    if outputs is not None:
        assert (row["reasoning_tokens"] or 0) <= outputs, row
    for name in (
        "cost_usd",
        "input_cost_usd",
        "output_cost_usd",
        "cache_read_cost_usd",
        "cache_write_cost_usd",
        "cache_saved_usd",
        "external_cost_usd",
        "unbilled_cost_usd",
    ):
        assert row[name] is None or (isinstance(row[name], Decimal) and row[name] >= 0), row
    status = row["cost_status"]
    assert status in COST_STATUSES, row
    figure = row["cost_usd"] if row["billable"] else row["unbilled_cost_usd"]
    if row["billable"] is False:
        assert row["cost_usd"] is None, row
    if status in ("priced", "reported", "free"):
        assert figure is not None, row
    else:
        assert figure is None, row
        assert row["cost_reason"], row
    assert row["user_id"] is None or (row["user_id"].startswith("h:") and len(row["user_id"]) == 34), row


@pytest.mark.slow
def test_every_llm_looking_span_becomes_one_row_that_obeys_the_rules(
    tmp_path: Path, pricebook: PriceBook
) -> None:
    db = tmp_path / "fuzz.duckdb"
    provider = TracerProvider(id_generator=_CountingIds())
    provider.add_span_processor(
        LLMCostSpanProcessor(SimpleSpanProcessor(DuckDBSpanExporter(db)), pricing=pricebook)
    )
    tracer = provider.get_tracer("app")
    names = (f"s{index}" for index in itertools.count())
    sent: list[str] = []
    sent_attributes: dict[str, dict[str, Any]] = {}

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_attribute_sets)
    def emit(attributes: dict[str, Any]) -> None:
        name = next(names)
        tracer.start_span(name, attributes=attributes).end()  # raises into the test if anything leaks
        sent.append(name)
        sent_attributes[name] = attributes

    emit()
    provider.shutdown()
    with duckdb.connect(str(db), read_only=True) as con:
        cursor = con.execute("SELECT * FROM llm_calls")
        columns = [column[0] for column in cursor.description]
        rows = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
    missing = set(sent) - {row["span_name"] for row in rows}
    assert not missing, repr(sent_attributes[sorted(missing)[0]])
    assert len(rows) == len(sent)
    for row in rows:
        _check_row(row, sent_attributes[row["span_name"]])
