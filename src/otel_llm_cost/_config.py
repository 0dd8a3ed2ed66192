"""The one table of environment variables otel-llm-cost reads.

Precedence everywhere: explicit argument > environment variable > default. A bad environment value
is logged and the default used, because telemetry must not crash an application at start; a bad
explicit argument raises ``ValueError`` where it is given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

_logger = logging.getLogger("otel_llm_cost")

T = TypeVar("T")


@dataclass(frozen=True)  # no slots: on 3.11 frozen+slots breaks EnvVar[T](...) (__orig_class__)
class EnvVar(Generic[T]):
    """One environment variable: its name, how to parse it, its default and what it means."""

    name: str
    parse: Callable[[str], T]
    default: T
    doc: str

    def get(self) -> T:
        """The parsed value, or the default when unset, empty or invalid (invalid is logged)."""
        raw = os.environ.get(self.name)
        if raw is None or raw.strip() == "":
            return self.default
        try:
            return self.parse(raw.strip())
        except (ValueError, TypeError) as exc:
            _logger.error("ignoring %s=%r (%s); using the default %r", self.name, raw, exc, self.default)
            return self.default


def _parse_bool(raw: str) -> bool:
    value = raw.lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true/false")


def _parse_positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("expected a positive number")
    return value


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _parse_str(raw: str) -> str:
    return raw


def _parse_optional_str(raw: str) -> str | None:
    return raw


DUCKDB_PATH = EnvVar(
    "OTEL_LLM_COST_DUCKDB_PATH",
    _parse_str,
    "llm_costs.duckdb",
    "DuckDB file the exporter writes and the CLI reads, or a DuckLake target "
    "(`ducklake:postgres:dbname=... host=...`, see docs/lake.md).",
)
PRICES = EnvVar[str | None](
    "OTEL_LLM_COST_PRICES",
    _parse_optional_str,
    None,
    "Path of a user price file (TOML or JSON) layered over the bundled genai-prices data.",
)
USER_ID_HASH_KEY = EnvVar[str | None](
    "OTEL_LLM_COST_USER_ID_KEY",
    _parse_optional_str,
    None,
    "Secret key for the HMAC-SHA-256 of user ids. Without it a per-installation key is used "
    "(see docs/processor.md, section 'User-id hashing').",
)
HASH_USER_IDS = EnvVar(
    "OTEL_LLM_COST_HASH_USER_IDS",
    _parse_bool,
    True,
    "Set to false only when user ids are not personal data (for example service accounts).",
)
CAPTURE_CONTENT = EnvVar(
    "OTEL_LLM_COST_CAPTURE_CONTENT",
    _parse_bool,
    False,
    "Store prompt and completion text attributes in DuckDB (off: they are dropped before storage).",
)
STORE_ALL_SPANS = EnvVar(
    "OTEL_LLM_COST_STORE_ALL_SPANS",
    _parse_bool,
    False,
    "Also keep every span (LLM or not) in the `spans` table, for context around the calls.",
)
LOCK_TIMEOUT_SECONDS = EnvVar(
    "OTEL_LLM_COST_LOCK_TIMEOUT_SECONDS",
    _parse_positive_float,
    5.0,
    "How long the exporter's writer waits for a DuckDB file another process holds before it retries "
    "in the background (the batches wait in the spool meanwhile).",
)
SPOOL_DIR = EnvVar[str | None](
    "OTEL_LLM_COST_SPOOL_DIR",
    _parse_optional_str,
    None,
    "The exporter's journal: where accepted batches wait until they are committed, or replayed "
    "after a crash (default: `<db path>.spool/`).",
)
LAKE_DATA_PATH = EnvVar[str | None](
    "OTEL_LLM_COST_LAKE_DATA_PATH",
    _parse_optional_str,
    None,
    "Where a new DuckLake target keeps its Parquet files (a directory or `s3://bucket/prefix/`); "
    "an existing lake's catalog knows it already.",
)
LAKE_BATCH_ROWS = EnvVar(
    "OTEL_LLM_COST_LAKE_BATCH_ROWS",
    _parse_positive_int,
    10_000,
    "A writer to a DuckLake target commits once this many rows wait (each commit writes Parquet files).",
)
LAKE_BATCH_SECONDS = EnvVar(
    "OTEL_LLM_COST_LAKE_BATCH_SECONDS",
    _parse_positive_float,
    2.0,
    "A writer to a DuckLake target commits once its oldest waiting batch is this old.",
)
BUDGETS_FILE = EnvVar[str | None](
    "OTEL_LLM_COST_BUDGETS",
    _parse_optional_str,
    None,
    "Path of a budgets TOML file loaded by `configure()` and the CLI.",
)
WEBHOOK_URL = EnvVar[str | None](
    "OTEL_LLM_COST_WEBHOOK_URL",
    _parse_optional_str,
    None,
    "Budget alerts are also POSTed as JSON to this URL.",
)
AUTO_ATTRIBUTION = EnvVar[bool](
    "OTEL_LLM_COST_AUTO_ATTRIBUTION",
    _parse_bool,
    True,
    "Under `opentelemetry-instrument`, add the attribution processor to the auto-configured "
    "TracerProvider so `attribution()` blocks and `cost.*` baggage reach the stored calls.",
)
INSTRUMENT = EnvVar[bool](
    "OTEL_LLM_COST_INSTRUMENT",
    _parse_bool,
    False,
    "`configure()` also switches on the installed instrumentation package for each installed LLM SDK "
    "(openai, anthropic); see docs/instrumentations.md.",
)
USER_LABELS = EnvVar[str | None](
    "OTEL_LLM_COST_USER_LABELS",
    _parse_optional_str,
    None,
    "Opt-in CSV file (`user,label` rows) that reports and the dashboard use to show a name for a hashed "
    "user id; `user` is the raw id (hashed in memory with this installation's key) or its `h:` hash, and "
    "a raw id alone is shown as itself. Nothing from it is stored or logged.",
)
SERVE_TOKEN = EnvVar[str | None](
    "OTEL_LLM_COST_SERVE_TOKEN",
    _parse_optional_str,
    None,
    "Bearer token `otel-llm-cost serve` requires on every request (unset: no authentication).",
)
DEDUP_CAPACITY = EnvVar(
    "OTEL_LLM_COST_DEDUP_CAPACITY",
    _parse_positive_int,
    10_000,
    "How many recent LLM calls the double-count guard remembers (bounded memory).",
)


def _parse_names(raw: str) -> frozenset[str]:
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


TRUSTED_SENDERS = EnvVar[frozenset[str]](
    "OTEL_LLM_COST_TRUSTED_SENDERS",
    _parse_names,
    frozenset(),
    "Comma-separated service.name values whose already-priced spans (carrying llm.cost.status) are "
    "stored with their own cost. Spans from any other sender are priced again from their token counts; "
    "every span is checked against the stored-row rules and its user ids hashed either way.",
)


PRICE_DATA = EnvVar[str | None](
    "OTEL_LLM_COST_PRICE_DATA",
    _parse_optional_str,
    None,
    "Path of a genai-prices JSON data file used instead of the data bundled with genai-prices "
    "(newer prices without upgrading; the user price file still applies on top).",
)


METRICS = EnvVar(
    "OTEL_LLM_COST_METRICS",
    _parse_bool,
    True,
    "Record spend, tokens and unpriced calls as OpenTelemetry metrics through the application's "
    "MeterProvider (nothing is recorded while none is configured); false turns the recorder off.",
)
METRICS_TOKEN_COUNTERS = EnvVar(
    "OTEL_LLM_COST_METRICS_TOKEN_COUNTERS",
    _parse_bool,
    True,
    "Also record the gen_ai.client.inference.usage.* token counters (input, output, cache read, "
    "cache write, reasoning) beside the gen_ai.client.token.usage histogram.",
)
METRICS_USER_IDS = EnvVar(
    "OTEL_LLM_COST_METRICS_USER_IDS",
    _parse_bool,
    False,
    "Add the hashed cost.user_id and cost.session_id to metric attributes (off: one series per user "
    "is a cardinality and privacy cost most metric backends should not carry).",
)
ALL_VARIABLES: tuple[EnvVar[Any], ...] = (
    DUCKDB_PATH,
    PRICES,
    PRICE_DATA,
    USER_ID_HASH_KEY,
    HASH_USER_IDS,
    CAPTURE_CONTENT,
    STORE_ALL_SPANS,
    LOCK_TIMEOUT_SECONDS,
    SPOOL_DIR,
    LAKE_DATA_PATH,
    LAKE_BATCH_ROWS,
    LAKE_BATCH_SECONDS,
    BUDGETS_FILE,
    WEBHOOK_URL,
    SERVE_TOKEN,
    DEDUP_CAPACITY,
    TRUSTED_SENDERS,
    METRICS,
    METRICS_TOKEN_COUNTERS,
    METRICS_USER_IDS,
    USER_LABELS,
    AUTO_ATTRIBUTION,
    INSTRUMENT,
)
"""Every variable, in the order the configuration reference (docs/reference/configuration.md) lists them."""
