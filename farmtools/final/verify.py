"""Re-read a final file where it lies (local directory or XRootD) and check it event by event.

The archive stage's way (:mod:`farmtools.archive.verify`): one sequential pass through
:func:`~farmtools.storage.location.open_reader`, the whole file's size and adler32 summed as the
bytes stream past, and every disagreement one line that names what is wrong.  Here the file is
a ProtoDUNE-DP file, so the pass reads the header and the event table, then each event, and
compares each event's size and adler32 with the manifest's, and the file's size and adler32
with what was recorded when it was written.  Imports the archive's adler32 arithmetic and the
storage location helpers.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from farmtools.archive.checksum import adler32_combine
from farmtools.rawdata.pddp_format import EVENT_ENTRY, FILE_HEADER, EventEntry
from farmtools.storage.checksum import adler32_hex
from farmtools.storage.location import LocationError, Reader, open_reader

CHUNK = 8 << 20


@dataclass(frozen=True)
class ExpectedEvent:
    trigger: int
    size: int
    adler32: int


@dataclass
class FinalVerifyResult:
    location: str
    size: int = 0
    adler32: int = 1
    events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_exact(reader: Reader, n: int, state: FinalVerifyResult) -> bytes:
    parts = []
    need = n
    while need:
        data = reader.read(min(need, CHUNK))
        if not data:
            break
        state.adler32 = adler32_combine(state.adler32, zlib.adler32(data), len(data))
        state.size += len(data)
        parts.append(data)
        need -= len(data)
    return b"".join(parts)


def verify_final(
    location: str, expected: Sequence[ExpectedEvent], size: int, adler32: int
) -> FinalVerifyResult:
    """Check the final file at ``location`` against its events and its recorded size/adler32."""
    res = FinalVerifyResult(location)
    try:
        with open_reader(location) as reader:
            head = _read_exact(reader, FILE_HEADER.size, res)
            if len(head) < FILE_HEADER.size:
                res.problems.append(f"{location}: shorter than a file header ({res.size} bytes)")
                return res
            _run, n = FILE_HEADER.unpack(head)
            if n != len(expected):
                res.problems.append(f"{location}: {n} events in the file, {len(expected)} recorded")
            table = _read_exact(reader, n * EVENT_ENTRY.size, res)
            entries = [EventEntry(*e) for e in EVENT_ENTRY.iter_unpack(table)]
            for i, entry in enumerate(entries):
                want = expected[i] if i < len(expected) else None
                data = _read_exact(reader, entry.size, res)
                if len(data) < entry.size:
                    res.problems.append(f"{location}: truncated in event {i}")
                    break
                res.events += 1
                if want is None:
                    continue
                got = (entry.trigger_number, entry.size, zlib.adler32(data))
                if got != (want.trigger, want.size, want.adler32):
                    res.problems.append(
                        f"{location}: event {i} is trigger {got[0]}, {got[1]} bytes, adler32 "
                        f"{adler32_hex(got[2])}; recorded trigger {want.trigger}, {want.size} "
                        f"bytes, adler32 {adler32_hex(want.adler32)}"
                    )
            while _read_exact(reader, CHUNK, res):
                pass
    except (LocationError, OSError) as exc:
        res.problems.append(f"{location}: cannot read it: {exc}")
        return res
    if (res.size, res.adler32) != (size, adler32):
        res.problems.append(
            f"{location}: {res.size} bytes, adler32 {adler32_hex(res.adler32)}; written with "
            f"{size} bytes, adler32 {adler32_hex(adler32)}"
        )
    return res
