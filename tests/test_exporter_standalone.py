"""DuckDBSpanExporter without the processor (``OTEL_TRACES_EXPORTER=duckdb opentelemetry-instrument``).

Spans arrive as the instrumentations emit them (recorded in tests/fixtures/spans by
tests/recording/record.py) and the exporter normalises, prices and deduplicates them itself.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_llm_cost import _schema, _storage
from otel_llm_cost import semconv as sc
from otel_llm_cost._attribution import UserIdHasher
from otel_llm_cost._logging import reset_log_once
from otel_llm_cost.exporter import DuckDBSpanExporter
from otel_llm_cost.pricing import PriceBook

FIXTURES = Path(__file__).parent / "fixtures" / "spans"
HASHER = UserIdHasher(key=b"standalone-test-key-0123456789")


def fixture_spans(name: str) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = json.loads((FIXTURES / f"{name}.json").read_text())["spans"]
    return spans


def stored_calls(db: Path) -> list[dict[str, Any]]:
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        table = con.sql(f"SELECT * FROM {_schema.CALLS_TABLE} ORDER BY end_time, span_id").to_arrow_table()
    return table.to_pylist()


@pytest.fixture(scope="module")
def pricebook() -> PriceBook:
    return PriceBook.default()


@pytest.fixture(autouse=True)
def _fresh_log_once() -> Iterator[None]:
    reset_log_once()
    yield
    reset_log_once()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "calls.duckdb"


@pytest.fixture
def provider(db: Path, pricebook: PriceBook) -> Iterator[TracerProvider]:
    """A fresh provider exporting straight to DuckDB, as auto-configuration wires it (no processor)."""
    provider = TracerProvider(resource=Resource({sc.SERVICE_NAME: "standalone"}))
    provider.add_span_processor(
        SimpleSpanProcessor(DuckDBSpanExporter(db, pricing=pricebook, user_id_hasher=HASHER))
    )
    yield provider
    provider.shutdown()


def test_an_unpriced_call_never_takes_another_tools_cost(provider: TracerProvider, db: Path) -> None:
    # OpenLIT writes its own price table's figure (or 0) into gen_ai.usage.cost; for a model we cannot
    # price that figure must not become our cost (it would be summed as spend), only external_cost_usd.
    [recorded] = fixture_spans("openlit-openai__openai_chat")
    tracer = provider.get_tracer(recorded["scope"]["name"])
    for cost in (0.5, 0):
        attributes = {
            **recorded["attributes"],
            sc.GEN_AI_REQUEST_MODEL: "acme-llm-9000",
            sc.GEN_AI_RESPONSE_MODEL: "acme-llm-9000",
            sc.GEN_AI_RESPONSE_ID: f"resp-{cost}",
            sc.GEN_AI_USAGE_COST: cost,
        }
        tracer.start_span(recorded["name"], attributes=attributes).end()
    provider.shutdown()
    rows = stored_calls(db)
    assert [(r["cost_usd"], r["cost_status"], r["external_cost_usd"]) for r in rows] == [
        (None, "unpriced", Decimal("0.5")),
        (None, "unpriced", Decimal(0)),
    ]
    assert all(sc.GEN_AI_USAGE_COST not in json.loads(r["attributes"]) for r in rows)


USER_ID_SPELLINGS = {
    sc.TRACELOOP_ASSOCIATION_PREFIX + "userId": "bob@example.com",
    sc.TRACELOOP_ASSOCIATION_PREFIX + "user.id": "carol@example.com",
    sc.TRACELOOP_ASSOCIATION_PREFIX + "enduser.id": "dave@example.com",
}


def stored_span_attributes(db: Path) -> dict[str, dict[str, Any]]:
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        rows = con.execute(f"SELECT span_name, attributes FROM {_schema.SPANS_TABLE}").fetchall()
    return {name: json.loads(text) for name, text in rows}


def test_raw_user_ids_never_reach_either_table(db: Path, pricebook: PriceBook) -> None:
    # A raw cost.user_id set directly on a non-LLM span, and user ids passed to Traceloop's association
    # properties under the spellings apps use: only keyed hashes may be stored, in any column.
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(
            DuckDBSpanExporter(db, pricing=pricebook, user_id_hasher=HASHER, store_all_spans=True)
        )
    )
    [_, traceloop_span] = fixture_spans("traceloop-anthropic__anthropic_messages")
    provider.get_tracer("app").start_span(
        "handle request", attributes={sc.COST_USER_ID: "alice@example.com", **USER_ID_SPELLINGS}
    ).end()
    provider.get_tracer(traceloop_span["scope"]["name"]).start_span(
        traceloop_span["name"], attributes={**traceloop_span["attributes"], **USER_ID_SPELLINGS}
    ).end()
    provider.shutdown()
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        everything = str(con.execute(f"SELECT * FROM {_schema.CALLS_TABLE}").fetchall()) + str(
            con.execute(f"SELECT * FROM {_schema.SPANS_TABLE}").fetchall()
        )
    for raw in ("alice", "bob", "carol", "dave"):
        assert raw not in everything
    assert stored_span_attributes(db)["handle request"][sc.COST_USER_ID] == HASHER.hash("alice@example.com")
    [call] = stored_calls(db)
    # Whatever the enrichment maps an association key to, a user-id tag holds the hash.
    for key, value in call["tags"]:
        assert value.startswith("h:"), (key, value)
