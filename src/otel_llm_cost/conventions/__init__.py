"""What LLM spans look like: attribute names (read and written) and usage normalisation per convention."""

from otel_llm_cost.conventions.usage import Usage, normalize_usage

__all__ = ["Usage", "normalize_usage"]
