"""Documented import path of the processor; it lives in ``otel_llm_cost.enrich``."""

from otel_llm_cost.enrich.processor import LLMCostSpanProcessor

__all__ = ["LLMCostSpanProcessor"]
