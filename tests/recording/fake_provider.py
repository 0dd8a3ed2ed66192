"""A fake OpenAI + Anthropic HTTP API on 127.0.0.1 that answers with known token usage.

The recorder (``record.py``) points the real ``openai`` and ``anthropic`` SDKs at this server, so the
spans their instrumentations emit carry counts we know exactly. The usage each scenario returns is
declared once, in :data:`SCENARIOS`; the fixtures' expected usage is derived from it, never from our
normaliser.

Stdlib only (``http.server``), so it runs in the record venv without our package installed.
The recorder selects the scenario before each call (:meth:`FakeProvider.use`); one call runs at a time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["SCENARIOS", "FakeProvider", "Scenario"]


@dataclass(frozen=True)
class Scenario:
    """What the fake provider returns for one scenario; counts are as the provider's API reports them."""

    api: str
    """``chat``, ``responses``, ``embeddings`` (OpenAI) or ``messages`` (Anthropic)."""
    request_model: str
    response_model: str
    response_id: str
    usage: Mapping[str, Any] = field(default_factory=dict)
    """The ``usage`` object exactly as the API returns it."""


# Counts differ per scenario so a fixture cannot pass with another scenario's numbers.
SCENARIOS: Mapping[str, Scenario] = {
    "openai_chat": Scenario(
        api="chat",
        request_model="gpt-4o",
        response_model="gpt-4o-2024-08-06",
        response_id="chatcmpl-fake-0001",
        usage={
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
    ),
    "openai_chat_reasoning": Scenario(
        api="chat",
        request_model="o3-mini",
        response_model="o3-mini-2025-01-31",
        response_id="chatcmpl-fake-0002",
        usage={
            "prompt_tokens": 2100,
            "completion_tokens": 640,
            "total_tokens": 2740,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 512, "audio_tokens": 0},
        },
    ),
    "openai_chat_stream_usage": Scenario(
        api="chat",
        request_model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        response_id="chatcmpl-fake-0003",
        usage={
            "prompt_tokens": 1350,
            "completion_tokens": 42,
            "total_tokens": 1392,
            "prompt_tokens_details": {"cached_tokens": 1280, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
    ),
    # Streaming without stream_options.include_usage: the API sends no usage at all.
    "openai_chat_stream_no_usage": Scenario(
        api="chat",
        request_model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        response_id="chatcmpl-fake-0004",
        usage={},
    ),
    "openai_responses": Scenario(
        api="responses",
        request_model="o4-mini",
        response_model="o4-mini-2025-04-16",
        response_id="resp_fake0005",
        usage={
            "input_tokens": 3000,
            "input_tokens_details": {"cached_tokens": 2048},
            "output_tokens": 700,
            "output_tokens_details": {"reasoning_tokens": 448},
            "total_tokens": 3700,
        },
    ),
    "openai_responses_stream": Scenario(
        api="responses",
        request_model="o4-mini",
        response_model="o4-mini-2025-04-16",
        response_id="resp_fake0006",
        usage={
            "input_tokens": 2600,
            "input_tokens_details": {"cached_tokens": 1536},
            "output_tokens": 510,
            "output_tokens_details": {"reasoning_tokens": 384},
            "total_tokens": 3110,
        },
    ),
    "openai_embeddings": Scenario(
        api="embeddings",
        request_model="text-embedding-3-small",
        response_model="text-embedding-3-small",
        response_id="",
        usage={"prompt_tokens": 37, "total_tokens": 37},
    ),
    # Anthropic reports input_tokens WITHOUT the cache reads and writes.
    "anthropic_messages": Scenario(
        api="messages",
        request_model="claude-sonnet-4-5",
        response_model="claude-sonnet-4-5-20250929",
        response_id="msg_fake0008",
        usage={
            "input_tokens": 57,
            "cache_read_input_tokens": 2000,
            "cache_creation_input_tokens": 700,
            "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 300},
            "output_tokens": 250,
            "output_tokens_details": {"thinking_tokens": 90},
            "service_tier": "standard",
        },
    ),
    "anthropic_messages_stream": Scenario(
        api="messages",
        request_model="claude-haiku-4-5",
        response_model="claude-haiku-4-5-20251001",
        response_id="msg_fake0009",
        usage={
            "input_tokens": 31,
            "cache_read_input_tokens": 1500,
            "cache_creation_input_tokens": 500,
            "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 180,
            "output_tokens_details": {"thinking_tokens": 64},
            "service_tier": "standard",
        },
    ),
    # The SDK's messages.stream() helper: OpenInference's span is current only while stream() runs,
    # so outside a parent span its span and the SDK's are roots of two traces.
    "anthropic_messages_stream_helper": Scenario(
        api="messages",
        request_model="claude-haiku-4-5",
        response_model="claude-haiku-4-5-20251001",
        response_id="msg_fake0010",
        usage={
            "input_tokens": 47,
            "cache_read_input_tokens": 1200,
            "cache_creation_input_tokens": 300,
            "cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 210,
            "output_tokens_details": {"thinking_tokens": 32},
            "service_tier": "standard",
        },
    ),
}

_CREATED = 1_760_000_000


def _chat_body(s: Scenario) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": s.response_id,
        "object": "chat.completion",
        "created": _CREATED,
        "model": s.response_model,
        "system_fingerprint": "fp_fake",
        "service_tier": "default",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello.", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
    }
    if s.usage:
        body["usage"] = dict(s.usage)
    return body


def _chat_stream(s: Scenario, include_usage: bool) -> Iterator[dict[str, Any]]:
    base = {
        "id": s.response_id,
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": s.response_model,
        "system_fingerprint": "fp_fake",
    }
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    yield {
        **base,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        **extra,
    }
    for word in ("Hel", "lo."):
        yield {**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}], **extra}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], **extra}
    if include_usage:
        yield {**base, "choices": [], "usage": dict(s.usage)}


def _response_obj(s: Scenario, status: str, with_usage: bool) -> dict[str, Any]:
    output = [
        {
            "id": "rs_fake",
            "type": "reasoning",
            "summary": [],
        },
        {
            "id": "msg_fake_out",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello.", "annotations": []}],
        },
    ]
    return {
        "id": s.response_id,
        "object": "response",
        "created_at": _CREATED,
        "status": status,
        "model": s.response_model,
        "output": output if status == "completed" else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "reasoning": {"effort": "medium", "summary": None},
        "service_tier": "default",
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": dict(s.usage) if with_usage else None,
    }


def _responses_stream(s: Scenario) -> Iterator[dict[str, Any]]:
    seq = 0

    def ev(kind: str, **kw: Any) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        return {"type": kind, "sequence_number": seq, **kw}

    yield ev("response.created", response=_response_obj(s, "in_progress", False))
    yield ev("response.in_progress", response=_response_obj(s, "in_progress", False))
    item = {
        "id": "msg_fake_out",
        "type": "message",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    yield ev("response.output_item.added", output_index=0, item=item)
    yield ev(
        "response.content_part.added",
        item_id="msg_fake_out",
        output_index=0,
        content_index=0,
        part={"type": "output_text", "text": "", "annotations": []},
    )
    yield ev(
        "response.output_text.delta",
        item_id="msg_fake_out",
        output_index=0,
        content_index=0,
        delta="Hello.",
        logprobs=[],
    )
    yield ev(
        "response.output_text.done",
        item_id="msg_fake_out",
        output_index=0,
        content_index=0,
        text="Hello.",
        logprobs=[],
    )
    yield ev("response.completed", response=_response_obj(s, "completed", True))


def _anthropic_message(s: Scenario, *, usage: Mapping[str, Any], content: bool = True) -> dict[str, Any]:
    return {
        "id": s.response_id,
        "type": "message",
        "role": "assistant",
        "model": s.response_model,
        "content": [{"type": "text", "text": "Hello."}] if content else [],
        "stop_reason": "end_turn" if content else None,
        "stop_sequence": None,
        "usage": dict(usage),
    }


def _anthropic_stream(s: Scenario) -> Iterator[tuple[str, dict[str, Any]]]:
    # As the real API does: message_start has the input counts and a placeholder output count;
    # message_delta has the cumulative final counts.
    start_usage = {**s.usage, "output_tokens": 1}
    yield (
        "message_start",
        {"type": "message_start", "message": _anthropic_message(s, usage=start_usage, content=False)},
    )
    yield (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        },
    )
    yield "ping", {"type": "ping"}
    for word in ("Hel", "lo."):
        yield (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": word},
            },
        )
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    final = {
        k: v
        for k, v in s.usage.items()
        if k
        in {
            "input_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "output_tokens",
            "output_tokens_details",
        }
    }
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": final,
        },
    )
    yield "message_stop", {"type": "message_stop"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send_json(self, status: int, body: Mapping[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        if self.path.startswith("/v1/messages"):
            self.send_header("request-id", "req_fake")
        self.end_headers()
        self.wfile.write(raw)

    def _send_sse(self, events: Iterator[tuple[str | None, Mapping[str, Any]]], done: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        for name, data in events:
            chunk = (f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n"
            self.wfile.write(chunk.encode())
        if done:
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append((self.path, request))
        scenario = SCENARIOS.get(self.server.scenario)
        if scenario is None:
            self._send_json(400, {"error": {"message": "no scenario selected", "type": "fake"}})
            return
        stream = bool(request.get("stream"))
        path = self.path.split("?")[0]
        if path == "/v1/chat/completions":
            if stream:
                include = bool((request.get("stream_options") or {}).get("include_usage"))
                self._send_sse(((None, c) for c in _chat_stream(scenario, include)), done=True)
            else:
                self._send_json(200, _chat_body(scenario))
        elif path == "/v1/responses":
            if stream:
                self._send_sse(((e["type"], e) for e in _responses_stream(scenario)), done=False)
            else:
                self._send_json(200, _response_obj(scenario, "completed", True))
        elif path == "/v1/embeddings":
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2, 0.3]}],
                    "model": scenario.response_model,
                    "usage": dict(scenario.usage),
                },
            )
        elif path == "/v1/messages":
            if stream:
                self._send_sse(iter(_anthropic_stream(scenario)), done=False)
            else:
                self._send_json(200, _anthropic_message(scenario, usage=scenario.usage))
        else:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "fake"}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[tuple[str, Any]]
    scenario: str


class FakeProvider:
    """The fake API, serving on an ephemeral port of 127.0.0.1 in a background thread.

    Use as a context manager; ``base_url`` is ``http://127.0.0.1:<port>``.
    """

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.requests = []
        self._server.scenario = ""
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-provider", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[tuple[str, Any]]:
        """Every (path, JSON body) the server received, in order."""
        return self._server.requests

    def use(self, scenario: str) -> Scenario:
        """Answer the following calls with ``scenario``; returns it."""
        self._server.scenario = scenario
        return SCENARIOS[scenario]

    def __enter__(self) -> FakeProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
