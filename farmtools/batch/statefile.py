"""State files of the local pool written so that a kill never leaves one half-written.

Owns :func:`write_atomic` (and its JSON twin), used for every file of the pool's directory
(``next_id``, ``slots``, ``spec.json``, ``started.json``, ``accounting.json``).  Why: the manager
and the supervisors may be SIGKILLed at any instruction; a ``write_text`` interrupted between
its truncate and its write left ``next_id`` empty, and every later submission failed on it.
A file written here is either the old one or the new one, never a mix: the text goes to a
temporary file in the same directory, is flushed to disk (fsync), renamed over the name, and
the directory itself is synced so that the rename survives a power cut too.

Imports the standard library only (every job's supervisor imports it).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` in one step (temp file, fsync, rename, fsync of the dir)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """:func:`write_atomic` of ``data`` as JSON."""
    write_atomic(path, json.dumps(data))
