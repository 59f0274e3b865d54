"""Where a file lies: a local path or an XRootD URL, and how to read its bytes back.

Central storage is EOS, spoken to over XRootD (``root://host:port//path``); the embedded default
is a local directory.  Verify and restore read archives *where they lie*, so both kinds of
location get the same tiny reader interface (``read(n)`` sequentially, ``pread(offset, n)``).
The XRootD client (PyPI ``xrootd``) is imported only when a URL is used.
Imports nothing from farmtools.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol


class LocationError(OSError):
    """An archive location cannot be read or written; the message names it."""


def is_url(location: str) -> bool:
    return location.startswith(("root://", "xroot://", "roots://"))


def join(base: str, name: str) -> str:
    """``base`` + ``/`` + ``name`` for a directory path or a URL (``root://h:p//dir``)."""
    if is_url(base):
        return base.rstrip("/") + "/" + name
    return str(Path(base) / name)


def split_url(url: str) -> tuple[str, str]:
    """(``root://host:port``, ``/absolute/path``) of an XRootD URL."""
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    if not host or not path:
        raise LocationError(f"{url}: not an XRootD URL root://host[:port]//path")
    return f"{scheme}://{host}", "/" + path.lstrip("/")


class Reader(Protocol):
    """The reading side of an archive location."""

    location: str

    def read(self, n: int) -> bytes: ...

    def pread(self, offset: int, n: int) -> bytes: ...

    def close(self) -> None: ...


class LocalReader:
    def __init__(self, location: str) -> None:
        self.location = location
        try:
            self._f = open(location, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise LocationError(f"{location}: cannot open: {exc.strerror}") from None

    def read(self, n: int) -> bytes:
        return self._f.read(n)

    def readinto(self, buf: memoryview) -> int:
        """Fill ``buf`` as far as the file allows (short only at the end of the file)."""
        done = 0
        while done < len(buf):
            n = self._f.readinto(buf[done:])
            if not n:
                break
            done += n
        return done

    def pread(self, offset: int, n: int) -> bytes:
        return os.pread(self._f.fileno(), n, offset)

    def close(self) -> None:
        self._f.close()


class XRootDReader:
    """Sequential and ranged reads of a file on an XRootD server."""

    def __init__(self, location: str) -> None:
        from XRootD import client
        from XRootD.client.flags import OpenFlags

        self.location = location
        self._f: Any = client.File()
        status, _ = self._f.open(location, OpenFlags.READ)
        if not status.ok:
            raise LocationError(f"{location}: cannot open: {status.message}")
        self._pos = 0

    def pread(self, offset: int, n: int) -> bytes:
        status, data = self._f.read(offset, n)
        if not status.ok:
            raise LocationError(f"{self.location}: read at {offset} failed: {status.message}")
        return bytes(data)

    def read(self, n: int) -> bytes:
        data = self.pread(self._pos, n)
        self._pos += len(data)
        return data

    def close(self) -> None:
        self._f.close()


class open_reader:
    """``with open_reader(location) as r:`` for a local path or an XRootD URL."""

    def __init__(self, location: str) -> None:
        self._reader: Reader = XRootDReader(location) if is_url(location) else LocalReader(location)

    def __enter__(self) -> Reader:
        return self._reader

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._reader.close()


def open_root(location: str) -> Any:
    """``uproot.open`` of a ROOT file at a local path or an XRootD URL.

    uproot's default handler for ``root://`` goes through fsspec-xrootd, which is not a
    dependency here; its own :class:`uproot.source.xrootd.XRootDSource` reads through the
    official XRootD client the storage already uses, with vector reads and no local copy.
    """
    import uproot

    if is_url(location):
        return uproot.open(location, handler=uproot.source.xrootd.XRootDSource)
    return uproot.open(location)
