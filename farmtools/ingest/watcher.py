"""inotify on the DAQ directory and every subdirectory, through ``inotify_simple``.

Reports what ingest cares about as ``(kind, path)`` pairs:

* ``("file", path)`` - a file was closed after writing (IN_CLOSE_WRITE) or renamed into a watched
  directory (IN_MOVED_TO): the DAQ finished it;
* ``("dir", path)`` - a directory appeared (a run subdirectory): it is watched from now on, and
  the caller looks at the files it already holds (they may have been closed before the watch);
* ``("overflow", top)`` - the kernel queue overflowed: events were lost, reconcile.

The caller waits on :meth:`DirWatcher.fileno` (``select``); nothing here polls.  Imports only the
standard library and ``inotify_simple``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from inotify_simple import INotify, flags

log = logging.getLogger("farmtools.ingest")

_MASK = (
    flags.CLOSE_WRITE
    | flags.MOVED_TO
    | flags.CREATE
    | flags.DELETE_SELF
    | flags.MOVE_SELF
    | flags.ONLYDIR
    | flags.DONT_FOLLOW
)


class DirWatcher:
    """Watches ``top`` and all directories below it, including those created later."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self._ino = INotify()
        self._dirs: dict[int, Path] = {}

    def fileno(self) -> int:
        return self._ino.fileno()

    def count(self) -> int:
        """Directories watched."""
        return len(self._dirs)

    def close(self) -> None:
        self._ino.close()

    def start(self) -> None:
        """Watch ``top`` and its existing subdirectories (before any reconciliation)."""
        self._add_tree(self.top)

    def _add(self, path: Path) -> bool:
        try:
            wd = self._ino.add_watch(path, _MASK)
        except OSError as exc:
            log.warning("%s: cannot watch: %s", os.fsdecode(path), exc)
            return False
        self._dirs[wd] = path
        return True

    def _add_tree(self, top: Path) -> list[Path]:
        """Watch ``top`` and every directory below; returns the directories added."""
        added: list[Path] = []
        stack = [top]
        while stack:
            d = stack.pop()
            if not self._add(d):
                continue
            added.append(d)
            try:
                with os.scandir(d) as it:
                    stack.extend(Path(e.path) for e in it if e.is_dir(follow_symlinks=False))
            except OSError as exc:
                log.warning("%s: cannot list: %s", os.fsdecode(d), exc)
        return added

    def read(self) -> list[tuple[str, Path]]:
        """Events ready now (does not block), translated to ``(kind, path)``."""
        out: list[tuple[str, Path]] = []
        for ev in self._ino.read(timeout=0):
            if ev.mask & flags.Q_OVERFLOW:
                out.append(("overflow", self.top))
                continue
            base = self._dirs.get(ev.wd)
            if ev.mask & flags.IGNORED:
                self._dirs.pop(ev.wd, None)
                continue
            if base is None:
                continue
            if ev.mask & (flags.DELETE_SELF | flags.MOVE_SELF):
                continue  # IN_IGNORED follows and drops the watch
            path = base / ev.name
            if ev.mask & flags.ISDIR:
                if ev.mask & (flags.CREATE | flags.MOVED_TO) and self._add_tree(path):
                    out.append(("dir", path))
                continue
            if ev.mask & (flags.CLOSE_WRITE | flags.MOVED_TO):
                out.append(("file", path))
        return out
