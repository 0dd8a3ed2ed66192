"""The user price file layer: overrides, aliases, deployments, discounts, free models, and errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from otel_llm_cost.conventions.usage import Usage
from otel_llm_cost.exceptions import PriceFileError
from otel_llm_cost.pricing import CostStatus, PriceBook

FIXTURES = Path(__file__).parent / "fixtures" / "prices"
D = Decimal


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook.from_file(FIXTURES / "prices.toml")


def usage(model: str, provider: str | None = None, **tokens: int) -> Usage:
    return Usage(request_model=model, provider=provider, **tokens)


def write(tmp_path: Path, text: str, name: str = "prices.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_user_price_overrides_bundled_price_for_every_id_of_that_model(book: PriceBook) -> None:
    # The file says gpt-4o costs $2 in / $8 out; cache reads keep the bundled $1.25.
    for model in ("gpt-4o", "gpt-4o-2024-08-06", "GPT-4o-2024-11-20"):
        cost = book.compute_cost(usage(model, input_tokens=1000, cache_read_tokens=400, output_tokens=100))

        assert cost.total_usd == D("0.0025"), model  # 600*2e-6 + 400*1.25e-6 + 100*8e-6
        assert cost.source == "user:prices.toml"
        assert cost.model_id == "gpt-4o"


def test_model_only_in_user_file(book: PriceBook) -> None:
    cost = book.compute_cost(
        usage(
            "ft:gpt-4o-mini-2024-07-18:acme::abc123",
            "openai",
            input_tokens=1000,
            cache_read_tokens=500,
            output_tokens=100,
        )
    )

    assert cost.total_usd == D("0.000345")  # 500*0.30e-6 + 500*0.15e-6 + 100*1.20e-6
    assert (cost.status, cost.model_id) == (CostStatus.PRICED, "ft:gpt-4o-mini-2024-07-18:acme::abc123")


def test_entry_multiplier_replaces_the_provider_discount(book: PriceBook) -> None:
    # claude-sonnet-4-0 has its own 0.9; the 0.8 Anthropic discount is for everything else.
    cost = book.compute_cost(usage("claude-sonnet-4-20250514", input_tokens=1000, output_tokens=1000))

    assert cost.total_usd == D("0.0162")  # (1000*3e-6 + 1000*15e-6) * 0.9


def test_provider_discount_applies_to_bundled_prices(book: PriceBook) -> None:
    cost = book.compute_cost(
        usage("claude-3-5-haiku-20241022", "anthropic", input_tokens=1000, output_tokens=1000)
    )

    assert cost.total_usd == D("0.00384")  # (1000*0.8e-6 + 1000*4e-6) * 0.8
    assert cost.source == "user:prices.toml"


def test_free_model_costs_zero_with_status_free(book: PriceBook) -> None:
    cost = book.compute_cost(usage("llama3.1:8b", "ollama", input_tokens=5000, output_tokens=5000))

    assert cost.status is CostStatus.FREE
    assert cost.total_usd == 0
    assert cost.total_usd is not None
    assert cost.source == "user:prices.toml"


def test_free_versus_unknown(book: PriceBook) -> None:
    free = book.compute_cost(usage("llama3.1:8b", input_tokens=10))
    unknown = book.compute_cost(usage("llama3.1:70b", input_tokens=10))

    assert (free.status, free.total_usd) == (CostStatus.FREE, D(0))
    assert (unknown.status, unknown.total_usd) == (CostStatus.UNPRICED, None)


def test_alias_to_a_free_model_is_free(book: PriceBook) -> None:
    cost = book.compute_cost(usage("cheap", input_tokens=10))

    assert (cost.status, cost.deployment, cost.model_id) == (CostStatus.FREE, "cheap", "llama3.1:8b")


def test_azure_deployment_alias(book: PriceBook) -> None:
    # `my-azure-deployment = "gpt-4o"` reuses the file's own gpt-4o price.
    cost = book.compute_cost(
        usage("my-azure-deployment", "azure.ai.openai", input_tokens=1000, output_tokens=100)
    )

    assert cost.total_usd == D("0.0028")  # 1000*2e-6 + 100*8e-6
    assert (cost.model_id, cost.deployment) == ("gpt-4o", "my-azure-deployment")


def test_deployment_with_multiplier_and_provider(book: PriceBook) -> None:
    cost = book.compute_cost(
        usage("prod-chat-eastus", "azure.ai.openai", input_tokens=1000, output_tokens=1000)
    )

    # Azure gpt-4o-mini $0.15 / $0.60 (https://azure.microsoft.com/pricing/details/cognitive-services/openai-service/),
    # times the deployment's 1.1 regional uplift.
    assert cost.total_usd == D("0.000825")
    assert (cost.provider_id, cost.model_id, cost.deployment) == ("azure", "gpt-4o-mini", "prod-chat-eastus")


def test_deployment_bound_to_a_provider_does_not_match_another(book: PriceBook) -> None:
    cost = book.compute_cost(usage("prod-chat-eastus", "openai", input_tokens=10))

    assert cost.status is CostStatus.UNPRICED


def test_resource_slash_model_falls_back_to_the_upstream_entry(book: PriceBook) -> None:
    cost = book.compute_cost(
        usage("eastus-resource/gpt-4o", "azure.ai.openai", input_tokens=1000, output_tokens=100)
    )

    assert cost.total_usd == D("0.0028")
    assert cost.model_id == "gpt-4o"


def test_user_long_context_tier(book: PriceBook) -> None:
    at_threshold = book.compute_cost(usage("acme-long-context", input_tokens=128_000, output_tokens=1000))
    above = book.compute_cost(
        usage("acme-long-context", input_tokens=128_001, cache_read_tokens=1, output_tokens=1000)
    )

    assert at_threshold.total_usd == D("0.132")  # 128000*1e-6 + 1000*4e-6
    # the tier gives input but no cache_read: cache reads follow the tier's input price, as without tiers
    assert above.total_usd == D("0.264002")  # 128001*2e-6 + 1000*8e-6


def test_json_price_file(tmp_path: Path) -> None:
    book = PriceBook.from_file(FIXTURES / "prices.json")

    embed = book.compute_cost(usage("search-embedder", input_tokens=1000))
    mini = book.compute_cost(usage("gpt-4o-mini", "openai", input_tokens=1000, output_tokens=1000))

    assert (embed.total_usd, embed.model_id, embed.deployment) == (
        D("0.00002"),
        "acme-embed",
        "search-embedder",
    )
    assert mini.total_usd == D("0.000675")  # (1000*0.15e-6 + 1000*0.6e-6) * 0.9 openai discount
    assert mini.source == "user:prices.json"


def test_prices_are_exact_decimals(tmp_path: Path) -> None:
    # 0.1 as a float is 0.1000000000000000055...; the file is parsed straight to Decimal.
    book = PriceBook.from_file(write(tmp_path, '[models."m"]\ninput = 0.1\noutput = 0.2\n'))

    cost = book.compute_cost(usage("m", input_tokens=3_000_000, output_tokens=0))

    assert cost.total_usd == D("0.3")


def test_partial_override_keeps_the_rest_of_the_bundled_entry(tmp_path: Path) -> None:
    book = PriceBook.from_file(write(tmp_path, '[models."claude-opus-4-0"]\ncache_write_1h = 20\n'))

    cost = book.compute_cost(
        usage(
            "claude-opus-4-20250514",
            input_tokens=11_000,
            cache_write_tokens=10_000,
            cache_write_1h_tokens=10_000,
        )
    )

    assert cost.total_usd == D("0.215")  # 1000*15e-6 + 10000*20e-6


def test_alias_chain(tmp_path: Path) -> None:
    book = PriceBook.from_file(write(tmp_path, '[aliases]\na = "b"\nb = "gpt-4o"\n'))

    cost = book.compute_cost(usage("a", input_tokens=1000, output_tokens=500))

    assert (cost.total_usd, cost.model_id, cost.deployment) == (D("0.0075"), "gpt-4o", "a")


MALFORMED = [
    pytest.param("[models.x\ninput = 1", "invalid TOML", id="bad-toml"),
    pytest.param(
        '[models."m"]\ninput = -1\noutput = 1\n', r'models\."m"\.input: must be a non-negative', id="negative"
    ),
    pytest.param(
        '[models."m"]\ninput = 1\noutput = 1\ncolor = 1\n',
        r'models\."m"\.color: unknown field',
        id="unknown-field",
    ),
    pytest.param('[models."m"]\nimput = 1\n', r'models\."m"\.imput: unknown field', id="typo-field"),
    pytest.param(
        '[aliases]\nmy-deploy = "gpt-5o-turbo-nope"\n',
        r'aliases\."my-deploy"\.model: .*gpt-5o-turbo-nope',
        id="alias-to-unknown",
    ),
    pytest.param(
        '[models."m"]\ninput = "cheap"\noutput = 1\n',
        r'models\."m"\.input: must be a number',
        id="string-price",
    ),
    pytest.param(
        '[models."m"]\ninput = true\noutput = 1\n', r'models\."m"\.input: must be a number', id="bool-price"
    ),
    pytest.param(
        '[models."m"]\ninput = nan\noutput = 1\n',
        r'models\."m"\.input: must be a non-negative',
        id="nan-price",
    ),
    pytest.param(
        '[models."acme-x"]\ninput = 1\n', r'models\."acme-x"\.output: .*no price', id="missing-output"
    ),
    pytest.param(
        '[models."gpt-4o"]\nmultiplier = 0\n',
        r'models\."gpt-4o"\.multiplier: must be greater than 0',
        id="zero-multiplier",
    ),
    pytest.param(
        '[models."m"]\nfree = true\ninput = 1\n',
        r'models\."m"\.input: a free model has no prices',
        id="free-with-price",
    ),
    pytest.param(
        '[models."m"]\nfree = "yes"\n', r'models\."m"\.free: must be true or false', id="free-not-bool"
    ),
    pytest.param(
        '[deployments."d"]\nmultiplier = 1.1\n',
        r'deployments\."d"\.model: a deployment names',
        id="deployment-without-model",
    ),
    pytest.param(
        '[models."gpt-4o"]\nprovider = "acme-cloud"\n',
        r'models\."gpt-4o"\.provider: unknown provider',
        id="unknown-provider",
    ),
    pytest.param(
        "[discounts]\nopenai = -0.5\n", r"discounts\.openai: must be greater than 0", id="negative-discount"
    ),
    pytest.param(
        "[discounts]\nacme = 0.5\n", r"discounts\.acme: unknown provider", id="discount-unknown-provider"
    ),
    pytest.param('[aliases]\na = "b"\nb = "a"\n', r"cycle: a -> b -> a", id="alias-cycle"),
    pytest.param(
        "[aliases]\na = 3\n", r'aliases\."a": an alias maps to a model id string', id="alias-not-string"
    ),
    pytest.param(
        '[models."m"]\ninput=1\noutput=1\n[aliases]\nM = "gpt-4o"\n',
        r'aliases\."M": .*already defined',
        id="duplicate",
    ),
    pytest.param("[pricing]\nx = 1\n", r"unknown section 'pricing'", id="unknown-section"),
    pytest.param("version = 2\n", r"version: must be 1", id="future-version"),
    pytest.param(
        '[models."m"]\ninput = 1\noutput = 1\n[[models."m".tiers]]\nabove_input_tokens = 10\ninput = 2\n'
        '[[models."m".tiers]]\nabove_input_tokens = 5\ninput = 3\n',
        r'models\."m"\.tiers\[1\]\.above_input_tokens: tiers must be in increasing order',
        id="tiers-out-of-order",
    ),
    pytest.param(
        '[models."m"]\ninput = 1\noutput = 1\n[[models."m".tiers]]\nabove_input_tokens = 10\n',
        r'models\."m"\.tiers\[0\]: a tier must give at least one price',
        id="empty-tier",
    ),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_price_file_fails_at_load_naming_file_entry_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(PriceFileError, match=message) as raised:
        PriceBook.from_file(path)

    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"models": {"m": {"input": 1, "output": 1,}}}', "invalid JSON at line 1"),
        ("[1, 2]", "the top level must be a table/object"),
        ('{"models": {"m": {"input": 1e400, "output": 1}}}', r'models\."m"\.input: must be at most 1000000'),
    ],
)
def test_malformed_json_price_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PriceFileError, match=message):
        PriceBook.from_file(write(tmp_path, text, "prices.json"))


def test_missing_price_file(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="cannot be read"):
        PriceBook.from_file(tmp_path / "absent.toml")


def test_price_file_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid TOML"):
        PriceBook.from_file(write(tmp_path, "= broken"))
