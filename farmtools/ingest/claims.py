"""The ``copying`` claims of one ingest worker, and whether another worker's claim is stale.

A worker id is ``host:pid:start:nonce`` (the process start time tells a reused pid apart).  A
claim is stale, and its file may be resumed, when its worker is known to be dead: a process of
this host that is gone, or a pipeline of this process that was closed; a claim of this worker
whose copy is no longer under way (a release that failed).  A claim by another host cannot be
judged from here: an operator's retry decides.  Imports psutil lazily.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import FileRecord


class Claims:
    """One worker's claims (see the module docstring)."""

    #: Worker ids alive in this process (a claim by one of them is not stale).
    live: ClassVar[set[str]] = set()

    def __init__(self, worker: str, host: str, lock: threading.Lock) -> None:
        self.worker = worker
        self.host = host
        self._lock = lock
        Claims.live.add(worker)
        #: names this worker holds in "copying" right now (its other claims are leftovers)
        self._copying: set[str] = set()

    def close(self) -> None:
        """Forget this worker (its claims count as stale from now on)."""
        Claims.live.discard(self.worker)

    @contextlib.contextmanager
    def copying(self, name: str) -> Iterator[None]:
        """While this worker copies ``name`` (its claim is then not stale, even to itself)."""
        with self._lock:
            self._copying.add(name)
        try:
            yield
        finally:
            with self._lock:
                self._copying.discard(name)

    def stale(self, rec: FileRecord) -> bool:
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
            return who not in Claims.live
        try:
            import psutil

            return int(psutil.Process(pid).create_time() * 100) != start
        except Exception:
            return True
