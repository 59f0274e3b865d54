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
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from farmtools.detector import Geometry
from farmtools.final.classify import EventClass
from farmtools.rawdata import huffman
from farmtools.rawdata.errors import RawDataError
from farmtools.rawdata.packing import unpack12
from farmtools.rawdata.pddp_format import (
    EVENT_ENTRY,
    FRAGMENT_HEADER_SIZE,
    RUN_FLAG_HUFFMAN,
    FragmentHeader,
    table_size,
)
from farmtools.rawdata.pddp_reader import PDDPFile
from farmtools.rawdata.pddp_writer import Fragment, write_pddp_file
from farmtools.storage.checksum import adler32, adler32_file, adler32_hex

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


#: A fragment as it goes to the final file: its header and its body in parts (written in turn).
Coded = tuple[FragmentHeader, tuple[bytes | memoryview, ...]]


def compress_event(
    f: PDDPFile, i: int, scratch: npt.NDArray[np.uint16] | None = None
) -> tuple[list[Coded], int]:
    """Event ``i`` of ``f`` with its CRO data Huffman-coded: [(header, body parts)], its size.

    A fragment that arrives compressed already (the DAQ's own Huffman code) is copied as it is,
    never decoded and coded again.  The parts may be views of the reader's reused event buffer:
    write them before reading the file again.  ``scratch`` (fragment channels x samples) takes
    the unpacked samples, so that no 77 MB array is allocated (and its pages faulted in) per
    fragment.
    """
    g = f.geometry
    raw = f.read_raw_event(i)
    start = f.event_offsets[i]
    out: list[Coded] = []
    for pos, h in f.fragments[i]:
        body = pos - start + FRAGMENT_HEADER_SIZE
        end = body + h.body_size
        if h.compressed or h.cro_size == 0:  # nothing to code; the run flag says Huffman
            out.append((replace(h, run_flags=h.run_flags | RUN_FLAG_HUFFMAN), (raw[body:end],)))
            continue
        lro = raw[body : body + h.lro_size]
        cro = raw[body + h.lro_size : body + h.lro_size + h.cro_size]
        n = g.fragment_channels * g.samples
        flat = scratch.reshape(-1) if scratch is not None and scratch.size == n else None
        rows = unpack12(cro, n, out=flat).reshape(g.fragment_channels, g.samples)
        coded = huffman.encode(rows)
        new = replace(h, run_flags=h.run_flags | RUN_FLAG_HUFFMAN, cro_size=len(coded))
        out.append((new, (lro, coded, raw[end - 1 : end])))
    return out, sum(h.size for h, _b in out)


class OpenFiles:
    """Raw files open for reading: each fetched (a copy of one on XRootD) and opened once, and
    closed (the copy removed) as soon as its last event to pack is packed."""

    def __init__(
        self, geo: Geometry, fetch: Callable[[str], AbstractContextManager[str]] | None = None
    ) -> None:
        self.geo = geo
        self.fetch = fetch
        self._open: dict[str, tuple[ExitStack, PDDPFile]] = {}

    def get(self, location: str) -> PDDPFile:
        got = self._open.get(location)
        if got is None:
            stack = ExitStack()
            try:
                path = stack.enter_context(self.fetch(location)) if self.fetch else location
                got = (stack, stack.enter_context(PDDPFile(path, self.geo)))
            except BaseException:
                stack.close()
                raise
            self._open[location] = got
        return got[1]

    def release(self, location: str) -> None:
        got = self._open.pop(location, None)
        if got is not None:
            got[0].close()

    def __enter__(self) -> OpenFiles:
        return self

    def __exit__(self, *_exc: object) -> None:
        for location in list(self._open):
            self.release(location)


class _Spool:
    """The compressed events of one final file in the making: bodies in a hidden spool file."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.name = name
        self.path = workdir / f".{name}.spool"
        self.path.unlink(missing_ok=True)
        self._f = open(self.path, "xb")  # noqa: SIM115 - closed by close()
        self.events: list[list[Fragment]] = []
        self.packed: list[PackedEvent] = []
        self.size = table_size(0)

    def add(self, it: PackItem, f: PDDPFile, frags: list[Coded]) -> None:
        ev: list[Fragment] = []
        adler = 1  # adler32 of nothing
        for h, parts in frags:
            ev.append(Fragment(h, source=str(self.path), body_offset=self._f.tell()))
            adler = adler32(h.pack(), adler)
            for part in parts:
                self._f.write(part)
                adler = adler32(part, adler)
        entry = f.entries[it.index]
        size = sum(h.size for h, _b in frags)
        self.events.append(ev)
        self.packed.append(
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
        self.size += EVENT_ENTRY.size + size

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()
        self.path.unlink(missing_ok=True)


def pack_events(
    workdir: Path,
    names: Callable[[str], str],
    run: int,
    items: Sequence[PackItem],
    opened: OpenFiles,
    policy_version: str,
    target: int,
    stream_of: Callable[[PackItem], str] = lambda it: STREAM_OF[it.klass],
) -> Iterator[Written]:
    """Final files of ``items`` (in order; one series per stream, ``names(stream)`` naming the
    next file of a stream), each under ``target`` bytes once compressed.

    One pass over the items, so each raw file is read (fetched) once whatever its events'
    streams, and closed after its last item.  An event that would take its stream's file past
    ``target`` starts the next one (an event bigger than ``target`` gets a file alone).  Each
    file is yielded as soon as it is under its name, so the caller records it at once.
    """
    last = {it.path: i for i, it in enumerate(items)}
    spools: dict[str, _Spool] = {}
    g = opened.geo
    scratch = np.empty((g.fragment_channels, g.samples), dtype=np.uint16) if items else None
    try:
        for i, it in enumerate(items):
            stream = stream_of(it)
            f = opened.get(it.path)
            frags, size = compress_event(f, it.index, scratch)
            spool = spools.get(stream)
            if spool is not None and spool.size + EVENT_ENTRY.size + size > target:
                del spools[stream]
                yield _finish(workdir, spool, run, stream, opened, policy_version)
            if stream not in spools:
                spools[stream] = _Spool(workdir, names(stream))
            spools[stream].add(it, f, frags)
            if last[it.path] == i:
                opened.release(it.path)
        for stream in list(spools):
            yield _finish(workdir, spools.pop(stream), run, stream, opened, policy_version)
    finally:
        for spool in spools.values():
            spool.close()


def write_final(
    workdir: Path,
    name: str,
    run: int,
    stream: str,
    items: Sequence[PackItem],
    opened: OpenFiles,
    policy_version: str,
) -> Written:
    """One final file of all ``items`` (with manifest and log) in ``workdir``."""
    (written,) = pack_events(
        workdir, lambda _s: name, run, items, opened, policy_version, 1 << 62, lambda _i: stream
    )
    return written


def _finish(
    workdir: Path, spool: _Spool, run: int, stream: str, opened: OpenFiles, policy_version: str
) -> Written:
    """Write the spooled events as the final file, verified, with its manifest and log."""
    name, packed = spool.name, spool.packed
    path = workdir / name
    tmp = workdir / f".{name}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        spool.flush()
        write_pddp_file(
            tmp, run, spool.events, incomplete=[p.incomplete for p in packed], fsync=True
        )
        with PDDPFile(tmp, opened.geo) as check:
            got = [(e.trigger_number, e.size) for e in check.entries]
        if got != [(p.trigger, p.size) for p in packed]:
            raise RawDataError(str(tmp), "re-read event table differs from the events written")
        size = tmp.stat().st_size
        adler = adler32_file(tmp)
    finally:
        spool.close()
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
