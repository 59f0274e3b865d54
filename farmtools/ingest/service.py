"""The ingest service: DAQ raw files to the farm storage, verified, recorded; see docs/ingest.md.

One file's path (:meth:`IngestService.ingest`, and the watcher for every close-write, new
entry and rescan)::

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

The source is only ever read.  The daemon loop (:meth:`IngestService.watch`) catches every error
per file, records it and carries on.  Imports rawdata, storage, bookkeeping and the config.
"""

from __future__ import annotations

import contextlib
import getpass
import heapq
import logging
import os
import selectors
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from farmtools.bookkeeping.errors import database_unavailable, first_line
from farmtools.bookkeeping.heartbeat import Heartbeat
from farmtools.bookkeeping.names import db_text
from farmtools.bookkeeping.states import Event, FileState
from farmtools.ingest.openfiles import open_for_writing
from farmtools.rawdata import RawDataError, RawFile, RawName, parse_raw_name
from farmtools.rawdata.endofrun import EndOfRunError, parse_eor_name, read_end_of_run
from farmtools.retry import Backoff
from farmtools.storage.base import (
    ChecksumMismatch,
    DestinationConflict,
    PutResult,
    SourceChanged,
    Storage,
    StorageError,
)
from farmtools.storage.checksum import adler32_file, adler32_hex

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import Bookkeeping, FileRecord
    from farmtools.config import FarmConfig
    from farmtools.detector import Geometry
    from farmtools.ingest.watcher import DirWatcher
    from farmtools.rawdata.pddp_reader import PDDPFile

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


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _process_start() -> int:
    """Start time of this process (jiffies since boot): with the pid, tells a reused pid apart."""
    try:
        import psutil

        return int(psutil.Process().create_time() * 100)
    except Exception:
        return 0


@dataclass(frozen=True)
class Outcome:
    """What one pass over a file did: its state now, and when to come back (None: nothing to do)."""

    state: FileState | None
    retry_after: float | None = None
    #: why the file waits, when retrying at once cannot help (:data:`KIND_UNREADABLE`)
    waits_for: str | None = None


class IngestService:
    """Ingest of one DAQ directory into one storage, recording everything in ``bk``.

    Several services (threads, processes, hosts) may share a database and a DAQ directory: the
    detected->copying compare-and-set makes sure that one copies each file.
    """

    #: Worker ids of the services alive in this process (a claim by one of them is not stale).
    _live: ClassVar[set[str]] = set()

    def __init__(
        self,
        cfg: FarmConfig,
        bk: Bookkeeping,
        storage: Storage,
        *,
        worker: str | None = None,
        text_logs: bool = True,
        workers: int = 4,
    ) -> None:
        self.cfg = cfg
        self.bk = bk
        #: the same database, one call at a time from this service's threads: SQLite's busy
        #: handler sleeps in coarse steps, a Python lock hands over at once
        self._db: Bookkeeping = _Serialized(bk)  # type: ignore[assignment]
        self.storage = storage
        self.watch_dir = cfg.path(cfg.daq.watch_dir)
        self.backoff = Backoff(cfg.storage.backoff_s, cfg.storage.backoff_max_s)
        self.text_logs = text_logs
        self.host = socket.gethostname()
        self.worker = (
            worker or f"{self.host}:{os.getpid()}:{_process_start()}:{uuid.uuid4().hex[:6]}"
        )
        IngestService._live.add(self.worker)
        #: monotonic time before which the storage is taken as down (no new attempts in the loop)
        self._down_until = 0.0
        #: (monotonic due time, seq, path) of files to look at again: retries, settle waits
        self._due: list[tuple[float, int, Path]] = []
        self._due_seq = 0
        self._stop = threading.Event()
        #: copies running at once in watch(): a close-write is claimed at once even while
        #: another file's copy (or its fsync) is still going
        self.workers = max(1, workers)
        self._lock = threading.Lock()
        #: paths a watch() worker is busy with, and those that had an event meanwhile
        self._inflight: set[Path] = set()
        self._again: set[Path] = set()
        #: names this service holds in "copying" right now (its other claims are leftovers)
        self._copying: set[str] = set()
        #: consecutive failures of each path that no file state records (the database itself
        #: away, a bug): their retries back off like the storage's instead of a fixed delay
        self._failures: dict[Path, int] = {}
        #: inode of every path (as a string: cheaper to hash than a Path) whose state the
        #: database holds (registered by this service or found known): what the periodic
        #: rescan compares the directory listing with
        self._known: dict[str, int] = {}
        #: files created empty in a watched directory whose close-write has not come yet: a
        #: writer of this host holds them, whatever the open-for-writing probes can tell
        self._created: set[Path] = set()
        #: paths waiting for read permission, with the number of looks so far (back-off)
        self._denied: dict[Path, int] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._wake_w: int | None = None

    def close(self) -> None:
        """Forget this worker (its claims count as stale from now on)."""
        IngestService._live.discard(self.worker)

    # ------------------------------------------------------------------ public API ----------
    def ingest(self, path: str | os.PathLike[str]) -> FileState:
        """Ingest one file now, retrying transient errors with back-off up to ``storage.retries``.

        Returns the file's state afterwards: ``stored``, ``ignored``, ``quarantined``,
        ``detected`` (retries used up, storage still failing: an error event and an alarm are
        recorded, a later :meth:`reconcile` or ``farmtools ingest retry`` takes it up again),
        or ``copying`` (another worker has it).  A file still open for writing is not
        registered; ``detected`` is returned for it.
        """
        p = Path(path)
        rounds = 0
        while True:
            out = self._process(p, attempt=True)
            if out.state is None:
                return FileState.DETECTED
            if out.retry_after is None or out.state != FileState.DETECTED or out.waits_for:
                return out.state
            rounds += 1
            if rounds > self.cfg.storage.retries:
                self._give_up(p)
                return FileState.DETECTED
            if self._stop.wait(out.retry_after):
                return out.state

    def reconcile(self) -> int:
        """One pass over the DAQ directory and the database; returns the files stored by it.

        Takes every complete raw file the database does not know, every file left ``detected``
        (waiting for a retry) and every file left ``copying`` by a worker that is dead
        (``resumed``).  Files still open for writing are left for their close-write; names that
        are not raw files are recorded as ignored.  Transient failures are not waited for here:
        they are scheduled (``not_before``) and, inside :meth:`watch`, retried on time.
        """
        stored = 0
        self._down_until = 0.0  # each pass probes the storage at least once
        for path in self._candidates():
            try:
                # once the storage failed in this pass, the rest is only scheduled: one probe
                # per back-off instead of a connection timeout per file
                out = self._process(path, attempt=time.monotonic() >= self._down_until)
            except Exception as exc:
                self._retry_later(path, exc, "reconciliation")
                continue
            self._failures.pop(path, None)
            if out.state == FileState.STORED:
                stored += 1
            if out.retry_after is not None:
                self._schedule(path, out.retry_after)
        return stored

    def retry(self, name: str, *, force: bool = False) -> FileState:
        """An operator's retry of one quarantined or failing file (a name or a path).

        The file goes back to ``detected`` with its attempt counters reset and is ingested
        at once, from the source path recorded in the database.  A file ``copying`` under a
        worker of another host (whose life cannot be checked from here) is only taken over
        with ``force``; one under a live worker of this host never is.
        """
        name = db_text(name)  # as the shell passed it: undecodable bytes as surrogates
        rec = self._db.get(name) or self._db.get(os.path.basename(name))
        if rec is None:
            raise KeyError(f"{name!r}: not in the bookkeeping database")
        if rec.state == FileState.COPYING and not self._stale(rec):
            other_host = (rec.claimed_by or "").split(":")[0] != self.host
            if not (force and other_host):
                hint = " (use --force if that worker is dead)" if other_host else ""
                raise RuntimeError(
                    f"{rec.name}: being copied by {rec.claimed_by}; not retried{hint}"
                )
        if rec.state not in (FileState.QUARANTINED, FileState.DETECTED, FileState.COPYING):
            raise RuntimeError(f"{rec.name}: is {rec.state}, nothing to retry")
        if self._db.transition(
            rec.name,
            [FileState.QUARANTINED, FileState.DETECTED, FileState.COPYING],
            FileState.DETECTED,
            Event.RETRY,
            {"by": _user(), "previous_state": str(rec.state), "previous_error": rec.last_error},
            fields={"tries": 0, "not_before": None, "claimed_by": None},
        ):
            log.info("%s: %s -> detected (operator retry)", rec.name, rec.state)
        return self.ingest(Path(rec.source_path))

    def retry_failed(self) -> dict[str, FileState]:
        """:meth:`retry` every quarantined file and every file waiting after errors."""
        todo = [r.name for r in self._db.files(state=FileState.QUARANTINED)]
        todo += [r.name for r in self._db.files(state=FileState.DETECTED) if r.last_error]
        out: dict[str, FileState] = {}
        for name in todo:
            try:
                out[name] = self.retry(name)
            except (KeyError, RuntimeError) as exc:
                log.warning("%s", exc)
        return out

    def watch(self, stop: threading.Event | None = None) -> None:
        """Run until ``stop`` is set: inotify on the DAQ directory and its subdirectories.

        Reconciliation runs first (after the watches are in place, so nothing closed meanwhile
        is missed).  The loop sleeps in ``select`` until an inotify event arrives, the next
        scheduled retry is due, or the safety-net rescan (every ``ingest.rescan_s``: directory
        listings compared with the paths already handled, no file opened) is due.  Every error
        is caught per file, logged and recorded; the loop only ends when ``stop`` is set.
        """
        from farmtools.ingest.watcher import DirWatcher

        self._stop = stop if stop is not None else threading.Event()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        done = threading.Event()

        def _waker() -> None:
            while not done.is_set():
                if self._stop.wait(0.5):
                    with contextlib.suppress(OSError):
                        os.write(wake_w, b"x")
                    return

        waker = threading.Thread(target=_waker, name="ingest-stop", daemon=True)
        waker.start()
        self.watch_dir.mkdir(parents=True, exist_ok=True)
        watcher = DirWatcher(self.watch_dir)
        sel = selectors.DefaultSelector()
        self._wake_w = wake_w
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ingest-copy")
        rescan_s = self.cfg.ingest.rescan_s
        next_rescan = time.monotonic() + rescan_s if rescan_s > 0 else None
        heartbeat = Heartbeat(self._db, "ingest", self.cfg.monitor.heartbeat_s)
        try:
            watcher.start()
            sel.register(watcher.fileno(), selectors.EVENT_READ, "inotify")
            sel.register(wake_r, selectors.EVENT_READ, "stop")
            log.info(
                "watching %s (%d directories) -> %r as %s",
                self.watch_dir,
                watcher.count(),
                self.storage,
                self.worker,
            )
            self._safe(self.reconcile)
            while not self._stop.is_set():
                heartbeat.beat()
                # an idle directory still beats: the loop wakes at least every heartbeat_s
                due = self._next_timeout()
                timeout = heartbeat.every_s if due is None else min(due, heartbeat.every_s)
                if next_rescan is not None:
                    timeout = min(timeout, max(0.0, next_rescan - time.monotonic()))
                for key, _ in sel.select(timeout):
                    if key.data == "inotify":
                        for kind, path in watcher.read():
                            self._on_event(kind, path, watcher)
                    else:
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_r, 4096)
                if self._stop.is_set():
                    break
                self._run_due()
                if next_rescan is not None and time.monotonic() >= next_rescan:
                    self._safe(self.rescan, watcher)
                    next_rescan = time.monotonic() + rescan_s
        finally:
            heartbeat.stop()
            done.set()
            # copies under way finish (a half copy would only be redone); queued ones wait
            # for the next start's reconciliation
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._wake_w = None
            sel.close()
            watcher.close()
            os.close(wake_r)
            os.close(wake_w)
            log.info("watcher stopped")

    # ------------------------------------------------------------------ the loop ------------
    def _safe(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            log.exception("ingest: %s", exc)
            return None

    def _on_event(self, kind: str, path: Path, watcher: DirWatcher) -> None:
        if kind == "overflow":
            log.warning("inotify queue overflowed: rescanning and reconciling")
            with self._lock:
                self._created.clear()  # their close-writes may be among the lost events
            self._safe(self.rescan, watcher)
            self._safe(self.reconcile)
        elif kind == "dir":
            log.info("new directory %s: watching it", db_text(os.fsdecode(path)))
            for f in _walk_files(path):
                self._submit(f)
        elif kind == "created":
            try:
                st = path.lstat()
            except OSError:
                return  # gone again
            if _written_here(st):
                # a writer created it here: its close-write will come; until then a look
                # (a rescan's) whose writers are unknown does not take it by settle time
                with self._lock:
                    self._created.add(path)
                if st.st_size == 0:
                    return  # just created: looking now would only find it open for writing
            self._submit(path)
        elif kind == "attrib":
            if path in self._denied:  # chmod, chown, an ACL: perhaps readable now
                self._submit(path)
        else:
            with self._lock:
                self._created.discard(path)
            self._submit(path)

    def rescan(self, watcher: DirWatcher | None = None) -> int:
        """The safety net against a lost event: look at every entry nothing announced.

        Lists the DAQ directory tree (``scandir``: names and inode numbers, no file is opened
        or stat-ed) and compares it with the paths this service already handled
        (:attr:`_known`, path -> inode): an entry not among them, or with another inode, is
        handed to a worker like an event's.  A directory whose watch is missing (refused,
        lost with a queue overflow, the directory replaced or mounted over: one ``stat`` per
        directory) is watched again.  Returns the entries handed over.
        """
        found: set[str] = set()
        taken = 0

        def watch_again(d: Path) -> None:
            try:
                st = os.stat(d, follow_symlinks=False)
            except OSError:
                return
            if watcher is not None and not watcher.watched(d, st):
                watcher.rewatch(d)

        for e in _walk_entries(
            self.watch_dir, on_dir=watch_again if watcher else None, ordered=False
        ):
            found.add(e.path)
            known = self._known.get(e.path)
            # the directory's inode number is the file's on local file systems; where it is
            # not (overlayfs), one lstat decides
            if known == e.inode() or (known is not None and _entry_ino(e) == known):
                continue
            taken += 1
            self._submit(Path(e.path))
        with self._lock:
            if len(self._known) > len(found):  # else none is gone, or as many came as went
                self._known = {p: i for p, i in self._known.items() if p in found}
            self._created = {p for p in self._created if os.fspath(p) in found}
        if taken:
            log.info("rescan: %d entr%s not handled yet", taken, "y" if taken == 1 else "ies")
        return taken

    def _submit(self, path: Path) -> None:
        """Hand ``path`` to a copy worker; one worker per path, a later event re-runs it once."""
        if self._pool is None:
            self._handle(path)
            return
        with self._lock:
            if path in self._inflight:
                self._again.add(path)
                return
            self._inflight.add(path)
        self._pool.submit(self._work, path)

    def _work(self, path: Path) -> None:
        while True:
            self._handle(path)
            with self._lock:
                if path in self._again and not self._stop.is_set():
                    self._again.discard(path)
                    continue
                self._again.discard(path)
                self._inflight.discard(path)
                return

    def _handle(self, path: Path) -> None:
        """One file from an event or a due retry; errors become a scheduled look later."""
        try:
            out = self._process(path, attempt=time.monotonic() >= self._down_until)
        except FileNotFoundError:
            self._failures.pop(path, None)
            return
        except Exception as exc:
            self._retry_later(path, exc, "ingest")
            return
        self._failures.pop(path, None)
        if out.retry_after is not None:
            self._schedule(path, out.retry_after)

    def _retry_later(self, path: Path, exc: Exception, what: str) -> None:
        """Schedule another look at ``path`` after an error no file state could record.

        The usual cause is the bookkeeping database being away (restarted, network cut): then
        nothing about the file can be written, so the file is simply looked at again, with the
        storage's back-off doubling per consecutive failure (a fixed delay hammered a database
        that was coming back, and every file wrote a traceback on every try).  A database
        error is one log line naming the file, the try and the delay; anything else is a bug
        and gets its traceback the first time.
        """
        n = self._failures.get(path, 0) + 1
        self._failures[path] = n
        delay = self.backoff.delay(n)
        name = db_text(os.fsdecode(path))
        if database_unavailable(exc):
            log.warning(
                "%s: %s waits for the bookkeeping database (try %d, again in %.1f s): %s",
                name,
                what,
                n,
                delay,
                first_line(exc),
            )
        elif n == 1:
            log.exception("%s: %s failed: %s", name, what, exc)
        else:
            log.error(
                "%s: %s failed again (try %d, again in %.1f s): %s", name, what, n, delay, exc
            )
        self._schedule(path, delay)

    def _schedule(self, path: Path, delay: float) -> None:
        with self._lock:
            self._due_seq += 1
            heapq.heappush(self._due, (time.monotonic() + delay, self._due_seq, path))
            wake = self._wake_w
        if wake is not None:
            with contextlib.suppress(OSError):
                os.write(wake, b"s")  # the loop's select() timeout was computed before this

    def _next_timeout(self) -> float | None:
        with self._lock:
            if not self._due:
                return None
            return max(0.0, self._due[0][0] - time.monotonic())

    def _run_due(self) -> None:
        """Retry what is due; while the storage is down, only the first one probes it."""
        now = time.monotonic()
        ready: list[Path] = []
        with self._lock:
            while self._due and self._due[0][0] <= now:
                path = heapq.heappop(self._due)[2]
                if path not in ready:
                    ready.append(path)
        for path in ready:
            if self._stop.is_set():
                break
            self._submit(path)

    # ------------------------------------------------------------------ one file ------------
    def _names(self, path: Path) -> tuple[str, RawName | None]:
        raw = parse_raw_name(path.name)
        if raw is not None:
            return raw.filename, raw
        return self._rel_name(path), None

    def _rel_name(self, path: Path) -> str:
        """``path`` relative to the DAQ directory, as the database stores it."""
        try:
            rel = os.fsdecode(path.relative_to(self.watch_dir))
        except ValueError:
            rel = os.fsdecode(path)
        return db_text(rel)

    def _collision_name(self, path: Path, taken: str) -> str:
        """The name a raw file is recorded under when its normalised name ``taken`` is held by
        another file: its own path below the DAQ directory (``./`` in front if that is
        ``taken`` itself, i.e. the other file sits in a subdirectory)."""
        rel = self._rel_name(path)
        return f"./{rel}" if rel == taken else rel

    def _collision(self, path: Path, rec: FileRecord) -> str | None:
        """Why ``path`` may not be ingested as ``rec.name``, or None when it is ``rec``'s file.

        Two files normalise to one name when they differ only in leading zeros
        (``run01-seq2.dat``, ``run1-seq2.dat``) or sit in two directories.  The first one
        registered keeps the name; copying the second would store other bytes under it (or be
        quarantined as a destination conflict, blaming the wrong file).  A path that is not the
        recorded source may still be the same file: a hard link, or the file moved after it was
        registered (the recorded path is gone): then the bytes decide once it is stored.
        """
        here = db_text(os.fsdecode(path))
        if rec.source_path == here:
            return None
        try:
            if os.path.samefile(rec.source_path, path):
                return None
            gone = False
        except OSError:
            gone = True
        if gone:
            if rec.state in (FileState.DETECTED, FileState.COPYING) or rec.adler32 is None:
                return None  # moved before its copy: the same file, under its new path
            if adler32_hex(adler32_file(path)) == rec.adler32:
                return None  # moved after its copy: the same bytes
        return (
            f"{here}: its raw name is {rec.name}, which already belongs to {rec.source_path} "
            f"({rec.state}); a second file of that name is not ingested"
        )

    def _process(self, path: Path, *, attempt: bool) -> Outcome:
        """One pass over ``path``; ``attempt=False`` registers and schedules without copying."""
        try:
            st = path.lstat()
        except FileNotFoundError:
            return self._vanished(path)
        out = self._process_entry(path, st, attempt=attempt)
        if out.state is not None:
            with self._lock:
                self._known[os.fspath(path)] = st.st_ino
        return out

    def _process_entry(self, path: Path, st: os.stat_result, *, attempt: bool) -> Outcome:
        if stat.S_ISDIR(st.st_mode):
            return Outcome(None)
        name, raw = self._names(path)
        if not stat.S_ISREG(st.st_mode):
            # a raw name that will never be ingested: a person must look (a DAQ publishing
            # through symbolic links, a FIFO or device node where a raw file should be)
            return self._ignore(
                path,
                name,
                st,
                why=f"not a regular file: {_entry_kind(path, st)}",
                alarm=KIND_NOT_REGULAR if raw is not None else None,
            )
        if raw is None and parse_eor_name(path.name) is not None:
            return self._end_of_run(path, name, st)
        if raw is None:
            return self._ignore(path, name, st)
        rec = self._db.get(name)
        if rec is not None and (why := self._collision(path, rec)) is not None:
            return self._ignore(
                path, self._collision_name(path, name), st, why=why, alarm=KIND_COLLISION
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
            if path in self._created:
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
                daq_write_time=_utc(st.st_mtime),
            )
            if rec.state == FileState.DETECTED:
                log.info("%s: -> detected (%d bytes)", name, st.st_size)
        if rec.state == FileState.COPYING:
            if not self._stale(rec):
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
        if path in self._denied:
            # waiting for read permission: look without claiming (no story event per look)
            if _unreadable(path) is not None:
                return self._still_unreadable(path, name)
            with self._lock:
                self._denied.pop(path, None)
            log.info("%s: readable now", name)
        if not attempt:
            return Outcome(FileState.DETECTED, max(0.0, self._down_until - time.monotonic()))
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
        with self._lock:
            self._copying.add(name)
        try:
            if rec.tries > 0:
                self._db.record(name, Event.RETRY, {"attempt": tries, "after": rec.last_error})
            return self._copy_claimed(path, rec, raw, tries)
        except FileNotFoundError as exc:
            self._release(name, f"source vanished: {exc}", "source_vanished")
            return Outcome(FileState.DETECTED)
        except Exception as exc:
            if database_unavailable(exc):
                # nothing can be recorded now; the caller looks again later, and this claim,
                # ours and no longer in _copying, is then taken as stale and resumed
                raise
            # whatever went wrong, the claim must not stay with a live worker that gave up
            log.exception("%s: unexpected error while copying", name)
            return self._failed(name, rec, tries, exc, "unexpected")
        finally:
            with self._lock:
                self._copying.discard(name)

    def _copy_claimed(self, path: Path, rec: FileRecord, raw: RawName, tries: int) -> Outcome:
        """Check, copy and record a file this worker holds in ``copying``."""
        name = rec.name
        denied = _unreadable(path)
        if denied is not None:
            return self._unreadable(path, rec, tries, denied)
        problem = self._check_raw(path, raw)
        if problem is not None:
            return self._quarantine(name, "corrupt_raw_file", problem)
        before = path.stat()
        dest = f"{raw.run_dir}/{name}"
        started = time.monotonic()
        try:
            result = self.storage.put(path, dest)
        except DestinationConflict as exc:
            return self._quarantine(name, "destination_conflict", str(exc))
        except SourceChanged as exc:
            # the input's fault, not the storage's: no back-off for the other files
            return self._quarantine(name, "source_changed", str(exc))
        except ChecksumMismatch as exc:
            return self._failed(name, rec, tries, exc, KIND_MISMATCH)
        except StorageError as exc:
            return self._failed(name, rec, tries, exc, "transient" if exc.transient else "storage")
        seconds = time.monotonic() - started
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            return self._quarantine(
                name,
                "source_changed",
                f"{db_text(os.fsdecode(path))}: modified during the copy (size {before.st_size} "
                f"-> {after.st_size}); the storage holds what was read, {result.url}",
            )
        return self._stored(name, result, seconds)

    def _check_raw(self, path: Path, raw: RawName) -> str | None:
        """Header/footer walk of the raw file (no payload decoding): the reason it is bad, or None."""
        try:
            with _open_raw(path, raw, self.cfg.geometry) as f:
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
        self._down_until = 0.0
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

    def _failed(
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
                return self._quarantine(
                    name,
                    KIND_MISMATCH,
                    f"verification failed {mismatches} times, last: {message}",
                )
        delay = self.backoff.delay(tries)
        if kind != KIND_MISMATCH:
            self._down_until = time.monotonic() + delay
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

    def _unreadable(self, path: Path, rec: FileRecord, tries: int, message: str) -> Outcome:
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

    def _still_unreadable(self, path: Path, name: str) -> Outcome:
        with self._lock:
            n = self._denied.get(path, 0) + 1
            self._denied[path] = n
        delay = self.backoff.delay(n)
        log.info("%s: still not readable by this daemon, looking again in %.1f s", name, delay)
        return Outcome(FileState.DETECTED, delay, KIND_UNREADABLE)

    def _give_up(self, path: Path) -> None:
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

    def _release(self, name: str, message: str, kind: str) -> None:
        self._db.transition(
            name,
            FileState.COPYING,
            FileState.DETECTED,
            Event.ERROR,
            {"kind": kind, "error": message},
            fields={"claimed_by": None, "last_error": message},
        )
        log.warning("%s: copying -> detected (%s)", name, message)

    def _quarantine(self, name: str, kind: str, message: str) -> Outcome:
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

    def _ignore(
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
                daq_write_time=_utc(st.st_mtime),
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

    def _end_of_run(self, path: Path, name: str, st: os.stat_result) -> Outcome:
        """Store the DAQ's end-of-run record in the bookkeeping (the processing daemon closes
        the run); a record that cannot be read is ignored with an alarm naming what is wrong.
        The record itself stays where it is, recorded as ignored like any other non-raw name."""
        try:
            record = read_end_of_run(path)
        except EndOfRunError as exc:
            return self._ignore(path, name, st, why=str(exc), alarm=KIND_BAD_EOR)
        source = db_text(os.fsdecode(path))
        if self._db.record_end_of_run(record.run, record.to_json(), source=source):
            log.info(
                "%s: end of run %d (%d files, %d events)",
                name,
                record.run,
                record.files,
                record.events,
            )
        return self._ignore(path, name, st, why=f"end-of-run record of run {record.run}")

    def _vanished(self, path: Path) -> Outcome:
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

    def _stale(self, rec: FileRecord) -> bool:
        """Whether the worker holding ``rec`` is known to be dead (so its copy may be resumed)."""
        who = rec.claimed_by or ""
        parts = who.split(":")
        if who == self.worker:
            # ours: stale only if no copy of ours is under way (a release that failed)
            with self._lock:
                return rec.name not in self._copying
        if len(parts) != 4:
            return not who
        host, pid_s, start_s, _ = parts
        if host != self.host:
            return False  # another host: we cannot tell; an operator's retry decides
        pid, start = int(pid_s), int(start_s)
        if pid == os.getpid():
            return who not in IngestService._live
        try:
            import psutil

            return int(psutil.Process(pid).create_time() * 100) != start
        except Exception:
            return True

    # ------------------------------------------------------------------ reconciliation ------
    def _candidates(self) -> list[Path]:
        """Paths to look at, the database's unfinished files first, then the DAQ directory."""
        from farmtools.bookkeeping.states import FileState as S

        seen: dict[str, Path] = {}
        for state in (S.COPYING, S.DETECTED):
            for rec in self._db.files(state=state):
                seen.setdefault(rec.name, Path(rec.source_path))
        if self.watch_dir.is_dir():
            for entry in _walk_entries(self.watch_dir):
                path = Path(entry.path)
                name, _ = self._names(path)
                known = self._db.get(name)
                ino = _entry_ino(entry)
                if known is not None and known.source_path == db_text(entry.path) and ino:
                    with self._lock:  # the rescan need not look at it again
                        self._known[entry.path] = ino
                taken = seen.get(name)
                if (known is not None and known.source_path != db_text(os.fsdecode(path))) or (
                    taken is not None and taken != path
                ):
                    # another path of the same raw name: _process judges it, under its own
                    # name (ignored as a collision, or the same file moved)
                    name = self._collision_name(path, name)
                    known = self._db.get(name)
                if name in seen:
                    continue
                if known is None or known.state in (S.DETECTED, S.COPYING):
                    seen[name] = path

        def order(item: tuple[str, Path]) -> tuple[int, int, str]:
            raw = parse_raw_name(item[0])
            return (raw.run, raw.seq, item[0]) if raw else (-1, -1, item[0])

        return [p for _, p in sorted(seen.items(), key=order)]


def _open_raw(path: Path, raw: RawName, geometry: Geometry) -> RawFile | PDDPFile:
    """The file opened by the reader of its format (a 6x6x6 event file by the ProtoDUNE-DP one)."""
    from farmtools.rawdata.pddp_reader import open_raw

    return open_raw(path, raw, geometry)


class _Serialized:
    """A proxy calling the methods of ``target`` under one lock."""

    def __init__(self, target: object) -> None:
        self._target = target
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


def _written_here(st: os.stat_result) -> bool:
    """Whether a new entry (IN_CREATE) is a file created by a writer in this directory.

    A regular file with one link whose data is as new as its inode's last change: created
    with ``open(O_CREAT)`` and only written since (a write sets mtime and ctime alike).  Its
    writer's close-write will come here.  Not so for a hard link (two links, or a ctime
    newer than the data: ``link()`` changes the ctime only) of a file written elsewhere,
    nor for a symbolic link, FIFO, device or socket: no close-write comes for those.
    """
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_mtime_ns == st.st_ctime_ns


def _entry_ino(entry: os.DirEntry[str]) -> int | None:
    """The inode number of ``entry`` as ``lstat`` gives it (None if it is gone)."""
    try:
        return entry.stat(follow_symlinks=False).st_ino
    except OSError:
        return None


def _entry_kind(path: Path, st: os.stat_result) -> str:
    """What a non-regular entry is, for its ``ignored`` reason (never opened, never followed)."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        try:
            target = db_text(os.fsdecode(os.readlink(path)))
        except OSError as exc:
            target = f"? ({exc.strerror})"
        return f"a symbolic link to {target} (not followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe; never opened)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "character" if stat.S_ISCHR(mode) else "block"
        dev = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        return f"a {kind} device node {dev} (never opened)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return f"file type {stat.S_IFMT(mode):o}"


def _unreadable(path: Path) -> str | None:
    """Why this process may not read ``path`` (a permission problem), or None if it may."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except PermissionError as exc:
        try:
            st = path.stat()
            whose = (
                f"owner uid {st.st_uid}, group gid {st.st_gid}, mode {stat.filemode(st.st_mode)}"
            )
        except OSError:
            whose = "its directory cannot be searched"
        return (
            f"{db_text(os.fsdecode(path))}: permission denied ({exc.strerror}) for this daemon "
            f"(user {_user()}, uid {os.geteuid()}; the file: {whose}); not corrupt: "
            "it is taken by itself once readable"
        )
    except OSError:
        return None  # another problem: the raw-file check names it
    os.close(fd)
    return None


def _walk_entries(
    top: Path, on_dir: Callable[[Path], None] | None = None, *, ordered: bool = True
) -> Iterator[os.DirEntry[str]]:
    """Every non-directory entry below ``top`` (subdirectories included), errors skipped;
    ``on_dir`` is called with each directory before it is listed; by name in each directory
    unless ``ordered`` is False."""
    stack = [top]
    while stack:
        d = stack.pop()
        if on_dir is not None:
            on_dir(d)
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError as exc:
            log.warning("%s: cannot list: %s", db_text(os.fsdecode(d)), exc)
            continue
        for e in sorted(entries, key=lambda e: e.name) if ordered else entries:
            if e.is_dir(follow_symlinks=False):
                stack.append(Path(e.path))
            else:
                yield e


def _walk_files(top: Path) -> Iterator[Path]:
    """:func:`_walk_entries` as paths."""
    return (Path(e.path) for e in _walk_entries(top))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())
