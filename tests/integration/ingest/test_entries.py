"""DAQ entries that never get a close-write, seen live by a running watcher (real inotify).

A hard link of a raw file written elsewhere, symbolic links (to /etc/passwd, to /dev/zero, to a
valid raw file), a FIFO and a device node: the watcher hears of them through IN_CREATE only.
The safety-net rescan is off in the first tests, so that only events can have found them;
the last test hides events (a directory mounted over a watched one) and lets the rescan find
the file.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from farmtools.config import FarmConfig
from tests.integration.ingest.conftest import Farm, WatchProcess, snapshot, wait_for, write_raw


def _ingest(cfg: FarmConfig, **values: float) -> FarmConfig:
    return cfg.model_copy(update={"ingest": cfg.ingest.model_copy(update=values)})


def _reason(farm: Farm, name: str) -> str:
    (ev,) = [e for e in farm.bk.story(name) if e.event == "ignored"]
    return str((ev.details or {})["reason"])


def test_links_fifos_and_device_nodes_are_recorded_live_without_a_rescan(
    farm: Farm, tmp_path: Path
) -> None:
    farm.cfg = _ingest(farm.cfg, rescan_s=0)
    farm.start_watch()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    valid = write_raw(elsewhere / "run20-seq9.dat", 20)
    before = snapshot(valid)
    d = farm.daq
    os.symlink("/etc/passwd", d / "run20-seq1.dat")
    os.symlink("/dev/zero", d / "run20-seq2.dat")
    os.symlink("/dev/zero", d / "zero.dat")
    os.symlink(valid, d / "run20-seq3.dat")
    os.mkfifo(d / "run20-seq4.dat")
    try:  # root here (the tests run as root); elsewhere the device node is left out
        os.mknod(d / "run20-seq5.dat", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
        device = True
    except PermissionError:
        device = False
    linked = write_raw(elsewhere / "run20-seq6.dat", 20, fill=3)
    os.link(linked, d / "run20-seq6.dat")  # a DAQ publishing with link(): no close-write here

    farm.wait_state("run20-seq6.dat", "stored")
    stored = farm.cfg.path(farm.cfg.storage.input) / "run20" / "run20-seq6.dat"
    assert stored.read_bytes() == linked.read_bytes()
    expected = {
        "run20-seq1.dat": "a symbolic link to /etc/passwd (not followed)",
        "run20-seq2.dat": "a symbolic link to /dev/zero (not followed)",
        "zero.dat": "a symbolic link to /dev/zero (not followed)",
        "run20-seq3.dat": f"a symbolic link to {valid} (not followed)",
        "run20-seq4.dat": "a FIFO (named pipe; never opened)",
    }
    if device:
        expected["run20-seq5.dat"] = "a character device node 1:5 (never opened)"
    for name, what in expected.items():
        farm.wait_state(name, "ignored")
        assert _reason(farm, name) == f"not a regular file: {what}"
    alarms = {(a.file, a.kind) for a in farm.bk.alarms()}
    raw_named = {n for n in expected if n.startswith("run")}
    assert {f for f, k in alarms if k == "not_regular_file"} == raw_named
    # left alone, and the daemon never read /dev/zero: it still takes the next file at once
    assert os.readlink(d / "run20-seq3.dat") == str(valid) and snapshot(valid) == before
    assert stat.S_ISFIFO(os.lstat(d / "run20-seq4.dat").st_mode)
    farm.raw("run20-seq7.dat", 20)
    farm.wait_state("run20-seq7.dat", "stored")
    assert sorted(p.name for p in stored.parent.iterdir()) == ["run20-seq6.dat", "run20-seq7.dat"]


def test_a_hard_link_of_a_file_still_written_elsewhere_waits_for_its_writer(
    farm: Farm, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="farmtools.ingest")
    farm.cfg = _ingest(farm.cfg, rescan_s=0)
    farm.start_watch()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data = write_raw(tmp_path / "template.dat", 21, events=4).read_bytes()
    src = elsewhere / "writing.dat"
    with open(src, "wb") as writer:
        writer.write(data[:-500])
        writer.flush()
        os.link(src, farm.daq / "run21-seq0.dat")
        wait_for(
            lambda: "run21-seq0.dat: still open for writing through another" in caplog.text,
            what="the watcher to look at the hard link",
        )
        farm.raw("run21-seq1.dat", 21)  # it works on meanwhile
        farm.wait_state("run21-seq1.dat", "stored")
        assert farm.bk.get("run21-seq0.dat") is None, "taken while open for writing"
        writer.write(data[-500:])
    # closed in a directory nobody watches: the watcher finds out by looking again
    farm.wait_state("run21-seq0.dat", "stored")
    stored = farm.cfg.path(farm.cfg.storage.input) / "run21" / "run21-seq0.dat"
    assert stored.read_bytes() == data


def test_the_rescan_finds_what_no_event_announced(
    farm: Farm, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A directory mounted over a watched run directory: the watch stays on the covered
    directory, so nothing written into the mounted one sends an event."""
    if os.geteuid() != 0:
        pytest.fail("the tests run as root (a bind mount hides the events here)")
    caplog.set_level(logging.INFO, logger="farmtools.ingest")
    farm.cfg = _ingest(farm.cfg, rescan_s=0.2)
    farm.start_watch()
    farm.raw("run22-seq0.dat", 22, sub="run22")
    farm.wait_state("run22-seq0.dat", "stored")  # run22 is watched now
    other = tmp_path / "other"
    other.mkdir()
    run_dir = farm.daq / "run22"
    subprocess.run(["mount", "--bind", str(other), str(run_dir)], check=True)
    try:
        write_raw(run_dir / "run22-seq1.dat", 22)
        farm.wait_state("run22-seq1.dat", "stored")
        assert f"{run_dir}: directory not watched" in caplog.text
        assert "rescan: 1 entry not handled yet" in caplog.text
    finally:
        subprocess.run(["umount", "-l", str(run_dir)], check=False)


def test_a_queue_overflow_rescans_and_watches_the_directories_it_hid(
    farm: Farm, watch_process: Callable[[FarmConfig], WatchProcess]
) -> None:
    """The daemon stopped (SIGSTOP) while more events arrive than the kernel queues: a run
    directory created meanwhile announced nothing; after the overflow it is watched, so its
    next file is seen through events (the periodic rescan is off)."""
    daemon = watch_process(_ingest(farm.cfg, rescan_s=0))
    pid = daemon.start(farm.bk)
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    a, b = farm.daq / "flood-a", farm.daq / "flood-b"
    a.write_bytes(b""), b.write_bytes(b"")
    farm.wait_state("flood-b", "ignored")
    os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(limit // 2 + 100):  # alternate: equal consecutive events merge
            os.chmod(a, 0o600 + i % 2)
            os.chmod(b, 0o600 + i % 2)
        farm.raw("run40-seq0.dat", 40, sub="run40")
    finally:
        os.kill(pid, signal.SIGCONT)
    farm.wait_state("run40-seq0.dat", "stored")
    farm.raw("run40-seq1.dat", 40, sub="run40")
    farm.wait_state("run40-seq1.dat", "stored")
    log = daemon.log.read_text()
    assert "inotify queue overflowed" in log
    assert f"{farm.daq / 'run40'}: directory not watched" in log
