"""What the CLI prints for people and programs, through a real ``python -m otel_llm_cost`` process:
one money format per output, plain JSON decimals, filters, raw user ids, terminal width."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import CallsDB, call
from otel_llm_cost import UserIdHasher
from otel_llm_cost.query.output import plain_decimal, usd_places

pytestmark = pytest.mark.slow  # each test starts the CLI in a new process


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_llm_cost", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def db(calls_db: CallsDB) -> Path:
    calls_db.insert(
        call(feature="acme", cost_usd="0.009852", org_id="o1", user_id="h:" + "a" * 32),
        call(feature="beta", cost_usd="0.004926", org_id="o2", tags={"team": "growth"}),
        call(feature="beta", cost_usd="0", org_id="o2"),
    )
    return calls_db.path


def test_usd_places_shows_every_amount_with_two_significant_digits_at_most_six_places() -> None:
    assert usd_places([Decimal("3.36"), Decimal("0.000026")]) == 6
    assert usd_places([Decimal("0.014778"), Decimal("0.009852")]) == 4
    assert usd_places([Decimal("0.08"), Decimal("0.02")]) == 2
    assert usd_places([Decimal("120"), Decimal(0), None]) == 2
    assert usd_places([Decimal("0.0000000001")]) == 6


def test_json_decimals_are_plain_with_the_stored_scale() -> None:
    assert plain_decimal(Decimal("0E-12")) == "0.000000000000"
    assert plain_decimal(Decimal("0.002161971671232323232323232323")) == "0.002161971671"
    assert plain_decimal(Decimal("0.8")) == "0.8"


def test_report_uses_one_money_format_so_parts_and_total_agree(db: Path) -> None:
    result = cli("report", "--db", str(db), "--by", "feature")
    assert result.returncode == 0, result.stderr
    amounts = re.findall(r"\$([\d,]+\.(\d+))", result.stdout)
    assert {len(places) for _, places in amounts} == {4}
    assert "Total      $0.0148 over 3 calls" in result.stdout
    assert re.search(r"acme\s+\$0\.0099\s+66\.7%", result.stdout)


def test_report_json_has_no_exponent_money(db: Path) -> None:
    result = cli("report", "--db", str(db), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "E-" not in result.stdout
    summary = json.loads(result.stdout)["summary"]
    assert summary["cost_usd"] == "0.014778000000"
    assert re.fullmatch(r"\d+\.\d{12}", summary["cost_per_1k_tokens_usd"])


@pytest.fixture
def users_db(calls_db: CallsDB) -> Path:
    hasher = UserIdHasher(key=b"k" * 16)
    calls_db.insert(
        call(feature="search", cost_usd="0.25", user_id=hasher.hash("alice@example.com")),
        call(feature="chat", cost_usd="0.75", user_id=hasher.hash("bob@example.com"), tags={"team": "core"}),
    )
    return calls_db.path


KEYED = {"OTEL_LLM_COST_USER_ID_KEY": "k" * 16}


def test_where_filters_report_top_and_export(users_db: Path, tmp_path: Path) -> None:
    report = cli("report", "--db", str(users_db), "--by", "feature", "--where", "tag:team=core")
    assert report.returncode == 0, report.stderr
    assert "where tag:team=core" in report.stdout
    assert "Total      $0.75 over 1 calls" in report.stdout
    assert "search" not in report.stdout
    top = cli("top", "--db", str(users_db), "--where", "feature=search", "--format", "json")
    assert [c["feature"] for c in json.loads(top.stdout)] == ["search"]
    out = tmp_path / "calls.csv"
    export = cli("export", "--db", str(users_db), "--where", "feature=chat", "-o", str(out))
    assert export.returncode == 0, export.stderr
    assert len(out.read_text().splitlines()) == 2  # header + the chat call
    bad = cli("report", "--db", str(users_db), "--where", "colour=red")
    assert bad.returncode == 2
    assert "unknown dimension 'colour'" in bad.stderr


def test_user_takes_the_raw_id_and_labels_name_the_hashes(users_db: Path, tmp_path: Path) -> None:
    report = cli("report", "--db", str(users_db), "--by", "feature", "--user", "bob@example.com", env=KEYED)
    assert report.returncode == 0, report.stderr
    assert "Total      $0.75 over 1 calls" in report.stdout
    assert "bob@example.com" not in report.stdout.replace("where user=", "")
    labels = tmp_path / "labels.csv"
    labels.write_text("user,label\nalice@example.com,Alice (sales)\n")
    named = cli("report", "--db", str(users_db), "--by", "user", "--user-labels", str(labels), env=KEYED)
    assert named.returncode == 0, named.stderr
    alice = UserIdHasher(key=b"k" * 16).hash("alice@example.com")
    assert f"Alice (sales) ({alice})" in named.stdout
    top = cli("top", "--db", str(users_db), env={**KEYED, "OTEL_LLM_COST_USER_LABELS": str(labels)})
    assert "Alice (sales)" in top.stdout


def test_top_shows_feature_user_and_the_full_trace_id_within_the_terminal_width(users_db: Path) -> None:
    top = cli("top", "--db", str(users_db), env={"COLUMNS": "120"})
    assert top.returncode == 0, top.stderr
    header, _rule, *lines = top.stdout.splitlines()
    assert header.split()[:2] == ["start", "(UTC)"]
    assert {"feature", "user", "trace_id"} <= set(header.split())
    assert all(len(line) <= 120 for line in top.stdout.splitlines())
    assert re.search(r"\b[0-9a-f]{32}\b", lines[0])  # the trace id is never cut
    wide = cli("top", "--db", str(users_db))  # piped: nothing is cut
    assert "h:" + "…" not in wide.stdout
    assert "…" not in wide.stdout


def _on_a_terminal(argv: list[str], env: dict[str, str]) -> str:
    """Run the CLI with stdin/stdout on a pseudo-terminal (24 rows), return what it wrote there."""
    code = (
        "import os, pty, sys, fcntl, termios, struct\n"
        "pid, fd = pty.fork()\n"
        "if pid == 0:\n"
        "    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 100, 0, 0))\n"
        f"    os.execvpe(sys.executable, [sys.executable, '-m', 'otel_llm_cost', *{argv!r}], os.environ)\n"
        "out = b''\n"
        "while True:\n"
        "    try:\n"
        "        chunk = os.read(fd, 65536)\n"
        "    except OSError:\n"
        "        break\n"
        "    if not chunk:\n"
        "        break\n"
        "    out += chunk\n"
        "os.waitpid(pid, 0)\n"
        "sys.stdout.write(out.decode())\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )
    return run.stdout


def test_colour_only_on_a_terminal_and_never_with_no_color(users_db: Path) -> None:
    args = ["top", "--db", str(users_db)]
    assert "\x1b[1m" in _on_a_terminal(args, {"PAGER": "cat"})
    assert "\x1b[1m" not in _on_a_terminal(args, {"PAGER": "cat", "NO_COLOR": "1"})
    assert "\x1b[1m" not in cli(*args).stdout


def test_long_output_goes_through_the_pager_on_a_terminal_only(calls_db: CallsDB, tmp_path: Path) -> None:
    calls_db.insert(*(call(feature=f"f{i}", cost_usd="0.01") for i in range(40)))
    marker = tmp_path / "paged.txt"
    pager = {"PAGER": f"cat > {marker}", "NO_COLOR": "1"}
    _on_a_terminal(["report", "--db", str(calls_db.path), "--by", "feature"], pager)
    assert "By feature" in marker.read_text()
    marker.unlink()
    piped = cli("report", "--db", str(calls_db.path), "--by", "feature", env=pager)
    assert "By feature" in piped.stdout
    assert not marker.exists()


def test_bash_completion_completes_commands_and_their_flags() -> None:
    script = cli("completion", "bash")
    assert script.returncode == 0, script.stderr
    probe = (
        f"{script.stdout}\n"
        'COMP_WORDS=(otel-llm-cost rep); COMP_CWORD=1; _otel_llm_cost; echo "${COMPREPLY[*]}"\n'
        'COMP_WORDS=(otel-llm-cost top --wh); COMP_CWORD=2; _otel_llm_cost; echo "${COMPREPLY[*]}"\n'
        'COMP_WORDS=(otel-llm-cost completion z); COMP_CWORD=2; _otel_llm_cost; echo "${COMPREPLY[*]}"\n'
    )
    run = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["report reprice", "--where", "zsh"]
