"""OTLP/HTTP request and response details: content types, gzip bodies, error answers.

Pure functions over headers and bytes (no server state), shared by the receiver's request handler.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.responses import Response

from otel_llm_cost.collector.otlp import (
    DecodedSpans,
    OTLPDecodeError,
    WireFormat,
    decode_spans,
    parse_request,
)

__all__ = ["Decoder", "RequestError", "decode_body", "is_gzip", "response", "wire_format_of"]


class RequestError(Exception):
    """A request the receiver answers with ``status`` (a 4xx or 503) and ``message``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


Decoder = Callable[[ExportTraceServiceRequest], DecodedSpans]
"""Turns a parsed request into spans: ``otlp.decode_spans`` (SDK spans) or ``received.decode_for_storage``."""


def decode_body(
    body: bytes, wire_format: WireFormat, gzipped: bool, limit: int, decode: Decoder = decode_spans
) -> DecodedSpans:
    """Decompress (when ``gzipped``) and decode an export request; 400 or 413 when it cannot be."""
    if gzipped:
        body = _gunzip(body, limit)
    try:
        return decode(parse_request(body, wire_format))
    except OTLPDecodeError as exc:
        raise RequestError(400, str(exc)) from None


def response(
    status: int, body: bytes, wire_format: WireFormat, headers: dict[str, str] | None = None
) -> Response:
    """An answer in the request's encoding."""
    return Response(body, status_code=status, media_type=wire_format.content_type, headers=headers)


def wire_format_of(content_type: str | None) -> WireFormat | None:
    """The encoding a ``Content-Type`` header names, or None when it is not one OTLP/HTTP uses."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in ("application/x-protobuf", "application/protobuf"):
        return WireFormat.PROTOBUF
    if media_type == "application/json":
        return WireFormat.JSON
    return None


def is_gzip(content_encoding: str | None) -> bool:
    """Whether the body is gzip-compressed; 415 for an encoding OTLP/HTTP does not use."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return False
    if encoding == "gzip":
        return True
    raise RequestError(415, f"unsupported Content-Encoding {content_encoding!r}: send gzip or no encoding")


_GZIP_FEED_BYTES: Final = 1024
"""Compressed bytes handed to zlib per call. After each gzip member zlib copies the input it did not
use (``unused_data``); feeding the whole body at once made that copy the rest of the body per member,
so a body of many empty members (20 bytes each) took time quadratic in its size (36 s at 4 MiB).
With a bounded feed each member costs at most this much copying: linear in the body."""


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip data, refusing to produce more than ``limit`` bytes (a small body can inflate
    to gigabytes: the limit must hold while decompressing, not only on the wire).

    A gzip stream may hold several members (RFC 1952); all are decoded, as ``gzip.decompress`` does.
    """
    if not data:
        raise RequestError(400, "invalid gzip body: empty")
    out = bytearray()
    view = memoryview(data)
    position = 0
    pending: bytes | memoryview = b""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    member_open = False
    while True:
        if not pending:
            if position >= len(data):
                break
            pending = view[position : position + _GZIP_FEED_BYTES]
            position += _GZIP_FEED_BYTES
        try:
            out += decompressor.decompress(pending, limit + 1 - len(out))
        except zlib.error as exc:
            raise RequestError(400, f"invalid gzip body: {exc}") from None
        member_open = True
        if len(out) > limit:
            raise RequestError(413, f"decompressed request body exceeds the limit of {limit} bytes")
        if decompressor.eof:
            pending = decompressor.unused_data
            decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            member_open = False
        else:
            # Output stopped short of max_length, so zlib consumed all it was given (no tail).
            pending = decompressor.unconsumed_tail
    if member_open:
        raise RequestError(400, "invalid gzip body: truncated")
    return bytes(out)
