"""The seed's transfer logs, written from bookkeeping records: ``alltransfer.log`` and ``runs/run<N>.log``.

The database is the truth; these files exist for people who grep them (seed-conventions.md).  A
line is::

    0 2016-10-27 13:55:04 2016-10-27 13:55:04 1023M 2016-10-27 13:55 /home/prod/storage/input/run1014/run1014-seq2.dat

copy duration in whole seconds (end minus start as printed, like the seed's ``date +%s``
arithmetic); copy start; copy end; size (rounded up, like ``ls -sh``: K, M, G);
DAQ write time to the minute; destination.  Times are the farm's local time, as the seed's
``date`` calls wrote them.  Imports only the bookkeeping package.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

from farmtools.bookkeeping.db import Bookkeeping, FileRecord
from farmtools.bookkeeping.states import Event, FileState

#: Below the production account's home.
LOG_DIR = Path("all_logs") / "fromEVB"


def human_size(size: int) -> str:
    """``1072226134`` -> ``1023M``: the seed's size column (1024-based, rounded up)."""
    for unit, power in (("G", 3), ("M", 2), ("K", 1)):
        if size >= 1024**power or unit == "K":
            return f"{math.ceil(size / 1024**power)}{unit}"
    raise AssertionError("unreachable")


def _local(t: datetime) -> datetime:
    return t.astimezone()


def transfer_line(
    started: datetime, ended: datetime, size: int, daq_write_time: datetime, destination: str
) -> str:
    """One transfer log line (without the newline); destination newlines are escaped."""
    # whole seconds between the printed times: "04 -> 05" is 1 s even when 0.2 s passed
    duration = max(0, int(ended.timestamp()) - int(started.timestamp()))
    dest = destination.replace("\\", "\\\\").replace("\n", "\\n")
    return (
        f"{duration} {_local(started):%Y-%m-%d %H:%M:%S} {_local(ended):%Y-%m-%d %H:%M:%S} "
        f"{human_size(size)} {_local(daq_write_time):%Y-%m-%d %H:%M} {dest}"
    )


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # One write() of a short line with O_APPEND: lines of concurrent writers do not interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def append_transfer(home: Path, run: int, line: str) -> None:
    """Append ``line`` to both seed logs below ``home``."""
    _append(home / LOG_DIR / "alltransfer.log", line)
    _append(home / LOG_DIR / "runs" / f"run{run}.log", line)


#: Story events a transfer line is made of.
_LINE_EVENTS = (Event.COPY_STARTED, Event.COPY_ENDED, Event.VERIFIED, Event.ALREADY_STORED)


def line_for(
    bk: Bookkeeping, rec: FileRecord, times: Mapping[str, datetime] | None = None
) -> str | None:
    """The transfer line of a stored file from its story, None if it has no complete copy.

    Uses the last copy attempt (a retried copy counts once, with its successful try); a file
    whose bytes were already on the storage gets a zero-length line at that time.  ``times``
    (event -> last time) saves the query when the caller has them already.
    """
    if times is None:
        times = bk.events_between(rec.name, *_LINE_EVENTS)
    ended = (
        times.get(Event.COPY_ENDED) or times.get(Event.VERIFIED) or times.get(Event.ALREADY_STORED)
    )
    started = times.get(Event.COPY_STARTED) or ended
    if started is None or ended is None or rec.storage_path is None:
        return None
    return transfer_line(
        started, ended, rec.size or 0, rec.daq_write_time or started, rec.storage_path
    )


_NOT_STORED = {FileState.DETECTED, FileState.COPYING, FileState.QUARANTINED, FileState.IGNORED}


def export(bk: Bookkeeping, dest: Path, records: Iterable[FileRecord] | None = None) -> int:
    """Re-generate both logs into ``dest`` (replacing them atomically); returns the line count."""
    recs = [
        r
        for r in (records if records is not None else bk.files())
        if r.run is not None and r.state not in _NOT_STORED
    ]
    times = bk.last_event_times(*_LINE_EVENTS)
    lines: list[tuple[datetime, int, str]] = []
    for r in recs:
        t = times.get(r.name, {})
        line = line_for(bk, r, t)
        if line is not None:
            # in copy-start order, as the seed appended them during data taking
            start = t.get(Event.COPY_STARTED) or min(t.values())
            lines.append((start, r.id, line))
    lines.sort(key=lambda x: (x[0], x[1]))
    by_run: dict[int, list[str]] = {}
    run_of = {r.id: r.run or 0 for r in recs}
    for _, fid, line in lines:
        by_run.setdefault(run_of[fid], []).append(line)
    _replace(dest / "alltransfer.log", [ln for _, _, ln in lines])
    for run, run_lines in by_run.items():
        _replace(dest / "runs" / f"run{run}.log", run_lines)
    return len(lines)


def _replace(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(ln + "\n" for ln in lines))
    os.replace(tmp, path)
