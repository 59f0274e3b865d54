"""The ingest daemon on a real DAQ directory (real inotify) into a real local storage directory."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from farmtools.bookkeeping.states import Event, FileState
from farmtools.bookkeeping.textlogs import LOG_DIR
from farmtools.cli import app
from farmtools.storage import LocalStorage, adler32_file, adler32_hex
from tests.integration.ingest.conftest import Farm, snapshot, wait_for, write_raw


def _stored(farm: Farm, name: str) -> bool:
    return farm.state(name) == "stored"


def test_close_write_is_copied_verified_and_recorded(farm: Farm) -> None:
    farm.start_watch()
    src = farm.raw("run7-seq0.dat", 7)
    before = snapshot(src)
    wait_for(lambda: _stored(farm, "run7-seq0.dat"), what="stored")
    dest = farm.cfg.path(farm.cfg.storage.input) / "run7" / "run7-seq0.dat"
    assert dest.read_bytes() == src.read_bytes()
    rec = farm.bk.get("run7-seq0.dat")
    assert rec is not None
    assert rec.adler32 == adler32_hex(adler32_file(src))
    assert rec.storage_path == str(dest)
    assert rec.run == 7 and rec.seq == 0 and rec.tries == 0
    story = farm.events("run7-seq0.dat")
    assert story[:2] == [Event.WRITTEN, Event.DETECTED]
    assert story[2:] == [Event.COPY_STARTED, Event.COPY_ENDED, Event.VERIFIED]
    assert snapshot(src) == before, "the source must not be modified"
    assert not list(dest.parent.glob(".*")), "no temporary file left"
    log_path = farm.cfg.home / LOG_DIR / "alltransfer.log"
    run_log = farm.cfg.home / LOG_DIR / "runs" / "run7.log"
    wait_for(run_log.exists, what="transfer logs (appended just after the transition)")
    log = log_path.read_text()
    assert log.endswith(f" {dest}\n")
    assert run_log.read_text() == log


def test_moved_to_is_copied(farm: Farm, tmp_path: Path) -> None:
    farm.start_watch()
    outside = write_raw(tmp_path / "staging.dat", 8)
    os.rename(outside, farm.daq / "run8-seq3.dat")
    wait_for(lambda: _stored(farm, "run8-seq3.dat"), what="stored after rename")


def test_run_subdirectory_created_after_start(farm: Farm) -> None:
    farm.start_watch()
    farm.raw("run9-seq0.dat", 9, sub="run9")
    farm.raw("run9-seq1.dat", 9, sub="run9")
    wait_for(lambda: _stored(farm, "run9-seq0.dat") and _stored(farm, "run9-seq1.dat"))
    # a directory tree moved in with its files already closed
    tree = farm.daq.parent / "elsewhere" / "run10"
    tree.mkdir(parents=True)
    write_raw(tree / "run10-seq0.dat", 10)
    os.rename(tree, farm.daq / "run10")
    wait_for(lambda: _stored(farm, "run10-seq0.dat"), what="file of a moved-in directory")


def test_reconciliation_after_downtime_and_dead_worker_resumed(farm: Farm) -> None:
    # closed while no watcher ran
    farm.raw("run11-seq0.dat", 11)
    farm.raw("run11-seq1.dat", 11, sub="run11")
    # left in "copying" by a worker that died (a pid that has exited)
    src = farm.raw("run11-seq2.dat", 11)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    farm.bk.register_file(
        "run11-seq2.dat",
        source_path=str(src),
        run=11,
        seq=2,
        size=src.stat().st_size,
        daq_write_time=None,
    )
    dead_worker = f"{socket.gethostname()}:{dead.pid}:1:abcdef"
    assert farm.bk.transition(
        "run11-seq2.dat",
        FileState.DETECTED,
        FileState.COPYING,
        Event.COPY_STARTED,
        {"worker": dead_worker},
        fields={"claimed_by": dead_worker},
    )
    # a half-written temporary copy of the dead worker
    part = farm.cfg.path(farm.cfg.storage.input) / "run11" / ".run11-seq2.dat.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"half")
    svc = farm.service()
    assert svc.reconcile() == 3
    for n in ("run11-seq0.dat", "run11-seq1.dat", "run11-seq2.dat"):
        assert farm.state(n) == "stored", n
    assert Event.RESUMED in farm.events("run11-seq2.dat")
    final = part.parent / "run11-seq2.dat"
    assert final.read_bytes() == src.read_bytes()
    assert not part.exists()
    assert svc.reconcile() == 0  # idempotent


def test_open_for_writing_is_not_ingested_until_closed(
    farm: Farm, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="farmtools.ingest")
    farm.start_watch()
    path = farm.daq / "run12-seq0.dat"
    write_raw(farm.daq.parent / "tmpl.dat", 12)
    data = (farm.daq.parent / "tmpl.dat").read_bytes()
    keep = open(path, "wb")  # noqa: SIM115 - the DAQ still holds the file
    keep.write(data)
    keep.flush()
    other = open(path, "ab")  # noqa: SIM115 - a second writer closes first: IN_CLOSE_WRITE fires
    other.close()
    # the watcher looked at it (and said why it left it) ...
    wait_for(
        lambda: "run12-seq0.dat: still open for writing" in caplog.text,
        what="the close-write of the second writer handled",
    )
    # ... and it keeps working meanwhile
    farm.raw("run12-seq1.dat", 12)
    wait_for(lambda: _stored(farm, "run12-seq1.dat"))
    assert farm.bk.get("run12-seq0.dat") is None, "ingested while still open for writing"
    assert farm.service().reconcile() == 0, "reconcile took a file open for writing"
    assert farm.bk.get("run12-seq0.dat") is None
    keep.close()
    wait_for(lambda: _stored(farm, "run12-seq0.dat"), what="stored after close")


ODD = [
    "notes.txt",
    "run1-seq0.dat.tmp",
    "run 1-seq0.dat",
    'it\'s "quoted".dat',
    "semi;colon.dat",
    "$(touch pwned).dat",
    "new\nline.dat",
]


def test_odd_names_are_ignored_and_left_alone(farm: Farm) -> None:
    farm.start_watch()
    made = []
    for n in ODD:
        (farm.daq / n).write_bytes(b"not raw")
        made.append(farm.daq / n)
    bad = os.fsencode(farm.daq) + b"/caf\xe9-\xff.dat"
    with open(bad, "wb") as f:
        f.write(b"latin-1 name")
    farm.raw("run13-seq0.dat", 13)  # the watcher keeps working after them
    wait_for(lambda: _stored(farm, "run13-seq0.dat"))
    for n in [*ODD, "caf\\xe9-\\xff.dat"]:
        farm.wait_state(n, "ignored")
    for p in made:
        assert p.read_bytes() == b"not raw"
    with open(bad, "rb") as f:
        assert f.read() == b"latin-1 name"
    assert not (farm.daq.parent / "pwned").exists() and not Path("pwned").exists()
    stored = farm.cfg.path(farm.cfg.storage.input)
    assert sorted(p.name for p in stored.rglob("*") if p.is_file()) == ["run13-seq0.dat"]


def test_story_and_retry_take_a_non_utf8_name_as_the_shell_passes_it(
    farm: Farm, tmp_path: Path
) -> None:
    raw = b"caf\xe9-\xff.dat"
    with open(os.fsencode(farm.daq) + b"/" + raw, "wb") as f:
        f.write(b"latin-1 name")
    farm.service().reconcile()
    farm.wait_state("caf\\xe9-\\xff.dat", "ignored")
    toml = tmp_path / "farm.toml"
    toml.write_text(f'[database]\nurl = "{farm.cfg.database.url}"\n')
    exe = shutil.which("farmtools", path=os.path.dirname(sys.executable))
    assert exe
    # once through a real argv of bytes (Python hands them over as surrogates) ...
    r = subprocess.run(
        [os.fsencode(exe), b"story", raw, b"--config", os.fsencode(toml)],
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    assert "caf\\xe9-\\xff.dat  [ignored]" in r.stdout.decode()
    # ... then in-process with those same surrogates
    shell = os.fsdecode(raw)
    for args, code, says in (
        (["story", os.fsdecode(farm.daq) + "/" + shell], 0, "caf\\xe9-\\xff.dat  [ignored]"),
        (["story", "nosuch" + os.fsdecode(b"\xe9")], 1, "nosuch\\xe9: not in the bookkeeping"),
        (["ingest", "retry", shell], 1, "caf\\xe9-\\xff.dat: is ignored, nothing to retry"),
    ):
        res = CliRunner().invoke(app, [*args, "--config", str(toml)])
        assert res.exit_code == code and says in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception


def test_truncated_and_empty_files_are_quarantined_naming_the_file(farm: Farm) -> None:
    farm.start_watch()
    good = write_raw(farm.daq.parent / "full.dat", 14)
    (farm.daq / "run14-seq0.dat").write_bytes(good.read_bytes()[:-1000])
    (farm.daq / "run14-seq1.dat").write_bytes(b"")
    write_raw(farm.daq / "run15-seq0.dat", 99)  # header says run 99
    for n in ("run14-seq0.dat", "run14-seq1.dat", "run15-seq0.dat"):
        farm.wait_state(n, "quarantined")
    r0 = farm.bk.get("run14-seq0.dat")
    assert r0 is not None and r0.last_error is not None
    assert "run14-seq0.dat" in r0.last_error and "truncated" in r0.last_error
    r1 = farm.bk.get("run14-seq1.dat")
    assert r1 is not None and r1.last_error is not None and "empty file" in r1.last_error
    r2 = farm.bk.get("run15-seq0.dat")
    assert r2 is not None and r2.last_error is not None and "run 99" in r2.last_error
    kinds = {(a.file, a.kind) for a in farm.bk.alarms()}
    assert ("run14-seq0.dat", "corrupt_raw_file") in kinds
    assert not (farm.cfg.path(farm.cfg.storage.input) / "run14" / "run14-seq0.dat").exists()
    assert (farm.daq / "run14-seq1.dat").exists()


def test_destination_same_bytes_and_different_bytes(farm: Farm) -> None:
    store = farm.cfg.path(farm.cfg.storage.input) / "run16"
    store.mkdir(parents=True)
    same = farm.raw("run16-seq0.dat", 16)
    shutil.copy(same, store / "run16-seq0.dat")
    other = farm.raw("run16-seq1.dat", 16)
    (store / "run16-seq1.dat").write_bytes(b"other bytes")
    svc = farm.service()
    assert svc.ingest(same) == FileState.STORED
    assert Event.ALREADY_STORED in farm.events("run16-seq0.dat")
    assert Event.COPY_ENDED not in farm.events("run16-seq0.dat")
    assert svc.ingest(other) == FileState.QUARANTINED
    assert (store / "run16-seq1.dat").read_bytes() == b"other bytes", "overwritten!"
    rec = farm.bk.get("run16-seq1.dat")
    assert rec is not None and "different bytes" in (rec.last_error or "")
    assert any(a.kind == "destination_conflict" for a in farm.bk.alarms())
    # a person moves the wrong file away, then retries
    (store / "run16-seq1.dat").unlink()
    assert svc.retry("run16-seq1.dat") == FileState.STORED
    assert (store / "run16-seq1.dat").read_bytes() == other.read_bytes()
    assert Event.RETRY in farm.events("run16-seq1.dat")


def test_storage_down_daemon_keeps_running_and_drains(farm: Farm) -> None:
    root = farm.cfg.path(farm.cfg.storage.input)
    root.parent.mkdir(parents=True)
    root.write_text("the storage is not mounted")  # its root cannot be a directory: down
    farm.start_watch()
    for i in range(3):
        farm.raw(f"run17-seq{i}.dat", 17)
    # between attempts the file waits in "detected" with the error recorded (never stored)
    rec = wait_for(
        lambda: farm.bk.get("run17-seq0.dat"),
        what="failed attempts",
        until=lambda r: r is not None and r.tries >= 2 and r.state == FileState.DETECTED,
    )
    assert rec is not None and rec.last_error and rec.not_before is not None
    assert farm.state("run17-seq1.dat") in ("detected", "copying")
    assert Event.ERROR in farm.events("run17-seq0.dat")
    root.unlink()  # the storage is back
    for i in range(3):
        farm.wait_state(f"run17-seq{i}.dat", "stored")
    assert Event.RETRY in farm.events("run17-seq0.dat")


def test_ingest_gives_up_after_retries_with_an_alarm(farm: Farm) -> None:
    root = farm.cfg.path(farm.cfg.storage.input)
    root.parent.mkdir(parents=True)
    root.write_text("down")
    src = farm.raw("run18-seq0.dat", 18)
    svc = farm.service()
    assert svc.ingest(src) == FileState.DETECTED
    rec = farm.bk.get("run18-seq0.dat")
    assert rec is not None and rec.tries == farm.cfg.storage.retries + 1
    assert any(a.kind == "storage_unavailable" for a in farm.bk.alarms())
    root.unlink()
    assert svc.reconcile() == 1
    assert farm.state("run18-seq0.dat") == "stored"
    # stored at last: its alarm closed by itself, and the story says so
    assert farm.bk.alarms() == []
    assert Event.ALARM_CLEARED in farm.events("run18-seq0.dat")


class CorruptingDisk(LocalStorage):
    """A real local storage whose first ``bad`` copies get one byte flipped on the way to disk.

    Only the copy is altered: verification is LocalStorage's own (it reads the temporary file
    back), so the corruption is caught by the real :meth:`Storage.put` path, not simulated.
    """

    def __init__(self, root: Path, bad: int) -> None:
        super().__init__(root)
        self.bad = bad

    def _copy(self, src: Path, dest_rel: str, tmp_rel: str) -> tuple[int, int]:
        size, value = super()._copy(src, dest_rel, tmp_rel)
        if self.bad > 0:
            self.bad -= 1
            with open(self._p(tmp_rel), "r+b") as f:
                f.seek(size // 2)
                byte = f.read(1)
                f.seek(size // 2)
                f.write(bytes([byte[0] ^ 0xFF]))
        return size, value


def test_checksum_mismatch_retried_then_quarantined(farm: Farm) -> None:
    root = farm.cfg.path(farm.cfg.storage.input)
    once = farm.raw("run19-seq0.dat", 19)
    svc = farm.service(CorruptingDisk(root, bad=1))
    assert svc.ingest(once) == FileState.STORED  # the second copy verifies
    assert farm.events("run19-seq0.dat").count(Event.COPY_STARTED) == 2
    assert (root / "run19" / "run19-seq0.dat").read_bytes() == once.read_bytes()
    always = farm.raw("run19-seq1.dat", 19)
    svc = farm.service(CorruptingDisk(root, bad=100))
    assert svc.ingest(always) == FileState.QUARANTINED
    rec = farm.bk.get("run19-seq1.dat")
    assert rec is not None and "verification failed 3 times" in (rec.last_error or "")
    assert farm.events("run19-seq1.dat").count(Event.COPY_STARTED) == farm.cfg.storage.retries
    assert any(a.kind == "checksum_mismatch" for a in farm.bk.alarms())
    assert not (root / "run19" / "run19-seq1.dat").exists(), "a bad copy was published"
    assert not list((root / "run19").glob(".*")), "temporary file left"


def test_claim_of_another_host_is_left_to_an_operator(farm: Farm) -> None:
    src = farm.raw("run23-seq0.dat", 23)
    farm.bk.register_file(
        "run23-seq0.dat",
        source_path=str(src),
        run=23,
        seq=0,
        size=src.stat().st_size,
        daq_write_time=None,
    )
    other = "daq-evb-2:4242:1:abcdef"
    assert farm.bk.transition(
        "run23-seq0.dat",
        FileState.DETECTED,
        FileState.COPYING,
        Event.COPY_STARTED,
        {"worker": other},
        fields={"claimed_by": other},
    )
    svc = farm.service()
    assert svc.reconcile() == 0
    assert farm.state("run23-seq0.dat") == "copying", "took over a claim it cannot judge"
    with pytest.raises(RuntimeError, match="--force"):
        svc.retry("run23-seq0.dat")
    assert svc.retry("run23-seq0.dat", force=True) == FileState.STORED


def test_the_watcher_beats_while_idle_and_says_when_it_stopped(farm: Farm) -> None:
    farm.start_watch()
    (beat,) = farm.bk.heartbeats()
    assert beat.daemon == "ingest" and beat.stopped is None and beat.pid == os.getpid()
    farm.stop_all()
    (beat,) = farm.bk.heartbeats()
    assert beat.stopped is not None
