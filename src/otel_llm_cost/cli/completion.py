"""``otel-llm-cost completion bash|zsh``: a shell completion script for every command and flag.

Generated from the parser itself, so it never goes stale; no extra dependency. Install with
``eval "$(otel-llm-cost completion bash)"`` in ``~/.bashrc`` (``zsh`` in ``~/.zshrc``).
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from otel_llm_cost._private_api import argparse_actions

__all__ = ["completion_script", "register"]


def register(subparsers: argparse._SubParsersAction[Any], root: argparse.ArgumentParser) -> None:
    """Add the ``completion`` subcommand (``root`` is the parser it describes)."""
    help_text = 'print a shell completion script: eval "$(otel-llm-cost completion bash)"'
    parser = subparsers.add_parser("completion", help=help_text, description=help_text)
    parser.add_argument("shell", choices=("bash", "zsh"))
    parser.set_defaults(handler=lambda args: _print(root, args.shell))


def _print(root: argparse.ArgumentParser, shell: str) -> int:
    print(completion_script(root, shell))
    return 0


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(flag for action in argparse_actions(parser) for flag in action.option_strings)


def completion_script(root: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``root``'s commands, their flags and their fixed choices."""
    commands: dict[str, argparse.ArgumentParser] = {}
    for action in argparse_actions(root):
        if isinstance(action, argparse._SubParsersAction):
            commands.update(action.choices)
    cases = []
    for name, sub in commands.items():
        words = _flags(sub) + [
            choice
            for action in argparse_actions(sub)
            if not action.option_strings and action.choices
            for choice in action.choices
        ]
        cases.append(f"    {shlex.quote(name)}) words={shlex.quote(' '.join(words))} ;;")
    top = " ".join([*commands, *_flags(root)])
    body = "\n".join(cases)
    script = f"""_otel_llm_cost() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" words=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    words={shlex.quote(top)}
  else
    case "${{COMP_WORDS[1]}}" in
{body}
    esac
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F _otel_llm_cost otel-llm-cost"""
    if shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    return script
