"""``otel-llm-cost prices --check`` against real corrections files and a real DuckDB file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_llm_cost import DuckDBSpanExporter, LLMCostSpanProcessor
from otel_llm_cost.cli.main import main
from otel_llm_cost.pricing import PriceBook

SOURCE = "https://docs.anthropic.com/en/docs/about-claude/pricing"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["prices", "--check", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tier_entry(entry_id: str, model: str, **prices: str) -> dict[str, Any]:
    return {
        "id": entry_id,
        "provider": "anthropic",
        "model": model,
        "corrects": "long_context_tier",
        "above_input_tokens": 200_000,
        "usd_per_million_tokens": {"input": "6", "output": "22.50", **prices},
        "source": SOURCE,
        "read_on": "2026-12-05",
        "note": "test",
    }


def corrections_file(tmp_path: Path, *entries: dict[str, Any]) -> str:
    path = tmp_path / "corrections.json"
    path.write_text(json.dumps({"version": 1, "corrections": list(entries)}))
    return str(path)


@pytest.fixture(autouse=True)
def _no_default_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no llm_costs.duckdb in the working directory


def test_the_shipped_corrections_are_all_still_needed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    assert code == 0
    assert "needed   anthropic/claude-sonnet-4-0: long-context tier > 200,000 input tokens" in out
    assert "no DuckDB file at llm_costs.duckdb: pass --db PATH" in out


def test_corrections_the_data_covers_or_contradicts_are_listed_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # genai-prices 0.2.5 has o3's flex table at exactly these prices.
    flex_entry = {
        **tier_entry("flex", "o3"),
        "provider": "openai",
        "corrects": "service_tier",
        "service_tier": "flex",
        "usd_per_million_tokens": {"input": "1", "output": "4", "cache_read": "0.25"},
    }
    del flex_entry["above_input_tokens"]
    path = corrections_file(
        tmp_path,
        # genai-prices 0.2.5 has claude-sonnet-4-5's >200K tier at exactly these prices.
        tier_entry("same", "claude-sonnet-4-5", cache_read="0.60", cache_write="7.50", cache_write_1h="12"),
        tier_entry("other", "claude-sonnet-4-5", output="30"),
        tier_entry("gone", "claude-no-such-model"),
        flex_entry,
    )

    code, out, _ = run(capsys, "--corrections", path, "--format", "json")

    assert code == 1
    status = {c["id"]: (c["status"], c["detail"]) for c in json.loads(out)["corrections"]}
    assert status["same"] == ("covered", "the data has the same figures")
    assert status["other"] == ("differs", "the data has output 22.5 (ours 30)")
    assert status["gone"][0] == "missing"
    assert status["flex"] == ("covered", "the data has the same figures")


def _write_calls(db: Path, pricing: PriceBook, spans: list[tuple[str, dict[str, Any]]]) -> None:
    provider = TracerProvider()
    provider.add_span_processor(
        LLMCostSpanProcessor(SimpleSpanProcessor(DuckDBSpanExporter(db)), pricing=pricing)
    )
    for name, attributes in spans:
        provider.get_tracer("app").start_span(name, attributes=attributes).end()
    provider.shutdown()


def _chat(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
        **extra,
    }


def test_unpriced_models_of_a_duckdb_file_are_listed_with_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pricebook: PriceBook
) -> None:
    db = tmp_path / "calls.duckdb"
    spans = [("a", _chat("acme-7"))] * 3 + [
        ("b", _chat("gpt-4o", **{"openai.response.service_tier": "scale"}))
    ]
    spans += [("c", _chat("gpt-4o")), ("d", _chat("house-model"))]
    _write_calls(db, pricebook, spans)
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."house-model"]\ninput = 1\noutput = 2\n')

    code, out, err = run(capsys, "--db", str(db), "--prices", str(prices))

    assert code == 1
    assert f"reading unpriced calls from {db}" in err
    lines = out.splitlines()
    assert any(
        line.split()[:2] == ["3", "acme-7"] and "no price for model 'acme-7'" in line for line in lines
    )
    assert any(line.split()[:2] == ["1", "gpt-4o"] and "tier scale" in line for line in lines)
    assert "1 unpriced calls of 1 model(s) have a price now: `otel-llm-cost reprice` prices them" in out

    code, out, _ = run(capsys, "--db", str(db), "--prices", str(prices), "--format", "json")
    unpriced = {(u["model"], u["service_tier"]): u for u in json.loads(out)["unpriced"]}
    assert unpriced[("acme-7", None)]["calls"] == 3
    assert unpriced[("acme-7", None)]["still_unpriced"] is True
    assert unpriced[("house-model", None)]["still_unpriced"] is False
    assert ("gpt-4o", None) not in unpriced


def test_a_file_with_nothing_unpriced_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pricebook: PriceBook
) -> None:
    db = tmp_path / "calls.duckdb"
    _write_calls(db, pricebook, [("c", _chat("gpt-4o"))])
    code, out, _ = run(capsys, "--db", str(db))
    assert code == 0
    assert f"unpriced calls in {db}: none" in out


def test_a_missing_db_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--db", str(tmp_path / "none.duckdb"))
    assert code == 2
    assert f"--db: no DuckDB file at {tmp_path / 'none.duckdb'}" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prices"], "give a MODEL, or --check"),
        (["prices", "gpt-4o", "--check"], "give a MODEL, or --check"),
        (["prices", "gpt-4o", "--db", "x.duckdb"], "--db goes with --check"),
    ],
)
def test_model_and_check_are_exclusive(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_prices_shows_a_service_tiers_prices(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["prices", "o3", "--service-tier", "flex", "--at", "2026-12-01", "--format", "json"])
    shown = json.loads(capsys.readouterr().out)
    assert code == 0
    # genai-prices 0.2.5, o3 flex: half the standard $2 / $0.50 / $8.
    assert shown["service_tier"] == "flex"
    assert {k: shown["usd_per_million_tokens"][k] for k in ("input", "cache_read", "output")} == {
        "input": "1",
        "cache_read": "0.25",
        "output": "4",
    }
    assert main(["prices", "gpt-4o", "--service-tier", "flex"]) == 2
    assert "unknown service tier 'flex'" in capsys.readouterr().err
