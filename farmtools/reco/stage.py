"""The job's input as a local file: a path as it is, an XRootD URL copied to local scratch first.

With XRootD storage the bookkeeping records each raw file by its URL (``root://host//path``),
and that is what a processing job is given.  The reader needs a seekable local file, so the
file is streamed (8 MiB at a time, never whole in memory) into a private temporary directory,
reconstructed, and deleted whatever happens.  A failure to read it is a
:class:`~farmtools.archive.location.LocationError` (an OSError: the storage, not the data, so
the job exits 66 and is retried).

Reuses :mod:`farmtools.archive.location` (local path / XRootD URL readers; it imports nothing
from farmtools).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from farmtools.archive.location import LocationError, is_url, open_reader

CHUNK = 8 << 20

__all__ = ["LocationError", "is_url", "local_input"]


@contextmanager
def local_input(location: str, scratch: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Yield a local path holding ``location``; a URL is copied under ``scratch`` ($TMPDIR)."""
    if not is_url(location):
        yield Path(location)
        return
    tmp = Path(tempfile.mkdtemp(prefix="farmtools-reco-", dir=scratch))
    try:
        local = tmp / (location.rstrip("/").rsplit("/", 1)[-1] or "input.dat")
        with open_reader(location) as reader, local.open("wb") as out:
            while True:
                chunk = reader.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
        yield local
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
