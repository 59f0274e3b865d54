"""Ingest against real XRootD, a full file system, PostgreSQL, and two services racing."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from farmtools.bookkeeping.db import Bookkeeping
from farmtools.bookkeeping.states import Event, FileState
from farmtools.ingest.service import IngestService
from farmtools.storage import LocalStorage, XRootDStorage, adler32_file
from tests.integration.ingest.conftest import Farm, make_config, wait_for, write_raw


@pytest.mark.xrootd
def test_xrootd_close_write_verified_and_outage(
    farm: Farm, xrootd_factory: Callable[[], object]
) -> None:
    server = xrootd_factory()
    url, root = server.url, server.root  # type: ignore[attr-defined]
    storage = XRootDStorage(url, "storage/input", timeout=10)
    farm.start_watch(storage)
    src = farm.raw("run20-seq0.dat", 20)
    wait_for(lambda: farm.state("run20-seq0.dat") == "stored", what="stored on xrootd")
    on_server = Path(root) / "storage/input/run20/run20-seq0.dat"
    assert on_server.read_bytes() == src.read_bytes()
    rec = farm.bk.get("run20-seq0.dat")
    assert rec is not None and rec.storage_path == f"{url}//storage/input/run20/run20-seq0.dat"
    assert storage.checksum("run20/run20-seq0.dat") == adler32_file(src)
    # outage: the daemon records errors, keeps running, drains when the server is back
    server.stop()  # type: ignore[attr-defined]
    farm.raw("run20-seq1.dat", 20)
    farm.raw("run20-seq2.dat", 20)
    wait_for(
        lambda: (r := farm.bk.get("run20-seq1.dat")) is not None and bool(r.last_error),
        what="an error recorded while the server is down",
    )
    assert farm.state("run20-seq1.dat") in ("detected", "copying")  # not stored while down
    server.start()  # type: ignore[attr-defined]
    for n in ("run20-seq1.dat", "run20-seq2.dat"):
        farm.wait_state(n, "stored", timeout=60)
    assert Event.ERROR in farm.events("run20-seq1.dat")


@pytest.mark.xrootd
def test_xrootd_existing_destination(farm: Farm, xrootd_server: object) -> None:
    url, root = xrootd_server.url, xrootd_server.root  # type: ignore[attr-defined]
    storage = XRootDStorage(url, "ingest-existing", timeout=10)
    same = farm.raw("run21-seq0.dat", 21)
    other = farm.raw("run21-seq1.dat", 21)
    d = Path(root) / "ingest-existing" / "run21"
    d.mkdir(parents=True)
    shutil.copy(same, d / "run21-seq0.dat")
    (d / "run21-seq1.dat").write_bytes(b"different")
    if os.geteuid() == 0:  # the server runs as xrootd and must be able to read them
        subprocess.run(["chown", "-R", "xrootd:", str(Path(root) / "ingest-existing")], check=True)
    svc = farm.service(storage)
    assert svc.ingest(same) == FileState.STORED
    assert Event.ALREADY_STORED in farm.events("run21-seq0.dat")
    assert svc.ingest(other) == FileState.QUARANTINED
    assert (d / "run21-seq1.dat").read_bytes() == b"different"


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "ft-ingest", str(where)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_full_destination_error_recorded_nothing_partial_then_retry(farm: Farm) -> None:
    with _tmpfs(farm.cfg.path(farm.cfg.storage.input), "256k") as root:
        filler = root / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as f:
            f.write(b"\0" * (300 << 10))
        src = farm.raw("run22-seq0.dat", 22, events=20)
        svc = farm.service()
        assert svc.ingest(src) == FileState.DETECTED
        rec = farm.bk.get("run22-seq0.dat")
        assert rec is not None and "No space left" in (rec.last_error or ""), rec
        leftovers = [p.name for p in root.rglob("*") if p.is_file() and p != filler]
        assert leftovers == [], "nothing partial may stay on the storage"
        filler.unlink()
        assert svc.retry("run22-seq0.dat") == FileState.STORED
        assert (root / "run22" / "run22-seq0.dat").read_bytes() == src.read_bytes()


def _race(cfg_tmp: Path, db_url: str) -> None:
    cfg = make_config(cfg_tmp, db_url)
    daq = cfg.path(cfg.daq.watch_dir)
    daq.mkdir(parents=True)
    names = [f"run30-seq{i}.dat" for i in range(6)]
    paths = [write_raw(daq / n, 30) for n in names]
    bks = [Bookkeeping(cfg.database_url) for _ in range(2)]
    svcs = [IngestService(cfg, b, LocalStorage(cfg.path(cfg.storage.input))) for b in bks]
    barrier = threading.Barrier(2)
    results: list[list[FileState]] = [[], []]

    def run(k: int) -> None:
        for p in paths:
            barrier.wait()
            results[k].append(svcs[k].ingest(p))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), f"{t.name} did not finish its ingests within 60 s"
    bk = bks[0]
    for n in names:
        story = [e.event for e in bk.story(n)]
        assert story.count(Event.COPY_STARTED) == 1, (n, story)
        assert story.count(Event.VERIFIED) == 1, (n, story)
        assert bk.get(n).state == FileState.STORED  # type: ignore[union-attr]
    for a, b in zip(*results, strict=True):
        assert FileState.STORED in (a, b)
    for s in svcs:
        s.close()
    for b in bks:
        b.close()


def test_two_services_race_one_copies_sqlite(tmp_path: Path) -> None:
    _race(tmp_path, f"sqlite:///{tmp_path / 'bk.sqlite'}")


@pytest.mark.postgres
def test_two_services_race_one_copies_postgres(tmp_path: Path, postgres_url: str) -> None:
    _race(tmp_path, postgres_url)


def test_cli_once_and_retry(tmp_path: Path) -> None:
    daq = tmp_path / "daq"
    daq.mkdir()
    write_raw(daq / "run40-seq0.dat", 40)
    (daq / "run40-seq1.dat").write_bytes(b"broken")
    cfg = tmp_path / "farm.toml"
    cfg.write_text(
        f'[farm]\nhome = "{tmp_path / "farm"}"\n[daq]\nwatch_dir = "{daq}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "bk.sqlite"}"\n[ingest]\nsettle_s = 0\n'
    )
    exe = shutil.which("farmtools", path=os.path.dirname(os.sys.executable))  # type: ignore[attr-defined]
    assert exe
    r = subprocess.run(
        [exe, "ingest", "once", "--config", str(cfg)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "stored 1 file(s)" in r.stdout
    bk = Bookkeeping(f"sqlite:///{tmp_path / 'bk.sqlite'}")
    assert bk.get("run40-seq1.dat").state == FileState.QUARANTINED  # type: ignore[union-attr]
    write_raw(tmp_path / "fixed.dat", 40)
    (daq / "run40-seq1.dat").unlink()
    os.rename(tmp_path / "fixed.dat", daq / "run40-seq1.dat")
    r = subprocess.run(
        [exe, "ingest", "retry", "--all-failed", "--config", str(cfg)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "run40-seq1.dat: stored" in r.stdout
    assert bk.get("run40-seq1.dat").state == FileState.STORED  # type: ignore[union-attr]
    bk.close()
