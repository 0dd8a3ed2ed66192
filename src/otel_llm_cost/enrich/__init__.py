"""From an ended span to an enriched one: attribution, user-id hashing, the double-count guard, the processor.

``attribution()`` itself is re-exported by ``otel_llm_cost``; it is not re-exported here, where the name
would hide its own module.
"""

from otel_llm_cost.enrich.processor import LLMCostSpanProcessor

__all__ = ["LLMCostSpanProcessor"]
