"""The dashboard inside the receiver (``otel-llm-cost serve --ui``): the same pages at ``/ui/``, over
the file the receiver writes, in the receiver's process.

How the pages read a file this process writes: DuckDB keeps one configuration per file and process,
so a read-only handle cannot be opened while the exporter holds the file read-write, and a second
read-write handle would let a page write. The receiver's exporter holds the file only while it
commits (:mod:`otel_llm_cost.storage.lease`), so the pages use an ordinary read-only ``CostStore`` on
the same path, sandboxed as ``otel-llm-cost ui`` is (read-only, no file or URL access, configuration
locked), and the two take turns:

- a page that needs the file first lets the exporter commit what it accepted, then asks it to let go
  (the read request), so the page shows every call stored up to its load;
- while a page queries, the exporter's commits wait; the page's deadline (``timeout_s``, which also
  bounds how long a page waits for the file) bounds that wait;
- acknowledging never waits for the file: the receiver answers 200 once a span is queued, and the
  exporter journals accepted batches, so senders keep being acknowledged while a page queries (until
  the receiver's queue is full, when it answers 503 as it always does).

The pages have no authentication: they answer clients on loopback only (an SSH tunnel reaches them
from elsewhere), even when the receiver listens on another interface with a token.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Mount, Route

from otel_llm_cost import _config
from otel_llm_cost.collector.connections import is_loopback
from otel_llm_cost.query.store import CostStore
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.lake import LakeTarget, is_lake_target
from otel_llm_cost.storage.lake_ops import locked_lake
from otel_llm_cost.ui.app import DEFAULT_TIMEOUT_S, create_app

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request

    from otel_llm_cost.budgets.model import Budget
    from otel_llm_cost.pricing.book import PriceBook

__all__ = ["DASHBOARD_PATH", "DashboardOptions", "dashboard_url", "mount_dashboard", "open_dashboard_store"]

DASHBOARD_PATH: Final = "/ui"

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DashboardOptions:
    """What the pages mounted in a receiver show.

    Attributes:
        budgets: Budgets whose status and forecast the pages show.
        pricebook: Prices for the Prices page (default: bundled).
        timeout_s: Longest a page may wait for the file and query it before it is stopped.
        user_labels: ``{stored user hash: name}`` shown instead of hashes (only shown, never stored).
    """

    budgets: Sequence[Budget] = ()
    pricebook: PriceBook | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    user_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s!r}")


def open_dashboard_store(db_path: str | os.PathLike[str] | None, timeout_s: float) -> CostStore:
    """The read-only store the pages read, on the file this process's exporter writes.

    A file or lake the receiver has not written yet is created first (empty, with the schema), so
    that the pages open before the first span arrives.

    Raises:
        StorageError: the file or lake cannot be created or opened.
    """
    target = os.fspath(db_path) if db_path is not None else _config.DUCKDB_PATH.get()
    if is_lake_target(target):
        # Created as the receiver's writer would create it: under the writers' commit lock.
        with locked_lake(LakeTarget(target, _config.LAKE_DATA_PATH.get()), create=True):
            pass
    elif not Path(target).is_file():
        _storage.connect(target, see_pending=False).close()
    # Waiting for the file counts against the page's deadline: a page never waits longer than that.
    return CostStore(target, timeout_s=timeout_s)


def _loopback_only(app: _ASGIApp) -> _ASGIApp:
    async def guarded(scope: _Scope, receive: _Receive, send: _Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and not (client and is_loopback(str(client[0]))):
            refused = PlainTextResponse(
                "the dashboard answers on loopback only (it has no authentication); "
                "reach it through an SSH tunnel, e.g. ssh -L 4318:127.0.0.1:4318 <host>",
                403,
            )
            await refused(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


def mount_dashboard(
    app: Starlette, db_path: str | os.PathLike[str] | None, options: DashboardOptions
) -> CostStore:
    """Serve the dashboard at ``/ui/`` of ``app``, a receiver's application (and redirect ``/`` there).

    Returns:
        The store the pages read; close it after the receiver has stopped.

    Raises:
        StorageError: the file cannot be created or opened.
    """
    store = open_dashboard_store(db_path, options.timeout_s)
    pages = create_app(
        store,
        budgets=options.budgets,
        pricebook=options.pricebook,
        timeout_s=options.timeout_s,
        user_labels=options.user_labels,
    )

    async def to_dashboard(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{DASHBOARD_PATH}/", 307)

    routes = app.router.routes
    routes.append(Mount(DASHBOARD_PATH, _loopback_only(pages)))
    routes.append(Route("/", to_dashboard, methods=["GET", "HEAD"]))
    return store


def dashboard_url(traces_url: str) -> str:
    """``http://host:port/ui/`` beside a receiver's ``http://host:port/v1/traces``."""
    return traces_url.rsplit("/v1/traces", 1)[0] + f"{DASHBOARD_PATH}/"
