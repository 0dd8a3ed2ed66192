"""Record an LLM call that no instrumentation saw: one span through the current TracerProvider.

The span goes the way an instrumented call's span goes, so pricing, attribution, the double-count guard,
budgets, metrics and every exporter treat it exactly alike::

    response = client.messages.create(...)            # the Anthropic SDK, no instrumentation
    record_llm_call(
        model=response.model,
        provider="anthropic",
        input_tokens=response.usage.input_tokens,     # Anthropic: excludes cache reads and writes
        input_includes_cache=False,
        output_tokens=response.usage.output_tokens,
        cache_read_tokens=response.usage.cache_read_input_tokens or 0,
        cache_write_tokens=response.usage.cache_creation_input_tokens or 0,
        response_id=response.id,
        feature="search",
    )

Input semantics differ between providers: the Anthropic API's ``input_tokens`` leaves cache reads and
writes out, OpenAI's ``prompt_tokens`` and the OpenTelemetry GenAI count include them. Taking one for
the other misprices the call (an exclusive count read as inclusive charges the cached tokens twice
too little), so a call with cache tokens must say which it is (``input_includes_cache``).
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, SpanContext, TracerProvider

from otel_llm_cost._logging import log_once
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.attribution import attribution

__all__ = ["LLM_USAGE_KEY", "record_llm_call", "record_llm_usage", "records_llm_usage"]

LLM_USAGE_KEY = "llm_usage"
"""The entry of a function's result that :func:`records_llm_usage` records and strips."""

_logger = logging.getLogger("otel_llm_cost.recording")
_P = ParamSpec("_P")
_R = TypeVar("_R")
_COUNT_NAMES = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


# The largest count a stored row holds (storage.invariants.MAX_TOKEN_COUNT; not imported here, where
# recording must not load the storage layer's pyarrow).
_MAX_COUNT = 10**12
# Span times are int64 nanoseconds since the epoch.
_MAX_NANOS = 2**63 - 1


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise ValueError(f"{name} must be an int from 0 to 10^12, got {value!r}")
    return value


def _duration(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a non-negative number of milliseconds, got {value!r}")
    return float(value)


def _epoch_ns(name: str, value: datetime | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return int(value.timestamp() * 1e9)


def _times(start: datetime | None, end: datetime | None, latency_ms: float | None) -> tuple[int, int]:
    """(start, end) in epoch ns: ``end`` defaults to now, ``start`` to ``end - latency_ms``."""
    start_ns, end_ns = _epoch_ns("start", start), _epoch_ns("end", end)
    if start_ns is not None and end_ns is not None and latency_ms is not None:
        raise ValueError("give at most two of start, end and latency_ms")
    latency_ns = int((latency_ms or 0.0) * 1e6)
    if end_ns is None:
        end_ns = start_ns + latency_ns if start_ns is not None else time.time_ns()
    if start_ns is None:
        start_ns = end_ns - latency_ns
    if end_ns < start_ns:
        raise ValueError("end is before start")
    if start_ns < 0 or end_ns > _MAX_NANOS:
        raise ValueError("start and end must fall between 1970 and 2262 (span times are int64 nanoseconds)")
    return start_ns, end_ns


def _usage_attributes(counts: dict[str, int], input_includes_cache: bool | None) -> dict[str, Any]:
    """The span's token attributes, input counted inclusive of cache tokens as every convention reads it."""
    cached = counts["cache_read_tokens"] + counts["cache_write_tokens"]
    if counts["cache_write_1h_tokens"] > counts["cache_write_tokens"]:
        raise ValueError("cache_write_1h_tokens is part of cache_write_tokens and cannot exceed it")
    if counts["reasoning_tokens"] > counts["output_tokens"]:
        raise ValueError("reasoning_tokens is part of output_tokens and cannot exceed it")
    if cached and input_includes_cache is None:
        raise ValueError(
            "with cache tokens, say whether input_tokens includes them: input_includes_cache=False for "
            "the Anthropic API's usage.input_tokens, True for OpenAI's prompt_tokens or OTel GenAI counts"
        )
    input_tokens = counts["input_tokens"]
    if input_includes_cache is False:
        input_tokens += cached
    elif cached > input_tokens:
        raise ValueError(
            f"input_tokens ({input_tokens}) cannot include {cached} cache tokens; "
            "did you mean input_includes_cache=False?"
        )
    output_tokens = counts["output_tokens"]
    attributes: dict[str, Any] = {
        sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        sc.LLM_TOKENS_INPUT: input_tokens,
        sc.LLM_TOKENS_OUTPUT: output_tokens,
        sc.LLM_TOKENS_TOTAL: input_tokens + output_tokens,
        sc.LLM_TOKENS_CACHE_READ: counts["cache_read_tokens"],
        sc.LLM_TOKENS_CACHE_WRITE: counts["cache_write_tokens"],
        sc.LLM_TOKENS_REASONING: counts["reasoning_tokens"],
    }
    if counts["cache_read_tokens"]:
        attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = counts["cache_read_tokens"]
    if counts["cache_write_tokens"]:
        attributes[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = counts["cache_write_tokens"]
    if counts["cache_write_1h_tokens"]:
        attributes[sc.LLM_TOKENS_CACHE_WRITE_1H] = counts["cache_write_1h_tokens"]
    if counts["reasoning_tokens"]:
        attributes[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = counts["reasoning_tokens"]
    return attributes


def _text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    return value


def _tag_attributes(tags: Mapping[str, object]) -> dict[str, str]:
    """``cost.<key>`` attributes; ``user_id`` hashed as attribution() hashes it."""
    for key, value in tags.items():
        if value is not None and not isinstance(value, str):
            raise ValueError(f"tag {key!r} must be a str, got {type(value).__name__}")
    validated = attribution(**tags).tags  # type: ignore[arg-type]  # checked above
    return {sc.COST_PREFIX + key: value for key, value in validated.items()}


def _provider_or_none(tracer_provider: TracerProvider | None) -> TracerProvider | None:
    if tracer_provider is not None and not isinstance(tracer_provider, trace.TracerProvider):
        raise TypeError(f"tracer_provider must be an OpenTelemetry TracerProvider, got {tracer_provider!r}")
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    if isinstance(provider, ProxyTracerProvider | NoOpTracerProvider):
        return None
    return provider


def record_llm_call(
    *,
    model: str,
    input_tokens: int,
    output_tokens: int,
    input_includes_cache: bool | None = None,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    reasoning_tokens: int = 0,
    provider: str | None = None,
    operation: str = "chat",
    latency_ms: float | None = None,
    time_to_first_token_ms: float | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    response_id: str | None = None,
    tracer_provider: TracerProvider | None = None,
    **tags: str | None,
) -> SpanContext | None:
    """Emit one LLM span for a call made without an instrumentation; it is then priced and stored as one.

    The span is a child of the current span (an agent run's totals include it) and carries the
    current :func:`~otel_llm_cost.attribution` tags; ``tags`` given here are added (and win).

    Args:
        model: The model as the provider named it (``claude-sonnet-4-5``, ``gpt-4o``).
        input_tokens: Input tokens, in the provider's sense (see ``input_includes_cache``).
        output_tokens: Output tokens, reasoning included.
        input_includes_cache: Required when there are cache tokens. ``False``: ``input_tokens``
            leaves cache reads and writes out (the Anthropic API's ``usage.input_tokens``);
            ``True``: it counts them in (OpenAI's ``prompt_tokens``, OpenTelemetry GenAI counts).
        cache_read_tokens: Input read from the provider's prompt cache.
        cache_write_tokens: Input written to the prompt cache (5-minute and 1-hour writes).
        cache_write_1h_tokens: The 1-hour part of ``cache_write_tokens``.
        reasoning_tokens: The reasoning part of ``output_tokens``.
        provider: ``anthropic``, ``openai``... (``None``: inferred from the model when priced).
        operation: The GenAI operation (``chat``, ``text_completion``, ``embeddings``...).
        latency_ms: How long the call took; with ``end`` (default now) it places the start.
        time_to_first_token_ms: For a streamed call, when the first token arrived.
        start: When the call started (timezone-aware; prices are those in force then).
        end: When it ended (timezone-aware; default now, or ``start + latency_ms``).
        response_id: The provider's response id (lets the double-count guard spot the same call
            recorded by an instrumentation too).
        tracer_provider: Where the span goes (``None``: the global provider, as ``configure()`` sets it).
        **tags: Attribution tags (``feature``, ``agent``, ``user_id`` (hashed), ``session_id``...,
            or any identifier-like key): ``cost.<key>`` on the span.

    Returns:
        The span's context, or ``None`` when no TracerProvider is set (logged once; nothing recorded).

    Raises:
        ValueError: A count is not an int from 0 to 10^12; cache tokens without ``input_includes_cache``;
            inclusive ``input_tokens`` smaller than the cache tokens; a part larger than its whole;
            naive datetimes; times outside 1970-2262; ``start``, ``end`` and ``latency_ms`` all
            given; a tag that is not a str.
        TypeError: ``tracer_provider`` is not an OpenTelemetry TracerProvider.

    Example:
        >>> from opentelemetry.sdk.trace import TracerProvider
        >>> record_llm_call(model="gpt-4o", input_tokens=1200, output_tokens=300,
        ...                 tracer_provider=TracerProvider(), feature="search") is not None
        True
    """
    model_name = _text("model", model)
    if model_name is None:
        raise ValueError("model is required")
    counts = {
        name: _count(name, value)
        for name, value in zip(
            _COUNT_NAMES,
            (
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                cache_write_1h_tokens,
                reasoning_tokens,
            ),
            strict=True,
        )
    }
    if input_includes_cache is not None and not isinstance(input_includes_cache, bool):
        raise ValueError(f"input_includes_cache must be True or False, got {input_includes_cache!r}")
    attributes = _usage_attributes(counts, input_includes_cache)
    attributes[sc.GEN_AI_OPERATION_NAME] = _text("operation", operation) or "chat"
    attributes[sc.GEN_AI_REQUEST_MODEL] = model_name
    attributes[sc.GEN_AI_RESPONSE_MODEL] = model_name
    for name, value in ((sc.GEN_AI_PROVIDER_NAME, provider), (sc.GEN_AI_RESPONSE_ID, response_id)):
        text = _text(name, value)
        if text is not None:
            attributes[name] = text
    first_token = _duration("time_to_first_token_ms", time_to_first_token_ms)
    if first_token is not None:
        attributes[sc.LLM_TIME_TO_FIRST_TOKEN_MS] = first_token
    start_ns, end_ns = _times(start, end, _duration("latency_ms", latency_ms))
    attributes.update(_tag_attributes(tags))
    target = _provider_or_none(tracer_provider)
    if target is None:
        log_once(
            _logger,
            "recording.no_provider",
            logging.WARNING,
            "record_llm_call: no TracerProvider is set (call otel_llm_cost.configure()); nothing recorded",
        )
        return None
    tracer = target.get_tracer(sc.RECORDING_SCOPE)
    span = tracer.start_span(
        f"{attributes[sc.GEN_AI_OPERATION_NAME]} {model_name}",
        kind=trace.SpanKind.CLIENT,
        attributes=attributes,
        start_time=start_ns,
    )
    span.end(end_time=end_ns)
    return span.get_span_context()


def record_llm_usage(result: _R) -> _R:
    """Record the ``llm_usage`` entry of ``result`` and return ``result`` without it.

    ``result`` is a mapping whose ``llm_usage`` entry holds :func:`record_llm_call`'s keyword
    arguments; a new dict without that entry is returned (the original is not changed). Anything else
    is returned as it is. Never raises: an entry that cannot be recorded is logged once and dropped.
    """
    if not isinstance(result, Mapping) or LLM_USAGE_KEY not in result:
        return result
    usage = result[LLM_USAGE_KEY]
    try:
        if not isinstance(usage, Mapping):
            raise ValueError(f"{LLM_USAGE_KEY} must be a mapping, got {type(usage).__name__}")
        record_llm_call(**usage)
    except Exception as exc:
        log_once(_logger, "recording.llm_usage", logging.ERROR, "could not record llm_usage: %r", exc)
    return {key: value for key, value in result.items() if key != LLM_USAGE_KEY}  # type: ignore[return-value]


def records_llm_usage(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a function (sync or ``async``) whose result may carry an ``llm_usage`` entry.

    Each call's ``llm_usage`` is recorded with :func:`record_llm_call` (inside the function's
    current span and attribution) and stripped before the caller sees the result.

    Example:
        >>> @records_llm_usage
        ... def summarise(text):
        ...     return {"summary": text[:10], "llm_usage": {"model": "gpt-4o", "input_tokens": 50,
        ...                                                  "output_tokens": 5}}
        >>> summarise("a long text to summarise")
        {'summary': 'a long tex'}
    """
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
            return record_llm_usage(await func(*args, **kwargs))

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return record_llm_usage(func(*args, **kwargs))

    return wrapper
