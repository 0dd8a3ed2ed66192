"""Recognise LLM spans from any common instrumentation and normalise their token counts.

Pure: no OpenTelemetry SDK objects, no I/O. Input is an attribute mapping and the instrumentation
scope name; output is a :class:`Usage` or ``None`` for a span that is not an LLM call.

Recognition is table-driven. Each convention is a :class:`_Table`: for every count, the attribute
names that may carry it, best first (current OTel GenAI names before legacy ones). The convention of
a span is chosen once, by its scope name and marker attributes (see :func:`_pick`), and only its
table is read. The tables and the rules are documented for users in the "Supported
instrumentations" section of the README; every convention is tested against spans recorded from
the real packages (``tests/fixtures/spans``).

Rules that are not a plain name lookup:

- Input counts ALL input tokens. Every convention reports it that way except OpenLIT's Anthropic
  spans (scope ``openlit.instrumentation.anthropic``), whose input excludes cache reads and writes:
  they are added back. An input smaller than its cache reads + writes from any other source is
  taken as exclusive too (and noted in ``problems``).
- Reasoning is part of output. A reasoning count larger than the output count (a provider that
  reports thinking separately) is added to output, as is one that makes ``total == input + output
  + reasoning``.
- Missing input or output is derived from a total when the other one is known; a span with only a
  total is an LLM call with ``usage_reported=False`` (the split, hence the price, is unknown).
- Aggregate spans (``is_aggregate``): OpenInference span kinds ``AGENT`` and ``CHAIN``,
  ``traceloop.span.kind`` ``workflow``/``agent``/``task``, and ``gen_ai.operation.name``
  ``invoke_agent``/``create_agent``/``invoke_workflow``. Their token counts, when present, repeat
  the counts of the LLM spans below them, so they must not be billed again. Such a span without
  token counts is not an LLM call (``None``).
- A span with no token counts is still an LLM call (``usage_reported=False``) when it says so: an
  LLM operation name (``chat``, ``text_completion``, ``generate_content``, ``embeddings``...),
  OpenInference kind ``LLM``/``EMBEDDING``, or Traceloop ``llm.request.type``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

from otel_llm_cost.conventions import names as sc

__all__ = ["Usage", "normalize_usage"]

_logger = logging.getLogger("otel_llm_cost.usage")


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one LLM call, normalised across conventions.

    Invariants (enforced by :func:`normalize_usage`): every count is a non-negative int;
    ``input_tokens`` counts ALL input, including cache reads and cache writes;
    ``cache_read_tokens + cache_write_tokens <= input_tokens``;
    ``cache_write_1h_tokens <= cache_write_tokens`` (the rest of the cache writes are 5-minute ones);
    ``reasoning_tokens <= output_tokens``: reasoning is part of output and is charged once, as output.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    request_model: str | None = None
    response_model: str | None = None
    provider: str | None = None
    """Provider name as the span gave it, lower-cased (``openai``, ``anthropic``, ``aws.bedrock``...)."""
    operation: str | None = None
    """``chat``, ``text_completion``, ``embeddings``... when the span says."""
    convention: str = "gen_ai"
    """Which convention the counts were read from: gen_ai, openinference, traceloop, openlit,
    anthropic_sdk or seed."""
    usage_reported: bool = True
    """False when the span is an LLM call but carries no usable token counts (for example a stream
    without ``stream_options.include_usage``): the counts are zeros, not measurements."""
    is_aggregate: bool = False
    """An agent/workflow/chain span whose counts repeat those of the LLM spans below it."""
    response_id: str | None = None
    """``gen_ai.response.id`` when the span has it: the same id on two spans is one call."""
    streaming: bool | None = None
    """Whether the call streamed its response; ``None`` when the span does not say."""
    problems: tuple[str, ...] = ()
    """What was dropped or coerced while reading the span (malformed values), for logging."""

    @property
    def model(self) -> str | None:
        """The model to price: the response model (dated snapshot ids are more precise) else the request's."""
        return self.response_model or self.request_model

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens


def _usage_builder() -> Callable[..., Usage]:
    """A positional constructor for :func:`normalize_usage` that fills the slots directly.

    A frozen dataclass's ``__init__`` sets each of the 16 fields through ``object.__setattr__``:
    ~1.9 us per span, a third of normalising a typical span. The slot descriptors set the same
    fields in ~0.9 us; the result is an ordinary, immutable Usage (tests check it equals one
    built through ``__init__``).
    """
    (
        set_input,
        set_output,
        set_cache_read,
        set_cache_write,
        set_cache_write_1h,
        set_reasoning,
        set_request_model,
        set_response_model,
        set_provider,
        set_operation,
        set_convention,
        set_usage_reported,
        set_is_aggregate,
        set_response_id,
        set_streaming,
        set_problems,
    ) = (getattr(Usage, f.name).__set__ for f in fields(Usage))
    new = object.__new__

    def build(  # noqa: PLR0917 - positional on purpose: the per-span hot path
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        cache_write_1h_tokens: int,
        reasoning_tokens: int,
        request_model: str | None,
        response_model: str | None,
        provider: str | None,
        operation: str | None,
        convention: str,
        usage_reported: bool,
        is_aggregate: bool,
        response_id: str | None,
        streaming: bool | None,
        problems: tuple[str, ...],
    ) -> Usage:
        usage: Usage = new(Usage)
        set_input(usage, input_tokens)
        set_output(usage, output_tokens)
        set_cache_read(usage, cache_read_tokens)
        set_cache_write(usage, cache_write_tokens)
        set_cache_write_1h(usage, cache_write_1h_tokens)
        set_reasoning(usage, reasoning_tokens)
        set_request_model(usage, request_model)
        set_response_model(usage, response_model)
        set_provider(usage, provider)
        set_operation(usage, operation)
        set_convention(usage, convention)
        set_usage_reported(usage, usage_reported)
        set_is_aggregate(usage, is_aggregate)
        set_response_id(usage, response_id)
        set_streaming(usage, streaming)
        set_problems(usage, problems)
        return usage

    return build


_new_usage = _usage_builder()


# --------------------------------------------------------------------------------------------
# The tables
# --------------------------------------------------------------------------------------------

_Names = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Table:
    """Attribute names per normalised field, best first. The first valid value wins."""

    convention: str
    input: _Names
    output: _Names
    total: _Names
    cache_read: _Names
    cache_write: _Names
    cache_write_5m: _Names
    cache_write_1h: _Names
    reasoning: _Names
    request_model: _Names
    response_model: _Names
    provider: _Names
    operation: _Names
    streaming: _Names
    extra_input: _Names = ()
    extra_output: _Names = ()
    """Counts billed on top of input/output that the span keeps apart (Anthropic compactions)."""
    input_excludes_cache: bool = False
    streaming_absent_means_false: bool = False
    """The Anthropic SDK sets ``gen_ai.request.stream`` only on streamed calls."""
    optional_counts: frozenset[str] = field(init=False, repr=False, compare=False)
    """Every cache, reasoning and extra count name: most calls carry none of them, and one set
    test skips their ~12 lookups (see :func:`_read_counts`)."""

    def __post_init__(self) -> None:
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
_RESPONSE_ID: Final = (sc.GEN_AI_RESPONSE_ID,)

GEN_AI: Final = _Table(
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
ANTHROPIC_SDK: Final = _Table(
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
# DESIGN.md fact 2, confirmed on openlit 1.45 spans: input_tokens is Anthropic's own, cache excluded.
OPENLIT_ANTHROPIC: Final = replace(OPENLIT, input_excludes_cache=True)
OPENINFERENCE: Final = _Table(
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
SEED: Final = _Table(
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
_CONVENTIONS_BY_LABEL: Final = {
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

_MAX_COUNT: Final = 2**63 - 1  # DuckDB BIGINT; anything larger is garbage, not a token count
_MAX_NAME_LEN: Final = 256
_PROBLEM_VALUE_LEN: Final = 40


# --------------------------------------------------------------------------------------------
# Value coercion
# --------------------------------------------------------------------------------------------


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _PROBLEM_VALUE_LEN else text[: _PROBLEM_VALUE_LEN - 3] + "..."


def _as_count(name: str, value: object, problems: list[str]) -> int | None:
    """A token count from an attribute value, or ``None`` (with a problem noted) if it is not one."""
    if type(value) is int:  # the common case first; also excludes bool
        if 0 <= value <= _MAX_COUNT:
            return value
        problems.append(f"{name}: {'negative' if value < 0 else 'out of range'} count {_show(value)} dropped")
        return None
    if isinstance(value, bool):
        problems.append(f"{name}: boolean {value} is not a count, dropped")
        return None
    if isinstance(value, int):  # int subclasses (IntEnum...)
        return _as_count(name, int(value), problems)
    if isinstance(value, float):
        if math.isfinite(value) and value >= 0 and value.is_integer() and value <= _MAX_COUNT:
            problems.append(f"{name}: float {_show(value)} coerced to int")
            return int(value)
        problems.append(f"{name}: float {_show(value)} is not a count, dropped")
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= _MAX_COUNT:
            problems.append(f"{name}: string {_show(value)} coerced to int")
            return int(text)
        problems.append(f"{name}: string {_show(value)} is not a count, dropped")
        return None
    problems.append(f"{name}: {type(value).__name__} {_show(value)} is not a count, dropped")
    return None


def _count(attributes: Mapping[str, Any], names: _Names, problems: list[str]) -> int | None:
    for name in names:
        value = attributes.get(name)
        if value is not None:
            if type(value) is int and 0 <= value <= _MAX_COUNT:  # the common case, without a call
                return value
            count = _as_count(name, value, problems)
            if count is not None:
                return count
    return None


def _text(attributes: Mapping[str, Any], names: _Names, problems: list[str]) -> str | None:
    for name in names:
        value = attributes.get(name)
        if value is None:
            continue
        if type(value) is str:
            text = value.strip()
            if text and len(text) <= _MAX_NAME_LEN:
                return text
            problems.append(f"{name}: {'empty' if not text else 'over-long'} string dropped")
        else:
            problems.append(f"{name}: {type(value).__name__} {_show(value)} is not a string, dropped")
    return None


def _flag(attributes: Mapping[str, Any], names: _Names, problems: list[str]) -> bool | None:
    for name in names:
        value = attributes.get(name)
        if value is None:
            continue
        if type(value) is bool:
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        problems.append(f"{name}: {type(value).__name__} {_show(value)} is not a boolean, dropped")
    return None


def _str_value(attributes: Mapping[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    return value if type(value) is str else None


# --------------------------------------------------------------------------------------------
# Recognition
# --------------------------------------------------------------------------------------------


def _pick(attributes: Mapping[str, Any], scope_name: str | None) -> _Table | None:
    """The convention whose table describes this span, or ``None`` if no convention claims it.

    Our own ``llm.tokens.*`` names are not looked at here: see :func:`_normalize`."""
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


def _classify(attributes: Mapping[str, Any], operation: str | None) -> tuple[bool, bool]:
    """(declares itself an LLM call, is an aggregate span) from the span's kind attributes."""
    oi_kind = _str_value(attributes, sc.OPENINFERENCE_SPAN_KIND)
    tl_kind = _str_value(attributes, sc.TRACELOOP_SPAN_KIND)
    request_type = _str_value(attributes, sc.LLM_REQUEST_TYPE)
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


def _operation(attributes: Mapping[str, Any], table: _Table, problems: list[str]) -> str | None:
    op = _text(attributes, table.operation, problems)
    if op is None:
        oi_kind = _str_value(attributes, sc.OPENINFERENCE_SPAN_KIND)
        if oi_kind is not None and oi_kind.upper() == "EMBEDDING":
            return "embeddings"
        return None
    op = op.lower()
    return _TRACELOOP_OPERATIONS.get(op, op)


def _read_counts(
    attributes: Mapping[str, Any], table: _Table, declared: bool, problems: list[str]
) -> tuple[bool, int, int, int, int, int, int] | None:
    """(usage_reported, input, output, cache_read, cache_write, cache_write_1h, reasoning) with the
    invariants of :class:`Usage` enforced, or ``None`` when the span has no counts and does not
    declare itself an LLM call."""
    input_tokens = _count(attributes, table.input, problems)
    output_tokens = _count(attributes, table.output, problems)
    total_tokens = _count(attributes, table.total, problems)
    if input_tokens is None and output_tokens is None:
        if total_tokens is None and not declared:
            return None
        if total_tokens is not None:
            problems.append("only a total token count was reported; input/output split unknown")
        return False, 0, 0, 0, 0, 0, 0
    if input_tokens is None:
        input_tokens = max(total_tokens - (output_tokens or 0), 0) if total_tokens is not None else 0
    if output_tokens is None:
        output_tokens = max(total_tokens - input_tokens, 0) if total_tokens is not None else 0
    if table.optional_counts.isdisjoint(attributes):
        # No cache, reasoning or extra counts (the common call): nothing below would change.
        return True, input_tokens, output_tokens, 0, 0, 0, 0

    cr = _count(attributes, table.cache_read, problems) or 0
    cache_write = _count(attributes, table.cache_write, problems)
    cache_write_1h = _count(attributes, table.cache_write_1h, problems) if table.cache_write_1h else None
    if cache_write is None and table.cache_write_5m:
        five = _count(attributes, table.cache_write_5m, problems)
        if five is not None or cache_write_1h is not None:
            cache_write = (five or 0) + (cache_write_1h or 0)
    cw = cache_write or 0
    cw1h = cache_write_1h or 0
    if cw1h > cw:
        problems.append(f"1h cache writes ({cw1h}) exceed cache writes ({cw}); capped")
        cw1h = cw
    if table.input_excludes_cache:
        input_tokens += cr + cw
    elif cr + cw > input_tokens:
        problems.append(
            f"input ({input_tokens}) smaller than cache read+write ({cr + cw}); taken as excluding them"
        )
        input_tokens += cr + cw

    rs = _count(attributes, table.reasoning, problems) or 0
    if rs > output_tokens:
        problems.append(f"reasoning ({rs}) exceeds output ({output_tokens}); taken as excluded from it")
        output_tokens += rs
    elif rs and total_tokens is not None and total_tokens == input_tokens + output_tokens + rs:
        output_tokens += rs  # the total says reasoning was reported apart from output

    if table.extra_input:
        input_tokens += _count(attributes, table.extra_input, problems) or 0
        output_tokens += _count(attributes, table.extra_output, problems) or 0
    if input_tokens > _MAX_COUNT or output_tokens > _MAX_COUNT:
        problems.append("token counts overflow; dropped")
        return False, 0, 0, 0, 0, 0, 0
    return True, input_tokens, output_tokens, cr, cw, cw1h, rs


def _normalize(attributes: Mapping[str, Any], scope_name: str | None) -> Usage | None:
    table = _pick(attributes, scope_name)
    # A span we enriched (or one an app wrote with our names) is counted from llm.tokens.*, which
    # already hold the normalised counts; models, provider and flags still come from its own
    # convention, so re-reading an enriched span gives the Usage its original attributes gave.
    seeded = sc.LLM_TOKENS_INPUT in attributes or sc.LLM_TOKENS_OUTPUT in attributes
    if table is None:
        if not seeded:
            return None
        table = SEED
        label = _str_value(attributes, sc.LLM_CONVENTION)
        convention = label if label in _CONVENTIONS_BY_LABEL else SEED.convention
    else:
        convention = table.convention
    problems: list[str] = []
    operation = _operation(attributes, table, problems)
    declared, aggregate = _classify(attributes, operation)

    counts = _read_counts(attributes, SEED if seeded else table, declared, problems)
    if counts is None:
        return None  # e.g. an agent span without counts, a tool span, count_tokens
    usage_reported, input_tokens, output_tokens, cr, cw, cw1h, rs = counts

    if table.streaming:
        streaming = _flag(attributes, table.streaming, problems)
        if streaming is None and table.streaming_absent_means_false:
            streaming = False
    else:
        streaming = None
    provider = _text(attributes, table.provider, problems)
    return _new_usage(
        input_tokens,
        output_tokens,
        cr,
        cw,
        cw1h,
        rs,
        _text(attributes, table.request_model, problems),
        _text(attributes, table.response_model, problems),
        provider.lower() if provider is not None else None,
        operation,
        convention,
        usage_reported,
        aggregate,
        _text(attributes, _RESPONSE_ID, problems),
        streaming,
        tuple(problems),
    )


_failure_logged = False


def normalize_usage(attributes: Mapping[str, Any], scope_name: str | None = None) -> Usage | None:
    """Recognise an LLM span and normalise its token usage, whatever instrumentation emitted it.

    Args:
        attributes: the span's attributes (any mapping; values of any type are tolerated).
        scope_name: the span's instrumentation scope name; it selects conventions that cannot be
            told apart by attribute names (OpenLIT's Anthropic spans, the Anthropic SDK's spans).

    Returns:
        A :class:`Usage`, or ``None`` when the span is not an LLM call. Malformed values are
        dropped or coerced and described in ``Usage.problems``.

    Never raises.

    Example:
        >>> u = normalize_usage({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 1200,
        ...                      "gen_ai.usage.cache_read.input_tokens": 1024,
        ...                      "gen_ai.usage.output_tokens": 300, "gen_ai.response.model": "gpt-4o"})
        >>> (u.input_tokens, u.uncached_input_tokens, u.model)
        (1200, 176, 'gpt-4o')
    """
    global _failure_logged  # noqa: PLW0603 - one warning per process, not per span
    try:
        return _normalize(attributes, scope_name)
    except Exception:
        # Only a broken Mapping (a get() or __contains__ that raises) can get here.
        if not _failure_logged:
            _failure_logged = True
            _logger.warning("normalize_usage could not read a span's attributes", exc_info=True)
        return None
