"""The demo's spans: each synthetic call recorded as real instrumentations record it, stored for real.

The spans go TracerProvider -> LLMCostSpanProcessor -> BatchSpanProcessor -> DuckDBSpanExporter, the
same path an application uses; only the LLM calls themselves are simulated. Their attributes are the
ones real instrumentations emit (the recorded fixtures in tests/fixtures/spans): the OTel GenAI
OpenAI instrumentation, OpenLLMetry's Anthropic instrumentation next to the Anthropic SDK's own span
(the same call recorded twice), OpenInference, and an app-side response cache.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from otel_llm_cost.cli.demo_traffic import DemoCall, generate_calls
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.attribution import attribution
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

__all__ = ["DEMO_SERVICE", "run_demo"]

DEMO_SERVICE: Final = "otel-llm-cost-demo"

_Tracers = Mapping[str, Tracer]

# Instrumentation scopes as the real packages name them.
_OPENAI_V2: Final = "opentelemetry.instrumentation.openai_v2"
_TRACELOOP_ANTHROPIC: Final = "opentelemetry.instrumentation.anthropic"
_OPENINFERENCE_ANTHROPIC: Final = "openinference.instrumentation.anthropic"
_OPENINFERENCE_GOOGLE: Final = "openinference.instrumentation.google_genai"


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)


def _gen_ai_usage(call: DemoCall) -> dict[str, AttributeValue]:
    return {
        sc.GEN_AI_USAGE_INPUT_TOKENS: call.input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: call.output_tokens,
    }


def _emit_openai_v2(tracers: _Tracers, call: DemoCall, response_id: str) -> None:
    attributes: dict[str, AttributeValue] = {
        sc.GEN_AI_OPERATION_NAME: call.operation,
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: call.request_model,
        sc.GEN_AI_RESPONSE_MODEL: call.response_model,
        "server.address": "api.openai.com",
        **_gen_ai_usage(call),
        **call.hints,
    }
    if call.operation == "chat":
        attributes[sc.GEN_AI_RESPONSE_ID] = f"chatcmpl-{response_id}"
        attributes["gen_ai.response.finish_reasons"] = ("stop",)
    _span(tracers, f"{call.operation} {call.request_model}", call, attributes, SpanKind.CLIENT)


def _anthropic_attributes(call: DemoCall, response_id: str) -> dict[str, AttributeValue]:
    return {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "anthropic",
        sc.GEN_AI_REQUEST_MODEL: call.request_model,
        sc.GEN_AI_RESPONSE_MODEL: call.response_model,
        sc.GEN_AI_RESPONSE_ID: f"msg_{response_id}",
        **_gen_ai_usage(call),
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: call.cache_read_tokens,
    }


def _emit_anthropic_pair(tracers: _Tracers, call: DemoCall, response_id: str) -> None:
    # OpenLLMetry's Anthropic span and the Anthropic SDK's own span for the same call: the Anthropic SDK
    # (>= 1.14) records its own span next to any instrumentation's, so the same call arrives twice.
    # The processor bills one of them and marks the other as a duplicate.
    traceloop = _anthropic_attributes(call, response_id)
    traceloop[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_DOTTED] = call.cache_write_tokens
    traceloop[sc.GEN_AI_USAGE_TOTAL_TOKENS] = call.input_tokens + call.output_tokens
    traceloop.update(call.hints)
    _span(tracers, "anthropic.chat", call, traceloop, SpanKind.CLIENT, scope=_TRACELOOP_ANTHROPIC)
    sdk = _anthropic_attributes(call, response_id)
    sdk[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = call.cache_write_tokens
    sdk["http.route"] = "/v1/messages"
    _span(tracers, "anthropic.messages.create", call, sdk, SpanKind.CLIENT, scope=sc.ANTHROPIC_SDK_SCOPE)


def _openinference_attributes(call: DemoCall, provider: str) -> dict[str, AttributeValue]:
    return {
        sc.OPENINFERENCE_SPAN_KIND: "LLM",
        sc.LLM_MODEL_NAME: call.response_model,
        sc.LLM_PROVIDER: provider,
        sc.LLM_SYSTEM: provider,
        sc.LLM_TOKEN_COUNT_PROMPT: call.input_tokens,
        sc.LLM_TOKEN_COUNT_COMPLETION: call.output_tokens,
        sc.LLM_TOKEN_COUNT_TOTAL: call.input_tokens + call.output_tokens,
    }


def _emit_openinference_anthropic(tracers: _Tracers, call: DemoCall, response_id: str) -> None:
    # OpenInference wraps the SDK call in an INTERNAL span; the SDK's CLIENT span is its child.
    parent = tracers[_OPENINFERENCE_ANTHROPIC].start_span(
        "messages.create",
        kind=SpanKind.INTERNAL,
        start_time=_ns(call.start),
        attributes=_openinference_attributes(call, "anthropic"),
    )
    with trace.use_span(parent, end_on_exit=False):
        sdk = _anthropic_attributes(call, response_id)
        _span(tracers, "anthropic.messages.create", call, sdk, SpanKind.CLIENT, scope=sc.ANTHROPIC_SDK_SCOPE)
    parent.end(end_time=_ns(call.start + timedelta(milliseconds=call.duration_ms)))


def _emit_openinference_google(tracers: _Tracers, call: DemoCall, response_id: str) -> None:
    _span(tracers, "GenerateContent", call, _openinference_attributes(call, "google"), SpanKind.INTERNAL)


def _emit_self_hosted(tracers: _Tracers, call: DemoCall, response_id: str) -> None:
    attributes = {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "acme-inference",
        sc.GEN_AI_REQUEST_MODEL: call.request_model,
        sc.GEN_AI_RESPONSE_MODEL: call.response_model,
        sc.GEN_AI_RESPONSE_ID: f"cmpl-{response_id}",
        **_gen_ai_usage(call),
    }
    _span(tracers, f"chat {call.request_model}", call, attributes, SpanKind.CLIENT)


def _emit_response_cache(tracers: _Tracers, call: DemoCall, response_id: str) -> None:
    attributes = {**_openinference_attributes(call, "google"), sc.LLM_RESPONSE_FROM_CACHE: True}
    _span(tracers, f"chat {call.request_model} (cached)", call, attributes, SpanKind.INTERNAL)


_EMITTERS: Final[dict[str, Callable[[_Tracers, DemoCall, str], None]]] = {
    "openai_v2": _emit_openai_v2,
    "anthropic_pair": _emit_anthropic_pair,
    "openinference_anthropic": _emit_openinference_anthropic,
    "openinference_google": _emit_openinference_google,
    "self_hosted": _emit_self_hosted,
    "response_cache": _emit_response_cache,
}
_SCOPES: Final = {
    "openai_v2": _OPENAI_V2,
    "anthropic_pair": _TRACELOOP_ANTHROPIC,
    "openinference_anthropic": _OPENINFERENCE_ANTHROPIC,
    "openinference_google": _OPENINFERENCE_GOOGLE,
    "self_hosted": _OPENAI_V2,
    "response_cache": "demo.response_cache",
}


def _span(
    tracers: _Tracers,
    name: str,
    call: DemoCall,
    attributes: dict[str, AttributeValue],
    kind: SpanKind,
    *,
    scope: str | None = None,
) -> None:
    span = tracers[scope or _SCOPES[call.style]].start_span(
        name, kind=kind, start_time=_ns(call.start), attributes=attributes
    )
    span.end(end_time=_ns(call.start + timedelta(milliseconds=call.duration_ms)))


def _check_target(path: Path) -> None:
    """Refuse to touch a file that holds anything but earlier demo data; remove an earlier demo file."""
    if not path.exists():
        return
    try:
        connection = _storage.connect(path, read_only=True)
    except StorageError as exc:
        raise StorageError(f"{path} exists and is not a demo database we can replace: {exc}") from exc
    try:
        foreign = connection.execute(
            "SELECT count(*) FROM llm_calls WHERE service_name IS DISTINCT FROM ?", [DEMO_SERVICE]
        ).fetchone()
    finally:
        connection.close()
    if foreign is None or foreign[0]:
        raise StorageError(f"{path} holds calls that the demo did not write; choose another --db path")
    for leftover in (path, Path(f"{path}.wal")):
        if leftover.exists():
            os.remove(leftover)


def run_demo(
    path: str | os.PathLike[str],
    *,
    calls: int = 400,
    seed: int = 7,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``calls`` synthetic LLM calls to ``path`` through the real pipeline; return spans emitted.

    An existing file is replaced only if it holds nothing but earlier demo data.

    Raises:
        StorageError: ``path`` holds other data, or cannot be written.
    """
    target = Path(path)
    _check_target(target)
    traffic = generate_calls(calls, seed, now or datetime.now(UTC))
    exporter = DuckDBSpanExporter(target)
    processor = LLMCostSpanProcessor(BatchSpanProcessor(exporter, max_export_batch_size=2048))
    provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: DEMO_SERVICE}))
    provider.add_span_processor(processor)
    tracers = {scope: provider.get_tracer(scope) for scope in {*_SCOPES.values(), sc.ANTHROPIC_SDK_SCOPE}}
    rng = random.Random(seed)  # noqa: S311 - synthetic response ids
    spans = 0
    try:
        for call in traffic:
            response_id = f"{rng.getrandbits(64):016x}"
            with attribution(**call.tags):  # type: ignore[arg-type]  # tags are str values
                _EMITTERS[call.style](tracers, call, response_id)
            spans += 2 if call.style in {"anthropic_pair", "openinference_anthropic"} else 1
            if progress is not None:
                progress(1)
    finally:
        provider.shutdown()
    return spans
