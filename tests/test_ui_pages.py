"""Every figure the dashboard's pages show equals what CostStore returns for the same question; bad URL
input gives a 400 page, a query past the deadline a 503 page, and nothing can write.

Served by a real uvicorn on 127.0.0.1 over a file the real processor -> exporter path wrote.
"""

from __future__ import annotations

import csv
import html
import io
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pyarrow.parquet as pq
import pytest

from otel_llm_cost.budgets.model import Budget
from otel_llm_cost.cli.main import main
from otel_llm_cost.enrich import attribution as _attribution
from otel_llm_cost.enrich.attribution import UserIdHasher
from otel_llm_cost.enrich.user_labels import load_user_labels
from otel_llm_cost.query.store import CostStore
from ui_helpers import USER_KEY, WINDOW, PageReader, running_dashboard, write_demo_file

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 16, tzinfo=UTC)
# A lifetime budget has spend whenever the tests run; the monthly one only shows its window's.
BUDGETS = (Budget("org-total", "org", "lifetime", "1.50"), Budget("monthly", "global", "monthly", 1000))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_file(tmp_path_factory.mktemp("ui-pages") / "demo.duckdb")


@pytest.fixture(scope="module")
def base(demo: Path) -> Iterator[str]:
    with running_dashboard(demo, budgets=BUDGETS) as url:
        yield url


@pytest.fixture
def store(demo: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CostStore]:
    monkeypatch.setenv("OTEL_LLM_COST_USER_ID_KEY", USER_KEY)
    with CostStore(demo) as opened:
        yield opened


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers.get("content-type", ""), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("content-type", ""), exc.read()


def page(url: str) -> PageReader:
    status, _, body = get(url)
    assert status == 200, body[:500]
    return PageReader(body.decode())


def dec(value: str | None) -> Decimal | None:
    return None if value in (None, "") else Decimal(value)


def test_overview_cards_equal_the_summary(base: str, store: CostStore) -> None:
    reader = page(f"{base}/?{WINDOW}")
    summary = store.summary(START, END)
    assert dec(reader.cards["spend"]) == summary.cost_usd
    assert int(reader.cards["calls"] or 0) == summary.call_count
    assert int(reader.cards["tokens"] or 0) == summary.total_tokens
    assert dec(reader.cards["savings"]) == summary.cache_saved_usd
    assert int(reader.cards["unpriced"] or 0) == summary.unpriced_calls
    assert summary.unpriced_calls > 0  # the demo has a self-hosted model without a price


def test_overview_chart_bars_are_the_spend_series(base: str, store: CostStore) -> None:
    reader = page(f"{base}/?{WINDOW}&by=feature")
    shown = {(b["data-day"], b["data-key"]): Decimal(b["data-value"]) for b in reader.bars}
    points = store.spend_series("feature", START, END, "UTC", top=6)
    expected = {(p.day.isoformat(), p.key or "(none)"): p.total_cost_usd for p in points if p.total_cost_usd}
    assert shown == expected


def test_overview_movers_equal_the_api(base: str, store: CostStore) -> None:
    reader = page(f"{base}/?from=2026-03-08&to=2026-03-14&tz=UTC&by=model")
    table = reader.table("movers")
    movers = store.movers(
        "model", datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC), limit=8
    )
    assert table.texts(0) == [m.key or "(none)" for m in movers]
    assert [dec(v) for v in table.values(2)] == [m.cost_usd for m in movers]
    assert [dec(v) for v in table.values(1)] == [m.previous_cost_usd for m in movers]


def test_unpriced_spend_is_never_shown_as_zero(base: str) -> None:
    reader = page(f"{base}/breakdown?{WINDOW}&dim=model")
    rows = reader.table("breakdown").rows
    unpriced = [r for r in rows if r[4][1] != "0"]
    assert unpriced
    for row in unpriced:
        if row[1][1] == "":
            assert row[1][0] == "unpriced"
    assert "+" in reader.table("breakdown").foot[1][0]  # the total says how many calls it leaves out


@pytest.mark.parametrize("dimension", ["model", "provider", "feature", "user", "org", "session", "tag:role"])
def test_breakdown_rows_equal_cost_by(base: str, store: CostStore, dimension: str) -> None:
    table = page(f"{base}/breakdown?{WINDOW}&dim={quote(dimension)}").table("breakdown")
    rows = store.cost_by(dimension, START, END)
    # Users, sessions and workflows carry a "details" link to their drill-down page.
    assert [t.removesuffix(" details") for t in table.texts(0)] == [(r.key or "(none)") for r in rows][:500]
    assert [dec(v) for v in table.values(1)] == [r.total_cost_usd for r in rows][:500]
    assert [int(v or 0) for v in table.values(3)] == [r.call_count for r in rows][:500]
    assert [int(v or 0) for v in table.values(5)] == [r.total_tokens for r in rows][:500]
    known = sum((r.total_cost_usd for r in rows if r.total_cost_usd is not None), Decimal(0))
    assert dec(table.foot[1][1]) == known


def test_breakdown_filters_and_a_raw_user_id_is_hashed(base: str, store: CostStore) -> None:
    model = store.cost_by("model", START, END)[0].key
    assert model is not None
    table = page(f"{base}/breakdown?{WINDOW}&dim=feature&f=model={quote(model)}").table("breakdown")
    rows = store.breakdown("feature", START, END, {"model": model})
    assert [dec(v) for v in table.values(1)] == [r.total_cost_usd for r in rows]
    # The demo's raw ids are u-ana, u-ben...; the page hashes the typed id with the installation's key.
    raw = "u-ana"
    hashed = UserIdHasher(key=USER_KEY.encode()).hash(raw)
    table = page(f"{base}/breakdown?{WINDOW}&dim=model&f=user={raw}").table("breakdown")
    rows = store.breakdown("model", START, END, {"user": hashed})
    assert len(rows) > 0
    assert [dec(v) for v in table.values(1)] == [r.total_cost_usd for r in rows]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_downloads_hold_exactly_the_rows_shown(base: str, store: CostStore, kind: str) -> None:
    status, media, body = get(f"{base}/breakdown.{kind}?{WINDOW}&dim=feature")
    assert status == 200
    rows = store.breakdown("feature", START, END)
    if kind == "csv":
        assert media.startswith("text/csv")
        records = list(csv.DictReader(io.StringIO(body.decode())))
        assert [r["key"] for r in records] == [r.key or "" for r in rows]
        assert [dec(r["total_cost_usd"]) for r in records] == [r.total_cost_usd for r in rows]
        assert [int(r["call_count"]) for r in records] == [r.call_count for r in rows]
    else:
        table = pq.read_table(io.BytesIO(body))
        assert table.to_pylist() == rows.arrow().to_pylist()


def test_drill_down_pages_match_the_api(base: str, store: CostStore) -> None:
    workflow = next(r.key for r in store.cost_by("workflow") if r.key)
    steps = store.steps_for_workflow(workflow)
    reader = page(f"{base}/workflow/{workflow}?{WINDOW}")
    assert [dec(v) for v in reader.table("calls").values(7)] == [s.cost_usd for s in steps]
    session = next(r.key for r in store.cost_by("session") if r.key)
    reader = page(f"{base}/session/{session}?{WINDOW}")
    calls = store.calls(filters={"session": session})
    assert [r[8][0] for r in reader.table("calls").rows] == [c.span_id for c in calls]
    assert dec(reader.cards["cost"]) == store.session_summary(session).totals.cost_usd
    user = store.cost_by("user", START, END)[0].key
    assert user is not None
    reader = page(f"{base}/user/{user}?{WINDOW}")
    days = store.daily_cost_where(START, END, "UTC", {"user": user})
    assert [dec(v) for v in reader.table("days").values(1)] == [d.total_cost_usd for d in days]


def test_call_page_shows_parts_source_and_ids(base: str, store: CostStore) -> None:
    call = store.top_calls(1, START, END)[0]
    detail = store.call_detail(call.span_id)
    assert detail is not None
    _status, _, body = get(f"{base}/call/{call.span_id}?{WINDOW}")
    text = body.decode()
    reader = PageReader(text)
    parts = reader.table("cost-parts")
    assert [dec(v) for v in parts.values(1)] == [
        detail.input_cost_usd,
        detail.cache_read_cost_usd,
        detail.cache_write_cost_usd,
        detail.output_cost_usd,
        detail.request_cost_usd,
    ]
    assert dec(parts.foot[1][1]) == detail.cost_usd
    assert call.trace_id in text
    assert str(detail.price_source) in html.unescape(text)
    unpriced = store.calls(START, END, filters={"model": "acme-coder-2-ft"}, limit=1)[0]
    text = html.unescape(get(f"{base}/call/{unpriced.span_id}")[2].decode())
    assert "unpriced" in text
    assert str(unpriced.cost_reason) in text


def test_budgets_page_shows_each_status(base: str, store: CostStore) -> None:
    reader = page(f"{base}/budgets")
    statuses = store.check_budgets(BUDGETS)
    table = reader.table("budgets")
    assert [(r[0][0], r[1][0]) for r in table.rows] == [(s.budget.name, s.entity) for s in statuses]
    assert [dec(v) for v in table.values(3)] == [s.spent_usd for s in statuses]


def test_prices_page_prices_a_usage_with_its_layer(base: str, pricebook: object) -> None:
    text = get(f"{base}/prices?model=gpt-4o&input=1000000&output=1000000&at=2026-03-01")[2].decode()
    reader = PageReader(text)
    total = dec(reader.table("quote").foot[1][1])
    assert total is not None
    assert total > 0
    assert "genai-prices" in text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("/breakdown?dim=colour", "unknown dimension"),
        ("/?from=2026-13-01", "is not a date"),
        ("/?from=2016-01-01&to=2026-01-01", "too long"),
        ("/?from=2026-03-10&to=2026-03-01", "empty window"),
        ("/?tz=Mars/Olympus", "unknown time zone"),
        ("/breakdown?f=nonsense", "dimension=value"),
        ("/?refresh=-5", "refresh"),
        ("/call/%3Cscript%3E", "not a valid id"),
        ("/workflow/no-such-workflow", "no calls recorded"),
        ("/prices?model=gpt-4o&input=lots", "whole number"),
    ],
)
def test_bad_url_input_gives_a_clear_400_page(base: str, query: str, message: str) -> None:
    status, media, body = get(base + query)
    assert status == 400
    assert media.startswith("text/html")
    text = body.decode()
    assert message in text
    assert "Traceback" not in text
    assert "<script>" not in text.split("</head>")[1]


def test_no_route_writes(base: str) -> None:
    for method in ("POST", "PUT", "DELETE"):
        request = urllib.request.Request(f"{base}/breakdown", method=method, data=b"x")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        caught.value.close()
        assert caught.value.code == 405


def test_a_page_past_its_deadline_is_cut_off_with_a_message(demo: Path) -> None:
    with running_dashboard(demo, timeout_s=0.000001) as url:
        status, _, body = get(f"{url}/breakdown?{WINDOW}&dim=session")
    assert status == 503
    assert "took longer than" in body.decode()


def test_static_assets_are_served_from_the_package(base: str) -> None:
    status, _media, body = get(f"{base}/static/dashboard.js")
    assert status == 200
    assert "sortBy" in body.decode()
    assert "http" not in get(f"{base}/static/dashboard.css")[2].decode()  # nothing fetched from a CDN


def test_html_report_is_one_self_contained_file(
    demo: Path, store: CostStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["report", "--db", str(demo), "--format", "html", "--since", "2026-03-01", "--until", "2026-03-16"]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert text.startswith("<!doctype html>")
    assert 'rel="stylesheet"' not in text
    assert "<script src" not in text
    assert "http://" not in text.split("<body")[0]
    reader = PageReader(text)
    assert dec(reader.cards["spend"]) == store.summary(START, END).cost_usd
    by_model = next(t for t in reader.tables if "breakdown" in t.cls and t.rows and t.rows[0])
    assert [dec(v) for v in by_model.values(1)] == [
        r.total_cost_usd for r in store.cost_by("model", START, END)
    ]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (["--since", "2026-03-01T12:00"], "whole days in UTC: give --since as a date"),
        (["--since", "2024-01-01", "--until", "2026-03-16"], "at most 400 days"),
    ],
)
def test_html_report_refuses_a_window_it_would_not_report_exactly(
    demo: Path, window: list[str], message: str
) -> None:
    """The HTML report covers whole days and at most 400 of them: another window is an error, never a
    page whose totals differ from the text report's without saying so."""
    result = subprocess.run(
        [sys.executable, "-m", "otel_llm_cost", "report", "--db", str(demo), "--format", "html", *window],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert not result.stdout


def test_ui_command_prints_its_url_and_serves_the_pages(demo: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_llm_cost", "ui", "--db", str(demo)], stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, line
        status, _, body = get(f"{found.group(0)}?{WINDOW}")
        assert status == 200
        assert b"Total spend" in body
    finally:
        process.terminate()
        process.wait(20)
        if process.stderr is not None:
            process.stderr.close()


def test_ui_command_on_a_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--db", str(tmp_path / "none.duckdb")]) == 2
    assert "no DuckDB file" in capsys.readouterr().err


def test_html_report_honours_where_and_user_like_the_other_formats(
    demo: Path,
    store: CostStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every figure of the HTML report under --where and --user equals CostStore's for the same
    filtered window, and the operator's label names the user."""
    monkeypatch.setattr(_attribution, "_default_hasher", None)  # hash with USER_KEY (set by `store`)
    start, end = datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 12, tzinfo=UTC)
    user = UserIdHasher(key=USER_KEY.encode()).hash("u-ana")
    feature = store.cost_by("feature", start, end, where={"user": user})[0].key
    assert feature is not None
    where = {"feature": feature, "user": user}
    labels = tmp_path / "labels.csv"
    labels.write_text("u-ana,Ana (support)\n", encoding="utf-8")
    argv = ["report", "--db", str(demo), "--format", "html", "--since", "2026-03-05", "--until", "2026-03-12"]
    argv += ["--where", f"feature={feature}", "--user", "u-ana", "--user-labels", str(labels)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    reader = PageReader(text)
    summary = store.summary(start, end, where=where)
    assert 0 < summary.call_count < store.summary(start, end).call_count
    assert dec(reader.cards["spend"]) == summary.cost_usd
    assert int(reader.cards["calls"] or 0) == summary.call_count
    assert int(reader.cards["tokens"] or 0) == summary.total_tokens
    sections = [t for t in reader.tables if "breakdown" in t.cls.split()]
    # The report's default dimensions, in the order the other formats print them.
    for dimension, shown in zip(("model", "provider", "feature", "user", "org"), sections, strict=True):
        rows = store.cost_by(dimension, start, end, where=where)
        assert [dec(v) for v in shown.values(1)] == [r.total_cost_usd for r in rows], dimension
        assert [int(v or 0) for v in shown.values(3)] == [r.call_count for r in rows], dimension
    assert sections[3].texts(0) == ["Ana (support)"]
    assert "Only calls where feature = " in text
    assert "u-ana" not in text  # the raw id typed on the command line is not in the file


def test_ui_command_shows_users_by_the_operators_labels(demo: Path, store: CostStore, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    ben = UserIdHasher(key=USER_KEY.encode()).hash("u-ben")
    labels.write_text(f"u-ana,Ana (support)\nu-chloe\n{ben},Ben\n", encoding="utf-8")
    env = {**os.environ, "OTEL_LLM_COST_USER_ID_KEY": USER_KEY}
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_llm_cost", "ui", "--db", str(demo), "--user-labels", str(labels)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", process.stderr.readline())
        assert found
        table = page(f"{found.group(0)}breakdown?{WINDOW}&dim=user").table("breakdown")
    finally:
        process.terminate()
        process.wait(20)
        if process.stderr is not None:
            process.stderr.close()
    rows = store.cost_by("user", START, END)
    hash_of = UserIdHasher(key=USER_KEY.encode()).hash
    names = {hash_of("u-ana"): "Ana (support)", hash_of("u-chloe"): "u-chloe", ben: "Ben"}
    shown = [t.removesuffix(" details") for t in table.texts(0)]
    assert shown == [names.get(r.key or "", r.key) for r in rows]
    assert {"Ana (support)", "u-chloe", "Ben"} <= set(shown)
    assert [dec(v) for v in table.values(1)] == [r.total_cost_usd for r in rows]


def test_a_bad_labels_row_is_reported_by_its_line_without_its_content(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    hashed = UserIdHasher(key=USER_KEY.encode()).hash("secret-user")
    labels.write_text(f"u-ana,Ana\n{hashed}\n", encoding="utf-8")  # a hash alone names nobody
    with pytest.raises(ValueError, match=r"line 2: expected user,label") as caught:
        load_user_labels(str(labels))
    assert hashed not in str(caught.value)
