"""Daemon heartbeats: each daemon says in the bookkeeping when it last worked.

Owns :class:`Heartbeat`, which a daemon's loop calls on every pass (:meth:`Heartbeat.beat`); a
row of ``heartbeats`` (daemon, host) is replaced at most every ``every_s`` seconds, so a loop
that turns five times a second costs one small write per ``monitor.heartbeat_s``.  A clean exit
says so (:meth:`Heartbeat.stop`): a daemon stopped on purpose is "stopped", not "silent".
``farmtools status`` and the monitor call a running daemon whose beat is older than
``monitor.daemon_silent_s`` silent (:func:`silent`), an alarm.

A heartbeat never stops its daemon: a database that is away is logged once, and the next beat
after it came back writes again.  Imports the standard library only (the database through the
:class:`~farmtools.bookkeeping.db.Bookkeeping` it is given): the event builder and the jobs
import it without SQLAlchemy.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import Bookkeeping, HeartbeatRecord

log = logging.getLogger("farmtools.heartbeat")


class Heartbeat:
    """The heartbeat of ``daemon`` on this host, written through ``bk`` (None: nothing written)."""

    def __init__(self, bk: Bookkeeping | None, daemon: str, every_s: float) -> None:
        self.bk = bk
        self.daemon = daemon
        self.every_s = every_s
        self.started = datetime.now(UTC)
        self._next = 0.0  # monotonic time of the next write; 0: the first beat writes
        self._failing = False

    def beat(self, detail: str = "") -> bool:
        """Record that the daemon works now, unless that was done less than ``every_s`` ago.

        Returns whether a row was written.  Never raises.
        """
        t = time.monotonic()
        if self.bk is None or t < self._next:
            return False
        self._next = t + self.every_s
        return self._write(detail, stopped=False)

    def stop(self, detail: str = "stopped") -> None:
        """The daemon exits cleanly: its row says so (it is not silent, it was stopped)."""
        if self.bk is not None:
            self._write(detail, stopped=True)

    def _write(self, detail: str, *, stopped: bool) -> bool:
        assert self.bk is not None
        try:
            self.bk.beat(self.daemon, started=self.started, detail=detail, stopped=stopped)
        except Exception as exc:  # the daemon's own loop reports the outage; say it once here
            if not self._failing:
                log.warning("%s: heartbeat not recorded: %s", self.daemon, exc)
            self._failing = True
            return False
        self._failing = False
        return True


def silent(hb: HeartbeatRecord, silent_after_s: float, at: datetime | None = None) -> bool:
    """Whether a daemon that did not say it stopped has not beaten for ``silent_after_s``."""
    age = (at or datetime.now(UTC)) - hb.beat
    return hb.stopped is None and age > timedelta(seconds=silent_after_s)
