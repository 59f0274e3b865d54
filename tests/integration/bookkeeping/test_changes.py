"""The change watch (SQLite ``PRAGMA data_version``, PostgreSQL LISTEN/NOTIFY) on both backends.

Writes come from another :class:`Bookkeeping` (its own engine and connections) and from another
process, as ingest's do; the watch must see each one, and stay quiet while nothing is written.
"""

from __future__ import annotations

import multiprocessing
import time

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.bookkeeping.changes import ChangeWatch
from farmtools.bookkeeping.schema import now
from tests.eventually import eventually
from tests.states import walk


def _register(bk: Bookkeeping, name: str) -> None:
    bk.register_file(name, source_path=f"/daq/{name}", run=1, seq=0, size=10, daq_write_time=now())


def _store(url: str, name: str) -> None:
    """What ingest does when a copy is verified, in a Bookkeeping of its own."""
    other = Bookkeeping(url)
    try:
        walk(other, name, FileState.STORED, Event.VERIFIED)
    finally:
        other.close()


def _changed_soon(watch: ChangeWatch, timeout: float = 5.0) -> bool:
    """True once the watch reports a change; fails after ``timeout`` (NOTIFY travels over a socket)."""
    return eventually(watch.changed, timeout, "a change reported by the watch", interval=0.01)


def test_the_watch_sees_a_file_stored_by_another_connection(bk: Bookkeeping, db_url: str) -> None:
    _register(bk, "run1-seq0.dat")
    watch = bk.watch(FileState.STORED)
    try:
        assert watch.changed()  # the first look always says "look"
        assert not watch.changed()
        assert bk.claim(FileState.STORED, FileState.QUEUED, worker="w", event=Event.QUEUED) == []
        assert not watch.changed()  # an empty claim writes nothing
        _store(db_url, "run1-seq0.dat")
        assert _changed_soon(watch)
        assert not watch.changed()  # told once per change
    finally:
        watch.close()


def test_the_watch_sees_a_write_of_another_process(bk: Bookkeeping, db_url: str) -> None:
    _register(bk, "run1-seq0.dat")
    watch = bk.watch(FileState.STORED)
    try:
        assert watch.changed()
        proc = multiprocessing.get_context("spawn").Process(
            target=_store, args=(db_url, "run1-seq0.dat")
        )
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        assert _changed_soon(watch)
    finally:
        watch.close()


def test_what_counts_as_a_change_per_backend(bk: Bookkeeping, db_url: str) -> None:
    """SQLite sees every commit; PostgreSQL is told only of files entering a watched state."""
    watch = bk.watch(FileState.STORED)
    try:
        assert watch.changed()
        _register(bk, "run1-seq0.dat")  # enters `detected`: no NOTIFY
        if bk.dialect == "sqlite":
            assert watch.changed()
        else:
            time.sleep(0.2)  # a NOTIFY that must not come: the time it would take (what is tested)
            assert not watch.changed()
        # a claim into `stored` (e.g. a retry) notifies as a transition does
        walk(bk, "run1-seq0.dat", FileState.FAILED, Event.FAILED)
        watch.changed()
        bk.claim(FileState.FAILED, FileState.STORED, worker="op", event=Event.RETRY)
        assert _changed_soon(watch)
    finally:
        watch.close()


def test_a_failed_compare_and_set_tells_nothing(bk: Bookkeeping) -> None:
    _register(bk, "run1-seq0.dat")
    watch = bk.watch(FileState.STORED)
    try:
        assert watch.changed()
        assert not bk.transition("run1-seq0.dat", FileState.COPYING, FileState.STORED, "x")
        time.sleep(0.2)  # a NOTIFY that must not come: the time it would take (what is tested)
        assert not watch.changed()  # compare-and-set failed: nothing committed, nothing sent
    finally:
        watch.close()
