"""A private PostgreSQL server for the lake tests: initdb + pg_ctl in a temporary directory.

Uses Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``) or binaries on PATH.
PostgreSQL refuses to run as root, so under root the cluster runs as the ``postgres`` user the
package creates (through ``runuser``). Listens on 127.0.0.1 on a free port, trusts local users.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str

    def dsn(self, dbname: str) -> str:
        return f"dbname={dbname} host={self.host} port={self.port} user={self.user}"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def unavailable_reason() -> str | None:
    """Why no server can start here (None: it can)."""
    if _bin_dir() is None:
        return "PostgreSQL is not installed (apt-get install -y postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and no 'postgres' user exists to run PostgreSQL as"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running() -> Iterator[Server]:
    """A started server, stopped (and its files removed) afterwards."""
    bin_dir = _bin_dir()
    assert bin_dir is not None
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
    with tempfile.TemporaryDirectory(prefix="otel-llm-cost-pg-") as root:
        if as_user:
            entry = pwd.getpwnam("postgres")
            os.chown(root, entry.pw_uid, entry.pw_gid)
        data = Path(root, "data")
        port = _free_port()
        run = lambda *args: subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)  # noqa: E731
        run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(Path(root, "log")),
            "-w",
            "start",
        )
        try:
            yield Server("127.0.0.1", port, "postgres")
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")


def create_database(server: Server, name: str) -> None:
    import psycopg  # noqa: PLC0415 - only where the lake tests run (the `lake` extra)

    with psycopg.connect(server.dsn("postgres"), autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
