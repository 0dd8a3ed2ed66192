"""The "Wiring your application" blocks of docs/instrumentations.md, run as written with the real SDKs.

Marked ``live``: it needs the ``record`` environment (the pinned SDKs and instrumentations). Each block
runs in its own process against the fake provider on 127.0.0.1 (the SDKs read their base URLs from the
environment), then the DuckDB file it wrote must hold the call: priced, billable once, with the
attribution tags of the block and the user id hashed.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import duckdb
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fake_provider import FakeProvider  # noqa: E402

pytestmark = pytest.mark.live

DOC = HERE.parents[1] / "docs" / "instrumentations.md"
_BLOCK = re.compile(r"```python\n(# pip install otel-llm-cost [^\n]*\n.*?)```", re.S)
BLOCKS = _BLOCK.findall(DOC.read_text(encoding="utf-8"))


# The instrumentation each block wires, by the last package on its pip line: its span must be stored.
_EXPECTED_SCOPE = {
    "openai": "opentelemetry.util.genai.handler",  # openai-v2 2.4b0 makes its spans through util-genai
    "anthropic": "com.anthropic.sdk.python",
}


def _pins(code: str) -> dict[str, str]:
    first = code.splitlines()[0]
    return dict(re.findall(r"([A-Za-z0-9_.-]+)==([^\s]+)", first))


def _missing(pins: dict[str, str]) -> list[str]:
    missing = []
    for package, wanted in pins.items():
        try:
            if version(package) != wanted:
                missing.append(f"{package}=={wanted} (found {version(package)})")
        except PackageNotFoundError:
            missing.append(f"{package}=={wanted}")
    return missing


def test_the_doc_has_one_block_per_sdk_wiring() -> None:
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("code", BLOCKS, ids=lambda code: code.splitlines()[0][len("# pip install ") :])
def test_wiring_block_prices_and_tags_the_call(code: str, tmp_path: Path) -> None:
    missing = _missing(_pins(code))
    if missing:
        if "wiring" in os.environ.get("OTEL_LLM_COST_LIVE_REQUIRED", "").split(","):
            pytest.fail(f"not installed: {missing}")
        pytest.skip(f"not installed: {missing}")
    script = tmp_path / "app.py"
    script.write_text(code, encoding="utf-8")
    with FakeProvider() as server:
        server.use("openai_chat" if "import openai" in code else "anthropic_messages")
        env = {
            **os.environ,
            "OPENAI_API_KEY": "sk-fake",
            "OPENAI_BASE_URL": server.base_url + "/v1",
            "ANTHROPIC_API_KEY": "sk-ant-fake",
            "ANTHROPIC_BASE_URL": server.base_url,
            "OTEL_LLM_COST_USER_ID_KEY": "0123456789abcdef",
            "OTEL_TRACES_EXPORTER": "none",
        }
        run = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert server.requests, "the SDK never reached the fake provider"
    assert "none of the first spans was an LLM call" not in run.stderr
    with contextlib.closing(duckdb.connect(str(tmp_path / "llm_costs.duckdb"), read_only=True)) as db:
        rows = db.execute(
            "SELECT feature, user_id, cost_status, cost_usd FROM llm_calls WHERE billable"
        ).fetchall()
        scopes = {scope for (scope,) in db.execute("SELECT scope_name FROM llm_calls").fetchall()}
    assert len(rows) == 1, rows  # one call, billed once however many spans recorded it
    pins = list(_pins(code))
    expected = "openinference.instrumentation.anthropic" if pins[-1].startswith("openinference") else None
    assert (expected or _EXPECTED_SCOPE[pins[0]]) in scopes, scopes
    feature, user_id, status, cost = rows[0]
    assert feature in {"search", "support_chat"}
    assert user_id.startswith("h:")
    assert (status, cost > 0) == ("priced", True)
