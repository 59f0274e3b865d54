"""The chaos storage outage on a real read-only bind mount (root only): made, undone, cleaned up.

What the challenge relies on: writes get EROFS while the outage lasts and work again after it;
a challenge killed with -9 in the middle leaves a marker that the next one uses to undo the
mount, and nothing else is ever unmounted (a storage directory that is a mount point of its own
stays mounted); a refused first attempt is retried and every failed attempt is named.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from farmtools.challenge import chaos
from farmtools.challenge.chaos import StorageOutage, is_mount_point

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "storage" / "input"
    d.mkdir(parents=True)
    (d / "run1").mkdir()
    (d / "run1" / "run1-seq0.dat").write_bytes(b"stored raw bytes")
    yield d
    while is_mount_point(d):  # whatever a failed test left behind
        subprocess.run(["umount", "-l", str(d)], check=True)


def _writable(d: Path) -> bool:
    try:
        (d / "probe").write_bytes(b"x")
    except OSError:
        return False
    (d / "probe").unlink()
    return True


def test_outage_refuses_writes_keeps_reads_and_ends(storage: Path, tmp_path: Path) -> None:
    marker = tmp_path / "home" / "storage-outage.mounted"
    outage = StorageOutage(storage, marker)
    how = outage.start()
    assert "read-only" in how and "Read-only file system" in how
    assert is_mount_point(storage) and marker.read_text().strip() == str(storage)
    assert not _writable(storage)
    assert (storage / "run1" / "run1-seq0.dat").read_bytes() == b"stored raw bytes"
    assert outage.end() is None
    assert not is_mount_point(storage) and not marker.exists()
    assert _writable(storage)


def test_a_killed_challenge_is_cleaned_up_by_the_next(storage: Path, tmp_path: Path) -> None:
    marker = tmp_path / "home" / "storage-outage.mounted"
    StorageOutage(storage, marker).start()  # ... and the challenge is killed: no end()
    assert not _writable(storage)
    said = StorageOutage.leftover(storage, marker)
    assert said is not None and str(storage) in said
    assert not is_mount_point(storage) and _writable(storage) and not marker.exists()
    assert StorageOutage.leftover(storage, marker) is None  # nothing more to do


def test_a_mount_point_of_its_own_is_never_unmounted(storage: Path, tmp_path: Path) -> None:
    # the storage directory is a mount of its own (here a tmpfs, on a farm a disk), no marker
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "ft-test", str(storage)], check=True)
    try:
        assert StorageOutage.leftover(storage, tmp_path / "home" / "none.mounted") is None
        assert is_mount_point(storage) and _writable(storage)
        # an outage on top of it and its end leave the storage's own mount in place
        outage = StorageOutage(storage, tmp_path / "home" / "storage-outage.mounted")
        outage.start()
        assert not _writable(storage)
        assert outage.end() is None
        assert is_mount_point(storage) and _writable(storage)
    finally:
        subprocess.run(["umount", str(storage)], check=True)


def test_a_refused_attempt_is_retried_and_named(
    storage: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection: the first `mount --bind` is refused as a busy mount table would; the
    # others run the real command.
    real = chaos._mount
    refused: list[tuple[str, ...]] = []

    def flaky(*args: str) -> str | None:
        if "--bind" in args and not refused:
            refused.append(args)
            return "`mount --bind` exit 32: mount table busy"
        return real(*args)

    monkeypatch.setattr(chaos, "_mount", flaky)
    monkeypatch.setattr(chaos, "MOUNT_ATTEMPTS", 2)
    outage = StorageOutage(storage, tmp_path / "home" / "storage-outage.mounted")
    assert "read-only" in outage.start() and refused
    assert not _writable(storage)
    assert outage.end() is None and _writable(storage)
    # every attempt refused: the error names each one, and nothing is left mounted
    monkeypatch.setattr(chaos, "_mount", lambda *a: "`mount --bind` exit 32: busy")
    with pytest.raises(RuntimeError, match=r"attempt 1: .*busy; attempt 2: .*busy"):
        StorageOutage(storage, tmp_path / "home" / "storage-outage.mounted").start()
    assert not is_mount_point(storage) and _writable(storage)
