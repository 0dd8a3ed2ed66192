"""User ids on the spans the processor hands on: every copy carries their keyed hash, never the raw id.

The OTLP side (another backend, another team's collector) receives what the wrapped processors
receive, so a raw ``user.id``, ``enduser.id``, ``langfuse.user.id``, Traceloop association user key or
a ``cost.user_id`` set by hand would leave the process. The names are the one list in
:mod:`otel_llm_cost.conventions.names` (``USER_ID_ATTRIBUTE_NAMES``); a value already in our hashed
form is kept, so an id hashed upstream is not hashed twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.attribution import UserIdHasher, default_user_id_hasher
from otel_llm_cost.enrich.user_id import is_hashed_user_id

__all__ = ["USER_ID_KEYS", "hashed_user_ids"]

USER_ID_KEYS: Final = frozenset(sc.USER_ID_ATTRIBUTE_NAMES)
_RAW_KEYS: Final = USER_ID_KEYS - {sc.COST_USER_ID}


def hashed_user_ids(attributes: Mapping[str, Any], hasher: UserIdHasher | None) -> dict[str, str] | None:
    """The user-id attributes of ``attributes`` that are not hashed yet, mapped to their hash.

    Returns:
        ``None`` when there is nothing to replace (no user-id attribute, all hashed already, or
        hashing turned off): the span can be handed on as it is.
    """
    if USER_ID_KEYS.isdisjoint(attributes):  # the usual span: one C-level pass over its names
        return None
    if _hashed(attributes.get(sc.COST_USER_ID)) and _RAW_KEYS.isdisjoint(attributes):
        return None  # an attribution block's cost.user_id, hashed when the block was entered
    raw = [name for name in USER_ID_KEYS.intersection(attributes) if not _hashed(attributes[name])]
    if not raw:  # e.g. an attribution block's cost.user_id, hashed when the block was entered
        return None
    hasher = hasher or default_user_id_hasher()
    if not hasher.enabled:
        return None
    out: dict[str, str] = {}
    for name in raw:
        value = attributes[name]
        out[name] = hasher.hash(value if isinstance(value, str) else str(value))
    return out


def _hashed(value: Any) -> bool:
    return isinstance(value, str) and is_hashed_user_id(value)
