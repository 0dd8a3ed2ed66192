"""Budget files: :func:`load_budgets` reads ``[[budget]]`` tables from TOML, naming the line of any error."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from otel_llm_cost.budgets.model import Budget
from otel_llm_cost.exceptions import BudgetConfigError

__all__ = ["load_budgets"]

_BUDGET_FIELDS: Final = ("name", "preset", "scope", "window", "limit_usd", "thresholds", "tz", "where")
_DEFAULT_FIELDS: Final = ("tz", "thresholds")
_PRESETS: Final[Mapping[str, Callable[..., Budget]]] = {
    "per_call": Budget.per_call,
    "per_session": Budget.per_session,
    "per_user_daily": Budget.per_user_daily,
    "per_org_daily": Budget.per_org_daily,
}


def load_budgets(path: str | os.PathLike[str]) -> list[Budget]:
    """Read budgets from a TOML file.

    The file has one ``[[budget]]`` table per budget (fields as :class:`Budget`, or ``preset =
    "per_org_daily"`` plus ``limit_usd`` and optional overrides) and an optional ``[defaults]`` table
    (``tz``, ``thresholds``)::

        [defaults]
        tz = "Europe/Berlin"

        [[budget]]
        preset = "per_org_daily"
        limit_usd = "1000"

        [[budget]]
        name = "search-feature-weekly"
        scope = "feature"
        window = "week"
        limit_usd = 250
        where = { feature = "search" }

    Args:
        path: The file.

    Returns:
        The budgets, in file order.

    Raises:
        BudgetConfigError: the file is not valid TOML or a budget is invalid; the message names the
            file, the line and the field.
        OSError: the file cannot be read.
    """
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc))
        raise BudgetConfigError(f"{file}, line {line}: invalid TOML: {exc}", line=line) from None
    locator = _TomlLocator(text)
    unknown = sorted(set(data) - {"budget", "defaults"})
    if unknown:
        line = locator.top_level(unknown[0])
        raise BudgetConfigError(
            f"{file}, line {line}: unknown table {unknown[0]!r} (expected [[budget]] and [defaults])",
            field=unknown[0],
            line=line,
        )
    defaults = _defaults(file, data.get("defaults", {}), locator)
    entries = data.get("budget", [])
    if not isinstance(entries, list):
        raise BudgetConfigError(f"{file}: 'budget' must be an array of tables ([[budget]])", field="budget")
    return _budgets(file, entries, defaults, locator)


def _defaults(file: Path, defaults: object, locator: _TomlLocator) -> Mapping[str, Any]:
    if not isinstance(defaults, dict):
        raise BudgetConfigError(f"{file}: [defaults] must be a table", field="defaults")
    for key in defaults:
        if key not in _DEFAULT_FIELDS:
            line = locator.default_key(key)
            raise BudgetConfigError(
                f"{file}, line {line}: [defaults] field {key!r} is not allowed (only tz, thresholds)",
                field=key,
                line=line,
            )
    return defaults


def _budgets(
    file: Path, entries: list[Any], defaults: Mapping[str, Any], locator: _TomlLocator
) -> list[Budget]:
    budgets: list[Budget] = []
    names: dict[str, int] = {}
    for index, entry in enumerate(entries):
        try:
            budget = _budget_from_table(entry, defaults)
        except BudgetConfigError as exc:
            line = locator.budget_key(index, exc.field)
            label = entry.get("name") or entry.get("preset") if isinstance(entry, dict) else None
            what = f"budget #{index + 1}" + (f" ({label!r})" if label else "")
            raise BudgetConfigError(
                f"{file}, line {line}: {what}: {exc}", field=exc.field, line=line
            ) from None
        if budget.name in names:
            line = locator.budget_key(index, "name")
            raise BudgetConfigError(
                f"{file}, line {line}: budget #{index + 1}: field 'name': {budget.name!r} is already used "
                f"by budget #{names[budget.name] + 1}",
                field="name",
                line=line,
            )
        names[budget.name] = index
        budgets.append(budget)
    return budgets


def _budget_from_table(entry: object, defaults: Mapping[str, Any]) -> Budget:
    if not isinstance(entry, dict):
        raise BudgetConfigError("expected a table", field=None)
    for key in entry:
        if key not in _BUDGET_FIELDS:
            raise BudgetConfigError(
                f"field {key!r}: unknown field (expected one of {', '.join(_BUDGET_FIELDS)})", field=key
            )
    if "limit_usd" not in entry:
        raise BudgetConfigError("field 'limit_usd': missing", field="limit_usd")
    options: dict[str, Any] = {k: v for k, v in defaults.items()}
    options.update({k: entry[k] for k in ("thresholds", "tz", "where") if k in entry})
    try:
        preset = entry.get("preset")
        if preset is not None:
            if preset not in _PRESETS:
                raise BudgetConfigError(
                    f"unknown preset {preset!r} (expected one of {', '.join(_PRESETS)})", field="preset"
                )
            for key in ("scope", "window"):
                if key in entry:
                    raise BudgetConfigError(f"a preset fixes {key}; remove it", field=key)
            if "name" in entry:
                options["name"] = entry["name"]
            if preset in ("per_call", "per_session"):
                options.pop("tz", None)
            if preset == "per_call" and "thresholds" not in entry:
                # A call crosses all its thresholds at once; the window budgets' defaults would triple it.
                options.pop("thresholds", None)
            return _PRESETS[preset](entry["limit_usd"], **options)
        for key in ("name", "scope", "window"):
            if key not in entry:
                raise BudgetConfigError("missing (or give a preset)", field=key)
        return Budget(entry["name"], entry["scope"], entry["window"], entry["limit_usd"], **options)
    except BudgetConfigError as exc:
        if exc.field and not str(exc).startswith("field "):
            raise BudgetConfigError(
                f"field {exc.field!r}: {_strip_field(str(exc), exc.field)}", field=exc.field
            ) from None
        raise


def _strip_field(message: str, name: str) -> str:
    return message.removeprefix(f"{name}: ")


def _line_from_message(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


class _TomlLocator:
    """Finds the line of a budget table or key in the file's text (tomllib reports none for values)."""

    _HEADER = re.compile(r"^\s*\[\[\s*budget\s*\]\]")
    _TABLE = re.compile(r"^\s*\[")

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self._headers = [i for i, line in enumerate(self._lines) if self._HEADER.match(line)]

    def _find_key(self, start: int, end: int, key: str) -> int | None:
        pattern = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*[=.]")
        sub_table = re.compile(rf"^\s*\[\s*budget\s*\.\s*{re.escape(key)}\s*\]")
        for i in range(start, end):
            if pattern.match(self._lines[i]) or sub_table.match(self._lines[i]):
                return i + 1
        return None

    def budget_key(self, index: int, key: str | None) -> int | None:
        if index >= len(self._headers):
            return None
        start = self._headers[index]
        end = self._headers[index + 1] if index + 1 < len(self._headers) else len(self._lines)
        # A budget's keys end at the next table header other than its own [budget.where] sub-table.
        for i in range(start + 1, end):
            line = self._lines[i]
            if self._TABLE.match(line) and not re.match(r"^\s*\[\s*budget\s*\.", line):
                end = i
                break
        if key is not None:
            found = self._find_key(start + 1, end, key)
            if found is not None:
                return found
        return start + 1

    def default_key(self, key: str) -> int | None:
        for i, line in enumerate(self._lines):
            if re.match(r"^\s*\[\s*defaults\s*\]", line):
                end = next(
                    (j for j in range(i + 1, len(self._lines)) if self._TABLE.match(self._lines[j])),
                    len(self._lines),
                )
                return self._find_key(i + 1, end, key) or i + 1
        return None

    def top_level(self, key: str) -> int | None:
        for i, line in enumerate(self._lines):
            if re.match(rf"^\s*\[+\s*{re.escape(key)}\b", line) or re.match(
                rf"^\s*{re.escape(key)}\s*=", line
            ):
                return i + 1
        return None
