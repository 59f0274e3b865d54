"""The copy threads and the retry heap of an ingest service.

One copy thread per path at a time (a later event for a path being copied re-runs it once
when the copy ends), and a heap of paths to look at again at a given time: retries after a
failure, files waiting to settle or for read permission.  The daemon loop
(:meth:`farmtools.ingest.service.IngestService.watch`) sleeps until the earliest of them;
:meth:`WorkQueue.schedule` wakes it through a pipe when an earlier one is added.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from farmtools.bookkeeping.errors import database_unavailable, first_line
from farmtools.bookkeeping.names import db_text
from farmtools.retry import Backoff

log = logging.getLogger("farmtools.ingest")


class WorkQueue:
    """Hands paths to ``handle`` in copy threads, now or at a scheduled time."""

    def __init__(
        self,
        handle: Callable[[Path], None],
        *,
        workers: int,
        lock: threading.Lock,
        backoff: Backoff,
    ) -> None:
        self._handle = handle
        #: copies running at once: a close-write is claimed at once even while another
        #: file's copy (or its fsync) is still going
        self.workers = max(1, workers)
        self._lock = lock
        self.backoff = backoff
        self._stop = threading.Event()
        #: (monotonic due time, seq, path) of files to look at again: retries, settle waits
        self._due: list[tuple[float, int, Path]] = []
        self._due_seq = 0
        #: paths a copy thread is busy with, and those that had an event meanwhile
        self._inflight: set[Path] = set()
        self._again: set[Path] = set()
        #: consecutive failures of each path that no file state records (the database itself
        #: away, a bug): their retries back off like the storage's instead of a fixed delay
        self._failures: dict[Path, int] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._wake_w: int | None = None

    def start(self, stop: threading.Event, wake_w: int) -> None:
        """Copy in threads from now on (before: in the caller's thread, as ``ingest()`` does)."""
        self._stop = stop
        self._wake_w = wake_w
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ingest-copy")

    def shutdown(self) -> None:
        """Copies under way finish (a half copy would only be redone); queued ones are dropped,
        for the next start's reconciliation."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None
        self._wake_w = None

    def succeeded(self, path: Path) -> None:
        """A pass over ``path`` ran to its end: its failure count starts again."""
        self._failures.pop(path, None)

    def submit(self, path: Path) -> None:
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

    def retry_later(self, path: Path, exc: Exception, what: str) -> None:
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
        self.schedule(path, delay)

    def schedule(self, path: Path, delay: float) -> None:
        with self._lock:
            self._due_seq += 1
            heapq.heappush(self._due, (time.monotonic() + delay, self._due_seq, path))
            wake = self._wake_w
        if wake is not None:
            with contextlib.suppress(OSError):
                os.write(wake, b"s")  # the loop's select() timeout was computed before this

    def next_timeout(self) -> float | None:
        with self._lock:
            if not self._due:
                return None
            return max(0.0, self._due[0][0] - time.monotonic())

    def run_due(self) -> None:
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
            self.submit(path)
