"""The OTLP/HTTP receiver (`otel-llm-cost serve`): many processes, one ledger."""

from otel_llm_cost.collector.receiver import (
    DEFAULT_HOST,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PORT,
    DEFAULT_READ_TIMEOUT_S,
    OTLPReceiver,
    ReceiverPipeline,
    ReceiverStats,
    build_processor,
    serve,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_PORT",
    "DEFAULT_READ_TIMEOUT_S",
    "OTLPReceiver",
    "ReceiverPipeline",
    "ReceiverStats",
    "build_processor",
    "serve",
]
