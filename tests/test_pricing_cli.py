"""``otel-llm-cost prices``: run through ``cli.main`` exactly as the console script does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otel_llm_cost.cli.main import main

FIXTURES = Path(__file__).parent / "fixtures" / "prices"


@pytest.fixture(autouse=True)
def _no_user_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_LLM_COST_PRICES", raising=False)
    monkeypatch.delenv("OTEL_LLM_COST_PRICE_DATA", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["prices", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_table_shows_every_token_kind_and_the_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "claude-sonnet-4-20250514", "--provider", "anthropic")

    assert code == 0
    assert "matched    claude-sonnet-4-0 (provider anthropic)" in out
    # Base prices from genai-prices; the >200k-input tier from our corrections (Anthropic's price page).
    assert "source     genai-prices 0.2.5 + corrections" in out
    rows = {line.split("  ")[0].strip(): line.split()[-2:] for line in out.splitlines() if "  " in line}
    assert rows["input"] == ["3", "6"]
    assert rows["cache read"] == ["0.3", "0.6"]
    assert rows["cache write (5m)"] == ["3.75", "7.5"]
    assert rows["cache write (1h)"] == ["6", "12"]
    assert rows["output"] == ["15", "22.5"]


def test_table_shows_long_context_tiers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "gemini-2.5-pro")

    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("USD per 1M tokens"))
    assert "input > 200,000" in header
    output_row = next(line for line in out.splitlines() if line.startswith("output"))
    assert output_row.split()[1:] == ["10", "15"]


def test_at_picks_the_price_in_force(capsys: pytest.CaptureFixture[str]) -> None:
    _, before, _ = run(capsys, "o3", "--at", "2025-06-09", "--format", "json")
    _, after, _ = run(capsys, "o3", "--at", "2025-06-10T00:00:00Z", "--format", "json")

    old, new = json.loads(before), json.loads(after)
    assert old["usd_per_million_tokens"]["input"] == "10"
    assert old["valid_until"] == "2025-06-10"
    assert new["usd_per_million_tokens"]["input"] == "2"
    assert new["valid_from"] == "2025-06-10"


def test_json_is_exact_and_complete(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "gemini-2.5-pro", "--provider", "gcp.gemini", "--format", "json")

    body = json.loads(out)
    assert code == 0
    assert body["model_id"] == "gemini-2.5-pro"
    assert body["provider_id"] == "google"
    assert body["status"] == "priced"
    assert body["usd_per_million_tokens"] == {
        "input": "1.25",
        "cache_read": "0.125",
        "cache_write_5m": "1.25",
        "cache_write_1h": "1.25",
        "output": "10",
    }
    assert body["tiers"][0]["above_input_tokens"] == 200_000
    assert body["tiers"][0]["input"] == "2.5"


def test_user_file_price_and_deployment(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "prod-chat-eastus", "--provider", "azure.ai.openai", "--prices", str(FIXTURES / "prices.toml")
    )

    assert code == 0
    assert "deployment prod-chat-eastus" in out
    assert "source     user:prices.toml" in out
    input_row = next(line for line in out.splitlines() if line.startswith("input"))
    assert input_row.split()[-1] == "0.165"  # $0.15 x 1.1


def test_price_file_from_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LLM_COST_PRICES", str(FIXTURES / "prices.toml"))

    code, out, _ = run(capsys, "llama3.1:8b", "--format", "json")

    assert code == 0
    assert json.loads(out)["status"] == "free"


def test_free_model_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "llama3.1:8b", "--prices", str(FIXTURES / "prices.toml"))

    assert code == 0
    assert "free: every call costs 0" in out


def test_data_file_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "gpt-4o",
        "--data",
        str(FIXTURES / "genai-prices-data.json"),
        "--at",
        "2030-01-02",
        "--format",
        "json",
    )

    body = json.loads(out)
    assert code == 0
    assert body["source"] == "genai-prices data genai-prices-data.json"
    assert body["usd_per_million_tokens"]["input"] == "1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["acme-unreleased-9"], "no price for model 'acme-unreleased-9'"),
        (["gpt-4o", "--at", "yesterday"], "--at: expected an ISO date"),
        (
            ["gpt-4o", "--provider", "acme-cloud"],
            "--provider: genai-prices has no prices for provider 'acme-cloud'",
        ),
        (["gpt-4o", "--prices", "/nonexistent/prices.toml"], "cannot be read"),
    ],
)
def test_bad_input_is_one_line_error_and_non_zero_exit(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)

    assert code != 0
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_malformed_price_file_error_names_entry_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[models."m"]\ninput = -3\noutput = 1\n')

    code, _, err = run(capsys, "m", "--prices", str(path))

    assert code != 0
    assert 'models."m".input: must be a non-negative number' in err
