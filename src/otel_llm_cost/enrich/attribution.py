"""Attribution tags (feature, agent, user, org, session, workflow, step...) for everything in a block.

``attribution(**tags)`` puts the tags on the OpenTelemetry context *and* in W3C baggage, so
:class:`~otel_llm_cost.processor.LLMCostSpanProcessor` copies them onto every span started inside
the block as ``cost.<key>``, including spans in other services that receive the baggage through
the standard propagators.

User ids are personal data: they are replaced by a keyed hash (HMAC-SHA-256) *before* they enter
the context or baggage, so a raw id never leaves the process. See :class:`UserIdHasher` for where
the key comes from.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Final, NamedTuple, ParamSpec, TypeVar, cast

from opentelemetry import baggage, context

from otel_llm_cost._private_api import current_context_getter
from otel_llm_cost.conventions.names import COST_PREFIX, COST_USER_ID
from otel_llm_cost.enrich.user_id import UserIdHasher, is_hashed_user_id

__all__ = [
    "UserIdHasher",
    "attribution",
    "current_attribution",
    "default_user_id_hasher",
    "is_hashed_user_id",
    "set_default_user_id_hasher",
]

_logger = logging.getLogger("otel_llm_cost.attribution")

P = ParamSpec("P")
R = TypeVar("R")

_KEY_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

_TAGS_KEY: Final = context.create_key("otel_llm_cost.attribution")
# The context key W3C baggage lives under, learnt through the public API (set_baggage adds exactly
# one key to an empty context): span_tags looks it up directly, as it looks up _TAGS_KEY, instead
# of building baggage.get_all()'s MappingProxy for every span (~0.2 us of a 2 us budget).
_BAGGAGE_KEY: Final = next(iter(baggage.set_baggage("k", "v", context.Context())))


# context.get_current() for every span started without an explicit context, in one C call.
_current_context: Final = current_context_getter()
_NO_TAGS: Final[Mapping[str, str]] = MappingProxyType({})

_default_hasher: UserIdHasher | None = None
_default_lock = threading.Lock()


def default_user_id_hasher() -> UserIdHasher:
    """The process-wide hasher used when none is passed (created on first use from the environment).

    Returns:
        A shared :class:`UserIdHasher`.
    """
    global _default_hasher  # noqa: PLW0603 - one lazily built process-wide default
    hasher = _default_hasher
    if hasher is None:
        with _default_lock:
            if _default_hasher is None:
                _default_hasher = UserIdHasher()
            hasher = _default_hasher
    return hasher


def set_default_user_id_hasher(hasher: UserIdHasher) -> None:
    """Make ``hasher`` the process-wide default used by :func:`attribution` blocks.

    :class:`~otel_llm_cost.processor.LLMCostSpanProcessor` calls this when it is given a hasher, so
    the key configured there also hashes ids entering ``attribution(user_id=...)`` blocks.

    Args:
        hasher: The hasher to use from now on.
    """
    global _default_hasher  # noqa: PLW0603 - the process-wide default, as set_tracer_provider
    with _default_lock:
        _default_hasher = hasher


def hash_user_id(raw: str) -> str:
    """The form in which ``raw`` is stored as ``cost.user_id``: filter reports or budgets by it.

    Uses the installation's key (``OTEL_LLM_COST_USER_ID_KEY`` or the per-installation key file), so
    the result matches what this machine's processor and exporter stored for ``raw``.

    Args:
        raw: The user id as the application knows it.

    Returns:
        ``"h:<32 hex>"`` (``raw`` unchanged when hashing is disabled or ``raw`` is already a hash).

    Example:
        >>> store.cost_by("model", where={"user_id": hash_user_id("u-42")})  # doctest: +SKIP
    """
    return default_user_id_hasher().hash(raw)


class _Tags(NamedTuple):
    values: Mapping[str, str]
    """Tag key (without the ``cost.`` prefix) -> value, user id already hashed."""
    attributes: tuple[tuple[str, str], ...]
    """The same as ``(attribute name, value)`` pairs, precomputed for ``on_start``."""
    attribute_map: Mapping[str, str]
    """The same pairs as a dict (never mutated): added to a span as they are."""


def _make_tags(values: dict[str, str]) -> _Tags:
    attributes = tuple((COST_PREFIX + key, value) for key, value in values.items())
    return _Tags(values, attributes, dict(attributes))


def _baggage_tags(ctx: context.Context | None, hasher: UserIdHasher | None) -> dict[str, str]:
    """``cost.*`` entries of the W3C baggage (for example from an upstream service), validated."""
    found: dict[str, str] = {}
    for name, value in baggage.get_all(ctx).items():
        if not name.startswith(COST_PREFIX) or not isinstance(value, str):
            continue
        key = name[len(COST_PREFIX) :]
        if _KEY_RE.fullmatch(key) is None:
            continue
        # An upstream service without this library may have put a raw id in baggage.
        found[key] = (hasher or default_user_id_hasher()).hash(value) if name == COST_USER_ID else value
    return found


def span_tags(ctx: context.Context | None, hasher: UserIdHasher | None) -> tuple[tuple[str, str], ...]:
    """The ``(cost.<key>, value)`` attributes a span started in ``ctx`` should carry.

    Tags set by :func:`attribution` in this process win over baggage entries (they were merged
    with the baggage present when the block was entered).

    Args:
        ctx: The context the span is started in (``None``: the current context).
        hasher: Hashes raw user ids found in baggage (``None``: the default hasher).

    Returns:
        Attribute pairs, possibly empty.
    """
    if ctx is None:
        ctx = _current_context()
    # Context is a dict: a direct lookup is the cheap path every span takes.
    tags = ctx.get(_TAGS_KEY)
    if tags is not None:
        return cast(_Tags, tags).attributes
    if not ctx.get(_BAGGAGE_KEY):
        return ()
    return tuple((COST_PREFIX + key, value) for key, value in _baggage_tags(ctx, hasher).items())


def span_tag_attributes(ctx: context.Context | None, hasher: UserIdHasher | None) -> Mapping[str, str]:
    """:func:`span_tags` as a mapping, which the caller must not mutate (an attribution block's own)."""
    if ctx is None:
        ctx = _current_context()
    tags = ctx.get(_TAGS_KEY)
    if tags is not None:
        return cast(_Tags, tags).attribute_map
    if not ctx.get(_BAGGAGE_KEY):
        return _NO_TAGS
    return {COST_PREFIX + key: value for key, value in _baggage_tags(ctx, hasher).items()}


def current_attribution(ctx: context.Context | None = None) -> dict[str, str]:
    """The attribution tags in effect (``attribution`` blocks merged with ``cost.*`` baggage).

    Args:
        ctx: Context to read (``None``: the current context).

    Returns:
        Tag key (without ``cost.``) -> value; ``user_id`` is the hashed form.
    """
    merged = _baggage_tags(ctx, None)
    tags = context.get_value(_TAGS_KEY, ctx)
    if tags is not None:
        merged.update(cast(_Tags, tags).values)
    return merged


def _validate(tags: Mapping[str, object]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for key, value in tags.items():
        if _KEY_RE.fullmatch(key) is None:
            raise ValueError(
                f"attribution key {key!r} must look like an identifier (letters, digits, '_', at most 64)"
            )
        if value is None:
            continue
        if not isinstance(value, str):
            raise TypeError(f"attribution value for {key!r} must be a str, not {type(value).__name__}")
        clean[key] = value
    return clean


class attribution:
    """Tag every span started inside a block (or a decorated function) with ``cost.*`` attributes.

    Keys: ``feature``, ``agent``, ``user_id``, ``org_id``, ``session_id``, ``workflow_id``,
    ``workflow_label``, ``step``, or any custom identifier-like key. Nested blocks merge, the inner
    value winning. The tags ride on the OpenTelemetry context and in W3C baggage as ``cost.<key>``
    entries, so they follow ``contextvars`` into threads started with a copied context, asyncio
    tasks, and other services through the standard baggage propagator. ``user_id`` is hashed
    before it enters the context (see :class:`UserIdHasher`). A ``None`` value is ignored.

    Works as a context manager and as a decorator of sync or ``async`` functions (each call gets
    its own block). Generator functions are refused: a block cannot stay open across ``yield``.

    Args:
        user_id_hasher: Hasher for ``user_id`` (``None``: :func:`default_user_id_hasher`).
        **tags: Tag values (``str``).

    Raises:
        ValueError: A key is not identifier-like.
        TypeError: A value is not a ``str`` (or ``None``); decorating a generator function.

    Example:
        >>> with attribution(feature="search", user_id="u-42"):
        ...     pass  # spans started here carry cost.feature and cost.user_id (hashed)
    """

    __slots__ = ("_hasher", "_tags", "_tokens")

    def __init__(self, *, user_id_hasher: UserIdHasher | None = None, **tags: str | None) -> None:
        self._tags = _validate(tags)
        self._hasher = user_id_hasher
        if "user_id" in self._tags:
            self._tags["user_id"] = (user_id_hasher or default_user_id_hasher()).hash(self._tags["user_id"])
        self._tokens: list[object] = []

    @property
    def tags(self) -> Mapping[str, str]:
        """The validated tags of this block (``user_id`` hashed)."""
        return dict(self._tags)

    def _context(self) -> context.Context:
        ctx = context.get_current()
        merged = current_attribution(ctx)
        previous = dict(merged)
        merged.update(self._tags)
        ctx = context.set_value(_TAGS_KEY, _make_tags(merged), ctx)
        for key, value in self._tags.items():
            if previous.get(key) != value:
                ctx = baggage.set_baggage(COST_PREFIX + key, value, ctx)
        return ctx

    def __enter__(self) -> attribution:
        self._tokens.append(context.attach(self._context()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        context.detach(self._tokens.pop())  # type: ignore[arg-type]

    def _fresh(self) -> attribution:
        clone = attribution.__new__(attribution)
        clone._tags = self._tags
        clone._hasher = self._hasher
        clone._tokens = []
        return clone

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``func`` so each call runs inside this attribution block."""
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError("attribution cannot decorate a generator; use `with attribution(...)` inside it")
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                with self._fresh():
                    return await func(*args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with self._fresh():
                return func(*args, **kwargs)

        return wrapper

    def __repr__(self) -> str:
        return f"attribution({', '.join(f'{k}={v!r}' for k, v in self._tags.items())})"
