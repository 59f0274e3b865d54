"""Streams a raw file (or any source of events) through the reconstruction into a ROOT file.

The place in :mod:`farmtools.reco` that does the I/O: it reads events one at a time from
:class:`farmtools.rawdata.RawFile` (never the whole file; compressed payloads through the
faster :mod:`.decode`), calls the pure
:func:`~farmtools.reco.event.reconstruct_event`, and hands results to
:class:`~farmtools.reco.output.RecoWriter`.  May import rawdata, detector and the reco core.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from farmtools.detector import Geometry
from farmtools.rawdata import RawFile
from farmtools.reco.event import reconstruct_event
from farmtools.reco.output import RecoWriter

#: One event for the driver: the header fields of EVENT_COLUMNS and the view-order ADC array.
EventInput = tuple[dict[str, Any], npt.NDArray[np.uint16]]


@dataclass
class RecoStats:
    """What one reconstruction did, for logs and the benchmark."""

    n_events: int = 0
    n_hits: int = 0
    n_tracks: int = 0
    seconds: float = 0.0
    #: Seconds per step: "read" (decoding, in the reader) plus the steps of reconstruct_event.
    timing: dict[str, float] = field(default_factory=dict)


def reconstruct_stream(
    events: Iterable[EventInput],
    out_path: str | os.PathLike[str],
    geometry: Geometry,
    progress: Callable[[int], None] | None = None,
) -> RecoStats:
    """Reconstruct ``events`` one by one and write them to ``out_path``.

    The output is written to ``<out>.part`` and renamed when complete, so a crash never leaves a
    ROOT file that looks finished.
    """
    stats = RecoStats()
    out = os.fspath(out_path)
    part = out + ".part"
    t_all = time.perf_counter()
    try:
        with RecoWriter(part, geometry.n_channels) as writer:
            t_read = time.perf_counter()
            for header, adc in events:
                stats.timing["read"] = stats.timing.get("read", 0.0) + time.perf_counter() - t_read
                reco = reconstruct_event(adc, geometry)
                t_w = time.perf_counter()
                writer.add(header, reco)
                stats.timing["write"] = stats.timing.get("write", 0.0) + time.perf_counter() - t_w
                for k, v in reco.timing.items():
                    stats.timing[k] = stats.timing.get(k, 0.0) + v
                stats.n_events += 1
                stats.n_hits += reco.n_hits
                stats.n_tracks += reco.n_tracks
                if progress is not None:
                    progress(stats.n_events)
                t_read = time.perf_counter()
            t_w = time.perf_counter()
        stats.timing["write"] = stats.timing.get("write", 0.0) + time.perf_counter() - t_w
        os.replace(part, out)
    except BaseException:
        if os.path.exists(part):
            os.unlink(part)
        raise
    stats.seconds = time.perf_counter() - t_all
    return stats


def raw_events(
    path: str | os.PathLike[str], geometry: Geometry
) -> tuple[int, Iterator[EventInput]]:
    """(number of events, lazy iterator of driver inputs) of a raw file, via the rawdata reader."""
    from farmtools.rawdata.naming import parse_raw_name

    name = parse_raw_name(path)
    run_hint = name.run if name is not None else -1
    raw = RawFile.open(path, geometry)
    run = int(getattr(raw, "run", run_hint))

    def gen() -> Iterator[EventInput]:
        try:
            for i in range(raw.n_events):
                adc = raw.event(i).adc  # RawDataError names file, event, offset
                h = raw.headers[i]
                header = {
                    "event": i,
                    "run": run,
                    "event_number": h.event_number,
                    "trigger_number": h.trigger_number,
                    "trigger_type": h.trigger_type,
                    "seconds": h.seconds,
                    "nanoseconds": h.nanoseconds,
                    "trigger_time": h.time,
                    "dq_flag": h.dq_flag,
                    "compressed": h.compressed,
                    "bad_cards": h.bad_cards,
                    "offset": raw.event_offsets[i],
                }
                yield header, adc
        finally:
            close = getattr(raw, "close", None)
            if close is not None:
                close()

    return int(raw.n_events), gen()


def reconstruct_file(
    raw_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    geometry: Geometry,
    progress: Callable[[int], None] | None = None,
) -> RecoStats:
    """Reconstruct a raw file into ``out_path``; bad input raises RawDataError (file, event, offset)."""
    _n, events = raw_events(raw_path, geometry)
    return reconstruct_stream(events, out_path, geometry, progress)
