"""OTLP/HTTP request and response details: content types, gzip bodies, error answers.

Pure functions over headers and bytes (no server state), shared by the receiver's request handler.
"""

from __future__ import annotations

import zlib

from starlette.responses import Response

from otel_llm_cost.collector.otlp import (
    DecodedSpans,
    OTLPDecodeError,
    WireFormat,
    decode_spans,
    parse_request,
)

__all__ = ["RequestError", "decode_body", "is_gzip", "response", "wire_format_of"]


class RequestError(Exception):
    """A request the receiver answers with ``status`` (a 4xx or 503) and ``message``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def decode_body(body: bytes, wire_format: WireFormat, gzipped: bool, limit: int) -> DecodedSpans:
    """Decompress (when ``gzipped``) and decode an export request; 400 or 413 when it cannot be."""
    if gzipped:
        body = _gunzip(body, limit)
    try:
        return decode_spans(parse_request(body, wire_format))
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


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip data, refusing to produce more than ``limit`` bytes (a small body can inflate
    to gigabytes: the limit must hold after decompression, not only on the wire)."""
    out = bytearray()
    while True:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += decompressor.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise RequestError(400, f"invalid gzip body: {exc}") from None
        if len(out) > limit or decompressor.unconsumed_tail:
            raise RequestError(413, f"decompressed request body exceeds the limit of {limit} bytes")
        if not decompressor.eof:
            raise RequestError(400, "invalid gzip body: truncated")
        # A gzip stream may hold several members (RFC 1952); decode them all, as gzip.decompress does.
        data = decompressor.unused_data
        if not data:
            return bytes(out)
