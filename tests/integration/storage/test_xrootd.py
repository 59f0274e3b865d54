"""XRootDStorage against a real xrootd server (adler32 enabled), started by the fixture."""

from __future__ import annotations

import os
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from farmtools.config import FarmConfig
from farmtools.storage import (
    ChecksumMismatch,
    DestinationConflict,
    TransientStorageError,
    XRootDStorage,
    storage_from_config,
)
from tests.servers.xrootd import XRootDServer

pytestmark = pytest.mark.xrootd


@pytest.fixture
def store(xrootd_server: XRootDServer) -> XRootDStorage:
    """A fresh directory on the session's server for each test."""
    return XRootDStorage(xrootd_server.url, f"/tests/{uuid.uuid4().hex}/input")


def _on_server(server: XRootDServer, store: XRootDStorage, rel: str) -> Path:
    """Where the server keeps ``rel`` on its own disk."""
    return server.root / store._path(rel).lstrip("/")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    p = tmp_path / "run1014-seq2.dat"
    p.write_bytes(os.urandom((9 << 20) + 12345))  # more than one 8 MiB chunk, odd size
    return p


DEST = "run1014/run1014-seq2.dat"


def test_put_is_verified_by_the_server_checksum(
    xrootd_server: XRootDServer, store: XRootDStorage, src: Path
) -> None:
    data = src.read_bytes()
    mtime = src.stat().st_mtime_ns
    res = store.put(src, DEST)
    assert res.copied and res.size == len(data)
    assert res.adler32 == f"{zlib.adler32(data):08x}"
    assert res.url == f"{xrootd_server.url}/{store.root_path}/{DEST}"
    assert _on_server(xrootd_server, store, DEST).read_bytes() == data
    assert store.checksum(DEST) == zlib.adler32(data)  # the server's own query
    assert store.list("run1014") == ["run1014-seq2.dat"]  # no temporary file left
    info = store.stat("run1014")
    assert info is not None and info.is_dir
    assert store.stat("run1014/none.dat") is None and store.checksum("run1014/none.dat") is None
    assert src.read_bytes() == data and src.stat().st_mtime_ns == mtime


def test_small_files_and_leading_zero_checksums(store: XRootDStorage, tmp_path: Path) -> None:
    for name, data in [("empty", b""), ("zero", b"\x00"), ("short", b"ab")]:
        p = tmp_path / name
        p.write_bytes(data)
        res = store.put(p, f"run1/{name}.dat")
        assert res.adler32 == f"{zlib.adler32(data):08x}"  # "00010001" for b"\x00"
        assert store.checksum(f"run1/{name}.dat") == zlib.adler32(data)
        assert not store.put(p, f"run1/{name}.dat").copied


def test_the_final_name_appears_only_after_the_server_verified_it(
    xrootd_server: XRootDServer,
    store: XRootDStorage,
    src: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, object] = {}
    verify = store._verified_checksum

    def spy(tmp_rel: str, copied: int) -> int:
        seen["tmp"] = tmp_rel
        seen["final"] = store.stat(DEST)
        info = store.stat(tmp_rel)
        seen["tmp size"] = info.size if info else None
        return verify(tmp_rel, copied)

    monkeypatch.setattr(store, "_verified_checksum", spy)
    store.put(src, DEST)
    assert seen == {
        "tmp": "run1014/.run1014-seq2.dat.part",
        "final": None,
        "tmp size": src.stat().st_size,
    }
    assert store.list("run1014") == ["run1014-seq2.dat"]


def test_a_checksum_mismatch_leaves_nothing(
    store: XRootDStorage, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes damaged on the way: the server's adler32 differs from what was read."""
    copy = store._copy

    def damaged(src_: Path, dest_rel: str, tmp_rel: str) -> tuple[int, int]:
        size, value = copy(src_, dest_rel, tmp_rel)
        return size, value ^ 0x10  # as if one bit had flipped between source and server

    monkeypatch.setattr(store, "_copy", damaged)
    with pytest.raises(ChecksumMismatch, match=r"adler32 at the destination .* != source") as err:
        store.put(src, DEST)
    assert err.value.transient and err.value.path.endswith(DEST)
    assert store.list("run1014") == []  # the temporary file was removed
    assert store.stat(DEST) is None


@pytest.mark.parametrize("same_size", [False, True])
def test_different_bytes_on_the_server_are_never_overwritten(
    xrootd_server: XRootDServer, store: XRootDStorage, src: Path, tmp_path: Path, same_size: bool
) -> None:
    other = tmp_path / "other.dat"
    other.write_bytes(b"Y" + src.read_bytes()[1:] if same_size else b"other bytes")
    store.put(other, DEST)
    on_disk = _on_server(xrootd_server, store, DEST)
    before = (on_disk.read_bytes(), on_disk.stat().st_mtime_ns)
    with pytest.raises(DestinationConflict, match="already holds different bytes") as err:
        store.put(src, DEST)
    assert err.value.path == store.url(DEST) and not err.value.transient
    assert (on_disk.read_bytes(), on_disk.stat().st_mtime_ns) == before
    assert store.list("run1014") == ["run1014-seq2.dat"]


def test_a_file_published_meanwhile_is_not_replaced(
    store: XRootDStorage, src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from XRootD import client
    from XRootD.client.flags import OpenFlags

    other = tmp_path / "other.dat"
    other.write_bytes(b"the other writer was faster")
    verify = store._verified_checksum

    def race(tmp_rel: str, copied: int) -> int:
        # another program (not farmtools, which claims first) writes the final name directly
        f = client.File()
        assert f.open(store.url(DEST), OpenFlags.NEW)[0].ok
        assert f.write(other.read_bytes())[0].ok
        assert f.close()[0].ok
        return verify(tmp_rel, copied)

    monkeypatch.setattr(store, "_verified_checksum", race)
    with pytest.raises(DestinationConflict):
        store.put(src, DEST)
    assert store.checksum(DEST) == zlib.adler32(b"the other writer was faster")
    assert store.list("run1014") == ["run1014-seq2.dat"]


def test_server_down_is_transient_and_names_the_file(
    xrootd_factory: Callable[[], XRootDServer], src: Path
) -> None:
    server = xrootd_factory()
    store = XRootDStorage(server.url, "/input")
    server.stop()
    with pytest.raises(TransientStorageError) as err:
        store.put(src, DEST)
    assert err.value.transient and err.value.path == f"{server.url}//input/{DEST}"
    assert str(err.value).startswith(f"{server.url}//input/{DEST}: ")
    server.start()  # same port: the same storage object works again, nothing to reset
    assert store.put(src, DEST).copied
    assert store.checksum(DEST) == zlib.adler32(src.read_bytes())


def test_storage_from_config(xrootd_server: XRootDServer) -> None:
    cfg = FarmConfig.model_validate(
        {"storage": {"backend": "xrootd", "url": xrootd_server.url, "input": "/eos/wa105/input"}}
    )
    st = storage_from_config(cfg)
    assert isinstance(st, XRootDStorage)
    assert (
        st.url("run1/run1-seq0.dat") == f"{xrootd_server.url}//eos/wa105/input/run1/run1-seq0.dat"
    )
    with pytest.raises(ValueError, match="expected root://"):
        XRootDStorage("http://127.0.0.1:1", "/x")
