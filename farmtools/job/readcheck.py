"""``python -m farmtools.job.readcheck RAW``: read a whole raw file and check its framing.

The job program used until the reconstruction lands (``processing.program = "check"``): a real
program that reads every byte of the input from the storage, walks the 311 framing (run header,
each event header's magic and payload size, the footer's magic and event count) and exits with
the codes of :mod:`farmtools.job.exitcodes` (65 for a corrupt file, 66 when it cannot be
opened).  It prints one summary line, which ends up in the job's stdout.

Imports only :mod:`farmtools.rawdata.format` (byte layout) and the standard library, so that a
job starts in a fraction of a second.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

from farmtools.job.exitcodes import EX_DATAERR, EX_NOINPUT
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


class CorruptFile(Exception):
    """The framing is broken at ``offset``."""

    def __init__(self, path: Path, offset: int, message: str) -> None:
        super().__init__(f"{path}: {message} at byte offset {offset}")


def check(path: Path) -> tuple[int, int, int, str]:
    """(run, events, bytes, adler32 hex) of a well-framed file; raises :class:`CorruptFile`."""
    size = path.stat().st_size
    adler = 1
    with path.open("rb") as f:

        def read(n: int, offset: int, what: str) -> bytes:
            nonlocal adler
            data = f.read(n)
            if len(data) != n:
                raise CorruptFile(path, offset, f"file ends inside the {what}")
            adler = zlib.adler32(data, adler)
            return data

        run, _flags = RUN_HEADER.unpack(read(RUN_HEADER_SIZE, 0, "run header"))
        offset = RUN_HEADER_SIZE
        events = 0
        while offset + FOOTER_SIZE < size:
            raw = read(EVENT_HEADER_SIZE, offset, f"header of event {events}")
            magic, header = EventHeader.unpack(raw)
            if magic != EVENT_MAGIC:
                raise CorruptFile(path, offset, f"bad magic {magic.hex()} of event {events}")
            offset += EVENT_HEADER_SIZE
            # one whole event in memory at a time, as the reconstruction holds it
            read(header.payload_size, offset, f"payload of event {events}")
            offset += header.payload_size
            events += 1
        magic, count = FOOTER.unpack(read(FOOTER_SIZE, offset, "footer"))
        if magic != FOOTER_MAGIC:
            raise CorruptFile(path, offset, f"bad footer magic {magic.hex()}")
        if count != events % 65536:
            raise CorruptFile(path, offset, f"footer says {count} events, file holds {events}")
        if f.read(1):
            raise CorruptFile(path, offset + FOOTER_SIZE, "bytes after the footer")
    return run, events, size, f"{adler & 0xFFFFFFFF:08x}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m farmtools.job.readcheck RAW", file=sys.stderr)
        return 64
    path = Path(args[0])
    try:
        run, events, size, adler = check(path)
    except CorruptFile as exc:
        print(f"corrupt input: {exc}", file=sys.stderr)
        return EX_DATAERR
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return EX_NOINPUT
    print(f"{path}: run {run}, {events} events, {size} bytes, adler32 {adler}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
