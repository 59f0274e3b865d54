"""``farmtools ingest watch`` as a user other than root, as on the farm (``prod``).

The tests run as root, who reads everything and holds every lease; here the daemon runs as
``nobody`` on files that root writes: a file it may not read is a permission problem (not a
corrupt file) and is taken by itself once readable, and a file whose writers it cannot see
waits for ``ingest.settle_s``, the log saying how long is left.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from farmtools.bookkeeping.db import Bookkeeping
from farmtools.config import FarmConfig
from tests.integration.ingest.conftest import WatchProcess, make_config, wait_for, write_raw

SETTLE_S = 20.0


@pytest.fixture
def farm_of_nobody(request: pytest.FixtureRequest) -> Iterator[tuple[FarmConfig, Path]]:
    """A farm directory (DAQ directory, storage, SQLite database) owned by ``nobody``;
    ``ingest`` settings given by indirect parametrisation."""
    if os.geteuid() != 0:
        pytest.fail("the tests run as root: they start the daemon as another user")
    ingest = {"settle_s": SETTLE_S, **getattr(request, "param", {})}
    base = Path(tempfile.mkdtemp(prefix="ft-ingest-nobody-"))  # not below root's 0700 tmp_path
    try:
        base.chmod(0o755)
        cfg = make_config(base)
        cfg = cfg.model_copy(update={"ingest": cfg.ingest.model_copy(update=ingest)})
        for d in (cfg.path(cfg.daq.watch_dir), cfg.path(cfg.storage.input), cfg.home):
            d.mkdir(parents=True, exist_ok=True)
        Bookkeeping.from_config(cfg).close()  # the schema; its journal is the daemon's, later
        nobody = pwd.getpwnam("nobody")
        for path in [base, *base.rglob("*")]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        yield cfg, base
    finally:
        shutil.rmtree(base)


def _publish(path: Path, run: int, *, mode: int, age_s: float) -> Path:
    """A raw file written beside the DAQ directory, aged, then renamed into it (one event)."""
    staging = write_raw(path.parent.parent / f".staging-{path.name}", run)
    staging.chmod(mode)
    t = time.time() - age_s
    os.utime(staging, (t, t))
    os.rename(staging, path)
    return path


def test_unreadable_file_waits_for_permission_and_the_settle_wait_says_what_is_left(
    farm_of_nobody: tuple[FarmConfig, Path],
) -> None:
    cfg, base = farm_of_nobody
    daq = cfg.path(cfg.daq.watch_dir)
    daemon = WatchProcess(cfg, base, user="nobody")
    daemon.start_process()
    bk = Bookkeeping.from_config(cfg)
    try:
        daemon.wait_started(bk)
        # root's file, mode 0600: nobody may not read it
        locked = _publish(daq / "run30-seq0.dat", 30, mode=0o600, age_s=100)
        wait_for(
            lambda: (r := bk.get("run30-seq0.dat")) is not None and r.last_error,
            what="the unreadable file's error",
        )
        rec = bk.get("run30-seq0.dat")
        assert rec is not None and rec.state == "detected", rec
        assert rec.last_error is not None
        assert rec.last_error.startswith(f"{locked}: permission denied (Permission denied)")
        assert "user nobody" in rec.last_error and "-rw-------" in rec.last_error
        errors = [e.details or {} for e in bk.story(rec.name) if e.event == "error"]
        assert [e["kind"] for e in errors] == ["permission_denied"]
        assert [a.kind for a in bk.alarms() if a.file == rec.name] == ["permission_denied"]

        # made readable: taken by itself (its chmod is an IN_ATTRIB), no operator retry
        locked.chmod(0o644)
        wait_for(lambda: _state(bk, "run30-seq0.dat") == "stored", what="stored")
        stored = cfg.path(cfg.storage.input) / "run30" / "run30-seq0.dat"
        assert stored.read_bytes() == locked.read_bytes()
        assert "quarantined" not in [e.event for e in bk.story("run30-seq0.dat")]

        # writers unknown to nobody (root's file: no lease, root's /proc/<pid>/fd unreadable):
        # the log gives the time left of the settle wait, not the file's age (15 s)
        _publish(daq / "run30-seq1.dat", 30, mode=0o644, age_s=SETTLE_S - 5)
        line = wait_for(
            lambda: re.search(
                r"run30-seq1\.dat: writers unknown, waiting ([0-9.]+) s", _log(daemon)
            ),
            what="the settle wait's log line",
        )
        assert line is not None
        assert 0 < float(line.group(1)) <= 5.0, line.group(0)
        wait_for(lambda: bk.get("run30-seq1.dat") is not None, what="taken once settled")
    finally:
        daemon.stop()
        bk.close()
    assert "Traceback" not in _log(daemon)


def _log(daemon: WatchProcess) -> str:
    return daemon.log.read_text(errors="replace")


def _state(bk: Bookkeeping, name: str) -> str | None:
    rec = bk.get(name)
    return None if rec is None else str(rec.state)


@pytest.mark.parametrize(
    "farm_of_nobody", [{"settle_s": 0.5, "rescan_s": 0.2}], indirect=True, ids=["rescans"]
)
def test_a_file_created_here_waits_for_its_close_write_when_writers_are_unknown(
    farm_of_nobody: tuple[FarmConfig, Path],
) -> None:
    """Root's writer pauses longer than settle_s (a DAQ between two spills): the rescans see
    an unknown writer and an old mtime, yet do not take the file, created here, before its
    close-write."""
    cfg, base = farm_of_nobody
    daq = cfg.path(cfg.daq.watch_dir)
    data = write_raw(base / "template.dat", 31, events=3).read_bytes()
    daemon = WatchProcess(cfg, base, user="nobody")
    daemon.start_process()
    bk = Bookkeeping.from_config(cfg)
    try:
        daemon.wait_started(bk)
        path = daq / "run31-seq0.dat"
        waits = "run31-seq0.dat: writers unknown, waiting for its close-write"
        with open(path, "wb") as writer:
            writer.write(data[:-100])
            writer.flush()
            settled = os.stat(path).st_mtime + 0.5
            wait_for(lambda: time.time() > settled, what="the settle time to pass")
            looks = _log(daemon).count(waits)
            wait_for(lambda: _log(daemon).count(waits) > looks, what="a rescan's look since")
            assert bk.get("run31-seq0.dat") is None, "taken while its writer holds it"
            writer.write(data[-100:])
        wait_for(lambda: _state(bk, "run31-seq0.dat") == "stored", what="stored")
        stored = cfg.path(cfg.storage.input) / "run31" / "run31-seq0.dat"
        assert stored.read_bytes() == data
    finally:
        daemon.stop()
        bk.close()
