"""`otel-llm-cost demo`: realistic synthetic LLM traffic through the real pipeline.

The spans go TracerProvider -> LLMCostSpanProcessor -> BatchSpanProcessor -> DuckDBSpanExporter, the
same path an application uses; only the LLM calls themselves are simulated. Their attributes are the
ones real instrumentations emit (the recorded fixtures in tests/fixtures/spans): the OTel GenAI
OpenAI instrumentation, OpenLLMetry's Anthropic instrumentation next to the Anthropic SDK's own span
(the same call recorded twice), OpenInference, and an app-side response cache.

Traffic (deterministic for a seed): three orgs and their users; a support chat agent on Claude with
prompt caching across each session's turns, some turns tagged by the app as fit for a cheaper model;
invoice-processing workflows (extract -> classify -> summarize) across OpenAI and Anthropic; search
on Gemini with embeddings and response-cache hits; code review on a self-hosted model no price table
knows (it stays unpriced, visibly).
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.attribution import attribution
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

__all__ = ["DEFAULT_DB", "DEMO_SERVICE", "DemoCall", "generate_calls", "run_demo"]

DEFAULT_DB: Final = "otel-llm-cost-demo.duckdb"
DEMO_SERVICE: Final = "otel-llm-cost-demo"
DAYS: Final = 14

_Tracers = Mapping[str, Tracer]

# Instrumentation scopes as the real packages name them.
_OPENAI_V2: Final = "opentelemetry.instrumentation.openai_v2"
_TRACELOOP_ANTHROPIC: Final = "opentelemetry.instrumentation.anthropic"
_OPENINFERENCE_ANTHROPIC: Final = "openinference.instrumentation.anthropic"
_OPENINFERENCE_GOOGLE: Final = "openinference.instrumentation.google_genai"

_ORGS: Final = {
    "org_acme": ("u-ana", "u-ben", "u-chloe", "u-dev", "u-eli"),
    "org_globex": ("u-fay", "u-gus", "u-hal"),
    "org_initech": ("u-ivy", "u-jon"),
}
UNPRICED_MODEL: Final = "acme-coder-2-ft"
"""A fine-tuned self-hosted model: no price table knows it, so its calls stay unpriced."""


@dataclass(frozen=True, slots=True)
class DemoCall:
    """One simulated LLM call: what to emit, under which attribution tags."""

    style: str
    """openai_v2, anthropic_pair (OpenLLMetry span + the Anthropic SDK's span), openinference_anthropic,
    openinference_google, self_hosted or response_cache."""
    start: datetime
    duration_ms: float
    request_model: str
    response_model: str
    input_tokens: int
    output_tokens: int
    tags: dict[str, str]
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    operation: str = "chat"
    hints: dict[str, AttributeValue] = field(default_factory=dict)


def _times(rng: random.Random, n: int, now: datetime) -> list[datetime]:
    """``n`` start times over the last DAYS days, busier on weekdays and working hours, then sorted."""
    start = now - timedelta(days=DAYS)
    times: list[datetime] = []
    while len(times) < n:
        moment = start + timedelta(seconds=rng.uniform(0, DAYS * 86400 - 600))
        weight = (1.0 if moment.weekday() < 5 else 0.35) * (1.0 if 7 <= moment.hour < 20 else 0.3)
        if rng.random() < weight:
            times.append(moment)
    return sorted(times)


def generate_calls(n: int, seed: int, now: datetime) -> list[DemoCall]:
    """Deterministic synthetic traffic of about ``n`` LLM calls ending at ``now`` (pure: no I/O)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic traffic, not security
    calls: list[DemoCall] = []
    users = [(org, user) for org, members in _ORGS.items() for user in members]
    # Each anchor starts an interaction of one to six calls; visiting anchors in random order spreads
    # the first ``n`` calls over the whole period.
    anchors = _times(rng, n, now)
    rng.shuffle(anchors)
    for anchor in anchors:
        if len(calls) >= n:
            break
        org, user = rng.choice(users)
        pick = rng.random()
        if pick < 0.35:
            calls += _support_session(rng, anchor, org, user)
        elif pick < 0.6:
            calls += _invoice_workflow(rng, anchor, org, user)
        elif pick < 0.9:
            calls += _search(rng, anchor, org, user)
        else:
            calls += _code_review(rng, anchor, org, user)
    return sorted(calls[:n], key=lambda c: c.start)


def _support_session(rng: random.Random, at: datetime, org: str, user: str) -> list[DemoCall]:
    session = f"sess-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
    system_prompt = rng.choice((3200, 4800, 6100))
    calls = []
    moment = at
    for turn in range(rng.randint(2, 6)):
        simple = rng.random() < 0.3
        hints: dict[str, AttributeValue] = (
            {sc.PROMPT_COULD_USE_HAIKU: True, sc.MODEL_RECOMMENDATION: "claude-3-5-haiku-latest"}
            if simple
            else {}
        )
        fresh = rng.randint(80, 900)
        calls.append(
            DemoCall(
                style="anthropic_pair",
                start=moment,
                duration_ms=rng.uniform(900, 6000),
                request_model="claude-sonnet-4-5",
                response_model="claude-sonnet-4-5-20250929",
                # Turn 1 writes the system prompt to the prompt cache; later turns read it.
                input_tokens=system_prompt + fresh,
                cache_write_tokens=system_prompt if turn == 0 else 0,
                cache_read_tokens=0 if turn == 0 else system_prompt,
                output_tokens=rng.randint(60, 700),
                tags={
                    "feature": "support_chat",
                    "agent": "support-bot",
                    "org_id": org,
                    "user_id": user,
                    "session_id": session,
                    "role": "assistant",
                },
                hints=hints,
            )
        )
        moment += timedelta(seconds=rng.uniform(20, 240))
    return calls


def _invoice_workflow(rng: random.Random, at: datetime, org: str, user: str) -> list[DemoCall]:
    workflow = f"wf-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}"
    base = {
        "feature": "document_analysis",
        "agent": "invoice-agent",
        "org_id": org,
        "user_id": user,
        "workflow_id": workflow,
        "workflow_label": "invoice",
    }
    pages = rng.randint(1, 8)
    steps = (
        ("extract", "openai_v2", "gpt-4o", "gpt-4o-2024-08-06", 1500 * pages, rng.randint(300, 1200)),
        ("classify", "openai_v2", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", rng.randint(400, 900), 20),
        (
            "summarize",
            "openinference_anthropic",
            "claude-3-5-haiku-latest",
            "claude-3-5-haiku-20241022",
            rng.randint(800, 2500),
            rng.randint(150, 400),
        ),
    )
    calls = []
    moment = at
    for step, style, request_model, response_model, input_tokens, output_tokens in steps:
        duration = rng.uniform(700, 9000)
        calls.append(
            DemoCall(
                style=style,
                start=moment,
                duration_ms=duration,
                request_model=request_model,
                response_model=response_model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                tags={**base, "step": step, "task": "invoice"},
            )
        )
        moment += timedelta(milliseconds=duration + rng.uniform(50, 400))
    return calls


def _search(rng: random.Random, at: datetime, org: str, user: str) -> list[DemoCall]:
    tags = {"feature": "search", "agent": "search", "org_id": org, "user_id": user}
    query_tokens = rng.randint(8, 60)
    embed = DemoCall(
        style="openai_v2",
        start=at,
        duration_ms=rng.uniform(60, 250),
        request_model="text-embedding-3-small",
        response_model="text-embedding-3-small",
        input_tokens=query_tokens,
        output_tokens=0,
        tags=tags,
        operation="embeddings",
    )
    answer_at = at + timedelta(milliseconds=300)
    if rng.random() < 0.2:
        # Answered from the app's response cache: an LLM span with no API spend.
        answer = DemoCall(
            style="response_cache",
            start=answer_at,
            duration_ms=rng.uniform(2, 15),
            request_model="gemini-2.0-flash",
            response_model="gemini-2.0-flash",
            input_tokens=0,
            output_tokens=0,
            tags=tags,
        )
    else:
        answer = DemoCall(
            style="openinference_google",
            start=answer_at,
            duration_ms=rng.uniform(400, 2500),
            request_model="gemini-2.0-flash",
            response_model="gemini-2.0-flash",
            input_tokens=rng.randint(1500, 6000),
            output_tokens=rng.randint(100, 600),
            tags=tags,
        )
    return [embed, answer]


def _code_review(rng: random.Random, at: datetime, org: str, user: str) -> list[DemoCall]:
    return [
        DemoCall(
            style="self_hosted",
            start=at,
            duration_ms=rng.uniform(2000, 15000),
            request_model=UNPRICED_MODEL,
            response_model=UNPRICED_MODEL,
            input_tokens=rng.randint(2000, 12000),
            output_tokens=rng.randint(200, 1500),
            tags={"feature": "code_review", "agent": "reviewer", "org_id": org, "user_id": user},
        )
    ]


# -- emission ------------------------------------------------------------------------------------


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
    # OpenLLMetry's Anthropic span and the Anthropic SDK's own span for the same call (DESIGN.md fact 3):
    # the processor bills one of them and marks the other as a duplicate.
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
