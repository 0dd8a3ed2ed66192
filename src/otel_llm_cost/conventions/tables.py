"""The per-convention tables: which attribute names carry each count in each convention, and how a
span's convention is recognised.

Each convention is a :class:`ConventionTable`: for every count, the attribute names that may carry
it, best first (current OTel GenAI names before legacy ones). The convention of a span is chosen
once, by its scope name and marker attributes (:func:`pick_table`), and only its table is read.
The tables are documented for users in the "Supported instrumentations" section of the README;
every convention is tested against spans recorded from the real packages (``tests/fixtures/spans``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.conventions.values import Names, read_text, str_value

__all__ = [
    "ANTHROPIC_SDK",
    "CONVENTIONS_BY_LABEL",
    "GEN_AI",
    "OPENINFERENCE",
    "OPENLIT",
    "OPENLIT_ANTHROPIC",
    "RESPONSE_ID",
    "SEED",
    "TRACELOOP",
    "ConventionTable",
    "classify",
    "operation_of",
    "other_tables",
    "pick_table",
]


@dataclass(frozen=True, slots=True)
class ConventionTable:
    """Attribute names per normalised field, best first. The first valid value wins."""

    convention: str
    input: Names
    output: Names
    total: Names
    cache_read: Names
    cache_write: Names
    cache_write_5m: Names
    cache_write_1h: Names
    reasoning: Names
    request_model: Names
    response_model: Names
    provider: Names
    operation: Names
    streaming: Names
    extra_input: Names = ()
    extra_output: Names = ()
    """Counts billed on top of input/output that the span keeps apart (Anthropic compactions)."""
    input_excludes_cache: bool = False
    streaming_absent_means_false: bool = False
    """The Anthropic SDK sets ``gen_ai.request.stream`` only on streamed calls."""
    optional_counts: frozenset[str] = field(init=False, repr=False, compare=False)
    """Every cache, reasoning and extra count name: most calls carry none of them, and one set
    test skips their ~12 lookups (see ``usage._read_counts``)."""
    streaming_names: frozenset[str] = field(init=False, repr=False, compare=False)
    """``streaming`` as a set: most spans carry none of them."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "streaming_names", frozenset(self.streaming))
        names = (
            *self.cache_read,
            *self.cache_write,
            *self.cache_write_5m,
            *self.cache_write_1h,
            *self.reasoning,
            *self.extra_input,
            *self.extra_output,
        )
        object.__setattr__(self, "optional_counts", frozenset(names))


_GEN_AI_INPUT: Final = (
    sc.GEN_AI_USAGE_INPUT_TOKENS,
    sc.GEN_AI_USAGE_PROMPT_TOKENS,
    sc.LLM_USAGE_PROMPT_TOKENS,
)
_GEN_AI_OUTPUT: Final = (
    sc.GEN_AI_USAGE_OUTPUT_TOKENS,
    sc.GEN_AI_USAGE_COMPLETION_TOKENS,
    sc.LLM_USAGE_COMPLETION_TOKENS,
)
_GEN_AI_TOTAL: Final = (sc.GEN_AI_USAGE_TOTAL_TOKENS, sc.LLM_USAGE_TOTAL_TOKENS)
_GEN_AI_CACHE_READ: Final = (
    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_LEGACY,
    sc.LLM_USAGE_CACHE_READ_INPUT_TOKENS,
)
_GEN_AI_CACHE_WRITE: Final = (*sc.CACHE_WRITE_NAMES, sc.LLM_USAGE_CACHE_CREATION_INPUT_TOKENS)
_GEN_AI_REASONING: Final = (sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, sc.GEN_AI_USAGE_REASONING_TOKENS)
_GEN_AI_PROVIDER: Final = (sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_SYSTEM)
_GEN_AI_STREAMING: Final = (sc.GEN_AI_REQUEST_STREAM, sc.GEN_AI_IS_STREAMING, sc.LLM_IS_STREAMING)
# Our own names come last everywhere: a span we enriched keeps its original attributes, which win,
# so re-reading it gives the same Usage.
_SEED_MODEL: Final = (sc.LLM_MODEL,)
RESPONSE_ID: Final = (sc.GEN_AI_RESPONSE_ID,)

GEN_AI: Final = ConventionTable(
    convention="gen_ai",
    input=_GEN_AI_INPUT,
    output=_GEN_AI_OUTPUT,
    total=_GEN_AI_TOTAL,
    cache_read=_GEN_AI_CACHE_READ,
    cache_write=_GEN_AI_CACHE_WRITE,
    cache_write_5m=(),
    cache_write_1h=(),
    reasoning=_GEN_AI_REASONING,
    request_model=(sc.GEN_AI_REQUEST_MODEL,),
    response_model=(sc.GEN_AI_RESPONSE_MODEL, *_SEED_MODEL),
    provider=_GEN_AI_PROVIDER,
    operation=(sc.GEN_AI_OPERATION_NAME,),
    streaming=_GEN_AI_STREAMING,
)
# OpenLLMetry reads the same names (it moved to gen_ai.* in 0.4x); only the label and the
# llm.request.type fallback for the operation and its own reasoning-token name differ.
TRACELOOP: Final = replace(
    GEN_AI,
    convention="traceloop",
    reasoning=(*_GEN_AI_REASONING, sc.LLM_USAGE_REASONING_TOKENS),
    operation=(sc.GEN_AI_OPERATION_NAME, sc.LLM_REQUEST_TYPE),
)
ANTHROPIC_SDK: Final = ConventionTable(
    convention="anthropic_sdk",
    input=(sc.GEN_AI_USAGE_INPUT_TOKENS,),
    output=(sc.GEN_AI_USAGE_OUTPUT_TOKENS,),
    total=(),
    cache_read=(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,),
    cache_write=_GEN_AI_CACHE_WRITE,
    cache_write_5m=(sc.ANTHROPIC_USAGE_CACHE_CREATION_5M_INPUT_TOKENS,),
    cache_write_1h=(sc.ANTHROPIC_USAGE_CACHE_CREATION_1H_INPUT_TOKENS,),
    reasoning=(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,),
    request_model=(sc.GEN_AI_REQUEST_MODEL,),
    response_model=(sc.GEN_AI_RESPONSE_MODEL, *_SEED_MODEL),
    provider=(sc.GEN_AI_PROVIDER_NAME,),
    operation=(sc.GEN_AI_OPERATION_NAME,),
    streaming=(sc.GEN_AI_REQUEST_STREAM,),
    # anthropic 2.x: "The usage above leaves out the tokens of the compactions" (lib/_tracing/_response.py).
    extra_input=(sc.ANTHROPIC_USAGE_COMPACTION_INPUT_TOKENS,),
    extra_output=(sc.ANTHROPIC_USAGE_COMPACTION_OUTPUT_TOKENS,),
    streaming_absent_means_false=True,
)
# OpenLIT writes the OTel GenAI names; only its Anthropic spans differ (next table).
OPENLIT: Final = replace(GEN_AI, convention="openlit")
# OpenLIT's Anthropic spans copy the Anthropic API's input_tokens, which leaves out cache reads and
# writes (every other convention counts them in); confirmed on spans recorded from openlit 1.45.
OPENLIT_ANTHROPIC: Final = replace(OPENLIT, input_excludes_cache=True)
OPENINFERENCE: Final = ConventionTable(
    convention="openinference",
    input=(sc.LLM_TOKEN_COUNT_PROMPT,),
    output=(sc.LLM_TOKEN_COUNT_COMPLETION,),
    total=(sc.LLM_TOKEN_COUNT_TOTAL,),
    cache_read=(sc.LLM_TOKEN_COUNT_PROMPT_CACHE_READ,),
    cache_write=(sc.LLM_TOKEN_COUNT_PROMPT_CACHE_WRITE,),
    cache_write_5m=(),
    cache_write_1h=(),
    reasoning=(sc.LLM_TOKEN_COUNT_COMPLETION_REASONING,),
    request_model=(sc.LLM_REQUEST_MODEL_NAME,),
    # llm.model_name is the response's model when the response has one (openinference-openai).
    response_model=(sc.LLM_RESPONSE_MODEL_NAME, sc.LLM_MODEL_NAME, sc.EMBEDDING_MODEL_NAME, *_SEED_MODEL),
    provider=(sc.LLM_PROVIDER, sc.LLM_SYSTEM),
    operation=(),
    streaming=(),
)
SEED: Final = ConventionTable(
    convention="seed",
    input=(sc.LLM_TOKENS_INPUT,),
    output=(sc.LLM_TOKENS_OUTPUT,),
    total=(sc.LLM_TOKENS_TOTAL,),
    cache_read=(sc.LLM_TOKENS_CACHE_READ,),
    cache_write=(sc.LLM_TOKENS_CACHE_WRITE,),
    cache_write_5m=(),
    cache_write_1h=(sc.LLM_TOKENS_CACHE_WRITE_1H,),
    reasoning=(sc.LLM_TOKENS_REASONING,),
    request_model=(sc.GEN_AI_REQUEST_MODEL, sc.LLM_REQUEST_MODEL_NAME),
    response_model=(sc.GEN_AI_RESPONSE_MODEL, sc.LLM_RESPONSE_MODEL_NAME, sc.LLM_MODEL_NAME, sc.LLM_MODEL),
    provider=(
        sc.GEN_AI_PROVIDER_NAME,
        sc.GEN_AI_SYSTEM,
        sc.LLM_PROVIDER,
        sc.LLM_SYSTEM,
        sc.LLM_PROVIDER_NAME,
    ),
    operation=(sc.GEN_AI_OPERATION_NAME, sc.LLM_OPERATION),
    streaming=_GEN_AI_STREAMING,
)
CONVENTIONS_BY_LABEL: Final = {
    t.convention: t for t in (GEN_AI, TRACELOOP, ANTHROPIC_SDK, OPENLIT, OPENINFERENCE)
}

_OPENINFERENCE_MARKERS: Final = frozenset(
    (
        sc.OPENINFERENCE_SPAN_KIND,
        sc.LLM_TOKEN_COUNT_PROMPT,
        sc.LLM_TOKEN_COUNT_COMPLETION,
        sc.LLM_TOKEN_COUNT_TOTAL,
    )
)
# Attributes only OpenLLMetry writes (its token counts are gen_ai.* names shared with others).
_TRACELOOP_MARKERS: Final = frozenset(
    (
        sc.LLM_REQUEST_TYPE,
        sc.TRACELOOP_SPAN_KIND,
        sc.LLM_USAGE_TOTAL_TOKENS,
        sc.LLM_USAGE_PROMPT_TOKENS,
        sc.LLM_USAGE_COMPLETION_TOKENS,
        sc.GEN_AI_USAGE_TOTAL_TOKENS,
        sc.GEN_AI_IS_STREAMING,
        sc.LLM_IS_STREAMING,
        sc.TRACELOOP_WORKFLOW_NAME,
        sc.TRACELOOP_ENTITY_NAME,
    )
)
_GEN_AI_MARKERS: Final = frozenset(
    (
        sc.GEN_AI_OPERATION_NAME,
        sc.GEN_AI_USAGE_INPUT_TOKENS,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS,
        sc.GEN_AI_USAGE_PROMPT_TOKENS,
        sc.GEN_AI_USAGE_COMPLETION_TOKENS,
        sc.GEN_AI_PROVIDER_NAME,
        sc.GEN_AI_SYSTEM,
        sc.GEN_AI_REQUEST_MODEL,
    )
)

_KIND_NAMES: Final = frozenset((sc.OPENINFERENCE_SPAN_KIND, sc.TRACELOOP_SPAN_KIND, sc.LLM_REQUEST_TYPE))

# Values (not names) that classify a span.
_LLM_OPERATIONS: Final = frozenset(
    {"chat", "text_completion", "generate_content", "embeddings", "completion", "responses", "embedding"}
)
_AGGREGATE_OPERATIONS: Final = frozenset({"invoke_agent", "create_agent", "invoke_workflow"})
_OPENINFERENCE_LLM_KINDS: Final = frozenset({"LLM", "EMBEDDING"})
_OPENINFERENCE_AGGREGATE_KINDS: Final = frozenset({"AGENT", "CHAIN"})
_TRACELOOP_AGGREGATE_KINDS: Final = frozenset({"workflow", "agent", "task"})
_TRACELOOP_LLM_REQUEST_TYPES: Final = frozenset({"chat", "completion", "embedding", "rerank"})
# llm.request.type values mapped onto gen_ai.operation.name values.
_TRACELOOP_OPERATIONS: Final = {"completion": "text_completion", "embedding": "embeddings"}


def pick_table(attributes: Mapping[str, Any], scope_name: str | None) -> ConventionTable | None:
    """The convention whose table describes this span, or ``None`` if no convention claims it.

    Our own ``llm.tokens.*`` names are not looked at here: a span carrying them is read with
    :data:`SEED` for its counts (see ``normalize_usage``)."""
    if scope_name is not None and type(scope_name) is str:
        if scope_name == sc.ANTHROPIC_SDK_SCOPE:
            return ANTHROPIC_SDK
        if scope_name.startswith(sc.OPENLIT_SCOPE_PREFIX):
            return OPENLIT_ANTHROPIC if scope_name == sc.OPENLIT_ANTHROPIC_SCOPE else OPENLIT
    if not _OPENINFERENCE_MARKERS.isdisjoint(attributes):
        return OPENINFERENCE
    if not _TRACELOOP_MARKERS.isdisjoint(attributes):
        return TRACELOOP
    if not _GEN_AI_MARKERS.isdisjoint(attributes):
        return GEN_AI
    return None


def other_tables(attributes: Mapping[str, Any], table: ConventionTable) -> tuple[ConventionTable, ...]:
    """The other conventions whose marker attributes this span also carries, in :func:`pick_table` order.

    A span recorded by two instrumentations at once (an OpenInference and a GenAI one) is read from
    the second when the first yields no usable counts (one malformed value must not hide the call)."""
    found = (
        (OPENINFERENCE, _OPENINFERENCE_MARKERS),
        (TRACELOOP, _TRACELOOP_MARKERS),
        (GEN_AI, _GEN_AI_MARKERS),
    )
    return tuple(
        other for other, markers in found if other is not table and not markers.isdisjoint(attributes)
    )


def classify(attributes: Mapping[str, Any], operation: str | None) -> tuple[bool, bool]:
    """(declares itself an LLM call, is an aggregate span) from the span's kind attributes."""
    if _KIND_NAMES.isdisjoint(attributes):
        # Plain OTel GenAI spans (most spans): only the operation name classifies them.
        return operation in _LLM_OPERATIONS, operation in _AGGREGATE_OPERATIONS
    oi_kind = str_value(attributes, sc.OPENINFERENCE_SPAN_KIND)
    tl_kind = str_value(attributes, sc.TRACELOOP_SPAN_KIND)
    request_type = str_value(attributes, sc.LLM_REQUEST_TYPE)
    if oi_kind is None and tl_kind is None and request_type is None:
        # Plain OTel GenAI spans (most spans): only the operation name classifies them.
        return operation in _LLM_OPERATIONS, operation in _AGGREGATE_OPERATIONS
    aggregate = (
        (oi_kind is not None and oi_kind.upper() in _OPENINFERENCE_AGGREGATE_KINDS)
        or (tl_kind is not None and tl_kind.lower() in _TRACELOOP_AGGREGATE_KINDS)
        or (operation is not None and operation in _AGGREGATE_OPERATIONS)
    )
    declared = (
        (operation is not None and operation in _LLM_OPERATIONS)
        or (oi_kind is not None and oi_kind.upper() in _OPENINFERENCE_LLM_KINDS)
        or (request_type is not None and request_type.lower() in _TRACELOOP_LLM_REQUEST_TYPES)
    )
    return declared, aggregate


def operation_of(attributes: Mapping[str, Any], table: ConventionTable, problems: list[str]) -> str | None:
    """The span's operation as a ``gen_ai.operation.name`` value (``chat``, ``embeddings``...), if it says."""
    op = read_text(attributes, table.operation, problems)
    if op is None:
        oi_kind = str_value(attributes, sc.OPENINFERENCE_SPAN_KIND)
        if oi_kind is not None and oi_kind.upper() == "EMBEDDING":
            return "embeddings"
        return None
    op = op.lower()
    return _TRACELOOP_OPERATIONS.get(op, op)
