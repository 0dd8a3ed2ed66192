"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright without
``playwright install``): pages render the API's figures, filters and drill-down work, the CSV download
equals the query API, auto-refresh reloads, and no page logs a script error.

Skipped when chromium or playwright is missing, unless OTEL_LLM_COST_BROWSER_REQUIRED=1 (CI installs
both, so there a missing browser fails instead of passing silently).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from helpers import wait_until
from otel_llm_cost.query.store import CostStore
from otel_llm_cost.ui.fmt import money_text
from test_collector_pipeline import serve_process
from test_ui_receiver import KEY, USERS, hashed, send_calls, stored_calls, window
from ui_helpers import WINDOW, running_dashboard, write_demo_file

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_MISSING = (
    "Debian's chromium is not installed (apt-get install chromium)"
    if CHROMIUM is None
    else "the playwright package is not installed (pip install playwright)"
    if importlib.util.find_spec("playwright") is None
    else None
)
if _MISSING and os.environ.get("OTEL_LLM_COST_BROWSER_REQUIRED") == "1":
    raise RuntimeError(f"browser tests are required here but {_MISSING}")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))]

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 16, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_file(tmp_path_factory.mktemp("ui-browser") / "demo.duckdb")


@pytest.fixture(scope="module")
def base(demo: Path) -> Iterator[str]:
    with running_dashboard(demo) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional test dependency

    with sync_playwright() as playwright:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1360, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    # The browser logs a 400 answer as a failed load; the bad-input test asks for one on purpose.
    assert [e for e in errors if "status of 400" not in e] == []


@pytest.fixture
def store(demo: Path) -> Iterator[CostStore]:
    with CostStore(demo) as opened:
        yield opened


def test_overview_renders_the_api_figures(tab: Any, base: str, store: CostStore) -> None:
    tab.goto(f"{base}/?{WINDOW}")
    summary = store.summary(START, END)
    assert tab.inner_text("[data-card=spend] .value .money") == money_text(summary.cost_usd)
    assert tab.inner_text("[data-card=calls] .value") == f"{summary.call_count:,}"
    assert tab.inner_text("[data-card=unpriced] .value") == f"{summary.unpriced_calls:,}"
    bars = tab.eval_on_selector_all("svg.chart rect.bar", "els => els.map(e => e.dataset.value)")
    points = [p for p in store.spend_series("model", START, END, "UTC") if p.total_cost_usd]
    assert sorted(Decimal(v) for v in bars) == sorted(p.total_cost_usd for p in points)


def test_choosing_a_dimension_and_a_filter_in_the_form(tab: Any, base: str, store: CostStore) -> None:
    tab.goto(f"{base}/breakdown?{WINDOW}")
    tab.select_option("select[name=dim]", "feature")
    tab.fill("input[name=f]", "provider=anthropic")
    tab.click("form.bar button[type=submit]")
    tab.wait_for_load_state()
    assert "dim=feature" in tab.url
    assert "provider%3Danthropic" in tab.url or "provider=anthropic" in tab.url
    shown = tab.eval_on_selector_all(
        "table.breakdown tbody tr td:nth-child(2) [data-value]", "els => els.map(e => e.dataset.value)"
    )
    rows = store.breakdown("feature", START, END, {"provider": "anthropic"})
    assert [Decimal(v) if v else None for v in shown] == [r.total_cost_usd for r in rows]
    assert tab.inner_text(".chips").startswith("provider = anthropic")


def test_sorting_the_table_by_a_column(tab: Any, base: str) -> None:
    tab.goto(f"{base}/breakdown?{WINDOW}&dim=user")
    tab.click("table.breakdown th:nth-child(4)")  # calls, descending first
    calls = tab.eval_on_selector_all(
        "table.breakdown tbody tr td:nth-child(4) [data-value]", "els => els.map(e => +e.dataset.value)"
    )
    assert calls == sorted(calls, reverse=True)
    tab.click("table.breakdown th:nth-child(4)")
    calls = tab.eval_on_selector_all(
        "table.breakdown tbody tr td:nth-child(4) [data-value]", "els => els.map(e => +e.dataset.value)"
    )
    assert calls == sorted(calls)


def test_drilling_from_workflows_to_steps_to_one_call(tab: Any, base: str, store: CostStore) -> None:
    tab.goto(f"{base}/breakdown?{WINDOW}&dim=workflow")
    tab.click("table.breakdown a:has-text('details')")
    tab.wait_for_load_state()
    workflow = tab.url.split("/workflow/")[1].split("?")[0]
    steps = store.steps_for_workflow(workflow)
    assert tab.locator(".timeline .step").count() == len(steps)
    tab.click("table.calls a.mono >> nth=0")
    tab.wait_for_load_state()
    assert f"/call/{steps[0].span_id}" in tab.url
    assert steps[0].trace_id in tab.inner_text("dd[data-field='trace id']")


def test_session_and_user_drill_down(tab: Any, base: str, store: CostStore) -> None:
    tab.goto(f"{base}/breakdown?{WINDOW}&dim=session")
    tab.click("table.breakdown a:has-text('details')")
    tab.wait_for_load_state()
    session = tab.url.split("/session/")[1].split("?")[0]
    assert tab.locator("table.calls tbody tr").count() == store.session_summary(session).totals.call_count
    tab.goto(f"{base}/breakdown?{WINDOW}&dim=user")
    tab.click("table.breakdown a:has-text('details')")
    tab.wait_for_load_state()
    assert tab.locator("table.days tbody tr").count() == 15


def test_csv_download_equals_the_query_api(tab: Any, base: str, store: CostStore) -> None:
    tab.goto(f"{base}/breakdown?{WINDOW}&dim=org&f=feature=support_chat")
    with tab.expect_download() as info:
        tab.click("a:has-text('CSV')")
    text = Path(info.value.path()).read_text()
    records = list(csv.DictReader(io.StringIO(text)))
    rows = store.breakdown("org", START, END, {"feature": "support_chat"})
    assert [(r["key"], Decimal(r["total_cost_usd"]), int(r["call_count"])) for r in records] == [
        (r.key, r.total_cost_usd, r.call_count) for r in rows
    ]


def test_auto_refresh_reloads_the_page(tab: Any, base: str) -> None:
    tab.goto(f"{base}/?{WINDOW}&refresh=1")
    stamp = tab.inner_text("header .meta")
    with tab.expect_navigation(timeout=8000):
        pass
    assert tab.inner_text("header .meta") != stamp or tab.url.endswith("refresh=1")


def test_a_bad_url_shows_a_message(tab: Any, base: str) -> None:
    response = tab.goto(f"{base}/breakdown?dim=colour")
    assert response.status == 400
    assert "unknown dimension" in tab.inner_text(".message")


def test_serve_ui_shows_the_calls_the_receiver_just_stored(tab: Any, tmp_path: Path) -> None:
    """``serve --ui``: spans sent over OTLP/HTTP appear on the pages (figures equal CostStore's), users
    by the operator's labels, and a raw id typed into a filter finds that user's calls."""
    labels = tmp_path / "labels.csv"
    labels.write_text(f"{USERS[0]},Alice (sales)\n{USERS[1]}\n", encoding="utf-8")
    db = tmp_path / "served.duckdb"
    env = {"OTEL_LLM_COST_USER_ID_KEY": KEY}
    with serve_process("--db", str(db), "--ui", "--user-labels", str(labels), env=env) as (_, url, _err):
        ui = url.removesuffix("/v1/traces") + "/ui/"
        send_calls(url, 24)
        wait_until(lambda: stored_calls(db) == 24, timeout_s=60, what="every acknowledged call stored")
        query, start, end = window()
        with CostStore(db) as served:
            summary = served.summary(start, end)
            alice = served.breakdown("model", start, end, {"user": hashed(USERS[0])})
        tab.goto(f"{ui}?{query}")
        assert tab.inner_text("[data-card=spend] .value .money") == money_text(summary.cost_usd)
        assert tab.inner_text("[data-card=calls] .value") == "24"
        tab.goto(f"{ui}breakdown?{query}&dim=user")
        names = tab.eval_on_selector_all(
            "table.breakdown tbody tr td:nth-child(1) a:first-child", "els => els.map(e => e.innerText)"
        )
        assert sorted(names) == sorted(["Alice (sales)", USERS[1], hashed(USERS[2]), hashed(USERS[3])])
        tab.select_option("select[name=dim]", "model")
        tab.fill("input[name=f]", f"user={USERS[0]}")
        tab.click("form.bar button[type=submit]")
        tab.wait_for_load_state()
        shown = tab.eval_on_selector_all(
            "table.breakdown tbody tr td:nth-child(2) [data-value]", "els => els.map(e => e.dataset.value)"
        )
        assert [Decimal(v) for v in shown] == [r.total_cost_usd for r in alice]
        assert tab.inner_text(".chips").startswith("user = Alice (sales)")
