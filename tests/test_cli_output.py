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
