"""Write one archive: a POSIX tar of raw files streamed from disk, its manifest last, a log beside.

Why it is built this way:

* **Streaming, one pass.**  Each raw file is read once in large chunks (1 MiB, two reused
  buffers) through :mod:`tarfile`; each chunk's adler32 is computed on a helper thread while
  the chunk is being written, and, because the same chunk is what goes into the tar, the
  archive's own adler32 absorbs it with :func:`~farmtools.archive.checksum.adler32_combine`
  instead of summing the bytes again.  Only headers and padding are summed separately.
  Nothing holds more than two chunks in memory.
* **Checked sources.**  When the bookkeeping knows a file's adler32 (it was verified on ingest),
  the bytes read now must match it and keep the recorded size; otherwise the archive is abandoned
  with an :class:`ArchiveError` naming the file: a corrupted raw file must not be archived as if
  it were good.
* **Never half there.**  The tar and its log are written under ``.part`` names, flushed to disk
  and renamed; a crash leaves a ``.part`` file that the next attempt overwrites, never a
  truncated archive under the final name.  An existing archive is never overwritten.

Imports :mod:`farmtools.archive.manifest`, ``checksum``, ``location`` and
:mod:`farmtools.rawdata.naming` only.
"""

from __future__ import annotations

import io
import os
import tarfile
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from farmtools.archive.checksum import adler32_combine
from farmtools.archive.manifest import Manifest, MemberInfo, log_text
from farmtools.rawdata.naming import parse_raw_name
from farmtools.storage.checksum import adler32_hex
from farmtools.storage.location import LocationError, Reader, is_url, open_reader

#: Copy chunk.  Measured (benchmarks/bench_archive.py): 1 MiB chunks ran ~3x faster than 8 MiB
#: here, as a chunk then stays in the CPU cache between read, adler32 and write; Python's
#: per-call cost is already negligible at this size.
CHUNK = 1 << 20
TAR_SUFFIX = ".tar"
LOG_SUFFIX = ".log"
PART_SUFFIX = ".part"

#: Called with the number of bytes just copied (for progress bars).
Progress = Callable[[int], None]


class ArchiveError(Exception):
    """An archive cannot be written, read or trusted; the message names the file and the cause."""


@dataclass(frozen=True)
class Source:
    """A raw file to put in an archive, with what the bookkeeping knows of it (if anything).

    ``location`` is a local path or an XRootD URL (raw files on EOS); for a URL the size must
    be given, since it is what the tar header announces before the bytes are read.
    """

    location: str | Path
    size: int | None = None
    adler32: int | None = None


@dataclass(frozen=True)
class WrittenArchive:
    """An archive that exists under its final name, with its log."""

    path: Path
    log_path: Path
    size: int
    adler32: int
    manifest: Manifest

    @property
    def name(self) -> str:
        return self.manifest.archive


class _Sums:
    """An adler32 built from consecutive pieces, some still being summed on the helper thread.

    Pieces are folded in order with :func:`adler32_combine` as soon as they are ready, so the
    list stays short and :meth:`value` waits only for the last ones.
    """

    def __init__(self) -> None:
        self._value = zlib.adler32(b"")
        self._parts: deque[tuple[Future[int] | int, int]] = deque()

    def add(self, part: Future[int] | int, length: int) -> None:
        self._parts.append((part, length))
        self._fold(wait=False)

    def _fold(self, *, wait: bool) -> None:
        while self._parts:
            part, length = self._parts[0]
            if isinstance(part, Future):
                if not (wait or part.done()):
                    return
                part = part.result()
            self._value = adler32_combine(self._value, part, length)
            self._parts.popleft()

    def value(self) -> int:
        self._fold(wait=True)
        return self._value


class _SummingWriter:
    """The tar's output file: counts and sums what passes, reusing the sums of data chunks."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.position = 0
        self.sums = _Sums()
        #: The last chunk a reader handed out and its pending adler32 (set by the reader).
        self.known: tuple[memoryview | bytes, Future[int]] | None = None

    def write(self, b: bytes | memoryview) -> int:
        known = self.known
        if known is not None and known[0] is b:
            self.sums.add(known[1], len(b))
            self.known = None
        else:  # headers and padding: small, summed here
            self.sums.add(zlib.adler32(b), len(b))
        view = memoryview(b)
        while view:  # unbuffered: write() may in principle take less than it was given
            n = self._raw.write(view)
            view = view[n or 0 :]
        self.position += len(b)
        return len(b)

    def tell(self) -> int:
        return self.position


class _SummingReader:
    """A raw file read in chunks, each summed on a helper thread while tarfile writes it.

    Two buffers alternate (``readinto``; a fresh object per read costs page faults): while
    the chunk in one buffer is written by :mod:`tarfile` (a system call, no GIL), zlib sums it on
    the helper thread (zlib releases the GIL too), and a buffer is refilled only after its sum
    is done.  The member's and the archive's checksums both use that one sum.
    """

    def __init__(
        self, f: Reader, writer: _SummingWriter, pool: ThreadPoolExecutor, progress: Progress | None
    ) -> None:
        self._f = f
        self._writer = writer
        self._pool = pool
        self._progress = progress
        self._views = [memoryview(bytearray(CHUNK)), memoryview(bytearray(CHUNK))]
        self._busy: list[Future[int] | None] = [None, None]
        self._next = 0
        self.sums = _Sums()

    def read(self, n: int = -1) -> bytes | memoryview:
        readinto = getattr(self._f, "readinto", None)
        if readinto is not None and 0 < n <= CHUNK:
            k = self._next
            self._next ^= 1
            pending = self._busy[k]
            if pending is not None:
                pending.result()  # never refill a buffer that is still being summed
            got = readinto(self._views[k][:n])
            data: bytes | memoryview = self._views[k][:got]
        else:
            k = -1
            data = self._f.read(n)
        if data:
            fut = self._pool.submit(zlib.adler32, data)
            if k >= 0:
                self._busy[k] = fut
            self.sums.add(fut, len(data))
            self._writer.known = (data, fut)
            if self._progress is not None:
                self._progress(len(data))
        return data

    @property
    def adler32(self) -> int:
        return self.sums.value()


def member_path(name: str) -> str:
    """Path of a raw file inside the tar: ``run<N>/run<N>-seq<M>.dat``, as on the farm storage."""
    raw = parse_raw_name(name)
    if raw is None:
        raise ArchiveError(f"{name!r} is not a raw file name run<N>-seq<M>.dat")
    return f"{raw.run_dir}/{raw.filename}"


def _tarinfo(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o444  # raw data are read-only wherever they are restored
    info.uname, info.gname = "prod", "wa105-comp"
    return info


def _fsync_rename(part: Path, final: Path) -> None:
    """Rename ``part`` to ``final`` only if ``final`` does not exist, then sync the directory."""
    try:
        os.link(part, final)  # fails if final exists: an archive is never replaced
    except FileExistsError:
        raise ArchiveError(f"{final}: already exists; refusing to overwrite an archive") from None
    part.unlink()
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_archive(
    directory: Path,
    name: str,
    tag: str,
    sources: Sequence[Source],
    *,
    created: datetime | None = None,
    progress: Progress | None = None,
) -> WrittenArchive:
    """Write ``<directory>/<name>.tar`` and ``<name>.log`` from ``sources`` (see module docstring).

    Raises :class:`ArchiveError` naming the file when a source is missing, changed size, or does
    not match its recorded adler32; the ``.part`` file is removed and nothing else is touched.
    """
    if not sources:
        raise ArchiveError(f"{name}: no files to archive")
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / (name + TAR_SUFFIX)
    log_final = directory / (name + LOG_SUFFIX)
    for existing in (final, log_final):
        if existing.exists():
            raise ArchiveError(f"{existing}: already exists; refusing to overwrite an archive")
    part = directory / (name + TAR_SUFFIX + PART_SUFFIX)
    created_iso = (created or datetime.now(UTC)).isoformat(timespec="seconds")
    members: list[MemberInfo] = []
    try:
        with (
            open(part, "wb", buffering=0) as raw,  # no extra copy through a Python buffer
            ThreadPoolExecutor(1, thread_name_prefix="adler32") as pool,
        ):
            out = _SummingWriter(raw)
            with tarfile.open(  # type: ignore[call-overload]
                fileobj=out, mode="w", format=tarfile.PAX_FORMAT
            ) as tar:
                tar.copybufsize = CHUNK
                for src in sources:
                    members.append(_add_member(tar, out, pool, src, progress))
                manifest = Manifest(name, tag, created_iso, tuple(members))
                blob = manifest.to_bytes()
                tar.addfile(_tarinfo(manifest.member_name, len(blob), 0), io.BytesIO(blob))
            raw.flush()
            os.fsync(raw.fileno())
        size, adler = out.position, out.sums.value()
        log_part = directory / (name + LOG_SUFFIX + PART_SUFFIX)
        with open(log_part, "w") as log:
            log.write(log_text(manifest, size, adler))
            log.flush()
            os.fsync(log.fileno())
        _fsync_rename(part, final)
        _fsync_rename(log_part, log_final)
    except BaseException:
        part.unlink(missing_ok=True)
        (directory / (name + LOG_SUFFIX + PART_SUFFIX)).unlink(missing_ok=True)
        raise
    return WrittenArchive(final, log_final, size, adler, manifest)


def _add_member(
    tar: tarfile.TarFile,
    out: _SummingWriter,
    pool: ThreadPoolExecutor,
    src: Source,
    progress: Progress | None,
) -> MemberInfo:
    where = str(src.location)
    name = where.rstrip("/").rsplit("/", 1)[-1]
    arcname = member_path(name)
    raw = parse_raw_name(name)
    assert raw is not None  # member_path checked it
    try:
        f = open_reader(where)
    except LocationError as exc:
        raise ArchiveError(f"{where}: cannot read raw file: {exc}") from None
    with f as reader_:
        size, mtime = src.size, 0.0
        if not is_url(where):
            st = os.stat(where)
            mtime = st.st_mtime
            if size is not None and st.st_size != size:
                raise ArchiveError(
                    f"{where}: size is {st.st_size} bytes but the bookkeeping recorded {size}"
                )
            size = st.st_size
        if size is None:
            raise ArchiveError(f"{where}: size unknown for a remote raw file")
        reader = _SummingReader(reader_, out, pool, progress)
        try:
            tar.addfile(_tarinfo(arcname, size, mtime), reader)  # type: ignore[arg-type]
        except OSError as exc:
            raise ArchiveError(f"{where}: read failed while archiving: {exc}") from None
        padded = -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        offset = tar.offset - padded
        if reader_.read(1):
            raise ArchiveError(f"{where}: file is longer than {size} bytes (still growing?)")
    if src.adler32 is not None and reader.adler32 != src.adler32:
        raise ArchiveError(
            f"{where}: adler32 is {adler32_hex(reader.adler32)} but the bookkeeping recorded "
            f"{adler32_hex(src.adler32)}; the raw file is corrupt, not archiving it"
        )
    return MemberInfo(name, arcname, raw.run, raw.seq, size, reader.adler32, offset)
