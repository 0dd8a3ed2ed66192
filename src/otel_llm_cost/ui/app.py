"""The dashboard as a Starlette application: read-only GET routes over one CostStore.

Each page is rendered in a worker thread under a deadline (:mod:`~otel_llm_cost.ui.guard`); bad URL
input answers 400 with a message page, a query cut off answers 503, and an unexpected error answers
500 with a one-line message (logged with its traceback, never shown). Only GET and HEAD exist: no
route can write, and the store itself is opened read-only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from otel_llm_cost.budgets.model import Budget
from otel_llm_cost.enrich.attribution import default_user_id_hasher
from otel_llm_cost.exceptions import OtelLLMCostError
from otel_llm_cost.pricing.book import PriceBook
from otel_llm_cost.query.store import CostStore
from otel_llm_cost.ui import breakdown, drill, overview
from otel_llm_cost.ui.budgets_page import render_budgets
from otel_llm_cost.ui.context import PageContext
from otel_llm_cost.ui.guard import PageTimeout, run_bounded
from otel_llm_cost.ui.layout import Shell, message_page
from otel_llm_cost.ui.params import BadRequest, check_id, parse_view
from otel_llm_cost.ui.prices import render_prices

__all__ = ["DEFAULT_TIMEOUT_S", "create_app"]

DEFAULT_TIMEOUT_S: Final = 10.0
_logger = logging.getLogger("otel_llm_cost.ui")
_HEADERS: Final = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

Render = Callable[[PageContext], str | tuple[bytes, str]]


def _hash_user(raw: str) -> str:
    return default_user_id_hasher().hash(raw)


class _Pages:
    """Turns a request into a PageContext, runs a renderer under the deadline, maps failures to pages."""

    def __init__(
        self,
        store: CostStore,
        budgets: Sequence[Budget],
        pricebook: PriceBook | None,
        timeout_s: float,
        user_labels: Mapping[str, str],
    ) -> None:
        self.store = store
        self.budgets = tuple(budgets)
        self.timeout_s = timeout_s
        self._pricebook = pricebook
        self.user_labels = dict(user_labels)

    def pricebook(self) -> PriceBook:
        if self._pricebook is None:
            self._pricebook = PriceBook.default()
        return self._pricebook

    def shell(self, request: Request) -> Shell:
        source = str(self.store.path.name) if self.store.path is not None else "live receiver"
        return Shell(base=request.scope.get("root_path", "").rstrip("/"), source=source)

    def context(self, request: Request) -> PageContext:
        params = dict(request.query_params)
        view = parse_view(params, request.query_params.getlist("f"), hash_user=_hash_user)
        return PageContext(
            self.store,
            view,
            self.shell(request),
            self.budgets,
            self.pricebook,
            _hash_user,
            params,
            self.user_labels,
        )

    async def respond(self, request: Request, render: Render, filename: str = "") -> Response:
        shell = self.shell(request)
        try:
            ctx = self.context(request)
            result = await run_in_threadpool(
                run_bounded, self.store, self.timeout_s, functools.partial(render, ctx)
            )
        except (BadRequest, ValueError) as exc:
            return HTMLResponse(message_page("Cannot show this page", str(exc), shell), 400, _HEADERS)
        except PageTimeout as exc:
            message = f"{exc}. Narrow the window or the filters and try again."
            return HTMLResponse(message_page("Stopped: too long", message, shell), 503, _HEADERS)
        except OtelLLMCostError as exc:
            return HTMLResponse(message_page("The database could not answer", str(exc), shell), 503, _HEADERS)
        except Exception:
            # A user's page may be addressed by a raw id: the log gets the route, never the id.
            _logger.exception("dashboard page %s failed", request.url.path.split("/user/", 1)[0])
            message = "Unexpected error while rendering this page; the details are in the server's log."
            return HTMLResponse(message_page("Error", message, shell), 500, _HEADERS)
        if isinstance(result, tuple):
            body, media_type = result
            headers = {**_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'}
            return Response(body, 200, headers, media_type=media_type)
        return HTMLResponse(result, 200, _HEADERS)


def create_app(
    store: CostStore,
    *,
    budgets: Sequence[Budget] = (),
    pricebook: PriceBook | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    user_labels: Mapping[str, str] | None = None,
) -> Starlette:
    """The dashboard over ``store`` (open it read-only: ``CostStore(path)``).

    Args:
        store: where the pages read; a path-backed store holds the file only while a page queries.
        budgets: budgets whose status and forecast the pages show.
        pricebook: prices for the Prices page and the price in force of a call (default: bundled).
        timeout_s: longest a page may query before it is stopped with a message.
        user_labels: ``{stored user hash: name}`` shown instead of the hash (``load_user_labels``);
            only shown, never stored, logged or put in a download.
    """
    pages = _Pages(store, budgets, pricebook, timeout_s, user_labels or {})

    def route(path: str, render: Render, filename: str = "") -> Route:
        async def endpoint(request: Request) -> Response:
            return await pages.respond(request, render, filename)

        return Route(path, endpoint, methods=["GET"])

    def drill_route(path: str, render: Callable[[PageContext, str], str], label: str) -> Route:
        async def endpoint(request: Request) -> Response:
            value = request.path_params["value"]
            return await pages.respond(request, lambda ctx: render(ctx, check_id(value, label)))

        return Route(path, endpoint, methods=["GET"])

    routes = [
        route("/", overview.render_overview),
        route("/breakdown", breakdown.render_breakdown),
        route("/breakdown.csv", lambda ctx: breakdown.download(ctx, "csv"), "breakdown.csv"),
        route("/breakdown.parquet", lambda ctx: breakdown.download(ctx, "parquet"), "breakdown.parquet"),
        route("/budgets", render_budgets),
        route("/prices", render_prices),
        drill_route("/workflow/{value:path}", drill.render_workflow, "workflow"),
        drill_route("/session/{value:path}", drill.render_session, "session"),
        drill_route("/user/{value:path}", drill.render_user, "user"),
        drill_route("/call/{value:path}", drill.render_call, "span id"),
        Mount("/static", StaticFiles(packages=[("otel_llm_cost.ui", "static")]), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.started_at = datetime.now(UTC)
    return app
