"""Rule 4 of the double-count guard: one call recorded as the root spans of two traces.

OpenInference's span of the Anthropic SDK's ``messages.stream()`` helper is current only while
``stream()`` runs; the SDK sends the request, and opens its own span, later, in ``__enter__``. Outside
a parent span the two spans of the one call are therefore the roots of two traces, and the
OpenInference span carries no response id: neither the response-id rule nor the same-trace rule can
see them as one call, and both would be billed.

Two ended LLM spans are taken for one call only when all of this holds:

- both are roots (no parent) and come from one process: one guard (one processor, exporter or
  receiver) saw both, and their resources are equal;
- one was read under the OpenInference convention and the other under another convention (the
  SDK's own span, or another instrumentation's);
- the same model after normalisation (the price list's model id when the call was priced, else the
  span's model, lower-cased);
- equal, non-zero input and output token counts;
- overlapping times.

The span that ends first stays billable and the other is its duplicate, marked as the same-trace rule
marks one. Each billable span absorbs one duplicate, so two such calls made at once (four spans) are
billed twice.

Why two conventions are required: two threads making the same call at the same moment give two root
spans with one model, equal counts and overlapping times, and an instrumentation records each call
once, so two spans of one convention are two calls. The residual risk is two genuinely separate calls,
one recorded only by OpenInference and the other only by another instrumentation (for example a second
client library that OpenInference does not instrument), in one process, with the same model and
exactly the same input and output counts, overlapping in time, neither inside a parent span: the second
to end would be marked a duplicate. Between processes that send identical resources (no
``service.instance.id``) to one receiver the same holds.

Memory is bounded by size: at most ``capacity`` keys (process, model, counts), least recently added
dropped first, each remembering at most 64 spans of each convention kind not yet paired. A span whose
twin is forgotten is over-counted, never under-counted. A waiting span pairs only with a span whose
time overlaps its own, so one that never pairs (in a process without OpenInference, every root LLM
span) matches nothing later and just waits to be pushed out.

A span that can have a twin (a span of the other kind waits under its key) is decided under one of 64
locks chosen by its token counts (both spans of a pair take the same lock); the caller holds its own
trace lock meanwhile, and this module never takes one, so locks are always taken in that order. Any
other span joins the waiting list without a lock: with one lock for equal counts, sixteen threads
ending spans of the same counts spent as much CPU queueing on it as on the rest of the span's path.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, Final, TypeVar

from opentelemetry.sdk.resources import Resource

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.conventions.tables import OPENINFERENCE

__all__ = ["RootPairs", "RootSpan"]

_K = TypeVar("_K")
_V = TypeVar("_V")

RootSpan = tuple[Resource | None, Mapping[str, Any]]
"""A root LLM span as rule 4 reads it: (its resource, the attributes enrichment added to it)."""

_Waiting = tuple[int, int, int]
"""A billable root span not yet paired: (span_id, start_ns, end_ns)."""
_Key = tuple[Hashable, str, int, int]
"""(process, model, input_tokens, output_tokens)."""

_STRIPES: Final = 64
_MAX_WAITING_PER_KEY: Final = 64
"""Unpaired spans one key remembers: many identical calls must not make each end scan them all."""
_OPENINFERENCE: Final = OPENINFERENCE.convention


def _content(resource: Resource | None) -> Hashable:
    if resource is None:
        return None
    items = resource.attributes.items()
    try:
        return frozenset(items)
    except TypeError:  # an unhashable value (a list) in a hand-built resource
        return frozenset((name, repr(value)) for name, value in items)


def _span_model(extra: Mapping[str, Any]) -> str | None:
    """The span's own model, normalised, for a root LLM span that pricing matched to no price entry."""
    model = extra.get(sc.LLM_MODEL)
    return model.strip().lower() if isinstance(model, str) else None


class RootPairs:
    """Billable root LLM spans waiting for their twin of the other convention kind (rule 4).

    Args:
        capacity: Maximum keys remembered (LRU).
    """

    __slots__ = ("_capacity", "_locks", "_process", "_waiting")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        # The last resource seen and its attributes as a frozenset (which caches its hash): in a
        # process every span carries the provider's one resource object; the receiver decodes one
        # per request.
        self._process: tuple[object, Hashable] = (object(), None)
        self._locks = tuple(threading.Lock() for _ in range(_STRIPES))
        # Per key, the waiting spans read under another convention [0] and as OpenInference [1].
        self._waiting: OrderedDict[_Key, tuple[list[_Waiting], list[_Waiting]]] = OrderedDict()

    def twin_of(  # noqa: PLR0917 - one call site, positional on the hot path
        self, root: RootSpan, input_tokens: int, output_tokens: int, span_id: int, start_ns: int, end_ns: int
    ) -> int | None:
        """The span id of the waiting span this root span duplicates, else ``None`` (it now waits,
        unless it names no model)."""
        resource, extra = root
        model = extra.get(sc.LLM_COST_MODEL_ID)
        if not isinstance(model, str):
            model = _span_model(extra)
        if not model:
            return None
        openinference = extra.get(sc.LLM_CONVENTION) == _OPENINFERENCE
        process = self._process
        if resource is not process[0]:
            process = self._process = (resource, _content(resource))
        key: _Key = (process[1], model, input_tokens, output_tokens)
        entry: _Waiting = (span_id, start_ns, end_ns)
        waiting = self._waiting
        lists = waiting.get(key)
        if lists is not None and not lists[not openinference]:
            # No span of the other kind waits (every root of an application that uses one
            # convention): nothing to match, so join the waiting without the lock. Under one lock,
            # sixteen threads ending spans of equal counts queued on it. Each step is one atomic list
            # operation; a twin ending at the same instant on another thread is at worst over-counted.
            same = lists[openinference]
            same.append(entry)
            if len(same) > _MAX_WAITING_PER_KEY:
                _trim(same)
            return None
        # Both spans of a pair have the same counts, so the same lock; no hashing needed to choose it.
        with self._locks[(input_tokens + output_tokens) % _STRIPES]:
            lists = waiting.get(key)
            if lists is None:
                waiting[key] = ([], [entry]) if openinference else ([entry], [])
                if len(waiting) > self._capacity:
                    _evict_oldest(waiting)
                return None
            others = lists[not openinference]
            for seen in others:
                if seen[1] <= end_ns and start_ns <= seen[2]:
                    try:  # each billable span absorbs one duplicate; by value: trims run unlocked
                        others.remove(seen)
                    except ValueError:  # trimmed meanwhile: forgotten, at worst over-counted
                        continue
                    return seen[0]
            same = lists[openinference]
            same.append(entry)
            if len(same) > _MAX_WAITING_PER_KEY:
                _trim(same)
        return None


def _trim(same: list[_Waiting]) -> None:
    # try/except, not contextlib.suppress: a full list trims on every root span (~0.3 us for the
    # context manager object each time).
    try:  # noqa: SIM105 - the hot path: see above
        del same[0]  # forgotten: at worst over-counted, never under-counted
    except IndexError:  # another thread trimmed it meanwhile
        pass


def _evict_oldest(table: OrderedDict[_K, _V]) -> None:
    """Drop the least recent entry; another stripe may have emptied the table meanwhile."""
    with contextlib.suppress(KeyError):
        table.popitem(last=False)
