"""The report subcommands through otel_llm_cost.cli.main, and once through a real `python -m` process."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest

from conftest import BASE_TIME, CallsDB, call
from otel_llm_cost.cli.main import main
from otel_llm_cost.cli.reports import parse_when


@pytest.fixture
def db(calls_db: CallsDB) -> Path:
    calls_db.insert(
        call(
            feature="search",
            org_id="o1",
            cost_usd="1.25",
            workflow_id="wf-1",
            step="extract",
            session_id="s-1",
        ),
        call(
            feature="search",
            org_id="o1",
            cost_usd="0.25",
            workflow_id="wf-1",
            step="answer",
            session_id="s-1",
            start_time=BASE_TIME + timedelta(seconds=5),
        ),
        call(
            feature="chat",
            org_id="o2",
            cost_usd=None,
            request_model="mystery",
            start_time=BASE_TIME + timedelta(days=2),
        ),
        call(feature="chat", cost_usd="9", billable=False),
    )
    return calls_db.path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_report_table_has_totals_groups_and_daily_trend(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "report", "--db", str(db), "--until", "2025-01-18")
    assert code == 0, err
    assert "Total      $1.50 (+1 unpriced) over 3 calls" in out
    for section in ("By model", "By provider", "By feature", "By user", "By org", "Daily (UTC)"):
        assert section in out
    assert re.search(r"^mystery\s+unpriced\s+1\s+1,200\s+1$", out, re.MULTILINE)
    assert re.search(r"^2025-01-15\s+\$1\.50\s+2$", out, re.MULTILINE)
    assert re.search(r"^2025-01-16\s+\$0\.00\s+0$", out, re.MULTILINE)
    assert "\033[" not in out  # plain when not a terminal


def test_report_json_keeps_money_exact(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "report",
        "--db",
        str(db),
        "--format",
        "json",
        "--by",
        "feature",
        "--since",
        "2025-01-15",
        "--until",
        "2025-01-18",
        "--tz",
        "Europe/Berlin",
    )
    assert code == 0
    data = json.loads(out)
    assert data["summary"]["cost_usd"] == "1.500000000000"
    assert data["by"]["feature"][0] == {
        "key": "search",
        "total_cost_usd": "1.500000000000",
        "total_tokens": 2400,
        "call_count": 2,
        "unpriced_calls": 0,
        "input_tokens": 2000,
        "output_tokens": 400,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "provider": None,
        "cache_hit_rate": 0.0,
    }
    assert [d["day"] for d in data["daily"]] == ["2025-01-15", "2025-01-16", "2025-01-17"]


def test_report_csv_is_one_table_with_a_section_column(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", "--db", str(db), "--format", "csv", "--by", "org")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["section"] == "total"
    assert {(r["key"], r["total_cost_usd"]) for r in rows if r["section"] == "org"} == {
        ("o1", "1.500000000000"),
        ("o2", ""),
    }


def test_workflow_session_top_and_query(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "workflow", "wf-1", "--db", str(db))
    assert code == 0
    assert "cost       $1.50" in out
    assert out.index("extract") < out.index("answer")
    code, out, _ = run(capsys, "session", "s-1", "--db", str(db), "--style", "compact")
    assert (code, out.strip()) == (
        0,
        "session s-1: $1.50, 2 calls, 2,400 tokens, 5.8s, $0.75/call, $0.63/1k tokens",
    )
    code, out, _ = run(capsys, "top", "-n", "1", "--db", str(db), "--format", "json")
    assert json.loads(out)[0]["cost_usd"] == "1.250000000000"
    code, out, _ = run(
        capsys,
        "query",
        "SELECT count(*) AS n FROM llm_calls WHERE feature = ?",
        "--param",
        "chat",
        "--db",
        str(db),
        "--format",
        "csv",
    )
    assert out.splitlines() == ["n", "2"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_export_writes_billable_calls_with_copy(
    db: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / f"out.{fmt}"
    code, _, err = run(
        capsys, "export", "--db", str(db), "--format", fmt, "--output", str(target), "--until", "2025-01-16"
    )
    assert code == 0
    assert "exported 2 calls" in err
    if fmt == "parquet":
        table = pq.read_table(target)
        assert table.num_rows == 2
        assert str(table.schema.field("cost_usd").type) == "decimal128(18, 12)"
    elif fmt == "csv":
        assert len(list(csv.DictReader(io.StringIO(target.read_text())))) == 2
    else:
        assert len(json.loads(target.read_text())) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--db", "{missing}"], "no DuckDB file at"),
        (["report", "--db", "{db}", "--since", "last tuesday"], "cannot read 'last tuesday' as a time"),
        (["report", "--db", "{db}", "--by", "colour"], "unknown dimension 'colour'"),
        (["report", "--db", "{db}", "--tz", "Mars/Base"], "unknown time zone"),
        (["report", "--db", "{db}", "--since", "2025-02-01", "--until", "2025-01-01"], "empty window"),
        (["workflow", "nope", "--db", "{db}"], "no billable calls recorded for workflow 'nope'"),
        (["query", "DROP TABLE llm_calls", "--db", "{db}"], "query failed"),
        (["savings", "--db", "{db}", "--what-if", "gpt-4o"], "FROM_MODEL:TO_MODEL"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    missing = tmp_path / "missing.duckdb"
    args = [a.format(db=db, missing=missing) for a in argv]
    code, _, err = run(capsys, *args)
    assert code != 0
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not missing.exists()  # reporting never creates a database


def test_savings_and_reprice_commands(
    calls_db: CallsDB, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls_db.insert(
        call(
            request_model="claude-sonnet-4-5",
            provider="anthropic",
            cost_usd="0.03",
            attributes='{"prompt.could_use_haiku": true}',
        ),
        call(request_model="acme-coder-2-ft", provider=None, cost_usd=None),
    )
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."acme-coder-2-ft"]\ninput = 1\noutput = 2\n')
    code, out, _ = run(
        capsys,
        "savings",
        "--db",
        str(calls_db.path),
        "--what-if",
        "claude-sonnet-4-5:claude-3-5-haiku-latest",
    )
    assert code == 0
    assert "calls      1, costing $0.03" in out
    assert "same calls on claude-3-5-haiku-latest" in out
    code, out, _ = run(
        capsys, "reprice", "--db", str(calls_db.path), "--prices", str(prices), "--format", "json"
    )
    assert json.loads(out)["rows_newly_priced"] == 1
    code, out, _ = run(capsys, "reprice", "--db", str(calls_db.path), "--prices", str(prices))
    assert "changed 0 rows" in out


def test_parse_when_forms() -> None:
    now = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_when("7d", berlin, now=now) == now - timedelta(days=7)
    assert parse_when("2025-03-01", berlin, now=now) == datetime(2025, 3, 1, tzinfo=berlin)
    assert parse_when("2025-03-01T09:00", berlin, now=now) == datetime(2025, 3, 1, 9, tzinfo=berlin)
    assert parse_when("2025-03-01T09:00Z", berlin, now=now) == datetime(2025, 3, 1, 9, tzinfo=UTC)
    assert parse_when("today", berlin, now=now) == datetime(2025, 3, 10, tzinfo=berlin)


@pytest.mark.slow
def test_python_dash_m_runs_the_report(db: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otel_llm_cost", "report", "--db", str(db), "--by", "feature"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "By feature" in result.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "otel_llm_cost", "top", "--db", str(db.parent / "none.duckdb")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("otel-llm-cost: error: no DuckDB file")
