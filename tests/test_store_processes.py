"""A notebook (CostStore) and the CLI reading the file while a real application process exports to it.

Issue 4's promise: while an app is exporting, another process can query the file and the app loses
nothing. A CostStore kept open for the whole session must not make the app spool: it holds the file only
while it queries, so every batch lands in DuckDB directly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import wait_until
from otel_llm_cost.query import CostStore
from otel_llm_cost.storage import connect as _storage
from test_exporter import count

TESTS_DIR = Path(__file__).parent

# Exports a batch of 20 calls every ~20 ms until stdin closes, then reports how many export() calls
# failed: export() returns FAILURE exactly when it spooled the batch. lock_timeout_s is 1 s (default 5)
# so that a reader holding the file for the whole session (shorter than 5 s here) makes it spool.
_APP = textwrap.dedent(
    """
    import json, sys, threading, time
    sys.path.insert(0, sys.argv[2])
    from test_exporter import make_span
    from otel_llm_cost.storage.exporter import DuckDBSpanExporter

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    exporter = DuckDBSpanExporter(sys.argv[1], lock_timeout_s=1.0)
    exported = failures = 0
    while not stop.is_set():
        batch = [make_span(start_ns=1_736_942_400_000_000_000 + exported + i) for i in range(20)]
        if exporter.export(batch).name != "SUCCESS":
            failures += 1
        exported += len(batch)
        if exported == 20:
            print("started", flush=True)
        time.sleep(0.02)
    exporter.shutdown()
    print(json.dumps({"exported": exported, "failures": failures, "pending": len(exporter.spool.pending())}))
    """
)


def _wait_until_released(store: CostStore) -> None:
    wait_until(lambda: not store.holds_file, what="the store to release the file")


@pytest.mark.slow
def test_a_notebook_store_and_the_cli_never_make_the_exporting_app_spool(tmp_path: Path) -> None:
    db = tmp_path / "shared.duckdb"
    _storage.connect(db).close()
    seen: list[int] = []
    with subprocess.Popen(
        [sys.executable, "-c", _APP, str(db), str(TESTS_DIR)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as app:
        assert app.stdin is not None
        assert app.stdout is not None
        try:
            assert app.stdout.readline().strip() == "started"
            # The notebook keeps its store for the whole session, as users do.
            with CostStore(db) as store:
                for _ in range(6):
                    summary = store.summary()
                    by_model = store.cost_by_model()
                    assert sum(row.call_count for row in by_model) == summary.call_count
                    seen.append(summary.call_count)
                    _wait_until_released(store)  # between cells the app has the file to itself
                    time.sleep(0.2)
                cli = subprocess.run(
                    [sys.executable, "-m", "otel_llm_cost", "report", "--db", str(db)],
                    check=False,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert cli.returncode == 0, cli.stderr
                seen.append(store.summary().call_count)
        finally:
            app.stdin.close()
        result = json.loads(app.stdout.read())
    assert app.returncode == 0
    assert result["failures"] == 0  # no batch was spooled: each went straight into DuckDB
    assert result["pending"] == 0
    assert seen == sorted(seen)
    assert seen[-1] > seen[0]  # the reports saw the app's new calls
    assert count(db) == result["exported"]
