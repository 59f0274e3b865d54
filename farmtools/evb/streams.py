"""Following the L1 fragment streams as they grow: complete fragments, truncated and corrupt tails.

Each stream file ``<run>_<seq>_l1evb<k>.frag`` is read from a cursor: only the 44-byte headers
are read (the bodies are copied later by the kernel, straight into the event file), and a
fragment counts once all its bytes are there.  A file's tail that is not a whole fragment is
*truncated* once the stream has moved on (a later file of the same run and L1 builder exists),
or the file has not grown for ``idle_s``, or the caller drains; bytes that do not start with the
fragment delimiter are a *corrupt* tail, and the rest of that file is set aside.

Imports :mod:`farmtools.rawdata` only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from farmtools.rawdata.pddp_format import FRAGMENT_HEADER_SIZE, FRAGMENT_MAGIC, FragmentHeader
from farmtools.rawdata.pddp_naming import L1Name, parse_l1_name


@dataclass(frozen=True)
class FragRef:
    """A complete fragment in an L1 stream file."""

    stream: int
    path: str
    offset: int
    header: FragmentHeader
    #: Run of the stream file's name (the header's own run may disagree: a mismatch).
    file_run: int
    seen: float

    @property
    def identity(self) -> str:
        """Unique name of this fragment: its file and offset."""
        return f"{os.path.basename(self.path)}@{self.offset}"


@dataclass(frozen=True)
class Tail:
    """Bytes at the end of a stream file that are not a whole fragment (or not a fragment)."""

    stream: int
    path: str
    offset: int
    size: int
    file_run: int
    reason: str  # "truncated" or "corrupt"
    #: The header when at least 44 good bytes are there (tells whose trigger it was).
    header: FragmentHeader | None

    @property
    def identity(self) -> str:
        return f"{os.path.basename(self.path)}@{self.offset}"


class StreamTail:
    """Reads the fragments that have appeared in a directory of L1 stream files since last time."""

    def __init__(self, in_dir: str | os.PathLike[str], idle_s: float = 60.0) -> None:
        self.in_dir = Path(in_dir)
        self.idle_s = idle_s
        self.cursors: dict[str, int] = {}
        self.finished: set[str] = set()

    def _files(self) -> list[tuple[L1Name, Path]]:
        found = []
        try:
            with os.scandir(self.in_dir) as it:
                for entry in it:
                    name = parse_l1_name(entry.name)
                    if name is not None and entry.is_file(follow_symlinks=False):
                        found.append((name, Path(entry.path)))
        except FileNotFoundError:
            return []
        return sorted(found, key=lambda x: (x[0].run, x[0].builder, x[0].seq))

    def poll(self, drain: bool = False) -> tuple[list[FragRef], list[Tail]]:
        """New complete fragments, and the tails that will never become fragments."""
        frags: list[FragRef] = []
        tails: list[Tail] = []
        files = self._files()
        latest: dict[tuple[int, int], int] = {}
        for name, _p in files:
            key = (name.run, name.builder)
            latest[key] = max(latest.get(key, -1), name.seq)
        now = time.monotonic()
        for name, path in files:
            p = str(path)
            if p in self.finished:
                continue
            moved_on = latest[(name.run, name.builder)] > name.seq
            cursor = self.cursors.get(p, 0)
            try:
                with path.open("rb") as fh:
                    st = os.fstat(fh.fileno())
                    size = st.st_size
                    while cursor + FRAGMENT_HEADER_SIZE <= size:
                        fh.seek(cursor)
                        raw = fh.read(FRAGMENT_HEADER_SIZE)
                        magic, header = FragmentHeader.unpack(raw)
                        if magic != FRAGMENT_MAGIC:
                            tails.append(
                                Tail(
                                    name.builder,
                                    p,
                                    cursor,
                                    size - cursor,
                                    name.run,
                                    "corrupt",
                                    None,
                                )
                            )
                            self.finished.add(p)
                            break
                        if cursor + header.size > size:
                            break
                        frags.append(FragRef(name.builder, p, cursor, header, name.run, now))
                        cursor += header.size
            except FileNotFoundError:
                self.finished.add(p)
                continue
            self.cursors[p] = cursor
            if p in self.finished:
                continue
            idle = time.time() - st.st_mtime > self.idle_s
            if cursor < size and (moved_on or drain or idle):
                partial: FragmentHeader | None = None
                if size - cursor >= FRAGMENT_HEADER_SIZE:
                    with path.open("rb") as fh:
                        fh.seek(cursor)
                        partial = FragmentHeader.unpack(fh.read(FRAGMENT_HEADER_SIZE))[1]
                tails.append(
                    Tail(name.builder, p, cursor, size - cursor, name.run, "truncated", partial)
                )
                self.finished.add(p)
            elif cursor == size and moved_on:
                self.finished.add(p)
        return frags, tails
