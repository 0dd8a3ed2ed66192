"""Lazy re-exports for the packages' ``__init__`` modules: a name's module loads on first use.

``import otel_llm_cost`` (or one light submodule) must not load duckdb, pyarrow or the price data
through a package ``__init__`` that re-exports everything: each ``__init__`` lists where its names
live, and this module supplies the module-level ``__getattr__`` (PEP 562) and ``__dir__`` for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: MutableMapping[str, Any], locations: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the module whose ``globals()`` is ``namespace``.

    Args:
        namespace: The package's ``globals()``; a name, once loaded, is cached there.
        locations: Each re-exported name and the module it is defined in.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name not in locations:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(locations[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *namespace.get("__all__", ())})

    return __getattr__, __dir__
