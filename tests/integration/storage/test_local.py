"""LocalStorage on the real file system: verified, durable, atomic, never overwriting."""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import tempfile
import threading
import zlib
from pathlib import Path

import pytest

from farmtools.config import FarmConfig
from farmtools.storage import (
    ChecksumMismatch,
    DestinationConflict,
    LocalStorage,
    SourceChanged,
    StorageError,
    TransientStorageError,
    storage_from_config,
)
from farmtools.storage import local as local_mod
from tests.eventually import eventually

DEST = "run1014/run1014-seq2.dat"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    p = tmp_path / "evb" / "run1014-seq2.dat"
    p.parent.mkdir()
    p.write_bytes(os.urandom(3 << 20) + b"tail")  # not a multiple of anything
    return p


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage" / "input")


def _files_below(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_put_copies_verifies_and_leaves_the_source_alone(src: Path, store: LocalStorage) -> None:
    before = (src.read_bytes(), src.stat().st_mtime_ns, src.stat().st_mode)
    res = store.put(src, DEST)
    data = before[0]
    assert res.copied and res.size == len(data)
    assert res.adler32 == f"{zlib.adler32(data):08x}"
    assert res.url == str(store.root / DEST)
    assert (store.root / DEST).read_bytes() == data
    assert _files_below(store.root) == [DEST]  # no temporary file left
    assert (src.read_bytes(), src.stat().st_mtime_ns, src.stat().st_mode) == before
    assert store.checksum(DEST) == zlib.adler32(data)
    assert store.stat(DEST) is not None and store.stat("run1014") is not None
    assert store.stat("run1014").is_dir  # type: ignore[union-attr]
    assert store.list("run1014") == ["run1014-seq2.dat"]
    assert store.stat("run9/none.dat") is None and store.checksum("run9/none.dat") is None


def test_empty_file(tmp_path: Path, store: LocalStorage) -> None:
    empty = tmp_path / "run1-seq0.dat"
    empty.write_bytes(b"")
    res = store.put(empty, "run1/run1-seq0.dat")
    assert (res.size, res.adler32, res.copied) == (0, "00000001", True)
    assert (store.root / "run1/run1-seq0.dat").read_bytes() == b""


def test_the_final_name_appears_only_when_complete(
    src: Path, store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}
    verify = store._verified_checksum

    def spy(tmp_rel: str, copied: int) -> int:
        seen["final exists"] = (store.root / DEST).exists()
        seen["tmp size"] = (store.root / tmp_rel).stat().st_size
        seen["tmp"] = tmp_rel
        return verify(tmp_rel, copied)

    monkeypatch.setattr(store, "_verified_checksum", spy)
    store.put(src, DEST)
    assert seen == {
        "final exists": False,
        "tmp size": src.stat().st_size,
        "tmp": "run1014/.run1014-seq2.dat.part",
    }


def test_data_and_directories_are_fsynced(
    src: Path, store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(local_mod.os, "fsync", fsync)
    store.put(src, DEST)
    run_dir = str(store.root / "run1014")
    data = str(store.root / "run1014/.run1014-seq2.dat.part")
    assert str(store.root) in synced  # the new run directory's name
    assert data in synced  # the bytes, before the name is published...
    assert synced[-1] == run_dir  # ...and then the new name
    assert synced.index(data) < len(synced) - 1


def test_same_bytes_already_there_are_not_copied_again(src: Path, store: LocalStorage) -> None:
    store.put(src, DEST)
    mtime = (store.root / DEST).stat().st_mtime_ns
    res = store.put(src, DEST)
    assert not res.copied and res.adler32 == f"{zlib.adler32(src.read_bytes()):08x}"
    assert (store.root / DEST).stat().st_mtime_ns == mtime


@pytest.mark.parametrize("other", [b"different bytes", None])
def test_different_bytes_are_never_overwritten(
    src: Path, store: LocalStorage, other: bytes | None
) -> None:
    final = store.root / DEST
    final.parent.mkdir(parents=True)
    # other content, or the same size with one byte changed
    content = other if other is not None else b"X" + src.read_bytes()[1:]
    final.write_bytes(content)
    mtime = final.stat().st_mtime_ns
    with pytest.raises(DestinationConflict) as err:
        store.put(src, DEST)
    assert err.value.path == str(final) and not err.value.transient
    assert "already holds different bytes" in str(err.value) and str(final) in str(err.value)
    assert final.read_bytes() == content and final.stat().st_mtime_ns == mtime
    assert _files_below(store.root) == [DEST]


def test_a_file_published_by_someone_else_meanwhile_is_not_replaced(
    src: Path, store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    verify = store._verified_checksum

    def race(tmp_rel: str, copied: int) -> int:
        (store.root / DEST).write_bytes(b"the other writer was faster")
        return verify(tmp_rel, copied)

    monkeypatch.setattr(store, "_verified_checksum", race)
    with pytest.raises(DestinationConflict):
        store.put(src, DEST)
    assert (store.root / DEST).read_bytes() == b"the other writer was faster"
    assert _files_below(store.root) == [DEST]


def test_same_bytes_published_meanwhile_count_as_stored(
    src: Path, store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    verify = store._verified_checksum

    def race(tmp_rel: str, copied: int) -> int:
        (store.root / DEST).write_bytes(src.read_bytes())
        return verify(tmp_rel, copied)

    monkeypatch.setattr(store, "_verified_checksum", race)
    assert not store.put(src, DEST).copied
    assert _files_below(store.root) == [DEST]


def test_a_stale_temporary_file_of_a_dead_copy_is_replaced(src: Path, store: LocalStorage) -> None:
    tmp = store.root / "run1014/.run1014-seq2.dat.part"
    tmp.parent.mkdir(parents=True)
    tmp.write_bytes(b"half a file from a worker killed mid-copy" * 1000)
    store.put(src, DEST)
    assert (store.root / DEST).read_bytes() == src.read_bytes()
    assert _files_below(store.root) == [DEST]


def _put_as_nobody(root: Path, src: Path) -> tuple[str, bool, str, str]:
    """``put`` in a forked child that dropped root (root writes anywhere): the real check."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the error on the pipe, never return into pytest
        try:
            os.close(rfd)
            if os.geteuid() == 0:
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            try:
                LocalStorage(root).put(src, DEST)
                report = "no error"
            except StorageError as exc:
                report = f"{type(exc).__name__}\0{exc.transient}\0{exc.path}\0{exc}"
            os.write(wfd, report.encode())
        finally:
            os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        report = f.read().decode()
    os.waitpid(pid, 0)
    kind, transient, path, message = report.split("\0")
    return kind, transient == "True", path, message


def test_an_unwritable_directory_gives_a_storage_error_naming_the_path() -> None:
    base = Path(tempfile.mkdtemp(prefix="ft-unwritable-"))
    try:
        base.chmod(0o755)
        root = base / "input"
        (root / "run1014").mkdir(parents=True)
        (root / "run1014").chmod(0o555)
        src = base / "run1014-seq2.dat"
        src.write_bytes(b"raw data")
        src.chmod(0o644)
        kind, transient, path, message = _put_as_nobody(root, src)
        assert (kind, transient) == ("StorageError", False)
        assert path == str(root / "run1014/.run1014-seq2.dat.part")
        assert message == f"{path}: Permission denied (errno 13)"
        assert not (root / DEST).exists()
    finally:
        shutil.rmtree(base)


def test_a_read_only_storage_is_a_transient_error_naming_the_file(
    src: Path, store: LocalStorage
) -> None:
    # a real read-only mount (as the challenge's storage outage makes it): the removal of the
    # temporary file fails too (EROFS comes before the name is even looked up), and that must
    # not hide the copy's own error behind a bare OSError
    from farmtools.challenge.chaos import StorageOutage

    if os.geteuid() != 0:
        pytest.skip("not root: a read-only bind mount cannot be made")
    (store.root / "run1014").mkdir(parents=True)
    outage = StorageOutage(store.root, store.root.parent / "storage-outage.mounted")
    outage.start()
    try:
        with pytest.raises(TransientStorageError) as caught:
            store.put(src, DEST)
    finally:
        assert outage.end() is None
    assert caught.value.path == str(store.root / "run1014/.run1014-seq2.dat.part")
    assert "Read-only file system (errno 30)" in str(caught.value)
    assert _files_below(store.root) == []
    assert store.put(src, DEST).copied  # writable again: the next try goes through


def test_a_failed_clean_up_never_hides_why_the_copy_failed(
    src: Path, store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # injected: the disk fills during the copy, then the removal of the .part fails as well
    def full(*_args: object) -> tuple[int, int]:
        raise TransientStorageError("/st/run1014/.run1014-seq2.dat.part", "No space left on device")

    def refuse(tmp_rel: str) -> None:
        raise StorageError(tmp_rel, "Permission denied")

    monkeypatch.setattr(store, "_copy", full)
    monkeypatch.setattr(store, "_discard", refuse)
    with pytest.raises(TransientStorageError, match="No space left on device"):
        store.put(src, DEST)


def test_destination_errors_are_storage_errors(tmp_path: Path, src: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the storage root should be")
    with pytest.raises(StorageError, match="not-a-dir"):
        LocalStorage(blocker).put(src, DEST)
    assert issubclass(TransientStorageError, StorageError)


def test_storage_from_config(tmp_path: Path) -> None:
    cfg = FarmConfig.model_validate(
        {"farm": {"home": str(tmp_path)}, "ingest": {"max_rate_mb_s": 50}}
    )
    st = storage_from_config(cfg)
    assert isinstance(st, LocalStorage) and st.root == tmp_path / "storage" / "input"
    assert st.max_rate == 50e6


def test_where_the_kernel_copy_is_refused_the_mapped_copy_is_used(
    src: Path, store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def refuse(*args: object) -> int:
        calls.append(1)
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(local_mod.os, "copy_file_range", refuse)
    res = store.put(src, DEST)
    assert calls == [1]
    assert res.copied and res.adler32 == f"{zlib.adler32(src.read_bytes()):08x}"
    assert (store.root / DEST).read_bytes() == src.read_bytes()
    assert _files_below(store.root) == [DEST]


def test_a_source_that_shrinks_mid_copy_is_an_error_naming_it(
    src: Path, store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.copy_file_range

    def short(fd_in: int, fd_out: int, count: int, off_in: int, off_out: int) -> int:
        return 0 if off_in > 0 else real(fd_in, fd_out, min(count, 1000), off_in, off_out)

    monkeypatch.setattr(local_mod.os, "copy_file_range", short)
    with pytest.raises(TransientStorageError, match="source shrank during the copy") as err:
        store.put(src, DEST)
    assert err.value.path == str(src)
    assert _files_below(store.root) == []  # the partial copy was removed


def test_every_copied_range_is_handed_to_the_disk_early(
    src: Path, store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    ranges: list[tuple[int, int]] = []
    real = local_mod._start_writeback

    def spy(fd: int, off: int, n: int) -> None:
        ranges.append((off, n))
        real(fd, off, n)

    monkeypatch.setattr(local_mod, "_start_writeback", spy)
    store.put(src, DEST)
    assert ranges[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(ranges))
    assert sum(n for _, n in ranges) == src.stat().st_size


def test_bytes_changed_at_the_destination_during_the_copy_are_caught(
    src: Path, store: LocalStorage
) -> None:
    """Another writer damages the temporary file while the copy runs (no method replaced).

    The source's adler32 is right, so only a verification that reads the destination back can
    see it: ``put`` must raise ChecksumMismatch and publish nothing.
    """
    store.max_rate = 2e6  # 3 MiB in ~1.6 s, in 1 MiB steps: time to act in between
    tmp = store.root / "run1014/.run1014-seq2.dat.part"
    damaged = threading.Event()

    def vandal() -> None:
        _wait_for_first_mib(tmp)
        with open(tmp, "r+b") as f:  # the first MiB is already copied: never rewritten
            f.write(b"\xff" * 16)
        damaged.set()

    t = threading.Thread(target=vandal)
    t.start()
    with pytest.raises(ChecksumMismatch, match=r"adler32 at the destination .* != source") as err:
        store.put(src, DEST)
    t.join()
    assert damaged.is_set()
    assert err.value.transient and err.value.path == str(store.root / DEST)
    assert _files_below(store.root) == [], "a damaged copy was published or left behind"
    store.max_rate = 0
    assert store.put(src, DEST).copied  # the retry verifies
    assert (store.root / DEST).read_bytes() == src.read_bytes()


def test_a_source_truncated_during_a_buffered_copy_is_an_error_naming_it(
    store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read()+write() path (a tmpfs source: the kernel copy refuses, EXDEV) with a source
    that shrinks meanwhile: an error naming the source, never a SIGBUS, nothing left behind."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    store.root.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        if os.stat(shm).st_dev == os.stat(store.root).st_dev:
            pytest.skip("/dev/shm is on the storage's file system: no EXDEV")
        src = Path(shm) / "run1014-seq2.dat"
        src.write_bytes(os.urandom(8 << 20))
        store.max_rate = 4e6  # ~2 s, in 1 MiB steps
        refused: list[int] = []
        real = os.copy_file_range

        def spy(*args: int) -> int:  # only watches: the real call decides
            try:
                return real(*args)
            except OSError as exc:
                refused.append(exc.errno or 0)
                raise

        monkeypatch.setattr(local_mod.os, "copy_file_range", spy)
        timer = threading.Thread(
            target=_truncate_when_started, args=(store.root / "run1014/.run1014-seq2.dat.part", src)
        )
        timer.start()
        try:
            with pytest.raises(SourceChanged, match="source shrank during the copy") as err:
                store.put(src, DEST)
        finally:
            timer.join()
        assert refused == [errno.EXDEV], "the buffered path was not the one tested"
        assert err.value.path == str(src) and str(src) in str(err.value)
        assert _files_below(store.root) == []


def _wait_for_first_mib(tmp: Path, timeout: float = 30.0) -> None:
    """Until the copy's temporary file holds its first MiB (a paced copy is then under way)."""

    def size() -> int | None:
        try:
            return tmp.stat().st_size
        except FileNotFoundError:
            return None

    eventually(
        size,
        timeout,
        f"the first MiB copied into {tmp.name}",
        until=lambda n: n is not None and n >= 1 << 20,
        interval=0.002,
    )


def _truncate_when_started(tmp: Path, src: Path) -> None:
    _wait_for_first_mib(tmp)
    os.truncate(src, 4096)
