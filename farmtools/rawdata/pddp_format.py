"""Byte layout of the 6x6x6 (ProtoDUNE-DP) files: file header, event table, L1 fragment header, LRO.

Facts from the public decoder (``PDDPRawInputDriver`` in dunetpc), all in host byte order,
which is little-endian on the x86-64 machines of the DAQ:

* file: two uint32 (the second is the number of events N), an event table of N entries of
  four uint32 (the second is the event's size in bytes), then the events back to back;
* event: its L1 fragments back to back; a fragment is a 44-byte header, the LRO bytes, the
  CRO bytes and one trailing byte;
* header: ``0xFF 0xFF``; uint32 run number; uint8 run flags (bit 0: CRO data Huffman
  compressed); the trigger record, the C struct ``{uint8 type; uint32 number; struct timespec
  time}`` with its padding (24 bytes); uint8 data-quality flag (bits 0-5: cards missing);
  uint32 event number; uint32 LRO size; uint32 CRO size.  The struct packs unaligned: 44 bytes.

This project's choices where the decoder is silent (docs/protodune-dp.md lists them): the
first file-header word is the run number; an event-table entry is (event number, size,
trigger number, flags) with flag bit 0 "incomplete"; fragment flag bit 6 marks the fragments
of an event the L2 builder wrote incomplete, bit 7 a placeholder fragment standing for the
missing one (no data, bits 0-5 = every card of that L1 builder); the trailing byte is 0; the
LRO segment is :class:`LroPulse` records behind a small header.

Pure standard library: imports nothing from farmtools.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

FILE_HEADER = struct.Struct("<II")  # run number [choice], number of events
EVENT_ENTRY = struct.Struct("<IIII")  # event number, size [doc], trigger number, flags [choice]
# magic, run, run flags, trigger type, (3 padding), trigger number, tv_sec, tv_nsec,
# data-quality flag, event number, LRO size, CRO size
FRAGMENT_HEADER = struct.Struct("<2sIBB3xIqqBIII")
FRAGMENT_HEADER_SIZE = FRAGMENT_HEADER.size  # 44
assert FRAGMENT_HEADER_SIZE == 44
FRAGMENT_MAGIC = b"\xff\xff"
TRAILER_SIZE = 1
TRAILER = b"\x00"

RUN_FLAG_HUFFMAN = 0x01
DQ_MISSING_CARDS_MASK = 0x3F
#: Set by the L2 builder on the fragments of an event whose partner never came [choice].
DQ_EVENT_INCOMPLETE = 0x40
#: Set on the placeholder fragment the L2 builder writes for the missing one [choice].
DQ_PLACEHOLDER = 0x80
#: Event-table flag: the event was written without one of its fragments [choice].
ENTRY_INCOMPLETE = 0x1

#: LRO segment: magic, version, number of PMTs, number of pulses [choice].
LRO_HEADER = struct.Struct("<2sBBI")
LRO_MAGIC = b"LR"
LRO_VERSION = 1
#: One light pulse: PMT, flags, time from the trigger (ns), charge (photo-electrons) [choice].
LRO_PULSE = struct.Struct("<HHif")
#: PMTs under the cathode of the 6x6x6.
LRO_PMTS = 36


@dataclass(frozen=True)
class FragmentHeader:
    """The 44-byte header of one L1 fragment."""

    run: int
    run_flags: int
    trigger_type: int
    trigger_number: int
    seconds: int
    nanoseconds: int
    dq_flag: int
    event_number: int
    lro_size: int
    cro_size: int

    @property
    def compressed(self) -> bool:
        """CRO data are Huffman-coded (run flags bit 0, as the decoder reads it)."""
        return bool(self.run_flags & RUN_FLAG_HUFFMAN)

    @property
    def missing_cards(self) -> int:
        return self.dq_flag & DQ_MISSING_CARDS_MASK

    @property
    def placeholder(self) -> bool:
        return bool(self.dq_flag & DQ_PLACEHOLDER)

    @property
    def body_size(self) -> int:
        """LRO, CRO and the trailing byte: what follows the header."""
        return self.lro_size + self.cro_size + TRAILER_SIZE

    @property
    def size(self) -> int:
        return FRAGMENT_HEADER_SIZE + self.body_size

    @property
    def time_ns(self) -> int:
        return self.seconds * 1_000_000_000 + self.nanoseconds

    def pack(self) -> bytes:
        return FRAGMENT_HEADER.pack(
            FRAGMENT_MAGIC,
            self.run,
            self.run_flags,
            self.trigger_type,
            self.trigger_number,
            self.seconds,
            self.nanoseconds,
            self.dq_flag,
            self.event_number,
            self.lro_size,
            self.cro_size,
        )

    @classmethod
    def unpack(
        cls, raw: bytes | bytearray | memoryview, offset: int = 0
    ) -> tuple[bytes, FragmentHeader]:
        """(magic, header); the caller checks the magic so that it can name the offset."""
        magic, *fields = FRAGMENT_HEADER.unpack_from(raw, offset)
        return magic, cls(*fields)

    def placeholder_for(self, missing_cards: int) -> FragmentHeader:
        """The header the L2 builder writes in place of this event's missing fragment."""
        return replace(
            self,
            run_flags=self.run_flags,
            dq_flag=DQ_PLACEHOLDER | DQ_EVENT_INCOMPLETE | min(missing_cards, 0x3F),
            lro_size=0,
            cro_size=0,
        )


@dataclass(frozen=True)
class EventEntry:
    """One entry of the event table."""

    event_number: int
    size: int
    trigger_number: int
    flags: int

    @property
    def incomplete(self) -> bool:
        return bool(self.flags & ENTRY_INCOMPLETE)

    def pack(self) -> bytes:
        return EVENT_ENTRY.pack(self.event_number, self.size, self.trigger_number, self.flags)


@dataclass(frozen=True)
class LroPulse:
    """One PMT pulse of the light readout."""

    pmt: int
    time_ns: int
    charge_pe: float
    flags: int = 0


def pack_lro(pulses: list[LroPulse], n_pmts: int = LRO_PMTS) -> bytes:
    """The LRO segment: header and pulses [choice, docs/protodune-dp.md]."""
    out = [LRO_HEADER.pack(LRO_MAGIC, LRO_VERSION, n_pmts, len(pulses))]
    out += [LRO_PULSE.pack(p.pmt, p.flags, p.time_ns, p.charge_pe) for p in pulses]
    return b"".join(out)


def unpack_lro(raw: bytes) -> list[LroPulse]:
    """Pulses of an LRO segment (empty segment: no pulses); ValueError if it is malformed."""
    if not raw:
        return []
    if len(raw) < LRO_HEADER.size:
        raise ValueError(f"LRO segment of {len(raw)} bytes is shorter than its header")
    magic, version, _pmts, n = LRO_HEADER.unpack_from(raw, 0)
    if magic != LRO_MAGIC or version != LRO_VERSION:
        raise ValueError(f"LRO segment starts with {magic!r} version {version}, not LR version 1")
    if len(raw) != LRO_HEADER.size + n * LRO_PULSE.size:
        raise ValueError(f"LRO segment of {len(raw)} bytes does not hold its {n} pulses")
    return [
        LroPulse(pmt, t, q, flags)
        for pmt, flags, t, q in LRO_PULSE.iter_unpack(raw[LRO_HEADER.size :])
    ]


def table_size(n_events: int) -> int:
    """Bytes of the file header and the event table."""
    return FILE_HEADER.size + n_events * EVENT_ENTRY.size
