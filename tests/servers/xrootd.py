"""A real XRootD data server (Debian ``xrootd-server``) with adler32 checksums, on a free loopback port.

Fixtures: ``xrootd_server`` (session-wide; ``.url`` = ``root://127.0.0.1:<port>``, ``.root`` = the
local directory the server exports as ``/``, ``.stop()``/``.start()`` to simulate an outage) and
``xrootd_factory`` for tests that want a server of their own.  The server runs with ``-R xrootd``
(it refuses to run as root) and is stopped by PID.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers.process import free_port, stop_pid, wait_for_port
from tests.servers.strict import need_tools


class XRootDServer:
    """One ``xrootd`` process exporting ``root`` on ``127.0.0.1:port``."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = base
        self.root = base / "data"
        self.port = port or free_port()
        self.url = f"root://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "xrootd.log"
        for d in (self.root, base / "admin", base / "run"):
            d.mkdir(parents=True, exist_ok=True)
        cfg = base / "xrootd.cfg"
        cfg.write_text(
            f"xrd.port {self.port}\n"
            "all.export /\n"
            f"oss.localroot {self.root}\n"
            f"all.adminpath {base / 'admin'}\n"
            f"all.pidpath {base / 'run'}\n"
            "xrootd.chksum adler32\n"
        )
        self.cfg = cfg
        if os.geteuid() == 0:
            pw = pwd.getpwnam("xrootd")
            for dirpath, dirnames, filenames in os.walk(base):
                for n in [*dirnames, *filenames]:
                    os.chown(os.path.join(dirpath, n), pw.pw_uid, pw.pw_gid)
            os.chown(base, pw.pw_uid, pw.pw_gid)

    def start(self) -> None:
        args = ["xrootd", "-c", str(self.cfg), "-l", str(self.log), "-n", f"ft{self.port}"]
        if os.geteuid() == 0:
            args[1:1] = ["-R", "xrootd"]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_for_port(self.port, proc=self.proc, log=str(self.log) + f".ft{self.port}", timeout=20)

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc.pid)
            self.proc.wait(timeout=10)
            self.proc = None


def _need_xrootd() -> None:
    need_tools("xrootd", package="xrootd-server")


@pytest.fixture(scope="session")
def xrootd_server() -> Iterator[XRootDServer]:
    """A running XRootD server for the whole session; its data directory is ``.root``."""
    _need_xrootd()
    base = Path(tempfile.mkdtemp(prefix="ft-xrootd-"))
    os.chmod(base, 0o755)
    server = XRootDServer(base)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def xrootd_factory() -> Iterator[Callable[[], XRootDServer]]:
    """Make private servers (for outage tests); all are stopped at the end of the test."""
    _need_xrootd()
    made: list[XRootDServer] = []

    def make() -> XRootDServer:
        base = Path(tempfile.mkdtemp(prefix="ft-xrootd-"))
        os.chmod(base, 0o755)
        s = XRootDServer(base)
        s.start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()
        shutil.rmtree(s.base, ignore_errors=True)
