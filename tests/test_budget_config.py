"""Budget definitions: validation at construction, presets, and TOML files with line-precise errors."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from otel_llm_cost.budgets import Budget, BudgetEngine, load_budgets
from otel_llm_cost.exceptions import BudgetConfigError

EXAMPLE_FILE = textwrap.dedent(
    """\
    # budgets.toml: read by configure() (OTEL_LLM_COST_BUDGETS) and `otel-llm-cost budgets ...`

    [defaults]                      # optional; applies to every [[budget]] below
    tz = "Europe/Berlin"            # IANA zone of day/week/month windows
    thresholds = [0.5, 0.8, 1.0]    # alert at 50%, 80% and 100% of the limit

    [[budget]]
    preset = "per_call"             # per_call, per_session, per_user_daily, per_org_daily
    limit_usd = "1.00"              # strings keep exact decimals; ints and floats work too

    [[budget]]
    preset = "per_user_daily"
    limit_usd = 50

    [[budget]]
    name = "org_123-daily"
    scope = "org"
    window = "day"
    limit_usd = 1000
    where = { org = "org_123" }

    [[budget]]
    name = "search-weekly"
    scope = "feature"
    window = "week"
    limit_usd = 250
    thresholds = [0.9, 1.0, 1.5]
    [budget.where]
    feature = ["search", "search-rerank"]

    [[budget]]
    name = "team-rolling"
    scope = "team"                  # a custom tag: cost.team on spans, tags['team'] in DuckDB
    window = "rolling:24h"
    limit_usd = 300

    [[budget]]
    name = "everything-monthly"
    scope = "global"
    window = "month"
    limit_usd = 20000
    tz = "UTC"
    """
)


def test_the_documented_example_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(EXAMPLE_FILE)
    budgets = load_budgets(path)

    assert [(b.name, b.scope, b.window, b.limit_usd, b.tz) for b in budgets] == [
        ("per_call", "call", "call", Decimal("1.00"), "UTC"),
        ("per_user_daily", "user", "day", Decimal(50), "Europe/Berlin"),
        ("org_123-daily", "org", "day", Decimal(1000), "Europe/Berlin"),
        ("search-weekly", "feature", "week", Decimal(250), "Europe/Berlin"),
        ("team-rolling", "tag:team", "rolling:24h", Decimal(300), "Europe/Berlin"),
        ("everything-monthly", "global", "month", Decimal(20000), "UTC"),
    ]
    assert budgets[0].thresholds == (Decimal(1),)  # per-call keeps its own default (100% only)
    assert budgets[2].where == {"org": ("org_123",)}
    assert budgets[3].thresholds == (Decimal("0.9"), Decimal(1), Decimal("1.5"))
    assert budgets[3].where == {"feature": ("search", "search-rerank")}
    BudgetEngine(budgets, [])


def test_presets() -> None:
    assert Budget.per_call(1.00) == Budget("per_call", "call", "call", "1.0", [1])
    assert Budget.per_session(10).window == "lifetime"
    assert Budget.per_user_daily(50, tz="America/New_York").tz == "America/New_York"
    org = Budget.per_org_daily(1000.10)
    assert (org.scope, org.window, org.limit_usd) == ("org", "day", Decimal("1000.1"))


def test_limits_are_decimal_from_any_number() -> None:
    assert Budget("a", "org", "day", 0.1).limit_usd == Decimal("0.1")  # not 0.1000000000000000055...
    assert Budget("a", "org", "day", "12.345").limit_usd == Decimal("12.345")
    assert Budget("a", "org", "day", Decimal("7")).limit_usd == 7


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"scope": "org id!"}, "scope"),
        ({"scope": 7}, "scope"),
        ({"window": "dayly"}, "window"),
        ({"window": "rolling:0h"}, "window"),
        ({"scope": "call"}, "window"),  # per-call scope needs window 'call'
        ({"window": "call"}, "window"),
        ({"limit_usd": 0}, "limit_usd"),
        ({"limit_usd": -5}, "limit_usd"),
        ({"limit_usd": "abc"}, "limit_usd"),
        ({"limit_usd": float("nan")}, "limit_usd"),
        ({"limit_usd": True}, "limit_usd"),
        ({"thresholds": []}, "thresholds"),
        ({"thresholds": [0]}, "thresholds"),
        ({"thresholds": ["x"]}, "thresholds"),
        ({"thresholds": "0.8"}, "thresholds"),
        ({"tz": "Mars/Olympus_Mons"}, "tz"),
        ({"where": {"user": 5}}, "where"),
        ({"where": {"bad key!": "x"}}, "where"),
        ({"where": {"global": "x"}}, "where"),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"name": "b", "scope": "org", "window": "day", "limit_usd": 10, **kwargs}
    with pytest.raises(BudgetConfigError) as caught:
        Budget(**args)
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


def test_duplicate_budget_names_are_refused() -> None:
    with pytest.raises(BudgetConfigError, match="two budgets are named"):
        BudgetEngine([Budget.per_org_daily(1), Budget.per_org_daily(2)], [])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budgets.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        [[budget]]
        name = "a"
        limit_usd = = 5
        """,
    )
    with pytest.raises(BudgetConfigError, match=r"budgets\.toml, line 3: invalid TOML") as caught:
        load_budgets(path)
    assert caught.value.line == 3


def test_a_bad_value_names_the_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        [[budget]]
        preset = "per_org_daily"
        limit_usd = 1000

        [[budget]]
        name = "search"
        scope = "feature"
        window = "dayly"
        limit_usd = 5
        """,
    )
    with pytest.raises(BudgetConfigError) as caught:
        load_budgets(path)
    message = str(caught.value)
    assert "line 8: budget #2 ('search'): field 'window': expected one of" in message
    assert (caught.value.line, caught.value.field) == (8, "window")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('[[budget]]\nname = "a"\nscope = "org"\nwindow = "day"\n', 1, "field 'limit_usd': missing"),
        ('[[budget]]\npreset = "per_call"\nlimit_usd = 1\nlimt = 2\n', 4, "field 'limt': unknown field"),
        ('[[budget]]\npreset = "per_year"\nlimit_usd = 1\n', 2, "unknown preset 'per_year'"),
        ('[[budget]]\npreset = "per_call"\nwindow = "day"\nlimit_usd = 1\n', 3, "a preset fixes window"),
        ('[[budget]]\npreset = "per_call"\nlimit_usd = 1\n[budget.where]\nuser = 5\n', 4, "field 'where'"),
        ('[defaults]\ntz = "UTC"\nlimit_usd = 5\n', 3, "[defaults] field 'limit_usd' is not allowed"),
        ('[defaults]\ntz = "Nowhere/City"\n[[budget]]\npreset = "per_org_daily"\nlimit_usd = 1\n', 3, "tz"),
        ("[budgets]\nx = 1\n", 1, "unknown table 'budgets'"),
        (
            '[[budget]]\npreset = "per_call"\nlimit_usd = 1\n\n'
            '[[budget]]\npreset = "per_call"\nlimit_usd = 2\n',
            5,
            "'per_call' is already used by budget #1",
        ),
    ],
    ids=["missing", "unknown-field", "preset", "preset-window", "where", "defaults", "tz", "table", "dup"],
)
def test_semantic_errors_name_the_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    with pytest.raises(BudgetConfigError) as caught:
        load_budgets(write(tmp_path, text))
    assert f"line {line}:" in str(caught.value)
    assert fragment in str(caught.value)
