"""Documented import path of usage normalisation; it lives in ``otel_llm_cost.conventions``."""

from otel_llm_cost.conventions.usage import Usage, normalize_usage

__all__ = ["Usage", "normalize_usage"]
