"""Serving the dashboard with uvicorn on a socket bound before the URL is printed (so ``--port 0``
prints the real port), until Ctrl-C or SIGTERM."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import uvicorn

from otel_llm_cost.budgets.model import Budget
from otel_llm_cost.pricing.book import PriceBook
from otel_llm_cost.query.store import CostStore
from otel_llm_cost.ui.app import DEFAULT_TIMEOUT_S, create_app

__all__ = ["serve_dashboard"]


def serve_dashboard(
    db: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    budgets: Sequence[Budget] = (),
    pricebook: PriceBook | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_ready: Callable[[str], None] = print,
    user_labels: Mapping[str, str] | None = None,
) -> None:
    """Serve the pages over ``db`` (opened read-only) at ``http://host:port/``; returns when stopped.

    Raises:
        StorageError: the file does not exist or is not an otel-llm-cost database.
        OSError: the address cannot be bound.
    """
    store = CostStore(db, read_only=True)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        bound_port = sock.getsockname()[1]
        # Listening before the URL is printed: a client that connects at once waits in the backlog
        # until uvicorn accepts, instead of being refused.
        sock.listen(2048)
        app = create_app(
            store, budgets=budgets, pricebook=pricebook, timeout_s=timeout_s, user_labels=user_labels
        )
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        on_ready(f"http://{shown}:{bound_port}/")
        server.run(sockets=[sock])
    finally:
        sock.close()
        store.close()
