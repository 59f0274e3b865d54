"""The end-of-run record: ``run<N>.eor.json``, the DAQ's word that run N is over and what it wrote.

Written by the DAQ (here ``farmtools daq emulate``) into the directory of the raw files once the
last file of the run is closed, under a temporary name and renamed, so a reader never sees half
of it.  Read by ingest, which stores it in the bookkeeping (``run_status``); the processing
daemon then closes the run and compares (:mod:`farmtools.processing.runclose`).  As the DUNE
dropbox tools carry a metadata sidecar per file, the record lists each file with its size and
adler32, so a file lost or changed on its way is named.  Format ``farmtools-eor/1``::

    {"format": "farmtools-eor/1", "run": 12, "files": 3, "events": 30,
     "first_seq": 0, "last_seq": 2, "ended": "2026-12-07T20:40:00.000000Z", "host": "daq01",
     "file_list": [{"name": "run12-seq0.dat", "seq": 0, "size": 123456,
                    "adler32": "0a1b2c3d", "events": 10}, ...]}

``files`` and ``events`` are required; ``file_list`` (and each entry's ``size``, ``adler32``,
``events``) is optional.  Imports the standard library and :mod:`farmtools.storage.checksum`.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMAT = "farmtools-eor/1"
_NAME = re.compile(r"run([0-9]{1,9})\.eor\.json", re.ASCII)


class EndOfRunError(ValueError):
    """An end-of-run record that cannot be read or does not say what it must; names the file."""


def eor_name(run: int) -> str:
    """``run12.eor.json``."""
    return f"run{run}.eor.json"


def parse_eor_name(name: str | os.PathLike[str]) -> int | None:
    """The run of an end-of-run record's name (a base name or a path), None if it is not one."""
    m = _NAME.fullmatch(os.path.basename(os.fspath(name)))
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class EorFile:
    """One file of the run as the DAQ wrote it."""

    name: str
    seq: int
    size: int | None = None
    adler32: str | None = None
    events: int | None = None


@dataclass(frozen=True)
class EndOfRun:
    """A parsed end-of-run record (see the module docstring)."""

    run: int
    files: int
    events: int
    first_seq: int | None = None
    last_seq: int | None = None
    ended: str | None = None
    host: str = ""
    file_list: tuple[EorFile, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "run": self.run,
            "files": self.files,
            "events": self.events,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "ended": self.ended,
            "host": self.host,
            "file_list": [
                {"name": f.name, "seq": f.seq, "size": f.size, "adler32": f.adler32}
                | {"events": f.events}
                for f in self.file_list
            ],
        }


def _int(doc: dict[str, Any], key: str, path: Path, *, required: bool = True) -> int | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EndOfRunError(f"{path}: {key!r} must be a non-negative integer, not {value!r}")
    return value


def read_end_of_run(path: str | os.PathLike[str]) -> EndOfRun:
    """Parse the record at ``path``; :class:`EndOfRunError` names the file and what is wrong."""
    p = Path(path)
    run = parse_eor_name(p)
    try:
        doc = json.loads(p.read_bytes())
    except OSError as exc:
        raise EndOfRunError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise EndOfRunError(f"{p}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise EndOfRunError(f"{p}: expected a JSON object")
    if doc.get("format") != FORMAT:
        raise EndOfRunError(f"{p}: format {doc.get('format')!r}, expected {FORMAT!r}")
    if run is not None and doc.get("run") != run:
        raise EndOfRunError(f"{p}: says run {doc.get('run')!r}, its name says run {run}")
    entries = []
    for i, e in enumerate(doc.get("file_list") or []):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise EndOfRunError(f"{p}: file_list[{i}] has no file name")
        a32 = e.get("adler32")
        if a32 is not None and not (isinstance(a32, str) and re.fullmatch(r"[0-9a-f]{8}", a32)):
            raise EndOfRunError(f"{p}: file_list[{i}] adler32 {a32!r}: expected 8 hex digits")
        entries.append(
            EorFile(
                e["name"],
                _int(e, "seq", p) or 0,
                _int(e, "size", p, required=False),
                a32,
                _int(e, "events", p, required=False),
            )
        )
    return EndOfRun(
        run=_int(doc, "run", p) or 0,
        files=_int(doc, "files", p) or 0,
        events=_int(doc, "events", p) or 0,
        first_seq=_int(doc, "first_seq", p, required=False),
        last_seq=_int(doc, "last_seq", p, required=False),
        ended=doc.get("ended") if isinstance(doc.get("ended"), str) else None,
        host=str(doc.get("host") or ""),
        file_list=tuple(entries),
    )


def describe_file(path: Path, seq: int, events: int | None, *, checksum: bool = True) -> EorFile:
    """The record's entry for a closed raw file: its size and (``checksum``) adler32."""
    from farmtools.storage.checksum import adler32_file, adler32_hex

    a32 = adler32_hex(adler32_file(path)) if checksum else None
    return EorFile(path.name, seq, path.stat().st_size, a32, events)


def write_end_of_run(out_dir: str | os.PathLike[str], run: int, files: Sequence[EorFile]) -> Path:
    """Write ``run<N>.eor.json`` for ``files`` into ``out_dir`` atomically; returns its path.

    A record already there (the run was continued by a later call) is replaced.
    """
    ordered = sorted(files, key=lambda f: f.seq)
    record = EndOfRun(
        run=run,
        files=len(ordered),
        events=sum(f.events or 0 for f in ordered),
        first_seq=ordered[0].seq if ordered else None,
        last_seq=ordered[-1].seq if ordered else None,
        ended=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        host=socket.gethostname(),
        file_list=tuple(ordered),
    )
    out = Path(out_dir) / eor_name(run)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record.to_json(), indent=1) + "\n")
    os.replace(tmp, out)
    return out
