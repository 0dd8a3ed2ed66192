"""Helpers of the dashboard tests: a demo file written by the real processor -> exporter path, a real
uvicorn server on 127.0.0.1 in a thread, and a reader for the figures a page carries in ``data-value``."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from otel_llm_cost.cli import demo_spans as _demo
from otel_llm_cost.enrich import attribution as _attribution
from otel_llm_cost.query.store import CostStore
from otel_llm_cost.ui.app import create_app

# The demo's traffic ends here; pages are asked for explicit windows, so no test reads the clock.
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
WINDOW = "from=2026-03-01&to=2026-03-15&tz=UTC"
USER_KEY = "ui-tests-user-id-key-0123456789"


def write_demo_file(path: Path, calls: int = 400) -> Path:
    """The demo's traffic through the real processor and exporter, user ids hashed with USER_KEY."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OTEL_LLM_COST_USER_ID_KEY", USER_KEY)
        patch.setattr(_attribution, "_default_hasher", None)
        _demo.run_demo(path, calls=calls, seed=5, now=NOW)
    return path


@contextlib.contextmanager
def running_dashboard(path: Path, **options: Any) -> Iterator[str]:
    """The dashboard over ``path`` served by uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    store = CostStore(path)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(store, **options), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        store.close()


@dataclass
class Table:
    cls: str
    rows: list[list[tuple[str, str | None]]] = field(default_factory=list)
    foot: list[tuple[str, str | None]] = field(default_factory=list)

    def values(self, column: int) -> list[str | None]:
        return [row[column][1] for row in self.rows]

    def texts(self, column: int) -> list[str]:
        return [row[column][0] for row in self.rows]


class PageReader(HTMLParser):
    """Tables (each cell: its text and the first ``data-value`` inside it), cards, chart bars."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[Table] = []
        self.cards: dict[str, str | None] = {}
        self.bars: list[dict[str, str]] = []
        self._cell: list[Any] | None = None
        self._card: str | None = None
        self._in_foot = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.tables.append(Table(a.get("class") or ""))
        elif tag == "tfoot":
            self._in_foot = True
        elif tag == "tr" and self.tables and not self._in_foot:
            self.tables[-1].rows.append([])
        elif tag == "td":
            self._cell = ["", None]
        elif tag == "rect" and "data-value" in a:
            self.bars.append({k: v or "" for k, v in a.items()})
        if "data-card" in a:
            self._card = a["data-card"]
        if "data-value" in a:
            if self._cell is not None and self._cell[1] is None:
                self._cell[1] = a["data-value"]
            if self._card is not None and self._card not in self.cards:
                self.cards[self._card] = a["data-value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            cell = (self._cell[0].strip(), self._cell[1])
            table = self.tables[-1]
            (table.foot if self._in_foot else table.rows[-1]).append(cell)
            self._cell = None
        elif tag == "tr" and not self._in_foot and self.tables and not self.tables[-1].rows[-1]:
            self.tables[-1].rows.pop()  # the header row: th cells only
        elif tag == "tfoot":
            self._in_foot = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[0] += data

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def table(self, cls: str) -> Table:
        return next(t for t in self.tables if cls in t.cls.split())
