"""Re-read an archive where it lies and check every member against the manifest and the database.

One sequential pass over the tar (big reads, works the same on a local disk and over XRootD):
each member's data are summed with adler32 as they stream past, the whole file's adler32 and
size are summed too, and at the end the manifest (the last member) is compared with what was
read; when the caller passes what the bookkeeping recorded, that is compared as well.  Every
disagreement becomes one line in :attr:`VerifyResult.problems` that names the member, so a
flipped byte in ``run1012-seq3.dat`` is reported as that file, not as "archive bad".
A damaged tar header ends the readable part of the archive: the members after it are then
reported missing.  Imports the archive manifest/checksum/location modules and
:mod:`farmtools.storage.checksum` only.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from farmtools.archive.checksum import adler32_combine
from farmtools.archive.manifest import MANIFEST_SUFFIX, Manifest, ManifestError, MemberInfo
from farmtools.storage.checksum import adler32_hex
from farmtools.storage.location import Reader

CHUNK = 8 << 20


@dataclass(frozen=True)
class Expected:
    """What the bookkeeping says a member is: size and adler32 (of the original raw file)."""

    size: int
    adler32: int


@dataclass
class VerifyResult:
    """Outcome of :func:`verify_stream`: empty :attr:`problems` means the archive is good."""

    location: str
    size: int = 0
    adler32: int = 1
    members: int = 0
    manifest: Manifest | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Summing:
    """Reads from a location and sums every byte (for the archive's own checksum)."""

    def __init__(self, reader: Reader, progress: Callable[[int], None] | None) -> None:
        self._reader = reader
        self._progress = progress
        self.size = 0
        self.adler32 = zlib.adler32(b"")

    def read(self, n: int = -1) -> bytes:
        data = self._reader.read(CHUNK if n is None or n < 0 else n)
        if data:
            self.adler32 = adler32_combine(self.adler32, zlib.adler32(data), len(data))
            self.size += len(data)
            if self._progress is not None:
                self._progress(len(data))
        return data


def _member_sum(tar: tarfile.TarFile, info: tarfile.TarInfo) -> tuple[int, int]:
    f = tar.extractfile(info)
    if f is None:
        return 0, zlib.adler32(b"")
    total, adler = 0, zlib.adler32(b"")
    while chunk := f.read(CHUNK):
        adler = zlib.adler32(chunk, adler)
        total += len(chunk)
    return total, adler


def verify_stream(
    reader: Reader,
    *,
    expected_members: Mapping[str, Expected] | None = None,
    expected_archive: tuple[int, int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Check the archive read from ``reader``; see the module docstring.

    ``expected_members`` maps raw file names to what the bookkeeping recorded;
    ``expected_archive`` is the (size, adler32) of the whole tar recorded when it was written.
    """
    where = reader.location
    result = VerifyResult(where)
    summing = _Summing(reader, progress)
    seen: dict[str, tuple[int, int, str]] = {}  # raw name -> (size, adler32, member path)
    manifest_blob: bytes | None = None
    try:
        with tarfile.open(fileobj=summing, mode="r|", bufsize=CHUNK) as tar:  # type: ignore[call-overload]
            for info in tar:
                if info.name.endswith(MANIFEST_SUFFIX):
                    f = tar.extractfile(info)
                    manifest_blob = f.read() if f is not None else b""
                    continue
                size, adler = _member_sum(tar, info)
                if size != info.size:
                    result.problems.append(f"{info.name}: truncated ({size} of {info.size} bytes)")
                seen[info.name.rsplit("/", 1)[-1]] = (size, adler, info.name)
                result.members += 1
    except (tarfile.TarError, EOFError, OSError) as exc:
        result.problems.append(
            f"{where}: tar structure damaged after {len(seen)} members near byte "
            f"{summing.size}: {exc}"
        )
    while summing.read(CHUNK):  # the end-of-archive blocks count in the file's checksum too
        pass
    result.size, result.adler32 = summing.size, summing.adler32

    if manifest_blob is None:
        result.problems.append(f"{where}: no manifest member (*{MANIFEST_SUFFIX}) found")
    else:
        try:
            result.manifest = Manifest.from_bytes(manifest_blob, where)
        except ManifestError as exc:
            result.problems.append(str(exc))
    if result.manifest is not None:
        _compare(result, seen, {m.name: m for m in result.manifest.members}, "manifest")
    if expected_members is not None:
        _compare(result, seen, expected_members, "database")
    if expected_archive is not None:
        size, adler = expected_archive
        if (result.size, result.adler32) != (size, adler):
            result.problems.append(
                f"{where}: archive is {result.size} bytes, adler32 "
                f"{adler32_hex(result.adler32)}; recorded {size} bytes, adler32 "
                f"{adler32_hex(adler)}"
            )
    return result


def _compare(
    result: VerifyResult,
    seen: Mapping[str, tuple[int, int, str]],
    expected: Mapping[str, Expected] | Mapping[str, MemberInfo],
    source: str,
) -> None:
    for name, exp in expected.items():
        got = seen.get(name)
        if got is None:
            result.problems.append(f"{name}: listed in the {source} but missing from the archive")
            continue
        size, adler, member = got
        if size != exp.size or adler != exp.adler32:
            result.problems.append(
                f"{member}: adler32 {adler32_hex(adler)} size {size} in the archive, "
                f"{source} says adler32 {adler32_hex(exp.adler32)} size {exp.size}"
            )
    for name in seen.keys() - expected.keys():
        result.problems.append(f"{seen[name][2]}: in the archive but not in the {source}")
