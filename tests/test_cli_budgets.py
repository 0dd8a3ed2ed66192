"""``otel-llm-cost budgets status|check`` and ``otel-llm-cost alerts`` on a real DuckDB file."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from conftest import CallsDB, call
from otel_llm_cost.cli.main import main

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BUDGETS = textwrap.dedent(
    """\
    [[budget]]
    preset = "per_call"
    limit_usd = 1

    [[budget]]
    preset = "per_org_daily"
    limit_usd = 100

    [[budget]]
    name = "weekly-search"
    scope = "feature"
    window = "week"
    limit_usd = 1000
    """
)


@pytest.fixture
def setup(tmp_path: Path, calls_db: CallsDB) -> tuple[str, str]:
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(BUDGETS)
    calls_db.insert(
        call(org_id="org_over", feature="search", cost_usd=100, start_time=AT - timedelta(hours=3)),
        call(org_id="org_half", feature="search", cost_usd="55.5", start_time=AT - timedelta(hours=3)),
        call(org_id="org_half", cost_usd=None, start_time=AT - timedelta(hours=2)),
    )
    return str(budgets), str(calls_db.path)


def test_status_prints_a_row_per_entity_with_a_bar(
    setup: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    budgets, db = setup
    assert main(["budgets", "status", "--budgets", budgets, "--db", db, "--at", AT.isoformat()]) == 0
    out = capsys.readouterr().out
    over = next(line for line in out.splitlines() if "org_over" in line)
    assert "$100.00" in over
    assert "100.00%" in over
    assert "#" * 20 + "!" in over
    half = next(line for line in out.splitlines() if "org_half" in line)
    assert "55.50%" in half
    assert half.split()[-1] == "1"  # unpriced_calls
    assert "##########" in half
    assert "per-call limit $1.00" in out


@pytest.mark.parametrize("fmt", [["--format", "json"], ["--json"]], ids=["format-json", "json-alias"])
def test_status_json(setup: tuple[str, str], capsys: pytest.CaptureFixture[str], fmt: list[str]) -> None:
    budgets, db = setup
    assert (
        main(["budgets", "status", "--budgets", budgets, "--db", db, "--at", "2026-11-20T12:00", *fmt]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    by_entity = {(r["budget"], r["entity"]): r for r in rows}
    assert by_entity["per_org_daily", "org_over"]["over"] is True
    assert by_entity["per_org_daily", "org_half"]["spent_usd"] == "55.500000000000"
    assert by_entity["weekly-search", "search"]["percent"] == "15.55"


def test_check_exits_1_when_anything_is_over(
    setup: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    budgets, db = setup
    assert main(["budgets", "check", "--budgets", budgets, "--db", db, "--at", AT.isoformat()]) == 1
    out = capsys.readouterr().out
    assert "OVER per_org_daily org=org_over: $100.00 of $100.00 (100.00%)" in out
    assert "1 call(s) to unknown models" in out


def test_check_exits_0_when_everything_is_within_limits(
    setup: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    budgets, db = setup
    next_day = (AT + timedelta(days=1)).isoformat()
    assert main(["budgets", "check", "--budgets", budgets, "--db", db, "--at", next_day]) == 0
    assert capsys.readouterr().out.startswith("OK 2 window budget(s)")


def test_check_fire_records_alerts_once_and_alerts_lists_them(
    setup: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    budgets, db = setup
    args = [
        "budgets",
        "check",
        "--budgets",
        budgets,
        "--db",
        db,
        "--at",
        AT.isoformat(),
        "--fire",
        "--webhook",
        "",
    ]
    assert main(args) == 1
    first = capsys.readouterr().out
    assert first.count("ALERT threshold") == 2  # org_over: 100% (50/80% passed with it), org_half: 50%
    assert first.count("ALERT unpriced") == 1
    assert main(args) == 1
    assert "ALERT" not in capsys.readouterr().out  # recorded: never again for this window

    assert main(["alerts", "--db", db, "--format", "json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert len(history) == 5
    assert {(h["entity"], h["kind"], h["threshold"]) for h in history} >= {
        ("org_over", "threshold", "1"),
        ("org_half", "unpriced", "0"),
    }
    assert all(h["window_start"] == "2026-11-20T00:00:00+00:00" for h in history)

    assert main(["alerts", "--db", db, "--kind", "unpriced"]) == 0
    header, rule, *lines = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["fired_at", "kind", "budget", "entity"]
    assert set(rule) <= {"-", " "}
    assert len(lines) == 1
    assert "1 call to unknown models not counted" in lines[0]

    assert main(["alerts", "--db", db, "--format", "csv"]) == 0
    records = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(records) == 5
    assert {r["fired_at"][-6:] for r in records} == {"+00:00"}
    assert {r["window_start"] for r in records} == {"2026-11-20T00:00:00+00:00"}


def test_alerts_on_a_missing_file_is_an_error_not_an_empty_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "typo.duckdb"
    assert main(["alerts", "--db", str(typo)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not typo.exists()


def test_alerts_on_a_file_without_alerts(calls_db: CallsDB, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "--db", str(calls_db.path)]) == 0
    assert capsys.readouterr().out == "no alerts\n"


def test_a_malformed_budgets_file_is_a_clear_error(tmp_path: Path, calls_db: CallsDB) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[budget]]\npreset = "per_org_daily"\nlimit_usd = "lots"\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "otel_llm_cost",
            "budgets",
            "check",
            "--budgets",
            str(bad),
            "--db",
            str(calls_db.path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "line 3: budget #1 ('per_org_daily'): field 'limit_usd'" in result.stderr


def test_times_take_the_report_forms_and_naive_ones_are_read_in_tz(
    setup: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    budgets, db = setup
    check = ["budgets", "check", "--budgets", budgets, "--db", db]
    # 20:00 in Los Angeles on the 20th is 04:00 UTC on the 21st: a new (empty) UTC day for per_org_daily.
    assert main([*check, "--at", "2026-11-20T20:00", "--tz", "America/Los_Angeles"]) == 0
    assert main([*check, "--at", "2026-11-20T20:00", "--tz", "UTC"]) == 1
    capsys.readouterr()

    assert main([*check, "--at", AT.isoformat(), "--fire", "--webhook", ""]) == 1
    capsys.readouterr()
    # Alerts are stamped when they fire (now): an age and `today` select them, a future date does not.
    for since, expected in (("7d", 5), ("today", 5), ("2999-01-01", 0)):
        assert main(["alerts", "--db", db, "--since", since, "--json"]) == 0
        out = capsys.readouterr().out
        assert out.count('"budget"') == expected, since


def test_a_bad_time_is_a_one_line_error(setup: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    budgets, db = setup
    assert main(["budgets", "status", "--budgets", budgets, "--db", db, "--at", "yesterday-ish"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("otel-llm-cost: error: cannot read 'yesterday-ish' as a time")
    assert len(err.splitlines()) == 1


def test_sub_cent_spend_is_not_shown_as_zero(
    tmp_path: Path, calls_db: CallsDB, capsys: pytest.CaptureFixture[str]
) -> None:
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[[budget]]\nname = "tiny"\nscope = "org"\nwindow = "day"\nlimit_usd = "0.004"\n')
    calls_db.insert(call(org_id="o", cost_usd="0.004", start_time=AT))
    args = ["--budgets", str(budgets), "--db", str(calls_db.path), "--at", AT.isoformat()]
    assert main(["budgets", "status", *args]) == 0
    assert "$0.004" in capsys.readouterr().out
    assert main(["budgets", "check", *args]) == 1
    assert "OVER tiny org=o: $0.004 of $0.004 (100.00%)" in capsys.readouterr().out


def test_status_is_a_plain_aligned_table_when_piped(
    setup: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    budgets, db = setup
    assert main(["budgets", "status", "--budgets", budgets, "--db", db, "--at", AT.isoformat()]) == 0
    header, rule, *rest = capsys.readouterr().out.splitlines()
    assert header.split()[:6] == ["budget", "entity", "window_from", "spent_usd", "limit_usd", "percent"]
    assert set(rule) <= {"-", " "}
    assert "\033" not in header
    rows = rest[:3]
    # Right-aligned money: every row's limit ends in the same column as the header's.
    end = header.index("limit_usd") + len("limit_usd")
    assert all(row[end - 1] == "0" and row[end] == " " for row in rows)


def test_status_csv_and_display_zone(setup: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    budgets, db = setup
    args = ["budgets", "status", "--budgets", budgets, "--db", db, "--at", AT.isoformat()]
    assert main([*args, "--format", "csv"]) == 0
    records = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    over = next(r for r in records if r["entity"] == "org_over")
    assert (over["spent_usd"], over["limit_usd"], over["percent"], over["over"]) == (
        "100.000000000000",
        "100",
        "100.00",
        "True",
    )
    assert over["window_start"] == "2026-11-20T00:00:00+00:00"

    # The UTC day starting 2026-11-20 00:00 began at 19:00 the evening before in New York.
    assert main([*args, "--tz", "America/New_York"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "org_over" in x)
    assert "2026-11-19 19:00" in line


def test_a_database_without_our_tables_is_a_one_line_error(
    setup: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    budgets, _db = setup
    foreign = tmp_path / "other.duckdb"
    with contextlib.closing(duckdb.connect(str(foreign))) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER)")
    for command in (["status"], ["check"], ["check", "--fire", "--webhook", ""]):
        assert main(["budgets", *command, "--budgets", budgets, "--db", str(foreign)]) == 2, command
        err = capsys.readouterr().err
        assert err.startswith(f"otel-llm-cost: error: {foreign}: not an otel-llm-cost database"), err
        assert len(err.splitlines()) == 1
    with contextlib.closing(duckdb.connect(str(foreign), read_only=True)) as connection:
        assert connection.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("invoices",)]


def test_check_fire_refuses_a_missing_file_instead_of_creating_it(
    setup: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    budgets, _db = setup
    typo = tmp_path / "typo.duckdb"
    assert main(["budgets", "check", "--fire", "--webhook", "", "--budgets", budgets, "--db", str(typo)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"otel-llm-cost: error: DuckDB file '{typo}' does not exist")
    assert len(err.splitlines()) == 1
    assert not typo.exists()
