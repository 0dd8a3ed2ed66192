"""The one test ``on_end`` makes of every span: could anything have to be added to it?

Most spans an application ends (HTTP, DB...) carry no name that makes them an LLM call, no raw user id
to hash and no agent/session total; with no rollup or ancestor pending either, the processor hands
them on as they are, after one C-level set test. A span in an :func:`~otel_llm_cost.attribution`
block carries ``cost.user_id``, hashed when the block was entered: that alone needs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.enrichment import LLM_MARKER_NAMES
from otel_llm_cost.enrich.rollups import ROLLUP_NAMES
from otel_llm_cost.enrich.user_id import is_hashed_user_id
from otel_llm_cost.enrich.user_keys import USER_ID_KEYS

__all__ = ["NOTABLE_NAMES", "has_notable_names"]

NOTABLE_NAMES: Final = LLM_MARKER_NAMES | USER_ID_KEYS | ROLLUP_NAMES
"""An LLM call's markers, user-id names (raw or ``cost.user_id``), agent/session names: a span with none
of them has nothing notable (a caller may test this set before calling :func:`has_notable_names`)."""
_NOTABLE_BUT_COST_USER_ID: Final = NOTABLE_NAMES - {sc.COST_USER_ID}


def has_notable_names(attributes: Mapping[str, Any]) -> bool:
    """Whether a span's names may make it a call, carry a raw user id or get an agent/session total."""
    if NOTABLE_NAMES.isdisjoint(attributes):
        return False
    if not _NOTABLE_BUT_COST_USER_ID.isdisjoint(attributes):
        return True
    value = attributes.get(sc.COST_USER_ID)
    return not (isinstance(value, str) and is_hashed_user_id(value))
