"""The names a DAQ path is recorded under, and whether a path may take a recorded name.

A raw file is recorded under its normalised raw name (``run1-seq2.dat``); anything else, and a
raw file whose name another file holds, under its path below the DAQ directory.  Imports
rawdata's names and the storage's checksum (for a file moved after its copy).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from farmtools.bookkeeping.names import db_text
from farmtools.bookkeeping.states import FileState
from farmtools.rawdata import RawName, parse_raw_name
from farmtools.storage.checksum import adler32_file, adler32_hex

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import FileRecord


class SourceNames:
    """Names of the paths below one DAQ directory (see the module docstring)."""

    def __init__(self, watch_dir: Path) -> None:
        self.watch_dir = watch_dir

    def names(self, path: Path) -> tuple[str, RawName | None]:
        raw = parse_raw_name(path.name)
        if raw is not None:
            return raw.filename, raw
        return self.rel_name(path), None

    def rel_name(self, path: Path) -> str:
        """``path`` relative to the DAQ directory, as the database stores it."""
        try:
            rel = os.fsdecode(path.relative_to(self.watch_dir))
        except ValueError:
            rel = os.fsdecode(path)
        return db_text(rel)

    def collision_name(self, path: Path, taken: str) -> str:
        """The name a raw file is recorded under when its normalised name ``taken`` is held by
        another file: its own path below the DAQ directory (``./`` in front if that is
        ``taken`` itself, i.e. the other file sits in a subdirectory)."""
        rel = self.rel_name(path)
        return f"./{rel}" if rel == taken else rel

    def collision(self, path: Path, rec: FileRecord) -> str | None:
        """Why ``path`` may not be ingested as ``rec.name``, or None when it is ``rec``'s file.

        Two files normalise to one name when they differ only in leading zeros
        (``run01-seq2.dat``, ``run1-seq2.dat``) or sit in two directories.  The first one
        registered keeps the name; copying the second would store other bytes under it (or be
        quarantined as a destination conflict, blaming the wrong file).  A path that is not the
        recorded source may still be the same file: a hard link, or the file moved after it was
        registered (the recorded path is gone): then the bytes decide once it is stored.
        """
        here = db_text(os.fsdecode(path))
        if rec.source_path == here:
            return None
        try:
            if os.path.samefile(rec.source_path, path):
                return None
            gone = False
        except OSError:
            gone = True
        if gone:
            if rec.state in (FileState.DETECTED, FileState.COPYING) or rec.adler32 is None:
                return None  # moved before its copy: the same file, under its new path
            if adler32_hex(adler32_file(path)) == rec.adler32:
                return None  # moved after its copy: the same bytes
        return (
            f"{here}: its raw name is {rec.name}, which already belongs to {rec.source_path} "
            f"({rec.state}); a second file of that name is not ingested"
        )
