"""The enriched copy, the processor and the exporter against the OLDEST dependencies pyproject.toml allows.

``enriched_copy`` is the one piece that depends on ReadableSpan's layout, which the SDK does not
promise to keep; the exporter's JSON column depends on orjson's output. The current environment tests
the newest versions; this test re-runs the copy, processor and exporter tests with the Python named by
``OTEL_LLM_COST_OLDEST_SDK_PYTHON``: an environment with ``opentelemetry-sdk==1.40.*``,
``orjson==3.10.*`` and this package installed (.ci/run builds it).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

OLDEST_SDK_PYTHON = os.environ.get("OTEL_LLM_COST_OLDEST_SDK_PYTHON")
OLDEST_SUPPORTED = (1, 40)
ROOT = Path(__file__).resolve().parent.parent
MODULES = ("tests/test_enrich_copy.py", "tests/test_processor.py", "tests/test_exporter.py")

pytestmark = pytest.mark.skipif(
    not OLDEST_SDK_PYTHON,
    reason="set OTEL_LLM_COST_OLDEST_SDK_PYTHON to a python with opentelemetry-sdk 1.40",
)


def test_that_python_really_has_the_oldest_sdk() -> None:
    assert OLDEST_SDK_PYTHON is not None
    out = subprocess.run(
        [OLDEST_SDK_PYTHON, "-c", "from opentelemetry.sdk.version import __version__; print(__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    major, minor = (int(part) for part in out.stdout.strip().split(".")[:2])
    assert (major, minor) == OLDEST_SUPPORTED


def test_copy_and_processor_tests_pass_on_the_oldest_sdk() -> None:
    assert OLDEST_SDK_PYTHON is not None
    result = subprocess.run(
        # With the shared conftest: the same isolation (environment, key, log state) as on the newest SDK.
        [OLDEST_SDK_PYTHON, "-m", "pytest", *MODULES, "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
