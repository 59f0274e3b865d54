"""Reader of 6x6x6 (ProtoDUNE-DP) event files: one event at a time, strict about what it accepts.

Opening a file reads the file header and the event table and walks the fragment headers of
every event with seeks (no sample is read), which checks the structure the public decoder
relies on: the table's sizes add up to the file, every event splits exactly into fragments
(44-byte header, LRO, CRO, trailing byte), the fragments agree on run and event number, an
uncompressed CRO segment has the geometry's size.  An event is read into one reused buffer and
decoded into one reused array, so memory stays at about one event (115 MB of bytes, 154 MB of
samples) whatever the file size.

Every problem raises :class:`~farmtools.rawdata.errors.RawDataError` naming the file, the
event, the fragment and the byte offset.

Imports :mod:`farmtools.detector` and the rest of :mod:`farmtools.rawdata` only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numba
import numpy as np
import numpy.typing as npt

from farmtools.detector import Geometry, geometry
from farmtools.rawdata import huffman
from farmtools.rawdata.errors import RawDataError
from farmtools.rawdata.indexed import IndexedFile
from farmtools.rawdata.naming import RawName
from farmtools.rawdata.packing import _unpack, unpack12
from farmtools.rawdata.pddp_format import (
    EVENT_ENTRY,
    FILE_HEADER,
    FRAGMENT_HEADER_SIZE,
    FRAGMENT_MAGIC,
    EventEntry,
    FragmentHeader,
    table_size,
    unpack_lro,
)
from farmtools.rawdata.reader import RawFile, ValidationReport


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _unpack_rows(
    buf: npt.NDArray[np.uint8], out: npt.NDArray[np.uint16], dest: npt.NDArray[np.intp]
) -> None:  # pragma: no cover - compiled
    """12-bit samples of ``len(dest)`` channels (even sample count), channel ``r`` into ``out[dest[r]]``.

    One call of the flat kernel per channel, on that channel's slice of bytes: numba then sees a
    contiguous source and destination row and vectorises the loop (x2 over indexing ``buf`` with
    a row offset inside one loop).
    """
    ns = out.shape[1]
    row_bytes = ns * 3 // 2
    for r in range(dest.size):
        _unpack(buf[r * row_bytes : (r + 1) * row_bytes], out[dest[r]], ns)


@dataclass(frozen=True)
class DPEvent:
    """One decoded event: its table entry, fragment headers, LRO segments and samples.

    ``adc`` is (channels, samples) uint16, in VIEW order from :meth:`PDDPFile.event`, in DAQ
    order from :meth:`PDDPFile.event_daq` (a reused buffer: copy it to keep it).
    """

    index: int
    offset: int
    entry: EventEntry
    fragments: list[FragmentHeader]
    lro: list[bytes]
    adc: npt.NDArray[np.uint16]

    #: Cards each fragment misses when all is well (the non-instrumented ones: 25 in 2019).
    expected_missing: int = 0x19

    @property
    def good(self) -> bool:
        """The decoder's test: every fragment misses only the non-instrumented cards."""
        return all(f.dq_flag & 0x3F == self.expected_missing for f in self.fragments)

    @property
    def incomplete(self) -> bool:
        return self.entry.incomplete or any(f.placeholder for f in self.fragments)


@dataclass
class DPValidationReport(ValidationReport):
    """What :meth:`PDDPFile.validate` found: the 311 report's fields, and the incomplete events."""

    incomplete_events: int = 0


class PDDPFile(IndexedFile):
    """An open ProtoDUNE-DP event file; use as a context manager."""

    def __init__(self, path: str | os.PathLike[str], geo: Geometry | None = None) -> None:
        self.geometry = geo if geo is not None else geometry("6x6x6")
        self.entries: list[EventEntry] = []
        self.event_offsets: list[int] = []
        self.fragments: list[list[tuple[int, FragmentHeader]]] = []
        super().__init__(path)
        self._buf = bytearray()
        self._adc: npt.NDArray[np.uint16] | None = None
        self._view: npt.NDArray[np.uint16] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], geo: Geometry | None = None) -> PDDPFile:
        return cls(path, geo)

    @property
    def n_events(self) -> int:
        return len(self.entries)

    # --- structure ---------------------------------------------------------------------------
    def _index(self) -> None:
        if self.size == 0:
            raise RawDataError(self.path, "empty file", offset=0)
        self.run, n = FILE_HEADER.unpack(
            self._read_at(0, FILE_HEADER.size, "the file header", None)
        )
        if n == 0:
            raise RawDataError(self.path, "the file header says 0 events", offset=4)
        if table_size(n) > self.size:
            raise RawDataError(
                self.path,
                f"file truncated in the event table ({n} entries need {table_size(n)} bytes)",
                offset=FILE_HEADER.size,
            )
        table = self._read_at(FILE_HEADER.size, n * EVENT_ENTRY.size, "the event table", None)
        self.entries = [EventEntry(*e) for e in EVENT_ENTRY.iter_unpack(table)]
        offset = table_size(n)
        for i, entry in enumerate(self.entries):
            if offset + entry.size > self.size:
                raise RawDataError(
                    self.path,
                    f"file truncated inside the event ({entry.size} bytes run past the end)",
                    event=i,
                    offset=offset,
                )
            self.event_offsets.append(offset)
            self.fragments.append(self._walk(i, offset, entry))
            offset += entry.size
        if offset != self.size:
            raise RawDataError(
                self.path,
                f"{self.size - offset} bytes after the last event of the table",
                offset=offset,
            )

    def _walk(self, i: int, start: int, entry: EventEntry) -> list[tuple[int, FragmentHeader]]:
        """(offset, header) of each fragment of event ``i``, checked as the decoder needs."""
        g = self.geometry
        end = start + entry.size
        out: list[tuple[int, FragmentHeader]] = []
        pos = start
        while pos < end:
            k = len(out)
            if pos + FRAGMENT_HEADER_SIZE > end:
                raise RawDataError(
                    self.path,
                    "event ends inside a fragment header",
                    event=i,
                    fragment=k,
                    offset=pos,
                )
            magic, h = FragmentHeader.unpack(
                self._read_at(pos, FRAGMENT_HEADER_SIZE, "a fragment header", i, k)
            )
            if magic != FRAGMENT_MAGIC:
                raise RawDataError(
                    self.path,
                    f"bad fragment delimiter {magic.hex()} (expected ffff)",
                    event=i,
                    fragment=k,
                    offset=pos,
                )
            if pos + h.size > end:
                raise RawDataError(
                    self.path,
                    f"fragment of {h.size} bytes runs past the end of its event",
                    event=i,
                    fragment=k,
                    offset=pos,
                )
            if h.cro_size and not h.compressed and h.cro_size != g.fragment_bytes:
                raise RawDataError(
                    self.path,
                    f"CRO segment of {h.cro_size} bytes, a {g.name} fragment needs {g.fragment_bytes}",
                    event=i,
                    fragment=k,
                    offset=pos + 40,
                )
            if out and (h.run, h.event_number) != (out[0][1].run, out[0][1].event_number):
                raise RawDataError(
                    self.path,
                    f"fragment of run {h.run} event {h.event_number} in the event of run "
                    f"{out[0][1].run} event {out[0][1].event_number}",
                    event=i,
                    fragment=k,
                    offset=pos,
                )
            out.append((pos, h))
            pos += h.size
        if len(out) > g.l1_builders:
            raise RawDataError(
                self.path,
                f"{len(out)} fragments, the {g.name} has {g.l1_builders} L1 builders",
                event=i,
                offset=start,
            )
        return out

    # --- events ------------------------------------------------------------------------------
    def read_raw_event(self, i: int) -> memoryview:
        """The bytes of event ``i`` as they are in the file (a reused buffer)."""
        size = self.entries[i].size
        if len(self._buf) < size:
            self._buf = bytearray(size)
        return self._read_into(self.event_offsets[i], memoryview(self._buf)[:size], "an event", i)

    def read_into(
        self, i: int, offset: int, out: memoryview, fragment: int | None = None
    ) -> memoryview:
        """``len(out)`` bytes of event ``i`` at file offset ``offset`` into ``out``.

        For a reader that scans an event piece by piece in a small reused buffer (the
        classification: a piece that fits the CPU cache is read and scanned while hot, where a
        whole 115 MB event read first would be fetched from memory twice).
        """
        start = self.event_offsets[i]
        if not start <= offset <= offset + len(out) <= start + self.entries[i].size:
            raise ValueError(f"bytes {offset}+{len(out)} are not inside event {i} of {self.path}")
        return self._read_into(offset, out, "an event", i, fragment)

    def event_daq(self, i: int) -> DPEvent:
        """Decode event ``i`` with its channels in DAQ order (crate, card, channel)."""
        if self._adc is None:
            g = self.geometry
            self._adc = np.empty((g.n_channels, g.samples), dtype=np.uint16)
        return self._decode(i, self._adc, None)

    def event(self, i: int) -> DPEvent:
        """Decode event ``i`` with its channels in VIEW order (CRP-major, view 0 then 1).

        Each channel is unpacked straight into its view-order row (no second copy of the event);
        the samples are a reused buffer: copy them to keep them.
        """
        g = self.geometry
        if self._view is None:
            self._view = np.empty((g.n_channels, g.samples), dtype=np.uint16)
        return self._decode(i, self._view, g.daq_to_view)

    def _decode(
        self, i: int, adc: npt.NDArray[np.uint16], dest: npt.NDArray[np.intp] | None
    ) -> DPEvent:
        """Event ``i`` into ``adc``; DAQ channel ``c`` goes to row ``dest[c]`` (None: row ``c``)."""
        if i < 0:
            i += len(self.entries)
        if not 0 <= i < len(self.entries):
            raise IndexError(f"event {i} out of range: {self.path} holds {len(self.entries)}")
        g = self.geometry
        raw = self.read_raw_event(i)
        start = self.event_offsets[i]
        fc = g.fragment_channels
        lro: list[bytes] = []
        headers = []
        n_frag = len(self.fragments[i])
        # compressed fragments decoded side by side when cores are given (no channel counting,
        # which bounds threads within one payload), else one by one, each on the threads
        threads = huffman.threads_from_env()
        on_threads = threads > 1 and sum(h.compressed for _, h in self.fragments[i]) > 1
        jobs: list[Callable[[int], None]] = []
        for k, (pos, h) in enumerate(self.fragments[i]):
            rows = adc[k * fc : (k + 1) * fc] if dest is None else None
            body = pos - start + FRAGMENT_HEADER_SIZE
            lro_bytes = bytes(raw[body : body + h.lro_size])
            try:
                unpack_lro(lro_bytes)
            except ValueError as exc:
                raise RawDataError(
                    self.path, f"bad LRO segment: {exc}", event=i, fragment=k, offset=pos + 44
                ) from None
            lro.append(lro_bytes)
            headers.append(h)
            cro = raw[body + h.lro_size : body + h.lro_size + h.cro_size]
            if h.cro_size == 0:
                if rows is not None:
                    rows[:] = 0
                else:
                    assert dest is not None
                    adc[dest[k * fc : (k + 1) * fc]] = 0
            elif h.compressed:
                job = partial(self._decode_cro, i, k, pos + 44 + h.lro_size, cro, adc, dest)
                if on_threads:
                    jobs.append(job)
                else:
                    job(threads)
            elif rows is not None:
                unpack12(cro, fc * g.samples, out=rows.reshape(-1))
            else:
                assert dest is not None
                raw_cro = np.frombuffer(cro, dtype=np.uint8)
                if g.samples % 2 == 0:
                    _unpack_rows(raw_cro, adc, dest[k * fc : (k + 1) * fc])
                else:  # channels do not start on a byte: unpack, then place the rows
                    adc[dest[k * fc : (k + 1) * fc]] = unpack12(raw_cro, fc * g.samples).reshape(
                        fc, g.samples
                    )
        if jobs:
            with ThreadPoolExecutor(min(threads, len(jobs))) as pool:
                done = [pool.submit(job, max(1, threads // len(jobs))) for job in jobs]
                for f in done:  # (the first bad fragment's error, as one by one)
                    f.result()
        if n_frag < g.l1_builders:
            if dest is None:
                adc[n_frag * fc :] = 0
            else:
                adc[dest[n_frag * fc :]] = 0
        return DPEvent(i, start, self.entries[i], headers, lro, adc, g.missing_cards(0))

    def _decode_cro(
        self,
        i: int,
        k: int,
        offset: int,
        cro: bytes | memoryview | npt.NDArray[np.uint8],
        adc: npt.NDArray[np.uint16],
        dest: npt.NDArray[np.intp] | None,
        threads: int,
    ) -> None:
        """Fragment ``k``'s compressed CRO segment (at file ``offset``) into its rows of ``adc``."""
        g = self.geometry
        fc = g.fragment_channels
        try:
            if dest is None:  # (straight into the rows)
                huffman.decode(cro, fc, g.samples, out=adc[k * fc : (k + 1) * fc], threads=threads)
            else:
                adc[dest[k * fc : (k + 1) * fc]] = huffman.decode(
                    cro, fc, g.samples, threads=threads
                )
        except huffman.DecodeError as exc:
            raise RawDataError(
                self.path,
                f"bad compressed CRO segment: {exc}",
                event=i,
                fragment=k,
                offset=offset + exc.offset,
            ) from None

    def __iter__(self) -> Iterator[DPEvent]:
        """Events in view order, one at a time (each in the same reused buffer)."""
        for i in range(len(self.entries)):
            yield self.event(i)

    def validate(self, progress: object | None = None) -> DPValidationReport:
        """Decode every event; what a valid file holds, or RawDataError."""
        heads = [frags[0][1] for frags in self.fragments if frags]
        report = DPValidationReport(
            path=self.path,
            run=self.run,
            n_events=len(self.entries),
            size=self.size,
            compressed_events=sum(1 for h in heads if h.compressed),
            bad_card_events=sum(
                1
                for frags in self.fragments
                if any(
                    h.missing_cards != self.geometry.missing_cards(k)
                    for k, (_p, h) in enumerate(frags)
                )
            ),
            incomplete_events=sum(1 for e in self.entries if e.incomplete),
        )
        for h in heads:
            report.trigger_types[h.trigger_type] = report.trigger_types.get(h.trigger_type, 0) + 1
        if heads:
            report.first_trigger = min(h.trigger_number for h in heads)
            report.last_trigger = max(h.trigger_number for h in heads)
            report.first_time = min(h.time_ns for h in heads) / 1e9
            report.last_time = max(h.time_ns for h in heads) / 1e9
        for i in range(len(self.entries)):
            self.event_daq(i)
            if callable(progress):
                progress(i + 1)
        return report


def open_raw(path: str | os.PathLike[str], name: RawName, geo: Geometry) -> RawFile | PDDPFile:
    """A raw file opened by the reader of its format: a 6x6x6 event file (``name.pddp``) by
    the ProtoDUNE-DP one (with ``geo`` if it is a 6x6x6 geometry, else the 6x6x6's), a 311
    file by the 3x1x1 one; the farm's configured geometry names one detector, its directories
    may hold the other's files."""
    if name.pddp:
        return PDDPFile.open(path, geo if geo.l1_builders == 2 else geometry("6x6x6"))
    return RawFile.open(path, geo)
