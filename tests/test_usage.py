"""normalize_usage: recorded spans of real instrumentations, the convention rules, and malformed input.

The recorded fixtures (tests/fixtures/spans, written by tests/recording/record.py) hold the spans real
SDK + instrumentation packages emitted against a fake provider, with the usage we expect derived from
what that provider returned. See /tests/recording/record.py for how the expectation is built.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.conventions.usage import Usage, normalize_usage

FIXTURES = Path(__file__).parent / "fixtures" / "spans"
EXPECTED_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "usage_reported",
    "request_model",
    "response_model",
    "provider",
    "response_id",
    "streaming",
    "is_aggregate",
)
EXPECTED_CONVENTION = {
    "com.anthropic.sdk.python": "anthropic_sdk",
    "openinference.instrumentation.openai": "openinference",
    "openinference.instrumentation.anthropic": "openinference",
    "opentelemetry.instrumentation.openai.v1": "traceloop",
    "opentelemetry.instrumentation.anthropic": "traceloop",
    "opentelemetry.util.genai.handler": "gen_ai",
    "opentelemetry.instrumentation.openai_v2": "gen_ai",
    "openlit.instrumentation.openai": "openlit",
    "openlit.instrumentation.anthropic": "openlit",
}


def _attributes(recorded: Mapping[str, Any]) -> dict[str, Any]:
    # JSON has lists where span attributes have tuples.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()}


def _recorded_spans() -> Iterator[Any]:
    for path in sorted(FIXTURES.glob("*.json")):
        fixture = json.loads(path.read_text())
        for i, span in enumerate(fixture["spans"]):
            yield pytest.param(fixture, span, id=f"{path.stem}[{i}:{span['scope']['name']}]")


RECORDED = list(_recorded_spans())
# Spans the processor writes token attributes on: LLM calls with reported usage.
RECORDED_WITH_USAGE = [p for p in RECORDED if (p.values[1]["expected"] or {}).get("usage_reported")]


def test_fixtures_cover_every_convention() -> None:
    scopes = {p.values[1]["scope"]["name"] for p in RECORDED}
    assert set(EXPECTED_CONVENTION.values()) == {EXPECTED_CONVENTION[s] for s in scopes}
    scenarios = {p.values[0]["scenario"] for p in RECORDED}
    assert {"openai_chat_stream_no_usage", "anthropic_messages", "openai_responses_stream"} <= scenarios


@pytest.mark.parametrize(("fixture", "span"), RECORDED)
def test_recorded_span_normalises_to_what_the_server_returned(
    fixture: Mapping[str, Any], span: Mapping[str, Any]
) -> None:
    usage = normalize_usage(_attributes(span["attributes"]), span["scope"]["name"])
    expected = span["expected"]
    if expected is None:
        assert usage is None
        return
    assert usage is not None
    got = {name: getattr(usage, name) for name in EXPECTED_FIELDS}
    assert got == {name: expected[name] for name in EXPECTED_FIELDS}, span.get("gaps")
    assert usage.convention == EXPECTED_CONVENTION[span["scope"]["name"]]
    assert usage.problems == ()


def _seed_attributes(usage: Usage) -> dict[str, Any]:
    """The token attributes the processor writes, as docs/processor.md lists them."""
    out: dict[str, Any] = {
        sc.LLM_TOKENS_INPUT: usage.input_tokens,
        sc.LLM_TOKENS_OUTPUT: usage.output_tokens,
        sc.LLM_TOKENS_TOTAL: usage.total_tokens,
        sc.LLM_TOKENS_CACHE_READ: usage.cache_read_tokens,
        sc.LLM_TOKENS_CACHE_WRITE: usage.cache_write_tokens,
        sc.LLM_TOKENS_REASONING: usage.reasoning_tokens,
        sc.LLM_CONVENTION: usage.convention,
    }
    if usage.cache_write_1h_tokens:
        out[sc.LLM_TOKENS_CACHE_WRITE_1H] = usage.cache_write_1h_tokens
    if usage.model is not None:
        out[sc.LLM_MODEL] = usage.model
    return out


@pytest.mark.parametrize(("fixture", "span"), RECORDED_WITH_USAGE)
def test_an_enriched_span_normalises_to_the_same_usage(
    fixture: Mapping[str, Any], span: Mapping[str, Any]
) -> None:
    attributes = _attributes(span["attributes"])
    scope = span["scope"]["name"]
    usage = normalize_usage(attributes, scope)
    assert usage is not None
    enriched = {**attributes, **_seed_attributes(usage)}
    assert normalize_usage(enriched, scope) == usage


def test_seed_names_alone_are_a_convention() -> None:
    usage = normalize_usage(
        {
            sc.LLM_TOKENS_INPUT: 2757,
            sc.LLM_TOKENS_OUTPUT: 250,
            sc.LLM_TOKENS_CACHE_READ: 2000,
            sc.LLM_TOKENS_CACHE_WRITE: 700,
            sc.LLM_TOKENS_CACHE_WRITE_1H: 300,
            sc.LLM_TOKENS_REASONING: 90,
            sc.LLM_MODEL: "claude-sonnet-4-5-20250929",
            sc.LLM_PROVIDER_NAME: "anthropic",
        }
    )
    assert usage == Usage(
        input_tokens=2757,
        output_tokens=250,
        cache_read_tokens=2000,
        cache_write_tokens=700,
        cache_write_1h_tokens=300,
        reasoning_tokens=90,
        response_model="claude-sonnet-4-5-20250929",
        provider="anthropic",
        convention="seed",
    )


# ------------------------------------------------------------------------------------------------
# Convention rules
# ------------------------------------------------------------------------------------------------


def test_openlit_anthropic_input_gets_its_cache_tokens_back() -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": 57,
        "gen_ai.usage.cache_read.input_tokens": 2000,
        "gen_ai.usage.cache_creation.input_tokens": 700,
        "gen_ai.usage.output_tokens": 250,
    }
    openlit = normalize_usage(attributes, "openlit.instrumentation.anthropic")
    assert openlit is not None
    assert (openlit.input_tokens, openlit.uncached_input_tokens, openlit.convention) == (2757, 57, "openlit")
    # The same names from OpenLIT's OpenAI instrumentation already include the cache.
    other = normalize_usage(
        {**attributes, "gen_ai.usage.input_tokens": 2757}, "openlit.instrumentation.openai"
    )
    assert other is not None
    assert other.input_tokens == 2757


@pytest.mark.parametrize("name", sc.CACHE_WRITE_NAMES)
def test_every_cache_write_name_is_read(name: str) -> None:
    usage = normalize_usage({"gen_ai.usage.input_tokens": 1000, name: 400, "gen_ai.usage.output_tokens": 1})
    assert usage is not None
    assert usage.cache_write_tokens == 400


def test_current_names_win_over_legacy_ones() -> None:
    usage = normalize_usage(
        {
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.prompt_tokens": 999,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.completion_tokens": 999,
            "gen_ai.usage.cache_read.input_tokens": 40,
            "gen_ai.usage.cache_read_input_tokens": 999,
            "gen_ai.provider.name": "openai",
            "gen_ai.system": "legacy",
        }
    )
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.provider) == (
        100,
        10,
        40,
        "openai",
    )


def test_legacy_names_alone_are_read() -> None:
    usage = normalize_usage(
        {
            "gen_ai.system": "Anthropic",
            "gen_ai.usage.prompt_tokens": 1500,
            "gen_ai.usage.completion_tokens": 20,
            "gen_ai.usage.cache_read_input_tokens": 1000,
            "gen_ai.usage.cache_creation_input_tokens": 300,
            "llm.request.type": "chat",
            "gen_ai.request.model": "claude-3-5-sonnet",
        }
    )
    assert usage == Usage(
        input_tokens=1500,
        output_tokens=20,
        cache_read_tokens=1000,
        cache_write_tokens=300,
        request_model="claude-3-5-sonnet",
        provider="anthropic",
        operation="chat",
        convention="traceloop",
    )


def test_old_traceloop_llm_usage_names() -> None:
    usage = normalize_usage(
        {
            "llm.request.type": "completion",
            "llm.usage.prompt_tokens": 30,
            "llm.usage.total_tokens": 50,
            "llm.is_streaming": False,
        }
    )
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.operation, usage.streaming) == (
        30,
        20,
        "text_completion",
        False,
    )


def test_response_model_is_preferred_to_the_request_model() -> None:
    usage = normalize_usage(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
        }
    )
    assert usage is not None
    assert usage.model == "gpt-4o-2024-08-06"
    assert usage.request_model == "gpt-4o"


def test_anthropic_sdk_splits_cache_writes_and_adds_compactions() -> None:
    usage = normalize_usage(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 2757,
            "gen_ai.usage.cache_read.input_tokens": 2000,
            "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": 400,
            "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 300,
            "gen_ai.usage.output_tokens": 250,
            "anthropic.usage.compaction.input_tokens": 5000,
            "anthropic.usage.compaction.output_tokens": 600,
        },
        sc.ANTHROPIC_SDK_SCOPE,
    )
    assert usage is not None
    # No cache_write.input_tokens: the total write is the 5m + 1h split.
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (700, 300)
    assert (usage.input_tokens, usage.output_tokens) == (7757, 850)
    assert usage.streaming is False  # the SDK sets gen_ai.request.stream only on streamed calls


def test_anthropic_sdk_count_tokens_span_is_not_a_call() -> None:
    attributes = {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "anthropic.message.count_tokens.input_tokens": 1234,
    }
    assert normalize_usage(attributes, sc.ANTHROPIC_SDK_SCOPE) is None


@pytest.mark.parametrize(
    "attributes",
    [
        {"openinference.span.kind": "AGENT", "llm.token_count.prompt": 10, "llm.token_count.completion": 5},
        {"openinference.span.kind": "CHAIN", "llm.token_count.total": 15, "llm.token_count.prompt": 10},
        {"traceloop.span.kind": "workflow", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5},
        {"traceloop.span.kind": "agent", "llm.usage.total_tokens": 15, "llm.usage.prompt_tokens": 10},
        {"traceloop.span.kind": "task", "gen_ai.usage.input_tokens": 10},
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 10},
        {"gen_ai.operation.name": "create_agent", "gen_ai.usage.output_tokens": 5},
        {"gen_ai.operation.name": "invoke_workflow", "gen_ai.usage.input_tokens": 10},
    ],
)
def test_agent_and_workflow_spans_with_counts_are_aggregates(attributes: dict[str, Any]) -> None:
    usage = normalize_usage(attributes)
    assert usage is not None
    assert usage.is_aggregate


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"http.request.method": "POST", "url.full": "https://api.openai.com/v1/chat/completions"},
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"},
        {"openinference.span.kind": "TOOL"},
        {"openinference.span.kind": "CHAIN", "session.id": "s-1"},
        {"traceloop.span.kind": "workflow", "traceloop.workflow.name": "invoice"},
    ],
)
def test_spans_that_are_not_llm_calls(attributes: dict[str, Any]) -> None:
    assert normalize_usage(attributes) is None


@pytest.mark.parametrize(
    "attributes",
    [
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},
        {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o"},
        {"llm.request.type": "chat", "gen_ai.request.model": "gpt-4o"},
        {"gen_ai.operation.name": "chat", "gen_ai.usage.total_tokens": 50},
    ],
)
def test_llm_calls_without_usable_counts_are_unreported(attributes: dict[str, Any]) -> None:
    usage = normalize_usage(attributes)
    assert usage is not None
    assert not usage.usage_reported
    assert (usage.input_tokens, usage.output_tokens) == (0, 0)


def test_reasoning_reported_apart_from_output_is_added_to_it() -> None:
    # total = input + output + reasoning: the provider counted thinking outside output.
    usage = normalize_usage(
        {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.reasoning.output_tokens": 30,
            "gen_ai.usage.total_tokens": 150,
        }
    )
    assert usage is not None
    assert (usage.output_tokens, usage.reasoning_tokens) == (50, 30)


# ------------------------------------------------------------------------------------------------
# Malformed values
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "count", "problem"),
    [
        (120, 120, None),
        ("120", 120, "coerced"),
        (" 120 ", 120, "coerced"),
        (120.0, 120, "coerced"),
        (120.5, None, "dropped"),
        (-5, None, "negative"),
        (True, None, "boolean"),
        (2**63, None, "out of range"),
        (2**80, None, "out of range"),
        (math.nan, None, "dropped"),
        (math.inf, None, "dropped"),
        ("1e3", None, "dropped"),
        ("-3", None, "dropped"),
        ("", None, "dropped"),
        ((1, 2), None, "dropped"),
        ([1, 2], None, "dropped"),
        (b"12", None, "dropped"),
    ],
)
def test_malformed_counts_are_dropped_or_coerced(
    value: object, count: int | None, problem: str | None
) -> None:
    usage = normalize_usage(
        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": value, "gen_ai.usage.output_tokens": 7}
    )
    assert usage is not None
    assert usage.input_tokens == (count or 0)
    if problem is None:
        assert usage.problems == ()
    else:
        assert len(usage.problems) == 1
        assert usage.problems[0].startswith("gen_ai.usage.input_tokens:")
        assert problem in usage.problems[0]


def test_an_invalid_current_name_falls_back_to_the_legacy_one() -> None:
    usage = normalize_usage({"gen_ai.usage.input_tokens": "lots", "gen_ai.usage.prompt_tokens": 42})
    assert usage is not None
    assert usage.input_tokens == 42
    assert len(usage.problems) == 1


def test_inconsistent_counts_are_repaired_and_described() -> None:
    usage = normalize_usage(
        {
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.cache_read.input_tokens": 100,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.usage.reasoning.output_tokens": 50,
        }
    )
    assert usage is not None
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens, usage.reasoning_tokens) == (
        110,
        100,
        55,
        50,
    )
    assert len(usage.problems) == 2


def test_non_string_models_and_providers_are_dropped() -> None:
    usage = normalize_usage(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": 4,
            "gen_ai.response.model": "",
            "gen_ai.provider.name": ("openai",),
            "gen_ai.request.stream": "yes",
        }
    )
    assert usage is not None
    assert (usage.model, usage.provider, usage.streaming) == (None, None, None)
    assert len(usage.problems) == 4


class _BrokenMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("broken attributes")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("broken attributes")

    def __len__(self) -> int:
        return 1

    def __contains__(self, key: object) -> bool:
        raise RuntimeError("broken attributes")


def test_a_mapping_that_raises_gives_none_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost.usage"):
        assert normalize_usage(_BrokenMapping()) is None
        assert normalize_usage(_BrokenMapping(), "openlit.instrumentation.anthropic") is None
    logged = [r for r in caplog.records if r.name == "otel_llm_cost.usage"]
    assert len(logged) <= 1  # once per process: an earlier test may have logged it already
    assert all("could not read" in r.getMessage() for r in logged)


# ------------------------------------------------------------------------------------------------
# Property: never raises, invariants hold
# ------------------------------------------------------------------------------------------------

_NAMES_WE_READ = sorted(
    {
        value
        for name, value in vars(sc).items()
        if name.isupper() and isinstance(value, str) and not value.endswith(".")
    }
)
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=5000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(
        ["12", " 7 ", "-1", "1e9", "nan", "chat", "AGENT", "LLM", "workflow", "true", "invoke_agent"]
    ),
    st.lists(st.integers(), max_size=3),
    st.tuples(st.text(max_size=3)),
)
_SCOPES = st.sampled_from(
    [None, sc.ANTHROPIC_SDK_SCOPE, sc.OPENLIT_ANTHROPIC_SCOPE, "openlit.instrumentation.openai", "x", ""]
)


@settings(max_examples=400, deadline=None)
@given(
    attributes=st.dictionaries(st.one_of(st.sampled_from(_NAMES_WE_READ), st.text(max_size=6)), _VALUES),
    scope=_SCOPES,
)
def test_random_attributes_never_raise_and_keep_the_invariants(
    attributes: dict[str, Any], scope: str | None
) -> None:
    usage = normalize_usage(attributes, scope)
    if usage is None:
        return
    counts = (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.cache_write_1h_tokens,
        usage.reasoning_tokens,
    )
    assert all(type(c) is int and c >= 0 for c in counts)
    assert usage.cache_read_tokens + usage.cache_write_tokens <= usage.input_tokens
    assert usage.cache_write_1h_tokens <= usage.cache_write_tokens
    assert usage.reasoning_tokens <= usage.output_tokens
    assert usage.uncached_input_tokens >= 0
    if not usage.usage_reported:
        assert counts == (0, 0, 0, 0, 0, 0)
    for text in (
        usage.request_model,
        usage.response_model,
        usage.provider,
        usage.operation,
        usage.response_id,
    ):
        assert text is None or (type(text) is str and text)
    assert usage.streaming in (None, True, False)
    assert all(type(p) is str for p in usage.problems)


def test_normalised_usage_is_an_ordinary_frozen_usage() -> None:
    # normalize_usage builds Usage through slot descriptors (speed); the result must be
    # indistinguishable from one built by the dataclass constructor.
    usage = normalize_usage(
        {
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_PROVIDER_NAME: "Anthropic",
            sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 1_000,
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 600,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 200,
            sc.GEN_AI_RESPONSE_ID: "msg_1",
            sc.GEN_AI_REQUEST_STREAM: "yes",
        }
    )
    assert usage is not None
    rebuilt = Usage(**{f.name: getattr(usage, f.name) for f in dataclasses.fields(Usage)})

    assert type(usage) is Usage
    assert usage == rebuilt
    assert hash(usage) == hash(rebuilt)
    assert repr(usage) == repr(rebuilt)
    assert (usage.provider, usage.cache_read_tokens, usage.response_id) == ("anthropic", 600, "msg_1")
    assert usage.problems  # the malformed stream flag is reported
    assert dataclasses.replace(usage, output_tokens=1).output_tokens == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        usage.input_tokens = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0},
        {sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0},
    ],
    ids=["no-optional-counts", "zero-cache-read", "zero-reasoning"],
)
def test_spans_without_cache_or_reasoning_counts_read_like_zero_counts(extra: dict[str, int]) -> None:
    # Spans with none of the optional count names skip their lookups; the result must be the one
    # explicit zero counts give.
    base = {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 10,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
    }
    assert normalize_usage({**base, **extra}) == normalize_usage(
        {**base, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0, sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0}
    )
