"""Record the spans real instrumentation packages emit, as JSON fixtures for ``tests/test_usage.py``.

Runs the real ``openai`` / ``anthropic`` SDKs, instrumented by the real packages, against the fake
provider in ``fake_provider.py``, and writes one fixture per (instrumentation, scenario):
the spans' scope, name and attributes (prompt and completion text removed), the package versions, and
for every span the usage we EXPECT, derived from what the fake server returned (never from our
normaliser) minus the documented gaps of that instrumentation (counts it does not put on its spans).

Each instrumentation runs in its own subprocess, because instrumentors patch the SDKs process-wide.
An instrumentation whose packages are not importable is skipped with a message.

Usage (from the repository root, in an environment with the record packages)::

    python tests/recording/record.py                     # every instrumentation, into tests/fixtures/spans
    python tests/recording/record.py --out /tmp/x otel-genai-openai-v2 openinference-anthropic
    python tests/recording/record.py --python /work/venv-record-openlit/bin/python \
        openlit-openai openlit-anthropic

OpenLIT 1.45 needs anthropic < 1 and openai < 3, so it is recorded from a second environment.
"""

# The SDKs and instrumentations are optional (record environment only) and must be imported after
# the child process sets its environment, hence imports inside functions.
# ruff: noqa: PLC0415
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fake_provider import FakeProvider, Scenario  # noqa: E402

DEFAULT_OUT = HERE.parent / "fixtures" / "spans"

OPENAI_SCENARIOS = (
    "openai_chat",
    "openai_chat_reasoning",
    "openai_chat_stream_usage",
    "openai_chat_stream_no_usage",
    "openai_responses",
    "openai_responses_stream",
    "openai_embeddings",
)
ANTHROPIC_SCENARIOS = ("anthropic_messages", "anthropic_messages_stream")
ANTHROPIC_SDK_SCOPE = "com.anthropic.sdk.python"

# Attributes that carry prompt or completion text (or tool payloads): never stored in fixtures.
_CONTENT = re.compile(
    r"^(gen_ai\.(prompt|completion)\.|gen_ai\.(input|output)\.messages|gen_ai\.system_instructions"
    r"|gen_ai\.tool\.(definitions|call\.arguments|call\.result)|llm\.(input|output)_messages\."
    r"|llm\.(prompts|completions)|llm\.tools\.|(input|output)\.value$|(input|output)\.mime_type$"
    r"|gen_ai\.content\.|traceloop\.entity\.(input|output)$|anthropic\.tool_result\.content)"
)


@dataclass(frozen=True)
class Instrumentation:
    """One instrumentation to record: how to switch it on, what it covers, and what it leaves out."""

    name: str
    packages: tuple[str, ...]
    """Distributions whose versions go into the fixtures (the instrumented SDK included)."""
    modules: tuple[str, ...]
    """Modules that must import for this instrumentation to be recorded."""
    scenarios: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    native_anthropic_spans: bool = False
    """Let the Anthropic SDK emit its own span next to the instrumentation's (as in real apps)."""
    gaps: Mapping[str, Mapping[str, tuple[Any, str]]] = field(default_factory=dict)
    """Per scenario (``*`` = all), per expected field: (value we can expect instead, why).
    Only for spans of the instrumentation's own scope; the Anthropic SDK's spans use ANTHROPIC_SDK_GAPS."""


# What each instrumentation leaves off its spans, found by reading the recorded spans (the attribute is
# absent although the fake server returned the count) and confirmed in the package source.
# The Anthropic SDK's own spans (anthropic 2.12) carry everything the server returned.
ANTHROPIC_SDK_GAPS: Mapping[str, Mapping[str, tuple[Any, str]]] = {}

_OTEL_V2_GAPS: Mapping[str, Mapping[str, tuple[Any, str]]] = {
    "*": {
        "cache_read_tokens": (0, "prompt_tokens_details.cached_tokens is not put on the span"),
        "reasoning_tokens": (0, "completion_tokens_details.reasoning_tokens is not put on the span"),
        "streaming": (None, "no stream flag on the span"),
    }
}


def _instrument(name: str, tracer_provider: Any) -> None:
    """Switch instrumentation ``name`` on for ``tracer_provider`` (runs in the child process)."""
    if name.startswith("otel-genai-openai-v2"):
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    elif name == "openinference-openai":
        from openinference.instrumentation.openai import OpenAIInstrumentor as OIOpenAI

        OIOpenAI().instrument(tracer_provider=tracer_provider)
    elif name == "openinference-anthropic":
        from openinference.instrumentation.anthropic import AnthropicInstrumentor as OIAnthropic

        OIAnthropic().instrument(tracer_provider=tracer_provider)
    elif name == "traceloop-openai":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as TLOpenAI

        TLOpenAI().instrument(tracer_provider=tracer_provider)
    elif name == "traceloop-anthropic":
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor as TLAnthropic

        TLAnthropic().instrument(tracer_provider=tracer_provider)
    elif name.startswith("openlit"):
        # OpenLIT's instrumentors take their tracer from the global provider (scope
        # openlit.instrumentation.<sdk>); init() reuses an SDK provider that is already set.
        import tempfile

        import openlit
        from opentelemetry import trace

        trace.set_tracer_provider(tracer_provider)
        prices = Path(tempfile.mkdtemp()) / "prices.json"
        prices.write_text('{"chat": {}, "embeddings": {}}')  # no network fetch of OpenLIT's price list
        openlit.init(
            disable_metrics=True,
            disable_batch=True,
            disable_events=True,
            capture_message_content=False,
            pricing_json=str(prices),
            collect_gpu_stats=False,
            disabled_instrumentors=["httpx", "requests", "urllib", "urllib3", "aiohttp-client"],
        )
    elif name == "anthropic-sdk":
        pass  # the SDK's own spans, no instrumentation package
    else:
        raise ValueError(f"unknown instrumentation {name!r}")


# OpenLIT would otherwise add a console exporter for spans and events.
_OPENLIT_ENV = {"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}

INSTRUMENTATIONS: tuple[Instrumentation, ...] = (
    Instrumentation(
        name="otel-genai-openai-v2",
        packages=("openai", "opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai"),
        modules=("openai", "opentelemetry.instrumentation.openai_v2"),
        scenarios=OPENAI_SCENARIOS,
        gaps=_OTEL_V2_GAPS,
    ),
    Instrumentation(
        name="otel-genai-openai-v2-latest",
        packages=("openai", "opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai"),
        modules=("openai", "opentelemetry.instrumentation.openai_v2"),
        scenarios=OPENAI_SCENARIOS,
        env={"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"},
        gaps=_OTEL_V2_GAPS,
    ),
    Instrumentation(
        name="openinference-openai",
        packages=("openai", "openinference-instrumentation-openai", "openinference-instrumentation"),
        modules=("openai", "openinference.instrumentation.openai"),
        scenarios=OPENAI_SCENARIOS,
        gaps={
            "*": {
                "request_model": (
                    None,
                    "llm.model_name is the response's model; no request model on the span",
                ),
                "response_id": (None, "no response id on the span"),
                "streaming": (None, "no stream flag on the span"),
            }
        },
    ),
    Instrumentation(
        name="openinference-anthropic",
        packages=("anthropic", "openinference-instrumentation-anthropic", "openinference-instrumentation"),
        modules=("anthropic", "openinference.instrumentation.anthropic"),
        scenarios=(*ANTHROPIC_SCENARIOS, "anthropic_messages_stream_helper"),
        native_anthropic_spans=True,
        gaps={
            "*": {
                "cache_write_1h_tokens": (0, "no 5m/1h split of cache writes on the span"),
                "response_id": (None, "no response id on the span"),
                "streaming": (None, "no stream flag on the span"),
            }
        },
    ),
    Instrumentation(
        name="traceloop-openai",
        packages=("openai", "opentelemetry-instrumentation-openai", "opentelemetry-semantic-conventions-ai"),
        modules=("openai", "opentelemetry.instrumentation.openai"),
        scenarios=OPENAI_SCENARIOS,
    ),
    Instrumentation(
        name="traceloop-anthropic",
        packages=(
            "anthropic",
            "opentelemetry-instrumentation-anthropic",
            "opentelemetry-semantic-conventions-ai",
        ),
        modules=("anthropic", "opentelemetry.instrumentation.anthropic"),
        scenarios=ANTHROPIC_SCENARIOS,
        native_anthropic_spans=True,
        gaps={
            "*": {
                "cache_write_1h_tokens": (0, "no 5m/1h split of cache writes on the span"),
                "reasoning_tokens": (0, "no thinking-token count on the span"),
            },
            "anthropic_messages": {"streaming": (None, "gen_ai.is_streaming is set only on streamed calls")},
            "anthropic_messages_stream": {
                "output_tokens": (
                    181,
                    "upstream overcount: adds message_start's placeholder output_tokens (1) to "
                    "message_delta's final count (180)",
                ),
            },
        },
    ),
    Instrumentation(
        name="anthropic-sdk",
        packages=("anthropic",),
        modules=("anthropic.lib._tracing",),
        scenarios=ANTHROPIC_SCENARIOS,
        native_anthropic_spans=True,
    ),
    Instrumentation(
        name="openlit-openai",
        packages=("openai", "openlit"),
        modules=("openai", "openlit"),
        scenarios=OPENAI_SCENARIOS,
        env=_OPENLIT_ENV,
        gaps={
            "openai_chat": {"reasoning_tokens": (0, "no reasoning count on chat-completion spans")},
            "openai_chat_reasoning": {"reasoning_tokens": (0, "no reasoning count on chat-completion spans")},
            "openai_chat_stream_no_usage": {
                "input_tokens": (8, "OpenLIT estimates counts locally when the API reports none"),
                "output_tokens": (3, "OpenLIT estimates counts locally when the API reports none"),
                "usage_reported": (True, "the estimate is indistinguishable from reported usage on the span"),
            },
        },
    ),
    Instrumentation(
        name="openlit-anthropic",
        packages=("anthropic", "openlit"),
        modules=("anthropic", "openlit"),
        scenarios=ANTHROPIC_SCENARIOS,
        env=_OPENLIT_ENV,
        gaps={
            "*": {
                "cache_write_1h_tokens": (0, "no 5m/1h split of cache writes on the span"),
                "reasoning_tokens": (0, "no thinking-token count on the span"),
            }
        },
    ),
)
BY_NAME = {i.name: i for i in INSTRUMENTATIONS}


# ----------------------------------------------------------------------------------------------
# What the server returned, as the Usage we expect (field names of otel_llm_cost.usage.Usage)
# ----------------------------------------------------------------------------------------------


def _n(mapping: Mapping[str, Any] | None, *path: str) -> int:
    value: Any = mapping or {}
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, int) else 0


def true_usage(scenario: Scenario, *, provider: str, streaming: bool) -> dict[str, Any]:
    """The usage the fake server billed for ``scenario``, normalised by hand from its API's own fields."""
    u = scenario.usage
    if scenario.api in {"chat", "embeddings"}:
        counts = {
            "input_tokens": _n(u, "prompt_tokens"),
            "output_tokens": _n(u, "completion_tokens"),
            "cache_read_tokens": _n(u, "prompt_tokens_details", "cached_tokens"),
            "cache_write_tokens": 0,
            "cache_write_1h_tokens": 0,
            "reasoning_tokens": _n(u, "completion_tokens_details", "reasoning_tokens"),
        }
    elif scenario.api == "responses":
        counts = {
            "input_tokens": _n(u, "input_tokens"),
            "output_tokens": _n(u, "output_tokens"),
            "cache_read_tokens": _n(u, "input_tokens_details", "cached_tokens"),
            "cache_write_tokens": 0,
            "cache_write_1h_tokens": 0,
            "reasoning_tokens": _n(u, "output_tokens_details", "reasoning_tokens"),
        }
    else:  # Anthropic messages: input_tokens excludes cache reads and writes.
        counts = {
            "input_tokens": _n(u, "input_tokens")
            + _n(u, "cache_read_input_tokens")
            + _n(u, "cache_creation_input_tokens"),
            "output_tokens": _n(u, "output_tokens"),
            "cache_read_tokens": _n(u, "cache_read_input_tokens"),
            "cache_write_tokens": _n(u, "cache_creation_input_tokens"),
            "cache_write_1h_tokens": _n(u, "cache_creation", "ephemeral_1h_input_tokens"),
            "reasoning_tokens": _n(u, "output_tokens_details", "thinking_tokens"),
        }
    return {
        **counts,
        "usage_reported": bool(u),
        "request_model": scenario.request_model,
        "response_model": scenario.response_model,
        "provider": provider,
        "response_id": scenario.response_id or None,
        "streaming": streaming,
        "is_aggregate": False,
    }


# ----------------------------------------------------------------------------------------------
# Child process: run the calls and write the fixtures
# ----------------------------------------------------------------------------------------------


def _run_call(
    scenario_name: str, scenario: Scenario, base_url: str, tracer_provider: Any, native: bool
) -> bool:
    """Make the call of ``scenario``; returns whether it streamed."""
    messages = [{"role": "user", "content": "Say hello."}]
    if scenario.api == "messages":
        import anthropic

        options: Any = {"tracer_provider": tracer_provider} if native else False
        try:
            client = anthropic.Anthropic(
                api_key="sk-ant-fake", base_url=base_url, max_retries=0, open_telemetry=options
            )
        except TypeError:  # anthropic < 1.14 has no native spans
            client = anthropic.Anthropic(api_key="sk-ant-fake", base_url=base_url, max_retries=0)
        if scenario_name.endswith("_stream_helper"):
            with client.messages.stream(
                model=scenario.request_model, max_tokens=1024, messages=messages
            ) as stream:
                for _ in stream.text_stream:
                    pass
            return True
        if scenario_name.endswith("_stream"):
            for _ in client.messages.create(
                model=scenario.request_model, max_tokens=1024, messages=messages, stream=True
            ):
                pass
            return True
        client.messages.create(model=scenario.request_model, max_tokens=1024, messages=messages)
        return False

    import openai

    oai = openai.OpenAI(api_key="sk-fake", base_url=base_url + "/v1", max_retries=0)
    if scenario.api == "chat":
        if scenario_name == "openai_chat_stream_usage":
            for _ in oai.chat.completions.create(
                model=scenario.request_model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            ):
                pass
            return True
        if scenario_name == "openai_chat_stream_no_usage":
            for _ in oai.chat.completions.create(
                model=scenario.request_model, messages=messages, stream=True
            ):
                pass
            return True
        oai.chat.completions.create(model=scenario.request_model, messages=messages)
        return False
    if scenario.api == "responses":
        if scenario_name.endswith("_stream"):
            for _ in oai.responses.create(model=scenario.request_model, input="Say hello.", stream=True):
                pass
            return True
        oai.responses.create(model=scenario.request_model, input="Say hello.")
        return False
    oai.embeddings.create(model=scenario.request_model, input="Say hello.")
    return False


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _span_record(span: Any) -> dict[str, Any]:
    scope = span.instrumentation_scope
    parent = span.parent
    return {
        "scope": {"name": scope.name if scope else None, "version": scope.version if scope else None},
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "status": span.status.status_code.name,
        "attributes": {
            key: _json_value(value)
            for key, value in sorted((span.attributes or {}).items())
            if not _CONTENT.match(key)
        },
    }


def _versions(packages: Iterable[str]) -> dict[str, str]:
    names = [*packages, "opentelemetry-api", "opentelemetry-sdk"]
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _expected_for(
    inst: Instrumentation, scenario_name: str, span: dict[str, Any], truth: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    gaps_table = ANTHROPIC_SDK_GAPS if span["scope"]["name"] == ANTHROPIC_SDK_SCOPE else inst.gaps
    expected = dict(truth)
    reasons: dict[str, str] = {}
    for key in ("*", scenario_name):
        for field_name, (value, why) in gaps_table.get(key, {}).items():
            expected[field_name] = value
            reasons[field_name] = why
    return expected, reasons


def child(name: str, out: Path) -> int:
    """Record every scenario of instrumentation ``name`` into ``out``; returns a process exit code."""
    inst = BY_NAME[name]
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _instrument(name, provider)
    versions = _versions(inst.packages)
    failures = 0
    with FakeProvider() as server:
        for scenario_name in inst.scenarios:
            scenario = server.use(scenario_name)
            exporter.clear()
            try:
                streaming = _run_call(
                    scenario_name, scenario, server.base_url, provider, inst.native_anthropic_spans
                )
            except Exception as exc:
                print(f"  {name} / {scenario_name}: call failed: {exc!r}")
                failures += 1
                continue
            provider.force_flush()
            spans = [_span_record(s) for s in exporter.get_finished_spans()]
            if not spans:
                print(f"  {name} / {scenario_name}: no span emitted (not covered)")
                continue
            provider_name = "anthropic" if scenario.api == "messages" else "openai"
            truth = true_usage(scenario, provider=provider_name, streaming=streaming)
            for span in spans:
                expected, reasons = _expected_for(inst, scenario_name, span, truth)
                span["expected"] = expected
                if reasons:
                    span["gaps"] = reasons
            fixture = {
                "instrumentation": name,
                "scenario": scenario_name,
                "env": dict(inst.env),
                "packages": versions,
                "server": {
                    "api": scenario.api,
                    "streaming": streaming,
                    "request_model": scenario.request_model,
                    "response_model": scenario.response_model,
                    "response_id": scenario.response_id,
                    "usage": scenario.usage,
                },
                "spans": spans,
            }
            path = out / f"{name}__{scenario_name}.json"
            path.write_text(json.dumps(fixture, indent=1, sort_keys=False) + "\n")
            print(f"  {name} / {scenario_name}: {len(spans)} span(s) -> {path.name}")
    return 1 if failures else 0


# ----------------------------------------------------------------------------------------------
# Parent process
# ----------------------------------------------------------------------------------------------


def importable(inst: Instrumentation, python: str = sys.executable) -> bool:
    """Whether ``inst``'s modules import under ``python`` (checked in a subprocess: imports patch nothing,
    but keep the parent clean)."""
    code = "import importlib,sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    return (
        subprocess.run([python, "-c", code, *inst.modules], capture_output=True, check=False).returncode == 0
    )


def record(
    names: Iterable[str], out: Path, *, python: str = sys.executable, log: Callable[[str], None] = print
) -> dict[str, str]:
    """Record ``names`` into ``out``.

    Returns:
        {instrumentation: "recorded" | "skipped: ..." | "failed: ..."}
    """
    out.mkdir(parents=True, exist_ok=True)
    status: dict[str, str] = {}
    for name in names:
        inst = BY_NAME[name]
        if not importable(inst, python):
            status[name] = f"skipped: {', '.join(inst.modules)} not importable"
            log(f"{name}: {status[name]}")
            continue
        env = {
            **os.environ,
            **inst.env,
            # Keep message content off where the instrumentation lets us; _CONTENT strips the rest.
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false",
            "TRACELOOP_TRACE_CONTENT": "false",
            "OPENAI_API_KEY": "sk-fake",
            "ANTHROPIC_API_KEY": "sk-ant-fake",
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
        }
        log(f"{name}:")
        proc = subprocess.run(
            [python, str(Path(__file__).resolve()), "--child", name, "--out", str(out)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        log(proc.stdout.rstrip())
        if proc.returncode:
            status[name] = f"failed: exit {proc.returncode}: {proc.stderr.strip()[-2000:]}"
            log(status[name])
        else:
            status[name] = "recorded"
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="instrumentations to record (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter of the environment to record in (default: this one)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.out)
    unknown = set(args.names) - set(BY_NAME)
    if unknown:
        parser.error(f"unknown instrumentation(s) {sorted(unknown)}; known: {sorted(BY_NAME)}")
    status = record(args.names or list(BY_NAME), args.out, python=args.python)
    return 1 if any(s.startswith("failed") for s in status.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
