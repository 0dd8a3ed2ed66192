"""`otel-llm-cost demo` writes realistic traffic through the real processor -> exporter path."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import CallsDB, call
from otel_llm_cost.cli import demo_spans, demo_traffic
from otel_llm_cost.cli.demo_traffic import UNPRICED_MODEL
from otel_llm_cost.cli.main import main
from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.query import CostStore

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def test_generated_traffic_is_deterministic_and_varied() -> None:
    first = demo_traffic.generate_calls(300, seed=3, now=NOW)
    assert first == demo_traffic.generate_calls(300, seed=3, now=NOW)
    assert first != demo_traffic.generate_calls(300, seed=4, now=NOW)
    assert len(first) == 300
    assert {c.style for c in first} >= {
        "openai_v2",
        "anthropic_pair",
        "openinference_anthropic",
        "openinference_google",
        "self_hosted",
    }
    assert all(c.start <= NOW for c in first)
    assert [c.start for c in first] == sorted(c.start for c in first)


def test_demo_stores_priced_deduplicated_attributed_calls(tmp_path: Path) -> None:
    path = tmp_path / "demo.duckdb"
    spans = demo_spans.run_demo(path, calls=150, seed=11, now=NOW)
    with CostStore(path) as store:
        summary = store.summary()
        models = {r.key: r for r in store.cost_by_model()}
        features = {r.key for r in store.cost_by("feature")}
        workflow = store.sql("SELECT workflow_id FROM llm_calls WHERE workflow_id IS NOT NULL LIMIT 1")[0]
        steps = store.steps_for_workflow(workflow["workflow_id"])
        savings = store.savings()
    # Every simulated call is billed once; the second record of each double-recorded call is excluded.
    assert summary.call_count == 150
    assert summary.excluded_records == spans - 150 > 0
    assert models[UNPRICED_MODEL].total_cost_usd is None
    assert models[UNPRICED_MODEL].unpriced_calls == models[UNPRICED_MODEL].call_count
    assert summary.cost_usd is not None
    assert summary.cost_usd > Decimal(0)
    assert summary.cache_read_tokens > 0
    assert summary.cache_saved_usd > 0
    assert features >= {"support_chat", "document_analysis", "search"}
    assert [s.step for s in steps] == ["extract", "classify", "summarize"]
    assert savings.downgradable_calls > 0
    assert all(s.user_id is None or s.user_id.startswith("h:") for s in steps)  # hashed, never raw


def test_demo_command_prints_the_report_and_replaces_its_own_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "demo.duckdb"
    for _ in range(2):
        assert main(["demo", "--db", str(path), "--calls", "60"]) == 0
        out = capsys.readouterr().out
        assert "LLM cost report" in out
        assert UNPRICED_MODEL in out
    with CostStore(path) as store:
        assert store.summary().call_count == 60  # the second run replaced the first


def test_demo_refuses_to_overwrite_other_data(calls_db: CallsDB) -> None:
    calls_db.insert(call(service_name="checkout"))
    with pytest.raises(StorageError, match="did not write"):
        demo_spans.run_demo(calls_db.path, calls=5)
    with CostStore(calls_db.path) as store:
        assert store.summary().call_count == 1
