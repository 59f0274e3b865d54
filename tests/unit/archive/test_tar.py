"""The streaming tar writer, verify and restore on real files (plain bytes with raw-file names)."""

from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farmtools.archive.checksum import adler32_combine
from farmtools.archive.manifest import Manifest, parse_log_checksum
from farmtools.archive.restore import RestoreError, restore_member
from farmtools.archive.tarwriter import ArchiveError, Source, write_archive
from farmtools.archive.verify import Expected, verify_stream
from farmtools.storage.location import open_reader


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.binary(max_size=3000))
def test_adler32_combine_matches_zlib(a: bytes, b: bytes) -> None:
    assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


def test_adler32_combine_long_second_part() -> None:
    a, b = b"\xff" * 70_001, os.urandom(200_003)
    assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


def _raw_files(d: Path) -> list[Source]:
    d.mkdir()
    out = []
    for run, seq, n in [(1012, 0, 1000), (1012, 1, 70_001), (1013, 0, 0), (1014, 0, 2_000_000)]:
        p = d / f"run{run}-seq{seq}.dat"
        data = os.urandom(n)
        p.write_bytes(data)
        out.append(Source(p, n, zlib.adler32(data)))
    return out


def _expected(sources: list[Source]) -> dict[str, Expected]:
    return {Path(s.location).name: Expected(s.size or 0, s.adler32 or 1) for s in sources}


def test_round_trip(tmp_path: Path) -> None:
    sources = _raw_files(tmp_path / "src")
    w = write_archive(tmp_path / "out", "hv-scan_1012.0-1014.0", "hv-scan", sources)
    blob = w.path.read_bytes()
    # the archive's checksum, computed in one pass while writing, is the file's checksum
    assert (len(blob), zlib.adler32(blob)) == (w.size, w.adler32)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "hv-scan_1012.0-1014.0.log",
        "hv-scan_1012.0-1014.0.tar",
    ]
    # any tar reader sees the files in the farm layout and the manifest last
    with tarfile.open(w.path) as t:
        names = t.getnames()
        assert names[:-1] == [
            "run1012/run1012-seq0.dat",
            "run1012/run1012-seq1.dat",
            "run1013/run1013-seq0.dat",
            "run1014/run1014-seq0.dat",
        ]
        f = t.extractfile(names[-1])
        assert f is not None
        manifest = Manifest.from_bytes(f.read(), "test")
    assert manifest.tag == "hv-scan" and manifest.runs == (1012, 1013, 1014)
    for m, s in zip(manifest.members, sources, strict=True):
        assert (m.size, m.adler32) == (s.size, s.adler32)
        assert blob[m.offset : m.offset + m.size] == Path(s.location).read_bytes()
    # the log: one line per member, the archive checksum last
    log = w.log_path.read_text()
    assert parse_log_checksum(log, "log") == (w.size, w.adler32)
    assert sum(1 for line in log.splitlines() if line.endswith(".dat")) == 4

    with open_reader(str(w.path)) as r:
        res = verify_stream(
            r, expected_members=_expected(sources), expected_archive=(w.size, w.adler32)
        )
    assert res.ok, res.problems
    assert res.members == 4

    m = manifest.members[1]
    with open_reader(str(w.path)) as r:
        out = restore_member(r, m.name, m.offset, m.size, m.adler32, tmp_path / "restored")
    assert out.read_bytes() == Path(sources[1].location).read_bytes()
    assert not (tmp_path / "restored" / (m.name + ".part")).exists()
    with open_reader(str(w.path)) as r, pytest.raises(RestoreError, match="already exists"):
        restore_member(r, m.name, m.offset, m.size, m.adler32, tmp_path / "restored")


def test_flipped_byte_is_found_and_named(tmp_path: Path) -> None:
    sources = _raw_files(tmp_path / "src")
    w = write_archive(tmp_path / "out", "auto_1012.0-1014.0", "auto", sources)
    m = w.manifest.members[3]
    bad = tmp_path / "bad.tar"
    blob = bytearray(w.path.read_bytes())
    blob[m.offset + 123_456] ^= 0x01
    bad.write_bytes(bytes(blob))
    with open_reader(str(bad)) as r:
        res = verify_stream(
            r, expected_members=_expected(sources), expected_archive=(w.size, w.adler32)
        )
    assert not res.ok
    assert any(p.startswith("run1014/run1014-seq0.dat:") and "manifest" in p for p in res.problems)
    assert any(p.startswith("run1014/run1014-seq0.dat:") and "database" in p for p in res.problems)
    assert not any("run1012" in p for p in res.problems)
    # restoring the damaged member is refused; the good one still comes back
    with open_reader(str(bad)) as r, pytest.raises(RestoreError, match="adler32"):
        restore_member(r, m.name, m.offset, m.size, m.adler32, tmp_path / "r")
    assert not (tmp_path / "r" / m.name).exists()


def test_damaged_header_reports_missing_members(tmp_path: Path) -> None:
    sources = _raw_files(tmp_path / "src")
    w = write_archive(tmp_path / "out", "auto_x", "auto", sources)
    m = w.manifest.members[2]  # run1013-seq0.dat: its header sits 512 bytes before its data
    blob = bytearray(w.path.read_bytes())
    blob[m.offset - 512 + 10] ^= 0x20
    (tmp_path / "bad.tar").write_bytes(bytes(blob))
    with open_reader(str(tmp_path / "bad.tar")) as r:
        res = verify_stream(r, expected_members=_expected(sources))
    assert not res.ok
    assert any("run1013-seq0.dat" in p for p in res.problems)


def test_corrupt_source_is_not_archived(tmp_path: Path) -> None:
    sources = _raw_files(tmp_path / "src")
    victim = Path(sources[1].location)
    data = bytearray(victim.read_bytes())
    data[5] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"run1012-seq1\.dat.*adler32"):
        write_archive(tmp_path / "out", "auto_x", "auto", sources)
    assert list((tmp_path / "out").iterdir()) == []  # no .part, no half archive
    short = [Source(sources[0].location, 999, sources[0].adler32)]
    with pytest.raises(ArchiveError, match=r"run1012-seq0\.dat.*size"):
        write_archive(tmp_path / "out", "auto_y", "auto", short)


def test_existing_archive_is_never_overwritten(tmp_path: Path) -> None:
    sources = _raw_files(tmp_path / "src")
    w = write_archive(tmp_path / "out", "auto_x", "auto", sources[:1])
    before = w.path.read_bytes()
    with pytest.raises(ArchiveError, match="already exists"):
        write_archive(tmp_path / "out", "auto_x", "auto", sources)
    assert w.path.read_bytes() == before


def test_non_raw_name_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_bytes(b"x")
    with pytest.raises(ArchiveError, match="not a raw file name"):
        write_archive(tmp_path / "out", "auto_x", "auto", [Source(p)])
