"""Reader of 3x1x1 raw files: lazy, random-access, and strict about what it accepts.

Opening a file reads the run header and walks the event headers with seeks (335 small reads
for a 1 GiB file), which gives the event count, random access and a first structural check,
without reading any payload.  Payloads are read and decoded one event at a time, so memory
stays at one event whatever the file size.

Every problem - wrong magic, truncation, a payload size that disagrees with the geometry, an
undecodable compressed stream, a footer that disagrees with the events read, trailing bytes,
an I/O error - raises :class:`~farmtools.rawdata.errors.RawDataError` with the file, the event
index and the byte offset.  Nothing else escapes: daemons catch exactly that one type.

Imports :mod:`farmtools.detector` and the rest of :mod:`farmtools.rawdata` only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from farmtools.detector import WA105_3X1X1, Geometry
from farmtools.rawdata import huffman
from farmtools.rawdata.errors import RawDataError
from farmtools.rawdata.format import (
    EVENT_HEADER_SIZE,
    EVENT_MAGIC,
    FOOTER,
    FOOTER_MAGIC,
    FOOTER_SIZE,
    RUN_HEADER,
    RUN_HEADER_SIZE,
    EventHeader,
)
from farmtools.rawdata.indexed import IndexedFile
from farmtools.rawdata.packing import unpack12


@dataclass(frozen=True)
class Event:
    """One decoded event: its header and its samples, (channels, samples) uint16 in VIEW order."""

    index: int
    offset: int
    header: EventHeader
    adc: npt.NDArray[np.uint16]


class ReadBuffers:
    """The scratch one reading thread reuses from event to event: the payload's bytes and, for
    compressed payloads, the decoded samples in DAQ order (grown or made when first needed).

    Reusing them is what keeps the reader from allocating (and page-faulting in) two or three
    3-4 MB arrays per event; each thread that reads needs its own.
    """

    def __init__(self, geometry: Geometry) -> None:
        self.geometry = geometry
        self.payload = np.empty(geometry.payload_bytes, dtype=np.uint8)
        self._daq: npt.NDArray[np.uint16] | None = None

    def payload_view(self, size: int) -> npt.NDArray[np.uint8]:
        if self.payload.size < size:
            self.payload = np.empty(size, dtype=np.uint8)
        return self.payload[:size]

    @property
    def daq(self) -> npt.NDArray[np.uint16]:
        if self._daq is None:
            g = self.geometry
            self._daq = np.empty((g.n_channels, g.samples), dtype=np.uint16)
        return self._daq


@dataclass
class ValidationReport:
    """What :meth:`RawFile.validate` found in a valid file."""

    path: str
    run: int
    n_events: int
    size: int
    compressed_events: int
    bad_card_events: int
    first_trigger: int | None = None
    last_trigger: int | None = None
    first_time: float | None = None
    last_time: float | None = None
    trigger_types: dict[int, int] = field(default_factory=dict)

    @property
    def compression(self) -> str:
        if self.compressed_events == 0:
            return "none"
        return "all" if self.compressed_events == self.n_events else "mixed"


class RawFile(IndexedFile):
    """An open raw file; create with :meth:`open` and use as a context manager."""

    def __init__(self, path: str | os.PathLike[str], geometry: Geometry = WA105_3X1X1) -> None:
        self.geometry = geometry
        self.headers: list[EventHeader] = []
        self.event_offsets: list[int] = []
        super().__init__(path)
        self._buffers = ReadBuffers(geometry)

    @classmethod
    def open(cls, path: str | os.PathLike[str], geometry: Geometry = WA105_3X1X1) -> RawFile:
        """Open and index a raw file (raises :class:`RawDataError` if its structure is wrong)."""
        return cls(path, geometry)

    @property
    def n_events(self) -> int:
        return len(self.headers)

    # --- structure ---------------------------------------------------------------------------
    def _index(self) -> None:
        if self.size == 0:
            raise RawDataError(self.path, "empty file", offset=0)
        self.run, self.flags = RUN_HEADER.unpack(
            self._read_at(0, RUN_HEADER_SIZE, "the run header", None)
        )
        offset = RUN_HEADER_SIZE
        expected_payload = self.geometry.payload_bytes
        footer_at = self.size - FOOTER_SIZE
        while True:
            if offset == footer_at:
                magic, count = FOOTER.unpack(self._read_at(offset, FOOTER_SIZE, "the footer", None))
                if magic != FOOTER_MAGIC:
                    raise RawDataError(
                        self.path, f"bad footer magic {magic.hex()} (expected f0f0)", offset=offset
                    )
                if count != len(self.headers):
                    raise RawDataError(
                        self.path,
                        f"footer says {count} events but the file holds {len(self.headers)}",
                        offset=offset,
                    )
                return
            index = len(self.headers)
            if offset > footer_at:
                self._footer_cut(offset, index - 1)
            if self.size - offset < EVENT_HEADER_SIZE:
                self._after_footer(offset)  # 10 bytes appended to a complete file
            raw = self._read_at(offset, EVENT_HEADER_SIZE, "an event header", index)
            magic, header = EventHeader.unpack(raw)
            if magic != EVENT_MAGIC:
                self._after_footer(offset)
                raise RawDataError(
                    self.path,
                    f"bad event magic {magic.hex()} (expected ffff)",
                    event=index,
                    offset=offset,
                )
            size = header.payload_size
            if not header.compressed and size != expected_payload:
                raise RawDataError(
                    self.path,
                    f"payload of {size} bytes, the {self.geometry.name} geometry needs {expected_payload}",
                    event=index,
                    offset=offset + 31,
                )
            if header.compressed and size == 0:
                raise RawDataError(
                    self.path, "empty compressed payload", event=index, offset=offset + 31
                )
            end = offset + EVENT_HEADER_SIZE + size
            if end > footer_at:
                if end <= self.size:  # this event is whole: what is cut is the footer
                    self._footer_cut(end, index)
                raise RawDataError(
                    self.path,
                    f"file truncated inside the event (payload of {size} bytes, "
                    f"{self.size - offset - EVENT_HEADER_SIZE} in the file)",
                    event=index,
                    offset=offset,
                )
            self.headers.append(header)
            self.event_offsets.append(offset)
            offset = end

    def _footer_cut(self, offset: int, last: int) -> None:
        """Raise for a file whose events up to ``last`` are whole but whose footer (at
        ``offset``, right after event ``last``; -1: the run header) is not."""
        after = f"event {last}" if last >= 0 else "the run header"
        left = self.size - offset
        if left == 0:
            message = f"footer missing: the file ends right after {after}, which is complete"
            raise RawDataError(self.path, message, offset=offset)
        head = self._read_at(offset, left, "the footer", None)[:2]
        if FOOTER_MAGIC.startswith(head):
            message = f"file truncated in the footer ({left} of {FOOTER_SIZE} bytes after {after})"
        elif EVENT_MAGIC.startswith(head):
            message = f"file truncated in an event header ({left} of {EVENT_HEADER_SIZE} bytes)"
            raise RawDataError(self.path, message, event=last + 1, offset=offset)
        else:
            message = f"{left} bytes after {after} that are neither a footer nor an event header"
        raise RawDataError(self.path, message, offset=offset)

    def _after_footer(self, offset: int) -> None:
        """Raise if a valid footer of the events read sits at ``offset`` with bytes after it."""
        if self.size - offset < FOOTER_SIZE:
            return
        magic, count = FOOTER.unpack(self._read_at(offset, FOOTER_SIZE, "the footer", None))
        if magic == FOOTER_MAGIC and count == len(self.headers):
            extra = self.size - offset - FOOTER_SIZE
            raise RawDataError(
                self.path,
                f"{extra} bytes after the footer (the footer at byte offset {offset} closes "
                f"the file's {count} events; a complete file followed by other bytes)",
                offset=offset + FOOTER_SIZE,
            )

    # --- events ------------------------------------------------------------------------------
    def read_raw_payload(self, i: int) -> bytes:
        """The encoded payload of event ``i`` as it is in the file."""
        header = self.headers[i]
        return self._read_at(
            self.event_offsets[i] + EVENT_HEADER_SIZE, header.payload_size, "a payload", i
        )

    def event(self, i: int) -> Event:
        """Decode event ``i`` (0-based; negative counts from the end)."""
        if i < 0:
            i += len(self.headers)
        if not 0 <= i < len(self.headers):
            raise IndexError(f"event {i} out of range: {self.path} holds {len(self.headers)}")
        return Event(i, self.event_offsets[i], self.headers[i], self.read_adc(i))

    def read_adc(
        self,
        i: int,
        out: npt.NDArray[np.uint16] | None = None,
        buffers: ReadBuffers | None = None,
        threads: int | None = None,
        daq_order: bool = False,
    ) -> npt.NDArray[np.uint16]:
        """Event ``i``'s samples, (channels, samples) uint16, written into ``out``.

        In view order (:class:`Event`'s), or with ``daq_order`` as the payload holds them
        (row = DAQ channel; ``Geometry.view_to_daq`` maps them): that skips a gather over the
        whole event (1 ms of a 3x1x1 event's ~3 ms read here), for consumers that map rows
        themselves, as :func:`farmtools.reco.signal.process_signal` can.
        For loops that reuse their arrays: ``out`` (a new array if None) and ``buffers`` (the
        file's own if None, which only one thread may use at a time) are overwritten.  With a
        ``buffers`` of their own, several threads may read events of one file at once.
        ``threads``: for Huffman decoding (see :func:`farmtools.rawdata.huffman.decode`).
        """
        header = self.headers[i]
        g = self.geometry
        bufs = self._buffers if buffers is None else buffers
        if out is None:
            out = np.empty((g.n_channels, g.samples), dtype=np.uint16)
        daq = out if daq_order else bufs.daq
        start = self.event_offsets[i] + EVENT_HEADER_SIZE
        payload = bufs.payload_view(header.payload_size)
        self._read_into(start, payload, "a payload", i)
        if header.compressed:
            try:
                huffman.decode(payload, g.n_channels, g.samples, daq, threads=threads)
            except huffman.DecodeError as exc:
                raise RawDataError(
                    self.path, f"bad compressed payload: {exc}", event=i, offset=start + exc.offset
                ) from None
        else:
            unpack12(payload, g.n_channels * g.samples, out=daq.reshape(-1))
        return out if daq_order else np.take(daq, g.view_to_daq, axis=0, out=out)

    def __iter__(self) -> Iterator[Event]:
        for i in range(len(self.headers)):
            yield self.event(i)

    def validate(self, progress: object | None = None) -> ValidationReport:
        """Decode every event; returns what a valid file holds, raises RawDataError otherwise."""
        report = ValidationReport(
            path=self.path,
            run=self.run,
            n_events=len(self.headers),
            size=self.size,
            compressed_events=sum(h.compressed for h in self.headers),
            bad_card_events=sum(1 for h in self.headers if h.bad_cards),
        )
        for h in self.headers:
            report.trigger_types[h.trigger_type] = report.trigger_types.get(h.trigger_type, 0) + 1
        if self.headers:
            report.first_trigger = min(h.trigger_number for h in self.headers)
            report.last_trigger = max(h.trigger_number for h in self.headers)
            report.first_time = min(h.time for h in self.headers)
            report.last_time = max(h.time for h in self.headers)
        for i in range(len(self.headers)):
            self.event(i)
            if callable(progress):
                progress(i + 1)
        return report


def read_events(path: str | os.PathLike[str], geometry: Geometry = WA105_3X1X1) -> Iterator[Event]:
    """Iterate over the decoded events of a file, one at a time."""
    with RawFile.open(path, geometry) as f:
        yield from f
