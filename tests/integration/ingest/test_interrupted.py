"""The ingest daemon as a real process, interrupted: SIGKILL mid-copy, a source truncated mid-copy.

Each test runs ``farmtools ingest watch`` as a subprocess (real inotify, real SQLite, a real
local directory or a real XRootD server) with a bandwidth limit (``ingest.max_rate_mb_s``), so
that a 40 MiB raw file takes seconds to copy and the test can act while the copy is under way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from farmtools.bookkeeping.states import Event, FileState
from farmtools.config import DaqSection, FarmConfig
from farmtools.storage import adler32_file, adler32_hex
from tests.integration.ingest.conftest import Farm, WatchProcess, raw_of_size, wait_for
from tests.servers.xrootd import XRootDServer

#: 40 MiB at 10 MB/s: a copy of about 4 s, long enough to be caught in the middle.
BIG_MIB = 40
RATE_MB_S = 10.0


@dataclass
class Dest:
    """Where the daemon stores, seen from the test: the directory holding ``run<N>/``."""

    cfg: FarmConfig
    root: Path  # local directory of the storage's input (for XRootD: in the server's export)

    def final(self, name: str, run: int) -> Path:
        return self.root / f"run{run}" / name

    def part(self, name: str, run: int) -> Path:
        return self.root / f"run{run}" / f".{name}.part"

    def files(self, run: int) -> list[str]:
        d = self.root / f"run{run}"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def _throttled(cfg: FarmConfig, **update: object) -> FarmConfig:
    ingest = cfg.ingest.model_copy(update={"max_rate_mb_s": RATE_MB_S})
    return cfg.model_copy(update={"ingest": ingest, **update})


def _xrootd_dest(farm: Farm, server: XRootDServer) -> Dest:
    """The farm's configuration, throttled, storing to a fresh directory of ``server``."""
    where = f"/interrupted-{uuid.uuid4().hex}/input"
    storage = farm.cfg.storage.model_copy(
        update={"backend": "xrootd", "url": server.url, "input": where}
    )
    return Dest(_throttled(farm.cfg, storage=storage), server.root / where.lstrip("/"))


@pytest.fixture(params=["local", pytest.param("xrootd", marks=pytest.mark.xrootd)])
def dest(request: pytest.FixtureRequest, farm: Farm) -> Dest:
    """The farm's configuration, throttled, storing to a local directory or to XRootD."""
    if request.param == "local":
        cfg = _throttled(farm.cfg)
        return Dest(cfg, cfg.path(cfg.storage.input))
    return _xrootd_dest(farm, request.getfixturevalue("xrootd_server"))


def _copy_in_progress(farm: Farm, dest: Dest, name: str, run: int, size: int) -> bool:
    """``copy_started`` recorded and the temporary file partly written: the copy is under way."""
    if Event.COPY_STARTED not in farm.events(name):
        return False
    try:
        done = dest.part(name, run).stat().st_size
    except FileNotFoundError:
        return False
    return 0 < done < size


def _assert_stored_once_verified(farm: Farm, dest: Dest, src: Path, run: int) -> None:
    name = src.name
    rec = farm.bk.get(name)
    assert rec is not None and rec.state == FileState.STORED, rec
    want = adler32_hex(adler32_file(src))
    assert rec.adler32 == want
    assert adler32_hex(adler32_file(dest.final(name, run))) == want, "stored bytes differ"
    assert dest.final(name, run).stat().st_size == src.stat().st_size
    assert farm.events(name).count(Event.VERIFIED) == 1


def test_kill9_mid_copy_then_restart_stores_every_file_once(
    farm: Farm, dest: Dest, watch_process: Callable[[FarmConfig], WatchProcess]
) -> None:
    daemon = watch_process(dest.cfg)
    first_pid = daemon.start(farm.bk)
    big = raw_of_size(farm.daq / "run50-seq0.dat", 50, BIG_MIB)
    size = big.stat().st_size
    wait_for(
        lambda: _copy_in_progress(farm, dest, big.name, 50, size),
        60,
        "the copy of run50-seq0.dat to be under way",
    )
    assert daemon.kill9() == first_pid
    # killed mid-copy: claimed by the dead worker, a partial temporary file, no final name
    rec = farm.bk.get(big.name)
    assert rec is not None and rec.state == FileState.COPYING
    assert rec.claimed_by is not None and f":{first_pid}:" in rec.claimed_by
    assert 0 < dest.part(big.name, 50).stat().st_size < size
    assert not dest.final(big.name, 50).exists(), "a partial file under the final name"
    # closed while no daemon ran: reconciliation finds it
    late = farm.raw("run50-seq1.dat", 50)

    second_pid = daemon.start(farm.bk)
    for src in (big, late):
        farm.wait_state(src.name, "stored", timeout=90)
        _assert_stored_once_verified(farm, dest, src, 50)
    assert dest.files(50) == ["run50-seq0.dat", "run50-seq1.dat"], "a leftover or a duplicate"

    # the story tells both attempts: the one killed, then the resumed one
    story = farm.bk.story(big.name)
    names = [e.event for e in story]
    starts = [e for e in story if e.event == Event.COPY_STARTED]
    assert [e.pid for e in starts] == [first_pid, second_pid]
    assert [(e.details or {}).get("attempt") for e in starts] == [1, 2]
    resumed = [e for e in story if e.event == Event.RESUMED]
    assert len(resumed) == 1 and resumed[0].pid == second_pid
    assert (resumed[0].details or {})["dead_worker"] == rec.claimed_by
    i_first, i_resumed = names.index(Event.COPY_STARTED), names.index(Event.RESUMED)
    assert i_first < i_resumed < names.index(Event.COPY_STARTED, i_resumed)
    assert names.index(Event.COPY_STARTED, i_resumed) < names.index(Event.VERIFIED)
    assert names.count(Event.COPY_ENDED) == 1 and names[-1] == Event.VERIFIED
    assert farm.events(late.name).count(Event.COPY_STARTED) == 1
    assert daemon.alive()


@pytest.fixture
def shm_daq(farm: Farm) -> Iterator[Path]:
    """A DAQ directory on tmpfs while the local storage is on the disk: ``copy_file_range``
    refuses to cross file system types (EXDEV), so the read()+write() path is the one used."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    d = Path(tempfile.mkdtemp(prefix="ft-daq-", dir="/dev/shm"))
    if os.stat(d).st_dev == os.stat(farm.cfg.home.parent).st_dev:
        shutil.rmtree(d)
        pytest.skip("/dev/shm is on the same file system as the storage")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize(
    "backend", ["local-buffered", pytest.param("xrootd", marks=pytest.mark.xrootd)]
)
def test_source_truncated_mid_copy_daemon_survives_error_recorded(
    farm: Farm,
    backend: str,
    watch_process: Callable[[FarmConfig], WatchProcess],
    request: pytest.FixtureRequest,
) -> None:
    """The copies that used to read a memory map (XRootD, local fallback) get a truncated source.

    With a mapped source this was a SIGBUS: the whole daemon died.  Now the read ends early,
    the file is quarantined with an error naming it, and the daemon goes on with other files.
    """
    if backend == "xrootd":
        dest = _xrootd_dest(farm, request.getfixturevalue("xrootd_server"))
    else:
        daq: Path = request.getfixturevalue("shm_daq")
        cfg = _throttled(farm.cfg, daq=DaqSection(watch_dir=daq))
        dest = Dest(cfg, cfg.path(cfg.storage.input))
    daq_dir = dest.cfg.path(dest.cfg.daq.watch_dir)
    daemon = watch_process(dest.cfg)
    daemon.start(farm.bk)
    src = raw_of_size(daq_dir / "run51-seq0.dat", 51, BIG_MIB)
    size = src.stat().st_size
    wait_for(
        lambda: _copy_in_progress(farm, dest, src.name, 51, size),
        60,
        "the copy of run51-seq0.dat to be under way",
    )
    os.truncate(src, 1 << 20)  # an operator's mistake, a DAQ crash: the source shrinks
    farm.wait_state(src.name, "quarantined", timeout=60)
    assert daemon.alive(), f"the daemon died:\n{daemon.log.read_text(errors='replace')}"
    rec = farm.bk.get(src.name)
    assert rec is not None and rec.last_error is not None
    assert str(src) in rec.last_error and "source shrank during the copy" in rec.last_error
    assert ("run51-seq0.dat", "source_changed") in {(a.file, a.kind) for a in farm.bk.alarms()}
    assert not dest.final(src.name, 51).exists()
    assert dest.files(51) == [], "the partial copy was left behind"
    # ... and it keeps working
    other = raw_of_size(daq_dir / "run51-seq1.dat", 51, 2)
    farm.wait_state(other.name, "stored", timeout=60)
    _assert_stored_once_verified(farm, dest, other, 51)
    assert daemon.alive()
