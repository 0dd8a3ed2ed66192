"""PriceBook against the providers' list prices, model-id forms seen in real spans, and the layers.

Each golden figure names the public price page it comes from; the arithmetic is in the comment so
a reviewer can check it without running anything.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, date, datetime
from decimal import ROUND_DOWN, Context, Decimal, localcontext
from pathlib import Path

import pytest
from genai_prices import data_snapshot

from otel_llm_cost._logging import reset_log_once
from otel_llm_cost.conventions.usage import Usage
from otel_llm_cost.exceptions import PriceFileError, UnknownModelError
from otel_llm_cost.pricing import MONEY_QUANTUM, CostBreakdown, CostStatus, PriceBook, provider_id_for

FIXTURES = Path(__file__).parent / "fixtures" / "prices"
D = Decimal


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


def usage(model: str | None, provider: str | None = None, **tokens: int) -> Usage:
    return Usage(request_model=model, provider=provider, **tokens)


# (model, provider, usage, expected USD, source of the list price)
GOLDEN = [
    pytest.param(
        "gpt-4o",
        "openai",
        {"input_tokens": 1000, "output_tokens": 500},
        D("0.0075"),
        id="gpt-4o",
        # https://openai.com/api/pricing: gpt-4o $2.50 in / $10.00 out per 1M -> 1000*2.5e-6 + 500*10e-6
    ),
    pytest.param(
        "gpt-4o",
        "openai",
        {"input_tokens": 1000, "cache_read_tokens": 800, "output_tokens": 500},
        D("0.0065"),
        id="gpt-4o-cached",
        # same page, cached input $1.25: 200*2.5e-6 + 800*1.25e-6 + 500*10e-6 = 0.0005 + 0.001 + 0.005
    ),
    pytest.param(
        "claude-sonnet-4-20250514",
        "anthropic",
        {"input_tokens": 8000, "cache_write_tokens": 2000, "cache_read_tokens": 5000, "output_tokens": 300},
        D("0.0165"),
        id="claude-sonnet-4-cache",
        # https://docs.anthropic.com/en/docs/about-claude/pricing: Sonnet 4 $3 in, $3.75 5m cache write,
        # $0.30 cache hit, $15 out: 1000*3e-6 + 2000*3.75e-6 + 5000*0.3e-6 + 300*15e-6
        # = 0.003 + 0.0075 + 0.0015 + 0.0045 (input_tokens is the total, 8000)
    ),
    pytest.param(
        "claude-opus-4-20250514",
        "anthropic",
        {"input_tokens": 10_000, "cache_write_tokens": 10_000, "cache_write_1h_tokens": 10_000},
        D("0.30"),
        id="claude-opus-4-1h-cache-write",
        # same page: Opus 4 1h cache writes $30 per 1M (2x the $15 base input): 10,000 * 30e-6
    ),
    pytest.param(
        "gemini-2.5-pro",
        "gcp.gemini",
        {"input_tokens": 250_000, "output_tokens": 1000},
        D("0.64"),
        id="gemini-2.5-pro-long-context",
        # https://ai.google.dev/gemini-api/docs/pricing: prompts > 200k tokens $2.50 in / $15 out,
        # for the whole call: 250,000*2.5e-6 + 1000*15e-6 = 0.625 + 0.015
    ),
    pytest.param(
        "gemini-2.5-pro",
        "gcp.gemini",
        {"input_tokens": 200_000, "output_tokens": 1000},
        D("0.26"),
        id="gemini-2.5-pro-200k-is-base-tier",
        # same page, prompts <= 200k $1.25 / $10: 200,000*1.25e-6 + 1000*10e-6 = 0.25 + 0.01
    ),
]


@pytest.mark.parametrize(("model", "provider", "tokens", "expected"), GOLDEN)
def test_golden_list_prices(
    book: PriceBook, model: str, provider: str, tokens: dict[str, int], expected: Decimal
) -> None:
    cost = book.compute_cost(usage(model, provider, **tokens))

    assert cost.status is CostStatus.PRICED
    assert cost.total_usd == expected
    assert cost.total_usd.as_tuple().exponent == MONEY_QUANTUM.as_tuple().exponent
    parts = [cost.input_usd, cost.cache_read_usd, cost.cache_write_usd, cost.output_usd, cost.request_usd]
    assert sum(p for p in parts if p is not None) == cost.total_usd
    assert cost.source is not None
    assert cost.source.startswith("genai-prices ")


def test_breakdown_by_kind_claude_sonnet_4(book: PriceBook) -> None:
    cost = book.compute_cost(
        usage(
            "claude-sonnet-4-20250514",
            "anthropic",
            input_tokens=8000,
            cache_write_tokens=2000,
            cache_read_tokens=5000,
            output_tokens=300,
        )
    )

    assert (cost.input_usd, cost.cache_write_usd, cost.cache_read_usd, cost.output_usd) == (
        D("0.003"),
        D("0.0075"),
        D("0.0015"),
        D("0.0045"),
    )
    # 5000 cache reads at the $3 input price would be $0.015; they cost $0.0015.
    assert cost.cache_saved_usd == D("0.0135")
    assert (cost.model_id, cost.provider_id) == ("claude-sonnet-4-0", "anthropic")


def test_mixed_5m_and_1h_cache_writes(book: PriceBook) -> None:
    # Opus 4: 5m writes $18.75, 1h writes $30 per 1M; 4000 writes of which 1000 are 1h.
    cost = book.compute_cost(
        usage(
            "claude-opus-4-20250514",
            input_tokens=4000,
            cache_write_tokens=4000,
            cache_write_1h_tokens=1000,
        )
    )

    assert cost.cache_write_usd == D("0.05625") + D("0.03")
    assert cost.input_usd == 0


def test_reasoning_tokens_are_charged_once_as_output(book: PriceBook) -> None:
    with_reasoning = book.compute_cost(
        usage("o3-mini", input_tokens=100, output_tokens=1000, reasoning_tokens=800)
    )
    without = book.compute_cost(usage("o3-mini", input_tokens=100, output_tokens=1000))

    assert with_reasoning.total_usd == without.total_usd


def test_unknown_model_is_unpriced_not_zero(book: PriceBook, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="otel_llm_cost.pricing")
    model = "acme-unreleased-model-7"

    first = book.compute_cost(usage(model, input_tokens=1000, output_tokens=10))
    second = book.compute_cost(usage(model, input_tokens=5, output_tokens=5))

    assert first.status is CostStatus.UNPRICED
    assert first.total_usd is None
    assert first.input_usd is None
    assert first.reason is not None
    assert model in first.reason
    assert second == first
    logged = [r for r in caplog.records if model in r.getMessage()]
    assert len(logged) == 1, "the unknown model is logged once, not per call"


def test_missing_model_attribute_is_unpriced(book: PriceBook) -> None:
    cost = book.compute_cost(usage(None, "openai", input_tokens=10))

    assert cost.status is CostStatus.UNPRICED
    assert cost.total_usd is None
    assert cost.reason == "no model attribute on the span"
    assert cost.provider_id == "openai"


def test_usage_not_reported_is_unpriced(book: PriceBook) -> None:
    if "usage_reported" not in {f.name for f in dataclasses.fields(Usage)}:
        pytest.skip("Usage.usage_reported is not in usage.py yet (issue: usage normalisation)")
    no_counts = Usage(request_model="gpt-4o", provider="openai", usage_reported=False)  # type: ignore[call-arg]

    cost = book.compute_cost(no_counts)

    assert cost.status is CostStatus.UNPRICED
    assert cost.total_usd is None
    assert cost.reason == "no usage reported"


def test_provider_reported_cost_wins(book: PriceBook) -> None:
    cost = book.compute_cost(
        usage("gpt-4o", "openai", input_tokens=1000, output_tokens=500), reported_cost_usd=D("0.0123")
    )

    assert cost.status is CostStatus.REPORTED
    assert cost.total_usd == D("0.0123")
    assert cost.source == "provider"
    assert cost.provider_id == "openai"


@pytest.mark.parametrize("bad", [D("-1"), D("NaN"), D("Infinity")])
def test_invalid_reported_cost_is_ignored_and_the_call_priced(book: PriceBook, bad: Decimal) -> None:
    cost = book.compute_cost(usage("gpt-4o", input_tokens=1000, output_tokens=500), reported_cost_usd=bad)

    assert cost.status is CostStatus.PRICED
    assert cost.total_usd == D("0.0075")


# Model ids as real instrumentations report them. Expected entries are genai-prices' ids.
RESOLUTION = [
    pytest.param("gpt-4o-2024-08-06", None, "openai", "gpt-4o", id="openai-dated"),
    pytest.param("claude-3-5-sonnet-20241022", None, "anthropic", "claude-3-5-sonnet", id="anthropic-dated"),
    pytest.param(
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "aws.bedrock",
        "aws",
        "regional.anthropic.claude-3-5-sonnet-20240620-v1:0",
        id="bedrock",
    ),
    pytest.param(
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        None,
        "aws",
        "regional.anthropic.claude-3-5-sonnet-20241022-v2:0",
        id="bedrock-without-provider",
    ),
    pytest.param(
        "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
        "Bedrock",
        "aws",
        "regional.anthropic.claude-3-5-sonnet-20240620-v1:0",
        id="bedrock-cross-region-legacy-system",
    ),
    pytest.param(
        "claude-3-5-sonnet-v2@20241022", "gcp.vertex_ai", "google", "claude-3-5-sonnet", id="vertex-at-date"
    ),
    pytest.param(
        "publishers/anthropic/models/claude-3-5-sonnet-v2@20241022",
        "gcp.vertex_ai",
        "google",
        "claude-3-5-sonnet",
        id="vertex-resource-path",
    ),
    pytest.param("openai/gpt-4o", None, "openai", "gpt-4o", id="provider-slash-model"),
    pytest.param(
        "models/gemini-2.5-pro", "gcp.gen_ai", "google", "gemini-2.5-pro", id="google-models-prefix"
    ),
    pytest.param(
        "meta-llama/llama-3.1-8b-instruct",
        "openai",
        "openrouter",
        "meta-llama/llama-3.1-8b-instruct",
        id="openrouter-via-openai-sdk",
    ),
    pytest.param(
        "anthropic/claude-3.5-sonnet",
        "openrouter",
        "openrouter",
        "anthropic/claude-3.5-sonnet",
        id="openrouter",
    ),
    pytest.param("gpt-4o", "azure.ai.openai", "azure", "gpt-4o", id="azure-openai"),
    pytest.param("my-resource/gpt-4o", "azure.ai.openai", "azure", "gpt-4o", id="resource-slash-model"),
    pytest.param(
        "claude-3-5-sonnet-20241022", "openai", "anthropic", "claude-3-5-sonnet", id="proxy-mismatch"
    ),
    pytest.param("grok-3", "x_ai", "x-ai", "grok-3", id="xai"),
    pytest.param("mistral-large-latest", "mistral_ai", "mistral", "mistral-large", id="mistral"),
]


@pytest.mark.parametrize(("model", "provider", "expected_provider", "expected_model"), RESOLUTION)
def test_model_id_forms_resolve(
    book: PriceBook, model: str, provider: str | None, expected_provider: str, expected_model: str
) -> None:
    cost = book.compute_cost(usage(model, provider, input_tokens=1000, output_tokens=100))

    assert cost.status is CostStatus.PRICED, cost.reason
    assert (cost.provider_id, cost.model_id) == (expected_provider, expected_model)
    assert cost.total_usd is not None
    assert cost.total_usd > 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("aws.bedrock", "aws"),
        ("azure.ai.openai", "azure"),
        ("azure.ai.inference", "azure"),
        ("gcp.gemini", "google"),
        ("gcp.vertex_ai", "google"),
        ("gcp.gen_ai", "google"),
        ("mistral_ai", "mistral"),
        ("x_ai", "x-ai"),
        ("deepseek", "deepseek"),
        ("groq", "groq"),
        ("cohere", "cohere"),
        ("perplexity", "perplexity"),
        ("ibm.watsonx.ai", None),  # genai-prices has no watsonx prices: match by model
        ("Anthropic", "anthropic"),  # legacy gen_ai.system, OpenLLMetry capitalisation
        ("Bedrock", "aws"),
        ("AWS", "aws"),
        ("az.ai.inference", "azure"),
        ("vertex_ai", "google"),
        ("mistralai", "mistral"),  # OpenInference llm.provider / llm.system
        ("xai", "x-ai"),
        ("google", "google"),
        ("vertexai", "google"),
        ("together_ai", "together"),
        ("openrouter", "openrouter"),
        ("", None),
        (None, None),
        ("acme-internal-gateway", None),
    ],
)
def test_provider_id_for(name: str | None, expected: str | None) -> None:
    assert provider_id_for(name) == expected


def test_unknown_provider_falls_back_to_the_model(book: PriceBook) -> None:
    cost = book.compute_cost(usage("gpt-4o", "acme-internal-gateway", input_tokens=1000, output_tokens=500))

    assert (cost.provider_id, cost.total_usd) == ("openai", D("0.0075"))


def test_price_in_force_at_call_time(book: PriceBook) -> None:
    # OpenAI cut o3 from $10/$40 to $2/$8 per 1M on 2025-06-10 (https://openai.com/api/pricing);
    # genai-prices records it as a start-date price on the o3 entry.
    calls = usage("o3", "openai", input_tokens=1000, output_tokens=1000)

    before = book.compute_cost(calls, at=datetime(2025, 6, 9, 23, 59, 59, tzinfo=UTC))
    on_the_day = book.compute_cost(calls, at=datetime(2025, 6, 10, tzinfo=UTC))
    naive_utc = book.compute_cost(calls, at=datetime(2025, 6, 9, 12, 0))  # noqa: DTZ001 - naive means UTC

    assert before.total_usd == D("0.05")  # 1000*10e-6 + 1000*40e-6
    assert on_the_day.total_usd == D("0.01")  # 1000*2e-6 + 1000*8e-6
    assert naive_utc.total_usd == D("0.05")


def test_time_of_day_prices(book: PriceBook) -> None:
    # genai-prices models DeepSeek's off-peak (16:30-00:30 UTC) discount with a time-of-day rule.
    calls = usage("deepseek-chat", "deepseek", input_tokens=1_000_000, output_tokens=0)

    peak = book.compute_cost(calls, at=datetime(2025, 3, 1, 10, 0, tzinfo=UTC))
    off_peak = book.compute_cost(calls, at=datetime(2025, 3, 1, 18, 0, tzinfo=UTC))

    assert peak.total_usd is not None
    assert off_peak.total_usd is not None
    assert off_peak.total_usd < peak.total_usd


def test_unit_prices(book: PriceBook) -> None:
    prices = book.unit_prices("gemini-2.5-pro", provider="gcp.gemini")

    assert (prices.model_id, prices.provider_id, prices.status) == (
        "gemini-2.5-pro",
        "google",
        CostStatus.PRICED,
    )
    assert (prices.input_mtok, prices.output_mtok, prices.cache_read_mtok) == (D("1.25"), D("10"), D("0.125"))
    assert len(prices.tiers) == 1
    tier = prices.tiers[0]
    assert (tier.above_input_tokens, tier.input_mtok, tier.output_mtok) == (200_000, D("2.5"), D("15"))


def test_unit_prices_period(book: PriceBook) -> None:
    old = book.unit_prices("o3", at=datetime(2025, 1, 1, tzinfo=UTC))
    new = book.unit_prices("o3", at=datetime(2025, 7, 1, tzinfo=UTC))

    assert (old.input_mtok, old.valid_until) == (D("10"), date(2025, 6, 10))
    assert (new.input_mtok, new.valid_from) == (D("2"), date(2025, 6, 10))


def test_unit_prices_unknown_model_raises(book: PriceBook) -> None:
    with pytest.raises(UnknownModelError, match="acme-unreleased"):
        book.unit_prices("acme-unreleased")


def test_cache_is_bounded() -> None:
    small = PriceBook(cache_size=3)
    for index in range(10):
        small.compute_cost(usage(f"unknown-{index}", input_tokens=1))
    small.compute_cost(usage("gpt-4o", input_tokens=1))

    assert small.cache_info() == (3, 3)


@pytest.mark.parametrize("size", [0, -1, True, 1.5])
def test_bad_cache_size_raises(size: object) -> None:
    with pytest.raises(ValueError, match="cache_size"):
        PriceBook(cache_size=size)  # type: ignore[arg-type]


def test_genai_prices_update_does_not_change_a_pricebook() -> None:
    # UpdatePrices installs a process-wide snapshot; a PriceBook keeps the data it was built with.
    book = PriceBook()
    calls = usage("gpt-4o", input_tokens=1000, output_tokens=500)
    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=[], from_auto_update=True))
    try:
        cost = book.compute_cost(calls)
    finally:
        data_snapshot.set_custom_snapshot(None)

    assert cost.total_usd == D("0.0075")


def test_newer_data_file_replaces_bundled_data() -> None:
    book = PriceBook(data_file=FIXTURES / "genai-prices-data.json")
    calls = usage("gpt-4o-2024-08-06", "openai", input_tokens=1000, output_tokens=1000)

    now = book.compute_cost(calls, at=datetime(2026, 1, 1, tzinfo=UTC))
    after_cut = book.compute_cost(calls, at=datetime(2030, 1, 1, tzinfo=UTC))
    missing = book.compute_cost(usage("claude-sonnet-4-0", input_tokens=1))

    assert now.total_usd == D("0.0125")
    assert after_cut.total_usd == D("0.005")
    assert now.source == "genai-prices data genai-prices-data.json"
    assert missing.status is CostStatus.UNPRICED


def test_data_file_keeps_user_overrides() -> None:
    book = PriceBook(FIXTURES / "prices.json", data_file=FIXTURES / "genai-prices-data.json")

    cost = book.compute_cost(
        usage("gpt-4o", input_tokens=1000, output_tokens=1000), at=datetime(2026, 1, 1, tzinfo=UTC)
    )

    assert cost.total_usd == D("0.00625")  # the file's 0.5 multiplier over the data file's $2.5/$10
    assert cost.source == "user:prices.json"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "invalid JSON"),
        ('{"id": "openai"}', "JSON array of providers"),
        ('[{"id": "openai"}]', "not in the format genai-prices"),
    ],
)
def test_bad_data_file_raises(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "data.json"
    path.write_text(content)

    with pytest.raises(PriceFileError, match=message):
        PriceBook(data_file=path)


def test_default_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LLM_COST_PRICES", str(FIXTURES / "prices.json"))
    monkeypatch.setenv("OTEL_LLM_COST_PRICE_DATA", str(FIXTURES / "genai-prices-data.json"))

    book = PriceBook.default()

    assert book.price_file == FIXTURES / "prices.json"
    assert book.data_source == "genai-prices data genai-prices-data.json"


@pytest.mark.parametrize(
    ("variable", "content"),
    [
        ("OTEL_LLM_COST_PRICES", None),  # missing file
        ("OTEL_LLM_COST_PRICES", "version = 1\n[models.gpt-4o]\ninput_mtok = 'cheap'\n"),
        ("OTEL_LLM_COST_PRICE_DATA", None),
        ("OTEL_LLM_COST_PRICE_DATA", "{not json"),
    ],
)
def test_default_logs_a_bad_file_named_by_the_environment_and_uses_the_bundled_prices(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    variable: str,
    content: str | None,
) -> None:
    # STYLE: a bad environment value is logged and the default used; telemetry must not stop the
    # application from starting.
    path = tmp_path / "bad-prices.toml"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv(variable, str(path))
    reset_log_once()

    with caplog.at_level(logging.ERROR, logger="otel_llm_cost"):
        first = PriceBook.default()
        second = PriceBook.default()

    for book in (first, second):
        assert book.price_file is None
        assert book.data_source == PriceBook().data_source
        cost = book.compute_cost(Usage(input_tokens=1000, output_tokens=500, request_model="gpt-4o"))
        assert cost.total_usd == D("0.0075")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert variable in errors[0].getMessage()
    assert "bad-prices.toml" in errors[0].getMessage()
    reset_log_once()


def test_default_keeps_the_good_file_when_only_the_other_is_bad(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_LLM_COST_PRICES", str(FIXTURES / "prices.json"))
    monkeypatch.setenv("OTEL_LLM_COST_PRICE_DATA", str(tmp_path / "missing.json"))
    reset_log_once()
    with caplog.at_level(logging.ERROR, logger="otel_llm_cost"):
        book = PriceBook.default()
    assert book.price_file == FIXTURES / "prices.json"
    assert book.data_source == PriceBook().data_source
    assert "OTEL_LLM_COST_PRICE_DATA" in caplog.text
    reset_log_once()


def test_an_explicit_bad_price_file_still_raises(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match=r"nope\.toml"):
        PriceBook.from_file(tmp_path / "nope.toml")
    with pytest.raises(PriceFileError, match=r"nope\.json"):
        PriceBook(data_file=tmp_path / "nope.json")


def test_priced_breakdown_is_an_ordinary_frozen_cost_breakdown(book: PriceBook) -> None:
    # compute_cost builds priced results through slot descriptors (speed); they must be
    # indistinguishable from ones built by the dataclass constructor.
    cost = book.compute_cost(usage("claude-sonnet-4-20250514", input_tokens=900, cache_read_tokens=100))
    rebuilt = CostBreakdown(**{f.name: getattr(cost, f.name) for f in dataclasses.fields(CostBreakdown)})

    assert type(cost) is CostBreakdown
    assert cost == rebuilt
    assert hash(cost) == hash(rebuilt)
    assert repr(cost) == repr(rebuilt)
    assert dataclasses.replace(cost, reason="x").reason == "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cost.total_usd = D(0)  # type: ignore[misc]


def test_application_decimal_context_does_not_change_costs(book: PriceBook) -> None:
    calls = usage(
        "claude-opus-4-20250514", input_tokens=123_457, cache_read_tokens=1_111, output_tokens=98_765
    )
    expected = book.compute_cost(calls)
    with localcontext(Context(prec=3, rounding=ROUND_DOWN)):
        cost = book.compute_cost(calls)

    assert cost == expected


def test_call_without_cache_tokens_has_every_amount_as_the_general_path_gives_it(book: PriceBook) -> None:
    # compute_cost skips the Decimal arithmetic on zero cache counts and a zero request fee; the
    # breakdown must still be the general path's: quantized amounts, zeros as 0E-12.
    cost = book.compute_cost(usage("gpt-4o", "openai", input_tokens=1000, output_tokens=500))
    cached = book.compute_cost(
        usage("gpt-4o", "openai", input_tokens=1001, cache_read_tokens=1, output_tokens=500)
    )

    amounts = (
        cost.total_usd,
        cost.input_usd,
        cost.cache_read_usd,
        cost.cache_write_usd,
        cost.output_usd,
        cost.cache_saved_usd,
        cost.request_usd,
    )
    assert all(a is not None and a.as_tuple().exponent == MONEY_QUANTUM.as_tuple().exponent for a in amounts)
    assert (cost.total_usd, cost.input_usd, cost.output_usd) == (D("0.0075"), D("0.0025"), D("0.005"))
    assert (cost.cache_read_usd, cost.cache_write_usd, cost.cache_saved_usd, cost.request_usd) == (D(0),) * 4
    # One cache-read token takes the general path: the same uncached input and output figures.
    assert (cached.input_usd, cached.output_usd, cached.cache_write_usd, cached.request_usd) == (
        cost.input_usd,
        cost.output_usd,
        cost.cache_write_usd,
        cost.request_usd,
    )
    assert repr(cached.cache_write_usd) == repr(cost.cache_write_usd) == "Decimal('0E-12')"
    assert dataclasses.replace(
        cached, cache_read_usd=None, cache_saved_usd=None, total_usd=None
    ) == dataclasses.replace(cost, cache_read_usd=None, cache_saved_usd=None, total_usd=None)
