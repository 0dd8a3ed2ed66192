"""Recognise LLM spans from any common instrumentation and normalise their token counts.

Pure: no OpenTelemetry SDK objects, no I/O. Input is an attribute mapping and the instrumentation
scope name; output is a :class:`Usage` or ``None`` for a span that is not an LLM call.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Usage", "normalize_usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one LLM call, normalised across conventions.

    Invariants (enforced by :func:`normalize_usage`): every count is a non-negative int;
    ``input_tokens`` counts ALL input, including cache reads and cache writes;
    ``cache_write_1h_tokens <= cache_write_tokens`` (the rest of the cache writes are 5-minute ones);
    ``reasoning_tokens`` is part of ``output_tokens`` and is charged once, as output.
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
