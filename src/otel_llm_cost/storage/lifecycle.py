"""Process events a writer must follow: fork, interpreter exit, and a reader of its file in this process.

- ``fork()``: a child must never inherit an open DuckDB instance (it would write through a copy of the
  parent's state without holding the file lock) nor a lock copied held; each writer registers
  before/after hooks (:func:`register_fork_hooks`), as the SDK's BatchSpanProcessor does.
- Exit: a TracerProvider shuts its exporters down at exit (its own atexit hook, which runs before
  this one); a writer used without one would otherwise leave its last batches in the journal until
  the next exporter on the file starts, invisible to readers meanwhile.
- A reader in this process (``connect(see_pending=True)``): first let this process's writers on that
  file commit what they accepted, so the query sees it.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from otel_llm_cost._logging import log_once
from otel_llm_cost.storage import connect as _storage

__all__ = [
    "ForkAware",
    "LiveWriter",
    "live_tokens",
    "register_fork_hooks",
    "register_live",
    "unregister_live",
]

_logger = logging.getLogger("otel_llm_cost.exporter")


class ForkAware(Protocol):
    def before_fork(self) -> None: ...

    def after_fork_in_parent(self) -> None: ...

    def after_fork_in_child(self) -> None: ...


class LiveWriter(Protocol):
    """A journaled writer, as the process-wide hooks see it."""

    @property
    def path(self) -> Path | None:
        """Its file (None: a lake, which readers of this process never wait for)."""
        ...

    @property
    def journal_token(self) -> str: ...

    def may_drain_for_reader(self) -> bool: ...

    def flush(self, timeout_s: float) -> bool: ...

    def shutdown(self) -> None: ...


_LIVE: weakref.WeakSet[LiveWriter] = weakref.WeakSet()  # type: ignore[type-var,unused-ignore]


def register_live(writer: LiveWriter) -> None:
    _LIVE.add(writer)


def unregister_live(writer: LiveWriter) -> None:
    _LIVE.discard(writer)


def live_tokens() -> set[str]:
    """The journal tokens of this process's live writers: their journal files are theirs to commit."""
    return {writer.journal_token for writer in list(_LIVE)}


def _commit_before_read(path: str, timeout_s: float) -> None:
    """Before a connection opens ``path``: commit what this process's writers accepted for it.

    Within ``timeout_s`` for all of them, and not for a writer that cannot write the file now (held
    by another process, unwritable): the reader then sees what is committed.
    """
    target = Path(path).absolute()
    deadline = time.monotonic() + timeout_s
    for writer in list(_LIVE):
        if writer.path == target and writer.may_drain_for_reader():
            try:
                writer.flush(max(0.0, deadline - time.monotonic()))
            except Exception as exc:
                log_once(_logger, "exporter.before_read", logging.ERROR, "commit before read failed: %r", exc)


_storage.add_before_read_hook(_commit_before_read)


def _shut_down_at_exit() -> None:
    for writer in list(_LIVE):
        writer.shutdown()


atexit.register(_shut_down_at_exit)


def register_fork_hooks(target: ForkAware) -> None:
    """Call ``target``'s fork methods around every ``os.fork()`` while it is alive."""
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.ref(target)

    def call(method: str) -> Callable[[], None]:
        def hook() -> None:
            alive = ref()
            if alive is not None:
                getattr(alive, method)()

        return hook

    os.register_at_fork(
        before=call("before_fork"),
        after_in_parent=call("after_fork_in_parent"),
        after_in_child=call("after_fork_in_child"),
    )
