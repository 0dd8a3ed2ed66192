"""Every span attribute name otel-llm-cost reads or writes, in one place.

Names we *read* are grouped by the convention that emits them; names we *write* are the
contract with every exporter and backend downstream: dashboards and queries are built on them, so
renaming one is a breaking change.
Nothing else in the package spells an attribute name as a string literal.
"""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------------------------------------
# Names we read
# --------------------------------------------------------------------------------------------

# OpenTelemetry GenAI semantic conventions, current names.
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_OPENAI_RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"
GEN_AI_OPENAI_REQUEST_SERVICE_TIER: Final = "openai.request.service_tier"
# The OpenAI service tier under the older `gen_ai.openai.*` prefix (OpenLLMetry, early OTel GenAI).
GEN_AI_OPENAI_RESPONSE_SERVICE_TIER_LEGACY: Final = "gen_ai.openai.response.service_tier"
GEN_AI_OPENAI_REQUEST_SERVICE_TIER_LEGACY: Final = "gen_ai.openai.request.service_tier"
SERVICE_TIER_NAMES: Final = (
    # The tier the provider served the call at comes first; the tier the app asked for (possibly
    # `auto`) only when no response tier was recorded.
    GEN_AI_OPENAI_RESPONSE_SERVICE_TIER,
    GEN_AI_OPENAI_RESPONSE_SERVICE_TIER_LEGACY,
    GEN_AI_OPENAI_REQUEST_SERVICE_TIER,
    GEN_AI_OPENAI_REQUEST_SERVICE_TIER_LEGACY,
)
# Proposed GenAI convention for a cost the provider itself reported.
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"
GEN_AI_USAGE_COST_SOURCE: Final = "gen_ai.usage.cost.source"

# OpenTelemetry GenAI, legacy and in-between names still emitted in the wild.
GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
GEN_AI_USAGE_TOTAL_TOKENS: Final = "gen_ai.usage.total_tokens"
# The cache-write count has three names in the wild: the current one above, and two older
# spellings instrumentations still emit.
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_DOTTED: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation_input_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_LEGACY: Final = "gen_ai.usage.cache_read_input_tokens"
CACHE_WRITE_NAMES: Final = (
    GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_DOTTED,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
)

# OpenLLMetry / Traceloop.
LLM_USAGE_TOTAL_TOKENS: Final = "llm.usage.total_tokens"
LLM_USAGE_PROMPT_TOKENS: Final = "llm.usage.prompt_tokens"
LLM_USAGE_COMPLETION_TOKENS: Final = "llm.usage.completion_tokens"
LLM_USAGE_CACHE_READ_INPUT_TOKENS: Final = "llm.usage.cache_read_input_tokens"
LLM_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "llm.usage.cache_creation_input_tokens"
LLM_REQUEST_TYPE: Final = "llm.request.type"
LLM_IS_STREAMING: Final = "llm.is_streaming"
TRACELOOP_ASSOCIATION_PREFIX: Final = "traceloop.association.properties."
TRACELOOP_SPAN_KIND: Final = "traceloop.span.kind"
TRACELOOP_ENTITY_NAME: Final = "traceloop.entity.name"
TRACELOOP_WORKFLOW_NAME: Final = "traceloop.workflow.name"

# OpenInference (Arize Phoenix).
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
LLM_MODEL_NAME: Final = "llm.model_name"
LLM_PROVIDER: Final = "llm.provider"
LLM_SYSTEM: Final = "llm.system"
LLM_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
LLM_TOKEN_COUNT_TOTAL: Final = "llm.token_count.total"
LLM_TOKEN_COUNT_PROMPT_CACHE_READ: Final = "llm.token_count.prompt_details.cache_read"
LLM_TOKEN_COUNT_PROMPT_CACHE_WRITE: Final = "llm.token_count.prompt_details.cache_write"
LLM_TOKEN_COUNT_COMPLETION_REASONING: Final = "llm.token_count.completion_details.reasoning"
LLM_COST_TOTAL: Final = "llm.cost.total"
OPENINFERENCE_COST_PREFIX: Final = "llm.cost."
SESSION_ID: Final = "session.id"
USER_ID: Final = "user.id"

# OpenLIT. Its Anthropic spans report input tokens WITHOUT cache tokens (they copy the Anthropic
# API's input_tokens, which leaves cache reads and writes out; every other convention counts them in).
OPENLIT_SCOPE_PREFIX: Final = "openlit"
OPENLIT_ANTHROPIC_SCOPE: Final = "openlit.instrumentation.anthropic"

# The Anthropic SDK's own spans (anthropic >= 1.14).
ANTHROPIC_SDK_SCOPE: Final = "com.anthropic.sdk.python"

# Read by usage.normalize_usage; names found on spans recorded from the real packages
# (tests/fixtures/spans), grouped by who emits them.
# OpenLLMetry >= 0.4x (and OpenLIT for the reasoning count); llm.* are its older spellings.
GEN_AI_USAGE_REASONING_TOKENS: Final = "gen_ai.usage.reasoning_tokens"
LLM_USAGE_REASONING_TOKENS: Final = "llm.usage.reasoning_tokens"
GEN_AI_IS_STREAMING: Final = "gen_ai.is_streaming"
# OpenInference (openinference-instrumentation-anthropic 3.x) separates the request's model from the
# response's; its embedding spans name their model in embedding.model_name, not llm.model_name.
LLM_REQUEST_MODEL_NAME: Final = "llm.request.model_name"
LLM_RESPONSE_MODEL_NAME: Final = "llm.response.model_name"
EMBEDDING_MODEL_NAME: Final = "embedding.model_name"
# The Anthropic SDK's own spans: the 5m/1h split of cache writes, and the tokens of server-side
# context compactions, which its gen_ai.usage.* counts leave out (anthropic 2.x, lib/_tracing).
ANTHROPIC_USAGE_CACHE_CREATION_5M_INPUT_TOKENS: Final = (
    "anthropic.usage.cache_creation.ephemeral_5m_input_tokens"
)
ANTHROPIC_USAGE_CACHE_CREATION_1H_INPUT_TOKENS: Final = (
    "anthropic.usage.cache_creation.ephemeral_1h_input_tokens"
)
ANTHROPIC_USAGE_COMPACTION_INPUT_TOKENS: Final = "anthropic.usage.compaction.input_tokens"
ANTHROPIC_USAGE_COMPACTION_OUTPUT_TOKENS: Final = "anthropic.usage.compaction.output_tokens"

# Conversation ids: the GenAI convention's name, then the spellings instrumentations use for a
# session (OpenInference's session.id, Traceloop association properties) and our own cost.* tags.
COST_CONVERSATION_ID: Final = "cost.conversation_id"
CONVERSATION_ID_NAMES: Final = (
    GEN_AI_CONVERSATION_ID,
    COST_CONVERSATION_ID,
    TRACELOOP_ASSOCIATION_PREFIX + "conversation_id",
    SESSION_ID,
    TRACELOOP_ASSOCIATION_PREFIX + "session_id",
)

# Time to first token. OpenLIT writes it in seconds on streamed and non-streamed spans.
GEN_AI_SERVER_TIME_TO_FIRST_TOKEN: Final = "gen_ai.server.time_to_first_token"

# Service resource.
SERVICE_NAME: Final = "service.name"

# --------------------------------------------------------------------------------------------
# Names we write
# --------------------------------------------------------------------------------------------

# Tokens. `llm.tokens.input` is all input including cache reads and writes.
LLM_TOKENS_INPUT: Final = "llm.tokens.input"
LLM_TOKENS_OUTPUT: Final = "llm.tokens.output"
LLM_TOKENS_TOTAL: Final = "llm.tokens.total"
LLM_TOKENS_CACHE_READ: Final = "llm.tokens.cache_read"
LLM_TOKENS_CACHE_WRITE: Final = "llm.tokens.cache_write"
LLM_TOKENS_CACHE_WRITE_1H: Final = "llm.tokens.cache_write_1h"
LLM_TOKENS_REASONING: Final = "llm.tokens.reasoning"

# Model identity as priced.
LLM_MODEL: Final = "llm.model"
LLM_PROVIDER_NAME: Final = "llm.provider_name"
LLM_OPERATION: Final = "llm.operation"
LLM_CONVENTION: Final = "llm.convention"

# Cost. `llm.cost_usd` is a float (span attributes have no decimal type); storage re-reads it as
# DECIMAL quantized to 12 places, which round-trips exactly for per-call costs below $1000.
LLM_COST_USD: Final = "llm.cost_usd"
LLM_COST_INPUT_USD: Final = "llm.cost.input_usd"
LLM_COST_CACHE_READ_USD: Final = "llm.cost.cache_read_usd"
LLM_COST_CACHE_WRITE_USD: Final = "llm.cost.cache_write_usd"
LLM_COST_OUTPUT_USD: Final = "llm.cost.output_usd"
LLM_COST_STATUS: Final = "llm.cost.status"
LLM_COST_REASON: Final = "llm.cost.reason"
LLM_COST_SOURCE: Final = "llm.cost.source"
LLM_COST_MODEL_ID: Final = "llm.cost.model_id"
LLM_COST_PROVIDER_ID: Final = "llm.cost.provider_id"
LLM_COST_DEPLOYMENT: Final = "llm.cost.deployment"
LLM_COST_EXTERNAL_USD: Final = "llm.cost.external_usd"
LLM_COST_BILLABLE: Final = "llm.cost.billable"
LLM_COST_DUPLICATE_OF: Final = "llm.cost.duplicate_of"
# Mirror of the total for backends that read the proposed GenAI name (Langfuse, OpenLIT UIs).
GEN_AI_USAGE_COST_MIRROR: Final = GEN_AI_USAGE_COST

# Cache impact.
LLM_CACHE_HIT: Final = "llm.cache.hit"
LLM_CACHE_TOKENS_SAVED: Final = "llm.cache.tokens_saved"
LLM_CACHE_COST_SAVED_USD: Final = "llm.cache.cost_saved_usd"
# The call was answered from an application-side response cache (no API spend).
LLM_RESPONSE_FROM_CACHE: Final = "llm.response.from_cache"

# Attribution. `cost.user_id` is a keyed hash, never the raw id.
COST_PREFIX: Final = "cost."
COST_FEATURE: Final = "cost.feature"
COST_AGENT: Final = "cost.agent"
COST_USER_ID: Final = "cost.user_id"
COST_ORG_ID: Final = "cost.org_id"
COST_SESSION_ID: Final = "cost.session_id"
COST_WORKFLOW_ID: Final = "cost.workflow_id"
COST_WORKFLOW_LABEL: Final = "cost.workflow_label"
COST_STEP: Final = "cost.step"
ATTRIBUTION_KEYS: Final = (
    "feature",
    "agent",
    "user_id",
    "org_id",
    "session_id",
    "workflow_id",
    "workflow_label",
    "step",
)

# Latency of an LLM call (end - start) and time to first token, in milliseconds.
LLM_LATENCY_MS: Final = "llm.latency_ms"
LLM_TIME_TO_FIRST_TOKEN_MS: Final = "llm.time_to_first_token_ms"

# Rollups, on the enriched copy of an agent/workflow span and of a session (local root) span: the
# totals of the billable LLM calls below it as we priced them (never the span's own claimed totals).
# They are never read as usage, so such a span is never billable for them.
AGENT_TOTAL_TOKENS: Final = "agent.total_tokens"
AGENT_TOTAL_COST_USD: Final = "agent.total_cost_usd"
AGENT_LLM_CALLS: Final = "agent.llm_calls"
AGENT_UNPRICED_CALLS: Final = "agent.unpriced_calls"
SESSION_TOTAL_TOKENS: Final = "session.total_tokens"
SESSION_TOTAL_COST_USD: Final = "session.total_cost_usd"
SESSION_LLM_CALLS: Final = "session.llm_calls"
SESSION_UNPRICED_CALLS: Final = "session.unpriced_calls"
SESSION_AGENT_RUNS: Final = "session.agent_runs"
# The agent/workflow span kinds, by convention (values, not names).
AGENT_OPERATIONS: Final = frozenset({"invoke_agent", "invoke_workflow"})
OPENINFERENCE_AGENT_KINDS: Final = frozenset({"AGENT"})
TRACELOOP_AGENT_KINDS: Final = frozenset({"agent", "workflow"})

# The instrumentation scope of spans recorded by otel_llm_cost.record_llm_call.
RECORDING_SCOPE: Final = "otel_llm_cost.recording"

# Application hints read by savings reports (seed names).
PROMPT_COULD_USE_HAIKU: Final = "prompt.could_use_haiku"
MODEL_RECOMMENDATION: Final = "model.recommendation"

# --------------------------------------------------------------------------------------------
# Prompt and completion content (dropped before storage unless OTEL_LLM_COST_CAPTURE_CONTENT)
# --------------------------------------------------------------------------------------------

# An attribute is content when its name equals one of these or continues it with "." (indexed and
# flattened forms such as `gen_ai.prompt.0.content`, `llm.input_messages.0.message.content`), or
# when it looks like message text (conventions/content.py has the rule).
CONTENT_ATTRIBUTE_NAMES: Final = (
    # OTel GenAI, current (structured messages) and legacy flattened/event-as-attribute forms.
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.content.prompt",
    "gen_ai.content.completion",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    # OpenInference.
    "llm.input_messages",
    "llm.output_messages",
    "llm.prompts",
    "llm.prompt_template.variables",
    "input.value",
    "output.value",
    "embedding.embeddings",
    "retrieval.documents",
    "reranker.input_documents",
    "reranker.output_documents",
    "reranker.query",
    # OpenLLMetry / Traceloop.
    "traceloop.entity.input",
    "traceloop.entity.output",
    "llm.completions",
    # Logfire / pydantic-ai.
    "all_messages_events",
    "pydantic_ai.all_messages",
    "final_result",
    # Vercel AI SDK.
    "ai.prompt",
    "ai.response.text",
    "ai.response.object",
    "ai.response.toolCalls",
    "ai.toolCall.args",
    "ai.toolCall.result",
    # Older or vendor OTel GenAI spellings.
    "gen_ai.request.messages",
    "gen_ai.choice",
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
    "gen_ai.tool.definitions",
    "llm.prompt",
    # MLflow, Laminar. (A plain `input` / `output` is content by the rule in conventions/content.py;
    # listed here, `input.mime_type` would be content too.)
    "mlflow.spanInputs",
    "mlflow.spanOutputs",
    "lmnr.span.input",
    "lmnr.span.output",
)
# Names that look like content but are not: application hints the savings report reads. Beyond the
# two lists, conventions/content.py drops any name that looks like message text.
CONTENT_SAFE_ATTRIBUTE_NAMES: Final = (
    PROMPT_COULD_USE_HAIKU,
    MODEL_RECOMMENDATION,
)

# Budget alerts, as attributes of the OpenTelemetry log record `OTelLogSink` emits (its trace/span
# context is the call that crossed the threshold).
BUDGET_ALERT_EVENT_NAME: Final = "llm.budget.alert"
BUDGET_NAME: Final = "llm.budget.name"
BUDGET_SCOPE: Final = "llm.budget.scope"
BUDGET_ENTITY: Final = "llm.budget.entity"
BUDGET_WINDOW: Final = "llm.budget.window"
BUDGET_WINDOW_START: Final = "llm.budget.window_start"
BUDGET_WINDOW_END: Final = "llm.budget.window_end"
BUDGET_ALERT_KIND: Final = "llm.budget.alert.kind"
BUDGET_THRESHOLD: Final = "llm.budget.threshold"
BUDGET_SPENT_USD: Final = "llm.budget.spent_usd"
BUDGET_LIMIT_USD: Final = "llm.budget.limit_usd"
BUDGET_PERCENT: Final = "llm.budget.percent"
BUDGET_UNPRICED_CALLS: Final = "llm.budget.unpriced_calls"
BUDGET_FORECAST_AT: Final = "llm.budget.forecast_at"

# Raw end-user ids, the one list: never stored (the keyed hash is in `cost.user_id` / the user_id
# column), and replaced by their keyed hash on every span copy the processor hands on (OTLP too).
RAW_USER_ID_ATTRIBUTE_NAMES: Final = (
    USER_ID,
    "enduser.id",
    TRACELOOP_ASSOCIATION_PREFIX + "user_id",
    # Other spellings apps pass to Traceloop.set_association_properties (free-form keys).
    TRACELOOP_ASSOCIATION_PREFIX + "userId",
    TRACELOOP_ASSOCIATION_PREFIX + "user.id",
    TRACELOOP_ASSOCIATION_PREFIX + "enduser.id",
    # Langfuse's OpenTelemetry attribute; the `user` argument of OpenAI calls (OpenLLMetry).
    "langfuse.user.id",
    "gen_ai.openai.request.user",
    # OpenTelemetry's user and enduser attributes other than the id.
    "enduser.pseudo.id",
    "user.email",
    "user.name",
    "user.full_name",
    # The Vercel AI SDK's telemetry metadata, as apps usually spell the user.
    "ai.telemetry.metadata.userId",
    "ai.telemetry.metadata.user_id",
)
# The names above that fill `cost.user_id` (hashed) on an LLM span that has none, first present wins
# (Traceloop's association keys are read separately, after these).
USER_ID_SOURCE_NAMES: Final = (
    USER_ID,
    "langfuse.user.id",
    "ai.telemetry.metadata.userId",
    "ai.telemetry.metadata.user_id",
    "enduser.id",
    "gen_ai.openai.request.user",
)
# cost.* tags that hold a user id: ours, and where Traceloop association keys spelled userId /
# user.id / enduser.id land as tags. Only their keyed hash is stored or handed on.
COST_USER_ID_TAG_NAMES: Final = (
    COST_USER_ID,
    COST_PREFIX + "userId",
    COST_PREFIX + "user.id",
    COST_PREFIX + "enduser.id",
)
# Every attribute that identifies an end user: hashed on every copy of a span that leaves the process.
USER_ID_ATTRIBUTE_NAMES: Final = RAW_USER_ID_ATTRIBUTE_NAMES + COST_USER_ID_TAG_NAMES

# --------------------------------------------------------------------------------------------
# Cost for the wider ecosystem: standard span attributes and metric names (issue 15)
# --------------------------------------------------------------------------------------------

# Span attributes other tools read, written beside llm.cost_usd on every LLM span we priced or
# whose provider reported a cost. The gen_ai.usage.cost.* trio is the shape proposed in
# semantic-conventions-genai PR #443 (open): amount, ISO 4217 currency, and source "provider"
# (the provider's own figure) or "local" (computed from a price table). `operation.cost` is the
# attribute Logfire's LLM panels sum. GEN_AI_USAGE_COST_SOURCE (above) is the same name we read.
GEN_AI_USAGE_COST_AMOUNT: Final = "gen_ai.usage.cost.amount"
GEN_AI_USAGE_COST_CURRENCY: Final = "gen_ai.usage.cost.currency"
OPERATION_COST: Final = "operation.cost"
COST_CURRENCY_USD: Final = "USD"
COST_SOURCE_PROVIDER: Final = "provider"
COST_SOURCE_LOCAL: Final = "local"
# The names above that repeat llm.cost_usd (a storage layer can leave them out of its JSON column).
COST_MIRROR_ATTRIBUTE_NAMES: Final = (
    GEN_AI_USAGE_COST,
    GEN_AI_USAGE_COST_AMOUNT,
    GEN_AI_USAGE_COST_CURRENCY,
    GEN_AI_USAGE_COST_SOURCE,
    OPERATION_COST,
)

# Metric instruments. gen_ai.client.token.usage is the GenAI semantic conventions' histogram
# (gen_ai.token.type = input | output). The gen_ai.client.inference.usage.* counters are the ones
# semantic-conventions-genai PR #374 defines (each carries gen_ai.token.modality; cache and
# reasoning counters are subsets of the input and output counters).
GEN_AI_CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.input_tokens"
GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.output_tokens"
GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS: Final = (
    "gen_ai.client.inference.usage.cache_read.input_tokens"
)
GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = (
    "gen_ai.client.inference.usage.cache_write.input_tokens"
)
GEN_AI_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS: Final = (
    "gen_ai.client.inference.usage.reasoning.output_tokens"
)
LLM_COST_METRIC: Final = "llm.cost"
LLM_CALLS_METRIC: Final = "llm.calls"
LLM_CALLS_UNPRICED_METRIC: Final = "llm.calls.unpriced"
LLM_CALLS_DROPPED_METRIC: Final = "llm.calls.dropped"
LLM_CACHE_COST_SAVED_METRIC: Final = "llm.cache.cost_saved"

# Metric attributes. Model, provider, operation, feature, agent, org, service, deployment and cost
# status always (a bounded set); user and session ids only when opted in.
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_TOKEN_TYPE_INPUT: Final = "input"
GEN_AI_TOKEN_TYPE_OUTPUT: Final = "output"
GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"
# PR #374: tokens whose modality the provider does not report are counted under "unknown".
GEN_AI_TOKEN_MODALITY_UNKNOWN: Final = "unknown"
# The OpenTelemetry SDK's own mark for the series that takes measurements past a cardinality limit.
OTEL_METRIC_OVERFLOW: Final = "otel.metric.overflow"
