"""otel-llm-cost: know what your LLM calls cost, from the OpenTelemetry spans you already emit."""

from importlib.metadata import version as _version

__version__ = _version("otel-llm-cost")

__all__ = ["__version__"]
