"""What an ingest pass concludes about a file that does not end stored, written down.

Each verdict is one state transition of the file with its story event, and an alarm where a
person must look: a failed attempt (back-off, quarantine after repeated checksum mismatches), a
file this daemon may not read, a quarantine, an ignored entry, the DAQ's end-of-run record, a
source that vanished.  The :class:`Outcome` returned tells the scheduler when to come back.
Kept apart from :mod:`farmtools.ingest.pipeline` (claim, copy, verify, publish) so that each
reads in one sitting.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from farmtools.bookkeeping.names import db_text
from farmtools.bookkeeping.states import Event, FileState
from farmtools.ingest.entries import utc
from farmtools.rawdata import RawName
from farmtools.rawdata.endofrun import EndOfRunError, read_end_of_run
from farmtools.retry import Backoff

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import Bookkeeping, FileRecord
    from farmtools.config import FarmConfig

log = logging.getLogger("farmtools.ingest")

#: ``alarms.source`` of everything this stage raises.
SOURCE = "ingest"
#: Story event of a checksum verification failure (an ``error`` with this ``kind``).
KIND_MISMATCH = "checksum_mismatch"
#: Alarm kind of a raw file whose normalised name another file already holds.
KIND_COLLISION = "name_collision"
#: Alarm (and error) kind of an entry with a raw file name that is not a regular file.
KIND_NOT_REGULAR = "not_regular_file"
#: Error kind (and alarm) of a raw file this daemon may not read: waits, retried by itself.
KIND_UNREADABLE = "permission_denied"
#: Alarm kind of an end-of-run record (``run<N>.eor.json``) that cannot be read.
KIND_BAD_EOR = "bad_end_of_run"
#: How often a file open for writing through another of its names is looked at: its close
#: happens in another directory, whose close-write this watcher does not see.
WRITER_POLL_S = 1.0


@dataclass(frozen=True)
class Outcome:
    """What one pass over a file did: its state now, and when to come back (None: nothing to do)."""

    state: FileState | None
    retry_after: float | None = None
    #: why the file waits, when retrying at once cannot help (:data:`KIND_UNREADABLE`)
    waits_for: str | None = None


class Verdicts:
    """The bookkeeping side of the failures, waits and refusals of one ingest service.

    Also holds what those verdicts teach the next passes: the files waiting for read
    permission (looked at again with a back-off) and the time until which the storage is
    taken as down (no new attempt before, except the first probe).
    """

    def __init__(
        self,
        cfg: FarmConfig,
        db: Bookkeeping,
        *,
        lock: threading.Lock,
        names: Callable[[Path], tuple[str, RawName | None]],
    ) -> None:
        self.cfg = cfg
        self._db = db
        self._lock = lock
        #: a path's name in the database, and its raw name if it has one
        self._names = names
        self.backoff = Backoff(cfg.storage.backoff_s, cfg.storage.backoff_max_s)
        #: monotonic time before which the storage is taken as down (no new attempts)
        self.down_until = 0.0
        #: paths waiting for read permission, with the number of looks so far (back-off)
        self._denied: dict[Path, int] = {}

    def waiting_for_permission(self, path: Path) -> bool:
        """Whether ``path`` waits to become readable (a chmod brings it back at once)."""
        with self._lock:
            return path in self._denied

    def readable_again(self, path: Path) -> None:
        """``path`` may be read now: forget its wait."""
        with self._lock:
            self._denied.pop(path, None)

    def failed(
        self, name: str, rec: FileRecord, tries: int, exc: BaseException, kind: str
    ) -> Outcome:
        """A failed attempt: back to detected with a back-off, or quarantined when it is hopeless."""
        message = str(exc)
        if kind == KIND_MISMATCH:
            mismatches = 1 + sum(
                1
                for ev in self._db.story(name)
                if ev.event == Event.ERROR and (ev.details or {}).get("kind") == KIND_MISMATCH
            )
            if mismatches >= max(1, self.cfg.storage.retries):
                self._db.record(
                    name, Event.ERROR, {"kind": kind, "error": message, "attempt": tries}
                )
                return self.quarantine(
                    name,
                    KIND_MISMATCH,
                    f"verification failed {mismatches} times, last: {message}",
                )
        delay = self.backoff.delay(tries)
        if kind != KIND_MISMATCH:
            self.down_until = time.monotonic() + delay
        alarm = None
        if kind != KIND_MISMATCH and tries == self.cfg.ingest.retry_alarm_after:
            alarm = (
                SOURCE,
                "storage_unavailable",
                f"{name}: {tries} failed attempts, last: {message}",
            )
        self._db.transition(
            name,
            FileState.COPYING,
            FileState.DETECTED,
            Event.ERROR,
            {"kind": kind, "error": message, "attempt": tries, "retry_in_s": round(delay, 3)},
            fields={
                "claimed_by": None,
                "last_error": message,
                "not_before": datetime.now(UTC) + timedelta(seconds=delay),
            },
            alarm=alarm,
        )
        log.warning("%s: copying -> detected (%s: %s; retry in %.1f s)", name, kind, message, delay)
        return Outcome(FileState.DETECTED, delay)

    def unreadable(self, path: Path, rec: FileRecord, tries: int, message: str) -> Outcome:
        """This daemon may not read the file: not corrupt, a permission problem.

        Back to ``detected`` with the reason; the file is looked at again by itself, at once
        when its permissions change (IN_ATTRIB) and otherwise with the storage's back-off, and
        taken as soon as it is readable.  One alarm, when the problem is first seen.
        """
        name = rec.name
        with self._lock:
            n = self._denied.get(path, 0) + 1
            self._denied[path] = n
        delay = self.backoff.delay(n)
        first = KIND_UNREADABLE.replace("_", " ") not in (rec.last_error or "")
        self._db.transition(
            name,
            FileState.COPYING,
            FileState.DETECTED,
            Event.ERROR,
            {"kind": KIND_UNREADABLE, "error": message, "attempt": tries},
            fields={
                "claimed_by": None,
                "last_error": message,
                "not_before": datetime.now(UTC) + timedelta(seconds=delay),
            },
            alarm=(SOURCE, KIND_UNREADABLE, message) if first else None,
        )
        log.error("%s: copying -> detected (%s)", name, message)
        return Outcome(FileState.DETECTED, delay, KIND_UNREADABLE)

    def still_unreadable(self, path: Path, name: str) -> Outcome:
        with self._lock:
            n = self._denied.get(path, 0) + 1
            self._denied[path] = n
        delay = self.backoff.delay(n)
        log.info("%s: still not readable by this daemon, looking again in %.1f s", name, delay)
        return Outcome(FileState.DETECTED, delay, KIND_UNREADABLE)

    def give_up(self, path: Path) -> None:
        """ingest() used up its retries: say so with an alarm; the file stays detected."""
        name, _ = self._names(path)
        rec = self._db.get(name)
        if rec is None or rec.state != FileState.DETECTED:
            return
        if rec.tries < self.cfg.ingest.retry_alarm_after:  # else the loop raised it already
            self._db.raise_alarm(
                name,
                SOURCE,
                "storage_unavailable",
                f"{name}: {rec.tries} failed attempts, last: {rec.last_error}; "
                "left detected for a later reconcile or `farmtools ingest retry`",
            )
        log.error("%s: giving up for now after %d attempts: %s", name, rec.tries, rec.last_error)

    def release(self, name: str, message: str, kind: str) -> None:
        self._db.transition(
            name,
            FileState.COPYING,
            FileState.DETECTED,
            Event.ERROR,
            {"kind": kind, "error": message},
            fields={"claimed_by": None, "last_error": message},
        )
        log.warning("%s: copying -> detected (%s)", name, message)

    def quarantine(self, name: str, kind: str, message: str) -> Outcome:
        self._db.transition(
            name,
            [FileState.COPYING, FileState.DETECTED],
            FileState.QUARANTINED,
            Event.QUARANTINED,
            {"kind": kind, "error": message},
            fields={"claimed_by": None, "last_error": message, "not_before": None},
            alarm=(SOURCE, kind, message),
        )
        log.error("%s: -> quarantined (%s: %s)", name, kind, message)
        return Outcome(FileState.QUARANTINED)

    def ignore(
        self,
        path: Path,
        name: str,
        st: os.stat_result,
        *,
        why: str | None = None,
        alarm: str | None = None,
    ) -> Outcome:
        """Record ``path`` as ignored under ``name`` (once) and leave it alone.

        ``why`` defaults to the reason of a name that is not a raw file (or not a regular file);
        ``alarm`` (a kind) also raises an alarm, for files a person must look at: they look like
        raw data, yet will not be ingested.
        """
        if stat.S_ISDIR(st.st_mode):
            return Outcome(None)
        if self._db.get(name) is None:
            if why is None:
                why = "not a raw file name" if stat.S_ISREG(st.st_mode) else "not a regular file"
            self._db.register_file(
                name,
                source_path=db_text(os.fsdecode(path)),
                run=None,
                seq=None,
                size=st.st_size,
                daq_write_time=utc(st.st_mtime),
                state=FileState.IGNORED,
                event=Event.IGNORED,
                details={"reason": why},
                alarm=None if alarm is None else (SOURCE, alarm, why),
            )
            if alarm is not None:
                log.error("%s: -> ignored (%s)", name, why)
            else:
                log.info("%s: -> ignored (%s)", name, why)
        return Outcome(FileState.IGNORED)

    def end_of_run(self, path: Path, name: str, st: os.stat_result) -> Outcome:
        """Store the DAQ's end-of-run record in the bookkeeping (the processing daemon closes
        the run); a record that cannot be read is ignored with an alarm naming what is wrong.
        The record itself stays where it is, recorded as ignored like any other non-raw name."""
        try:
            record = read_end_of_run(path)
        except EndOfRunError as exc:
            return self.ignore(path, name, st, why=str(exc), alarm=KIND_BAD_EOR)
        source = db_text(os.fsdecode(path))
        if self._db.record_end_of_run(record.run, record.to_json(), source=source):
            log.info(
                "%s: end of run %d (%d files, %d events)",
                name,
                record.run,
                record.files,
                record.events,
            )
        return self.ignore(path, name, st, why=f"end-of-run record of run {record.run}")

    def vanished(self, path: Path) -> Outcome:
        name, raw = self._names(path)
        rec = self._db.get(name) if raw is not None else None
        if rec is not None and rec.state == FileState.DETECTED and not rec.last_error:
            message = f"source {db_text(os.fsdecode(path))} vanished before it was copied"
            self._db.transition(
                name,
                FileState.DETECTED,
                FileState.DETECTED,
                Event.ERROR,
                {"kind": "source_vanished", "error": message},
                fields={"last_error": message},
                alarm=(SOURCE, "source_vanished", message),
            )
            log.error("%s: %s", name, message)
        return Outcome(rec.state if rec is not None else None)
