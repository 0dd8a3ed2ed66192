"""Re-record the instrumentation fixtures with the installed SDKs and instrumentations, and check them.

Marked ``live``: it needs the ``record`` environment (real ``openai``/``anthropic`` SDKs and the
instrumentation packages; see the recognition section of the README). Each instrumentation whose
packages do not import is skipped. Nothing leaves 127.0.0.1: the SDKs talk to the fake provider.

A failure here with the committed fixtures passing means an instrumentation release changed what it
puts on its spans: re-record (``python tests/recording/record.py``) and review the diff.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from otel_llm_cost.conventions.usage import normalize_usage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import record  # noqa: E402

from test_usage import EXPECTED_FIELDS as FIELDS  # noqa: E402 - the same comparison as the recorded fixtures

pytestmark = pytest.mark.live


def _importable(instrumentation: record.Instrumentation) -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in instrumentation.modules)
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("instrumentation", record.INSTRUMENTATIONS, ids=lambda i: i.name)
def test_rerecorded_spans_normalise_to_what_the_server_returned(
    instrumentation: record.Instrumentation, tmp_path: Path
) -> None:
    if not _importable(instrumentation):
        missing = f"{instrumentation.name}: {', '.join(instrumentation.modules)} not installed"
        # CI's record environment names what it installed, so a broken install fails instead of skipping.
        if instrumentation.name in os.environ.get("OTEL_LLM_COST_LIVE_REQUIRED", "").split(","):
            pytest.fail(missing)
        pytest.skip(missing)
    status = record.record([instrumentation.name], tmp_path, log=lambda _: None)
    assert status[instrumentation.name] == "recorded", status
    fixtures = sorted(tmp_path.glob(f"{instrumentation.name}__*.json"))
    assert fixtures, "no span recorded"
    committed = {p.name for p in record.DEFAULT_OUT.glob(f"{instrumentation.name}__*.json")}
    assert {p.name for p in fixtures} == committed, "the instrumentation's coverage changed"
    for path in fixtures:
        fixture: dict[str, Any] = json.loads(path.read_text())
        for span in fixture["spans"]:
            attributes = {k: tuple(v) if isinstance(v, list) else v for k, v in span["attributes"].items()}
            usage = normalize_usage(attributes, span["scope"]["name"])
            expected = span["expected"]
            where = f"{path.name} {span['scope']['name']} gaps={span.get('gaps')}"
            if expected is None:
                assert usage is None, where
                continue
            assert usage is not None, where
            assert {f: getattr(usage, f) for f in FIELDS} == {f: expected[f] for f in FIELDS}, where
