"""The receiver against hostile or careless senders, over real sockets on 127.0.0.1: gzip bodies made
of many members, slow clients, health and readiness routes, and the refusal to listen publicly
without a token."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm_cost.collector.receiver import OTLPReceiver
from test_collector import make_spans, names, protobuf_body, request

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
