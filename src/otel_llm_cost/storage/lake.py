"""The DuckLake target: the same tables in a lake (PostgreSQL catalog, Parquet data files).

A target is spelled as DuckDB's own ``ATTACH`` takes it, ``ducklake:postgres:<libpq connection
string>`` (for example ``ducklake:postgres:dbname=llm host=db.internal``), with the data path (a
directory or ``s3://bucket/prefix/``) given apart. Credentials come from libpq's own sources
(``PGPASSWORD``, ``PGUSER``, ``PGSERVICE`` with a service file, ``~/.pgpass``), never from the
target: a target carrying ``password=`` is refused, so that no secret reaches a command line or a log.

DuckLake loads offline only from the ``duckdb-extension-*`` wheels on the package index, which exist
for the duckdb 1.5 line alone (duckdb 2.0 downloads extensions from DuckDB's own host, and refuses an
extension file built for 1.5): the ``lake`` extra pins that line.

DuckLake has no PRIMARY KEY or UNIQUE constraints, so the tables are created without them, and what a
key did on a file (a span stored once, an alert fired once) is done under a PostgreSQL advisory lock
that every writer takes around its commit (:mod:`~otel_llm_cost.storage.lake_lock`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb

from otel_llm_cost.exceptions import SchemaVersionError, StorageError
from otel_llm_cost.storage import schema as _schema

__all__ = [
    "LAKE_PREFIX",
    "LakeTarget",
    "attach_lake",
    "cursor_of",
    "ensure_lake_schema",
    "is_lake_connection",
    "is_lake_target",
    "open_lake",
    "use_lake",
]

LAKE_PREFIX: Final = "ducklake:"
_CATALOG_PREFIX: Final = "postgres:"
#: The name the lake is attached under (and made the default database, so our SQL reads unchanged).
LAKE_ALIAS: Final = "otel_llm_cost_lake"
_EXTENSIONS: Final = ("postgres_scanner", "ducklake", "httpfs")
_PASSWORD = re.compile(r"(^|\s)password\s*=", re.IGNORECASE)
_VERSION_KEY: Final = "schema_version"


def is_lake_target(target: object) -> bool:
    """True for a ``ducklake:...`` target string (anything else is a DuckDB file or a connection)."""
    return isinstance(target, str) and target.startswith(LAKE_PREFIX)


@dataclass(frozen=True, slots=True)
class LakeTarget:
    """A lake: its PostgreSQL catalog and where its Parquet files go.

    Args:
        target: ``ducklake:postgres:<libpq connection string>`` (no ``password=``).
        data_path: Directory or object-store prefix of the data files; needed when the lake is created,
            read from the catalog afterwards (``None``: what the catalog says).

    Raises:
        ValueError: Not a ``ducklake:postgres:`` target, or it carries a password.
    """

    target: str
    data_path: str | None = None

    def __post_init__(self) -> None:
        if not is_lake_target(self.target) or not self.catalog_target.startswith(_CATALOG_PREFIX):
            raise ValueError(
                f"a lake target is 'ducklake:postgres:<connection string>', got {self.target[:40]!r}"
            )
        if _PASSWORD.search(self.libpq_dsn):
            raise ValueError(
                "a lake target must not carry a password: set PGPASSWORD, a libpq service file "
                "(service=NAME, PGSERVICEFILE) or ~/.pgpass instead"
            )

    @property
    def catalog_target(self) -> str:
        """What follows ``ducklake:``."""
        return self.target[len(LAKE_PREFIX) :]

    @property
    def libpq_dsn(self) -> str:
        """The catalog's libpq connection string."""
        return self.catalog_target[len(_CATALOG_PREFIX) :]

    @property
    def key(self) -> str:
        """A short stable name of the lake (for the default journal directory)."""
        return hashlib.sha256(self.target.encode()).hexdigest()[:12]

    def __str__(self) -> str:
        return self.target


def load_extensions(con: duckdb.DuckDBPyConnection) -> None:
    """Load DuckLake, the PostgreSQL scanner and httpfs, from the installed wheels when there are some.

    Raises:
        StorageError: DuckLake cannot be loaded (the ``lake`` extra is missing, or duckdb is not 1.5).
    """
    for name in _EXTENSIONS:
        path = _wheel_extension(name)
        try:
            con.execute(f"LOAD '{path}'" if path is not None else f"LOAD {name}")
        except duckdb.Error as exc:
            if name == "httpfs":
                continue  # only object stores need it; a local data path does not
            raise StorageError(
                f"cannot load the DuckDB extension {name!r} for a DuckLake target ({exc}); install "
                f"otel-llm-cost[lake], which brings duckdb 1.5 and the extension wheels that load offline"
            ) from exc


def _wheel_extension(name: str) -> Path | None:
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = Path(location, "extensions", f"v{duckdb.__version__}", f"{name}.duckdb_extension")
        if found.is_file():
            return found
    return None


def open_lake(target: LakeTarget, *, create: bool, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the lake attached and made the default database.

    Args:
        target: The lake.
        create: Create the lake and its tables when missing (writers, holding the commit lock);
            readers find the lake as it is.
        read_only: Attach the lake read-only: DuckDB then refuses every statement that would write it.

    Raises:
        StorageError: The catalog cannot be reached or the lake has no tables yet (``create=False``).
        SchemaVersionError: The lake was written by a newer otel-llm-cost.
    """
    con = duckdb.connect(":memory:")
    try:
        load_extensions(con)
        attach_lake(con, target, create=create, read_only=read_only)
    except BaseException:
        con.close()
        raise
    return con


def attach_lake(
    con: duckdb.DuckDBPyConnection, target: LakeTarget, *, create: bool, read_only: bool = False
) -> None:
    """Attach ``target`` to ``con`` (extensions loaded) and make it the default database.

    Raises:
        StorageError: The catalog cannot be reached or the lake has no tables yet (``create=False``).
        SchemaVersionError: The lake was written by a newer otel-llm-cost.
    """
    if create and read_only:
        raise ValueError("a lake attached read-only cannot be created")
    options = [] if target.data_path is None else [f"DATA_PATH '{_quote(target.data_path)}'"]
    options += ["READ_ONLY"] if read_only else []
    spelled = f" ({', '.join(options)})" if options else ""
    try:
        con.execute(f"ATTACH '{_quote(target.target)}' AS {LAKE_ALIAS}{spelled}")
    except duckdb.Error as exc:
        raise StorageError(f"cannot attach the lake {target}: {exc}") from exc
    use_lake(con)
    if create:
        ensure_lake_schema(con)
    else:
        _check_version(con, str(target))


def is_lake_connection(con: duckdb.DuckDBPyConnection) -> bool:
    """True when ``con`` (or a cursor) reads and writes a lake this module attached."""
    # fetchall: duckdb 2.0 refuses the next statement on a connection with a result left unfetched.
    return con.execute("SELECT current_database()").fetchall() == [(LAKE_ALIAS,)]


def cursor_of(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A new cursor of ``con`` that reads the same database: a lake's cursor starts on the in-memory one."""
    cursor = con.cursor()
    if is_lake_connection(con):
        use_lake(cursor)
    return cursor


def use_lake(con: duckdb.DuckDBPyConnection) -> None:
    """Make the lake the default database of ``con`` (or of a cursor of it), with timestamps in UTC."""
    con.execute(f"USE {LAKE_ALIAS}")
    con.execute("SET TimeZone = 'UTC'")


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _lake_ddl() -> tuple[str, ...]:
    # The file's DDL less the constraints DuckLake refuses (keys are enforced under the commit lock).
    return (
        _schema.CREATE_META.replace(" PRIMARY KEY", ""),
        _schema.CREATE_CALLS,
        _schema.CREATE_SPANS,
        _schema.CREATE_ALERTS.split(",\n    PRIMARY KEY")[0] + "\n)",
    )


# Reports filter on the call's start time: monthly partitions let DuckLake skip whole files.
_PARTITION: Final = (
    f"ALTER TABLE {_schema.CALLS_TABLE} SET PARTITIONED BY (year(start_time), month(start_time))"
)


def _lake_version(con: duckdb.DuckDBPyConnection) -> int | None:
    tables = {
        row[0]
        for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [LAKE_ALIAS]
        ).fetchall()
    }
    if _schema.META_TABLE not in tables:
        return None
    row = con.execute(
        f"SELECT max(CAST(value AS INTEGER)) FROM {_schema.META_TABLE} WHERE key = ?", [_VERSION_KEY]
    ).fetchall()[0]
    return None if row is None or row[0] is None else int(row[0])


def _check_version(con: duckdb.DuckDBPyConnection, where: str) -> None:
    version = _lake_version(con)
    if version is None:
        raise StorageError(
            f"the lake {where} has no otel-llm-cost tables yet (nothing has been exported to it)"
        )
    if version > _schema.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where} has schema version {version}, written by a newer otel-llm-cost; this one understands "
            f"version {_schema.SCHEMA_VERSION} at most. Upgrade otel-llm-cost to read or write it."
        )


def ensure_lake_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the lake's tables, or migrate them, in one transaction (the caller serialises writers).

    Raises:
        SchemaVersionError: The lake is newer than this package, or a migration step is missing.
    """
    version = _lake_version(con)
    if version == _schema.SCHEMA_VERSION:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        if version is None:
            for statement in _lake_ddl():
                con.execute(statement)
            con.execute(_PARTITION)
        else:
            if version > _schema.SCHEMA_VERSION:
                _check_version(con, "the lake")
            for step in range(version, _schema.SCHEMA_VERSION):
                if step not in _schema.MIGRATIONS:
                    raise SchemaVersionError(
                        f"the lake has schema version {version}; no migration from {step}"
                    )
                for statement in _schema.MIGRATIONS[step]:
                    con.execute(statement)
        con.execute(f"DELETE FROM {_schema.META_TABLE} WHERE key = ?", [_VERSION_KEY])
        con.execute(
            f"INSERT INTO {_schema.META_TABLE} VALUES (?, ?)", [_VERSION_KEY, str(_schema.SCHEMA_VERSION)]
        )
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
