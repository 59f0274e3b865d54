"""Streaming writer of raw files, the way the DAQ wrote them.

The file is created in place (never over an existing one), grows event by event, and gets its
footer only on :meth:`RawFileWriter.close`: a watcher that looks at it before then sees a file
without a footer, exactly like the real event builder's files while they were being written.

Imports :mod:`farmtools.detector` and the rest of :mod:`farmtools.rawdata` only.
"""

from __future__ import annotations

import os
from types import TracebackType

import numpy as np
import numpy.typing as npt

from farmtools.detector import WA105_3X1X1, Geometry
from farmtools.rawdata import huffman
from farmtools.rawdata.format import (
    DQ_BAD_CARDS_MASK,
    DQ_COMPRESSED,
    FOOTER,
    FOOTER_MAGIC,
    RUN_HEADER,
    EventHeader,
    TriggerType,
)
from farmtools.rawdata.packing import pack12


class RawFileWriter:
    """Append events to a new raw file; use as a context manager so the footer is always written."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        run: int,
        *,
        geometry: Geometry = WA105_3X1X1,
        compress: bool = False,
        flags: int = 0,
    ) -> None:
        self.path = os.fspath(path)
        self.run = run
        self.geometry = geometry
        self.compress = compress
        self.n_events = 0
        self._daq = np.empty((geometry.n_channels, geometry.samples), dtype=np.uint16)
        # "x": never replace an existing file, whatever the caller believes
        self._file = open(self.path, "xb")  # noqa: SIM115 - closed in close()
        self._file.write(RUN_HEADER.pack(run, flags))

    def __enter__(self) -> RawFileWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def to_daq_order(self, adc: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint16]:
        """The event's samples rearranged from view order to DAQ order (a reused buffer)."""
        g = self.geometry
        if adc.shape != (g.n_channels, g.samples):
            raise ValueError(f"event shape {adc.shape} is not ({g.n_channels}, {g.samples})")
        self._daq[g.view_to_daq] = adc
        return self._daq

    def write_event(
        self,
        adc: npt.NDArray[np.uint16],
        *,
        trigger_number: int,
        seconds: int,
        nanoseconds: int,
        trigger_type: int = TriggerType.PMT,
        bad_cards: int = 0,
        event_number: int | None = None,
    ) -> EventHeader:
        """Encode one event given in VIEW order and append it; returns the header written."""
        daq = self.to_daq_order(adc)
        payload = huffman.encode(daq) if self.compress else pack12(daq).tobytes()
        return self.write_event_payload(
            payload,
            trigger_number=trigger_number,
            seconds=seconds,
            nanoseconds=nanoseconds,
            trigger_type=trigger_type,
            bad_cards=bad_cards,
            event_number=event_number,
            compressed=self.compress,
        )

    def write_event_payload(
        self,
        payload: bytes,
        *,
        trigger_number: int,
        seconds: int,
        nanoseconds: int,
        trigger_type: int = TriggerType.PMT,
        bad_cards: int = 0,
        event_number: int | None = None,
        compressed: bool = False,
    ) -> EventHeader:
        """Append an already encoded payload (the emulator's template mode re-writes payloads)."""
        if not 0 <= bad_cards <= DQ_BAD_CARDS_MASK:
            raise ValueError(f"bad_cards {bad_cards} does not fit in 6 bits")
        header = EventHeader(
            trigger_type=int(trigger_type),
            trigger_number=trigger_number,
            seconds=seconds,
            nanoseconds=nanoseconds,
            dq_flag=(DQ_COMPRESSED if compressed else 0) | bad_cards,
            event_number=self.n_events if event_number is None else event_number,
            payload_size=len(payload),
        )
        self._file.write(header.pack())
        self._file.write(payload)
        self.n_events += 1
        return header

    def flush(self) -> None:
        """Push written events to the operating system (a reader sees them)."""
        self._file.flush()

    def close(self) -> None:
        """Write the footer and close; idempotent."""
        if self._file.closed:
            return
        if self.n_events > 0xFFFF:
            raise ValueError(f"{self.n_events} events do not fit the footer's 16-bit count")
        self._file.write(FOOTER.pack(FOOTER_MAGIC, self.n_events))
        self._file.close()
