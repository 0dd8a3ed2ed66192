"""How long an LLM call took, and how long until its first token, as attributes of the enriched span."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from otel_llm_cost.conventions import names as sc

__all__ = ["add_call_timing"]

_FIRST_TOKEN_NAMES: Final = frozenset((sc.LLM_TIME_TO_FIRST_TOKEN_MS, sc.GEN_AI_SERVER_TIME_TO_FIRST_TOKEN))


def _milliseconds(value: object, scale: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    amount = float(value) * scale
    return amount if math.isfinite(amount) and amount >= 0 else None


def add_call_timing(
    extra: dict[str, Any], start: int | None, end: int | None, attributes: Mapping[str, Any]
) -> None:
    """Add ``llm.latency_ms`` (``end - start``, a span's times in ns) and ``llm.time_to_first_token_ms``.

    Time to first token comes from our own name (``record_llm_call`` writes it) or OpenLIT's
    ``gen_ai.server.time_to_first_token``, which is in seconds. Values that are not finite,
    non-negative numbers are left out.
    """
    if start is not None and end is not None and end >= start:
        extra[sc.LLM_LATENCY_MS] = (end - start) / 1e6
    if _FIRST_TOKEN_NAMES.isdisjoint(attributes):
        return  # most calls do not report it
    first_token = _milliseconds(attributes.get(sc.LLM_TIME_TO_FIRST_TOKEN_MS), 1.0)
    if first_token is None:
        first_token = _milliseconds(attributes.get(sc.GEN_AI_SERVER_TIME_TO_FIRST_TOKEN), 1000.0)
    if first_token is not None:
        extra[sc.LLM_TIME_TO_FIRST_TOKEN_MS] = first_token
