"""inotify on the DAQ directory and every subdirectory, through ``inotify_simple``.

Reports what ingest cares about as ``(kind, path)`` pairs:

* ``("file", path)`` - a file was closed after writing (IN_CLOSE_WRITE) or renamed into a watched
  directory (IN_MOVED_TO): the DAQ finished it;
* ``("created", path)`` - a non-directory entry appeared (IN_CREATE): a new file being written,
  and also what never gets a close-write here: a hard link (``link()`` of a file written
  elsewhere), a symbolic link, a FIFO, a device node;
* ``("attrib", path)`` - an entry's metadata changed (IN_ATTRIB: ``chmod``, ``chown``, an ACL):
  a file that could not be read may be readable now.  (A link-count change made through
  another directory is reported only to a watch on the file itself, not to its directory's:
  the new name's IN_CREATE is what shows a hard link.)
* ``("dir", path)`` - a directory appeared (a run subdirectory): it is watched from now on, and
  the caller looks at the files it already holds (they may have been closed before the watch);
* ``("overflow", top)`` - the kernel queue overflowed: events were lost, reconcile.

The caller waits on :meth:`DirWatcher.fileno` (``select``); nothing here polls.
:meth:`DirWatcher.rewatch` is the caller's periodic safety net: directories that are not
watched (a watch refused or lost, a directory replaced or mounted over) are watched again.
Imports only the standard library and ``inotify_simple``.
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
    | flags.ATTRIB
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
        #: (st_dev, st_ino) of each watched directory, by path: tells a directory that was
        #: replaced or mounted over (its watch stays on the old inode) from the one watched
        self._ids: dict[Path, tuple[int, int]] = {}

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
            st = os.stat(path, follow_symlinks=False)
            wd = self._ino.add_watch(path, _MASK)
        except OSError as exc:
            log.warning("%s: cannot watch: %s", os.fsdecode(path), exc)
            return False
        old = self._dirs.get(wd)
        if old is not None and old != path:
            self._ids.pop(old, None)
        self._dirs[wd] = path
        self._ids[path] = (st.st_dev, st.st_ino)
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

    def watched(self, path: Path, st: os.stat_result) -> bool:
        """Whether the directory ``path``, as ``st`` describes it now, is the one watched."""
        return self._ids.get(path) == (st.st_dev, st.st_ino)

    def rewatch(self, path: Path) -> bool:
        """Watch ``path`` again (found unwatched by a rescan); True if the watch is in place."""
        log.warning("%s: directory not watched (a lost event or watch): watching it", path)
        return self._add(path)

    def read(self) -> list[tuple[str, Path]]:
        """Events ready now (does not block), translated to ``(kind, path)``."""
        out: list[tuple[str, Path]] = []
        for ev in self._ino.read(timeout=0):
            if ev.mask & flags.Q_OVERFLOW:
                out.append(("overflow", self.top))
                continue
            base = self._dirs.get(ev.wd)
            if ev.mask & flags.IGNORED:
                path = self._dirs.pop(ev.wd, None)
                if path is not None and path not in self._dirs.values():
                    self._ids.pop(path, None)  # unless watched again under a newer watch
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
            elif ev.mask & flags.CREATE:
                out.append(("created", path))
            elif ev.mask & flags.ATTRIB:
                out.append(("attrib", path))
        return out
