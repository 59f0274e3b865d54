"""One raw file's pass through ingest: claim, check, copy, verify, publish or quarantine.

What :meth:`FilePipeline.process_entry` does with one path (the scheduler,
:class:`farmtools.ingest.service.IngestService`, decides when: an event, a retry, a rescan)::

    not a regular file          -> ignored with what it is (lstat only: never opened or followed)
    name not run<N>-seq<M>.dat  -> ignored (recorded, left alone)
    name taken by another file  -> ignored + alarm (run01-seq2.dat after run1-seq2.dat)
    still open for writing      -> not touched; its close-write brings it back (a hard link
                                   written through another name: looked at every second)
    register (detected) -> claim detected->copying (compare-and-set: one worker per file)
      -> not readable by us     -> detected + alarm (permission_denied), taken once readable
      -> header/footer check    -> quarantined + alarm when truncated or corrupt
      -> Storage.put (one-pass adler32, verified, temporary name + atomic publish)
           same bytes there       -> stored (already_stored)
           different bytes there  -> quarantined + alarm, never overwritten
           checksum mismatch      -> detected, retried; quarantined + alarm after storage.retries
           storage down / error   -> detected with not_before (back-off with jitter), retried;
                                     alarm after ingest.retry_alarm_after failed attempts
           source shrank meanwhile -> quarantined + alarm (as any source changed by the copy)
      -> stored (copy_ended + verified), seed transfer log lines appended

The source is only ever read.  Every conclusion is a state transition with its story event
(and an alarm where a person must look); the returned :class:`Outcome` tells the scheduler when
to come back.  Imports rawdata, storage, bookkeeping and the config.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from farmtools.bookkeeping.errors import database_unavailable
from farmtools.bookkeeping.names import db_text
from farmtools.bookkeeping.states import Event, FileState
from farmtools.ingest.claims import Claims
from farmtools.ingest.entries import entry_kind, permission_problem, utc
from farmtools.ingest.openfiles import open_for_writing
from farmtools.ingest.sourcenames import SourceNames
from farmtools.ingest.verdicts import (
    KIND_COLLISION,
    KIND_MISMATCH,
    KIND_NOT_REGULAR,
    WRITER_POLL_S,
    Outcome,
    Verdicts,
)
from farmtools.rawdata import RawDataError, RawName
from farmtools.rawdata.endofrun import parse_eor_name
from farmtools.rawdata.pddp_reader import open_raw
from farmtools.storage.base import (
    ChecksumMismatch,
    DestinationConflict,
    PutResult,
    SourceChanged,
    Storage,
    StorageError,
)

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import Bookkeeping, FileRecord
    from farmtools.config import FarmConfig

log = logging.getLogger("farmtools.ingest")


class FilePipeline:
    """The per-file half of an ingest service: everything one pass over a path decides.

    Holds what the passes of one service share: the claims it holds (``copying``,
    :class:`~.claims.Claims`), the names (:class:`~.sourcenames.SourceNames`), the files
    waiting for read permission, and the time until which the storage is taken as down.  Its
    caller (the scheduler) serialises the database calls and shares ``lock`` with it.
    """

    def __init__(
        self,
        cfg: FarmConfig,
        bk: Bookkeeping,
        db: Bookkeeping,
        storage: Storage,
        *,
        worker: str,
        host: str,
        lock: threading.Lock,
        awaiting_close: Callable[[Path], bool],
        text_logs: bool = True,
    ) -> None:
        self.cfg = cfg
        #: the database as given (text logs read it), and ``db``: the same, one call at a time
        self.bk = bk
        self._db = db
        self.storage = storage
        self.watch_dir = cfg.path(cfg.daq.watch_dir)
        self.text_logs = text_logs
        self.worker = worker
        self.host = host
        self._lock = lock
        #: whether the scheduler saw a writer create ``path`` here and its close-write is due
        self._awaiting_close = awaiting_close
        #: the claims this worker holds, and whether another's are stale
        self.claims = Claims(worker, host, lock)
        #: the names paths are recorded under
        self.naming = SourceNames(self.watch_dir)
        self.names = self.naming.names
        self.collision_name = self.naming.collision_name
        self.stale = self.claims.stale
        #: the failures, waits and refusals written down (and what they teach the next pass)
        self.verdicts = Verdicts(cfg, db, lock=lock, names=self.names)

    def close(self) -> None:
        """Forget this worker (its claims count as stale from now on)."""
        self.claims.close()

    @property
    def down_until(self) -> float:
        """Monotonic time before which the storage is taken as down (no new attempts)."""
        return self.verdicts.down_until

    @down_until.setter
    def down_until(self, value: float) -> None:
        self.verdicts.down_until = value

    def waiting_for_permission(self, path: Path) -> bool:
        """Whether ``path`` waits to become readable (a chmod brings it back at once)."""
        return self.verdicts.waiting_for_permission(path)

    def vanished(self, path: Path) -> Outcome:
        """``path`` is gone: an alarm if it was waiting for its copy."""
        return self.verdicts.vanished(path)

    def give_up(self, path: Path) -> None:
        """An ``ingest()`` used up its retries: say so; the file stays detected."""
        self.verdicts.give_up(path)

    def process_entry(self, path: Path, st: os.stat_result, *, attempt: bool) -> Outcome:
        if stat.S_ISDIR(st.st_mode):
            return Outcome(None)
        name, raw = self.names(path)
        if not stat.S_ISREG(st.st_mode):
            # a raw name that will never be ingested: a person must look (a DAQ publishing
            # through symbolic links, a FIFO or device node where a raw file should be)
            return self.verdicts.ignore(
                path,
                name,
                st,
                why=f"not a regular file: {entry_kind(path, st)}",
                alarm=KIND_NOT_REGULAR if raw is not None else None,
            )
        if raw is None and parse_eor_name(path.name) is not None:
            return self.verdicts.end_of_run(path, name, st)
        if raw is None:
            return self.verdicts.ignore(path, name, st)
        rec = self._db.get(name)
        if rec is not None and (why := self.naming.collision(path, rec)) is not None:
            return self.verdicts.ignore(
                path, self.collision_name(path, name), st, why=why, alarm=KIND_COLLISION
            )
        if rec is not None and rec.state not in (FileState.DETECTED, FileState.COPYING):
            if rec.source_path != db_text(os.fsdecode(path)):
                log.warning(
                    "%s: a file of this name from %s is already %s; %s left alone",
                    name,
                    rec.source_path,
                    rec.state,
                    db_text(os.fsdecode(path)),
                )
            return Outcome(rec.state)
        writing = open_for_writing(path)
        if writing:
            if st.st_nlink > 1:
                # written through another name (a hard link into the DAQ directory): its
                # close-write goes to that name's directory, which may not be watched
                log.info(
                    "%s: still open for writing through another of its %d names, "
                    "looking again in %.0f s",
                    name,
                    st.st_nlink,
                    WRITER_POLL_S,
                )
                return Outcome(None, WRITER_POLL_S)
            log.info("%s: still open for writing, waiting for its close", name)
            return Outcome(None)
        if writing is None:
            if self._awaiting_close(path):
                log.info("%s: writers unknown, waiting for its close-write", name)
                return Outcome(None)
            wait = self.cfg.ingest.settle_s - (time.time() - st.st_mtime)
            if wait > 0:
                log.info("%s: writers unknown, waiting %.1f s for it to settle", name, wait)
                return Outcome(None, wait + 0.01)
        if rec is None:
            rec = self._db.register_file(
                name,
                source_path=db_text(os.fsdecode(path)),
                run=raw.run,
                seq=raw.seq,
                size=st.st_size,
                daq_write_time=utc(st.st_mtime),
            )
            if rec.state == FileState.DETECTED:
                log.info("%s: -> detected (%d bytes)", name, st.st_size)
        if rec.state == FileState.COPYING:
            if not self.stale(rec):
                return Outcome(FileState.COPYING)
            if self._db.transition(
                name,
                FileState.COPYING,
                FileState.DETECTED,
                Event.RESUMED,
                {"dead_worker": rec.claimed_by, "worker": self.worker},
                fields={"claimed_by": None},
            ):
                log.info(
                    "%s: copying -> detected (worker %s is gone: resumed)", name, rec.claimed_by
                )
            rec = self._db.get(name) or rec
        if rec.state != FileState.DETECTED:
            return Outcome(rec.state)
        if self.verdicts.waiting_for_permission(path):
            # waiting for read permission: look without claiming (no story event per look)
            if permission_problem(path) is not None:
                return self.verdicts.still_unreadable(path, name)
            self.verdicts.readable_again(path)
            log.info("%s: readable now", name)
        if not attempt:
            return Outcome(FileState.DETECTED, max(0.0, self.down_until - time.monotonic()))
        return self._copy(path, rec, raw)

    def _copy(self, path: Path, rec: FileRecord, raw: RawName) -> Outcome:
        name = rec.name
        tries = rec.tries + 1
        if not self._db.transition(
            name,
            FileState.DETECTED,
            FileState.COPYING,
            Event.COPY_STARTED,
            {"worker": self.worker, "attempt": tries},
            fields={"claimed_by": self.worker, "tries": tries, "not_before": None},
        ):
            now = self._db.get(name)
            return Outcome(now.state if now is not None else None)
        log.info("%s: detected -> copying (attempt %d)", name, tries)
        with self.claims.copying(name):
            return self._copy_attempt(path, rec, raw, tries)

    def _copy_attempt(self, path: Path, rec: FileRecord, raw: RawName, tries: int) -> Outcome:
        """The claimed copy of ``rec``; whatever goes wrong leaves the claim released."""
        name = rec.name
        try:
            if rec.tries > 0:
                self._db.record(name, Event.RETRY, {"attempt": tries, "after": rec.last_error})
            return self._copy_claimed(path, rec, raw, tries)
        except FileNotFoundError as exc:
            self.verdicts.release(name, f"source vanished: {exc}", "source_vanished")
            return Outcome(FileState.DETECTED)
        except Exception as exc:
            if database_unavailable(exc):
                # nothing can be recorded now; the caller looks again later, and this claim,
                # ours with no copy under way, is then taken as stale and resumed
                raise
            # whatever went wrong, the claim must not stay with a live worker that gave up
            log.exception("%s: unexpected error while copying", name)
            return self.verdicts.failed(name, rec, tries, exc, "unexpected")

    def _copy_claimed(self, path: Path, rec: FileRecord, raw: RawName, tries: int) -> Outcome:
        """Check, copy and record a file this worker holds in ``copying``."""
        name = rec.name
        denied = permission_problem(path)
        if denied is not None:
            return self.verdicts.unreadable(path, rec, tries, denied)
        problem = self._check_raw(path, raw)
        if problem is not None:
            return self.verdicts.quarantine(name, "corrupt_raw_file", problem)
        before = path.stat()
        dest = f"{raw.run_dir}/{name}"
        started = time.monotonic()
        try:
            result = self.storage.put(path, dest)
        except DestinationConflict as exc:
            return self.verdicts.quarantine(name, "destination_conflict", str(exc))
        except SourceChanged as exc:
            # the input's fault, not the storage's: no back-off for the other files
            return self.verdicts.quarantine(name, "source_changed", str(exc))
        except ChecksumMismatch as exc:
            return self.verdicts.failed(name, rec, tries, exc, KIND_MISMATCH)
        except StorageError as exc:
            return self.verdicts.failed(
                name, rec, tries, exc, "transient" if exc.transient else "storage"
            )
        seconds = time.monotonic() - started
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            return self.verdicts.quarantine(
                name,
                "source_changed",
                f"{db_text(os.fsdecode(path))}: modified during the copy (size {before.st_size} "
                f"-> {after.st_size}); the storage holds what was read, {result.url}",
            )
        return self._stored(name, result, seconds)

    def _check_raw(self, path: Path, raw: RawName) -> str | None:
        """Header/footer walk of the raw file (no payload decoding): the reason it is bad, or None."""
        try:
            with open_raw(path, raw, self.cfg.geometry) as f:
                if f.run != raw.run:
                    return (
                        f"{db_text(os.fsdecode(path))}: run header says run {f.run}, "
                        f"the name says run {raw.run}"
                    )
        except RawDataError as exc:
            return str(exc)
        return None

    def _stored(self, name: str, result: PutResult, seconds: float) -> Outcome:
        fields = {
            "storage_path": db_text(result.url),
            "adler32": result.adler32,
            "size": result.size,
            "claimed_by": None,
            "last_error": None,
            "not_before": None,
            "tries": 0,  # processing counts its own submissions in this column from here on
        }
        if result.copied:
            rate = result.size / seconds / 1e6 if seconds > 0 else 0.0
            self._db.record(
                name,
                Event.COPY_ENDED,
                {"bytes": result.size, "seconds": round(seconds, 6), "mb_s": round(rate, 1)},
            )
            event, details = Event.VERIFIED, {"adler32": result.adler32, "url": db_text(result.url)}
        else:
            event = Event.ALREADY_STORED
            details = {"adler32": result.adler32, "url": db_text(result.url)}
        if not self._db.transition(
            name, FileState.COPYING, FileState.STORED, event, details, fields=fields
        ):
            log.warning("%s: no longer claimed by this worker after its copy", name)
            now = self._db.get(name)
            return Outcome(now.state if now is not None else None)
        self.down_until = 0.0
        log.info(
            "%s: copying -> stored (%s, adler32 %s, %d bytes, %.3f s)",
            name,
            "verified" if result.copied else "already stored",
            result.adler32,
            result.size,
            seconds,
        )
        self._append_log(name)
        return Outcome(FileState.STORED)

    def _append_log(self, name: str) -> None:
        if not self.text_logs:
            return
        from farmtools.bookkeeping.textlogs import append_transfer, line_for

        try:
            rec = self._db.get(name)
            if rec is not None and rec.run is not None:
                line = line_for(self.bk, rec)
                if line is not None:
                    append_transfer(self.cfg.home, rec.run, line)
        except OSError as exc:
            log.warning("%s: transfer log not written: %s", name, exc)
