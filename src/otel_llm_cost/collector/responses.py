"""Encode the receiver's answers: ``ExportTraceServiceResponse`` bodies and ``google.rpc.Status`` errors.

Both in the encoding of the request, as the OTLP/HTTP specification asks. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# protobuf ships no type information (types-protobuf is not a dependency).
from google.protobuf import json_format  # type: ignore[import-untyped]
from google.rpc import code_pb2, status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otel_llm_cost.collector.otlp import WireFormat

__all__ = ["encode_export_response", "encode_status"]


def encode_export_response(wire_format: WireFormat, *, rejected: int = 0, error_message: str = "") -> bytes:
    """The body of a 200 response: an ``ExportTraceServiceResponse`` in the request's encoding.

    Args:
        wire_format: The encoding of the request.
        rejected: Spans not accepted; with a message this fills ``partial_success``.
        error_message: Why they were rejected (or a warning, with ``rejected == 0``).

    Returns:
        The serialized response.
    """
    response = ExportTraceServiceResponse()
    if rejected or error_message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = error_message
    return _serialize(response, wire_format)


def encode_status(wire_format: WireFormat, http_status: int, message: str) -> bytes:
    """The body of an error response: a ``google.rpc.Status`` in the request's encoding.

    Args:
        wire_format: The encoding of the request (JSON when the request's encoding is unknown).
        http_status: The HTTP status code being answered, mapped onto the gRPC code.
        message: A developer-facing explanation.

    Returns:
        The serialized status.
    """
    status = status_pb2.Status(code=_GRPC_CODE.get(http_status, code_pb2.UNKNOWN), message=message)
    return _serialize(status, wire_format)


_GRPC_CODE: Final[Mapping[int, int]] = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.UNIMPLEMENTED,
    500: code_pb2.INTERNAL,
    503: code_pb2.UNAVAILABLE,
}


def _serialize(message: Any, wire_format: WireFormat) -> bytes:
    if wire_format is WireFormat.PROTOBUF:
        data: bytes = message.SerializeToString()
        return data
    text: str = json_format.MessageToJson(message, indent=None)
    return text.encode("utf-8")
