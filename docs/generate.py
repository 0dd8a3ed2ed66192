"""Regenerate the reference tables in docs/reference/ from the code they describe.

The environment variables come from ``otel_llm_cost._config.ALL_VARIABLES``, the DuckDB tables from
``otel_llm_cost.storage.schema`` (``CALL_COLUMNS``, ``SPAN_COLUMNS``, ``ALERT_COLUMNS``) and the
command line from ``otel_llm_cost.cli.main.build_parser()``. Each table sits in a page between two
marker comments; everything outside the markers is written by hand and left alone.

    python docs/generate.py           # rewrite the generated blocks
    python docs/generate.py --check   # exit 1, naming the stale pages, when a block differs from the code

The code is imported from this checkout's ``src/``, so the pages always describe the tree they sit in.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))

# Imported after the path is set, so that the tables describe this checkout's code.
from otel_llm_cost import _config  # noqa: E402
from otel_llm_cost.cli.main import build_parser  # noqa: E402
from otel_llm_cost.storage import schema  # noqa: E402

COMMAND = "python docs/generate.py"
BEGIN = "<!-- BEGIN generated {name}: do not edit, run `" + COMMAND + "` -->"
END = "<!-- END generated {name} -->"
_BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN generated (?P<name>[a-z-]+): do not edit, run `[^`]*` -->\n)"
    r"(?P<body>.*?)"
    r"(?P<end><!-- END generated (?P=name) -->)",
    re.DOTALL,
)


def _cell(text: str) -> str:
    """Table-cell text: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def render_env_vars() -> str:
    """The configuration table: one row per declared environment variable, in declaration order."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for var in _config.ALL_VARIABLES:
        if var.default is None:
            default = "unset"
        elif isinstance(var.default, bool):
            default = f"`{str(var.default).lower()}`"
        else:
            default = f"`{var.default}`"
        lines.append(f"| `{var.name}` | {default} | {_cell(var.doc)} |")
    return "\n".join(lines) + "\n"


def _columns_table(columns: tuple[tuple[str, str, str], ...]) -> str:
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {typ} | {_cell(meaning)} |" for name, typ, meaning in columns]
    return "\n".join(lines) + "\n"


def render_calls_schema() -> str:
    """The ``llm_calls`` table: column, DuckDB type and meaning, in table order."""
    return _columns_table(schema.CALL_COLUMNS)


def render_spans_schema() -> str:
    """The ``spans`` table (written only with ``store_all_spans``)."""
    return _columns_table(schema.SPAN_COLUMNS)


def render_alerts_schema() -> str:
    """The ``budget_alerts`` table and its primary key."""
    key = ", ".join(f"`{name}`" for name in schema.ALERT_KEY_COLUMNS)
    return _columns_table(schema.ALERT_COLUMNS) + f"\nPrimary key: ({key}).\n"


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each subcommand, in registration order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _expand_help(action: argparse.Action, prog: str) -> str:
    """The option's help with ``%(default)s`` and friends filled in, as ``--help`` prints it."""
    params: dict[str, Any] = {**vars(action), "prog": prog}
    if action.choices is not None:
        params["choices"] = ", ".join(str(choice) for choice in action.choices)
    return (action.help or "") % params


def _argument(action: argparse.Action) -> str:
    choices = "{" + ",".join(str(c) for c in action.choices) + "}" if action.choices is not None else None
    if not action.option_strings:
        return f"`{action.metavar or choices or action.dest}`"
    flags = ", ".join(action.option_strings)
    if action.nargs == 0:
        return f"`{flags}`"
    value = action.metavar or choices or action.dest.upper()
    return f"`{flags} {value}`"


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, [], argparse.SUPPRESS):
        return ""
    return f"`{action.default}`"


def _options_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        meaning = _cell(_expand_help(action, parser.prog))
        if action.required and action.option_strings:
            meaning = f"{meaning} (required)".strip()
        rows.append(f"| {_argument(action)} | {_default(action)} | {meaning} |")
    if not rows:
        return []
    return ["| argument | default | meaning |", "|---|---|---|", *rows]


def _render_command(name: str, summary: str, parser: argparse.ArgumentParser, depth: int) -> list[str]:
    lines = [f"{'#' * depth} `{parser.prog}`", ""]
    if summary:
        lines += [_cell(summary), ""]
    if parser.description and _cell(parser.description) != _cell(summary):
        lines += [_cell(parser.description), ""]
    table = _options_table(parser)
    if table:
        lines += [*table, ""]
    for sub_name, sub_summary, sub in _subcommands(parser):
        lines += _render_command(sub_name, sub_summary, sub, depth + 1)
    return lines


def render_cli() -> str:
    """Every command of ``otel-llm-cost``: its help, then each argument with its default and help."""
    parser = build_parser()
    lines = [
        _cell(parser.description or ""),
        "",
        "Options given before the command (`otel-llm-cost -v report ...`):",
        "",
        *_options_table(parser),
        "",
    ]
    for name, summary, sub in _subcommands(parser):
        lines += _render_command(name, summary, sub, depth=2)
    return "\n".join(lines).rstrip("\n") + "\n"


RENDERERS: dict[str, Callable[[], str]] = {
    "env-vars": render_env_vars,
    "llm-calls-schema": render_calls_schema,
    "spans-schema": render_spans_schema,
    "budget-alerts-schema": render_alerts_schema,
    "cli": render_cli,
}


def regenerate(text: str) -> str:
    """``text`` with every generated block rewritten from the code.

    Raises:
        KeyError: a block names no known table.
    """

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        return BEGIN.format(name=name) + "\n" + RENDERERS[name]() + END.format(name=name)

    return _BLOCK.sub(replace, text)


def pages() -> list[Path]:
    """Every Markdown page of the repository's documentation that holds a generated block."""
    candidates = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    return [page for page in candidates if _BLOCK.search(page.read_text(encoding="utf-8"))]


def stale_pages() -> list[Path]:
    """The pages whose generated blocks differ from what the code says now."""
    stale = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        if regenerate(text) != text:
            stale.append(page)
    return stale


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated blocks (or, with ``--check``, only report the stale pages)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page is stale")
    args = parser.parse_args(argv)
    stale = stale_pages()
    if args.check:
        for page in stale:
            print(f"{page.relative_to(ROOT)} is out of date: run `{COMMAND}`", file=sys.stderr)
        return 1 if stale else 0
    for page in stale:
        page.write_text(regenerate(page.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"rewrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
