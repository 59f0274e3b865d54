"""Writing 6x6x6 fragments and ProtoDUNE-DP event files.

The event table sits in front of the events, so a file's table is known only when its events
are: the L2 builder plans a file from fragments already on disk (their headers give every
size), then writes it in one pass, copying each fragment's body from its L1 file with
``copy_file_range`` (the kernel moves the bytes; no copy through Python).  In-memory bodies
(the emulator, the tests) go the same way.  :func:`write_pddp_file` never replaces an existing
file; the caller writes under a temporary name and renames when verified (the builder does).

Imports :mod:`farmtools.detector` and the rest of :mod:`farmtools.rawdata` only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from farmtools.detector import Geometry
from farmtools.rawdata import huffman
from farmtools.rawdata.packing import pack12
from farmtools.rawdata.pddp_format import (
    ENTRY_INCOMPLETE,
    FILE_HEADER,
    RUN_FLAG_HUFFMAN,
    TRAILER,
    EventEntry,
    FragmentHeader,
)


@dataclass(frozen=True)
class Fragment:
    """One fragment to write: its header, and its body (LRO, CRO, trailing byte) in memory or on disk."""

    header: FragmentHeader
    body: bytes | None = None
    #: File that holds the body (an L1 stream file) and where the body starts in it.
    source: str | None = None
    body_offset: int = 0

    @property
    def size(self) -> int:
        return self.header.size


def encode_cro(daq_rows: npt.NDArray[np.uint16], compress: bool) -> bytes:
    """CRO bytes of a fragment's channels (DAQ order): 12-bit packed, or the DAQ's Huffman code."""
    return huffman.encode(daq_rows) if compress else pack12(daq_rows).tobytes()


def make_fragment(
    daq_rows: npt.NDArray[np.uint16],
    *,
    run: int,
    trigger_type: int,
    trigger_number: int,
    time_ns: int,
    event_number: int,
    missing_cards: int = 0,
    compress: bool = False,
    lro: bytes = b"",
) -> Fragment:
    """A fragment as an L1 event builder fills it, from its channels' samples in DAQ order."""
    cro = encode_cro(daq_rows, compress)
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    header = FragmentHeader(
        run=run,
        run_flags=RUN_FLAG_HUFFMAN if compress else 0,
        trigger_type=trigger_type,
        trigger_number=trigger_number,
        seconds=seconds,
        nanoseconds=nanos,
        dq_flag=missing_cards & 0x3F,
        event_number=event_number,
        lro_size=len(lro),
        cro_size=len(cro),
    )
    return Fragment(header, lro + cro + TRAILER)


def event_fragments(
    view: npt.NDArray[np.uint16],
    geometry: Geometry,
    *,
    run: int,
    trigger_number: int,
    time_ns: int,
    trigger_type: int = 1,
    compress: bool = False,
) -> list[Fragment]:
    """The L1 builders' fragments of one event given in VIEW order (for tests and benchmarks).

    Each builder gets its channels in DAQ order and says the cards it misses when all is well.
    """
    daq = np.empty_like(view)
    daq[geometry.view_to_daq] = view
    fc = geometry.fragment_channels
    return [
        make_fragment(
            daq[k * fc : (k + 1) * fc],
            run=run,
            trigger_type=trigger_type,
            trigger_number=trigger_number,
            time_ns=time_ns,
            event_number=trigger_number,
            missing_cards=geometry.missing_cards(k),
            compress=compress,
        )
        for k in range(geometry.l1_builders)
    ]


def event_entry(fragments: Sequence[Fragment], incomplete: bool = False) -> EventEntry:
    """The event-table entry of an event made of ``fragments``."""
    first = fragments[0].header
    return EventEntry(
        event_number=first.event_number,
        size=sum(f.size for f in fragments),
        trigger_number=first.trigger_number,
        flags=ENTRY_INCOMPLETE if incomplete else 0,
    )


def copy_range(src_fd: int, dst_fd: int, offset: int, count: int) -> None:
    """Copy ``count`` bytes from ``offset`` of ``src_fd`` to the position of ``dst_fd``, in the kernel."""
    while count > 0:
        done = os.copy_file_range(src_fd, dst_fd, count, offset)
        if done == 0:
            raise OSError(f"source ended {count} bytes before the fragment's end")
        offset += done
        count -= done


def write_pddp_file(
    path: str | os.PathLike[str],
    run: int,
    events: Sequence[Sequence[Fragment]],
    *,
    incomplete: Sequence[bool] | None = None,
    fsync: bool = False,
) -> int:
    """Write a new event file (never over an existing one); returns its size in bytes."""
    if not events:
        raise ValueError("an event file must hold at least one event (the decoder refuses none)")
    flags = incomplete if incomplete is not None else [False] * len(events)
    sources: dict[str, int] = {}
    size = 0
    with open(path, "xb", buffering=0) as out:
        fd = out.fileno()
        head = [FILE_HEADER.pack(run, len(events))]
        head += [event_entry(ev, inc).pack() for ev, inc in zip(events, flags, strict=True)]
        size += os.write(fd, b"".join(head))
        try:
            for event in events:
                for frag in event:
                    size += os.write(fd, frag.header.pack())
                    if frag.body is not None:
                        if len(frag.body) != frag.header.body_size:
                            raise ValueError("fragment body does not match its header's sizes")
                        view = memoryview(frag.body)
                        while view:
                            n = os.write(fd, view)
                            view = view[n:]
                    elif frag.source is not None:
                        src = sources.get(frag.source)
                        if src is None:
                            src = sources[frag.source] = os.open(frag.source, os.O_RDONLY)
                        copy_range(src, fd, frag.body_offset, frag.header.body_size)
                    else:
                        raise ValueError("a fragment needs a body or a source file")
                    size += frag.header.body_size
            if fsync:
                os.fsync(fd)
        finally:
            for src in sources.values():
                os.close(src)
    return size
