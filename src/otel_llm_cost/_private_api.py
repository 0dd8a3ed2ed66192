"""Every use of a dependency's private or internal API, in one place, each with the reason for it.

A dependency may change what it does not export in any release. Gathering those uses here shows,
in one file, what an upgrade of that dependency must be checked against.
"""

from __future__ import annotations

import asyncio
import contextvars
import operator
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

if TYPE_CHECKING:
    from genai_prices import types as gp_types

__all__ = [
    "argparse_actions",
    "bundled_genai_providers",
    "current_context_getter",
    "deprecated_instrumentation_info",
    "dropped_counts",
    "find_genai_provider",
    "genai_model_price_value",
    "genai_providers_from_json",
    "global_meter_provider_check",
    "guarded_uvicorn_protocol",
    "is_proxy_meter_provider",
    "readable_span_fields",
    "span_attribute_dict",
    "span_context_and_resource",
    "span_context_ids",
]

# --------------------------------------------------------------------------------------------
# argparse
#
# `otel-llm-cost completion` lists every command and flag; argparse offers no public way to walk a
# parser's arguments (`format_help` is text), so the completion script reads `_actions`, present
# since Python 3.2.


def argparse_actions(parser: Any) -> list[Any]:
    """The actions (arguments, subparsers) of an ``argparse.ArgumentParser``."""
    return list(parser._actions)


# --------------------------------------------------------------------------------------------
# genai-prices
#
# Its public API is `calc_price` and friends (genai_prices.__all__) plus the types in
# genai_prices.types.__all__. The price book compiles the data itself (calc_price costs ~100 us a
# call), so it reads the data those functions read:
#
# - `genai_prices.data.providers`: the bundled provider list, the list calc_price's bundled
#   snapshot uses. A PriceBook keeps its own reference to it, so that genai-prices' process-wide
#   `UpdatePrices` cannot change a book's prices behind its back.
# - `genai_prices.types._providers_from_raw` (private): turns the JSON data file genai-prices
#   publishes into providers; `UpdatePrices.fetch` uses it for the same file. It is how
#   OTEL_LLM_COST_PRICE_DATA gets newer prices without upgrading the package.
# - `genai_prices.data_snapshot.find_provider_by_id` (not in that module's __all__): genai-prices'
#   own rule for a provider id (exact id, then each provider's `provider_match`), so that a
#   provider name resolves here as calc_price resolves it.
# - `ModelPrice.__dict__`: a ModelPrice keeps the prices its entry gives as instance attributes and
#   answers every other price key through __getattr__ (None for a key its unit registry knows,
#   AttributeError otherwise). Reading __dict__ gets exactly the prices the entry gives, whatever
#   keys the installed version registers.
#
# genai-prices is imported inside each function: importing its bundled data takes ~0.5 s, and the
# processor must not pay that on import.
# --------------------------------------------------------------------------------------------


def bundled_genai_providers() -> list[gp_types.Provider]:
    """The providers bundled with the installed genai-prices (the list, not a copy)."""
    from genai_prices.data import providers  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

    return providers


def genai_providers_from_json(raw: list[Any]) -> list[gp_types.Provider]:
    """Providers from the parsed JSON of a genai-prices data file.

    Raises:
        Exception: Whatever genai-prices' loader raises for data it cannot read (pydantic's
            ValidationError today).
    """
    from genai_prices.types import _providers_from_raw  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

    providers: list[gp_types.Provider] = _providers_from_raw(raw)
    return providers


def find_genai_provider(providers: list[gp_types.Provider], name: str) -> gp_types.Provider | None:
    """The provider ``name`` designates for genai-prices (its id or a ``provider_match``), or ``None``."""
    from genai_prices.data_snapshot import find_provider_by_id  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

    provider: gp_types.Provider | None = find_provider_by_id(providers, name)
    return provider


def genai_model_price_value(
    model_price: gp_types.ModelPrice, key: str
) -> Decimal | gp_types.TieredPrices | None:
    """The price the entry gives for ``key`` (``input_mtok``, ``requests_kcount``...), or ``None``."""
    from genai_prices.types import TieredPrices  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

    value = model_price.__dict__.get(key)
    return value if isinstance(value, Decimal | TieredPrices) else None


# --------------------------------------------------------------------------------------------
# opentelemetry-sdk (ReadableSpan internals)
#
# Private uses, each checked on the oldest and newest supported SDK by tests/test_sdk_compat.py and
# tests/test_enrich_copy.py:
#
# - ``ReadableSpan._attributes`` (a dict, or a ``BoundedAttributes`` whose ``._dict`` holds the
#   values): read directly on the span path; the public ``attributes`` property runs Python code on
#   every lookup (a miss raises and catches KeyError) and its ``dict()`` copy costs ~1.5 us.
# - ``ReadableSpan.__dict__``: the fields of a span the SDK built, copied wholesale into the enriched
#   copy (~0.7 us against ~3 us through the constructor and public properties); its dropped counts
#   are read from those fields as the ``dropped_*`` properties read them.
# - ``Span._attributes`` (a ``BoundedAttributes``: ``_dict``, ``_lock``, ``maxlen``, ``max_value_len``,
#   ``_immutable``): attribution tags, plain strings already valid, are added to a running span's map
#   directly; ``Span.set_attributes`` re-validates each value and costs ~2.9 us for four tags.
# - ``ReadableSpan._instrumentation_info``: deprecated since SDK 1.11 but still part of the span; read
#   privately to avoid the DeprecationWarning of the public property.
# --------------------------------------------------------------------------------------------


def span_attribute_dict(span: ReadableSpan) -> dict[str, Any] | None:
    """The span's own attribute dict (do not mutate), or None when the SDK layout is not the known one.

    Safe to read once the span has ended: ``end()`` freezes the map since SDK 1.43, and
    ``set_attribute`` after ``end()`` is dropped before that.
    """
    try:  # attribute loads, not getattr() calls: this runs for every span
        inner = span._attributes._dict  # type: ignore[union-attr]  # a BoundedAttributes
    except AttributeError:
        raw = getattr(span, "_attributes", None)
        return raw if type(raw) is dict else None
    # An OrderedDict once SDK 1.40-1.42 reaches the attribute limit.
    return inner if isinstance(inner, dict) else None


def add_string_attributes(span: ReadableSpan, values: Mapping[str, str]) -> bool:
    """Add new string attributes to a running SDK span as ``set_attributes`` would; False: not done.

    Only when the span's map is the known ``BoundedAttributes``, still mutable, without a value length
    limit, with room for every value, and none of ``values`` is in it yet: then the SDK's per-value
    cleaning has nothing to change. Otherwise the caller uses ``set_attributes``.
    """
    bounded = getattr(span, "_attributes", None)
    inner = getattr(bounded, "_dict", None)
    lock = getattr(bounded, "_lock", None)
    if (
        type(inner) is not dict
        or not inner.keys().isdisjoint(values)
        or lock is None
        or getattr(bounded, "_immutable", True) is not False
        or getattr(bounded, "max_value_len", 0) is not None
        or getattr(span, "_end_time", 0) is not None
    ):
        return False
    maxlen = getattr(bounded, "maxlen", 0)
    with lock:
        if maxlen is not None and len(inner) + len(values) > maxlen:
            return False
        inner.update(values)
    return True


def readable_span_fields(span: ReadableSpan) -> dict[str, Any] | None:
    """The instance fields of a plain SDK ``ReadableSpan`` (None for a subclass or another layout)."""
    state: dict[str, Any] | None = getattr(span, "__dict__", None)
    if type(span) is ReadableSpan and state is not None and "_attributes" in state:
        return state
    return None


def dropped_counts(state: dict[str, Any]) -> tuple[int, int, int]:
    """The dropped attribute, event and link counts of the span whose fields are ``state``.

    As ``ReadableSpan.dropped_attributes``/``dropped_events``/``dropped_links`` compute them (the
    ``dropped`` count of a ``BoundedAttributes``/``BoundedList``, else 0), in one call instead of
    three property calls.
    """
    return (
        getattr(state.get("_attributes"), "dropped", 0),
        getattr(state.get("_events"), "dropped", 0),
        getattr(state.get("_links"), "dropped", 0),
    )


def deprecated_instrumentation_info(span: ReadableSpan) -> Any:
    """``span.instrumentation_info`` without its DeprecationWarning."""
    return getattr(span, "_instrumentation_info", None)


# --------------------------------------------------------------------------------------------
# opentelemetry-api (context)
#
# - ``opentelemetry.context._RUNTIME_CONTEXT``: with the default ``ContextVarsRuntimeContext``,
#   ``context.get_current()`` is two Python calls around one ``ContextVar.get`` (its
#   ``_current_context``). ``on_start`` reads the current context for every span, so it calls that
#   ``get`` directly; another runtime context (``OTEL_PYTHON_CONTEXT``) keeps the public function.
# --------------------------------------------------------------------------------------------


def current_context_getter() -> Callable[[], Any]:
    """What returns ``opentelemetry.context.get_current()``'s answer, in one C call where possible."""
    from opentelemetry import context  # noqa: PLC0415 - imported where it is used, as the rest here
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext  # noqa: PLC0415

    runtime = getattr(context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(variable, contextvars.ContextVar):
        getter: Callable[[], Any] = variable.get
        return getter
    return context.get_current


# --------------------------------------------------------------------------------------------
# opentelemetry-api (metrics)
#
# - `opentelemetry.metrics._internal._ProxyMeterProvider`: what `get_meter_provider()` returns until
#   the application sets a MeterProvider. The cost metrics stay idle (record nothing, cost nothing)
#   while the global provider is still that proxy, and start once a real one is set. The API offers
#   no public way to ask "has a MeterProvider been set?".
# --------------------------------------------------------------------------------------------


def is_proxy_meter_provider(provider: object) -> bool:
    """True when ``provider`` is the API's placeholder for a MeterProvider not set yet."""
    from opentelemetry.metrics._internal import _ProxyMeterProvider  # noqa: PLC0415

    return isinstance(provider, _ProxyMeterProvider)


def global_meter_provider_check(proxy: object) -> Callable[[], bool]:
    """A test, cheap enough for every call, of whether the global MeterProvider is no longer ``proxy``.

    While none is set, ``get_meter_provider()`` looks ``OTEL_PYTHON_METER_PROVIDER`` up in
    ``os.environ`` on every call (~0.7 us: ``os.environ`` encodes the key each time); the module's
    ``_METER_PROVIDER``, which ``set_meter_provider`` sets, is read instead. (The variable is
    honoured when the processor is built: ``cost_metrics`` calls ``get_meter_provider()`` then.)
    """
    from opentelemetry.metrics import _internal, get_meter_provider  # noqa: PLC0415

    if hasattr(_internal, "_METER_PROVIDER"):
        return lambda: _internal._METER_PROVIDER is not None
    return lambda: get_meter_provider() is not proxy


# --------------------------------------------------------------------------------------------
# opentelemetry-api (trace)
#
# - ``SpanContext`` is a tuple ``(trace_id, span_id, is_remote, trace_flags, trace_state, is_valid)``
#   and its properties read it by index. The cost metrics keep each call's ids as plain ints until a
#   reader collects (ints are not tracked by the garbage collector; a span context kept per call
#   made it run ~4 times as often on the application's thread): read by index in one C call, where
#   the properties cost a Python call each. Checked once at import; the properties are used when the
#   layout is not the known one.
# --------------------------------------------------------------------------------------------


def _span_context_ids_getter() -> Callable[[SpanContext], tuple[int, int, int]]:
    getter = operator.itemgetter(0, 1, 3)
    probe = SpanContext(0x1234, 0x56, False, TraceFlags(TraceFlags.SAMPLED))
    if isinstance(probe, tuple) and getter(probe) == (0x1234, 0x56, TraceFlags.SAMPLED):
        return getter
    return lambda context: (context.trace_id, context.span_id, context.trace_flags)


span_context_ids: Callable[[SpanContext], tuple[int, int, int]] = _span_context_ids_getter()
"""``(trace_id, span_id, trace_flags)`` of a span context."""


# --------------------------------------------------------------------------------------------
# opentelemetry-sdk (a span's context and resource)
#
# - ``ReadableSpan._context`` and ``._resource``: what its ``context`` and ``resource`` properties
#   return. The cost metrics read both for each billable call on the application's thread: one C
#   call, where each property costs a Python call. Checked once at import; the properties are used
#   when the layout is not the known one.
# --------------------------------------------------------------------------------------------


def _span_context_and_resource_getter() -> Callable[[ReadableSpan], tuple[SpanContext, Any]]:
    getter = operator.attrgetter("_context", "_resource")
    probe = ReadableSpan("probe", context=SpanContext(0x1234, 0x56, False))
    try:
        if getter(probe) == (probe.context, probe.resource):
            return getter
    except AttributeError:
        pass
    return lambda span: (span.context, span.resource)


span_context_and_resource: Callable[[ReadableSpan], tuple[SpanContext, Any]] = (
    _span_context_and_resource_getter()
)
"""``(context, resource)`` of a span (a span the SDK started always has a context)."""


# --------------------------------------------------------------------------------------------
# uvicorn
#
# uvicorn accepts any asyncio.Protocol class as its HTTP protocol (``Config(http=cls)``) but builds
# it with internal keyword arguments (config, server_state, app_state, _loop), and its h11 protocol
# class lives in ``uvicorn.protocols.http.h11_impl``. The receiver wraps that class so that it sees
# each connection open and close (uvicorn itself has no deadline for a request's headers).
# --------------------------------------------------------------------------------------------


def guarded_uvicorn_protocol(
    opened: Callable[[asyncio.BaseTransport], bool], closed: Callable[[asyncio.BaseTransport], None]
) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, told of each connection: ``opened(transport)`` False refuses it."""
    from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: PLC0415 - the serve extra

    class GuardedProtocol(asyncio.Protocol):
        def __init__(self, **uvicorn_arguments: Any) -> None:
            self._inner = H11Protocol(**uvicorn_arguments)
            self._transport: asyncio.BaseTransport | None = None
            self._served = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._transport = transport
            self._served = opened(transport)
            if self._served:
                self._inner.connection_made(transport)  # type: ignore[arg-type]

        def connection_lost(self, exc: Exception | None) -> None:
            if self._transport is not None:
                closed(self._transport)
            if self._served:
                self._inner.connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._served:
                self._inner.data_received(data)

        def eof_received(self) -> None:
            if self._served:
                self._inner.eof_received()

        def pause_writing(self) -> None:
            if self._served:
                self._inner.pause_writing()

        def resume_writing(self) -> None:
            if self._served:
                self._inner.resume_writing()

    return GuardedProtocol
