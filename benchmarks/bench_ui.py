"""Time each dashboard page's data hot on a large file, beside the same CostStore calls; page weight
and time to first paint in headless Chromium (when Debian's chromium and playwright are installed).

    python benchmarks/gen_calls.py --rows 10000000 --db /tmp/bench_calls.duckdb
    python benchmarks/bench_ui.py --db /tmp/bench_calls.duckdb

"page" is the renderer (its CostStore questions plus the HTML), "api" the same CostStore calls alone;
each the best of ``--repeat`` hot runs after one warm-up (the machine is shared: the minimum is the
figure least disturbed). Target (issue 14): every page's data under 300 ms hot on 10M calls. The window
is the file's last 30 days; ids for the drill-down pages are picked from the file.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from otel_llm_cost.enrich.attribution import default_user_id_hasher
from otel_llm_cost.pricing.book import PriceBook
from otel_llm_cost.query.store import CostStore
from otel_llm_cost.ui import breakdown, drill, overview
from otel_llm_cost.ui.budgets_page import render_budgets
from otel_llm_cost.ui.context import PageContext
from otel_llm_cost.ui.layout import Shell
from otel_llm_cost.ui.params import View, parse_view
from otel_llm_cost.ui.prices import render_prices


def best(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1000, result


def context(store: CostStore, view: View, params: dict[str, str] | None = None) -> PageContext:
    book = PriceBook.default()
    return PageContext(store, view, Shell(), (), lambda: book, default_user_id_hasher().hash, params or {})


def cases(store: CostStore, view: View) -> list[tuple[str, str, Callable[[], object], Callable[[], object]]]:
    s, e, tz = view.start, view.end, view.zone.key
    ids = store.sql(
        "SELECT (SELECT workflow_id FROM llm_calls WHERE billable AND workflow_id IS NOT NULL LIMIT 1) AS w, "
        "(SELECT session_id FROM llm_calls WHERE billable AND session_id IS NOT NULL LIMIT 1) AS s, "
        "(SELECT user_id FROM llm_calls WHERE billable AND user_id IS NOT NULL LIMIT 1) AS u, "
        "(SELECT span_id FROM llm_calls WHERE billable LIMIT 1) AS c"
    )[0]
    ctx = context(store, view)
    by_feature = context(
        store,
        parse_view(
            {"dim": "feature", "from": str(view.first_day), "to": str(view.last_day)},
            ["model=gpt-4o"],
            hash_user=str,
        ),
    )
    prices = context(store, view, {"model": "gpt-4o", "input": "1000", "output": "500"})
    return [
        (
            "overview",
            "/",
            lambda: overview.render_overview(ctx),
            lambda: (
                store.summary(s, e),
                store.spend_series("model", s, e, tz),
                store.movers("model", s, e, limit=8),
                store.alerts(limit=10),
            ),
        ),
        (
            "breakdown model",
            "/breakdown?dim=model",
            lambda: breakdown.render_breakdown(ctx),
            lambda: store.breakdown("model", s, e, limit=501),
        ),
        (
            "breakdown user",
            "/breakdown?dim=user",
            lambda: breakdown.render_breakdown(
                context(store, View(view.first_day, view.last_day, view.zone, dim="user"))
            ),
            lambda: store.breakdown("user", s, e, limit=501),
        ),
        (
            "breakdown session",
            "/breakdown?dim=session",
            lambda: breakdown.render_breakdown(
                context(store, View(view.first_day, view.last_day, view.zone, dim="session"))
            ),
            lambda: store.breakdown("session", s, e, limit=501),
        ),
        (
            "breakdown filtered",
            "/breakdown?dim=feature&f=model=gpt-4o",
            lambda: breakdown.render_breakdown(by_feature),
            lambda: store.breakdown("feature", s, e, {"model": "gpt-4o"}, limit=501),
        ),
        (
            "workflow",
            f"/workflow/{ids['w']}",
            lambda: drill.render_workflow(ctx, ids["w"]),
            lambda: (store.workflow_totals(ids["w"]), store.steps_for_workflow(ids["w"])),
        ),
        (
            "session",
            f"/session/{ids['s']}",
            lambda: drill.render_session(ctx, ids["s"]),
            lambda: (store.session_summary(ids["s"]), store.calls(filters={"session": ids["s"]}, limit=500)),
        ),
        (
            "user",
            f"/user/{ids['u']}",
            lambda: drill.render_user(ctx, ids["u"]),
            lambda: (
                store.daily_cost_where(s, e, tz, {"user": ids["u"]}),
                store.breakdown("model", s, e, {"user": ids["u"]}),
                store.calls(s, e, filters={"user": ids["u"]}, limit=50),
            ),
        ),
        (
            "call",
            f"/call/{ids['c']}",
            lambda: drill.render_call(ctx, ids["c"]),
            lambda: store.call_detail(ids["c"]),
        ),
        ("budgets", "/budgets", lambda: render_budgets(ctx), lambda: store.alerts(limit=200)),
        ("prices", "/prices?model=gpt-4o&input=1000&output=500", lambda: render_prices(prices), lambda: None),
    ]


@contextlib.contextmanager
def serving(store: CostStore) -> Iterator[str]:
    import uvicorn  # noqa: PLC0415

    from otel_llm_cost.ui.app import create_app  # noqa: PLC0415

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(store, timeout_s=30), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def first_paint(store: CostStore, paths: list[tuple[str, str]], query: str) -> dict[str, float]:
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        return {}
    if chromium is None:
        return {}
    painted: dict[str, float] = {}
    with serving(store) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        for name, path in paths:
            url = f"{base}{path}{'&' if '?' in path else '?'}{query}"
            page.goto(url)  # warm-up: the figure is the hot one, as for the data
            page.goto(url)
            # The paint entry is recorded a frame after load: wait for it rather than read too early.
            page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0")
            value: Any = page.evaluate(
                "() => performance.getEntriesByName('first-contentful-paint')[0].startTime"
            )
            painted[name] = float(value)
        browser.close()
    return painted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true", help="skip the time-to-first-paint column")
    args = parser.parse_args()
    store = CostStore(args.db)
    last = store.summary().last_end
    assert last is not None, "empty file"
    last_day = last.date()
    view = View(last_day - timedelta(days=29), last_day, parse_view({}, [], hash_user=str).zone)
    rows = []
    print(f"{args.db}: {store.summary().call_count:,} calls; window {view.first_day} to {view.last_day}")
    for name, path, page, api in cases(store, view):
        page_ms, html = best(page, args.repeat)
        api_ms, _ = best(api, args.repeat)
        rows.append((name, path, page_ms, api_ms, len(str(html).encode())))
    paint = {} if args.no_browser else first_paint(store, [(r[0], r[1]) for r in rows], view_query(view))
    print(f"{'page':20} {'page ms':>9} {'api ms':>9} {'bytes':>9} {'first paint ms':>15}")
    for name, _, page_ms, api_ms, size in rows:
        fp = f"{paint[name]:.0f}" if name in paint else "-"
        print(f"{name:20} {page_ms:9.1f} {api_ms:9.1f} {size:9,} {fp:>15}")
    store.close()


def view_query(view: View) -> str:
    return f"from={view.first_day}&to={view.last_day}"


if __name__ == "__main__":
    main()
