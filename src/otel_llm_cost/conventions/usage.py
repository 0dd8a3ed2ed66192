"""Recognise LLM spans from any common instrumentation and normalise their token counts.

Pure: no OpenTelemetry SDK objects, no I/O. Input is an attribute mapping and the instrumentation
scope name; output is a :class:`Usage` or ``None`` for a span that is not an LLM call.

Recognition is table-driven: the per-convention tables, and how a span's convention is chosen,
are in :mod:`otel_llm_cost.conventions.tables`; reading a value of any type is in
:mod:`otel_llm_cost.conventions.values`. This module holds :class:`Usage` and the rules below.

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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from otel_llm_cost._logging import log_once
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.conventions.tables import (
    CONVENTIONS_BY_LABEL,
    RESPONSE_ID,
    SEED,
    ConventionTable,
    classify,
    operation_of,
    other_tables,
    pick_table,
)
from otel_llm_cost.conventions.values import MAX_COUNT, read_count, read_flag, read_text, str_value

__all__ = ["Usage", "invalid_count_problem", "normalize_usage"]

_logger = logging.getLogger("otel_llm_cost.usage")
_OVERFLOW = "token counts overflow; dropped"


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
    service_tier: str | None = None
    """The OpenAI service tier, lower-cased: the one the call was served at (``default``, ``flex``,
    ``priority``...), else the one requested (possibly ``auto``); ``None`` when the span names none."""

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


class _UsageDraft:
    """A :class:`Usage` being built: the same slots, set by plain slot stores.

    A frozen dataclass's ``__init__`` sets each of the 17 fields through ``object.__setattr__``
    (~1.9 us per span, a third of normalising one) and even its slot descriptors called one by one
    take ~1 us; plain stores take ~0.3 us. The draft then becomes a Usage by ``__class__``
    assignment, which Python allows between classes with the same slot layout (tests check the
    result equals a Usage built through ``__init__``)."""

    __slots__ = Usage.__slots__

    def __init__(  # noqa: PLR0917 - positional on purpose: the per-span hot path
        self,
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
        service_tier: str | None,
    ) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cache_read_tokens = cache_read_tokens
        self.cache_write_tokens = cache_write_tokens
        self.cache_write_1h_tokens = cache_write_1h_tokens
        self.reasoning_tokens = reasoning_tokens
        self.request_model = request_model
        self.response_model = response_model
        self.provider = provider
        self.operation = operation
        self.convention = convention
        self.usage_reported = usage_reported
        self.is_aggregate = is_aggregate
        self.response_id = response_id
        self.streaming = streaming
        self.problems = problems
        self.service_tier = service_tier


def _read_counts(
    attributes: Mapping[str, Any], table: ConventionTable, declared: bool, problems: list[str]
) -> tuple[bool, int, int, int, int, int, int] | None:
    """(usage_reported, input, output, cache_read, cache_write, cache_write_1h, reasoning) with the
    invariants of :class:`Usage` enforced, or ``None`` when the span has no counts and does not
    declare itself an LLM call."""
    input_tokens = read_count(attributes, table.input, problems)
    output_tokens = read_count(attributes, table.output, problems)
    total_tokens = read_count(attributes, table.total, problems)
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

    cr = read_count(attributes, table.cache_read, problems) or 0
    cache_write = read_count(attributes, table.cache_write, problems)
    cache_write_1h = read_count(attributes, table.cache_write_1h, problems) if table.cache_write_1h else None
    if cache_write is None and table.cache_write_5m:
        five = read_count(attributes, table.cache_write_5m, problems)
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

    rs = read_count(attributes, table.reasoning, problems) or 0
    if rs > output_tokens:
        problems.append(f"reasoning ({rs}) exceeds output ({output_tokens}); taken as excluded from it")
        output_tokens += rs
    elif rs and total_tokens is not None and total_tokens == input_tokens + output_tokens + rs:
        output_tokens += rs  # the total says reasoning was reported apart from output

    if table.extra_input:
        input_tokens += read_count(attributes, table.extra_input, problems) or 0
        output_tokens += read_count(attributes, table.extra_output, problems) or 0
    if input_tokens > MAX_COUNT or output_tokens > MAX_COUNT:
        problems.append(_OVERFLOW)
        return False, 0, 0, 0, 0, 0, 0
    return True, input_tokens, output_tokens, cr, cw, cw1h, rs


def _streaming(attributes: Mapping[str, Any], table: ConventionTable, problems: list[str]) -> bool | None:
    streaming = (
        None
        if table.streaming_names.isdisjoint(attributes)  # most spans do not say
        else read_flag(attributes, table.streaming, problems)
    )
    if streaming is None and table.streaming_absent_means_false:
        return False
    return streaming


def _normalize(attributes: Mapping[str, Any], scope_name: str | None) -> Usage | None:
    table = pick_table(attributes, scope_name)
    # A span we enriched (or one an app wrote with our names) is counted from llm.tokens.*, which
    # already hold the normalised counts; models, provider and flags still come from its own
    # convention, so re-reading an enriched span gives the Usage its original attributes gave.
    seeded = sc.LLM_TOKENS_INPUT in attributes or sc.LLM_TOKENS_OUTPUT in attributes
    if table is None:
        if not seeded:
            return None
        table = SEED
        label = str_value(attributes, sc.LLM_CONVENTION)
        convention = label if label in CONVENTIONS_BY_LABEL else SEED.convention
    else:
        convention = table.convention
    problems: list[str] = []
    operation = operation_of(attributes, table, problems)
    declared, aggregate = classify(attributes, operation)

    counts = _read_counts(attributes, SEED if seeded else table, declared, problems)
    if (counts is None or not counts[0]) and not seeded and table is not SEED:
        # Its own convention gave no usable counts: another convention on the same span may.
        for other in other_tables(attributes, table):
            other_operation = operation_of(attributes, other, problems)
            other_declared, other_aggregate = classify(attributes, other_operation)
            other_counts = _read_counts(attributes, other, other_declared, problems)
            if other_counts is not None and (counts is None or other_counts[0]):
                table, convention, counts = other, other.convention, other_counts
                operation, aggregate = other_operation, other_aggregate
                break
    if counts is None:
        if not _dropped_count(problems):
            return None  # e.g. an agent span without counts, a tool span, count_tokens
        # Counts were there but none could be read: a call whose figures are broken, not "no call".
        counts = (False, 0, 0, 0, 0, 0, 0)
    usage_reported, input_tokens, output_tokens, cr, cw, cw1h, rs = counts

    streaming = _streaming(attributes, table, problems) if table.streaming else None
    provider = read_text(attributes, table.provider, problems)
    usage = _UsageDraft(
        input_tokens,
        output_tokens,
        cr,
        cw,
        cw1h,
        rs,
        read_text(attributes, table.request_model, problems),
        read_text(attributes, table.response_model, problems),
        provider.lower() if provider is not None else None,
        operation,
        convention,
        usage_reported,
        aggregate,
        read_text(attributes, RESPONSE_ID, problems),
        streaming,
        tuple(problems),
        _lower_text(attributes, sc.SERVICE_TIER_NAMES, problems) if _has_tier(attributes) else None,
    )
    usage.__class__ = Usage  # type: ignore[assignment]
    return cast(Usage, usage)


def _has_tier(attributes: Mapping[str, Any]) -> bool:
    # Four `in` tests: the cheapest way out for the spans without a tier (all but OpenAI's).
    return (
        sc.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER in attributes
        or sc.GEN_AI_OPENAI_REQUEST_SERVICE_TIER in attributes
        or sc.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER_LEGACY in attributes
        or sc.GEN_AI_OPENAI_REQUEST_SERVICE_TIER_LEGACY in attributes
    )


def _lower_text(attributes: Mapping[str, Any], names: tuple[str, ...], problems: list[str]) -> str | None:
    text = read_text(attributes, names, problems)
    return text.lower() if text is not None else None


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
    try:
        return _normalize(attributes, scope_name)
    except Exception as exc:
        # Only a broken Mapping (a get() or __contains__ that raises) can get here.
        log_once(
            _logger,
            "usage.normalize",
            logging.WARNING,
            "normalize_usage could not read a span's attributes: %r",
            exc,
        )
        return None


def _count_names(table: ConventionTable) -> frozenset[str]:
    return frozenset((*table.input, *table.output, *table.total, *table.optional_counts))


_COUNT_NAMES = {
    label: _count_names(table) | _count_names(SEED) for label, table in CONVENTIONS_BY_LABEL.items()
}
_COUNT_NAMES[SEED.convention] = _count_names(SEED)


_ALL_COUNT_NAMES = frozenset().union(*_COUNT_NAMES.values())


def _dropped_count(problems: list[str]) -> bool:
    for problem in problems:
        name, _, rest = problem.partition(": ")
        if name in _ALL_COUNT_NAMES and rest.endswith("dropped"):
            return True
    return False


def invalid_count_problem(usage: Usage) -> str | None:
    """Why ``usage`` cannot be trusted as a measurement, or ``None``: a token count of the convention it
    was read from was present but unusable (negative, out of range, not a number), or the counts
    overflow. Such a call is stored with status ``invalid`` rather than priced from what remained."""
    names = _COUNT_NAMES.get(usage.convention) or _COUNT_NAMES[SEED.convention]
    for problem in usage.problems:
        if problem == _OVERFLOW:
            return problem
        name, _, rest = problem.partition(": ")
        if name in names and rest.endswith("dropped"):
            return problem
    return None
