"""The ingest service: DAQ raw files to the farm storage, verified, recorded; see docs/ingest.md.

This module is the scheduler: inotify, the wake-up pipe, the copy threads and the retry heap
(:mod:`.workqueue`), reconciliation; what it knows of the DAQ directory, for the safety-net
rescan, is :class:`farmtools.ingest.dirview.DirView`.  What one pass over one file does is
:class:`farmtools.ingest.pipeline.FilePipeline`, whose docstring tells one file's whole path.

The source is only ever read.  The daemon loop (:meth:`IngestService.watch`) catches every error
per file, records it and carries on.  Imports rawdata, storage, bookkeeping and the config.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farmtools.bookkeeping.heartbeat import Heartbeat
from farmtools.bookkeeping.names import db_text
from farmtools.bookkeeping.states import Event, FileState
from farmtools.ingest.dirview import DirView
from farmtools.ingest.entries import current_user, walk_files, written_here
from farmtools.ingest.pipeline import FilePipeline
from farmtools.ingest.verdicts import KIND_COLLISION, SOURCE, Outcome
from farmtools.ingest.workqueue import WorkQueue
from farmtools.retry import Backoff
from farmtools.storage.base import Storage

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import Bookkeeping
    from farmtools.config import FarmConfig
    from farmtools.ingest.watcher import DirWatcher

__all__ = ["KIND_COLLISION", "SOURCE", "IngestService", "Outcome"]

log = logging.getLogger("farmtools.ingest")


def _process_start() -> int:
    """Start time of this process (jiffies since boot): with the pid, tells a reused pid apart."""
    try:
        import psutil

        return int(psutil.Process().create_time() * 100)
    except Exception:
        return 0


class IngestService:
    """Ingest of one DAQ directory into one storage, recording everything in ``bk``.

    Several services (threads, processes, hosts) may share a database and a DAQ directory: the
    detected->copying compare-and-set makes sure that one copies each file.
    """

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
        self.host = socket.gethostname()
        self.worker = (
            worker or f"{self.host}:{os.getpid()}:{_process_start()}:{uuid.uuid4().hex[:6]}"
        )
        self._lock = threading.Lock()
        #: what this service knows of the DAQ directory (handled paths, files being written)
        self.dirview = DirView(self.watch_dir, self._lock)
        #: what one pass over one file does; shares this service's lock and database proxy
        self.pipeline = FilePipeline(
            cfg,
            bk,
            self._db,
            storage,
            worker=self.worker,
            host=self.host,
            lock=self._lock,
            awaiting_close=self.dirview.awaiting_close,
            text_logs=text_logs,
        )
        self._stop = threading.Event()
        #: the copy threads and the retry heap
        self._queue = WorkQueue(
            self._handle, workers=workers, lock=self._lock, backoff=self.backoff
        )

    def close(self) -> None:
        """Forget this worker (its claims count as stale from now on)."""
        self.pipeline.close()

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
                self.pipeline.give_up(p)
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
        self.pipeline.down_until = 0.0  # each pass probes the storage at least once
        for path in self.dirview.candidates(self._db, self.pipeline):
            try:
                # once the storage failed in this pass, the rest is only scheduled: one probe
                # per back-off instead of a connection timeout per file
                out = self._process(path, attempt=time.monotonic() >= self.pipeline.down_until)
            except Exception as exc:
                self._queue.retry_later(path, exc, "reconciliation")
                continue
            self._queue.succeeded(path)
            if out.state == FileState.STORED:
                stored += 1
            if out.retry_after is not None:
                self._queue.schedule(path, out.retry_after)
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
        if rec.state == FileState.COPYING and not self.pipeline.stale(rec):
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
            {
                "by": current_user(),
                "previous_state": str(rec.state),
                "previous_error": rec.last_error,
            },
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
        self._queue.start(self._stop, wake_w)
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
                due = self._queue.next_timeout()
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
                self._queue.run_due()
                if next_rescan is not None and time.monotonic() >= next_rescan:
                    self._safe(self.rescan, watcher)
                    next_rescan = time.monotonic() + rescan_s
        finally:
            heartbeat.stop()
            done.set()
            self._queue.shutdown()
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
            self.dirview.forget_created()  # their close-writes may be among the lost events
            self._safe(self.rescan, watcher)
            self._safe(self.reconcile)
        elif kind == "dir":
            log.info("new directory %s: watching it", db_text(os.fsdecode(path)))
            for f in walk_files(path):
                self._queue.submit(f)
        elif kind == "created":
            try:
                st = path.lstat()
            except OSError:
                return  # gone again
            if written_here(st):
                # a writer created it here: its close-write will come; until then a look
                # (a rescan's) whose writers are unknown does not take it by settle time
                self.dirview.created_here(path)
                if st.st_size == 0:
                    return  # just created: looking now would only find it open for writing
            self._queue.submit(path)
        elif kind == "attrib":
            if self.pipeline.waiting_for_permission(path):  # chmod, chown, an ACL
                self._queue.submit(path)
        else:
            self.dirview.closed(path)
            self._queue.submit(path)

    def rescan(self, watcher: DirWatcher | None = None) -> int:
        """The safety net against a lost event (:meth:`~.dirview.DirView.rescan`): every entry
        nothing announced is handed to a worker; returns how many."""
        return self.dirview.rescan(self._queue.submit, watcher)

    def _handle(self, path: Path) -> None:
        """One file from an event or a due retry; errors become a scheduled look later."""
        try:
            out = self._process(path, attempt=time.monotonic() >= self.pipeline.down_until)
        except FileNotFoundError:
            self._queue.succeeded(path)
            return
        except Exception as exc:
            self._queue.retry_later(path, exc, "ingest")
            return
        self._queue.succeeded(path)
        if out.retry_after is not None:
            self._queue.schedule(path, out.retry_after)

    def _process(self, path: Path, *, attempt: bool) -> Outcome:
        """One pass over ``path``; ``attempt=False`` registers and schedules without copying."""
        try:
            st = path.lstat()
        except FileNotFoundError:
            return self.pipeline.vanished(path)
        out = self.pipeline.process_entry(path, st, attempt=attempt)
        if out.state is not None:
            self.dirview.handled(os.fspath(path), st.st_ino)
        return out


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
