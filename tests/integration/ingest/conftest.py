"""Fixtures of the ingest tests: a farm in a temporary directory, raw files, a running watcher."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from farmtools.bookkeeping.db import Bookkeeping
from farmtools.config import (
    DaqSection,
    DatabaseSection,
    FarmConfig,
    FarmSection,
    IngestSection,
    StorageSection,
)
from farmtools.ingest.service import IngestService
from farmtools.rawdata import RawFileWriter
from farmtools.storage import LocalStorage, Storage
from tests.eventually import eventually


def write_raw(path: Path, run: int, events: int = 2, *, payload: int = 3000, fill: int = 7) -> Path:
    """A valid raw file of ``events`` small (compressed-flagged) events: structure is all ingest checks."""
    rng = bytes((fill + i * 31) % 251 for i in range(payload))
    with RawFileWriter(path, run) as w:
        for i in range(events):
            w.write_event_payload(
                rng, trigger_number=i, seconds=1_700_000_000 + i, nanoseconds=0, compressed=True
            )
    return path


def make_config(tmp: Path, db_url: str | None = None, **storage: Any) -> FarmConfig:
    st: dict[str, Any] = {"backoff_s": 0.05, "backoff_max_s": 0.3, "retries": 3, **storage}
    return FarmConfig(
        farm=FarmSection(home=tmp / "farm"),
        daq=DaqSection(watch_dir=tmp / "daq"),
        storage=StorageSection(**st),
        ingest=IngestSection(settle_s=0.0, retry_alarm_after=3),
        database=DatabaseSection(url=db_url or f"sqlite:///{tmp / 'bk.sqlite'}"),
        base_dir=tmp,
    )


# the ingest tests' name for the one polling helper (the watcher works asynchronously)
wait_for = eventually


@dataclass
class Farm:
    cfg: FarmConfig
    bk: Bookkeeping
    storage: Storage
    daq: Path
    services: list[IngestService] = field(default_factory=list)
    threads: list[tuple[threading.Thread, threading.Event]] = field(default_factory=list)

    def service(self, storage: Storage | None = None) -> IngestService:
        svc = IngestService(self.cfg, self.bk, storage or self.storage)
        self.services.append(svc)
        return svc

    def start_watch(self, storage: Storage | None = None) -> IngestService:
        """A watcher in a thread, returned once its watches and reconciliation are in place."""
        svc = self.service(storage)
        stop = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                svc.watch(stop)
            except BaseException as exc:  # pragma: no cover - reported by the test
                errors.append(exc)
                raise

        t = threading.Thread(target=run, name="ingest-watch", daemon=True)
        t.start()
        # The watcher is ready once it registered the sentinel written here (close-write seen).
        sentinel = self.daq / f".ready-{len(self.threads)}"
        sentinel.write_text("x")
        wait_for(lambda: self.bk.get(sentinel.name) is not None or errors, what="watcher start")
        assert not errors, errors
        self.threads.append((t, stop))
        return svc

    def stop_all(self) -> None:
        for t, stop in self.threads:
            stop.set()
            t.join(timeout=30)
            assert not t.is_alive(), "the watcher did not stop"
        self.threads.clear()
        for s in self.services:
            s.close()

    def state(self, name: str) -> str | None:
        rec = self.bk.get(name)
        return str(rec.state) if rec is not None else None

    def wait_state(self, name: str, state: str, timeout: float = 30.0) -> None:
        wait_for(lambda: self.state(name) == state, timeout, f"{name} {state}")

    def events(self, name: str) -> list[str]:
        return [e.event for e in self.bk.story(name)]

    def raw(self, name: str, run: int, sub: str = "", **kw: Any) -> Path:
        d = self.daq / sub if sub else self.daq
        d.mkdir(parents=True, exist_ok=True)
        return write_raw(d / name, run, **kw)


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    cfg = make_config(tmp_path)
    daq = cfg.path(cfg.daq.watch_dir)
    daq.mkdir(parents=True)
    bk = Bookkeeping.from_config(cfg)
    f = Farm(cfg, bk, LocalStorage(cfg.path(cfg.storage.input)), daq)
    try:
        yield f
    finally:
        f.stop_all()
        bk.close()


def snapshot(path: Path) -> tuple[bytes, int, int]:
    """Bytes, mtime and mode of a source file: ingest must never change them."""
    st = os.stat(path)
    return path.read_bytes(), st.st_mtime_ns, st.st_mode


class WatchProcess:
    """``farmtools ingest watch`` as a real subprocess (its own pid, its own signals).

    For what a thread cannot show: a SIGKILL in the middle of a copy, a fault that would kill
    the whole process (SIGBUS).  The configuration is written as a ``farm.toml`` from ``cfg``
    so that the daemon and the test's :class:`Farm` see the same directories and database.
    """

    def __init__(self, cfg: FarmConfig, base: Path, *, user: str | None = None) -> None:
        self.cfg = cfg
        #: run the daemon as this user (the tests run as root; on the farm it is ``prod``)
        self.user = user
        self.toml = base / "farm.toml"
        self.log = base / "watch.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        st, ing = cfg.storage, cfg.ingest
        lines = [
            f'[farm]\nhome = "{cfg.home}"',
            f'[daq]\nwatch_dir = "{cfg.path(cfg.daq.watch_dir)}"',
            f'[database]\nurl = "{cfg.database.url}"',
            f'[storage]\nbackend = "{st.backend}"\nurl = "{st.url}"\n'
            f'input = "{st.input if st.backend == "xrootd" else cfg.path(st.input)}"\n'
            f"retries = {st.retries}\nbackoff_s = {st.backoff_s}\n"
            f"backoff_max_s = {st.backoff_max_s}",
            f"[ingest]\nsettle_s = {ing.settle_s}\nmax_rate_mb_s = {ing.max_rate_mb_s}\n"
            f"retry_alarm_after = {ing.retry_alarm_after}\nrescan_s = {ing.rescan_s}",
        ]
        self.toml.write_text("\n".join(lines) + "\n")

    def start(self, bk: Bookkeeping) -> int:
        """Start the daemon; return its pid once it handles close-writes (a sentinel seen)."""
        self.start_process()
        return self.wait_started(bk)

    def start_process(self) -> None:
        """Start the daemon without waiting (the caller opens the database after it)."""
        exe = shutil.which("farmtools", path=os.path.dirname(sys.executable))
        assert exe, "farmtools is not installed in the virtualenv"
        argv = [exe, "ingest", "watch", "--config", str(self.toml)]
        env = None
        if self.user is not None:
            argv = as_user(self.user, argv, self.toml.parent / ".as-user")
            # a home of its own, as the production account has (numba caches compiled code
            # there when the package directory is not writable)
            home = self.toml.parent / f".home-{self.user}"
            home.mkdir(exist_ok=True)
            pw = pwd.getpwnam(self.user)
            os.chown(home, pw.pw_uid, pw.pw_gid)
            env = {**os.environ, "HOME": str(home)}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        self.starts += 1

    def wait_started(self, bk: Bookkeeping) -> int:
        """The daemon's pid, once it handles close-writes (a sentinel file registered)."""
        assert self.proc is not None
        sentinel = self.cfg.path(self.cfg.daq.watch_dir) / f".ready-proc-{self.starts}"
        sentinel.write_text("x")
        wait_for(
            lambda: bk.get(sentinel.name) is not None or self.proc.poll() is not None,  # type: ignore[union-attr]
            60,
            "the watcher subprocess to start",
        )
        assert self.alive(), f"the watcher exited:\n{self.log.read_text(errors='replace')}"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> int:
        """SIGKILL the daemon (no cleanup of any kind runs) and reap it; returns the pid.

        Reaping matters: until then the pid is a zombie that still looks alive, and the next
        daemon would rightly not take over its claims.
        """
        assert self.proc is not None
        pid = self.proc.pid
        os.kill(pid, signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL
        self.proc = None
        return pid

    def stop(self) -> None:
        """SIGTERM (a clean stop), SIGKILL if it does not end."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


def as_user(user: str, argv: list[str], stage: Path) -> list[str]:
    """``argv`` run as ``user`` (by root), through ``setpriv`` (same pid: signals reach it).

    The interpreter may live where ``user`` cannot reach it (pyenv below root's 0700 home):
    then the command runs in its own mount namespace, where that directory is covered by an
    empty world-searchable tmpfs holding only the interpreter's tree (bind-mounted back in
    through ``stage``).  Nothing of it is seen outside that process.
    """
    pw = pwd.getpwnam(user)
    run = [
        "setpriv",
        f"--reuid={pw.pw_uid}",
        f"--regid={pw.pw_gid}",
        "--clear-groups",
        "--",
        *argv,
    ]
    prefix = Path(os.path.realpath(sys.base_prefix))
    closed = [p for p in reversed(prefix.parents) if not os.stat(p).st_mode & 0o001]
    if not closed:
        return run
    hidden = closed[0]
    keep = hidden / prefix.relative_to(hidden).parts[0]
    stage.mkdir(exist_ok=True)
    script = (
        'set -e; mount --bind "$1" "$2"; mount -t tmpfs -o mode=0755,size=1m ft-as-user "$3"; '
        'mkdir -p "$1"; mount --bind "$2" "$1"; shift 3; exec "$@"'
    )
    return [
        "unshare",
        "--mount",
        "sh",
        "-c",
        script,
        "as_user",
        str(keep),
        str(stage),
        str(hidden),
        *run,
    ]


@pytest.fixture
def watch_process(farm: Farm, tmp_path: Path) -> Iterator[Callable[[FarmConfig], WatchProcess]]:
    """Make :class:`WatchProcess` daemons for the farm (or another configuration of it);
    every one still running is stopped at the end."""
    made: list[WatchProcess] = []

    def make(cfg: FarmConfig | None = None) -> WatchProcess:
        w = WatchProcess(cfg or farm.cfg, tmp_path)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


def raw_of_size(path: Path, run: int, mib: int) -> Path:
    """A valid raw file of about ``mib`` MiB (1 MiB events), large enough to copy slowly."""
    return write_raw(path, run, events=mib, payload=1 << 20)
