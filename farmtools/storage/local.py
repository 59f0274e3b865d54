"""A local (or NFS/FUSE-mounted) directory as farm storage.

The copy maps the source read-only and hands the same pages to ``write()`` and, on a helper
thread, to adler32: the source is read once, the checksum costs no second pass and overlaps the
write.  Then fsync of the file, a no-replace rename (``link`` + ``unlink``: ``link`` fails if the
final name exists, where ``rename`` would silently replace it) and fsync of the directory, so the
final name only ever shows a complete, durable file.  "Verified" here means: the checksum of the
bytes handed to the kernel, the size of the file on disk equal to the source's, and fsync done.
Imports :mod:`farmtools.storage.base` / ``checksum`` only.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import time
from pathlib import Path

from farmtools.storage.base import StatInfo, Storage, StorageError, TransientStorageError
from farmtools.storage.checksum import CHUNK, ChunkSummer, adler32_file

#: Destination errors that may go away by themselves (space freed, mount back...).
_TRANSIENT = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EIO,
    errno.EAGAIN,
    errno.ESTALE,
    errno.ETIMEDOUT,
    errno.ENOTCONN,
    errno.EROFS,
}


def _dest_error(path: Path, exc: OSError) -> StorageError:
    cls = TransientStorageError if exc.errno in _TRANSIENT else StorageError
    return cls(os.fsdecode(path), f"{exc.strerror or exc} (errno {exc.errno})")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage(Storage):
    """Files below ``root`` on a mounted file system."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStorage({os.fsdecode(self.root)!r})"

    def _p(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def url(self, rel: str) -> str:
        return os.fsdecode(self._p(rel))

    def stat(self, rel: str) -> StatInfo | None:
        try:
            st = self._p(rel).stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _dest_error(self._p(rel), exc) from exc
        return StatInfo(st.st_size, os.path.isdir(self._p(rel)))

    def checksum(self, rel: str) -> int | None:
        try:
            return adler32_file(self._p(rel))
        except FileNotFoundError:
            return None

    def mkdir(self, rel: str) -> None:
        try:
            self._p(rel).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _dest_error(self._p(rel), exc) from exc

    def list(self, rel: str = "") -> list[str]:
        return sorted(os.listdir(self._p(rel)))

    def _copy(self, src: Path, dest_rel: str, tmp_rel: str) -> tuple[int, int]:
        tmp = self._p(tmp_rel)
        self.mkdir(str(Path(tmp_rel).parent) if "/" in tmp_rel else "")
        with open(src, "rb", buffering=0) as fsrc:
            size = os.fstat(fsrc.fileno()).st_size
            try:
                out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise _dest_error(tmp, exc) from exc
            try:
                value = 1 if size == 0 else self._copy_mapped(fsrc.fileno(), out, size)
                written = os.fstat(out).st_size
                if written != size:
                    raise TransientStorageError(
                        os.fsdecode(tmp), f"wrote {written} bytes, the source has {size}"
                    )
                os.fsync(out)
            except OSError as exc:
                raise _dest_error(tmp, exc) from exc
            finally:
                os.close(out)
        return size, value

    def _copy_mapped(self, src_fd: int, out: int, size: int) -> int:
        with contextlib.suppress(OSError):
            os.posix_fadvise(src_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        summer = ChunkSummer()
        started = time.monotonic()
        mm = mmap.mmap(src_fd, size, prot=mmap.PROT_READ)
        view = memoryview(mm)
        chunks: list[memoryview] = []
        try:
            pos = 0
            while pos < size:
                chunk = view[pos : pos + CHUNK]
                chunks.append(chunk)
                summer.feed(chunk)
                done = 0
                while done < len(chunk):
                    done += os.write(out, chunk[done:])
                pos += len(chunk)
                self._pace(started, pos)
            return summer.value()
        finally:
            summer.value()  # the helper thread must be done with the pages before unmapping
            for c in chunks:
                c.release()
            view.release()
            mm.close()

    def _verified_checksum(self, tmp_rel: str, copied: int) -> int:
        # The bytes handed to write() were summed on the way; fsync made them durable and the
        # size was checked in _copy.  Re-reading here would only read the page cache back.
        return copied

    def _publish(self, tmp_rel: str, dest_rel: str) -> None:
        tmp, final = self._p(tmp_rel), self._p(dest_rel)
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise
        except OSError as exc:
            raise _dest_error(final, exc) from exc
        os.unlink(tmp)
        _fsync_dir(final.parent)

    def _discard(self, tmp_rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._p(tmp_rel).unlink()
