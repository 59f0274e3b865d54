"""What an ingest scheduler knows of its DAQ directory tree, for the safety-net rescan.

Two sets, both kept by the scheduler's threads under its lock: the paths whose state the
database holds, with their inode numbers (:attr:`DirView.known`: what a rescan compares the
directory listing with, no file opened), and the files a writer of this host created whose
close-write has not come yet (:attr:`DirView.created`: whatever the open-for-writing probes
tell, such a file is not taken by its settle time).  Reconciliation's list of paths to look at
(:meth:`DirView.candidates`) is here too.  Imports the entries' walk and rawdata's names.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from farmtools.bookkeeping.names import db_text
from farmtools.bookkeeping.states import FileState as S
from farmtools.ingest.entries import entry_ino, walk_entries
from farmtools.rawdata import parse_raw_name

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import Bookkeeping
    from farmtools.ingest.pipeline import FilePipeline
    from farmtools.ingest.watcher import DirWatcher

log = logging.getLogger("farmtools.ingest")


class DirView:
    """The DAQ directory as one ingest scheduler has seen it (see the module docstring)."""

    def __init__(self, watch_dir: Path, lock: threading.Lock) -> None:
        self.watch_dir = watch_dir
        self._lock = lock
        #: inode of every path (as a string: cheaper to hash than a Path) whose state the
        #: database holds (registered by this service or found known): what the periodic
        #: rescan compares the directory listing with
        self.known: dict[str, int] = {}
        #: files created empty in a watched directory whose close-write has not come yet: a
        #: writer of this host holds them, whatever the open-for-writing probes can tell
        self.created: set[Path] = set()

    def handled(self, path: str, ino: int) -> None:
        """``path`` (inode ``ino``) has a state in the database: a rescan skips it."""
        with self._lock:
            self.known[path] = ino

    def created_here(self, path: Path) -> None:
        with self._lock:
            self.created.add(path)

    def closed(self, path: Path) -> None:
        with self._lock:
            self.created.discard(path)

    def forget_created(self) -> None:
        """After lost events (a queue overflow): the close-writes may be among them."""
        with self._lock:
            self.created.clear()

    def awaiting_close(self, path: Path) -> bool:
        """Whether a writer of this host created ``path`` and its close-write is still due."""
        with self._lock:
            return path in self.created

    def rescan(self, submit: Callable[[Path], None], watcher: DirWatcher | None = None) -> int:
        """The safety net against a lost event: look at every entry nothing announced.

        Lists the DAQ directory tree (``scandir``: names and inode numbers, no file is opened
        or stat-ed) and compares it with the paths this service already handled
        (:attr:`known`, path -> inode): an entry not among them, or with another inode, is
        handed to ``submit`` like an event's.  A directory whose watch is missing (refused,
        lost with a queue overflow, the directory replaced or mounted over: one ``stat`` per
        directory) is watched again.  Returns the entries handed over.
        """
        found: set[str] = set()
        taken = 0

        def watch_again(d: Path) -> None:
            try:
                st = os.stat(d, follow_symlinks=False)
            except OSError:
                return
            if watcher is not None and not watcher.watched(d, st):
                watcher.rewatch(d)

        for e in walk_entries(
            self.watch_dir, on_dir=watch_again if watcher else None, ordered=False
        ):
            found.add(e.path)
            known = self.known.get(e.path)
            # the directory's inode number is the file's on local file systems; where it is
            # not (overlayfs), one lstat decides
            if known == e.inode() or (known is not None and entry_ino(e) == known):
                continue
            taken += 1
            submit(Path(e.path))
        with self._lock:
            if len(self.known) > len(found):  # else none is gone, or as many came as went
                self.known = {p: i for p, i in self.known.items() if p in found}
            self.created = {p for p in self.created if os.fspath(p) in found}
        if taken:
            log.info("rescan: %d entr%s not handled yet", taken, "y" if taken == 1 else "ies")
        return taken

    def candidates(self, db: Bookkeeping, pipeline: FilePipeline) -> list[Path]:
        """Paths for a reconciliation to look at: the database's unfinished files first, then
        the DAQ directory's entries the database does not hold as finished."""
        seen: dict[str, Path] = {}
        for state in (S.COPYING, S.DETECTED):
            for rec in db.files(state=state):
                seen.setdefault(rec.name, Path(rec.source_path))
        if self.watch_dir.is_dir():
            for entry in walk_entries(self.watch_dir):
                path = Path(entry.path)
                name, _ = pipeline.names(path)
                known = db.get(name)
                ino = entry_ino(entry)
                if known is not None and known.source_path == db_text(entry.path) and ino:
                    with self._lock:  # the rescan need not look at it again
                        self.known[entry.path] = ino
                taken = seen.get(name)
                if (known is not None and known.source_path != db_text(os.fsdecode(path))) or (
                    taken is not None and taken != path
                ):
                    # another path of the same raw name: the pass over it judges it, under its own
                    # name (ignored as a collision, or the same file moved)
                    name = pipeline.collision_name(path, name)
                    known = db.get(name)
                if name in seen:
                    continue
                if known is None or known.state in (S.DETECTED, S.COPYING):
                    seen[name] = path

        def order(item: tuple[str, Path]) -> tuple[int, int, str]:
            raw = parse_raw_name(item[0])
            return (raw.run, raw.seq, item[0]) if raw else (-1, -1, item[0])

        return [p for _, p in sorted(seen.items(), key=order)]
