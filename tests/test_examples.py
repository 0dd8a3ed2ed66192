"""The examples in examples/ keep working: each is run as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
def test_quickstart_prices_stores_and_queries(tmp_path: Path) -> None:
    db = tmp_path / "llm_costs.duckdb"
    result = subprocess.run(
        [sys.executable, "-X", "faulthandler", str(EXAMPLES / "quickstart.py"), str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path / "config")},
    )
    assert result.returncode == 0, result.stderr
    # gpt-4o 1000 in / 500 out = $0.0075; claude-sonnet-4 1000 uncached + 2000 cache write (5m)
    # + 5000 cache read / 300 out = $0.0165 (OpenAI and Anthropic list prices).
    assert "workflow wf-9: 2 steps, 9800 tokens, $0.024000" in result.stdout
    assert "gpt-4o-2024-08-06" in result.stdout
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT step, CAST(cost_usd AS VARCHAR), feature, user_id FROM llm_calls ORDER BY step"
        ).fetchall()
    assert [(step, Decimal(cost)) for step, cost, _, _ in rows] == [
        ("extract", Decimal("0.0075")),
        ("summarize", Decimal("0.0165")),
    ]
    assert {feature for _, _, feature, _ in rows} == {"document_analysis"}
    # The raw user id never reaches storage: only its keyed hash.
    assert all(user_id != "u-42" and user_id.startswith("h:") for _, _, _, user_id in rows)
