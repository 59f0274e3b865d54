"""Bring one raw file back out of an archive, checked against its original checksum.

The bookkeeping (and the manifest) know where each file's bytes start in the tar, so restoring
one 1 GB file from a 5 GB archive on EOS is one ranged read of 1 GB, not a read of the whole
archive.  The bytes go to ``<dir>/<name>.part``, are summed on the way, and the file appears
under its name only if the adler32 matches the one recorded when the file was first stored;
an existing file is never overwritten.  Imports the archive location module and
:mod:`farmtools.storage.checksum` only.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from pathlib import Path

from farmtools.storage.checksum import adler32_hex
from farmtools.storage.location import Reader

CHUNK = 8 << 20


class RestoreError(Exception):
    """A file cannot be restored; the message names the file, the archive and the cause."""


def restore_member(
    reader: Reader,
    name: str,
    offset: int,
    size: int,
    adler32: int,
    directory: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Copy ``size`` bytes at ``offset`` of the archive to ``directory/name`` if they sum right."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    if final.exists():
        raise RestoreError(f"{final}: already exists; not overwriting it")
    part = directory / (name + ".part")
    got = zlib.adler32(b"")
    done = 0
    try:
        with open(part, "wb") as out:
            while done < size:
                chunk = reader.pread(offset + done, min(CHUNK, size - done))
                if not chunk:
                    raise RestoreError(
                        f"{name}: archive {reader.location} ends after {done} of {size} bytes"
                    )
                got = zlib.adler32(chunk, got)
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if got != adler32:
            raise RestoreError(
                f"{name}: restored bytes from {reader.location} have adler32 "
                f"{adler32_hex(got)}, the original had {adler32_hex(adler32)}; not restored"
            )
        os.link(part, final)  # fails rather than replace a file that appeared meanwhile
    except FileExistsError:
        raise RestoreError(f"{final}: already exists; not overwriting it") from None
    finally:
        part.unlink(missing_ok=True)
    return final
