"""Byte layout of the 3x1x1 ("311") raw file: run header, event headers, footer (spec section 2).

Only the fixed-size parts live here; payload packing is in :mod:`farmtools.rawdata.packing`
and :mod:`farmtools.rawdata.huffman`.  Multi-byte fields mix endianness exactly as the DAQ
wrote them: run number, event number and payload size are big-endian, trigger number and
trigger time little-endian.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

RUN_HEADER = struct.Struct(">IB")  # run number, flags
RUN_HEADER_SIZE = RUN_HEADER.size  # 5

# magic(2) trigger-type(1) pad(3) trigger-number(<u4) seconds(<i8) nanoseconds(<i8)
# dq-flag(1) event-number(>u4) payload-size(>u4)
_EVENT_LE = struct.Struct("<2sB3xIqqB")
_EVENT_BE = struct.Struct(">II")
EVENT_HEADER_SIZE = _EVENT_LE.size + _EVENT_BE.size  # 35
EVENT_MAGIC = b"\xff\xff"

FOOTER = struct.Struct(">2sH")
FOOTER_MAGIC = b"\xf0\xf0"
FOOTER_SIZE = FOOTER.size  # 4

DQ_COMPRESSED = 0x40
DQ_BAD_CARDS_MASK = 0x3F


class TriggerType(enum.IntEnum):
    """Trigger sources of the 3x1x1 [doc]; the numeric codes are this project's [choice]."""

    PMT = 0
    CRT = 1
    PED = 2
    #: The 6x6x6's beam trigger during an SPS spill [choice].
    BEAM = 3


@dataclass(frozen=True)
class EventHeader:
    """The 35-byte header in front of every event."""

    trigger_type: int
    trigger_number: int
    seconds: int
    nanoseconds: int
    dq_flag: int
    event_number: int
    payload_size: int

    @property
    def compressed(self) -> bool:
        """Payload is Huffman-compressed (dq flag bit 6)."""
        return bool(self.dq_flag & DQ_COMPRESSED)

    @property
    def bad_cards(self) -> int:
        """Number of bad cards (dq flag bits 0-5); 0 means a good event."""
        return self.dq_flag & DQ_BAD_CARDS_MASK

    @property
    def time(self) -> float:
        """Trigger time in seconds since the epoch, as a float (for display and plots)."""
        return self.seconds + self.nanoseconds * 1e-9

    def pack(self) -> bytes:
        return _EVENT_LE.pack(
            EVENT_MAGIC,
            self.trigger_type,
            self.trigger_number,
            self.seconds,
            self.nanoseconds,
            self.dq_flag,
        ) + _EVENT_BE.pack(self.event_number, self.payload_size)

    @classmethod
    def unpack(cls, raw: bytes) -> tuple[bytes, EventHeader]:
        """(magic, header) of 35 bytes; the caller checks the magic so it can name the offset."""
        magic, ttype, tnum, sec, nsec, dq = _EVENT_LE.unpack_from(raw, 0)
        evnum, size = _EVENT_BE.unpack_from(raw, _EVENT_LE.size)
        return magic, cls(ttype, tnum, sec, nsec, dq, evnum, size)


def uncompressed_file_size(n_events: int, payload_bytes: int) -> int:
    """Size of a file of ``n_events`` uncompressed events (1,072,226,134 for 335 3x1x1 events)."""
    return RUN_HEADER_SIZE + n_events * (EVENT_HEADER_SIZE + payload_bytes) + FOOTER_SIZE


def max_events_per_file(payload_bytes: int, max_file_bytes: int = 1 << 30) -> int:
    """How many uncompressed events fit in one file of at most ``max_file_bytes`` (335)."""
    return (max_file_bytes - RUN_HEADER_SIZE - FOOTER_SIZE) // (EVENT_HEADER_SIZE + payload_bytes)
