"""Laws of the PriceBook: it agrees with genai-prices' calc_price, and cost is non-negative and
monotonic in every token count."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices.data import providers
from genai_prices.data_snapshot import get_snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_llm_cost.conventions.usage import Usage
from otel_llm_cost.pricing import MONEY_QUANTUM, CostBreakdown, CostStatus, PriceBook

# The data layer alone: these laws compare it with calc_price on the same data. What our corrections
# change is checked at the end of the sweep below.
NO_CORRECTIONS = Path(__file__).parent / "fixtures" / "prices" / "no_corrections.json"
BOOK = PriceBook(corrections_file=NO_CORRECTIONS)
SHIPPED = PriceBook()

# Real models covering every pricing feature: plain, cache read, 5m/1h cache writes, long-context
# tiers, price changes on a date, time-of-day prices, per-request fees, Bedrock and Vertex ids.
SAMPLE = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini-2024-07-18", "openai"),
    ("o3", "openai"),  # $10/$40 -> $2/$8 on 2025-06-10
    ("claude-sonnet-4-20250514", "anthropic"),  # 1h cache writes
    ("claude-opus-4-20250514", "anthropic"),
    ("claude-sonnet-4-5", "anthropic"),  # tiers + 1h cache writes
    ("claude-opus-4-6", "anthropic"),  # tiers, then a dated change
    ("gemini-2.5-pro", "google"),  # tiers on input, output and cache reads
    ("gemini-2.5-flash", "google"),
    ("deepseek-chat", "deepseek"),  # off-peak time-of-day prices
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", "aws"),
    ("claude-3-5-sonnet-v2@20241022", "google"),
    ("grok-4.20", "x-ai"),  # tiers, then a dated change
    ("sonar", "perplexity"),  # per-request fee
    ("mistral-large-latest", "mistral"),
]
TIER_EDGES = [0, 1, 128_000, 200_000, 200_001, 272_000, 272_001, 1_000_000]

token = st.one_of(st.integers(0, 2_000), st.integers(0, 1_500_000), st.sampled_from(TIER_EDGES))
moment = st.datetimes(
    min_value=datetime(2023, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds; timezones= adds UTC
    max_value=datetime(2027, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@st.composite
def token_counts(draw: st.DrawFn) -> dict[str, int]:
    """Counts that respect Usage's invariants: input is the total including cache tokens."""
    uncached, cache_read, cache_write_5m, cache_write_1h, output = (draw(token) for _ in range(5))
    return {
        "input_tokens": uncached + cache_read + cache_write_5m + cache_write_1h,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write_5m + cache_write_1h,
        "cache_write_1h_tokens": cache_write_1h,
        "output_tokens": output,
    }


def genai_total(model: str, provider: str, counts: dict[str, int], at: datetime) -> Decimal:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # genai-prices warns about price keys it does not use
        result = genai_prices.calc_price(
            genai_prices.Usage(**counts), model, provider_id=provider, genai_request_timestamp=at
        )
    return result.total_price.quantize(MONEY_QUANTUM)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(SAMPLE), counts=token_counts(), at=moment)
def test_compute_cost_equals_genai_prices_calc_price(
    model: tuple[str, str], counts: dict[str, int], at: datetime
) -> None:
    model_ref, provider = model

    ours = BOOK.compute_cost(Usage(request_model=model_ref, provider=provider, **counts), at=at)

    assert ours.status is CostStatus.PRICED
    assert ours.total_usd == genai_total(model_ref, provider, counts, at)


def _models_genai_resolves_to_themselves() -> list[tuple[str, str]]:
    snapshot = get_snapshot()
    found = []
    for provider in providers:
        for model in provider.models:
            try:
                _, matched = snapshot.find_provider_model(model.id, None, provider.id, None)
            except LookupError:
                continue
            if matched is model:
                found.append((model.id, provider.id))
    return found


@pytest.mark.slow
def test_every_bundled_model_matches_calc_price() -> None:
    # Deterministic sweep of the whole bundled table (~2,200 entries): dates before, between and
    # after price changes, a long-context call with every cache kind, and a small call.
    moments = [
        datetime(2023, 1, 1, tzinfo=UTC),
        datetime(2025, 6, 10, 3, tzinfo=UTC),
        datetime(2026, 3, 20, 20, tzinfo=UTC),
        datetime(2027, 6, 1, 12, tzinfo=UTC),
    ]
    usages = [
        {
            "input_tokens": 300_000,
            "cache_read_tokens": 50_000,
            "cache_write_tokens": 20_000,
            "cache_write_1h_tokens": 5_000,
            "output_tokens": 7_000,
        },
        {"input_tokens": 1234, "output_tokens": 99},
    ]
    compared = 0
    mismatches: list[Any] = []
    corrected: set[tuple[str, str, str | None]] = set()
    for model_ref, provider in _models_genai_resolves_to_themselves():
        for at in moments:
            for counts in usages:
                usage = Usage(request_model=model_ref, provider=provider, **counts)
                ours = BOOK.compute_cost(usage, at=at)
                expected = genai_total(model_ref, provider, counts, at)
                shipped = SHIPPED.compute_cost(usage, at=at)
                if shipped.total_usd != ours.total_usd:
                    corrected.add((provider, model_ref, shipped.source))
                if ours.status is CostStatus.UNPRICED:
                    # Entries without any token price (image/audio-only): genai-prices says $0,
                    # we say "unpriced" rather than a silent 0.
                    assert expected == 0, (provider, model_ref)
                    continue
                compared += 1
                if ours.total_usd != expected:
                    mismatches.append((provider, model_ref, at, counts, ours.total_usd, expected))

    assert compared > 10_000
    assert mismatches == []
    # The shipped corrections change exactly the entries they name, and say so in the source.
    version = genai_prices.__version__
    assert corrected == {("anthropic", "claude-sonnet-4-0", f"genai-prices {version} + corrections")}


INCREMENTS = {
    "uncached input": {"input_tokens": 1},
    "cache read": {"input_tokens": 1, "cache_read_tokens": 1},
    "5m cache write": {"input_tokens": 1, "cache_write_tokens": 1},
    "1h cache write": {"input_tokens": 1, "cache_write_tokens": 1, "cache_write_1h_tokens": 1},
    "output": {"output_tokens": 1},
}


def _cost(model: tuple[str, str], counts: dict[str, int], at: datetime) -> CostBreakdown:
    return BOOK.compute_cost(Usage(request_model=model[0], provider=model[1], **counts), at=at)


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(SAMPLE),
    counts=token_counts(),
    at=moment,
    kind=st.sampled_from(sorted(INCREMENTS)),
    amount=st.integers(1, 500_000),
)
def test_cost_is_non_negative_and_monotonic_in_every_token_count(
    model: tuple[str, str], counts: dict[str, int], at: datetime, kind: str, amount: int
) -> None:
    more = {key: value + amount * INCREMENTS[kind].get(key, 0) for key, value in counts.items()}

    before = _cost(model, counts, at)
    after = _cost(model, more, at)

    assert before.total_usd is not None
    assert after.total_usd is not None
    assert before.total_usd >= 0
    for part in (before.input_usd, before.cache_read_usd, before.cache_write_usd, before.output_usd):
        assert part is not None
        assert part >= 0
    assert after.total_usd >= before.total_usd


@settings(max_examples=200, deadline=None)
@given(model=st.sampled_from(SAMPLE), counts=token_counts(), at=moment)
def test_parts_add_up_and_cache_savings_are_consistent(
    model: tuple[str, str], counts: dict[str, int], at: datetime
) -> None:
    cost = _cost(model, counts, at)

    parts = (cost.input_usd, cost.cache_read_usd, cost.cache_write_usd, cost.output_usd, cost.request_usd)
    assert all(part is not None for part in parts)
    # Each part is quantized separately; they can differ from the total by half a quantum each.
    assert abs(sum(part for part in parts if part is not None) - (cost.total_usd or 0)) <= MONEY_QUANTUM * 3
    assert cost.cache_saved_usd is not None
    assert cost.cache_saved_usd >= 0
    if counts["cache_read_tokens"] == 0:
        assert cost.cache_saved_usd == 0


@given(
    counts=token_counts(),
    at=moment,
    offset=st.integers(-14, 14).map(lambda hours: timedelta(hours=hours)),
)
@settings(max_examples=100, deadline=None)
def test_price_depends_on_the_instant_not_the_time_zone(
    counts: dict[str, int], at: datetime, offset: timedelta
) -> None:
    same_instant = at.astimezone(timezone(offset))

    assert _cost(("o3", "openai"), counts, at) == _cost(("o3", "openai"), counts, same_instant)


@pytest.mark.parametrize("bad", [-1, 10**40])
def test_out_of_range_counts_are_unpriced_not_raised(bad: int) -> None:
    # Usage drops such values; compute_cost still must not raise on the span path, nor charge < 0.
    cost = BOOK.compute_cost(
        Usage(request_model="gpt-4o", provider="openai", input_tokens=bad, output_tokens=bad)
    )

    assert cost.status is CostStatus.UNPRICED
    assert cost.total_usd is None
    assert cost.reason is not None
    assert cost.reason.startswith("cost out of range")
    assert cost.model_id == "gpt-4o"
