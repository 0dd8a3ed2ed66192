"""Service tiers and our corrections layer, priced end to end.

Golden figures name their source: the provider's own price page (with the day it was read) or the
genai-prices data. Each pipeline test runs spans through a real TracerProvider, the processor and the
DuckDB exporter into a real file, and reads the stored row back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import genai_prices
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_llm_cost import CostStore, DuckDBSpanExporter, LLMCostSpanProcessor
from otel_llm_cost._private_api import bundled_genai_providers
from otel_llm_cost.exceptions import PriceFileError
from otel_llm_cost.pricing import CostStatus, PriceBook
from otel_llm_cost.pricing.corrections import load_corrections
from otel_llm_cost.usage import Usage

M = Decimal(1_000_000)
DEC_1_2026 = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1e9)
ANTHROPIC_PRICING = "https://docs.anthropic.com/en/docs/about-claude/pricing"
OPENAI_PRIORITY = "https://openai.com/api-priority-processing/"


class Pipeline:
    """App spans -> LLMCostSpanProcessor -> DuckDBSpanExporter -> a DuckDB file."""

    def __init__(self, db: Path, pricing: PriceBook) -> None:
        self.db = db
        self.provider = TracerProvider()
        self.provider.add_span_processor(
            LLMCostSpanProcessor(SimpleSpanProcessor(DuckDBSpanExporter(db)), pricing=pricing)
        )
        self._open = True

    def call(self, name: str, attributes: Mapping[str, Any], start_time: int = DEC_1_2026) -> None:
        self.provider.get_tracer("app").start_span(name, attributes=attributes, start_time=start_time).end()

    def close(self) -> None:
        if self._open:
            self._open = False
            self.provider.shutdown()

    def rows(self) -> dict[str, dict[str, Any]]:
        self.close()
        with duckdb.connect(str(self.db), read_only=True) as con:
            cursor = con.execute("SELECT * FROM llm_calls")
            names = [column[0] for column in cursor.description]
            return {
                row[names.index("span_name")]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()
            }


@pytest.fixture
def pipeline(tmp_path: Path, pricebook: PriceBook) -> Iterator[Pipeline]:
    built = Pipeline(tmp_path / "calls.duckdb", pricebook)
    yield built
    built.close()


def llm(model: str, provider: str, input_tokens: int, output_tokens: int, **extra: Any) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        **extra,
    }


def usd(value: str) -> Decimal:
    return Decimal(value).quantize(Decimal("1e-12"))


# --- the shipped corrections, golden ---------------------------------------------------------------

# One row per shipped correction: (entry id, span attributes, expected cost from the cited rates).
# claude-sonnet-4-0 above 200K input tokens, from ANTHROPIC_PRICING (read 2026-12-05): input $6,
# output $22.50 per MTok; cache reads 0.1x, 5-minute writes 1.25x the $6 input price.
# 250,000 input = 180,000 uncached + 50,000 cache reads + 20,000 cache writes:
# 180,000 x 6 + 50,000 x 0.60 + 20,000 x 7.50 + 2,000 x 22.50 = 1.08 + 0.03 + 0.15 + 0.045 = 1.305
GOLDEN = [
    (
        "anthropic-claude-sonnet-4-long-context",
        llm(
            "claude-sonnet-4-20250514",
            "anthropic",
            250_000,
            2_000,
            **{
                "gen_ai.usage.cache_read.input_tokens": 50_000,
                "gen_ai.usage.cache_write.input_tokens": 20_000,
            },
        ),
        usd("1.305"),
    ),
]


def test_every_shipped_correction_has_a_golden_row() -> None:
    assert {entry.id for entry in load_corrections().entries} == {row[0] for row in GOLDEN}


@pytest.mark.parametrize(("entry_id", "attributes", "expected"), GOLDEN, ids=[row[0] for row in GOLDEN])
def test_a_shipped_correction_prices_calls_at_the_cited_rates(
    pipeline: Pipeline, entry_id: str, attributes: dict[str, Any], expected: Decimal
) -> None:
    pipeline.call("call", attributes)
    row = pipeline.rows()["call"]
    assert (row["cost_status"], row["cost_usd"]) == ("priced", expected)
    assert row["price_source"] == f"genai-prices {genai_prices.__version__} + corrections"
    entry = next(e for e in load_corrections().entries if e.id == entry_id)
    assert entry.source.startswith("https://")
    assert entry.read_on.isoformat() == "2026-12-05"


def test_claude_sonnet_4_long_context_is_no_longer_half_price(pricebook: PriceBook) -> None:
    usage = Usage(input_tokens=250_000, output_tokens=1_000, request_model="claude-sonnet-4-20250514")
    # genai-prices 0.2.5 alone charges the base rates: 250,000 x 3 + 1,000 x 15 = $0.765, 49% of $1.5225.
    upstream = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=250_000, output_tokens=1_000),
        "claude-sonnet-4-20250514",
        provider_id="anthropic",
    )
    assert upstream.total_price == Decimal("0.765")
    assert pricebook.compute_cost(usage).total_usd == usd("1.5225")  # 250,000 x 6 + 1,000 x 22.50


@pytest.mark.parametrize(
    ("input_tokens", "cache_write_1h", "expected"),
    [
        # Exactly 200,000 input tokens stays on the base price: 200,000 x 3 + 1,000 x 15.
        (200_000, 0, usd("0.615")),
        # 1-hour cache writes above 200K: 2x the $6 input = $12 per MTok.
        # 190,001 x 6 + 10,000 x 12 + 1,000 x 22.5.
        (200_001, 10_000, usd("1.282506")),
    ],
)
def test_the_long_context_tier_starts_above_200k_and_prices_1h_cache_writes(
    pricebook: PriceBook, input_tokens: int, cache_write_1h: int, expected: Decimal
) -> None:
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=1_000,
        cache_write_tokens=cache_write_1h,
        cache_write_1h_tokens=cache_write_1h,
        request_model="claude-sonnet-4-0",
        provider="anthropic",
    )
    assert pricebook.compute_cost(usage).total_usd == expected


# --- service tiers ---------------------------------------------------------------------------------


def test_a_flex_call_is_priced_at_the_flex_rate_and_stores_its_tier(pipeline: Pipeline) -> None:
    attributes = llm("o3", "openai", 10_000, 3_000, **{"gen_ai.usage.cache_read.input_tokens": 2_000})
    pipeline.call("flex", {**attributes, "openai.response.service_tier": "flex"})
    pipeline.call("standard", {**attributes, "openai.response.service_tier": "default"})
    rows = pipeline.rows()
    # genai-prices 0.2.5, o3 flex (in force since 2026-10-12): input $1, cache read $0.25, output $4:
    # 8,000 x 1 + 2,000 x 0.25 + 3,000 x 4 = 0.0205. Standard ($2 / $0.50 / $8) is twice that.
    assert (rows["flex"]["cost_usd"], rows["flex"]["service_tier"]) == (usd("0.0205"), "flex")
    assert (rows["standard"]["cost_usd"], rows["standard"]["service_tier"]) == (usd("0.041"), "default")


def test_the_response_tier_wins_and_the_request_tier_is_the_fallback(pipeline: Pipeline) -> None:
    attributes = llm("o3", "openai", 10_000, 3_000)
    pipeline.call("requested", {**attributes, "openai.request.service_tier": "flex"})
    pipeline.call("legacy", {**attributes, "gen_ai.openai.request.service_tier": "FLEX"})
    pipeline.call(
        "served",
        {**attributes, "openai.request.service_tier": "flex", "openai.response.service_tier": "default"},
    )
    rows = pipeline.rows()
    # Flex: 10,000 x 1 + 3,000 x 4 = 0.022; standard: 10,000 x 2 + 3,000 x 8 = 0.044.
    assert rows["requested"]["cost_usd"] == usd("0.022")
    assert rows["legacy"]["cost_usd"] == usd("0.022")
    assert (rows["served"]["cost_usd"], rows["served"]["service_tier"]) == (usd("0.044"), "default")


@pytest.mark.parametrize(
    ("model", "tier", "reason"),
    [
        ("o3", "scale", "unknown service tier 'scale'"),
        ("gpt-4o", "flex", "unknown service tier 'flex'"),  # OpenAI offers no flex for gpt-4o
    ],
)
def test_a_tier_without_a_price_is_unpriced_with_the_reason(
    pipeline: Pipeline, model: str, tier: str, reason: str
) -> None:
    pipeline.call("call", {**llm(model, "openai", 1_000, 100), "openai.response.service_tier": tier})
    row = pipeline.rows()["call"]
    assert (row["cost_status"], row["cost_usd"]) == ("unpriced", None)
    assert reason in row["cost_reason"]


def test_a_flex_call_before_the_data_has_a_flex_price_is_unpriced_not_standard(pricebook: PriceBook) -> None:
    usage = Usage(input_tokens=1_000, output_tokens=100, request_model="o3", service_tier="flex")
    cost = pricebook.compute_cost(usage, at=datetime(2026, 9, 1, tzinfo=UTC))
    assert (cost.status, cost.total_usd) == (CostStatus.UNPRICED, None)
    assert cost.reason is not None
    assert "before 2026-10-12" in cost.reason


@pytest.mark.parametrize("tier", [None, "default", "auto", "standard"])
def test_the_standard_tiers_get_the_standard_price(pricebook: PriceBook, tier: str | None) -> None:
    usage = Usage(input_tokens=1_000, output_tokens=100, request_model="gpt-4o", service_tier=tier)
    assert pricebook.compute_cost(usage).total_usd == usd("0.0035")  # 1,000 x 2.50 + 100 x 10


# OPENAI_PRIORITY (stored copy read 2026-12-05): USD per 1M input, cached input, output tokens.
PRIORITY_PAGE = [
    ("gpt-4.1", "3.50", "0.875", "14.00"),
    ("gpt-4.1-mini", "0.70", "0.175", "2.80"),
    ("gpt-4.1-nano", "0.20", "0.050", "0.80"),
    ("gpt-4o-2024-08-06", "4.25", "2.125", "17.00"),
    ("gpt-4o-2024-05-13", "8.75", None, "26.25"),
    ("gpt-4o-mini", "0.25", "0.125", "1.00"),
    ("o3", "3.50", "0.875", "14.00"),
    ("o4-mini", "2.00", "0.500", "8.00"),
]


@pytest.mark.parametrize(("model", "input_mtok", "cached_mtok", "output_mtok"), PRIORITY_PAGE)
def test_priority_calls_cost_what_openais_priority_page_says(
    pricebook: PriceBook, model: str, input_mtok: str, cached_mtok: str | None, output_mtok: str
) -> None:
    usage = Usage(
        input_tokens=2_000_000,
        cache_read_tokens=1_000_000,
        output_tokens=1_000_000,
        request_model=model,
        provider="openai",
        service_tier="priority",
    )
    cost = pricebook.compute_cost(usage, at=datetime(2026, 12, 5, tzinfo=UTC))
    # No cached price on the page: cache reads are charged at the input price.
    assert (cost.input_usd, cost.cache_read_usd, cost.output_usd) == (
        usd(input_mtok),
        usd(cached_mtok or input_mtok),
        usd(output_mtok),
    )


def test_service_tier_prices_equal_genai_prices_calc_price_with_the_tier_context(
    pricebook: PriceBook,
) -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    provider = next(p for p in bundled_genai_providers() if p.id == "openai")
    checked = 0
    for model in provider.models:
        for tier in sorted(
            {v.when.get("service_tier") for v in model.price_variants or ()} - {None, "default"}
        ):
            usage = Usage(
                input_tokens=300_000,
                cache_read_tokens=100_000,
                output_tokens=20_000,
                request_model=model.id,
                provider="openai",
                service_tier=tier,
            )
            ours = pricebook.compute_cost(usage, at=at)
            theirs = genai_prices.calc_price(
                genai_prices.Usage(input_tokens=300_000, cache_read_tokens=100_000, output_tokens=20_000),
                model.id,
                provider_id="openai",
                genai_request_timestamp=at,
                price_context={"service_tier": tier},
            )
            assert ours.total_usd == usd(str(theirs.total_price)), (model.id, tier)
            checked += 1
    assert checked > 50


def test_reprice_keeps_the_service_tier(pipeline: Pipeline, pricebook: PriceBook) -> None:
    pipeline.call("flex", {**llm("o3", "openai", 10_000, 3_000), "openai.response.service_tier": "flex"})
    pipeline.close()
    with CostStore(pipeline.db, read_only=False) as store:
        result = store.reprice(include_priced=True, dry_run=True, pricebook=pricebook)
    assert (result.rows_examined, result.rows_changed) == (1, 0)


# --- layers: user file > corrections > genai-prices -------------------------------------------------


def test_a_correction_loses_to_the_users_price_file(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."claude-sonnet-4-0"]\ninput = 4\noutput = 20\n')
    book = PriceBook(prices)
    cost = book.compute_cost(
        Usage(input_tokens=250_000, output_tokens=1_000, request_model="claude-sonnet-4-20250514")
    )
    # The file's written prices replace every inherited rate, the corrected tier's too:
    # 250,000 x 4 + 1,000 x 20.
    assert (cost.total_usd, cost.source) == (usd("1.02"), "user:prices.toml")


def test_a_correction_wins_over_genai_prices(tmp_path: Path) -> None:
    corrections = tmp_path / "corrections.json"
    corrections.write_text(json.dumps(_file(_entry(model="claude-sonnet-4-5", input="7"))))
    book = PriceBook(corrections_file=corrections)
    cost = book.compute_cost(Usage(input_tokens=250_000, output_tokens=0, request_model="claude-sonnet-4-5"))
    # genai-prices has $6 above 200K for claude-sonnet-4-5; the correction says $7: 250,000 x 7.
    assert (cost.total_usd, cost.source) == (
        usd("1.75"),
        f"genai-prices {genai_prices.__version__} + corrections",
    )


def test_a_service_tier_correction_fills_a_tier_the_data_lacks(tmp_path: Path) -> None:
    corrections = tmp_path / "corrections.json"
    entry = _entry(
        provider="openai",
        model="gpt-4o",
        corrects="service_tier",
        service_tier="flex",
        input="1.25",
        output="5",
        source="https://platform.openai.com/docs/pricing",
    )
    del entry["above_input_tokens"]
    corrections.write_text(json.dumps(_file(entry)))
    usage = Usage(input_tokens=1_000, output_tokens=100, request_model="gpt-4o", service_tier="flex")
    assert PriceBook().compute_cost(usage).status is CostStatus.UNPRICED
    assert PriceBook(corrections_file=corrections).compute_cost(usage).total_usd == usd("0.00175")


@pytest.mark.parametrize(
    ("price_file", "model", "expected"),
    [
        # A price the user sets applies to every tier: 10,000 x 1.5 + 3,000 x 6.
        ("[models.o3]\ninput = 1.5\noutput = 6\n", "o3", usd("0.033")),
        # A provider discount scales the tier's table too: half of 10,000 x 1 + 3,000 x 4.
        ("[discounts]\nopenai = 0.5\n", "o3", usd("0.011")),
        # An alias keeps its model's tiers: o3 flex.
        ('[aliases]\n"my-o3" = "o3"\n', "my-o3", usd("0.022")),
    ],
)
def test_the_users_file_and_service_tiers(
    tmp_path: Path, price_file: str, model: str, expected: Decimal
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(price_file)
    usage = Usage(
        input_tokens=10_000, output_tokens=3_000, request_model=model, provider="openai", service_tier="flex"
    )
    assert PriceBook(path).compute_cost(usage, at=datetime(2026, 12, 1, tzinfo=UTC)).total_usd == expected


# --- the corrections file is validated -------------------------------------------------------------


def _entry(**changes: Any) -> dict[str, Any]:
    prices = {
        "input": changes.pop("input", "6"),
        "output": changes.pop("output", "22.50"),
        "cache_read": "0.60",
        "cache_write": "7.50",
        "cache_write_1h": "12",
    }
    return {
        "id": "test-entry",
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "corrects": "long_context_tier",
        "above_input_tokens": 200_000,
        "usd_per_million_tokens": prices,
        "source": ANTHROPIC_PRICING,
        "read_on": "2026-12-05",
        "note": "test",
        **changes,
    }


def _file(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "corrections": list(entries)}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "file: invalid JSON"),
        (_file() | {"extra": 1}, 'exactly "version" and "corrections"'),
        ({"version": 2, "corrections": []}, "version: expected 1"),
        (_file(_entry(corrects="discount")), "entry 'test-entry': corrects: expected one of"),
        (_file(_entry(source="docs.anthropic.com/pricing")), "source: expected the https:// address"),
        (_file(_entry(read_on="5 Dec 2026")), "read_on: expected an ISO date"),
        (_file(_entry(above_input_tokens=0)), "above_input_tokens: expected a positive integer"),
        (
            _file(_entry(usd_per_million_tokens={"input": 6, "output": "22.5"})),
            "usd_per_million_tokens.input: expected a decimal string",
        ),
        (_file(_entry(usd_per_million_tokens={"input": "6"})), "usd_per_million_tokens.output: required"),
        (_file(_entry(usd_per_million_tokens={"input": "-1", "output": "2"})), "expected 0 to"),
        (_file(_entry(usd_per_million_tokens={"input": "six", "output": "2"})), "not a decimal number"),
        (_file(_entry(usd_per_million_tokens={"input": "1", "output": "2", "audio": "3"})), "unknown price"),
        (_file(_entry(colour="red")), "colour: unknown field"),
        (_file(_entry(note="")), "note: expected a non-empty string"),
        (_file(_entry(), _entry()), "id: used by another entry"),
        (_file(_entry(corrects="service_tier", service_tier="default")), "is the standard price"),
        (_file(_entry(corrects="service_tier", service_tier="flex")), "above_input_tokens: only for"),
        (_file(_entry(service_tier="flex")), "service_tier: only for"),
    ],
)
def test_a_bad_corrections_entry_is_refused_naming_file_entry_and_field(
    tmp_path: Path, body: Any, message: str
) -> None:
    path = tmp_path / "corrections.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    with pytest.raises(PriceFileError, match="corrections file") as raised:
        PriceBook(corrections_file=path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_a_missing_corrections_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="cannot be read"):
        load_corrections(tmp_path / "none.json")
