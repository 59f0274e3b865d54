"""A real PostgreSQL server (Debian ``postgresql``) on a free loopback port, for the whole session.

Fixture ``postgres_url``: a SQLAlchemy URL (``postgresql+psycopg://postgres@127.0.0.1:<port>/<db>``)
of a fresh database per test, on a server started once (initdb as the ``postgres`` user, pg_ctl
with a private socket directory) and stopped by pg_ctl/PID at the end.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.process import free_port, stop_pid, wait_for_port
from tests.servers.strict import missing

_counter = itertools.count()


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    def __init__(self, bindir: Path, base: Path) -> None:
        self.bindir, self.base = bindir, base
        self.data = base / "data"
        self.port = free_port()
        self.host = "127.0.0.1"

    def _as_postgres(self, *args: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def start(self) -> None:
        """Create the cluster on the first start; a later start (after :meth:`stop`) restarts
        the same cluster on the same port, as a database server coming back after an outage."""
        if not (self.data / "PG_VERSION").exists():
            self._init()
        opts = (
            f"-c listen_addresses={self.host} -p {self.port} -k {self.base} "
            "-c fsync=off -c max_connections=100"
        )
        subprocess.run(
            self._as_postgres(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                opts,
                "-l",
                str(self.base / "pg.log"),
                "-w",
                "start",
            ),
            check=True,
            capture_output=True,
        )
        wait_for_port(self.port, log=str(self.base / "pg.log"))

    def _init(self) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            self._as_postgres(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
        )

    def pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        return int(pidfile.read_text().split()[0]) if pidfile.exists() else None

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected, the cluster stops cleanly), by PID.

        Not SIGTERM first: that is PostgreSQL's "smart" shutdown, which waits for every client
        to leave, and a daemon under test keeps its connections.
        """
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
            stop_pid(pid)

    def create_db(self) -> str:
        import psycopg

        name = f"ft_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{name}"


@contextlib.contextmanager
def own_postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of one's own, started, then stopped by PID and removed.

    For the session's server and for tests that stop and restart theirs (an outage), which
    must not touch the one other tests share.  Its directory is below /tmp, not below a
    pytest ``tmp_path``: user postgres must be able to reach it.  Fails (strict mode) or skips
    when PostgreSQL is not installed.
    """
    bindir = _bindir()
    if bindir is None:
        missing(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, Debian postgresql)"
        )
    base = Path(tempfile.mkdtemp(prefix="ft-pg-"))
    server = PostgresServer(bindir, base)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with own_postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of a new, empty database on the session's PostgreSQL server."""
    return postgres_server.create_db()
