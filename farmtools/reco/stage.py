"""The job's input and output as local files: paths as they are, XRootD URLs through local scratch.

With XRootD storage the bookkeeping records each raw file by its URL (``root://host//path``),
and that is what a processing job is given.  The reader needs a seekable local file, so the
file is streamed (8 MiB at a time, never whole in memory) into a private temporary directory,
reconstructed, and deleted whatever happens.  A failure to read it is a
:class:`~farmtools.storage.location.LocationError` (an OSError: the storage, not the data, so
the job exits 66 and is retried).

The output goes the other way: with XRootD storage the job is told to write
``root://host//<storage.output>/run<N>/recotask_...root``; the ROOT file is written to local
scratch, then published there by :func:`farmtools.storage.derived.publish_output` (verified
adler32, temporary name, atomic rename).  A failure to publish is an OSError (the job exits 73
and is retried).

Reuses :mod:`farmtools.storage.location` (local path / XRootD URL readers; it imports nothing
from farmtools) and :mod:`farmtools.storage.derived`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from farmtools.storage.location import LocationError, is_url, open_reader

CHUNK = 8 << 20

__all__ = ["LocationError", "OutputError", "is_url", "local_input", "local_output"]


class OutputError(OSError):
    """The finished output could not be published to its URL; the message names it."""


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


@contextmanager
def local_output(target: str, scratch: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Yield the local path to write ``target`` to; a URL is published there when the block ends.

    Nothing is published if the block raises (the output stays in scratch, which is removed).
    """
    if not is_url(target):
        yield Path(target)
        return
    from farmtools.storage.base import StorageError
    from farmtools.storage.derived import publish_output

    tmp = Path(tempfile.mkdtemp(prefix="farmtools-reco-out-", dir=scratch))
    try:
        local = tmp / (target.rstrip("/").rsplit("/", 1)[-1] or "output.root")
        yield local
        try:
            publish_output(local, target)
        except StorageError as exc:
            raise OutputError(f"{target}: cannot publish the output: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
