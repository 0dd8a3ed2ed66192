"""The sandbox every read-only connection runs in: it may read the database and nothing else.

A read-only connection runs whatever SQL a reader types (``otel-llm-cost query``, ``CostStore.sql``,
a dashboard), so it gets no file or URL access (``COPY ... TO``, ``read_text``, ``ATTACH``,
``INSTALL``), no extension loading, and a locked configuration so that SQL cannot turn any of it
back on.
"""

from __future__ import annotations

from typing import Final

import duckdb

__all__ = ["SANDBOX_CONFIG", "lock_down"]

# DuckDB applies a configuration per open file and process, so every read-only connection of the
# process uses this one (a connection with another configuration cannot open the same file).
SANDBOX_CONFIG: Final[dict[str, str | bool | int | float | list[str]]] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
# Etc/UTC: the name DuckDB gives UTC in Arrow results, which the typed results use (query/tabular.py).
# GLOBAL too: cursors of the connection start new sessions, which the lock keeps from setting it.
_UTC_AND_LOCK: Final = (
    "SET TimeZone = 'Etc/UTC'",
    "SET GLOBAL TimeZone = 'Etc/UTC'",
    "SET lock_configuration = true",
)


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Set UTC and lock the configuration of a freshly opened read-only file (once per DuckDB instance)."""
    for statement in _UTC_AND_LOCK:
        try:
            con.execute(statement)
        except duckdb.InvalidInputException:
            # Another connection of this process to the same file locked it already (with UTC set).
            if con.execute("SELECT current_setting('lock_configuration')").fetchall() != [(True,)]:
                raise
