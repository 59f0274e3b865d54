"""What the two raw-file readers share: open, index once, read at an offset, close.

The 3x1x1 reader (:class:`~farmtools.rawdata.reader.RawFile`) and the 6x6x6 reader
(:class:`~farmtools.rawdata.pddp_reader.PDDPFile`) differ only in the structure they walk.
Both open the file, index it with seeks before any sample is read (so a structural error is
found at open, naming the byte), read exact byte ranges, and turn a short read or an I/O error
into a :class:`~farmtools.rawdata.errors.RawDataError` that names the file, the event, the
fragment (6x6x6 only) and the offset.  That part lives here once.

Imports :mod:`farmtools.rawdata.errors` only.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from farmtools.rawdata.errors import RawDataError


class IndexedFile:
    """An open raw file indexed at open; a subclass walks its structure in :meth:`_index`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fsdecode(path)
        try:
            self._file: io.BufferedReader = open(path, "rb")  # noqa: SIM115 - closed in close()
            self.size = os.fstat(self._file.fileno()).st_size
        except OSError as exc:
            raise RawDataError(path, f"cannot open: {exc.strerror or exc}") from None
        try:
            self._index()
        except BaseException:
            self._file.close()
            raise

    def _index(self) -> None:
        """Walk the file's structure (headers only) and raise on the first thing that is wrong."""
        raise NotImplementedError

    @property
    def n_events(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.n_events

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _read_at(
        self, offset: int, n: int, what: str, event: int | None, fragment: int | None = None
    ) -> bytes:
        """Exactly ``n`` bytes at ``offset``; a short read says which part of the file is cut."""

        data = b""

        def read() -> int:
            nonlocal data
            self._file.seek(offset)
            data = self._file.read(n)
            return len(data)

        self._checked(read, offset, n, what, event, fragment)
        return data

    def _read_into(
        self, offset: int, out: Any, what: str, event: int | None, fragment: int | None = None
    ) -> Any:
        """Fill the writable buffer ``out`` (a numpy array or a memoryview: a reused buffer) with
        the bytes at ``offset``; returns ``out``.

        ``os.preadv`` on the file descriptor: no new bytes object per payload (a 3 MB
        allocation whose pages are faulted in again for every event) and no shared file
        position, so several threads may read events of one open file at once.
        """
        fd = self._file.fileno()
        self._checked(
            lambda: os.preadv(fd, [out], offset), offset, out.nbytes, what, event, fragment
        )
        return out

    def _checked(
        self,
        read: Callable[[], int],
        offset: int,
        n: int,
        what: str,
        event: int | None,
        fragment: int | None,
    ) -> None:
        """Run ``read`` (it returns the bytes read); an I/O error or fewer than ``n`` bytes
        raise RawDataError naming the file, ``what`` was read, the event and the offset."""
        try:
            got = read()
        except OSError as exc:
            message = f"I/O error reading {what}: {exc}"
        else:
            if got == n:
                return
            message = f"file truncated in {what} ({got} of {n} bytes)"
        raise RawDataError(self.path, message, event=event, offset=offset, fragment=fragment)
