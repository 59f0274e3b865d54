"""The seed's transfer logs, written from bookkeeping records: ``alltransfer.log`` and ``runs/run<N>.log``.

The database is the truth; these files exist for people who grep them (seed-conventions.md).  A
line is::

    0 2016-10-27 13:55:04 2016-10-27 13:55:04 1023M 2016-10-27 13:55 /home/prod/storage/input/run1014/run1014-seq2.dat

copy duration in whole seconds; copy start; copy end; size (rounded up, like ``ls -sh``: K, M, G);
DAQ write time to the minute; destination.  Times are the farm's local time, as the seed's
``date`` calls wrote them.  Imports only the bookkeeping package.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
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
    duration = max(0, round((ended - started).total_seconds()))
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


def line_for(bk: Bookkeeping, rec: FileRecord) -> str | None:
    """The transfer line of a stored file from its story, None if it has no complete copy."""
    times = bk.events_between(rec.name, Event.COPY_STARTED, Event.COPY_ENDED, Event.VERIFIED,
                              Event.ALREADY_STORED)
    started = times.get(Event.COPY_STARTED)
    ended = times.get(Event.COPY_ENDED) or times.get(Event.VERIFIED) or times.get(
        Event.ALREADY_STORED)
    if started is None or ended is None or rec.storage_path is None:
        return None
    return transfer_line(started, ended, rec.size or 0, rec.daq_write_time or started,
                         rec.storage_path)


_NOT_STORED = {FileState.DETECTED, FileState.COPYING, FileState.QUARANTINED, FileState.IGNORED}


def export(bk: Bookkeeping, dest: Path, records: Iterable[FileRecord] | None = None) -> int:
    """Re-generate both logs into ``dest`` (replacing them atomically); returns the line count."""
    recs = [r for r in (records if records is not None else bk.files())
            if r.run is not None and r.state not in _NOT_STORED]
    lines: list[tuple[datetime, int, str]] = []
    for r in recs:
        line = line_for(bk, r)
        if line is not None:
            lines.append((r.state_since, r.run or 0, line))
    lines.sort(key=lambda x: (x[2].split(" ", 3)[1:3], x[1]))
    by_run: dict[int, list[str]] = {}
    for _, run, line in lines:
        by_run.setdefault(run, []).append(line)
    _replace(dest / "alltransfer.log", [ln for _, _, ln in lines])
    for run, run_lines in by_run.items():
        _replace(dest / "runs" / f"run{run}.log", run_lines)
    return len(lines)


def _replace(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(ln + "\n" for ln in lines))
    os.replace(tmp, path)
