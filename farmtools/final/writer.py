"""Final-storage files: kept events, Huffman-compressed, in ProtoDUNE-DP files of a target size.

A final file is an ordinary 6x6x6 event file (docs/protodune-dp.md): the public decoder and
:class:`~farmtools.rawdata.pddp_reader.PDDPFile` read it as they read the L2 builders' files,
with run flag bit 0 set on every fragment (the CRO data in the DAQ's Huffman code,
:mod:`farmtools.rawdata.huffman`; fragments that already were compressed are copied as they
are).  Name ``<run>_<seq>_<S>.dat``: the decoder's pattern, ``S`` one capital letter per stream
(``B`` beam, ``C`` cosmic, ``X`` the rest), which no L2 builder id (lower case) takes; ``seq``
counts the run's files of that stream from 1.  Beside it ``<name>.manifest.json`` (every
event: number, trigger, class, size, adler32, where it came from; the file's size and adler32)
and ``<name>.log`` (the same, one line per event, the file's checksum last).

The event table comes before the events, so the compressed bodies are spooled to a hidden file
first and the final file is written in one pass by
:func:`~farmtools.rawdata.pddp_writer.write_pddp_file` (bodies copied in the kernel from the
spool), under a hidden temporary name, fsynced, re-read by the reader (its structure walk) and
only then renamed.  Memory stays at one event.  Imports :mod:`farmtools.rawdata`,
:mod:`farmtools.storage.checksum` and the final stage's classes.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from farmtools.detector import Geometry
from farmtools.final.classify import EventClass
from farmtools.rawdata import huffman
from farmtools.rawdata.errors import RawDataError
from farmtools.rawdata.packing import unpack12
from farmtools.rawdata.pddp_format import (
    FRAGMENT_HEADER_SIZE,
    RUN_FLAG_HUFFMAN,
    FragmentHeader,
    table_size,
)
from farmtools.rawdata.pddp_reader import PDDPFile
from farmtools.rawdata.pddp_writer import Fragment, write_pddp_file
from farmtools.storage.checksum import adler32_file, adler32_hex

FORMAT = "farmtools-final/1"
MANIFEST_SUFFIX = ".manifest.json"
LOG_SUFFIX = ".log"

#: Stream of each class and its letter in the file name [choice, docs/final.md].
STREAM_OF: dict[EventClass, str] = {
    EventClass.BEAM: "beam",
    EventClass.COSMIC: "cosmic",
    EventClass.EMPTY: "other",
    EventClass.NOISY: "other",
    EventClass.INCOMPLETE: "other",
}
LETTER_OF = {"beam": "B", "cosmic": "C", "other": "X"}


def final_name(run: int, seq: int, stream: str) -> str:
    return f"{run}_{seq}_{LETTER_OF[stream]}.dat"


@dataclass(frozen=True)
class PackItem:
    """One kept event to pack: where it is (raw file path and index) and what it is."""

    source: str  # raw file name (bookkeeping)
    path: str  # local path of the raw file
    index: int
    klass: EventClass


@dataclass(frozen=True)
class PackedEvent:
    source: str
    index: int
    event: int
    trigger: int
    klass: EventClass
    size: int
    adler32: int
    incomplete: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "trigger": self.trigger,
            "class": str(self.klass),
            "size": self.size,
            "adler32": adler32_hex(self.adler32),
            "source": self.source,
            "index": self.index,
        }


@dataclass(frozen=True)
class Written:
    """A final file under its name, with its manifest and log."""

    path: Path
    manifest: Path
    log: Path
    run: int
    stream: str
    size: int
    adler32: int
    events: tuple[PackedEvent, ...]


def compress_event(f: PDDPFile, i: int) -> tuple[list[tuple[FragmentHeader, bytes]], int]:
    """Event ``i`` of ``f`` with its CRO data Huffman-coded: [(header, body)], and its size."""
    g = f.geometry
    raw = f.read_raw_event(i)
    start = f.event_offsets[i]
    out = []
    for _k, (pos, h) in enumerate(f.fragments[i]):
        body = pos - start + FRAGMENT_HEADER_SIZE
        end = body + h.body_size
        if h.compressed or h.cro_size == 0:  # nothing to code; the run flag says Huffman
            out.append((replace(h, run_flags=h.run_flags | RUN_FLAG_HUFFMAN), bytes(raw[body:end])))
            continue
        lro = raw[body : body + h.lro_size]
        cro = raw[body + h.lro_size : body + h.lro_size + h.cro_size]
        rows = unpack12(cro, g.fragment_channels * g.samples).reshape(
            g.fragment_channels, g.samples
        )
        coded = huffman.encode(rows)
        new = replace(h, run_flags=h.run_flags | RUN_FLAG_HUFFMAN, cro_size=len(coded))
        out.append((new, b"".join((lro, coded, raw[end - 1 : end]))))
    return out, sum(h.size for h, _b in out)


class OpenFiles:
    """Raw files open for reading, one at a time per path (a pack reads files in order)."""

    def __init__(self, geo: Geometry, stack: ExitStack) -> None:
        self.geo = geo
        self.stack = stack
        self.files: dict[str, PDDPFile] = {}

    def get(self, path: str) -> PDDPFile:
        f = self.files.get(path)
        if f is None:
            f = self.files[path] = self.stack.enter_context(PDDPFile(path, self.geo))
        return f


def groups(
    items: Sequence[PackItem], opened: OpenFiles, target: int
) -> Iterator[list[tuple[PackItem, int]]]:
    """Items cut into files of at most ``target`` bytes (a bigger event gets a file alone)."""
    group: list[tuple[PackItem, int]] = []
    size = 0
    for it in items:
        f = opened.get(it.path)
        raw = f.entries[it.index].size  # an upper bound: compression only shrinks it
        if group and table_size(len(group) + 1) + size + raw > target:
            yield group
            group, size = [], 0
        group.append((it, raw))
        size += raw
    if group:
        yield group


def write_final(
    workdir: Path,
    name: str,
    run: int,
    stream: str,
    items: Sequence[PackItem],
    opened: OpenFiles,
    policy_version: str,
) -> Written:
    """Write one final file of ``items`` (with manifest and log) in ``workdir``."""
    path = workdir / name
    tmp = workdir / f".{name}.tmp"
    spool = workdir / f".{name}.spool"
    for stale in (tmp, spool):
        stale.unlink(missing_ok=True)
    events: list[list[Fragment]] = []
    packed: list[PackedEvent] = []
    try:
        with open(spool, "xb") as sp:
            for it in items:
                f = opened.get(it.path)
                frags, size = compress_event(f, it.index)
                ev: list[Fragment] = []
                adler = zlib.adler32(b"")
                for h, body in frags:
                    offset = sp.tell()
                    sp.write(body)
                    ev.append(Fragment(h, source=str(spool), body_offset=offset))
                    adler = zlib.adler32(body, zlib.adler32(h.pack(), adler))
                entry = f.entries[it.index]
                events.append(ev)
                packed.append(
                    PackedEvent(
                        it.source,
                        it.index,
                        entry.event_number,
                        entry.trigger_number,
                        it.klass,
                        size,
                        adler,
                        entry.incomplete,
                    )
                )
            sp.flush()
        write_pddp_file(tmp, run, events, incomplete=[p.incomplete for p in packed], fsync=True)
        with PDDPFile(tmp, opened.geo) as check:
            got = [(e.trigger_number, e.size) for e in check.entries]
        if got != [(p.trigger, p.size) for p in packed]:
            raise RawDataError(str(tmp), "re-read event table differs from the events written")
        size = tmp.stat().st_size
        adler = adler32_file(tmp)
    finally:
        spool.unlink(missing_ok=True)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    manifest = {
        "format": FORMAT,
        "file": name,
        "run": run,
        "stream": stream,
        "policy_version": policy_version,
        "created": created,
        "size": size,
        "adler32": adler32_hex(adler),
        "events": [p.to_json() for p in packed],
    }
    man_path = workdir / (name + MANIFEST_SUFFIX)
    log_path = workdir / (name + LOG_SUFFIX)
    man_path.write_text(json.dumps(manifest, indent=1) + "\n")
    lines = [
        f"# final file {name} run {run} stream {stream} policy {policy_version} created {created}",
        "# adler32 size event trigger class source#index",
    ]
    lines += [
        f"{adler32_hex(p.adler32)} {p.size} {p.event} {p.trigger} {p.klass} {p.source}#{p.index}"
        for p in packed
    ]
    lines.append(f"final {name} events {len(packed)} size {size} adler32 {adler32_hex(adler)}")
    log_path.write_text("\n".join(lines) + "\n")
    os.rename(tmp, path)
    return Written(path, man_path, log_path, run, stream, size, adler, tuple(packed))
