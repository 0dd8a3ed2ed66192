"""The receiver against hostile or careless senders, over real sockets on 127.0.0.1: gzip bodies made
of many members, slow clients, health and readiness routes, and the refusal to listen publicly
without a token."""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from helpers import wait_until
from otel_llm_cost.collector.receiver import OTLPReceiver, ReceiverPipeline
from test_collector import GatedExporter, make_spans, names, protobuf_body, request

MIB = 1024 * 1024


@pytest.fixture
def memory() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def big_receiver(memory: InMemorySpanExporter) -> Iterator[OTLPReceiver]:
    with OTLPReceiver(SimpleSpanProcessor(memory), port=0, max_body_bytes=8 * MIB) as started:
        yield started


# --------------------------------------------------------------------------------------------
# gzip
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_4_mib_body_of_empty_gzip_members_is_decoded_in_linear_time(big_receiver: OTLPReceiver) -> None:
    # ~210,000 empty members. Decoding them used to copy the rest of the body after each member:
    # quadratic, 36 s at 4 MiB, ~15 minutes at the 20 MiB the default limit allows. Linear now, so
    # this ends well inside the test timeout (it decodes to an empty, valid export request).
    body = gzip.compress(b"") * (4 * MIB // len(gzip.compress(b"")))

    reply = request(big_receiver.url, body, headers={"Content-Encoding": "gzip"})

    assert reply.status == 200
    assert big_receiver.stats.spans_accepted == 0


def test_spans_split_across_gzip_members_are_all_decoded(
    big_receiver: OTLPReceiver, memory: InMemorySpanExporter
) -> None:
    payload = protobuf_body(make_spans(30))
    members = b"".join(gzip.compress(payload[i : i + 100]) for i in range(0, len(payload), 100))
    members += gzip.compress(b"") * 1000

    reply = request(big_receiver.url, members, headers={"Content-Encoding": "gzip"})

    assert reply.status == 200
    assert len(names(memory)) == 30


def test_many_members_inflating_past_the_limit_are_refused_while_decompressing(
    big_receiver: OTLPReceiver, memory: InMemorySpanExporter
) -> None:
    # Each member is small on the wire and inflates to 1 MiB: the limit applies across members.
    body = gzip.compress(bytes(MIB)) * 9

    reply = request(big_receiver.url, body, headers={"Content-Encoding": "gzip"})

    assert reply.status == 413
    assert "decompressed request body exceeds the limit" in reply.rpc_status().message
    assert names(memory) == []


def test_a_member_truncated_after_complete_ones_is_a_bad_request(big_receiver: OTLPReceiver) -> None:
    body = gzip.compress(b"") * 3 + gzip.compress(protobuf_body(make_spans(2)))[:-5]

    reply = request(big_receiver.url, body, headers={"Content-Encoding": "gzip"})

    assert reply.status == 400
    assert "truncated" in reply.rpc_status().message


# --------------------------------------------------------------------------------------------
# Binding beyond loopback
# --------------------------------------------------------------------------------------------


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "otel_llm_cost", "serve", "--port", "0", *args]


@pytest.mark.slow
def test_serve_refuses_a_public_interface_without_a_token(tmp_path: Path) -> None:
    db = tmp_path / "costs.duckdb"
    environment = {k: v for k, v in os.environ.items() if k != "OTEL_LLM_COST_SERVE_TOKEN"}

    result = subprocess.run(
        serve_command("--db", str(db), "--host", "0.0.0.0"),  # noqa: S104 - what is refused
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
    )

    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in result.stderr
    assert "--insecure" in result.stderr
    assert not db.exists(), "nothing is opened before the refusal"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--insecure",), {}),
        ((), {"OTEL_LLM_COST_SERVE_TOKEN": "tok-1"}),
    ],
    ids=["insecure", "token"],
)
def test_serve_listens_publicly_with_a_token_or_when_told_to(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "OTEL_LLM_COST_SERVE_TOKEN"}
    process = subprocess.Popen(
        serve_command("--db", str(tmp_path / "c.duckdb"), "--host", "0.0.0.0", *args),  # noqa: S104
        stderr=subprocess.PIPE,
        text=True,
        env={**environment, **env},
    )
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "receiving OTLP traces on http://0.0.0.0:" in line:
                break
        else:
            pytest.fail("serve did not start:\n" + "".join(lines))
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        headers = {"Authorization": "Bearer tok-1"} if env else {}
        reply = request(f"http://127.0.0.1:{port}/v1/traces", protobuf_body(make_spans(1)), headers=headers)
        assert reply.status == 200
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    if not env:
        assert "without a token: anyone who can reach it can write cost data" in "".join(lines) + rest


def test_the_receiver_refuses_a_public_interface_without_a_token(memory: InMemorySpanExporter) -> None:
    processor = SimpleSpanProcessor(memory)
    with pytest.raises(ValueError, match=r"refusing to listen on 0\.0\.0\.0 without a token"):
        OTLPReceiver(processor, host="0.0.0.0")  # noqa: S104
    with pytest.raises(ValueError, match=r"refusing to listen on 192\.0\.2\.7"):
        OTLPReceiver(processor, host="192.0.2.7")
    for loopback in ("127.0.0.1", "127.8.9.10", "::1", "localhost"):
        OTLPReceiver(processor, host=loopback)
    OTLPReceiver(processor, host="0.0.0.0", token="t")  # noqa: S104
    OTLPReceiver(processor, host="0.0.0.0", insecure=True)  # noqa: S104


# --------------------------------------------------------------------------------------------
# Health and readiness
# --------------------------------------------------------------------------------------------


def get(url: str, path: str) -> tuple[int, dict[str, Any]]:
    reply = request(url, b"", method="GET", path=path, content_type=None)
    assert reply.content_type == "application/json"
    return reply.status, json.loads(reply.body)


def test_health_answers_while_the_server_runs(big_receiver: OTLPReceiver) -> None:
    assert get(big_receiver.url, "/health") == (200, {"status": "ok"})
    assert request(big_receiver.url, b"", method="HEAD", path="/health", content_type=None).status == 200
    assert big_receiver.stats.requests == 0, "probes are not export requests"


def test_ready_reports_the_backlog_and_answers_503_while_an_export_would_be_refused() -> None:
    exporter = GatedExporter()
    pipeline = ReceiverPipeline(exporter, max_queue_size=8, max_export_batch_size=4, schedule_delay_millis=5)
    receiver = OTLPReceiver(pipeline, port=0, pipeline=pipeline, busy_timeout_s=0.3).start()
    try:
        assert get(receiver.url, "/ready") == (
            200,
            {"status": "ready", "capacity": 8, "queued": 0, "uncommitted_rows": 0, "room": 8},
        )
        # 4 spans wait in the exporter (gated), 4 in the queue; 4 more fill it.
        assert request(receiver.url, protobuf_body(make_spans(8, start_id=1))).status == 200
        assert request(receiver.url, protobuf_body(make_spans(4, start_id=9))).status == 200

        status, report = get(receiver.url, "/ready")

        assert (status, report["status"], report["room"]) == (503, "busy", 0)
        assert report["queued"] == 8
        assert get(receiver.url, "/health")[0] == 200, "busy is not dead: liveness holds"
        exporter.gate.set()
        wait_until(lambda: get(receiver.url, "/ready")[0] == 200, what="ready again once the queue drains")
    finally:
        exporter.gate.set()
        receiver.stop()


# --------------------------------------------------------------------------------------------
# Slow clients and the connection cap
# --------------------------------------------------------------------------------------------


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (an answer it may have sent first is read and ignored)."""
    sock.settimeout(0.01)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True  # reset
    return True


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname or "", parts.port or 0), timeout=30)


@pytest.mark.slow
def test_slow_clients_are_closed_after_the_read_timeout_while_others_are_served(
    memory: InMemorySpanExporter,
) -> None:
    receiver = OTLPReceiver(SimpleSpanProcessor(memory), port=0, read_timeout_s=1.0).start()
    body = protobuf_body(make_spans(3))
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    silent = [connect(receiver.url) for _ in range(15)]  # connect, then send nothing
    header_dribblers = [connect(receiver.url) for _ in range(15)]  # headers a byte at a time
    body_dribblers = [connect(receiver.url) for _ in range(20)]  # whole headers, body a byte at a time
    for sock in body_dribblers:
        sock.sendall(head)
    stop = threading.Event()

    def dribble() -> None:
        # One byte per connection every 0.1 s: never idle, yet never done.
        for step in itertools.count():
            if stop.wait(0.1):
                return
            for sock in header_dribblers:
                with contextlib.suppress(OSError):
                    sock.send(head[step % len(head) : step % len(head) + 1])
            for sock in body_dribblers:
                with contextlib.suppress(OSError):
                    sock.send(body[step % len(body) : step % len(body) + 1])

    dribbler = threading.Thread(target=dribble, daemon=True)
    dribbler.start()
    slow = silent + header_dribblers + body_dribblers
    try:
        wait_until(lambda: receiver.connections.open_connections >= 50, what="50 slow connections open")
        # A normal sender is answered while the 50 slow ones hold their connections.
        assert request(receiver.url, protobuf_body(make_spans(2, start_id=10))).status == 200

        wait_until(lambda: all(closed_by_server(sock) for sock in slow), what="every slow client closed")

        assert receiver.connections.timed_out >= 50
        assert names(memory) == ["span 10", "span 11"], "nothing from a slow client was accepted"
        assert request(receiver.url, protobuf_body(make_spans(1, start_id=20))).status == 200
    finally:
        stop.set()
        dribbler.join()
        for sock in slow:
            sock.close()
        receiver.stop()


@pytest.mark.slow
def test_connections_over_the_cap_are_refused_until_slow_ones_time_out(memory: InMemorySpanExporter) -> None:
    receiver = OTLPReceiver(
        SimpleSpanProcessor(memory), port=0, read_timeout_s=1.0, max_connections=5
    ).start()
    held = [connect(receiver.url) for _ in range(5)]
    try:
        wait_until(lambda: receiver.connections.open_connections == 5, what="5 connections open")
        extra = connect(receiver.url)
        assert wait_until(lambda: closed_by_server(extra), what="the sixth connection refused")
        extra.close()
        assert receiver.connections.refused >= 1

        # The held ones time out; then the cap has room for a real request again.
        wait_until(lambda: all(closed_by_server(sock) for sock in held), what="held connections closed")
        assert request(receiver.url, protobuf_body(make_spans(1))).status == 200
    finally:
        for sock in held:
            sock.close()
        receiver.stop()
    assert names(memory) == ["span 1"]


def test_bad_connection_limits_raise_value_error(memory: InMemorySpanExporter) -> None:
    processor = SimpleSpanProcessor(memory)
    with pytest.raises(ValueError, match="read_timeout_s"):
        OTLPReceiver(processor, read_timeout_s=0)
    with pytest.raises(ValueError, match="max_connections"):
        OTLPReceiver(processor, max_connections=0)
