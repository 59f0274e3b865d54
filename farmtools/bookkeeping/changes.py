"""Has the database changed since I last looked?  A check that costs no query, for polling daemons.

Owns :class:`ChangeWatch` (built by :meth:`farmtools.bookkeeping.Bookkeeping.watch`) and
:data:`WAKE_STATES`.  A daemon that would run an indexed query every fraction of a second to find
new work (the processing manager's claim every ``processing.claim_s``) asks the watch first and
queries only when something changed:

* **SQLite**: ``PRAGMA data_version`` on a connection of the watch's own.  SQLite changes that
  number whenever *another* connection (in this process or any other) committed a write, and
  reading it touches no table and takes no lock (a few microseconds against ~1 ms for a claim's
  write transaction).  A transaction that wrote nothing (an empty claim) does not change it.
  Any write counts, not only the ones the caller cares about: a false alarm costs one query.
* **PostgreSQL**: ``LISTEN farmtools_<state>`` for the watched states.  The bookkeeping sends
  ``NOTIFY`` in the same transaction that moves a file into one of :data:`WAKE_STATES`, so the
  notification arrives exactly when the change is committed; checking is a non-blocking read
  of the watch connection's socket (no round trip to the server).  Only those transitions are
  signalled, so a caller keeps a slow timed pass as a fallback (a writer that does not notify,
  a lost connection), as the processing manager does with ``processing.rescan_s``.

``changed()`` errs on the side of True: first call, a broken connection (reopened at the next
call), anything it cannot tell.  Imports SQLAlchemy and the bookkeeping states only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine

from farmtools.bookkeeping.states import FileState

log = logging.getLogger("farmtools.bookkeeping")

#: States whose arrival is signalled on PostgreSQL (``NOTIFY farmtools_<state>``): the ones a
#: daemon waits for.  ``stored`` makes a file claimable by the processing manager.
WAKE_STATES: frozenset[str] = frozenset({str(FileState.STORED)})


def channel(state: FileState | str) -> str:
    """The LISTEN/NOTIFY channel of ``state`` (``farmtools_stored``)."""
    return f"farmtools_{state}"


class ChangeWatch:
    """Cheap change detection on ``engine`` for files entering ``states`` (see the module doc).

    >>> watch = bk.watch(FileState.STORED)        # doctest: +SKIP
    >>> if watch.changed(): bk.claim(...)         # doctest: +SKIP
    """

    def __init__(self, engine: Engine, states: Iterable[FileState | str]) -> None:
        self.engine = engine
        self.states = sorted({str(s) for s in states})
        unknown = set(self.states) - WAKE_STATES
        if engine.dialect.name == "postgresql" and unknown:
            raise ValueError(f"no NOTIFY is sent for states {sorted(unknown)} (see WAKE_STATES)")
        self._conn: Any = None
        self._version: int | None = None

    def _open(self) -> Any:
        """A DBAPI connection of the watch's own, out of the engine's pool (same settings)."""
        fairy = self.engine.raw_connection()
        conn: Any = fairy.driver_connection
        fairy.detach()  # never handed back to the pool: it lives as long as the watch
        if self.engine.dialect.name == "postgresql":
            conn.rollback()
            conn.autocommit = True
            for state in self.states:
                conn.execute(f"LISTEN {channel(state)}")
        return conn

    def changed(self) -> bool:
        """True when the database may have changed since the previous call (and at the first)."""
        try:
            first = self._conn is None
            if first:
                self._conn = self._open()
            if self.engine.dialect.name == "postgresql":
                # timeout=0: what already arrived on the socket, without waiting
                got = any(True for _ in self._conn.notifies(timeout=0))
                return first or got
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            moved = version != self._version
            self._version = version
            return moved
        except Exception as exc:  # a dropped connection: reopen next time, assume a change
            log.warning("change watch on the database lost its connection: %s", exc)
            self.close()
            return True

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:  # closing a broken connection may fail too: nothing to do
                log.debug("closing the change watch connection: %s", exc)
            self._conn = None
            self._version = None
