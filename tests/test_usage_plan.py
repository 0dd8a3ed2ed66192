"""The per-shape plans (usage reading and enrichment steps) give exactly what the general path gives.

A plan is compiled from a span's attribute names and scope only; reading a span through it must give
the Usage ``normalize_usage`` gives, or ``None`` (then the caller takes the general path), whatever
the values: well formed, malformed, missing. The enrichment of a span whose shape has a plan must
equal the enrichment of the same span when no plan can be kept (the plan table full).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.conventions.usage import normalize_usage
from otel_llm_cost.conventions.usage_plan import compile_usage_plan
from otel_llm_cost.enrich import span_plan as span_plans
from otel_llm_cost.enrich.attribution import UserIdHasher
from otel_llm_cost.enrich.enrichment import _enrichment
from otel_llm_cost.pricing import PriceBook

FIXTURES = Path(__file__).parent / "fixtures" / "spans"
HASHER = UserIdHasher(key=b"usage-plan-test-key-0123456789ab")
START_NS = 1_764_900_000_000_000_000


def _recorded() -> Iterator[tuple[str, dict[str, Any], bool]]:
    for path in sorted(FIXTURES.glob("*.json")):
        for span in json.loads(path.read_text())["spans"]:
            attributes = {k: tuple(v) if isinstance(v, list) else v for k, v in span["attributes"].items()}
            reported = bool((span["expected"] or {}).get("usage_reported"))
            yield span["scope"]["name"], attributes, reported


RECORDED = list(_recorded())
SCOPES = [*sorted({scope for scope, _, _ in RECORDED}), sc.OPENLIT_ANTHROPIC_SCOPE, "app"]


def test_every_recorded_call_with_usage_is_read_through_its_plan() -> None:
    read = 0
    for scope, attributes, reported in RECORDED:
        plan = compile_usage_plan(tuple(attributes), scope)
        usage = plan.read(attributes) if plan is not None else None
        if usage is not None:
            read += 1
            assert usage == normalize_usage(attributes, scope)
        elif reported:
            pytest.fail(f"no plan read a recorded call with usage: {scope} {sorted(attributes)}")
    assert read >= 30


_VALUES = st.one_of(
    st.integers(0, 5000),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.sampled_from(["12", " 7 ", "", "  ", "gpt-4o ", "Chat", "LLM", "EMBEDDING", "AGENT", "invoke_agent",
                     "workflow", "completion", "true", "Flex", "x" * 300, "İ" * 200]),
)  # fmt: skip
_EXTRA_NAMES = st.sampled_from(
    [
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        sc.GEN_AI_USAGE_TOTAL_TOKENS,
        sc.ANTHROPIC_USAGE_CACHE_CREATION_1H_INPUT_TOKENS,
        sc.ANTHROPIC_USAGE_COMPACTION_INPUT_TOKENS,
        sc.GEN_AI_REQUEST_STREAM,
        sc.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER,
        sc.OPENINFERENCE_SPAN_KIND,
        sc.TRACELOOP_SPAN_KIND,
        sc.LLM_REQUEST_TYPE,
        sc.GEN_AI_OPERATION_NAME,
        sc.LLM_TOKENS_INPUT,
        sc.GEN_AI_USAGE_COST,
        sc.USER_ID,
        sc.TRACELOOP_ASSOCIATION_PREFIX + "user_id",
        sc.COST_USER_ID,
        sc.LLM_RESPONSE_FROM_CACHE,
    ]
)


@st.composite
def spans(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A recorded span's names with values that are mostly its own, some replaced, some added."""
    scope, recorded, _ = draw(st.sampled_from(RECORDED))
    attributes = {
        name: draw(_VALUES) if draw(st.integers(0, 9)) == 0 else value for name, value in recorded.items()
    }
    for name in draw(st.lists(_EXTRA_NAMES, max_size=3)):
        attributes[name] = draw(_VALUES)
    attributes = {
        name: value for name, value in attributes.items() if value is not None or draw(st.booleans())
    }
    return draw(st.sampled_from([scope, scope, *SCOPES])), attributes


@settings(max_examples=600, deadline=None)
@given(span=spans())
def test_a_plan_reads_what_the_general_path_reads_or_declines(span: tuple[str, dict[str, Any]]) -> None:
    scope, attributes = span
    plan = compile_usage_plan(tuple(attributes), scope)
    usage = plan.read(attributes) if plan is not None else None
    if usage is not None:
        assert usage == normalize_usage(attributes, scope)


@pytest.fixture(scope="module")
def pricebook() -> PriceBook:
    return PriceBook.default()


@settings(max_examples=300, deadline=None)
@given(span=spans())
def test_a_span_of_a_kept_shape_is_enriched_as_without_plans(
    span: tuple[str, dict[str, Any]], pricebook: PriceBook
) -> None:
    scope, attributes = span
    kept = span_plans._PLANS.copy()
    try:
        span_plans._PLANS.clear()
        planned = _enrichment(attributes, scope, START_NS, pricebook, HASHER)
        assert span_plans._PLANS, "the shape got a plan"
        # A full table keeps no new shape: the same span then takes the general path throughout.
        span_plans._PLANS.clear()
        span_plans._PLANS.update(dict.fromkeys(((n, ()) for n in range(span_plans._MAX_PLANS)), None))  # type: ignore[arg-type]
        general = _enrichment(attributes, scope, START_NS, pricebook, HASHER)
        assert span_plans.span_plan(attributes, scope) is span_plans._GENERAL
    finally:
        span_plans._PLANS.clear()
        span_plans._PLANS.update(kept)
    assert planned == general
    assert list(planned or ()) == list(general or ())  # the same names in the same order
    assert [type(v) for v in (planned or {}).values()] == [type(v) for v in (general or {}).values()]


def test_the_usual_recorded_calls_are_enriched_in_one_pass_as_the_general_path_does(
    pricebook: PriceBook,
) -> None:
    one_pass = 0
    for scope, attributes, _ in RECORDED:
        plain = span_plans.span_plan(attributes, scope).plain_attributes(attributes, pricebook)
        if plain is None:
            continue
        one_pass += 1
        kept = span_plans._PLANS.copy()
        try:
            span_plans._PLANS.clear()
            span_plans._PLANS.update(dict.fromkeys(((n, ()) for n in range(span_plans._MAX_PLANS)), None))  # type: ignore[arg-type]
            expected = _enrichment(attributes, scope, START_NS, pricebook, HASHER)
        finally:
            span_plans._PLANS.clear()
            span_plans._PLANS.update(kept)
        assert expected is not None
        assert list(plain.items()) == list(expected.items())
        assert [type(v) for v in plain.values()] == [type(v) for v in expected.values()]
    assert one_pass >= 5  # most recorded calls read cache tokens: the general path prices those
