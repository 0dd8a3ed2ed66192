"""Report results as DataFrames: polars through ``.pl()``, and a clear message when an extra is missing."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import CallsDB, call
from otel_llm_cost.query import CostStore

polars = pytest.importorskip("polars")  # the `polars` extra; the `test` extra installs it


def test_pl_holds_the_same_rows_and_exact_decimals(calls_db: CallsDB) -> None:
    calls_db.insert(call(feature="search", cost_usd="0.10"), call(feature="chat", cost_usd="0.000001"))
    with CostStore(calls_db.path) as store:
        rows = store.cost_by("feature")
        frame = rows.pl()
    assert isinstance(frame, polars.DataFrame)
    assert frame.height == len(rows)
    assert frame["total_cost_usd"].dtype == polars.Decimal(38, 12)
    assert sorted(frame["total_cost_usd"].to_list()) == [Decimal("0.000001"), Decimal("0.1")]


@pytest.mark.parametrize(("method", "extra"), [("df", "pandas"), ("pl", "polars")])
def test_a_missing_dataframe_library_names_the_extra_to_install(
    calls_db: CallsDB, tmp_path: Path, method: str, extra: str
) -> None:
    calls_db.insert(call(feature="search", cost_usd="0.10"))
    # sys.modules[name] = None makes `import name` fail, as on an installation without the extra.
    code = (
        f"import sys; sys.modules[{extra!r}] = None\n"
        "from otel_llm_cost import CostStore\n"
        f"with CostStore({str(calls_db.path)!r}) as store:\n"
        f"    store.cost_by('feature').{method}()\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 1
    assert f"ImportError: .{method}() needs {extra}" in run.stderr
    assert f"pip install 'otel-llm-cost[{extra}]'" in run.stderr
