"""The dashboard inside the receiver (``otel-llm-cost serve --ui``): the pages show the calls the
receiver just stored (figures equal to CostStore's), users by the operator's labels, nothing can
write through them, and the receiver keeps acknowledging spans while a page waits for the file.

Real ``serve`` processes, spans sent by the SDK's OTLP/HTTP exporter, pages fetched over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from helpers import wait_until
from otel_llm_cost.cli.main import main
from otel_llm_cost.collector.dashboard import DashboardOptions, mount_dashboard, open_dashboard_store
from otel_llm_cost.collector.receiver import OTLPReceiver
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.attribution import UserIdHasher
from otel_llm_cost.exceptions import OtelLLMCostError
from otel_llm_cost.query.store import CostStore
from otel_llm_cost.storage.exporter import DuckDBSpanExporter
from test_collector import protobuf_body, request
from test_collector_pipeline import LLM_ATTRIBUTES, StderrReader, serve_process
from test_exporter import make_span
from ui_helpers import PageReader

pytestmark = pytest.mark.slow

KEY = "serve-ui-tests-user-id-key-0123"
USERS = ("alice@example.com", "bob@example.com", "carol@example.com", "dan@example.com")
FEATURES = ("search", "chat", "summarise")
CALLS = 36


def hashed(raw: str) -> str:
    return UserIdHasher(key=KEY.encode()).hash(raw)


def window() -> tuple[str, datetime, datetime]:
    """Yesterday to tomorrow in UTC: the URL query and the same half-open window for CostStore."""
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=1), today + timedelta(days=1)
    start = datetime.combine(first, dt_time(), UTC)
    return f"from={first}&to={last}&tz=UTC", start, datetime.combine(last + timedelta(days=1), dt_time(), UTC)


def send_calls(url: str, count: int, *, first: int = 0) -> None:
    """LLM spans with features and raw user ids, through the SDK's OTLP exporter; all acknowledged."""
    provider = TracerProvider(resource=Resource({"service.name": "api"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    for i in range(first, first + count):
        attributes = {
            **LLM_ATTRIBUTES,
            sc.GEN_AI_RESPONSE_ID: f"r-{i}",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 1000 + i,
            sc.COST_FEATURE: FEATURES[i % len(FEATURES)],
            sc.COST_USER_ID: USERS[i % len(USERS)],
        }
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes=attributes):
            pass
    provider.shutdown()


def stored_calls(db: Path) -> int:
    with CostStore(db) as store:
        return store.summary().call_count


def get(url: str, method: str = "GET") -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def page(url: str) -> PageReader:
    status, body = get(url)
    assert status == 200, body[:500]
    return PageReader(body.decode())


def dec(value: str | None) -> Decimal | None:
    return None if value in (None, "") else Decimal(value)


@dataclass
class Served:
    db: Path
    traces: str
    ui: str
    stderr: StderrReader


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``serve --ui`` with user labels: one raw id with a label, one raw id alone, one hash with a label."""
    root = tmp_path_factory.mktemp("serve-ui")
    labels = root / "labels.csv"
    labels.write_text(
        f"user,label\n{USERS[0]},Alice (sales)\n{USERS[1]}\n{hashed(USERS[2])},Carol\n", encoding="utf-8"
    )
    db = root / "served.duckdb"
    env = {"OTEL_LLM_COST_USER_ID_KEY": KEY}
    with serve_process("--db", str(db), "--ui", "--user-labels", str(labels), env=env) as (_, url, stderr):
        ui = url.removesuffix("/v1/traces") + "/ui/"
        assert f"dashboard on {ui} (read-only)" in stderr.text(timeout_s=0)
        send_calls(url, CALLS)
        wait_until(lambda: stored_calls(db) == CALLS, timeout_s=60, what="every acknowledged call stored")
        yield Served(db, url, ui, stderr)


def test_pages_show_the_calls_the_receiver_just_stored(served: Served) -> None:
    query, start, end = window()
    with CostStore(served.db) as store:
        summary = store.summary(start, end)
        by_feature = store.cost_by("feature", start, end)
    assert summary.call_count == CALLS
    cards = page(f"{served.ui}?{query}").cards
    assert dec(cards["spend"]) == summary.cost_usd
    assert int(cards["calls"] or 0) == CALLS
    assert int(cards["tokens"] or 0) == summary.total_tokens
    table = page(f"{served.ui}breakdown?{query}&dim=feature").table("breakdown")
    assert table.texts(0) == [r.key for r in by_feature]
    assert [dec(v) for v in table.values(1)] == [r.total_cost_usd for r in by_feature]
    assert [int(v or 0) for v in table.values(3)] == [r.call_count for r in by_feature]

    # More calls arrive while the dashboard is open: the next load shows them.
    send_calls(served.traces, 6, first=CALLS)
    wait_until(lambda: stored_calls(served.db) == CALLS + 6, timeout_s=60, what="the new calls stored")
    assert int(page(f"{served.ui}?{query}").cards["calls"] or 0) == CALLS + 6


def test_users_show_by_the_operators_labels_and_are_stored_as_hashes(served: Served) -> None:
    query, start, end = window()
    with CostStore(served.db) as store:
        by_user = store.cost_by("user", start, end)
        stored_ids = {r["user_id"] for r in store.sql("SELECT DISTINCT user_id FROM llm_calls")}
    assert stored_ids == {hashed(u) for u in USERS}  # the ledger holds hashes only
    names = {hashed(USERS[0]): "Alice (sales)", hashed(USERS[1]): USERS[1], hashed(USERS[2]): "Carol"}
    status, body = get(f"{served.ui}breakdown?{query}&dim=user")
    assert status == 200
    text = body.decode()
    table = PageReader(text).table("breakdown")
    # Labelled users by their label; the one the file does not name stays a hash.
    expected = [names.get(r.key or "", r.key) for r in by_user]
    assert [t.removesuffix(" details") for t in table.texts(0)] == expected
    assert hashed(USERS[3]) in expected
    assert [dec(v) for v in table.values(1)] == [r.total_cost_usd for r in by_user]
    assert USERS[3] not in text  # a raw id the operator did not supply is nowhere
    # A user's own page is titled by the label; a download keeps the stored hashes.
    status, body = get(f"{served.ui}user/{quote(hashed(USERS[0]))}?{query}")
    assert "<h1>User Alice (sales)</h1>" in body.decode()
    status, body = get(f"{served.ui}breakdown.csv?{query}&dim=user")
    keys = [row["key"] for row in csv.DictReader(io.StringIO(body.decode()))]
    assert sorted(keys) == sorted(hashed(u) for u in USERS)
    # Raw ids were neither logged by the receiver nor written into the file.
    assert not any(user in served.stderr.text(timeout_s=0) for user in USERS)
    written = [p for p in served.db.parent.rglob("*") if p.is_file() and p.name != "labels.csv"]
    assert served.db in written
    assert not any(user.encode() in path.read_bytes() for path in written for user in USERS)


def test_nothing_can_write_through_the_dashboard(served: Served) -> None:
    query, _, _ = window()

    def fingerprint() -> tuple[Any, ...]:
        with CostStore(served.db) as store:
            tables = store.sql("SELECT table_name, estimated_size FROM duckdb_tables() ORDER BY 1")
            calls = store.sql("SELECT count(*) AS n, sum(cost_usd) AS cost FROM llm_calls")
            return tuple(map(tuple, (r.values() for r in tables))), tuple(calls[0].values())

    before = fingerprint()
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert get(f"{served.ui}breakdown?{query}", method)[0] == 405
    attempts = [
        f"breakdown?{query}&dim=feature&f=" + quote("feature=x'; DELETE FROM llm_calls; --"),
        f"breakdown?{query}&dim=" + quote("model; DROP TABLE llm_calls"),
        "call/" + quote("x'); DELETE FROM llm_calls; --", safe=""),
        "session/" + quote("s' OR 1=1; UPDATE llm_calls SET cost_usd = 0; --", safe=""),
        f"breakdown.csv?{query}&dim=" + quote("tag:x') FROM llm_calls; COPY llm_calls TO '/tmp/x.csv'; --"),
    ]
    for attempt in attempts:
        status, body = get(served.ui + attempt)
        assert status in (200, 400), body[:300]
        assert b"Traceback" not in body
    assert fingerprint() == before


def test_the_dashboard_store_refuses_every_write_while_the_exporter_keeps_writing(tmp_path: Path) -> None:
    """In one process, as in ``serve --ui``: the exporter writes the file, the pages' store reads it."""
    db = tmp_path / "calls.duckdb"
    exporter = DuckDBSpanExporter(db)
    exporter.export([make_span(), make_span()])
    store = open_dashboard_store(db, timeout_s=10)
    try:
        assert store.summary().call_count == 2
        for statement in (
            "DELETE FROM llm_calls",
            "UPDATE llm_calls SET cost_usd = 0",
            "INSERT INTO llm_calls SELECT * FROM llm_calls",
            "CREATE TABLE stolen AS SELECT * FROM llm_calls",
            "DROP TABLE llm_calls",
            f"COPY llm_calls TO '{tmp_path / 'out.csv'}'",
            f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
        ):
            with pytest.raises((OtelLLMCostError, duckdb.Error)):
                store.sql(statement)
        # The exporter of the same process still commits between the store's queries.
        exporter.export([make_span()])
        assert exporter.force_flush()
        assert store.summary().call_count == 3
    finally:
        store.close()
        exporter.shutdown()
    assert not (tmp_path / "out.csv").exists()


def test_a_fresh_file_is_created_so_the_pages_open_before_the_first_span(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    with open_dashboard_store(db, timeout_s=10) as store:
        assert store.summary().call_count == 0


@contextlib.contextmanager
def another_process_holding(path: Path) -> Iterator[None]:
    """A process that holds ``path`` read-write (no other process can open it, not even read-only)."""
    script = "import sys, duckdb\nc = duckdb.connect(sys.argv[1])\nprint('held', flush=True)\ninput()"
    with subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        try:
            yield
        finally:
            holder.communicate("\n", timeout=30)


def _asgi_get(app: Any, path: str, client: tuple[str, int]) -> int:
    """One GET through the receiver's ASGI application, as uvicorn would send it from ``client``."""
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"receiver")],
        "client": client,
        "server": ("192.0.2.1", 4318),
    }
    asyncio.run(app(scope, receive, send))
    return int(messages[0]["status"])


def test_the_pages_answer_loopback_clients_only(tmp_path: Path) -> None:
    """The pages have no authentication: a receiver exposed with a token does not expose them."""
    db = tmp_path / "calls.duckdb"
    receiver = OTLPReceiver(BatchSpanProcessor(InMemorySpanExporter()), host="0.0.0.0", port=0, token="t")  # noqa: S104 - never started
    store = mount_dashboard(receiver.app, db, DashboardOptions())
    try:
        assert _asgi_get(receiver.app, "/ui/prices", ("127.0.0.1", 50000)) == 200
        assert _asgi_get(receiver.app, "/ui/prices", ("192.0.2.7", 50000)) == 403
        assert _asgi_get(receiver.app, "/", ("127.0.0.1", 50000)) == 307
    finally:
        store.close()


def test_bad_dashboard_options_raise_value_error() -> None:
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        DashboardOptions(timeout_s=0)


def test_the_receiver_acknowledges_while_a_page_waits_for_the_file_and_the_page_is_cut_off(
    tmp_path: Path,
) -> None:
    """Another process holds the file: a page waits for it, at most --ui-timeout, and answers 503 with
    a message; meanwhile the receiver keeps acknowledging spans, and stores them once the file is free."""
    db = tmp_path / "served.duckdb"
    query, _, _ = window()
    with serve_process("--db", str(db), "--ui", "--ui-timeout", "4") as (_, url, _stderr):
        ui = url.removesuffix("/v1/traces") + "/ui/"
        send_calls(url, 3)
        wait_until(lambda: stored_calls(db) == 3, timeout_s=60, what="the first calls stored")
        answered: dict[str, Any] = {}

        def load() -> None:
            answered["reply"] = get(f"{ui}breakdown?{query}&dim=feature")
            answered["at"] = time.monotonic()

        with another_process_holding(db):
            loading = threading.Thread(target=load)
            loading.start()
            reply = request(url, protobuf_body([make_span(LLM_ATTRIBUTES)]))
            acknowledged = time.monotonic()
            loading.join(60)
        assert reply.status == 200
        status, body = answered["reply"]
        assert status == 503, body[:300]
        assert b"Traceback" not in body
        assert b'class="message"' in body
        # The file was held until the page answered, so only its deadline could end it (the 503);
        # the acknowledgement came while the page was still waiting.
        assert acknowledged < answered["at"]
        wait_until(lambda: stored_calls(db) == 4, timeout_s=60, what="the span acknowledged meanwhile stored")
        assert get(f"{ui}?{query}")[0] == 200


def test_serve_ui_without_ui_serves_no_pages(tmp_path: Path) -> None:
    with serve_process("--db", str(tmp_path / "plain.duckdb")) as (_, url, _stderr):
        base = url.removesuffix("/v1/traces")
        assert get(f"{base}/ui/")[0] == 404
        assert get(f"{base}/")[0] == 404


def test_a_page_past_the_deadline_in_the_receiver_is_cut_off_and_spans_still_acknowledged(
    tmp_path: Path,
) -> None:
    """The page's deadline interrupts its running query in the receiver's process too."""
    db = tmp_path / "served.duckdb"
    query, _, _ = window()
    with serve_process("--db", str(db), "--ui", "--ui-timeout", "0.000001") as (_, url, _stderr):
        ui = url.removesuffix("/v1/traces") + "/ui/"
        status, body = get(f"{ui}breakdown?{query}&dim=session")
        assert status == 503, body[:300]
        assert b"took longer than" in body
        assert request(url, protobuf_body([make_span(LLM_ATTRIBUTES)])).status == 200
        wait_until(lambda: stored_calls(db) == 1, timeout_s=60, what="the span stored")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--user-labels", "labels.csv"], "it needs --ui"),
        (["--ui", "--ui-timeout", "0"], "timeout_s must be positive"),
    ],
)
def test_serve_refuses_dashboard_flags_that_cannot_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    db = tmp_path / "never.duckdb"
    assert main(["serve", "--port", "0", "--db", str(db), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not db.exists()
