"""The DuckDB schema: the contract between the exporter, the CostStore, budgets and the collector.

One row of ``llm_calls`` is one LLM span (one call, or a duplicate record of one, marked
``billable = false``). Money is DECIMAL(18,12): exact sums (DOUBLE sums of the same rows differed between
runs: 27 distinct results in 30; DECIMAL was exact and no slower), 64-bit storage, and 12 places hold
the smallest per-token prices exactly.

The schema is versioned in ``otel_llm_cost_meta``; opening an older file migrates it (see
``MIGRATIONS``), opening a newer one raises :class:`~otel_llm_cost.exceptions.SchemaVersionError`.
"""

from __future__ import annotations

from typing import Final

from otel_llm_cost._money import MONEY_SQL_TYPE
from otel_llm_cost.conventions import names as sc

SCHEMA_VERSION: Final = 2

MONEY_TYPE: Final = MONEY_SQL_TYPE

META_TABLE: Final = "otel_llm_cost_meta"
CALLS_TABLE: Final = "llm_calls"
SPANS_TABLE: Final = "spans"
ALERTS_TABLE: Final = "budget_alerts"

# (column, DuckDB type, meaning). Order is the physical column order and the Arrow schema order.
CALL_COLUMNS: Final[tuple[tuple[str, str, str], ...]] = (
    ("span_id", "VARCHAR", "16 hex digits; the idempotency key"),
    ("trace_id", "VARCHAR", "32 hex digits"),
    ("parent_span_id", "VARCHAR", "16 hex digits, NULL for a root span"),
    ("service_name", "VARCHAR", "resource service.name"),
    ("scope_name", "VARCHAR", "instrumentation scope that emitted the span"),
    ("span_name", "VARCHAR", ""),
    ("start_time", "TIMESTAMPTZ", "UTC; windows and budgets use the start time"),
    ("end_time", "TIMESTAMPTZ", "UTC"),
    ("duration_ms", "DOUBLE", "end - start in milliseconds"),
    ("status_code", "VARCHAR", "UNSET, OK or ERROR"),
    ("status_message", "VARCHAR", ""),
    ("operation", "VARCHAR", "chat, text_completion, embeddings..."),
    ("provider", "VARCHAR", "provider as the span named it, else the one pricing resolved"),
    ("request_model", "VARCHAR", ""),
    ("response_model", "VARCHAR", ""),
    ("upstream_model", "VARCHAR", "price entry that matched (alias/deployment resolved)"),
    ("deployment", "VARCHAR", "deployment or resource id when the model id carried one"),
    ("convention", "VARCHAR", "gen_ai, openinference, traceloop, openlit, anthropic_sdk, seed"),
    ("input_tokens", "BIGINT", "all input, including cache reads and writes"),
    ("output_tokens", "BIGINT", "including reasoning"),
    ("total_tokens", "BIGINT", "input + output"),
    ("cache_read_tokens", "BIGINT", ""),
    ("cache_write_tokens", "BIGINT", "5-minute and 1-hour writes"),
    ("cache_write_1h_tokens", "BIGINT", "the 1-hour part of cache_write_tokens"),
    ("reasoning_tokens", "BIGINT", "part of output_tokens"),
    ("cost_usd", MONEY_TYPE, "billable rows only; NULL when unpriced, invalid or not billable"),
    ("input_cost_usd", MONEY_TYPE, "uncached input"),
    ("cache_read_cost_usd", MONEY_TYPE, ""),
    ("cache_write_cost_usd", MONEY_TYPE, ""),
    ("output_cost_usd", MONEY_TYPE, ""),
    ("cost_status", "VARCHAR", "priced, unpriced, reported, free or invalid (see docs/storage.md)"),
    ("cost_reason", "VARCHAR", "why unpriced or invalid"),
    ("price_source", "VARCHAR", "provider, user:<file>, genai-prices <version> (+ corrections)"),
    ("external_cost_usd", MONEY_TYPE, "cost another instrumentation computed, kept for comparison"),
    ("billable", "BOOLEAN", "false for duplicate records of a call and for agent/workflow totals"),
    ("duplicate_of", "VARCHAR", "span_id of the record this one duplicates"),
    ("cache_hit", "BOOLEAN", "some input was read from the provider's prompt cache"),
    ("cache_tokens_saved", "BIGINT", "cache-read tokens"),
    ("cache_saved_usd", MONEY_TYPE, "cache reads at full input price minus their cost"),
    ("feature", "VARCHAR", "attribution"),
    ("agent", "VARCHAR", "attribution"),
    ("user_id", "VARCHAR", "keyed HMAC-SHA-256 of the user id, never the raw id"),
    ("org_id", "VARCHAR", "attribution"),
    ("session_id", "VARCHAR", "attribution"),
    ("workflow_id", "VARCHAR", "attribution"),
    ("workflow_label", "VARCHAR", "attribution"),
    ("step", "VARCHAR", "attribution"),
    ("tags", "MAP(VARCHAR, VARCHAR)", "custom cost.* tags, key without the prefix"),
    ("response_id", "VARCHAR", "gen_ai.response.id"),
    ("streaming", "BOOLEAN", ""),
    ("from_cache", "BOOLEAN", "served from an application response cache: no API spend"),
    ("attributes", "JSON", "remaining span attributes (prompt/completion text only when opted in)"),
    ("conversation_id", "VARCHAR", "gen_ai.conversation.id, or the instrumentation's session id"),
    ("time_to_first_token_ms", "DOUBLE", "streamed calls, where the instrumentation reports it"),
    ("unbilled_cost_usd", MONEY_TYPE, "the cost of a non-billable record (its cost_usd is NULL)"),
    (
        "service_tier",
        "VARCHAR",
        "OpenAI service tier the call was served at (default, flex, priority...), else the one requested",
    ),
)

CALL_COLUMN_NAMES: Final = tuple(name for name, _, _ in CALL_COLUMNS)

SPAN_COLUMNS: Final[tuple[tuple[str, str, str], ...]] = (
    ("span_id", "VARCHAR", ""),
    ("trace_id", "VARCHAR", ""),
    ("parent_span_id", "VARCHAR", ""),
    ("service_name", "VARCHAR", ""),
    ("scope_name", "VARCHAR", ""),
    ("span_name", "VARCHAR", ""),
    ("kind", "VARCHAR", ""),
    ("start_time", "TIMESTAMPTZ", ""),
    ("end_time", "TIMESTAMPTZ", ""),
    ("duration_ms", "DOUBLE", ""),
    ("status_code", "VARCHAR", ""),
    ("attributes", "JSON", ""),
)


def _create_table(name: str, columns: tuple[tuple[str, str, str], ...]) -> str:
    body = ",\n    ".join(f"{col} {typ}" for col, typ, _ in columns)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n    {body}\n)"


CREATE_META: Final = f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key VARCHAR PRIMARY KEY, value VARCHAR)"
CREATE_CALLS: Final = _create_table(CALLS_TABLE, CALL_COLUMNS)
CREATE_SPANS: Final = _create_table(SPANS_TABLE, SPAN_COLUMNS)

# Migrations from version N to N+1, applied in order inside one transaction.
MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        f"ALTER TABLE {CALLS_TABLE} ADD COLUMN IF NOT EXISTS conversation_id VARCHAR",
        f"ALTER TABLE {CALLS_TABLE} ADD COLUMN IF NOT EXISTS time_to_first_token_ms DOUBLE",
        f"ALTER TABLE {CALLS_TABLE} ADD COLUMN IF NOT EXISTS unbilled_cost_usd {MONEY_TYPE}",
        f"ALTER TABLE {CALLS_TABLE} ADD COLUMN IF NOT EXISTS service_tier VARCHAR",
    ),
}

# Fired budget alerts. The primary key IS the de-duplication: an alert is inserted with
# ON CONFLICT DO NOTHING RETURNING and delivered only when the insert returned it, so a restart or a
# second process evaluating the same budget never fires twice. `threshold` and `limit_usd` are part of
# the key so that raising a threshold (or the limit) re-arms the alert; `window_key` makes a new window
# start fresh.
ALERT_COLUMNS: Final[tuple[tuple[str, str, str], ...]] = (
    ("budget", "VARCHAR NOT NULL", "budget name"),
    ("entity", "VARCHAR NOT NULL", "scope value (org id, hashed user id, span id...); '*' for global"),
    ("window_key", "VARCHAR NOT NULL", "identifies the window: its UTC start, 'lifetime', 'call'..."),
    ("kind", "VARCHAR NOT NULL", "threshold, forecast or unpriced"),
    ("threshold", "DECIMAL(9,6) NOT NULL", "fraction of the limit (1.0 = 100%); 0 for unpriced"),
    ("limit_usd", "DECIMAL(38,12) NOT NULL", "the budget's limit when it fired (may exceed $1M)"),
    ("scope", "VARCHAR", "call, session, user, org, ..., tag:<key> or global"),
    ("window_spec", "VARCHAR", "call, lifetime, day, week, month or rolling:<N>h"),
    ("window_start", "TIMESTAMPTZ", "NULL for lifetime and per-call windows"),
    ("window_end", "TIMESTAMPTZ", "exclusive; NULL for lifetime and per-call windows"),
    ("tz", "VARCHAR", "IANA zone of calendar windows"),
    ("spent_usd", "DECIMAL(38,12)", "billable priced spend in the window when it fired"),
    ("percent", "DECIMAL(12,2)", "spent / limit * 100"),
    ("unpriced_calls", "BIGINT", "calls in the window whose cost is unknown (not in spent_usd)"),
    ("forecast_at", "TIMESTAMPTZ", "forecast alerts: when the limit will be reached"),
    ("trace_id", "VARCHAR", "the call that crossed the threshold"),
    ("span_id", "VARCHAR", "the call that crossed the threshold"),
    ("message", "VARCHAR", "human-readable text as delivered"),
    ("fired_at", "TIMESTAMPTZ NOT NULL", "when it was recorded"),
)

ALERT_KEY_COLUMNS: Final = ("budget", "entity", "window_key", "kind", "threshold", "limit_usd")

CREATE_ALERTS: Final = (
    f"CREATE TABLE IF NOT EXISTS {ALERTS_TABLE} (\n    "
    + ",\n    ".join(f"{col} {typ}" for col, typ, _ in ALERT_COLUMNS)
    + f",\n    PRIMARY KEY ({', '.join(ALERT_KEY_COLUMNS)})\n)"
)

# Column -> the span attributes that fill it, tried in order: the exporter reads spans with it, and
# per-call budgets read a `where` scope from a span with it, so both select the same calls. Our own
# attributes (written by the processor or by the exporter's enrichment) come first; names of the
# source conventions are fallbacks.
COLUMN_ATTRIBUTES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("operation", (sc.LLM_OPERATION, sc.GEN_AI_OPERATION_NAME)),
    (
        "provider",
        (sc.LLM_PROVIDER_NAME, sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_SYSTEM, sc.LLM_PROVIDER, sc.LLM_SYSTEM),
    ),
    ("request_model", (sc.GEN_AI_REQUEST_MODEL, sc.LLM_MODEL_NAME, sc.LLM_MODEL)),
    ("response_model", (sc.GEN_AI_RESPONSE_MODEL,)),
    ("upstream_model", (sc.LLM_COST_MODEL_ID,)),
    ("deployment", (sc.LLM_COST_DEPLOYMENT,)),
    ("convention", (sc.LLM_CONVENTION,)),
    ("input_tokens", (sc.LLM_TOKENS_INPUT,)),
    ("output_tokens", (sc.LLM_TOKENS_OUTPUT,)),
    ("total_tokens", (sc.LLM_TOKENS_TOTAL,)),
    ("cache_read_tokens", (sc.LLM_TOKENS_CACHE_READ,)),
    ("cache_write_tokens", (sc.LLM_TOKENS_CACHE_WRITE,)),
    ("cache_write_1h_tokens", (sc.LLM_TOKENS_CACHE_WRITE_1H,)),
    ("reasoning_tokens", (sc.LLM_TOKENS_REASONING,)),
    # Our price only: gen_ai.usage.cost on a span we could not price is another tool's figure (OpenLIT's
    # own table, or 0), kept in external_cost_usd by the enrichment, never summed as our spend.
    ("cost_usd", (sc.LLM_COST_USD,)),
    ("input_cost_usd", (sc.LLM_COST_INPUT_USD,)),
    ("cache_read_cost_usd", (sc.LLM_COST_CACHE_READ_USD,)),
    ("cache_write_cost_usd", (sc.LLM_COST_CACHE_WRITE_USD,)),
    ("output_cost_usd", (sc.LLM_COST_OUTPUT_USD,)),
    ("cost_status", (sc.LLM_COST_STATUS,)),
    ("cost_reason", (sc.LLM_COST_REASON,)),
    ("price_source", (sc.LLM_COST_SOURCE,)),
    ("external_cost_usd", (sc.LLM_COST_EXTERNAL_USD,)),
    ("billable", (sc.LLM_COST_BILLABLE,)),
    ("duplicate_of", (sc.LLM_COST_DUPLICATE_OF,)),
    ("cache_hit", (sc.LLM_CACHE_HIT,)),
    ("cache_tokens_saved", (sc.LLM_CACHE_TOKENS_SAVED,)),
    ("cache_saved_usd", (sc.LLM_CACHE_COST_SAVED_USD,)),
    *((key, (sc.COST_PREFIX + key,)) for key in sc.ATTRIBUTION_KEYS),
    ("response_id", (sc.GEN_AI_RESPONSE_ID,)),
    ("streaming", (sc.GEN_AI_REQUEST_STREAM, sc.LLM_IS_STREAMING)),
    ("from_cache", (sc.LLM_RESPONSE_FROM_CACHE,)),
    ("conversation_id", sc.CONVERSATION_ID_NAMES),
    ("time_to_first_token_ms", (sc.LLM_TIME_TO_FIRST_TOKEN_MS,)),
    ("service_tier", sc.SERVICE_TIER_NAMES),
)
