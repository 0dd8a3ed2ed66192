"""Shared fixtures: DuckDB files holding ``llm_calls`` rows built from short dicts.

``calls_db`` gives a :class:`CallsDB` on a fresh file in ``tmp_path``; ``db.insert(call(...), ...)``
adds rows where every column not given takes a plausible default (a priced, billable chat call).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from otel_llm_cost._logging import reset_log_once
from otel_llm_cost.enrich import attribution as _attribution
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.query import CostStore
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema

BASE_TIME = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


# Set by .ci/run to steer the harness itself, not the code under test.
_TEST_HARNESS_VARIABLES = frozenset(
    {
        "OTEL_LLM_COST_OLDEST_SDK_PYTHON",
        "OTEL_LLM_COST_LIVE_REQUIRED",
        "OTEL_LLM_COST_BROWSER_REQUIRED",
        "OTEL_LLM_COST_PROMETHEUS_REQUIRED",
    }
)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the developer's configuration and home directory.

    Without a key, user-id hashing creates a per-installation key file under $XDG_CONFIG_HOME; tests
    must neither read a real one nor leave one behind, and no OTEL_LLM_COST_* variable of the shell
    running the suite may change what a test sees.
    """
    for name in list(os.environ):
        if name.startswith("OTEL_LLM_COST_") and name not in _TEST_HARNESS_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    # Process-wide state a test may change: a processor given a hasher makes it the default, and
    # log_once remembers what it logged. Every test starts from neither.
    monkeypatch.setattr(_attribution, "_default_hasher", None)
    reset_log_once()


@pytest.fixture(scope="session")
def pricebook() -> PriceBook:
    """The bundled genai-prices data, no user file (environment variables are cleared per test)."""
    return PriceBook()


_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "DOUBLE": pa.float64(),
    "BIGINT": pa.int64(),
    "BOOLEAN": pa.bool_(),
    _schema.MONEY_TYPE: pa.decimal128(18, 12),
    "MAP(VARCHAR, VARCHAR)": pa.map_(pa.string(), pa.string()),
}
ARROW_SCHEMA = pa.schema([(name, _ARROW_TYPES[typ]) for name, typ, _ in _schema.CALL_COLUMNS])

_ids = itertools.count(1)


def call(**overrides: Any) -> dict[str, Any]:
    """One ``llm_calls`` row as a dict: a priced, billable 1,000 + 200 token chat call unless overridden.

    ``cost_usd`` may be a str/int/Decimal; ``None`` makes the call unpriced (status and reason follow).
    ``tags`` is a dict. Unknown keys raise, so a typo cannot silently test nothing.
    """
    unknown = set(overrides) - set(_schema.CALL_COLUMN_NAMES)
    if unknown:
        raise KeyError(f"not llm_calls columns: {sorted(unknown)}")
    n = next(_ids)
    start = overrides.get("start_time", BASE_TIME)
    duration_ms = overrides.get("duration_ms", 800.0)
    input_tokens = overrides.get("input_tokens", 1000)
    output_tokens = overrides.get("output_tokens", 200)
    cost = overrides.get("cost_usd", Decimal("0.001"))
    row: dict[str, Any] = {
        "span_id": f"{n:016x}",
        "trace_id": f"{n:032x}",
        "service_name": "test-service",
        "scope_name": "opentelemetry.instrumentation.openai_v2",
        "span_name": "chat gpt-4o-mini",
        "start_time": start,
        "end_time": start + timedelta(milliseconds=duration_ms),
        "duration_ms": duration_ms,
        "status_code": "UNSET",
        "operation": "chat",
        "provider": "openai",
        "request_model": "gpt-4o-mini",
        "convention": "gen_ai",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": (input_tokens or 0) + (output_tokens or 0),
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": cost,
        "cost_status": "priced" if cost is not None else "unpriced",
        "cost_reason": None if cost is not None else "unknown model",
        "price_source": "genai-prices 0.2.3" if cost is not None else None,
        "billable": True,
        "cache_hit": False,
        "cache_tokens_saved": 0,
        "cache_saved_usd": Decimal(0),
        "from_cache": False,
        "tags": {},
        "attributes": "{}",
    }
    row.update(overrides)
    for key in ("cost_usd", "cache_saved_usd", "input_cost_usd", "output_cost_usd"):
        if row.get(key) is not None:
            row[key] = Decimal(str(row[key]))
    return row


def calls_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts from :func:`call`) as an Arrow table in ``llm_calls`` column order."""
    materialised = list(rows)
    columns = {
        name: [list(r.get(name, {}).items()) if name == "tags" else r.get(name) for r in materialised]
        for name in _schema.CALL_COLUMN_NAMES
    }
    return pa.table(columns, schema=ARROW_SCHEMA)


def create_calls_file(path: Path) -> None:
    """An empty store file with the ``llm_calls`` table."""
    _storage.connect(path).close()


def insert_calls(connection: duckdb.DuckDBPyConnection, rows: Iterable[Mapping[str, Any]]) -> None:
    connection.register("_new_calls", calls_table(rows))
    try:
        connection.execute(f"INSERT INTO {_schema.CALLS_TABLE} SELECT * FROM _new_calls")
    finally:
        connection.unregister("_new_calls")


def insert_second_long_calls(
    connection: duckdb.DuckDBPyConnection, rows: Iterable[Mapping[str, Any]]
) -> None:
    """:func:`insert_calls` of ``call(**row)`` for each row, each call ending one second after it starts."""
    insert_calls(
        connection, [call(**{**row, "end_time": row["start_time"] + timedelta(seconds=1)}) for row in rows]
    )


def _memory_store() -> tuple[duckdb.DuckDBPyConnection, CostStore]:
    connection = duckdb.connect()
    _storage.ensure_schema(connection)
    connection.execute("SET TimeZone = 'UTC'")
    return connection, CostStore(connection)


@contextlib.contextmanager
def twin_stores() -> Iterator[
    tuple[duckdb.DuckDBPyConnection, CostStore, duckdb.DuckDBPyConnection, CostStore]
]:
    """Two in-memory databases with a CostStore each: a test fills a derived table (the rollup, the
    session table) in the first only, so that reports on the second read raw rows to compare with."""
    summed, summed_store = _memory_store()
    raw, raw_store = _memory_store()
    try:
        yield summed, summed_store, raw, raw_store
    finally:
        summed.close()
        raw.close()


class CallsDB:
    """A DuckDB file in tmp_path holding ``llm_calls``; ``insert`` / ``replace`` rows from :func:`call`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        create_calls_file(path)

    def insert(self, *rows: Mapping[str, Any]) -> None:
        with contextlib.closing(_storage.connect(self.path)) as connection:
            insert_calls(connection, rows)

    def replace(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Delete every row, then insert ``rows`` (Hypothesis examples reuse one file)."""
        with contextlib.closing(_storage.connect(self.path)) as connection:
            connection.execute(f"DELETE FROM {_schema.CALLS_TABLE}")
            insert_calls(connection, rows)


@pytest.fixture
def calls_db(tmp_path: Path) -> CallsDB:
    """An empty ``llm_calls`` store file in tmp_path."""
    return CallsDB(tmp_path / "calls.duckdb")
