"""Every stored dollar is right or visibly flagged: one test per wrong amount found, end to end.

Each test runs spans through a real TracerProvider, the processor and the DuckDB exporter into a real
file, then reads the rows (or the reports) back.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_llm_cost import Budget, CostStore, DuckDBSpanExporter, LLMCostSpanProcessor
from otel_llm_cost.budgets import BudgetAlert
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.storage.columns import CALL_INDEX, CALL_NAMES
from otel_llm_cost.storage.invariants import enforce_call_invariants

CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}


@dataclass
class Pipeline:
    provider: TracerProvider
    db: Path
    alerts: list[BudgetAlert]
    open: bool = True

    def close(self) -> None:
        if self.open:
            self.open = False
            self.provider.shutdown()

    def call(self, name: str, attributes: Mapping[str, Any], *, start_time: int | None = None) -> None:
        self.provider.get_tracer("app").start_span(name, attributes=attributes, start_time=start_time).end()

    def rows(self) -> dict[str, dict[str, Any]]:
        """Every stored row by span name (shuts the pipeline down: DuckDB lets one process hold the file)."""
        self.close()
        with duckdb.connect(str(self.db), read_only=True) as con:
            cursor = con.execute("SELECT * FROM llm_calls")
            names = [column[0] for column in cursor.description]
            return {
                row[names.index("span_name")]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()
            }


def _pipeline(
    tmp_path: Path, pricing: PriceBook, *, budgets: tuple[Budget, ...] = (), service: str = "app"
) -> Pipeline:
    db = tmp_path / "calls.duckdb"
    alerts: list[BudgetAlert] = []
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = DuckDBSpanExporter(db)
    provider.add_span_processor(
        LLMCostSpanProcessor(
            SimpleSpanProcessor(exporter), pricing=pricing, budgets=budgets, alert_sinks=[alerts.append]
        )
    )
    return Pipeline(provider, db, alerts)


@pytest.fixture
def pipeline(tmp_path: Path, pricebook: PriceBook) -> Iterator[Pipeline]:
    built = _pipeline(tmp_path, pricebook)
    yield built
    built.close()


def chat(input_tokens: int = 1000, output_tokens: int = 100, **extra: Any) -> dict[str, Any]:
    return {
        **CHAT,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        **extra,
    }


# --- row invariants ------------------------------------------------------------------------------


def test_one_bad_count_of_a_second_convention_does_not_hide_the_call(pipeline: Pipeline) -> None:
    pipeline.call("both", chat(**{"llm.token_count.prompt": -1}))
    row = pipeline.rows()["both"]
    # gpt-4o: $2.50 / 1M input, $10 / 1M output (genai-prices).
    assert (row["input_tokens"], row["output_tokens"], row["cost_status"]) == (1000, 100, "priced")
    assert row["cost_usd"] == Decimal("0.003500000000")


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        (chat(input_tokens=10**15), "input_tokens 1000000000000000 is not an integer in [0, 10^12]"),
        (chat(input_tokens=2**63 - 1), "input_tokens 9223372036854775807 is not an integer"),
        (
            {
                **CHAT,
                "llm.token_count.prompt": -5,
                "llm.token_count.completion": 3,
                "openinference.span.kind": "LLM",
            },
            "llm.token_count.prompt: negative count -5 dropped",
        ),
        (chat(**{"gen_ai.usage.output_tokens": True}), "gen_ai.usage.output_tokens: boolean True"),
    ],
)
def test_a_span_that_breaks_the_row_rules_is_stored_invalid_with_the_reason(
    pipeline: Pipeline, attributes: dict[str, Any], reason: str
) -> None:
    pipeline.call("bad", attributes)
    row = pipeline.rows()["bad"]
    assert row["cost_status"] == "invalid"
    assert reason in row["cost_reason"]
    assert row["cost_usd"] is None


@pytest.mark.parametrize(
    ("start", "end", "reason", "stored_start", "stored_end"),
    [
        (2_000_000_000, 1_000_000_000, "end_time is before start_time", True, False),
        (2**64 - 1, 2**64 - 1, "start_time 18446744073709551615 is not a time", False, False),
    ],
)
def test_impossible_span_times_are_stored_invalid_not_as_a_priced_call(  # noqa: PLR0917 - parametrized
    pipeline: Pipeline, start: int, end: int, reason: str, stored_start: bool, stored_end: bool
) -> None:
    """An OTLP sender can send any fixed64 time; a bad one must not make a priced row with no time."""
    pipeline.provider.get_tracer("app").start_span("bad", attributes=chat(), start_time=start).end(
        end_time=end
    )
    row = pipeline.rows()["bad"]
    assert (row["cost_status"], row["cost_usd"]) == ("invalid", None)
    assert reason in row["cost_reason"]
    assert (row["start_time"] is not None, row["end_time"] is not None) == (stored_start, stored_end)
    assert row["duration_ms"] is None


def test_invalid_calls_are_counted_with_the_unpriced_ones_in_reports(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.call("good", chat())
    pipeline.call("bad", chat(input_tokens=-(10**9)))
    pipeline.rows()
    summary = CostStore(pipeline.db).summary()
    assert (summary.call_count, summary.unpriced_calls, summary.cost_usd) == (2, 1, Decimal("0.0035"))


@pytest.mark.slow
def test_one_span_with_2_63_minus_1_tokens_does_not_break_the_report(pipeline: Pipeline) -> None:
    # Rows written before they were checked (an older version): the report must still aggregate them.
    pipeline.call("first", chat())
    pipeline.rows()
    db = pipeline.db
    with duckdb.connect(str(db)) as con:
        con.execute(
            "INSERT INTO llm_calls (span_id, span_name, start_time, input_tokens, output_tokens, "
            "total_tokens, cost_status, billable, request_model) VALUES "
            "('1', 'x', now(), $big, $big, $big, 'priced', true, 'm'), "
            "('2', 'y', now(), $big, 1, $big, 'priced', true, 'm')",
            {"big": 2**63 - 1},
        )
    for output in ("table", "json", "csv"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "otel_llm_cost",
                "report",
                "--db",
                str(db),
                "--since",
                "7d",
                "--format",
                output,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "18446744073709552714" in done.stdout.replace(",", "")  # the exact sum, beyond 64 bits


# --- 5. rollup rows --------------------------------------------------------------------------------


def test_a_non_billable_rollup_row_keeps_its_figure_out_of_cost_usd(pipeline: Pipeline) -> None:
    tracer = pipeline.provider.get_tracer("app")
    agent = {
        "openinference.span.kind": "AGENT",
        "llm.model_name": "gpt-4o",
        "llm.provider": "openai",
        "llm.token_count.prompt": 1000,
        "llm.token_count.completion": 100,
    }
    with tracer.start_as_current_span("agent", attributes=agent):
        tracer.start_span("llm", attributes=chat()).end()
    rows = pipeline.rows()
    assert rows["agent"]["billable"] is False
    assert rows["agent"]["cost_usd"] is None
    assert rows["agent"]["unbilled_cost_usd"] == Decimal("0.003500000000")
    assert rows["llm"]["cost_usd"] == Decimal("0.003500000000")
    with duckdb.connect(str(pipeline.db), read_only=True) as con:
        assert con.execute("SELECT sum(cost_usd) FROM llm_calls").fetchone() == (Decimal("0.003500000000"),)


# --- 6. an app's own cost on a call we cannot price -------------------------------------------------


def test_an_apps_own_cost_on_an_unpriced_call_is_kept_aside_not_summed(pipeline: Pipeline) -> None:
    pipeline.call("own", {**chat(), "gen_ai.request.model": "in-house-7b", "llm.cost_usd": 5.0})
    row = pipeline.rows()["own"]
    assert (row["cost_status"], row["cost_usd"], row["external_cost_usd"]) == ("unpriced", None, Decimal(5))
    summary = CostStore(pipeline.db).summary()
    assert (summary.unpriced_calls, summary.cost_usd) == (1, None)


# --- 7. / 8. deployments ------------------------------------------------------------------------------


def test_a_deployment_price_applies_to_that_deployment_only(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."myres/gpt-4o"]\ninput = 100\noutput = 100\n')
    built = _pipeline(tmp_path, PriceBook.from_file(prices))
    for name in ("myres/gpt-4o", "gpt-4o", "gpt-4o-2024-08-06", "otherres/gpt-4o"):
        built.call(name, chat(**{"gen_ai.request.model": name}))
    rows = built.rows()
    assert rows["myres/gpt-4o"]["cost_usd"] == Decimal("0.110000000000")  # 1,100 tokens at $100 / 1M
    for name in ("gpt-4o", "gpt-4o-2024-08-06", "otherres/gpt-4o"):
        assert rows[name]["cost_usd"] == Decimal("0.003500000000"), name


def test_the_resource_of_a_resource_model_id_is_stored_as_the_deployment(pipeline: Pipeline) -> None:
    pipeline.call("a", chat(**{"gen_ai.request.model": "eastus-prod/gpt-4o"}))
    pipeline.call("b", chat(**{"gen_ai.request.model": "openai/gpt-4o"}))
    rows = pipeline.rows()
    assert rows["a"]["deployment"] == "eastus-prod"
    assert rows["b"]["deployment"] is None  # a provider prefix is not a deployment
    groups = {row.key: row.call_count for row in CostStore(pipeline.db).cost_by("deployment")}
    assert groups == {"eastus-prod": 1, None: 1}


# --- 9. / 10. provider --------------------------------------------------------------------------------


def test_the_provider_pricing_resolved_is_stored_when_the_span_names_none(pipeline: Pipeline) -> None:
    claude = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "claude-3-5-haiku-20241022",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 10,
    }
    pipeline.call("claude", claude)
    pipeline.call("named", {**claude, "gen_ai.provider.name": "aws.bedrock"})
    rows = pipeline.rows()
    assert rows["claude"]["provider"] == "anthropic"
    assert rows["named"]["provider"] == "aws.bedrock"  # the span's own value stands


@pytest.mark.parametrize(
    "model", ["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"]
)
def test_embedding_models_are_priced_without_a_provider(pipeline: Pipeline, model: str) -> None:
    pipeline.call(
        "embed",
        {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": 1_000_000,
        },
    )
    row = pipeline.rows()["embed"]
    # OpenAI's published embedding prices per 1M tokens (genai-prices): small $0.02, large $0.13, ada $0.10.
    expected = {
        "text-embedding-3-small": "0.02",
        "text-embedding-3-large": "0.13",
        "text-embedding-ada-002": "0.1",
    }
    assert (row["cost_status"], row["provider"]) == ("priced", "openai")
    assert row["cost_usd"] == Decimal(expected[model])


# --- 11. savings ---------------------------------------------------------------------------------------


def test_savings_counts_only_real_recommendations(pipeline: Pipeline) -> None:
    for index, value in enumerate(["", "keep_current", "KEEP", "gpt-4o-mini"]):
        pipeline.call(f"c{index}", chat(**{"model.recommendation": value}))
    pipeline.rows()
    savings = CostStore(pipeline.db).savings()
    assert (savings.downgradable_calls, savings.downgradable_cost_usd) == (1, Decimal("0.0035"))


# --- 12. per-call budget -------------------------------------------------------------------------------


def test_a_per_call_budget_fires_above_the_limit_not_at_it(tmp_path: Path, pricebook: PriceBook) -> None:
    built = _pipeline(tmp_path, pricebook, budgets=(Budget.per_call("0.0035"),))
    built.call("at", chat())  # exactly $0.0035
    built.call("above", chat(input_tokens=1001))
    built.rows()
    (alert,) = built.alerts
    assert alert.spent_usd > Decimal("0.0035")


# --- issue 18.4: spans priced elsewhere ------------------------------------------------------------


HOSTILE = {
    **chat(),
    "llm.tokens.input": 1000,
    "llm.tokens.output": 100,
    "llm.tokens.total": 1100,
    "llm.cost.status": "priced",
    "llm.cost_usd": -5000.0,
    "cost.user_id": "alice@example.com",
}


def test_a_span_priced_by_an_untrusted_sender_is_priced_again_and_its_user_id_hashed(
    pipeline: Pipeline,
) -> None:
    pipeline.call("claimed", HOSTILE)
    pipeline.call(
        "zero",
        {
            **HOSTILE,
            "llm.cost_usd": 0.0,
            "gen_ai.usage.cost": 0.0,
            "gen_ai.usage.cost.source": "provider",
            "llm.cost.status": "reported",
        },
    )
    rows = pipeline.rows()
    for name in ("claimed", "zero"):
        assert (rows[name]["cost_status"], rows[name]["cost_usd"]) == ("priced", Decimal("0.003500000000"))
        assert rows[name]["user_id"].startswith("h:")
        assert "alice" not in str(rows[name])


def test_a_trusted_sender_keeps_its_cost_but_not_broken_figures_or_raw_user_ids(
    tmp_path: Path, pricebook: PriceBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LLM_COST_TRUSTED_SENDERS", "billing")
    built = _pipeline(tmp_path, pricebook, service="billing")
    built.call("own", {**HOSTILE, "llm.cost_usd": 0.002})
    built.call("negative", HOSTILE)
    built.call("tokens", {**HOSTILE, "llm.cost_usd": 0.002, "llm.tokens.input": -3})
    rows = built.rows()
    assert (rows["own"]["cost_status"], rows["own"]["cost_usd"]) == ("priced", Decimal("0.002000000000"))
    assert rows["negative"]["cost_status"] == "invalid"
    assert "cost_usd -5000.0" in rows["negative"]["cost_reason"]
    assert rows["tokens"]["cost_status"] == "invalid"
    assert all(row["user_id"].startswith("h:") and len(row["user_id"]) == 34 for row in rows.values())


@pytest.mark.parametrize(("text", "stored"), [("12", 12), (" 7\n", 7), ("6\x1c", None), ("1e3", None)])
def test_a_count_written_as_text_is_read_only_when_it_is_plain_digits(text: str, stored: int | None) -> None:
    """ "6\\x1c" once stopped a whole batch: str.strip() removes \\x1c, int() refuses it (found by
    Hypothesis through test_row_invariants)."""
    columns: list[Any] = [None] * len(CALL_NAMES)
    columns[CALL_INDEX["reasoning_tokens"]] = [text]
    columns[CALL_INDEX["output_tokens"]] = [100]
    columns[CALL_INDEX["input_tokens"]] = [10]
    columns[CALL_INDEX["total_tokens"]] = [110]
    columns[CALL_INDEX["cost_status"]] = ["unpriced"]
    columns[CALL_INDEX["cost_reason"]] = ["test"]
    columns[CALL_INDEX["start_time"]] = [1_700_000_000_000_000_000]
    columns[CALL_INDEX["end_time"]] = [1_700_000_001_000_000_000]
    invalid = enforce_call_invariants(columns, 1, lambda raw: f"h:{'0' * 32}")
    assert columns[CALL_INDEX["reasoning_tokens"]][0] == stored
    assert invalid == (0 if stored is not None else 1)
