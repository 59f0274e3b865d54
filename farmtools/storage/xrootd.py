"""XRootD (EOS) as farm storage, through the PyPI ``xrootd`` client bindings.

The copy opens ``.<name>.part`` on the server, reads the source in large chunks and sends them as
pipelined asynchronous writes (several in flight) while this thread computes adler32 over the same
chunks, closes, asks the server for its own adler32 of what it stored (``query checksum``),
compares the integers, and only then renames to the final name.  This beats ``xrdcp --cksum
adler32`` because the source is read once and the checksum overlaps the network writes.  The
source is read with ``read()``, not memory-mapped: a source truncated during the copy ends the
reads early (:class:`SourceChanged` naming it) instead of raising SIGBUS, which would kill the
daemon.

Connection settings are shortened (``ConnectionWindow`` 5 s, ``ConnectionRetry`` 2) so that a
server that is down gives a quick :class:`TransientStorageError` instead of a long hang; ingest
retries with back-off.  Imports :mod:`farmtools.storage.base` / ``checksum`` and ``XRootD``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from pathlib import Path
from typing import Any

from farmtools.storage.base import (
    SourceChanged,
    StatInfo,
    Storage,
    StorageError,
    TransientStorageError,
)
from farmtools.storage.checksum import CHUNK, adler32, parse_adler32

#: Writes in flight at once: enough to keep the connection busy while adler32 runs.
_WINDOW = 4
#: kXR_NotFound: the one server answer that means "no such file" rather than "trouble".
_NOT_FOUND = 3011
_env_done = False


def _configure_client() -> None:
    global _env_done
    if _env_done:
        return
    from XRootD import client

    client.EnvPutInt("ConnectionWindow", 5)
    client.EnvPutInt("ConnectionRetry", 2)
    client.EnvPutInt("RequestTimeout", 120)
    # After a connection error the client treats the stream as broken for StreamErrorWindow
    # seconds (default 1800) and fails every request at once: a restarted server would stay
    # "down" for half an hour.  Ingest has its own back-off, so reconnect on the next request.
    client.EnvPutInt("StreamErrorWindow", 0)
    _env_done = True


class XRootDStorage(Storage):
    """Files below ``root_path`` on the XRootD server ``url`` (``root://host:port``)."""

    def __init__(self, url: str, root_path: str, *, timeout: int = 60) -> None:
        _configure_client()
        from XRootD import client

        if not url.startswith(("root://", "xroot://")):
            raise ValueError(f"storage.url {url!r}: expected root://host[:port]")
        self.server = url.rstrip("/")
        self.root_path = "/" + root_path.strip("/")
        self.timeout = timeout
        self.fs = client.FileSystem(self.server)

    def __repr__(self) -> str:
        return f"XRootDStorage({self.server!r}, {self.root_path!r})"

    def _path(self, rel: str) -> str:
        return f"{self.root_path}/{rel}" if rel else self.root_path

    def url(self, rel: str) -> str:
        return f"{self.server}/{self._path(rel)}"

    def _fail(self, rel: str, what: str, status: Any) -> StorageError:
        # Everything but "not found" may be a server or network hiccup: let ingest retry, and
        # quarantine when the retries are used up.
        return TransientStorageError(self.url(rel), f"{what}: {status.message.strip()}")

    def stat(self, rel: str) -> StatInfo | None:
        from XRootD.client.flags import StatInfoFlags

        status, info = self.fs.stat(self._path(rel), timeout=self.timeout)
        if not status.ok:
            if status.errno == _NOT_FOUND:
                return None
            raise self._fail(rel, "stat", status)
        return StatInfo(int(info.size), bool(info.flags & StatInfoFlags.IS_DIR))

    def checksum(self, rel: str) -> int | None:
        from XRootD.client.flags import QueryCode

        status, resp = self.fs.query(QueryCode.CHECKSUM, self._path(rel), timeout=self.timeout)
        if not status.ok:
            if status.errno == _NOT_FOUND:
                return None
            raise self._fail(rel, "query checksum", status)
        text = resp.decode(errors="replace") if isinstance(resp, bytes) else str(resp)
        return parse_adler32(text.strip("\x00 \n"))

    def mkdir(self, rel: str) -> None:
        from XRootD.client.flags import MkDirFlags

        status, _ = self.fs.mkdir(self._path(rel), MkDirFlags.MAKEPATH, timeout=self.timeout)
        if not status.ok and self.stat(rel) is None:
            raise self._fail(rel, "mkdir", status)

    def list(self, rel: str = "") -> list[str]:
        status, listing = self.fs.dirlist(self._path(rel), timeout=self.timeout)
        if not status.ok:
            raise self._fail(rel, "dirlist", status)
        return sorted(e.name for e in listing)

    def _copy(self, src: Path, dest_rel: str, tmp_rel: str) -> tuple[int, int]:
        from XRootD import client
        from XRootD.client.flags import OpenFlags

        f = client.File()
        status, _ = f.open(
            self.url(tmp_rel), OpenFlags.DELETE | OpenFlags.MAKEPATH, timeout=self.timeout
        )
        if not status.ok:
            raise self._fail(tmp_rel, "open for writing", status)
        value = 1
        slots = threading.Semaphore(_WINDOW)
        errors: list[str] = []

        # The client does not keep the buffer of an asynchronous write alive: each chunk stays
        # referenced here until its callback ran, or the bytes sent may be freed memory.
        inflight: dict[int, bytes] = {}

        def done(status: Any, _resp: Any, _hosts: Any, at: int) -> None:
            if not status.ok:
                errors.append(status.message.strip())
            inflight.pop(at, None)
            slots.release()

        shrank: SourceChanged | None = None
        try:
            with open(src, "rb", buffering=0) as fsrc:
                size = os.fstat(fsrc.fileno()).st_size
                with contextlib.suppress(OSError):
                    os.posix_fadvise(fsrc.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
                step = self._step(CHUNK)
                pos = 0
                started = time.monotonic()
                while pos < size and not errors:
                    # a fresh bytes object per chunk: owned by the write in flight
                    chunk = fsrc.read(min(step, size - pos))
                    if not chunk:
                        shrank = SourceChanged.shrank(src, pos, size)
                        break
                    slots.acquire()
                    inflight[pos] = chunk
                    st = f.write(
                        chunk,
                        pos,
                        len(chunk),
                        timeout=self.timeout,
                        callback=functools.partial(done, at=pos),
                    )
                    if not st.ok:
                        inflight.pop(pos, None)
                        slots.release()
                        errors.append(st.message.strip())
                        break
                    value = adler32(chunk, value)
                    pos += len(chunk)
                    self._pace(started, pos)
                for _ in range(_WINDOW):  # wait for every write in flight
                    slots.acquire()
            if shrank is not None:
                raise shrank
            if errors:
                raise TransientStorageError(self.url(tmp_rel), f"write: {errors[0]}")
            status, _ = f.close(timeout=self.timeout)
            if not status.ok:
                raise self._fail(tmp_rel, "close", status)
        finally:
            if f.is_open():
                f.close(timeout=5)
        return size, value

    def _verified_checksum(self, tmp_rel: str, copied: int) -> int:
        value = self.checksum(tmp_rel)
        if value is None:
            raise TransientStorageError(self.url(tmp_rel), "written file vanished before checksum")
        return value

    def _publish(self, tmp_rel: str, dest_rel: str) -> None:
        # XRootD's mv may replace an existing target: look first (claims keep one writer per file)
        if self.stat(dest_rel) is not None:
            raise FileExistsError(self.url(dest_rel))
        status, _ = self.fs.mv(self._path(tmp_rel), self._path(dest_rel), timeout=self.timeout)
        if not status.ok:
            raise self._fail(dest_rel, "mv", status)

    def _discard(self, tmp_rel: str) -> None:
        with contextlib.suppress(Exception):
            self.fs.rm(self._path(tmp_rel), timeout=self.timeout)
